"""Output buffers recycled between loads, so a process pays the kernel's page zeroing once.

A fresh array's pages are zeroed and mapped by the kernel on first touch: for a 300 MB volume
that is about 30 ms of one core, a third of an int32 load of 300 slices, and glibc hands every
block over 32 MB straight back to the kernel when it is freed. A DataLoader worker, a cohort
conversion or a benchmark loop that loads volume after volume would pay it each time.

:func:`empty` makes large arrays (16 MiB and over) on blocks it keeps. The array it returns
rests on a small holder object (its ``base``) that every view, ``torch.from_numpy`` tensor or
memoryview made from it keeps alive, as numpy keeps any array's base; when the last of them
goes, the holder's finalizer hands the block back, and the next request of one to 1.5 times its
size reuses it. Blocks in use and idle total at most :func:`limit` bytes per process (1 GiB by
default; ``FASTVOL_BUFFER_CACHE=512M`` sets it, ``0`` or ``off`` turns recycling off), and at
most :data:`MAX_IDLE` idle blocks stay; :func:`release` gives the idle ones back now. A forked
child starts with none (reusing its parent's pages would copy them) and its own count.

A recycled array is not zeroed: :mod:`fastvol.stack` writes every voxel (missing slots take the
fill value). Pickling copies such arrays as usual.
"""

from __future__ import annotations

import math
import os
import threading
from typing import Any

import numpy as np

from .errors import InputError

__all__ = ["empty", "held", "limit", "release", "set_limit"]

#: Below this, malloc's own free lists already recycle memory (its threshold for handing blocks
#: to the kernel grows to 32 MB once such blocks are freed).
MIN_BYTES = 16 << 20
DEFAULT_LIMIT = 1 << 30
#: Idle blocks kept: enough for a loop that loads one volume while the last is still in use.
MAX_IDLE = 2
#: A block serves a request of at least 1 / SLACK of its size: a kept volume pins at most this
#: much more memory than its bytes.
SLACK = 1.5
ENV = "FASTVOL_BUFFER_CACHE"
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_OFF = {"OFF", "NO", "FALSE"}
_ON = {"ON", "YES", "TRUE"}

_lock = threading.Lock()
_idle: list[np.ndarray] = []  # owning uint8 blocks, least recently returned first
_returned: list[np.ndarray] = []  # handed back by finalizers, not yet sorted into _idle
_in_use = 0  # bytes of this process's blocks now under live arrays
_limit: int | None = None  # None: not read from the environment yet
_generation = 0  # bumped in a forked child: its parent's holders return nothing there


class _Holder:
    """The ``base`` of an array made on a block; hands the block back when it is finalized."""

    __slots__ = ("__array_interface__", "block", "generation")

    def __init__(self, block: np.ndarray, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.block = block
        self.generation = _generation
        self.__array_interface__ = {
            "shape": shape, "typestr": dtype.str,
            "data": (block.__array_interface__["data"][0], False), "version": 3,
        }  # fmt: skip

    def __copy__(self) -> _Holder:  # a second holder would hand the block back twice
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> _Holder:
        return self

    def __reduce__(self) -> Any:
        raise TypeError("a fastvol.buffers block holder cannot be pickled; pickle the array")

    def __del__(self) -> None:
        try:
            if self.generation == _generation:
                _returned.append(self.block)  # atomic: a finalizer may run inside a locked region
                if _lock.acquire(blocking=False):
                    try:
                        _settle(limit())
                    finally:
                        _lock.release()
        except Exception:  # noqa: BLE001, S110 - interpreter shutdown: module state may be gone
            pass


def _after_fork_in_child() -> None:
    """A new lock (another thread may have held the parent's), no idle blocks and a new count:
    the parent's arrays live on in the child, but their blocks are never reused there."""
    global _lock, _in_use, _generation
    _lock = threading.Lock()
    _idle.clear()
    _returned.clear()
    _in_use = 0
    _generation += 1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def parse_size(text: str) -> int:
    """Bytes from ``"0"``, ``"1073741824"``, ``"512M"``, ``"2G"`` (K/M/G/T: powers of 1024),
    ``"off"``/``"no"``/``"false"`` (0) or ``"on"``/``"yes"``/``"true"`` (the default).

    Raises
    ------
    InputError
        ``text`` is none of these.
    """
    raw = text.strip().upper()
    if raw in _OFF or raw in _ON:
        return 0 if raw in _OFF else DEFAULT_LIMIT
    raw = raw.removesuffix("B").removesuffix("I")
    unit = raw[-1:] if raw[-1:] in _UNITS else ""
    number = raw[: len(raw) - len(unit)].strip()
    if not number.isdigit():
        raise InputError(f"{ENV}={text!r}: expected a size in bytes such as 0, 512M or 2G, or off")
    return int(number) * _UNITS[unit]


def limit() -> int:
    """The bytes this process may keep in recycled blocks (in use or idle); 0 when off."""
    global _limit
    if _limit is None:
        given = os.environ.get(ENV)
        _limit = DEFAULT_LIMIT if given is None or not given.strip() else parse_size(given)
    return _limit


def set_limit(nbytes: int) -> None:
    """Keep at most ``nbytes`` in recycled blocks from now on (0: recycle nothing).

    Idle blocks beyond the new limit are given back at once, blocks now in use when their
    arrays go.

    Raises
    ------
    InputError
        ``nbytes`` is not a whole number >= 0.
    """
    global _limit
    if isinstance(nbytes, bool) or not isinstance(nbytes, int) or nbytes < 0:
        raise InputError(f"set_limit({nbytes!r}): expected a whole number of bytes >= 0")
    with _lock:
        _limit = nbytes
        _settle(nbytes)


def release() -> int:
    """Give every idle block back to the system now; returns the bytes released."""
    with _lock:
        _settle(limit())
        released = sum(b.nbytes for b in _idle)
        _idle.clear()
        return released


def held() -> tuple[int, int]:
    """``(bytes of blocks under live arrays, bytes of idle blocks)`` in this process."""
    with _lock:
        _settle(limit())
        return _in_use, sum(b.nbytes for b in _idle)


def empty(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """An uninitialised C-contiguous array, on a recycled block when it is large.

    Like ``np.empty(shape, dtype)``. The array does not own its data (its ``base`` holds the
    block); everything else about it is a plain numpy array's.
    """
    global _in_use
    dtype = np.dtype(dtype)
    shape = tuple(int(n) for n in shape)
    nbytes = math.prod(shape) * dtype.itemsize
    cap = limit()
    if nbytes < MIN_BYTES or nbytes > cap:
        if _idle or _returned:  # a lowered limit, or blocks handed back while the lock was held
            with _lock:
                _settle(cap)
        return np.empty(shape, dtype=dtype)
    with _lock:
        _settle(cap)
        block = _take(nbytes)
        if block is None:
            while _idle and _in_use + sum(b.nbytes for b in _idle) + nbytes > cap:
                _idle.pop(0)
            if _in_use + nbytes > cap:  # the rest are in use
                return np.empty(shape, dtype=dtype)
            block = np.empty(nbytes, dtype=np.uint8)
        _in_use += block.nbytes
        holder = _Holder(block, shape, dtype)
    return np.asarray(holder)


def _take(nbytes: int) -> np.ndarray | None:
    """The smallest idle block of ``nbytes`` to ``SLACK * nbytes`` (of equals, the last returned:
    its pages may still be in a cache), taken out of the idle list."""
    best = -1
    for i, block in enumerate(_idle):
        if nbytes <= block.nbytes <= SLACK * nbytes and (best < 0 or block.nbytes <= _idle[best].nbytes):
            best = i
    return _idle.pop(best) if best >= 0 else None


def _settle(cap: int) -> None:
    """Sort handed-back blocks into the idle list, then give back the least recently returned
    idle blocks until at most MAX_IDLE stay and all blocks total at most ``cap``. Lock held."""
    global _in_use
    while _returned:
        block = _returned.pop()
        _in_use -= block.nbytes
        _idle.append(block)
    total = _in_use + sum(b.nbytes for b in _idle)
    while _idle and (len(_idle) > MAX_IDLE or total > cap):
        total -= _idle.pop(0).nbytes
