"""Report: the :class:`~fastvol.report.GeometryReport` and ``meta`` of a load, built from its layout.

Nothing is decided here: the layout, policy, mosaic and values steps have decided, and this
module writes down what they decided and what the files said.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import geometry as geo
from ..dicom import HeaderRecord
from ..numeric import median
from ..options import Options
from ..report import GeometryReport
from .decisions import Decision
from .layout import Layout
from .sources import Frames
from .types import Mosaic, PixelFormat, VolumeGeometry

if TYPE_CHECKING:
    from ..group import Series

__all__ = ["build_meta", "build_report", "skipped", "skipped_siblings"]


def skipped(series: Series, layout: Layout, options: Options) -> tuple[tuple[str, str], ...]:
    """``(file, reason)`` of every file of the series the load leaves out."""
    records = layout.records
    present = {id(records[int(i)]) for i in layout.repeats.table.ravel()}
    not_selected = {id(records[i]) for i in layout.unselected}
    left_out = "incomplete volume" if options.repeats == "split" else "repeated position (repeats='first')"
    return tuple(
        [(r.path, "localizer" if r.is_localizer else "other geometry group") for r in series.siblings]
        + [(r.path, "not selected" if id(r) in not_selected else left_out)
           for r in records if id(r) not in present]
    )  # fmt: skip


def skipped_siblings(series: Series) -> tuple[Decision, ...]:
    """The decision to leave out the other geometry groups of the SeriesInstanceUID, if any."""
    if not series.siblings:
        return ()
    return (Decision("siblings_skipped", n_files=len(series.siblings)),)


def build_report(series: Series, layout: Layout, geometry: VolumeGeometry, shape: tuple[int, ...],
                 options: Options, decisions: tuple[Decision, ...],
                 warnings: tuple[Decision, ...]) -> GeometryReport:  # fmt: skip
    """The geometry report of a load of ``shape`` on the grid ``geometry``."""
    affine = geometry.affine
    place, repeats = layout.place, layout.repeats
    plane, obliquity = geo.orientation_label(place.row, place.col, place.normal)
    steps = np.array(geometry.steps)
    return GeometryReport(
        series=series.id, shape=shape, spacing=geometry.spacing,
        affine=tuple(tuple(float(v) for v in r) for r in affine),
        orientation=geometry.orientation, plane=plane, obliquity=obliquity,
        slice_positions=tuple(-d for d in geometry.distances),
        step_min=float(steps.min()), step_median=median(steps),
        step_max=float(steps.max()), kind=geometry.kind, missing=geometry.missing,
        tilt_deg=geometry.tilt_deg, gantry_tilt_tag=layout.records[0].gantry_tilt,
        residual_mm=geometry.residual_mm,
        handedness="right" if np.linalg.det(affine[:3, :3]) > 0 else "left",
        n_files=series.n_files, volumes_tag=repeats.tag, volumes_values=repeats.values,
        duplicates_dropped=layout.dropped, skipped=skipped(series, layout, options),
        decisions=decisions, warnings=warnings,
    )  # fmt: skip


def build_meta(series: Series, layout: Layout, fmt: PixelFormat, frames: Frames,
               mosaic: Mosaic | None) -> dict[str, Any]:  # fmt: skip
    """Identifiers and per-slice facts of a load (``Volume.meta``)."""
    first = layout.records[0]
    meta: dict[str, Any] = {
        "series_instance_uid": series.uid,
        "study_instance_uid": first.study_instance_uid,
        "frame_of_reference_uid": first.frame_of_reference_uid,
        "series_number": first.series_number,
        "series_description": first.series_description,
        "modality": first.modality,
        "manufacturer": first.manufacturer,
        "photometric_interpretation": fmt.photometric_interpretation,
        "sop_instance_uids": tuple(r.sop_instance_uid for r in frames.records),
        "files": tuple(r.path for r in frames.records),
        "frames": tuple(r.frame for r in frames.records),
        "rescale_slope": frames.slopes, "rescale_intercept": frames.intercepts,
    }  # fmt: skip
    if mosaic is not None:
        meta["mosaic_images"] = mosaic.info.n_images
    if fmt.is_colour:  # the trailing axis, always RGB whatever the file stores
        meta["channels"] = "RGB"
        meta["axes"] = ("slice", "row", "column", "channel")
    if first.units is not None:  # parametric maps (RealWorldValueMapping), RT dose (DoseUnits)
        code, meaning, slope, intercept = first.units
        meta["units"] = code
        if first.modality == "RTDOSE":
            meta["dose_units"] = code
        else:
            meta["real_world_value_mapping"] = {"units": code, "units_meaning": meaning,
                                                "slope": slope, "intercept": intercept}  # fmt: skip
    meta.update(extra_meta(frames.records))
    repeats = layout.repeats
    if repeats.tag:
        meta["volumes_tag"] = repeats.tag
        meta["volumes_values"] = repeats.values
        meta["volumes_by_order"] = repeats.by_order
        # Per-volume acquisition facts a 4D user needs (b-values and gradients, echo and
        # trigger times), from the volume's first slice.
        heads = [layout.record(v, 0) for v in range(layout.n_volumes)]
        meta["b_values"] = tuple(r.diffusion_b_value for r in heads)
        meta["gradients"] = tuple(r.diffusion_gradient for r in heads)
        meta["echo_times"] = tuple(r.echo_time for r in heads)
        meta["trigger_times"] = tuple(r.trigger_time for r in heads)
    return meta


def extra_meta(records: Sequence[HeaderRecord]) -> dict[str, Any]:
    """The ``extra_tags`` values: one value when every slice agrees, else one per slice."""
    if not records or not records[0].extra:
        return {}
    per_record = [dict(r.extra) for r in records]
    out: dict[str, Any] = {}
    for keyword, _ in records[0].extra:
        values = tuple(d.get(keyword) for d in per_record)
        out[keyword] = values[0] if len(set(map(repr, values))) == 1 else values
    return out
