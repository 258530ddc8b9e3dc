"""Find the compressed frames inside encapsulated pixel data, reading only item headers.

Encapsulated PixelData (PS3.5 A.4) is a sequence of items: first the Basic Offset Table, then
one item per fragment, then a sequence delimiter::

    (FFFE,E000) len  BOT: uint32 offset per frame (may be empty)
    (FFFE,E000) len  fragment bytes        <- frame 0 (one or more fragments)
    (FFFE,E000) len  fragment bytes        <- frame 1 ...
    (FFFE,E0DD) 0    end of the sequence

:func:`frame_ranges` walks the item headers through a :class:`~fastvol.sources.ByteSource`
(a small cached window over ``source.read``, so a one-fragment file costs two reads) and returns,
per frame, the ``(file offset, length)`` of each fragment; :func:`read_frame` reads those bytes
back with one ``source.read_into`` (one ``preadv`` for a local file). Frame boundaries come
from the Extended Offset Table when given, else the Basic Offset Table when it is consistent,
else: one frame takes every fragment, as many fragments as frames take one each, and otherwise
fragments are split where a JPEG / JPEG-LS / JPEG 2000 codestream starts (falling back to
end-of-image markers, as pydicom's ``generate_frames`` does).

Encapsulated data is always little endian (PS3.5 A.4), so only that is parsed.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import numpy as np

from .dicom import UNDEFINED_LENGTH
from .errors import CorruptFileError
from .sources import ByteSource, ShortReadError

__all__ = ["FrameRanges", "frame_ranges", "max_fragments", "read_frame"]


#: Per frame, the ``(file offset, length)`` of each fragment holding it, in order.
FrameRanges = tuple[tuple[int, int], ...]

ITEM_TAG = 0xFFFEE000
SEQUENCE_DELIMITER_TAG = 0xFFFEE0DD
_ITEM_HEADER = struct.Struct("<HHL")
#: Bytes read around each item header: enough for the header plus the first bytes of the
#: fragment (marker check) and for many small fragments at once; one page.
_WINDOW = 4096
#: First bytes of a codestream: JPEG SOI + marker, J2K SOC + SIZ, JP2 signature box.
_FRAME_START_MARKERS = (b"\xff\xd8\xff", b"\xff\x4f\xff\x51", b"\x00\x00\x00\x0cjP  ")
_EOI_MARKER = b"\xff\xd9"
#: Most fragments one frame may span: the walk keeps ~350 bytes per fragment, so a file of
#: millions of tiny items is refused instead of walked (writers split frames into a few).
MAX_FRAGMENTS_PER_FRAME = 1024
#: Declared frame bytes per allowed fragment (see :func:`max_fragments`): the walk's memory
#: stays about that of the declared output.
_BYTES_PER_FRAGMENT = 256
#: Least bytes one encapsulated frame takes: an item header and the smallest codestream.
_MIN_FRAME_BYTES = 8 + 20


class _Window:
    """Reads through one cached block of the source (item headers are small and often close)."""

    __slots__ = ("data", "file_size", "source", "start")

    def __init__(self, source: ByteSource, file_size: int) -> None:
        self.source = source
        self.file_size = file_size
        self.start = 0
        self.data = b""

    def read(self, offset: int, size: int) -> bytes:
        """Up to ``size`` bytes at ``offset`` (fewer only at the end of the file)."""
        end = self.start + len(self.data)
        if not (self.start <= offset and offset + size <= end):
            length = min(max(size, _WINDOW), self.file_size - offset)
            self.data = self.source.read(offset, length) if length > 0 else b""
            self.start = offset
        begin = offset - self.start
        return self.data[begin : begin + size]


def _corrupt(message: str, name: str) -> CorruptFileError:
    where = f"{name}: " if name else ""
    return CorruptFileError(f"{where}encapsulated pixel data {message}", files=(name,) if name else ())


def frame_ranges(
    source: ByteSource,
    value_offset: int,
    file_size: int,
    number_of_frames: int,
    *,
    extended_offsets: tuple[np.ndarray, np.ndarray] | None = None,
    fragment_limit: int | None = None,
) -> list[FrameRanges]:
    """Locate every frame's fragments in encapsulated pixel data.

    Parameters
    ----------
    source
        The file, read through ``source.read`` (positioned: threads may share it). Its ``name``
        is the file errors name.
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
    fragment_limit
        Most fragments to walk (:func:`max_fragments` of the declared frame size); default
        ``number_of_frames x MAX_FRAGMENTS_PER_FRAME``.

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
    name = source.name
    if number_of_frames < 1:
        raise _corrupt(f"with NumberOfFrames {number_of_frames}", name)
    if number_of_frames > 1 and number_of_frames * _MIN_FRAME_BYTES > file_size - value_offset:
        raise _corrupt(
            f"cannot hold NumberOfFrames {number_of_frames}: {file_size - value_offset} bytes "
            f"after its start, at least {_MIN_FRAME_BYTES} needed per frame",
            name,
        )
    window = _Window(source, file_size)
    max_items = fragment_limit or number_of_frames * MAX_FRAGMENTS_PER_FRAME
    bot_length, items = _walk_items(window, value_offset, file_size, name, max_items)
    bot_start = value_offset + 8
    first_item = bot_start + bot_length
    if not items:
        raise _corrupt("has no fragments", name)
    # Item tag position relative to the first item after the BOT -> item index.
    index_of = {start - first_item: i for i, (start, _) in enumerate(items)}

    if extended_offsets is not None and len(extended_offsets[0]):
        return _from_extended(extended_offsets, items, index_of, number_of_frames, name)

    if bot_length:
        frames = _from_basic_table(window, bot_start, bot_length, items, index_of, number_of_frames)
        if frames is not None:
            return frames
    return _from_fragments(window, items, number_of_frames, name)


def max_fragments(number_of_frames: int, frame_bytes: int) -> int:
    """Most fragments ``number_of_frames`` frames of ``frame_bytes`` declared bytes may span.

    One per 256 declared bytes, at least 4 and at most :data:`MAX_FRAGMENTS_PER_FRAME` per
    frame: what writers do (a few fragments per frame) fits, a flood of tiny items does not.
    """
    per_frame = min(MAX_FRAGMENTS_PER_FRAME, max(4, frame_bytes // _BYTES_PER_FRAGMENT))
    return max(1, number_of_frames) * per_frame


def _from_basic_table(
    window: _Window,
    bot_start: int,
    bot_length: int,
    items: list[tuple[int, int]],
    index_of: dict[int, int],
    number_of_frames: int,
) -> list[FrameRanges] | None:
    """Read the (non-empty) Basic Offset Table and split the items into frames by it.

    Returns None, logged at debug level, when the table does not fit the items, so that the
    caller falls back on the fragments alone; a malformed or truncated table raises.
    """
    name = window.source.name
    if bot_length % 4:
        raise _corrupt(f"Basic Offset Table length {bot_length} is not a multiple of 4", name)
    raw = window.read(bot_start, bot_length)
    if len(raw) != bot_length:
        raise _corrupt("Basic Offset Table is truncated", name)
    offsets = np.frombuffer(raw, dtype="<u4").tolist()
    frames = _from_basic(offsets, items, index_of, number_of_frames)
    if frames is None:
        import logging  # here: logging (with traceback) costs a fresh process about 15 ms

        logging.getLogger(__name__).debug(
            "%s: Basic Offset Table %s does not match the fragments; ignoring it",
            name,
            offsets[:8],
        )
    return frames


def _from_fragments(
    window: _Window, items: list[tuple[int, int]], number_of_frames: int, name: str
) -> list[FrameRanges]:
    """Frames from the fragments alone (no usable offset table).

    One frame takes every fragment, as many fragments as frames take one each, and otherwise
    fragments are split where a codestream starts (else where one ends).
    """
    fragments = [(start + 8, length) for start, length in items]
    if number_of_frames == 1:
        return [tuple(fragments)]
    if len(fragments) == number_of_frames:
        return [(fragment,) for fragment in fragments]
    if len(fragments) < number_of_frames:
        raise _corrupt(f"has {len(fragments)} fragments for {number_of_frames} frames", name)
    frames = _split_by_start_markers(window, fragments, number_of_frames)
    if frames is None:
        frames = _split_by_end_markers(window, fragments, number_of_frames)
    if frames is None:
        raise _corrupt(
            f"has {len(fragments)} fragments for {number_of_frames} frames and no offset "
            "table; codestream markers do not split them into frames",
            name,
        )
    return frames


def _walk_items(
    window: _Window, value_offset: int, file_size: int, name: str, max_items: int
) -> tuple[int, list[tuple[int, int]]]:
    """Validate every item up to the sequence delimiter.

    Returns the Basic Offset Table length and, per fragment, ``(item tag offset, length)``;
    more than ``max_items`` fragments raise (the walk's memory stays bounded by the frames).
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
                name,
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
                name,
            )
        if length == UNDEFINED_LENGTH:
            raise _corrupt(f"item at byte {position} has undefined length", name)
        end = position + 8 + length
        if end > file_size:
            raise _corrupt(
                f"item at byte {position} ({length} bytes) runs past the end of the file "
                f"({file_size} bytes): the file is truncated",
                name,
            )
        if bot_length < 0:
            bot_length = length
        else:
            items.append((position, length))
            if len(items) > max_items:
                raise _corrupt(f"has more than {max_items} fragments, the most its frames allow", name)
        position = end


def _from_extended(
    extended_offsets: tuple[np.ndarray, np.ndarray],
    items: list[tuple[int, int]],
    index_of: dict[int, int],
    number_of_frames: int,
    name: str,
) -> list[FrameRanges]:
    offsets = np.asarray(extended_offsets[0]).astype(np.int64).tolist()
    lengths = np.asarray(extended_offsets[1]).astype(np.int64).tolist()
    if len(offsets) != number_of_frames or len(lengths) != number_of_frames:
        raise _corrupt(
            f"Extended Offset Table has {len(offsets)} offsets and {len(lengths)} lengths for "
            f"{number_of_frames} frames",
            name,
        )
    frames: list[FrameRanges] = []
    for frame, (offset, length) in enumerate(zip(offsets, lengths, strict=True)):
        index = index_of.get(offset)
        if index is None:
            raise _corrupt(
                f"Extended Offset Table offset {offset} of frame {frame} is not an item", name
            )
        start, item_length = items[index]
        if not 0 <= length <= item_length:
            raise _corrupt(
                f"Extended Offset Table length {length} of frame {frame} exceeds its item "
                f"({item_length} bytes)",
                name,
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


def read_frame(source: ByteSource, ranges: FrameRanges) -> bytes:
    """Read one frame's codestream: its fragments joined.

    Parameters
    ----------
    source
        The file (positioned reads; threads may share it). Its ``name`` is the file errors name.
    ranges
        The frame's ``(file offset, length)`` pairs from :func:`frame_ranges`.

    Returns
    -------
    bytes
        The codestream. One fragment is one ``source.read``; several are one
        ``source.read_into`` whose ranges also cover the item headers between them (into a
        scratch buffer), so a local file reads the whole span with one ``preadv``.

    Raises
    ------
    CorruptFileError
        Fewer bytes could be read than the ranges promise (the file shrank).
    """
    if len(ranges) == 1:
        offset, length = ranges[0]
        data = source.read(offset, length)
        if len(data) != length:
            raise _short_read(source.name, offset, length, len(data))
        return data
    total = sum(length for _, length in ranges)
    frame = bytearray(total)
    view = memoryview(frame)
    gaps = [ranges[i + 1][0] - (ranges[i][0] + ranges[i][1]) for i in range(len(ranges) - 1)]
    bridged = [0 < gap <= _WINDOW for gap in gaps]
    scratch = memoryview(bytearray(max((g for g, b in zip(gaps, bridged) if b), default=0)))
    spans: list[tuple[int, int]] = []
    buffers: list[memoryview] = []
    at = 0
    for i, (offset, length) in enumerate(ranges):
        spans.append((offset, length))
        buffers.append(view[at : at + length])
        at += length
        if i < len(gaps) and bridged[i]:  # the item header between two fragments: skipped
            spans.append((offset + length, gaps[i]))
            buffers.append(scratch[: gaps[i]])
    try:
        source.read_into(spans, buffers)
    except ShortReadError as exc:
        end = ranges[-1][0] + ranges[-1][1]
        raise _short_read(source.name, ranges[0][0], end - ranges[0][0], -1) from exc
    finally:
        for buffer in buffers:
            buffer.release()
        view.release()
        scratch.release()
    return bytes(frame)


def _short_read(name: str, offset: int, wanted: int, got: int) -> ShortReadError:
    where = f"{name}: " if name else ""
    read = f"read {got} of {wanted}" if got >= 0 else f"cannot read all {wanted}"
    return ShortReadError(
        f"{where}{read} pixel data bytes at offset {offset}: the file is shorter than its items "
        "say (truncated, or changed since it was scanned)",
        files=(name,) if name else (),
    )
