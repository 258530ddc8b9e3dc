"""Siemens mosaics: the CSA parser, demosaicing and mosaic geometry.

Synthetic mosaics (numpy only) pin the tile order and the affine; every real mosaic in the corpus
with a dcm2niix reference NIfTI is demosaiced, placed with :func:`mosaic_geometry`, and compared
with the reference in world space (voxel centres and values), whatever axis order dcm2niix chose.
"""

from __future__ import annotations

import json
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
from world import LPS_FROM_RAS, index_map, to_reference_layout

from fastvol.errors import CorruptFileError, GeometryError
from fastvol.mosaic import (
    MosaicInfo,
    demosaic,
    mosaic_geometry,
    parse_csa_header,
    read_mosaic_info,
)
from fastvol.sources import LocalFile

# --- synthetic -------------------------------------------------------------------------------


def _mosaic(n_images: int, side: int, r: int, c: int) -> np.ndarray:
    """A mosaic whose tile k holds 1000 * (k + 1) + pixel index (blank tiles stay 0)."""
    mosaic = np.zeros((side * r, side * c), dtype=np.int32)
    for k in range(n_images):
        i, j = divmod(k, side)
        tile = 1000 * (k + 1) + np.arange(r * c).reshape(r, c)
        mosaic[i * r : (i + 1) * r, j * c : (j + 1) * c] = tile
    return mosaic


def test_demosaic_3x3_grid_holding_7_images() -> None:
    info = MosaicInfo.from_sizes(7, 3 * 4, 3 * 5)
    assert (info.tiles_per_side, info.tile_rows, info.tile_cols) == (3, 4, 5)
    tiles = demosaic(_mosaic(7, 3, 4, 5), info)
    assert tiles.shape == (7, 4, 5)
    for k in range(7):
        np.testing.assert_array_equal(tiles[k], 1000 * (k + 1) + np.arange(20).reshape(4, 5))


def test_demosaic_keeps_leading_axes() -> None:
    info = MosaicInfo.from_sizes(7, 12, 15)
    stack = np.stack([_mosaic(7, 3, 4, 5), -_mosaic(7, 3, 4, 5)])
    tiles = demosaic(stack, info)
    assert tiles.shape == (2, 7, 4, 5) and tiles.flags.c_contiguous
    np.testing.assert_array_equal(tiles[1], -tiles[0])
    np.testing.assert_array_equal(tiles[0], demosaic(stack[0], info))


def test_demosaic_rejects_wrong_size() -> None:
    with pytest.raises(ValueError, match="do not match"):
        demosaic(np.zeros((12, 16)), MosaicInfo.from_sizes(7, 12, 15))


@pytest.mark.parametrize(
    ("n_images", "side"),
    [(1, 1), (2, 2), (4, 2), (5, 3), (9, 3), (10, 4), (35, 6), (36, 6), (37, 7)],
)
def test_tiles_per_side_is_ceil_sqrt(n_images: int, side: int) -> None:
    assert MosaicInfo.from_sizes(n_images, side * 8, side * 8).tiles_per_side == side


def test_grid_that_does_not_divide_is_refused() -> None:
    with pytest.raises(ValueError, match="does not split"):
        MosaicInfo.from_sizes(7, 13, 15)


def test_info_pickles() -> None:
    info = MosaicInfo.from_sizes(7, 12, 15, slice_normal=(0.0, 0.0, 1.0), protocol_slice_step=2.0)
    assert pickle.loads(pickle.dumps(info)) == info


def _oblique_iop() -> np.ndarray:
    a = np.radians(10.0)
    return np.array([1.0, 0.0, 0.0, 0.0, np.cos(a), -np.sin(a)])


@pytest.mark.parametrize("ascending", [True, False])
def test_geometry_places_every_tile(ascending: bool) -> None:
    """Stored tile k's first voxel sits at the shifted corner plus k steps along the CSA normal."""
    iop = _oblique_iop()
    row, col = iop[:3], iop[3:]
    normal = np.cross(row, col)
    csa_normal = normal if ascending else -normal
    spacing = (2.0, 3.0)  # between rows, between columns
    r, c, side, n, step = 4, 5, 3, 7, 2.5
    info = MosaicInfo.from_sizes(n, side * r, side * c, slice_normal=csa_normal)
    ipp = np.array([-10.0, 20.0, 30.0])
    order, affine = mosaic_geometry(ipp, iop, spacing, side * r, side * c, info, step)

    first = ipp + row * spacing[1] * (side * c - c) / 2 + col * spacing[0] * (side * r - r) / 2
    stored_positions = first + np.outer(np.arange(n), step * csa_normal)
    # Output slice s is stored tile order[s]; the affine must put it where the tile really is.
    for s, k in enumerate(order):
        np.testing.assert_allclose(affine @ [s, 0, 0, 1], [*stored_positions[k], 1], atol=1e-9)
    # Fastvol's convention: slice 0 furthest along n, slice index along -n, right-handed frame.
    along = (affine[:3, 3] + np.outer(np.arange(n), affine[:3, 0])) @ normal
    assert np.all(np.diff(along) < 0)
    np.testing.assert_allclose(affine[:3, 0], -normal * step, atol=1e-12)
    assert np.linalg.det(affine[:3, :3]) > 0
    np.testing.assert_allclose(affine[:3, 1], col * spacing[0])
    np.testing.assert_allclose(affine[:3, 2], row * spacing[1])
    assert sorted(order.tolist()) == list(range(n))
    assert order.tolist() == (list(range(n))[::-1] if ascending else list(range(n)))


def test_geometry_without_csa_normal_uses_info_direction() -> None:
    iop = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    info = MosaicInfo.from_sizes(4, 8, 8, ascending=False)
    order, affine = mosaic_geometry([0, 0, 0], iop, (1.0, 1.0), 8, 8, info, None, slice_thickness=2)
    assert order.tolist() == [0, 1, 2, 3]
    np.testing.assert_allclose(affine[:3, 3], [2.0, 2.0, 0.0])  # (8 - 4) / 2 pixels inwards
    np.testing.assert_allclose(affine[:3, 0], [0.0, 0.0, -2.0])


def test_geometry_refuses_missing_step_and_skew_normal() -> None:
    iop = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    info = MosaicInfo.from_sizes(4, 8, 8)
    with pytest.raises(GeometryError, match="slice step"):
        mosaic_geometry([0, 0, 0], iop, (1.0, 1.0), 8, 8, info, None)
    skew = MosaicInfo.from_sizes(4, 8, 8, slice_normal=(0.0, 0.6, 0.8))
    with pytest.raises(GeometryError, match="not parallel"):
        mosaic_geometry([0, 0, 0], iop, (1.0, 1.0), 8, 8, skew, 2.0)
    with pytest.raises(GeometryError, match="MosaicInfo"):
        mosaic_geometry([0, 0, 0], iop, (1.0, 1.0), 16, 8, info, 2.0)


# --- CSA parser ------------------------------------------------------------------------------


def _csa2(tags: dict[str, list[str]], *, csa1: bool = False) -> bytes:
    """Encode a CSA header the way Siemens writes it: SV10 ("CSA2"), or the older CSA1 layout
    (no magic; item lengths offset by the second tag's item count)."""
    out = [] if csa1 else [b"SV10\x04\x03\x02\x01"]
    out.append(struct.pack("<2I", len(tags), 77))
    n_items, offset = 6, 0
    for tag_no, (name, values) in enumerate(tags.items()):
        out.append(struct.pack("<64si4s3i", name.encode(), len(values), b"DS\0\0", 3, n_items, 77))
        if csa1 and tag_no == 1:
            offset = n_items
        for item in range(n_items):
            text = (values[item] + "\0").encode() if item < len(values) else b""
            x0 = len(text) + offset if csa1 else len(text)
            out.append(struct.pack("<4i", x0, len(text), 77, len(text)))
            out.append(text + b"\0" * (-len(text) % 4))
    return b"".join(out)


@pytest.mark.parametrize("csa1", [False, True], ids=["SV10", "CSA1"])
def test_csa_round_trip(csa1: bool) -> None:
    tags = {
        "EchoLinePosition": ["32"],
        "NumberOfImagesInMosaic": ["35"],
        "SliceNormalVector": ["0.0", "0.1", "0.99"],
        "Empty": [],
    }
    assert parse_csa_header(_csa2(tags, csa1=csa1)) == tags


@pytest.mark.parametrize(
    "corrupt",
    [
        b"",
        b"SV10\x04\x03\x02\x01",
        b"SV10\x04\x03\x02\x01" + struct.pack("<2I", 10**6, 77),
        b"SV10\x04\x03\x02\x01" + struct.pack("<2I", 3, 77) + b"\0" * 20,
    ],
    ids=["empty", "no-count", "absurd-count", "truncated"],
)
def test_csa_garbage_raises_value_error(corrupt: bytes) -> None:
    with pytest.raises(ValueError):
        parse_csa_header(corrupt)


def test_csa_item_past_end_raises() -> None:
    data = bytearray(_csa2({"NumberOfImagesInMosaic": ["35"]}))
    struct.pack_into("<i", data, 16 + 84 + 4, 10_000)  # first item's length
    with pytest.raises(ValueError, match="past the end"):
        parse_csa_header(bytes(data))


def _write_mosaic_file(path: Path, csa: bytes | None, *, n_images_019: int | None = None) -> str:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = MRImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND", "MOSAIC"]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.Rows, ds.Columns = 12, 15
    if csa is not None:
        ds.private_block(0x0029, "SIEMENS CSA HEADER", create=True).add_new(0x10, "OB", csa)
    if n_images_019 is not None:
        ds.private_block(0x0019, "SIEMENS MR HEADER", create=True).add_new(0x0A, "US", n_images_019)
    ds.save_as(path, enforce_file_format=True)
    return str(path)


def test_read_info_from_csa(tmp_path: Path) -> None:
    csa = _csa2({"NumberOfImagesInMosaic": ["7"], "SliceNormalVector": ["0", "0", "-1"]})
    info = read_mosaic_info(LocalFile(_write_mosaic_file(tmp_path / "m.dcm", csa)))
    assert info is not None
    assert (info.n_images, info.tiles_per_side, info.tile_rows, info.tile_cols) == (7, 3, 4, 5)
    assert info.n_images_source == "CSA NumberOfImagesInMosaic"
    assert info.slice_normal == (0.0, 0.0, -1.0) and info.ascending is False


def test_read_info_falls_back_on_0019_100a(tmp_path: Path) -> None:
    info = read_mosaic_info(LocalFile(_write_mosaic_file(tmp_path / "m.dcm", None, n_images_019=7)))
    assert info is not None and info.n_images == 7 and info.n_images_source == "(0019,100A)"
    assert info.slice_normal is None and info.ascending is True


def test_read_info_bad_csa_names_the_file(tmp_path: Path) -> None:
    path = _write_mosaic_file(tmp_path / "bad.dcm", b"SV10\x04\x03\x02\x01" + b"\xff" * 8)
    with pytest.raises(CorruptFileError, match="bad.dcm") as caught:
        read_mosaic_info(LocalFile(path))
    assert caught.value.files == (path,)


def test_read_info_without_count_or_fitting_grid(tmp_path: Path) -> None:
    with pytest.raises(CorruptFileError, match="NumberOfImagesInMosaic"):
        read_mosaic_info(LocalFile(_write_mosaic_file(tmp_path / "none.dcm", None)))
    with pytest.raises(CorruptFileError, match="does not split"):
        read_mosaic_info(LocalFile(_write_mosaic_file(tmp_path / "odd.dcm", None, n_images_019=17)))


def test_non_mosaic_is_none() -> None:
    from pydicom.data import get_testdata_file

    path = get_testdata_file("MR_small.dcm", download=False)
    if path is None:
        pytest.skip("pydicom's MR_small.dcm test file is not installed")
    assert read_mosaic_info(LocalFile(str(path))) is None


# --- real corpus against dcm2niix ------------------------------------------------------------


def _entries() -> list:
    from conftest import corpus_root

    root = corpus_root()
    if root is None:
        reason = "real DICOM corpus absent: set FASTVOL_CORPUS or place it at ../shared/corpus"
        return [pytest.param(None, marks=pytest.mark.skip(reason=reason), id="no-corpus")]
    items = json.loads((root / "manifest.json").read_text())["series"]
    return [
        pytest.param(it, id=it["path"], marks=pytest.mark.corpus)
        for it in items
        if it.get("siemens_mosaic")
        and any(ref.get("nifti") for ref in it.get("references", []))
    ]


def _volume_key(path: str) -> tuple:
    import pydicom

    ds = pydicom.dcmread(path, stop_before_pixels=True)
    return (int(ds.get("AcquisitionNumber") or 0), int(ds.get("InstanceNumber") or 0), path)


@pytest.mark.parametrize("it", _entries())
def test_corpus_mosaic_matches_dcm2niix(corpus: Path, it: dict) -> None:
    import nibabel as nib
    import pydicom

    base = corpus / it["path"]
    files = [str(base / f) for f in it["files"]] if base.is_dir() else [str(base)]
    files.sort(key=_volume_key)  # dcm2niix's 4th axis follows acquisition order
    ref_path = corpus / next(ref["nifti"][0] for ref in it["references"] if ref.get("nifti"))
    ref = nib.load(ref_path)
    ref_data = np.asarray(ref.get_fdata())
    if ref_data.ndim == 3:
        ref_data = ref_data[..., None]
    assert ref_data.shape[3] == len(files), (ref_data.shape, files)
    ref_lps = LPS_FROM_RAS @ ref.affine

    affines = []
    for volume, path in enumerate(files):
        info = read_mosaic_info(LocalFile(path))
        assert info is not None, f"{path} not recognised as a mosaic"
        ds = pydicom.dcmread(path)
        sbs = ds.get("SpacingBetweenSlices")
        order, affine = mosaic_geometry(
            ds.ImagePositionPatient, ds.ImageOrientationPatient, ds.PixelSpacing, ds.Rows,
            ds.Columns, info, None if sbs is None else float(sbs),
            slice_thickness=float(ds.SliceThickness),
        )  # fmt: skip
        tiles = demosaic(ds.pixel_array, info)[order]
        slope = float(ds.get("RescaleSlope", 1) or 1)
        values = tiles * slope + float(ds.get("RescaleIntercept", 0) or 0)
        t = index_map(affine, ref_lps, atol=0.05)
        # Same extent, not just the same lattice: both corner voxels land on the reference grid.
        for corner in ([0, 0, 0, 1], [*(np.array(values.shape) - 1), 1]):
            mapped = (t @ corner)[:3]
            assert np.all(mapped >= 0) and np.all(mapped < ref_data.shape[:3]), (corner, mapped)
        ours = to_reference_layout(values, t, ref_data.shape)
        np.testing.assert_array_equal(ours, ref_data[..., volume], err_msg=f"values differ: {path}")
        affines.append(affine)
        # The ASCCONV slice spacing agrees with SpacingBetweenSlices (the step dcm2niix uses).
        if info.protocol_slice_step is not None and sbs is not None:
            assert abs(info.protocol_slice_step - float(sbs)) < 1e-3
    # Volumes of one series share one grid.
    for affine in affines[1:]:
        np.testing.assert_allclose(affine, affines[0], atol=1e-4)
