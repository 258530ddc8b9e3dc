"""Find files: what a user passes (paths, folders, byte sources) becomes a list of sources.

Folders are walked recursively in sorted order, hidden names left out. Nothing is opened here:
the header pass recognises DICOM by content as it reads each file's first block.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

from .errors import PathNotFoundError
from .sources import ByteSource, LocalFile

__all__ = ["Inputs", "find_sources", "walk"]

#: What :func:`fastvol.scan` and :func:`fastvol.load` accept.
Inputs = str | os.PathLike[str] | ByteSource | Iterable[str | os.PathLike[str] | ByteSource]


def walk(root: str) -> Iterator[str]:
    """Every file under ``root`` (recursive, sorted, hidden names left out), or ``root`` itself."""
    if os.path.isfile(root):
        yield root
        return
    if not os.path.isdir(root):
        raise PathNotFoundError(f"{root}: no such file or folder", files=[root])
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith("."):
                yield os.path.join(folder, name)


def find_sources(paths: Inputs) -> list[ByteSource]:
    """Sources for what a user passes: files, folders (walked recursively) and sources.

    Raises
    ------
    PathNotFoundError
        A path that does not exist.
    """
    if isinstance(paths, (str, bytes, os.PathLike, ByteSource)):
        paths = [paths]  # type: ignore[list-item]
    out: list[ByteSource] = []
    for item in paths:
        if isinstance(item, ByteSource):
            out.append(item)
        else:
            out.extend(LocalFile(p) for p in walk(os.fsdecode(item)))
    return out
