"""The planner: headers in, :class:`~.types.LoadPlan` out, one step after another.

layout (which record fills which slice of which volume) -> policy (what the options do about
gaps, uneven spacing and tilt) -> sources (the frames to read) -> mosaic (tiles, for mosaic
series) -> values (dtype, rescale, fill) -> report. Each step returns its decisions and
warnings; they are concatenated here in step order.
"""

from __future__ import annotations

import warnings

import numpy as np
from typing import TYPE_CHECKING

from ..errors import FastvolWarning, UnsupportedError
from ..headers.references import SEG_SOP_CLASSES
from ..options import Options
from ..report import GeometryReport
from . import mosaic as mosaic_step
from . import policy, values
from .duplicates import dedupe
from .layout import arrange
from .report import build_meta, build_report, skipped_siblings
from .sources import duplicate_sources, frame_sources
from .types import LoadPlan

if TYPE_CHECKING:
    from ..dicom import HeaderRecord
    from ..group import Series

__all__ = ["describe_series", "make_plan"]


def make_plan(series: Series, options: Options | None = None, *, strict: bool = True) -> LoadPlan:
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
    DuplicateInstanceError
        Files claim one SOPInstanceUID (and frame) but their headers differ.
    """
    options = options or Options()
    name, uid = series.id, series.uid
    if strict and series.records and series.records[0].sop_class_uid in SEG_SOP_CLASSES:
        # A SEG's frames are masks of several segments: stacked as one image they would merge.
        raise UnsupportedError(f"series {name} is a DICOM Segmentation: load it with "
                               f"fastvol.load_segmentation(path, reference=...)",
                               files=[r.path for r in series.records[:3]], uid=uid)  # fmt: skip
    # Copies must agree on headers here; their pixels are compared when a load reads them.
    deduped = dedupe([r for r in series.records if r.has_pixels], name=name, uid=uid)
    records = list(deduped.records)
    info = mosaic_step.detect(records, name)
    fmt = values.pixel_format(records, name)
    for rec in records:
        if rec.frame == 0:
            values.check_bytes(rec, fmt)
    if options.rescale and strict:  # values, not geometry: a report is still possible
        values.check_rescale(records, name)
    layout = arrange(records, deduped.dropped, options, name=name, uid=uid, single_slice=info is None)
    grid = policy.apply(layout, options, strict=strict, name=name, uid=uid)
    for alert in grid.alerts:  # stacklevel 4: the caller of fastvol.load
        warnings.warn(str(alert), FastvolWarning, stacklevel=4)
    frames = frame_sources(layout, grid, rescale=options.rescale)
    geometry, mosaic, decisions = grid.geometry, None, layout.decisions + grid.decisions
    if info is not None:
        tiles = mosaic_step.mosaic_layout(info, layout, fmt)
        geometry, mosaic, decisions = tiles.geometry, tiles.mosaic, decisions + (tiles.decision,)
        frames = frames.per_tile(info.n_images)
    keep_axis = options.select is not None and not isinstance(options.select, int)
    lead = (layout.n_volumes,) if layout.n_volumes > 1 or keep_axis else ()
    channels = (3,) if fmt.is_colour else ()  # colour: a trailing RGB axis
    if channels and (mosaic is not None or grid.resample is not None):
        raise UnsupportedError(f"series {name}: colour images cannot be resampled or cut from "
                               f"mosaics; load without tilt='resample' / irregular='resample'",
                               files=[r.path for r in records[:3]], uid=uid)  # fmt: skip
    shape = lead + geometry.shape + channels
    read_shape = lead + (1 if mosaic else grid.read_slices, fmt.rows, fmt.columns) + channels
    filling = len(frames.sources) < int(np.prod(read_shape[: -2 - len(channels)]))  # slots no frame fills
    palette = _palette(records, name) if fmt.is_palette else None
    vals = values.choose(fmt, frames.slopes, frames.intercepts, options,
                         resampled=grid.resample is not None, filling=filling,
                         palette_dtype=palette.dtype.str if palette is not None else "")  # fmt: skip
    values.check_output_size(shape, vals.dtype, name=name, uid=uid, files=[r.path for r in records])
    report = build_report(
        series, layout, geometry, shape, options,
        decisions=decisions + vals.decisions + skipped_siblings(series),
        warnings=layout.warnings + grid.warnings + vals.warnings,
    )  # fmt: skip
    return LoadPlan(shape=shape, read_shape=read_shape, dtype=vals.dtype.str, pixel=fmt,
                    sources=frames.sources, fill_value=vals.fill_value, resample=grid.resample,
                    affine=geometry.affine, report=report,
                    meta=build_meta(series, layout, fmt, frames, mosaic), mosaic=mosaic,
                    palette=palette, duplicates=duplicate_sources(deduped.pairs, frames))  # fmt: skip


def _palette(records: list[HeaderRecord], name: str) -> np.ndarray:
    """The one palette of a PALETTE COLOR series (every file's is read: they must agree)."""
    from ..headers.palette import read_palette

    tables: dict[str, np.ndarray] = {}
    for rec in records:
        if rec.path not in tables:
            tables[rec.path] = read_palette(rec)
    first, *rest = tables.values()
    different = [p for p, t in tables.items() if t.shape != first.shape or not np.array_equal(t, first)]
    if different:
        raise UnsupportedError(f"series {name}: files carry different palettes (e.g. "
                               f"{different[:3]}); load them separately", files=different[:8])  # fmt: skip
    return first


def describe_series(series: Series, options: Options | None = None) -> GeometryReport:
    """Geometry report of a series from headers alone, without raising for gaps, spacing or tilt."""
    return make_plan(series, options or Options(), strict=False).report
