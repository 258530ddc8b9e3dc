"""Compiled header scanner: the fast path of :func:`fastvol.headers.read_header`.

pydicom's header pass (``dcmread(stop_before_pixels=True)``) costs some twenty times the cost of
reading the bytes, because it builds a Python object per element. The scanner instead walks the
element headers of the first bytes of a file in one compiled loop, notes where each tag of
:data:`~fastvol.headers.HEADER_TAGS` sits, stops at PixelData, and only then converts the few
wanted values to Python, with the same rules pydicom and
:func:`~fastvol.headers.record_from_dataset` apply.

The contract is strict: a record from :func:`scan_header` is equal (``==``) to the record
:func:`~fastvol.headers.read_header_pydicom` gives for the same file. Whenever the scanner cannot
be sure of that, it returns ``None`` and the caller falls back to pydicom. It handles:

* files with or without the 128-byte preamble and ``DICM`` prefix, with or without file meta
  (group 0002, explicit VR little endian);
* data sets in implicit or explicit VR little endian, including every encapsulated
  (compressed) transfer syntax, whose data sets are explicit VR little endian;
* sequences of defined length (skipped as raw bytes, as pydicom does) and of undefined length
  (walked item by item, nested, with items of defined or undefined length, and with the
  per-item switch to implicit VR pydicom applies inside explicit VR sequences);
* private elements, explicit ``UN`` values of wanted tags (read with the dictionary VR, as
  pydicom does).

It falls back (returns ``None``) on: big endian and deflated syntaxes, command sets, undefined
length values that are not sequences, unknown VRs, any structure pydicom would read in a
lenient or surprising way (items without item tags, delimiters in the wrong place, values past
the end of the file, a data set whose encoding disagrees with its transfer syntax), character
sets that could decode the wanted text differently from Latin-1, and numbers pydicom would
parse through its retry path. It assumes pydicom's default configuration (no
``use_DS_decimal``, ``datetime_conversion``, ``use_none_as_empty_text_VR_value``, no
registered private transfer syntaxes).

Layout
------
:func:`scan_buffers` is the kernel: it takes one ``uint8`` buffer holding the first bytes of
many files, and per file its start, its number of valid bytes and whether those are the whole
file, and fills an ``int64`` table of (offset, length, VR) per wanted tag plus a small info row
(status, encoding, pixel data position). :func:`scan_header` and :func:`scan_headers` read the
bytes, call it once, re-read the few files whose header runs past the first block, and build
the records.
"""

from __future__ import annotations

import functools

import os
import threading
from collections.abc import Sequence
from struct import unpack_from as struct_unpack_from
from typing import Any

import numpy as np

from ..headers import HEADER_TAGS, PER_FRAME_FUNCTIONAL_GROUPS, TS, HeaderRecord
from . import jit

__all__ = ["Status", "scan_buffers", "scan_header", "scan_headers"]


# Kernel status codes (numba reads module-level ints as constants, not class attributes).
OK = 0
#: The header continues past the bytes given and they are not the whole file.
NEED_MORE = 1
#: A read would pass the end of the file (truncated file, or lengths past its end).
EOF = 2
#: An explicit VR that is not one of the 34 DICOM VRs.
BAD_VR = 3
#: Items, delimiters or lengths arranged in a way pydicom reads leniently.
BAD_STRUCTURE = 4
#: A value of undefined length that is not a sequence (pydicom searches for a delimiter).
UNDEFINED_VALUE = 5
#: Sequences nested deeper than :data:`MAX_DEPTH` frames.
TOO_DEEP = 6
#: File meta that is not explicit VR little endian.
META_ENCODING = 7
#: A command set (group 0000) before the data set.
COMMAND_SET = 8
#: Less than one element of data set after the file meta.
EMPTY = 9
#: A wanted value with an explicit VR other than its dictionary VR, or a partial US value.
VR_MISMATCH = 10


class Status:
    """Names of the kernel status codes (``info[:, INFO_STATUS]``); all but OK mean pydicom."""

    OK = OK
    NEED_MORE = NEED_MORE
    EOF = EOF
    BAD_VR = BAD_VR
    BAD_STRUCTURE = BAD_STRUCTURE
    UNDEFINED_VALUE = UNDEFINED_VALUE
    TOO_DEEP = TOO_DEEP
    META_ENCODING = META_ENCODING
    COMMAND_SET = COMMAND_SET
    EMPTY = EMPTY
    VR_MISMATCH = VR_MISMATCH


#: Columns of the info table.
INFO_STATUS = 0
INFO_IMPLICIT = 1  # 1 when the data set's first element reads as implicit VR (pydicom's test)
INFO_FIRST_VR_VALID = 2  # 1 when bytes 4-5 of the first element are a known VR
INFO_FIRST_GROUP = 3
INFO_PIXEL_OFFSET = 4
INFO_PIXEL_LENGTH = 5
INFO_ENHANCED = 6  # PerFrameFunctionalGroupsSequence at depth 0
INFO_META_TS = 7  # 1 when the file meta holds a TransferSyntaxUID
INFO_COLUMNS = 8

#: Deepest nesting of undefined-length sequences and items walked (each level is 2 frames).
MAX_DEPTH = 64

_SQ = (ord("S") << 8) | ord("Q")
_US = (ord("U") << 8) | ord("S")
_UN = (ord("U") << 8) | ord("N")
_ITEM = 0xFFFEE000
_ITEM_DELIMITER = 0xFFFEE00D
_SEQUENCE_DELIMITER = 0xFFFEE0DD
_UNDEFINED = 0xFFFFFFFF

# VRs pydicom knows; those in _LONG have 2 reserved bytes and a 4-byte length in explicit VR.
_SHORT = ["AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT", "PN", "SH", "SL", "SS", "ST", "TM", "UI", "UL", "US"]
_LONG = ["OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"]


def _vr_table() -> np.ndarray:
    """26x26 table of VR kinds indexed by (first - 'A') * 26 + (second - 'A'): 0, 1 short, 2 long."""
    table = np.zeros(26 * 26, dtype=np.int8)
    for kind, names in ((1, _SHORT), (2, _LONG)):
        for name in names:
            table[(ord(name[0]) - 65) * 26 + ord(name[1]) - 65] = kind
    return table


_VR_KIND = _vr_table()

# Tags recorded: the record's tags, the character set (decides how text decodes) and two file
# meta tags. Sorted, so the kernel finds them by bisection.
SPECIFIC_CHARACTER_SET = 0x00080005
MEDIA_STORAGE_SOP_CLASS_UID = 0x00020002
TRANSFER_SYNTAX_UID = 0x00020010
WANTED_TAGS = np.array(
    sorted(
        set(HEADER_TAGS.values())
        | {SPECIFIC_CHARACTER_SET, MEDIA_STORAGE_SOP_CLASS_UID, TRANSFER_SYNTAX_UID}
    ),
    dtype=np.int64,
)
_TAG_INDEX = {int(tag): i for i, tag in enumerate(WANTED_TAGS)}


# --------------------------------------------------------------------------------------------
# Kernel


@jit
def _u16(buf: np.ndarray, p: int) -> int:
    return np.int64(buf[p]) | (np.int64(buf[p + 1]) << 8)


@jit
def _u32(buf: np.ndarray, p: int) -> int:
    return (
        np.int64(buf[p])
        | (np.int64(buf[p + 1]) << 8)
        | (np.int64(buf[p + 2]) << 16)
        | (np.int64(buf[p + 3]) << 24)
    )


@jit
def _tag(buf: np.ndarray, p: int) -> int:
    return (_u16(buf, p) << 16) | _u16(buf, p + 2)


@jit
def _is_upper(byte: int) -> bool:
    # pydicom's explicit-VR test: both VR bytes in 0x41..0x5A
    return 0x40 < byte < 0x5B


@jit
def _vr_kind(vr_table: np.ndarray, b0: int, b1: int) -> int:
    if _is_upper(b0) and _is_upper(b1):
        # int64 first: uint8 arithmetic wraps when the kernel runs as Python (NUMBA_DISABLE_JIT)
        return vr_table[(np.int64(b0) - 65) * 26 + (np.int64(b1) - 65)]
    return 0


@jit
def _find(sorted_tags: np.ndarray, tag: int) -> int:
    lo = 0
    hi = sorted_tags.shape[0]
    while lo < hi:
        mid = (lo + hi) >> 1
        if sorted_tags[mid] < tag:
            lo = mid + 1
        else:
            hi = mid
    if lo < sorted_tags.shape[0] and sorted_tags[lo] == tag:
        return lo
    return -1



@jit
def _record_value(
    buf: np.ndarray,
    k: int,
    value_at: int,
    length: int,
    vr: int,
    expected_vr: np.ndarray,
    offset: int,
    fields: np.ndarray,
) -> int:
    """Note wanted tag ``k``'s value; return a status (the value lies inside ``buf``).

    An explicit VR other than the dictionary's makes pydicom convert by that VR: refused,
    except UN, which pydicom reads with the dictionary VR. US values are decoded here (first
    value, -1 when empty) since that is all the record uses of them.
    """
    want = expected_vr[k]
    if vr != 0 and vr != want and not (vr == _UN and length < 0xFFFF):
        return VR_MISMATCH
    fields[k, 0] = offset + value_at
    fields[k, 1] = length
    fields[k, 2] = 0
    if want == _US:
        if length & 1:
            return VR_MISMATCH  # pydicom raises on a partial value
        fields[k, 2] = _u16(buf, value_at) if length > 0 else -1
    return OK

@jit
def _scan_one(
    buf: np.ndarray,
    whole: bool,
    offset: int,
    vr_table: np.ndarray,
    sq_tags: np.ndarray,
    wanted: np.ndarray,
    expected_vr: np.ndarray,
    fields: np.ndarray,
    info: np.ndarray,
    st_seq: np.ndarray,
    st_end: np.ndarray,
    st_implicit: np.ndarray,
) -> int:
    """Scan one file's first bytes ``buf`` (the whole file when ``whole``); return a status.

    Fills ``fields[k] = (offset + value offset, value length, US value)`` for wanted tag ``k``
    found in the file meta (group 0002 tags) or at depth 0 of the data set (other tags).
    """
    n = buf.shape[0]
    # A read past n is a truncated file when n is the whole file, else a request for more.
    short = EOF if whole else NEED_MORE
    pos = 0
    if n >= 132 and buf[128] == 68 and buf[129] == 73 and buf[130] == 67 and buf[131] == 77:
        pos = 132  # preamble + "DICM"
    elif n < 132 and not whole:
        return NEED_MORE
    if pos + 12 > n:
        return EMPTY if whole else NEED_MORE

    # File meta: group 0002, explicit VR little endian, read until the first other group.
    if _u16(buf, pos) == 2:
        if not (_is_upper(buf[pos + 4]) and _is_upper(buf[pos + 5])):
            return META_ENCODING
        while True:
            if pos + 8 > n:
                return short
            group = _u16(buf, pos)
            if group != 2:
                break
            kind = _vr_kind(vr_table, buf[pos + 4], buf[pos + 5])
            if kind == 0:
                return BAD_VR
            if kind == 2:
                if pos + 12 > n:
                    return short
                length = _u32(buf, pos + 8)
                header = 12
            else:
                length = _u16(buf, pos + 6)
                header = 8
            if length == _UNDEFINED:
                return UNDEFINED_VALUE
            if pos + header + length > n:
                return short
            k = _find(wanted, _tag(buf, pos))
            if k >= 0:
                vr = (np.int64(buf[pos + 4]) << 8) | buf[pos + 5]
                status = _record_value(
                    buf, k, pos + header, length, vr, expected_vr, offset, fields
                )
                if status != OK:
                    return status
                if wanted[k] == TRANSFER_SYNTAX_UID:
                    info[INFO_META_TS] = 1
            pos += header + length
    if pos + 12 > n:
        return EMPTY if whole else NEED_MORE
    if _u16(buf, pos) == 0:
        return COMMAND_SET

    # pydicom decides the data set's encoding from its first element's VR bytes.
    implicit = not (_is_upper(buf[pos + 4]) and _is_upper(buf[pos + 5]))
    info[INFO_IMPLICIT] = 1 if implicit else 0
    info[INFO_FIRST_VR_VALID] = 1 if _vr_kind(vr_table, buf[pos + 4], buf[pos + 5]) else 0
    info[INFO_FIRST_GROUP] = _u16(buf, pos)

    # Walk the data set. Frames on the stack are undefined-length sequences (expecting items)
    # and items (holding elements); depth 0 is the data set itself.
    depth = 0
    while True:
        if depth > 0 and st_seq[depth - 1]:
            # Inside a sequence of undefined length: an item or the sequence delimiter.
            if pos + 8 > n:
                return short
            tag = _tag(buf, pos)
            length = _u32(buf, pos + 4)
            pos += 8
            if tag == _SEQUENCE_DELIMITER:
                depth -= 1
                implicit = st_implicit[depth]  # back to the data set holding the sequence
                continue
            if tag != _ITEM:
                return BAD_STRUCTURE
            if depth >= st_seq.shape[0]:
                return TOO_DEEP
            # pydicom reads items of explicit VR sequences as implicit VR when their first
            # element's VR bytes are not letters; implicit sequences stay implicit.
            item_implicit = st_implicit[depth - 1]
            if not item_implicit and length != 0:
                if pos + 6 > n:
                    return short
                item_implicit = not (_is_upper(buf[pos + 4]) and _is_upper(buf[pos + 5]))
            st_seq[depth] = False
            st_end[depth] = -1 if length == _UNDEFINED else pos + length
            st_implicit[depth] = item_implicit
            implicit = item_implicit
            depth += 1
            continue

        if depth > 0:
            end = st_end[depth - 1]
            if end >= 0 and pos >= end:
                if pos != end:
                    return BAD_STRUCTURE  # last element ran past its item
                depth -= 1
                implicit = st_implicit[depth - 1]  # the enclosing sequence's encoding
                continue
        elif whole and n - pos < 8:
            # End of a file without pixel data: pydicom stops silently, as here.
            info[INFO_PIXEL_OFFSET] = -1
            info[INFO_PIXEL_LENGTH] = -1
            return OK
        if pos + 8 > n:
            return short
        group = _u16(buf, pos)
        element = _u16(buf, pos + 2)
        tag = (group << 16) | element
        if tag == _ITEM_DELIMITER:
            # Ends an item of undefined length; anywhere else pydicom reads on leniently.
            if depth == 0 or st_end[depth - 1] >= 0 or _u32(buf, pos + 4) != 0:
                return BAD_STRUCTURE
            pos += 8
            depth -= 1
            implicit = st_implicit[depth - 1]
            continue
        if depth == 0 and group == 0x7FE0 and (element == 0x10 or element == 8 or element == 9):
            # pydicom stops here whatever the VR and takes the length from bytes 8-12 in
            # explicit VR (4-7 in implicit): mirror it exactly.
            header = 8 if implicit else 12
            if pos + header > n:
                return short
            info[INFO_PIXEL_OFFSET] = pos + header
            info[INFO_PIXEL_LENGTH] = _u32(buf, pos + header - 4)
            return OK
        if group == 0xFFFE:
            return BAD_STRUCTURE
        vr = 0
        if implicit:
            length = _u32(buf, pos + 4)
            header = 8
        else:
            kind = _vr_kind(vr_table, buf[pos + 4], buf[pos + 5])
            if kind == 0:
                return BAD_VR  # pydicom would guess implicit VR or a 2-byte length
            vr = (np.int64(buf[pos + 4]) << 8) | buf[pos + 5]
            if kind == 2:
                if pos + 12 > n:
                    return short
                length = _u32(buf, pos + 8)
                header = 12
            else:
                length = _u16(buf, pos + 6)
                header = 8
        if length == _UNDEFINED:
            if implicit:
                # pydicom: dictionary SQ tags are sequences; private tags are when their
                # value starts with an item tag; other standard tags are not.
                is_sequence = _find(sq_tags, tag) >= 0
                if not is_sequence and (group & 1) == 1:
                    if pos + header + 4 > n:
                        return short
                    is_sequence = _tag(buf, pos + header) == _ITEM
            else:
                is_sequence = vr == _SQ or vr == _UN
            if not is_sequence:
                return UNDEFINED_VALUE
            if depth == 0:
                if tag == PER_FRAME_FUNCTIONAL_GROUPS:
                    info[INFO_ENHANCED] = 1
                elif group != 2 and _find(wanted, tag) >= 0:
                    return BAD_STRUCTURE  # a wanted tag holding a sequence
            if depth >= st_seq.shape[0]:
                return TOO_DEEP
            st_seq[depth] = True
            st_end[depth] = -1
            st_implicit[depth] = implicit
            depth += 1
            pos += header
            continue
        if pos + header + length > n:
            return short
        if depth == 0:
            if tag == PER_FRAME_FUNCTIONAL_GROUPS:
                info[INFO_ENHANCED] = 1
            elif group != 2:  # group 0002 in the data set is not file meta to pydicom
                k = _find(wanted, tag)
                if k >= 0:
                    status = _record_value(
                        buf, k, pos + header, length, vr, expected_vr, offset, fields
                    )
                    if status != OK:
                        return status
        pos += header + length


@jit
def scan_buffers(
    buf: np.ndarray,
    starts: np.ndarray,
    sizes: np.ndarray,
    whole: np.ndarray,
    vr_table: np.ndarray,
    sq_tags: np.ndarray,
    wanted: np.ndarray,
    expected_vr: np.ndarray,
    fields: np.ndarray,
    info: np.ndarray,
) -> None:
    """Scan many files' first bytes held in one buffer.

    Parameters
    ----------
    buf
        ``uint8`` buffer; file ``i`` occupies ``buf[starts[i]:starts[i] + sizes[i]]``.
    starts, sizes
        ``int64`` start and number of valid bytes of each file in ``buf``.
    whole
        ``bool`` per file: the bytes are the whole file (else reads past them ask for more).
    vr_table
        :data:`_VR_KIND`.
    sq_tags
        Sorted ``int64`` tags whose dictionary VR is SQ (for implicit VR undefined lengths).
    wanted
        Sorted ``int64`` tags to record (:data:`WANTED_TAGS`).
    expected_vr
        ``int64`` dictionary VR of each wanted tag, as ``first_byte * 256 + second_byte``.
    fields
        ``int64 (n_files, len(wanted), 3)`` output per wanted tag: value offset *in buf*
        (``-1`` when absent), value length, and for US tags the first value (``-1`` if empty).
    info
        ``int64 (n_files, INFO_COLUMNS)`` output; see the ``INFO_*`` constants.
    """
    st_seq = np.zeros(MAX_DEPTH, dtype=np.bool_)
    st_end = np.zeros(MAX_DEPTH, dtype=np.int64)
    st_implicit = np.zeros(MAX_DEPTH, dtype=np.bool_)
    for i in range(starts.shape[0]):
        fields[i, :, 0] = -1
        fields[i, :, 1] = 0
        fields[i, :, 2] = 0
        info[i, :] = 0
        start = starts[i]
        info[i, INFO_STATUS] = _scan_one(
            buf[start : start + sizes[i]],
            whole[i],
            start,
            vr_table,
            sq_tags,
            wanted,
            expected_vr,
            fields[i],
            info[i],
            st_seq,
            st_end,
            st_implicit,
        )


# --------------------------------------------------------------------------------------------
# Python side: read bytes, convert the wanted values exactly as pydicom + record_from_dataset.


class _Unsure(Exception):
    """A value pydicom might convert differently: give the file to pydicom."""


_SQ_TAGS: np.ndarray | None = None


def _sq_tags() -> np.ndarray:
    """Sorted tags whose dictionary VR is SQ (pydicom's dictionary, loaded once)."""
    global _SQ_TAGS
    if _SQ_TAGS is None:
        from pydicom.datadict import DicomDictionary

        _SQ_TAGS = np.array(
            sorted(tag for tag, entry in DicomDictionary.items() if entry[0] == "SQ"),
            dtype=np.int64,
        )
    return _SQ_TAGS


def _vr_code(name: str) -> int:
    return (ord(name[0]) << 8) | ord(name[1])


# Dictionary VR of each wanted tag: implicit VR files use it, explicit ones must match it.
_TAG_VR: dict[int, str] = {
    0x00020002: "UI", 0x00020010: "UI", 0x00080005: "CS",
    0x00080016: "UI", 0x00080018: "UI", 0x00080008: "CS", 0x00080032: "TM",
    0x00080060: "CS", 0x00080070: "LO", 0x0008103E: "LO", 0x00180050: "DS",
    0x00180081: "DS", 0x00180086: "IS", 0x00180088: "DS", 0x00181060: "DS",
    0x00181120: "DS", 0x00189087: "FD", 0x0020000D: "UI", 0x0020000E: "UI",
    0x00200011: "IS", 0x00200012: "IS", 0x00200013: "IS", 0x00200032: "DS",
    0x00200037: "DS", 0x00200052: "UI", 0x00200100: "IS", 0x00280002: "US",
    0x00280004: "CS", 0x00280006: "US", 0x00280008: "IS", 0x00280010: "US",
    0x00280011: "US", 0x00280030: "DS", 0x00280100: "US", 0x00280101: "US",
    0x00280102: "US", 0x00280103: "US", 0x00281052: "DS", 0x00281053: "DS",
}  # fmt: skip
assert set(_TAG_VR) == set(_TAG_INDEX)
EXPECTED_VR = np.array([_vr_code(_TAG_VR[int(tag)]) for tag in WANTED_TAGS], dtype=np.int64)

# Where each wanted tag's (offset, length, US value) sits in a file's flat row of the table.
_I = {name: 3 * _TAG_INDEX[tag] for name, tag in HEADER_TAGS.items()}
_I_CHARSET = 3 * _TAG_INDEX[SPECIFIC_CHARACTER_SET]
_I_MEDIA_SOP_CLASS = 3 * _TAG_INDEX[MEDIA_STORAGE_SOP_CLASS_UID]
_I_TS = 3 * _TAG_INDEX[TRANSFER_SYNTAX_UID]

# Bytes a DS/IS value may hold for the scanner to parse it itself: with anything else pydicom's
# conversion can fail and retry as another VR, or Python's float() accept more than digits.
_NUMERIC_BYTES = b"0123456789+-.eE \\\x00"
# Character sets that decode like Latin-1 (pydicom's default 'iso8859'); with any other, text
# is decoded here only when it is printable ASCII (identical in every DICOM character set).
_LATIN1_CHARSETS = frozenset({"", "ISO_IR 100", "ISO_IR 6"})
_ASCII_TEXT_BYTES = bytes(range(0x20, 0x7F)) + b"\x00"
_INF = float("inf")
#: Values are sliced from the reused bytearray of a batch or the bytes of one file.
_Bytes = bytes | bytearray


def _ui(raw: _Bytes) -> str:
    """_text(UI value): pydicom strips NUL/space, splits, strips each UID of whitespace."""
    value = raw.decode("latin-1").rstrip("\x00 ")
    if "\\" in value:
        value = "\\".join(v.strip() for v in value.split("\\"))
    else:
        value = value.strip()
    return value.rstrip(" \x00").lstrip(" ")


def _cs(raw: _Bytes) -> str:
    """_text(CS or TM value): decoded Latin-1, trailing padding and leading spaces removed."""
    return raw.decode("latin-1").rstrip(" \x00").lstrip(" ")


def _lo(raw: _Bytes, latin1: bool) -> str:
    """_text(LO value): decoded with the character set, each value stripped of padding."""
    if b"\x1b" in raw or (not latin1 and raw.translate(None, _ASCII_TEXT_BYTES)):
        raise _Unsure  # escape sequences or bytes another character set may decode otherwise
    text = raw.decode("latin-1")
    if "\\" in text:
        text = "\\".join(v.rstrip("\x00 ") for v in text.split("\\"))
    else:
        text = text.rstrip("\x00 ")
    return text.rstrip(" \x00").lstrip(" ")


def _image_type(raw: _Bytes) -> tuple[str, ...]:
    values = raw.decode("latin-1").rstrip(" \x00").split("\\")
    if len(values) == 1:
        return (values[0].strip(" \x00"),)
    return tuple(v.rstrip(" \x00").lstrip(" ") for v in values)


def _ds_values(raw: _Bytes) -> list[float | None]:
    """DS items as pydicom converts them: floats, ``None`` for a blank item.

    Raises _Unsure on bytes outside digits/sign/point/exponent/space, or an item float()
    refuses (pydicom would then retry the whole value as another VR).
    """
    if len(raw) > 512 or raw.translate(None, _NUMERIC_BYTES):
        raise _Unsure
    out: list[float | None] = []
    # convert_DS_string strips whitespace, then multi_string strips padding and splits.
    for item in raw.decode("ascii").strip().rstrip(" \x00").split("\\"):
        try:
            out.append(float(item))  # DSfloat(item) is float(item)
        except ValueError:
            if item.strip():
                raise _Unsure from None
            out.append(None)  # DSfloat keeps a blank item as the string
    return out


def _ds_first(raw: _Bytes) -> float | None:
    """_float of a DS value: its first item, None when empty or blank."""
    return _ds_values(raw)[0] if raw else None


def _ds_n(raw: _Bytes, n: int) -> tuple[float, ...] | None:
    """_floats of a DS value: exactly n non-blank items, else None."""
    if not raw:
        return None
    values = _ds_values(raw)
    if len(values) != n or None in values:
        return None
    return tuple(values)  # type: ignore[arg-type]


def _is_first(raw: _Bytes) -> int | None:
    """_int of an IS value: its first item as an int; None if empty, blank or not integral."""
    if len(raw) > 512 or raw.translate(None, _NUMERIC_BYTES):
        raise _Unsure
    first: int | None = None
    # pydicom converts every item (one bad item sends the whole value down its retry path).
    for i, item in enumerate(raw.decode("ascii").rstrip(" \x00").split("\\")):
        try:
            number = float(int(item))  # IS(item): int(item) ...
        except ValueError:
            try:
                number = float(item)  # ... else float(item) (ISfloat when not integral)
            except ValueError:
                if item.strip():
                    raise _Unsure from None
                continue  # blank item: kept as a string, None to _int
        except OverflowError:
            raise _Unsure from None  # _float(IS) raises on ints beyond float range
        if number == _INF or number == -_INF:
            raise _Unsure  # IS(int(inf)) raises OverflowError in pydicom
        if i == 0 and number == int(number):
            first = int(number)
    return first


def _fd_first(raw: _Bytes) -> float | None:
    if len(raw) % 8:
        raise _Unsure  # pydicom raises on a partial value
    if not raw:
        return None
    value: float = struct_unpack_from("<d", raw)[0]
    return None if value != value else value


# Memoised converters (pure functions of the value's bytes; a raised _Unsure is not cached).
_cs_cached = functools.lru_cache(maxsize=4096)(_cs)
_ui_cached = functools.lru_cache(maxsize=4096)(_ui)
_lo_cached = functools.lru_cache(maxsize=4096)(_lo)
_is_first_cached = functools.lru_cache(maxsize=4096)(_is_first)
_ds_first_cached = functools.lru_cache(maxsize=4096)(_ds_first)
_ds_n_cached = functools.lru_cache(maxsize=4096)(_ds_n)


def _record(data: _Bytes, row: list[int], info: list[int], path: str, file_size: int) -> Any:
    """Build the record of one scanned file; None when pydicom might read it otherwise.

    ``row`` is the file's flattened ``fields`` row, offsets into ``data``; ``info`` its info
    row. Written flat (no helper per field) because this loop is most of the header pass.
    """
    if info[INFO_STATUS] != OK:
        return None
    implicit = info[INFO_IMPLICIT] == 1
    try:
        # Encoding: pydicom parses with the encoding found in the bytes but reports (and
        # places PixelData by) the one the transfer syntax implies; accept only agreement.
        if info[INFO_META_TS]:
            o = row[_I_TS]
            ts_raw = data[o : o + row[_I_TS + 1]]
            transfer_syntax = _ui(ts_raw)
            # Only plain UIDs: then pydicom's UID value and the record's text are the same.
            if (
                not transfer_syntax
                or transfer_syntax.strip("0123456789.")
                or ts_raw.rstrip(b"\x00 ").strip(b"0123456789.")
                or transfer_syntax in (TS.EXPLICIT_BE, TS.DEFLATED_LE)
                or implicit != (transfer_syntax == TS.IMPLICIT_LE)
            ):
                return None
        else:
            if implicit == (info[INFO_FIRST_VR_VALID] == 1):
                return None  # pydicom's guess (a known VR) and its parse (letters) disagree
            if not implicit and info[INFO_FIRST_GROUP] >= 1024:
                return None  # pydicom guesses big endian
            transfer_syntax = TS.IMPLICIT_LE if implicit else TS.EXPLICIT_LE

        o = row[_I_CHARSET]
        latin1 = o < 0 or _cs(data[o : o + row[_I_CHARSET + 1]]).strip() in _LATIN1_CHARSETS

        # Values repeat across the files of a series (UIDs, orientation, spacing, rescale):
        # the pure converters are memoised on the value's bytes.
        def text(k: int) -> str:
            o = row[k]
            return "" if o < 0 else _cs_cached(bytes(data[o : o + row[k + 1]]))

        def uid(k: int) -> str:
            o = row[k]
            return "" if o < 0 else _ui_cached(bytes(data[o : o + row[k + 1]]))

        def lo(k: int) -> str:
            o = row[k]
            return "" if o < 0 else _lo_cached(bytes(data[o : o + row[k + 1]]), latin1)

        def is_int(k: int) -> int | None:
            o = row[k]
            return None if o < 0 else _is_first_cached(bytes(data[o : o + row[k + 1]]))

        def ds(k: int) -> float | None:
            o = row[k]
            return None if o < 0 else _ds_first_cached(bytes(data[o : o + row[k + 1]]))

        def ds_n(k: int, n: int) -> Any:
            o = row[k]
            return None if o < 0 else _ds_n_cached(bytes(data[o : o + row[k + 1]]), n)

        def us(k: int) -> int | None:
            # the kernel decoded it: -1 for an empty value (None to pydicom)
            return None if row[k] < 0 or row[k + 2] < 0 else row[k + 2]

        sop_class = uid(_I["sop_class_uid"]) or uid(_I_MEDIA_SOP_CLASS)
        o = row[_I["image_type"]]
        image_type = () if o < 0 else _image_type(data[o : o + row[_I["image_type"] + 1]])
        bits_allocated = us(_I["bits_allocated"]) or 0
        bits_stored = us(_I["bits_stored"])
        if bits_stored is None:
            bits_stored = bits_allocated
        high_bit = us(_I["high_bit"])
        if high_bit is None:
            high_bit = bits_stored - 1
        o = row[_I["diffusion_b_value"]]
        b_value = None if o < 0 else _fd_first(data[o : o + row[_I["diffusion_b_value"] + 1]])
        return HeaderRecord(
            path,
            file_size,
            transfer_syntax,
            sop_class,
            uid(_I["sop_instance_uid"]),
            uid(_I["study_instance_uid"]),
            uid(_I["series_instance_uid"]),
            uid(_I["frame_of_reference_uid"]),
            text(_I["modality"]),
            lo(_I["manufacturer"]),
            is_int(_I["series_number"]),
            lo(_I["series_description"]),
            image_type,
            is_int(_I["instance_number"]),
            us(_I["rows"]) or 0,
            us(_I["columns"]) or 0,
            us(_I["samples_per_pixel"]) or 1,
            text(_I["photometric_interpretation"]),
            bits_allocated,
            bits_stored,
            high_bit,
            us(_I["pixel_representation"]) or 0,
            us(_I["planar_configuration"]) or 0,
            max(is_int(_I["number_of_frames"]) or 1, 1),
            ds_n(_I["image_position"], 3),
            ds_n(_I["image_orientation"], 6),
            ds_n(_I["pixel_spacing"], 2),
            ds(_I["slice_thickness"]),
            ds(_I["spacing_between_slices"]),
            ds(_I["gantry_tilt"]),
            ds(_I["rescale_slope"]),
            ds(_I["rescale_intercept"]),
            is_int(_I["temporal_position_identifier"]),
            ds(_I["trigger_time"]),
            is_int(_I["acquisition_number"]),
            text(_I["acquisition_time"]),
            is_int(_I["echo_number"]),
            ds(_I["echo_time"]),
            b_value,
            info[INFO_ENHANCED] == 1,
            info[INFO_PIXEL_OFFSET],
            info[INFO_PIXEL_LENGTH],
        )
    except _Unsure:
        return None


# --------------------------------------------------------------------------------------------
# Reading

#: Bytes read first from each file: most headers (CT, MR without vendor blobs) fit in 16 KiB,
#: and reading less saves little (a page-cache copy of 16 KiB costs about a microsecond).
FIRST_BLOCK = 16 * 1024


def _scan(
    buf: np.ndarray, starts: np.ndarray, sizes: np.ndarray, whole: np.ndarray
) -> tuple[list[list[int]], list[list[int]]]:
    """Run the kernel; return per file the flat fields row and the info row as lists."""
    n_files = starts.shape[0]
    fields = np.empty((n_files, len(WANTED_TAGS), 3), dtype=np.int64)
    info = np.empty((n_files, INFO_COLUMNS), dtype=np.int64)
    scan_buffers(
        buf, starts, sizes, whole, _VR_KIND, _sq_tags(), WANTED_TAGS, EXPECTED_VR, fields, info
    )
    return fields.reshape(n_files, -1).tolist(), info.tolist()


def _scan_file_growing(path: str, first_block: int) -> HeaderRecord | None:
    """Scan one file, reading a block and doubling it until the header fits."""
    try:
        with open(path, "rb", buffering=0) as fp:
            file_size = os.fstat(fp.fileno()).st_size
            size = min(first_block, file_size)
            data = b""
            while True:
                chunk = fp.read(size - len(data))
                if not chunk and len(data) < size:
                    return None  # the file shrank while being read
                data += chunk
                whole = len(data) >= file_size
                rows, infos = _scan(
                    np.frombuffer(data, dtype=np.uint8),
                    np.zeros(1, np.int64),
                    np.array([len(data)], np.int64),
                    np.array([whole]),
                )
                if infos[0][INFO_STATUS] != NEED_MORE or whole:
                    break
                size = min(2 * size, file_size)
    except OSError:
        return None  # pydicom raises the right error for unreadable files
    record: HeaderRecord | None = _record(data, rows[0], infos[0], path, file_size)
    return record


def scan_header(path: str, *, first_block: int = FIRST_BLOCK) -> HeaderRecord | None:
    """Read one file's header with the compiled scanner.

    Parameters
    ----------
    path
        File path (kept as given in the record).
    first_block
        Bytes read first; the read doubles until the header (up to PixelData) fits.

    Returns
    -------
    HeaderRecord or None
        A record equal to :func:`fastvol.headers.read_header_pydicom`'s, or ``None`` when the
        scanner cannot be sure of that (unsupported encoding, unusual structure or value,
        unreadable file): read the file with pydicom then.
    """
    return _scan_file_growing(os.fspath(path), first_block)


#: Files read per kernel call in :func:`scan_headers`: bounds the buffer (reused per thread,
#: since first-touch page faults of a fresh buffer cost as much as the scan).
BATCH = 256
_buffers = threading.local()


def _batch_buffer(size: int) -> bytearray:
    buf: bytearray | None = getattr(_buffers, "buf", None)
    if buf is None or len(buf) < size:
        buf = _buffers.buf = bytearray(size)
    return buf


def scan_headers(
    paths: Sequence[str], *, first_block: int = FIRST_BLOCK
) -> list[HeaderRecord | None]:
    """Read many files' headers with the compiled scanner, one kernel call per batch.

    The first ``first_block`` bytes of every file of a batch of :data:`BATCH` are read into
    one reused buffer (one ``os.preadv`` per file), scanned in one kernel call, and converted
    to records; files whose header runs past the first block are scanned again one by one
    with a growing block.

    Parameters
    ----------
    paths
        File paths (kept as given in the records).
    first_block
        Bytes read first from each file.

    Returns
    -------
    list of HeaderRecord or None
        Per path, as :func:`scan_header`: ``None`` where pydicom must read the file.
    """
    paths = [os.fspath(p) for p in paths]
    records: list[HeaderRecord | None] = []
    for first in range(0, len(paths), BATCH):
        records.extend(_scan_batch(paths[first : first + BATCH], first_block))
    return records


def _scan_batch(paths: list[str], first_block: int) -> list[HeaderRecord | None]:
    n_files = len(paths)
    data = _batch_buffer(n_files * first_block)
    view = memoryview(data)
    starts = np.arange(n_files, dtype=np.int64) * first_block
    sizes = np.zeros(n_files, dtype=np.int64)
    whole = np.zeros(n_files, dtype=np.bool_)
    file_sizes = [-1] * n_files
    read_only = os.O_RDONLY | getattr(os, "O_BINARY", 0)
    for i, path in enumerate(paths):
        # An unreadable file keeps size 0 and not whole: NEED_MORE, retried (and refused) below.
        try:
            fd = os.open(path, read_only)
        except OSError:
            continue
        try:
            file_size = os.fstat(fd).st_size
            start = i * first_block
            got = _pread_into(fd, view[start : start + first_block])
        except OSError:
            continue
        finally:
            os.close(fd)
        sizes[i] = got
        whole[i] = got >= file_size
        file_sizes[i] = file_size
    try:
        rows, infos = _scan(np.frombuffer(data, dtype=np.uint8), starts, sizes, whole)
    finally:
        view.release()
    records: list[HeaderRecord | None] = []
    for i, path in enumerate(paths):
        if infos[i][INFO_STATUS] == NEED_MORE:
            records.append(_scan_file_growing(path, 2 * first_block))
        else:
            records.append(_record(data, rows[i], infos[i], path, file_sizes[i]))
    return records


def _pread_into(fd: int, target: memoryview) -> int:
    """Read from offset 0 of ``fd`` into ``target``; the number of bytes read."""
    if _preadv is not None:
        return _preadv(fd, [target], 0)
    got = 0
    while got < len(target):  # platforms without preadv (Windows)
        chunk = os.read(fd, len(target) - got)
        if not chunk:
            break
        target[got : got + len(chunk)] = chunk
        got += len(chunk)
    return got


_preadv = getattr(os, "preadv", None)
