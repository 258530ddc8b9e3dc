"""The pydicom header reader: any encoding pydicom reads, through a byte source.

:func:`read_header_pydicom` is the slow reference the compiled scanner must equal, and the
fallback for every file the scanner refuses. pydicom reads through :class:`SourceIO`, a
file-like object over a :class:`~fastvol.sources.ByteSource`, so no path is opened here.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterable
from typing import Any

from ..dicom import NOT_ADDRESSABLE, PIXEL_DATA_TAGS, PIXEL_KINDS, TS, HeaderRecord
from ..errors import CorruptFileError, FastvolError, NotDicomError, UnreadableError
from ..sources import ByteSource
from .convert import _text, record_from_dataset, resolve_extra_tags

__all__ = ["SourceIO", "inflate_dataset", "open_source", "read_header_pydicom"]


class SourceIO(io.RawIOBase):
    """A read-only, seekable raw file object over a byte source (for pydicom)."""

    def __init__(self, source: ByteSource) -> None:
        super().__init__()
        self.source = source
        self.name = source.name
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_CUR:
            offset += self._pos
        elif whence == io.SEEK_END:
            offset += self.source.size()
        if offset < 0:
            raise ValueError(f"negative seek position {offset}")
        self._pos = offset
        return offset

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self.source.read(self._pos, len(view))
        view[: len(data)] = data
        self._pos += len(data)
        return len(data)


class _BoundedReader(io.BufferedReader):
    """A buffered reader whose ``read(n)`` never asks for more than the file holds.

    ``BufferedReader.read(n)`` allocates ``n`` bytes before reading: a corrupt length field of
    4 GB in a 1 kB file would cost 4 GB of address space inside pydicom.
    """

    def __init__(self, raw: SourceIO) -> None:
        super().__init__(raw, buffer_size=16 * 1024)
        self._size = raw.source.size()

    def read(self, size: int | None = -1) -> bytes:
        if size is not None and size > 16 * 1024:
            size = min(size, max(0, self._size - self.tell()))
        return super().read(size)


def open_source(source: ByteSource) -> io.BufferedReader:
    """A buffered file object over ``source``, as pydicom reads files (reads bounded by its size)."""
    return _BoundedReader(SourceIO(source))


def _pixel_element_after(fp: Any, implicit: bool, little: bool) -> tuple[int, int, str]:
    """Parse the pixel data element header at ``fp``'s position: (value offset, value length,
    pixel kind)."""
    start = fp.tell()
    head = fp.read(12)
    if len(head) < 8:
        return -1, -1, "int"
    endian = "<" if little else ">"
    group, elem = struct.unpack(endian + "HH", head[:4])
    if ((group << 16) | elem) not in PIXEL_DATA_TAGS:
        return -1, -1, "int"
    kind = PIXEL_KINDS[elem]
    if implicit:
        (length,) = struct.unpack(endian + "I", head[4:8])
        return start + 8, length, kind
    if len(head) < 12:
        raise EOFError
    (length,) = struct.unpack(endian + "I", head[8:12])
    return start + 12, length, kind


def _is_deflated(fp: Any) -> bool:
    """Whether the file meta says Deflated Explicit VR Little Endian; ``fp`` is rewound."""
    from pydicom.filereader import _read_file_meta_info, read_preamble

    try:
        read_preamble(fp, True)
        meta = _read_file_meta_info(fp)
        return _text(meta.get("TransferSyntaxUID", "")) == TS.DEFLATED_LE
    except Exception:  # not readable as meta: dcmread decides
        return False
    finally:
        fp.seek(0)


def read_header_pydicom(source: ByteSource, *, extra_tags: Iterable[str | int] = ()) -> HeaderRecord:
    """Read one file's header with pydicom (any encoding), without reading pixel data.

    Parameters
    ----------
    source
        The file; its ``name`` becomes the record's ``path``.
    extra_tags
        Keywords or tags of further attributes to read into ``record.extra``.

    Raises
    ------
    NotDicomError
        The file is not DICOM or its header cannot be parsed.
    CorruptFileError
        pydicom failed on the header in another way.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    extras = resolve_extra_tags(extra_tags)
    path = source.name
    try:
        file_size = source.size()
        with open_source(source) as fp:
            if _is_deflated(fp):
                # Offsets refer to the inflated stream, not the file: inflated (bounded) again
                # when the pixels are read.
                ds, _, element = inflate_dataset(source)
                offset, length = (-1, NOT_ADDRESSABLE) if element else (-1, -1)
                kind = PIXEL_KINDS.get(element, "int")
            else:
                ds = pydicom.dcmread(fp, stop_before_pixels=True, force=True)
                enc = ds.original_encoding
                implicit, little = (bool(enc[0]), bool(enc[1])) if enc[0] is not None else (True, True)
                offset, length, kind = _pixel_element_after(fp, implicit, little)
        # Inside the try: converting values can raise on garbage (bad VR, wrong-length US, ...).
        return record_from_dataset(
            ds, path=path, file_size=file_size, pixel_offset=offset, pixel_length=length,
            source=source, extras=extras, pixel_kind=kind,
        )  # fmt: skip
    except (InvalidDicomError, EOFError, struct.error) as exc:
        raise NotDicomError(f"{path}: not a readable DICOM file ({exc})", files=[path]) from exc
    except OSError as exc:  # the OS refused: never "not DICOM" (its series would lose slices)
        raise UnreadableError(f"{path}: cannot be read ({exc})", files=[path]) from exc
    except FastvolError:
        raise
    except Exception as exc:  # pydicom raises many types on garbage; none may escape bare
        raise CorruptFileError(
            f"{path}: header cannot be parsed ({type(exc).__name__}: {exc})", files=[path]
        ) from exc
    finally:
        source.close()


# --- deflated data sets: inflated in bounded chunks -------------------------------------------

#: Most inflated bytes the data set before the pixel data may take (a deflate bomb stops here).
MAX_INFLATED_HEADER = 64 << 20
_INFLATE_CHUNK = 1 << 16
_PIXEL_TAGS = frozenset(PIXEL_DATA_TAGS)


class _Inflater:
    """Inflates a deflated data set from ``source`` on demand, never past what is asked."""

    def __init__(self, source: ByteSource, start: int) -> None:
        self.source = source
        self.position = start
        self.inflate = zlib.decompressobj(-zlib.MAX_WBITS)
        self.data = bytearray()
        self.done = False

    def fill(self, want: int) -> None:
        """Inflate until ``want`` bytes are out or the stream ends (``done``)."""
        while len(self.data) < want and not self.done:
            chunk = self.inflate.unconsumed_tail
            if not chunk:
                chunk = self.source.read(self.position, _INFLATE_CHUNK)
                self.position += len(chunk)
                if not chunk:
                    self.done = True
                    break
            try:
                self.data += self.inflate.decompress(chunk, want - len(self.data))
            except zlib.error as exc:
                raise CorruptFileError(
                    f"{self.source.name}: deflated data set is corrupt ({exc})",
                    files=[self.source.name],
                ) from exc
            self.done = self.inflate.eof


def _parse_inflated(data: bytes) -> tuple[Any, int, bool]:
    """The data set in ``data`` up to its pixel data.

    Returns ``(dataset or None, pixel element offset or -1, stopped)``: ``stopped`` when parsing
    ended at the pixel data or at a top-level tag that does not ascend (the zeros of a deflate
    bomb read as endless (0000,0000) elements), so more data would not change the result.
    """
    import warnings

    from pydicom.filereader import read_dataset

    state = {"last": -1, "pixels": 0, "stopped": 0}
    fp = io.BytesIO(data)

    def stop(tag: Any, vr: Any, length: int) -> bool:
        if int(tag) in _PIXEL_TAGS:
            state["pixels"] = state["stopped"] = 1
            return True
        if int(tag) <= state["last"]:
            state["stopped"] = 1
            return True
        state["last"] = int(tag)
        return False

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a data set cut at the chunk's end warns
            ds = read_dataset(fp, False, True, stop_when=stop)  # in memory: nothing deferred
    except EOFError:
        return None, -1, False
    return ds, fp.tell() if state["pixels"] else -1, bool(state["stopped"])


def inflate_dataset(source: ByteSource, pixel_bytes: int = 0) -> tuple[Any, bytes, int]:
    """Read a deflated file: its data set before the pixel data and the pixel bytes asked for.

    Inflates in chunks (``zlib.decompressobj`` with ``max_length``) only as far as needed:
    up to the PixelData element for the header (at most :data:`MAX_INFLATED_HEADER`), then
    ``pixel_bytes`` of its value. A few kilobytes that inflate to gigabytes cost nothing.

    Returns
    -------
    tuple
        ``(dataset, pixel bytes, pixel element)``: a pydicom FileDataset (file meta included),
        at most ``pixel_bytes`` bytes of the pixel data value, and the element number of the
        pixel data tag (``0x10``, ``8`` or ``9``; ``0`` when there is no pixel data).

    Raises
    ------
    CorruptFileError
        The stream is corrupt, or the data set before the pixel data exceeds the bound.
    """
    import pydicom
    from pydicom.filereader import _read_file_meta_info, read_preamble

    with open_source(source) as fp:
        preamble = read_preamble(fp, True)  # type: ignore[arg-type]
        file_meta = _read_file_meta_info(fp)  # type: ignore[arg-type]
        start = fp.tell()
    inflater = _Inflater(source, start)
    ds, at, limit = None, -1, 1 << 20
    while True:
        inflater.fill(limit)
        ds, at, stopped = _parse_inflated(bytes(inflater.data))
        if stopped or inflater.done:
            break
        if limit >= MAX_INFLATED_HEADER:
            raise CorruptFileError(f"{source.name}: deflated data set holds more than "
                                   f"{MAX_INFLATED_HEADER >> 20} MiB before its pixel data",
                                   files=[source.name])  # fmt: skip
        limit *= 4
    if ds is None:
        raise CorruptFileError(
            f"{source.name}: deflated data set is truncated", files=[source.name]
        )
    pixels = b""
    element = 0
    if at >= 0:
        inflater.fill(at + 4)
        element = struct.unpack_from("<H", bytes(inflater.data[at + 2 : at + 4]))[0]
    if at >= 0 and pixel_bytes > 0:
        inflater.fill(at + 12 + pixel_bytes)
        head = bytes(inflater.data[at : at + 12])
        length = struct.unpack_from("<I", head, 8)[0] if len(head) == 12 else 0
        pixels = bytes(inflater.data[at + 12 : at + 12 + min(length, pixel_bytes)])
    dataset = pydicom.dataset.FileDataset(source.name, ds, preamble, file_meta, False, True)
    dataset.set_original_encoding(False, True, ds._character_set)
    return dataset, pixels, element
