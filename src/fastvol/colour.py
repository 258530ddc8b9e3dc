"""Colour samples, a leaf: one stored colour frame -> ``(rows, columns, 3)`` RGB.

fastvol returns colour as a trailing channel axis, ``(..., slice, row, column, 3)``, always RGB,
as pydicom's ``pixel_array`` does by default: planar configuration 1 (``RRR...GGG...BBB``) is
interleaved, YBR_FULL converted to RGB with pydicom's rounding (PS3.3 C.7.6.3.1.2), and
YBR_FULL_422 (two pixels stored as ``Y Y Cb Cr``) upsampled first. Imports numpy only.
"""

from __future__ import annotations

import numpy as np

__all__ = ["COLOUR_PHOTOMETRICS", "SUBSAMPLED", "to_rgb"]

#: Photometric interpretations of 3-sample pixel data fastvol converts to RGB.
COLOUR_PHOTOMETRICS = ("RGB", "YBR_FULL", "YBR_FULL_422")
#: Photometric interpretations whose uncompressed frames hold 2 values per pixel, not 3.
SUBSAMPLED = ("YBR_FULL_422",)

# pydicom's YBR_FULL -> RGB matrix (rows: Y, Cb, Cr), in float32 as pydicom computes it.
_YBR_TO_RGB = np.asarray(
    [[1.000, 1.000, 1.000], [0.000, -0.114 * 1.772 / 0.587, 1.772], [1.402, -0.299 * 1.402 / 0.587, 0.000]],
    dtype=np.float32,
)


def to_rgb(samples: np.ndarray, rows: int, columns: int, photometric: str, planar: int) -> np.ndarray:
    """One frame's stored samples (flat, in file order) as ``(rows, columns, 3)`` RGB of the
    same dtype.

    ``samples`` holds ``rows * columns * 3`` values, or ``rows * columns * 2`` for YBR_FULL_422
    (whose pixel pairs share one Cb and Cr; ``columns`` is even).
    """
    if photometric == "YBR_FULL_422":
        pairs = samples.reshape(rows, columns // 2, 4)  # Y0 Y1 Cb Cr per two pixels
        ybr = np.empty((rows, columns, 3), dtype=samples.dtype)
        ybr[:, 0::2, 0] = pairs[..., 0]
        ybr[:, 1::2, 0] = pairs[..., 1]
        ybr[:, :, 1] = np.repeat(pairs[..., 2], 2, axis=1)
        ybr[:, :, 2] = np.repeat(pairs[..., 3], 2, axis=1)
        return _ybr_full_to_rgb(ybr)
    if planar == 1:
        pixels = samples.reshape(3, rows, columns).transpose(1, 2, 0)
    else:
        pixels = samples.reshape(rows, columns, 3)
    if photometric == "YBR_FULL":
        return _ybr_full_to_rgb(pixels)
    return pixels


def _ybr_full_to_rgb(ybr: np.ndarray) -> np.ndarray:
    """8-bit YBR_FULL -> RGB exactly as pydicom (round half up, clipped to 0..255)."""
    arr = ybr.astype(np.float32)
    arr -= np.array([0, 128, 128], dtype=np.float32)
    np.matmul(arr, _YBR_TO_RGB, out=arr)
    arr += 0.5
    np.floor(arr, out=arr)
    np.clip(arr, 0, 255, out=arr)
    return arr.astype(ybr.dtype)
