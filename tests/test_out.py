"""load(out=...): the caller's array is filled and returned, its shape and dtype checked first."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import factory as fx
import fastvol


def test_out_is_filled_and_is_the_volume_array(tmp_path):
    written = fx.write_series(tmp_path / "s", n=5, shuffle=True, intercepts=-1024.0)
    expected = written.volume(rescaled=True)
    buffer = np.full((5, 16, 12), 99, dtype=np.int32)  # full int16 range - 1024: int32
    vol = fastvol.load(written.folder, out=buffer)
    assert vol.array is buffer
    np.testing.assert_array_equal(buffer, expected)


def test_out_can_be_a_slot_of_a_batch_with_a_chosen_dtype(tmp_path):
    folders = [fx.write_series(tmp_path / f"s{i}", n=4, seed=i).folder for i in range(3)]
    batch = np.zeros((3, 4, 16, 12), dtype=np.float32)
    for i, folder in enumerate(folders):
        fastvol.load(folder, out=batch[i], dtype="float32")
    for i, folder in enumerate(folders):
        np.testing.assert_array_equal(batch[i], fastvol.load(folder).array.astype(np.float32))
    series = fastvol.scan(folders[1])[0]
    again = np.empty((4, 16, 12), dtype=np.int16)
    assert series.load(out=again).array is again


def test_out_with_filled_gaps_4d_and_resampling(tmp_path):
    gappy = fx.write_series(tmp_path / "g", n=6, drop=[2])
    filled = np.zeros((6, 16, 12), dtype=np.int16)
    vol = fastvol.load(gappy.folder, gaps="fill", out=filled)
    np.testing.assert_array_equal(filled, fastvol.load(gappy.folder, gaps="fill").array)
    (missing,) = vol.geometry.missing
    assert (filled[missing] == np.iinfo(np.int16).min).all()
    four = fx.write_series(tmp_path / "d", n=3, repeats=2)
    out4 = np.empty((2, 3, 16, 12), dtype=np.int16)
    np.testing.assert_array_equal(fastvol.load(four.folder, out=out4).array, four.volume())
    tilted = fx.write_series(tmp_path / "t", n=5, step_vector=(0, 0.3, 2.0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fastvol.FastvolWarning)
        reference = fastvol.load(tilted.folder, tilt="resample")
        out = np.empty(reference.shape, dtype=reference.array.dtype)
        vol = fastvol.load(tilted.folder, tilt="resample", out=out)
    assert vol.array is out  # resampled elsewhere, then copied into the caller's array
    np.testing.assert_array_equal(out, reference.array)


@pytest.mark.parametrize("bad, words", [
    (np.zeros((5, 16, 11), np.int16), "shape (5, 16, 12) and dtype int16"),
    (np.zeros((5, 16, 12), np.float32), "dtype int16"),
    (np.zeros((5, 12, 16), np.int16).transpose(0, 2, 1), "C-contiguous"),
    ([[0]], "numpy array"),
])  # fmt: skip
def test_wrong_out_is_an_input_error_naming_what_is_needed(tmp_path, bad, words):
    written = fx.write_series(tmp_path / "s", n=5)
    with pytest.raises(fastvol.InputError) as info:
        fastvol.load(written.folder, out=bad)
    assert words in str(info.value)
    readonly = np.zeros((5, 16, 12), np.int16)
    readonly.flags.writeable = False
    with pytest.raises(fastvol.InputError, match="writeable"):
        fastvol.load(written.folder, out=readonly)
    assert not readonly.any()
