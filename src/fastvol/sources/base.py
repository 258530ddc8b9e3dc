"""The byte-source interface: size, read a range, read several ranges into given buffers."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar

from ..errors import CorruptFileError

__all__ = ["ByteSource", "ShortReadError", "prefetch"]

#: A writable buffer: ``memoryview``, ``bytearray`` or a C-contiguous numpy array.
Buffer = Any


class ShortReadError(CorruptFileError):
    """A range ends past the end of the source (truncated, or changed since it was scanned)."""


class ByteSource:
    """Random access to the bytes of one file, wherever it lives.

    Subclasses implement :meth:`size`, :meth:`read` and :meth:`read_into`; they must pickle
    (DataLoader workers, process pools) and be safe to share between threads. ``name`` is what
    messages, records and ``Volume.meta["files"]`` call the file (its path or URL).

    Sources hold OS resources only between :meth:`open` (implicit on first read) and
    :meth:`close`; use them as context managers.
    """

    name: str
    #: ``prefetch_many(requests)`` of sources that gain from fetching many ranges of many files
    #: at once (remote ones: latency); None where reading when asked is best (local files).
    prefetch_many: ClassVar[Callable[..., None] | None] = None
    #: ``read_heads(sources, buf, block) -> (got, sizes)`` of sources that read the first
    #: blocks of many files faster at once than one by one (local files, in C): per source the
    #: bytes read into ``buf[i * block:]`` and its size, -1 for both where it cannot be read;
    #: it returns None where it cannot serve them (not available in this process, or sources not
    #: all of its own class). None, or a None result: the header pass reads each source's first
    #: block with :meth:`read`.
    read_heads: ClassVar[Callable[..., tuple[list[int], list[int]] | None] | None] = None

    def size(self) -> int:
        """Size of the file in bytes."""
        raise NotImplementedError

    def read(self, offset: int, length: int) -> bytes:
        """Up to ``length`` bytes from ``offset``: fewer only where the file ends."""
        raise NotImplementedError

    def read_into(self, ranges: Sequence[tuple[int, int]], buffers: Sequence[Buffer]) -> None:
        """Read each ``(offset, length)`` range into the buffer of the same index, exactly.

        Buffers are byte-addressable and at least ``length`` bytes long. Raises
        :class:`ShortReadError` (naming the file) when a range passes the end of the file.
        """
        raise NotImplementedError

    def is_regular(self) -> bool:
        """Whether the source is a plain file that can be read without blocking."""
        return True

    def close(self) -> None:
        """Release OS resources; the source stays usable (a later read reopens)."""

    def __enter__(self) -> ByteSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    def short_read(self, offset: int, wanted: int, got: int) -> ShortReadError:
        """The error for a range that ends past the end of the file."""
        return ShortReadError(
            f"{self.name}: file ended after {got} of {wanted} bytes at offset {offset} "
            f"(truncated, or changed since it was scanned)",
            files=[self.name],
        )


def prefetch(requests: Iterable[tuple[ByteSource, int, int]], *, errors: str = "raise") -> None:
    """Say that these ``(source, offset, length)`` ranges will be read soon.

    Sources whose class defines :attr:`ByteSource.prefetch_many` fetch them now, all together
    (concurrent requests), and answer the reads from what they hold; others are left alone,
    so a local file's reads stay exactly what they were. Sizes are clipped to the files.

    Parameters
    ----------
    errors
        ``"raise"``: a range that cannot be fetched raises here, as its read would (the pixel
        pass: no partial volume). ``"defer"``: the source keeps the error and raises it when
        the range is read (the header pass, which records unreadable files and goes on).
    """
    groups: dict[Any, list[tuple[ByteSource, int, int]]] = {}
    for request in requests:
        fetch = type(request[0]).prefetch_many
        if fetch is not None:
            groups.setdefault(fetch, []).append(request)
    for fetch, batch in groups.items():
        fetch(batch, errors=errors)
