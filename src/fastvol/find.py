"""Find files: what a user passes (paths, folders, byte sources) becomes a list of sources.

Folders are walked recursively in sorted order, hidden names left out. Nothing is opened here:
the header pass recognises DICOM by content as it reads each file's first block. Folders that
cannot be listed are collected, never skipped in silence: a series could lose slices unnoticed.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator

from .errors import PathNotFoundError
from .sources import ByteSource, LocalFile

__all__ = ["Inputs", "find_sources", "locate", "walk"]

#: What :func:`fastvol.scan` and :func:`fastvol.load` accept.
Inputs = str | os.PathLike[str] | ByteSource | Iterable[str | os.PathLike[str] | ByteSource]


def walk(root: str, unlisted: list[str] | None = None) -> Iterator[str]:
    """Every file under ``root`` (recursive, sorted, hidden names left out), or ``root`` itself.

    Parameters
    ----------
    root
        A file or folder.
    unlisted
        Folders that could not be listed (permission denied, I/O error) are appended here;
        without it they are skipped, as ``os.walk`` does.

    Raises
    ------
    PathNotFoundError
        ``root`` does not exist.
    """
    if not os.path.isdir(root):
        if not os.path.lexists(root):
            raise PathNotFoundError(f"{root}: no such file or folder", files=[root])
        # A file, or something that is not one (FIFO, socket, dangling link): the header pass
        # says which, without opening what is not a regular file.
        yield root
        return

    def onerror(exc: OSError) -> None:
        if unlisted is not None:
            unlisted.append(exc.filename if exc.filename is not None else root)

    for folder, dirs, files in os.walk(root, onerror=onerror):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith("."):
                yield os.path.join(folder, name)


def locate(paths: Inputs) -> tuple[list[ByteSource], list[str]]:
    """Sources for what a user passes, and the folders that could not be listed.

    Raises
    ------
    PathNotFoundError
        A path that does not exist.
    """
    if isinstance(paths, (str, bytes, os.PathLike, ByteSource)):
        paths = [paths]  # type: ignore[list-item]
    out: list[ByteSource] = []
    unlisted: list[str] = []
    for item in paths:
        if isinstance(item, ByteSource):
            out.append(item)
        else:
            out.extend(LocalFile(p) for p in walk(os.fsdecode(item), unlisted))
    return out, unlisted


def find_sources(paths: Inputs) -> list[ByteSource]:
    """Sources for what a user passes: files, folders (walked recursively) and sources.

    Folders that cannot be listed are left out; :func:`locate` also returns them.

    Raises
    ------
    PathNotFoundError
        A path that does not exist.
    """
    return locate(paths)[0]
