"""Layout: header records -> volumes, slice order and grid slots, and a geometry without pixels.

:func:`arrange` reads nothing but the records (deduplicated by :func:`.duplicates.dedupe`): it
places every frame in patient space (:class:`Placement`), splits repeated positions into volumes
(:mod:`.volumes`) and orders the first volume's slices on a grid (:func:`fastvol.geometry.analyze_stack`).
The options it applies are those that decide *which* frames form the volumes (repeats,
incomplete, select); what to do with gaps, uneven spacing and tilt is the policy's job.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from .. import geometry as geo
from .._frozen import frozen
from ..dicom import HeaderRecord
from ..errors import BadOrientationError, CorruptFileError, GeometryError
from ..options import Options, Tolerances
from .decisions import Decision
from .types import VolumeGeometry
from .volumes import split_volumes

__all__ = ["MAX_POSITION_MM", "Layout", "Placement", "arrange", "place"]

#: Largest distance from the origin (mm) of a plausible ImagePositionPatient, and largest
#: plausible PixelSpacing: 1 km. Beyond it the value is garbage (1e308), not a patient, and
#: the grid it would imply overflows.
MAX_POSITION_MM = 1e6


@frozen(eq=False)
class Placement:
    """Where each frame lies: the series' plane, and each record's position along its normal.

    Attributes
    ----------
    records
        The frames placed (deduplicated, with pixels).
    orientation
        ImageOrientationPatient, the mean over the records.
    pixel_spacing
        ``(row spacing, column spacing)`` in mm (1 mm when PixelSpacing is missing).
    row, col, normal
        Unit row and column directions and their cross product, LPS.
    positions, distances
        ImagePositionPatient per record, and its projection on ``normal``.
    """

    records: tuple[HeaderRecord, ...]
    orientation: np.ndarray
    pixel_spacing: tuple[float, float]
    row: np.ndarray
    col: np.ndarray
    normal: np.ndarray
    positions: np.ndarray
    distances: np.ndarray

    @property
    def files(self) -> list[str]:
        """Path of each record."""
        return [r.path for r in self.records]

    @property
    def labels(self) -> list[str]:
        """Path of each record, naming the frame too for multi-frame files (for messages)."""
        return [r.path if r.number_of_frames == 1 else f"{r.path} [frame {r.frame}]"
                for r in self.records]  # fmt: skip


@frozen(eq=False)
class Layout:
    """Which record fills which slice of which volume, from headers alone.

    Attributes
    ----------
    place
        Positions and plane of every record.
    dropped
        Paths of the files dropped as copies (same SOPInstanceUID and frame, same headers).
    repeats
        Volumes: ``repeats.table[v, p]`` is the record at position ``p`` of volume ``v`` (after
        ``select``).
    unselected
        Record indices of volumes left out by ``select``.
    stack
        Slice order, grid slots and affine of the first volume.
    decisions, warnings
        What the layout chose and noticed.
    """

    place: Placement
    dropped: tuple[str, ...]
    repeats: geo.Repeats
    unselected: tuple[int, ...]
    stack: geo.StackGeometry
    decisions: tuple[Decision, ...]
    warnings: tuple[Decision, ...]

    @property
    def records(self) -> tuple[HeaderRecord, ...]:
        """The records placed."""
        return self.place.records

    @property
    def n_volumes(self) -> int:
        """Volumes the load returns."""
        return int(self.repeats.table.shape[0])

    def record(self, volume: int, index: int) -> HeaderRecord:
        """Record of slice ``index`` (in array order) of ``volume``."""
        return self.records[int(self.repeats.table[volume][self.stack.order[index]])]

    def sorted_files(self, labels: bool = False) -> list[str]:
        """Files of the first volume in array order (``labels``: frames named, for messages)."""
        names = self.place.labels if labels else self.place.files
        first = self.repeats.table[0]
        return [names[int(first[i])] for i in self.stack.order]

    @property
    def geometry(self) -> VolumeGeometry:
        """The grid of one volume as acquired, before the options act on gaps, spacing or tilt."""
        first = self.records[0]
        return VolumeGeometry.from_stack(self.stack, self.place.orientation, first.rows, first.columns)


def place(records: Sequence[HeaderRecord], tolerances: Tolerances, *, name: str, uid: str
          ) -> tuple[Placement, list[Decision]]:  # fmt: skip
    """Place every record in patient space, or raise when the headers cannot.

    Raises
    ------
    GeometryError
        No record has ImagePositionPatient (projection images have no plane geometry).
    CorruptFileError
        Some records lack a usable ImagePositionPatient that the others have.
    BadOrientationError
        ImageOrientationPatient missing, or not two orthonormal directions.
    """
    lacking = [r.path for r in records if r.image_position is None]
    framed = [r for r in records if r.image_position is None and r.number_of_frames > 1]
    if framed and len(lacking) < len(records):  # frames of a multi-frame file: not movable
        where: dict[str, list[int]] = {}
        for r in framed:
            where.setdefault(r.path, []).append(r.frame + 1)
        told = "; ".join(f"{path} frame(s) {frames[:8]}" for path, frames in list(where.items())[:3])
        raise CorruptFileError(
            f"series {name}: {len(framed)} of its {len(records)} frames have no usable "
            f"ImagePositionPatient (PlanePositionSequence missing or not three numbers) though "
            f"the others have one, so they cannot be placed: damaged per-frame headers ({told}); "
            f"no option loads a multi-frame file without its frames' positions",
            files=list(where), uid=uid,
        )  # fmt: skip
    if lacking and len(lacking) < len(records):  # the others have one: damaged headers
        raise CorruptFileError(
            f"series {name}: {len(lacking)} of its {len(records)} files have no usable "
            f"ImagePositionPatient (missing, or not three numbers) though the others have one, "
            f"so they cannot be placed: damaged headers? (e.g. {lacking[:3]}); move them out "
            f"of the folder to load the rest (the gap is then reported)",
            files=lacking, uid=uid,
        )  # fmt: skip
    if lacking:
        raise GeometryError(
            f"series {name}: {len(lacking)} file(s) have no usable ImagePositionPatient, so slices "
            f"cannot be placed in patient space (projection images such as DX/CR/XA have no "
            f"plane geometry; fastvol does not invent one, and no option loads them: read such "
            f"an image's pixels with pydicom, dcmread(path).pixel_array) (e.g. {lacking[:3]})",
            files=lacking, uid=uid,
        )  # fmt: skip
    if any(r.image_orientation is None for r in records):
        bad = [r.path for r in records if r.image_orientation is None]
        raise BadOrientationError(
            f"series {name}: {len(bad)} file(s) have no usable ImageOrientationPatient "
            f"(e.g. {bad[:3]})", files=bad, uid=uid,
        )  # fmt: skip
    _check_plausible(records, name=name, uid=uid)
    orientation = np.mean(np.array([r.image_orientation for r in records], dtype=np.float64), axis=0)
    notes: list[Decision] = []
    if len({r.frame_of_reference_uid for r in records}) > 1:  # "": none given
        # Positions in two coordinate systems: stacked, but never in silence.
        frames = Counter(r.frame_of_reference_uid for r in records)
        main_frame = frames.most_common(1)[0][0]
        odd = list(dict.fromkeys(r.path for r in records if r.frame_of_reference_uid != main_frame))
        notes.append(Decision("frames_of_reference", series=name, n_frames=len(frames),
                              n_files=len(odd), files=odd))  # fmt: skip
    spacing_values = {r.pixel_spacing for r in records}
    if None in spacing_values:
        pixel_spacing = (1.0, 1.0)
        notes.append(Decision("pixel_spacing_missing", series=name))
    else:
        pixel_spacing = tuple(np.mean(np.array(list(spacing_values)), axis=0).tolist())
    try:
        row, col, normal = geo.unit_vectors(orientation, tolerance=tolerances.orientation_tolerance)
    except BadOrientationError as exc:
        raise BadOrientationError(f"series {name}: {exc.message}", files=[records[0].path],
                                  uid=uid) from None  # fmt: skip
    positions = np.array([r.image_position for r in records], dtype=np.float64)
    placement = Placement(
        records=tuple(records), orientation=orientation, pixel_spacing=pixel_spacing,  # type: ignore[arg-type]
        row=row, col=col, normal=normal, positions=positions, distances=positions @ normal,
    )  # fmt: skip
    return placement, notes


def _check_plausible(records: Sequence[HeaderRecord], *, name: str, uid: str) -> None:
    """Refuse non-finite or absurd positions, orientations and pixel spacings, naming the files.

    Raises
    ------
    GeometryError
        ImagePositionPatient not finite or farther than :data:`MAX_POSITION_MM` from the origin.
    BadOrientationError
        ImageOrientationPatient not finite.
    CorruptFileError
        PixelSpacing zero, negative, not finite or above :data:`MAX_POSITION_MM`, or present
        but not two numbers (read as :data:`~fastvol.headers.convert.INVALID_SPACING`).
    """
    positions = np.array([r.image_position for r in records], dtype=np.float64)
    far = ~np.all(np.isfinite(positions) & (np.abs(positions) <= MAX_POSITION_MM), axis=1)
    if far.any():
        bad = list(dict.fromkeys(r.path for r, f in zip(records, far) if f))  # frames: file once
        raise GeometryError(
            f"series {name}: {len(bad)} file(s) have an ImagePositionPatient that is not finite or "
            f"lies more than {MAX_POSITION_MM:g} mm from the origin (e.g. {bad[:3]})",
            files=bad, uid=uid,
        )  # fmt: skip
    orient = np.array([r.image_orientation for r in records], dtype=np.float64)
    if not np.all(np.isfinite(orient)):
        bad = list(dict.fromkeys(r.path for r, o in zip(records, orient) if not np.all(np.isfinite(o))))
        raise BadOrientationError(f"series {name}: ImageOrientationPatient is not finite in "
                                  f"{bad[:3]}", files=bad, uid=uid)  # fmt: skip
    spacings = {r.pixel_spacing for r in records if r.pixel_spacing is not None}
    bad_spacings = {sp for sp in spacings if not all(0 < s <= MAX_POSITION_MM for s in sp)}
    bad = list(dict.fromkeys(r.path for r in records if r.pixel_spacing in bad_spacings)) if bad_spacings else []
    if bad:
        raise CorruptFileError(
            f"series {name}: PixelSpacing is not two numbers, or is zero, negative, not finite or "
            f"absurd, in {len(bad)} file(s) (e.g. {bad[:3]}); fastvol does not guess the pixel size "
            f"of such files", files=bad, uid=uid,
        )  # fmt: skip


def _single_slice_step(rec: HeaderRecord) -> tuple[float, str]:
    """Slice step of a one-slice volume, and the attribute it came from."""
    # Only a finite, non-zero value is a step: NaN is truthy and would give a NaN affine.
    if rec.spacing_between_slices and np.isfinite(rec.spacing_between_slices):
        return abs(rec.spacing_between_slices), "SpacingBetweenSlices"
    if rec.slice_thickness and np.isfinite(rec.slice_thickness):
        return abs(rec.slice_thickness), "SliceThickness"
    return 1.0, "default 1 mm"


def arrange(records: Sequence[HeaderRecord], dropped: Sequence[str], options: Options, *,
            name: str, uid: str, single_slice: bool = True) -> Layout:  # fmt: skip
    """Lay out deduplicated records: volumes, slice order, grid slots; no pixel is read.

    Parameters
    ----------
    records, dropped
        Records with pixels, each instance once, and the paths of the copies dropped
        (:func:`.duplicates.dedupe`).
    options
        ``repeats``, ``incomplete``, ``select`` and the tolerances are applied here.
    name, uid
        ``Series.id`` and SeriesInstanceUID, for messages.
    single_slice
        False when a volume of one record is not one slice (a mosaic holds them all).

    Raises
    ------
    GeometryError
        Subclasses for missing or bad positions, orientations and ambiguous repeats.
    InputError
        ``select`` does not index the volumes.
    """
    decisions: list[Decision] = []
    if dropped:
        decisions.append(Decision("duplicates_dropped", n=len(dropped), files=tuple(dropped)))
    if any(r.number_of_frames > 1 for r in records):
        n_files = sum(r.number_of_frames > 1 for r in records if r.frame == 0)
        decisions.append(Decision("multiframe", n_files=n_files))
    placement, notes = place(records, options.tolerances, name=name, uid=uid)
    repeats, unselected, chosen = split_volumes(placement, options, name=name, uid=uid)
    decisions += chosen
    first_volume = repeats.table[0]
    single_step: tuple[float, str] | None = None
    if first_volume.size == 1 and single_slice:
        single_step = _single_slice_step(records[int(first_volume[0])])
        decisions.append(Decision("single_slice", step=single_step[0], source=single_step[1]))
    tol = options.tolerances
    try:
        stack = geo.analyze_stack(placement.positions[first_volume], placement.orientation,
                                  placement.pixel_spacing, single_slice_step=single_step,
                                  spacing_rtol=tol.spacing_rtol,
                                  orientation_tolerance=tol.orientation_tolerance)  # fmt: skip
    except GeometryError as exc:
        if exc.files:
            raise
        suspect = exc._data.get("suspect")
        if suspect is None:
            raise type(exc)(f"series {name}: {exc.message}", files=placement.files, uid=uid,
                            **exc._data) from None  # fmt: skip
        odd = placement.records[int(first_volume[suspect])].path
        raise type(exc)(f"series {name}: {exc.message}; most likely {odd}, far from all the others "
                        f"(move it out of the folder to load the rest)", files=[odd], uid=uid,
                        **exc._data) from None  # fmt: skip
    return Layout(place=placement, dropped=tuple(dropped), repeats=repeats,
                  unselected=tuple(unselected), stack=stack, decisions=tuple(decisions),
                  warnings=tuple(notes))  # fmt: skip
