"""Siemens mosaic images: recognise them, cut them into slices, and place the slices in space.

Classic Siemens EPI, DWI and fMRI files (ImageType contains ``MOSAIC``) store every slice of one
volume as a tile of one large 2D image: ``tiles_per_side x tiles_per_side`` tiles of
``tile_rows x tile_cols`` pixels, filled row-major, the unused tiles at the end left blank. The
header describes the *mosaic*, not the slices:

- ImagePositionPatient is the first voxel centre of the whole mosaic as if it were one huge slice
  at the first tile's depth; the first tile's true first voxel sits half the mosaic's extra width
  and height further along the row and column directions.
- The number of tiles in use is ``NumberOfImagesInMosaic``, in the private Siemens CSA image
  header (0029,1010) or in the Siemens MR header (0019,100A).
- Stored tile ``k + 1`` lies one slice step from tile ``k`` along the CSA ``SliceNormalVector``,
  which may point against ``row x column`` (Siemens stores sagittal slices right to left); the step
  is SpacingBetweenSlices (else SliceThickness).

The pipeline needs three pieces, each on plain values: :func:`read_mosaic_info` (headers ->
:class:`MosaicInfo`, or ``None`` for a non-mosaic; it lives in :mod:`fastvol.headers.csa`, since
the header pass reads it into ``HeaderRecord.mosaic``, and is re-exported here with
:func:`parse_csa_header`), and here :func:`demosaic` (pixels, vectorised) and
:func:`mosaic_geometry` (tile order and affine in fastvol's convention: slice 0 furthest along
``n = row x column``, as highdicom.Volume).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .errors import GeometryError
from .geometry import affine_from, unit_vectors
from .headers.csa import (
    CSA_MAX_ITEMS,
    CSA_MAX_TAGS,
    MosaicInfo,
    parse_csa_header,
    read_mosaic_info,
)

__all__ = [
    "CSA_MAX_ITEMS",
    "CSA_MAX_TAGS",
    "NORMAL_TOLERANCE",
    "MosaicInfo",
    "demosaic",
    "mosaic_geometry",
    "parse_csa_header",
    "read_mosaic_info",
]

#: Largest allowed ``1 - |cos|`` between the CSA SliceNormalVector and ``row x column``
#: (about 8 degrees): beyond it the two disagree about the slice plane and the file is suspect.
NORMAL_TOLERANCE = 0.01


# --- pixels and geometry ----------------------------------------------------------------------


def demosaic(mosaics: np.ndarray, info: MosaicInfo) -> np.ndarray:
    """Cut mosaic images into their tiles, in stored order.

    Parameters
    ----------
    mosaics
        ``(..., mosaic_rows, mosaic_cols)`` pixels; leading axes (volumes) are kept.
    info
        The mosaic's tile grid.

    Returns
    -------
    numpy.ndarray
        ``(..., n_images, tile_rows, tile_cols)``: tile ``k`` is the ``k``-th tile row-major
        (``k // tiles_per_side`` down, ``k % tiles_per_side`` across). A new contiguous array.
    """
    arr = np.asarray(mosaics)
    side, r, c = info.tiles_per_side, info.tile_rows, info.tile_cols
    if arr.shape[-2:] != (side * r, side * c):
        raise ValueError(
            f"mosaic pixels of shape {arr.shape[-2:]} do not match the {side}x{side} grid of "
            f"{r}x{c} tiles"
        )
    lead = arr.shape[:-2]
    # (..., side, r, side, c) -> (..., side, side, r, c): tiles row-major, then drop blank tiles.
    tiles = arr.reshape(*lead, side, r, side, c).swapaxes(-3, -2)
    tiles = tiles.reshape(*lead, side * side, r, c)[..., : info.n_images, :, :]
    return np.ascontiguousarray(tiles)


def mosaic_geometry(
    ipp: Sequence[float] | np.ndarray,
    iop: Sequence[float] | np.ndarray,
    pixel_spacing: Sequence[float],
    rows: int,
    cols: int,
    info: MosaicInfo,
    spacing_between_slices: float | None,
    *,
    slice_thickness: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Order of the stored tiles and the ``(slice, row, column)`` -> LPS affine of the volume.

    Parameters
    ----------
    ipp
        ImagePositionPatient of the mosaic (LPS mm): first voxel centre of the whole mosaic.
    iop
        ImageOrientationPatient (row direction, then column direction).
    pixel_spacing
        PixelSpacing (between rows, between columns), mm; the same for mosaic and tiles.
    rows, cols
        Rows and Columns of the mosaic image.
    info
        The tile grid and stored slice direction (:func:`read_mosaic_info`).
    spacing_between_slices
        SpacingBetweenSlices (mm, centre to centre); ``None`` or non-positive to fall back on
        ``slice_thickness``.
    slice_thickness
        SliceThickness (mm), used only without SpacingBetweenSlices (assumes no slice gap).

    Returns
    -------
    order : numpy.ndarray
        ``(n_images,)`` stored tile index of each output slice: ``tiles[..., order, :, :]`` puts
        slice 0 furthest along ``n = row x column`` and the slice index growing along ``-n``.
    affine : numpy.ndarray
        ``(4, 4)`` map from output ``(slice, row, column)`` to LPS mm (as highdicom.Volume).

    Raises
    ------
    BadOrientationError
        ImageOrientationPatient unusable.
    GeometryError
        No usable slice step, a mosaic size that disagrees with ``info``, or a CSA slice normal
        that is not parallel to ``row x column``.
    """
    row, col, normal = unit_vectors(iop)
    if (int(rows), int(cols)) != (info.mosaic_rows, info.mosaic_cols):
        raise GeometryError(
            f"mosaic is {rows}x{cols} but its MosaicInfo describes "
            f"{info.mosaic_rows}x{info.mosaic_cols}"
        )
    spacing = (float(pixel_spacing[0]), float(pixel_spacing[1]))
    step = _slice_step(spacing_between_slices, slice_thickness)
    ascending = _tiles_ascending(info, normal)
    first = _first_tile_position(ipp, row, col, spacing, info)
    n = info.n_images
    stored = np.arange(n)
    if ascending:
        # Stored tiles advance along +n: the last one is furthest along n, so it is slice 0.
        order = stored[::-1].copy()
        origin = first + (n - 1) * step * normal
    else:
        order = stored
        origin = first
    affine = affine_from(origin, -normal * step, row, col, spacing)
    return order, affine


def _slice_step(spacing_between_slices: float | None, slice_thickness: float | None) -> float:
    """Distance between tile centres (mm): SpacingBetweenSlices, else SliceThickness."""
    if spacing_between_slices is not None and spacing_between_slices > 0:
        return float(spacing_between_slices)
    if slice_thickness is not None and slice_thickness > 0:
        return float(slice_thickness)
    raise GeometryError(
        "mosaic has neither SpacingBetweenSlices nor SliceThickness: no slice step",
        spacing_between_slices=spacing_between_slices, slice_thickness=slice_thickness,
    )  # fmt: skip


def _tiles_ascending(info: MosaicInfo, normal: np.ndarray) -> bool:
    """Whether stored tiles advance along ``normal = row x column``.

    The CSA SliceNormalVector decides when present (Siemens stores sagittal slices right to
    left, against ``row x column``); it must be parallel to ``normal`` within
    :data:`NORMAL_TOLERANCE`.
    """
    if info.slice_normal is None:
        return info.ascending
    cosine = float(np.dot(normal, info.slice_normal))
    if 1.0 - abs(cosine) > NORMAL_TOLERANCE:
        raise GeometryError(
            f"CSA SliceNormalVector {list(info.slice_normal)} is not parallel to "
            f"row x column {normal.tolist()} (cos {cosine:.4f})",
            normal=normal, slice_normal=info.slice_normal,
        )  # fmt: skip
    return cosine > 0


def _first_tile_position(
    ipp: Sequence[float] | np.ndarray,
    row: np.ndarray,
    col: np.ndarray,
    spacing: tuple[float, float],
    info: MosaicInfo,
) -> np.ndarray:
    """LPS position of the first voxel of the first stored tile.

    ImagePositionPatient describes the whole mosaic as one big slice; the first tile's first
    voxel lies half the extra mosaic width/height inwards (as dcm2niix and nibabel place it).
    """
    return (
        np.asarray(ipp, dtype=np.float64).reshape(3)
        + row * spacing[1] * (info.mosaic_cols - info.tile_cols) / 2.0
        + col * spacing[0] * (info.mosaic_rows - info.tile_rows) / 2.0
    )
