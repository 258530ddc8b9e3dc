"""The header pass's C shortcuts equal the Python rules they stand for.

- ``_values.complete`` / ``build_records``: whole records in C (values, transfer syntax,
  :meth:`HeaderRecord.completed`'s rules) equal ``HeaderRecord.build`` on generated values, and
  the records of :func:`fastvol.headers.scan._record` (the Python path) on real files;
- ``_values.group_by_slots`` and ``types_of`` equal their Python twins;
- :func:`fastvol.group.group_series` equals the per-record grouping it replaced;
- the C scanner's cursor over wanted tags agrees with the other kernels on elements out of order;
- :meth:`LocalFile.listed` sources behave as ``LocalFile(path, regular=True)``.
"""

from __future__ import annotations

import dataclasses
import gc
import math
import os
import pickle
import random
import struct
from pathlib import Path
from typing import Any

import factory as fx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastvol import _ckernels
from fastvol._pykernels import scan as pyscan
from fastvol.dicom import HeaderRecord
from fastvol.group import (
    ORIENTATION_DECIMALS,
    SPACING_DECIMALS,
    Series,
    _group_key,
    _rounded,  # unchanged: only the grouping around it was replaced
    group_series,
)
from fastvol.headers import read_header_pydicom
from fastvol.headers import scan as header_scan
from fastvol.sources import LocalFile

NAMES = [f.name for f in dataclasses.fields(HeaderRecord)]


@pytest.fixture(scope="module")
def cvalues(c_kernel):
    return c_kernel("_values")


@pytest.fixture(scope="module")
def plan(cvalues):
    made = header_scan._c_plan()
    assert made is not None
    return made


# ------------------------------------------------------------------------------------------
# HeaderRecord.completed in C


_VALUE = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 5), st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True), st.sampled_from(["", "1.2", "CT", "1.2.840.10008.1.3.10"]),
    st.tuples(st.floats(-5, 5), st.floats(-5, 5)), st.just(()),
)  # fmt: skip
_KEYS = st.sampled_from([*NAMES, "media_storage_sop_class_uid"])


def _outcome(make: Any, values: dict[str, Any]) -> tuple[str, Any]:
    try:
        return "ok", make(values)
    except Exception as exc:  # noqa: BLE001  # the same error, not only an error
        return "raises", type(exc)


@settings(max_examples=800, deadline=None)
@given(values=st.dictionaries(_KEYS, _VALUE, max_size=12))
def test_complete_is_completed(cvalues, plan, values):
    kind, c_record = _outcome(lambda v: cvalues.complete(plan, dict(v)), values)
    python_kind, python_record = _outcome(HeaderRecord.build, values)
    assert kind == python_kind, (values, c_record, python_record)
    if kind == "ok":
        assert type(c_record) is HeaderRecord
        for name in NAMES:  # each value, its type and (source, not compared) identity
            a, b = getattr(c_record, name), getattr(python_record, name)
            both_nan = isinstance(a, float) and math.isnan(a) and isinstance(b, float) and math.isnan(b)
            assert type(a) is type(b) and (a == b or a is b or both_nan), (name, a, b)
    else:
        assert c_record == python_record


def test_complete_leaves_unknown_keys_to_the_class(cvalues, plan):
    assert cvalues.complete(plan, {"no_such_field": 1}) is None
    with pytest.raises(TypeError):
        HeaderRecord.build({"no_such_field": 1})


def test_complete_applies_each_rule(cvalues, plan):
    record = cvalues.complete(plan, {"bits_allocated": 16, "samples_per_pixel": 0, "number_of_frames": -3,
                                     "sop_class_uid": "", "media_storage_sop_class_uid": "1.2", "modality": None})  # fmt: skip
    assert record == HeaderRecord.build({"bits_allocated": 16, "samples_per_pixel": 0, "number_of_frames": -3,
                                         "sop_class_uid": "", "media_storage_sop_class_uid": "1.2", "modality": None})  # fmt: skip
    assert (record.bits_stored, record.high_bit, record.samples_per_pixel, record.number_of_frames,
            record.sop_class_uid, record.modality) == (16, 15, 1, 1, "1.2", "")  # fmt: skip


def test_plan_refuses_bad_tables(cvalues):
    slots = header_scan._record_slots()
    info = tuple(range(10))
    args = (HeaderRecord, slots, (), 0, 1, info, 0, ("a", "b", "c", "d"), ({}, "int"), None)
    with pytest.raises(ValueError):
        cvalues.make_plan(*args)  # fewer values than slots
    values = tuple((name, 0, 0, 0, 0, None, -1) for name, _, _ in slots)
    cvalues.make_plan(HeaderRecord, slots, values, *args[3:])
    bad_rule = (*values[:-1], (values[-1][0], 0, 0, 0, cvalues.R_NONE_SAME, None, len(values) - 1))
    with pytest.raises(ValueError):
        cvalues.make_plan(HeaderRecord, slots, bad_rule, *args[3:])  # a rule reading itself
    with pytest.raises(TypeError):
        cvalues.make_plan(dict, (), (), *args[3:])


# ------------------------------------------------------------------------------------------
# build_records: the records of _record, and the files it leaves to it


def _scan_paths(paths, monkeypatch, plan: bool, first_block: int = 4096):
    if not plan:
        monkeypatch.setattr(header_scan, "_c_plan", lambda: None)
    try:
        return header_scan.scan_headers([LocalFile(str(p)) for p in paths], first_block=first_block)
    finally:
        monkeypatch.undo()


def _built_equal(paths, monkeypatch) -> int:
    """Records with the C builder equal those without (C values, Python records) and pydicom's."""
    with_plan = _scan_paths(paths, monkeypatch, True)
    without = _scan_paths(paths, monkeypatch, False)
    for path, a, b in zip(paths, with_plan, without):
        assert a == b, path
        if a is not None:
            assert a.source.name == str(path) and a.as_dict() == read_header_pydicom(LocalFile(str(path))).as_dict()
    return sum(r is not None for r in with_plan)


@pytest.mark.parametrize("syntax", fx.ALL_SYNTAXES)
def test_factory_records_built_in_c_equal(tmp_path, cvalues, monkeypatch, syntax):
    fx.require(syntax)
    lossy = syntax in fx.LOSSY_SYNTAXES
    fx.write_series(tmp_path, n=3, transfer_syntax=syntax, **({"bits_allocated": 8, "signed": False} if lossy else {}))
    _built_equal(sorted(tmp_path.iterdir()), monkeypatch)


@pytest.mark.parametrize("charset", ["", "ISO_IR 100", "ISO_IR 192", "GB18030", "ISO 2022 IR 87", "ISO_IR 6\\ISO_IR 100"])
def test_character_sets_and_text_equal(tmp_path, cvalues, monkeypatch, charset):
    def edit(k: int, ds: Any) -> None:
        if charset:
            ds.SpecificCharacterSet = charset
        ds.SeriesDescription = "Tête ½ 肺" if charset else "plain text"
        ds.Manufacturer = "ACME\\Second"

    try:
        fx.write_series(tmp_path, n=2, edit=edit)
    except (UnicodeError, LookupError, ValueError):
        pytest.skip(f"the factory cannot write {charset!r}")
    _built_equal(sorted(tmp_path.iterdir()), monkeypatch)


@pytest.mark.corpus
def test_corpus_records_built_in_c_equal(corpus, cvalues, monkeypatch):
    paths = [p for p in sorted(corpus.rglob("*")) if p.is_file() and p.suffix.lower() not in
             (".nii", ".gz", ".json", ".md", ".txt", ".bval", ".bvec")]  # fmt: skip
    assert _built_equal(paths, monkeypatch) > 50


def test_plain_files_are_built_in_c(tmp_path, cvalues, plan, monkeypatch):
    # The shortcut is taken (no file of an ordinary series goes through _record)...
    fx.write_series(tmp_path, n=4)
    calls: list[Any] = []
    record = header_scan._record
    monkeypatch.setattr(header_scan, "_record", lambda *a, **k: calls.append(a) or record(*a, **k))
    records = header_scan.scan_headers([LocalFile(str(p)) for p in sorted(tmp_path.iterdir())])
    assert all(r is not None for r in records) and not calls
    # ... and records of local files, which hold no reference back, leave the collector's tracking
    assert not any(gc.is_tracked(r) for r in records)


def test_extra_tags_go_through_python(tmp_path, cvalues, monkeypatch):
    fx.write_series(tmp_path, n=2)
    paths = sorted(tmp_path.iterdir())
    records = header_scan.scan_headers([LocalFile(str(p)) for p in paths], extra_tags=["PatientID"])
    assert [r.extra for r in records] == [read_header_pydicom(LocalFile(str(p)), extra_tags=[0x00100020]).extra
                                          for p in paths]  # fmt: skip


# ------------------------------------------------------------------------------------------
# group_by_slots, types_of


@dataclasses.dataclass(frozen=True, slots=True)
class Item:
    a: Any = None
    b: Any = None


class Plain:
    def __init__(self, a: Any, b: Any) -> None:
        self.a, self.b = a, b


_NAN = float("nan")
_POOL = [1, 1.0, 2, "x", "x" + "", (1.0, 2.0), (1.0, 2.0), _NAN, float("nan"), None, (_NAN,), (float("nan"),)]


def _python_groups(records, names):
    out: dict = {}
    for r in records:
        out.setdefault(tuple(getattr(r, n) for n in names), []).append(r)
    return out


def _same_groups(a: dict, b: dict) -> None:
    assert len(a) == len(b)
    for (ka, va), (kb, vb) in zip(a.items(), b.items()):
        assert len(ka) == len(kb) and all(x is y or x == y for x, y in zip(ka, kb))
        assert [id(r) for r in va] == [id(r) for r in vb]


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(picks=st.lists(st.tuples(st.integers(0, len(_POOL) - 1), st.integers(0, len(_POOL) - 1),
                                st.booleans()), max_size=40))  # fmt: skip
def test_group_by_slots_is_setdefault(cvalues, picks):
    records = [(Item if slotted else Plain)(_POOL[i], _POOL[j]) for i, j, slotted in picks]
    members = (Item.__dict__["a"], Item.__dict__["b"])
    _same_groups(cvalues.group_by_slots(records, members), _python_groups(records, ("a", "b")))
    _same_groups(_ckernels.group_by_slots(records, Item, ("b",)), _python_groups(records, ("b",)))


def test_group_by_slots_errors_as_getattr(cvalues):
    class Empty:
        __slots__ = ("a",)

    with pytest.raises(AttributeError):
        cvalues.group_by_slots([Empty()], (Empty.__dict__["a"],))
    with pytest.raises(TypeError):
        cvalues.group_by_slots([], ())
    with pytest.raises(TypeError):
        cvalues.group_by_slots([], (Plain,))


def test_group_by_slots_without_c(monkeypatch):
    monkeypatch.setenv("FASTVOL_NATIVE", "0")
    records = [Item(1, 2), Item(1, 2), Item(2, 2)]
    _same_groups(_ckernels.group_by_slots(records, Item, ("a",)), _python_groups(records, ("a",)))


@given(items=st.lists(st.sampled_from([1, "a", 2.0, None, Item(), (1,), b"x"]), max_size=30))
def test_types_of_is_set_of_types(cvalues, items):
    assert cvalues.types_of(items) == set(map(type, items)) == _ckernels.types_of(items)


# ------------------------------------------------------------------------------------------
# group_series equals the per-record grouping it replaced


def _reference_groups(records):
    """group_series as it was: a key per record (fastvol 0.x, before group_by_slots)."""
    by_uid: dict = {}
    for rec in records:
        by_uid.setdefault(rec.series_instance_uid, []).append(rec)
    out = []
    memo: dict = {}
    for uid_records in by_uid.values():
        groups: dict = {}
        for rec in uid_records:
            key = (rec.is_localizer, _rounded(rec.image_orientation, ORIENTATION_DECIMALS, memo), rec.rows,
                   rec.columns, _rounded(rec.pixel_spacing, SPACING_DECIMALS, memo), rec.samples_per_pixel,
                   rec.is_enhanced)  # fmt: skip
            groups.setdefault(key, []).append(rec)
        ordered = sorted(groups.items(), key=lambda kv: (kv[0][0], -len(kv[1])))
        single = len(ordered) == 1
        for part, (_, group_records) in enumerate(ordered, start=1):
            mine = {id(r) for r in group_records}
            siblings = tuple(r for r in uid_records if id(r) not in mine)
            out.append(Series(records=tuple(group_records), part=0 if single else part, siblings=siblings))
    out.sort(key=lambda s: (s.number if s.number is not None else 1 << 30, s.uid, s.part))
    return out


_ORIENTATIONS = [(1.0, 0.0, 0.0, 0.0, 1.0, 0.0), (1.0, 0.0, 0.0, 0.0, 1.0, 0.0), (1.00001, 0.0, 0.0, 0.0, 1.0, 0.0),
                 (1.0, 0.0, 0.0, 0.0, 0.0, -1.0), (_NAN, 0.0, 0.0, 0.0, 1.0, 0.0), None]  # fmt: skip
_TYPES = [("ORIGINAL", "PRIMARY", "AXIAL"), ("DERIVED", "SECONDARY"), ("ORIGINAL", "PRIMARY", "LOCALIZER"), ()]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(picks=st.lists(st.tuples(st.integers(0, 2), st.integers(0, len(_TYPES) - 1),
                                st.integers(0, len(_ORIENTATIONS) - 1), st.sampled_from([2, 3]),
                                st.sampled_from([None, (0.5, 0.5), (0.50001, 0.5)]), st.booleans(),
                                st.sampled_from([None, 3, 1])), max_size=30))  # fmt: skip
def test_group_series_equals_per_record_grouping(picks):
    records = [HeaderRecord(path=f"f{k}", series_instance_uid=f"1.{uid}", image_type=_TYPES[t],
                            image_orientation=_ORIENTATIONS[o], rows=rows, columns=2, pixel_spacing=spacing,
                            is_enhanced=enhanced, series_number=number)
               for k, (uid, t, o, rows, spacing, enhanced, number) in enumerate(picks)]  # fmt: skip
    if picks:
        records.append(records[0])  # the same record twice
    found = [(s.part, [id(r) for r in s.records], [id(r) for r in s.siblings]) for s in group_series(records)]
    expected = [(s.part, [id(r) for r in s.records], [id(r) for r in s.siblings]) for s in _reference_groups(records)]
    assert found == expected


def test_group_key_once_per_parts(monkeypatch):
    calls: list[Any] = []
    from fastvol import group as group_module

    monkeypatch.setattr(group_module, "_group_key", lambda r, memo: calls.append(r) or _group_key(r, memo))
    records = [HeaderRecord(path=str(k), series_instance_uid="1.2", rows=2) for k in range(50)]
    assert len(group_series(records)) == 1 and len(calls) == 1


# ------------------------------------------------------------------------------------------
# The scanner's cursor over wanted tags: elements out of order


def _element(tag: int, vr: bytes, value: bytes) -> bytes:
    group, elem = tag >> 16, tag & 0xFFFF
    if vr in (b"OB", b"OW", b"SQ", b"UN", b"UT"):
        return struct.pack("<HH2s2xI", group, elem, vr, len(value)) + value
    return struct.pack("<HH2sH", group, elem, vr, len(value)) + value


_ELEMENTS = [(0x00080016, b"UI", b"1.2.840.10008.5.1.4.1.1.2\x00"), (0x00080018, b"UI", b"1.2.3.4\x00"),
             (0x00080060, b"CS", b"CT"), (0x00200013, b"IS", b"7 "), (0x0020000E, b"UI", b"1.2.3\x00"),
             (0x00200032, b"DS", b"0\\0\\1 "), (0x00280010, b"US", b"\x02\x00"), (0x00280011, b"US", b"\x02\x00"),
             (0x00280100, b"US", b"\x10\x00"), (0x00090010, b"LO", b"PRIVATE "), (0x00181020, b"LO", b"v1")]  # fmt: skip


@settings(max_examples=200, deadline=None)
@given(order=st.permutations(list(range(len(_ELEMENTS)))), whole=st.booleans())
def test_elements_out_of_order_agree(order, whole):
    if os.environ.get("FASTVOL_NATIVE") == "0":
        pytest.skip("FASTVOL_NATIVE=0: the C scanner is turned off")
    from fastvol._ckernels import _scan

    meta_value = b"1.2.840.10008.1.2.1\x00"
    data = (bytes(128) + b"DICM" + _element(0x00020010, b"UI", meta_value)
            + b"".join(_element(*_ELEMENTS[i]) for i in order) + _element(0x7FE00010, b"OW", b"\x00" * 8))  # fmt: skip
    lay = header_scan.layout()
    tables = []
    for kernel in (_scan.scan_buffers, pyscan.scan_buffers):
        fields = np.zeros((1, len(lay.wanted), 3), dtype=np.int64)
        info = np.zeros((1, pyscan.INFO_COLUMNS), dtype=np.int64)
        kernel(np.frombuffer(data, np.uint8), np.zeros(1, np.int64), np.array([len(data)], np.int64),
               np.array([whole]), pyscan.VR_KIND, header_scan._NO_SQ_TAGS, lay.wanted, lay.expected_vr, fields, info)  # fmt: skip
        tables.append((fields, info))
    np.testing.assert_array_equal(tables[0][0], tables[1][0])
    np.testing.assert_array_equal(tables[0][1], tables[1][1])


# ------------------------------------------------------------------------------------------
# LocalFile.listed, the lazy lock and the finalizer of opened files


def test_listed_sources_are_local_files(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"0123456789")
    listed, made = LocalFile.listed([str(path)])[0], LocalFile(str(path), regular=True)
    assert listed == made and hash(listed) == hash(made) and repr(listed) == repr(made)
    assert listed.is_regular() and listed.size() == 10 and listed.read(2, 3) == b"234"
    listed.close()
    assert pickle.loads(pickle.dumps(listed)) == made
    assert LocalFile.all_listed_regular([listed]) and not LocalFile.all_listed_regular([LocalFile(str(path))])


def test_a_dropped_open_file_closes_its_descriptor(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    source = LocalFile.listed([str(path)])[0]
    assert source.read(0, 3) == b"abc"
    fd = source._fd
    os.fstat(fd)  # open
    del source
    gc.collect()
    with pytest.raises(OSError):
        os.fstat(fd)


def test_closed_then_dropped_closes_nothing_else(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    source = LocalFile(str(path))
    source.read(0, 1)
    fd = source._fd
    source.close()
    other = os.open(str(path), os.O_RDONLY)  # may reuse fd's number
    try:
        del source
        gc.collect()
        os.fstat(other)  # still open: the finalizer did not close a number it no longer owns
    finally:
        os.close(other)
    assert fd >= 0


def test_heads_of_empty_and_large_files(tmp_path, c_kernel):
    heads = c_kernel("_heads")
    (tmp_path / "empty").write_bytes(b"")
    (tmp_path / "large").write_bytes(bytes(range(256)) * 100)
    got, sizes = heads.read_heads([str(tmp_path / "empty"), str(tmp_path / "large")], bytearray(2 * 1000), 1000)
    assert got == [0, 1000] and sizes == [0, 25600]


def test_listed_names_of_every_kind(tmp_path, c_kernel):
    c_kernel("_heads")  # the batch reader: skipped where the C kernels are off
    names = ["a", "ä", "b c", "ü\udcff"]  # ASCII, non-ASCII, surrogate-escaped bytes
    for name in names:
        try:
            (tmp_path / name).write_bytes(name.encode("utf-8", "surrogateescape"))
        except (UnicodeError, OSError):
            continue
    sources = LocalFile.listed([str(tmp_path / n) for n in sorted(os.listdir(tmp_path))])
    buf = bytearray(64 * len(sources))
    got, _ = LocalFile.read_heads(sources, buf, 64)
    for i, source in enumerate(sources):
        assert bytes(buf[64 * i : 64 * i + got[i]]) == source.read(0, 64)


def test_random_listing_order_is_sorted(tmp_path):
    from fastvol.find import walk

    names = [f"{random.random():.6f}" for _ in range(30)] + [".hidden"]
    for name in names:
        (tmp_path / name).write_bytes(b"")
    assert [Path(p).name for p, _ in walk(str(tmp_path))] == sorted(n for n in names if n[0] != ".")
    assert math.isnan(_NAN)


def test_listed_local_files_leave_the_collector_and_still_free(tmp_path, c_kernel):
    import weakref

    c_kernel("_values")
    (tmp_path / "f").write_bytes(b"abc")
    source = LocalFile.listed([str(tmp_path / "f")])[0]
    assert not gc.is_tracked(source)
    assert source.read(0, 3) == b"abc"  # opened, a lock and a descriptor holder added
    gone = weakref.ref(source)
    del source
    assert gone() is None  # freed by its reference count, no collection needed

    class Mine(LocalFile):
        pass

    assert gc.is_tracked(Mine.listed([str(tmp_path / "f")])[0])  # a subclass may hold more
