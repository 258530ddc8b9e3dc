"""Which kernels run: compiled (numba, :mod:`fastvol._kernels`) or compile-free (:mod:`fastvol._pykernels`).

Importing numba and loading its cached machine code costs a fresh process about a second; a
small series needs milliseconds of kernel work. So a process starts compile-free (the header
scanner's own source run as Python, numpy twins of the pixel kernels) and switches to the
compiled kernels for good once numba is imported anyway or the work done so far passes
:data:`COMPILE_AFTER` (then the second costs less than the first would go on costing).
``FASTVOL_JIT=1`` always compiles, ``FASTVOL_JIT=0`` never does.
"""

from __future__ import annotations

import os
import sys
import threading
from types import ModuleType
from typing import Any

__all__ = ["COMPILE_AFTER", "compiled", "pixel_kernels", "scan_buffers"]

#: Work units (files scanned x 1000, or thousands of pixels converted) a process does
#: compile-free before it switches to numba for good: about what importing numba and
#: loading its kernels costs (0.5-0.9 s). A one-off 300-slice CT (about 380,000) stays
#: compile-free: as a whole process that measured 1.0 s against 1.45 s compiled
#: (benchmarks/test_startup.py); a process that goes on loading switches during its second.
COMPILE_AFTER = 500_000
#: Cost of scanning one file's header in plain Python, in work units (about 1.5 ms).
SCAN_FILE_WORK = 1_000

_work = 0
_lock = threading.Lock()


def compiled(work: int = 0) -> bool:
    """Whether to run compiled kernels for a call doing ``work`` units (counted if not)."""
    global _work
    setting = os.environ.get("FASTVOL_JIT", "")
    if setting == "1" or (setting != "0" and "numba" in sys.modules):
        return True
    if setting == "0":
        return False
    with _lock:
        if _work + work > COMPILE_AFTER:
            return True
        _work += work
    return False


def _module(name: str, fast: bool) -> ModuleType:
    import importlib

    return importlib.import_module(f"fastvol.{'_kernels' if fast else '_pykernels'}.{name}")


def scan_buffers(*args: Any, n_files: int) -> None:
    """:func:`fastvol._kernels.scan.scan_buffers`, compiled or not."""
    _module("scan", compiled(n_files * SCAN_FILE_WORK)).scan_buffers(*args)


def pixel_kernels(n_pixels: int) -> ModuleType:
    """The pixel kernels (``store_frame``, ``store_frame_in_place``, ``fill_slots``) for a load
    of ``n_pixels`` output samples: chosen once per load, not per frame."""
    if compiled(n_pixels // 1000):
        return _module("pixels", fast=True)
    return _module("vector", fast=False)
