"""Values: the stored pixel format, byte-count checks, and the output dtype, rescale and fill.

Everything here is decided before any allocation, so a file that declares an absurd size, or
holds fewer bytes than it declares, fails with a typed error instead of a crash or a huge
allocation.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .._frozen import frozen
from ..colour import COLOUR_PHOTOMETRICS, SUBSAMPLED
from ..dicom import NOT_ADDRESSABLE, TS, HeaderRecord
from ..errors import CorruptFileError, InputError, UnsupportedError
from ..options import Options
from ..pixels import FLOAT_BITS, SUPPORTED_BITS_ALLOCATED
from .decisions import Decision
from .types import MAX_FRAME_PIXELS, MAX_OUTPUT_BYTES, PixelFormat

__all__ = [
    "Values",
    "check_bytes",
    "check_output_size",
    "check_rescale",
    "choose",
    "output_dtype",
    "pixel_format",
]


@frozen
class Values:
    """Output dtype and fill value, with the decisions and warnings that explain them."""

    dtype: np.dtype
    fill_value: float
    decisions: tuple[Decision, ...] = ()
    warnings: tuple[Decision, ...] = ()



def _format_text(key: tuple[Any, ...]) -> str:
    rows, columns, samples, allocated, stored, representation, photometric, kind, _ = key
    sign = "signed" if representation else "unsigned"
    return (f"{rows}x{columns}, {samples} sample(s), {allocated} bits allocated / {stored} stored, "
            f"{sign} {kind}, {photometric}")  # fmt: skip

def pixel_format(records: Sequence[HeaderRecord], name: str) -> PixelFormat:
    """The one pixel format of ``records``.

    Raises
    ------
    UnsupportedError
        Files differ in format, colour images, or BitsAllocated other than 8, 16 or 32.
    CorruptFileError
        BitsStored or the frame size is not plausible.
    """
    by_format: dict[tuple[Any, ...], list[str]] = {}
    for r in records:
        key = (r.rows, r.columns, r.samples_per_pixel, r.bits_allocated, r.bits_stored,
               r.pixel_representation, r.photometric_interpretation, r.pixel_kind,
               r.planar_configuration if r.samples_per_pixel > 1 else 0)  # fmt: skip
        by_format.setdefault(key, []).append(r.path)
    formats = set(by_format)
    if len(formats) > 1:
        # Most files first: the odd ones out are named where a reader looks.
        groups = sorted(by_format.items(), key=lambda kv: -len(dict.fromkeys(kv[1])))
        told = "; ".join(
            f"{len(set(paths))} file(s) {_format_text(key)} (e.g. {list(dict.fromkeys(paths))[:3]})"
            for key, paths in groups
        )
        odd = [p for _, paths in groups[1:] for p in dict.fromkeys(paths)]
        raise UnsupportedError(
            f"series {name}: files differ in pixel format: {told}; load them as separate series "
            f"(pass a list of files), or move the odd ones out of the folder",
            files=odd[:20],
        )
    fmt = PixelFormat(*formats.pop())
    first = records[0].path
    if fmt.samples_per_pixel != 1:
        _check_colour(fmt, records, first)
    elif fmt.is_palette and fmt.bits_allocated not in (8, 16):
        raise UnsupportedError(f"{first}: PALETTE COLOR with BitsAllocated {fmt.bits_allocated} is "
                               f"not supported (8 or 16)", files=[first])  # fmt: skip
    if fmt.kind in FLOAT_BITS:
        if fmt.bits_allocated != FLOAT_BITS[fmt.kind]:
            raise CorruptFileError(
                f"{first}: {fmt.kind} pixel data with BitsAllocated {fmt.bits_allocated} "
                f"(the standard says {FLOAT_BITS[fmt.kind]})", files=[first],
            )  # fmt: skip
        # IEEE samples: BitsStored and PixelRepresentation do not apply (often absent).
        return dataclasses.replace(fmt, bits_stored=fmt.bits_allocated, pixel_representation=0)
    if fmt.bits_allocated not in SUPPORTED_BITS_ALLOCATED:
        raise UnsupportedError(
            f"{first}: BitsAllocated {fmt.bits_allocated} is not supported (1, 8, 16 or 32)",
            files=[first],
        )
    if fmt.bits_allocated == 1 and any(r.is_encapsulated for r in records):
        raise UnsupportedError(
            f"{first}: compressed pixel data with BitsAllocated 1 is not supported; "
            f"decompress it first (e.g. dcmdjpeg / gdcmconv --raw)", files=[first],
        )  # fmt: skip
    if fmt.pixel_representation not in (0, 1):  # 0 unsigned, 1 two's complement: nothing else
        raise CorruptFileError(
            f"{first}: PixelRepresentation {fmt.pixel_representation} is neither 0 (unsigned) "
            f"nor 1 (signed)", files=[first],
        )  # fmt: skip
    if not 1 <= fmt.bits_stored <= fmt.bits_allocated:
        raise CorruptFileError(
            f"{first}: BitsStored {fmt.bits_stored} outside 1..BitsAllocated {fmt.bits_allocated}",
            files=[first],
        )
    if fmt.rows <= 0 or fmt.columns <= 0 or fmt.rows * fmt.columns > MAX_FRAME_PIXELS:
        raise CorruptFileError(
            f"{first}: declared frame size {fmt.rows} x {fmt.columns} is not plausible",
            files=[first],
        )
    return fmt


def _check_colour(fmt: PixelFormat, records: Sequence[HeaderRecord], first: str) -> None:
    """Colour fastvol reads: 3 samples of 8 or 16 bits (YBR: 8), RGB or YBR_FULL(_422),
    uncompressed."""
    photometric = fmt.photometric_interpretation
    if fmt.samples_per_pixel != 3 or photometric not in COLOUR_PHOTOMETRICS:
        raise UnsupportedError(
            f"{first}: {fmt.samples_per_pixel} samples per pixel ({photometric}) is not supported "
            f"(3 samples of {', '.join(COLOUR_PHOTOMETRICS)})", files=[first],
        )  # fmt: skip
    if fmt.bits_allocated not in (8, 16) or (photometric != "RGB" and fmt.bits_allocated != 8):
        raise UnsupportedError(f"{first}: {photometric} with BitsAllocated {fmt.bits_allocated} is "
                               f"not supported (RGB 8 or 16 bits, YBR 8 bits)", files=[first])  # fmt: skip
    if photometric in SUBSAMPLED and fmt.columns % 2:
        raise CorruptFileError(f"{first}: {photometric} with an odd number of columns "
                               f"({fmt.columns})", files=[first])  # fmt: skip
    if any(r.transfer_syntax not in TS.UNCOMPRESSED and r.transfer_syntax != TS.DEFLATED_LE
           for r in records):  # fmt: skip
        raise UnsupportedError(
            f"{first}: compressed colour pixel data is not supported yet; decompress it first "
            f"(e.g. gdcmconv --raw)", files=[first],
        )  # fmt: skip


def check_bytes(rec: HeaderRecord, fmt: PixelFormat) -> None:
    """Refuse files whose pixel data is shorter than declared or runs past the file's end."""
    if rec.is_encapsulated or rec.pixel_length == NOT_ADDRESSABLE:
        if rec.is_encapsulated and rec.pixel_offset >= rec.file_size:
            raise CorruptFileError(f"{rec.path}: truncated before its pixel data", files=[rec.path])
        return
    needed = fmt.bytes_for(rec.number_of_frames)
    if rec.pixel_length < needed:
        raise CorruptFileError(
            f"{rec.path}: pixel data holds {rec.pixel_length} bytes but its header promises "
            f"{needed} ({rec.number_of_frames} frame(s) of {fmt.rows}x{fmt.columns}, "
            f"{fmt.bits_allocated} bits)",
            files=[rec.path],
        )
    if rec.pixel_offset + needed > rec.file_size:
        raise CorruptFileError(
            f"{rec.path}: file is truncated: pixel data needs bytes up to {rec.pixel_offset + needed} "
            f"but the file has {rec.file_size}",
            files=[rec.path],
        )


def check_rescale(records: Sequence[HeaderRecord], name: str) -> None:
    """Refuse RescaleSlope 0, or a slope or intercept that is not finite (inf voxels) or not one
    number (text or several values, read as NaN: :data:`~fastvol.headers.convert.INVALID_SCALE`).

    Raises
    ------
    CorruptFileError
        Naming the files with such a slope or intercept.
    """
    # Series share a handful of distinct values: check each once, not once per record.
    slopes = {r.rescale_slope for r in records if r.rescale_slope is not None}
    intercepts = {r.rescale_intercept for r in records if r.rescale_intercept is not None}
    bad_slopes = {v for v in slopes if v == 0 or not math.isfinite(v)}
    bad_intercepts = {v for v in intercepts if not math.isfinite(v)}
    if not bad_slopes and not bad_intercepts:
        return
    bad = [r.path for r in records
           if r.rescale_slope in bad_slopes or r.rescale_intercept in bad_intercepts]  # fmt: skip
    if bad:
        bad = list(dict.fromkeys(bad))  # frames of one multi-frame file: the file once
        raise CorruptFileError(
            f"series {name}: RescaleSlope is 0, not finite or not one number, or RescaleIntercept "
            f"is not finite or not one number, in {len(bad)} file(s) (e.g. {bad[:3]}); pass "
            f"rescale=False for the stored values",
            files=bad,
        )  # fmt: skip


def _value_range(fmt: PixelFormat, slopes: np.ndarray, intercepts: np.ndarray,
                 rescale: bool) -> tuple[float, float]:  # fmt: skip
    """Smallest and largest value the output can hold, from BitsStored and the rescale."""
    lo, hi = fmt.stored_range()
    if not rescale or not len(slopes):
        return float(lo), float(hi)
    ends = np.concatenate([slopes * lo + intercepts, slopes * hi + intercepts])
    return float(ends.min()), float(ends.max())


def _checked_dtype(dtype: np.dtype, fmt: PixelFormat, slopes: np.ndarray, intercepts: np.ndarray,
                   options: Options) -> np.dtype:  # fmt: skip
    """An explicit integer dtype must hold every value the series can have: never wrap silently."""
    if dtype.kind not in "iu":
        return dtype
    if options.rescale and len(slopes):
        fractional = [v for v in np.unique(np.concatenate([slopes, intercepts])) if v != np.round(v)]
        if fractional:  # integer output would truncate the slope: values silently wrong
            raise InputError(
                f"dtype={dtype.name}: this series' rescale is not whole (RescaleSlope/Intercept "
                f"{', '.join(f'{v:g}' for v in fractional[:3])}), so integers cannot hold the "
                f"rescaled values; pass a float dtype, or rescale=False for the stored values"
            )
    vmin, vmax = _value_range(fmt, slopes, intercepts, options.rescale)
    info = np.iinfo(dtype)
    if vmin < info.min or vmax > info.max:
        raise InputError(
            f"dtype={dtype.name} cannot hold this series' values ({vmin:g} to {vmax:g}, from "
            f"BitsStored {fmt.bits_stored} and the rescale); pass a wider dtype or float32"
        )
    return dtype


def _float_dtype(fmt: PixelFormat, options: Options) -> np.dtype:
    """Float pixel data keeps its own float dtype (a rescale, if any, is applied in it)."""
    if options.dtype is None:
        return fmt.stored_dtype
    dtype = np.dtype(options.dtype)
    if dtype.kind != "f":
        raise InputError(f"dtype={dtype.name}: this series holds {fmt.kind} pixel data (float "
                         f"values); pass a float dtype or none")  # fmt: skip
    return dtype


def output_dtype(fmt: PixelFormat, slopes: np.ndarray, intercepts: np.ndarray,
                 options: Options, resampled: bool, palette_dtype: str = "") -> np.dtype:  # fmt: skip
    """The dtype asked for, else the smallest that holds every rescaled value exactly.

    Resampled output is float32 (interpolated values are not whole).
    """
    if fmt.kind != "int":
        return _float_dtype(fmt, options)
    if fmt.is_colour:  # colour has no rescale: the stored (palette entry) dtype, or one asked for
        if options.dtype is not None:
            return np.dtype(options.dtype)
        return np.dtype(palette_dtype) if fmt.is_palette and palette_dtype else fmt.stored_dtype
    if options.dtype is not None:
        return _checked_dtype(np.dtype(options.dtype), fmt, slopes, intercepts, options)
    if not options.rescale:
        return fmt.stored_dtype if not resampled else np.dtype(np.float32)
    if resampled:
        return np.dtype(np.float32)
    whole = np.all(slopes == np.round(slopes)) and np.all(intercepts == np.round(intercepts))
    if not whole:
        return np.dtype(np.float32)
    vmin, vmax = _value_range(fmt, slopes, intercepts, True)
    for candidate in (np.int8, np.int16, np.int32, np.int64):
        info = np.iinfo(candidate)
        if info.min <= vmin and vmax <= info.max:
            return np.dtype(candidate)
    return np.dtype(np.float64)


def choose(fmt: PixelFormat, slopes: Sequence[float], intercepts: Sequence[float],
           options: Options, *, resampled: bool, filling: bool = True,
           palette_dtype: str = "") -> Values:  # fmt: skip
    """Output dtype and fill value of a load, given each frame's slope and intercept.

    ``filling``: some output slices have no frame (gaps filled), so the fill value must fit.
    """
    slopes_arr, icpts_arr = np.array(slopes), np.array(intercepts)
    decisions: list[Decision] = []
    notes: list[Decision] = []
    if np.ptp(slopes_arr) > 0 or np.ptp(icpts_arr) > 0:
        decisions.append(Decision("rescale_per_slice"))
    dtype = output_dtype(fmt, slopes_arr, icpts_arr, options, resampled, palette_dtype)
    if options.fill_value is not None:
        fill = float(options.fill_value)
        if filling and dtype.kind in "iu" and not (
            math.isfinite(fill) and np.iinfo(dtype).min <= fill <= np.iinfo(dtype).max
        ):
            raise InputError(f"fill_value={fill:g} does not fit the output dtype {dtype.name}; "
                             f"pass a value in its range, or dtype='float32'")  # fmt: skip
    elif dtype.kind == "f":
        fill = float("nan")
    else:  # the integer dtype's minimum: a value real data rarely holds
        fill = float(np.iinfo(dtype).min)
    if fmt.photometric_interpretation == "MONOCHROME1":
        notes.append(Decision("monochrome1"))
    if (options.rescale and options.dtype is None and dtype.kind == "f" and not resampled
            and fmt.kind == "int" and not fmt.is_colour):
        decisions.append(Decision("rescale_float"))  # float32 because of the rescale, not asked
    decisions.append(Decision("dtype", dtype=dtype.name, rescale=options.rescale))
    return Values(dtype=dtype, fill_value=fill, decisions=tuple(decisions), warnings=tuple(notes))


def check_output_size(shape: tuple[int, ...], dtype: np.dtype, *, name: str, uid: str,
                      files: Sequence[str]) -> None:  # fmt: skip
    """Refuse an output larger than :data:`MAX_OUTPUT_BYTES` before allocating it."""
    nbytes = int(np.prod(shape)) * dtype.itemsize
    if nbytes > MAX_OUTPUT_BYTES:
        raise CorruptFileError(f"series {name}: output of {shape} would need {nbytes} bytes",
                               files=list(files[:3]), uid=uid)  # fmt: skip
