"""Remote files through fsspec: ranged GETs, many in flight, bounded retries, one error map.

A :class:`RemoteFile` is a URL (``s3://``, ``gs://``, ``https://``, ``memory://``, any protocol
fsspec knows) plus its ``storage_options``: it pickles as those plain values, never with an
open session, and finds its file system again in the process that reads it (:func:`filesystem`
keeps one instance per protocol and options in each process: a forked or spawned worker makes
its own).

Bytes are fetched by exact byte range. Latency, not bandwidth, is what a remote read costs, so
the stages ask for many ranges at once: :meth:`RemoteFile.prefetch_many` (called through
:func:`fastvol.sources.prefetch`) fetches the first block of every file of a scan, or the pixel
data of every frame of a load, concurrently (:data:`CONCURRENCY` requests in flight: fsspec's
own event loop for asynchronous file systems, a lazily created thread pool for the others),
and keeps them in the source until it is closed. The header scanner and the stacker then read
as they read local files. A file small enough (:data:`WHOLE_FILE`) is fetched whole with its
first block: one request per file.

Failures: a transient error (connection reset, timeout, 5xx, throttling) is retried
:data:`RETRY` times with exponential backoff; what still fails, and what cannot succeed (no
such object, access denied), becomes a :class:`~fastvol.errors.FastvolError` naming the URL.
:func:`translate` (with :func:`is_transient`) is the one place foreign (fsspec, aiohttp,
botocore) exceptions are judged and translated.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .._frozen import frozen
from ..errors import (
    FastvolError,
    InputError,
    MissingDependencyError,
    PathNotFoundError,
    UnreadableError,
)
from .base import Buffer, ByteSource
from .urls import is_url, local_path

__all__ = [
    "CONCURRENCY",
    "HEAD_BLOCK",
    "RETRY",
    "WHOLE_FILE",
    "RemoteFile",
    "Retry",
    "filesystem",
    "is_transient",
    "is_url",
    "list_urls",
    "local_path",
    "translate",
]

#: Requests in flight at once (per batch of ranges).
CONCURRENCY = 64
#: First block fetched per file by the header pass: larger than a local read's, since one
#: round trip costs the same for 16 KiB and 64 KiB and most headers then need no second one.
HEAD_BLOCK = 64 * 1024
#: Files up to this size are fetched whole with their first block (one request per file),
#: and kept until their pixels are read: most CT and MR slices (512 x 512 x 2 bytes). A
#: request costs a round trip whatever its size, so this halves the requests of a load; a
#: scan of a prefix holding many series reads them whole too (set it to :data:`HEAD_BLOCK`
#: to fetch headers only).
WHOLE_FILE = 1024 * 1024
#: A read outside the fetched ranges fetches at least this much (pydicom reads in small steps).
READAHEAD = 64 * 1024
#: Ranges longer than this are fetched in parts concurrently (a large multi-frame file).
PART = 8 * 1024 * 1024
#: Spans a source keeps besides those of a batched fetch (read-ahead blocks, LRU).
_KEEP_SPANS = 4


@frozen(slots=True)
class Retry:
    """Retry policy for transient errors: ``attempts`` in all, sleeping ``backoff * 2**k``
    seconds (at most ``max_backoff``, with jitter) before attempt ``k + 1``."""

    attempts: int = 5
    backoff: float = 0.05
    max_backoff: float = 2.0

    def delay(self, attempt: int) -> float:
        return min(self.max_backoff, self.backoff * 2**attempt) * (0.5 + random.random() / 2)


#: The retry policy of every remote read.
RETRY = Retry()

def _fsspec() -> Any:
    try:
        import fsspec
    except ImportError as exc:
        raise MissingDependencyError(
            "reading URLs needs fsspec (and s3fs for s3://, gcsfs for gs://, aiohttp for "
            "https://): pip install 'fastvol[cloud]'",
            install_hint="pip install 'fastvol[cloud]'",
        ) from exc
    return fsspec


def _defaults(protocol: str, options: dict[str, Any]) -> dict[str, Any]:
    """Storage options with fastvol's defaults where the user gave none.

    S3: enough pooled connections for :data:`CONCURRENCY` requests (botocore keeps 10), and
    botocore's own retries off, so :data:`RETRY` is the one policy.
    """
    if protocol in ("s3", "s3a") and "config_kwargs" not in options:
        options = {**options, "config_kwargs": {"max_pool_connections": CONCURRENCY,
                                                "retries": {"total_max_attempts": 1}}}  # fmt: skip
    return options


#: This process's file systems, by protocol and options (see :func:`filesystem`).
_FILESYSTEMS: dict[tuple[Any, ...], Any] = {}
_FILESYSTEMS_LOCK = threading.Lock()


def filesystem(url: str, storage_options: dict[str, Any] | None = None) -> tuple[Any, str]:
    """The fsspec file system of ``url`` and the path within it.

    fastvol keeps its own instance per protocol and options in each process (not fsspec's
    shared one), with the file system's own retry loop off (s3fs retries 5 times with its
    own backoff): :data:`RETRY` is then the one policy, and no other user of fsspec is
    changed. Chained URLs (``simplecache::s3://...``) go through fsspec as they are.

    Raises
    ------
    MissingDependencyError
        fsspec, or the package of the URL's protocol, is not installed.
    InputError
        fsspec does not know the protocol.
    """
    fsspec = _fsspec()
    protocol = url.partition("://")[0].lower()
    options = _defaults(protocol, dict(storage_options or {}))
    try:
        if "::" in url:
            return fsspec.core.url_to_fs(url, **options)
        cls = fsspec.get_filesystem_class(protocol)
        key = (os.getpid(), protocol, repr(sorted(options.items())))
        with _FILESYSTEMS_LOCK:
            fs = _FILESYSTEMS.get(key)
            if fs is None:
                fs = cls(skip_instance_cache=True, **options)
                if isinstance(getattr(fs, "retries", None), int):
                    fs.retries = 1
                _FILESYSTEMS[key] = fs
        return fs, cls._strip_protocol(url)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{url}: reading {protocol}:// needs a package that is not installed ({exc}); "
            "pip install 'fastvol[cloud]'", install_hint="pip install 'fastvol[cloud]'", files=[url],
        ) from exc  # fmt: skip
    except ValueError as exc:
        raise InputError(f"{url}: fsspec cannot read this URL ({exc})", files=[url]) from exc


# -- errors: the one translation ----------------------------------------------------------------

#: Foreign exception class names that mean "try again": dropped connections, timeouts,
#: throttling and server errors of aiohttp, botocore, fsspec and the standard library.
_TRANSIENT_NAMES = {
    "ClientPayloadError", "ClientConnectionError", "ClientOSError", "ServerDisconnectedError",
    "ServerTimeoutError", "ClientConnectorError", "ConnectionTimeoutError", "SocketTimeoutError",
    "ContentLengthError", "TransferEncodingError", "IncompleteRead", "ReadTimeoutError",
    "EndpointConnectionError", "ConnectionClosedError", "ResponseStreamingError",
    "HTTPClientError", "ResponseParserError", "FSTimeoutError", "TimeoutError",
    "ConnectionResetError", "ConnectionAbortedError", "BrokenPipeError", "ConnectionError",
}  # fmt: skip
_TRANSIENT_WORDS = ("SlowDown", "reduce your request rate", "ServiceUnavailable", "InternalError",
                    "Service Unavailable", "Internal Server Error", "Bad Gateway", "Gateway Timeout",
                    "RequestTimeout", "Throttl", "503", "500", "502", "504")  # fmt: skip


def _status(exc: BaseException) -> int | None:
    """The HTTP status an exception carries (aiohttp's ``status``, botocore's response)."""
    status = getattr(exc, "status", None) or getattr(exc, "code", None)
    if isinstance(status, int):
        return status
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if isinstance(status, int):
            return status
    return None


def is_transient(exc: BaseException) -> bool:
    """Whether retrying could help: connection trouble, timeouts, 5xx, 429, throttling."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:  # s3fs wraps botocore's error in an OSError
        seen.add(id(exc))
        if isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError)):
            return False
        status = _status(exc)
        if status is not None:
            return status >= 500 or status in (408, 429)
        if type(exc).__name__ in _TRANSIENT_NAMES or isinstance(exc, (ConnectionError, TimeoutError)):
            return True
        if any(word in str(exc) for word in _TRANSIENT_WORDS):
            return True
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return False


def translate(exc: BaseException, url: str, what: str, attempts: int = 1) -> FastvolError:
    """The fastvol error for a foreign exception of a remote read of ``url``."""
    if isinstance(exc, FastvolError):
        return exc
    tried = f" after {attempts} attempts" if attempts > 1 else ""
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, FileNotFoundError) or _status(exc) == 404:
        return PathNotFoundError(f"{url}: no such object ({what}: {text})", files=[url])
    if isinstance(exc, PermissionError) or _status(exc) in (401, 403) or "Credentials" in type(exc).__name__:
        return UnreadableError(f"{url}: access denied ({what}: {text}); check storage_options "
                               "(credentials, anon=True for public buckets)", files=[url])  # fmt: skip
    return UnreadableError(f"{url}: {what} failed{tried} ({text})", files=[url], attempts=attempts)


# -- the fetch engine ---------------------------------------------------------------------------

_POOL: ThreadPoolExecutor | None = None
_POOL_PID = -1
_POOL_LOCK = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    """Threads for file systems without an event loop; created on first use, per process."""
    global _POOL, _POOL_PID
    with _POOL_LOCK:
        if _POOL is None or _POOL_PID != os.getpid():
            _POOL = ThreadPoolExecutor(max_workers=CONCURRENCY, thread_name_prefix="fastvol-remote")
            _POOL_PID = os.getpid()
        return _POOL


def _fetch_round(fs: Any, paths: list[str], starts: list[int], ends: list[int]) -> list[Any]:
    """One concurrent attempt at every range: bytes, or the exception of that range."""
    if getattr(fs, "async_impl", False):
        return list(fs.cat_ranges(paths, starts, ends, on_error="return", batch_size=CONCURRENCY))

    def one(i: int) -> Any:
        try:
            return fs.cat_file(paths[i], start=starts[i], end=ends[i])
        except Exception as exc:  # returned, as cat_ranges does
            return exc

    if len(paths) == 1:
        return [one(0)]
    return list(_pool().map(one, range(len(paths))))


def fetch(
    requests: Sequence[tuple[RemoteFile, int, int]],
    retry: Retry | None = None,
    *,
    errors: str = "raise",
    exact: bool = True,
) -> list[Any]:
    """The bytes of each ``(source, offset, length)`` range, fetched concurrently.

    Transient failures are retried per range with backoff; a range that still fails raises
    for its URL, after every other range has ended (``errors="return"``: its entry is the
    fastvol error instead). ``exact=False``: a range may pass the end of its file (the bytes
    up to the end come back), for files whose size is not known yet.

    Raises
    ------
    UnreadableError, PathNotFoundError
        A range could not be fetched; the error names its URL.
    ShortReadError
        The object is shorter than its listed size (changed since it was listed).
    """
    retry = retry or RETRY
    out: list[Any] = [None] * len(requests)
    groups: dict[int, tuple[Any, list[int]]] = {}
    for i, (source, _, _) in enumerate(requests):
        fs = source.fs
        groups.setdefault(id(fs), (fs, []))[1].append(i)
    for fs, todo in groups.values():
        attempt = 0
        while todo:
            paths = [requests[i][0].path for i in todo]
            starts = [requests[i][1] for i in todo]
            ends = [requests[i][1] + requests[i][2] for i in todo]
            results = _fetch_round(fs, paths, starts, ends)
            attempt += 1
            again = []
            failed = None
            for i, result in zip(todo, results):
                if isinstance(result, BaseException):
                    if attempt < retry.attempts and is_transient(result):
                        again.append(i)
                        continue
                    source, offset, length = requests[i]
                    error = translate(result, source.url, f"reading bytes {offset}-{offset + length}", attempt)
                    error.__cause__ = result
                    result = error
                    failed = failed or error
                elif len(result) != requests[i][2] and (exact or len(result) > requests[i][2]):
                    source, offset, length = requests[i]
                    result = source.short_read(offset, length, len(result))
                    failed = failed or result
                out[i] = result
            if failed is not None and errors == "raise":
                raise failed
            if again:
                time.sleep(retry.delay(attempt - 1))
            todo = again
    return out


# -- the source ---------------------------------------------------------------------------------


class RemoteFile(ByteSource):
    """One object of a remote store, read by ranged requests through fsspec.

    Parameters
    ----------
    url
        The object's URL; it names the file in records, messages and ``Volume.meta``.
    storage_options
        Passed to fsspec for the URL's protocol (credentials, ``anon=True``, endpoint, ...).
    size, etag
        From a listing, when known (saves a request per file).
    cache
        A folder for the local header/pixel cache (:mod:`fastvol.sources.cache`), or None.
    """

    def __init__(
        self,
        url: str,
        storage_options: dict[str, Any] | None = None,
        *,
        size: int | None = None,
        etag: str | None = None,
        cache: str | os.PathLike[str] | None = None,
    ) -> None:
        self.name = self.url = url
        self.storage_options = dict(storage_options or {})
        self._size = -1 if size is None else int(size)
        self.etag = etag
        self.cache = None if cache is None else os.fspath(cache)
        self._init_state()

    def _init_state(self) -> None:
        self._fs: Any = None
        self._path = ""
        self._lock = threading.Lock()
        self._spans: list[tuple[int, bytes]] = []  # fetched (offset, bytes), newest last
        self._kept = 0  # spans from batched fetches (kept until close), before read-ahead ones
        self._keep_whole = False  # a whole file fetched with its header: kept over one close
        self._failed: FastvolError | None = None  # a deferred prefetch error: reads raise it

    def __getstate__(self) -> dict[str, Any]:
        # Plain values only: no session, no fetched bytes.
        return {"url": self.url, "storage_options": self.storage_options, "size": self._size,
                "etag": self.etag, "cache": self.cache}  # fmt: skip

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.name = self.url = state["url"]
        self.storage_options = state["storage_options"]
        self._size = state["size"]
        self.etag = state["etag"]
        self.cache = state["cache"]
        self._init_state()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RemoteFile) and (other.url, other.storage_options) == (self.url, self.storage_options)

    def __hash__(self) -> int:
        return hash(("RemoteFile", self.url))

    @property
    def fs(self) -> Any:
        """The fsspec file system (found on first use in this process)."""
        if self._fs is None:
            self._fs, self._path = filesystem(self.url, self.storage_options)
        return self._fs

    @property
    def path(self) -> str:
        """The object's path within :attr:`fs`."""
        if self._fs is None:
            self.fs  # noqa: B018 - sets _path
        return self._path

    # -- primitives -----------------------------------------------------------------------------

    def size(self) -> int:
        if self._size < 0:
            if self._failed is not None:
                raise self._failed
            info = _info(self)
            self._size = int(info["size"])
            self.etag = self.etag or _etag(info)
        return self._size

    def _cached(self, offset: int, length: int, view: bool = False) -> Any:
        """The held bytes of a range (a memoryview with ``view``: no copy), or None."""
        if self._failed is not None:
            raise self._failed
        with self._lock:
            for start, data in reversed(self._spans):
                if start <= offset and offset + length <= start + len(data):
                    if view:
                        return memoryview(data)[offset - start : offset - start + length]
                    return data[offset - start : offset - start + length]
        return None

    def _keep(self, offset: int, data: bytes, batched: bool) -> None:
        with self._lock:
            if batched:
                self._spans.insert(self._kept, (offset, data))
                self._kept += 1
            else:
                self._spans.append((offset, data))
                if len(self._spans) - self._kept > _KEEP_SPANS:
                    del self._spans[self._kept]

    def read(self, offset: int, length: int) -> bytes:
        size = self.size()
        length = max(0, min(length, size - offset))
        if length == 0:
            return b""
        data = self._cached(offset, length)
        if data is not None:
            return data
        span = min(max(length, READAHEAD), size - offset)
        block = self._get([(offset, span)])[0]
        self._keep(offset, block, batched=False)
        return block[:length]

    def read_into(self, ranges: Sequence[tuple[int, int]], buffers: Sequence[Buffer]) -> None:
        size = self.size()
        missing = []
        for k, (offset, length) in enumerate(ranges):
            if offset < 0 or offset + length > size:
                raise self.short_read(offset, length, max(0, size - offset))
            data = self._cached(offset, length, view=True)
            if data is None:
                missing.append(k)
            else:
                _copy(data, buffers[k], length)  # the one copy: fetched bytes -> the output
        if missing:
            fetched = self._get([ranges[k] for k in missing])
            for k, data in zip(missing, fetched):
                _copy(data, buffers[k], ranges[k][1])

    def _get(self, ranges: list[tuple[int, int]]) -> list[bytes]:
        """Fetch ranges of this file (through the local cache when there is one)."""
        return _get_many([(self, o, n) for o, n in ranges])

    def close(self) -> None:
        # Fetched bytes go, except a whole small file fetched by the header pass: it survives
        # that pass's close, so the pixel pass reads it without a second request; the next
        # close (the pixel pass's) lets it go, so a kept Series holds no file bytes.
        with self._lock:
            whole = [s for s in self._spans[: self._kept] if s[0] == 0 and len(s[1]) == self._size]
            if not self._keep_whole:
                whole = []
            self._keep_whole = False
            self._spans = whole
            self._kept = len(whole)

    def forget(self) -> None:
        """Drop every fetched byte and a remembered failure (the next read asks again)."""
        with self._lock:
            self._spans = []
            self._kept = 0
            self._failed = None

    # -- batched fetches ------------------------------------------------------------------------

    @classmethod
    def prefetch_many(cls, requests: Sequence[tuple[ByteSource, int, int]], *, errors: str = "raise") -> None:
        """Fetch ``(source, offset, length)`` ranges of many files concurrently and keep them.

        A range starting at 0 is a header pass's first block: it grows to :data:`HEAD_BLOCK`,
        and to the whole file when that is at most :data:`WHOLE_FILE`. Ranges already held
        are skipped; long ones are fetched in :data:`PART` parts. With ``errors="defer"`` a
        source that fails keeps its error and raises it on its next read (see
        :func:`fastvol.sources.prefetch`).
        """
        sources = [s for s, _, _ in requests if isinstance(s, RemoteFile)]
        _first_blocks_unsized([s for s, o, _ in requests if o == 0 and isinstance(s, RemoteFile)
                               and s._size < 0 and s.cache is None], errors)  # fmt: skip
        _sizes([s for s in sources if s._size < 0 and s._failed is None], errors)
        todo: list[tuple[RemoteFile, int, int]] = []
        for source, offset, length in requests:
            assert isinstance(source, RemoteFile)
            if source._failed is not None:
                if errors == "raise":
                    raise source._failed
                continue
            size = source.size()
            if offset == 0:
                length = size if size <= WHOLE_FILE else max(length, HEAD_BLOCK)
                if length == size and source._cached(0, size) is not None:
                    continue
            length = max(0, min(length, size - offset))
            if length == 0 or source._cached(offset, length) is not None:
                continue
            todo.extend((source, o, min(PART, offset + length - o)) for o in range(offset, offset + length, PART))
        for (source, offset, _), data in zip(todo, _get_many(todo, errors)):
            if isinstance(data, FastvolError):
                source._failed = data
            else:
                source._keep(offset, data, batched=True)
                if offset == 0 and len(data) == source._size:
                    source._keep_whole = True


def _first_blocks_unsized(sources: list[RemoteFile], errors: str) -> None:
    """First blocks of files whose size is not known (URLs given one by one, HTTP listings):
    :data:`WHOLE_FILE` bytes asked for from each, so a file that fits comes whole and tells its
    size by coming short, with no request for its size (a HEAD each); larger files keep the
    block and ask for their size after. (Files to be cached ask for their ETag first.)"""
    if not sources:
        return
    requests = [(s, 0, WHOLE_FILE) for s in sources]
    fetched = fetch(requests, errors="return" if errors == "defer" else "raise", exact=False)
    for source, data in zip(sources, fetched):
        if isinstance(data, PathNotFoundError):
            raise data  # a URL the user named that does not exist, as a missing local path
        if isinstance(data, FastvolError):
            source._failed = data
            continue
        if len(data) < WHOLE_FILE:
            source._size = len(data)
            source._keep_whole = True
        source._keep(0, data, batched=True)


def _copy(data: bytes | memoryview, buffer: Buffer, length: int) -> None:
    view = memoryview(buffer).cast("B")
    try:
        view[:length] = data[:length]
    finally:
        view.release()


def _get_many(requests: list[tuple[RemoteFile, int, int]], errors: str = "raise") -> list[Any]:
    """:func:`fetch`, answered from the local cache where it can, and filling it."""
    if not requests:
        return []
    if all(source.cache is None for source, _, _ in requests):
        return fetch(requests, errors="return" if errors == "defer" else "raise")
    from .cache import cache_get, cache_put

    out: list[Any] = [cache_get(s, o, n) for s, o, n in requests]
    todo = [i for i, data in enumerate(out) if data is None]
    fetched = fetch([requests[i] for i in todo], errors="return" if errors == "defer" else "raise")
    for i, data in zip(todo, fetched):
        out[i] = data
        if not isinstance(data, FastvolError):
            cache_put(requests[i][0], requests[i][1], data)
    return out


def _etag(info: dict[str, Any]) -> str | None:
    for key in ("ETag", "etag", "md5Hash", "crc32c", "LastModified", "mtime", "updated", "created"):
        value = info.get(key)
        if value:
            return str(value).strip('"') if key.lower() == "etag" else f"{key}:{value}"
    return None


def _retrying(fn: Any, url: str, what: str) -> Any:
    """``fn()``, retried on transient errors; a foreign error becomes the fastvol error for ``url``."""
    attempt = 0
    while True:
        attempt += 1
        try:
            return fn()
        except FastvolError:
            raise
        except Exception as exc:
            if isinstance(exc, (Warning, MemoryError)):
                raise
            if attempt < RETRY.attempts and is_transient(exc):
                time.sleep(RETRY.delay(attempt - 1))
                continue
            raise translate(exc, url, what, attempt) from exc


def _info(source: RemoteFile) -> dict[str, Any]:
    return _retrying(lambda: source.fs.info(source.path), source.url, "reading its size")  # type: ignore[no-any-return]


def _sizes(sources: list[RemoteFile], errors: str = "raise") -> None:
    """Ask for the sizes of many files concurrently (explicit URLs, not from a listing)."""

    def size(source: RemoteFile) -> None:
        try:
            source.size()
        except FastvolError as exc:
            if errors == "raise":
                raise
            source._failed = exc

    if len(sources) == 1:
        size(sources[0])
    elif sources:
        list(_pool().map(size, sources))


# -- finding files ------------------------------------------------------------------------------

#: Explicit URLs sharing a parent from which one listing is cheaper than a size request each.
_LIST_PARENT_FROM = 8


def _hidden(path: str) -> bool:
    return path.rstrip("/").rsplit("/", 1)[-1].startswith(".")


def list_urls(
    urls: Sequence[str],
    storage_options: dict[str, Any] | None = None,
    cache: str | os.PathLike[str] | None = None,
) -> list[list[RemoteFile]]:
    """Sources for each of ``urls`` (one list per URL): objects, prefixes ("folders", listed recursively) and glob patterns.

    A URL ending in ``/`` is a prefix; a URL with ``*``, ``?`` or ``[`` a pattern; any other is
    an object, or a prefix when the store says so. Objects under a prefix come in sorted
    order, hidden names (``.name``) left out, each with its size and ETag from the listing.

    Raises
    ------
    PathNotFoundError
        A URL names no object and no non-empty prefix.
    UnreadableError
        Listing failed (after retries), or access was denied.
    MissingDependencyError
        fsspec or the protocol's package is not installed.
    """
    out: list[list[RemoteFile]] = []
    singles: list[tuple[int, str, Any, str]] = []  # explicit objects: sized below, in bulk
    for url in urls:
        fs, path = filesystem(url, storage_options)
        if any(c in path for c in "*?["):
            found = _retrying(lambda: fs.glob(path, detail=True), url, "listing")
        elif url.endswith("/"):
            found = _retrying(lambda: fs.find(path, detail=True), url, "listing")
        else:
            singles.append((len(out), url, fs, path))
            out.append([RemoteFile(url, storage_options, cache=cache)])
            continue
        found = {p: i for p, i in found.items() if i.get("type", "file") != "directory" and not _hidden(p)}
        if not found:
            raise PathNotFoundError(f"{url}: no such object or prefix", files=[url])
        out.append([RemoteFile(_unstrip(fs, p), storage_options, size=found[p].get("size"),
                               etag=_etag(found[p]), cache=cache) for p in sorted(found)])  # fmt: skip
    _size_singles(out, singles, storage_options, cache)
    return out


def _unstrip(fs: Any, path: str) -> str:
    if "://" in path:
        return path
    return str(fs.unstrip_protocol(path))


def _size_singles(out: list[list[RemoteFile]], singles: list[tuple[int, str, Any, str]],
                  storage_options: dict[str, Any] | None, cache: Any) -> None:  # fmt: skip
    """Sizes (and ETags) of explicit object URLs: from one listing of a parent many share,
    else one request each, concurrently; a URL that is a prefix after all is expanded."""
    parents: dict[tuple[int, str], list[int]] = {}
    for k, (_, url, fs, path) in enumerate(singles):
        parents.setdefault((id(fs), path.rsplit("/", 1)[0]), []).append(k)
    listed: dict[str, dict[str, Any]] = {}
    for (_, parent), ks in parents.items():
        fs = singles[ks[0]][2]
        if len(ks) >= _LIST_PARENT_FROM and "http" not in _protocols(fs):
            try:
                entries = fs.ls(parent, detail=True)
            except Exception:  # the requests below name any real failure
                continue
            listed.update((e["name"].rstrip("/"), e) for e in entries if e.get("type") == "file")

    # HTTP has no folders: its objects are sized by their first request (see
    # _first_blocks_unsized), not by a HEAD each.
    singles = [x for x in singles if "http" not in _protocols(x[2])]

    def info(k: int) -> Any:
        _, url, fs, path = singles[k]
        if path.rstrip("/") in listed:
            return listed[path.rstrip("/")]
        return _retrying(lambda: fs.info(path), url, "reading its size")

    infos = list(_pool().map(info, range(len(singles)))) if len(singles) > 1 else [info(0)] if singles else []
    for (at, url, fs, path), meta in zip(singles, infos):
        if meta.get("type") == "directory":
            out[at] = list_urls([url.rstrip("/") + "/"], storage_options, cache)[0]
        else:
            out[at][0]._size = int(meta["size"])
            out[at][0].etag = _etag(meta)


def _protocols(fs: Any) -> tuple[str, ...]:
    protocol = getattr(fs, "protocol", ())
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)
