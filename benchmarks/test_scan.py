"""Header pass over 300 CT files of 512x512: reading the bytes, the compiled scanner, pydicom.

Run with ``pytest benchmarks/test_scan.py --benchmark-only``; each benchmark is warmed up once
(JIT compile and page cache out of the figure). Also passes under ``--benchmark-disable``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

try:
    import fastvol  # noqa: F401
except ImportError:  # running from a source checkout without an install
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import pydicom
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage

from fastvol.headers import read_header_pydicom
from fastvol.headers.scan import scan_headers
from fastvol.sample import ct_dataset, set_pixel_data, write_dicom
from fastvol.sources import LocalFile

N_FILES = 300
SIZE = 512


def _ct_slice(index: int, study: str, series: str, frame: str, pixels: bytes) -> Dataset:
    """A CT slice with a realistic header: sequences, private tags, the usual attributes.

    The image header is :func:`fastvol.sample.ct_dataset`'s; the sequences and the private
    block are added here.
    """
    ds = ct_dataset(
        rows=SIZE,
        columns=SIZE,
        position=(-250.0, -250.0, -1.0 * index),
        pixel_spacing=(0.7, 0.7),
        slice_thickness="1.0",
        study_uid=study,
        series_uid=series,
        frame_uid=frame,
        sop_uid=f"{series}.{index + 1}",
        instance_number=index + 1,
        bits_stored=16,
        signed=True,
        intercept="-1024",
        slope="1",
        header={
            "StudyDate": "20240101",
            "AcquisitionTime": "101010.123",
            "Manufacturer": "ACME",
            "PatientName": "Doe^John",
            "PatientID": "123",
            "SeriesDescription": "Chest 1.0 B30f",
            "KVP": "120",
            "AcquisitionNumber": 1,
            "WindowCenter": "40",
            "WindowWidth": "400",
        },
    )
    code = Dataset()
    code.CodeValue = "113691"
    code.CodingSchemeDesignator = "DCM"
    code.CodeMeaning = "IHE CT"
    ds.ProcedureCodeSequence = Sequence([code])
    reference = Dataset()
    reference.ReferencedSOPClassUID = CTImageStorage
    reference.ReferencedSOPInstanceUID = f"{series}.9999"
    ds.ReferencedImageSequence = Sequence([reference, reference])
    ds.ReferencedImageSequence.is_undefined_length = True
    block = ds.private_block(0x0029, "ACME 1.0", create=True)
    block.add_new(0x10, "OB", bytes(range(256)) * 8)
    block.add_new(0x11, "LO", "private text")
    set_pixel_data(ds, pixels)
    return ds


@pytest.fixture(scope="session")
def ct_files(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    folder = tmp_path_factory.mktemp("ct300")
    pixels = np.zeros((SIZE, SIZE), dtype=np.int16).tobytes()
    study, series, frame = "1.2.826.0.1.1", "1.2.826.0.1.1.2", "1.2.826.0.1.1.3"
    return [
        write_dicom(folder / f"{index:04d}.dcm", _ct_slice(index, study, series, frame, pixels))
        for index in range(N_FILES)
    ]


def _read_all_bytes(paths: list[str]) -> int:
    total = 0
    for path in paths:
        with open(path, "rb") as fp:
            total += len(fp.read())
    return total


def _pydicom_headers(paths: list[str]) -> list[Any]:
    return [pydicom.dcmread(p, stop_before_pixels=True) for p in paths]


def _run(benchmark: Any, func: Callable[[list[str]], Any], paths: list[str]) -> Any:
    func(paths)  # warm-up: JIT compile (or cache load), page cache, buffers
    benchmark.group = "headers"
    return benchmark(func, paths)


def test_floor_read_all_bytes(benchmark: Any, ct_files: list[str]) -> None:
    assert _run(benchmark, _read_all_bytes, ct_files) > N_FILES * SIZE * SIZE * 2


def _scan_headers(paths: list[str]) -> list[Any]:
    return scan_headers([LocalFile(p) for p in paths])


def test_scan_headers(benchmark: Any, ct_files: list[str]) -> None:
    records = _run(benchmark, _scan_headers, ct_files)
    assert all(r is not None for r in records)
    assert records[7] == read_header_pydicom(LocalFile(ct_files[7]))


def test_pydicom_headers(benchmark: Any, ct_files: list[str]) -> None:
    datasets = _run(benchmark, _pydicom_headers, ct_files)
    assert len(datasets) == N_FILES
