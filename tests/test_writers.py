"""Writers other tools read right: NIfTI (against nibabel and dcm2niix), Zarr, npz, and back.

NIfTI and Zarr files are read by their own libraries (nibabel, zarr), never by the code that
wrote them, and compared in world space (LPS mm) with what the factory wrote.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import pytest

import factory as fx
import fastvol
from world import LPS_FROM_RAS, index_map, to_reference_layout

nib = pytest.importorskip("nibabel")

OBLIQUE = (0.8660254, 0.5, 0.0, -0.5, 0.8660254, 0.0)


def _world_values(array: np.ndarray, affine_lps: np.ndarray) -> dict[tuple[float, ...], float]:
    """Voxel centre (LPS, rounded to 0.01 mm) -> value, for layout-free comparison."""
    idx = np.indices(array.shape).reshape(3, -1)
    pts = (affine_lps[:3, :3] @ idx + affine_lps[:3, 3:]).T
    return {tuple(np.round(p, 2)): float(v) for p, v in zip(pts, array.reshape(-1))}


@pytest.mark.parametrize("orientation", [(1, 0, 0, 0, 1, 0), OBLIQUE, (0, 1, 0, 0, 0, -1)])
def test_nifti_read_by_nibabel_puts_every_value_where_the_dicom_says(tmp_path, orientation):
    written = fx.write_series(tmp_path / "s", n=5, orientation=orientation, origin=(7, -3, 11),
                              shuffle=True)  # fmt: skip
    vol = fastvol.load(written.folder)
    path = vol.to_nifti(tmp_path / "v.nii.gz")
    img = nib.load(path)
    header = img.header
    assert int(header["qform_code"]) == 1 and int(header["sform_code"]) == 1  # scanner
    assert header.get_xyzt_units() == ("mm", "sec")
    np.testing.assert_allclose(img.get_qform(), img.get_sform(), atol=1e-5)
    data = np.asarray(img.dataobj)
    assert data.dtype == vol.array.dtype and data.shape == vol.shape[::-1]
    # Ground truth: the factory's slice k (sorted order) at its ImagePositionPatient.
    truth = written.volume()
    ours = _world_values(data, LPS_FROM_RAS @ img.affine)
    row, col = np.array(orientation[:3], float), np.array(orientation[3:], float)
    for k, pos in enumerate(written.sorted_positions()):
        for r, c in [(0, 0), (3, 2), (15, 11)]:
            p = pos + c * written.pixel_spacing[1] * row + r * written.pixel_spacing[0] * col
            assert ours[tuple(np.round(p, 2))] == truth[k, r, c]


def test_sheared_affine_only_in_the_sform(tmp_path):
    written = fx.write_series(tmp_path / "s", n=5, step_vector=(0, 0.6, 2.0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fastvol.FastvolWarning)
        vol = fastvol.load(written.folder)
    img = nib.load(vol.to_nifti(tmp_path / "v.nii"))
    assert int(img.header["qform_code"]) == 0 and int(img.header["sform_code"]) == 1
    np.testing.assert_allclose(LPS_FROM_RAS @ img.get_sform() @ np.array(
        [[0, 0, 1, 0], [0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1.0]]), vol.affine, atol=1e-4)


def test_nifti_4d_has_time_units_and_repetition_time(tmp_path):
    written = fx.write_series(tmp_path / "s", n=4, repeats=3,
                              extra={"RepetitionTime": "2500"})  # fmt: skip
    vol = fastvol.load(written.folder, extra_tags=["RepetitionTime"])
    img = nib.load(vol.to_nifti(tmp_path / "v.nii"))
    assert img.shape == (12, 16, 4, 3)
    assert img.header.get_xyzt_units() == ("mm", "sec")
    assert img.header["pixdim"][4] == pytest.approx(2.5)
    np.testing.assert_array_equal(np.asarray(img.dataobj)[..., 2], vol.array[2].transpose(2, 1, 0))
    # An explicit TR wins; without one and without the tag, pixdim[4] is 0: not known.
    img = nib.load(vol.to_nifti(tmp_path / "w.nii", repetition_time_s=0.8))
    assert img.header["pixdim"][4] == pytest.approx(0.8)
    plain = fastvol.load(written.folder)
    assert nib.load(plain.to_nifti(tmp_path / "x.nii")).header["pixdim"][4] == 0


def test_from_nifti_round_trip_keeps_array_dtype_and_affine(tmp_path):
    written = fx.write_series(tmp_path / "s", n=6, orientation=OBLIQUE, repeats=2, seed=3)
    vol = fastvol.load(written.folder)
    back = fastvol.from_nifti(vol.to_nifti(tmp_path / "v.nii.gz"))
    assert back.array.dtype == vol.array.dtype
    np.testing.assert_array_equal(back.array, vol.array)
    np.testing.assert_allclose(back.affine, vol.affine, atol=1e-5)  # float32 in the header
    assert back.geometry.plane == vol.geometry.plane and back.geometry.shape == vol.shape
    assert back.meta["qform_code"] == 1 and back.meta["sform_code"] == 1


def test_writers_refuse_bad_names_and_missing_files_with_fastvol_errors(tmp_path):
    vol = fastvol.load(fx.write_series(tmp_path / "s", n=3).folder)
    with pytest.raises(fastvol.InputError, match=r"\.nii"):
        vol.to_nifti(tmp_path / "v.nrrd")
    with pytest.raises(fastvol.InputError, match="does not exist"):
        vol.to_nifti(tmp_path / "no" / "v.nii")
    with pytest.raises(fastvol.PathNotFoundError):
        fastvol.from_nifti(tmp_path / "absent.nii")
    (tmp_path / "junk.nii").write_bytes(b"not a nifti at all" * 10)
    with pytest.raises(fastvol.CorruptFileError):
        fastvol.from_nifti(tmp_path / "junk.nii")
    (tmp_path / "folder.zarr").mkdir()
    (tmp_path / "folder.zarr" / "mine.txt").write_text("keep")
    with pytest.raises(fastvol.InputError, match="not a Zarr store"):
        vol.to_zarr(tmp_path / "folder.zarr")
    assert (tmp_path / "folder.zarr" / "mine.txt").read_text() == "keep"
    assert sorted(os.listdir(tmp_path)) == ["folder.zarr", "junk.nii", "s"]  # no temporaries


def test_zarr_read_by_zarr_has_the_array_affine_and_a_nifti_header(tmp_path):
    zarr = pytest.importorskip("zarr")
    written = fx.write_series(tmp_path / "s", n=40, rows=64, columns=48, orientation=OBLIQUE,
                              repeats=2)  # fmt: skip
    vol = fastvol.load(written.folder)
    path = vol.to_zarr(tmp_path / "v.zarr", chunks=(1, 16, 64, 48))
    vol.to_zarr(tmp_path / "v.zarr", chunks=(1, 16, 64, 48))  # replacing a store is atomic too
    assert sorted(os.listdir(tmp_path)) == ["s", "v.zarr"]
    group = zarr.open_group(path, mode="r")
    array = group["0"]
    assert array.chunks == (1, 16, 64, 48) and array.dtype == vol.array.dtype
    assert array.metadata.codecs[-1].to_dict()["configuration"]["cname"] == "lz4"
    np.testing.assert_array_equal(array[...], vol.array)
    np.testing.assert_allclose(np.array(group.attrs["fastvol"]["affine_lps"]), vol.affine)
    multiscale = group.attrs["ome"]["multiscales"][0]
    assert [a["name"] for a in multiscale["axes"]] == ["t", "z", "y", "x"]
    scale = multiscale["datasets"][0]["coordinateTransformations"][0]["scale"]
    np.testing.assert_allclose(scale[1:], vol.spacing)
    header = nib.Nifti1Header.from_fileobj(__import__("io").BytesIO(group["nifti"][...].tobytes()))
    assert tuple(header.get_data_shape()) == vol.shape[::-1]
    nifti = nib.load(vol.to_nifti(tmp_path / "v.nii"))
    np.testing.assert_allclose(header.get_best_affine(), nifti.affine, atol=1e-5)
    back = fastvol.from_zarr(path)
    np.testing.assert_array_equal(back.array, vol.array)
    np.testing.assert_allclose(back.affine, vol.affine)


def test_npz_has_array_and_lps_affine(tmp_path):
    vol = fastvol.load(fx.write_series(tmp_path / "s", n=3, orientation=OBLIQUE).folder)
    with np.load(vol.to_npz(tmp_path / "v.npz")) as data:
        np.testing.assert_array_equal(data["array"], vol.array)
        np.testing.assert_allclose(data["affine_lps"], vol.affine)


def _rotation(axis, degrees) -> np.ndarray:
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    t = np.radians(degrees)
    return np.eye(3) + np.sin(t) * k + (1 - np.cos(t)) * k @ k


def _sheared_affine(shear_rad: float, shape=(24, 64, 64), spacing=(2.5, 0.9, 0.9)) -> np.ndarray:
    """An oblique LPS affine whose slice axis leans ``shear_rad`` towards the row axis."""
    rot = _rotation((0.3, -0.5, 0.8), 25.0)
    affine = np.eye(4)
    affine[:3, :3] = rot * np.asarray(spacing)
    affine[:3, 0] += np.tan(shear_rad) * spacing[0] * rot[:, 1]
    affine[:3, 3] = (-101.3, 87.9, 42.6)
    return affine


def _corners(shape) -> np.ndarray:
    """The 8 corner voxels of a NIfTI grid ``(i, j, k)``, as homogeneous columns."""
    return np.array([[i, j, k, 1.0] for i in (0, shape[0] - 1) for j in (0, shape[1] - 1)
                     for k in (0, shape[2] - 1)]).T  # fmt: skip


@pytest.mark.parametrize("shear_rad", [0.0, 1e-6, np.radians(0.009)])
def test_rounding_level_shear_gets_the_nearest_rigid_qform(tmp_path, shear_rad):
    """Shear far below tilt_tolerance_deg (header rounding) gets qform code 1, its nearest rigid
    form (as dcm2niix writes it); the sform keeps the exact affine."""
    from fastvol.nifti import nifti_layout, shear_deg, write_nifti

    affine = _sheared_affine(shear_rad)
    assert shear_deg(affine) == pytest.approx(np.degrees(shear_rad), abs=1e-9)
    array = np.zeros((24, 64, 64), np.int16)
    img = nib.load(write_nifti(tmp_path / "v.nii", array, affine))
    assert int(img.header["qform_code"]) == 1 and int(img.header["sform_code"]) == 1
    _, affine_ras = nifti_layout(array, affine)
    np.testing.assert_allclose(img.get_sform(), affine_ras, atol=2e-5)  # exact, as float32
    corners = _corners(img.shape)
    # The nearest rigid form moves no voxel centre by more than the shear does.
    moved = np.linalg.norm(img.get_qform() @ corners - affine_ras @ corners, axis=0).max()
    extent = np.linalg.norm(affine_ras[:3, :3] @ (corners[:3, -1] - corners[:3, 0]))
    assert moved < (1e-4 if shear_rad <= 1e-6 else shear_rad * extent)


@pytest.mark.parametrize("tilt_deg", [0.011, 0.5, 17.0])
def test_shear_over_the_tilt_tolerance_leaves_the_qform_unset(tmp_path, tilt_deg):
    from fastvol.nifti import write_nifti

    affine = _sheared_affine(np.radians(tilt_deg))
    img = nib.load(write_nifti(tmp_path / "v.nii", np.zeros((24, 64, 64), np.int16), affine))
    assert int(img.header["qform_code"]) == 0 and int(img.header["sform_code"]) == 1


def test_qform_near_a_half_turn_is_as_close_as_float32_allows(tmp_path):
    """A rotation near 180 deg (in RAS) makes the quaternion's ``a`` small: plain float32
    rounding of ``b, c, d`` moves corners by some 4e-3 mm; the best float32 neighbours keep
    the qform within 1e-4 mm of the sform."""
    from fastvol.nifti import from_nifti_layout, write_nifti

    affine_ras = np.eye(4)
    affine_ras[:3, :3] = _rotation((0.1, 0.3, 0.95), 179.9) * np.array([0.9, 0.9, 2.5])
    affine_ras[:3, 3] = (-101.3, 87.9, 42.6)
    array, affine_lps = from_nifti_layout(np.zeros((64, 64, 24), np.int16), affine_ras)
    img = nib.load(write_nifti(tmp_path / "v.nii", array, affine_lps))
    assert int(img.header["qform_code"]) == 1
    corners = _corners(img.shape)
    assert np.abs(img.get_qform() @ corners - img.get_sform() @ corners).max() < 1e-4


def test_one_slice_volume_gets_a_qform(tmp_path):
    """One slice has no stacking direction: its slice axis is the normal of the (rounded)
    ImageOrientationPatient, so the affine is orthogonal and the qform is written."""
    iop = (0.99998, -0.00479, 0.00388, 0.00540, 0.98475, -0.17386)  # as stored: 5 decimals
    written = fx.write_series(tmp_path / "s", n=1, orientation=iop, origin=(-90.0, -108.5, 44.0),
                              extra={"SpacingBetweenSlices": 3.0})  # fmt: skip
    vol = fastvol.load(written.folder)
    assert vol.shape[0] == 1 and vol.geometry.tilt_deg == 0
    img = nib.load(vol.to_nifti(tmp_path / "v.nii"))
    assert int(img.header["qform_code"]) == 1 and int(img.header["sform_code"]) == 1
    corners = _corners(img.shape)
    assert np.abs(img.get_qform() @ corners - img.get_sform() @ corners).max() < 1e-3


# ----------------------------------------------------------------------- against dcm2niix

def _dcm2niix_entries(colour: bool = False) -> list:
    """Corpus series with exactly one dcm2niix reference NIfTI, colour ones or the others."""
    from conftest import corpus_root

    root = corpus_root()
    if root is None:
        return [pytest.param(None, marks=pytest.mark.skip(reason="real DICOM corpus absent"))]
    out = []
    for it in json.loads((root / "manifest.json").read_text())["series"]:
        refs = [n for r in it.get("references", []) if "dcm2niix" in r.get("tool", "")
                for n in r.get("nifti", [])]  # fmt: skip
        if len(refs) == 1 and ("colour" in it.get("exercises", [])) == colour:
            out.append(pytest.param((it, refs[0]), id=it["path"][-40:]))
    return out or [pytest.param(None, marks=pytest.mark.skip(reason="no such dcm2niix reference"))]


@pytest.mark.parametrize("entry", _dcm2niix_entries())
def test_nifti_matches_dcm2niix_reference(corpus: Path, tmp_path, entry):
    """Our NIfTI and dcm2niix's, both read by nibabel: same codes, units, TR, voxel centres
    and values; only the index order differs (dcm2niix stores rows bottom-up)."""
    it, ref_name = entry
    ref_path = corpus / ref_name
    if not ref_path.exists():
        pytest.skip(f"{ref_name} is not in this corpus copy")
    source = corpus / it["path"]
    files = [str(source / f) for f in it["files"]] if source.is_dir() else [str(source)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fastvol.FastvolWarning)
        vol = fastvol.load(files, extra_tags=["RepetitionTime"])
    ours = nib.load(vol.to_nifti(tmp_path / "ours.nii"))
    ref = nib.load(str(ref_path))
    from fastvol.options import TILT_TOLERANCE_DEG

    assert int(ours.header["sform_code"]) == int(ref.header["sform_code"]) == 1
    # Every corpus series is untilted (below the tolerance; header rounding leaves up to
    # 3e-3 deg): a qform, code 1, as dcm2niix's. A kept tilt is tested with the factory.
    assert vol.geometry.tilt_deg <= TILT_TOLERANCE_DEG
    assert int(ours.header["qform_code"]) == int(ref.header["qform_code"]) == 1
    assert ours.header.get_xyzt_units() == ref.header.get_xyzt_units() == ("mm", "sec")
    if isinstance(vol.meta.get("RepetitionTime"), (int, float)):
        assert ours.header["pixdim"][4] == pytest.approx(ref.header["pixdim"][4], rel=1e-4)
    else:  # enhanced multi-frame: TR sits in functional groups fastvol does not read yet
        assert ours.header["pixdim"][4] == 0
    assert sorted(ours.header.get_zooms()[:3]) == pytest.approx(sorted(ref.header.get_zooms()[:3]), rel=1e-4)
    # World space: the index map between the two grids is a signed permutation (same centres).
    t = index_map(LPS_FROM_RAS @ ours.affine, LPS_FROM_RAS @ ref.affine, atol=0.05)
    ours_data = np.asarray(ours.dataobj, dtype=np.float64)
    ref_data = np.asarray(ref.dataobj, dtype=np.float64)
    if ref_data.ndim == 4 and ours_data.ndim == 3 and ref_data.shape[3] == 1:
        ref_data = ref_data[..., 0]
    assert ours_data.shape[3:] == ref_data.shape[3:]
    ours_vols = [ours_data] if ours_data.ndim == 3 else [ours_data[..., v] for v in range(ours_data.shape[3])]
    ref_vols = [ref_data] if ref_data.ndim == 3 else [ref_data[..., v] for v in range(ref_data.shape[3])]
    for a, b in zip(ours_vols, ref_vols):
        mapped = to_reference_layout(a, t, b.shape)
        if "philips" in str(vol.meta.get("manufacturer", "")).lower():
            b = b * float(np.sum(mapped * b) / np.sum(b * b))  # vendor scaling: one factor
        np.testing.assert_allclose(mapped, b, rtol=1e-3, atol=0.5)
    # The documented difference: dcm2niix stores the rows bottom-up, fastvol top-down.
    assert t[:3, 1].sum() == -1
    # Our qform, in dcm2niix's index order, is dcm2niix's affine: axes within 1e-3 mm per
    # voxel, and every corner voxel within 0.05 mm. Not 1e-3 there: a qform is a float32
    # quaternion, and for a rotation within 0.01 deg of a half turn (the 12-bit series in
    # fastvol's layout; dcm2niix's flipped rows make it another rotation) readers take its
    # ``a`` as 0: 8e-5 rad, 0.017 mm across the volume, however b, c, d are rounded.
    qform = LPS_FROM_RAS @ ours.get_qform() @ np.linalg.inv(t)
    reference = LPS_FROM_RAS @ ref.affine
    np.testing.assert_allclose(qform[:3, :3], reference[:3, :3], atol=1e-3)
    corners = np.array([[i, j, k, 1.0] for i in (0, ref.shape[0] - 1) for j in (0, ref.shape[1] - 1)
                        for k in (0, ref.shape[2] - 1)]).T  # fmt: skip
    np.testing.assert_allclose(qform @ corners, reference @ corners, atol=0.05)


# ----------------------------------------------------------------------- colour (RGB)


#: (column, row, slice) <-> (slice, row, column) index swap.
_SWAP = np.array([[0.0, 0, 1, 0], [0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1]])


def _colour_series(folder, **kwargs):
    return fx.write_series(folder, n=5, rows=16, columns=12, photometric="RGB", samples_per_pixel=3,
                           bits_allocated=8, signed=False, **kwargs)  # fmt: skip


@pytest.mark.parametrize("orientation", [(1, 0, 0, 0, 1, 0), OBLIQUE])
def test_colour_nifti_is_rgb24_over_the_spatial_axes_and_reads_back(tmp_path, orientation):
    vol = fastvol.load(_colour_series(tmp_path / "s", orientation=orientation, shuffle=True).folder)
    assert vol.shape == (5, 16, 12, 3) and vol.meta["channels"] == "RGB"
    img = nib.load(vol.to_nifti(tmp_path / "v.nii.gz"))
    assert int(img.header["datatype"]) == 128 and img.shape == (12, 16, 5)  # as dcm2niix
    data = np.asanyarray(img.dataobj)
    for i, name in enumerate("RGB"):  # (column, row, slice) of each colour
        np.testing.assert_array_equal(data[name], vol.array[..., i].transpose(2, 1, 0))
    np.testing.assert_allclose(LPS_FROM_RAS @ img.affine @ _SWAP, vol.affine, atol=1e-5)
    back = fastvol.from_nifti(tmp_path / "v.nii.gz")
    assert back.meta["channels"] == "RGB" and back.array.dtype == np.uint8
    np.testing.assert_array_equal(back.array, vol.array)
    np.testing.assert_allclose(back.affine, vol.affine, atol=1e-5)
    assert back.geometry.slice_positions == pytest.approx(vol.geometry.slice_positions, abs=1e-3)


def test_colour_nifti_other_than_rgb24_is_refused(tmp_path):
    rgba = np.zeros((4, 3, 2), dtype=[("R", "u1"), ("G", "u1"), ("B", "u1"), ("A", "u1")])
    nib.save(nib.Nifti1Image(rgba, np.eye(4)), str(tmp_path / "rgba.nii"))
    with pytest.raises(fastvol.UnsupportedError, match="RGB24"):
        fastvol.from_nifti(tmp_path / "rgba.nii")


def test_colour_zarr_is_channel_first_with_ome_axis_c(tmp_path):
    zarr = pytest.importorskip("zarr")
    vol = fastvol.load(_colour_series(tmp_path / "s").folder)
    path = vol.to_zarr(tmp_path / "v.zarr")
    group = zarr.open_group(path, mode="r")
    np.testing.assert_array_equal(group["0"][...], np.moveaxis(vol.array, -1, 0))
    assert tuple(group["0"].metadata.dimension_names) == ("c", "z", "y", "x")
    axes = group.attrs["ome"]["multiscales"][0]["axes"]
    assert [(a["name"], a["type"]) for a in axes] == [("c", "channel"), ("z", "space"), ("y", "space"),
                                                      ("x", "space")]  # fmt: skip
    assert group.attrs["fastvol"]["channels"] == "RGB"
    header = nib.Nifti1Header.from_fileobj(__import__("io").BytesIO(group["nifti"][...].tobytes()))
    assert int(header["datatype"]) == 128 and tuple(header.get_data_shape()) == (12, 16, 5)
    back = fastvol.from_zarr(path)
    assert back.meta["channels"] == "RGB"
    np.testing.assert_array_equal(back.array, vol.array)
    np.testing.assert_allclose(back.affine, vol.affine)


@pytest.mark.parametrize("entry", _dcm2niix_entries(colour=True))
def test_colour_nifti_matches_dcm2niix_reference(corpus: Path, tmp_path, entry):
    """Colour: both RGB24 over (i, j, k), the same voxel centres and colours in world space."""
    it, ref_name = entry
    ref_path = corpus / ref_name
    if not ref_path.exists():
        pytest.skip(f"{ref_name} is not in this corpus copy")
    source = corpus / it["path"]
    files = [str(source / f) for f in it["files"]] if source.is_dir() else [str(source)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fastvol.FastvolWarning)
        vol = fastvol.load(files)
    assert vol.meta["channels"] == "RGB"
    ours = nib.load(vol.to_nifti(tmp_path / "ours.nii"))
    ref = nib.load(str(ref_path))
    assert int(ours.header["datatype"]) == int(ref.header["datatype"]) == 128
    assert ours.ndim == ref.ndim == 3
    t = index_map(LPS_FROM_RAS @ ours.affine, LPS_FROM_RAS @ ref.affine, atol=0.05)
    ours_data, ref_data = np.asanyarray(ours.dataobj), np.asanyarray(ref.dataobj)
    ijk = np.indices(ours_data.shape).reshape(3, -1)
    mapped = (t[:3, :3] @ ijk + t[:3, 3:]).astype(int)
    np.testing.assert_array_equal(ref_data[tuple(mapped)], ours_data[tuple(ijk)])
    # dcm2niix's file read by fastvol: the same array as the DICOM load, once re-indexed.
    back = fastvol.from_nifti(ref_path)
    assert back.meta["channels"] == "RGB" and back.shape[-1] == 3
    t2 = index_map(vol.affine, back.affine, atol=0.05)
    idx = np.indices(vol.shape[:3]).reshape(3, -1)
    mapped = (t2[:3, :3] @ idx + t2[:3, 3:]).astype(int)
    np.testing.assert_array_equal(back.array[tuple(mapped)], vol.array[tuple(idx)])
