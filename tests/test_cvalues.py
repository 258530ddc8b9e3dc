"""The C value converter (:mod:`fastvol._ckernels._values`) equals the Python converters.

Where it says it is sure, every kind's value must be exactly (type and value) what
:data:`fastvol.headers.convert.RAW_CONVERTERS` gives; where the Python converter refuses a value
(``Unsure``), C must not be sure. Checked on generated values (DICOM-like numbers, text, UIDs,
padding) and arbitrary bytes. Whole records built through it (``convert_rows`` + ``new_record``)
must equal the records of the Python path and of pydicom: the corpus, pydicom's test files and
factory series in every transfer syntax.
"""

from __future__ import annotations

import dataclasses
import struct
from pathlib import Path

import factory as fx
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom.data import get_testdata_file

from fastvol.dicom import HeaderRecord
from fastvol.headers import convert, read_header_pydicom
from fastvol.headers import scan as header_scan
from fastvol.sources import LocalFile

KINDS = ("text", "uid", "lo", "int", "float", "scale", "spacing", "fd", "floats2", "floats3", "floats6",
         "image_type")


@pytest.fixture(scope="module")
def cvalues(c_kernel):
    return c_kernel("_values")


def _python(kind: str, raw: bytes, latin1: bool = True):
    convert_ = convert.RAW_CONVERTERS[kind]
    try:
        return True, convert_(raw, latin1) if kind == "lo" else convert_(raw)
    except convert.Unsure:
        return False, None


def _check(cvalues, kind: str, raw: bytes) -> bool:
    """C agrees with Python on ``raw``; returns whether C was sure."""
    sure, value = cvalues.convert_value(header_scan.C_KINDS[kind], raw)
    if not sure:
        return False
    # lo: C is only sure where the character set cannot matter
    for latin1 in (True, False) if kind == "lo" else (True,):
        python_sure, expected = _python(kind, raw, latin1)
        assert python_sure, (kind, raw, value)
        assert value == expected and type(value) is type(expected), (kind, raw, value, expected)
        if isinstance(value, tuple):
            assert [type(v) for v in value] == [type(v) for v in expected]
    return True


def test_kind_codes_are_the_modules(cvalues):
    names = {"text": "K_TEXT", "uid": "K_UID", "lo": "K_LO", "int": "K_INT", "float": "K_FLOAT",
             "scale": "K_SCALE", "fd": "K_FD", "floats2": "K_FLOATS2", "floats3": "K_FLOATS3",
             "floats6": "K_FLOATS6", "image_type": "K_IMAGE_TYPE", "us": "K_US",
             "spacing": "K_SPACING"}  # fmt: skip
    assert header_scan.C_KINDS == {kind: getattr(cvalues, name) for kind, name in names.items()}
    assert {f.kind for f in header_scan.HEADER_FIELDS} <= set(header_scan.C_KINDS)


# Values as files hold them: numbers in DICOM's forms, UIDs, padded text, several values.
_NUMBER = st.one_of(
    st.integers(-(10**17), 10**17).map(str),
    st.floats(allow_nan=False, allow_infinity=False, width=64).map(repr),
    st.floats(-1e4, 1e4).map(lambda v: f"{v:.6g}"),
    st.sampled_from(["", " ", "1.", ".5", "-.5e-3", "+7", "1e400", "-1E-400", "00012", "-0", "1.0", "2.50",
                     "1e", "e5", "+-1", "1..2", ".", "-", "1 2", "0x10", "1_0", "١", "inf", "nan"]),
)  # fmt: skip
_PAD = st.sampled_from(["", " ", "\x00", "  ", " \x00", "\x00\x00"])
_VALUE = st.builds(lambda lead, items, pad: " " * lead + "\\".join(items) + pad,
                   st.integers(0, 2), st.lists(_NUMBER, min_size=1, max_size=8), _PAD)  # fmt: skip
_TEXT = st.builds(lambda lead, items, pad: " " * lead + "\\".join(items) + pad, st.integers(0, 2),
                  st.lists(st.text(st.characters(min_codepoint=0, max_codepoint=255), max_size=12),
                           min_size=1, max_size=4), _PAD)  # fmt: skip
_UID = st.builds(lambda parts, pad: ".".join(parts) + pad,
                 st.lists(st.integers(0, 10**12).map(str), min_size=1, max_size=8), _PAD)  # fmt: skip


@settings(max_examples=600, deadline=None)
@given(value=_VALUE, kind=st.sampled_from(["int", "float", "scale", "spacing", "floats2", "floats3", "floats6"]))
def test_numbers_agree(cvalues, value, kind):
    _check(cvalues, kind, value.encode("utf-8"))


@settings(max_examples=400, deadline=None)
@given(value=_TEXT, kind=st.sampled_from(["text", "uid", "lo", "image_type"]))
def test_text_agrees(cvalues, value, kind):
    _check(cvalues, kind, value.encode("utf-8"))


@settings(max_examples=300, deadline=None)
@given(value=_UID)
def test_uids_agree_and_are_sure(cvalues, value):
    assert _check(cvalues, "uid", value.encode("ascii"))


@settings(max_examples=600, deadline=None)
@given(raw=st.binary(max_size=80), kind=st.sampled_from(KINDS))
def test_arbitrary_bytes_agree(cvalues, raw, kind):
    _check(cvalues, kind, raw)


@settings(max_examples=200, deadline=None)
@given(values=st.lists(st.floats(width=64), max_size=3), extra=st.binary(max_size=7))
def test_fd_agrees(cvalues, values, extra):
    raw = struct.pack(f"<{len(values)}d", *values)
    _check(cvalues, "fd", raw)
    _check(cvalues, "fd", raw + extra)


def test_common_values_are_sure(cvalues):
    # The values of an ordinary CT file never go back to Python.
    for kind, raw in [("uid", b"1.2.840.10008.5.1.4.1.1.2\x00"), ("text", b"CT"), ("lo", b"ACME Medical "),
                      ("int", b"12 "), ("float", b"-1024 "), ("scale", b"1"), ("floats3", b"-125.0\\-125.0\\37.5 "),
                      ("floats6", b"1\\0\\0\\0\\1\\0 "), ("floats2", b"0.703125\\0.703125"),
                      ("spacing", b"0.703125\\0.703125 "), ("scale", b"-1024.0 "),
                      ("image_type", b"ORIGINAL\\PRIMARY\\AXIAL "), ("fd", struct.pack("<d", 800.0))]:  # fmt: skip
        assert _check(cvalues, kind, raw), (kind, raw)


def test_new_record_equals_the_constructor(cvalues):
    slots = header_scan._record_slots()
    values = HeaderRecord.completed({"path": "a", "rows": 4, "image_position": (1.0, 2.0, 3.0),
                                     "media_storage_sop_class_uid": "1.2"})  # fmt: skip
    record = cvalues.new_record(HeaderRecord, slots, values)
    assert type(record) is HeaderRecord
    assert record == HeaderRecord(**values)
    assert record.bits_stored == 0 and record.sop_class_uid == "1.2" and record.source is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.rows = 5  # type: ignore[misc]
    assert cvalues.new_record(HeaderRecord, slots, {**values, "no_such_field": 1}) is None


def test_new_record_refuses_foreign_slots(cvalues):
    @dataclasses.dataclass(frozen=True, slots=True)
    class Other:
        x: int = 0

    with pytest.raises(TypeError):
        cvalues.new_record(HeaderRecord, (("x", Other.__dict__["x"], 0),), {})
    with pytest.raises(TypeError):
        cvalues.new_record(HeaderRecord, (("x", 1, 0),), {})
    # A class whose __new__ sets up its instances (dict: its table) cannot be built without it.
    with pytest.raises(TypeError):
        cvalues.new_record(dict, (), {})


def test_convert_rows_files_changed_while_converting(cvalues):
    # A name's __hash__ runs Python code: emptying the list of files then must not crash the
    # converter (it converts the files listed when called).
    files: list = []

    class Emptying(str):
        def __hash__(self) -> int:
            files.clear()
            return str.__hash__(self)

        __eq__ = str.__eq__

    files.extend([0, 0, 0])
    fields = np.zeros((1, 1, 3), dtype=np.int64)
    fields[0, 0, 1] = 1
    pairs = cvalues.convert_rows(b"x", fields, ((Emptying("a"), 0, cvalues.K_TEXT),), files)
    assert pairs == [({"a": "x"}, ())] * 3


# ------------------------------------------------------------------------------------------
# Whole records: C path == Python path == pydicom


def _records(paths, monkeypatch, c: bool):
    if not c:
        monkeypatch.setattr(header_scan, "_c_values", lambda: None)
    try:
        return header_scan.scan_headers([LocalFile(str(p)) for p in paths], first_block=4096)
    finally:
        monkeypatch.undo()


def _agree(paths, monkeypatch) -> int:
    with_c = _records(paths, monkeypatch, True)
    without = _records(paths, monkeypatch, False)
    assert with_c == without
    for path, record in zip(paths, with_c):
        if record is not None:
            assert record == read_header_pydicom(LocalFile(str(path))), path
    return sum(r is not None for r in with_c)


@pytest.mark.corpus
def test_corpus_records_agree(corpus, cvalues, monkeypatch):
    paths = [p for p in sorted(corpus.rglob("*")) if p.is_file() and p.suffix.lower() not in (".nii", ".gz", ".json", ".md", ".txt", ".bval", ".bvec")]
    assert _agree(paths, monkeypatch) > 50


def test_pydicom_testdata_records_agree(cvalues, monkeypatch):
    names = ("CT_small.dcm", "MR_small.dcm", "MR_small_implicit.dcm", "rtplan.dcm", "JPEG2000.dcm", "emri_small.dcm",
             "SC_rgb.dcm", "MR_small_RLE.dcm", "chr_ideographic.dcm", "chr_arab.dcm", "chr_russian.dcm")  # fmt: skip
    paths = [p for p in (get_testdata_file(n, download=False) for n in names) if p]
    if not paths:
        pytest.skip("no pydicom test files bundled")
    _agree([Path(p) for p in paths], monkeypatch)


@pytest.mark.parametrize("syntax", fx.ALL_SYNTAXES)
def test_factory_records_agree(tmp_path, cvalues, monkeypatch, syntax):
    fx.require(syntax)
    lossy = syntax in fx.LOSSY_SYNTAXES
    fx.write_series(tmp_path, n=4, transfer_syntax=syntax, **({"bits_allocated": 8, "signed": False} if lossy else {}))
    paths = sorted(tmp_path.iterdir())
    scanned = _agree(paths, monkeypatch)
    if syntax not in (fx.ExplicitVRBigEndian, fx.DeflatedExplicitVRLittleEndian):
        assert scanned == len(paths)


def test_record_slots_fall_back_without_plain_defaults(monkeypatch):
    # A field with a factory (or none): records are built by the class itself, never with MISSING.
    assert header_scan._record_slots() is not None
    fields = list(dataclasses.fields(HeaderRecord))
    broken = dataclasses.field(default_factory=tuple)
    broken.name, broken.default = fields[-1].name, dataclasses.MISSING
    header_scan._record_slots.cache_clear()
    monkeypatch.setattr(dataclasses, "fields", lambda cls: (*fields[:-1], broken))
    try:
        assert header_scan._record_slots() is None
    finally:
        monkeypatch.undo()
        header_scan._record_slots.cache_clear()
