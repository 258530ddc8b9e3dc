"""A CT and a 10-segment SEG of it, aligned to the CT: fastvol against highdicom.

Case: a 300-slice 512x512 CT series (the end-to-end writer) and a SEG written by highdicom from
it: 10 segments, each a blob over about 60 slices, empty frames omitted (1-bit, explicit VR).
Both loaders return the masks on the CT's grid, ``(segment, slice, row, column)`` (highdicom's
array moved to that layout is not timed apart from its own work):

- fastvol: ``load_segmentation(seg, load(ct))``.
- highdicom: ``get_volume_from_series`` (the CT), ``segread`` + ``get_volume`` (the SEG) +
  ``match_geometry`` (onto the CT's grid).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import fastvol

pytestmark = pytest.mark.benchmark(group="segmentation")

N_SEGMENTS = 10
LOADERS = ("fastvol", "highdicom")


def _datasets(folder: str) -> list[Any]:
    import pydicom

    return [pydicom.dcmread(os.path.join(folder, f)) for f in sorted(os.listdir(folder))]


def _write_seg(ct_folder: str, path: str) -> None:
    """10 segments, segment ``s`` a ball-ish blob over slices ``[k0, k0 + 60)``."""
    import highdicom as hd
    from pydicom.sr.codedict import codes

    import factory_derived as fd

    sources = _datasets(ct_folder)
    for ds in sources:
        for keyword, value in fd._PATIENT_STUDY.items():
            if keyword not in ds:
                setattr(ds, keyword, value)
    n, rows, columns = len(sources), sources[0].Rows, sources[0].Columns
    masks = np.zeros((n, rows, columns, N_SEGMENTS), dtype=bool)
    r, c = np.ogrid[:rows, :columns]
    span = max(1, n // 5)
    for s in range(N_SEGMENTS):
        k0 = (s * n) // (N_SEGMENTS + 2)
        cy, cx = rows * (0.3 + 0.04 * s), columns * (0.7 - 0.04 * s)
        radius = min(rows, columns) / 10
        for k in range(k0, min(n, k0 + span)):
            masks[k, :, :, s] = (r - cy) ** 2 + (c - cx) ** 2 < radius**2
    descriptions = [
        hd.seg.SegmentDescription(
            segment_number=s + 1, segment_label=f"organ {s + 1}",
            segmented_property_category=codes.SCT.Tissue, segmented_property_type=codes.SCT.Organ,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=hd.AlgorithmIdentificationSequence(
                name="bench", version="1", family=codes.DCM.ArtificialIntelligence),
        )
        for s in range(N_SEGMENTS)
    ]  # fmt: skip
    seg = hd.seg.Segmentation(
        source_images=sources, pixel_array=masks, segmentation_type="BINARY",
        segment_descriptions=descriptions, series_instance_uid=hd.UID(), series_number=300,
        sop_instance_uid=hd.UID(), instance_number=1, manufacturer="fastvol-bench",
        manufacturer_model_name="bench", software_versions="1", device_serial_number="1",
        omit_empty_frames=True,
    )  # fmt: skip
    seg.save_as(path)


@pytest.fixture
def ct_and_seg(ct_series: Callable[..., Any], bench_size: Callable[..., Any], bench_data_root: Path
               ) -> tuple[str, str]:  # fmt: skip
    pytest.importorskip("highdicom")
    series = ct_series(*bench_size(300))
    path = bench_data_root / f"seg-{N_SEGMENTS}-{series.label.replace(' ', '_')}.dcm"
    if not path.exists():  # written once per session (and kept with FASTVOL_BENCH_DATA)
        tmp = str(path) + ".tmp"
        _write_seg(series.folder, tmp)
        os.replace(tmp, path)
    return series.folder, str(path)


def fastvol_aligned(ct: str, seg: str) -> np.ndarray:
    return fastvol.load_segmentation(seg, fastvol.load(ct)).array


def highdicom_aligned(ct: str, seg: str) -> np.ndarray:
    import highdicom as hd

    ct_volume = hd.get_volume_from_series(_datasets(ct))
    seg_volume = hd.seg.segread(seg).get_volume(combine_segments=False)
    return np.moveaxis(seg_volume.match_geometry(ct_volume).array, -1, 0)


@pytest.mark.parametrize("loader", LOADERS)
def test_ct_and_seg_aligned(benchmark: Any, ct_and_seg: tuple[str, str], loader: str) -> None:
    """Time CT + SEG aligned to it; every row checks its masks against the other loader's."""
    ct, seg = ct_and_seg
    fn = {"fastvol": fastvol_aligned, "highdicom": highdicom_aligned}[loader]
    benchmark.extra_info.update(loader=loader, role="fastvol" if loader == "fastvol" else "peer",
                                case=f"CT + {N_SEGMENTS}-segment SEG")  # fmt: skip
    result = benchmark(fn, ct, seg)
    other = (highdicom_aligned if loader == "fastvol" else fastvol_aligned)(ct, seg)
    assert result.shape[0] == N_SEGMENTS and np.array_equal(np.asarray(result, dtype=np.uint8), other)
