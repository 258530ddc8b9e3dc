"""Test-data factory for derived objects: SEG and parametric maps made by highdicom.

highdicom writes them from the datasets of a classic series written by :func:`factory.write_series`
(an independent writer of the functional groups, frame references and bit packing), so a test
compares fastvol with highdicom's own reading of what highdicom wrote.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset

import factory as fx

__all__ = ["source_datasets", "write_pm", "write_seg"]

# Type 2 attributes highdicom copies from the source images; the factory leaves them out.
_PATIENT_STUDY = {
    "PatientName": "Test^Derived", "PatientID": "P1", "PatientBirthDate": "19700101",
    "PatientSex": "O", "StudyDate": "20260101", "StudyTime": "120000", "StudyID": "1",
    "AccessionNumber": "A1", "ReferringPhysicianName": "", "Manufacturer": "fastvol-tests",
}  # fmt: skip


def source_datasets(written: fx.WrittenSeries) -> list[Dataset]:
    """The written series' datasets (no duplicates or localizer), completed for highdicom."""
    out = []
    for path, dup, loc in zip(written.paths, written.is_duplicate, written.is_localizer):
        if dup or loc:
            continue
        ds = pydicom.dcmread(path)
        for keyword, value in _PATIENT_STUDY.items():
            if keyword not in ds:
                setattr(ds, keyword, value)
        out.append(ds)
    return out


def _hd() -> Any:
    try:
        import highdicom as hd
    except ImportError as exc:  # pragma: no cover - highdicom is a test dependency
        raise fx.FactoryUnavailable(f"highdicom is not installed ({exc})") from exc
    return hd


def write_seg(
    sources: Sequence[Dataset],
    masks: np.ndarray,
    path: str | os.PathLike[str],
    *,
    fractional: bool = False,
    omit_empty_frames: bool = True,
    labels: Sequence[str] | None = None,
    transfer_syntax: str | None = None,
) -> str:
    """Write a SEG of ``masks`` ``(slice, row, column, segment)`` over ``sources`` (one mask slice
    per source image, in the order given) and return its path.

    Binary masks are written 1-bit (BitsAllocated 1, frames packed across byte boundaries);
    ``fractional`` masks (floats in 0..1) as 8-bit with MaximumFractionalValue 255.
    """
    hd = _hd()
    from pydicom.sr.codedict import codes

    n_segments = masks.shape[-1]
    labels = labels or [f"segment {i + 1}" for i in range(n_segments)]
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=i + 1, segment_label=labels[i],
            segmented_property_category=codes.SCT.Tissue, segmented_property_type=codes.SCT.Tissue,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
        )
        for i in range(n_segments)
    ]  # fmt: skip
    kwargs: dict[str, Any] = {}
    if transfer_syntax is not None:
        kwargs["transfer_syntax_uid"] = transfer_syntax
    seg = hd.seg.Segmentation(
        source_images=list(sources),
        pixel_array=masks.astype(np.float32 if fractional else np.uint8),
        segmentation_type=(hd.seg.SegmentationTypeValues.FRACTIONAL if fractional
                           else hd.seg.SegmentationTypeValues.BINARY),
        segment_descriptions=descriptions,
        series_instance_uid=hd.UID(), series_number=300, sop_instance_uid=hd.UID(),
        instance_number=1, manufacturer="fastvol-tests", manufacturer_model_name="factory",
        software_versions="1", device_serial_number="1",
        omit_empty_frames=omit_empty_frames, max_fractional_value=255, **kwargs,
    )  # fmt: skip
    path = os.fspath(path)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    seg.save_as(path)
    return path


def write_pm(
    sources: Sequence[Dataset],
    values: np.ndarray,
    path: str | os.PathLike[str],
    *,
    unit: str = "mm2/s",
) -> str:
    """Write a parametric map of ``values`` ``(slice, row, column)`` (float32: FloatPixelData,
    float64: DoubleFloatPixelData) over ``sources`` with one real-world value mapping in
    ``unit`` (UCUM), and return its path."""
    hd = _hd()
    mapping = hd.pm.RealWorldValueMapping(
        lut_label="v", lut_explanation="value", unit=hd.sr.CodedConcept(unit, "UCUM", unit),
        value_range=(float(values.min()), float(values.max())), slope=1, intercept=0,
    )  # fmt: skip
    pm = hd.pm.ParametricMap(
        list(sources), values, hd.UID(), 400, hd.UID(), 1, "fastvol-tests", "factory", "1", "1",
        False, [mapping],
        voi_lut_transformations=[hd.VOILUTTransformation(window_center=0.0, window_width=2.0)],
    )
    path = os.fspath(path)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    pm.save_as(path)
    return path
