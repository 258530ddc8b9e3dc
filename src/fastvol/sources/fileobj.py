"""Open binary file objects as sources (``io.BytesIO``, an open file, an fsspec file, ...).

A seekable object is read in place: each read seeks, reads and puts the position back where
the caller left it (as pydicom's ``pixel_array(src)`` does), under a lock, so threads can share
it. One that cannot seek (a pipe, a socket stream) is read whole once, into memory.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Sequence
from typing import Any

from ..errors import InputError
from .base import Buffer, ByteSource
from .memory import MemorySource

__all__ = ["FileObjectSource", "is_file_object", "source_from_file_object"]


def is_file_object(obj: object) -> bool:
    """Whether ``obj`` is a readable file object (has ``read``), not a path or a source."""
    return callable(getattr(obj, "read", None)) and not isinstance(obj, (str, bytes, ByteSource))


def _name(obj: Any) -> str:
    name = getattr(obj, "name", None)
    if isinstance(name, str) and name:
        return name
    path = getattr(obj, "path", None)  # fsspec files
    return path if isinstance(path, str) and path else f"<{type(obj).__name__} at {id(obj):#x}>"


def source_from_file_object(obj: Any) -> ByteSource:
    """The source for an open binary file object: read in place when seekable, else whole.

    Raises
    ------
    InputError
        The object is open in text mode, or reading it fails.
    """
    mode = getattr(obj, "mode", None)
    if isinstance(obj, io.TextIOBase) or (isinstance(mode, str) and "b" not in mode):
        raise InputError(f"{_name(obj)}: a file object must be open in binary mode ('rb')",
                         files=[_name(obj)])  # fmt: skip
    seekable = getattr(obj, "seekable", None)
    try:
        if callable(seekable) and seekable():
            return FileObjectSource(obj)
        data = obj.read()
    except (OSError, ValueError) as exc:
        raise InputError(f"{_name(obj)}: cannot be read ({exc})", files=[_name(obj)]) from exc
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InputError(f"{_name(obj)}: a file object must be open in binary mode ('rb')",
                         files=[_name(obj)])  # fmt: skip
    return MemorySource(data, _name(obj))


class FileObjectSource(ByteSource):
    """A seekable binary file object; its position is restored after every read.

    Pickles as its bytes (a :class:`MemorySource`): an open file object cannot cross processes.
    """

    def __init__(self, fileobj: Any, name: str | None = None) -> None:
        self.fileobj = fileobj
        self.name = name or _name(fileobj)
        self._lock = threading.Lock()
        self._size = -1

    def __reduce__(self) -> tuple[Any, ...]:
        return (MemorySource, (self.read(0, self.size()), self.name))

    def _check(self, data: Any) -> bytes:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise InputError(f"{self.name}: a file object must be open in binary mode ('rb')",
                             files=[self.name])  # fmt: skip
        return bytes(data)

    def size(self) -> int:
        if self._size < 0:
            with self._lock:
                where = self.fileobj.tell()
                try:
                    self._size = self.fileobj.seek(0, 2)
                finally:
                    self.fileobj.seek(where)
        return self._size

    def read(self, offset: int, length: int) -> bytes:
        with self._lock:
            where = self.fileobj.tell()
            try:
                self.fileobj.seek(offset)
                parts = []
                got = 0
                while got < length:
                    chunk = self._check(self.fileobj.read(length - got))
                    if not chunk:
                        break
                    parts.append(chunk)
                    got += len(chunk)
            finally:
                self.fileobj.seek(where)
        return b"".join(parts)

    def read_into(self, ranges: Sequence[tuple[int, int]], buffers: Sequence[Buffer]) -> None:
        for (offset, length), buffer in zip(ranges, buffers):
            data = self.read(offset, length)
            if len(data) < length:
                raise self.short_read(offset, length, len(data))
            view = memoryview(buffer).cast("B")
            try:
                view[:length] = data
            finally:
                view.release()
