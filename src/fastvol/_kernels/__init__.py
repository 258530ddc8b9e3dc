"""Numba kernels: the one place fastvol compiles code.

Every kernel takes numpy arrays and scalars only (never Datasets or Python objects) and is
compiled through :func:`jit`, so the configuration lives here: ``nogil=True`` so thread pools
run kernels in parallel, and ``cache=True`` so a fresh process loads the machine code from
``__pycache__`` (or ``$NUMBA_CACHE_DIR``) instead of compiling again. Importing this package
imports numba; nothing outside ``fastvol._kernels`` may import numba, and ``import fastvol``
does not import this package.

Set ``NUMBA_DISABLE_JIT=1`` to run the kernels as plain Python (the test suite does once, so
coverage sees their bodies).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import numba

F = TypeVar("F", bound=Callable[..., Any])


def jit(func: F) -> F:
    """Compile ``func`` in nopython mode, releasing the GIL, cached on disk."""
    return numba.njit(nogil=True, cache=True)(func)  # type: ignore[return-value]
