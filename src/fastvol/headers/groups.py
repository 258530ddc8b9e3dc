"""Sequences (functional groups and others) walked from a data set's raw bytes, little endian.

pydicom builds a Dataset per item of every sequence it parses (about 1-2 ms per frame of an
enhanced file): for hundreds or thousands of frames that is seconds before a pixel is read. The
few values the readers need are taken here straight from the bytes, walking element headers.

A :class:`Walker` keeps only the attributes it is told about (``wanted``: tag -> the VR pydicom's
dictionary gives it): an item is a dict ``tag -> value`` holding, for each wanted tag present,
its value bytes, or a list of items for a sequence. Sequences of defined length (and, in
implicit VR, any value of defined length) stay bytes until asked for as a sequence: like
pydicom, only what is read is parsed. Sequences of undefined length must be walked to find
their end and are parsed as met.

The walk is strict: anything pydicom might read differently (a length past its container, a
VR unknown or not the dictionary's for a wanted attribute, a value of undefined length that is
not a sequence, an item that switches encoding) raises :class:`Unparsed`, and the caller reads
the same facts through pydicom. The readers' tests compare both paths. One liberty: in implicit
VR a value of undefined length is walked as a sequence, as pydicom reads sequences and private
attributes; pydicom would scan a public non-sequence attribute of undefined length (which no
writer puts before the pixel data) for its delimiter instead.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import Any

__all__ = ["BAD_VR", "Item", "Unparsed", "Walker"]

_ITEM = 0xE000FFFE  # (FFFE,E000) read as one little endian uint32: element << 16 | group
_SEQ_END = 0xE0DDFFFE
_UNDEFINED = 0xFFFFFFFF
_LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"})
_SHORT_VRS = frozenset({b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FD", b"FL", b"IS", b"LO", b"LT",
                        b"PN", b"SH", b"SL", b"SS", b"ST", b"TM", b"UI", b"UL", b"US"})  # fmt: skip
_EXPLICIT = struct.Struct("<HH2sH")
_IMPLICIT = struct.Struct("<HHI")
_U32 = struct.Struct("<I")
_TWO_U32 = struct.Struct("<II")


class Unparsed(Exception):
    """The raw walk cannot be sure to read what pydicom reads: read through pydicom instead."""


class _BadVR:
    """Value of a wanted attribute written with another VR than the dictionary's."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "BAD_VR"


#: Stored for a wanted attribute whose explicit VR is not the expected one (pydicom would
#: convert it by that VR): reading it raises :class:`Unparsed`, ignoring it costs nothing.
BAD_VR: Any = _BadVR()

#: tag -> value bytes, list of items (a sequence), or :data:`BAD_VR`.
Item = dict[int, Any]


class Walker:
    """Walks items of one data set's encoding, keeping the ``wanted`` attributes.

    Parameters
    ----------
    implicit
        Implicit VR (every item of an implicit VR data set is implicit, as pydicom reads it).
    wanted
        Tag -> dictionary VR (``b"SQ"`` for sequences) of the attributes to keep.
    """

    __slots__ = ("_parsed", "implicit", "wanted")

    def __init__(self, implicit: bool, wanted: Mapping[int, bytes]) -> None:
        self.implicit = implicit
        self.wanted = wanted
        # Sequence values parsed on first use, by their bytes: frames repeat most groups byte
        # for byte, and equal bytes give one list of items (readers cache by its identity).
        self._parsed: dict[bytes, list[Item]] = {}

    def _parse(self, value: bytes) -> list[Item]:
        items = self._parsed.get(value)
        if items is None:
            items = self._parsed[value] = _items(value, 0, len(value), self.implicit, self.wanted)[0]
        return items

    def dataset(self, data: bytes, start: int, end: int) -> Item:
        """The elements of ``data[start:end]`` (a data set's top level, ending exactly at ``end``).

        Raises
        ------
        Unparsed
            Any structure the walk does not expect.
        """
        elements = _implicit_elements if self.implicit else _explicit_elements
        return elements(data, start, end, self.wanted, {})[0]

    def items(self, value: bytes) -> list[Item]:
        """The items of a sequence's whole value ``value`` (defined length)."""
        return _items(value, 0, len(value), self.implicit, self.wanted)[0]

    def sequence_at(self, data: bytes, start: int, length: int) -> list[Item]:
        """The items of a sequence whose value starts at ``start`` in ``data`` and holds
        ``length`` bytes (``0xFFFFFFFF``: up to its sequence delimiter)."""
        end = -1 if length == _UNDEFINED else start + length
        if end > len(data):
            raise Unparsed("sequence runs past the data")
        return _items(data, start, end, self.implicit, self.wanted)[0]

    def sequence(self, item: Item, tag: int) -> list[Item] | None:
        """The items of sequence ``tag`` of ``item`` (parsed on first use), ``None`` if absent."""
        value = item.get(tag)
        if value is None or value.__class__ is list:
            return value
        if value is BAD_VR:
            raise Unparsed(f"{tag:08X} is not a sequence")
        value = item[tag] = self._parse(value)
        return value

    def first(self, item: Item | None, tag: int) -> Item | None:
        """The first item of sequence ``tag`` of ``item``; ``None`` if absent or empty (or
        ``item`` is None)."""
        if item is None:
            return None
        value = item.get(tag)
        if value is None:
            return None
        if value.__class__ is not list:
            if value is BAD_VR:
                raise Unparsed(f"{tag:08X} is not a sequence")
            value = item[tag] = self._parse(value)
        return value[0] if value else None


def value(item: Item, tag: int) -> bytes | None:
    """The value bytes of attribute ``tag`` of ``item`` (``b""`` when empty), ``None`` if absent.

    Raises
    ------
    Unparsed
        The attribute is a sequence or has an unexpected VR.
    """
    raw = item.get(tag)
    if raw is None or raw.__class__ is bytes:
        return raw
    raise Unparsed(f"{tag:08X} holds a sequence or an unexpected VR")


#: Per walk: tag -> (bytes, items) of the last sequence of undefined length walked with that
#: tag. Frames repeat most of their groups byte for byte: a sequence whose bytes equal the last
#: one's is not walked again (the walk of a value depends on its bytes alone).
_Memo = dict[int, tuple[bytes, list[Item]]]


def _items(data: bytes, pos: int, end: int, implicit: bool, wanted: Mapping[int, bytes],
           memo: _Memo | None = None) -> tuple[list[Item], int]:  # fmt: skip
    """Items from ``pos`` up to ``end`` (defined length) or the sequence delimiter (``end`` < 0)."""
    items: list[Item] = []
    limit = len(data) if end < 0 else end
    elements = _implicit_elements if implicit else _explicit_elements
    if memo is None:
        memo = {}
    while pos < limit:
        if pos + 8 > limit:
            raise Unparsed("truncated item header")
        tag, length = _TWO_U32.unpack_from(data, pos)
        pos += 8
        if tag == _ITEM:
            if length == _UNDEFINED:
                item, pos = elements(data, pos, -1, wanted, memo)
            else:
                if pos + length > limit:
                    raise Unparsed("item runs past its sequence")
                item, pos = elements(data, pos, pos + length, wanted, memo)
            items.append(item)
        elif tag == _SEQ_END and end < 0:
            return items, pos
        else:
            raise Unparsed(f"tag {tag:08X} where an item was expected")
    if end < 0:
        raise Unparsed("sequence of undefined length without its delimiter")
    return items, pos


def _undefined_sequence(data: bytes, pos: int, tag: int, implicit: bool, wanted: Mapping[int, bytes],
                        memo: _Memo) -> tuple[list[Item], int]:  # fmt: skip
    """The items of sequence ``tag`` of undefined length whose value starts at ``pos``."""
    last = memo.get(tag)
    if last is not None and data.startswith(last[0], pos):
        return last[1], pos + len(last[0])
    items, stop = _items(data, pos, -1, implicit, wanted, memo)
    memo[tag] = (data[pos:stop], items)
    return items, stop


def _explicit_elements(data: bytes, pos: int, end: int, wanted: Mapping[int, bytes],
                       memo: _Memo) -> tuple[Item, int]:  # fmt: skip
    """One item's elements (explicit VR) from ``pos`` up to ``end`` or the item delimiter
    (``end`` < 0)."""
    out: Item = {}
    limit = len(data) if end < 0 else end
    get = wanted.get
    unpack = _EXPLICIT.unpack_from
    while pos < limit:
        if pos + 8 > limit:
            raise Unparsed("truncated element header")
        group, element, vr, length = unpack(data, pos)
        if vr in _SHORT_VRS:
            pos += 8
        elif group == 0xFFFE:
            if element == 0xE00D and end < 0:
                return out, pos + 8
            raise Unparsed(f"item tag (FFFE,{element:04X}) among elements")
        elif vr in _LONG_VRS:
            if pos + 12 > limit:
                raise Unparsed("truncated element header")
            length = _U32.unpack_from(data, pos + 8)[0]
            pos += 12
            if length == _UNDEFINED:
                if vr != b"SQ":  # UN of undefined length: pydicom guesses its encoding
                    raise Unparsed(f"value of undefined length in ({group:04X},{element:04X})")
                tag = group << 16 | element
                items, pos = _undefined_sequence(data, pos, tag, False, wanted, memo)
                want = get(tag)
                if want is not None:
                    out[tag] = items if want == b"SQ" else BAD_VR
                continue
        else:
            raise Unparsed(f"unknown VR {vr!r} in ({group:04X},{element:04X})")
        if group == 0xFFFE:
            raise Unparsed(f"item tag (FFFE,{element:04X}) among elements")
        stop = pos + length
        if stop > limit:
            raise Unparsed(f"value of ({group:04X},{element:04X}) runs past its item")
        tag = group << 16 | element
        want = get(tag)
        if want is not None:
            if vr == want or (vr == b"UN" and want != b"SQ" and length < 0xFFFF):
                out[tag] = data[pos:stop]  # (pydicom reads a short UN value by the dictionary's VR)
            else:
                out[tag] = BAD_VR
        pos = stop
    if end < 0:
        raise Unparsed("item of undefined length without its delimiter")
    return out, pos


def _implicit_elements(data: bytes, pos: int, end: int, wanted: Mapping[int, bytes],
                       memo: _Memo) -> tuple[Item, int]:  # fmt: skip
    """One item's elements (implicit VR) from ``pos`` up to ``end`` or the item delimiter
    (``end`` < 0)."""
    out: Item = {}
    limit = len(data) if end < 0 else end
    get = wanted.get
    unpack = _IMPLICIT.unpack_from
    while pos < limit:
        if pos + 8 > limit:
            raise Unparsed("truncated element header")
        group, element, length = unpack(data, pos)
        if group == 0xFFFE:
            if element == 0xE00D and end < 0:
                return out, pos + 8
            raise Unparsed(f"item tag (FFFE,{element:04X}) among elements")
        tag = group << 16 | element
        want = get(tag)
        pos += 8
        if length == _UNDEFINED:
            # pydicom reads an undefined length as a sequence for SQ (and unknown) tags.
            if want is not None and want != b"SQ":
                raise Unparsed(f"value of undefined length in ({group:04X},{element:04X})")
            items, pos = _undefined_sequence(data, pos, tag, True, wanted, memo)
            if want is not None:
                out[tag] = items
            continue
        stop = pos + length
        if stop > limit:
            raise Unparsed(f"value of ({group:04X},{element:04X}) runs past its item")
        if want is not None:
            out[tag] = data[pos:stop]
        pos = stop
    if end < 0:
        raise Unparsed("item of undefined length without its delimiter")
    return out, pos
