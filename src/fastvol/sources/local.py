"""Local files through positioned reads: ``os.pread`` for a range, ``os.preadv`` into buffers.

The only module of fastvol that opens input files. A :class:`LocalFile` opens its descriptor on
first use and keeps it until :meth:`~LocalFile.close`; reads are positioned, so threads share it.
Only regular files are read: FIFOs, sockets and devices (also behind symlinks) would block or
never end, so :meth:`LocalFile.is_regular` says so before anything is opened.
"""

from __future__ import annotations

import operator
import os
import stat
import threading
from collections.abc import Sequence
from typing import Any

from ..errors import CorruptFileError, InputError
from .base import Buffer, ByteSource

__all__ = ["LocalFile"]

_READ_FLAGS = os.O_RDONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_CLOEXEC", 0)
#: preadv accepts at most IOV_MAX buffers (1024 on Linux).
_IOV_MAX = 1024
_preadv = getattr(os, "preadv", None)
_REGULAR = operator.attrgetter("_regular")
_NAME = operator.attrgetter("name")
_FD = operator.attrgetter("_fd")
#: Held while a LocalFile makes its lock (once per file, on its first open).
_MAKING_LOCKS = threading.Lock()


def _read_heads(sources: Sequence[LocalFile], buf: Buffer, block: int) -> tuple[list[int], list[int]] | None:
    """:attr:`ByteSource.read_heads` of local files: one C call for the batch, GIL released;
    None where the C reader is not built or ``FASTVOL_NATIVE=0``."""
    from .. import _ckernels

    if not _ckernels.enabled() or _ckernels.types_of(sources) != {LocalFile}:
        return None  # a subclass may read otherwise (its own read())
    try:
        from .._ckernels import _heads  # type: ignore[attr-defined]
    except ImportError:
        return None
    return _heads.read_heads(list(map(_NAME, sources)), buf, block)  # type: ignore[no-any-return]


class _Descriptor:
    """An open descriptor of a :class:`LocalFile`, closed when dropped unless closed before."""

    __slots__ = ("fd",)

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __del__(self) -> None:
        if self.fd >= 0:
            try:
                os.close(self.fd)
            except OSError:
                pass


class LocalFile(ByteSource):
    """A file on a local file system.

    Parameters
    ----------
    path
        The file's path, kept as given (it names the file in records and messages).
    regular
        Whether it is a regular file, when the caller already knows (a folder listing's file
        type); ``None`` to ask the file system when needed.
    """

    read_heads = staticmethod(_read_heads)

    # The state of a file not opened yet, as class attributes: an instance holds only what
    # differs (a scan makes one per file and opens few of them itself).
    _regular: bool | None = None  # known from the folder listing (no stat needed), else None
    _fd = -1
    _size = -1
    _readers = 0  # reads in progress: close() waits for them to end
    _close_pending = False
    _lock: threading.Lock | None = None  # made on first open (_locked)
    #: Closes the open descriptor if the file is dropped without close(): only an opened file
    #: pays for a finalizer, not each of the many a scan lists and never opens itself.
    _open: _Descriptor | None = None

    def __init__(self, path: str | os.PathLike[str], *, regular: bool | None = None) -> None:
        self.name = os.fspath(path)
        if "\x00" in self.name:  # os.open would raise a bare ValueError at the first read
            raise InputError(f"{self.name!r}: a path cannot hold a NUL byte", files=[self.name])
        self._regular = regular
        self._fd = -1
        self._size = -1
        self._readers = 0
        self._close_pending = False
        self._lock = None
        self._open = None

    @classmethod
    def listed(cls, paths: Sequence[str]) -> list[LocalFile]:
        """Sources of regular files a folder listing found (names from ``os.scandir``, which
        never hold a NUL byte): as ``LocalFile(path, regular=True)`` each, made cheaply.

        A LocalFile holds its path and descriptor state only (strings, numbers, a lock, a
        :class:`_Descriptor`), nothing that could refer back to it: those made here (a scan
        makes one per file and keeps them in its records) are left out of the cyclic garbage
        collector, which would otherwise traverse each at every full collection.
        """
        from .. import _ckernels

        new = object.__new__
        out = []
        for path in paths:
            source = new(cls)
            source.name = path
            source._regular = True
            out.append(source)
        if cls is LocalFile:  # a subclass may hold more
            _ckernels.leave_gc(out)
        return out

    @staticmethod
    def all_listed_regular(sources: Sequence[ByteSource]) -> bool:
        """Whether every source is a LocalFile (not a subclass) that a folder listing saw as a
        regular file: then each ``is_regular()`` is True, known without a call or a stat."""
        from .._ckernels import types_of

        return types_of(sources) == {LocalFile} and set(map(_REGULAR, sources)) == {True}

    @staticmethod
    def close_all(sources: Sequence[ByteSource]) -> None:
        """``close()`` each source; those never opened (a scan's, read in C) without a call."""
        if sources and max(map(_FD, sources)) >= 0:
            for source in sources:
                source.close()

    # -- lifecycle ------------------------------------------------------------------------------

    def _locked(self) -> threading.Lock:
        """This file's lock, made on first use (one lock, whichever thread asks first)."""
        lock = self._lock
        if lock is None:
            with _MAKING_LOCKS:
                lock = self._lock
                if lock is None:
                    lock = self._lock = threading.Lock()
        return lock

    def _acquire(self) -> int:
        """The open descriptor, counted as in use until :meth:`_release`."""
        with self._locked():
            if self._fd < 0:
                fd = os.open(self.name, _READ_FLAGS | getattr(os, "O_NONBLOCK", 0))
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode):
                    os.close(fd)
                    raise CorruptFileError(f"{self.name}: not a regular file", files=[self.name])
                self._size = st.st_size
                self._fd = fd
                self._open = _Descriptor(fd)
            self._readers += 1
            self._close_pending = False
            return self._fd

    def _release(self) -> None:
        with self._locked():
            self._readers -= 1
            if self._readers == 0 and self._close_pending:
                self._close_now()

    def _close_now(self) -> None:
        if self._fd >= 0:
            if self._open is not None:
                self._open.fd = -1  # closed here, not again when dropped
                self._open = None
            os.close(self._fd)
            self._fd = -1
        self._close_pending = False

    def close(self) -> None:
        # Never close a descriptor another thread is reading: its number could be reused by
        # another file. The last reader closes it instead.
        if self._fd < 0 and not self._close_pending:
            return  # not open (readers hold it open): nothing to close, no lock to take
        with self._locked():
            if self._readers:
                self._close_pending = True
            else:
                self._close_now()

    def __getstate__(self) -> dict[str, Any]:
        return {"name": self.name}  # the descriptor and lock stay in this process

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["name"])  # type: ignore[misc]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LocalFile) and other.name == self.name

    def __hash__(self) -> int:
        return hash(("LocalFile", self.name))

    # -- primitives -----------------------------------------------------------------------------

    def is_regular(self) -> bool:
        if self._regular is not None:
            return self._regular
        try:
            return stat.S_ISREG(os.stat(self.name).st_mode)
        except OSError:
            return True  # let the read raise the real error (permission, vanished, ...)

    def size(self) -> int:
        if self._size < 0:
            self._acquire()
            self._release()
        return self._size

    def read(self, offset: int, length: int) -> bytes:
        fd = self._acquire()
        try:
            return self._read(fd, offset, length)
        finally:
            self._release()

    def _read(self, fd: int, offset: int, length: int) -> bytes:
        data = os.pread(fd, length, offset)
        if len(data) < length:  # a pipe-like short read: finish it, stop at the end of file
            parts = [data]
            got = len(data)
            while got < length:
                more = os.pread(fd, length - got, offset + got)
                if not more:
                    break
                parts.append(more)
                got += len(more)
            data = b"".join(parts)
        return data

    def read_into(self, ranges: Sequence[tuple[int, int]], buffers: Sequence[Buffer]) -> None:
        fd = self._acquire()
        views = [memoryview(b).cast("B") for b in buffers]
        try:
            if _preadv is None:  # pragma: no cover - Windows
                for (offset, length), view in zip(ranges, views):
                    data = self._read(fd, offset, length)
                    if len(data) < length:
                        raise self.short_read(offset, length, len(data))
                    view[:length] = data
                return
            # Contiguous ranges go into one preadv (fragments of one frame, many small headers).
            i = 0
            while i < len(ranges):
                start = ranges[i][0]
                end = start + ranges[i][1]
                group = [views[i][: ranges[i][1]]]
                j = i + 1
                while j < len(ranges) and ranges[j][0] == end and len(group) < _IOV_MAX:
                    group.append(views[j][: ranges[j][1]])
                    end += ranges[j][1]
                    j += 1
                self._preadv_exact(fd, group, start, end - start)
                i = j
        finally:
            for view in views:
                view.release()
            self._release()

    def _preadv_exact(self, fd: int, group: list[memoryview], offset: int, wanted: int) -> None:
        done = 0
        while done < wanted:
            assert _preadv is not None
            got = _preadv(fd, group, offset + done)
            if got <= 0:
                raise self.short_read(offset, wanted, done)
            done += got
            if done < wanted:  # skip what was filled, go on with the rest
                rest: list[memoryview] = []
                skip = got
                for view in group:
                    if skip >= len(view):
                        skip -= len(view)
                        continue
                    rest.append(view[skip:])
                    skip = 0
                group = rest
