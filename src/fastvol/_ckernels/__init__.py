"""C kernels: compiled at install (``setup.py``, optional), so they need neither numba nor a compile.

Each extension here is a faithful port of a numba kernel of :mod:`fastvol._kernels`, taking
buffers and plain ints and releasing the GIL; the numba kernel stays as the fallback when the
extension was not built (no compiler at install) or ``FASTVOL_NATIVE=0`` turns C kernels off
(debugging, benchmarks of the fallback). Importing this package imports nothing heavy.
"""

from __future__ import annotations

import importlib.util
import os

__all__ = ["available"]


def available(name: str) -> bool:
    """Whether the C kernel ``fastvol._ckernels.<name>`` is built and allowed (``FASTVOL_NATIVE``).

    Read on each call, so a test or benchmark may set the variable; callers that must decide
    once (the codec registry) cache their own answer.
    """
    if os.environ.get("FASTVOL_NATIVE", "1") == "0":
        return False
    try:
        return importlib.util.find_spec(f"{__name__}.{name}") is not None
    except (ImportError, ValueError):
        return False
