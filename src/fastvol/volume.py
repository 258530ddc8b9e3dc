"""The result of a load: one array, its affine, the geometry report and the series' metadata."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import field
from typing import Any, BinaryIO

import numpy as np

from ._frozen import frozen
from .atomic import atomic_path
from .report import GeometryReport

__all__ = ["LPS_TO_RAS", "Volume", "from_nifti", "from_zarr"]

#: Flips the first two world axes: RAS = LPS_TO_RAS @ LPS (and back, it is its own inverse).
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


@frozen(eq=False)
class Volume:
    """A loaded series.

    Attributes
    ----------
    array
        Voxel values, axes ``(..., slice, row, column)``; leading axes (if any) are non-spatial
        (time, echo, b-value: see ``geometry.volumes_tag``). Slices are ordered by their position
        along the slice normal (row direction x column direction), descending, as in
        highdicom.Volume, so the ``(slice, row, column)`` frame is right-handed.
    affine
        4x4 float64 mapping ``(slice, row, column)`` indices to DICOM patient coordinates (LPS, mm),
        as highdicom.Volume does.
    geometry
        What was found and decided (:class:`~fastvol.report.GeometryReport`).
    meta
        Series attributes, and per-slice ``sop_instance_uids``, ``files`` and ``frames`` (frame
        index within a multi-frame file) in array order, flattened over leading axes. 4D series
        add ``volumes_tag``, ``volumes_values``, ``b_values``, ``gradients``, ``echo_times``,
        ``trigger_times`` (one per volume).
    """

    array: np.ndarray
    affine: np.ndarray
    geometry: GeometryReport
    meta: Mapping[str, Any] = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, ...]:
        """Array shape."""
        return tuple(self.array.shape)

    @property
    def is_rgb(self) -> bool:
        """Colour: ``meta["channels"] == "RGB"``, the array ``(..., slice, row, column, 3)`` uint8."""
        return self.meta.get("channels") == "RGB"

    @property
    def affine_ras(self) -> np.ndarray:
        """The same ``(slice, row, column)`` indices mapped to RAS mm (x and y negated)."""
        return LPS_TO_RAS @ self.affine

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Distance in mm between neighbouring voxel centres along ``(slice, row, column)``."""
        return tuple(float(v) for v in np.linalg.norm(self.affine[:3, :3], axis=0))  # type: ignore[return-value]

    @property
    def origin(self) -> np.ndarray:
        """LPS position (mm) of voxel ``(0, 0, 0)``."""
        return self.affine[:3, 3].copy()

    @property
    def direction(self) -> np.ndarray:
        """3x3 unit vectors (columns) of the ``(slice, row, column)`` axes in LPS."""
        return self.affine[:3, :3] / np.array(self.spacing)

    def to_nifti(self, path: str | os.PathLike[str] | BinaryIO, *,
                 repetition_time_s: float | None = None) -> str | BinaryIO:  # fmt: skip
        """Write a NIfTI-1 file (needs the ``nifti`` extra: nibabel), atomically.

        ``path`` may also be a binary stream open for writing: it gets the bytes of the
        uncompressed ``.nii`` (e.g. into a gzip stream of the caller's choice).

        The NIfTI array is ``(column, row, slice, ...)`` with the RAS affine of that order in
        both qform and sform (code 1, scanner), units mm and seconds; a stack whose tilt was
        kept (:attr:`geometry` warns ``tilt_kept``) has its sheared affine only in the sform,
        qform code 0, as a quaternion cannot hold a shear; see :mod:`fastvol.nifti`
        for how this layout relates to dcm2niix's. This conversion is explicit and only
        happens there. Colour (:attr:`is_rgb`) is written as dcm2niix writes it: datatype
        RGB24, spatial axes ``(column, row, slice)``.

        Parameters
        ----------
        repetition_time_s
            ``pixdim[4]`` in seconds; by default ``meta["RepetitionTime"]`` (ms) when the load
            carried it (``extra_tags=["RepetitionTime"]``; classic files only: enhanced
            multi-frame files keep it in functional groups, not read yet), else 0 (unknown).
        """
        from .nifti import write_nifti

        if repetition_time_s is None:
            repetition_time_s = _repetition_time_s(self.meta)
        return write_nifti(path, self.array, self.affine, repetition_time_s=repetition_time_s,
                           description=str(self.meta.get("series_description") or ""), rgb=self.is_rgb,
                           qform=self.writes_qform())  # fmt: skip

    def writes_qform(self) -> bool | None:
        """Whether :meth:`to_nifti` writes a qform, as the geometry report decided; ``None``: as
        the affine says (:func:`fastvol.nifti.qform_fits`).

        A tilt the load kept (over ``tilt_tolerance_deg``) is a real shear: no qform. A tilt
        over the default tolerance that the load still called untilted (a larger
        ``tilt_tolerance_deg``) gets the nearest rigid qform, as the load was told.
        """
        from .options import TILT_TOLERANCE_DEG

        report = self.geometry
        if any(item.get("code") == "tilt_kept" for item in report.decision_data()):
            return False
        return True if report.tilt_deg > TILT_TOLERANCE_DEG else None

    def to_zarr(self, path: str | os.PathLike[str], *, chunks: tuple[int, ...] | None = None) -> str:
        """Write an OME-Zarr store (zarr v3, needs the ``zarr`` extra), atomically.

        The array keeps fastvol's order ``(..., slice, row, column)``, chunked per group of
        slices and compressed with Blosc LZ4; the full LPS affine is the ``fastvol.affine_lps``
        attribute and a NIfTI header sits beside it (see :mod:`fastvol.zarr_io`). Colour
        (:attr:`is_rgb`) is stored channel first, ``(..., 3, slice, row, column)``, OME axes
        ``(t,) c, z, y, x``; :func:`from_zarr` gives back ``(..., slice, row, column, 3)``.
        """
        from .zarr_io import write_zarr

        return write_zarr(path, self.array, self.affine, name=self.geometry.series, chunks=chunks,
                          rgb=self.is_rgb)  # fmt: skip

    def to_npz(self, path: str | os.PathLike[str]) -> str:
        """Write ``array`` and ``affine_lps`` (``(slice, row, column)`` -> LPS) to an ``.npz``, atomically."""
        with atomic_path(path) as tmp, open(tmp, "wb") as fp:
            np.savez(fp, array=self.array, affine_lps=self.affine)
        return os.fspath(path)

    def __repr__(self) -> str:
        return (f"Volume(shape={self.shape}, dtype={self.array.dtype}, "
                f"spacing={tuple(round(s, 4) for s in self.spacing)}, series={self.geometry.series!r})")  # fmt: skip


def _repetition_time_s(meta: Mapping[str, Any]) -> float | None:
    """RepetitionTime (DICOM: ms) in seconds, when the load carried one value of it."""
    value = meta.get("RepetitionTime")
    try:
        return float(value) / 1000.0 if value is not None else None
    except (TypeError, ValueError):  # one value per slice (a tuple): no single TR
        return None


def _volume_from(array: np.ndarray, affine: np.ndarray, name: str, meta: dict[str, Any]) -> Volume:
    """A Volume around an array read back from a file: its report says only what an affine says."""
    from .geometry import orientation_label

    spacing = tuple(float(v) for v in np.linalg.norm(affine[:3, :3], axis=0))
    unit = affine[:3, :3] / np.where(np.array(spacing) > 0, spacing, 1.0)
    row_dir, col_dir = unit[:, 2], unit[:, 1]
    normal = np.cross(row_dir, col_dir)
    plane, obliquity = orientation_label(row_dir, col_dir, normal)
    n = array.shape[-4] if meta.get("channels") == "RGB" else array.shape[-3]
    distances = (affine[:3, 3] + np.outer(np.arange(n), affine[:3, 0])) @ normal
    step = spacing[0]
    report = GeometryReport(
        series=name, shape=tuple(array.shape), spacing=spacing,  # type: ignore[arg-type]
        affine=tuple(tuple(float(v) for v in row) for row in affine),
        orientation=tuple(float(v) for v in (*row_dir, *col_dir)), plane=plane,
        obliquity=obliquity, slice_positions=tuple(float(d) for d in distances),
        step_min=step, step_median=step, step_max=step, kind="regular" if n > 1 else "single",
        handedness="right" if np.linalg.det(affine[:3, :3]) > 0 else "left",
    )  # fmt: skip
    return Volume(array=array, affine=affine, geometry=report, meta=meta)


def from_nifti(path: str | os.PathLike[str]) -> Volume:
    """Read a NIfTI file into a :class:`Volume` (``(..., slice, row, column)``, LPS affine).

    The inverse of :meth:`Volume.to_nifti`: ``from_nifti(v.to_nifti(p))`` has ``v``'s array
    and affine. Any NIfTI file is read the same way (its ``(i, j, k)`` become ``(column, row,
    slice)``), so its geometry report says what the affine says and nothing more. ``meta``
    holds the header's ``qform_code``, ``sform_code``, ``xyzt_units``, ``pixdim`` and
    ``descrip``, and ``source`` (the path). A colour file (RGB24, as dcm2niix writes it) gives
    ``(..., slice, row, column, 3)`` uint8 with ``meta["channels"] == "RGB"``.
    """
    from .nifti import read_nifti

    array, affine, header = read_nifti(path)
    return _volume_from(array, affine, os.path.basename(os.fspath(path)),
                        {"source": os.fspath(path), **header})  # fmt: skip


def from_zarr(path: str | os.PathLike[str]) -> Volume:
    """Read a store :meth:`Volume.to_zarr` wrote into a :class:`Volume`."""
    from .zarr_io import read_zarr

    array, affine, attrs = read_zarr(path)
    name = str(attrs.get("ome", {}).get("multiscales", [{}])[0].get("name") or os.path.basename(os.fspath(path)))
    meta: dict[str, Any] = {"source": os.fspath(path)}
    if attrs.get("fastvol", {}).get("channels") == "RGB":
        meta["channels"] = "RGB"
    return _volume_from(array, affine, name, meta)
