"""The compiled header scanner agrees with pydicom on every file it does not refuse.

Slow reference: :func:`fastvol.headers.read_header_pydicom`. The law tested everywhere:
``scan_header(source)`` is ``None`` or equal to ``read_header_pydicom(source)``; it never raises.
"""

from __future__ import annotations

import io
import os
import random
import struct
import sys
from pathlib import Path

import pytest

try:
    import fastvol  # noqa: F401
except ImportError:  # running from a source checkout without an install
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import pydicom
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from fastvol import kernels
from fastvol.headers.scan import scan_header, scan_headers
from fastvol.errors import FastvolError
from fastvol.headers import TS, read_header_pydicom
from fastvol.sources import LocalFile

pytestmark = pytest.mark.kernels


@pytest.fixture(autouse=True, params=["c", "numba"])
def scanner(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every law holds for the C scanner (the default where built) and the numba one it ports
    (run as plain Python under ``NUMBA_DISABLE_JIT=1``)."""
    if request.param == "c":
        if kernels.native_scan() is None:
            pytest.skip("the C scanner is not built or is turned off (FASTVOL_NATIVE=0, FASTVOL_JIT)")
    else:
        monkeypatch.setenv("FASTVOL_JIT", "1")
        assert kernels.native_scan() is None
    return str(request.param)

REPO = Path(__file__).resolve().parents[1]
CORPUS = Path(os.environ.get("FASTVOL_CORPUS", REPO.parent / "shared" / "corpus"))
needs_corpus = pytest.mark.skipif(
    not CORPUS.is_dir(), reason=f"DICOM corpus not found at {CORPUS} (set $FASTVOL_CORPUS)"
)

PYDICOM_FILES = [
    "CT_small.dcm", "MR_small.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm",
    "MR_small_expb.dcm", "MR_small_RLE.dcm", "MR_small_jp2klossless.dcm", "MR_small_padded.dcm",
    "MR_truncated.dcm", "JPEG2000.dcm", "JPEG2000-embedded-sequence-delimiter.dcm",
    "SC_rgb_jpeg.dcm", "SC_rgb_small_odd.dcm", "SC_rgb_small_odd_big_endian.dcm", "rtplan.dcm",
    "rtdose.dcm", "rtdose_1frame.dcm", "rtstruct.dcm", "rtplan_truncated.dcm", "badVR.dcm",
    "no_meta.dcm", "no_meta_group_length.dcm", "image_dfl.dcm", "nested_priv_SQ.dcm",
    "priv_SQ.dcm", "meta_missing_tsyntax.dcm", "ExplVR_BigEndNoMeta.dcm",
    "ExplVR_LitEndNoMeta.dcm", "liver_1frame.dcm", "waveform_ecg.dcm", "reportsi.dcm",
    "reportsi_with_empty_number_tags.dcm", "test-SR.dcm", "UN_sequence.dcm",
    "empty_charset_LEI.dcm", "GDCMJ2K_TextGBR.dcm", "examples_overlay.dcm",
    "examples_palette.dcm", "SC_ybr_full_422_uncompressed.dcm", "693_J2KI.dcm",
]  # fmt: skip


def _pydicom_or_none(path: str | os.PathLike[str]) -> object:
    try:
        return read_header_pydicom(LocalFile(path))
    except FastvolError:
        return None
    except Exception:  # noqa: BLE001
        # Defensive: anything else pydicom raises on garbage still means "pydicom cannot read
        # it" for this law.
        return None


def _agree(path: str | os.PathLike[str]) -> tuple[object, object]:
    """Scanner and pydicom records; asserts the law (None or equal)."""
    record = scan_header(LocalFile(path))
    reference = _pydicom_or_none(path)
    if record is not None:
        assert reference is not None, f"{path}: scanned but pydicom cannot read it"
        assert record == reference, _diff(record, reference)
    return record, reference


def _diff(a: object, b: object) -> str:
    da, db = a.as_dict(), b.as_dict()  # type: ignore[attr-defined]
    return repr({k: (da[k], db[k]) for k in da if da[k] != db[k]})


def _testdata(name: str) -> str:
    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"{name} is not bundled with this pydicom")
    return os.fspath(path)


# ------------------------------------------------------------------------------------------
# Real files


@pytest.mark.parametrize("name", PYDICOM_FILES)
def test_pydicom_testdata_agrees(name: str) -> None:
    path = _testdata(name)
    record, reference = _agree(path)
    if reference is not None and name in ("CT_small.dcm", "MR_small.dcm", "MR_small_implicit.dcm", "rtdose.dcm", "nested_priv_SQ.dcm", "JPEG2000.dcm"):
        assert record is not None, f"{name}: plain little endian file refused"


def test_pydicom_testdata_batch_matches_single() -> None:
    paths = [p for p in (get_testdata_file(n, download=False) for n in PYDICOM_FILES) if p]
    assert scan_headers([LocalFile(p) for p in paths]) == [scan_header(LocalFile(p)) for p in paths]


def _corpus_files() -> list[Path]:
    return sorted(p for p in CORPUS.rglob("*") if p.is_file())


def _is_real_dicom(reference: object) -> bool:
    """pydicom read a DICOM object (not some text file forced through as implicit VR)."""
    return bool(getattr(reference, "sop_class_uid", "")) or bool(
        getattr(reference, "has_pixels", False)
    )


@pytest.mark.corpus
@needs_corpus
def test_corpus_agrees_and_little_endian_is_handled() -> None:
    files = _corpus_files()
    records = scan_headers([LocalFile(p) for p in files], first_block=4096)
    refused = []
    handled = 0
    for path, record in zip(files, records):
        reference = _pydicom_or_none(path)
        if record is not None:
            assert reference is not None, f"{path}: scanned but pydicom cannot read it"
            assert record == reference, f"{path}: {_diff(record, reference)}"
            handled += 1
        elif (
            _is_real_dicom(reference)
            and reference.transfer_syntax in (TS.IMPLICIT_LE, TS.EXPLICIT_LE)  # type: ignore[attr-defined]
        ):
            refused.append(str(path))
    assert handled > 0
    assert not refused, f"little endian files refused by the scanner: {refused}"


# ------------------------------------------------------------------------------------------
# Generated data sets

_UIDS = st.from_regex(r"1\.2\.[1-9][0-9]{0,8}(\.[1-9][0-9]{0,6}){0,4}", fullmatch=True)
_DS_ITEM = st.one_of(
    st.floats(-1e6, 1e6, allow_nan=False).map(lambda v: f"{v:.6g}"),
    st.sampled_from(["1", "-0", "0.5", " 1.5", "1e-3", "+2", "1.", ".5", "", " ", "abc", "1E2"]),
)
_IS_ITEM = st.one_of(
    st.integers(-(2**31), 2**31 - 1).map(str),
    st.sampled_from(["1", " 7", "+3", "1.0", "1.5", "", "x", "1e2", "0"]),
)


def _multi(item: st.SearchStrategy[str], max_size: int) -> st.SearchStrategy[str]:
    return st.lists(item, min_size=1, max_size=max_size).map("\\".join)


_TEXT = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\\"),
    max_size=20,
)

# keyword -> strategy of a valid-looking (sometimes odd or blank) value
_WANTED = {
    "SOPClassUID": _UIDS,
    "SOPInstanceUID": _UIDS,
    "ImageType": _multi(st.sampled_from(["ORIGINAL", "DERIVED", "PRIMARY", "LOCALIZER", ""]), 4),
    "AcquisitionTime": st.sampled_from(["101010", "101010.123", "", "1010 "]),
    "Modality": st.sampled_from(["CT", "MR", "PT", ""]),
    "Manufacturer": _TEXT,
    "SeriesDescription": _TEXT,
    "SliceThickness": _DS_ITEM,
    "EchoTime": _DS_ITEM,
    "EchoNumbers": _multi(_IS_ITEM, 2),
    "SpacingBetweenSlices": _DS_ITEM,
    "TriggerTime": _DS_ITEM,
    "GantryDetectorTilt": _DS_ITEM,
    "DiffusionBValue": st.one_of(st.floats(0, 5000), st.just(float("nan"))),
    "StudyInstanceUID": _UIDS,
    "SeriesInstanceUID": _UIDS,
    "SeriesNumber": _IS_ITEM,
    "AcquisitionNumber": _IS_ITEM,
    "InstanceNumber": _IS_ITEM,
    "ImagePositionPatient": _multi(_DS_ITEM, 4),
    "ImageOrientationPatient": _multi(_DS_ITEM, 7),
    "FrameOfReferenceUID": _UIDS,
    "TemporalPositionIdentifier": _IS_ITEM,
    "SamplesPerPixel": st.integers(0, 4),
    "PhotometricInterpretation": st.sampled_from(["MONOCHROME2", "RGB", ""]),
    "PlanarConfiguration": st.integers(0, 1),
    "NumberOfFrames": _IS_ITEM,
    "Rows": st.integers(0, 65535),
    "Columns": st.integers(0, 65535),
    "PixelSpacing": _multi(_DS_ITEM, 3),
    "BitsAllocated": st.sampled_from([8, 16, 32]),
    "BitsStored": st.integers(1, 16),
    "HighBit": st.integers(0, 15),
    "PixelRepresentation": st.integers(0, 1),
    "RescaleIntercept": _multi(_DS_ITEM, 2),  # several values: INVALID_SCALE from both readers
    "RescaleSlope": _multi(_DS_ITEM, 2),
    "SpecificCharacterSet": st.sampled_from(["ISO_IR 100", "ISO_IR 192", "", "ISO_IR 6"]),
}


@st.composite
def _items(draw: st.DrawFn, depth: int) -> Dataset:
    item = Dataset()
    item.CodeValue = draw(st.sampled_from(["1", "22", "333"]))  # odd lengths too
    if draw(st.booleans()):
        item.add_new(0x00091010, "LO", "ACME")
        item.add_new(0x00091011, "OB", draw(st.binary(max_size=9)))
    if depth < 3 and draw(st.booleans()):
        item.ReferencedImageSequence = draw(_sequences(depth + 1))
    return item


@st.composite
def _sequences(draw: st.DrawFn, depth: int = 0) -> Sequence:
    seq = Sequence(draw(st.lists(_items(depth), max_size=3)))
    seq.is_undefined_length = draw(st.booleans())
    for item in seq:
        item.is_undefined_length_sequence_item = draw(st.booleans())
    return seq


@st.composite
def _datasets(draw: st.DrawFn) -> tuple[Dataset, bool, bool]:
    ds = Dataset()
    for keyword in draw(st.lists(st.sampled_from(sorted(_WANTED)), unique=True, max_size=37)):
        value = draw(_WANTED[keyword])
        as_un = draw(st.booleans())
        if not as_un:
            try:
                setattr(ds, keyword, value)
                continue
            except (ValueError, TypeError, OverflowError):
                pass  # pydicom refuses invalid values: write the bytes as UN instead
        if isinstance(value, float):
            raw = struct.pack("<d", value)
        elif isinstance(value, int):
            raw = struct.pack("<H", value)
        else:
            raw = value.encode("latin-1")
            raw += b" " * (len(raw) % 2)
        tag = pydicom.datadict.tag_for_keyword(keyword)
        # Keep UN as written (pydicom would otherwise convert to the dictionary VR now).
        saved = pydicom.config.replace_un_with_known_vr
        pydicom.config.replace_un_with_known_vr = False
        try:
            ds[tag] = pydicom.DataElement(tag, "UN", raw)
        finally:
            pydicom.config.replace_un_with_known_vr = saved
    if draw(st.booleans()):
        block = ds.private_block(0x0029, "ACME 1.0", create=True)
        block.add_new(0x10, "OB", draw(st.binary(max_size=33)))
        block.add_new(0x11, "LO", "odd")
    if draw(st.booleans()):
        ds.ProcedureCodeSequence = draw(_sequences())
    if draw(st.booleans()):
        private_seq = draw(_sequences())
        ds.add_new(0x00311010, "SQ", private_seq)
    if draw(st.booleans()):
        ds.PerFrameFunctionalGroupsSequence = draw(_sequences())
    if draw(st.booleans()):
        ds.add_new(0x7FE00010, "OB", draw(st.binary(min_size=0, max_size=16)))
    implicit = draw(st.booleans())
    preamble = draw(st.booleans())
    return ds, implicit, preamble


def _write(ds: Dataset, implicit: bool, preamble: bool) -> bytes:
    fp = io.BytesIO()
    ts = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
    if preamble:
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
        ds.file_meta.MediaStorageSOPInstanceUID = "1.2.3.4"
        ds.file_meta.TransferSyntaxUID = ts
        ds.save_as(fp, enforce_file_format=True)
    else:
        ds.save_as(fp, implicit_vr=implicit, little_endian=True)
    return fp.getvalue()


_SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@_SETTINGS
@given(_datasets())
def test_generated_data_sets_agree(tmp_path: Path, case: tuple[Dataset, bool, bool]) -> None:
    ds, implicit, preamble = case
    try:
        data = _write(ds, implicit, preamble)
    except Exception:  # pydicom refuses to write some drawn values: nothing to compare
        return
    path = tmp_path / "generated.dcm"
    path.write_bytes(data)
    record, reference = _agree(path)
    assert scan_headers([LocalFile(path)], first_block=64) == [record]


# ------------------------------------------------------------------------------------------
# Robustness: mutations and truncations never crash or disagree


def _base_files() -> list[bytes]:
    out = []
    for name in ("CT_small.dcm", "MR_small_implicit.dcm", "rtplan.dcm", "nested_priv_SQ.dcm"):
        path = get_testdata_file(name, download=False)
        if path is not None:
            out.append(Path(path).read_bytes())
    return out


_BASES = _base_files()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    base=st.integers(0, max(len(_BASES) - 1, 0)),
    edits=st.lists(st.tuples(st.integers(0, 3000), st.integers(0, 255)), max_size=8),
    cut=st.one_of(st.none(), st.integers(0, 4000)),
)
def test_mutated_files_never_crash(
    tmp_path: Path, base: int, edits: list[tuple[int, int]], cut: int | None
) -> None:
    if not _BASES:
        pytest.skip("no pydicom test files bundled")
    data = bytearray(_BASES[base])
    for offset, value in edits:
        if offset < len(data):
            data[offset] = value
    if cut is not None:
        del data[cut:]
    path = tmp_path / "mutated.dcm"
    path.write_bytes(bytes(data))
    _agree(path)  # returns record-or-None, raises nothing, agrees when it answers
    assert scan_headers([LocalFile(path)], first_block=256) == [scan_header(LocalFile(path))]


@pytest.mark.parametrize("length", [162, 2, 6])
def test_file_meta_numbers_of_a_wrong_length_go_to_pydicom(tmp_path: Path, length: int) -> None:
    """pydicom converts the group length (UL) as it reads the file meta and fails when its
    length is no multiple of 4 (found by the mutation law): the scanner must not answer."""
    if not _BASES:
        pytest.skip("no pydicom test files bundled")
    data = bytearray(_BASES[0])
    assert data[128:140] == b"DICM\x02\x00\x00\x00UL\x04\x00"  # (0002,0000) UL, length 4
    data[138] = length
    path = tmp_path / "meta.dcm"
    path.write_bytes(bytes(data))
    assert scan_header(LocalFile(path)) is None
    _agree(path)


def test_length_fields_set_to_extremes_never_crash(tmp_path: Path) -> None:
    rng = random.Random(1234)
    for data in _BASES:
        for _ in range(100):
            mutated = bytearray(data)
            at = rng.randrange(0, min(len(data), 2000) - 4)
            mutated[at : at + 4] = rng.choice([b"\xff\xff\xff\xff", b"\xfe\xff\x00\xe0",
                                               b"\xfe\xff\xdd\xe0", b"\x00\x00\x00\x80"])
            path = tmp_path / "extreme.dcm"
            path.write_bytes(bytes(mutated))
            _agree(path)


def test_missing_and_empty_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.dcm"
    empty.write_bytes(b"")
    assert scan_header(LocalFile(empty)) is None
    assert scan_header(LocalFile(tmp_path / "missing.dcm")) is None
    assert scan_headers([LocalFile(empty), LocalFile(tmp_path / "missing.dcm")]) == [None, None]
    assert scan_headers([]) == []


def test_header_beyond_first_block_is_read(tmp_path: Path) -> None:
    ds = Dataset()
    ds.SOPInstanceUID = "1.2.3"
    ds.add_new(0x00291010, "OB", b"\x00" * 100_000)  # pushes PixelData past 16 KiB
    ds.Rows = 2
    ds.add_new(0x7FE00010, "OB", b"\x00" * 8)
    path = tmp_path / "long.dcm"
    path.write_bytes(_write(ds, implicit=False, preamble=True))
    record, reference = _agree(path)
    assert record is not None and record.rows == 2 and record.pixel_length == 8
    assert scan_headers([LocalFile(path)], first_block=1024) == [reference]


def test_plain_generated_file_is_handled(tmp_path: Path) -> None:
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.ImagePositionPatient = ["-1.5", "2", "1e-3"]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = ["0.5", " 0.5"]
    ds.InstanceNumber = "7"
    ds.NumberOfFrames = ""
    ds.Rows, ds.Columns, ds.BitsAllocated = 4, 4, 16
    ds.DiffusionBValue = 1000.0
    seq = Sequence([Dataset(), Dataset()])
    seq[0].CodeValue = "1"
    seq.is_undefined_length = True
    ds.ProcedureCodeSequence = seq
    ds.PixelData = b"\x00" * 32
    for implicit in (True, False):
        for preamble in (True, False):
            path = tmp_path / f"plain_{implicit}_{preamble}.dcm"
            path.write_bytes(_write(ds.copy(), implicit, preamble))
            record, reference = _agree(path)
            assert record is not None, (implicit, preamble)
            assert record.image_position == (-1.5, 2.0, 0.001)
            assert record.number_of_frames == 1 and record.diffusion_b_value == 1000.0
