"""The header pass through byte sources: extra tags, skipped files, mosaics, the kernel's seam."""

from __future__ import annotations

import ast
import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydicom.uid import ImplicitVRLittleEndian

import factory as fx
import factory_enhanced as fe
import fastvol
from fastvol.errors import CorruptFileError, InputError
from fastvol.headers import NotDicomContent, read_header, read_header_pydicom, read_headers, read_records
from fastvol.headers.csa import read_mosaic_info
from fastvol.headers.scan import scan_header, scan_headers
from fastvol.find import find_sources
from fastvol.sources import LocalFile, MemorySource

SRC = Path(fastvol.__file__).resolve().parent
EXTRA = ("PatientID", "StudyDescription", "KVP", 0x00180050, "PatientName", "AcquisitionMatrix",
         "ImagePositionPatient", "WindowCenter", "EchoTrainLength", "PatientAge")  # fmt: skip


@pytest.mark.parametrize("transfer_syntax", [None, ImplicitVRLittleEndian])
def test_extra_tags_scanner_equals_pydicom(tmp_path: Path, transfer_syntax: str | None) -> None:
    w = fx.write_series(
        tmp_path, n=3, transfer_syntax=transfer_syntax,
        extra={"StudyDescription": "Chest ^ CT", "AcquisitionMatrix": [0, 16, 12, 0],
               "WindowCenter": ["40", " 50.5"], "EchoTrainLength": "7", "PatientAge": ""},
    )  # fmt: skip
    sources = [LocalFile(p) for p in w.paths]
    scanned = scan_headers(sources, extra_tags=EXTRA)
    for source, record in zip(sources, scanned):
        assert record is not None, source.name  # the scanner handled it, no fallback
        reference = read_header_pydicom(source, extra_tags=EXTRA)
        assert record == reference
        assert record.extra == reference.extra
        extra = dict(record.extra)
        assert list(extra) == ["PatientID", "StudyDescription", "KVP", "SliceThickness",
                               "PatientName", "AcquisitionMatrix", "ImagePositionPatient",
                               "WindowCenter", "EchoTrainLength", "PatientAge"]  # fmt: skip
        assert extra["PatientID"] == "FACTORY" and extra["StudyDescription"] == "Chest ^ CT"
        assert extra["KVP"] == 120.0 and extra["SliceThickness"] == 2.0
        assert extra["PatientName"] == "Factory^Test"
        assert extra["AcquisitionMatrix"] == (0, 16, 12, 0)
        assert extra["WindowCenter"] == (40.0, 50.5) and extra["EchoTrainLength"] == 7
        assert extra["PatientAge"] is None
        assert isinstance(extra["ImagePositionPatient"], tuple)
    # read_records and fastvol.scan carry them too
    records, _, _, _ = read_records(find_sources(tmp_path), extra_tags=EXTRA)
    assert [r.extra for r in records] == [r.extra for r in sorted(scanned, key=lambda r: r.path)]
    found = fastvol.scan(tmp_path, extra_tags=["PatientID"])
    assert all(r.extra == (("PatientID", "FACTORY"),) for s in found for r in s.records)


def test_extra_tags_absent_and_without_extras(tmp_path: Path) -> None:
    w = fx.write_series(tmp_path, n=1)
    record = scan_header(LocalFile(w.paths[0]), extra_tags=["StudyDescription"])
    assert record is not None and record.extra == (("StudyDescription", None),)
    assert scan_header(LocalFile(w.paths[0])).extra == ()  # type: ignore[union-attr]


@pytest.mark.parametrize("bad", ["NoSuchKeyword", 0x00111111, "TransferSyntaxUID", "ReferencedImageSequence", 1.5])
def test_extra_tags_refused(tmp_path: Path, bad: object) -> None:
    w = fx.write_series(tmp_path, n=1)
    with pytest.raises(InputError, match="extra_tags"):
        read_records([LocalFile(w.paths[0])], extra_tags=[bad])  # type: ignore[list-item]


def test_sources_not_paths(tmp_path: Path) -> None:
    """Files in memory read as files on disk: every reader takes a source."""
    w = fx.write_series(tmp_path, n=2)
    on_disk = LocalFile(w.paths[0])
    memory = MemorySource(Path(w.paths[0]).read_bytes(), name=w.paths[0])
    assert scan_header(memory) == scan_header(on_disk) == read_header_pydicom(memory)
    assert scan_header(memory).source is memory  # type: ignore[union-attr]
    assert read_header(memory) == read_header(on_disk)


def test_multiframe_expanded_from_a_source(tmp_path: Path) -> None:
    w = fe.write_enhanced(tmp_path, n_slices=4)
    path = next(p for p in tmp_path.iterdir() if p.is_file())
    memory = MemorySource(path.read_bytes(), name="in-memory.dcm")
    records, skipped, errors, _ = read_records([memory])
    assert not skipped and not errors and len(records) == 4
    assert [r.frame for r in records] == [0, 1, 2, 3]
    assert all(r.source is memory and r.path == "in-memory.dcm" for r in records)
    from_disk = read_records([LocalFile(path)])[0]
    assert [dataclasses.replace(r, path="in-memory.dcm") for r in from_disk] == records
    del w


def test_not_dicom_is_a_type(tmp_path: Path) -> None:
    text = fx.write_non_dicom(tmp_path)
    (result,) = read_headers([LocalFile(text)])
    assert isinstance(result, NotDicomContent)
    records, skipped, errors, _ = read_records([LocalFile(text)])
    assert records == [] and skipped == {"not DICOM": [text]} and errors == {}


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_fifo_in_folder_is_skipped_unopened(tmp_path: Path) -> None:
    fx.write_series(tmp_path, n=3)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    found = fastvol.scan(tmp_path)  # would block forever if the FIFO were read
    assert len(found) == 1 and len(found[0].records) == 3
    assert found.skipped == {"not a regular file": [str(fifo)]}
    assert scan_headers([LocalFile(fifo)]) == [None]


def test_kernel_gets_buffers_only() -> None:
    """The scan kernel opens nothing and does not import fastvol.headers (no import circle)."""
    tree = ast.parse((SRC / "_kernels" / "scan.py").read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            imported.add(("." * node.level) + (node.module or ""))
        elif isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Call):
            assert ast.unparse(node.func) not in ("open", "os.open", "os.pread", "os.preadv")
    assert imported <= {"__future__", "numpy", "..dicom", "."}, imported
    code = ("import sys, fastvol._kernels.scan; "
            "print(sorted(m for m in sys.modules if m.startswith('fastvol.headers') or m == 'pydicom'))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(SRC.parent)})  # fmt: skip
    assert out.stdout.strip() == "[]"


# --- Siemens mosaics: the CSA header is read in the header pass ------------------------------


def _write_mosaic(path: Path, csa: bytes) -> str:
    import numpy as np
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = MRImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.SeriesInstanceUID = "1.2.3.4"
    ds.Modality = "MR"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND", "MOSAIC"]
    ds.ImagePositionPatient = [0, 0, 0]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [1, 1]
    ds.SliceThickness = 2
    ds.private_block(0x0029, "SIEMENS CSA HEADER", create=True).add_new(0x10, "OB", csa)
    ds.Rows, ds.Columns = 12, 15
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.PixelData = np.arange(12 * 15, dtype=np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return str(path)


def test_mosaic_info_in_record_after_scan(tmp_path: Path) -> None:
    from test_mosaic import _csa2

    path = _write_mosaic(tmp_path / "m.dcm", _csa2({"NumberOfImagesInMosaic": ["7"]}))
    (series,) = fastvol.scan(tmp_path)
    (record,) = series.records
    assert record.mosaic is not None and record.mosaic == read_mosaic_info(LocalFile(path))
    assert (record.mosaic.n_images, record.mosaic.tile_rows, record.mosaic.tile_cols) == (7, 4, 5)
    assert read_header(LocalFile(path)).mosaic == record.mosaic


def test_unreadable_mosaic_is_an_unreadable_entry(tmp_path: Path) -> None:
    path = _write_mosaic(tmp_path / "bad.dcm", b"SV10\x04\x03\x02\x01" + b"\xff" * 8)
    found = fastvol.scan(tmp_path)
    assert list(found) == [] and found.skipped == {"unreadable": [path]}
    assert "bad.dcm" in found.errors[path] and "CSA" in found.errors[path]
    with pytest.raises(CorruptFileError, match="bad.dcm") as caught:
        fastvol.load(tmp_path)
    assert path in caught.value.files


def test_charset_with_nul_goes_to_pydicom(tmp_path: Path) -> None:
    """pydicom fails on a SpecificCharacterSet holding a NUL: the scanner must not answer."""
    from pydicom.data import get_testdata_file

    source = get_testdata_file("CT_small.dcm", download=False)
    if source is None:
        pytest.skip("pydicom's CT_small.dcm is not installed")
    data = bytearray(Path(source).read_bytes())
    at = data.index(b"ISO_IR 100")
    data[at] = 0  # "\0SO_IR 100" (found by test_mutated_files_never_crash)
    path = tmp_path / "nul_charset.dcm"
    path.write_bytes(bytes(data))
    assert scan_header(LocalFile(path)) is None
    with pytest.raises(CorruptFileError):
        read_header_pydicom(LocalFile(path))


def test_mosaic_plan_reads_no_header(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The tile grid comes from record.mosaic: loading a scanned mosaic reads no CSA again."""
    import fastvol.headers.csa
    import fastvol.mosaic
    from test_mosaic import _csa2

    _write_mosaic(tmp_path / "m.dcm", _csa2({"NumberOfImagesInMosaic": ["7"]}))
    (series,) = fastvol.scan(tmp_path)

    def refuse(source: object) -> None:
        raise AssertionError(f"read_mosaic_info({source!r}) after the header pass")

    monkeypatch.setattr(fastvol.headers.csa, "read_mosaic_info", refuse)
    monkeypatch.setattr(fastvol.mosaic, "read_mosaic_info", refuse)
    from fastvol.api import load_series

    volume = load_series(series)
    assert volume.array.shape == (7, 4, 5) and volume.meta["mosaic_images"] == 7


def test_read_header_raises_for_a_file_that_is_not_dicom(tmp_path: Path) -> None:
    from fastvol.headers import read_header

    path = tmp_path / "notes.txt"
    path.write_text("not a DICOM file at all")
    with pytest.raises(fastvol.NotDicomError):
        read_header(LocalFile(path))
