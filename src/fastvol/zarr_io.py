"""Zarr: a volume as an OME-Zarr image (zarr v3) that keeps the full affine and a NIfTI header.

Layout of ``name.zarr/`` (a folder, written atomically: built under a hidden temporary name
beside the target, then renamed into place):

- ``0``: the array, fastvol order ``(..., slice, row, column)`` (OME axes ``t, z, y, x``:
  slices are OME's ``z``), chunked per group of slices (whole rows and columns, so reading a
  slice range touches only its chunks), compressed with Blosc LZ4 + byte shuffle (fast to
  decode, about as small as zlib on CT).
- colour (``rgb=True``, :attr:`Volume.is_rgb`): ``0`` holds ``(..., 3, slice, row, column)``,
  OME axes ``(t,) c, z, y, x`` (OME-Zarr puts the channel axis before the spatial ones), and
  ``fastvol.channels`` is ``"RGB"``; :func:`read_zarr` moves the colour axis back last.
- group attributes ``ome``: OME-Zarr 0.5 ``multiscales`` (one scale): axes with units
  (millimetre), ``scale`` (the spacing) and ``translation`` (the origin). OME-Zarr cannot say
  rotation, so a reader that wants the orientation reads ``fastvol.affine_lps`` (4x4, ``(slice,
  row, column)`` -> LPS mm, the same as :attr:`Volume.affine`) or ``nifti``.
- ``nifti``: a uint8 array holding the 348-byte NIfTI-1 header of the same data as
  :func:`fastvol.nifti.write_nifti` writes it (``(column, row, slice)``, RAS qform and sform,
  code 1), the header NIfTI-Zarr readers look for; needs nibabel, and is left out without it.

Only :func:`read_zarr` of this module is needed to read it back, but plain ``zarr`` reads it too:
``zarr.open_group(path)["0"][:]`` and ``.attrs["fastvol"]["affine_lps"]``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from typing import Any

import numpy as np

from .atomic import TMP_MARK, cannot_write, remove_stale
from .errors import FastvolError, InputError, MissingDependencyError, PathNotFoundError, map_exceptions

__all__ = ["read_zarr", "write_zarr"]

_INSTALL = "pip install 'fastvol[zarr]'"
#: Bytes per chunk to aim at: big enough for the codec to pay, small enough to read parts.
CHUNK_BYTES = 4 << 20


def _zarr() -> Any:
    try:
        import zarr
    except ImportError as exc:
        raise MissingDependencyError(f"Zarr needs zarr>=3: {_INSTALL}", install_hint=_INSTALL) from exc
    return zarr


def slice_chunk(shape: tuple[int, ...], itemsize: int) -> tuple[int, ...]:
    """Chunk shape: one volume, ``k`` whole slices with ``k`` giving about :data:`CHUNK_BYTES`."""
    per_slice = max(1, shape[-1] * shape[-2] * itemsize)
    k = int(min(shape[-3], max(1, CHUNK_BYTES // per_slice)))
    return (1,) * (len(shape) - 3) + (k, shape[-2], shape[-1])


def _ome(shape: tuple[int, ...], affine: np.ndarray, name: str, rgb: bool = False) -> dict[str, Any]:
    spacing = np.linalg.norm(affine[:3, :3], axis=0)
    # OME has no rotation: the translation is the origin along each (unit) grid axis, so
    # scale and translation give positions in the grid's own rotated frame, in mm.
    origin = affine[:3, :3].T @ affine[:3, 3] / np.where(spacing > 0, spacing, 1.0)
    lead = len(shape) - 3
    axes = [{"name": "t" if i == 0 else f"v{i}", "type": "time" if i == 0 else "custom"} for i in range(lead)]
    if rgb:
        axes[-1] = {"name": "c", "type": "channel"}
    axes += [{"name": n, "type": "space", "unit": "millimeter"} for n in ("z", "y", "x")]
    transforms = [
        {"type": "scale", "scale": [1.0] * lead + [float(s) for s in spacing]},
        {"type": "translation", "translation": [0.0] * lead + [float(v) for v in origin]},
    ]
    return {"version": "0.5", "multiscales": [{"name": name, "axes": axes,
            "datasets": [{"path": "0", "coordinateTransformations": transforms}]}]}  # fmt: skip


def _nifti_header(array: np.ndarray, affine_lps: np.ndarray, rgb: bool = False) -> np.ndarray | None:
    try:
        import nibabel as nib
    except ImportError:
        return None
    from .nifti import SCANNER, nifti_layout, qform_fits, set_qform, to_rgb24

    data, affine_ras = nifti_layout(to_rgb24(array) if rgb else array, affine_lps)
    header = nib.Nifti1Header()
    header.set_data_shape(data.shape)
    header.set_data_dtype(data.dtype)
    # As write_nifti: a qform only where the nearest rigid form stands for the affine.
    if qform_fits(affine_ras):
        set_qform(header, affine_ras)
    else:
        header.set_qform(None, code=0)
    header.set_sform(affine_ras, code=SCANNER)
    header.set_xyzt_units("mm", "sec")
    return np.frombuffer(header.binaryblock, dtype=np.uint8).copy()


@contextlib.contextmanager
def _atomic_folder(target: str) -> Any:
    folder, name = os.path.split(os.path.abspath(target))
    if not os.path.isdir(folder):
        raise InputError(f"{target}: folder {folder} does not exist", files=[target])
    if os.path.exists(target) and not os.path.isfile(os.path.join(target, "zarr.json")):
        raise InputError(f"{target}: exists and is not a Zarr store fastvol wrote; remove it or "
                         f"choose another name", files=[target])  # fmt: skip
    remove_stale(target)
    try:
        tmp = tempfile.mkdtemp(dir=folder, prefix=f".{name}{TMP_MARK}{os.getpid()}-")
    except OSError as exc:
        raise cannot_write(target, exc) from exc
    try:
        yield tmp
        if os.path.exists(target):  # replace a previous store: move it aside first
            old = tempfile.mkdtemp(dir=folder, prefix=f".{name}{TMP_MARK}old-")
            os.replace(target, os.path.join(old, name))
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError) and not isinstance(exc, FastvolError):
            raise cannot_write(target, exc) from exc
        raise


def write_zarr(
    path: str | os.PathLike[str],
    array: np.ndarray,
    affine_lps: np.ndarray,
    *,
    name: str = "",
    chunks: tuple[int, ...] | None = None,
    rgb: bool = False,
) -> str:
    """Write ``array`` (``(..., slice, row, column)``) and its LPS affine as an OME-Zarr store.

    Parameters
    ----------
    rgb
        ``array`` is colour, ``(..., slice, row, column, 3)`` uint8: stored channel first,
        ``(..., 3, slice, row, column)`` (OME axes ``c, z, y, x``).
    name
        Image name in the OME metadata (e.g. the series id).
    chunks
        Chunk shape; default one volume of whole slices, about 4 MiB (:func:`slice_chunk`).

    Returns
    -------
    str
        ``path``.
    """
    target = os.fspath(path)
    zarr = _zarr()
    from zarr.codecs import BloscCodec

    if array.ndim < 3:
        raise InputError(f"{target}: a volume has at least 3 axes, got shape {array.shape}", files=[target])
    affine = np.asarray(affine_lps, dtype=np.float64)
    header = _nifti_header(array, affine, rgb)  # checks a colour array's shape and dtype
    if rgb:
        array = np.moveaxis(array, -1, -4)  # (..., 3, slice, row, column): OME's c before z, y, x
    chunk = chunks or slice_chunk(array.shape, array.dtype.itemsize)
    with _atomic_folder(target) as tmp, map_exceptions(f"{target}: writing Zarr", files=[target]):
        fastvol = {"affine_lps": affine.tolist(), "axes": ["slice", "row", "column"]}
        if rgb:
            fastvol.update(channels="RGB", axes=["channel", "slice", "row", "column"])
        attrs = {"ome": _ome(array.shape, affine, name, rgb), "fastvol": fastvol}
        group = zarr.open_group(tmp, mode="w", zarr_format=3, attributes=attrs)
        dims = [f"v{i}" for i in range(array.ndim - 3)] + ["z", "y", "x"]
        if dims and array.ndim > 3:
            dims[0] = "t"
        if rgb:
            dims[-4] = "c"
        out = group.create_array("0", shape=array.shape, dtype=array.dtype, chunks=chunk,
                                 compressors=[BloscCodec(cname="lz4", clevel=5, shuffle="shuffle")],
                                 dimension_names=dims, fill_value=0)  # fmt: skip
        out[...] = array
        if header is not None:
            group.create_array("nifti", data=header, chunks=header.shape, compressors=None)
    return target


def read_zarr(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Read a store :func:`write_zarr` wrote: ``(array (..., slice, row, column), LPS affine, attrs)``.

    Colour (``attrs["fastvol"]["channels"] == "RGB"``): ``(..., slice, row, column, 3)``.
    """
    target = os.fspath(path)
    zarr = _zarr()
    if not os.path.exists(target):
        raise PathNotFoundError(f"{target}: no such Zarr store", files=[target])
    with map_exceptions(f"{target}: reading Zarr", files=[target]):
        group = zarr.open_group(target, mode="r")
        attrs = dict(group.attrs)
        if "fastvol" not in attrs:
            raise InputError(f"{target}: not a Zarr store written by fastvol (no 'fastvol' "
                             f"attribute with the affine)", files=[target])  # fmt: skip
        array = np.asarray(group["0"][...])
        if attrs["fastvol"].get("channels") == "RGB":
            array = np.ascontiguousarray(np.moveaxis(array, -4, -1))
        affine = np.array(attrs["fastvol"]["affine_lps"], dtype=np.float64)
    return array, affine, attrs
