"""Region: read some volumes and slices of a :class:`~fastvol.plan.LoadPlan`, and only their frames.

A lazy reader (TorchIO's backends, a patch sampler) asks for a few slices of a volume it knows
from headers alone. :func:`read_region` runs the plan restricted to those output slots: the
frames that fill them are read and no other file is touched. A plan that resamples (tilt or
uneven spacing with ``"resample"``: each output slice mixes acquired neighbours) or demosaics
(every slice of a volume lies in one mosaic image) is read whole and then indexed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from .errors import InputError
from .plan.types import LoadPlan
from .stack import execute

__all__ = ["plan_extent", "read_region"]


def plan_extent(plan: LoadPlan) -> tuple[int, int]:
    """``(volumes, slices)`` of the plan's output; a 3D output counts as one volume."""
    spatial = plan.shape[:-4] if plan.pixel.is_colour else plan.shape[:-3]
    n_slices = plan.shape[len(spatial)]
    return int(np.prod(spatial, dtype=np.int64)), int(n_slices)


def _indices(wanted: Sequence[int], n: int, what: str) -> list[int]:
    out = []
    for i in wanted:
        i = int(i)
        if not -n <= i < n:
            raise InputError(f"{what} {i} is out of range: the series has {n}")
        out.append(i % n)
    return out


def read_region(plan: LoadPlan, volumes: Sequence[int], slices: Sequence[int], *,
                threads: int | None = None) -> np.ndarray:  # fmt: skip
    """The output of ``plan`` at ``volumes`` x ``slices``, reading only the frames they need.

    Parameters
    ----------
    plan
        A plan from :func:`fastvol.plan.make_plan`.
    volumes, slices
        Indices along the volume axis (``[0]`` for a 3D output) and the slice axis, in the
        order wanted (repeats and negative indices allowed).
    threads
        As :func:`fastvol.stack.execute`'s.

    Returns
    -------
    numpy.ndarray
        ``(len(volumes), len(slices), row, column[, 3])``, the plan's dtype: equal to the full
        output (as 4D) indexed ``[volumes][:, slices]``, filled slots (``gaps="fill"``) included.
    """
    n_volumes, n_slices = plan_extent(plan)
    vols = _indices(volumes, n_volumes, "volume")
    picks = _indices(slices, n_slices, "slice")
    frame = plan.shape[-3:] if plan.pixel.is_colour else plan.shape[-2:]
    if plan.resample is not None or plan.mosaic is not None:
        whole = execute(plan, threads=threads).reshape((n_volumes, n_slices) + frame)
        return np.ascontiguousarray(whole[vols][:, picks])
    # Output slot (volume * n_slices + slice) -> the region's slots it fills.
    targets: dict[int, list[int]] = {}
    for a, v in enumerate(vols):
        for b, s in enumerate(picks):
            targets.setdefault(v * n_slices + s, []).append(a * len(picks) + b)
    sources = tuple(
        dataclasses.replace(src, slot=slot) for src in plan.sources for slot in targets.get(src.slot, ())
    )
    shape = (len(vols), len(picks)) + frame
    sub = dataclasses.replace(plan, shape=shape, read_shape=shape, sources=sources)
    return execute(sub, threads=threads)
