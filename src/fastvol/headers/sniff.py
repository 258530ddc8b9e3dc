"""Recognise DICOM by its content, not its name.

Files named ``IM0001`` or ``1.3.12.2...`` with no suffix are common, so a file is DICOM when it
carries the ``DICM`` magic after its 128-byte preamble, or when it starts like a raw data set
(old archives store data sets without preamble or file meta: the first element is then a group
0x0002 or 0x0008 tag followed by a plausible VR or length). The compiled scanner recognises
most files as it reads them; this sniff is for the rest.
"""

from __future__ import annotations

import struct

from ..errors import UnreadableError
from ..sources import ByteSource

__all__ = ["is_dicom_source", "looks_like_dicom"]

_VRS = frozenset(
    b"AE AS AT CS DA DS DT FL FD IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL UN "
    b"UR US UT UV".split()
)
_HEAD = 132


def looks_like_dicom(head: bytes, file_size: int | None = None) -> bool:
    """Whether the first bytes of a file look like DICOM (Part 10 or a raw data set).

    Parameters
    ----------
    head
        At least the first 132 bytes of the file (fewer for tiny files).
    file_size
        Size of the whole file, used to reject implausible first-element lengths.
    """
    if len(head) >= _HEAD and head[128:132] == b"DICM":
        return True
    if len(head) < 8:
        return False
    for endian in ("<", ">"):
        group, elem = struct.unpack(endian + "HH", head[:4])
        if group not in (0x0002, 0x0008):
            continue
        if head[4:6] in _VRS:
            return True
        (length,) = struct.unpack(endian + "I", head[4:8])
        limit = file_size if file_size is not None else 1 << 24
        if length < limit and elem < 0x1000:
            return True
    return False


def is_dicom_source(source: ByteSource) -> bool:
    """Whether ``source`` starts like DICOM (see :func:`looks_like_dicom`); reads 132 bytes.

    Sources that are not regular files (FIFOs, devices) are never read: ``False``. A file the
    OS will not let us read is an :class:`~fastvol.errors.UnreadableError`, never "not DICOM":
    its series would lose slices with nothing said.
    """
    if not source.is_regular():
        return False
    try:
        return looks_like_dicom(source.read(0, _HEAD), source.size())
    except OSError as exc:
        raise UnreadableError(f"{source.name}: cannot be read ({exc})", files=[source.name]) from exc
