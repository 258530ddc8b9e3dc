"""Numba kernels against obvious slow references, on random and edge inputs.

Marked ``kernels``: ci/test.sh runs these once more with NUMBA_DISABLE_JIT=1 so coverage sees the
kernel bodies as plain Python.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastvol._kernels.pixels import fill_slots, store_frame
from fastvol._kernels.resample import interpolate_slices, shift_slices

pytestmark = pytest.mark.kernels


def reference_store(src, bits_stored, signed, slope, intercept):
    v = src.astype(np.int64) & ((1 << bits_stored) - 1)
    if signed:
        v = np.where(v >= 1 << (bits_stored - 1), v - (1 << bits_stored), v)
    return v * slope + intercept


@settings(max_examples=80, deadline=None)
@given(
    bits_allocated=st.sampled_from([8, 16, 32]),
    data=st.data(),
    signed=st.booleans(),
    slope=st.sampled_from([1, 2, -3]),
    intercept=st.integers(-2048, 2048),
)
def test_store_frame_integer_matches_reference(bits_allocated, data, signed, slope, intercept):
    bits_stored = data.draw(st.integers(1, bits_allocated))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    stored_dtype = np.dtype(f"{'i' if signed else 'u'}{bits_allocated // 8}")
    raw = rng.integers(0, 1 << bits_allocated, size=57, dtype=np.uint64).astype(stored_dtype)
    expected = reference_store(raw, bits_stored, signed, slope, intercept)
    dst = np.empty(raw.size, dtype=np.int64)
    store_frame(raw, dst, bits_stored, signed, True, slope, intercept)
    np.testing.assert_array_equal(dst, expected)


def test_store_frame_float_and_in_place_alias():
    raw = np.array([0, 1, 4095, 2048, 0xF123], dtype=np.uint16)
    out = np.empty(5, dtype=np.float32)
    store_frame(raw, out, 12, False, True, np.float32(0.5), np.float32(-10.0))
    np.testing.assert_allclose(out, reference_store(raw, 12, False, 0.5, -10.0))
    # In place: the output's int16 memory read as uint16 stored values.
    buf = np.array([0, 1, 4095, 2048, 0xF123], dtype=np.uint16)
    dst = buf.view(np.int16)
    store_frame(buf, dst, 12, False, True, 1, -1024)
    np.testing.assert_array_equal(dst, reference_store(np.array([0, 1, 4095, 2048, 0xF123], np.uint16), 12, False, 1, -1024))


def test_fill_slots():
    out = np.zeros((4, 2, 2), dtype=np.float32)
    fill_slots(out, np.array([1, 3]), np.float32(np.nan))
    assert np.isnan(out[[1, 3]]).all() and (out[[0, 2]] == 0).all()


def reference_shift(img, dy, dx, fill):
    dy = round(dy) if abs(dy - round(dy)) < 1e-6 else dy  # whole offsets despite rounding noise
    dx = round(dx) if abs(dx - round(dx)) < 1e-6 else dx
    rows, cols = img.shape
    out = np.full_like(img, fill)
    for i in range(rows):
        for j in range(cols):
            y, x = i + dy, j + dx
            y0, x0 = int(np.floor(y)), int(np.floor(x))
            fy, fx = y - y0, x - x0
            if y0 < 0 or x0 < 0 or y0 >= rows or x0 >= cols:
                continue
            if (fy > 0 and y0 + 1 >= rows) or (fx > 0 and x0 + 1 >= cols):
                continue
            y1, x1 = min(y0 + 1, rows - 1), min(x0 + 1, cols - 1)
            top = img[y0, x0] * (1 - fx) + img[y0, x1] * fx
            bottom = img[y1, x0] * (1 - fx) + img[y1, x1] * fx
            out[i, j] = top * (1 - fy) + bottom * fy
    return out


@settings(max_examples=30, deadline=None)
@given(drow=st.floats(-3, 3), dcol=st.floats(-3, 3), seed=st.integers(0, 1000))
def test_shift_slices_matches_reference(drow, dcol, seed):
    rng = np.random.default_rng(seed)
    stack = rng.normal(size=(3, 7, 6)).astype(np.float64)
    index = np.array([0.0, 1.0, 2.5])
    expected = np.stack([reference_shift(stack[k], index[k] * drow, index[k] * dcol, np.nan)
                         for k in range(3)])  # fmt: skip
    shift_slices(stack, index, drow, dcol, np.nan)
    np.testing.assert_allclose(stack, expected, equal_nan=True, atol=1e-12)


@pytest.mark.parametrize("noise", [-1e-12, 1e-12, -1e-9])
def test_shift_slices_by_a_noisy_whole_pixel_keeps_the_edge_row(noise):
    # A lean of exactly one row per slice, as computed from DS-rounded positions.
    stack = np.arange(2 * 5 * 4, dtype=np.float64).reshape(2, 5, 4)
    shifted = stack.copy()
    shift_slices(shifted, np.array([0.0, 1.0]), -1.0 + noise, 0.0, np.nan)
    np.testing.assert_array_equal(shifted[0], stack[0])
    assert np.isnan(shifted[1, 0]).all()
    np.testing.assert_allclose(shifted[1, 1:], stack[1, :-1], atol=1e-12)


def test_interpolate_slices_matches_np_interp():
    rng = np.random.default_rng(1)
    index = np.array([0.0, 0.7, 2.2, 5.0])
    src = rng.normal(size=(4, 3, 2))
    dst = np.empty((6, 3, 2))
    interpolate_slices(src, index, dst)
    for i in range(3):
        for j in range(2):
            np.testing.assert_allclose(dst[:, i, j], np.interp(np.arange(6), index, src[:, i, j]))


@settings(max_examples=60, deadline=None)
@given(
    bits_allocated=st.sampled_from([8, 16, 32]),
    data=st.data(),
    signed=st.booleans(),
    slope=st.sampled_from([1, 2, -3]),
    intercept=st.integers(-2048, 2048),
)
def test_store_frame_in_place_matches_reference(bits_allocated, data, signed, slope, intercept):
    from fastvol._kernels.pixels import store_frame_in_place

    bits_stored = data.draw(st.integers(1, bits_allocated))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    unsigned = np.dtype(f"u{bits_allocated // 8}")
    out_dtype = np.dtype(f"i{bits_allocated // 8}")
    raw = rng.integers(0, 1 << bits_allocated, size=41, dtype=np.uint64).astype(unsigned)
    stored = raw.view(out_dtype) if signed else raw
    expected = reference_store(stored, bits_stored, signed, slope, intercept).astype(out_dtype)
    buf = raw.copy()
    mask = signed or bits_stored < bits_allocated
    store_frame_in_place(buf, bits_stored, signed, mask, slope, intercept)
    np.testing.assert_array_equal(buf.view(out_dtype), expected)
