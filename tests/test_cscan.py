"""The C header scanner (:mod:`fastvol._ckernels._scan`) equals the numba and plain-Python ones.

The three kernels get the same buffers and must fill the same ``fields`` and ``info`` tables
(after outputs pre-filled with junk, so each must write every cell): the real corpus, factory
series in every transfer syntax, and generated, mutated and truncated bytes with hostile starts
and sizes. The C kernel must also refuse malformed arguments with an exception, never a crash.
"""

from __future__ import annotations

import os
from pathlib import Path

import factory as fx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.data import get_testdata_file

from fastvol import kernels
from fastvol._pykernels import scan as pyscan
from fastvol.headers import scan as header_scan

# Not marked ``kernels``: under NUMBA_DISABLE_JIT=1 the numba kernel is the plain-Python one,
# which these tests already compare with (and the Python-speed runs would be slow).
INT64_MAX = np.iinfo(np.int64).max


def _c_module():
    if os.environ.get("FASTVOL_NATIVE") == "0":
        pytest.skip("FASTVOL_NATIVE=0: the C scanner is turned off")
    from fastvol._ckernels import _scan

    return _scan


@pytest.fixture(scope="module")
def cscan():
    return _c_module()


@pytest.fixture(scope="module")
def numba_scan():
    from fastvol._kernels import scan

    return scan.scan_buffers


def _tables(kernel, buf, starts, sizes, whole, sq_tags, lay=None):
    lay = lay or header_scan.layout()
    n = len(starts)
    fields = np.full((n, len(lay.wanted), 3), 0x5A5A, dtype=np.int64)  # junk: all overwritten
    info = np.full((n, pyscan.INFO_COLUMNS), 0x5A5A, dtype=np.int64)
    kernel(buf, np.asarray(starts, np.int64), np.asarray(sizes, np.int64),
           np.asarray(whole, np.bool_), pyscan.VR_KIND, sq_tags, lay.wanted, lay.expected_vr,
           fields, info)  # fmt: skip
    return fields, info


def _agree(kernels_, buf, starts, sizes, whole, lay=None):
    """All kernels give equal tables, with and without the SQ dictionary; returns C's info."""
    for sq_tags in (header_scan._NO_SQ_TAGS, header_scan._sq_tags()):
        results = [_tables(k, buf, starts, sizes, whole, sq_tags, lay) for k in kernels_]
        for fields, info in results[1:]:
            np.testing.assert_array_equal(info, results[0][1])
            np.testing.assert_array_equal(fields, results[0][0])
    return results[0][1]


def _pack(blobs: list[bytes], gap: int = 3) -> tuple[np.ndarray, list[int], list[int]]:
    """One buffer holding every blob (``gap`` junk bytes between), with starts and sizes."""
    buf = bytearray()
    starts, sizes = [], []
    for blob in blobs:
        buf += b"\xa5" * gap
        starts.append(len(buf))
        sizes.append(len(blob))
        buf += blob
    return np.frombuffer(bytes(buf), dtype=np.uint8), starts, sizes


def _check_files(cscan, numba_scan, datas: list[bytes], block: int) -> np.ndarray:
    """First ``block`` bytes of each file (whole when it fits) through the three kernels."""
    firsts = [d[:block] for d in datas]
    buf, starts, sizes = _pack(firsts)
    whole = [len(f) == len(d) for f, d in zip(firsts, datas)]
    return _agree([cscan.scan_buffers, numba_scan, pyscan.scan_buffers], buf, starts, sizes, whole)


# ------------------------------------------------------------------------------------------
# The extension and its constants


def test_extension_is_built_and_chosen(cscan):
    import fastvol

    assert Path(cscan.__file__).parent == Path(fastvol.__file__).parent / "_ckernels"
    if os.environ.get("FASTVOL_JIT", "") not in ("0", "1"):
        assert kernels.native_scan() is cscan.scan_buffers


def test_environment_turns_the_extension_off(cscan, monkeypatch):
    for name, value in (("FASTVOL_NATIVE", "0"), ("FASTVOL_JIT", "0"), ("FASTVOL_JIT", "1")):
        with monkeypatch.context() as m:
            m.delenv("FASTVOL_NATIVE", raising=False)
            m.delenv("FASTVOL_JIT", raising=False)
            assert kernels.native_scan() is cscan.scan_buffers
            m.setenv(name, value)
            assert kernels.native_scan() is None


def test_constants_are_the_python_kernels(cscan):
    from fastvol.dicom import PER_FRAME_FUNCTIONAL_GROUPS, UNDEFINED_LENGTH

    expected = {name: getattr(pyscan, name) for name in cscan.CONSTANTS if hasattr(pyscan, name)}
    expected.update(UNDEFINED_LENGTH=UNDEFINED_LENGTH, PER_FRAME_FUNCTIONAL_GROUPS=PER_FRAME_FUNCTIONAL_GROUPS,
                    ITEM=pyscan._ITEM, ITEM_DELIMITER=pyscan._ITEM_DELIMITER,
                    SEQUENCE_DELIMITER=pyscan._SEQUENCE_DELIMITER)  # fmt: skip
    assert cscan.CONSTANTS == expected
    statuses = [n for n, v in vars(pyscan).items() if n.isupper() and isinstance(v, int) and v < 20 and not n.startswith(("INFO", "_"))]
    assert set(statuses) - {"MAX_DEPTH"} <= set(cscan.CONSTANTS)  # every status code is shared


# ------------------------------------------------------------------------------------------
# Real and factory files


@pytest.mark.corpus
def test_corpus_files_agree(corpus, cscan, numba_scan):
    datas = [p.read_bytes() for p in sorted(corpus.rglob("*")) if p.is_file()]
    assert len(datas) > 100
    for block in (4096, 1 << 40):  # first blocks (most ask for more), then whole files
        info = _check_files(cscan, numba_scan, datas, block)
        assert (info[:, pyscan.INFO_STATUS] == pyscan.OK).sum() > 50


def test_pydicom_testdata_agrees(cscan, numba_scan):
    paths = [get_testdata_file(n, download=False) for n in ("CT_small.dcm", "MR_small_implicit.dcm", "rtplan.dcm",
             "nested_priv_SQ.dcm", "priv_SQ.dcm", "UN_sequence.dcm", "badVR.dcm", "no_meta.dcm", "JPEG2000.dcm",
             "image_dfl.dcm", "MR_small_bigendian.dcm", "MR_truncated.dcm", "rtplan_truncated.dcm")]  # fmt: skip
    datas = [Path(p).read_bytes() for p in paths if p]
    if not datas:
        pytest.skip("no pydicom test files bundled")
    for block in (128, 700, 4096, 1 << 40):
        _check_files(cscan, numba_scan, datas, block)


@pytest.mark.parametrize("syntax", fx.ALL_SYNTAXES)
def test_factory_series_agree(tmp_path, cscan, numba_scan, syntax):
    fx.require(syntax)
    lossy = syntax in fx.LOSSY_SYNTAXES  # JPEG baseline: 8-bit unsigned only
    fx.write_series(tmp_path, n=3, transfer_syntax=syntax, **({"bits_allocated": 8, "signed": False} if lossy else {}))
    datas = [p.read_bytes() for p in sorted(tmp_path.iterdir())]
    info = _check_files(cscan, numba_scan, datas, 1 << 40)
    if syntax not in (fx.ExplicitVRBigEndian, fx.DeflatedExplicitVRLittleEndian):
        assert (info[:, pyscan.INFO_STATUS] == pyscan.OK).all()


# ------------------------------------------------------------------------------------------
# Generated and hostile bytes


def _base_files() -> list[bytes]:
    out = []
    for name in ("CT_small.dcm", "MR_small_implicit.dcm", "rtplan.dcm", "nested_priv_SQ.dcm", "UN_sequence.dcm"):
        path = get_testdata_file(name, download=False)
        if path is not None:
            out.append(Path(path).read_bytes()[:6000])
    return out


_BASES = _base_files()
_SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
_LENGTHS = [b"\xff\xff\xff\xff", b"\xfe\xff\x00\xe0", b"\xfe\xff\xdd\xe0", b"\xfe\xff\x0d\xe0", b"\x00\x00\x00\x80",
            b"\xe0\x7f\x10\x00", b"SQ\x00\x00", b"UN\x00\x00", b"US\x02\x00"]  # fmt: skip


@_SETTINGS
@given(data=st.binary(max_size=600), whole=st.booleans(), preamble=st.booleans())
def test_random_bytes_agree(cscan, numba_scan, data, whole, preamble):
    if preamble:
        data = bytes(128) + b"DICM" + data
    buf, starts, sizes = _pack([data])
    _agree([cscan.scan_buffers, numba_scan, pyscan.scan_buffers], buf, starts, sizes, [whole])


@_SETTINGS
@given(
    base=st.integers(0, max(len(_BASES) - 1, 0)),
    flips=st.lists(st.tuples(st.integers(0, 6000 * 8 - 1)), max_size=6),
    edits=st.lists(st.tuples(st.integers(0, 6000), st.sampled_from(_LENGTHS)), max_size=4),
    cut=st.integers(0, 6000),
    whole=st.booleans(),
)
def test_mutated_and_truncated_files_agree(cscan, numba_scan, base, flips, edits, cut, whole):
    if not _BASES:
        pytest.skip("no pydicom test files bundled")
    data = bytearray(_BASES[base])
    for (bit,) in flips:
        if bit // 8 < len(data):
            data[bit // 8] ^= 1 << (bit % 8)
    for at, value in edits:
        data[at : at + len(value)] = value
    data = bytes(data[:cut])
    buf, starts, sizes = _pack([data, data[: cut // 2]])
    _agree([cscan.scan_buffers, numba_scan, pyscan.scan_buffers], buf, starts, sizes, [whole, False])


def _structured_file() -> bytes:
    """Explicit VR data set with the structures the walk handles: an empty item, items of defined
    and undefined length, an implicit-VR item in an explicit sequence, a private implicit value."""
    empty_item = b"\xfe\xff\x00\xe0\x00\x00\x00\x00"
    code = b"\x08\x00\x00\x01SH\x02\x00T1"
    defined_item = b"\xfe\xff\x00\xe0" + len(code).to_bytes(4, "little") + code
    implicit_el = b"\x08\x00\x00\x01\x02\x00\x00\x00T2"
    undefined_item = b"\xfe\xff\x00\xe0\xff\xff\xff\xff" + implicit_el + b"\xfe\xff\x0d\xe0\x00\x00\x00\x00"
    seq = (b"\x08\x00\x15\x11SQ\x00\x00\xff\xff\xff\xff" + empty_item + defined_item + undefined_item
           + b"\xfe\xff\xdd\xe0\x00\x00\x00\x00")  # fmt: skip
    meta_value = b"1.2.840.10008.1.2.1\x00"
    meta = b"\x02\x00\x10\x00UI" + len(meta_value).to_bytes(2, "little") + meta_value
    return (bytes(128) + b"DICM" + meta + b"\x08\x00\x05\x00CS\x0a\x00ISO_IR 100" + seq
            + b"\x28\x00\x10\x00US\x02\x00\x00\x02"
            + b"\x29\x00\x10\x10UN\x00\x00\xff\xff\xff\xff" + empty_item + b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
            + b"\xe0\x7f\x10\x00OW\x00\x00\x04\x00\x00\x00abcd")  # fmt: skip


def test_every_truncation_agrees(cscan, numba_scan):
    """Each prefix of a structured file and of real files, as the whole file and as a first block
    (the plain-Python kernel, slow, on the structured file only)."""
    for i, data in enumerate([_structured_file()] + [b[:1500] for b in _BASES]):
        buf = np.frombuffer(data, dtype=np.uint8)
        cuts = np.arange(len(data) + 1)
        kernels_ = [cscan.scan_buffers, numba_scan] + ([pyscan.scan_buffers] if i == 0 else [])
        for whole in (True, False):
            info = _agree(kernels_, buf, np.zeros_like(cuts), cuts, np.full(len(cuts), whole))
    full = _agree([cscan.scan_buffers, pyscan.scan_buffers], *_pack([_structured_file()]), [True])
    assert full[0, pyscan.INFO_STATUS] == pyscan.OK and full[0, pyscan.INFO_PIXEL_LENGTH] == 4
    assert info[-1, pyscan.INFO_STATUS] in (pyscan.OK, pyscan.NEED_MORE)


def test_deep_nesting_agrees(cscan, numba_scan):
    # Undefined-length sequences of undefined-length items, nested past MAX_DEPTH frames.
    item = b"\xfe\xff\x00\xe0\xff\xff\xff\xff"
    for levels in (pyscan.MAX_DEPTH // 2 - 1, pyscan.MAX_DEPTH // 2, pyscan.MAX_DEPTH // 2 + 1, 100):
        for seq in (b"\x08\x00\x15\x11SQ\x00\x00\xff\xff\xff\xff", b"\x09\x00\x10\x10UN\x00\x00\xff\xff\xff\xff"):
            body = (seq + item) * levels + (b"\xfe\xff\x0d\xe0\x00\x00\x00\x00" + b"\xfe\xff\xdd\xe0\x00\x00\x00\x00") * levels
            data = b"\x08\x00\x05\x00CS\x04\x00ISO_" + body + b"\xe0\x7f\x10\x00OW\x00\x00\x04\x00\x00\x00abcd"
            buf, starts, sizes = _pack([data])
            info = _agree([cscan.scan_buffers, numba_scan, pyscan.scan_buffers], buf, starts, sizes, [True])
            expected = pyscan.TOO_DEEP if 2 * levels > pyscan.MAX_DEPTH else pyscan.OK
            assert info[0, pyscan.INFO_STATUS] == expected


@_SETTINGS
@given(
    starts=st.lists(st.integers(-3000, 3000), min_size=1, max_size=5),
    sizes=st.lists(st.integers(-3000, 3000), min_size=5, max_size=5),
    whole=st.lists(st.booleans(), min_size=5, max_size=5),
)
def test_hostile_starts_and_sizes_agree(cscan, numba_scan, starts, sizes, whole):
    """Starts and sizes past either end of the buffer read what Python's slicing gives."""
    if not _BASES:
        pytest.skip("no pydicom test files bundled")
    buf = np.frombuffer(_BASES[0][:2000], dtype=np.uint8)
    n = len(starts)
    _agree([cscan.scan_buffers, numba_scan, pyscan.scan_buffers], buf, starts, sizes[:n], whole[:n])


def test_extreme_starts_and_sizes_agree(cscan, numba_scan):
    """Where int64 start + size wraps, C wraps too (numba does, and numpy scalars do)."""
    buf = np.frombuffer(_BASES[0][:2000] if _BASES else bytes(2000), dtype=np.uint8)
    big = [INT64_MAX, -INT64_MAX - 1, INT64_MAX - 5, -INT64_MAX, 2**40, -(2**40), 0, 1999, -1]
    starts = [s for s in big for _ in big]
    sizes = [z for _ in big for z in big]
    with np.errstate(over="ignore"):  # the Python kernel's numpy scalars warn as they wrap
        _agree([cscan.scan_buffers, numba_scan, pyscan.scan_buffers], buf, starts, sizes, [True] * len(starts))


# ------------------------------------------------------------------------------------------
# Malformed arguments: exceptions, never a crash


def _good_args(n_files: int = 2):
    lay = header_scan.layout()
    buf = np.zeros(64, np.uint8)
    return [buf, np.zeros(n_files, np.int64), np.full(n_files, 64, np.int64), np.ones(n_files, np.bool_),
            pyscan.VR_KIND, header_scan._NO_SQ_TAGS, lay.wanted, lay.expected_vr,
            np.empty((n_files, len(lay.wanted), 3), np.int64), np.empty((n_files, pyscan.INFO_COLUMNS), np.int64)]  # fmt: skip


def _bad_variants():
    lay = header_scan.layout()
    w = len(lay.wanted)
    yield 0, np.zeros(64, np.int8)  # signed bytes
    yield 0, np.zeros((8, 8), np.uint8)  # 2-D buffer
    yield 0, np.zeros(128, np.uint8)[::2]  # not contiguous
    yield 1, np.zeros(2, np.int32)
    yield 1, np.zeros(2, np.float64)
    yield 1, np.zeros(3, np.int64)  # more files than sizes and outputs
    yield 2, np.zeros(1, np.int64)
    yield 3, np.ones(2, np.uint8)
    yield 3, np.ones(3, np.bool_)
    yield 4, pyscan.VR_KIND[:-1]
    yield 4, pyscan.VR_KIND.astype(np.int64)
    yield 5, np.zeros(2, np.uint64)
    yield 6, lay.wanted[:-1]  # wanted shorter than expected_vr and fields
    yield 7, lay.expected_vr[:-1]
    yield 7, np.frombuffer(bytes(8 * w + 1), np.uint8)[1:].view(np.int64)  # misaligned
    yield 8, np.empty((2, w, 2), np.int64)
    yield 8, np.empty((2, w + 1, 3), np.int64)
    yield 8, np.empty((2, w, 3), np.int64)[:, :, ::-1]
    yield 8, np.empty((2, w * 3), np.int64)
    yield 8, np.empty((1, w, 3), np.int64)
    readonly = np.empty((2, pyscan.INFO_COLUMNS), np.int64)
    readonly.flags.writeable = False
    yield 9, readonly
    yield 9, np.empty((2, pyscan.INFO_COLUMNS + 1), np.int64)
    yield 9, b"x" * 8 * 2 * pyscan.INFO_COLUMNS  # not writable, bytes
    yield 9, [[0] * pyscan.INFO_COLUMNS] * 2  # no buffer


def test_malformed_arguments_raise(cscan):
    args = _good_args()
    cscan.scan_buffers(*args)  # the good ones pass
    for index, bad in _bad_variants():
        broken = list(args)
        broken[index] = bad
        with pytest.raises((TypeError, ValueError, BufferError)):
            cscan.scan_buffers(*broken)
    with pytest.raises(TypeError):
        cscan.scan_buffers(*args[:-1])


def test_bytes_and_empty_inputs_are_accepted(cscan):
    args = _good_args(0)
    args[0] = b""
    cscan.scan_buffers(*args)
    args = _good_args(1)
    args[0] = bytes(200)
    cscan.scan_buffers(*args)
    assert args[9][0, pyscan.INFO_STATUS] == pyscan.COMMAND_SET  # group 0000 first


def test_scanning_past_compile_after_imports_no_numba(tmp_path, cscan):
    """With the C scanner, header work never makes a process import numba (plain Python would
    switch after COMPILE_AFTER / SCAN_FILE_WORK files)."""
    import subprocess
    import sys

    fx.write_series(tmp_path, n=4)
    rounds = kernels.COMPILE_AFTER // kernels.SCAN_FILE_WORK // 4 + 2
    code = ("import sys; from fastvol.find import find_sources; from fastvol.headers.scan import scan_headers\n"
            f"sources = find_sources(sys.argv[1])\nfor _ in range({rounds}): assert None not in scan_headers(sources)\n"
            "print(sorted({'numba', 'pydicom'} & set(sys.modules)))")  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ("FASTVOL_JIT", "FASTVOL_NATIVE")}
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.strip() == "[]"
    env["FASTVOL_NATIVE"] = "0"  # the same work without it switches: the test can fail
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.strip() == "['numba']"


def test_threads_scan_at_once_and_agree(cscan):
    """The kernel runs without the GIL on buffers pinned for the call: threads sharing the input
    buffer, each with its own outputs, all get the single-threaded tables."""
    from concurrent.futures import ThreadPoolExecutor

    datas = [_structured_file()] + _BASES
    buf, starts, sizes = _pack(datas * 50)
    whole = [True] * len(starts)
    sq_tags = header_scan._sq_tags()
    expected = _tables(cscan.scan_buffers, buf, starts, sizes, whole, sq_tags)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: _tables(cscan.scan_buffers, buf, starts, sizes, whole, sq_tags), range(16)))
    for fields, info in results:
        np.testing.assert_array_equal(fields, expected[0])
        np.testing.assert_array_equal(info, expected[1])
