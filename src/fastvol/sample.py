"""A small synthetic CT series, written on demand, for examples, docs and smoke tests.

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

import os
from collections.abc import Sequence

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    CTImageStorage,
    ExplicitVRLittleEndian,
    generate_uid,
)

__all__ = ["write_sample_series"]

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


def _uid(seed: int, what: str) -> str:
    return str(generate_uid(entropy_srcs=["fastvol sample phantom", str(seed), what]))


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
    ``y = -(rows - 1) / 2 * spacing[0]`` (mm, LPS).
    """
    if n_slices < 1 or rows < 1 or columns < 1:
        raise ValueError(f"sizes must be positive, got {n_slices=}, {rows=}, {columns=}")
    row_spacing, column_spacing = (float(v) for v in spacing)
    if row_spacing <= 0 or column_spacing <= 0 or slice_step <= 0:
        raise ValueError(f"spacings must be positive, got {spacing=}, {slice_step=}")
    os.makedirs(folder, exist_ok=True)
    hu = _phantom_hu(n_slices, rows, columns, (row_spacing, column_spacing), slice_step, seed)
    stored = np.clip(np.rint(hu - RESCALE_INTERCEPT), 0, 2**BITS_STORED - 1).astype("<u2")

    study_uid, series_uid = _uid(seed, "study"), _uid(seed, "series")
    frame_uid = _uid(seed, "frame of reference")
    x0 = -(columns - 1) / 2 * column_spacing
    y0 = -(rows - 1) / 2 * row_spacing
    paths = []
    for k in range(n_slices):
        z = (k - (n_slices - 1) / 2) * slice_step
        ds = Dataset()
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = _uid(seed, f"instance {k}")
        ds.StudyDate = ds.SeriesDate = ds.ContentDate = "20240115"
        ds.StudyTime = "093000"
        ds.SeriesTime = "093512"
        ds.ContentTime = ds.AcquisitionTime = f"0935{12 + k % 48:02d}.{k:03d}"
        ds.AccessionNumber = f"FV{seed:06d}"
        ds.Modality = "CT"
        ds.Manufacturer = "fastvol"
        ds.InstitutionName = "Synthetic Phantom Lab"
        ds.ReferringPhysicianName = ""
        ds.StationName = "FVCT01"
        ds.StudyDescription = "Phantom study"
        ds.SeriesDescription = "fastvol sample phantom"
        ds.ManufacturerModelName = "Phantom 1"
        ds.PatientName = "Phantom^Sample"
        ds.PatientID = f"FASTVOL{seed:04d}"
        ds.PatientBirthDate = ""
        ds.PatientSex = "O"
        ds.BodyPartExamined = "CHEST"
        ds.SliceThickness = f"{slice_step:g}"
        ds.KVP = "120"
        ds.DataCollectionDiameter = "500"
        ds.SoftwareVersions = "fastvol sample"
        ds.ReconstructionDiameter = f"{columns * column_spacing:g}"
        ds.GantryDetectorTilt = "0"
        ds.TableHeight = "150"
        ds.RotationDirection = "CW"
        ds.XRayTubeCurrent = 200
        ds.ExposureTime = 500
        ds.ConvolutionKernel = "STANDARD"
        ds.PatientPosition = "HFS"
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.StudyID = "1"
        ds.SeriesNumber = 2
        ds.AcquisitionNumber = 1
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [f"{x0:g}", f"{y0:g}", f"{z:g}"]
        ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
        ds.FrameOfReferenceUID = frame_uid
        ds.PositionReferenceIndicator = ""
        ds.SliceLocation = f"{z:g}"
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.Rows = rows
        ds.Columns = columns
        ds.PixelSpacing = [f"{row_spacing:g}", f"{column_spacing:g}"]
        ds.BitsAllocated = 16
        ds.BitsStored = BITS_STORED
        ds.HighBit = BITS_STORED - 1
        ds.PixelRepresentation = 0
        ds.WindowCenter = "40"
        ds.WindowWidth = "400"
        ds.RescaleIntercept = f"{RESCALE_INTERCEPT:g}"
        ds.RescaleSlope = "1"
        ds.RescaleType = "HU"
        ds.PixelData = stored[k].tobytes()

        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = ds.SOPClassUID
        meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        ds.file_meta = meta
        path = os.path.join(os.fspath(folder), f"IM{k + 1:04d}")
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths
