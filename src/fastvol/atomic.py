"""Atomic output: write to a hidden temporary file beside the target, then rename it into place.

A reader never sees a half-written file, and a killed write leaves only a hidden
``.name.fastvol-tmp-HOST-PID-XXXX`` behind (never something a ``*.nii.gz`` glob matches). The
next write of the same target removes such leftovers whose writer is gone; the CLI turns
SIGTERM into an exit that removes its own. Final files get the permissions a plain
``open(path, "w")`` would give (0644 under umask 022), not mkstemp's 0600.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator

from .errors import FastvolError, InputError, OutputError

__all__ = ["STALE_SECONDS", "TMP_MARK", "atomic_path", "remove_stale"]

#: Infix of every temporary name fastvol writes.
TMP_MARK = ".fastvol-tmp-"
#: A leftover temporary whose writer cannot be checked (another host, a foreign name) is
#: removed only when it has not changed for this long.
STALE_SECONDS = 600


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _host_tag() -> str:
    """Short tag of this host: a pid only says whether a writer lives on the same machine."""
    import hashlib  # here, with socket: about 15 ms of a fresh process that writes nothing
    import socket

    return hashlib.sha1(socket.gethostname().encode()).hexdigest()[:8]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # exists under another user, or not a pid we can judge: keep the file
    # A killed writer whose parent died first can stay a zombie (a PID 1 that never reaps, as in
    # containers): it exists for kill(0) but will never finish its temporary.
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fp:  # not an input
            state = fp.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True  # no /proc (not Linux): kill(0) is all we know
    return state not in ("Z", "X")


def _is_stale(path: str, rest: str, host: str, now: float) -> bool:
    """Whether the temporary ``path`` (``rest``: its name after :data:`TMP_MARK`) is debris."""
    parts = rest.split("-", 2)
    if len(parts) == 3 and parts[0] == host and parts[1].isdigit():
        return not _pid_alive(int(parts[1]))  # our host: the writer's pid says it all
    try:
        return now - os.lstat(path).st_mtime > STALE_SECONDS
    except OSError:
        return False


def remove_stale(target: str | os.PathLike[str]) -> list[str]:
    """Remove leftover temporaries of ``target`` whose writer is gone; returns their paths.

    Safe beside concurrent writers: a temporary of a live process on this host is kept, and
    one written elsewhere (or named otherwise) only once :data:`STALE_SECONDS` old.
    """
    folder, name = os.path.split(os.path.abspath(os.fspath(target)))
    prefix = f".{name}{TMP_MARK}"
    host, now, removed = _host_tag(), time.time(), []
    try:
        entries = [e for e in os.listdir(folder) if e.startswith(prefix)]
    except OSError:
        return []
    for entry in entries:
        path = os.path.join(folder, entry)
        if _is_stale(path, entry[len(prefix):], host, now):
            with contextlib.suppress(OSError):
                os.unlink(path)
                removed.append(path)
    return removed


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[str]:
    """Yield a temporary path to write; on success it is renamed to ``path``.

    The temporary keeps ``path``'s suffixes (``.nii.gz``), so writers that choose a format by
    name do the same for both. On any error (``SystemExit`` from SIGTERM in the CLI included)
    the temporary is removed and the target untouched. Leftovers of earlier killed writes of
    the same target are removed first (:func:`remove_stale`).

    Raises
    ------
    InputError
        ``path`` is a folder, or its parent folder does not exist.
    OutputError
        The temporary cannot be made or written, or renamed onto ``path`` (permission denied,
        disk full): an ``OSError`` raised while writing leaves as this.
    """
    target = os.fspath(path)
    folder, name = os.path.split(os.path.abspath(target))
    if os.path.isdir(target):
        raise InputError(f"{target}: is a folder; give a file name to write", files=[target])
    if not os.path.isdir(folder):
        raise InputError(f"{target}: folder {folder} does not exist", files=[target])
    remove_stale(target)
    # The temporary keeps the suffix (any case) writers choose a format by: a.NII.GZ too.
    lower = name.lower()
    suffix = next((name[-len(s):] for s in (".nii.gz", ".nii", ".npz", ".json") if lower.endswith(s)), "")
    prefix = f".{name}{TMP_MARK}{_host_tag()}-{os.getpid()}-"
    import tempfile

    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=prefix, suffix=suffix)
    except OSError as exc:
        raise cannot_write(target, exc) from exc
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and not isinstance(exc, FastvolError):
            raise cannot_write(target, exc) from exc
        raise


def cannot_write(target: str, exc: OSError) -> OutputError:
    """The :class:`OutputError` for ``exc`` raised writing ``target``."""
    reason = exc.strerror or str(exc)
    return OutputError(f"{target}: cannot be written ({reason}); nothing was written there. "
                       f"Choose a folder you can write to, with space for the output",
                       files=[target])  # fmt: skip
