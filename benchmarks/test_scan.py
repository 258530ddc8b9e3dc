"""Header pass over 300 CT files of 512x512: reading the bytes, the compiled scanner, pydicom.

Run with ``pytest benchmarks/test_scan.py --benchmark-only``; each benchmark is warmed up once
(JIT compile and page cache out of the figure). Also passes under ``--benchmark-disable``.
"""

from __future__ import annotations

import os
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
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

from fastvol.headers import read_header_pydicom
from fastvol.headers.scan import scan_headers
from fastvol.sources import LocalFile

N_FILES = 300
SIZE = 512


def _ct_slice(index: int, study: str, series: str, frame: str, pixels: bytes) -> Dataset:
    """A CT slice with a realistic header: sequences, private tags, the usual attributes."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = f"{series}.{index + 1}"
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyDate = "20240101"
    ds.AcquisitionTime = "101010.123"
    ds.Modality = "CT"
    ds.Manufacturer = "ACME"
    ds.PatientName = "Doe^John"
    ds.PatientID = "123"
    ds.SeriesDescription = "Chest 1.0 B30f"
    ds.SliceThickness = "1.0"
    ds.KVP = "120"
    ds.StudyInstanceUID = study
    ds.SeriesInstanceUID = series
    ds.SeriesNumber = 2
    ds.AcquisitionNumber = 1
    ds.InstanceNumber = index + 1
    ds.ImagePositionPatient = [-250.0, -250.0, -1.0 * index]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.FrameOfReferenceUID = frame
    ds.SliceLocation = -1.0 * index
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
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = SIZE
    ds.Columns = SIZE
    ds.PixelSpacing = [0.7, 0.7]
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.RescaleIntercept = "-1024"
    ds.RescaleSlope = "1"
    ds.WindowCenter = "40"
    ds.WindowWidth = "400"
    ds.PixelData = pixels
    return ds


@pytest.fixture(scope="session")
def ct_files(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    folder = tmp_path_factory.mktemp("ct300")
    pixels = np.zeros((SIZE, SIZE), dtype=np.int16).tobytes()
    study, series, frame = "1.2.826.0.1.1", "1.2.826.0.1.1.2", "1.2.826.0.1.1.3"
    paths = []
    for index in range(N_FILES):
        path = folder / f"{index:04d}.dcm"
        _ct_slice(index, study, series, frame, pixels).save_as(path, enforce_file_format=True)
        paths.append(os.fspath(path))
    return paths


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
