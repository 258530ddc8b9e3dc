"""Byte sources: the one seam every byte of input goes through.

A :class:`ByteSource` is a strict point of cut-off with plain primitives (think of httpx's
transports): :meth:`~ByteSource.size`, :meth:`~ByteSource.read` of one range, and
:meth:`~ByteSource.read_into` of several ranges into buffers the caller owns (the output array
itself for uncompressed pixel data). Every stage above takes sources, never paths; the header
scanner's kernel receives buffers only. :class:`LocalFile` (``os.pread``/``os.preadv``) is the
only code in fastvol that opens input files for reading. :class:`~fastvol.sources.remote.RemoteFile`
reads URLs through fsspec (imported only then) and :class:`~fastvol.sources.fileobj.FileObjectSource`
open file objects; :func:`prefetch` lets remote sources fetch the ranges of many files at once.
"""

from __future__ import annotations

from .base import ByteSource, ShortReadError, prefetch
from .local import LocalFile
from .memory import MemorySource

__all__ = ["ByteSource", "LocalFile", "MemorySource", "ShortReadError", "prefetch"]
