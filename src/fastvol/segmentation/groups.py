"""Per-frame functional groups of a SEG, parsed from the sequence's raw bytes.

pydicom builds a Dataset per item of every nested sequence (about 2 ms per frame): for a SEG of
a few thousand frames that is seconds before a pixel is read. The few per-frame facts a SEG
needs (segment number, position, source image) are taken here straight from the raw value of
PerFrameFunctionalGroupsSequence that pydicom leaves unparsed, walking element headers only.

The walk is strict: anything unexpected (a length past its container, an unknown encoding)
raises :class:`Unparsed` and the caller reads the same facts through pydicom, so both paths give
equal results (the tests compare them).
"""

from __future__ import annotations

import struct
from typing import Any

__all__ = ["Unparsed", "parse_items", "parse_sequence"]

_ITEM = 0xFFFEE000
_ITEM_END = 0xFFFEE00D
_SEQ_END = 0xFFFEE0DD
_UNDEFINED = 0xFFFFFFFF
_LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"})
_SHORT_VRS = frozenset({b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FD", b"FL", b"IS", b"LO", b"LT",
                        b"PN", b"SH", b"SL", b"SS", b"ST", b"TM", b"UI", b"UL", b"US"})  # fmt: skip
_U32 = struct.Struct("<I")
_U16 = struct.Struct("<H")
_TAG = struct.Struct("<HH")


class Unparsed(Exception):
    """The raw walk cannot be sure of the structure: read through pydicom instead."""


Item = dict[int, Any]  # tag -> value bytes, or a list of Items for a sequence


def parse_items(data: bytes, implicit: bool, sequences: frozenset[int]) -> list[Item]:
    """The items of a sequence value ``data`` (little endian), each a dict ``tag -> bytes``, with
    nested sequences (explicit VR SQ, or in implicit VR the tags in ``sequences`` and any value
    of undefined length) as lists of such dicts.

    Raises
    ------
    Unparsed
        Any structure the walk does not expect.
    """
    items, pos = _items(data, 0, len(data), implicit, sequences)
    if pos != len(data):
        raise Unparsed("trailing bytes after the sequence")
    return items


def parse_sequence(data: bytes, start: int, length: int, implicit: bool,
                   sequences: frozenset[int]) -> list[Item]:
    """The items of a sequence whose value starts at ``start`` in ``data`` and holds ``length``
    bytes (``0xFFFFFFFF``: up to its sequence delimiter), as :func:`parse_items`.

    Raises
    ------
    Unparsed
        Any structure the walk does not expect.
    """
    items, _ = _items(data, start, -1 if length == _UNDEFINED else start + length, implicit, sequences)
    return items


def _items(data: bytes, pos: int, end: int, implicit: bool, sequences: frozenset[int]) -> tuple[list[Item], int]:
    """Items from ``pos`` up to ``end`` (defined length) or the sequence delimiter (``end`` < 0)."""
    items: list[Item] = []
    limit = len(data) if end < 0 else end
    while pos < limit:
        if pos + 8 > limit:
            raise Unparsed("truncated item header")
        group, element = _TAG.unpack_from(data, pos)
        tag = (group << 16) | element
        length = _U32.unpack_from(data, pos + 4)[0]
        pos += 8
        if tag == _SEQ_END:
            if end >= 0:
                raise Unparsed("sequence delimiter in a sequence of defined length")
            return items, pos
        if tag != _ITEM:
            raise Unparsed(f"tag {tag:08X} where an item was expected")
        item, pos = _elements(data, pos, -1 if length == _UNDEFINED else pos + length, implicit, sequences)
        items.append(item)
    if end < 0:
        raise Unparsed("sequence of undefined length without its delimiter")
    if pos != end:
        raise Unparsed("items run past their sequence")
    return items, pos


def _elements(data: bytes, pos: int, end: int, implicit: bool, sequences: frozenset[int]) -> tuple[Item, int]:
    """One item's elements from ``pos`` up to ``end`` or the item delimiter (``end`` < 0)."""
    out: Item = {}
    limit = len(data) if end < 0 else end
    while pos < limit:
        if pos + 8 > limit:
            raise Unparsed("truncated element header")
        group, element = _TAG.unpack_from(data, pos)
        tag = (group << 16) | element
        if tag == _ITEM_END:
            if end >= 0:
                raise Unparsed("item delimiter in an item of defined length")
            return out, pos + 8
        if group == 0xFFFE:
            raise Unparsed(f"item tag {tag:08X} among elements")
        if implicit:
            length = _U32.unpack_from(data, pos + 4)[0]
            pos += 8
            is_sq = tag in sequences or length == _UNDEFINED
        else:
            vr = data[pos + 4 : pos + 6]
            if vr in _LONG_VRS:
                if pos + 12 > limit:
                    raise Unparsed("truncated element header")
                length = _U32.unpack_from(data, pos + 8)[0]
                pos += 12
            elif vr in _SHORT_VRS:
                length = _U16.unpack_from(data, pos + 6)[0]
                pos += 8
            else:
                raise Unparsed(f"unknown VR {vr!r}")
            is_sq = vr == b"SQ"
            if length == _UNDEFINED and not is_sq:
                raise Unparsed(f"value of undefined length in {tag:08X}")
        if is_sq:
            # Sequences switch to implicit VR only where pydicom would too; keep the encoding.
            value, pos = _items(data, pos, -1 if length == _UNDEFINED else pos + length, implicit, sequences)
            out[tag] = value
            continue
        if pos + length > limit:
            raise Unparsed(f"value of {tag:08X} runs past its item")
        out[tag] = data[pos : pos + length]
        pos += length
    if end < 0:
        raise Unparsed("item of undefined length without its delimiter")
    if pos != end:
        raise Unparsed("elements run past their item")
    return out, pos
