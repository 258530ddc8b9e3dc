"""Records per frame: what both readers of the per-frame headers (:mod:`.multiframe`, through
pydicom, and :mod:`.multiframe_raw`, from raw bytes) build alike from converted values."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from ..dicom import HeaderRecord
from ..errors import CorruptFileError

__all__ = ["extended_offsets", "grid_frames", "replace", "replacer", "unplaced_frames"]


def replace(record: HeaderRecord, **changes: Any) -> HeaderRecord:
    """``dataclasses.replace`` for records."""
    return dataclasses.replace(record, **changes)


def replacer(record: HeaderRecord) -> Callable[..., HeaderRecord]:
    """``replace`` bound to ``record``, for many frames of one file: its fields are read once
    (``dataclasses.replace`` reads all of them per call, a third of a frame's cost)."""
    base = {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}
    cls = type(record)

    def make(**changes: Any) -> HeaderRecord:
        return cls(**{**base, **changes})

    return make


def unplaced_frames(record: HeaderRecord) -> list[HeaderRecord]:
    """Frames without per-frame geometry."""
    if record.number_of_frames == 1:
        return [record]
    # Multi-frame without per-frame geometry (NM, US cine, ...): frames share one position and
    # must be told apart by the caller; keep them, marked by frame index.
    return [replace(record, frame=i) for i in range(record.number_of_frames)]


def extended_offsets(offsets: Any, lengths: Any) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
    """ExtendedOffsetTable and its lengths (uint64 little endian), when both are present."""
    if not offsets or not lengths or len(offsets) % 8 or len(offsets) != len(lengths):
        return None
    return (tuple(np.frombuffer(offsets, "<u8").tolist()), tuple(np.frombuffer(lengths, "<u8").tolist()))


def grid_frames(record: HeaderRecord, offsets: list[float], scaling: float | None,
                 dose_units: str) -> list[HeaderRecord]:  # fmt: skip
    """RT Dose: frame k lies GridFrameOffsetVector[k] mm along the normal from the IPP; values
    scale by DoseGridScaling unless a RescaleSlope says otherwise."""
    n = record.number_of_frames
    if n == 1 and offsets:
        offsets = offsets[:1]  # single-frame extracts often keep the full vector; only [0] counts
    if len(offsets) != n:
        raise CorruptFileError(f"{record.path}: GridFrameOffsetVector has {len(offsets)} values for "
                               f"{n} frames", files=[record.path])  # fmt: skip
    iop = np.asarray(record.image_orientation, dtype=np.float64)
    normal = np.cross(iop[:3], iop[3:])
    origin = np.asarray(record.image_position, dtype=np.float64)
    # Relative offsets start at 0; absolute ones (first value == IPP z) are made relative.
    base = offsets[0] if offsets[0] != 0 and abs(offsets[0] - origin @ normal) < 1e-3 else 0.0
    slope = record.rescale_slope if record.rescale_slope is not None else scaling
    units = (dose_units, "", None, None) if dose_units else record.units
    return [
        replace(
            record, frame=k, rescale_slope=slope, units=units,
            image_position=tuple(float(v) for v in origin + (offsets[k] - base) * normal),  # type: ignore[arg-type]
        )
        for k in range(n)
    ]  # fmt: skip
