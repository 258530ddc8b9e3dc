"""Find files: what a user passes (paths, folders, URLs, file objects, byte sources) becomes a
list of sources.

Folders are walked recursively in sorted order, hidden names left out. Nothing is opened here:
the header pass recognises DICOM by content as it reads each file's first block. Folders that
cannot be listed are collected, never skipped in silence: a series could lose slices unnoticed.
URLs (``s3://``, ``https://``, any protocol fsspec knows; ``idc://<SeriesInstanceUID>``) become
remote sources, listed through fsspec (:func:`fastvol.sources.remote.list_urls`), imported only
then; ``file://`` URLs are local paths. Open binary file objects become sources read in place.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator
from typing import IO, Any

from .errors import InputError, PathNotFoundError
from .sources import ByteSource, LocalFile
from .sources.urls import is_url, local_path

__all__ = ["Inputs", "find_sources", "locate", "walk"]

#: What :func:`fastvol.scan` and :func:`fastvol.load` accept: paths, URLs, sources, open binary
#: file objects, or an iterable of them.
Inputs = (str | os.PathLike[str] | ByteSource | IO[bytes]
          | Iterable[str | os.PathLike[str] | ByteSource | IO[bytes]])  # fmt: skip


def walk(root: str, unlisted: list[str] | None = None) -> Iterator[tuple[str, bool | None]]:
    """Every file under ``root`` (recursive, sorted, hidden names left out), or ``root`` itself.

    Yields ``(path, regular)``: ``regular`` says whether the listing saw a regular file (from the
    directory entry's type, so no ``stat`` per file), ``None`` for ``root`` given as a file.
    Folders are walked top-down, sorted; symbolic links to folders are followed (cohorts are
    often trees of links), each folder walked once: a link back to an ancestor, or a second
    path to a folder already walked, is not walked again.

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
    for plain, others in _walk_folders(root, unlisted):
        if others is None:
            for path in plain:
                yield path, True
        else:
            yield from others


def _walk_folders(root: str, unlisted: list[str] | None) -> Iterator[tuple[list[str], list[tuple[str, bool | None]] | None]]:
    """:func:`walk` a folder at a time: per folder ``(paths, None)`` when all its files are
    plain regular files (the common case, no tuple per file), else ``([], [(path, regular)])``."""
    try:
        root_info: os.stat_result | None = os.stat(root)
    except (OSError, ValueError):  # as os.path.isdir: not a folder
        root_info = None
    if root_info is None or not stat.S_ISDIR(root_info.st_mode):
        if not os.path.lexists(root):
            raise PathNotFoundError(f"{root}: no such file or folder", files=[root])
        # A file, or something that is not one (FIFO, socket, dangling link): the header pass
        # says which, without opening what is not a regular file.
        yield [], [(root, None)]
        return
    folders = [root]
    walked: set[tuple[int, int]] = set()  # (device, inode) of every folder listed
    while folders:
        folder = folders.pop()
        try:
            info = root_info if folder is root else os.stat(folder)  # the root's: stat once
            if (info.st_dev, info.st_ino) in walked:
                continue
            walked.add((info.st_dev, info.st_ino))
            with os.scandir(folder) as listing:
                by_name = {entry.name: entry for entry in listing}
        except OSError as exc:
            if unlisted is not None:
                unlisted.append(exc.filename if exc.filename is not None else folder)
            continue
        subfolders = []
        plain: list[str] = []
        others: list[tuple[str, bool | None]] | None = None
        for name in sorted(by_name):  # names sort faster than entries by a key
            if name[0] == ".":
                continue  # hidden
            entry = by_name[name]
            try:
                regular = entry.is_file(follow_symlinks=False)  # the entry's type alone
            except OSError:
                regular = False
            if regular:  # not a folder, not a link
                if others is None:
                    plain.append(entry.path)
                else:
                    others.append((entry.path, True))
            elif _is_dir(entry):
                subfolders.append(entry.path)
            else:
                if others is None:
                    others = [(path, True) for path in plain]
                others.append((entry.path, _is_file(entry)))
        yield (plain, None) if others is None else ([], others)
        folders.extend(reversed(subfolders))  # popped in sorted order


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def _is_file(entry: os.DirEntry[str]) -> bool | None:
    """From the entry's type (no stat) for plain entries; links are left to the reader."""
    try:
        return None if entry.is_symlink() else entry.is_file(follow_symlinks=False)
    except OSError:
        return None


def _is_file_object(item: object) -> bool:
    """:func:`fastvol.sources.fileobj.is_file_object`, imported only for what is not a path."""
    if isinstance(item, (str, bytes, os.PathLike)):
        return False
    from .sources.fileobj import is_file_object

    return is_file_object(item)


def _check_input(item: object) -> None:
    """Refuse what cannot name a file before anything is opened (a clear error, not a crash)."""
    if isinstance(item, (bytes, bytearray, memoryview)) and (
        not isinstance(item, bytes) or b"\x00" in item
    ):
        # A path never holds NUL; a file's contents do (the DICOM preamble).
        raise InputError(f"{len(item)} bytes given as a path: wrap file contents in "
                         f"io.BytesIO(data) to load them from memory")  # fmt: skip
    if not isinstance(item, (str, bytes, os.PathLike, ByteSource)) and not _is_file_object(item):
        raise InputError(f"{type(item).__name__} {item!r:.60} is not an input: give a path, "
                         f"folder, URL or open binary file object")  # fmt: skip


def locate(
    paths: Inputs,
    *,
    storage_options: dict[str, Any] | None = None,
    cache: str | os.PathLike[str] | None = None,
) -> tuple[list[ByteSource], list[str]]:
    """Sources for what a user passes, and the folders that could not be listed.

    Parameters
    ----------
    paths
        Paths, folders, URLs (objects, prefixes, glob patterns, ``idc://`` series), open binary
        file objects, byte sources, or a list of them.
    storage_options
        Passed to fsspec for URLs (credentials, ``anon=True``, ``endpoint_url``, ...).
    cache
        A folder keeping what remote reads fetch, keyed by URL and ETag (see
        :mod:`fastvol.sources.cache`).

    Raises
    ------
    PathNotFoundError
        A path, object or prefix that does not exist.
    """
    if isinstance(paths, (str, bytes, os.PathLike, ByteSource)) or _is_file_object(paths):
        paths = [paths]  # type: ignore[list-item]
    try:
        paths = list(paths)  # type: ignore[arg-type]
    except TypeError:
        raise InputError(f"{type(paths).__name__} is not an input: give a path, folder, URL, "
                         f"open binary file object, or a list of them") from None
    for item in paths:
        _check_input(item)
    out: list[ByteSource] = []
    unlisted: list[str] = []
    urls: list[tuple[int, str]] = []  # listed together below: their sizes come concurrently
    for item in paths:
        if isinstance(item, ByteSource):
            out.append(item)
        elif not isinstance(item, (str, bytes, os.PathLike)) and _is_file_object(item):
            from .sources.fileobj import source_from_file_object

            out.append(source_from_file_object(item))
        elif isinstance(item, str) and is_url(item):
            local = local_path(item)
            if local is None:
                urls.append((len(out), item))
            else:
                _add_files(out, local, unlisted)
        else:
            _add_files(out, os.fsdecode(item), unlisted)  # type: ignore[arg-type]  # file objects taken above
    if urls:
        _insert_remote(out, urls, storage_options, cache)
    return out, unlisted


def _add_files(out: list[ByteSource], root: str, unlisted: list[str]) -> None:
    """Sources of the files under ``root``, appended to ``out`` in :func:`walk`'s order."""
    for plain, others in _walk_folders(root, unlisted):
        if others is None:
            out.extend(LocalFile.listed(plain))
        else:
            out.extend(LocalFile(p, regular=r) for p, r in others)


def _insert_remote(out: list[ByteSource], urls: list[tuple[int, str]],
                   storage_options: dict[str, Any] | None, cache: Any) -> None:  # fmt: skip
    """Put the sources of ``urls`` into ``out`` at their places (fsspec imported only here)."""
    from .sources.remote import list_urls

    plain = [url for _, url in urls if not url.lower().startswith("idc://")]
    listed = iter(list_urls(plain, storage_options, cache) if plain else [])
    found: list[list[ByteSource]] = []
    for _, url in urls:
        if url.lower().startswith("idc://"):
            from .sources.idc import idc_sources

            found.append(list(idc_sources(url, storage_options, cache)))
        else:
            found.append(list(next(listed)))
    for (at, _), sources in reversed(list(zip(urls, found))):  # later places first
        out[at:at] = sources


def find_sources(paths: Inputs) -> list[ByteSource]:
    """Sources for what a user passes: files, folders (walked recursively) and sources.

    Folders that cannot be listed are left out; :func:`locate` also returns them.

    Raises
    ------
    PathNotFoundError
        A path that does not exist.
    """
    return locate(paths)[0]
