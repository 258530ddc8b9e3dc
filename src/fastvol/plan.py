"""Plan: decide, from headers alone, what a load reads, where each frame goes, and in which dtype.

:func:`make_plan` applies the user's options to the geometry of a :class:`~fastvol.group.Series`:
it raises the typed errors (missing slices, uneven spacing, repeated positions, ...) or records
how the pixels will be filled or resampled. The result, :class:`LoadPlan`, is a frozen value
object of plain data (paths, offsets, lengths, transfer syntaxes, rescale, slot indices): it
pickles, so the library call, the CLI and a DataLoader worker all run the same plan.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from . import geometry as geo
from .errors import (
    BadOrientationError,
    CorruptFileError,
    FastvolWarning,
    GeometryError,
    IrregularSpacingError,
    MissingSlicesError,
    NonCollinearError,
    UnsupportedError,
)
from .headers import NOT_ADDRESSABLE, TS, HeaderRecord
from .report import GeometryReport
from .sources import LocalFile

if TYPE_CHECKING:
    from .group import Series
    from .sources import ByteSource

__all__ = [
    "MAX_FRAME_PIXELS",
    "FrameSource",
    "LoadOptions",
    "LoadPlan",
    "PixelFormat",
    "Resample",
    "describe_series",
    "make_plan",
]  # fmt: skip

#: Largest Rows x Columns x samples accepted for one frame (a 6 KB file can declare 4 GiB).
MAX_FRAME_PIXELS = 1 << 28
#: Largest output accepted, in bytes, before any allocation.
MAX_OUTPUT_BYTES = 1 << 36


@dataclass(frozen=True, slots=True)
class LoadOptions:
    """How a load treats unusual geometry and pixel values; see :func:`fastvol.load`."""

    gaps: Literal["raise", "fill"] = "raise"
    irregular: Literal["raise", "resample"] = "raise"
    tilt: Literal["keep", "resample"] = "keep"
    repeats: Literal["split", "first"] = "split"
    incomplete: Literal["raise", "drop"] = "raise"
    select: int | slice | tuple[int, ...] | None = None
    rescale: bool = True
    dtype: str | None = None
    fill_value: float | None = None
    spacing_rtol: float = geo.SPACING_RTOL
    orientation_tolerance: float = geo.ORIENTATION_TOLERANCE
    position_rtol: float = geo.POSITION_RTOL
    tilt_tolerance_deg: float = geo.TILT_TOLERANCE_DEG

    def __post_init__(self) -> None:
        allowed = {"gaps": ("raise", "fill"), "irregular": ("raise", "resample"),
                   "tilt": ("keep", "resample"), "repeats": ("split", "first"),
                   "incomplete": ("raise", "drop")}  # fmt: skip
        from .errors import InputError

        for name, values in allowed.items():
            if getattr(self, name) not in values:
                raise InputError(f"{name}={getattr(self, name)!r}: expected one of {values}")
        if self.fill_value is not None:
            try:
                float(self.fill_value)
            except (TypeError, ValueError):
                raise InputError(f"fill_value={self.fill_value!r}: expected a number") from None


@dataclass(frozen=True, slots=True)
class PixelFormat:
    """Stored pixel layout shared by every frame of a series."""

    rows: int
    columns: int
    samples_per_pixel: int
    bits_allocated: int
    bits_stored: int
    pixel_representation: int
    photometric_interpretation: str

    @property
    def stored_dtype(self) -> np.dtype:
        """Native dtype of one stored sample (``int16`` for signed 16-bit, ...)."""
        kind = "i" if self.pixel_representation else "u"
        return np.dtype(f"{kind}{self.bits_allocated // 8}")

    @property
    def frame_bytes(self) -> int:
        """Bytes of one uncompressed frame."""
        return self.rows * self.columns * self.samples_per_pixel * (self.bits_allocated // 8)

    def stored_range(self) -> tuple[int, int]:
        """Smallest and largest value a stored sample can hold after masking to BitsStored."""
        if self.pixel_representation:
            return -(1 << (self.bits_stored - 1)), (1 << (self.bits_stored - 1)) - 1
        return 0, (1 << self.bits_stored) - 1


@dataclass(frozen=True, slots=True)
class FrameSource:
    """One frame to read: where its bytes are and which output slot it fills.

    ``slot`` indexes the output flattened over its leading axes: ``volume * n_slices + slice``.
    ``pixel_offset`` is the PixelData value offset (uncompressed: the frame starts at
    ``pixel_offset + frame * frame_bytes``); ``-1`` with ``pixel_length == -2`` means pydicom must
    read the pixels (deflated files).
    """

    path: str
    slot: int
    transfer_syntax: str
    source: ByteSource = field(compare=False, repr=False)
    pixel_offset: int
    pixel_length: int
    file_size: int
    frame: int = 0
    n_frames: int = 1
    slope: float = 1.0
    intercept: float = 0.0
    extended_offsets: tuple[tuple[int, ...], tuple[int, ...]] | None = None


@dataclass(frozen=True, slots=True)
class Resample:
    """Resampling applied after reading, onto the regular orthogonal output grid.

    Attributes
    ----------
    slice_index
        Fractional output-grid index of each acquired slice along the normal (irregular spacing);
        empty when slices are already on the grid.
    shift
        In-plane shift per unit of slice index, ``(rows, columns)`` in pixels, that undoes the
        shear of a tilted stack; ``(0, 0)`` when not tilted.
    n_slices
        Slices of the output grid.
    """

    slice_index: tuple[float, ...]
    shift: tuple[float, float]
    n_slices: int


@dataclass(frozen=True, slots=True)
class Mosaic:
    """Cut each read mosaic image into ``info.n_images`` tiles, then reorder them by ``order``."""

    info: Any  # fastvol.mosaic.MosaicInfo (imported lazily: plain picklable values)
    order: tuple[int, ...]


@dataclass(frozen=True, eq=False)
class LoadPlan:
    """Everything a load does, decided from headers: frozen, plain, picklable."""

    shape: tuple[int, ...]
    read_shape: tuple[int, ...]
    dtype: str
    pixel: PixelFormat
    sources: tuple[FrameSource, ...]
    fill_value: float
    resample: Resample | None
    affine: np.ndarray
    report: GeometryReport
    meta: dict[str, Any] = field(default_factory=dict)
    mosaic: Mosaic | None = None

    @property
    def all_uncompressed(self) -> bool:
        """True when every frame can be read straight from its offset."""
        return all(s.transfer_syntax in TS.UNCOMPRESSED and s.pixel_offset >= 0 for s in self.sources)


def _select_volumes(select: int | slice | tuple[int, ...], n_volumes: int, name: str) -> np.ndarray:
    """Volume indices chosen by ``select`` (numpy indexing rules), or a typed error."""
    from .errors import InputError

    try:
        chosen = np.arange(n_volumes)[select if not isinstance(select, tuple) else list(select)]
    except (IndexError, TypeError) as exc:
        raise InputError(f"series {name}: select={select!r} does not index its {n_volumes} "
                         f"volume(s) ({exc})") from None  # fmt: skip
    chosen = np.atleast_1d(chosen)
    if chosen.size == 0:
        raise InputError(f"series {name}: select={select!r} chooses none of its {n_volumes} volumes")
    return chosen


def _mosaic_info(records: list[HeaderRecord], name: str) -> Any:
    """The tile grid of a Siemens mosaic series (``None`` for other series)."""
    mosaic = [r for r in records if "MOSAIC" in (v.upper() for v in r.image_type)]
    if not mosaic:
        return None
    info = mosaic[0].mosaic  # read in the header pass (fastvol.headers.csa)
    if info is None:
        from .mosaic import read_mosaic_info

        first = mosaic[0]
        info = read_mosaic_info(first.source if first.source is not None else LocalFile(first.path))
    if info is None or len(mosaic) != len(records):
        raise UnsupportedError(
            f"series {name}: ImageType MOSAIC on {len(mosaic)} of {len(records)} files, but no "
            f"usable mosaic description (CSA NumberOfImagesInMosaic); cannot cut the tiles",
            files=[r.path for r in mosaic[:8]],
        )  # fmt: skip
    return info


def _first(values: list[Any]) -> Any:
    return values[0] if values else None


def _pixel_format(records: list[HeaderRecord], name: str) -> PixelFormat:
    formats = {
        (r.rows, r.columns, r.samples_per_pixel, r.bits_allocated, r.bits_stored,
         r.pixel_representation, r.photometric_interpretation)
        for r in records
    }  # fmt: skip
    if len(formats) > 1:
        raise UnsupportedError(
            f"series {name}: files differ in pixel format {sorted(formats)}; load them as "
            f"separate series (pass a list of files)",
            files=[r.path for r in records][:8],
        )
    fmt = PixelFormat(*formats.pop())
    first = records[0].path
    if fmt.samples_per_pixel != 1:
        raise UnsupportedError(
            f"{first}: {fmt.samples_per_pixel} samples per pixel ({fmt.photometric_interpretation}); "
            f"colour images are not supported yet",
            files=[first],
        )
    if fmt.bits_allocated not in (8, 16, 32):
        raise UnsupportedError(
            f"{first}: BitsAllocated {fmt.bits_allocated} is not supported (8, 16 or 32)",
            files=[first],
        )
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


def _check_bytes(rec: HeaderRecord, fmt: PixelFormat) -> None:
    """Refuse files whose pixel data is shorter than declared or runs past the file's end."""
    if rec.is_encapsulated or rec.pixel_length == NOT_ADDRESSABLE:
        if rec.is_encapsulated and rec.pixel_offset >= rec.file_size:
            raise CorruptFileError(f"{rec.path}: truncated before its pixel data", files=[rec.path])
        return
    needed = fmt.frame_bytes * rec.number_of_frames
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


def _output_dtype(fmt: PixelFormat, slopes: np.ndarray, intercepts: np.ndarray,
                  options: LoadOptions, resampled: bool) -> np.dtype:  # fmt: skip
    if options.dtype is not None:
        return np.dtype(options.dtype)
    if not options.rescale:
        return fmt.stored_dtype if not resampled else np.dtype(np.float32)
    if resampled:
        return np.dtype(np.float32)
    whole = np.all(slopes == np.round(slopes)) and np.all(intercepts == np.round(intercepts))
    if not whole:
        return np.dtype(np.float32)
    lo, hi = fmt.stored_range()
    ends = np.concatenate([slopes * lo + intercepts, slopes * hi + intercepts])
    vmin, vmax = float(ends.min()), float(ends.max())
    for candidate in (np.int8, np.int16, np.int32, np.int64):
        info = np.iinfo(candidate)
        if info.min <= vmin and vmax <= info.max:
            return np.dtype(candidate)
    return np.dtype(np.float64)


def _dedupe(records: list[HeaderRecord]) -> tuple[list[HeaderRecord], list[str]]:
    seen: dict[tuple[str, int], HeaderRecord] = {}
    dropped: list[str] = []
    for rec in sorted(records, key=lambda r: (r.path, r.frame)):
        key = (rec.sop_instance_uid or rec.path, rec.frame)
        if key in seen:
            dropped.append(rec.path)
        else:
            seen[key] = rec
    return list(seen.values()), dropped


def make_plan(series: Series, options: LoadOptions | None = None, *, strict: bool = True) -> LoadPlan:
    """Plan the load of one series.

    Parameters
    ----------
    series
        A stackable series (from :func:`fastvol.scan`).
    options
        Load options; defaults raise on gaps, uneven spacing and ambiguous repeats.
    strict
        False to describe the series without raising for gaps, uneven spacing or tilt (used by
        ``Series.geometry``); errors that leave no geometry to describe still raise.

    Raises
    ------
    GeometryError
        Subclasses name the files and the option that loads the series anyway.
    UnsupportedError, CorruptFileError
        Pixel formats fastvol cannot read, or sizes the files cannot hold.
    """
    options = options or LoadOptions()
    name = series.id
    records, dropped = _dedupe([r for r in series.records if r.has_pixels])
    decisions: list[str] = []
    notes: list[str] = []
    if dropped:
        decisions.append(f"dropped {len(dropped)} duplicate instance(s) (same SOPInstanceUID)")
    if any(r.number_of_frames > 1 for r in records):
        decisions.append(f"{sum(r.number_of_frames > 1 for r in records if r.frame == 0)} "
                         f"multi-frame file(s): frames placed by their own geometry")  # fmt: skip
    mosaic_info = _mosaic_info(records, name)
    fmt = _pixel_format(records, name)
    for rec in records:
        if rec.frame == 0:
            _check_bytes(rec, fmt)
    lacking = [r.path for r in records if r.image_position is None]
    if lacking:
        raise GeometryError(
            f"series {name}: {len(lacking)} file(s) have no usable ImagePositionPatient, so slices "
            f"cannot be placed in patient space (projection images such as DX/CR/XA have no "
            f"plane geometry; fastvol does not invent one) (e.g. {lacking[:3]})",
            files=lacking, uid=series.uid,
        )  # fmt: skip
    orientations = {r.image_orientation for r in records}
    if None in orientations:
        bad = [r.path for r in records if r.image_orientation is None]
        raise BadOrientationError(
            f"series {name}: {len(bad)} file(s) have no usable ImageOrientationPatient "
            f"(e.g. {bad[:3]})", files=bad, uid=series.uid,
        )  # fmt: skip
    orientation = np.mean(np.array([r.image_orientation for r in records], dtype=np.float64), axis=0)
    spacing_values = {r.pixel_spacing for r in records}
    if None in spacing_values:
        pixel_spacing = (1.0, 1.0)
        notes.append("PixelSpacing missing: in-plane spacing taken as 1 mm")
    else:
        pixel_spacing = tuple(np.mean(np.array(list(spacing_values)), axis=0).tolist())  # type: ignore[assignment]
    try:
        row, col, normal = geo.unit_vectors(orientation, tolerance=options.orientation_tolerance)
    except BadOrientationError as exc:
        raise BadOrientationError(f"series {name}: {exc.message}", files=[records[0].path],
                                  uid=series.uid) from None  # fmt: skip
    files = [r.path for r in records]
    # For messages: multi-frame files name the frame too.
    labels = [r.path if r.number_of_frames == 1 else f"{r.path} [frame {r.frame}]" for r in records]
    positions = np.array([r.image_position for r in records], dtype=np.float64)
    distances = positions @ normal

    # Repeated positions: split into volumes by a tag, or keep the first per position.
    if options.repeats == "first":
        at = geo.position_clusters(distances)
        inst = np.array([r.instance_number if r.instance_number is not None else 0 for r in records])
        keep: dict[int, int] = {}
        for i in np.lexsort((inst, at)):
            keep.setdefault(int(at[i]), int(i))
        if len(keep) < len(records):
            decisions.append(f"repeats='first': kept 1 of each repeated position, "
                             f"skipped {len(records) - len(keep)} files")  # fmt: skip
        table = np.array([[keep[p] for p in sorted(keep)]], dtype=np.int64)
        repeats = geo.Repeats(tag=None, values=(), table=table, position_of=at)
    else:
        tags, order_tags = _repeat_tags(records, distances)
        try:
            repeats = geo.split_repeats(distances, tags, order_tags=order_tags, files=files,
                                        incomplete=options.incomplete)  # fmt: skip
        except geo.RepeatedPositionsError as exc:
            raise type(exc)(f"series {name}: {exc.message}", files=exc.files, uid=series.uid,
                            **exc._data) from None  # fmt: skip
    n_volumes = repeats.table.shape[0]
    unselected: list[int] = []
    if options.select is not None:
        chosen = _select_volumes(options.select, n_volumes, name)
        unselected = [int(i) for v in sorted(set(range(n_volumes)) - set(chosen.tolist()))
                      for i in repeats.table[v]]  # fmt: skip
        repeats = dataclasses.replace(
            repeats, table=repeats.table[chosen],
            values=tuple(repeats.values[i] for i in chosen) if repeats.values else (),
        )  # fmt: skip
        decisions.append(f"select={options.select!r}: volumes {chosen.tolist()[:16]} of "
                         f"{n_volumes}; the others are not read")  # fmt: skip
        n_volumes = len(chosen)
    if repeats.tag and repeats.by_order:
        decisions.append(f"positions repeat {n_volumes} times and no tag tells the volumes apart: "
                         f"volumes inferred from acquisition order ({repeats.tag} within each "
                         f"position)")  # fmt: skip
    elif repeats.tag:
        decisions.append(f"positions repeat {n_volumes} times: split into volumes by "
                         f"{repeats.tag} {list(repeats.values)[:8]}")  # fmt: skip
    if repeats.dropped:
        decisions.append(f"incomplete='drop': {len(repeats.dropped)} frame(s) of incomplete "
                         f"volumes left out")  # fmt: skip
    first_volume = repeats.table[0]
    single_step: tuple[float, str] | None = None
    if first_volume.size == 1 and mosaic_info is None:
        rec = records[int(first_volume[0])]
        if rec.spacing_between_slices:
            single_step = (abs(rec.spacing_between_slices), "SpacingBetweenSlices")
        elif rec.slice_thickness:
            single_step = (abs(rec.slice_thickness), "SliceThickness")
        else:
            single_step = (1.0, "default 1 mm")
        decisions.append(f"one slice: slice step {single_step[0]:g} mm from {single_step[1]}")
    stack = geo.analyze_stack(positions[first_volume], orientation, pixel_spacing,
                              single_slice_step=single_step,
                              spacing_rtol=options.spacing_rtol,
                              orientation_tolerance=options.orientation_tolerance)  # fmt: skip
    sorted_files = [files[int(first_volume[i])] for i in stack.order]
    sorted_labels = [labels[int(first_volume[i])] for i in stack.order]

    resample: Resample | None = None
    n_slices = stack.n_slots
    slot_of = stack.slots
    affine = stack.affine
    voxel = min(min(pixel_spacing), abs(stack.step) or 1.0)
    if stack.residual > options.position_rtol * voxel:
        raise NonCollinearError(
            f"series {name}: slice positions lie up to {stack.residual:.3g} mm off one line "
            f"(tolerance {options.position_rtol * voxel:.3g} mm), so no single affine describes "
            f"them; pass position_rtol= to accept it",
            files=sorted_files, uid=series.uid, residual=stack.residual,
        )  # fmt: skip
    if stack.kind == "gaps":
        missing = stack.missing
        if options.gaps == "raise" and strict:
            before = np.searchsorted(stack.slots, missing) - 1
            pairs = sorted({(sorted_labels[b], sorted_labels[b + 1]) for b in before})
            raise MissingSlicesError(
                f"series {name}: {missing.size} slice(s) missing from a regular grid of step "
                f"{stack.step:.4g} mm (grid indices {missing.tolist()[:20]}); gaps between "
                f"{pairs[:5]}; pass gaps='fill' to load it with the missing slices filled",
                files=list(dict.fromkeys(sorted_files[i] for b in before for i in (b, b + 1))),
                uid=series.uid,
                positions=stack.distances, expected_spacing=stack.step, missing=missing,
            )  # fmt: skip
        if options.gaps == "fill":
            decisions.append(f"gaps='fill': {missing.size} missing slice(s) at grid indices "
                             f"{missing.tolist()[:20]} filled")  # fmt: skip
        else:
            notes.append(f"{missing.size} slice(s) missing at grid indices {missing.tolist()[:20]}: "
                         f"a load raises unless gaps='fill'")  # fmt: skip
    elif stack.kind == "irregular" and options.irregular == "raise" and not strict:
        n_slices = len(stack.order)
        slot_of = np.arange(n_slices)
        notes.append(f"uneven slice steps {np.unique(np.round(stack.steps, 4)).tolist()[:12]} mm: "
                     f"a load raises unless irregular='resample'; affine uses the mean step")  # fmt: skip
    elif stack.kind == "irregular":
        if options.irregular == "raise":
            raise IrregularSpacingError(
                f"series {name}: slice steps along the normal differ and are not whole multiples "
                f"of one step: {np.unique(np.round(stack.steps, 4)).tolist()[:12]} mm; pass "
                f"irregular='resample' to resample linearly onto a regular grid",
                files=sorted_files, uid=series.uid, spacings=stack.steps,
            )  # fmt: skip
        step = float(np.median(stack.steps))
        extent = float(stack.distances[-1] - stack.distances[0])
        n_slices = int(np.ceil(extent / step - 1e-9)) + 1  # no coarser than the median step
        grid_step = extent / (n_slices - 1)
        rel = (stack.distances - stack.distances[0]) / grid_step
        along = float(stack.step_vector @ stack.axis)
        step_vector = stack.step_vector * (grid_step / along)
        affine = geo.affine_from(stack.origin, step_vector, row, col, pixel_spacing)
        resample = Resample(slice_index=tuple(rel.tolist()), shift=(0.0, 0.0), n_slices=n_slices)
        slot_of = np.arange(len(stack.order))
        decisions.append(f"irregular='resample': {len(stack.order)} slices resampled linearly "
                         f"onto {n_slices} slices of {grid_step:.4g} mm")  # fmt: skip
    tilted = stack.tilt_deg > options.tilt_tolerance_deg
    if tilted:
        along = float(affine[:3, 0] @ stack.axis)
        lean = affine[:3, 0] - along * stack.axis
        if options.tilt == "resample":
            shift = (float(lean @ col) / pixel_spacing[0], float(lean @ row) / pixel_spacing[1])
            base = resample or Resample(slice_index=(), shift=(0.0, 0.0), n_slices=n_slices)
            resample = Resample(slice_index=base.slice_index, shift=shift, n_slices=n_slices)
            affine = affine.copy()
            affine[:3, 0] = along * stack.axis
            decisions.append(f"tilt='resample': {stack.tilt_deg:.3f} deg shear removed by "
                             f"shifting each slice in-plane; affine is orthogonal")  # fmt: skip
        else:
            msg = (f"series {name}: stack leans {stack.tilt_deg:.3f} deg off the slice normal "
                   f"(gantry tilt); pixels kept, affine is sheared; pass tilt='resample' for an "
                   f"orthogonal grid")  # fmt: skip
            notes.append(msg)
            if strict:
                warnings.warn(msg, FastvolWarning, stacklevel=4)

    # Sources: volume v, position p -> slot v * n_slices + slot_of[p].
    sources: list[FrameSource] = []
    slopes, intercepts = [], []
    for v in range(n_volumes):
        volume = repeats.table[v]
        for p_sorted, p_input in enumerate(stack.order):
            rec = records[int(volume[p_input])]
            slope = rec.rescale_slope if (options.rescale and rec.rescale_slope is not None) else 1.0
            icpt = (rec.rescale_intercept
                    if (options.rescale and rec.rescale_intercept is not None) else 0.0)  # fmt: skip
            slopes.append(slope)
            intercepts.append(icpt)
            sources.append(FrameSource(
                path=rec.path, slot=v * (len(stack.order) if resample and resample.slice_index
                                         else n_slices) + int(slot_of[p_sorted]),
                transfer_syntax=rec.transfer_syntax, pixel_offset=rec.pixel_offset,
                source=rec.source if rec.source is not None else LocalFile(rec.path),
                pixel_length=rec.pixel_length, file_size=rec.file_size,
                frame=rec.frame, n_frames=rec.number_of_frames,
                slope=float(slope), intercept=float(icpt), extended_offsets=rec.extended_offsets,
            ))  # fmt: skip
    ordered_records = [records[int(repeats.table[v][p])] for v in range(n_volumes) for p in stack.order]
    mosaic: Mosaic | None = None
    shape_rows, shape_cols = fmt.rows, fmt.columns
    if mosaic_info is not None:
        # Each file is one whole volume: the plan reads the mosaics, stack cuts them into tiles.
        from .mosaic import mosaic_geometry

        rec = ordered_records[0]
        assert rec.image_position is not None  # checked above for every record
        order, affine = mosaic_geometry(
            rec.image_position, orientation, pixel_spacing, fmt.rows, fmt.columns, mosaic_info,
            rec.spacing_between_slices, slice_thickness=rec.slice_thickness,
        )  # fmt: skip
        n_tiles = mosaic_info.n_images
        index = np.c_[np.arange(n_tiles), np.zeros((n_tiles, 2)), np.ones(n_tiles)]
        stack = geo.analyze_stack((affine @ index.T).T[:, :3], orientation, pixel_spacing)
        n_slices, shape_rows, shape_cols = n_tiles, mosaic_info.tile_rows, mosaic_info.tile_cols
        mosaic = Mosaic(info=mosaic_info, order=tuple(int(i) for i in order))
        ordered_records = [r for r in ordered_records for _ in range(n_tiles)]
        slopes = [x for x in slopes for _ in range(n_tiles)]
        intercepts = [x for x in intercepts for _ in range(n_tiles)]
        decisions.append(f"Siemens mosaic: {n_tiles} slices of {shape_rows}x{shape_cols} cut from "
                         f"each {fmt.rows}x{fmt.columns} image ({mosaic_info.n_images_source}); "
                         f"positions corrected from the mosaic corner, stored "
                         f"{'ascending' if mosaic_info.ascending else 'descending'} along the "
                         f"normal")  # fmt: skip
    slopes_arr, icpts_arr = np.array(slopes), np.array(intercepts)
    if np.ptp(slopes_arr) > 0 or np.ptp(icpts_arr) > 0:
        decisions.append("rescale slope/intercept vary per slice: applied per slice")
    out_dtype = _output_dtype(fmt, slopes_arr, icpts_arr, options, resample is not None)
    if options.fill_value is not None:
        fill = float(options.fill_value)
    elif out_dtype.kind == "f":
        fill = float("nan")
    else:
        fill = float(np.iinfo(out_dtype).min)
    keep_axis = options.select is not None and not isinstance(options.select, int)
    lead = (n_volumes,) if n_volumes > 1 or keep_axis else ()
    shape = lead + (n_slices, shape_rows, shape_cols)
    read_slices = len(stack.order) if (resample and resample.slice_index) else n_slices
    read_shape = lead + (1 if mosaic else read_slices, fmt.rows, fmt.columns)
    nbytes = int(np.prod(shape)) * out_dtype.itemsize
    if nbytes > MAX_OUTPUT_BYTES:
        raise CorruptFileError(f"series {name}: output of {shape} would need {nbytes} bytes",
                               files=files[:3], uid=series.uid)  # fmt: skip
    if fmt.photometric_interpretation == "MONOCHROME1":
        notes.append("MONOCHROME1: values returned as modality values, not inverted for display")
    if options.rescale and out_dtype.kind == "f" and not resample:
        decisions.append("rescale slope or intercept not whole: output float32")
    decisions.append(f"output dtype {out_dtype.name}"
                     + ("" if options.rescale else " (stored values, rescale=False)"))  # fmt: skip
    present = set(id(records[int(i)]) for i in repeats.table.ravel())
    not_selected = set(id(records[i]) for i in unselected)
    skipped = [(r.path, "localizer" if r.is_localizer else "other geometry group")
               for r in series.siblings] + [
        (r.path, "not selected" if id(r) in not_selected
         else "incomplete volume" if options.repeats == "split"
         else "repeated position (repeats='first')")
        for r in records if id(r) not in present]  # fmt: skip
    if series.siblings:
        decisions.append(f"skipped {len(series.siblings)} file(s) of the same SeriesInstanceUID "
                         f"with other geometry (localizers or other orientations)")  # fmt: skip
    steps = stack.steps if stack.steps.size else np.array([stack.step])
    spacing3 = tuple(float(v) for v in np.linalg.norm(affine[:3, :3], axis=0))
    plane, obliquity = geo.orientation_label(row, col, normal)
    report = GeometryReport(
        series=name, shape=shape, spacing=spacing3,  # type: ignore[arg-type]
        affine=tuple(tuple(float(v) for v in r) for r in affine),
        orientation=tuple(float(v) for v in orientation), plane=plane, obliquity=obliquity,
        slice_positions=tuple(-float(d) for d in stack.distances),
        step_min=float(steps.min()), step_median=float(np.median(steps)),
        step_max=float(steps.max()), kind=stack.kind,
        missing=tuple(int(m) for m in stack.missing) if stack.kind == "gaps" else (),
        tilt_deg=stack.tilt_deg, gantry_tilt_tag=_first([r.gantry_tilt for r in records]),
        residual_mm=stack.residual,
        handedness="right" if np.linalg.det(affine[:3, :3]) > 0 else "left",
        n_files=series.n_files, volumes_tag=repeats.tag, volumes_values=repeats.values,
        duplicates_dropped=tuple(dropped), skipped=tuple(skipped), decisions=tuple(decisions),
        warnings=tuple(notes),
    )  # fmt: skip
    first = records[0]
    meta: dict[str, Any] = {
        "series_instance_uid": series.uid,
        "study_instance_uid": first.study_instance_uid,
        "frame_of_reference_uid": first.frame_of_reference_uid,
        "series_number": first.series_number,
        "series_description": first.series_description,
        "modality": first.modality,
        "manufacturer": first.manufacturer,
        "photometric_interpretation": fmt.photometric_interpretation,
        "sop_instance_uids": tuple(r.sop_instance_uid for r in ordered_records),
        "files": tuple(r.path for r in ordered_records),
        "frames": tuple(r.frame for r in ordered_records),
        "rescale_slope": tuple(slopes), "rescale_intercept": tuple(intercepts),
    }  # fmt: skip
    if mosaic is not None:
        meta["mosaic_images"] = mosaic.info.n_images
    if repeats.tag:
        meta["volumes_tag"] = repeats.tag
        meta["volumes_values"] = repeats.values
        meta["volumes_by_order"] = repeats.by_order
        # Per-volume acquisition facts a 4D user needs (b-values and gradients, echo and
        # trigger times), from the volume's first slice.
        heads = [records[int(repeats.table[v][stack.order[0]])] for v in range(n_volumes)]
        meta["b_values"] = tuple(r.diffusion_b_value for r in heads)
        meta["gradients"] = tuple(r.diffusion_gradient for r in heads)
        meta["echo_times"] = tuple(r.echo_time for r in heads)
        meta["trigger_times"] = tuple(r.trigger_time for r in heads)
    return LoadPlan(shape=shape, read_shape=read_shape, dtype=out_dtype.str, pixel=fmt,
                    sources=tuple(sources), fill_value=fill, resample=resample, affine=affine,
                    report=report, meta=meta, mosaic=mosaic)  # fmt: skip


def _repeat_tags(records: list[HeaderRecord], distances: np.ndarray
                 ) -> tuple[dict[str, list[Any]], dict[str, list[Any]]]:  # fmt: skip
    """Candidate tags telling volumes apart (by value), then those giving acquisition order."""
    diffusion = [
        None if r.diffusion_b_value is None else (r.diffusion_b_value, r.diffusion_gradient or ())
        for r in records
    ]
    tags: dict[str, list[Any]] = {
        "TemporalPositionIdentifier": [r.temporal_position_identifier for r in records],
        "TriggerTime": [r.trigger_time for r in records],
        "AcquisitionNumber": [r.acquisition_number for r in records],
        "EchoNumbers": [r.echo_number for r in records],
        "EchoTime": [r.echo_time for r in records],
        "DiffusionBValue": [r.diffusion_b_value for r in records],
        "Diffusion (b-value, gradient)": diffusion,
    }
    dims = _non_spatial_dimensions(records, distances)
    if dims is not None:
        tags["DimensionIndexValues"] = dims
    # Several tags together (multi-echo time series, ...): volumes ordered by the tuple.
    varying = [k for k, v in tags.items() if None not in v and len(set(v)) > 1]
    if len(varying) > 1:
        tags[" + ".join(varying)] = [tuple(tags[k][i] for k in varying) for i in range(len(records))]
    order_tags: dict[str, list[Any]] = {
        "AcquisitionNumber": [r.acquisition_number for r in records],
        "AcquisitionTime": [r.acquisition_time or None for r in records],
        "InstanceNumber": [r.instance_number for r in records],
    }
    return tags, order_tags


def _non_spatial_dimensions(records: list[HeaderRecord], distances: np.ndarray) -> list[Any] | None:
    """DimensionIndexValues without the components that follow the slice position."""
    dims = [r.dimension_index for r in records]
    if not dims[0] or any(len(d) != len(dims[0]) for d in dims):
        return None
    labels = geo.position_clusters(distances)
    arr = np.array(dims)
    keep = []
    for j in range(arr.shape[1]):
        column = arr[:, j]
        per_position = {int(lab): set() for lab in labels}  # type: dict[int, set[int]]
        for lab, value in zip(labels, column):
            per_position[int(lab)].add(int(value))
        spatial = all(len(v) == 1 for v in per_position.values()) and len(set(column)) > 1
        if not spatial:
            keep.append(j)
    if not keep:
        return None
    return [tuple(int(v) for v in row[keep]) for row in arr]


def describe_series(series: Series) -> GeometryReport:
    """Geometry report of a series from headers alone, without raising for gaps, spacing or tilt."""
    return make_plan(series, LoadOptions(), strict=False).report

