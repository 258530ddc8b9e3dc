"""C kernels compiled at install, so no process compiles or loads numba for them.

The first two extensions are numba kernels of :mod:`fastvol._kernels` ported to C: the same arguments,
status codes and output, the arguments taken through the buffer protocol (no numpy headers
needed to build it), every index checked, and the GIL released while it runs. ``setup.py``
builds them as optional extensions: an install without a C compiler leaves them out and the
numba (or plain-Python) kernel runs instead; ``FASTVOL_NATIVE=0`` turns them off (debugging,
benchmarks of the fallback). Nothing here imports numba or numpy.

- :mod:`fastvol._ckernels._scan` (``scan.c``): :func:`fastvol._kernels.scan.scan_buffers`, chosen
  by :mod:`fastvol.kernels`.
- :mod:`fastvol._ckernels._rle` (``rle.c``): :func:`fastvol._kernels.rle.rle_decode_frame`, the
  first RLE candidate of :mod:`fastvol.decode`.

Two more carry the header pass past the scan, where Python per file cost most:

- :mod:`fastvol._ckernels._values` (``values.c``): the raw-value converters of
  :mod:`fastvol.headers.convert` (only where provably equal; the rest is left to them), and
  whole records of plain files (values, transfer syntax, ``HeaderRecord.completed``'s rules)
  built a batch per call without their ``__init__``; used by :mod:`fastvol.headers.scan`. Also
  :func:`group_by_slots`, :func:`types_of` and :func:`leave_gc` below, which keep the scan's
  passes over its records and sources from costing a Python call per item.
- :mod:`fastvol._ckernels._heads` (``heads.c``): the first block of many local files in one call,
  used by :class:`fastvol.sources.LocalFile` (POSIX only).
"""

from __future__ import annotations

import functools
import importlib.util
import os
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["available", "enabled", "group_by_slots", "leave_gc", "types_of"]


def enabled() -> bool:
    """Whether C kernels may run in this process: ``FASTVOL_NATIVE=0`` turns them all off."""
    return os.environ.get("FASTVOL_NATIVE", "1") != "0"


def available(name: str) -> bool:
    """Whether the C kernel ``fastvol._ckernels.<name>`` is built and allowed (``FASTVOL_NATIVE``).

    Read on each call, so a test or benchmark may set the variable; callers that decide once
    (the codec registry) cache their own answer.
    """
    if not enabled():
        return False
    try:
        return importlib.util.find_spec(f"{__name__}.{name}") is not None
    except (ImportError, ValueError):
        return False


def group_by_slots(records: Iterable[Any], cls: type, names: tuple[str, ...]) -> dict[tuple[Any, ...], list[Any]]:
    """``{key: [records]}``: each record under the tuple of its attributes ``names``, keys and
    records in order of appearance (``d.setdefault(key, []).append(record)``).

    ``cls`` is the records' (slotted) class. In C (``_values.group_by_slots``) a record whose
    values are the very objects of the record before joins its list without a key made or
    hashed, so a pass over the records of a scan costs little more than reading their slots.
    """
    members = _slot_members(cls, names) if enabled() else None
    if members is not None:
        try:
            from ._values import group_by_slots as grouped  # type: ignore[attr-defined]
        except ImportError:
            pass
        else:
            return grouped(records, members)  # type: ignore[no-any-return]
    out: dict[tuple[Any, ...], list[Any]] = {}
    for record in records:
        out.setdefault(tuple([getattr(record, name) for name in names]), []).append(record)
    return out


@functools.lru_cache(maxsize=32)
def _slot_members(cls: type, names: tuple[str, ...]) -> tuple[Any, ...] | None:
    """The member descriptors of ``cls``'s slots ``names``; None if one is not a slot."""
    members = tuple(getattr(cls, "__dict__", {}).get(name) for name in names)
    if not names or any(type(m).__name__ != "member_descriptor" for m in members):
        return None
    return members


def types_of(items: Sequence[Any]) -> set[type]:
    """``set(map(type, items))``: in C (``_values.types_of``) without a call per item."""
    if enabled():
        try:
            from ._values import types_of as found  # type: ignore[attr-defined]
        except ImportError:
            pass
        else:
            return found(items)  # type: ignore[no-any-return]
    return set(map(type, items))


def leave_gc(objects: Sequence[Any]) -> None:
    """Leave ``objects`` out of the cyclic garbage collector's tracking (``_values.leave_gc``;
    nothing where the C kernels are off): for objects nothing they refer to can lead back to,
    made by the thousand, which every full collection would otherwise traverse."""
    if enabled():
        try:
            from ._values import leave_gc as untrack  # type: ignore[attr-defined]
        except ImportError:
            return
        untrack(objects)
