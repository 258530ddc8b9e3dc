"""Where a conversion writes: a local folder, or an fsspec URL (``s3://bucket/prefix/``).

A URL output is written per task: the task writes its files into a private local staging
folder exactly as a local run does (atomically), uploads each finished file with one PUT (an
object appears whole or not at all; a zarr store file by file), and removes the folder. The
report is kept in a local staging folder during the run and uploaded at its start (which also
proves the URL writable before any series is converted) and at its end; a rerun reads it back
from the URL to resume. A local output never imports fsspec.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

from ..errors import FastvolError, InputError
from ..sources.urls import is_url, local_path

__all__ = ["Output", "upload"]


def _fs(url: str, storage_options: dict[str, Any] | None) -> tuple[Any, str]:
    from ..sources.remote import filesystem

    return filesystem(url, storage_options)


def remote_exists(url: str, storage_options: dict[str, Any] | None) -> bool:
    """Whether the object (or prefix: a zarr store) ``url`` exists."""
    from ..sources.remote import _retrying

    fs, path = _fs(url, storage_options)
    return bool(_retrying(lambda: fs.exists(path), url, "exists"))


def upload(local: str, url: str, storage_options: dict[str, Any] | None) -> None:
    """Put the finished file (or folder, file by file) ``local`` at ``url``.

    Raises the fastvol error for ``url`` (transient failures are retried first).
    """
    from ..sources.remote import _retrying

    fs, path = _fs(url, storage_options)
    if os.path.isdir(local):
        pairs = [(os.path.join(d, f), path + "/" + os.path.relpath(os.path.join(d, f), local).replace(os.sep, "/"))
                 for d, _, files in os.walk(local) for f in sorted(files)]  # fmt: skip
    else:
        pairs = [(local, path)]
    for src, dst in pairs:
        _retrying(lambda: fs.put_file(src, dst), url, "upload")  # noqa: B023 (called at once)


class Output:
    """The output location of one run: a local folder, or a URL with its storage options.

    ``join`` names an output inside it, ``exists`` says whether one is there, ``norm`` gives
    the form stored in the report; :attr:`report_path` is the local report file (the real one,
    or the staging copy of a URL output's).
    """

    def __init__(self, out: str | os.PathLike[str], storage_options: dict[str, Any] | None = None):
        text = os.fspath(out)
        self.storage_options = dict(storage_options or {})
        self.url: str | None = None
        if is_url(text):
            path = local_path(text)
            if path is None:
                self.url = text.rstrip("/")
            else:
                text = path
        self.root = self.url if self.url is not None else os.path.abspath(text)
        self._staging: str | None = None

    @property
    def remote(self) -> bool:
        return self.url is not None

    def join(self, name: str) -> str:
        return f"{self.url}/{name}" if self.url is not None else os.path.join(self.root, name)

    def norm(self, path: str) -> str:
        return path if self.url is not None else os.path.abspath(path)

    def exists(self, path: str) -> bool:
        if self.url is None:
            return os.path.lexists(path)
        return remote_exists(path, self.storage_options)

    @property
    def report_path(self) -> str:
        from .report import REPORT_NAME

        if self.url is None:
            return self.join(REPORT_NAME)
        assert self._staging is not None, "prepare() first"
        return os.path.join(self._staging, REPORT_NAME)

    @property
    def report_location(self) -> str:
        from .report import REPORT_NAME

        return self.join(REPORT_NAME)

    def prepare(self) -> None:
        """Make the output folder; for a URL, a staging folder holding the earlier report."""
        if self.url is None:
            try:
                os.makedirs(self.root, exist_ok=True)
            except OSError as exc:
                raise InputError(f"{self.root}: cannot make the output folder ({exc.strerror})",
                                 files=[self.root]) from exc  # fmt: skip
            return
        from ..sources.remote import _retrying

        self._staging = tempfile.mkdtemp(prefix="fastvol-report-")
        url = self.report_location
        fs, path = _fs(url, self.storage_options)

        def fetch() -> None:
            try:
                fs.get_file(path, self.report_path)
            except FileNotFoundError:
                pass

        try:
            _retrying(fetch, url, "read the earlier report")
        except FastvolError as exc:
            self.close()
            raise InputError(f"{url}: cannot read the output URL ({exc})", files=[url]) from exc

    def publish(self) -> None:
        """Upload the local report to the URL (nothing for a local output)."""
        if self.url is None:
            return
        url = self.report_location
        try:
            upload(self.report_path, url, self.storage_options)
        except FastvolError as exc:
            raise InputError(f"{url}: cannot write to the output URL ({exc})", files=[url]) from exc

    def close(self) -> None:
        if self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)
            self._staging = None
