"""NIfTI: the one place fastvol's ``(..., slice, row, column)`` + LPS turns into NIfTI's layout and back.

NIfTI readers (nibabel, ITK, MONAI, TorchIO, FSL) index ``(i, j, k, t, ...)`` and map ``(i, j, k)``
to RAS mm. fastvol writes ``i = column``, ``j = row``, ``k = slice`` (no flips: voxel ``(i, j, k)``
is fastvol's ``[k, j, i]``), leading axes (volumes) after the spatial ones, and the RAS affine of
that order in the sform, code 1 (scanner anatomical), and its nearest rigid form in the qform,
code 1, when the axes are orthogonal within ``TILT_TOLERANCE_DEG`` (rounding in the headers
leaves up to some 3e-3 degrees); the sheared affine of a tilted stack kept as it is (tilt over the
tolerance) only in the sform, qform code 0, since a qform cannot hold a shear),
units mm and seconds, and ``pixdim[4]`` the repetition time in seconds when it is known.

dcm2niix writes the same voxel centres in another index order. For classic and mosaic series
it also puts columns along ``i`` but stores the rows bottom-up (``j = rows - 1 - row``) and
mostly orders ``k`` ascending along the slice normal (fastvol: descending, as highdicom), so
its ``qfac`` is often -1 where fastvol's is +1; for some enhanced multi-frame series it
permutes the axes as well. Colour (``meta["channels"] == "RGB"``, ``(..., slice, row, column,
3)`` uint8) is written as dcm2niix writes it, datatype RGB24 (128) over the spatial axes, and
read back with the colour axis last. Everything else matches: qform and sform codes 1, units mm and s,
``pixdim[4]`` the TR, the same voxel centres and values. Compare the two in world space
(``tests/test_writers.py`` does, against every single-file dcm2niix reference in the corpus),
never by array layout.

Functions here take and return plain arrays, so :class:`~fastvol.Volume` and the integrations
(MONAI, TorchIO) share one conversion.
"""

from __future__ import annotations

import os
from typing import Any, BinaryIO

import numpy as np

from .atomic import atomic_path
from .errors import InputError, MissingDependencyError, map_exceptions
from .options import TILT_TOLERANCE_DEG

__all__ = ["RGB24", "from_nifti_layout", "from_rgb24", "itk_layout", "nifti_layout", "qform_fits", "read_nifti",
           "set_qform", "shear_deg", "to_rgb24", "write_nifti"]

#: Flips the first two world axes: RAS = LPS_TO_RAS @ LPS (its own inverse).
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
#: Swaps index axes 0 and 2: ``(column, row, slice)`` <-> ``(slice, row, column)`` (its own inverse).
SWAP_CS = np.array([[0.0, 0, 1, 0], [0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1]])
#: NIfTI xform code for scanner anatomical coordinates (what DICOM positions are).
SCANNER = 1

_INSTALL = "pip install 'fastvol[nifti]'"

#: NIfTI's RGB24 voxel (datatype 128), as nibabel and dcm2niix store colour: one packed voxel.
RGB24 = np.dtype([("R", "u1"), ("G", "u1"), ("B", "u1")])


def to_rgb24(array: np.ndarray) -> np.ndarray:
    """``(..., slice, row, column, 3)`` uint8 -> ``(..., slice, row, column)`` of :data:`RGB24` (a view)."""
    if array.ndim < 4 or array.shape[-1] != 3 or array.dtype != np.uint8:
        from .errors import UnsupportedError

        raise UnsupportedError(f"a colour (RGB) volume is uint8 (..., slice, row, column, 3); got "
                               f"{array.dtype} {array.shape}: use Volume.to_npz for other colour data")  # fmt: skip
    return np.ascontiguousarray(array).view(RGB24)[..., 0]


def from_rgb24(array: np.ndarray) -> np.ndarray:
    """The inverse of :func:`to_rgb24`: a C-ordered ``(..., 3)`` uint8 copy."""
    out = np.empty(array.shape + (3,), dtype=np.uint8)
    for i, name in enumerate(("R", "G", "B")):
        out[..., i] = array[name]
    return out


def is_rgb24(dtype: np.dtype) -> bool:
    """Whether a structured dtype is NIfTI's RGB24 (three uint8 fields R, G, B)."""
    fields = dtype.fields
    return fields is not None and tuple(fields) == ("R", "G", "B") and \
        all(fields[n][0] == np.uint8 for n in fields)  # fmt: skip


def nifti_layout(array: np.ndarray, affine_lps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(..., slice, row, column)`` and its LPS affine -> ``(column, row, slice, ...)`` and RAS.

    The returned array is a view (a transpose); leading axes keep their order after the three
    spatial ones.
    """
    nd = array.ndim
    if nd < 3:
        raise InputError(f"a volume has at least 3 axes (slice, row, column), got shape {array.shape}")
    data = np.transpose(array, (nd - 1, nd - 2, nd - 3, *range(nd - 3)))
    return data, LPS_TO_RAS @ np.asarray(affine_lps, dtype=np.float64) @ SWAP_CS


def itk_layout(array: np.ndarray, affine_lps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(..., slice, row, column)`` + LPS -> ITK's DICOM order ``(column, row, k, ...)`` + RAS.

    ITK (GDCM) stacks slices ascending along the normal ``row x column``; fastvol descending
    (as highdicom). So ``k = n - 1 - slice``, and the RAS affine is what MONAI's ITKReader
    returns for the same series. The array is a view.
    """
    data, _ = nifti_layout(array[..., ::-1, :, :], affine_lps)
    n = array.shape[-3]
    flip = np.eye(4)
    flip[2, 2], flip[2, 3] = -1.0, n - 1.0  # (c, r, k) -> (c, r, n - 1 - k)
    _, affine_ras = nifti_layout(array, affine_lps)
    return data, affine_ras @ flip


def from_nifti_layout(data: np.ndarray, affine_ras: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The inverse of :func:`nifti_layout`: ``(i, j, k, ...)`` + RAS -> ``(..., slice, row, column)`` + LPS."""
    nd = data.ndim
    if nd < 3:
        raise InputError(f"a NIfTI image with fewer than 3 axes has no volume: shape {data.shape}")
    array = np.transpose(data, (*range(3, nd), 2, 1, 0))
    return array, LPS_TO_RAS @ np.asarray(affine_ras, dtype=np.float64) @ SWAP_CS


def shear_deg(affine: np.ndarray) -> float:
    """How far (degrees) the affine's axes are from orthogonal: the largest angle between an
    axis and the normal of the other two.

    0 for a rigid grid; for a tilted stack, its tilt (the angle of the slice axis to the
    normal of the image plane, as the geometry report's ``tilt``). Rounding in the headers'
    orientation and positions leaves up to some 3e-3 degrees. An axis of length 0 gives 90.
    """
    axes = np.asarray(affine, dtype=np.float64)[:3, :3]
    norms = np.linalg.norm(axes, axis=0)
    if not np.all(norms > 0):
        return 90.0
    unit = axes / norms
    worst = 0.0
    for k in range(3):
        normal = np.cross(unit[:, (k + 1) % 3], unit[:, (k + 2) % 3])
        size = np.linalg.norm(normal)
        if size == 0:
            return 90.0
        normal /= size  # arctan2, not arccos: exact for the 1e-6 rad that rounding leaves
        angle = np.arctan2(np.linalg.norm(np.cross(unit[:, k], normal)), abs(float(unit[:, k] @ normal)))
        worst = max(worst, float(np.degrees(angle)))
    return worst


def qform_fits(affine: np.ndarray, tolerance_deg: float = TILT_TOLERANCE_DEG) -> bool:
    """Whether a qform (rotation, zooms, flip) stands for ``affine``: axes orthogonal within
    ``tolerance_deg``, the tilt below which fastvol calls a stack untilted.

    The qform written is then the nearest rigid one (as nibabel and dcm2niix fit it); the sform
    keeps the exact affine.
    """
    return shear_deg(affine) <= tolerance_deg


def _quaternion_rotations(bcd: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotations that float32 ``quatern_b, c, d`` rows give as nibabel reads them, and which
    rows it reads at all (``a = sqrt(1 - b^2 - c^2 - d^2)``, 0 within 3 float32 eps)."""
    b, c, d = (bcd[:, i].astype(np.float64) for i in range(3))
    w2 = 1.0 - (b * b + c * c + d * d)
    eps = 3 * float(np.finfo(np.float32).eps)
    a = np.where(np.abs(w2) < eps, 0.0, np.sqrt(np.clip(w2, 0.0, None)))
    rot = np.stack([
        np.stack([a * a + b * b - c * c - d * d, 2 * (b * c - a * d), 2 * (b * d + a * c)], -1),
        np.stack([2 * (b * c + a * d), a * a + c * c - b * b - d * d, 2 * (c * d - a * b)], -1),
        np.stack([2 * (b * d - a * c), 2 * (c * d + a * b), a * a + d * d - c * c - b * b], -1),
    ], -2)  # fmt: skip
    return rot, w2 > -eps


def set_qform(header: Any, affine_ras: np.ndarray, reach: int = 3) -> None:
    """``header.set_qform(affine_ras, code=SCANNER)``, its quaternion rounded to the float32
    values that best give the rotation.

    NIfTI stores ``b, c, d`` as float32 and readers recompute ``a``: near a half turn (``a``
    small) plain rounding turns the axes by up to some 4e-5 rad (4e-3 mm across 100 mm).
    Trying the float32 values within ``reach`` units in the last place of each (343
    candidates) keeps the qform as close to the affine as the format allows. Within about
    0.01 deg of a half turn readers take ``a`` as 0 and no rounding helps (8e-5 rad).
    """
    header.set_qform(affine_ras, code=SCANNER)
    axes = np.asarray(affine_ras, dtype=np.float64)[:3, :3]
    unit = axes / np.linalg.norm(axes, axis=0)
    if np.linalg.det(unit) < 0:  # qfac -1: the quaternion holds the rest (as nibabel)
        unit[:, 2] *= -1
    u, _, vt = np.linalg.svd(unit)
    want = u @ vt  # the nearest rotation, which nibabel's quaternion stands for
    stored = np.array([[header[f"quatern_{c}"] for c in "bcd"]], dtype=np.float32)
    steps = np.arange(-reach, reach + 1, dtype=np.float32)
    near = [(v + steps * np.spacing(np.abs(v))).astype(np.float32) for v in stored[0]]
    grid = np.concatenate([stored, np.stack(np.meshgrid(*near, indexing="ij"), -1).reshape(-1, 3)])
    rot, readable = _quaternion_rotations(grid)
    err = np.where(readable, np.abs(rot - want).reshape(len(grid), -1).max(axis=1), np.inf)
    best = int(np.argmin(err))  # ties keep nibabel's own (row 0)
    header["quatern_b"], header["quatern_c"], header["quatern_d"] = grid[best]


def _nibabel() -> Any:
    try:
        import nibabel
    except ImportError as exc:
        raise MissingDependencyError(f"NIfTI needs nibabel: {_INSTALL}", install_hint=_INSTALL) from exc
    return nibabel


def _check_name(path: str) -> None:
    if not path.lower().endswith((".nii", ".nii.gz")):
        raise InputError(f"{path}: a NIfTI file name ends in .nii or .nii.gz", files=[path])


def write_nifti(
    path: str | os.PathLike[str] | BinaryIO,
    array: np.ndarray,
    affine_lps: np.ndarray,
    *,
    repetition_time_s: float | None = None,
    description: str = "",
    rgb: bool = False,
    qform: bool | None = None,
) -> str | BinaryIO:
    """Write ``array`` (``(..., slice, row, column)``) with its LPS affine as NIfTI-1, atomically.

    Parameters
    ----------
    path
        A file name (``.nii`` or ``.nii.gz``), written atomically; or a binary stream open for
        writing (a gzip stream, a socket), which gets the bytes of an uncompressed ``.nii``
        from its current position, header first (it is asked where it is, never to move).
    rgb
        ``array`` is colour, ``(..., slice, row, column, 3)`` uint8: written as dcm2niix writes
        colour, datatype RGB24 (128) with the three spatial axes ``(column, row, slice, ...)``.
    repetition_time_s
        Written to ``pixdim[4]`` (seconds) when given, as dcm2niix does; else 0 (unknown).
    description
        ``descrip`` (at most 80 bytes are kept).
    qform
        Whether to write the qform (code 1, the nearest rigid form of the affine) or leave it
        unset (code 0). By default, when :func:`qform_fits` (axes orthogonal within
        ``TILT_TOLERANCE_DEG``): rounding-level shear gets a qform, a real tilt does not,
        since a quaternion cannot hold a shear. The sform always holds the exact affine.

    Returns
    -------
    str or stream
        ``path``.
    """
    target: str | BinaryIO = path if not isinstance(path, (str, os.PathLike)) else os.fspath(path)
    if isinstance(target, str):
        _check_name(target)
    nib = _nibabel()
    data, affine_ras = nifti_layout(to_rgb24(array) if rgb else array, affine_lps)
    if data.dtype == np.bool_:
        data = data.astype(np.uint8)
    # The transposed view of a C-ordered array is Fortran-ordered, NIfTI's own order: nibabel
    # writes it without a copy (a C copy made it transpose twice, 8x slower).
    image = nib.Nifti1Image(data, affine_ras)
    header = image.header
    # A qform is a rotation, zooms and a flip: nibabel fits the nearest rigid one (polar
    # decomposition, as dcm2niix). Rounding-level shear moves no voxel by a measurable amount;
    # the shear of a tilted stack would, so then only the sform says where voxels are.
    if qform if qform is not None else qform_fits(affine_ras):
        set_qform(header, affine_ras)
    else:
        image.set_qform(None, code=0)
    image.set_sform(affine_ras, code=SCANNER)
    header.set_xyzt_units("mm", "sec")
    tr = repetition_time_s
    header["pixdim"][4] = float(tr) if tr is not None and np.isfinite(tr) and tr > 0 else 0.0  # 0: not known (not 1 s)
    if description:
        header["descrip"] = description.encode("ascii", "replace")[:79]
    if not isinstance(target, str):
        # The same bytes nib.save writes to a .nii file, into the caller's stream.
        image.to_file_map(image.make_file_map({"image": target}))
        return target
    with atomic_path(target) as tmp:
        nib.save(image, tmp)
    return target


def read_nifti(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Read a NIfTI file into fastvol's layout.

    Returns
    -------
    array
        ``(..., slice, row, column)``: the file's ``(i, j, k, t, ...)`` transposed (a copy, C order).
        Stored values unless the header scales them (``scl_slope``), then float as nibabel gives.
        Colour (datatype RGB24, as dcm2niix and :func:`write_nifti` write it): ``(..., slice, row,
        column, 3)`` uint8, and ``header["channels"]`` is ``"RGB"``.
    affine
        4x4 LPS affine of ``(slice, row, column)`` (from the sform when its code is set, else the
        qform, as nibabel chooses).
    header
        ``qform_code``, ``sform_code``, ``xyzt_units``, ``pixdim``, ``descrip``, plain values.

    Raises
    ------
    PathNotFoundError, CorruptFileError, InputError
        A missing, unreadable or malformed file, or one with fewer than 3 axes.
    """
    target = os.fspath(path)
    nib = _nibabel()
    if not os.path.exists(target):
        from .errors import PathNotFoundError

        raise PathNotFoundError(f"{target}: no such NIfTI file", files=[target])
    with map_exceptions(f"{target}: reading NIfTI", files=[target]):
        image = nib.load(target)
        data = np.asanyarray(image.dataobj)
        affine_ras = image.affine
        header = image.header
        info = {
            "qform_code": int(header["qform_code"]),
            "sform_code": int(header["sform_code"]),
            "xyzt_units": tuple(header.get_xyzt_units()),
            "pixdim": tuple(float(v) for v in header["pixdim"]),
            "descrip": bytes(header["descrip"]).split(b"\0")[0].decode("ascii", "replace"),
        }
        intent = int(header["intent_code"])
    rgb = is_rgb24(data.dtype)
    if not rgb and (intent == 2003 or data.dtype.names is not None):  # RGB_VECTOR (W,H,D,1,3), RGBA32
        from .errors import UnsupportedError

        raise UnsupportedError(f"{target}: colour NIfTI other than RGB24 (RGBA32, intent RGB_VECTOR) is "
                               f"not read; fastvol reads datatype RGB24 (128), as dcm2niix writes colour",
                               files=[target])  # fmt: skip
    array, affine = from_nifti_layout(data, affine_ras)
    if rgb:
        info["channels"] = "RGB"
        return from_rgb24(array), affine, info
    return np.ascontiguousarray(array), affine, info
