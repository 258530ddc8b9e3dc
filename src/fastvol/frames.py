"""Find the compressed frames inside encapsulated pixel data, reading only item headers.

Encapsulated PixelData (PS3.5 A.4) is a sequence of items: first the Basic Offset Table, then
one item per fragment, then a sequence delimiter::

    (FFFE,E000) len  BOT: uint32 offset per frame (may be empty)
    (FFFE,E000) len  fragment bytes        <- frame 0 (one or more fragments)
    (FFFE,E000) len  fragment bytes        <- frame 1 ...
    (FFFE,E0DD) 0    end of the sequence

:func:`frame_ranges` walks the item headers with positioned reads (a small cached window, so a
one-fragment file costs two reads) and returns, per frame, the ``(file offset, length)`` of each
fragment; :func:`read_frame` reads those bytes back with one system call. Frame boundaries come
from the Extended Offset Table when given, else the Basic Offset Table when it is consistent,
else: one frame takes every fragment, as many fragments as frames take one each, and otherwise
fragments are split where a JPEG / JPEG-LS / JPEG 2000 codestream starts (falling back to
end-of-image markers, as pydicom's ``generate_frames`` does).

Encapsulated data is always little endian (PS3.5 A.4), so only that is parsed.
"""

from __future__ import annotations

import io
import logging
import os
import struct
from collections.abc import Sequence
from typing import BinaryIO

import numpy as np

from .errors import CorruptFileError

__all__ = ["FrameRanges", "frame_ranges", "read_frame"]

logger = logging.getLogger(__name__)

#: Per frame, the ``(file offset, length)`` of each fragment holding it, in order.
FrameRanges = tuple[tuple[int, int], ...]

ITEM_TAG = 0xFFFEE000
SEQUENCE_DELIMITER_TAG = 0xFFFEE0DD
UNDEFINED_LENGTH = 0xFFFFFFFF
_ITEM_HEADER = struct.Struct("<HHL")
#: Bytes read around each item header: enough for the header plus the first bytes of the
#: fragment (marker check) and for many small fragments at once; one page.
_WINDOW = 4096
#: First bytes of a codestream: JPEG SOI + marker, J2K SOC + SIZ, JP2 signature box.
_FRAME_START_MARKERS = (b"\xff\xd8\xff", b"\xff\x4f\xff\x51", b"\x00\x00\x00\x0cjP  ")
_EOI_MARKER = b"\xff\xd9"
#: preadv accepts at most IOV_MAX buffers (1024 on Linux).
_IOV_MAX = 1024

FileLike = BinaryIO | io.BufferedIOBase | io.RawIOBase | int


def _fileno(fp: FileLike) -> int | None:
    """The OS file descriptor behind ``fp`` when positioned reads can use it."""
    if isinstance(fp, int):
        return fp
    if not hasattr(os, "pread"):
        return None
    try:
        return fp.fileno()
    except (AttributeError, OSError, io.UnsupportedOperation):
        return None


def _pread(fp: FileLike, fd: int | None, size: int, offset: int) -> bytes:
    if fd is not None:
        return os.pread(fd, size, offset)
    assert not isinstance(fp, int)
    fp.seek(offset)
    return fp.read(size) or b""


class _Window:
    """Positioned reads through one cached block (item headers are small and often close)."""

    __slots__ = ("data", "fd", "file_size", "fp", "start")

    def __init__(self, fp: FileLike, file_size: int) -> None:
        self.fp = fp
        self.fd = _fileno(fp)
        self.file_size = file_size
        self.start = 0
        self.data = b""

    def read(self, offset: int, size: int) -> bytes:
        """Up to ``size`` bytes at ``offset`` (fewer only at the end of the file)."""
        end = self.start + len(self.data)
        if not (self.start <= offset and offset + size <= end):
            length = min(max(size, _WINDOW), self.file_size - offset)
            self.data = _pread(self.fp, self.fd, max(length, 0), offset)
            self.start = offset
        begin = offset - self.start
        return self.data[begin : begin + size]


def _corrupt(message: str, source: str) -> CorruptFileError:
    where = f"{source}: " if source else ""
    return CorruptFileError(
        f"{where}encapsulated pixel data {message}", files=(source,) if source else ()
    )


def frame_ranges(
    fp: FileLike,
    value_offset: int,
    file_size: int,
    number_of_frames: int,
    *,
    extended_offsets: tuple[np.ndarray, np.ndarray] | None = None,
    source: str = "",
) -> list[FrameRanges]:
    """Locate every frame's fragments in encapsulated pixel data.

    Parameters
    ----------
    fp
        The open file (binary, seekable) or its file descriptor. Read with ``os.pread`` when it
        has a descriptor, so its position is left alone and threads may share it.
    value_offset
        File offset of the PixelData value: the first byte of the Basic Offset Table item tag
        (``HeaderRecord.pixel_offset``).
    file_size
        Size of the file in bytes; every item must end inside it.
    number_of_frames
        NumberOfFrames (1 when absent).
    extended_offsets
        ``(offsets, lengths)`` from the Extended Offset Table (7FE0,0001) and its lengths
        (7FE0,0002) as uint64 arrays: offsets of each frame's item tag from the first item
        after the Basic Offset Table, and each frame's length in bytes.
    source
        File name for error messages.

    Returns
    -------
    list of tuple of (int, int)
        ``number_of_frames`` entries; entry *i* holds ``(file offset, length)`` of each
        fragment of frame *i*, in order.

    Raises
    ------
    CorruptFileError
        An item tag is not (FFFE,E000), the sequence delimiter (FFFE,E0DD) is missing, an item
        runs past ``file_size``, the offset tables disagree with the items, or the fragments
        cannot be split into ``number_of_frames`` frames.
    """
    if number_of_frames < 1:
        raise _corrupt(f"with NumberOfFrames {number_of_frames}", source)
    window = _Window(fp, file_size)
    bot_length, items = _walk_items(window, value_offset, file_size, source)
    bot_start = value_offset + 8
    first_item = bot_start + bot_length
    if not items:
        raise _corrupt("has no fragments", source)
    # Item tag position relative to the first item after the BOT -> item index.
    index_of = {start - first_item: i for i, (start, _) in enumerate(items)}

    if extended_offsets is not None and len(extended_offsets[0]):
        return _from_extended(extended_offsets, items, index_of, number_of_frames, source)

    if bot_length:
        if bot_length % 4:
            raise _corrupt(f"Basic Offset Table length {bot_length} is not a multiple of 4", source)
        raw = window.read(bot_start, bot_length)
        if len(raw) != bot_length:
            raise _corrupt("Basic Offset Table is truncated", source)
        offsets = np.frombuffer(raw, dtype="<u4").tolist()
        frames = _from_basic(offsets, items, index_of, number_of_frames)
        if frames is not None:
            return frames
        logger.debug(
            "%s: Basic Offset Table %s does not match the fragments; ignoring it",
            source,
            offsets[:8],
        )

    fragments = [(start + 8, length) for start, length in items]
    if number_of_frames == 1:
        return [tuple(fragments)]
    if len(fragments) == number_of_frames:
        return [(fragment,) for fragment in fragments]
    if len(fragments) < number_of_frames:
        raise _corrupt(f"has {len(fragments)} fragments for {number_of_frames} frames", source)
    frames = _split_by_start_markers(window, fragments, number_of_frames)
    if frames is None:
        frames = _split_by_end_markers(window, fragments, number_of_frames)
    if frames is None:
        raise _corrupt(
            f"has {len(fragments)} fragments for {number_of_frames} frames and no offset "
            "table; codestream markers do not split them into frames",
            source,
        )
    return frames


def _walk_items(
    window: _Window, value_offset: int, file_size: int, source: str
) -> tuple[int, list[tuple[int, int]]]:
    """Validate every item up to the sequence delimiter.

    Returns the Basic Offset Table length and, per fragment, ``(item tag offset, length)``.
    """
    position = value_offset
    bot_length = -1
    items: list[tuple[int, int]] = []
    while True:
        header = window.read(position, 8)
        if len(header) < 8:
            raise _corrupt(
                f"is truncated at byte {position}: no sequence delimiter (FFFE,E0DD) before "
                f"the end of the file ({file_size} bytes)",
                source,
            )
        group, element, length = _ITEM_HEADER.unpack(header)
        tag = group << 16 | element
        if tag == SEQUENCE_DELIMITER_TAG and bot_length >= 0:
            return bot_length, items
        if tag != ITEM_TAG:
            raise _corrupt(
                f"has tag ({group:04X},{element:04X}) at byte {position} where an item "
                "(FFFE,E000)"
                + (" or the sequence delimiter (FFFE,E0DD)" if bot_length >= 0 else "")
                + " belongs",
                source,
            )
        if length == UNDEFINED_LENGTH:
            raise _corrupt(f"item at byte {position} has undefined length", source)
        end = position + 8 + length
        if end > file_size:
            raise _corrupt(
                f"item at byte {position} ({length} bytes) runs past the end of the file "
                f"({file_size} bytes): the file is truncated",
                source,
            )
        if bot_length < 0:
            bot_length = length
        else:
            items.append((position, length))
        position = end


def _from_extended(
    extended_offsets: tuple[np.ndarray, np.ndarray],
    items: list[tuple[int, int]],
    index_of: dict[int, int],
    number_of_frames: int,
    source: str,
) -> list[FrameRanges]:
    offsets = np.asarray(extended_offsets[0]).astype(np.int64).tolist()
    lengths = np.asarray(extended_offsets[1]).astype(np.int64).tolist()
    if len(offsets) != number_of_frames or len(lengths) != number_of_frames:
        raise _corrupt(
            f"Extended Offset Table has {len(offsets)} offsets and {len(lengths)} lengths for "
            f"{number_of_frames} frames",
            source,
        )
    frames: list[FrameRanges] = []
    for frame, (offset, length) in enumerate(zip(offsets, lengths, strict=True)):
        index = index_of.get(offset)
        if index is None:
            raise _corrupt(
                f"Extended Offset Table offset {offset} of frame {frame} is not an item", source
            )
        start, item_length = items[index]
        if not 0 <= length <= item_length:
            raise _corrupt(
                f"Extended Offset Table length {length} of frame {frame} exceeds its item "
                f"({item_length} bytes)",
                source,
            )
        frames.append(((start + 8, length),))
    return frames


def _from_basic(
    offsets: Sequence[int],
    items: list[tuple[int, int]],
    index_of: dict[int, int],
    number_of_frames: int,
) -> list[FrameRanges] | None:
    """Frames from the Basic Offset Table, or None when it does not fit the items."""
    if len(offsets) != number_of_frames or offsets[0] != 0:
        return None
    firsts = [index_of.get(offset) for offset in offsets]
    if any(index is None for index in firsts):
        return None
    bounds = [*firsts, len(items)]
    frames: list[FrameRanges] = []
    for i in range(number_of_frames):
        lo, hi = bounds[i], bounds[i + 1]
        assert lo is not None and hi is not None
        if hi <= lo:
            return None
        frames.append(tuple((start + 8, length) for start, length in items[lo:hi]))
    return frames


def _split_by_start_markers(
    window: _Window, fragments: list[tuple[int, int]], number_of_frames: int
) -> list[FrameRanges] | None:
    """Start a frame at every fragment that begins a codestream."""
    starts = [window.read(offset, 12).startswith(_FRAME_START_MARKERS) for offset, _ in fragments]
    if not starts[0] or sum(starts) != number_of_frames:
        return None
    return _group(fragments, starts)


def _split_by_end_markers(
    window: _Window, fragments: list[tuple[int, int]], number_of_frames: int
) -> list[FrameRanges] | None:
    """End a frame at every fragment whose last bytes hold an end-of-image marker."""
    ends = []
    for offset, length in fragments:
        tail = min(length, 10)  # room for trailing padding after FFD9 / FFD9 (J2K EOC)
        ends.append(_EOI_MARKER in window.read(offset + length - tail, tail))
    if not ends[-1] or sum(ends) != number_of_frames:
        return None
    starts = [True] + ends[:-1]
    return _group(fragments, starts)


def _group(fragments: list[tuple[int, int]], starts: list[bool]) -> list[FrameRanges]:
    frames: list[list[tuple[int, int]]] = []
    for fragment, start in zip(fragments, starts, strict=True):
        if start:
            frames.append([])
        frames[-1].append(fragment)
    return [tuple(frame) for frame in frames]


def read_frame(fp: FileLike, ranges: FrameRanges, *, source: str = "") -> bytes:
    """Read one frame's codestream: its fragments joined.

    Parameters
    ----------
    fp
        The open file or its descriptor (positioned reads; the file position is not used).
    ranges
        The frame's ``(file offset, length)`` pairs from :func:`frame_ranges`.
    source
        File name for error messages.

    Returns
    -------
    bytes
        The codestream. One fragment is one ``pread``; several are one ``preadv`` that
        drops the item headers between them into a scratch buffer.

    Raises
    ------
    CorruptFileError
        Fewer bytes could be read than the ranges promise (the file shrank).
    """
    fd = _fileno(fp)
    if len(ranges) == 1:
        offset, length = ranges[0]
        data = _pread(fp, fd, length, offset)
        if len(data) != length:
            raise _short_read(source, offset, length, len(data))
        return data
    total = sum(length for _, length in ranges)
    first = ranges[0][0]
    gaps = [ranges[i + 1][0] - (ranges[i][0] + ranges[i][1]) for i in range(len(ranges) - 1)]
    if (
        fd is not None
        and hasattr(os, "preadv")
        and 2 * len(ranges) - 1 <= _IOV_MAX
        and all(0 <= gap <= _WINDOW for gap in gaps)
    ):
        frame = bytearray(total)
        view = memoryview(frame)
        scratch = memoryview(bytearray(max(gaps, default=0)))
        buffers: list[memoryview] = []
        at = 0
        for i, (_, length) in enumerate(ranges):
            buffers.append(view[at : at + length])
            at += length
            if i < len(gaps) and gaps[i]:
                buffers.append(scratch[: gaps[i]])
        span = ranges[-1][0] + ranges[-1][1] - first
        got = os.preadv(fd, buffers, first)
        if got != span:
            raise _short_read(source, first, span, got)
        return bytes(frame)
    parts = []
    for offset, length in ranges:
        data = _pread(fp, fd, length, offset)
        if len(data) != length:
            raise _short_read(source, offset, length, len(data))
        parts.append(data)
    return b"".join(parts)


def _short_read(source: str, offset: int, wanted: int, got: int) -> CorruptFileError:
    where = f"{source}: " if source else ""
    return CorruptFileError(
        f"{where}read {got} of {wanted} pixel data bytes at offset {offset}: the file is "
        "shorter than its items say",
        files=(source,) if source else (),
    )
