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

TorchIO 1.x reads the whole volume when it first asks for data, shape or affine. TorchIO 2.0
(written against its alpha, 2.0.0a2) asks a reader for a lazy backend: :func:`reader` returns a
:class:`Reader` that gives one, :class:`SeriesBackend`. Shape, affine and dtype then come from
the headers alone, and a crop (``image[..., 10:20]``, ``CropOrPad``, patches) reads only the
files of the slices and volumes it covers.
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

from .api import find_series, load
from .errors import InputError, map_exceptions
from .nifti import LPS_TO_RAS, SWAP_CS, nifti_layout
from .options import Options
from .plan import LoadPlan, make_plan
from .region import plan_extent, read_region
from .stack import execute
from .volume import Volume, from_nifti, from_zarr

__all__ = ["Reader", "SeriesBackend", "read", "reader"]


def _is_store(path: str) -> bool:
    """A ``.zarr`` store or a NIfTI file (read whole), not DICOM."""
    return path.lower().rstrip("/").endswith((".zarr", ".nii", ".nii.gz"))


def _volume(path: str, options: Options | None, series: Any) -> Volume:
    if path.lower().rstrip("/").endswith(".zarr"):
        return from_zarr(path)
    if _is_store(path):
        return from_nifti(path)
    return load(path, options, series=series)


def _channels_first(array: np.ndarray, rgb: bool) -> np.ndarray:
    """``(..., slice, row, column[, 3])`` -> ``(C, slice, row, column)``, C = volume (x colour)."""
    if rgb:
        array = np.moveaxis(array, -1, -4)  # (..., 3, slice, row, column)
    array = array if array.ndim > 3 else array[None]
    return array.reshape((-1,) + array.shape[-3:])


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
    array = _channels_first(vol.array, vol.is_rgb)  # (C, slice, row, column)
    data, affine_ras = nifti_layout(array, vol.affine)  # (column, row, slice, C)
    tensor = torch.from_numpy(np.ascontiguousarray(np.moveaxis(data, 3, 0)))
    return tensor, affine_ras


def reader(options: Options | None = None, *, series: Any = None, **overrides: Any) -> Reader:
    """A reader with options bound: ``tio.ScalarImage(p, reader=fastvol.torchio.reader(gaps="fill"))``.

    Returns a :class:`Reader`: it reads as :func:`read` does, pickles, and on TorchIO 2.0 gives
    the image a lazy :class:`SeriesBackend`.
    """
    return Reader(Options.resolve(options, overrides), series=series)


class Reader:
    """A TorchIO reader: called, it is :func:`read` with bound options; on TorchIO 2.0 it is also
    a ``LazyReader`` (``create_backend``), so images read through it are lazy.

    TorchIO's ``reader_kwargs`` are option overrides (``reader_kwargs={"gaps": "fill"}``).
    Holds plain values only: it pickles and opens nothing.
    """

    def __init__(self, options: Options | None = None, *, series: Any = None) -> None:
        self.options = Options.resolve(options, {})
        self.series = series

    def __call__(self, path: str | os.PathLike[str], **overrides: Any) -> tuple[torch.Tensor, np.ndarray]:
        return read(path, Options.resolve(self.options, overrides), series=self.series)

    def create_backend(self, request: Any) -> Any:
        """TorchIO 2.0's hook: a :class:`SeriesBackend` for ``request.path`` (nothing read yet).

        A source without a path (a remote or open Zarr store) goes to TorchIO's own backends.
        """
        if request.path is None:
            import dataclasses

            from torchio.data.backends import resolve_backend

            return resolve_backend(dataclasses.replace(request, reader=None))
        options = Options.resolve(self.options, dict(request.reader_kwargs))
        return SeriesBackend(request.path, options, series=self.series, affine=request.affine)

    def __repr__(self) -> str:
        return f"fastvol.torchio.Reader({self.options!r}, series={self.series!r})"


def _as_slices(item: Any, ndim: int = 4) -> tuple[slice, ...]:
    """TorchIO's indexing of ``(C, W, H, D)``: ints keep their axis, one ``...``, missing trailing
    axes whole (as ``torchio.data.backends.normalize_index``), with fastvol's errors."""
    items = item if isinstance(item, tuple) else (item,)
    dots = [k for k, i in enumerate(items) if i is Ellipsis]  # `is`: arrays in `items` cannot ==
    if len(dots) > 1:
        raise InputError(f"index {item!r}: at most one '...'")
    if dots:
        at = dots[0]
        items = items[:at] + (slice(None),) * max(ndim - len(items) + 1, 0) + items[at + 1 :]
    if len(items) > ndim:
        raise InputError(f"index {item!r}: at most {ndim} indices (C, W, H, D)")
    out = []
    for i in items:
        if isinstance(i, slice):
            out.append(i)
        elif isinstance(i, (int, np.integer)) and not isinstance(i, bool):
            out.append(slice(int(i), None) if i == -1 else slice(int(i), int(i) + 1))
        else:
            raise InputError(f"index {item!r}: expected ints, slices or '...', got {type(i).__name__}")
    return tuple(out) + (slice(None),) * (ndim - len(out))


class SeriesBackend:
    """A lazy ``(C, W, H, D)`` image for TorchIO 2.0 (its ``ImageDataBackend``), equal to :func:`read`.

    On first use the series is scanned and planned (headers only): :attr:`shape`,
    :attr:`affine` and :attr:`dtype` come from the plan. Indexing reads only the files of the
    slices (``D``) and volumes (``C``) asked for; rows and columns are cut from whole frames.
    Exceptions: a plan that resamples or demosaics is read whole per request
    (:func:`fastvol.region.read_region`), and a ``.zarr`` store or NIfTI file is read whole
    on first use and kept. Pickles (with its plan once made, never with pixels).

    Parameters
    ----------
    path
        What :func:`read` takes: a DICOM folder or file, a ``.zarr`` store, a NIfTI file.
    options, series
        As :func:`read`'s.
    affine
        A 4x4 RAS affine to report instead of the series' (TorchIO's ``affine=`` override).
    """

    def __init__(self, path: str | os.PathLike[str], options: Options | None = None, *,
                 series: Any = None, affine: Any = None) -> None:  # fmt: skip
        self.path = os.fspath(path)
        self.options = Options.resolve(options, {})
        self.series = series
        self._affine = None if affine is None else torch.as_tensor(np.asarray(affine, dtype=np.float64))
        self._plan: LoadPlan | None = None
        self._where: tuple[str, list[str], str] = (self.path, [], "")  # map_exceptions context
        self._whole: tuple[torch.Tensor, np.ndarray] | None = None  # a store's (tensor, affine)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_whole": None}  # pixels stay in this process

    # -- what the headers say -------------------------------------------------------------------

    def plan(self) -> LoadPlan | None:
        """The series' load plan (made on first call, from headers); ``None`` for a store."""
        if self._plan is None and not _is_store(self.path):
            chosen = find_series(self.path, self.options, series=self.series)
            self._where = (f"series {chosen.id}", list(chosen.files[:3]), chosen.uid)
            with self._errors():
                self._plan = make_plan(chosen, self.options)
        return self._plan

    def _errors(self) -> Any:
        label, files, uid = self._where
        return map_exceptions(label, files=files, uid=uid)

    def _store(self) -> tuple[torch.Tensor, np.ndarray]:
        if self._whole is None:
            self._whole = read(self.path, self.options, series=self.series)
        return self._whole

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """``(C, W, H, D)``."""
        plan = self.plan()
        if plan is None:
            c, w, h, d = self._store()[0].shape
            return int(c), int(w), int(h), int(d)
        n_volumes, n_slices = plan_extent(plan)
        rows, columns = plan.pixel.rows, plan.pixel.columns
        return n_volumes * (3 if self._rgb(plan) else 1), columns, rows, n_slices

    @property
    def affine(self) -> torch.Tensor:
        """4x4 float64 RAS affine of ``(W, H, D)``, as :func:`read` returns it."""
        if self._affine is not None:
            return self._affine
        plan = self.plan()
        affine = self._store()[1] if plan is None else LPS_TO_RAS @ plan.affine @ SWAP_CS
        return torch.as_tensor(np.asarray(affine, dtype=np.float64))

    @property
    def dtype(self) -> np.dtype:
        """The load's numpy dtype (what :func:`read`'s tensor holds)."""
        plan = self.plan()
        if plan is None:
            return self._store()[0].numpy().dtype
        return np.dtype(plan.dtype)

    @staticmethod
    def _rgb(plan: LoadPlan) -> bool:
        return plan.meta.get("channels") == "RGB"  # as Volume.is_rgb

    # -- pixels ---------------------------------------------------------------------------------

    def to_tensor(self) -> torch.Tensor:
        """The whole image, as :func:`read`'s tensor."""
        plan = self.plan()
        if plan is None:
            return self._store()[0].clone()
        with self._errors():
            array = execute(plan, threads=self.options.threads)
        return _to_torch(_channels_first(array, self._rgb(plan)), slice(None), slice(None))

    def __getitem__(self, item: Any) -> torch.Tensor:
        """``(C, W, H, D)`` indexed as TorchIO does (no axis dropped), reading only what it needs."""
        sc, sw, sh, sd = _as_slices(item)
        plan = self.plan()
        if plan is None:
            return self._store()[0][sc, sw, sh, sd].clone()
        c, w, h, d = self.shape
        channels, depth = range(c)[sc], range(d)[sd]
        per = 3 if self._rgb(plan) else 1
        volumes = list(dict.fromkeys(ch // per for ch in channels))  # first-seen order
        if not channels or not depth or not range(w)[sw] or not range(h)[sh]:
            empty = (len(channels), len(range(w)[sw]), len(range(h)[sh]), len(depth))
            return torch.from_numpy(np.empty(empty, dtype=self.dtype))
        with self._errors():
            region = read_region(plan, volumes, depth, threads=self.options.threads)
        array = _channels_first(region, per == 3)  # (volume x colour, slice, row, column)
        where = {v: i for i, v in enumerate(volumes)}
        picks = [where[ch // per] * per + ch % per for ch in channels]
        if picks != list(range(len(array))):
            array = array[picks]
        return _to_torch(array, sh, sw)

    def __repr__(self) -> str:
        return f"fastvol.torchio.SeriesBackend({self.path!r})"


def _to_torch(array: np.ndarray, rows: slice, columns: slice) -> torch.Tensor:
    """``(C, slice, row, column)`` -> TorchIO's ``(C, W, H, D)`` tensor, rows and columns cut."""
    data = array[:, :, rows, columns].transpose(0, 3, 2, 1)
    return torch.from_numpy(np.ascontiguousarray(data))
