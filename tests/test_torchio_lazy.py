"""fastvol.torchio's lazy backend on TorchIO 2.0 (alpha): equal to fastvol.torchio.read, array and
affine, whole and cropped, and a crop reads only the files of its slices.

Runs only where TorchIO >= 2 imports (the shared environment pins 1.x; ci/test.sh installs the
2.0 alpha aside and sets FASTVOL_REQUIRE_TORCHIO2=1, which turns the skip into a failure).
"""

from __future__ import annotations

import os
import pickle

import factory as fx
import numpy as np
import pytest

import fastvol


def _torchio2() -> tuple[object, str]:
    try:
        import torchio
    except ImportError as exc:
        return None, f"TorchIO is not installed ({exc})"
    try:
        from torchio.data.backends import LazyReader  # noqa: F401  (2.0: readers may be lazy)
    except ImportError:
        return None, f"TorchIO {torchio.__version__} has no lazy-reader API (needs TorchIO >= 2.0)"
    return torchio, ""


tio, _WHY = _torchio2()
if tio is None:
    if os.environ.get("FASTVOL_REQUIRE_TORCHIO2") == "1":
        pytest.fail(f"FASTVOL_REQUIRE_TORCHIO2=1 but {_WHY}", pytrace=False)
    pytest.skip(_WHY, allow_module_level=True)
pytest.importorskip("nibabel")
from torchio.data.backends import BackendRequest, LazyReader

import fastvol.torchio as ftio

OBLIQUE = (0.8660254, 0.5, 0, -0.5, 0.8660254, 0)
# (C, W, H, D) indices a crop, a patch or a direct ``dataobj[...]`` may ask for, and the same
# region of the whole array (TorchIO keeps every axis: an int is a one-long slice).
ALL = slice(None)
INDICES = [
    ((ALL, ALL, ALL, slice(2, 5)), (ALL, ALL, ALL, slice(2, 5))),
    ((0, slice(3, 9), slice(None, None, 2), slice(-3, None)), (slice(0, 1), slice(3, 9), slice(None, None, 2), slice(-3, None))),
    ((slice(None, None, -1), slice(1, 2), 4, slice(5, 0, -2)), (slice(None, None, -1), slice(1, 2), slice(4, 5), slice(5, 0, -2))),
    ((Ellipsis, 1), (ALL, ALL, ALL, slice(1, 2))),
    ((-1, Ellipsis, -1), (slice(-1, None), ALL, ALL, slice(-1, None))),
    ((slice(1, None),), (slice(1, None), ALL, ALL, ALL)),
]


def _series(tmp_path, kind):
    if kind == "oblique":
        return fx.write_series(tmp_path, n=6, orientation=OBLIQUE, shuffle=True), {}
    if kind == "4d":
        return fx.write_series(tmp_path, n=6, repeats=3, shuffle=True), {}
    if kind == "rgb":
        return fx.write_series(tmp_path, n=6, rows=16, columns=12, photometric="RGB", samples_per_pixel=3,
                               bits_allocated=8, signed=False, shuffle=True), {}  # fmt: skip
    if kind == "gaps":
        return fx.write_series(tmp_path, n=7, drop=[3], slopes=0.5), {"gaps": "fill"}
    d = np.array([0.0, 2.0, 4.0, 7.0, 9.0, 11.0])  # uneven: resampled, read whole per request
    return fx.write_series(tmp_path, n=6, positions=np.outer(d, [0, 0, -1.0])), {"irregular": "resample"}


@pytest.mark.parametrize("kind", ["oblique", "4d", "rgb", "gaps", "uneven"])
def test_lazy_image_equals_read(tmp_path, kind):
    written, options = _series(tmp_path, kind)
    tensor, affine = ftio.read(written.folder, **({} if not options else {"options": fastvol.Options(**options)}))
    full = tensor.numpy()
    image = tio.ScalarImage(written.folder, reader=ftio.reader(**options))
    assert isinstance(image._reader, LazyReader)
    assert isinstance(image.dataobj, ftio.SeriesBackend)
    # From the headers: nothing loaded.
    assert image.shape == tuple(full.shape)
    assert image.dtype == full.dtype
    np.testing.assert_array_equal(image.affine.data.numpy(), affine)
    assert not image.is_loaded
    for index, same in INDICES:
        np.testing.assert_array_equal(image.dataobj[index].numpy(), full[same], err_msg=str(index))
    patch = tio.CropOrPad((8, 8, 3))(image)  # lazy: TorchIO's cropped view of our backend
    assert not patch.is_loaded
    eager = tio.CropOrPad((8, 8, 3))(tio.ScalarImage(tensor.clone(), affine=affine))
    np.testing.assert_array_equal(patch.data.numpy(), eager.data.numpy())
    np.testing.assert_allclose(patch.affine.data.numpy(), eager.affine.data.numpy())
    assert not image.is_loaded
    cropped = image[:, 2:9, 1:, 1:4]  # TorchIO's own crop: a new image, its origin moved
    np.testing.assert_array_equal(cropped.data.numpy(), full[:, 2:9, 1:, 1:4])
    np.testing.assert_array_equal(image.data.numpy(), full)  # to_tensor: the whole image
    assert image.data.dtype == tensor.dtype


def test_crop_reads_only_the_files_of_its_slices(tmp_path):
    written = fx.write_series(tmp_path, n=8, shuffle=True)
    full = ftio.read(written.folder)[0].numpy()
    image = tio.ScalarImage(written.folder, reader=ftio.reader())
    assert image.shape == (1, 12, 16, 8)  # headers scanned, plan made
    plan = image.dataobj.plan()
    kept = {s.path for s in plan.sources if 2 <= s.slot < 5}
    assert len(kept) == 3
    for path in written.paths:
        if path not in kept:
            os.truncate(path, 0)  # any read of these would now fail
    np.testing.assert_array_equal(image[..., 2:5].data.numpy(), full[..., 2:5])
    with pytest.raises(fastvol.CorruptFileError):  # the whole image needs the truncated files
        image.load()


def test_nothing_is_read_before_first_use_and_it_pickles(tmp_path):
    missing = tio.ScalarImage(tmp_path / "nowhere", reader=ftio.reader())
    backend = missing.dataobj  # made by the reader's create_backend: nothing opened yet
    assert isinstance(backend, ftio.SeriesBackend)
    pickle.loads(pickle.dumps(missing))
    with pytest.raises(fastvol.PathNotFoundError):
        _ = missing.shape
    written = fx.write_series(tmp_path / "s", n=5, repeats=2)
    full = ftio.read(written.folder)[0].numpy()
    image = tio.ScalarImage(written.folder, reader=ftio.reader(threads=1))
    fresh = pickle.loads(pickle.dumps(image))  # before first use
    np.testing.assert_array_equal(fresh[1:, ..., 1:3].data.numpy(), full[1:, ..., 1:3])
    _ = image.shape  # the plan is made; it travels with the backend
    again = pickle.loads(pickle.dumps(image.dataobj))
    assert again.plan() is not None
    np.testing.assert_array_equal(again.to_tensor().numpy(), full)


def test_stores_options_and_overrides(tmp_path):
    gappy = fx.write_series(tmp_path / "g", n=5, drop=[2])
    with pytest.raises(fastvol.MissingSlicesError):
        _ = tio.ScalarImage(gappy.folder, reader=ftio.reader()).shape  # headers alone raise
    filled = tio.ScalarImage(gappy.folder, reader=ftio.reader(), reader_kwargs={"gaps": "fill"})
    assert filled.shape == (1, 12, 16, 5)
    vol = fastvol.load(gappy.folder, gaps="fill")
    tensor, affine = ftio.read(gappy.folder, fastvol.Options(gaps="fill"))
    for store in (vol.to_nifti(tmp_path / "v.nii.gz"), vol.to_zarr(tmp_path / "v.zarr")):
        image = tio.ScalarImage(store, reader=ftio.reader())
        assert image.shape == tuple(tensor.shape)
        np.testing.assert_array_equal(image[..., 1:3].data.numpy(), tensor.numpy()[..., 1:3])
        np.testing.assert_array_equal(image.data.numpy(), tensor.numpy())
        np.testing.assert_allclose(image.affine.data.numpy(), affine, atol=1e-5)
    moved = np.eye(4)
    moved[:3, 3] = (1, 2, 3)
    image = tio.ScalarImage(gappy.folder, reader=ftio.reader(gaps="fill"), affine=moved)
    np.testing.assert_array_equal(image.dataobj.affine.numpy(), moved)
    with pytest.raises(fastvol.InputError, match="at most 4 indices"):
        image.dataobj[0, 0, 0, 0, 0]
    with pytest.raises(fastvol.InputError, match="expected ints, slices"):
        image.dataobj[np.arange(2)]
    with pytest.raises(fastvol.InputError, match="at most one"):
        image.dataobj[..., 0, ...]
    # A source without a path (a Zarr store or URI) goes to TorchIO's own backends: none here.
    assert ftio.reader().create_backend(BackendRequest()) is None
