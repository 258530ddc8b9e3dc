"""The C reader of first blocks (:mod:`fastvol._ckernels._heads`, ``LocalFile.read_heads``).

It must read what ``LocalFile.read`` reads, refuse without blocking what is not a regular file,
report unreadable files as -1, and give the header pass the same records as reading file by
file does.
"""

from __future__ import annotations

import os
import threading

import factory as fx
import pytest

import fastvol
from fastvol.headers import scan as header_scan
from fastvol.sources import LocalFile


@pytest.fixture(scope="module")
def heads(c_kernel):
    return c_kernel("_heads")


def test_reads_what_read_reads(tmp_path, heads):
    sizes = [0, 1, 100, 4095, 4096, 4097, 70000]
    paths = []
    for n in sizes:
        path = tmp_path / f"f{n}"
        path.write_bytes(os.urandom(n))
        paths.append(str(path))
    block = 4096
    buf = bytearray(len(paths) * block)
    got, total = LocalFile.read_heads([LocalFile(p) for p in paths], buf, block)
    assert total == sizes
    for i, path in enumerate(paths):
        expected = LocalFile(path).read(0, block)
        assert got[i] == len(expected)
        assert bytes(buf[i * block : i * block + got[i]]) == expected


def test_unreadable_and_irregular_files_are_minus_one(tmp_path, heads):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    (tmp_path / "folder").mkdir()
    good = tmp_path / "good"
    good.write_bytes(b"x" * 10)
    paths = [str(tmp_path / "missing"), str(fifo), str(tmp_path / "folder"), str(good)]
    result: list = []
    # A FIFO with no writer would block a plain open: the read must end on its own.
    worker = threading.Thread(target=lambda: result.append(heads.read_heads(paths, bytearray(64), 16)))
    worker.start()
    worker.join(10)
    assert not worker.is_alive(), "read_heads blocked on a FIFO"
    got, total = result[0]
    assert got == [-1, -1, -1, 10] and total == [-1, -1, -1, 10]


def test_bad_arguments_raise(heads):
    with pytest.raises(ValueError):
        heads.read_heads(["a", "b"], bytearray(10), 8)  # buffer too small
    with pytest.raises(ValueError):
        heads.read_heads(["a"], bytearray(10), -1)
    with pytest.raises(TypeError):
        heads.read_heads(("a",), bytearray(10), 4)  # a tuple, not a list
    with pytest.raises(BufferError):
        heads.read_heads(["a"], b"read-only", 4)
    with pytest.raises(ValueError):
        heads.read_heads(["a\x00b"], bytearray(10), 4)  # as os.open: embedded NUL


def test_paths_changed_while_encoded(tmp_path, heads):
    # A path-like's __fspath__ runs Python code: emptying the list then must not crash the
    # reader (it reads the paths as they were when called).
    good = tmp_path / "good"
    good.write_bytes(b"x" * 10)
    paths: list = []

    class Emptying:
        def __fspath__(self) -> str:
            paths.clear()
            return str(good)

    paths.extend([Emptying(), str(good), str(good)])
    got, total = heads.read_heads(paths, bytearray(3 * 16), 16)
    assert got == [10, 10, 10] and total == [10, 10, 10]


def test_native_off_reads_file_by_file(monkeypatch, tmp_path):
    monkeypatch.setenv("FASTVOL_NATIVE", "0")
    assert LocalFile.read_heads([LocalFile(str(tmp_path))], bytearray(8), 8) is None


def test_records_equal_file_by_file(tmp_path, heads, monkeypatch):
    fx.write_series(tmp_path, n=6)
    (tmp_path / "empty").write_bytes(b"")
    (tmp_path / "junk").write_bytes(b"not dicom" * 100)
    paths = sorted(str(p) for p in tmp_path.iterdir())
    batch = header_scan.scan_headers([LocalFile(p) for p in paths], first_block=1024)
    monkeypatch.setattr(LocalFile, "read_heads", None)
    one_by_one = header_scan.scan_headers([LocalFile(p) for p in paths], first_block=1024)
    assert batch == one_by_one
    assert sum(r is not None for r in batch) == 6


def test_a_subclass_reads_through_its_own_read(tmp_path, heads):
    class Upper(LocalFile):
        def read(self, offset, length):
            return super().read(offset, length).upper()

    path = tmp_path / "f"
    path.write_bytes(b"abc")
    assert LocalFile.read_heads([Upper(str(path))], bytearray(8), 8) is None


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts descriptors in /proc")
def test_reading_file_by_file_holds_no_descriptors(tmp_path, monkeypatch):
    # Without the C reader a batch read each first block and closed the files only after the
    # batch: 256 descriptors at once (a low `ulimit -n` failed with EMFILE).
    for i in range(300):
        (tmp_path / f"f{i:03d}").write_bytes(b"\x00" * 200)
    monkeypatch.setattr(LocalFile, "read_heads", None)
    baseline = len(os.listdir("/proc/self/fd"))
    most = [0]
    read = LocalFile.read

    def counting(self, offset, length):
        most[0] = max(most[0], len(os.listdir("/proc/self/fd")) - baseline)
        return read(self, offset, length)

    monkeypatch.setattr(LocalFile, "read", counting)
    header_scan.scan_headers([LocalFile(str(p)) for p in sorted(tmp_path.iterdir())])
    assert most[0] <= 3


def test_a_path_with_a_nul_byte_is_an_input_error():
    # os.open raises a bare ValueError for it, in the C reader and in Python alike
    with pytest.raises(fastvol.InputError, match="NUL"):
        LocalFile("/tmp/a\x00b")


def test_batches_read_ahead_on_a_thread_give_the_same_records(tmp_path, heads, monkeypatch):
    """Many batches: each one's first blocks are read on a thread while the previous batch is
    scanned (alternate buffers). Records equal the one-batch-at-a-time reading, file for file,
    with unreadable, empty, long-header and non-DICOM files among them."""
    fx.write_series(tmp_path / "a", n=9, seed=1)
    fx.write_series(tmp_path / "b", n=7, seed=2, transfer_syntax=fx.ImplicitVRLittleEndian)
    (tmp_path / "empty").write_bytes(b"")
    (tmp_path / "junk").write_bytes(b"not dicom" * 100)
    os.mkdir(tmp_path / "folder.dcm")  # its read fails: -1
    paths = sorted(str(p) for p in tmp_path.rglob("*"))
    monkeypatch.setattr(header_scan, "BATCH", 4)  # 6 batches
    ahead = header_scan.scan_headers([LocalFile(p) for p in paths], first_block=512)
    monkeypatch.setattr(header_scan, "READ_AHEAD_BATCHES", 10**9)
    in_turn = header_scan.scan_headers([LocalFile(p) for p in paths], first_block=512)
    assert ahead == in_turn and sum(r is not None for r in ahead) == 16
    threads = {t.name for t in threading.enumerate()}
    assert "fastvol-read-ahead" not in threads  # each read-ahead thread has ended

    def broken(sources, buf, block):
        raise MemoryError("no buffer")

    monkeypatch.setattr(header_scan, "READ_AHEAD_BATCHES", 3)
    monkeypatch.setattr(LocalFile, "read_heads", staticmethod(broken))
    with pytest.raises(MemoryError, match="no buffer"):  # raised where the batch is taken
        header_scan.scan_headers([LocalFile(p) for p in paths], first_block=512)
