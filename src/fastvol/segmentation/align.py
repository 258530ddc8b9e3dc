"""Place SEG frames on a grid: the SEG's own, or exactly a reference volume's.

Plain arrays in (positions, orientation, spacing, the reference's affine and per-slice
SOPInstanceUIDs), slice indices out, or a typed error naming the frame that fits nowhere. A frame
is placed by the source image it references (ReferencedSOPInstanceUID) when the reference holds
that image, and its position, when it has one, must then agree; otherwise by its position along
the reference's slice axis. Nothing is placed by frame order.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .. import geometry as geo
from .._frozen import frozen
from ..errors import AlignmentError, GeometryError
from .read import SegFile

__all__ = [
    "IN_PLANE_TOLERANCE",
    "ORIENTATION_TOLERANCE",
    "SLICE_TOLERANCE",
    "Grid",
    "on_own_grid",
    "on_reference",
]

#: Largest distance of a frame's position from a reference slice, as a fraction of the slice
#: step (along the slice axis) ...
SLICE_TOLERANCE = 0.05
#: ... and from the reference's first voxel in-plane, as a fraction of a pixel.
IN_PLANE_TOLERANCE = 0.05
#: Largest difference between direction cosines (and relative pixel spacings) of the SEG and
#: the reference.
ORIENTATION_TOLERANCE = 1e-3


@frozen(eq=False)
class Grid:
    """Where each stored frame goes: ``slices[i]`` on a grid of ``shape`` with ``affine``."""

    affine: np.ndarray
    shape: tuple[int, int, int]
    slices: np.ndarray
    placed_by: str  # "position", "source image" or "source image and position"
    distances: tuple[float, ...] = ()
    kind: str = "regular"


def _frame_names(seg: SegFile, frames: Sequence[int] | np.ndarray) -> str:
    return ", ".join(f"{i + 1} (segment {seg.segment_numbers[i]})" for i in list(frames)[:5])


def on_own_grid(seg: SegFile) -> Grid:
    """The grid the SEG's own frame positions span: one slice per distinct position, in
    highdicom's order (descending along the normal); slices no frame lies on are empty.

    Raises
    ------
    GeometryError
        Frames without position, orientation or spacing, or positions that form no regular
        grid (uneven steps, off one line): pass ``reference=`` to place them by the source.
    """
    path = seg.path
    if seg.orientation is None or seg.pixel_spacing is None or np.isnan(seg.positions).any():
        raise GeometryError(f"{path}: frames lack ImagePositionPatient, ImageOrientationPatient or "
                            f"PixelSpacing, so they have no geometry of their own; pass reference= "
                            f"(the source series) to place them by the images they reference",
                            files=[path])  # fmt: skip
    row, col, normal = geo.unit_vectors(seg.orientation)
    labels = geo.position_clusters(seg.positions @ -normal)
    n_pos = int(labels.max()) + 1 if labels.size else 0
    if n_pos == 0:
        raise GeometryError(f"{path}: the segmentation has no frames", files=[path])
    first_of = np.zeros(n_pos, dtype=np.int64)
    first_of[labels[::-1]] = np.arange(labels.size)[::-1]  # first frame at each position
    thickness = seg.slice_thickness
    stack = geo.analyze_stack(
        seg.positions[first_of], seg.orientation, seg.pixel_spacing,
        single_slice_step=(thickness, "SliceThickness") if thickness else None,
    )  # fmt: skip
    if stack.kind == "irregular" or stack.residual > max(0.01 * abs(stack.step), 1e-3):
        raise GeometryError(f"{path}: the frames' positions form no regular grid (steps "
                            f"{np.round(stack.steps, 4).tolist()[:8]} mm); pass reference= to "
                            f"place them on the source series' grid", files=[path])  # fmt: skip
    slot_of_cluster = np.empty(n_pos, dtype=np.int64)
    slot_of_cluster[stack.order] = stack.slots
    affine = geo.affine_from(stack.origin, stack.step_vector, row, col, seg.pixel_spacing)
    return Grid(affine=affine, shape=(stack.n_slots, seg.rows, seg.columns),
                slices=slot_of_cluster[labels], placed_by="position",
                distances=tuple(float(d) for d in stack.distances), kind=stack.kind)  # fmt: skip


def on_reference(
    seg: SegFile,
    affine: np.ndarray,
    shape: tuple[int, int, int],
    sop_instance_uids: Sequence[str],
    frame_of_reference_uid: str,
    *,
    frames: Sequence[int] = (),
) -> Grid:
    """Slice index on the reference grid of every stored frame.

    Parameters
    ----------
    affine, shape
        The reference volume's LPS affine and ``(slice, row, column)`` shape.
    sop_instance_uids, frames
        Per reference slice, its SOPInstanceUID and (multi-frame references) its frame index
        within the file (0-based), as ``Volume.meta`` gives them.
    frame_of_reference_uid
        The reference's FrameOfReferenceUID (``""`` when unknown: not compared).

    Raises
    ------
    AlignmentError
        Another frame of reference, another orientation, pixel spacing or frame size, or a frame
        that lands on no reference slice (each named, with its segment).
    """
    path = seg.path
    if seg.frame_of_reference_uid and frame_of_reference_uid and (
        seg.frame_of_reference_uid != frame_of_reference_uid
    ):
        raise AlignmentError(f"{path}: FrameOfReferenceUID {seg.frame_of_reference_uid} differs from "
                             f"the reference's {frame_of_reference_uid}: the segmentation was made on "
                             f"another scan; load it without reference=", files=[path],
                             reason="frame of reference")  # fmt: skip
    if (seg.rows, seg.columns) != tuple(shape[1:]):
        raise AlignmentError(f"{path}: frames of {seg.rows}x{seg.columns} but the reference slices are "
                             f"{shape[1]}x{shape[2]}; load it without reference= (its own grid)",
                             files=[path], reason="frame size")  # fmt: skip
    _check_plane(seg, affine)
    n = seg.n_frames
    inverse = np.linalg.inv(affine)
    slices = np.full(n, -1, dtype=np.int64)
    by_uid = _slice_by_uid(sop_instance_uids, frames)
    used_uid = False
    for i in range(n):
        key = (seg.source_uids[i], int(seg.source_frames[i]) - 1 if seg.source_frames[i] else -1)
        k = by_uid.get(key, by_uid.get((key[0], -1))) if key[0] else None
        if k is not None:
            slices[i] = k
            used_uid = True
    has_pos = ~np.isnan(seg.positions).any(axis=1)
    ijk = np.full((n, 3), np.nan)
    if has_pos.any():
        ijk[has_pos] = (seg.positions[has_pos] - affine[:3, 3]) @ inverse[:3, :3].T
    off_plane = has_pos & (np.abs(ijk[:, 1:]) > IN_PLANE_TOLERANCE).any(axis=1)
    if off_plane.any():
        bad = np.flatnonzero(off_plane)
        raise AlignmentError(f"{path}: frame(s) {_frame_names(seg, bad)} start at "
                             f"{np.round(ijk[bad[0], 1:], 3).tolist()} pixels from the reference's "
                             f"first voxel in-plane: not on the reference grid", files=[path],
                             frames=tuple(int(b) + 1 for b in bad), reason="in-plane offset")  # fmt: skip
    nearest = np.rint(ijk[:, 0])
    off_slice = has_pos & (np.abs(ijk[:, 0] - nearest) > SLICE_TOLERANCE)
    by_pos = has_pos & (slices < 0)
    outside = by_pos & ((nearest < 0) | (nearest >= shape[0]))
    if (off_slice & by_pos).any() or outside.any():
        bad = np.flatnonzero((off_slice & by_pos) | outside)
        raise AlignmentError(f"{path}: frame(s) {_frame_names(seg, bad)} lie at slice index "
                             f"{np.round(ijk[bad, 0], 3).tolist()[:5]} of the reference (0..{shape[0] - 1}): "
                             f"on no reference slice", files=[path], frames=tuple(int(b) + 1 for b in bad),
                             reason="no slice")  # fmt: skip
    disagree = has_pos & (slices >= 0) & ((nearest != slices) | off_slice)
    if disagree.any():
        bad = np.flatnonzero(disagree)
        raise AlignmentError(f"{path}: frame(s) {_frame_names(seg, bad)} reference source slice(s) "
                             f"{slices[bad].tolist()[:5]} but lie at slice index "
                             f"{np.round(ijk[bad, 0], 3).tolist()[:5]}: the reference grid is not the "
                             f"one the segmentation was made on", files=[path],
                             frames=tuple(int(b) + 1 for b in bad), reason="position disagrees")  # fmt: skip
    slices[by_pos] = nearest[by_pos].astype(np.int64)
    unplaced = np.flatnonzero(slices < 0)
    if unplaced.size:
        raise AlignmentError(f"{path}: frame(s) {_frame_names(seg, unplaced)} have no position and "
                             f"reference no image of the reference series", files=[path],
                             frames=tuple(int(b) + 1 for b in unplaced), reason="unplaced")  # fmt: skip
    how = "source image" if used_uid else "position"
    if used_uid and has_pos.any():
        how = "source image and position"
    return Grid(affine=np.array(affine, dtype=np.float64), shape=tuple(int(s) for s in shape),  # type: ignore[arg-type]
                slices=slices, placed_by=how)  # fmt: skip


def _slice_by_uid(uids: Sequence[str], frames: Sequence[int]) -> dict[tuple[str, int], int]:
    """(SOPInstanceUID, frame or -1) -> reference slice; a UID on several slices keys by frame only."""
    out: dict[tuple[str, int], int] = {}
    counts: dict[str, int] = {}
    for uid in uids:
        counts[uid] = counts.get(uid, 0) + 1
    for k, uid in enumerate(uids):
        if not uid:
            continue
        if counts[uid] == 1:
            out[(uid, -1)] = k
        if k < len(frames):
            out[(uid, int(frames[k]))] = k
    return out


def _check_plane(seg: SegFile, affine: np.ndarray) -> None:
    """The SEG's orientation and pixel spacing must be the reference's."""
    path = seg.path
    if seg.orientation is None or seg.pixel_spacing is None:
        return  # placed by source image only; nothing to compare
    row, col, _ = geo.unit_vectors(seg.orientation)
    ref_col_step, ref_row_step = affine[:3, 1], affine[:3, 2]  # row index axis, column index axis
    ref_spacing = (float(np.linalg.norm(ref_col_step)), float(np.linalg.norm(ref_row_step)))
    same_dirs = (np.abs(ref_col_step / ref_spacing[0] - col).max() <= ORIENTATION_TOLERANCE
                 and np.abs(ref_row_step / ref_spacing[1] - row).max() <= ORIENTATION_TOLERANCE)  # fmt: skip
    if not same_dirs:
        raise AlignmentError(f"{path}: ImageOrientationPatient {np.round(seg.orientation, 5).tolist()} "
                             f"is not the reference's {np.round(np.r_[ref_row_step / ref_spacing[1], ref_col_step / ref_spacing[0]], 5).tolist()}; "
                             f"load it without reference=", files=[path], reason="orientation")  # fmt: skip
    rel = np.abs(np.array(seg.pixel_spacing) - np.array(ref_spacing)) / np.array(ref_spacing)
    if rel.max() > ORIENTATION_TOLERANCE:
        raise AlignmentError(f"{path}: PixelSpacing {list(seg.pixel_spacing)} (row, column) is not "
                             f"the reference's {[round(v, 6) for v in ref_spacing]}; load it without "
                             f"reference=", files=[path], reason="pixel spacing")  # fmt: skip
