"""Derived objects: DICOM Segmentations read on their own grid or aligned to their source series.

:func:`load_segmentation` strings the steps together: :mod:`.read` (header, per-frame facts and
frames of a SEG) -> :mod:`.align` (frames onto the SEG's own grid or a reference volume's) ->
:mod:`.labelmap` (one label per voxel). This package sits above :mod:`fastvol.api`, which it uses
to load a reference given as a path or a Series.
"""

from __future__ import annotations

from .load import load_segmentation

__all__ = ["load_segmentation"]
