"""fastvol.torchio.read as a TorchIO reader, against TorchIO reading fastvol's NIfTI and Zarr."""

from __future__ import annotations

import numpy as np
import pytest

import factory as fx
import fastvol

tio = pytest.importorskip("torchio")
pytest.importorskip("nibabel")
import fastvol.torchio as ftio  # noqa: E402


@pytest.mark.parametrize("orientation", [(1, 0, 0, 0, 1, 0), (0.8660254, 0.5, 0, -0.5, 0.8660254, 0)])
def test_scalar_image_equals_the_nifti_round_trip(tmp_path, orientation):
    written = fx.write_series(tmp_path / "s", n=5, orientation=orientation, shuffle=True)
    vol = fastvol.load(written.folder)
    ours = tio.ScalarImage(written.folder, reader=ftio.read)
    nifti = tio.ScalarImage(vol.to_nifti(tmp_path / "v.nii.gz"))  # TorchIO's own NIfTI reader
    assert ours.shape == nifti.shape == (1, 12, 16, 5)
    assert ours.data.dtype == nifti.data.dtype
    np.testing.assert_array_equal(ours.data.numpy(), nifti.data.numpy())
    np.testing.assert_allclose(ours.affine, nifti.affine, atol=1e-5)
    np.testing.assert_allclose(ours.spacing, nifti.spacing, atol=1e-6)
    assert ours.orientation == nifti.orientation
    # TorchIO transforms run on it like on any image.
    flipped = tio.Flip(axes=("LR",))(ours)
    assert flipped.shape == ours.shape


def test_4d_channels_zarr_and_bound_options(tmp_path):
    written = fx.write_series(tmp_path / "s", n=4, repeats=2, drop=[])
    vol = fastvol.load(written.folder)
    image = tio.ScalarImage(written.folder, reader=ftio.read)
    assert image.shape == (2, 12, 16, 4)
    np.testing.assert_array_equal(image.data[1].numpy(), vol.array[1].transpose(2, 1, 0))
    store = tio.ScalarImage(vol.to_zarr(tmp_path / "v.zarr"), reader=ftio.read)
    np.testing.assert_array_equal(store.data.numpy(), image.data.numpy())
    np.testing.assert_allclose(store.affine, image.affine)
    gappy = fx.write_series(tmp_path / "g", n=5, drop=[2])
    with pytest.raises(fastvol.MissingSlicesError):
        tio.ScalarImage(gappy.folder, reader=ftio.read).load()
    filled = tio.ScalarImage(gappy.folder, reader=ftio.reader(gaps="fill"))
    assert filled.shape == (1, 12, 16, 5)


def test_colour_is_three_channels_with_the_spatial_affine(tmp_path):
    written = fx.write_series(tmp_path / "s", n=5, rows=16, columns=12, photometric="RGB", samples_per_pixel=3,
                              bits_allocated=8, signed=False, shuffle=True)  # fmt: skip
    vol = fastvol.load(written.folder)
    assert vol.meta["channels"] == "RGB"
    image = tio.ScalarImage(written.folder, reader=ftio.read)
    assert image.shape == (3, 12, 16, 5)  # (colour, W, H, D): TorchIO's channels first
    for c in range(3):
        np.testing.assert_array_equal(image.data[c].numpy(), vol.array[..., c].transpose(2, 1, 0))
    grey = tio.ScalarImage(fx.write_series(tmp_path / "g", n=5).folder, reader=ftio.read)
    np.testing.assert_allclose(image.affine, grey.affine, atol=1e-5)  # same grid as a greyscale twin
    for store in (vol.to_nifti(tmp_path / "v.nii.gz"), vol.to_zarr(tmp_path / "v.zarr")):
        again = tio.ScalarImage(store, reader=ftio.read)
        np.testing.assert_array_equal(again.data.numpy(), image.data.numpy())
        np.testing.assert_allclose(again.affine, image.affine, atol=1e-5)
