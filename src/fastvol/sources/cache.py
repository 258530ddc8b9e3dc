"""Local cache of remote bytes, keyed by URL and ETag: a second load reads only the cache.

A remote source given ``cache=FOLDER`` keeps every range it fetches (first blocks, read-ahead
blocks, pixel data) as one file ``FOLDER/<sha256(url, etag)[:32]>/<offset>-<length>``, written
atomically (:mod:`fastvol.atomic`), and looks there before asking the store. The ETag (or,
where a store has none, its modification time) comes from the listing, so a changed object
gets a new key and stale bytes are never read; an object with neither is not cached. Reads
go through :class:`~fastvol.sources.LocalFile`. Nothing is evicted: delete the folder to
empty it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from typing import TYPE_CHECKING

from ..atomic import atomic_path
from .local import LocalFile

if TYPE_CHECKING:
    from .remote import RemoteFile

__all__ = ["cache_get", "cache_put", "entry_folder"]


def entry_folder(source: RemoteFile) -> str | None:
    """The cache folder of ``source``'s object, or None when it cannot be cached."""
    if source.cache is None or not source.etag:
        return None
    key = hashlib.sha256(f"{source.url}\n{source.etag}".encode()).hexdigest()[:32]
    return os.path.join(source.cache, key)


def cache_get(source: RemoteFile, offset: int, length: int) -> bytes | None:
    """The cached bytes of a range, or None when they are not there."""
    folder = entry_folder(source)
    if folder is None:
        return None
    path = os.path.join(folder, f"{offset}-{length}")
    if not os.path.isfile(path):
        return None
    cached = LocalFile(path)
    try:
        data = cached.read(0, length)
    except OSError:
        return None
    finally:
        cached.close()
    return data if len(data) == length else None


def cache_put(source: RemoteFile, offset: int, data: bytes) -> None:
    """Keep a fetched range; a cache that cannot be written is left alone (reads still work)."""
    folder = entry_folder(source)
    if folder is None:
        return
    with contextlib.suppress(OSError):
        os.makedirs(folder, exist_ok=True)
        with atomic_path(os.path.join(folder, f"{offset}-{len(data)}")) as tmp, open(tmp, "wb") as out:
            out.write(data)
