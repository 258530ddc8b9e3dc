"""Telling URLs from local paths: what :mod:`fastvol.find` needs of remote reading.

Kept apart from :mod:`.remote` so that a local load imports neither its thread pool nor fsspec.
"""

from __future__ import annotations

__all__ = ["is_url", "local_path"]

#: Protocols fastvol reads itself, without fsspec.
_LOCAL_PROTOCOLS = ("file", "local")


def is_url(text: str) -> bool:
    """Whether ``text`` is a URL (``protocol://...``), not a local path."""
    head, sep, _ = text.partition("://")
    return bool(sep) and len(head) > 1 and all(c.isalnum() or c in "+-._" for c in head)


def local_path(url: str) -> str | None:
    """The local path of a ``file://`` URL (read as a local file, without fsspec), else None."""
    if url.partition("://")[0].lower() not in _LOCAL_PROTOCOLS:
        return None
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(url)
    return unquote(parts.path if parts.netloc in ("", "localhost") else "//" + parts.netloc + parts.path)
