"""The C pixel kernels (:mod:`fastvol._ckernels._pixels`) equal numba's and the numpy twins.

Bit for bit, for every stored sample type into every output type, with and without masking,
signed or not, integer and float rescales (wrapping included), in place and into an aliasing
view; and loads choose them unless ``FASTVOL_JIT`` or ``FASTVOL_NATIVE`` says otherwise.
"""

from __future__ import annotations

import factory as fx
import numpy as np
import pytest

import fastvol
from fastvol import kernels
from fastvol._pykernels import vector

STORED = (np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int32)
OUTPUTS = (np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int32, np.int64, np.uint64, np.float32, np.float64)


@pytest.fixture(scope="module")
def cpixels(c_kernel):
    return c_kernel("_pixels")


@pytest.fixture(scope="module")
def numba_pixels():
    from fastvol._kernels import pixels

    return pixels


def _case(rng, stored, out):
    bits = int(rng.integers(1, 8 * np.dtype(stored).itemsize + 1))
    signed = bool(rng.integers(2))
    mask = bool(rng.integers(2)) or bits < 8 * np.dtype(stored).itemsize
    src = rng.integers(np.iinfo(stored).min, np.iinfo(stored).max, 333, dtype=stored, endpoint=True)
    if np.dtype(out).kind == "f":
        slope, intercept = out(rng.normal() * 3), out(rng.normal() * 1000)
    else:
        slope, intercept = int(rng.integers(-70000, 70000)), int(rng.integers(-(2**40), 2**40))
    return src, bits, signed, mask, slope, intercept


@pytest.mark.parametrize("out", OUTPUTS, ids=lambda t: np.dtype(t).name)
@pytest.mark.parametrize("stored", STORED, ids=lambda t: np.dtype(t).name)
def test_store_frame_equals_numba_and_twin(cpixels, numba_pixels, stored, out):
    rng = np.random.default_rng(np.dtype(stored).num * 100 + np.dtype(out).num)
    for _ in range(40):
        src, bits, signed, mask, slope, intercept = _case(rng, stored, out)
        a, b, c = np.empty(src.size, out), np.empty(src.size, out), np.empty(src.size, out)
        cpixels.store_frame(src, a, bits, signed, mask, slope, intercept)
        numba_pixels.store_frame(src, b, bits, signed, mask, slope, intercept)
        vector.store_frame(src, c, bits, signed, mask, slope, intercept)
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("dtype", (np.uint8, np.uint16, np.uint32))
def test_in_place_equals_numba_and_twin(cpixels, numba_pixels, dtype):
    rng = np.random.default_rng(3)
    for _ in range(150):
        bits = int(rng.integers(1, 8 * np.dtype(dtype).itemsize + 1))
        signed = bool(rng.integers(2))
        mask = signed or bool(rng.integers(2))
        slope, intercept = int(rng.integers(-5, 6)), int(rng.integers(-70000, 70000))
        src = rng.integers(0, np.iinfo(dtype).max, 300, dtype=dtype, endpoint=True)
        a, b, c = src.copy(), src.copy(), src.copy()
        cpixels.store_frame_in_place(a, bits, signed, mask, slope, intercept)
        numba_pixels.store_frame_in_place(b, bits, signed, mask, slope, intercept)
        vector.store_frame_in_place(c, bits, signed, mask, slope, intercept)
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)


def test_aliasing_views_convert_in_place(cpixels, numba_pixels):
    # stack.py reads uint32 samples into a float32 output's memory and converts them there
    rng = np.random.default_rng(5)
    raw = rng.integers(0, 2**32, 1000, dtype=np.uint32, endpoint=False)
    a, b = np.empty(1000, np.float32), np.empty(1000, np.float32)
    a.view(np.uint32)[:] = raw
    b.view(np.uint32)[:] = raw
    cpixels.store_frame(a.view(np.uint32), a, 20, True, True, np.float32(0.25), np.float32(3))
    numba_pixels.store_frame(b.view(np.uint32), b, 20, True, True, np.float32(0.25), np.float32(3))
    np.testing.assert_array_equal(a, b)


def test_fill_slots_equals_numba(cpixels, numba_pixels):
    for dtype, value in ((np.float32, np.nan), (np.int16, -2000), (np.uint8, 7)):
        a, b = np.zeros((5, 3, 4), dtype), np.zeros((5, 3, 4), dtype)
        cpixels.fill_slots(a, np.array([1, 3]), a.dtype.type(value))
        numba_pixels.fill_slots(b, np.array([1, 3]), b.dtype.type(value))
        np.testing.assert_array_equal(a, b)
    a = np.zeros((2, 2, 2, 3), np.uint8)  # colour slots
    cpixels.fill_slots(a, np.array([0]), np.uint8(9))
    assert (a[0] == 9).all() and (a[1] == 0).all()


def test_bad_arguments_raise(cpixels):
    src, dst = np.zeros(4, np.uint16), np.zeros(4, np.int16)
    with pytest.raises(ValueError):
        cpixels.store_frame(src, np.zeros(5, np.int16), 12, False, True, 1, 0)  # sizes differ
    with pytest.raises(ValueError):
        cpixels.store_frame(src, dst, 0, False, True, 1, 0)  # no bits
    with pytest.raises(TypeError):
        cpixels.store_frame(np.zeros(4, np.float32), dst, 12, False, True, 1, 0)  # float samples
    with pytest.raises(TypeError):
        cpixels.store_frame(src, dst, 12, False, True, 1.5, 0)  # a float slope for an integer output
    with pytest.raises(TypeError):
        cpixels.store_frame_in_place(np.zeros(4, np.int16), 12, False, True, 1, 0)  # signed buffer
    with pytest.raises(ValueError):
        cpixels.store_frame(src, np.zeros(8, np.int16)[::2], 12, False, True, 1, 0)  # not contiguous
    with pytest.raises(IndexError):
        cpixels.fill_slots(np.zeros((2, 2, 2), np.int16), np.array([2]), np.int16(1))
    with pytest.raises(TypeError):
        cpixels.fill_slots(np.zeros((2, 2, 2), np.int16), np.array([1]), np.float64(1))  # wrong size


def test_loads_choose_c_unless_told(cpixels, monkeypatch, tmp_path):
    monkeypatch.delenv("FASTVOL_JIT", raising=False)
    monkeypatch.delenv("FASTVOL_NATIVE", raising=False)
    assert kernels.pixel_kernels() is cpixels
    monkeypatch.setenv("FASTVOL_NATIVE", "0")
    assert kernels.pixel_kernels() is not cpixels
    monkeypatch.delenv("FASTVOL_NATIVE")
    monkeypatch.setenv("FASTVOL_JIT", "0")
    assert kernels.pixel_kernels() is vector
    # the same volume either way: 12 of 16 bits with an intercept (in place), and to int32
    fx.write_series(tmp_path / "a", n=3, bits_stored=12, intercepts=-1024)
    fx.write_series(tmp_path / "b", n=3, bits_stored=16, signed=False, intercepts=-1024)
    for folder in ("a", "b"):
        monkeypatch.setenv("FASTVOL_JIT", "0")
        twin = fastvol.load(tmp_path / folder).array
        monkeypatch.delenv("FASTVOL_JIT")
        native = fastvol.load(tmp_path / folder).array
        assert native.dtype == twin.dtype
        np.testing.assert_array_equal(native, twin)
