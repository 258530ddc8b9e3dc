"""The classic loader against factory-made series: geometry cases, pixels, syntaxes, bad input."""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastvol
import factory as fx

OBLIQUE = (0.94959868, 0.19249318, 0.24740396, -0.26145154, 0.92176808, 0.2863332)


def _load(path, **kw):
    return fastvol.load(path, **kw)


def _assert_affine_law(vol: fastvol.Volume, written: fx.WrittenSeries) -> None:
    positions = written.sorted_positions()
    for k, pos in enumerate(positions):
        np.testing.assert_allclose((vol.affine @ [k, 0, 0, 1])[:3], pos, atol=1e-4)


# --- geometry -------------------------------------------------------------------------------


def test_regular_oblique_series_equals_ground_truth(tmp_path):
    w = fx.write_series(tmp_path, n=9, orientation=OBLIQUE, shuffle=3, instance_numbers="random",
                        slopes=2.0, intercepts=-100.0)  # fmt: skip
    vol = _load(tmp_path)
    np.testing.assert_array_equal(vol.array, w.volume(rescaled=True))
    assert vol.array.dtype == np.int32  # 16-bit signed * 2 - 100 needs more than int16
    _assert_affine_law(vol, w)
    assert vol.geometry.kind == "regular"
    assert vol.geometry.obliquity != "orthogonal"
    assert vol.meta["files"] == tuple(w.paths[i] for i in w.order())
    assert vol.meta["sop_instance_uids"] == tuple(w.sop_uids[i] for i in w.order())
    # In-plane axes: column index along the row direction by PixelSpacing[1].
    np.testing.assert_allclose(vol.affine[:3, 2], np.array(OBLIQUE[:3]) * w.pixel_spacing[1], atol=1e-6)
    np.testing.assert_allclose(vol.affine[:3, 1], np.array(OBLIQUE[3:]) * w.pixel_spacing[0], atol=1e-6)
    np.testing.assert_allclose(vol.affine_ras, np.diag([-1, -1, 1, 1]) @ vol.affine)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000), n=st.integers(2, 12))
def test_property_shuffled_files_and_names_give_identical_volume(tmp_path_factory, seed, n):
    a = tmp_path_factory.mktemp("a")
    b = tmp_path_factory.mktemp("b")
    fx.write_series(a, n=n, orientation=OBLIQUE, seed=seed)
    w = fx.write_series(b, n=n, orientation=OBLIQUE, seed=seed, shuffle=seed + 1,
                        instance_numbers="random", file_names="x{:03d}.dcm")  # fmt: skip
    va, vb = _load(a), _load(b)
    np.testing.assert_array_equal(va.array, vb.array)
    np.testing.assert_array_equal(va.affine, vb.affine)
    _assert_affine_law(vb, w)


def test_highdicom_oracle_on_regular_series(tmp_path):
    hd = pytest.importorskip("highdicom")
    import pydicom

    w = fx.write_series(tmp_path, n=7, orientation=OBLIQUE, shuffle=1)
    vol = _load(tmp_path)
    datasets = [pydicom.dcmread(p) for p in w.paths]
    ref = hd.get_volume_from_series(datasets)
    np.testing.assert_allclose(vol.affine, ref.affine, atol=1e-4)
    np.testing.assert_array_equal(vol.array, ref.array)


def test_duplicates_are_dropped_and_counted(tmp_path):
    w = fx.write_series(tmp_path, n=6, duplicate=(2, 4))
    vol = _load(tmp_path)
    assert vol.shape[0] == 6
    assert len(vol.geometry.duplicates_dropped) == 2
    np.testing.assert_array_equal(vol.array, w.volume(rescaled=True))


def test_missing_slices_raise_naming_files(tmp_path):
    fx.write_series(tmp_path, n=10, drop=(3, 4, 8))
    with pytest.raises(fastvol.MissingSlicesError) as info:
        _load(tmp_path)
    err = info.value
    assert "gaps='fill'" in str(err)
    assert err.files and all(os.path.exists(f) for f in err.files)
    np.testing.assert_array_equal(err.missing, [1, 5, 6])  # written 3, 4, 8 of 10, counted downward
    assert isinstance(err, ValueError)


def test_missing_slices_fill(tmp_path):
    w = fx.write_series(tmp_path, n=10, drop=(3, 4, 8), slopes=0.5)
    vol = _load(tmp_path, gaps="fill")
    assert vol.shape[0] == 10
    assert vol.geometry.missing == (1, 5, 6)  # written 3, 4, 8 of 10, counted downward
    assert vol.array.dtype == np.float32
    assert np.isnan(vol.array[[1, 5, 6]]).all()
    kept = [k for k in range(10) if k not in (1, 5, 6)]
    np.testing.assert_allclose(vol.array[kept], w.volume(rescaled=True), rtol=1e-6)
    _assert_affine_law_on_slots(vol, w, kept)
    # slope 0.5: integers cannot hold the rescaled values (refused); stored values can
    ints = _load(tmp_path, gaps="fill", dtype="int32", rescale=False)
    assert (ints.array[1] == np.iinfo(np.int32).min).all()
    np.testing.assert_array_equal(ints.array[kept], w.volume(rescaled=False))


def _assert_affine_law_on_slots(vol, w, slots):
    for k, pos in zip(slots, w.sorted_positions()):
        np.testing.assert_allclose((vol.affine @ [k, 0, 0, 1])[:3], pos, atol=1e-4)


def test_irregular_spacing_raises_then_resamples(tmp_path):
    d = np.array([0.0, 2.0, 4.0, 7.0, 9.0, 11.0])
    positions = np.outer(d, [0, 0, -1.0]) + [5.0, -3.0, 10.0]  # array order: down the normal
    w = fx.write_series(tmp_path, n=6, positions=positions, slopes=1.0)
    with pytest.raises(fastvol.IrregularSpacingError, match="irregular='resample'") as info:
        _load(tmp_path)
    assert info.value.spacings is not None
    vol = _load(tmp_path, irregular="resample")
    assert vol.array.dtype == np.float32
    n = vol.shape[0]
    assert n == 7  # 11 mm at a step no coarser than the median (2 mm): 6 intervals
    truth = w.volume(rescaled=True).astype(np.float64)
    grid = np.linspace(0.0, 11.0, n)
    expected = np.stack([np.apply_along_axis(lambda c: np.interp(g, d, c), 0, truth) for g in grid])
    np.testing.assert_allclose(vol.array, expected, rtol=1e-5, atol=1e-2)
    for k, z in enumerate(grid):  # the affine places output slice k at its grid position
        np.testing.assert_allclose((vol.affine @ [k, 0, 0, 1])[:3], [5.0, -3.0, 10.0 - z], atol=1e-6)
    assert any("resample" in x for x in vol.geometry.decisions)


def test_gantry_tilt_keeps_pixels_with_sheared_affine(tmp_path):
    angle = 15.0
    step_vector = np.array([0.0, 2.0 * np.tan(np.radians(angle)), -2.0])
    w = fx.write_series(tmp_path, n=6, step_vector=step_vector, extra={"GantryDetectorTilt": angle})
    with pytest.warns(fastvol.FastvolWarning, match="tilt"):
        vol = _load(tmp_path)
    assert vol.geometry.tilt_deg == pytest.approx(angle, abs=1e-3)
    np.testing.assert_array_equal(vol.array, w.volume(rescaled=True))
    _assert_affine_law(vol, w)


def test_gantry_tilt_resample_gives_orthogonal_grid(tmp_path):
    step_vector = np.array([0.0, 0.9, -2.0])  # one row (0.9 mm) per slice off the normal
    fx.write_series(tmp_path, n=4, rows=16, columns=12, pixel_spacing=(0.9, 0.8), step_vector=step_vector,
                    slopes=1.0)  # fmt: skip
    with pytest.warns(fastvol.FastvolWarning):
        kept = _load(tmp_path)
    vol = _load(tmp_path, tilt="resample")
    np.testing.assert_allclose(vol.affine[:3, 0], [0, 0, -2.0], atol=1e-6)
    # Slice k was acquired k rows further along +y: the same world point lies k rows earlier in
    # it, so output row i of slice k is acquired row i - k (world-space checks: test_tilt.py).
    for k in range(4):
        np.testing.assert_allclose(vol.array[k, k:], kept.array[k, : 16 - k], rtol=1e-6)
        assert np.isnan(vol.array[k, :k]).all()
        world = vol.affine @ [k, 10, 5, 1]
        np.testing.assert_allclose(np.linalg.inv(kept.affine) @ world, [k, 10 - k, 5, 1], atol=1e-9)


def test_repeated_positions_split_by_each_tag(tmp_path):
    for tag in fx.REPEAT_TAGS:
        folder = tmp_path / tag
        w = fx.write_series(folder, n=5, repeats=3, repeat_tag=tag, shuffle=2)
        vol = _load(folder)
        assert vol.shape == (3, 5, 16, 12), tag
        assert vol.geometry.volumes_tag == tag
        np.testing.assert_array_equal(vol.array, w.volume(rescaled=True))
        assert list(vol.geometry.volumes_values) == sorted(vol.geometry.volumes_values)


def test_repeated_positions_inferred_from_acquisition_order(tmp_path):
    # No tag tells the volumes apart, but InstanceNumber gives the acquisition order (fMRI).
    w = fx.write_series(tmp_path, n=4, repeats=3, repeat_tag=None, shuffle=5)
    vol = _load(tmp_path)
    assert vol.shape == (3, 4, 16, 12)
    np.testing.assert_array_equal(vol.array, w.volume(rescaled=True))
    assert vol.meta["volumes_by_order"] and vol.geometry.volumes_tag == "InstanceNumber"
    assert any("acquisition order" in d for d in vol.geometry.decisions)


def test_repeated_positions_without_any_order_raise_then_first(tmp_path):
    fx.write_series(tmp_path, n=4, repeats=2, repeat_tag=None, instance_numbers=None,
                    extra={"AcquisitionNumber": None, "AcquisitionTime": None})  # fmt: skip
    with pytest.raises(fastvol.RepeatedPositionsError, match="repeats='first'"):
        _load(tmp_path)
    vol = _load(tmp_path, repeats="first")
    assert vol.shape[0] == 4
    assert len(vol.geometry.skipped) == 4


@pytest.mark.parametrize("tag", ["TemporalPositionIdentifier", None])
def test_incomplete_last_volume_raises_then_drops(tmp_path, tag):
    w = fx.write_series(tmp_path, n=5, repeats=3, repeat_tag=tag)
    last = [i for i in range(len(w.paths)) if w.repeat_index[i] == 2][:2]
    for i in last:
        os.remove(w.paths[i])
    with pytest.raises(fastvol.RepeatedPositionsError, match="incomplete='drop'"):
        _load(tmp_path)
    vol = _load(tmp_path, incomplete="drop")
    assert vol.shape == (2, 5, 16, 12)
    np.testing.assert_array_equal(vol.array, w.volume(rescaled=True)[:2])
    assert sum(reason == "incomplete volume" for _, reason in vol.geometry.skipped) == 3


def test_localizer_in_series_is_skipped_and_reported(tmp_path):
    w = fx.write_series(tmp_path, n=5, localizer=True)
    found = fastvol.scan(tmp_path)
    assert len(found) == 2 and sum(s.is_localizer for s in found) == 1
    vol = _load(tmp_path)
    np.testing.assert_array_equal(vol.array, w.volume(rescaled=True))
    assert [reason for _, reason in vol.geometry.skipped] == ["localizer"]


def test_mixed_orientations_under_one_uid_raise(tmp_path):
    uid = "1.2.3.4.5.6.7"
    fx.write_series(tmp_path / "a", n=3, series_uid=uid, seed=1)
    fx.write_series(tmp_path / "b", n=3, series_uid=uid, seed=2, orientation=(0, 1, 0, 0, 0, -1))
    with pytest.raises(fastvol.MixedGeometryError) as info:
        _load(tmp_path)
    assert len(info.value.groups) == 2
    vol = _load(tmp_path, series=info.value.groups[1])
    assert vol.shape[0] == 3
    # Chosen among other series: the error lists that series' groups only, at their indices.
    other = fx.write_series(tmp_path / "c", n=2, seed=3)
    found = fastvol.scan(tmp_path)
    with pytest.raises(fastvol.MixedGeometryError) as info:
        _load(tmp_path, series=uid)
    listed = [line for line in str(info.value).splitlines() if line.startswith("  [")]
    assert len(listed) == 2 and other.series_uid not in str(info.value)
    assert all(line.startswith(f"  [{i}] {found[i].id}") for line in listed
               for i in [int(line.split("]")[0][3:])])  # fmt: skip


def test_several_series_need_series_argument(tmp_path):
    fx.write_series(tmp_path / "one", n=3, seed=1)
    w2 = fx.write_series(tmp_path / "two", n=4, seed=2)
    with pytest.raises(fastvol.SeriesSelectionError, match="series=") as info:
        _load(tmp_path)
    assert isinstance(info.value, LookupError)
    vol = _load(tmp_path, series=w2.series_uid)
    assert vol.shape[0] == 4
    found = fastvol.scan(tmp_path)
    assert sorted(s.n_files for s in found) == [3, 4]
    picked = [s for s in found if s.uid == w2.series_uid][0]
    np.testing.assert_array_equal(picked.load().array, vol.array)


@pytest.mark.parametrize(
    ("extra", "step", "source"),
    [({"SpacingBetweenSlices": 3.0, "SliceThickness": 2.0}, 3.0, "SpacingBetweenSlices"),
     ({"SpacingBetweenSlices": None, "SliceThickness": 2.5}, 2.5, "SliceThickness"),
     ({"SpacingBetweenSlices": None, "SliceThickness": None}, 1.0, "default")],
)  # fmt: skip
def test_single_slice_step(tmp_path, extra, step, source):
    fx.write_series(tmp_path, n=1, orientation=OBLIQUE, extra=extra)
    vol = _load(tmp_path)
    normal = np.cross(OBLIQUE[:3], OBLIQUE[3:])
    np.testing.assert_allclose(vol.affine[:3, 0], -normal * step, atol=1e-6)
    assert any(source in d for d in vol.geometry.decisions)


def test_series_geometry_from_headers_without_raising(tmp_path):
    fx.write_series(tmp_path, n=6, drop=(2,))
    (series,) = fastvol.scan(tmp_path)
    report = series.geometry
    assert report.kind == "gaps" and report.missing == (3,)
    assert series.shape == (6, 16, 12)
    assert "missing" in report.text()


# --- pixels ---------------------------------------------------------------------------------


@pytest.mark.parametrize("ts", fx.ALL_SYNTAXES)
def test_every_transfer_syntax(tmp_path, ts):
    fx.require(ts)
    kw = {"bits_allocated": 8, "bits_stored": 8, "signed": False} if ts in fx.LOSSY_SYNTAXES else {}
    w = fx.write_series(tmp_path, n=3, transfer_syntax=ts, shuffle=1, **kw)
    vol = _load(tmp_path)
    np.testing.assert_allclose(vol.array, w.volume(rescaled=True), atol=w.tolerance)


@pytest.mark.parametrize("signed", [False, True])
def test_junk_high_bits_masked_and_sign_extended(tmp_path, signed):
    w = fx.write_series(tmp_path, n=3, bits_stored=12, signed=signed, junk_high_bits=True)
    vol = _load(tmp_path)
    np.testing.assert_array_equal(vol.array, w.volume(rescaled=True))
    raw = _load(tmp_path, rescale=False)
    assert raw.array.dtype == (np.int16 if signed else np.uint16)
    np.testing.assert_array_equal(raw.array, w.volume())


def test_raw_dataset_without_preamble(tmp_path):
    w = fx.write_series(tmp_path, n=3, raw_dataset=True)
    assert all(Path(p).read_bytes()[128:132] != b"DICM" for p in w.paths)
    np.testing.assert_array_equal(_load(tmp_path).array, w.volume(rescaled=True))


def test_per_slice_rescale_and_dtype_rules(tmp_path):
    slopes = np.array([1.0, 2.0, 1.0, 3.0])
    w = fx.write_series(tmp_path / "a", n=4, bits_stored=12, signed=False, slopes=slopes,
                        intercepts=-1024.0)  # fmt: skip
    vol = _load(tmp_path / "a")
    assert vol.array.dtype == np.int16
    np.testing.assert_array_equal(vol.array, w.volume(rescaled=True))
    w = fx.write_series(tmp_path / "b", n=4, slopes=0.25, intercepts=1.5)
    vol = _load(tmp_path / "b")
    assert vol.array.dtype == np.float32
    np.testing.assert_allclose(vol.array, w.volume(rescaled=True), rtol=1e-6)
    assert _load(tmp_path / "b", dtype="float64").array.dtype == np.float64
    assert _load(tmp_path / "b", rescale=False).array.dtype == np.int16


def test_unsigned_12bit_without_rescale_is_int16(tmp_path):
    fx.write_series(tmp_path, n=2, bits_stored=12, signed=False)
    assert _load(tmp_path).array.dtype == np.int16


def test_monochrome1_reported(tmp_path):
    w = fx.write_series(tmp_path, n=2, photometric="MONOCHROME1")
    vol = _load(tmp_path)
    np.testing.assert_array_equal(vol.array, w.volume(rescaled=True))
    assert any("MONOCHROME1" in x for x in vol.geometry.warnings)


def test_colour_loads_with_a_trailing_channel_axis(tmp_path):
    w = fx.write_series(tmp_path, n=2, samples_per_pixel=3, bits_allocated=8, bits_stored=8, signed=False)
    vol = _load(tmp_path)
    assert vol.shape == (2, *w.stored.shape[1:]) and vol.shape[-1] == 3
    np.testing.assert_array_equal(vol.array, w.stored[w.order()])  # RGB, as written


def test_executors_agree(tmp_path):
    w = fx.write_series(tmp_path, n=6, transfer_syntax=fx.RLE_LOSSLESS if hasattr(fx, "RLE_LOSSLESS")
                        else "1.2.840.10008.1.2.5")  # fmt: skip
    expected = w.volume(rescaled=True)
    np.testing.assert_array_equal(_load(tmp_path, executor=None).array, expected)
    with ProcessPoolExecutor(2) as pool:
        np.testing.assert_array_equal(_load(tmp_path, executor=pool).array, expected)


# --- bad input ------------------------------------------------------------------------------


def test_truncated_file_is_named(tmp_path):
    w = fx.write_series(tmp_path, n=3)
    fx.truncate(w.paths[1], 100)  # inside its pixels: a damaged image, found by the scan
    with pytest.raises(fastvol.UnreadableError) as info:
        _load(tmp_path)
    assert w.paths[1] in info.value.files and "pixel data cut short" in str(info.value)
    assert fastvol.load(tmp_path, unreadable="skip", gaps="fill").meta["unreadable_skipped"] == [w.paths[1]]


@pytest.mark.parametrize("ts", ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2.5", "1.2.840.10008.1.2.4.90"])
def test_short_pixel_data_is_named(tmp_path, ts):
    fx.require(ts)
    w = fx.write_series(tmp_path, n=3, transfer_syntax=ts)
    fx.short_pixel_data(w.paths[0])
    with pytest.raises(fastvol.FastvolError) as info:
        _load(tmp_path)
    # Native pixels cut short are found by the scan (damaged: UnreadableError, skippable);
    # compressed ones when their frame is read.
    assert isinstance(info.value, (fastvol.UnreadableError, fastvol.CorruptFileError, fastvol.DecodeError))
    assert w.paths[0] in str(info.value)


def test_huge_declared_size_refused_before_allocating(tmp_path):
    w = fx.write_series(tmp_path, n=2)
    fx.declare_huge(w.paths[0])
    with pytest.raises((fastvol.CorruptFileError, fastvol.UnsupportedError)):
        _load(w.paths[0])


def test_non_image_files_skipped_and_counted(tmp_path):
    w = fx.write_series(tmp_path, n=3)
    fx.write_non_dicom(tmp_path)
    fx.write_no_pixel_object(tmp_path)
    fx.write_dicomdir_like(tmp_path)
    found = fastvol.scan(tmp_path)
    assert len(found) == 1
    assert {k: len(v) for k, v in found.skipped.items()} == {
        "not DICOM": 1, "no pixel data": 1, "DICOMDIR": 1}  # fmt: skip
    np.testing.assert_array_equal(_load(tmp_path).array, w.volume(rescaled=True))


def test_no_dicom_at_all(tmp_path):
    fx.write_non_dicom(tmp_path)
    with pytest.raises(fastvol.NotDicomError):
        _load(tmp_path)
    with pytest.raises(fastvol.PathNotFoundError):  # issue 7: a FileNotFoundError, not NotDicomError
        _load(tmp_path / "does-not-exist")


def test_bad_option_is_typed(tmp_path):
    fx.write_series(tmp_path, n=2)
    with pytest.raises(fastvol.InputError):
        _load(tmp_path, gaps="ignore")
    with pytest.raises(fastvol.InputError):
        _load(tmp_path, no_such_option=1)
    with pytest.raises(fastvol.InputError, match="fill_value"):
        _load(tmp_path, gaps="fill", fill_value="lots")
    with pytest.raises(fastvol.InputError, match="dtype"):
        _load(tmp_path, dtype="not-a-dtype")
    with pytest.raises(fastvol.InputError, match="executor"):
        _load(tmp_path, executor="threads")


def test_inputs_never_modified(tmp_path):
    fx.write_series(tmp_path, n=4, transfer_syntax="1.2.840.10008.1.2.5")
    digest = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in tmp_path.iterdir()}
    for p in tmp_path.iterdir():
        os.chmod(p, 0o444)
    _load(tmp_path)
    assert digest == {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in tmp_path.iterdir()}


def test_results_and_errors_pickle(tmp_path):
    fx.write_series(tmp_path, n=4, drop=(1,))
    (series,) = fastvol.scan(tmp_path)
    again = pickle.loads(pickle.dumps(series))
    assert again.id == series.id and again.geometry.kind == "gaps"
    vol = _load(tmp_path, gaps="fill")
    vol2 = pickle.loads(pickle.dumps(vol))
    np.testing.assert_array_equal(vol2.array, vol.array)
    with pytest.raises(fastvol.MissingSlicesError) as info:
        _load(tmp_path)
    err = pickle.loads(pickle.dumps(info.value))
    assert type(err) is fastvol.MissingSlicesError and err.files == info.value.files


def test_files_without_suffix_and_nested_folders(tmp_path):
    w = fx.write_series(tmp_path / "deep" / "er", n=3, file_names="{:d}")
    shutil.copy(w.paths[0], tmp_path / ".hidden")
    vol = _load(tmp_path)
    assert vol.shape[0] == 3


def test_no_warning_on_regular_series(tmp_path):
    fx.write_series(tmp_path, n=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _load(tmp_path)


def test_to_nifti_is_world_consistent(tmp_path):
    nib = pytest.importorskip("nibabel")
    w = fx.write_series(tmp_path / "s", n=5, orientation=OBLIQUE)
    vol = _load(tmp_path / "s")
    out = vol.to_nifti(tmp_path / "v.nii.gz")
    img = nib.load(out)
    data = np.asarray(img.dataobj)
    assert data.shape == (12, 16, 5)
    lps = np.diag([-1, -1, 1, 1]) @ img.affine
    for k, pos in enumerate(w.sorted_positions()):
        np.testing.assert_allclose((lps @ [0, 0, k, 1])[:3], pos, atol=1e-4)
    np.testing.assert_array_equal(data[:, :, 2].T, vol.array[2])
    assert not [p for p in Path(tmp_path).iterdir() if p.name.startswith("tmp")]


def test_select_volumes_reads_only_those(tmp_path, monkeypatch):
    import fastvol.stack as stack

    w = fx.write_series(tmp_path, n=4, repeats=3, repeat_tag="TemporalPositionIdentifier",
                        transfer_syntax="1.2.840.10008.1.2.5")  # fmt: skip
    truth = w.volume(rescaled=True)
    read: list[str] = []
    original = stack._stored_frame
    monkeypatch.setattr(stack, "_stored_frame", lambda src, *a: read.append(src.path) or original(src, *a))
    one = _load(tmp_path, select=1)
    assert one.shape == (4, 16, 12)
    np.testing.assert_array_equal(one.array, truth[1])
    assert len(read) == 4 and set(read) == set(one.meta["files"])
    assert sum(reason == "not selected" for _, reason in one.geometry.skipped) == 8
    some = _load(tmp_path, select=[2, 0])
    np.testing.assert_array_equal(some.array, truth[[2, 0]])
    assert some.geometry.volumes_values == (3, 1)
    np.testing.assert_array_equal(_load(tmp_path, select=slice(0, 1)).array, truth[:1])
    with pytest.raises(fastvol.InputError, match="select"):
        _load(tmp_path, select=5)


def test_absurd_number_of_frames_refused_before_expanding(tmp_path):
    import pydicom

    w = fx.write_series(tmp_path, n=1)
    ds = pydicom.dcmread(w.paths[0])
    ds.NumberOfFrames = 100_000_000
    ds.save_as(w.paths[0])
    with pytest.raises(fastvol.CorruptFileError, match="NumberOfFrames") as info:
        _load(tmp_path)
    assert w.paths[0] in info.value.files


def test_series_as_the_listing_spells_it(tmp_path):
    # The listing prints "[i] ... #N": "[i]" picks by index, "#N" and "N" by SeriesNumber.
    fx.write_series(tmp_path / "a", n=3, seed=1, extra={"SeriesNumber": 7})
    fx.write_series(tmp_path / "b", n=4, seed=2, extra={"SeriesNumber": 3})
    found = fastvol.scan(tmp_path)
    assert [s.number for s in found] == [3, 7]
    assert fastvol.load(tmp_path, series="#7").shape[0] == 3
    assert fastvol.load(tmp_path, series="7").shape[0] == 3
    assert fastvol.load(tmp_path, series="[1]").shape[0] == 3
    assert fastvol.load(tmp_path, series=1).shape[0] == 3
    assert fastvol.load(tmp_path, series="[0]").shape[0] == 4
    with pytest.raises(fastvol.SeriesSelectionError, match="'#N'"):
        fastvol.load(tmp_path, series="#9")


def test_orientations_either_side_of_a_rounding_boundary_are_one_series(tmp_path):
    """Files are grouped by orientation rounded to 4 decimals; 0.0000499 and 0.0000501 round
    apart but are one orientation (a mutation trial split a series on a 1e-5 change)."""

    def edit(i: int, ds) -> None:
        if i == 2:
            ds.ImageOrientationPatient = [1, 0.0000501, 0, 0, 1, 0]

    written = fx.write_series(tmp_path / "s", n=5, orientation=(1, 0.0000499, 0, 0, 1, 0), edit=edit)
    found = fastvol.scan(written.folder)
    assert len(found) == 1 and found[0].n_files == 5
    assert fastvol.load(written.folder).shape == (5, 16, 12)
    far = fx.write_series(tmp_path / "f", n=5, edit=lambda i, ds: setattr(
        ds, "ImageOrientationPatient", [1, 0.0003, 0, 0, 1, 0]) if i == 2 else None)  # fmt: skip
    assert len(fastvol.scan(far.folder)) == 2  # three rounding steps apart: another orientation


def test_a_file_in_another_frame_of_reference_is_stacked_with_a_warning(tmp_path):
    odd_uid = "1.2.826.0.1.3680043.8.498.99"
    written = fx.write_series(tmp_path / "s", n=4, edit=lambda i, ds: setattr(
        ds, "FrameOfReferenceUID", odd_uid) if i == 1 else None)  # fmt: skip
    with pytest.warns(fastvol.FastvolWarning, match="FrameOfReferenceUID"):
        vol = fastvol.load(written.folder)
    assert vol.shape == (4, 16, 12)
    (text,) = [w for w in vol.geometry.warnings if "FrameOfReferenceUID" in w]
    assert written.paths[1] in text and "1 file(s)" in text
    same = fx.write_series(tmp_path / "t", n=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error", fastvol.FastvolWarning)
        assert not fastvol.load(same.folder).geometry.warnings


def test_a_file_without_the_frame_of_reference_of_the_rest_is_named(tmp_path):
    written = fx.write_series(tmp_path / "s", n=4, edit=lambda i, ds: delattr(
        ds, "FrameOfReferenceUID") if i == 3 else None)  # fmt: skip
    with pytest.warns(fastvol.FastvolWarning, match="FrameOfReferenceUID") as caught:
        fastvol.load(written.folder)
    assert any(written.paths[3] in str(w.message) for w in caught)


def test_a_file_of_another_pixel_format_is_the_one_named(tmp_path):
    import pydicom

    written = fx.write_series(tmp_path / "s", n=4)
    odd = written.paths[2]
    ds = pydicom.dcmread(odd)
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.PixelData = ds.pixel_array.astype(np.int8).tobytes()
    ds.save_as(odd)
    with pytest.raises(fastvol.UnsupportedError, match="1 file.* 8 bits allocated") as raised:
        fastvol.load(written.folder)
    assert raised.value.files == (odd,)
    assert "3 file(s) 16x12" in str(raised.value)
