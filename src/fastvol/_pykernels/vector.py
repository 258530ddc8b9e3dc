"""numpy twins of :mod:`fastvol._kernels.pixels`: the same results, vectorised, no compile.

Each twin takes the same arguments as its kernel and gives bit-identical output (tests compare
them on random and edge inputs).
"""

from __future__ import annotations

import numpy as np


def _decoded(src: np.ndarray, bits_stored: int, signed: bool, mask: bool) -> np.ndarray:
    """Stored samples as int64: masked to BitsStored and sign-extended when ``mask``."""
    values = src.astype(np.int64)
    if mask:
        values &= (1 << bits_stored) - 1
        if signed:
            sign = 1 << (bits_stored - 1)
            values ^= sign
            values -= sign
    return values


def _scaled(values: np.ndarray, slope: object, intercept: object, dtype: np.dtype) -> np.ndarray:
    if dtype.kind == "f":
        # As numba types the kernel: int64 * float is float64, rounded once into dst (slope and
        # intercept as given: float64 from stack.py, or the output's type).
        out = values.astype(np.float64)
        if slope != 1:
            out *= np.float64(slope)  # type: ignore[arg-type]
        if intercept != 0:
            out += np.float64(intercept)  # type: ignore[arg-type]
        return out
    if slope != 1:
        values *= int(slope)  # type: ignore[call-overload]
    if intercept != 0:
        values += int(intercept)  # type: ignore[call-overload]
    return values


def store_frame(src, dst, bits_stored, signed, mask, slope, intercept):  # type: ignore[no-untyped-def]
    """As :func:`fastvol._kernels.pixels.store_frame`."""
    if dst.dtype.kind in "iu" and dst.dtype.itemsize >= src.dtype.itemsize and dst.flags.c_contiguous:
        # Widen into dst, then work in place modulo 2**bits of dst: the kernel's int64 result
        # stored into dst wraps the same way, and no int64 temporary is made.
        np.copyto(dst, src, casting="unsafe")
        store_frame_in_place(dst.view(f"u{dst.dtype.itemsize}"), bits_stored, signed, mask, slope, intercept)
        return
    values = _decoded(src, bits_stored, signed, mask)
    out = _scaled(values, slope, intercept, dst.dtype)
    np.copyto(dst, out, casting="unsafe")  # integer output wraps as the kernel's store does


def store_frame_in_place(buf, bits_stored, signed, mask, slope, intercept):  # type: ignore[no-untyped-def]
    """As :func:`fastvol._kernels.pixels.store_frame_in_place` (``buf`` unsigned).

    Works in ``buf``'s own unsigned dtype, in place: its arithmetic wraps modulo 2**bits, and
    so does the kernel's store of the int64 result, so the bits agree without any temporary.
    """
    modulus = 1 << (8 * buf.dtype.itemsize)
    if mask:
        buf &= (1 << bits_stored) - 1
        if signed:
            sign = 1 << (bits_stored - 1)
            buf ^= sign
            buf -= sign
    if int(slope) % modulus != 1:
        buf *= int(slope) % modulus
    if int(intercept) % modulus:
        buf += int(intercept) % modulus


def fill_slots(out, slots, value):  # type: ignore[no-untyped-def]
    """As :func:`fastvol._kernels.pixels.fill_slots`."""
    out[slots] = value
