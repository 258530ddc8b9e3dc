"""Kernels that turn stored samples into output values, in place or into a slice of the output.

Fused in one pass: mask the bits above BitsStored (scanners leave junk there), sign-extend from
bit BitsStored-1 for signed data, then rescale (slope, intercept). Reading and writing index ``i``
in turn makes the kernels safe when ``src`` and ``dst`` are two views of the same memory, which
is how uncompressed frames are converted in place inside the output array.
"""

from __future__ import annotations

import numpy as np

from . import jit


@jit
def store_frame(src, dst, bits_stored, signed, mask, slope, intercept):  # type: ignore[no-untyped-def]
    """``dst[i] = decode(src[i]) * slope + intercept`` over flat arrays of equal size.

    Parameters
    ----------
    src
        Stored samples (any integer dtype), flat.
    dst
        Output, flat; integer or float. For integer ``dst`` pass integer slope and intercept.
    bits_stored
        BitsStored.
    signed
        PixelRepresentation == 1.
    mask
        Whether to mask to ``bits_stored`` bits and sign-extend (False when the stored dtype
        already holds exactly BitsStored bits).
    """
    keep = (np.int64(1) << bits_stored) - 1
    sign = np.int64(1) << (bits_stored - 1)
    n = src.size
    # One loop per case, no branch inside: LLVM vectorises each. Sign extension is branchless:
    # after masking, (v ^ sign) - sign maps [2**(b-1), 2**b) onto [-2**(b-1), 0).
    if mask and signed:
        for i in range(n):
            dst[i] = (((np.int64(src[i]) & keep) ^ sign) - sign) * slope + intercept
    elif mask:
        for i in range(n):
            dst[i] = (np.int64(src[i]) & keep) * slope + intercept
    else:
        for i in range(n):
            dst[i] = np.int64(src[i]) * slope + intercept


@jit
def store_frame_in_place(buf, bits_stored, signed, mask, slope, intercept):  # type: ignore[no-untyped-def]
    """Like :func:`store_frame` with one buffer: the output's memory read as *unsigned* stored
    samples, overwritten with the output's bit pattern.

    For an integer output as wide as the stored samples (int16 output from 16-bit data, the
    common CT case). Values wrap modulo 2**bits, which is exactly the two's complement pattern
    of the signed output. One array, not two views of it, lets LLVM vectorise the loop (with
    two aliasing views it cannot). Pass ``mask=True`` whenever the data are signed: reading the
    bits as unsigned needs the sign extension.
    """
    keep = (np.int64(1) << bits_stored) - 1
    sign = np.int64(1) << (bits_stored - 1)
    n = buf.size
    if mask and signed:
        for i in range(n):
            buf[i] = (((np.int64(buf[i]) & keep) ^ sign) - sign) * slope + intercept
    elif mask:
        for i in range(n):
            buf[i] = (np.int64(buf[i]) & keep) * slope + intercept
    else:
        for i in range(n):
            buf[i] = np.int64(buf[i]) * slope + intercept


@jit
def fill_slots(out, slots, value):  # type: ignore[no-untyped-def]
    """Set every listed slot of ``out`` (``(n, rows, columns)``) to ``value``."""
    for k in range(slots.size):
        out[slots[k]] = value
