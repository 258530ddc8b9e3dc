"""Segment masks -> one label map: each voxel holds the number of the segment covering it.

Works on stored frames already placed on a grid (frame, slice index, segment number), so the
``(segment, slice, row, column)`` stack is never built for a label map.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import InputError, OverlapError

__all__ = ["OVERLAP", "labelmap_dtype", "to_labelmap"]

#: ``overlap=`` values: ``raise`` (:class:`~fastvol.OverlapError`), or ``max`` (the largest
#: segment number covering a voxel wins).
OVERLAP = ("raise", "max")


def labelmap_dtype(numbers: Sequence[int]) -> np.dtype:
    """The smallest unsigned dtype holding every segment number."""
    top = max(numbers, default=0)
    return np.dtype(np.uint8 if top <= 0xFF else np.uint16)


def to_labelmap(
    frames: Any,
    wanted: np.ndarray,
    slices: np.ndarray,
    numbers: np.ndarray,
    shape: tuple[int, int, int],
    *,
    overlap: str = "raise",
    path: str = "",
) -> np.ndarray:
    """A ``shape`` label map from the binary frames ``frames[i]`` (``i`` in ``wanted``), frame
    ``i`` placed at slice ``slices[i]`` with segment number ``numbers[i]``.

    Raises
    ------
    OverlapError
        Two segments cover one voxel and ``overlap="raise"`` (names the segments and the slice).
    InputError
        ``overlap`` is not one of :data:`OVERLAP`.
    """
    if overlap not in OVERLAP:
        raise InputError(f"overlap={overlap!r}: expected one of {OVERLAP}")
    wanted = np.asarray(wanted, dtype=np.int64)
    out = np.zeros(shape, dtype=labelmap_dtype(numbers[wanted].tolist()))
    # Ascending segment number: with overlap="max" a later (larger) number overwrites.
    for i in wanted[np.argsort(numbers[wanted], kind="stable")]:
        mask = frames[i] != 0
        region = out[slices[i]]
        if overlap == "raise":
            taken = region[mask]
            clash = taken[(taken != 0) & (taken != numbers[i])]
            if clash.size:
                raise OverlapError(
                    f"{path}: segments {int(clash[0])} and {int(numbers[i])} overlap on slice "
                    f"{int(slices[i])} ({clash.size} voxels); a label map holds one segment per "
                    f"voxel: pass overlap='max' (the larger number wins), or load without "
                    f"labelmap=True for one mask per segment", files=[path] if path else (),
                    segments=(int(clash[0]), int(numbers[i])), slice=int(slices[i]),
                )  # fmt: skip
        region[mask] = numbers[i]
    return out
