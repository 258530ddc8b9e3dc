"""TorchIO: :func:`read`, a reader for ``tio.ScalarImage(path, reader=fastvol.torchio.read)``.

Needs the ``torchio`` extra (``pip install 'fastvol[torchio]'``). TorchIO reads DICOM folders
through SimpleITK, first series only; this reader loads the series with fastvol (every
geometry check, 4D as channels) and returns TorchIO's layout: a ``(C, W, H, D)`` tensor and the
4x4 RAS affine of ``(W, H, D)``. ``(W, H, D)`` is ``(column, row, slice)`` and ``C`` the
volumes (1 for a 3D series): exactly what :meth:`fastvol.Volume.to_nifti` writes, so a
ScalarImage read here equals one read from that NIfTI file, array and affine.

A colour series (``meta["channels"] == "RGB"``, ``(..., slice, row, column, 3)``) gives its
colours as channels, TorchIO's convention: ``(3, W, H, D)`` (``(volume x 3, W, H, D)`` for 4D,
R, G, B of each volume in turn).

A ``.zarr`` store written by :meth:`fastvol.Volume.to_zarr` and a NIfTI file are read too
(``read`` dispatches on the name), so one reader serves DICOM, a converted cohort and its cache.

TorchIO 1.x (the installed line) has no lazy-reader interface: the whole volume is read when
TorchIO first asks for data, shape or affine.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

try:
    import torch
except ImportError as exc:  # a fastvol error naming the extra, not a bare ModuleNotFoundError
    from .errors import MissingDependencyError

    _INSTALL = "pip install 'fastvol[torchio]'"
    raise MissingDependencyError(f"fastvol.torchio needs PyTorch: {_INSTALL}", install_hint=_INSTALL) from exc

from .api import load
from .nifti import nifti_layout
from .options import Options
from .volume import Volume, from_nifti, from_zarr

__all__ = ["read", "reader"]


def _volume(path: str, options: Options | None, series: Any) -> Volume:
    lower = path.lower().rstrip("/")
    if lower.endswith(".zarr"):
        return from_zarr(path)
    if lower.endswith((".nii", ".nii.gz")):
        return from_nifti(path)
    return load(path, options, series=series)


def read(path: str | os.PathLike[str], options: Options | None = None, *,
         series: Any = None) -> tuple[torch.Tensor, np.ndarray]:  # fmt: skip
    """Load ``path`` (DICOM folder/file/URL, ``.zarr``, ``.nii[.gz]``) as TorchIO's ``(tensor, affine)``.

    Returns
    -------
    tensor
        ``(C, W, H, D)`` = ``(volume, column, row, slice)``, the load's dtype; colour: ``C`` is
        R, G, B (of each volume).
    affine
        4x4 float64, ``(W, H, D)`` indices -> RAS mm.
    """
    vol = _volume(os.fspath(path), options, series)
    array = vol.array
    if vol.is_rgb:
        array = np.moveaxis(array, -1, -4)  # (..., 3, slice, row, column)
    array = array if array.ndim > 3 else array[None]
    array = array.reshape((-1,) + array.shape[-3:])  # (C, slice, row, column)
    data, affine_ras = nifti_layout(array, vol.affine)  # (column, row, slice, C)
    tensor = torch.from_numpy(np.ascontiguousarray(np.moveaxis(data, 3, 0)))
    return tensor, affine_ras


def reader(options: Options | None = None, *, series: Any = None, **overrides: Any) -> Any:
    """A reader with options bound: ``tio.ScalarImage(p, reader=fastvol.torchio.reader(gaps="fill"))``.

    Returns a picklable callable (a :class:`functools.partial` of :func:`read`).
    """
    import functools

    return functools.partial(read, options=Options.resolve(options, overrides), series=series)
