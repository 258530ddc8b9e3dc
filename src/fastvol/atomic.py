"""Atomic output: write to a hidden temporary file beside the target, then rename it into place.

A reader never sees a half-written file, and a killed write leaves only a hidden
``.name.fastvol-tmp-XXXX`` behind (never something a ``*.nii.gz`` glob matches). Final files
get the permissions a plain ``open(path, "w")`` would give (0644 under umask 022), not
mkstemp's 0600.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator

from .errors import InputError

__all__ = ["TMP_MARK", "atomic_path"]

#: Infix of every temporary name fastvol writes.
TMP_MARK = ".fastvol-tmp-"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[str]:
    """Yield a temporary path to write; on success it is renamed to ``path``.

    The temporary keeps ``path``'s suffixes (``.nii.gz``), so writers that choose a format by
    name do the same for both. On any error the temporary is removed and the target untouched.

    Raises
    ------
    InputError
        ``path`` is a folder, or its parent folder does not exist.
    """
    target = os.fspath(path)
    folder, name = os.path.split(os.path.abspath(target))
    if os.path.isdir(target):
        raise InputError(f"{target}: is a folder; give a file name to write", files=[target])
    if not os.path.isdir(folder):
        raise InputError(f"{target}: folder {folder} does not exist", files=[target])
    suffix = "".join(s for s in (".nii.gz", ".nii", ".npz", ".json") if name.endswith(s))[:7]
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}{TMP_MARK}", suffix=suffix)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
