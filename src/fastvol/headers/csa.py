"""Siemens CSA headers: how a mosaic image splits into slices, read in the header pass.

Classic Siemens EPI, DWI and fMRI files (ImageType contains ``MOSAIC``) store every slice of one
volume as a tile of one large 2D image. The number of tiles in use is ``NumberOfImagesInMosaic``,
in the private Siemens CSA image header (0029,1010) or in the Siemens MR header (0019,100A); the
stored slice direction is the CSA ``SliceNormalVector``. :func:`read_mosaic_info` reads them
(through a byte source) into a :class:`MosaicInfo`, which the header pass stores in
``HeaderRecord.mosaic`` so planning reads no file. Cutting and placing the tiles is
:mod:`fastvol.mosaic`'s. pydicom is imported only inside :func:`read_mosaic_info`.
"""

from __future__ import annotations

import functools
import math
import re
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np

from .._frozen import frozen
from ..errors import CorruptFileError, map_exceptions
from ..numeric import median
from ..sources import ByteSource

__all__ = [
    "CSA_MAX_ITEMS",
    "CSA_MAX_TAGS",
    "MosaicInfo",
    "parse_csa_header",
    "read_mosaic_info",
]

#: Largest tag count a CSA header may declare before we call it corrupt (real headers hold ~100).
CSA_MAX_TAGS = 1000
#: Largest item count one CSA tag may declare before we call it corrupt.
CSA_MAX_ITEMS = 1000

_CSA2_MAGIC = b"SV10"
_CSA_TAG = struct.Struct("<64si4s3i")  # name, vm, vr, syngodt, n_items, check (77 or 205)
_CSA_ITEM = struct.Struct("<4i")


@frozen(slots=True)
class MosaicInfo:
    """How one Siemens mosaic image splits into slices (plain, picklable values).

    Attributes
    ----------
    n_images
        Tiles that hold slices (NumberOfImagesInMosaic); the rest of the grid is blank.
    tiles_per_side
        Tiles along each side of the square grid: ``ceil(sqrt(n_images))``.
    tile_rows, tile_cols
        Pixels per tile: mosaic Rows and Columns divided by ``tiles_per_side``.
    mosaic_rows, mosaic_cols
        Rows and Columns of the whole mosaic image.
    slice_normal
        CSA SliceNormalVector (LPS unit vector): stored tile ``k + 1`` lies one step from tile
        ``k`` along it. ``None`` when the CSA header lacks it (then ``row x column`` is assumed).
    ascending
        Whether stored tiles advance along ``n = row x column`` (the CSA normal agrees with the
        cross product of ImageOrientationPatient); ``False`` for Siemens' right-to-left sagittals.
    n_images_source
        Where ``n_images`` came from: ``"CSA NumberOfImagesInMosaic"`` or ``"(0019,100A)"``.
    protocol_slice_step
        Distance (mm) between adjacent slice centres from the ASCCONV protocol (``sSliceArray``)
        in the CSA series header, for cross-checks; ``None`` when absent.
    """

    n_images: int
    tiles_per_side: int
    tile_rows: int
    tile_cols: int
    mosaic_rows: int
    mosaic_cols: int
    slice_normal: tuple[float, float, float] | None
    ascending: bool
    n_images_source: str
    protocol_slice_step: float | None = None

    @classmethod
    def from_sizes(
        cls,
        n_images: int,
        mosaic_rows: int,
        mosaic_cols: int,
        *,
        slice_normal: Sequence[float] | None = None,
        ascending: bool = True,
        n_images_source: str = "given",
        protocol_slice_step: float | None = None,
    ) -> MosaicInfo:
        """Derive the tile grid from the image count and the mosaic size.

        Raises
        ------
        ValueError
            When ``n_images < 1`` or the mosaic does not split into whole square-grid tiles.
        """
        if n_images < 1:
            raise ValueError(f"NumberOfImagesInMosaic {n_images} is not positive")
        side = math.isqrt(n_images - 1) + 1  # ceil(sqrt(n)) without float rounding
        if mosaic_rows % side or mosaic_cols % side:
            raise ValueError(
                f"a {mosaic_rows}x{mosaic_cols} mosaic does not split into {side}x{side} tiles "
                f"for {n_images} images"
            )
        normal: tuple[float, float, float] | None = None
        if slice_normal is not None:
            x, y, z = (float(v) for v in slice_normal)
            normal = (x, y, z)
        return cls(
            n_images=int(n_images), tiles_per_side=side, tile_rows=mosaic_rows // side,
            tile_cols=mosaic_cols // side, mosaic_rows=int(mosaic_rows),
            mosaic_cols=int(mosaic_cols), slice_normal=normal,
            ascending=bool(ascending), n_images_source=n_images_source,
            protocol_slice_step=protocol_slice_step,
        )  # fmt: skip


# --- CSA header -------------------------------------------------------------------------------


def parse_csa_header(data: bytes) -> dict[str, list[str]]:
    """Parse a Siemens CSA header (SV10 "CSA2" or the older "CSA1" layout) into strings.

    Parameters
    ----------
    data
        The bytes of (0029,xx10) "CSA Image Header Info" or (0029,xx20) "CSA Series Header Info".

    Returns
    -------
    dict
        Tag name -> its values as stripped strings (empty trailing items dropped); numbers are left
        for the caller to convert, since only a few tags are ever needed.

    Raises
    ------
    ValueError
        When the bytes do not describe a CSA header (absurd counts, items past the end).
    """
    buf = bytes(data)
    csa2 = buf[:4] == _CSA2_MAGIC
    ptr = 8 if csa2 else 0  # CSA2: "SV10" + 4 unused bytes
    if len(buf) < ptr + 8:
        raise ValueError(f"CSA header of {len(buf)} bytes is too short")
    n_tags, _check = struct.unpack_from("<2I", buf, ptr)
    ptr += 8
    if not 0 < n_tags <= CSA_MAX_TAGS:
        raise ValueError(f"CSA header declares {n_tags} tags")
    tags: dict[str, list[str]] = {}
    first_n_items = 0
    for tag_no in range(n_tags):
        if ptr + _CSA_TAG.size > len(buf):
            raise ValueError(f"CSA tag {tag_no} of {n_tags} starts past the end ({len(buf)} bytes)")
        raw_name, vm, _vr, _syngodt, n_items, _ = _CSA_TAG.unpack_from(buf, ptr)
        ptr += _CSA_TAG.size
        if not 0 <= n_items <= CSA_MAX_ITEMS:
            raise ValueError(f"CSA tag {tag_no} declares {n_items} items")
        if tag_no == 1:
            # CSA1 item lengths are offset by the second tag's item count (a quirk of the format).
            first_n_items = n_items
        n_values = vm if vm > 0 else n_items
        values: list[str] = []
        for item_no in range(n_items):
            if ptr + _CSA_ITEM.size > len(buf):
                raise ValueError(f"CSA tag {tag_no} item {item_no} starts past the end")
            x0, x1, _x2, _x3 = _CSA_ITEM.unpack_from(buf, ptr)
            ptr += _CSA_ITEM.size
            length = x1 if csa2 else x0 - first_n_items
            if length < 0 or ptr + length > len(buf):
                if csa2:
                    raise ValueError(f"CSA tag {tag_no} item {item_no} runs past the end")
                break  # CSA1 headers are often truncated; keep what was read
            if item_no < n_values and length:
                text = buf[ptr : ptr + length].split(b"\0", 1)[0].decode("latin-1").strip()
                values.append(text)
            ptr += length + (-length % 4)  # items are padded to 4-byte boundaries
        name = raw_name.split(b"\0", 1)[0].decode("latin-1")
        while values and not values[-1]:
            values.pop()
        tags[name] = values
    return tags


def _csa_numbers(tags: dict[str, list[str]], name: str) -> list[float]:
    out = []
    for text in tags.get(name, []):
        try:
            out.append(float(text))
        except ValueError:
            raise ValueError(f"CSA tag {name} holds a non-number {text!r}") from None
    return out


_ASCCONV = re.compile(rb"### ASCCONV BEGIN[^\n]*###(.*?)### ASCCONV END ###", re.DOTALL)
_SLICE_POSITION = re.compile(
    r"^sSliceArray\.asSlice\[(\d+)\]\.sPosition\.d(Sag|Cor|Tra)\s*=\s*([-+0-9.eE]+)",
    re.MULTILINE,
)


def _protocol_slice_step(series_csa: bytes | None) -> float | None:
    """Median distance between adjacent slice centres in the ASCCONV ``sSliceArray``."""
    if not series_csa:
        return None
    return _protocol_slice_step_cached(bytes(series_csa))


@functools.lru_cache(maxsize=16)
def _protocol_slice_step_cached(series_csa: bytes) -> float | None:
    # The series header repeats in every file of a series: memoised on its bytes (a raised
    # ValueError is not cached).
    match = _ASCCONV.search(series_csa)
    if match is None:
        return None
    text = match.group(1).decode("latin-1")
    axis = {"Sag": 0, "Cor": 1, "Tra": 2}
    centres: dict[int, list[float]] = {}
    for index, name, value in _SLICE_POSITION.findall(text):
        # Absent dSag/dCor/dTra entries mean 0 in Siemens' protocol text.
        centres.setdefault(int(index), [0.0, 0.0, 0.0])[axis[name]] = float(value)
    if len(centres) < 2:
        return None
    points = np.array([centres[k] for k in sorted(centres)])
    gaps = np.linalg.norm(np.diff(points, axis=0), axis=1)
    return float(median(gaps))


# --- reading ----------------------------------------------------------------------------------


def _private_value(ds: Any, group: int, creator: str, element: int) -> Any:
    """The value of a private element, or ``None`` when the block or element is absent."""
    try:
        return ds.private_block(group, creator)[element].value
    except (KeyError, ValueError):
        return None


def read_mosaic_info(source: ByteSource) -> MosaicInfo | None:
    """Read how a Siemens mosaic file splits into slices, or ``None`` for any other image.

    Parameters
    ----------
    source
        A DICOM file (its ``name`` names it in messages). Pixel data is not read.

    Returns
    -------
    MosaicInfo or None
        ``None`` when ImageType lacks ``MOSAIC``.

    Raises
    ------
    CorruptFileError
        The file says it is a mosaic but its CSA header cannot be parsed, the image count is
        missing or does not fit the image size. The message names the file.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    from .pydicom_reader import open_source

    path = source.name
    # Whatever else pydicom or the values raise (KeyError, NotImplementedError, ...) leaves as
    # a fastvol error naming the file: this function is public.
    with map_exceptions(f"{path}: mosaic header cannot be read", files=[path]):
        try:
            with open_source(source) as fp:
                ds = pydicom.dcmread(fp, stop_before_pixels=True)
        except (InvalidDicomError, OSError, EOFError, ValueError, struct.error) as exc:
            raise CorruptFileError(f"{path}: cannot read DICOM header ({exc})", files=[path]) from exc
        finally:
            source.close()
        return mosaic_info_from_dataset(ds, path)


def mosaic_info_from_dataset(ds: Any, path: str) -> MosaicInfo | None:
    """:func:`read_mosaic_info` of a pydicom Dataset already read (``path`` names it)."""
    image_type = [str(v).upper() for v in (ds.get("ImageType") or [])]
    if "MOSAIC" not in image_type:
        return None

    csa: dict[str, list[str]] = {}
    csa_bytes = _private_value(ds, 0x0029, "SIEMENS CSA HEADER", 0x10)
    series_bytes = _private_value(ds, 0x0029, "SIEMENS CSA HEADER", 0x20)
    try:
        if csa_bytes:
            csa = parse_csa_header(csa_bytes)
        n_csa = _csa_numbers(csa, "NumberOfImagesInMosaic")
        normal = _csa_numbers(csa, "SliceNormalVector")
    except (ValueError, struct.error, UnicodeDecodeError) as exc:
        raise CorruptFileError(
            f"{path}: Siemens CSA image header (0029,1010) is unreadable: {exc}", files=[path]
        ) from exc

    n_images: int | None = None
    source = ""
    if n_csa and n_csa[0] >= 1:
        n_images, source = int(n_csa[0]), "CSA NumberOfImagesInMosaic"
    else:
        value = _private_value(ds, 0x0019, "SIEMENS MR HEADER", 0x0A)
        if isinstance(value, bytes) and len(value) >= 2:
            # Implicit-VR files without a private dictionary entry give raw bytes.
            value = int.from_bytes(value[:2], "little" if ds.is_little_endian else "big")
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 1:
            n_images, source = int(value), "(0019,100A)"
    if n_images is None:
        raise CorruptFileError(
            f"{path}: ImageType says MOSAIC but neither the CSA image header nor (0019,100A) "
            f"gives NumberOfImagesInMosaic",
            files=[path],
        )

    slice_normal: tuple[float, float, float] | None = None
    if len(normal) >= 3 and np.all(np.isfinite(normal[:3])) and np.linalg.norm(normal[:3]) > 0:
        vec = np.asarray(normal[:3]) / np.linalg.norm(normal[:3])
        slice_normal = (float(vec[0]), float(vec[1]), float(vec[2]))
    ascending = True
    iop = ds.get("ImageOrientationPatient")
    if slice_normal is not None and iop is not None and len(iop) == 6:
        row, col = np.asarray(iop[:3], float), np.asarray(iop[3:], float)
        ascending = bool(np.dot(np.cross(row, col), slice_normal) >= 0)

    try:
        step = _protocol_slice_step(series_bytes)
    except ValueError:
        step = None  # the protocol is only a cross-check; never fail a load on it
    rows, cols = ds.get("Rows"), ds.get("Columns")
    if not rows or not cols:
        raise CorruptFileError(f"{path}: mosaic without Rows/Columns", files=[path])
    try:
        return MosaicInfo.from_sizes(
            n_images, int(rows), int(cols), slice_normal=slice_normal, ascending=ascending,
            n_images_source=source, protocol_slice_step=step,
        )  # fmt: skip
    except ValueError as exc:
        raise CorruptFileError(f"{path}: {exc}", files=[path]) from exc
