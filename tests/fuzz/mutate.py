"""Seeded mutation operators for DICOM files: each takes bytes and a numpy Generator.

Operators target what a hostile or damaged file varies: truncation, bit flips, element length
fields, spliced elements, the image pixel module values (Rows, Columns, BitsAllocated,
NumberOfFrames), codestream headers (JPEG SOFn / JPEG-LS SOF55 / J2K SIZ, RLE header),
fragment tables (item lengths, Basic Offset Table), functional group sequences, and the
deflated stream. :func:`mutate` applies 1-3 operators chosen by the generator, so a run is
reproduced by its seed alone.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable

import numpy as np

__all__ = ["OPERATORS", "mutate"]

Operator = Callable[[bytearray, np.random.Generator, list[bytes]], bytearray]

_INTERESTING_16 = [0, 1, 2, 7, 8, 12, 16, 17, 32, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF]
_INTERESTING_32 = [0, 1, 2, 4, 8, 0x40, 0xFFFF, 0x10000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFE,
                   0xFFFFFFFF, 1000000, 10**9]  # fmt: skip
#: (group, element) of attributes worth breaking, little-endian tag bytes.
_TAGS = [(0x0028, 0x0010), (0x0028, 0x0011), (0x0028, 0x0100), (0x0028, 0x0101),
         (0x0028, 0x0002), (0x0028, 0x0103), (0x0028, 0x0008), (0x0028, 0x0006),
         (0x0020, 0x0032), (0x0020, 0x0037), (0x0028, 0x0030), (0x0028, 0x1053),
         (0x7FE0, 0x0010), (0x5200, 0x9229), (0x5200, 0x9230), (0x0020, 0x9113),
         (0x0020, 0x9116), (0x0028, 0x9110), (0x0002, 0x0010), (0x0002, 0x0000),
         (0x7FE0, 0x0001), (0x7FE0, 0x0002), (0x0018, 0x0088), (0x0020, 0x0013)]  # fmt: skip
_ITEM = b"\xfe\xff\x00\xe0"
_CODESTREAM_MARKERS = [b"\xff\xc0", b"\xff\xc1", b"\xff\xc3", b"\xff\xf7", b"\xff\x51"]


def _positions(data: bytes, needle: bytes, limit: int = 64) -> list[int]:
    out, at = [], data.find(needle)
    while at >= 0 and len(out) < limit:
        out.append(at)
        at = data.find(needle, at + 1)
    return out


def _pick(rng: np.random.Generator, items: list) -> object:
    return items[int(rng.integers(len(items)))]


def truncate(data: bytearray, rng: np.random.Generator, _: list[bytes]) -> bytearray:
    """Cut the file anywhere (biased towards the end, where pixel data lies)."""
    cut = int(len(data) * (1 - rng.random() ** 2))
    return data[:cut]


def bit_flips(data: bytearray, rng: np.random.Generator, _: list[bytes]) -> bytearray:
    """Flip 1-16 random bits."""
    for _ in range(int(rng.integers(1, 17))):
        at = int(rng.integers(len(data)))
        data[at] ^= 1 << int(rng.integers(8))
    return data


def interesting_bytes(data: bytearray, rng: np.random.Generator, _: list[bytes]) -> bytearray:
    """Write an interesting 16- or 32-bit value at a random offset."""
    at = int(rng.integers(max(1, len(data) - 4)))
    if rng.random() < 0.5:
        data[at : at + 2] = struct.pack("<H", _pick(rng, _INTERESTING_16))
    else:
        data[at : at + 4] = struct.pack("<I", _pick(rng, _INTERESTING_32))
    return data


def _tag_hits(data: bytes) -> list[int]:
    hits: list[int] = []
    for group, element in _TAGS:
        hits += _positions(data, struct.pack("<HH", group, element), 8)
    return hits


def length_field(data: bytearray, rng: np.random.Generator, _: list[bytes]) -> bytearray:
    """Rewrite the length field of a known element (explicit: 2 or 4 bytes; implicit: 4)."""
    hits = _tag_hits(data)
    if not hits:
        return interesting_bytes(data, rng, _)
    at = int(_pick(rng, hits))
    vr = bytes(data[at + 4 : at + 6])
    if vr.isalpha() and vr.upper() == vr and vr not in (b"OB", b"OW", b"SQ", b"UN", b"UT"):
        data[at + 6 : at + 8] = struct.pack("<H", _pick(rng, _INTERESTING_16))
    elif vr.isalpha() and vr.upper() == vr:
        data[at + 8 : at + 12] = struct.pack("<I", _pick(rng, _INTERESTING_32))
    else:
        data[at + 4 : at + 8] = struct.pack("<I", _pick(rng, _INTERESTING_32))
    return data


def element_value(data: bytearray, rng: np.random.Generator, _: list[bytes]) -> bytearray:
    """Rewrite the first bytes of a known element's value (Rows, Columns, BitsAllocated, ...)."""
    hits = _tag_hits(data)
    if not hits:
        return interesting_bytes(data, rng, _)
    at = int(_pick(rng, hits))
    vr = bytes(data[at + 4 : at + 6])
    value = at + (8 if vr.isalpha() else 8)
    if vr in (b"OB", b"OW", b"SQ", b"UN", b"UT"):
        value = at + 12
    if rng.random() < 0.5:
        data[value : value + 2] = struct.pack("<H", _pick(rng, _INTERESTING_16))
    else:
        text = str(_pick(rng, ["0", "-1", "1000000", "65536", "nan", "1e308", "\\", "2"])).encode()
        data[value : value + len(text)] = text
    return data


def splice(data: bytearray, rng: np.random.Generator, others: list[bytes]) -> bytearray:
    """Insert, replace or delete a chunk taken from another seed (or this file)."""
    donor = _pick(rng, others) if others else bytes(data)
    start = int(rng.integers(len(donor)))
    chunk = donor[start : start + int(rng.integers(1, 512))]
    at = int(rng.integers(len(data)))
    mode = int(rng.integers(3))
    if mode == 0:
        return data[:at] + chunk + data[at:]
    if mode == 1:
        return data[:at] + chunk + data[at + len(chunk) :]
    return data[:at] + data[at + len(chunk) :]


def codestream_header(data: bytearray, rng: np.random.Generator, _: list[bytes]) -> bytearray:
    """Rewrite a JPEG SOFn / SOF55 or J2K SIZ field, or an RLE header word."""
    hits = [p for m in _CODESTREAM_MARKERS for p in _positions(data, m, 8)]
    rle = _positions(data, b"\x01\x00\x00\x00\x40\x00\x00\x00", 8)
    rle += _positions(data, b"\x02\x00\x00\x00\x40\x00\x00\x00", 8)
    rle += _positions(data, b"\x03\x00\x00\x00\x40\x00\x00\x00", 8)
    if rle and (not hits or rng.random() < 0.3):
        at = int(_pick(rng, rle)) + 4 * int(rng.integers(16))
        data[at : at + 4] = struct.pack("<I", _pick(rng, _INTERESTING_32))
        return data
    if not hits:
        return bit_flips(data, rng, _)
    at = int(_pick(rng, hits))
    if data[at + 1] == 0x51:  # SIZ: Lsiz Rsiz Xsiz Ysiz XOsiz YOsiz ... Csiz Ssiz
        field = at + 2 + int(_pick(rng, [2, 4, 8, 12, 16, 36, 38, 40]))
        if field >= at + 38:
            data[field : field + 2] = struct.pack(">H", _pick(rng, _INTERESTING_16))
        else:
            data[field : field + 4] = struct.pack(">I", _pick(rng, _INTERESTING_32))
        return data
    field = at + int(_pick(rng, [4, 5, 7, 9]))  # P, Y, X, Nf
    if field == at + 4 or field == at + 9:
        data[field] = int(rng.integers(256))
    else:
        data[field : field + 2] = struct.pack(">H", _pick(rng, _INTERESTING_16))
    return data


def fragment_table(data: bytearray, rng: np.random.Generator, _: list[bytes]) -> bytearray:
    """Break an item: its length, the Basic Offset Table, or repeat/drop an item."""
    hits = _positions(data, _ITEM, 256)
    if not hits:
        return length_field(data, rng, _)
    at = int(_pick(rng, hits))
    mode = int(rng.integers(4))
    if mode == 0:
        data[at + 4 : at + 8] = struct.pack("<I", _pick(rng, _INTERESTING_32))
    elif mode == 1:
        old = int.from_bytes(data[at + 4 : at + 8], "little")
        new = min(max(0, old + int(rng.integers(-9, 9))), 2**32 - 1)
        data[at + 4 : at + 8] = struct.pack("<I", new)
    elif mode == 2:  # many empty fragments
        empty = (_ITEM + b"\0\0\0\0") * int(rng.integers(1, 2000))
        data = data[:at] + empty + data[at:]
    else:  # Basic Offset Table entries
        length = int.from_bytes(data[hits[0] + 4 : hits[0] + 8], "little")
        if 0 < length < 4096:
            word = hits[0] + 8 + 4 * int(rng.integers(max(1, length // 4)))
            data[word : word + 4] = struct.pack("<I", _pick(rng, _INTERESTING_32))
    return data


def functional_groups(data: bytearray, rng: np.random.Generator, _: list[bytes]) -> bytearray:
    """Damage a per-frame / shared functional group sequence (or its items)."""
    hits = _positions(data, b"\x00\x52\x30\x92", 4) + _positions(data, b"\x00\x52\x29\x92", 4)
    hits += _positions(data, b"\x20\x00\x13\x91", 16) + _positions(data, b"\x28\x00\x10\x91", 16)
    if not hits:
        return splice(data, rng, _)
    at = int(_pick(rng, hits))
    mode = int(rng.integers(3))
    if mode == 0:
        data[at + 8 : at + 12] = struct.pack("<I", _pick(rng, _INTERESTING_32))
    elif mode == 1:
        return data[:at] + data[at + int(rng.integers(8, 200)) :]
    else:
        data[at + int(rng.integers(8, 64))] ^= 0xFF
    return data


def deflated_stream(data: bytearray, rng: np.random.Generator, _: list[bytes]) -> bytearray:
    """In a deflated file, re-deflate a mutated data set or append a compressible tail."""
    syntax = b"1.2.840.10008.1.2.1.99"
    at = data.find(syntax)
    if at < 0:
        return bit_flips(data, rng, _)
    meta_end = _meta_end(data)
    if meta_end is None:
        return bit_flips(data, rng, _)
    try:
        inflated = bytearray(zlib.decompress(bytes(data[meta_end:]), -zlib.MAX_WBITS))
    except zlib.error:
        return bit_flips(data, rng, _)
    if rng.random() < 0.5:
        inflated = bit_flips(inflated, rng, _) if rng.random() < 0.5 else length_field(inflated, rng, _)
    else:  # a deflate bomb: megabytes of zeros after the data set (a few kB deflated)
        inflated += bytes(int(rng.integers(1, 64)) << 20)
    packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    return data[:meta_end] + packer.compress(bytes(inflated)) + packer.flush()


def _meta_end(data: bytes) -> int | None:
    """End of the file meta group of a file with a preamble (group length element first)."""
    if data[128:132] != b"DICM" or data[132:136] != b"\x02\x00\x00\x00":
        return None
    (length,) = struct.unpack_from("<I", data, 140)
    return 144 + length


OPERATORS: dict[str, Operator] = {
    "truncate": truncate,
    "bit_flips": bit_flips,
    "interesting_bytes": interesting_bytes,
    "length_field": length_field,
    "element_value": element_value,
    "splice": splice,
    "codestream_header": codestream_header,
    "fragment_table": fragment_table,
    "functional_groups": functional_groups,
    "deflated_stream": deflated_stream,
}


def mutate(seed_bytes: bytes, rng: np.random.Generator, others: list[bytes]) -> tuple[bytes, str]:
    """Apply 1-3 operators chosen by ``rng``; returns the mutant and the operator names."""
    data = bytearray(seed_bytes)
    names = []
    for _ in range(int(rng.choice([1, 1, 1, 2, 3]))):
        name = str(_pick(rng, list(OPERATORS)))
        names.append(name)
        if data:
            data = OPERATORS[name](data, rng, others)
    return bytes(data), "+".join(names)
