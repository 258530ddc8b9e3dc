"""Classic single-frame CT DICOM files, written by one writer; the built-in sample series.

Writer
------
:func:`ct_dataset` builds the data set of one classic single-frame image (CT Image Storage unless
``modality`` says otherwise) from its geometry, pixel format, rescale and UIDs, plus whatever
descriptive elements the caller passes as ``header`` (:data:`SCANNER_HEADER` holds those a CT
scanner writes). :func:`set_pixel_data` adds native or encapsulated pixel data,
:func:`dicom_bytes` / :func:`write_dicom` encode the result (File Meta Information or a bare data
set) in any native transfer syntax or an encapsulated one. :func:`write_ct_series` writes a whole
series slice by slice from those pieces (compressed syntaxes need an ``encode`` callable).

The test factory (``tests/factory.py``, ``tests/factory_enhanced.py``) and the benchmarks
(``benchmarks/``) build their files on these functions; the package needs them for the sample.

Sample
------
:func:`write_sample_series` writes a phantom as classic single-frame CT Image Storage files
(explicit VR little endian, 128-byte preamble and File Meta Information), with the headers a
scanner would write. Everything is deterministic for a given ``seed``: the same call writes the
same bytes, UIDs included.

The phantom, in Hounsfield units: air (-1000) outside an ellipsoid body of water (~0 HU) that
holds a bone sphere (~+700 HU), two lung spheres (~-800 HU) and a soft-tissue sphere (~+60 HU),
with mild Gaussian noise inside the body. Stored values are ``HU + 1024`` (12 bits stored,
unsigned; RescaleSlope 1, RescaleIntercept -1024).
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    UID,
    CTImageStorage,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    MRImageStorage,
    PositronEmissionTomographyImageStorage,
    SecondaryCaptureImageStorage,
    generate_uid,
)
from pydicom.valuerep import format_number_as_ds

__all__ = [
    "AXIAL",
    "NATIVE_SYNTAXES",
    "SCANNER_HEADER",
    "SOP_CLASSES",
    "ct_dataset",
    "dicom_bytes",
    "set_pixel_data",
    "to_ds",
    "unit_normal",
    "write_ct_series",
    "write_dicom",
    "write_sample_series",
]

#: ImageOrientationPatient of an axial slice (rows along +x, columns along +y, LPS).
AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
#: Transfer syntaxes whose pixel data is written as is (no codec).
NATIVE_SYNTAXES: tuple[str, ...] = (
    ImplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    DeflatedExplicitVRLittleEndian,
)
#: SOP class written for a modality; anything else becomes Secondary Capture.
SOP_CLASSES = {
    "CT": CTImageStorage,
    "MR": MRImageStorage,
    "PT": PositronEmissionTomographyImageStorage,
}
#: Descriptive elements a CT scanner writes besides geometry, pixel format and UIDs (by keyword);
#: pass ``{**SCANNER_HEADER, ...}`` as ``header`` and override what should differ.
SCANNER_HEADER: dict[str, Any] = {
    "StudyDate": "20240115",
    "SeriesDate": "20240115",
    "ContentDate": "20240115",
    "StudyTime": "093000",
    "SeriesTime": "093512",
    "Manufacturer": "fastvol",
    "ReferringPhysicianName": "",
    "StationName": "FVCT01",
    "PatientSex": "O",
    "BodyPartExamined": "CHEST",
    "KVP": "120",
    "DataCollectionDiameter": "500",
    "GantryDetectorTilt": "0",
    "TableHeight": "150",
    "RotationDirection": "CW",
    "XRayTubeCurrent": 200,
    "ExposureTime": 500,
    "ConvolutionKernel": "STANDARD",
    "PatientPosition": "HFS",
    "StudyID": "1",
    "AcquisitionNumber": 1,
    "WindowCenter": "40",
    "WindowWidth": "400",
    "RescaleType": "HU",
}

#: Phantom densities in HU.
AIR_HU = -1000.0
WATER_HU = 0.0
BONE_HU = 700.0
LUNG_HU = -800.0
SOFT_TISSUE_HU = 60.0
#: Standard deviation of the noise inside the body, HU.
NOISE_HU = 8.0
RESCALE_INTERCEPT = -1024.0
BITS_STORED = 12


# ------------------------------------------------------------------------------------ writer


def to_ds(value: float | str) -> str:
    """A Decimal String value: a number formatted by pydicom (16 characters at most, read back
    as the nearest value), a string as given."""
    return value if isinstance(value, str) else format_number_as_ds(float(value))


def unit_normal(orientation: Sequence[float] | np.ndarray) -> np.ndarray:
    """Unit slice normal ``row direction x column direction`` (LPS); +z when degenerate."""
    o = np.asarray(orientation, dtype=float)
    normal = np.cross(o[:3], o[3:6])
    length = float(np.linalg.norm(normal))
    return normal / length if length > 1e-9 else np.array([0.0, 0.0, 1.0])


def ct_dataset(
    *,
    rows: int,
    columns: int,
    position: Sequence[float | str],
    orientation: Sequence[float | str] = AXIAL,
    pixel_spacing: Sequence[float | str],
    slice_thickness: float | str,
    study_uid: str,
    series_uid: str,
    frame_uid: str,
    sop_uid: str,
    instance_number: int | None,
    series_number: int = 2,
    slice_location: float | str | None = None,
    modality: str = "CT",
    image_type: Sequence[str] = ("ORIGINAL", "PRIMARY", "AXIAL"),
    samples_per_pixel: int = 1,
    photometric: str = "MONOCHROME2",
    bits_allocated: int = 16,
    bits_stored: int = BITS_STORED,
    signed: bool = False,
    slope: float | str = 1.0,
    intercept: float | str = RESCALE_INTERCEPT,
    header: Mapping[str, Any] | None = None,
) -> Dataset:
    """The data set of one classic single-frame image, without pixel data or file meta.

    Parameters
    ----------
    rows, columns, samples_per_pixel, photometric, bits_allocated, bits_stored, signed
        Pixel format (HighBit is ``bits_stored - 1``; PlanarConfiguration 0 for colour).
    position, orientation, pixel_spacing, slice_thickness
        ImagePositionPatient (mm, LPS), ImageOrientationPatient, PixelSpacing
        ``(row spacing, column spacing)`` and SliceThickness. Decimal String values: numbers go
        through :func:`to_ds`, strings are written as given.
    slice_location
        SliceLocation; default the position along :func:`unit_normal` of ``orientation``.
    study_uid, series_uid, frame_uid, sop_uid
        StudyInstanceUID, SeriesInstanceUID, FrameOfReferenceUID, SOPInstanceUID.
    instance_number, series_number
        InstanceNumber (``None`` leaves it out) and SeriesNumber.
    modality, image_type
        Modality (sets SOPClassUID from :data:`SOP_CLASSES`, else Secondary Capture) and
        ImageType.
    slope, intercept
        RescaleSlope and RescaleIntercept.
    header
        Further elements by keyword (descriptive: dates, names, equipment, acquisition), set
        last, so they may also replace any of the above.
    """
    ds = Dataset()
    _set_identity(
        ds, modality, image_type, study_uid, series_uid, sop_uid, series_number, instance_number
    )
    _set_image_plane(
        ds, position, orientation, pixel_spacing, slice_thickness, slice_location, frame_uid
    )
    _set_pixel_format(
        ds, rows, columns, samples_per_pixel, photometric, bits_allocated, bits_stored, signed
    )
    ds.RescaleIntercept = to_ds(intercept)
    ds.RescaleSlope = to_ds(slope)
    # Last, so that the caller's header may replace anything set above.
    for keyword, value in (header or {}).items():
        setattr(ds, keyword, value)
    return ds


def _set_identity(
    ds: Dataset,
    modality: str,
    image_type: Sequence[str],
    study_uid: str,
    series_uid: str,
    sop_uid: str,
    series_number: int,
    instance_number: int | None,
) -> None:
    """Set the SOP class and instance, modality, study and series of ``ds``.

    ``instance_number`` None leaves InstanceNumber out; a modality missing from
    :data:`SOP_CLASSES` gets Secondary Capture.
    """
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = list(image_type)
    ds.SOPClassUID = SOP_CLASSES.get(modality, SecondaryCaptureImageStorage)
    ds.SOPInstanceUID = sop_uid
    ds.Modality = modality
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = series_number
    if instance_number is not None:
        ds.InstanceNumber = instance_number


def _set_image_plane(
    ds: Dataset,
    position: Sequence[float | str],
    orientation: Sequence[float | str],
    pixel_spacing: Sequence[float | str],
    slice_thickness: float | str,
    slice_location: float | str | None,
    frame_uid: str,
) -> None:
    """Set the Image Plane elements and FrameOfReferenceUID of ``ds``.

    Decimal String values go through :func:`to_ds`; SliceLocation defaults to the position
    along :func:`unit_normal` of ``orientation``.
    """
    ds.FrameOfReferenceUID = frame_uid
    ds.ImagePositionPatient = [to_ds(v) for v in position]
    ds.ImageOrientationPatient = [to_ds(v) for v in orientation]
    ds.PixelSpacing = [to_ds(v) for v in pixel_spacing]
    ds.SliceThickness = to_ds(slice_thickness)
    if slice_location is None:
        at = np.array([float(v) for v in position])
        slice_location = float(at @ unit_normal([float(v) for v in orientation]))
    ds.SliceLocation = to_ds(slice_location)


def _set_pixel_format(
    ds: Dataset,
    rows: int,
    columns: int,
    samples_per_pixel: int,
    photometric: str,
    bits_allocated: int,
    bits_stored: int,
    signed: bool,
) -> None:
    """Set the Image Pixel elements of ``ds``, PixelData aside.

    HighBit is ``bits_stored - 1``; colour gets PlanarConfiguration 0 (colour-by-pixel).
    """
    ds.SamplesPerPixel = samples_per_pixel
    ds.PhotometricInterpretation = photometric
    if samples_per_pixel > 1:
        ds.PlanarConfiguration = 0
    ds.Rows, ds.Columns = rows, columns
    ds.BitsAllocated = bits_allocated
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = int(signed)


def set_pixel_data(
    ds: Dataset,
    data: bytes | np.ndarray | Sequence[bytes],
    *,
    big_endian: bool = False,
    **encapsulate_options: Any,
) -> None:
    """Set PixelData of ``ds``, native or encapsulated.

    ``data``: stored values (an array, written little endian, or big endian when asked), raw
    native bytes (padded to even length), or a list of frame codestreams, encapsulated (OB, with
    ``encapsulate_options`` passed to :func:`pydicom.encaps.encapsulate`). Native pixel data is
    OB for BitsAllocated 8, else OW.
    """
    if isinstance(data, (list, tuple)):
        ds.PixelData = encapsulate(list(data), **encapsulate_options)
        ds["PixelData"].VR = "OB"
        return
    if isinstance(data, np.ndarray):
        data = data.astype(data.dtype.newbyteorder(">" if big_endian else "<")).tobytes()
    ds.PixelData = bytes(data) + b"\x00" * (len(data) % 2)  # type: ignore[arg-type]
    ds["PixelData"].VR = "OB" if ds.BitsAllocated <= 8 else "OW"


def dicom_bytes(
    ds: Dataset, transfer_syntax: str = ExplicitVRLittleEndian, *, file_meta: bool = True
) -> bytes:
    """Encode ``ds`` as a DICOM file in ``transfer_syntax`` (its pixel data must match).

    With ``file_meta`` (default): 128-byte preamble and File Meta Information; the media storage
    SOP class and instance are the data set's (a ``ds.file_meta`` already there is kept and
    completed). Without: the bare data set, no preamble (native, non-deflated syntaxes).
    """
    ts = UID(transfer_syntax)
    buffer = io.BytesIO()
    if not file_meta:
        if hasattr(ds, "file_meta"):
            del ds.file_meta
        ds.preamble = None
        pydicom.dcmwrite(
            buffer,
            ds,
            implicit_vr=ts == ImplicitVRLittleEndian,
            little_endian=ts != ExplicitVRBigEndian,
        )
        return buffer.getvalue()
    meta = getattr(ds, "file_meta", None) or FileMetaDataset()
    meta.TransferSyntaxUID = ts
    if "SOPClassUID" in ds:
        meta.MediaStorageSOPClassUID = ds.SOPClassUID
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.file_meta = meta
    pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


def write_dicom(
    path: str | os.PathLike[str],
    ds: Dataset,
    transfer_syntax: str = ExplicitVRLittleEndian,
    *,
    file_meta: bool = True,
) -> str:
    """Write :func:`dicom_bytes` of ``ds`` to ``path`` (replaced) and return the path as a str."""
    path = os.fspath(path)
    data = dicom_bytes(ds, transfer_syntax, file_meta=file_meta)
    with open(path, "wb") as fp:
        fp.write(data)
    return path


def write_ct_series(
    folder: str | os.PathLike[str],
    slices: Iterable[np.ndarray],
    *,
    positions: Sequence[Sequence[float | str]] | np.ndarray,
    pixel_spacing: Sequence[float | str],
    slice_thickness: float | str,
    orientation: Sequence[float | str] = AXIAL,
    transfer_syntax: str = ExplicitVRLittleEndian,
    encode: Callable[[str, np.ndarray, int], bytes] | None = None,
    bits_stored: int | None = None,
    slope: float | str = 1.0,
    intercept: float | str = RESCALE_INTERCEPT,
    uid_entropy: Sequence[str] = ("fastvol",),
    series_number: int = 2,
    header: Mapping[str, Any] | None = None,
    file_names: str = "IM{:04d}",
) -> list[str]:
    """Write one classic single-frame CT series, one file per slice, and return the paths.

    Parameters
    ----------
    folder
        Created if missing; file ``k`` (1-based, InstanceNumber ``k``) is
        ``file_names.format(k)``, replacing a file of that name.
    slices
        Stored values of each slice, ``(rows, columns)``, in file order (an array
        ``(n, rows, columns)`` or a generator, consumed one slice at a time). The dtype gives
        BitsAllocated and PixelRepresentation (``uint16``: unsigned 16-bit, ...).
    positions
        ImagePositionPatient of each slice (mm, LPS); as many as there are slices.
    pixel_spacing, slice_thickness, orientation
        As :func:`ct_dataset` writes them.
    transfer_syntax, encode
        Native syntaxes are written as they are; any other needs
        ``encode(transfer_syntax, stored_slice, bits_stored) -> codestream`` (one frame,
        encapsulated).
    bits_stored, slope, intercept
        BitsStored (default BitsAllocated), RescaleSlope, RescaleIntercept.
    uid_entropy
        Seeds the UIDs (study, series, frame of reference, one per instance): the same entropy
        writes the same UIDs.
    series_number, header
        SeriesNumber and the descriptive elements (see :data:`SCANNER_HEADER`). ContentTime and
        AcquisitionTime are written per slice (``0935SS.kkk``, one second apart, cycling).
    """
    folder = os.fspath(folder)
    ts = UID(transfer_syntax)
    if ts not in NATIVE_SYNTAXES and encode is None:
        raise ValueError(f"{ts.name} needs an encode callable")
    os.makedirs(folder, exist_ok=True)
    shared = _series_fields(
        uid_entropy, orientation, pixel_spacing, slice_thickness, series_number, slope, intercept
    )
    paths = []
    for k, (position, stored) in enumerate(zip(positions, slices, strict=True)):
        sop_uid = _entropy_uid(uid_entropy, f"instance {k}")
        ds = _slice_dataset(k, position, stored, sop_uid, bits_stored, header, shared)
        _set_slice_pixels(ds, stored, ts, encode)
        paths.append(write_dicom(os.path.join(folder, file_names.format(k + 1)), ds, ts))
    return paths


def _entropy_uid(entropy: Sequence[str], what: str) -> str:
    """A UID derived from ``entropy`` and ``what`` only: the same inputs give the same UID."""
    return str(generate_uid(entropy_srcs=[*entropy, what]))


def _series_fields(
    uid_entropy: Sequence[str],
    orientation: Sequence[float | str],
    pixel_spacing: Sequence[float | str],
    slice_thickness: float | str,
    series_number: int,
    slope: float | str,
    intercept: float | str,
) -> dict[str, Any]:
    """The :func:`ct_dataset` keywords every slice of a series shares, UIDs included."""
    return {
        "orientation": orientation,
        "pixel_spacing": pixel_spacing,
        "slice_thickness": slice_thickness,
        "study_uid": _entropy_uid(uid_entropy, "study"),
        "series_uid": _entropy_uid(uid_entropy, "series"),
        "frame_uid": _entropy_uid(uid_entropy, "frame of reference"),
        "series_number": series_number,
        "slope": slope,
        "intercept": intercept,
    }


def _slice_dataset(
    k: int,
    position: Sequence[float | str],
    stored: np.ndarray,
    sop_uid: str,
    bits_stored: int | None,
    header: Mapping[str, Any] | None,
    shared: Mapping[str, Any],
) -> Dataset:
    """The data set of slice ``k`` (0-based) of a :func:`write_ct_series` series.

    Size and pixel format come from ``stored`` (BitsStored defaults to BitsAllocated);
    ContentTime and AcquisitionTime step one second per slice, cycling every 48.
    """
    bits_allocated = stored.dtype.itemsize * 8
    time = f"0935{12 + k % 48:02d}.{k % 1000:03d}"
    return ct_dataset(
        rows=stored.shape[0],
        columns=stored.shape[1],
        position=position,
        sop_uid=sop_uid,
        instance_number=k + 1,
        bits_allocated=bits_allocated,
        bits_stored=bits_allocated if bits_stored is None else bits_stored,
        signed=stored.dtype.kind == "i",
        header={**(header or {}), "ContentTime": time, "AcquisitionTime": time},
        **shared,
    )


def _set_slice_pixels(
    ds: Dataset,
    stored: np.ndarray,
    transfer_syntax: UID,
    encode: Callable[[str, np.ndarray, int], bytes] | None,
) -> None:
    """Set PixelData of one slice: native as is, else one frame codestream from ``encode``."""
    if transfer_syntax in NATIVE_SYNTAXES:
        set_pixel_data(ds, stored, big_endian=transfer_syntax == ExplicitVRBigEndian)
    else:
        assert encode is not None
        set_pixel_data(ds, [encode(transfer_syntax, stored, ds.BitsStored)])


# ------------------------------------------------------------------------------------ sample


def _phantom_hu(
    n_slices: int,
    rows: int,
    columns: int,
    spacing: tuple[float, float],
    slice_step: float,
    seed: int,
) -> np.ndarray:
    """Phantom in HU, shape ``(n_slices, rows, columns)``, centred on the volume centre (mm)."""
    z = (np.arange(n_slices) - (n_slices - 1) / 2) * slice_step
    y = (np.arange(rows) - (rows - 1) / 2) * spacing[0]
    x = (np.arange(columns) - (columns - 1) / 2) * spacing[1]
    zz, yy, xx = np.meshgrid(z, y, x, indexing="ij")
    # Semi-axes as fractions of the field of view, so any size gives a sensible phantom.
    ax, ay, az = (
        0.42 * columns * spacing[1],
        0.32 * rows * spacing[0],
        0.45 * max(n_slices * slice_step, 1.0),
    )
    body = (xx / ax) ** 2 + (yy / ay) ** 2 + (zz / az) ** 2 <= 1.0
    hu = np.full(zz.shape, AIR_HU)
    hu[body] = WATER_HU

    def sphere(cx: float, cy: float, cz: float, radius: float, value: float) -> None:
        inside = (xx - cx * ax) ** 2 + (yy - cy * ay) ** 2 + (zz - cz * az) ** 2 <= radius**2
        hu[inside & body] = value

    r = 0.35 * min(ax, ay, az)
    sphere(-0.45, -0.05, 0.15, r, LUNG_HU)
    sphere(0.45, -0.05, 0.15, r, LUNG_HU)
    sphere(0.0, 0.55, -0.1, 0.6 * r, BONE_HU)
    sphere(0.0, -0.4, -0.4, 0.5 * r, SOFT_TISSUE_HU)
    rng = np.random.default_rng(seed)
    hu[body] += rng.normal(0.0, NOISE_HU, size=int(body.sum()))
    return hu


def write_sample_series(
    folder: str | os.PathLike[str],
    *,
    n_slices: int = 48,
    rows: int = 128,
    columns: int = 128,
    spacing: Sequence[float] = (0.7, 0.7),
    slice_step: float = 2.5,
    seed: int = 0,
) -> list[str]:
    """Write a synthetic axial CT phantom as one single-frame DICOM file per slice.

    Parameters
    ----------
    folder
        Existing or new folder; files ``IM0001``, ``IM0002``, ... (no suffix) are written there,
        replacing files of the same name.
    n_slices, rows, columns
        Volume size: number of slices and pixels per slice.
    spacing
        PixelSpacing in mm, ``(row spacing, column spacing)`` as DICOM orders it (the distance
        between rows first).
    slice_step
        Distance between slice centres in mm, along +z (patient LPS: towards the head). Also
        written as SliceThickness.
    seed
        Seeds the noise and the UIDs; the same seed writes identical files.

    Returns
    -------
    list[str]
        Paths written, in InstanceNumber order (``IM0001`` is the most inferior slice).

    Notes
    -----
    Geometry: ImageOrientationPatient ``1\\0\\0\\0\\1\\0`` (axial), the volume is centred on the
    patient origin, so slice ``k`` sits at ``z = (k - (n_slices - 1) / 2) * slice_step`` and
    pixel ``(0, 0)`` at ``x = -(columns - 1) / 2 * spacing[1]``,
    ``y = -(rows - 1) / 2 * spacing[0]`` (mm, LPS, rounded to 1e-6 mm).
    """
    if n_slices < 1 or rows < 1 or columns < 1:
        raise ValueError(f"sizes must be positive, got {n_slices=}, {rows=}, {columns=}")
    row_spacing, column_spacing = (float(v) for v in spacing)
    if row_spacing <= 0 or column_spacing <= 0 or slice_step <= 0:
        raise ValueError(f"spacings must be positive, got {spacing=}, {slice_step=}")
    hu = _phantom_hu(n_slices, rows, columns, (row_spacing, column_spacing), slice_step, seed)
    stored = np.clip(np.rint(hu - RESCALE_INTERCEPT), 0, 2**BITS_STORED - 1).astype("<u2")
    # Millimetres rounded to 1e-6, so the DS strings show no binary noise (-44.45, not
    # -44.450000000000).
    x0 = round(-(columns - 1) / 2 * column_spacing, 6)
    y0 = round(-(rows - 1) / 2 * row_spacing, 6)
    z = [round((k - (n_slices - 1) / 2) * slice_step, 6) for k in range(n_slices)]
    return write_ct_series(
        folder,
        stored,
        positions=[(x0, y0, zk) for zk in z],
        pixel_spacing=(row_spacing, column_spacing),
        slice_thickness=slice_step,
        bits_stored=BITS_STORED,
        intercept=RESCALE_INTERCEPT,
        uid_entropy=("fastvol sample phantom", str(seed)),
        header=_sample_header(seed, round(columns * column_spacing, 6)),
    )


def _sample_header(seed: int, field_of_view: float) -> dict[str, Any]:
    """Descriptive elements of the sample series: a scanner's, with the phantom's names and IDs.

    ``field_of_view`` (mm) is written as ReconstructionDiameter; the seed goes into the
    accession number and patient ID.
    """
    return {
        **SCANNER_HEADER,
        "AccessionNumber": f"FV{seed:06d}",
        "InstitutionName": "Synthetic Phantom Lab",
        "StudyDescription": "Phantom study",
        "SeriesDescription": "fastvol sample phantom",
        "ManufacturerModelName": "Phantom 1",
        "PatientName": "Phantom^Sample",
        "PatientID": f"FASTVOL{seed:04d}",
        "PatientBirthDate": "",
        "SoftwareVersions": "fastvol sample",
        "ReconstructionDiameter": to_ds(field_of_view),
        "PositionReferenceIndicator": "",
    }
