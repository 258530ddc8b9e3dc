"""Compiled header scanner kernel: the fast path of :func:`fastvol.headers.read_header`.

pydicom's header pass (``dcmread(stop_before_pixels=True)``) costs some twenty times the cost of
reading the bytes, because it builds a Python object per element. The scanner instead walks the
element headers of the first bytes of a file in one compiled loop, notes where each wanted tag
sits, stops at PixelData, and only then (in :mod:`fastvol.headers.scan`) converts the few wanted
values to Python, with the same rules pydicom and
:func:`~fastvol.headers.convert.record_from_dataset` apply.

The contract is strict: a record from :func:`fastvol.headers.scan.scan_header` is equal (``==``)
to the record :func:`~fastvol.headers.read_header_pydicom` gives for the same file. Whenever the
scanner cannot be sure of that, it gives ``None`` and the caller falls back to pydicom. It
handles:

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
This module holds only the kernel and its constants: it receives buffers and arrays, never
opens files, and imports nothing of fastvol but :mod:`fastvol.dicom` (the wanted tags and their
VRs come in as arguments). :func:`scan_buffers` takes one ``uint8`` buffer holding the first
bytes of many files, and per file its start, its number of valid bytes and whether those are
the whole file, and fills an ``int64`` table of (offset, length, US value) per wanted tag plus
a small info row (status, encoding, pixel data position). The Python driver (reading through
byte sources, growing first blocks, converting values, building records) is
:mod:`fastvol.headers.scan`.
"""

from __future__ import annotations

import numpy as np

from ..dicom import PER_FRAME_FUNCTIONAL_GROUPS, UNDEFINED_LENGTH
from . import jit

__all__ = ["INFO_COLUMNS", "MAX_DEPTH", "VR_KIND", "scan_buffers", "vr_code"]


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
#: An implicit VR value of undefined length whose tag only the data dictionary can call a
#: sequence, and no dictionary was given (``sq_tags`` empty): scan again with it.
NEED_DICTIONARY = 11


#: Columns of the info table.
INFO_STATUS = 0
INFO_IMPLICIT = 1  # 1 when the data set's first element reads as implicit VR (pydicom's test)
INFO_FIRST_VR_VALID = 2  # 1 when bytes 4-5 of the first element are a known VR
INFO_FIRST_GROUP = 3
INFO_PIXEL_OFFSET = 4
INFO_PIXEL_LENGTH = 5
INFO_ENHANCED = 6  # PerFrameFunctionalGroupsSequence at depth 0
INFO_META_TS = 7  # 1 when the file meta holds a TransferSyntaxUID
INFO_PIXEL_ELEMENT = 8  # element of the pixel data tag: 0x10 PixelData, 8 Float, 9 Double Float
INFO_COLUMNS = 9

#: Deepest nesting of undefined-length sequences and items walked (each level is 2 frames).
MAX_DEPTH = 64

_SQ = (ord("S") << 8) | ord("Q")
_US = (ord("U") << 8) | ord("S")
_UN = (ord("U") << 8) | ord("N")
# Numeric VRs by bytes per value (pydicom fails to convert a value whose length is no multiple).
_SS = (ord("S") << 8) | ord("S")
_UL = (ord("U") << 8) | ord("L")
_SL = (ord("S") << 8) | ord("L")
_FL = (ord("F") << 8) | ord("L")
_AT = (ord("A") << 8) | ord("T")
_FD = (ord("F") << 8) | ord("D")
_SV = (ord("S") << 8) | ord("V")
_UV = (ord("U") << 8) | ord("V")
_ITEM = 0xFFFEE000
_ITEM_DELIMITER = 0xFFFEE00D
_SEQUENCE_DELIMITER = 0xFFFEE0DD
_UNDEFINED = UNDEFINED_LENGTH  # a module-level int: numba reads it as a constant

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

#: VR kind table passed to :func:`scan_buffers`.
VR_KIND = _VR_KIND

# File meta tags the kernel itself looks at (the caller's wanted tags include them).
TRANSFER_SYNTAX_UID = 0x00020010


def vr_code(name: str) -> int:
    """A VR as the kernel compares it: ``first_byte * 256 + second_byte`` (0 for no single VR)."""
    if len(name) != 2:
        return 0  # "US or SS", "OB or OW": no VR an explicit file may carry matches
    return (ord(name[0]) << 8) | ord(name[1])


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
def _numeric_size(vr: int) -> int:
    """Bytes per value of a numeric VR, 0 for any other VR."""
    if vr == _US or vr == _SS:
        return 2
    if vr == _UL or vr == _SL or vr == _FL or vr == _AT:
        return 4
    if vr == _FD or vr == _SV or vr == _UV:
        return 8
    return 0


@jit
def _explicit_element(buf: np.ndarray, pos: int, n: int, vr_table: np.ndarray) -> int:
    """Header size of the explicit VR element at ``pos``: 8 (2-byte length) or 12 (2 reserved
    bytes, 4-byte length); 0 for a VR that is not a DICOM VR, -1 when the header passes ``n``.

    Its value length is then ``_explicit_length(buf, pos, header)``.
    """
    kind = _vr_kind(vr_table, buf[pos + 4], buf[pos + 5])
    if kind == 2:
        return 12 if pos + 12 <= n else -1
    return 8 if kind == 1 else 0


@jit
def _explicit_length(buf: np.ndarray, pos: int, header: int) -> int:
    return _u32(buf, pos + 8) if header == 12 else _u16(buf, pos + 6)


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
            header = _explicit_element(buf, pos, n, vr_table)
            if header == 0:
                return BAD_VR
            if header < 0:
                return short
            length = _explicit_length(buf, pos, header)
            if length == _UNDEFINED:
                return UNDEFINED_VALUE
            if pos + header + length > n:
                return short
            vr = (np.int64(buf[pos + 4]) << 8) | buf[pos + 5]
            size = _numeric_size(vr)
            if size > 0 and length % size != 0:
                # pydicom converts the first file meta element and the group length as it
                # reads, and fails on such a value: leave every such file to it.
                return BAD_STRUCTURE
            k = _find(wanted, _tag(buf, pos))
            if k >= 0:
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
            info[INFO_PIXEL_ELEMENT] = element
            return OK
        if group == 0xFFFE:
            return BAD_STRUCTURE
        vr = 0
        if implicit:
            length = _u32(buf, pos + 4)
            header = 8
        else:
            header = _explicit_element(buf, pos, n, vr_table)
            if header == 0:
                return BAD_VR  # pydicom would guess implicit VR or a 2-byte length
            if header < 0:
                return short
            length = _explicit_length(buf, pos, header)
            vr = (np.int64(buf[pos + 4]) << 8) | buf[pos + 5]
        if length == _UNDEFINED:
            if implicit:
                # pydicom: dictionary SQ tags are sequences; private tags are when their
                # value starts with an item tag; other standard tags are not.
                if sq_tags.shape[0] == 0 and (group & 1) == 0:
                    return NEED_DICTIONARY  # standard tag: only the dictionary knows
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
        Sorted ``int64`` tags to record (the caller's wanted tags).
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
