"""Bytes already in memory as a source (tests, file objects read whole, caches)."""

from __future__ import annotations

from collections.abc import Sequence

from .base import Buffer, ByteSource

__all__ = ["MemorySource"]


class MemorySource(ByteSource):
    """A source over ``bytes`` held in memory.

    Parameters
    ----------
    data
        The file's bytes.
    name
        What records and messages call the file.
    """

    def __init__(self, data: bytes | bytearray | memoryview, name: str = "<memory>") -> None:
        self.data = bytes(data)
        self.name = name

    def size(self) -> int:
        return len(self.data)

    def read(self, offset: int, length: int) -> bytes:
        return self.data[offset : offset + length]

    def read_into(self, ranges: Sequence[tuple[int, int]], buffers: Sequence[Buffer]) -> None:
        for (offset, length), buffer in zip(ranges, buffers):
            if offset < 0 or offset + length > len(self.data):
                raise self.short_read(offset, length, max(0, len(self.data) - offset))
            view = memoryview(buffer).cast("B")
            view[:length] = self.data[offset : offset + length]
            view.release()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MemorySource) and (other.name, other.data) == (self.name, self.data)

    def __hash__(self) -> int:
        return hash(("MemorySource", self.name))
