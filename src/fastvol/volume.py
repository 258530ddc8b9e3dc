"""The result of a load: one array, its affine, the geometry report and the series' metadata."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .atomic import atomic_path
from .report import GeometryReport

__all__ = ["LPS_TO_RAS", "Volume"]

#: Flips the first two world axes: RAS = LPS_TO_RAS @ LPS (and back, it is its own inverse).
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclass(frozen=True, eq=False)
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

    def to_nifti(self, path: str | os.PathLike[str]) -> str:
        """Write a NIfTI file (needs the ``nifti`` extra: nibabel), atomically.

        The NIfTI array is ``(column, row, slice, ...)`` with a RAS affine, the usual layout of
        NIfTI readers; this conversion is explicit and only happens here.
        """
        if not os.fspath(path).lower().endswith((".nii", ".nii.gz")):
            from .errors import InputError

            raise InputError(f"{os.fspath(path)}: a NIfTI file name ends in .nii or .nii.gz",
                             files=[os.fspath(path)])  # fmt: skip
        try:
            import nibabel as nib
        except ImportError as exc:
            from .errors import MissingDependencyError

            raise MissingDependencyError("writing NIfTI needs nibabel: pip install 'fastvol[nifti]'",
                                         install_hint="pip install 'fastvol[nifti]'") from exc  # fmt: skip
        nd = self.array.ndim
        # (..., slice, row, column) -> (column, row, slice, ...)
        data = np.transpose(self.array, (nd - 1, nd - 2, nd - 3, *range(nd - 3)))
        perm = np.zeros((4, 4))
        perm[0, 2] = perm[1, 1] = perm[2, 0] = perm[3, 3] = 1.0  # (col,row,slice) -> (slice,row,col)
        # The transposed view of a C-ordered array is Fortran-ordered, NIfTI's own order:
        # nibabel writes it without a copy (a C copy made it transpose twice, 8x slower).
        image = nib.Nifti1Image(data, self.affine_ras @ perm)
        with atomic_path(path) as tmp:
            nib.save(image, tmp)
        return os.fspath(path)

    def to_npz(self, path: str | os.PathLike[str]) -> str:
        """Write ``array`` and ``affine_lps`` (``(slice, row, column)`` -> LPS) to an ``.npz``, atomically."""
        with atomic_path(path) as tmp, open(tmp, "wb") as fp:
            np.savez(fp, array=self.array, affine_lps=self.affine)
        return os.fspath(path)

    def __repr__(self) -> str:
        return (f"Volume(shape={self.shape}, dtype={self.array.dtype}, "
                f"spacing={tuple(round(s, 4) for s in self.spacing)}, series={self.geometry.series!r})")  # fmt: skip
