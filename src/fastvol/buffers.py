"""Output buffers recycled between loads, so a process pays the kernel's page zeroing once.

A fresh array's pages are zeroed and mapped by the kernel on first touch: for a 300 MB volume
that is about 30 ms on one core, a third of an int32 load of 300 slices, and glibc hands every
block over 32 MB straight back to the kernel when it is freed. A DataLoader worker, a cohort
conversion or a benchmark loop that loads volume after volume pays it again each time.

:func:`empty` keeps the large blocks it makes (16 MiB and over) and hands one out again once
every array made from it is gone: an array is a view of its block, so while any view, a
``torch.from_numpy`` tensor or a memoryview of it lives, the block has a reference beyond this
module's own and is never reused. The blocks kept, in use or idle, total at most
:func:`limit` bytes (1 GiB by default; ``FASTVOL_BUFFER_CACHE=0`` turns recycling off,
``FASTVOL_BUFFER_CACHE=512M`` sets it), at most two of them idle after each request;
:func:`release` gives the idle ones back now, and a forked child starts with none.

A recycled array is not zeroed: :mod:`fastvol.stack` writes every voxel (missing slots take the
fill value). Arrays from :func:`empty` do not own their data (``array.base`` is the block);
pickling copies them as usual.
"""

from __future__ import annotations

import math
import os
import sys
import threading

import numpy as np

from .errors import InputError

__all__ = ["empty", "limit", "release", "set_limit"]

#: Below this, malloc's own free lists already recycle memory (its threshold for handing blocks
#: to the kernel grows to 32 MB once such blocks are freed).
MIN_BYTES = 16 << 20
DEFAULT_LIMIT = 1 << 30
#: Idle blocks kept after each request: enough for a loop that loads one volume while the last
#: is still in use, not one block per size ever seen.
MAX_IDLE = 2
ENV = "FASTVOL_BUFFER_CACHE"
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}

_lock = threading.Lock()
_blocks: list[np.ndarray] = []  # owning uint8 arrays, least recently handed out first
_limit: int | None = None  # None: not read from the environment yet


def _refs(blocks: list[np.ndarray], i: int) -> int:
    return sys.getrefcount(blocks[i])


#: ``sys.getrefcount`` of a block referenced by nothing but its list entry, measured through
#: the function :func:`_idle` uses (interpreters differ in the temporaries they count).
_IDLE_REFS = _refs([np.empty(0, dtype=np.uint8)], 0)


def _after_fork_in_child() -> None:
    """A new lock (another thread may have held the parent's), and no idle blocks: reusing the
    parent's pages would copy them (copy-on-write), which costs more than fresh ones."""
    global _lock
    _lock = threading.Lock()
    _drop_idle(keep=0)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def parse_size(text: str) -> int:
    """Bytes from ``"0"``, ``"1073741824"``, ``"512M"`` or ``"2G"`` (K/M/G/T, powers of 1024).

    Raises
    ------
    InputError
        ``text`` is not a whole number of bytes with an optional unit.
    """
    raw = text.strip().upper().removesuffix("B").removesuffix("I")
    unit = raw[-1:] if raw[-1:] in _UNITS else ""
    number = raw[: len(raw) - len(unit)].strip()
    if not number.isdigit():
        raise InputError(f"{ENV}={text!r}: expected a size in bytes such as 0, 512M or 2G")
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

    Idle blocks beyond the new limit are given back at once.

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
        _drop_idle(keep=nbytes)


def release() -> int:
    """Give every idle block back to the system now; returns the bytes released."""
    with _lock:
        return _drop_idle(keep=0)


def held() -> tuple[int, int]:
    """``(bytes in blocks now in use, bytes in idle blocks)`` of this process."""
    with _lock:
        idle = sum(_blocks[i].nbytes for i in range(len(_blocks)) if _idle(i))
        return sum(b.nbytes for b in _blocks) - idle, idle


def empty(shape: tuple[int, ...], dtype: np.dtype | type) -> np.ndarray:
    """An uninitialised C-contiguous array, on a recycled block when it is large.

    Like ``np.empty(shape, dtype)``; a block is reused when it is idle and holds between one and
    two times the bytes asked for, so a volume never pins much more memory than it needs.
    """
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize
    cap = limit()
    if nbytes < MIN_BYTES or nbytes > cap:
        return np.empty(shape, dtype=dtype)
    with _lock:
        block = _take(nbytes)
        if block is None:
            _drop_idle(keep=cap - nbytes)
            if sum(b.nbytes for b in _blocks) + nbytes > cap:  # the rest are in use
                return np.empty(shape, dtype=dtype)
            block = np.empty(nbytes, dtype=np.uint8)
            _blocks.append(block)
        _drop_idle(keep=cap, idle_kept=MAX_IDLE)
        # A view's base collapses to the owning block, so every array made from this one
        # (slices, reshapes, tensors) keeps the block referenced while it lives.
        return block[:nbytes].view(dtype).reshape(shape)


def _idle(i: int) -> bool:
    return _refs(_blocks, i) == _IDLE_REFS


def _take(nbytes: int) -> np.ndarray | None:
    """The smallest idle block of ``nbytes`` to ``2 * nbytes``, moved to the list's end."""
    best = -1
    for i in range(len(_blocks)):
        size = _blocks[i].nbytes
        if nbytes <= size <= 2 * nbytes and _idle(i) and (best < 0 or size < _blocks[best].nbytes):
            best = i
    if best < 0:
        return None
    block = _blocks.pop(best)
    _blocks.append(block)
    return block


def _drop_idle(keep: int, idle_kept: int | None = None) -> int:
    """Drop idle blocks, least recently used first, until all blocks total at most ``keep``
    bytes and at most ``idle_kept`` idle ones are left (any number when None)."""
    total = sum(b.nbytes for b in _blocks)
    idle = sum(1 for i in range(len(_blocks)) if _idle(i)) if idle_kept is not None else 0
    released = 0
    i = 0
    while (total > keep or (idle_kept is not None and idle > idle_kept)) and i < len(_blocks):
        if _idle(i):
            idle -= 1
            size = _blocks.pop(i).nbytes
            total -= size
            released += size
        else:
            i += 1
    return released
