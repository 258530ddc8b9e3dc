"""The pydicom header reader: any encoding pydicom reads, through a byte source.

:func:`read_header_pydicom` is the slow reference the compiled scanner must equal, and the
fallback for every file the scanner refuses. pydicom reads through :class:`SourceIO`, a
file-like object over a :class:`~fastvol.sources.ByteSource`, so no path is opened here.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterable
from typing import Any

from ..dicom import NOT_ADDRESSABLE, PIXEL_DATA_TAGS, TS, HeaderRecord
from ..errors import CorruptFileError, FastvolError, NotDicomError
from ..sources import ByteSource
from .convert import _text, record_from_dataset, resolve_extra_tags

__all__ = ["SourceIO", "open_source", "read_header_pydicom"]


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


def open_source(source: ByteSource) -> io.BufferedReader:
    """A buffered file object over ``source``, as pydicom reads files."""
    return io.BufferedReader(SourceIO(source), buffer_size=16 * 1024)


def _pixel_element_after(fp: Any, implicit: bool, little: bool) -> tuple[int, int]:
    """Parse the PixelData element header at ``fp``'s position: (value offset, value length)."""
    start = fp.tell()
    head = fp.read(12)
    if len(head) < 8:
        return -1, -1
    endian = "<" if little else ">"
    group, elem = struct.unpack(endian + "HH", head[:4])
    if ((group << 16) | elem) not in PIXEL_DATA_TAGS:
        return -1, -1
    if implicit:
        (length,) = struct.unpack(endian + "I", head[4:8])
        return start + 8, length
    if len(head) < 12:
        raise EOFError
    (length,) = struct.unpack(endian + "I", head[8:12])
    return start + 12, length


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
            ds = pydicom.dcmread(fp, stop_before_pixels=True, force=True)
            ts = ""
            if getattr(ds, "file_meta", None) is not None and "TransferSyntaxUID" in ds.file_meta:
                ts = _text(ds.file_meta.TransferSyntaxUID)
            if ts == TS.DEFLATED_LE:
                # Offsets refer to the inflated stream, not the file: pydicom reads the pixels.
                fp.seek(0)
                probe = pydicom.dcmread(fp, force=True, defer_size=64)
                has = "PixelData" in probe
                offset, length = (-1, NOT_ADDRESSABLE) if has else (-1, -1)
            else:
                enc = ds.original_encoding
                implicit, little = (bool(enc[0]), bool(enc[1])) if enc[0] is not None else (True, True)
                offset, length = _pixel_element_after(fp, implicit, little)
        # Inside the try: converting values can raise on garbage (bad VR, wrong-length US, ...).
        return record_from_dataset(
            ds, path=path, file_size=file_size, pixel_offset=offset, pixel_length=length,
            source=source, extras=extras,
        )  # fmt: skip
    except (InvalidDicomError, EOFError, struct.error) as exc:
        raise NotDicomError(f"{path}: not a readable DICOM file ({exc})", files=[path]) from exc
    except OSError as exc:
        raise NotDicomError(f"{path}: cannot be read ({exc})", files=[path]) from exc
    except FastvolError:
        raise
    except Exception as exc:  # pydicom raises many types on garbage; none may escape bare
        raise CorruptFileError(
            f"{path}: header cannot be parsed ({type(exc).__name__}: {exc})", files=[path]
        ) from exc
    finally:
        source.close()
