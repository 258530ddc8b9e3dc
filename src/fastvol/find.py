"""Find files: walk paths and recognise DICOM by its content, not its name.

Files named ``IM0001`` or ``1.3.12.2...`` with no suffix are common, so a file is DICOM when it
carries the ``DICM`` magic after its 128-byte preamble, or when it starts like a raw data set
(old archives store data sets without preamble or file meta: the first element is then a group
0x0002 or 0x0008 tag followed by a plausible VR or length).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable, Iterator

__all__ = ["is_dicom_file", "list_files", "looks_like_dicom"]

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


def is_dicom_file(path: str) -> bool:
    """Whether the file at ``path`` starts like DICOM (see :func:`looks_like_dicom`)."""
    try:
        with open(path, "rb") as fp:
            head = fp.read(_HEAD)
            size = os.fstat(fp.fileno()).st_size
    except OSError:
        return False
    return looks_like_dicom(head, size)


def list_files(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[str]:
    """Every file under ``paths`` (walked recursively, sorted, hidden files left out), unread.

    The header pass recognises DICOM by content as it reads each file's first block, so
    listing does not open files a second time.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    return [path for root in paths for path in _walk(os.fspath(root))]


def _walk(root: str) -> Iterator[str]:
    if os.path.isfile(root):
        yield root
        return
    if not os.path.isdir(root):
        from .errors import NotDicomError

        raise NotDicomError(f"{root}: no such file or folder", files=[root])
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith("."):
                yield os.path.join(folder, name)
