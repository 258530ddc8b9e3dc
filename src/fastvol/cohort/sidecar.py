"""JSON sidecars in BIDS style (``-b y``), from the one header scan and the load's report.

Field names and units follow BIDS where it has them (times in seconds, angles in degrees, field
strength in tesla) and dcm2niix's habit elsewhere; a field is written only when the headers
hold it. Attributes the header record does not carry are read by the same scan through
``extra_tags`` (:data:`SIDECAR_TAGS`): there is no second header parser. The ``fastvol`` block
holds the geometry as fastvol found and decided it (decisions as code and facts, tilt, gaps,
skipped files), the same facts the report line carries.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..dicom import HeaderRecord
    from ..group import Series
    from ..report import GeometryReport

__all__ = ["SIDECAR_TAGS", "geometry_block", "sidecar", "tm_seconds"]

#: Attributes read by the scan for sidecars, beyond the header record's own fields.
SIDECAR_TAGS = (
    "ManufacturerModelName", "SoftwareVersions", "StationName", "BodyPartExamined",
    "MagneticFieldStrength", "ImagingFrequency", "RepetitionTime", "InversionTime", "FlipAngle",
    "InPlanePhaseEncodingDirection", "ScanningSequence", "SequenceVariant", "SequenceName",
    "PixelBandwidth", "KVP", "XRayTubeCurrent", "Exposure", "ExposureTime", "CTDIvol",
    "ConvolutionKernel",
)  # fmt: skip

#: BIDS name <- (DICOM keyword, factor to BIDS units). ms -> s where BIDS wants seconds.
_SCALARS: tuple[tuple[str, str, float], ...] = (
    ("ManufacturersModelName", "ManufacturerModelName", 1.0),
    ("SoftwareVersions", "SoftwareVersions", 1.0),
    ("StationName", "StationName", 1.0),
    ("BodyPartExamined", "BodyPartExamined", 1.0),
    ("MagneticFieldStrength", "MagneticFieldStrength", 1.0),
    ("ImagingFrequency", "ImagingFrequency", 1.0),
    ("RepetitionTime", "RepetitionTime", 1e-3),
    ("InversionTime", "InversionTime", 1e-3),
    ("FlipAngle", "FlipAngle", 1.0),
    ("ScanningSequence", "ScanningSequence", 1.0),
    ("SequenceVariant", "SequenceVariant", 1.0),
    ("SequenceName", "SequenceName", 1.0),
    ("PixelBandwidth", "PixelBandwidth", 1.0),
    ("KVP", "KVP", 1.0),  # kV
    ("XRayTubeCurrent", "XRayTubeCurrent", 1.0),  # mA
    ("XRayExposure", "Exposure", 1.0),  # mAs
    ("ExposureTime", "ExposureTime", 1e-3),  # CT: ms in DICOM, s here
    ("CTDIvol", "CTDIvol", 1.0),  # mGy
    ("ConvolutionKernel", "ConvolutionKernel", 1.0),
)


def tm_seconds(tm: str) -> float | None:
    """A DICOM TM (``HHMMSS.ffffff``, or with colons) as seconds after midnight."""
    text = tm.strip().replace(":", "")
    if len(text) < 2 or not text[:2].isdigit():
        return None
    try:
        hours = int(text[:2])
        minutes = int(text[2:4] or 0)
        seconds = float(text[4:] or 0)
    except ValueError:
        return None
    return hours * 3600 + minutes * 60 + seconds


def _bids_time(tm: str) -> str | None:
    seconds = tm_seconds(tm)
    if seconds is None:
        return None
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{int(h):02d}:{int(m):02d}:{s:09.6f}"


def _plain(value: Any, factor: float = 1.0) -> Any:
    if isinstance(value, (tuple, list)):
        items = [_plain(v, factor) for v in value]
        return items[0] if len(items) == 1 else items
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        scaled = value * factor
        return round(scaled, 9) if factor != 1.0 else value
    text = str(value).strip()
    if factor != 1.0:
        try:
            return round(float(text) * factor, 9)
        except ValueError:
            return text or None
    return text or None


def _slice_timing(records_by_slot: Sequence[HeaderRecord], repetition_s: float | None) -> list[float] | None:
    """Acquisition time of each slice of the first volume, relative to the first (s), in the
    order of the file's slice axis; ``None`` when the headers do not tell it."""
    times = [tm_seconds(r.acquisition_time) for r in records_by_slot]
    if len(times) < 2 or any(t is None for t in times):
        return None
    start = min(times)  # type: ignore[type-var]
    relative = [round(t - start, 6) for t in times]  # type: ignore[operator]
    span = max(relative)
    if span == 0 or (repetition_s is not None and span >= repetition_s):
        return None  # one time for all, or times spanning volumes: not slice timing
    return relative


def geometry_block(report: GeometryReport) -> dict[str, Any]:
    """fastvol's own facts about the geometry: the same in sidecars and report lines."""
    return {
        "series": report.series,
        "shape": list(report.shape),
        "axes": "(..., slice, row, column)",
        "spacing_mm": list(report.spacing),
        "affine_lps": [list(row) for row in report.affine],
        "plane": report.plane,
        "obliquity": report.obliquity,
        "kind": report.kind,
        "step_min_mm": report.step_min,
        "step_median_mm": report.step_median,
        "step_max_mm": report.step_max,
        "missing": list(report.missing),
        "tilt_deg": report.tilt_deg,
        "gantry_tilt_tag_deg": report.gantry_tilt_tag,
        "volumes_tag": report.volumes_tag,
        "n_files": report.n_files,
        "duplicates_dropped": list(report.duplicates_dropped),
        "skipped": [list(item) for item in report.skipped],
        "decisions": report.decision_data(),
    }


def sidecar(series: Series, report: GeometryReport, meta: Mapping[str, Any] | None,
            *, version: str, written: Mapping[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
    """The BIDS-style sidecar of one series.

    Parameters
    ----------
    series
        The scanned series (its records carry :data:`SIDECAR_TAGS` as ``extra``).
    report
        Its geometry report (``Volume.geometry`` after a load, or ``Series.geometry``).
    meta
        ``Volume.meta`` when pixels were loaded (gives the slice order for SliceTiming).
    version
        fastvol's version, for ConversionSoftwareVersion.
    written
        What the main file holds when that differs from the report (e.g. a sheared affine).
    """
    first = series.records[0]
    extra = dict(first.extra)
    out: dict[str, Any] = {
        "Modality": first.modality or None,
        "Manufacturer": first.manufacturer or None,
    }
    for bids, keyword, factor in _SCALARS[:1]:
        out[bids] = _plain(extra.get(keyword), factor)
    out["SeriesDescription"] = first.series_description or None
    out["ProtocolName"] = _plain(extra.get("ProtocolName"))
    out["SeriesNumber"] = first.series_number
    out["ImageType"] = list(first.image_type) or None
    echoes = sorted({r.echo_time for r in series.records if r.echo_time is not None})
    if len(echoes) == 1:
        out["EchoTime"] = round(echoes[0] / 1000, 9)
    elif echoes:
        out["EchoTimes"] = [round(e / 1000, 9) for e in echoes]  # one 4D file: one per volume
    for bids, keyword, factor in _SCALARS[1:]:
        out[bids] = _plain(extra.get(keyword), factor)
    axis = {"ROW": "i", "COL": "j"}.get(str(extra.get("InPlanePhaseEncodingDirection") or "").strip())
    if axis:  # polarity is not in the standard header: the axis only, as dcm2niix writes it
        out["PhaseEncodingAxis"] = axis
    times = sorted(t for t in (r.acquisition_time for r in series.records) if t)
    if times:
        out["AcquisitionTime"] = _bids_time(times[0])
    if meta is not None and first.modality == "MR":
        n_slices = report.shape[-3]
        slots = list(zip(meta.get("files", ()), meta.get("frames", ())))[:n_slices]
        by_key = {(r.path, r.frame): r for r in series.records}
        recs = [by_key[k] for k in slots if k in by_key]
        if len(recs) == n_slices:
            timing = _slice_timing(recs, out.get("RepetitionTime"))
            if timing is not None:
                out["SliceTiming"] = timing
    out["ConversionSoftware"] = "fastvol"
    out["ConversionSoftwareVersion"] = version
    sidecar_out = {k: v for k, v in out.items() if v is not None}
    block = geometry_block(report)
    if written:
        block["written"] = dict(written)
    sidecar_out["fastvol"] = block
    return sidecar_out
