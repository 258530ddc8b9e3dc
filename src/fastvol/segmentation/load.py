"""load_segmentation: a DICOM SEG as masks on its own grid or on exactly its source's grid.

The pipeline of a derived object: find the SEG file -> read its header and per-frame facts
(:mod:`.read`) -> place the frames on a grid (:mod:`.align`) -> read the frames' pixels once ->
scatter them into one ``(segment, slice, row, column)`` array, or one label map (:mod:`.labelmap`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import geometry as geo
from ..errors import InputError, SeriesSelectionError, UnsupportedError, map_exceptions
from ..find import Inputs, locate
from ..group import Series
from ..headers import read_headers
from ..numeric import median
from ..report import GeometryReport
from ..sources import ByteSource
from ..volume import Volume
from .align import Grid, on_own_grid, on_reference
from .labelmap import OVERLAP, to_labelmap
from .read import SEG_SOP_CLASS, Frames, SegFile, read_frames, read_seg

__all__ = ["load_segmentation"]


def _seg_source(path: Inputs | Series) -> ByteSource:
    """The one SEG file under ``path`` (a file, a folder holding one SEG, a ByteSource, or a
    scanned SEG Series, as :meth:`~fastvol.ScanResult.segmentations_of` gives)."""
    if isinstance(path, Series):
        files = {r.path: r for r in path.records}
        if len(files) != 1:
            raise SeriesSelectionError(f"series {path.id}: {len(files)} files; pass one SEG file",
                                       files=list(files)[:20])  # fmt: skip
        rec = next(iter(files.values()))
        return rec.source if rec.source is not None else locate(rec.path)[0][0]
    sources, _ = locate(path)
    if len(sources) == 1:
        return sources[0]
    records = [r for r in read_headers(sources) if not isinstance(r, Exception)]
    segs = [r for r in records if r.sop_class_uid == SEG_SOP_CLASS]
    where = os.fspath(path) if isinstance(path, (str, os.PathLike)) else "the given files"
    if len(segs) != 1:
        raise SeriesSelectionError(f"{where}: {len(segs)} segmentation files found "
                                   f"({[r.path for r in segs][:5]}); pass one file",
                                   files=[r.path for r in segs][:20])  # fmt: skip
    return next(s for s in sources if s.name == segs[0].path)


def _reference_volume(reference: Any) -> Volume:
    if isinstance(reference, Volume):
        return reference
    from ..api import load  # the source series, loaded as any series is

    if isinstance(reference, Series):
        return reference.load()
    return load(reference)


def _selected(seg: SegFile, segments: Sequence[int] | None) -> list[dict[str, Any]]:
    known = {s["number"]: s for s in seg.segments}
    if segments is None:
        return list(seg.segments)
    if isinstance(segments, (int, np.integer)):
        segments = [int(segments)]
    wanted = [int(n) for n in segments]
    unknown = [n for n in wanted if n not in known]
    if unknown or len(set(wanted)) != len(wanted):
        raise InputError(f"{seg.path}: segments={list(segments)}: "
                         f"{'unknown ' + str(unknown) if unknown else 'repeated numbers'}; the "
                         f"segmentation has {sorted(known)}", files=[seg.path])  # fmt: skip
    return [known[n] for n in wanted]


def _own_report(seg: SegFile, grid: Grid, shape: tuple[int, ...]) -> GeometryReport:
    row, col, normal = geo.unit_vectors(seg.orientation)  # type: ignore[arg-type]
    plane, obliquity = geo.orientation_label(row, col, normal)
    steps = np.abs(np.diff(grid.distances)) if len(grid.distances) > 1 else np.zeros(1)
    affine = grid.affine
    return GeometryReport(
        series=seg.series_instance_uid, shape=shape,
        spacing=tuple(float(v) for v in np.linalg.norm(affine[:3, :3], axis=0)),  # type: ignore[arg-type]
        affine=tuple(tuple(float(v) for v in r) for r in affine),
        orientation=tuple(seg.orientation or ()), plane=plane, obliquity=obliquity,
        slice_positions=tuple(-d for d in grid.distances),
        step_min=float(steps.min()), step_median=median(steps), step_max=float(steps.max()),
        kind=grid.kind, n_files=1,
        handedness="right" if np.linalg.det(affine[:3, :3]) > 0 else "left",
        decisions=(f"segmentation frames placed by {grid.placed_by} on their own grid",),
    )  # fmt: skip


def load_segmentation(
    path: Inputs | Series,
    reference: Any = None,
    *,
    labelmap: bool = False,
    segments: Sequence[int] | None = None,
    overlap: str = "raise",
) -> Volume:
    """Load a DICOM Segmentation (SEG) as masks, on its own grid or aligned to its source.

    Parameters
    ----------
    path
        The SEG file: a path, a folder holding one SEG, a ByteSource, or a scanned SEG
        :class:`~fastvol.Series` (``found.segmentations_of(series)`` lists them).
    reference
        ``None``: the SEG's own frame geometry (one slice per distinct frame position, slices
        no frame lies on are empty). Else the source series, as a :class:`~fastvol.Volume`, a
        :class:`~fastvol.Series`, or anything :func:`fastvol.load` takes (a folder, files):
        the masks are placed on exactly its grid (same ``(slice, row, column)`` shape and
        affine), frames by the source image they reference (ReferencedSOPInstanceUID, and
        their position must agree) or else by their position along its slice axis; slices with
        no frame (omitted empty frames) are zeros.
    labelmap
        ``False``: array ``(segment, slice, row, column)``, uint8 0/1 for BINARY SEGs, float32
        in 0..1 for FRACTIONAL ones (stored value / MaximumFractionalValue). ``True``: array
        ``(slice, row, column)`` holding each voxel's segment number (0: none), uint8 (uint16
        for numbers above 255); BINARY SEGs only.
    segments
        Segment numbers to load, in the order wanted (default: all, in SegmentSequence order).
    overlap
        With ``labelmap=True``: ``"raise"`` (:class:`~fastvol.OverlapError`) when segments
        overlap, or ``"max"``: the largest segment number covering a voxel wins.

    Returns
    -------
    Volume
        ``meta["segments"]``: one dict per array segment (``number``, ``label``,
        ``description``, ``algorithm_type``, ``algorithm_name``, ``category`` and ``type``
        codes, ``cielab``, ``rgb``); also ``segment_numbers``, ``segmentation_type``,
        ``placed_by``, ``referenced_series``, ``sop_instance_uid``, ``files``.

    Raises
    ------
    AlignmentError
        A frame on no reference slice, another frame of reference, orientation, pixel spacing
        or frame size than the reference (each names the frame or what differs).
    OverlapError
        ``labelmap=True`` and segments overlap (unless ``overlap="max"``).
    InputError, UnsupportedError, CorruptFileError, GeometryError
        Not a SEG, unknown segment numbers, LABELMAP SEGs, damaged files; no own geometry.
    """
    if overlap not in OVERLAP:
        raise InputError(f"overlap={overlap!r}: expected one of {OVERLAP}")
    source = _seg_source(path)
    with map_exceptions(source.name, files=[source.name]):
        seg = read_seg(source)
        chosen = _selected(seg, segments)
        if labelmap and seg.segmentation_type != "BINARY":
            raise InputError(f"{seg.path}: labelmap=True needs a BINARY segmentation, this one is "
                             f"{seg.segmentation_type}; load the masks (labelmap=False)",
                             files=[seg.path])  # fmt: skip
        ref = None
        if reference is None:
            grid = on_own_grid(seg)
        else:
            ref = _reference_volume(reference)
            if ref.array.ndim != 3:
                raise UnsupportedError(f"{seg.path}: reference of shape {ref.shape} has leading axes; "
                                       f"pass one 3D volume (e.g. load(..., select=0))",
                                       files=[seg.path])  # fmt: skip
            grid = on_reference(
                seg, ref.affine, ref.shape, ref.meta.get("sop_instance_uids", ()),  # type: ignore[arg-type]
                ref.meta.get("frame_of_reference_uid", ""), frames=ref.meta.get("frames", ()),
            )  # fmt: skip
        numbers = [s["number"] for s in chosen]
        index_of = {n: i for i, n in enumerate(numbers)}
        seg_index = np.array([index_of.get(int(n), -1) for n in seg.segment_numbers], dtype=np.int64)
        wanted = np.flatnonzero(seg_index >= 0)
        frames = read_frames(seg, source)
        if labelmap:
            array = to_labelmap(frames, wanted, grid.slices, seg.segment_numbers, grid.shape,
                                overlap=overlap, path=seg.path)  # fmt: skip
        else:
            array = _masks(seg, frames, wanted, seg_index, grid, len(chosen))
    meta = {
        "segments": chosen, "segment_numbers": numbers,
        "segmentation_type": seg.segmentation_type, "max_fractional_value": seg.max_fractional,
        "placed_by": grid.placed_by, "referenced_series": list(seg.referenced_series),
        "series_instance_uid": seg.series_instance_uid, "sop_instance_uid": seg.sop_instance_uid,
        "frame_of_reference_uid": seg.frame_of_reference_uid, "modality": "SEG", "files": [seg.path],
        "axes": ("slice", "row", "column") if labelmap else ("segment", "slice", "row", "column"),
    }  # fmt: skip
    if ref is not None:
        report = dataclasses.replace(
            ref.geometry, series=seg.series_instance_uid, shape=array.shape,
            decisions=(f"segmentation frames placed by {grid.placed_by} on the reference series "
                       f"{ref.geometry.series}",),
            warnings=(),
        )  # fmt: skip
        meta["reference_series"] = ref.meta.get("series_instance_uid", ref.geometry.series)
    else:
        report = _own_report(seg, grid, array.shape)
    return Volume(array=array, affine=grid.affine, geometry=report, meta=meta)


def _masks(seg: SegFile, frames: Frames, wanted: np.ndarray, seg_index: np.ndarray, grid: Grid,
           n_segments: int) -> np.ndarray:  # fmt: skip
    """``(segment, slice, row, column)``: binary uint8, fractional float32 in 0..1.

    Each frame is unpacked (or scaled) once, straight into its place; a segment stored twice on
    one slice keeps the larger value of each voxel.
    """
    fractional = seg.segmentation_type == "FRACTIONAL"
    out = np.zeros((n_segments, *grid.shape), dtype=np.float32 if fractional else np.uint8)
    filled = np.zeros((n_segments, grid.shape[0]), dtype=bool)
    scale = np.float32(1.0 / seg.max_fractional)
    unpacked = seg.record.bits_allocated == 1  # 0/1 already
    for i in wanted:
        s, k = seg_index[i], grid.slices[i]
        frame = frames[i]
        values = frame * scale if fractional else frame if unpacked else (frame != 0).view(np.uint8)
        if filled[s, k]:
            np.maximum(out[s, k], values, out=out[s, k])
        else:
            out[s, k] = values
            filled[s, k] = True
    return out
