"""Geometry: slice order, spacing, gaps, tilt and repeats from plain arrays.

Nothing here sees a pydicom Dataset: inputs are positions ``(N, 3)`` (ImagePositionPatient, LPS mm),
the orientation 6-vector (ImageOrientationPatient: row direction, then column direction) and the
pixel spacing ``(between rows, between columns)``. Slices are ordered only by their position along
the slice normal ``n = row_cos x col_cos``, never by file name, InstanceNumber, SliceLocation,
SpacingBetweenSlices or ImagePositionPatient[2]. As in highdicom.Volume, slice 0 is the one
furthest along ``n`` and the slice index grows along ``col_cos x row_cos = -n``, which makes the
``(slice, row, column)`` index frame right-handed.

Nothing here raises for gaps, uneven spacing or tilt: :func:`analyze_stack` classifies them, and the
plan decides (by the user's options) whether to raise, fill or resample. It raises only when the
input cannot describe a stack at all (bad orientation, non-finite positions).

The affine maps ``(slice, row, column)`` indices to LPS mm, as highdicom.Volume does:
column ``j`` moves along the row direction by PixelSpacing[1], row ``i`` along the column direction
by PixelSpacing[0], and slice ``k`` by the true step vector between consecutive positions (which
leans off the normal when the gantry was tilted).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ._frozen import frozen
from .errors import BadOrientationError, GeometryError, RepeatedPositionsError
from .numeric import median
from .options import (
    ORIENTATION_TOLERANCE,
    POSITION_RTOL,
    SPACING_RTOL,
    TILT_TOLERANCE_DEG,
)

__all__ = [
    "ORIENTATION_TOLERANCE",
    "POSITION_RTOL",
    "SPACING_RTOL",
    "TILT_TOLERANCE_DEG",
    "Repeats",
    "StackGeometry",
    "affine_from",
    "analyze_stack",
    "orientation_label",
    "split_repeats",
    "unit_vectors",
]

#: Slices closer than this fraction of the typical step along the normal share one position.
SAME_POSITION_RTOL = 0.01
#: Absolute floor (mm) for "same position" when there is no typical step (all slices repeat).
SAME_POSITION_ATOL = 1e-3
#: Whatever the tolerance, direction cosines shorter than this, or whose normalised dot product
#: exceeds :data:`MAX_COSINE_DOT` (about 8 degrees from parallel), span no plane.
MIN_COSINE_NORM = 0.5
MAX_COSINE_DOT = 0.99
#: A regular grid may hold at most this many slices per acquired slice: beyond it (two slices
#: 1e5 steps apart) a position is garbage, and filling the grid would allocate without bound.
MAX_GRID_RATIO = 100


def unit_vectors(
    orientation: Sequence[float] | np.ndarray, *, tolerance: float = ORIENTATION_TOLERANCE
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row direction, column direction and slice normal from ImageOrientationPatient.

    Raises
    ------
    BadOrientationError
        When the cosines are missing, not unit length, or not perpendicular within ``tolerance``.
    """
    iop = np.asarray(orientation, dtype=np.float64).reshape(-1)
    if iop.shape != (6,) or not np.all(np.isfinite(iop)):
        raise BadOrientationError(
            f"ImageOrientationPatient {iop.tolist()} is not six finite numbers", orientation=iop
        )
    row, col = iop[:3], iop[3:]
    norms = np.array([np.linalg.norm(row), np.linalg.norm(col)])
    dot = float(row @ col)
    if np.any(np.abs(norms - 1.0) > tolerance) or abs(dot) > tolerance:
        raise BadOrientationError(
            f"ImageOrientationPatient {iop.round(6).tolist()} is not two perpendicular unit vectors "
            f"(lengths {norms.round(6).tolist()}, dot product {dot:.2g}); "
            f"pass orientation_tolerance= to accept it",
            orientation=iop,
        )
    if np.any(norms < MIN_COSINE_NORM) or abs(dot) / max(norms.prod(), 1e-300) > MAX_COSINE_DOT:
        # No tolerance makes a plane of (nearly) parallel or zero vectors: no slice normal.
        raise BadOrientationError(
            f"ImageOrientationPatient {iop.round(6).tolist()} spans no plane (lengths "
            f"{norms.round(6).tolist()}, dot product {dot:.2g}); the file's geometry is unusable",
            orientation=iop,
        )
    row = row / norms[0]
    col = col / norms[1]
    normal = np.cross(row, col)
    normal /= np.linalg.norm(normal)
    return row, col, normal


def orientation_label(row: np.ndarray, col: np.ndarray, normal: np.ndarray) -> tuple[str, str]:
    """Plane (axial, coronal, sagittal) and obliquity (orthogonal, single-, double-oblique)."""
    plane = ("sagittal", "coronal", "axial")[int(np.argmax(np.abs(normal)))]
    zero = 1e-4
    if all(np.sum(np.abs(v) > zero) == 1 for v in (row, col)):
        return plane, "orthogonal"
    return plane, "single-oblique" if np.sum(np.abs(normal) > zero) == 2 else "double-oblique"


@frozen(slots=True)
class StackGeometry:
    """Where each slice of one stack goes, and the affine of the regular grid.

    Attributes
    ----------
    order
        Indices into the input positions in array order: descending along the normal, i.e.
        ascending along the stacking axis ``-normal`` (highdicom's convention).
    slots
        For each sorted slice, its index in the regular grid (``slots[0] == 0``); consecutive unless
        slices are missing.
    n_slots
        Slices in the regular grid (``slots[-1] + 1``).
    kind
        ``"regular"``, ``"gaps"`` (steps are whole multiples of the regular step), ``"irregular"``
        or ``"single"``.
    distances
        Positions along the stacking axis ``-normal`` (mm), in array order (ascending).
    steps
        Differences of ``distances`` (mm, positive), length ``n - 1``.
    step
        Regular step along the stacking axis (mm); from ``step_source`` for one slice.
    step_vector
        Step between consecutive grid slices in LPS mm (leans off the normal when tilted).
    tilt_deg
        Angle between ``step_vector`` and the stacking axis, in degrees.
    residual
        Largest distance (mm) of a position from the stacking line.
    """

    order: np.ndarray
    slots: np.ndarray
    n_slots: int
    kind: str
    distances: np.ndarray
    steps: np.ndarray
    step: float
    step_vector: np.ndarray
    step_source: str
    tilt_deg: float
    residual: float
    origin: np.ndarray
    row: np.ndarray
    col: np.ndarray
    normal: np.ndarray
    pixel_spacing: tuple[float, float]

    @property
    def axis(self) -> np.ndarray:
        """Unit stacking axis: the direction in which the slice index grows (``-normal``)."""
        return -self.normal

    @property
    def affine(self) -> np.ndarray:
        """4x4 affine from ``(slice, row, column)`` grid indices to LPS mm."""
        return affine_from(self.origin, self.step_vector, self.row, self.col, self.pixel_spacing)

    @property
    def missing(self) -> np.ndarray:
        """Grid indices with no acquired slice."""
        present = np.zeros(self.n_slots, dtype=bool)
        present[self.slots] = True
        return np.flatnonzero(~present)


def affine_from(
    origin: np.ndarray,
    step_vector: np.ndarray,
    row: np.ndarray,
    col: np.ndarray,
    pixel_spacing: tuple[float, float],
) -> np.ndarray:
    """Affine mapping ``(slice, row, column)`` indices to LPS mm.

    Parameters
    ----------
    origin
        LPS position of voxel ``(0, 0, 0)`` (the first slice's ImagePositionPatient).
    step_vector
        LPS step from one slice to the next.
    row, col
        Unit row direction (along which the column index grows) and column direction (along
        which the row index grows), as in ImageOrientationPatient.
    pixel_spacing
        PixelSpacing: (spacing between rows, spacing between columns), mm.
    """
    affine = np.eye(4)
    affine[:3, 0] = step_vector
    affine[:3, 1] = col * pixel_spacing[0]
    affine[:3, 2] = row * pixel_spacing[1]
    affine[:3, 3] = origin
    return affine


def _same_position_tolerance(distances: np.ndarray, rtol: float) -> float:
    steps = np.diff(np.sort(distances))
    moving = np.sort(steps[steps > SAME_POSITION_ATOL])
    if moving.size == 0:
        return SAME_POSITION_ATOL
    # The low median: of two steps, the smaller. An averaged median lets one absurd position
    # (3 slices, one a metre off) widen "same position" until two true slices merge.
    return max(SAME_POSITION_ATOL, rtol * float(moving[(moving.size - 1) // 2]))


def position_clusters(distances: np.ndarray, *, rtol: float = SAME_POSITION_RTOL) -> np.ndarray:
    """Label each slice with the index of its distinct position along the normal (ascending)."""
    order = np.argsort(distances, kind="stable")
    tol = _same_position_tolerance(distances, rtol)
    new = np.ones(order.size, dtype=bool)
    new[1:] = np.diff(distances[order]) > tol
    labels_sorted = np.cumsum(new) - 1
    labels = np.empty_like(labels_sorted)
    labels[order] = labels_sorted
    return labels


def analyze_stack(
    positions: np.ndarray,
    orientation: Sequence[float] | np.ndarray,
    pixel_spacing: tuple[float, float],
    *,
    single_slice_step: tuple[float, str] | None = None,
    spacing_rtol: float = SPACING_RTOL,
    orientation_tolerance: float = ORIENTATION_TOLERANCE,
) -> StackGeometry:
    """Sort one stack of distinct positions along the normal and describe its grid.

    Parameters
    ----------
    positions
        ``(N, 3)`` ImagePositionPatient of each slice, LPS mm; positions must be distinct along
        the normal (split repeats first with :func:`split_repeats`).
    orientation
        ImageOrientationPatient shared by the slices.
    pixel_spacing
        PixelSpacing, (between rows, between columns), mm.
    single_slice_step
        ``(step mm, source)`` to use when there is only one slice (SpacingBetweenSlices or
        SliceThickness), else 1 mm.
    spacing_rtol
        Relative tolerance between steps.

    Raises
    ------
    BadOrientationError, GeometryError
        Unusable orientation, or non-finite positions.
    """
    row, col, normal = unit_vectors(orientation, tolerance=orientation_tolerance)
    axis = -normal  # highdicom's stacking direction: (slice, row, column) right-handed
    pos = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    if not np.all(np.isfinite(pos)):
        raise GeometryError("ImagePositionPatient has non-finite values", positions=pos)
    distances_all = pos @ axis
    order = np.argsort(distances_all, kind="stable")
    distances = distances_all[order]
    spacing = (float(pixel_spacing[0]), float(pixel_spacing[1]))
    n = pos.shape[0]
    if n == 1:
        step, source = single_slice_step if single_slice_step else (1.0, "default 1 mm")
        return StackGeometry(
            order=order, slots=np.zeros(1, dtype=np.int64), n_slots=1, kind="single",
            distances=distances, steps=np.zeros(0), step=float(step),
            step_vector=axis * float(step), step_source=source, tilt_deg=0.0, residual=0.0,
            origin=pos[0], row=row, col=col, normal=normal, pixel_spacing=spacing,
        )  # fmt: skip
    steps = np.diff(distances)
    try:
        kind, slots = _grid_slots(steps, spacing_rtol)
    except GeometryError as exc:
        # The widest step at either end isolates one slice: most likely the wrong position.
        end = {0: 0, n - 2: n - 1}.get(exc._data.get("widest_step", -1))
        if end is None:
            raise
        raise GeometryError(exc.message, **exc._data, suspect=int(order[end])) from None
    sorted_pos = pos[order]
    if kind == "irregular":
        origin, step_vector, residual, tilt = _line_through_ends(sorted_pos, axis)
        step = median(steps)
    else:
        step_vector, residual = _fitted_step(sorted_pos, slots)
        step, tilt = _along_and_tilt(step_vector, axis)
        # Anchor the grid on the first acquired slice exactly, as readers expect of voxel 0.
        origin = sorted_pos[0].copy()
    return StackGeometry(
        order=order, slots=slots, n_slots=int(slots[-1]) + 1, kind=kind, distances=distances,
        steps=steps, step=step, step_vector=step_vector, step_source="ImagePositionPatient",
        tilt_deg=tilt, residual=residual, origin=origin, row=row, col=col, normal=normal,
        pixel_spacing=spacing,
    )  # fmt: skip


def _check_grid_size(multiples: np.ndarray) -> None:
    """Refuse a grid the acquired slices cannot reasonably fill, before any array of its size.

    Raises
    ------
    GeometryError
        The grid would hold more than :data:`MAX_GRID_RATIO` slices per acquired slice.
    """
    n_acquired = multiples.size + 1
    n_grid = float(multiples.sum()) + 1.0  # float: an absurd step count must not wrap an int64
    if not n_grid <= MAX_GRID_RATIO * n_acquired:
        raise GeometryError(
            f"slice positions imply a grid of {n_grid:.4g} slices for {n_acquired} acquired "
            f"(more than {MAX_GRID_RATIO} per slice): a position is wrong, not slices missing",
            grid_slices=n_grid, widest_step=int(np.argmax(multiples)),
        )


def _grid_slots(steps: np.ndarray, spacing_rtol: float) -> tuple[str, np.ndarray]:
    """Classify the steps between sorted slices and give each slice its grid index.

    The regular step is the mean of the steps within ``spacing_rtol`` of the smallest. When
    every step is a whole multiple of it the stack is ``"regular"`` or has ``"gaps"`` (slots
    skip the missing slices); otherwise it is ``"irregular"`` and slots are ``0..n-1``.
    """
    base_candidates = steps[steps <= steps.min() * (1.0 + spacing_rtol)]
    base = float(base_candidates.mean())
    multiples = np.maximum(np.rint(steps / base), 1.0)
    whole = np.abs(steps - multiples * base) <= spacing_rtol * base * multiples
    if not np.all(whole):
        return "irregular", np.arange(steps.size + 1, dtype=np.int64)
    kind = "gaps" if np.any(multiples > 1) else "regular"
    _check_grid_size(multiples)
    return kind, np.concatenate([[0], np.cumsum(multiples)]).astype(np.int64)


def _fitted_step(sorted_pos: np.ndarray, slots: np.ndarray) -> tuple[np.ndarray, float]:
    """Step vector and residual (mm) of a least-squares fit of positions against slot index.

    Exact for regular stacks and robust to rounding in ImagePositionPatient; the residual is
    the largest distance of a position from the fitted grid point of its slot.
    """
    t = slots.astype(np.float64)
    t_mean = t.mean()
    centred = t - t_mean
    step_vector = (centred @ (sorted_pos - sorted_pos.mean(axis=0))) / (centred @ centred)
    origin = sorted_pos.mean(axis=0) - t_mean * step_vector
    residual = float(np.max(np.linalg.norm(sorted_pos - (origin + np.outer(t, step_vector)), axis=1)))
    return step_vector, residual


def _line_through_ends(
    sorted_pos: np.ndarray, axis: np.ndarray
) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Origin, mean step vector, residual (mm) and tilt (degrees) of an irregular stack.

    There is no single step: the origin is the first slice, the step vector the mean step,
    and the residual the largest distance of a position from the line through first and last.
    The tilt is the lean of that line off the stacking ``axis`` (the slice normal), as for a
    regular stack: measured against the line itself it would always be zero.
    """
    origin = sorted_pos[0]
    step_vector = (sorted_pos[-1] - sorted_pos[0]) / (sorted_pos.shape[0] - 1)
    line = step_vector / np.linalg.norm(step_vector)
    rel = sorted_pos - origin
    residual = float(np.max(np.linalg.norm(rel - np.outer(rel @ line, line), axis=1)))
    _, tilt = _along_and_tilt(step_vector, axis)
    return origin, step_vector, residual, tilt


def _along_and_tilt(step_vector: np.ndarray, axis: np.ndarray) -> tuple[float, float]:
    """Length of ``step_vector`` along the unit ``axis`` (mm), and its angle off it (degrees)."""
    along = float(step_vector @ axis)
    tilt = float(np.degrees(np.arctan2(np.linalg.norm(step_vector - along * axis), along)))
    return along, tilt


@frozen(slots=True)
class Repeats:
    """How slices sharing positions split into volumes.

    Attributes
    ----------
    tag
        Keyword of the tag that tells the volumes apart (``None`` when each position is unique).
    values
        One value per volume, in volume order (tag values ascending, or ranks ``0..m-1`` when
        ``by_order``).
    table
        ``(n_volumes, n_positions)`` input indices; volume ``v`` at position ``p`` (positions
        labelled ascending along the normal).
    position_of
        Position label of each input slice.
    by_order
        True when volumes were inferred from acquisition order (rank of ``tag`` within each
        position) rather than told apart by equal tag values across positions.
    dropped
        Input indices left out because their volume was incomplete (``incomplete="drop"``).
    """

    tag: str | None
    values: tuple[object, ...]
    table: np.ndarray
    position_of: np.ndarray
    by_order: bool = False
    dropped: tuple[int, ...] = ()


def _files_at(labels: np.ndarray, label: int, files: Sequence[str]) -> list[str]:
    return [files[int(i)] for i in np.flatnonzero(labels == label)] if files else []


def _by_value(tag: str, vals: list[object], labels: np.ndarray, n_pos: int, files: Sequence[str],
              incomplete: str) -> Repeats | str:  # fmt: skip
    """Volumes told apart by equal tag values across positions, or why the tag does not work."""
    if any(v is None for v in vals):
        return f"{tag} (absent in some files)"
    distinct = sorted(set(vals))  # type: ignore[type-var]
    if len(distinct) < 2:
        return f"{tag} (one value)"
    per_position: list[set[object]] = [set() for _ in range(n_pos)]
    for label, value in zip(labels, vals):
        if value in per_position[label]:
            return f"{tag} (repeats within a position)"
        per_position[label].add(value)
    common = set.intersection(*per_position)
    if not common:
        return f"{tag} (no value shared by every position)"
    dropped: tuple[int, ...] = ()
    if common != set(distinct):
        short = [p for p, s in enumerate(per_position) if s != set(distinct)]
        if incomplete != "drop":
            raise RepeatedPositionsError(
                f"slices repeat at positions told apart by {tag}, but {len(short)} of {n_pos} "
                f"positions lack some of its {len(distinct)} values (an incomplete volume, e.g. "
                f"an interrupted run); files at the first such position: "
                f"{_files_at(labels, short[0], files)[:6]}; pass incomplete='drop' to keep only "
                f"the complete volumes",
                files=_files_at(labels, short[0], files), tag=tag, values=tuple(distinct),
            )  # fmt: skip
        dropped = tuple(i for i, v in enumerate(vals) if v not in common)
        distinct = sorted(common)  # type: ignore[type-var]
    index = {v: k for k, v in enumerate(distinct)}
    table = np.empty((len(distinct), n_pos), dtype=np.int64)
    for i, (label, value) in enumerate(zip(labels, vals)):
        if value in index:
            table[index[value], label] = i
    return Repeats(tag=tag, values=tuple(distinct), table=table, position_of=labels, dropped=dropped)


def _by_order(tag: str, vals: list[object], labels: np.ndarray, n_pos: int, files: Sequence[str],
              incomplete: str) -> Repeats | str:  # fmt: skip
    """Volumes inferred from acquisition order: the k-th slice (by ``tag``) at every position."""
    if any(v is None or v == "" for v in vals):
        return f"{tag} order (absent in some files)"
    members = [np.flatnonzero(labels == p) for p in range(n_pos)]
    ranked = []
    for idx in members:
        keys = [vals[i] for i in idx]
        if len(set(keys)) != len(keys):
            return f"{tag} order (ties within a position)"
        ranked.append(idx[np.argsort(np.array(keys, dtype=object), kind="stable")])
    counts = np.array([len(r) for r in ranked])
    m = int(counts.min())
    dropped: tuple[int, ...] = ()
    if counts.max() != m:
        if incomplete != "drop":
            short = int(np.argmin(counts))
            raise RepeatedPositionsError(
                f"positions repeat {m} to {int(counts.max())} times (volumes inferred from {tag} "
                f"order): the last volume looks incomplete (an interrupted run); files at a short "
                f"position: {_files_at(labels, short, files)[:6]}; pass incomplete='drop' to keep "
                f"the {m} complete volumes",
                files=_files_at(labels, short, files), tag=tag, counts=counts,
            )  # fmt: skip
        dropped = tuple(int(i) for r in ranked for i in r[m:])
    table = np.array([[r[k] for r in ranked] for k in range(m)], dtype=np.int64)
    return Repeats(tag=tag, values=tuple(range(m)), table=table, position_of=labels,
                   by_order=True, dropped=dropped)  # fmt: skip


def split_repeats(
    distances: np.ndarray,
    tags: Mapping[str, Sequence[object]],
    *,
    order_tags: Mapping[str, Sequence[object]] | None = None,
    files: Sequence[str] = (),
    incomplete: str = "raise",
    rtol: float = SAME_POSITION_RTOL,
) -> Repeats:
    """Split slices that share positions into volumes.

    First by the first of ``tags`` whose values tell the slices at each position apart and are
    the same set at every position (volumes ordered by value); failing that, by acquisition
    order: the first of ``order_tags`` with distinct values within each position ranks them, and
    volume ``k`` is the ``k``-th slice at every position.

    Parameters
    ----------
    distances
        Position of each slice along the normal (mm).
    tags, order_tags
        Tag keyword -> value per slice (``None`` where absent), tried in mapping order.
    files
        File of each slice, for error messages.
    incomplete
        ``"raise"`` when some position lacks a volume, or ``"drop"`` the incomplete volumes.

    Raises
    ------
    RepeatedPositionsError
        Positions repeat and nothing tells the volumes apart, or a volume is incomplete.
    """
    labels = position_clusters(distances, rtol=rtol)
    n_pos = int(labels.max()) + 1
    counts = np.bincount(labels, minlength=n_pos)
    if counts.max() == 1:
        table = np.empty((1, n_pos), dtype=np.int64)
        table[0, labels] = np.arange(labels.size)
        return Repeats(tag=None, values=(), table=table, position_of=labels)
    tried: list[str] = []
    for tag, values in tags.items():
        found = _by_value(tag, list(values), labels, n_pos, files, incomplete)
        if isinstance(found, Repeats):
            return found
        tried.append(found)
    for tag, values in (order_tags or {}).items():
        found = _by_order(tag, list(values), labels, n_pos, files, incomplete)
        if isinstance(found, Repeats):
            return found
        tried.append(found)
    first = int(np.argmax(counts))
    clashing = _files_at(labels, first, files)
    raise RepeatedPositionsError(
        f"{int(counts.max())} slices share one position (e.g. {clashing[:4]}) and no tag tells "
        f"them apart (tried: {', '.join(tried) or 'none'}); they may be time points or echoes "
        f"without identifying tags, or duplicates with different SOPInstanceUIDs. Load a subset "
        f"of files, or pass repeats='first' to keep the first file (by InstanceNumber) at each "
        f"position",
        files=clashing, counts=counts,
    )  # fmt: skip
