"""MONAI: :class:`FastvolReader`, a ``monai.data.ImageReader`` for DICOM series.

Needs the ``monai`` extra (``pip install 'fastvol[monai]'``). Use it by dotted name, class or
instance::

    LoadImage(reader="fastvol.monai.FastvolReader")
    LoadImage(reader=FastvolReader(layout="fastvol", gaps="fill"))

With the default ``layout="itk"`` it returns what MONAI's ITKReader returns for the same
series, so a pipeline switches reader with one word and nothing downstream moves: the array in
``(column, row, k)`` order with ``k`` ascending along the slice normal (ITK's slice order, the
reverse of fastvol's), and meta ``affine`` / ``original_affine`` (RAS, of that order),
``spatial_shape``, ``spacing``, ``space`` ``"RAS"``, ``original_channel_dim`` NaN (3D) or -1
(4D: volumes last, ``(column, row, k, volume)``), and ``filename_or_obj`` (set by LoadImage).
``layout="fastvol"`` returns fastvol's own ``(..., slice, row, column)`` with the LPS affine
(``space`` ``"LPS"``; volumes first, ``original_channel_dim`` 0).

Colour series (``meta["channels"] == "RGB"``) keep the colour axis last, as ITKReader does:
``(column, row, k, 3)`` with ``original_channel_dim`` -1 (itk), ``(slice, row, column, 3)``
with -1 (fastvol). A 4D colour series is refused (:class:`~fastvol.UnsupportedError`).

Values keep the load's dtype (int16 for most CT) when LoadImage is given ``dtype=None``.

URLs: LoadImage's ``expanduser`` (on by default) turns ``s3://bucket/key`` into
``s3:/bucket/key``; this reader puts the second slash back for a name that is not an existing
local path (:func:`restore_url`), so URLs work either way.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

try:
    from monai.data import ImageReader
    from monai.utils import MetaKeys, SpaceKeys, ensure_tuple
except ImportError as exc:  # a fastvol error naming the extra, not a bare ModuleNotFoundError
    from .errors import MissingDependencyError

    _INSTALL = "pip install 'fastvol[monai]'"
    raise MissingDependencyError(f"fastvol.monai needs MONAI: {_INSTALL}", install_hint=_INSTALL) from exc

from .api import load
from .errors import InputError, UnsupportedError
from .nifti import itk_layout
from .options import Options
from .volume import Volume

__all__ = ["FastvolReader", "restore_url"]

#: Suffixes that are not DICOM: other MONAI readers own them.
NOT_DICOM = (".nii", ".nii.gz", ".nrrd", ".mha", ".mhd", ".png", ".jpg", ".jpeg", ".bmp",
             ".tif", ".tiff", ".npy", ".npz", ".zarr", ".h5", ".json", ".csv")  # fmt: skip
_COLLAPSED_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):/(?!/)")


def restore_url(name: str) -> str:
    """``s3:/bucket/key`` (a URL after ``pathlib.Path``) -> ``s3://bucket/key``; others unchanged.

    A name that exists as a local path is left alone; one-letter schemes are drive letters.
    """
    if _COLLAPSED_URL.match(name) and not os.path.exists(name):
        return _COLLAPSED_URL.sub(r"\1://", name, count=1)
    return name


class FastvolReader(ImageReader):
    """Load DICOM series (folders, files, URLs) with fastvol inside MONAI's LoadImage.

    Parameters
    ----------
    layout
        ``"itk"`` (default): ITKReader's array order and RAS affine. ``"fastvol"``:
        ``(..., slice, row, column)`` and the LPS affine.
    options
        :class:`~fastvol.Options` for every load; ``**overrides`` change single fields
        (``gaps="fill"``, ``threads=1``, ...).
    series
        Which series when a folder holds several (as :func:`fastvol.load` takes it).
    """

    def __init__(self, layout: str = "itk", options: Options | None = None, *,
                 series: Any = None, **overrides: Any) -> None:  # fmt: skip
        super().__init__()
        if layout not in ("itk", "fastvol"):
            raise InputError(f"layout={layout!r}: expected 'itk' or 'fastvol'")
        self.layout = layout
        self.options = Options.resolve(options, overrides)
        self.series = series

    def verify_suffix(self, filename: Sequence[os.PathLike | str] | os.PathLike | str) -> bool:
        """True unless a name ends in a suffix another MONAI reader owns (NIfTI, PNG, ...)."""
        return all(not os.fspath(f).lower().rstrip("/").endswith(NOT_DICOM) for f in ensure_tuple(filename))

    def read(self, data: Sequence[os.PathLike | str] | os.PathLike | str, **kwargs: Any) -> Any:
        """Load each name (a series folder, files, or a URL): one :class:`~fastvol.Volume` each."""
        options = self.options.replace(**kwargs) if kwargs else self.options
        volumes = [load(restore_url(os.fspath(name)), options, series=self.series)
                   for name in ensure_tuple(data)]  # fmt: skip
        return volumes if len(volumes) > 1 else volumes[0]

    def get_data(self, img: Volume | Sequence[Volume]) -> tuple[np.ndarray, dict]:
        """Array and meta dict of one Volume, or of several stacked as channels (as ITKReader)."""
        arrays: list[np.ndarray] = []
        meta: dict[str, Any] = {}
        for vol in ensure_tuple(img):
            array, header = self._one(vol)
            arrays.append(array)
            meta = meta or header
        if len(arrays) == 1:
            return arrays[0], meta
        channel = meta[MetaKeys.ORIGINAL_CHANNEL_DIM]
        if isinstance(channel, float) and np.isnan(channel):
            meta[MetaKeys.ORIGINAL_CHANNEL_DIM] = 0
            return np.stack(arrays, axis=0), meta
        return np.concatenate(arrays, axis=int(channel)), meta

    def _one(self, vol: Volume) -> tuple[np.ndarray, dict[str, Any]]:
        if vol.is_rgb:
            return self._one_rgb(vol)
        spatial = vol.array.ndim == 3
        if self.layout == "itk":
            array, affine = itk_layout(vol.array, vol.affine)
            if vol.array.ndim > 4:  # several leading axes: one channel axis, volumes last
                array = array.reshape(array.shape[:3] + (-1,))
            space, channel = SpaceKeys.RAS, float("nan") if spatial else -1
            shape = np.asarray(array.shape[:3])
            spacing = np.asarray(vol.spacing[::-1])
        else:
            array, affine = vol.array, vol.affine
            if vol.array.ndim > 4:
                array = array.reshape((-1,) + array.shape[-3:])
            space, channel = SpaceKeys.LPS, float("nan") if spatial else 0
            shape = np.asarray(array.shape[-3:])
            spacing = np.asarray(vol.spacing)
        return np.ascontiguousarray(array), _meta(spacing, affine, shape, space, channel)

    def _one_rgb(self, vol: Volume) -> tuple[np.ndarray, dict[str, Any]]:
        """Colour, ``(slice, row, column, 3)``: the colour axis stays last (channel dim -1)."""
        if vol.array.ndim != 4:
            raise UnsupportedError(f"{vol.geometry.series}: a 4D colour series ({vol.array.shape}) has no "
                                   f"MONAI layout here; use fastvol.load (..., slice, row, column, 3)")  # fmt: skip
        if self.layout == "itk":
            data, affine = itk_layout(np.moveaxis(vol.array, -1, 0), vol.affine)  # (c, r, k, 3)
            space, shape, spacing = SpaceKeys.RAS, np.asarray(data.shape[:3]), np.asarray(vol.spacing[::-1])
        else:
            data, affine = vol.array, vol.affine
            space, shape, spacing = SpaceKeys.LPS, np.asarray(data.shape[:3]), np.asarray(vol.spacing)
        return np.ascontiguousarray(data), _meta(spacing, affine, shape, space, -1)


def _meta(spacing: np.ndarray, affine: np.ndarray, shape: np.ndarray, space: Any,
          channel: float) -> dict[str, Any]:  # fmt: skip
    """The meta keys ITKReader's get_data fills, for one volume."""
    return {
        "spacing": spacing,
        MetaKeys.ORIGINAL_AFFINE: affine.copy(),
        MetaKeys.AFFINE: affine.copy(),
        MetaKeys.SPATIAL_SHAPE: shape,
        MetaKeys.SPACE: space,
        MetaKeys.ORIGINAL_CHANNEL_DIM: channel,
    }
