"""Which kernels run: C (:mod:`fastvol._ckernels`), numba (:mod:`fastvol._kernels`) or plain Python.

The header scanner runs in C whenever its extension was built at install (``setup.py``; an
install without a C compiler leaves it out): it needs no compile and no numba, so a fresh process
scans at compiled speed from its first file.

Otherwise, and for the pixel kernels: importing numba and loading its cached machine code costs
a fresh process about a second; a small series needs milliseconds of kernel work. So a process
starts compile-free (:mod:`fastvol._pykernels`: the header scanner's own source run as Python,
numpy twins of the pixel kernels) and switches to the numba kernels for good once numba is
imported anyway or the headers scanned in Python so far pass :data:`COMPILE_AFTER` (then the
second costs less than the first would go on costing). The numpy twins of the pixel kernels run
at memory speed like numba's, so pixel work alone never switches: with the C scanner built, an
uncompressed load never imports numba, in any process.

The pixel kernels run in C too when built (:func:`pixel_kernels`).

``FASTVOL_JIT=1`` always runs numba, ``FASTVOL_JIT=0`` always plain Python (the C scanner and
pixel kernels are left out under either); ``FASTVOL_NATIVE=0`` leaves out only the C kernels.
"""

from __future__ import annotations

import functools
import os
import sys
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

__all__ = ["COMPILE_AFTER", "compiled", "native_scan", "pixel_kernels", "scan_buffers"]

#: Work units (files scanned in plain Python x 1000) a process does compile-free before it
#: switches to numba for good: about what importing numba and loading its kernels costs
#: (0.5-0.9 s). Only without the C scanner: headers scanned in C count nothing (they cost no
#: more than in numba), and neither does pixel work (see :func:`pixel_kernels`). A one-off
#: 300-slice CT (300,000) stays compile-free; a process that goes on loading switches during
#: its second.
COMPILE_AFTER = 500_000
#: Cost of scanning one file's header in plain Python, in work units (about 1.5 ms).
SCAN_FILE_WORK = 1_000
#: Constants the C scanner must share with :mod:`fastvol._kernels.scan` (checked at first use).
_SHARED_CONSTANTS = (
    "OK", "NEED_MORE", "EOF", "BAD_VR", "BAD_STRUCTURE", "UNDEFINED_VALUE", "TOO_DEEP",
    "META_ENCODING", "COMMAND_SET", "EMPTY", "VR_MISMATCH", "NEED_DICTIONARY", "INFO_STATUS",
    "INFO_IMPLICIT", "INFO_FIRST_VR_VALID", "INFO_FIRST_GROUP", "INFO_PIXEL_OFFSET",
    "INFO_PIXEL_LENGTH", "INFO_ENHANCED", "INFO_META_TS", "INFO_PIXEL_ELEMENT", "INFO_COLUMNS",
    "MAX_DEPTH", "TRANSFER_SYNTAX_UID",
)  # fmt: skip

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


@functools.lru_cache(maxsize=1)
def _load_native_scan() -> Callable[..., None] | None:
    """The C scanner, or None when it was not built (or was built from other constants)."""
    try:
        from ._ckernels import _scan  # type: ignore[attr-defined]
    except ImportError:
        return None
    python = _module("scan", fast=False)  # plain Python: imports no numba
    constants = {**vars(python), "UNDEFINED_LENGTH": python._UNDEFINED}
    names = (*_SHARED_CONSTANTS, "UNDEFINED_LENGTH", "PER_FRAME_FUNCTIONAL_GROUPS")
    if any(_scan.CONSTANTS.get(name) != constants[name] for name in names):
        return None  # a stale build beside edited sources: never scan by other rules
    return _scan.scan_buffers  # type: ignore[no-any-return]


def native_scan() -> Callable[..., None] | None:
    """The C header scanner when it runs in this process (built, not turned off), else None."""
    from ._ckernels import enabled

    if not enabled() or os.environ.get("FASTVOL_JIT", "") in ("0", "1"):
        return None
    return _load_native_scan()


def scan_buffers(*args: Any, n_files: int) -> None:
    """:func:`fastvol._kernels.scan.scan_buffers`: in C when built, else compiled or not."""
    native = native_scan()
    if native is not None:
        native(*args)  # costs a fraction of numba's work: not counted towards COMPILE_AFTER
        return
    _module("scan", compiled(n_files * SCAN_FILE_WORK)).scan_buffers(*args)


def pixel_kernels() -> ModuleType:
    """The pixel kernels (``store_frame``, ``store_frame_in_place``, ``fill_slots``) for a load:
    chosen once per load, not per frame.

    In C whenever built (:mod:`fastvol._ckernels._pixels`: numba's speed, one pass also where
    the output is wider than the samples, the GIL released), unless ``FASTVOL_JIT`` asks for
    numba (1) or plain Python (0). Without C, pixel work never makes a process switch to numba:
    the numpy twins run at memory speed too (300 frames of 512 x 512 to int16 in place: 31 ms
    against numba's 32; to int32 about 1.5x numba's time), far less than the second that
    importing numba costs each DataLoader worker or converter process. numba's kernels run when
    the process uses numba anyway.
    """
    if os.environ.get("FASTVOL_JIT", "") not in ("0", "1"):
        native = _native_pixels()
        if native is not None:
            return native
    if compiled(0):
        return _module("pixels", fast=True)
    return _module("vector", fast=False)


def _native_pixels() -> ModuleType | None:
    from . import _ckernels

    if not _ckernels.enabled():
        return None
    try:
        from ._ckernels import _pixels  # type: ignore[attr-defined]
    except ImportError:
        return None
    return _pixels
