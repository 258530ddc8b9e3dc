"""Test-data factory: classic single-frame DICOM series with chosen geometry, syntax and defects.

:func:`write_series` writes one series to a folder and returns a :class:`WrittenSeries` holding
the ground truth (positions as written, stored pixel values, rescale, UIDs) in file-write order,
so tests compare what fastvol loads against what was written, not against another reader.

Small helpers make the defects a loader meets in the wild: :func:`truncate`,
:func:`short_pixel_data`, :func:`declare_huge`, :func:`write_non_dicom`,
:func:`write_no_pixel_object`, :func:`write_dicomdir_like`.

Headers and files
-----------------
Each image's data set comes from :func:`fastvol.sample.ct_dataset` (the one writer of CT image
headers, which the package's sample series and the benchmarks use too) with the factory's few
descriptive elements (:data:`FACTORY_HEADER`); :func:`fastvol.sample.set_pixel_data` and
:func:`fastvol.sample.dicom_bytes` add the pixels and encode the file. The factory adds the
geometry, ordering, repeats and defects on top.

Encoding
--------
Native syntaxes (implicit/explicit VR little endian, explicit VR big endian, deflated) are written
by pydicom. RLE Lossless and JPEG-LS Lossless use pydicom's own encoders (pyjpegls as the
JPEG-LS plugin). JPEG Baseline, JPEG Lossless (process 14, SV1 and predictor 6) and HTJ2K
Lossless have no pydicom encoder, and pydicom's JPEG 2000 encoder (pylibjpeg-openjpeg) fixes six
wavelet resolutions, so it refuses images under 32 pixels a side: these four are encoded with
imagecodecs (resolutions fitted to the image), then encapsulated; :func:`encode_frame` encodes
one frame either way. A syntax no installed package can encode raises :class:`FactoryUnavailable`;
:func:`require` turns that into ``pytest.skip``.

JPEG Baseline is lossy: ``WrittenSeries.stored`` then holds the values decoded (imagecodecs,
libjpeg-turbo) from what was written, and other decoders may differ from it by a few units
(``WrittenSeries.tolerance``); compare with that tolerance.

UIDs are derived from ``seed`` and the other arguments, so a call writes the same bytes every
run; two calls with identical arguments give identical UIDs (pass ``series_uid`` or another
``seed`` to write two distinct series with otherwise equal arguments).
"""

from __future__ import annotations

import functools
import os
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    HTJ2KLossless,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    RLELossless,
    generate_uid,
)
from pydicom.valuerep import format_number_as_ds

from fastvol.sample import (
    NATIVE_SYNTAXES,
    ct_dataset,
    dicom_bytes,
    set_pixel_data,
    write_dicom,
)
from fastvol.sample import to_ds as _ds
from fastvol.sample import unit_normal as _unit_normal

__all__ = [
    "ALL_SYNTAXES",
    "COMPRESSED_SYNTAXES",
    "FactoryUnavailable",
    "LOSSLESS_SYNTAXES",
    "LOSSY_SYNTAXES",
    "NATIVE_SYNTAXES",
    "REPEAT_TAGS",
    "WrittenSeries",
    "can_encode",
    "declare_huge",
    "encode_frame",
    "require",
    "short_pixel_data",
    "truncate",
    "write_dicomdir_like",
    "write_no_pixel_object",
    "write_non_dicom",
    "write_series",
]

COMPRESSED_LOSSLESS: tuple[str, ...] = (
    RLELossless,
    JPEGLosslessSV1,
    JPEGLossless,
    JPEGLSLossless,
    JPEG2000Lossless,
    HTJ2KLossless,
)
LOSSLESS_SYNTAXES: tuple[str, ...] = NATIVE_SYNTAXES + COMPRESSED_LOSSLESS
LOSSY_SYNTAXES: tuple[str, ...] = (JPEGBaseline8Bit,)
COMPRESSED_SYNTAXES: tuple[str, ...] = COMPRESSED_LOSSLESS + LOSSY_SYNTAXES
ALL_SYNTAXES: tuple[str, ...] = LOSSLESS_SYNTAXES + LOSSY_SYNTAXES

#: Tags that tell repeated positions apart, and the value written for repeat ``r`` (0-based).
REPEAT_TAGS: dict[str, Callable[[int], Any]] = {
    "TemporalPositionIdentifier": lambda r: r + 1,
    "TriggerTime": lambda r: format_number_as_ds(100.0 * r),
    "AcquisitionNumber": lambda r: r + 1,
    "EchoNumbers": lambda r: r + 1,
}
#: Orientation of the localizer image :func:`write_series` adds on request (coronal).
LOCALIZER_ORIENTATION = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)
#: Decoders may differ from libjpeg-turbo by this much on JPEG Baseline (stored units).
LOSSY_TOLERANCE = 4
#: JPEG Lossless predictor used for 1.2.840.10008.1.2.4.57 (anything but 1, which is .70).
NON_SV1_PREDICTOR = 6
#: Syntaxes encoded with imagecodecs (monochrome only), the others through pydicom.
IMAGECODECS_SYNTAXES = (
    JPEGBaseline8Bit,
    JPEGLosslessSV1,
    JPEGLossless,
    JPEG2000Lossless,
    HTJ2KLossless,
)
#: Descriptive elements of every file :func:`write_series` writes (plus KVP for CT).
FACTORY_HEADER: dict[str, Any] = {
    "StudyDate": "20240115",
    "SeriesDate": "20240115",
    "StudyTime": "093000",
    "Manufacturer": "fastvol factory",
    "SeriesDescription": "factory series",
    "PatientName": "Factory^Test",
    "PatientID": "FACTORY",
}
BASIC_TEXT_SR = UID("1.2.840.10008.5.1.4.1.1.88.11")
MEDIA_STORAGE_DIRECTORY = UID("1.2.840.10008.1.3.10")


class FactoryUnavailable(Exception):
    """The factory cannot write what was asked with the installed packages (skip the test)."""


# ----------------------------------------------------------------------------------- encoders


@functools.cache
def _imagecodecs_reason(uid: str) -> str | None:
    """Why imagecodecs cannot encode ``uid`` here, or None when it can (tried on a tiny image)."""
    try:
        import imagecodecs
    except ImportError:
        return "imagecodecs is not installed"
    probe = np.arange(16, dtype=np.uint16).reshape(4, 4)
    try:
        if uid == HTJ2KLossless:
            imagecodecs.htj2k_encode(probe, reversible=True)
        elif uid == JPEG2000Lossless:
            imagecodecs.jpeg2k_encode(probe, level=0, codecformat="J2K", reversible=True)
        elif uid in (JPEGLosslessSV1, JPEGLossless):
            imagecodecs.jpeg8_encode(probe, lossless=True, predictor=1, bitspersample=12)
        elif uid == JPEGBaseline8Bit:
            imagecodecs.jpeg8_encode(probe.astype(np.uint8), level=95)
    except Exception as exc:  # any failure means: not usable here
        return f"imagecodecs cannot encode {UID(uid).name}: {type(exc).__name__}: {exc}"
    return None


def _encoder_reason(uid: str) -> str | None:
    """Why the factory cannot write ``uid``, or None when it can."""
    if uid in NATIVE_SYNTAXES:
        return None
    if uid in (RLELossless, JPEGLSLossless):
        from pydicom.pixels import get_encoder

        encoder = get_encoder(uid)
        if encoder.is_available:
            return None
        missing = (
            "; ".join(
                f"{name}: {', '.join(deps)}" for name, deps in encoder.missing_dependencies.items()
            )
            if isinstance(encoder.missing_dependencies, dict)
            else str(encoder.missing_dependencies)
        )
        return f"no pydicom encoder plugin for {UID(uid).name} ({missing})"
    if uid in IMAGECODECS_SYNTAXES:
        return _imagecodecs_reason(uid)
    return f"the factory has no encoder for transfer syntax {uid}"


def can_encode(transfer_syntax: str) -> bool:
    """True when :func:`write_series` can write ``transfer_syntax`` with the installed packages."""
    return _encoder_reason(transfer_syntax) is None


def require(transfer_syntax: str) -> None:
    """Skip the calling test (``pytest.skip``) when ``transfer_syntax`` cannot be written here."""
    reason = _encoder_reason(transfer_syntax)
    if reason is not None:
        import pytest

        pytest.skip(reason)


def encode_frame(
    transfer_syntax: str, frame: np.ndarray, bits_stored: int, photometric: str | None = None
) -> bytes:
    """One frame's codestream in ``transfer_syntax``, one of :data:`COMPRESSED_SYNTAXES`.

    ``frame``: true stored values, ``(rows, columns)`` or ``(rows, columns, samples)``; its dtype
    gives BitsAllocated and signedness. RLE Lossless and JPEG-LS Lossless go through pydicom's
    encoders (``photometric`` defaults to MONOCHROME2, or RGB for 3 samples), the others through
    imagecodecs (monochrome). Used by :func:`write_series`, ``factory_enhanced`` and the
    benchmarks; fails when the encoder is missing (check :func:`can_encode` first).
    """
    uid = UID(transfer_syntax)
    frame = np.ascontiguousarray(frame)
    if uid in (RLELossless, JPEGLSLossless):
        from pydicom.pixels import get_encoder

        samples = frame.shape[2] if frame.ndim == 3 else 1
        colour = {"planar_configuration": 0} if samples > 1 else {}
        return bytes(
            get_encoder(uid).encode(
                frame,
                rows=frame.shape[0],
                columns=frame.shape[1],
                samples_per_pixel=samples,
                bits_allocated=frame.dtype.itemsize * 8,
                bits_stored=bits_stored,
                pixel_representation=int(frame.dtype.kind == "i"),
                photometric_interpretation=photometric
                or ("RGB" if samples == 3 else "MONOCHROME2"),
                number_of_frames=1,
                **colour,
            )
        )
    import imagecodecs

    # Wavelet levels must fit the smallest side (2 ** (resolutions - 1) <= side).
    resolutions = max(1, min(6, int(np.log2(min(frame.shape[:2]))) + 1))
    if uid == HTJ2KLossless:
        return bytes(imagecodecs.htj2k_encode(frame, reversible=True, resolutions=resolutions))
    if uid == JPEG2000Lossless:
        return bytes(
            imagecodecs.jpeg2k_encode(
                frame,
                level=0,
                codecformat="J2K",
                reversible=True,
                bitspersample=bits_stored,
                resolutions=resolutions,
            )
        )
    if uid == JPEGBaseline8Bit:
        return bytes(imagecodecs.jpeg8_encode(frame, level=95))
    if uid not in (JPEGLosslessSV1, JPEGLossless):
        raise FactoryUnavailable(f"the factory has no encoder for transfer syntax {uid}")
    # JPEG Lossless codes the bit pattern of the BitsStored-bit two's complement value.
    pattern = (frame.astype(np.int64) & ((1 << bits_stored) - 1)).astype(
        np.uint8 if frame.dtype.itemsize == 1 else np.uint16
    )
    predictor = 1 if uid == JPEGLosslessSV1 else NON_SV1_PREDICTOR
    return bytes(
        imagecodecs.jpeg8_encode(
            pattern, lossless=True, predictor=predictor, bitspersample=bits_stored
        )
    )


# ------------------------------------------------------------------------------ ground truth


@dataclass
class WrittenSeries:
    """What :func:`write_series` wrote: one entry per file, in file-write order.

    Attributes
    ----------
    folder
        Folder written to.
    paths
        Files in write order (shuffled when asked); duplicates and the localizer included.
    positions
        ``(N, 3)`` ImagePositionPatient per file as written (parsed back from the DS strings), mm.
    orientation
        ``(6,)`` ImageOrientationPatient of the series as written (not the localizer's).
    pixel_spacing
        PixelSpacing as written: ``(row spacing, column spacing)``, mm.
    stored
        ``(N, rows, columns)`` (``(N, rows, columns, samples)`` for colour) true stored values:
        junk high bits removed and signed values sign-extended, dtype ``int``/``uint`` of
        BitsAllocated. For lossy syntaxes, the values decoded from what was written.
    slopes, intercepts
        ``(N,)`` RescaleSlope and RescaleIntercept per file as written.
    position_index
        ``(N,)`` index of the generated position each file sits at (``-1`` for the localizer).
    repeat_index
        ``(N,)`` repeat each file belongs to (0 when there are no repeats, and for the localizer).
    is_duplicate
        ``(N,)`` True for the second copy of a duplicated file.
    is_localizer
        ``(N,)`` True for the localizer image.
    """

    folder: str
    paths: list[str]
    positions: np.ndarray
    orientation: np.ndarray
    pixel_spacing: tuple[float, float]
    stored: np.ndarray
    slopes: np.ndarray
    intercepts: np.ndarray
    position_index: np.ndarray
    repeat_index: np.ndarray
    is_duplicate: np.ndarray
    is_localizer: np.ndarray
    instance_numbers: list[int | None]
    sop_uids: list[str]
    series_uid: str
    study_uid: str
    frame_of_reference_uid: str
    transfer_syntax: str
    bits_allocated: int
    bits_stored: int
    signed: bool
    lossy: bool

    @property
    def tolerance(self) -> int:
        """Largest difference a correct decoder may show against ``stored`` (0 when lossless)."""
        return LOSSY_TOLERANCE if self.lossy else 0

    @property
    def normal(self) -> np.ndarray:
        """Unit slice normal, ``row direction x column direction`` (LPS)."""
        return _unit_normal(self.orientation)

    @property
    def n_repeats(self) -> int:
        """Number of repeats (time points, echoes, ...) per position."""
        return int(self.repeat_index.max()) + 1 if len(self.repeat_index) else 0

    def order(self) -> np.ndarray:
        """Indices into the per-file arrays of the volume's slices, in volume order.

        Duplicates and the localizer are left out; slices are sorted by repeat, then by distance
        along :attr:`normal`, descending (highdicom's order: ``(slice, row, column)`` is
        right-handed).
        """
        keep = np.flatnonzero(~self.is_duplicate & ~self.is_localizer)
        distance = self.positions[keep] @ self.normal
        # Descending along the normal: slice 0 furthest along it, as highdicom.Volume orders.
        return keep[np.lexsort((-distance, self.repeat_index[keep]))]

    def sorted_positions(self) -> np.ndarray:
        """``(n, 3)`` positions of the slices along the normal (the first repeat's)."""
        order = self.order()
        return self.positions[order[self.repeat_index[order] == 0]]

    def volume(self, *, rescaled: bool = False) -> np.ndarray:
        """Ground-truth volume: ``(n, rows, columns)``, or ``(repeats, n, rows, columns)``.

        Parameters
        ----------
        rescaled
            Apply each file's slope and intercept (float64); otherwise the stored values.
        """
        order = self.order()
        data = self.stored[order]
        if rescaled:
            shape = (-1,) + (1,) * (data.ndim - 1)
            data = data * self.slopes[order].reshape(shape) + self.intercepts[order].reshape(shape)
        repeats = self.n_repeats
        return data if repeats <= 1 else data.reshape((repeats, -1) + data.shape[1:])


def _per_frame(
    values: float | Sequence[float] | np.ndarray, n: int, repeats: int, name: str
) -> np.ndarray:
    """Broadcast a scalar, ``(n,)`` or ``(repeats * n,)`` argument to ``(repeats, n)`` floats."""
    array = np.asarray(values, dtype=float).reshape(-1)
    if array.size == 1:
        return np.full((repeats, n), array[0])
    if array.size == n:
        return np.tile(array, (repeats, 1))
    if array.size == n * repeats:
        return array.reshape(repeats, n)
    raise ValueError(f"{name}: expected a scalar, {n} or {n * repeats} values, got {array.size}")


def _values(
    rng: np.random.Generator,
    shape: tuple[int, ...],
    bits_stored: int,
    signed: bool,
    dtype: np.dtype,
) -> np.ndarray:
    """Random true stored values spanning the BitsStored range, extremes included."""
    low, high = (
        (-(1 << (bits_stored - 1)), (1 << (bits_stored - 1)) - 1)
        if signed
        else (0, (1 << bits_stored) - 1)
    )
    values = rng.integers(low, high, size=shape, endpoint=True)
    flat = values.reshape(-1)
    if flat.size >= 2:
        flat[0], flat[1] = low, high
    return values.astype(dtype)


def _smooth_values(shape: tuple[int, ...], phase: float, dtype: np.dtype) -> np.ndarray:
    """Smooth 8-bit content for lossy JPEG (little ringing, so decoders agree closely)."""
    rows, columns = shape[:2]
    r, c = np.meshgrid(np.arange(rows), np.arange(columns), indexing="ij")
    image = 128 + 90 * np.sin(r / 5.0 + phase) * np.cos(c / 7.0 - phase)
    return (
        np.rint(image).astype(dtype).reshape(shape)
        if len(shape) == 2
        else np.repeat(np.rint(image).astype(dtype)[..., None], shape[2], axis=2)
    )


# ------------------------------------------------------------------------------------ writer


@dataclass
class _Item:
    position: np.ndarray
    orientation: np.ndarray
    values: np.ndarray
    slope: float
    intercept: float
    position_index: int
    repeat_index: int
    is_localizer: bool = False
    is_duplicate: bool = False


def write_series(
    folder: str | os.PathLike[str],
    *,
    n: int = 8,
    rows: int = 16,
    columns: int = 12,
    orientation: Sequence[float] = (1, 0, 0, 0, 1, 0),
    origin: Sequence[float] = (0, 0, 0),
    pixel_spacing: Sequence[float] = (0.8, 0.9),
    step: float = 2.0,
    step_vector: Sequence[float] | None = None,
    positions: Sequence[Sequence[float]] | np.ndarray | None = None,
    shuffle: bool | int = False,
    drop: Sequence[int] = (),
    duplicate: Sequence[int] = (),
    repeats: int = 1,
    repeat_tag: str | None = "TemporalPositionIdentifier",
    instance_numbers: str | None = "position",
    transfer_syntax: str | None = None,
    bits_allocated: int = 16,
    bits_stored: int | None = None,
    signed: bool = True,
    junk_high_bits: bool = False,
    slopes: float | Sequence[float] | np.ndarray = 1.0,
    intercepts: float | Sequence[float] | np.ndarray = 0.0,
    photometric: str | None = None,
    samples_per_pixel: int = 1,
    raw_dataset: bool = False,
    localizer: bool = False,
    modality: str = "CT",
    image_type: Sequence[str] = ("ORIGINAL", "PRIMARY", "AXIAL"),
    extra: Mapping[str, Any] | None = None,
    edit: Callable[[int, Dataset], None] | None = None,
    series_uid: str | None = None,
    study_uid: str | None = None,
    frame_of_reference_uid: str | None = None,
    seed: int = 0,
    file_names: str = "IM{:04d}",
) -> WrittenSeries:
    """Write one classic single-frame series and return the ground truth.

    Parameters
    ----------
    folder
        Created if missing; files are named ``file_names.format(k)`` for ``k = 1, 2, ...`` in
        write order, so a sorted directory listing is the write order.
    n, rows, columns
        Number of generated positions (before ``drop``) and image size.
    orientation
        ImageOrientationPatient, written as given (need not be unit length: for defect tests).
    origin
        Position of slice 0, mm LPS.
    pixel_spacing
        ``(row spacing, column spacing)`` in mm, written as PixelSpacing.
    step, step_vector
        Slice ``k`` sits at ``origin + k * step_vector``; ``step_vector`` defaults to
        ``step * normal`` (``normal = row x column``). Give a vector off the normal for gantry
        tilt or shear; a negative ``step`` stacks against the normal.
    positions
        Explicit ``(n, 3)`` positions; overrides ``n``, ``origin``, ``step`` and ``step_vector``.
    shuffle
        Write the files in random order: ``True`` uses ``seed``, an ``int`` is its own seed.
    drop
        Position indices not written (gaps).
    duplicate
        Position indices (first repeat) written a second time, byte for byte (same
        SOPInstanceUID), under another file name.
    repeats, repeat_tag
        Write every position ``repeats`` times with different pixels; ``repeat_tag`` (a key of
        :data:`REPEAT_TAGS`) tells them apart, ``None`` writes no distinguishing tag. The tag is
        written only when ``repeats > 1``.
    instance_numbers
        ``"position"`` (1, 2, ... along the generated positions, repeat after repeat),
        ``"reversed"``, ``"random"`` (a permutation) or ``None`` (InstanceNumber omitted).
    transfer_syntax
        One of :data:`ALL_SYNTAXES`; default explicit VR little endian (implicit for
        ``raw_dataset``). Raises :class:`FactoryUnavailable` when no installed package encodes it.
    bits_allocated, bits_stored, signed
        Pixel format; ``bits_stored`` defaults to ``bits_allocated``. HighBit is
        ``bits_stored - 1``. JPEG Baseline needs 8 bits unsigned.
    junk_high_bits
        Fill the bits above BitsStored with garbage in the written bytes (native syntaxes only);
        ``stored`` holds the true values.
    slopes, intercepts
        RescaleSlope/RescaleIntercept: a scalar, one per position (``n``), or one per frame
        (``repeats * n``, repeat-major). Written always; remove them with ``extra``.
    photometric, samples_per_pixel
        PhotometricInterpretation (default MONOCHROME2, or RGB for 3 samples) and SamplesPerPixel.
    raw_dataset
        Write the bare data set: no preamble, no File Meta Information (native syntaxes except
        deflated).
    localizer
        Add one LOCALIZER image (coronal, :data:`LOCALIZER_ORIENTATION`) to the same series,
        written first.
    modality, image_type
        Modality (sets the SOP class: CT, MR, PT, else Secondary Capture) and ImageType.
    extra
        Elements set on every file by keyword; a value of ``None`` deletes the element. Ground
        truth does not follow changes to geometry or pixel elements made here.
    edit
        Called as ``edit(i, dataset)`` for each file before it is encoded, ``i`` being its index in
        ``paths`` (the duplicate copy is not edited separately). Same caveat as ``extra``.
    series_uid, study_uid, frame_of_reference_uid
        Override the UIDs derived from ``seed`` and the other arguments.
    seed
        Seeds pixel values, shuffling and UIDs.
    file_names
        ``str.format`` pattern for the file names.

    Returns
    -------
    WrittenSeries
        Per-file ground truth in write order.
    """
    folder = os.fspath(folder)
    kwargs = dict(locals())  # the arguments, for UID entropy
    ts = UID(transfer_syntax or (ImplicitVRLittleEndian if raw_dataset else ExplicitVRLittleEndian))
    if ts not in ALL_SYNTAXES:
        raise FactoryUnavailable(f"the factory does not know transfer syntax {ts}")
    reason = _encoder_reason(ts)
    if reason is not None:
        raise FactoryUnavailable(reason)
    bits_stored = bits_allocated if bits_stored is None else bits_stored
    if bits_allocated not in (8, 16, 32) or not 1 <= bits_stored <= bits_allocated:
        raise ValueError(f"unsupported pixel format {bits_allocated=}, {bits_stored=}")
    if junk_high_bits and (bits_stored == bits_allocated or ts not in NATIVE_SYNTAXES):
        raise ValueError("junk_high_bits needs bits_stored < bits_allocated and a native syntax")
    if raw_dataset and ts not in (
        ImplicitVRLittleEndian,
        ExplicitVRLittleEndian,
        ExplicitVRBigEndian,
    ):
        raise ValueError("raw_dataset needs an uncompressed, non-deflated transfer syntax")
    if ts == JPEGBaseline8Bit and (bits_allocated, bits_stored, signed) != (8, 8, False):
        raise ValueError("JPEG Baseline needs bits_allocated=8, bits_stored=8, signed=False")
    if ts in IMAGECODECS_SYNTAXES and samples_per_pixel != 1:
        raise FactoryUnavailable(f"the factory encodes {ts.name} for monochrome images only")
    if ts in COMPRESSED_SYNTAXES and bits_allocated == 32 and ts != RLELossless:
        raise ValueError(f"{ts.name} cannot hold 32-bit pixels")
    if repeat_tag is not None and repeat_tag not in REPEAT_TAGS:
        raise ValueError(f"repeat_tag must be one of {sorted(REPEAT_TAGS)} or None")
    if instance_numbers not in ("position", "reversed", "random", None):
        raise ValueError(f"unknown instance_numbers {instance_numbers!r}")
    photometric = photometric or ("RGB" if samples_per_pixel == 3 else "MONOCHROME2")
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    dtype = np.dtype(f"{'i' if signed else 'u'}{bits_allocated // 8}")

    # Geometry, as the DS strings will hold it.
    orientation_ds = [_ds(v) for v in orientation]
    orient = np.array([float(v) for v in orientation_ds])
    spacing_ds = [_ds(v) for v in pixel_spacing]
    normal = _unit_normal(orient)
    if positions is not None:
        generated = np.asarray(positions, dtype=float).reshape(-1, 3)
        n = len(generated)
    else:
        vector = normal * step if step_vector is None else np.asarray(step_vector, dtype=float)
        generated = np.asarray(origin, dtype=float) + np.arange(n)[:, None] * vector
    generated = np.array([[float(_ds(v)) for v in p] for p in generated]).reshape(-1, 3)
    slope_grid = _per_frame(slopes, n, repeats, "slopes")
    intercept_grid = _per_frame(intercepts, n, repeats, "intercepts")
    if any(not 0 <= k < n for k in (*drop, *duplicate)):
        raise ValueError(f"drop/duplicate indices must be in [0, {n})")

    shape = (rows, columns) if samples_per_pixel == 1 else (rows, columns, samples_per_pixel)

    def frame(phase: float) -> np.ndarray:
        if ts in LOSSY_SYNTAXES:
            return _smooth_values(shape, phase, dtype)
        return _values(rng, shape, bits_stored, signed, dtype)

    items: list[_Item] = []
    if localizer:
        centre = generated.mean(axis=0) if n else np.zeros(3)
        items.append(
            _Item(
                position=centre,
                orientation=np.array(LOCALIZER_ORIENTATION),
                values=frame(-1.0),
                slope=1.0,
                intercept=0.0,
                position_index=-1,
                repeat_index=0,
                is_localizer=True,
            )
        )
    dropped, duplicated = set(drop), set(duplicate)
    for r in range(repeats):
        for k in range(n):
            if k in dropped:
                continue
            item = _Item(
                position=generated[k],
                orientation=orient,
                values=frame(0.37 * k + 1.1 * r),
                slope=float(_ds(slope_grid[r, k])),
                intercept=float(_ds(intercept_grid[r, k])),
                position_index=k,
                repeat_index=r,
            )
            items.append(item)
            if r == 0 and k in duplicated:
                items.append(_Item(**{**item.__dict__, "is_duplicate": True}))
    if shuffle is not False and shuffle is not None:
        order = np.random.default_rng(seed if shuffle is True else int(shuffle)).permutation(
            len(items)
        )
        items = [items[i] for i in order]

    # Instance numbers follow the generated positions, not the write order.
    ranked = sorted(
        {(it.repeat_index, it.position_index) for it in items if not it.is_localizer},
    )
    number_of = {key: i + 1 for i, key in enumerate(ranked)}
    if instance_numbers == "reversed":
        number_of = {key: len(ranked) - v + 1 for key, v in number_of.items()}
    elif instance_numbers == "random":
        perm = np.random.default_rng(seed + 1).permutation(len(ranked)) + 1
        number_of = {key: int(perm[v - 1]) for key, v in number_of.items()}

    entropy = repr(sorted((k, v) for k, v in kwargs.items() if k not in ("edit", "folder")))
    study_uid = study_uid or str(generate_uid(entropy_srcs=[entropy, "study"]))
    series_uid = series_uid or str(generate_uid(entropy_srcs=[entropy, "series"]))
    frame_uid = frame_of_reference_uid or str(generate_uid(entropy_srcs=[entropy, "frame"]))
    # What every image's data set shares (fastvol.sample.ct_dataset's arguments).
    series_args: dict[str, Any] = dict(
        pixel_spacing=spacing_ds,
        slice_thickness=abs(step if step_vector is None else float(np.linalg.norm(step_vector))),
        study_uid=study_uid,
        series_uid=series_uid,
        frame_uid=frame_uid,
        series_number=3,
        modality=modality,
        samples_per_pixel=samples_per_pixel,
        photometric=photometric,
        bits_allocated=bits_allocated,
        bits_stored=bits_stored,
        signed=signed,
    )

    # Encode each original once (duplicates reuse its bytes), then write in order.
    encoded: dict[tuple[int, int], tuple[bytes, str, np.ndarray]] = {}
    numbers: list[int | None] = []
    for i, item in enumerate(items):
        key = (item.repeat_index, item.position_index)
        number: int | None = len(ranked) + 1 if item.is_localizer else number_of[key]
        numbers.append(None if instance_numbers is None else number)
        if item.is_duplicate:
            continue
        sop_uid = str(generate_uid(entropy_srcs=[entropy, "instance", str(key)]))
        ds = ct_dataset(
            **series_args,
            rows=rows,
            columns=columns,
            position=item.position,
            orientation=item.orientation,
            sop_uid=sop_uid,
            instance_number=numbers[-1],
            image_type=["ORIGINAL", "PRIMARY", "LOCALIZER"] if item.is_localizer else image_type,
            slope=item.slope,
            intercept=item.intercept,
            header=_header(item, modality, repeat_tag if repeats > 1 else None),
        )
        for keyword, value in (extra or {}).items():
            if value is None:
                if keyword in ds:
                    delattr(ds, keyword)
            else:
                setattr(ds, keyword, value)
        if edit is not None:
            edit(i, ds)
        data, truth = _encode(
            ds,
            item.values,
            ts,
            bits_allocated=bits_allocated,
            bits_stored=bits_stored,
            junk_high_bits=junk_high_bits,
            raw_dataset=raw_dataset,
            rng=rng,
        )
        encoded[key] = (data, sop_uid, truth)
    paths: list[str] = []
    for i, item in enumerate(items):
        path = os.path.join(folder, file_names.format(i + 1))
        with open(path, "wb") as fp:
            fp.write(encoded[(item.repeat_index, item.position_index)][0])
        paths.append(path)
    keys = [(item.repeat_index, item.position_index) for item in items]

    return WrittenSeries(
        folder=folder,
        paths=paths,
        positions=np.array([it.position for it in items], dtype=float).reshape(-1, 3),
        orientation=orient,
        pixel_spacing=(float(spacing_ds[0]), float(spacing_ds[1])),
        stored=np.array([encoded[key][2] for key in keys], dtype=dtype).reshape(
            (len(items),) + shape
        ),
        slopes=np.array([it.slope for it in items]),
        intercepts=np.array([it.intercept for it in items]),
        position_index=np.array([it.position_index for it in items], dtype=int),
        repeat_index=np.array([it.repeat_index for it in items], dtype=int),
        is_duplicate=np.array([it.is_duplicate for it in items], dtype=bool),
        is_localizer=np.array([it.is_localizer for it in items], dtype=bool),
        instance_numbers=numbers,
        sop_uids=[encoded[key][1] for key in keys],
        series_uid=series_uid,
        study_uid=study_uid,
        frame_of_reference_uid=frame_uid,
        transfer_syntax=str(ts),
        bits_allocated=bits_allocated,
        bits_stored=bits_stored,
        signed=signed,
        lossy=ts in LOSSY_SYNTAXES,
    )


def _header(item: _Item, modality: str, repeat_tag: str | None) -> dict[str, Any]:
    """Descriptive elements of one image: :data:`FACTORY_HEADER`, KVP for CT, the repeat tag."""
    header = dict(FACTORY_HEADER)
    if modality == "CT":
        header["KVP"] = "120"
    if repeat_tag is not None and not item.is_localizer:
        header[repeat_tag] = REPEAT_TAGS[repeat_tag](item.repeat_index)
    return header


def _encode(
    ds: Dataset,
    values: np.ndarray,
    ts: UID,
    *,
    bits_allocated: int,
    bits_stored: int,
    junk_high_bits: bool,
    raw_dataset: bool,
    rng: np.random.Generator,
) -> tuple[bytes, np.ndarray]:
    """Add pixel data in syntax ``ts`` and encode the file; return (file bytes, true values)."""
    truth = values
    if ts in NATIVE_SYNTAXES:
        raw = values.view(np.dtype(f"u{bits_allocated // 8}")).copy()
        if junk_high_bits:
            mask = (1 << bits_stored) - 1
            junk = rng.integers(
                1, 1 << (bits_allocated - bits_stored), size=raw.shape, endpoint=False
            )
            raw = (raw & mask) | (junk.astype(raw.dtype) << bits_stored)
        set_pixel_data(ds, raw, big_endian=ts == ExplicitVRBigEndian)
    else:
        frame = encode_frame(ts, values, bits_stored, ds.PhotometricInterpretation)
        set_pixel_data(ds, [frame])
        if ts == JPEGBaseline8Bit:
            import imagecodecs

            truth = imagecodecs.jpeg8_decode(frame).astype(values.dtype).reshape(values.shape)
    return dicom_bytes(ds, ts, file_meta=not raw_dataset), truth


# ----------------------------------------------------------------------------------- defects


def truncate(path: str | os.PathLike[str], n_bytes_removed: int) -> None:
    """Cut the last ``n_bytes_removed`` bytes off a file, in place."""
    size = os.path.getsize(path)
    if not 0 < n_bytes_removed < size:
        raise ValueError(f"cannot remove {n_bytes_removed} of {size} bytes")
    os.truncate(path, size - n_bytes_removed)


def _pixel_value_offset(path: str | os.PathLike[str]) -> tuple[int, int]:
    """(offset of the PixelData value, declared length) of a non-deflated file."""
    with open(path, "rb") as fp:
        ds = pydicom.dcmread(fp, stop_before_pixels=True, force=True)
        meta = getattr(ds, "file_meta", None)
        if meta is not None and meta.get("TransferSyntaxUID") == DeflatedExplicitVRLittleEndian:
            raise ValueError(f"{path}: deflated; pixel data is not addressable in the file")
        implicit, little = ds.original_encoding
        start = fp.tell()
        head = fp.read(12)
    endian = "<" if little else ">"
    if len(head) < 8 or struct.unpack(endian + "HH", head[:4]) != (0x7FE0, 0x0010):
        raise ValueError(f"{path}: no PixelData element")
    if implicit:
        return start + 8, struct.unpack(endian + "I", head[4:8])[0]
    return start + 12, struct.unpack(endian + "I", head[8:12])[0]


def short_pixel_data(path: str | os.PathLike[str], keep_fraction: float = 0.5) -> None:
    """Cut a file inside its pixel data: the header and the element's declared length stay, only
    ``keep_fraction`` of the value bytes remain (so the declared length exceeds what is there).

    Works on native and encapsulated pixel data, not on deflated files.
    """
    offset, _ = _pixel_value_offset(path)
    present = os.path.getsize(path) - offset
    keep = int(present * keep_fraction) & ~1
    if not 0 <= keep < present:
        raise ValueError(f"keep_fraction {keep_fraction} keeps nothing out")
    os.truncate(path, offset + keep)


def declare_huge(path: str | os.PathLike[str]) -> None:
    """Rewrite Rows and Columns to 65535, so the declared image far exceeds the bytes present."""
    ds = pydicom.dcmread(path, force=True)
    ds.Rows = ds.Columns = 65535
    ds.save_as(path)


def write_non_dicom(folder: str | os.PathLike[str], name: str = "notes.txt") -> str:
    """Write a file that is not DICOM (text, longer than a preamble) and return its path."""
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(os.fspath(folder), name)
    with open(path, "w", encoding="utf-8") as fp:
        fp.write("Not a DICOM file: scanner export notes.\n" * 8)
    return path


def write_no_pixel_object(
    folder: str | os.PathLike[str],
    *,
    name: str = "SR0001",
    study_uid: str | None = None,
    series_uid: str | None = None,
    seed: int = 0,
) -> str:
    """Write a Basic Text SR (a valid DICOM object without PixelData) and return its path.

    Parameters
    ----------
    study_uid, series_uid
        Put the report into an existing study or series (e.g. a written series' UIDs).
    """
    os.makedirs(folder, exist_ok=True)
    ds = Dataset()
    ds.SOPClassUID = BASIC_TEXT_SR
    ds.SOPInstanceUID = generate_uid(entropy_srcs=["factory sr", str(seed), name])
    ds.Modality = "SR"
    ds.StudyInstanceUID = study_uid or generate_uid(entropy_srcs=["factory sr study", str(seed)])
    ds.SeriesInstanceUID = series_uid or generate_uid(entropy_srcs=["factory sr series", str(seed)])
    ds.SeriesNumber = 900
    ds.InstanceNumber = 1
    ds.PatientName = "Factory^Test"
    ds.PatientID = "FACTORY"
    ds.ValueType = "CONTAINER"
    ds.ContinuityOfContent = "SEPARATE"
    ds.CompletionFlag = "COMPLETE"
    ds.VerificationFlag = "UNVERIFIED"
    text = Dataset()
    text.RelationshipType = "CONTAINS"
    text.ValueType = "TEXT"
    text.TextValue = "No pixels here."
    ds.ContentSequence = [text]
    return write_dicom(os.path.join(os.fspath(folder), name), ds)


def write_dicomdir_like(folder: str | os.PathLike[str], name: str = "DICOMDIR") -> str:
    """Write a Media Storage Directory (DICOMDIR-like: SOP class 1.2.840.10008.1.3.10, no
    records) and return its path."""
    os.makedirs(folder, exist_ok=True)
    ds = Dataset()
    ds.FileSetID = "FACTORY"
    ds.OffsetOfTheFirstDirectoryRecordOfTheRootDirectoryEntity = 0
    ds.OffsetOfTheLastDirectoryRecordOfTheRootDirectoryEntity = 0
    ds.FileSetConsistencyFlag = 0
    ds.DirectoryRecordSequence = []
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = MEDIA_STORAGE_DIRECTORY
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=["factory dicomdir", name])
    return write_dicom(os.path.join(os.fspath(folder), name), ds)
