"""Numba kernels: the one place fastvol compiles code.

Every kernel takes numpy arrays and scalars only (never Datasets or Python objects) and is
compiled through :func:`jit`, so the configuration lives here: ``nogil=True`` so thread pools
run kernels in parallel, and ``cache=True`` so a fresh process loads the machine code from
``__pycache__`` (or ``$NUMBA_CACHE_DIR``) instead of compiling again. Importing this package
imports numba; nothing outside ``fastvol._kernels`` may import numba, and ``import fastvol``
does not import this package.

Read-only installs: when the package's ``__pycache__`` cannot be written, the cache goes to
``$XDG_CACHE_HOME/fastvol/numba`` (default ``~/.cache/fastvol/numba``); when that cannot be
written either, kernels compile without a cache and one :class:`~fastvol.FastvolWarning` says
so. A cache never fails a load.

Set ``NUMBA_DISABLE_JIT=1`` to run the kernels as plain Python (the test suite does once, so
coverage sees their bodies).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

import numba

from ..errors import FastvolWarning

F = TypeVar("F", bound=Callable[..., Any])

#: Whether compiled kernels are cached on disk in this process (decided once, at import).
CACHE = True


def _writable(folder: str) -> bool:
    """Whether ``folder`` (or, when missing, its nearest existing parent) can be written."""
    while not os.path.isdir(folder):
        parent = os.path.dirname(folder)
        if parent == folder:
            return False
        folder = parent
    return os.access(folder, os.W_OK | os.X_OK)


def user_cache_dir() -> str:
    """Where kernels are cached when the package folder is read-only."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "fastvol", "numba")


def _no_cache(why: str) -> bool:
    warnings.warn(f"fastvol: numba kernels are compiled without a disk cache ({why}); each "
                  f"process compiles them again. Set NUMBA_CACHE_DIR to a writable folder.",
                  FastvolWarning, stacklevel=3)  # fmt: skip
    return False


def _choose_cache() -> bool:
    """Decide before any kernel is decorated: numba raises at decoration when no cache folder
    can be written ("cannot cache function ... no locator available")."""
    if numba.config.CACHE_DIR:  # $NUMBA_CACHE_DIR: the user's choice
        return True
    if _writable(os.path.join(os.path.dirname(os.path.abspath(__file__)), "__pycache__")):
        return True
    folder = user_cache_dir()
    if _writable(folder):
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as exc:
            return _no_cache(f"{folder}: {exc}")
        numba.config.CACHE_DIR = folder  # what $NUMBA_CACHE_DIR sets; read at decoration
        return True
    return _no_cache(f"neither the package's __pycache__ nor {folder} is writable")


CACHE = _choose_cache()


def jit(func: F) -> F:
    """Compile ``func`` in nopython mode, releasing the GIL, cached on disk when possible."""
    global CACHE
    if CACHE:
        try:
            return numba.njit(nogil=True, cache=True)(func)  # type: ignore[return-value]
        except RuntimeError as exc:  # no locator after all (the check above was fooled)
            if "cannot cache" not in str(exc):
                raise
            CACHE = _no_cache(str(exc))
    return numba.njit(nogil=True)(func)  # type: ignore[return-value]
