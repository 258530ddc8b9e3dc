"""Test-data factory for multi-frame objects: Enhanced MR/CT Image Storage written by hand.

:func:`write_enhanced` writes one series of Enhanced (or Legacy Converted Enhanced) MR/CT objects
with pydicom, functional groups and all, and returns a :class:`WrittenEnhanced` holding the ground
truth per stored frame (position, volume, slice, slope, stored pixels) in storage order, plus
:meth:`WrittenEnhanced.volume`, the array fastvol should return: volumes ascending by the value
of the dimension that tells them apart, slices descending along the normal (highdicom's order).

:func:`write_legacy_converted` turns a classic series written by :func:`factory.write_series`
into one Legacy Converted Enhanced object with highdicom (an independent writer of the
functional groups).

Frames are generated as volume ``v`` (0-based, in the order given by ``dimension_values``) times
slice ``k`` (slice ``k`` at ``origin + k * step * normal``); "generated frame ``v * n_slices + k``"
is how ``drop_frames`` and per-frame ``slopes`` count them. Stored order is the generated order,
shuffled within each file when asked.

Encoding follows :mod:`factory`: native syntaxes by pydicom; RLE Lossless and JPEG-LS through
pydicom's encoders, one frame at a time; JPEG (lossless), JPEG 2000 and HTJ2K through imagecodecs
(both by :func:`factory.encode_frame`); pixel data and files by :mod:`fastvol.sample`.
Encapsulated frames always get a Basic Offset Table, and ``fragments_per_frame > 1`` splits each
codestream so that only the table tells the frames apart. A syntax nothing installed can encode
raises :class:`factory.FactoryUnavailable`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.tag import Tag
from pydicom.uid import (
    UID,
    EnhancedCTImageStorage,
    EnhancedMRImageStorage,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    LegacyConvertedEnhancedCTImageStorage,
    LegacyConvertedEnhancedMRImageStorage,
    generate_uid,
)

import factory as fx
from fastvol.sample import set_pixel_data, write_dicom

__all__ = [
    "DIMENSIONS",
    "ENHANCED_SYNTAXES",
    "WrittenEnhanced",
    "write_enhanced",
    "write_legacy_converted",
]

#: Values of ``dimension`` (``None``: one volume, spatial dimensions only).
DIMENSIONS = ("TemporalPositionIndex", "EchoTime", "Diffusion", None)
#: Syntaxes :func:`write_enhanced` can write (when their encoders are installed).
ENHANCED_SYNTAXES: tuple[str, ...] = (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
) + fx.COMPRESSED_LOSSLESS
SOP_CLASSES = {
    ("CT", False): EnhancedCTImageStorage,
    ("MR", False): EnhancedMRImageStorage,
    ("CT", True): LegacyConvertedEnhancedCTImageStorage,
    ("MR", True): LegacyConvertedEnhancedMRImageStorage,
}
#: Diffusion volumes written by default: b = 0, then three directions per shell.
DEFAULT_DIFFUSION: tuple[tuple[float, tuple[float, float, float] | None], ...] = (
    (0.0, None),
    (1000.0, (1.0, 0.0, 0.0)),
    (1000.0, (0.0, 1.0, 0.0)),
    (1000.0, (0.0, 0.0, 1.0)),
    (2000.0, (1.0, 0.0, 0.0)),
    (2000.0, (0.0, 1.0, 0.0)),
    (2000.0, (0.0, 0.0, 1.0)),
)
#: Echo time (ms) written in the shared MR Echo group when echoes are not the dimension.
SHARED_ECHO_TIME = 4.5



# ------------------------------------------------------------------------------ ground truth


@dataclass
class WrittenEnhanced:
    """What :func:`write_enhanced` wrote: one entry per stored frame, in storage order.

    Attributes
    ----------
    folder
        Folder written to.
    paths
        The files, in write order (one, or one per volume).
    orientation
        ``(6,)`` ImageOrientationPatient as written.
    pixel_spacing
        ``(row spacing, column spacing)`` as written, mm.
    dimension
        What tells volumes apart (``None`` for one volume).
    dimension_values
        Per generated volume ``v``: TemporalPositionIndex (int), EffectiveEchoTime (ms), or
        ``(b-value, gradient or None)``.
    file_index, frame_in_file
        ``(F,)`` file (index into ``paths``) and 0-based frame number within it, per frame.
    positions
        ``(F, 3)`` ImagePositionPatient per frame (parsed back from the DS strings), mm.
    slice_index, volume_index
        ``(F,)`` generated slice ``k`` and generated volume ``v`` of each frame.
    slopes, intercepts
        ``(F,)`` RescaleSlope and RescaleIntercept per frame, as written.
    stored
        ``(F, rows, columns)`` stored values.
    n_slices, n_volumes
        Generated slices per volume and volumes (before ``drop_frames``).
    """

    folder: str
    paths: list[str]
    orientation: np.ndarray
    pixel_spacing: tuple[float, float]
    dimension: str | None
    dimension_values: list[Any]
    file_index: np.ndarray
    frame_in_file: np.ndarray
    positions: np.ndarray
    slice_index: np.ndarray
    volume_index: np.ndarray
    slopes: np.ndarray
    intercepts: np.ndarray
    stored: np.ndarray
    n_slices: int
    n_volumes: int
    transfer_syntax: str
    series_uid: str
    sop_uids: list[str]

    @property
    def normal(self) -> np.ndarray:
        """Unit slice normal, ``row direction x column direction`` (LPS)."""
        return fx._unit_normal(self.orientation)

    def _sort_key(self, v: int) -> Any:
        value = self.dimension_values[v] if self.dimension_values else 0
        if self.dimension == "Diffusion":
            b, gradient = value
            return (b, gradient or ())
        return value

    def complete_volumes(self) -> list[int]:
        """Generated volumes with every slice written, ascending by their dimension value.

        With one volume it counts as complete even when slices were dropped (a gap, not an
        incomplete volume).
        """
        if self.n_volumes == 1:
            return [0]
        complete = [
            v for v in range(self.n_volumes) if np.sum(self.volume_index == v) == self.n_slices
        ]
        return sorted(complete, key=self._sort_key)

    def order(self) -> np.ndarray:
        """Indices into the per-frame arrays, in fastvol's order: volume (ascending by the
        dimension value), then slice (descending along the normal). Frames of incomplete volumes
        are left out."""
        rank = {v: r for r, v in enumerate(self.complete_volumes())}
        keep = np.array([i for i, v in enumerate(self.volume_index) if int(v) in rank], dtype=int)
        distance = self.positions[keep] @ self.normal
        ranks = np.array([rank[int(v)] for v in self.volume_index[keep]], dtype=int)
        return keep[np.lexsort((-distance, ranks))]

    def sorted_positions(self) -> np.ndarray:
        """``(n, 3)`` positions of the first output volume's slices, in output order."""
        order = self.order()
        first = self.complete_volumes()[0]
        return self.positions[order[self.volume_index[order] == first]]

    def volume(self, *, rescaled: bool = True) -> np.ndarray:
        """Expected array: ``(n, rows, columns)``, or ``(volumes, n, rows, columns)`` when more
        than one complete volume remains.

        Parameters
        ----------
        rescaled
            Apply each frame's slope and intercept (float64); otherwise the stored values.
        """
        order = self.order()
        data = self.stored[order]
        if rescaled:
            data = data * self.slopes[order][:, None, None] + self.intercepts[order][:, None, None]
        volumes = len(self.complete_volumes())
        return data if volumes <= 1 else data.reshape((volumes, -1) + data.shape[1:])

    def values_per_volume(self) -> list[Any]:
        """Dimension value of each output volume, in output order."""
        return [self.dimension_values[v] for v in self.complete_volumes()]


# ------------------------------------------------------------------------------------ writer


def _broadcast(values: float | Sequence[float] | np.ndarray, total: int, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=float).reshape(-1)
    if array.size == 1:
        return np.full(total, array[0])
    if array.size == total:
        return array
    raise ValueError(f"{name}: expected a scalar or one value per generated frame ({total})")


def _default_values(dimension: str | None, n_volumes: int) -> list[Any]:
    if dimension is None:
        if n_volumes != 1:
            raise ValueError("dimension=None writes one volume; pass a dimension for more")
        return [None]
    if dimension == "TemporalPositionIndex":
        return list(range(1, n_volumes + 1))
    if dimension == "EchoTime":
        return [10.0 * (v + 1) for v in range(n_volumes)]
    if n_volumes > len(DEFAULT_DIFFUSION):
        raise ValueError(f"at most {len(DEFAULT_DIFFUSION)} default diffusion volumes")
    return list(DEFAULT_DIFFUSION[:n_volumes])


def _seq(**attributes: Any) -> list[Dataset]:
    item = Dataset()
    for keyword, value in attributes.items():
        setattr(item, keyword, value)
    return [item]


def _dimension_index(dimension: str | None, org_uid: str) -> list[Dataset]:
    """DimensionIndexSequence: stack, in-stack position, then the volume dimension."""
    pointers: list[tuple[str, str, str]] = [
        ("StackID", "FrameContentSequence", "Stack ID"),
        ("InStackPositionNumber", "FrameContentSequence", "In-Stack Position Number"),
    ]
    if dimension == "TemporalPositionIndex":
        pointers.append(("TemporalPositionIndex", "FrameContentSequence", "Temporal Position"))
    elif dimension == "EchoTime":
        pointers.append(("EffectiveEchoTime", "MREchoSequence", "Effective Echo Time"))
    elif dimension == "Diffusion":
        pointers.append(("DiffusionBValue", "MRDiffusionSequence", "Diffusion b-value"))
        pointers.append(
            ("DiffusionGradientOrientation", "DiffusionGradientDirectionSequence", "Gradient")
        )
    items = []
    for keyword, group, label in pointers:
        item = Dataset()
        item.DimensionOrganizationUID = org_uid
        item.DimensionIndexPointer = Tag(keyword)
        item.FunctionalGroupPointer = Tag(group)
        item.DimensionDescriptionLabel = label
        items.append(item)
    return items


def write_enhanced(
    folder: str | os.PathLike[str],
    *,
    n_slices: int = 6,
    n_volumes: int = 1,
    rows: int = 12,
    columns: int = 10,
    orientation: Sequence[float] = (1, 0, 0, 0, 1, 0),
    origin: Sequence[float] = (0, 0, 0),
    pixel_spacing: Sequence[float] = (0.8, 0.9),
    step: float = 2.0,
    dimension: str | None = None,
    dimension_values: Sequence[Any] | None = None,
    index_only: bool = False,
    shuffle_frames: int | bool = False,
    drop_frames: Sequence[int | tuple[int, int]] = (),
    slopes: float | Sequence[float] | np.ndarray = 1.0,
    intercepts: float | Sequence[float] | np.ndarray = 0.0,
    transfer_syntax: str | None = None,
    fragments_per_frame: int = 1,
    files: int = 1,
    modality: str = "MR",
    legacy_converted: bool = False,
    bits_allocated: int = 16,
    bits_stored: int | None = None,
    signed: bool = True,
    seed: int = 0,
    file_names: str = "EN{:04d}.dcm",
    undefined_lengths: bool = False,
    edit_frame: Callable[[int, Dataset], None] | None = None,
    edit_shared: Callable[[Dataset], None] | None = None,
    edit_dataset: Callable[[Dataset], None] | None = None,
) -> WrittenEnhanced:
    """Write one Enhanced MR/CT series (one multi-frame file, or one per volume).

    Parameters
    ----------
    folder
        Created if missing.
    n_slices, n_volumes
        Slices per volume and volumes (before ``drop_frames``).
    orientation, origin, pixel_spacing, step
        Geometry: slice ``k`` at ``origin + k * step * normal`` (``normal = row x column``;
        a negative step stacks against it). Written as DS strings; ground truth holds what
        they parse back to.
    dimension
        What tells the volumes apart: ``"TemporalPositionIndex"`` (FrameContentSequence),
        ``"EchoTime"`` (MREchoSequence.EffectiveEchoTime, MR only), ``"Diffusion"``
        (MRDiffusionSequence: b-value and gradient direction, MR only), or ``None`` (one
        volume). Each also becomes an entry of the DimensionIndexSequence, after StackID and
        InStackPositionNumber.
    dimension_values
        Value per generated volume (temporal index, echo time in ms, ``(b, gradient or None)``);
        default ascending (1, 2, ...; 10, 20, ... ms; :data:`DEFAULT_DIFFUSION`). Give them out
        of order to check that volumes are sorted by value, not by storage.
    index_only
        Write the dimension only as DimensionIndexValues (ranks of the values), leaving out
        TemporalPositionIndex / MREchoSequence / MRDiffusionSequence in the frames: only the
        non-spatial DimensionIndexValues then tell the volumes apart.
    shuffle_frames
        Store the frames of each file in random order: ``True`` uses ``seed``, an ``int`` is its
        own seed.
    drop_frames
        Generated frames not written: flat ``v * n_slices + k`` or ``(v, k)`` pairs.
    slopes, intercepts
        RescaleSlope/RescaleIntercept: a scalar (shared PixelValueTransformationSequence) or one
        per generated frame (per-frame groups, whenever they differ).
    transfer_syntax
        Default explicit VR little endian; see :data:`ENHANCED_SYNTAXES`.
    fragments_per_frame
        Split each encapsulated frame into this many fragments (the Basic Offset Table then is
        the only reliable way to find the frames).
    files
        1 (every frame in one file) or ``n_volumes`` (one volume per file, as Siemens XA writes
        4D series); same SeriesInstanceUID, distinct SOPInstanceUIDs and InstanceNumbers.
    modality, legacy_converted
        ``"MR"`` or ``"CT"``; Legacy Converted Enhanced SOP classes when ``legacy_converted``.
    bits_allocated, bits_stored, signed
        Pixel format (monochrome).
    seed
        Seeds pixel values, shuffling and UIDs.
    file_names
        ``str.format`` pattern for the file names (``k = 1, 2, ...`` in write order).
    undefined_lengths
        Write every sequence and item with undefined length (delimiters), as Siemens XA and
        dcmqi do; pydicom's default is defined lengths.
    edit_frame, edit_shared, edit_dataset
        Called with (stored frame index within its file, per-frame group item), with the shared
        group item, and with the data set, before the file is written: to move groups between
        shared and per-frame, drop or empty them, add others. The ground truth does not follow
        such edits (readers' equality tests need none).
    """
    folder = os.fspath(folder)
    os.makedirs(folder, exist_ok=True)
    ts = UID(transfer_syntax or ExplicitVRLittleEndian)
    if ts not in ENHANCED_SYNTAXES:
        raise fx.FactoryUnavailable(f"write_enhanced does not write transfer syntax {ts}")
    reason = fx._encoder_reason(ts)
    if reason is not None:
        raise fx.FactoryUnavailable(reason)
    if modality not in ("MR", "CT"):
        raise ValueError(f"modality must be 'MR' or 'CT', not {modality!r}")
    if dimension not in DIMENSIONS:
        raise ValueError(f"dimension must be one of {DIMENSIONS}")
    if dimension in ("EchoTime", "Diffusion") and modality != "MR":
        raise ValueError(f"dimension {dimension!r} needs modality 'MR'")
    if files not in (1, n_volumes):
        raise ValueError(f"files must be 1 or n_volumes ({n_volumes})")
    if index_only and dimension is None:
        raise ValueError("index_only needs a dimension")
    if fragments_per_frame > 1 and ts in (ExplicitVRLittleEndian, ImplicitVRLittleEndian):
        raise ValueError("fragments_per_frame needs an encapsulated transfer syntax")
    values = list(dimension_values) if dimension_values is not None else _default_values(
        dimension, n_volumes
    )
    if len(values) != n_volumes:
        raise ValueError(f"dimension_values: expected {n_volumes} values, got {len(values)}")
    bits_stored = bits_allocated if bits_stored is None else bits_stored
    dtype = np.dtype(f"{'i' if signed else 'u'}{bits_allocated // 8}")
    rng = np.random.default_rng(seed)
    total = n_slices * n_volumes
    slope_of = np.array([float(fx._ds(s)) for s in _broadcast(slopes, total, "slopes")])
    intercept_of = np.array([float(fx._ds(s)) for s in _broadcast(intercepts, total, "intercepts")])
    per_frame_rescale = np.ptp(slope_of) > 0 or np.ptp(intercept_of) > 0
    dropped = {d if isinstance(d, (int, np.integer)) else d[0] * n_slices + d[1] for d in drop_frames}
    if any(not 0 <= d < total for d in dropped):
        raise ValueError(f"drop_frames must lie in [0, {total})")

    # Geometry as the DS strings hold it.
    orientation_ds = [fx._ds(v) for v in orientation]
    orient = np.array([float(v) for v in orientation_ds])
    spacing_ds = [fx._ds(v) for v in pixel_spacing]
    normal = fx._unit_normal(orient)
    generated = np.asarray(origin, dtype=float) + np.arange(n_slices)[:, None] * (step * normal)
    position_ds = [[fx._ds(v) for v in p] for p in generated]
    positions = np.array([[float(v) for v in p] for p in position_ds])
    pixels = fx._values(rng, (total, rows, columns), bits_stored, signed, dtype)

    # Ranks of the dimension values, for DimensionIndexValues (1-based).
    def rank_of(key: Any) -> dict[Any, int]:
        return {value: i + 1 for i, value in enumerate(sorted(set(key)))}

    if dimension == "Diffusion":
        b_rank = rank_of([b for b, _ in values])
        g_rank = rank_of([g or () for _, g in values])
    elif dimension is not None:
        v_rank = rank_of(values)

    entropy = repr((n_slices, n_volumes, rows, columns, tuple(orientation_ds), dimension,
                    repr(values), str(ts), files, modality, legacy_converted, seed))  # fmt: skip
    study_uid = str(generate_uid(entropy_srcs=[entropy, "study"]))
    series_uid = str(generate_uid(entropy_srcs=[entropy, "series"]))
    frame_uid = str(generate_uid(entropy_srcs=[entropy, "frame"]))
    org_uid = str(generate_uid(entropy_srcs=[entropy, "dimension organization"]))

    file_groups = (
        [list(range(total))]
        if files == 1
        else [list(range(v * n_slices, (v + 1) * n_slices)) for v in range(n_volumes)]
    )
    shuffle_seed = None if shuffle_frames is False or shuffle_frames is None else (
        seed if shuffle_frames is True else int(shuffle_frames))  # fmt: skip
    shuffler = np.random.default_rng(shuffle_seed) if shuffle_seed is not None else None

    paths: list[str] = []
    sop_uids: list[str] = []
    truth: dict[str, list[Any]] = {key: [] for key in ("file", "frame", "generated")}
    for f, group in enumerate(file_groups):
        written = [g for g in group if g not in dropped]
        if shuffler is not None:
            written = [written[i] for i in shuffler.permutation(len(written))]
        if not written:
            raise ValueError(f"file {f} would hold no frames")
        sop_uid = str(generate_uid(entropy_srcs=[entropy, "instance", str(f)]))
        ds = Dataset()
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL", "NONE"]
        ds.SOPClassUID = SOP_CLASSES[(modality, legacy_converted)]
        ds.SOPInstanceUID = sop_uid
        ds.StudyDate = ds.SeriesDate = ds.ContentDate = "20240115"
        ds.StudyTime = ds.ContentTime = "093000"
        ds.AcquisitionDateTime = "20240115093000"
        ds.Modality = modality
        ds.Manufacturer = "fastvol enhanced factory"
        ds.SeriesDescription = "enhanced factory series"
        ds.PatientName = "Factory^Enhanced"
        ds.PatientID = "FACTORY"
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.SeriesNumber = 5
        ds.InstanceNumber = f + 1
        ds.FrameOfReferenceUID = frame_uid
        ds.ContentQualification = "PRODUCT"
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows, ds.Columns = rows, columns
        ds.NumberOfFrames = len(written)
        ds.BitsAllocated = bits_allocated
        ds.BitsStored = bits_stored
        ds.HighBit = bits_stored - 1
        ds.PixelRepresentation = int(signed)
        ds.BurnedInAnnotation = "NO"
        ds.DimensionOrganizationSequence = _seq(DimensionOrganizationUID=org_uid)
        ds.DimensionIndexSequence = _dimension_index(dimension, org_uid)
        if dimension == "TemporalPositionIndex":
            ds.NumberOfTemporalPositions = n_volumes

        shared = Dataset()
        shared.PixelMeasuresSequence = _seq(
            PixelSpacing=spacing_ds, SliceThickness=fx._ds(abs(step)),
            SpacingBetweenSlices=fx._ds(abs(step)),
        )  # fmt: skip
        shared.PlaneOrientationSequence = _seq(ImageOrientationPatient=orientation_ds)
        rescale_type = "HU" if modality == "CT" else "US"
        if not per_frame_rescale:
            shared.PixelValueTransformationSequence = _seq(
                RescaleIntercept=fx._ds(intercept_of[0]), RescaleSlope=fx._ds(slope_of[0]),
                RescaleType=rescale_type,
            )  # fmt: skip
        if modality == "MR" and dimension != "EchoTime":
            shared.MREchoSequence = _seq(EffectiveEchoTime=SHARED_ECHO_TIME)
        ds.SharedFunctionalGroupsSequence = [shared]

        per_frame = []
        for g in written:
            v, k = divmod(g, n_slices)
            item = Dataset()
            content = Dataset()
            content.StackID = "1"
            content.InStackPositionNumber = k + 1
            index = [1, k + 1]
            if dimension == "Diffusion":
                b, gradient = values[v]
                index += [b_rank[b], g_rank[gradient or ()]]
            elif dimension is not None:
                index.append(v_rank[values[v]])
            if index_only:
                pass  # the dimension lives in DimensionIndexValues alone
            elif dimension == "TemporalPositionIndex":
                content.TemporalPositionIndex = int(values[v])
            elif dimension == "EchoTime":
                item.MREchoSequence = _seq(EffectiveEchoTime=float(values[v]))
            elif dimension == "Diffusion":
                diffusion = Dataset()
                diffusion.DiffusionBValue = float(b)
                diffusion.DiffusionDirectionality = "NONE" if gradient is None else "DIRECTIONAL"
                if gradient is not None:
                    diffusion.DiffusionGradientDirectionSequence = _seq(
                        DiffusionGradientOrientation=[float(x) for x in gradient]
                    )
                item.MRDiffusionSequence = [diffusion]
            content.DimensionIndexValues = index
            item.FrameContentSequence = [content]
            item.PlanePositionSequence = _seq(ImagePositionPatient=position_ds[k])
            if per_frame_rescale:
                item.PixelValueTransformationSequence = _seq(
                    RescaleIntercept=fx._ds(intercept_of[g]), RescaleSlope=fx._ds(slope_of[g]),
                    RescaleType=rescale_type,
                )  # fmt: skip
            if edit_frame is not None:
                edit_frame(len(per_frame), item)
            per_frame.append(item)
        ds.PerFrameFunctionalGroupsSequence = per_frame
        if edit_shared is not None:
            edit_shared(shared)
        if edit_dataset is not None:
            edit_dataset(ds)
        if undefined_lengths:
            _undefined_lengths(ds)

        frames = pixels[written]
        if ts in (ExplicitVRLittleEndian, ImplicitVRLittleEndian):
            set_pixel_data(ds, frames)
        else:
            encoded = [fx.encode_frame(ts, frame, bits_stored) for frame in frames]
            set_pixel_data(ds, encoded, fragments_per_frame=fragments_per_frame, has_bot=True)
        path = write_dicom(os.path.join(folder, file_names.format(f + 1)), ds, ts)
        paths.append(path)
        sop_uids.append(sop_uid)
        truth["file"] += [f] * len(written)
        truth["frame"] += list(range(len(written)))
        truth["generated"] += written

    generated_index = np.array(truth["generated"], dtype=int)
    return WrittenEnhanced(
        folder=folder,
        paths=paths,
        orientation=orient,
        pixel_spacing=(float(spacing_ds[0]), float(spacing_ds[1])),
        dimension=dimension,
        dimension_values=values,
        file_index=np.array(truth["file"], dtype=int),
        frame_in_file=np.array(truth["frame"], dtype=int),
        positions=positions[generated_index % n_slices],
        slice_index=generated_index % n_slices,
        volume_index=generated_index // n_slices,
        slopes=slope_of[generated_index],
        intercepts=intercept_of[generated_index],
        stored=pixels[generated_index],
        n_slices=n_slices,
        n_volumes=n_volumes,
        transfer_syntax=str(ts),
        series_uid=series_uid,
        sop_uids=sop_uids,
    )


def _undefined_lengths(ds: Dataset) -> None:
    """Mark every sequence and item of ``ds`` (nested ones too) to be written with undefined length."""
    for elem in ds:
        if elem.VR == "SQ":
            elem.is_undefined_length = True
            for item in elem.value:
                item.is_undefined_length_sequence_item = True
                _undefined_lengths(item)


# ------------------------------------------------------------------------- legacy conversion


def write_legacy_converted(
    classic: fx.WrittenSeries,
    path: str | os.PathLike[str],
    *,
    modality: str = "CT",
) -> str:
    """Convert a classic series (from :func:`factory.write_series`) into one Legacy Converted
    Enhanced CT/MR object with highdicom, and write it to ``path``.

    Raises
    ------
    factory.FactoryUnavailable
        highdicom is missing or cannot convert here (its message said).
    """
    try:
        import highdicom as hd
        from highdicom.legacy import (
            LegacyConvertedEnhancedCTImage,
            LegacyConvertedEnhancedMRImage,
        )
    except ImportError as exc:
        raise fx.FactoryUnavailable(f"highdicom is not installed ({exc})") from exc
    converter = {"CT": LegacyConvertedEnhancedCTImage, "MR": LegacyConvertedEnhancedMRImage}[
        modality
    ]
    datasets = [
        pydicom.dcmread(p)
        for p, dup, loc in zip(classic.paths, classic.is_duplicate, classic.is_localizer)
        if not (dup or loc)
    ]
    try:
        converted = converter(
            datasets,
            series_instance_uid=hd.UID(),
            series_number=99,
            sop_instance_uid=hd.UID(),
            instance_number=1,
        )
    except Exception as exc:  # highdicom refuses what it cannot convert
        raise fx.FactoryUnavailable(
            f"highdicom cannot convert: {type(exc).__name__}: {exc}"
        ) from exc
    path = os.fspath(path)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    converted.save_as(path, enforce_file_format=True)
    return path
