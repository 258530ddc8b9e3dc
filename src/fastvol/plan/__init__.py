"""Plan: decide, from headers alone, what a load reads, where each frame goes, and in which dtype.

:func:`make_plan` applies the user's :class:`~fastvol.options.Options` to the geometry of a
:class:`~fastvol.group.Series`: it raises the typed errors (missing slices, uneven spacing,
repeated positions, ...) or records how the pixels will be filled or resampled. The result,
:class:`LoadPlan`, is a frozen value object of plain data (paths, offsets, lengths, transfer
syntaxes, rescale, slot indices): it pickles, so the library call, the CLI and a DataLoader
worker all run the same plan.

Modules, one step each:

- :mod:`.types`: the value objects (:class:`LoadPlan`, :class:`FrameSource`, :class:`VolumeGeometry`, ...)
- :mod:`.decisions`: :class:`Decision`, a code and its facts, its text derived from them
- :mod:`.duplicates`: copies of one instance dropped, conflicting ones refused
- :mod:`.layout`, :mod:`.volumes`: records -> volumes, slice order, slots, geometry (no pixels)
- :mod:`.mosaic`: the layout of Siemens mosaics (tiles of one image per volume)
- :mod:`.policy`: gaps, uneven spacing, tilt and collinearity under the options
- :mod:`.sources`: the frames to read and their output slots
- :mod:`.values`: pixel format and byte checks, output dtype, rescale, fill value
- :mod:`.report`: the geometry report and ``meta``
- :mod:`.planner`: :func:`make_plan`, the steps in order
"""

from __future__ import annotations

from .decisions import Decision
from .planner import describe_series, make_plan
from .types import (
    MAX_FRAME_PIXELS,
    MAX_OUTPUT_BYTES,
    Duplicate,
    FrameSource,
    LoadPlan,
    Mosaic,
    PixelFormat,
    Resample,
    VolumeGeometry,
)

__all__ = [
    "MAX_FRAME_PIXELS",
    "MAX_OUTPUT_BYTES",
    "Decision",
    "Duplicate",
    "FrameSource",
    "LoadPlan",
    "Mosaic",
    "PixelFormat",
    "Resample",
    "VolumeGeometry",
    "describe_series",
    "make_plan",
]  # fmt: skip
