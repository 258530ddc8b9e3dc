"""Real servers on loopback for the remote-read tests: an S3-compatible one (moto) and a plain
HTTP one, both behind :class:`Faults`, which injects latency and failures and records what
the server saw (requests per object, ranges, requests in flight at once).

Started by the tests themselves (fixtures in ``test_remote.py``, and the benchmarks): each
server runs in a daemon thread of the test process, on a free port of 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import html
import re
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

__all__ = ["Faults", "HttpFileServer", "S3Server"]


class _QuietHandler(WSGIRequestHandler):
    def log(self, *args: Any) -> None:  # no access log in test output
        pass


class Faults:
    """WSGI middleware: latency per request, injected failures, and a log of requests.

    Failures are injected on GET requests whose path contains a given text: ``"503"`` (a 503
    Service Unavailable with an S3 ``SlowDown`` body) or ``"reset"`` (the response starts,
    half the body is sent, then the connection is reset).
    """

    def __init__(self, app: Callable[..., Any], latency: float = 0.0) -> None:
        self.app = app
        self.latency = latency
        self._lock = threading.Lock()
        self._rules: list[tuple[str, list[str] | str, str]] = []
        self.clear()

    def clear(self) -> None:
        """Forget the log and the injected failures (latency stays)."""
        with self._lock:
            self.requests: list[tuple[str, str, str | None]] = []  # (method, path, Range)
            self.in_flight = 0
            self.max_in_flight = 0
            self.failures = 0
            self._rules = []

    def inject(self, match: str, kinds: list[str] | str, *, where: str = "any") -> None:
        """Fail GETs of paths containing ``match``: each of ``kinds`` once, in order (a list),
        or always (a string). ``where``: ``"any"`` range, ``"head"`` (ranges from byte 0) or
        ``"rest"`` (ranges further in: a load's pixel reads)."""
        with self._lock:
            self._rules.append((match, list(kinds) if isinstance(kinds, list) else kinds, where))

    def gets(self, match: str = "") -> int:
        """GET requests seen for paths containing ``match``."""
        return sum(1 for m, p, _ in self.requests if m == "GET" and match in p)

    def per_path(self, method: str = "GET") -> Counter[str]:
        return Counter(p for m, p, _ in self.requests if m == method)

    def _fault(self, method: str, path: str, byte_range: str | None) -> str | None:
        if method != "GET":
            return None
        head = byte_range is None or byte_range.startswith("bytes=0-")
        for match, kinds, where in self._rules:
            if match in path and (where == "any" or (where == "head") == head):
                if isinstance(kinds, str):
                    return kinds
                if kinds:
                    return kinds.pop(0)
        return None

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
        with self._lock:
            self.requests.append((method, path, environ.get("HTTP_RANGE")))
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            fault = self._fault(method, path, environ.get("HTTP_RANGE"))
            if fault:
                self.failures += 1
        try:
            if self.latency:
                time.sleep(self.latency)
            if fault == "503":
                body = (b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>SlowDown</Code>"
                        b"<Message>Please reduce your request rate.</Message></Error>")  # fmt: skip
                start_response("503 Service Unavailable", [("Content-Type", "application/xml"),
                                                           ("Content-Length", str(len(body)))])  # fmt: skip
                return [body]
            if fault == "reset":
                return self._reset(environ, start_response)
            return [b"".join(self.app(environ, start_response))]
        finally:
            with self._lock:
                self.in_flight -= 1

    def _reset(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        captured: list[Any] = []
        body = b"".join(self.app(environ, lambda status, headers, *a: captured.append((status, headers))))
        status, headers = captured[0]
        start_response(status, headers)
        sock = environ.get("werkzeug.socket")

        def half_then_reset() -> Iterator[bytes]:
            yield body[: len(body) // 2]
            if sock is not None:  # an RST, not a clean close: the client sees a reset mid-body
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.shutdown(socket.SHUT_RDWR)
            raise ConnectionResetError("injected reset mid-body")

        return half_then_reset()


class _Server:
    """A WSGI app served by werkzeug in a daemon thread on a free loopback port."""

    def __init__(self, app: Callable[..., Any], latency: float = 0.0) -> None:
        self.faults = Faults(app, latency)
        self._server: BaseWSGIServer = make_server("127.0.0.1", 0, self.faults, threaded=True,
                                                   request_handler=_QuietHandler)  # fmt: skip
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


class S3Server(_Server):
    """moto's S3 on loopback; :attr:`storage_options` are what s3fs needs to reach it."""

    def __init__(self, latency: float = 0.0) -> None:
        from moto.moto_server.werkzeug_app import create_backend_app

        # The S3 app itself: moto's host dispatcher lists its modules on every request (7 ms).
        super().__init__(create_backend_app("s3"), latency)
        self.storage_options = {
            "endpoint_url": self.url,
            "key": "testing",
            "secret": "testing",
            "client_kwargs": {"region_name": "us-east-1"},
        }

    def put(self, bucket: str, files: dict[str, bytes], *, public: bool = False) -> None:
        """Create ``bucket`` (if needed) and upload ``files`` (key -> bytes), uncounted;
        ``public``: readable anonymously, as IDC's buckets are."""
        import boto3

        client = boto3.client("s3", endpoint_url=self.url, aws_access_key_id="testing",
                              aws_secret_access_key="testing", region_name="us-east-1")  # fmt: skip
        latency, self.faults.latency = self.faults.latency, 0.0
        try:
            try:
                client.create_bucket(Bucket=bucket)
            except client.exceptions.BucketAlreadyOwnedByYou:
                pass
            for key, data in files.items():
                client.put_object(Bucket=bucket, Key=key, Body=data, **({"ACL": "public-read"} if public else {}))
        finally:
            self.faults.latency = latency
            client.close()
        self.faults.clear()


class HttpFileServer(_Server):
    """Static files over HTTP with Range, ETag and HEAD; a path ending in ``/`` lists links."""

    def __init__(self, latency: float = 0.0) -> None:
        self.files: dict[str, bytes] = {}
        self._etags: dict[str, tuple[bytes, str]] = {}
        super().__init__(self._app, latency)

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        path = environ.get("PATH_INFO", "")
        if path.endswith("/"):
            names = sorted(p for p in self.files if p.startswith(path))
            if not names:
                start_response("404 Not Found", [("Content-Length", "0")])
                return [b""]
            body = "".join(f'<a href="{html.escape(p)}">{html.escape(p)}</a>\n' for p in names).encode()
            start_response("200 OK", [("Content-Type", "text/html"), ("Content-Length", str(len(body)))])
            return [body]
        data = self.files.get(path)
        if data is None:
            start_response("404 Not Found", [("Content-Length", "0")])
            return [b""]
        known = self._etags.get(path)
        if known is None or known[0] is not data:  # hashed once per content, not per request
            known = self._etags[path] = (data, '"' + hashlib.md5(data).hexdigest() + '"')
        etag = known[1]
        headers = [("ETag", etag), ("Accept-Ranges", "bytes"), ("Content-Type", "application/dicom")]
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", environ.get("HTTP_RANGE", ""))
        if match:
            start = int(match[1])
            end = min(int(match[2]) + 1 if match[2] else len(data), len(data))
            body = data[start:end]
            headers += [("Content-Range", f"bytes {start}-{end - 1}/{len(data)}"),
                        ("Content-Length", str(len(body)))]  # fmt: skip
            start_response("206 Partial Content", headers)
        else:
            body = data
            start_response("200 OK", headers + [("Content-Length", str(len(body)))])
        return [b"" if environ["REQUEST_METHOD"] == "HEAD" else body]


def main() -> None:
    """Serve a folder from a server in its own process (benchmarks: its CPU then does not
    share the client's GIL). Prints the server's URL, serves until stdin closes."""
    import argparse
    import os
    import sys

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("kind", choices=["s3", "http"])
    parser.add_argument("folder")
    parser.add_argument("--prefix", default="series")
    parser.add_argument("--bucket", default="bench")
    parser.add_argument("--latency", type=float, default=0.0)
    args = parser.parse_args()
    files = {}
    for root, _, names in os.walk(args.folder):
        for name in names:
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                files[f"{args.prefix}/{os.path.relpath(path, args.folder)}"] = f.read()
    server: _Server
    if args.kind == "s3":
        server = S3Server(args.latency)
        server.put(args.bucket, files)
    else:
        server = HttpFileServer(args.latency)
        server.files.update({f"/{key}": data for key, data in files.items()})
    print(server.url, flush=True)
    sys.stdin.read()
    server.stop()


if __name__ == "__main__":
    main()
