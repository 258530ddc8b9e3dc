"""Stored pixel samples, a leaf: which BitsAllocated fastvol reads and the dtype holding a sample.

Three pixel kinds exist (:data:`fastvol.dicom.PIXEL_KINDS`): integer samples of PixelData
(BitsAllocated 1, 8, 16 or 32; 1-bit samples are packed across byte boundaries, one bit each,
least significant bit first, and are unpacked to ``uint8``), float32 samples of FloatPixelData and
float64 samples of DoubleFloatPixelData (parametric maps).

One definition shared by the plan (:attr:`fastvol.plan.PixelFormat.stored_dtype`, the checks of a
series' pixel format) and the decoders (:mod:`fastvol.decode`, which give every codec's output
this dtype). Imports numpy and :mod:`fastvol.errors` only.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import UnsupportedError

__all__ = ["FLOAT_BITS", "SUPPORTED_BITS_ALLOCATED", "stored_dtype", "unpack_bits"]

#: BitsAllocated values fastvol reads from PixelData: packed bits, or samples of one, two or four
#: whole bytes.
SUPPORTED_BITS_ALLOCATED = (1, 8, 16, 32)
#: BitsAllocated of each float pixel kind (the standard allows no other).
FLOAT_BITS = {"float": 32, "double": 64}

_DTYPES = {
    (bits, signed): np.dtype(f"{'i' if signed else 'u'}{max(bits // 8, 1)}")
    for bits in SUPPORTED_BITS_ALLOCATED
    for signed in (False, True)
}
_FLOAT_DTYPES: dict[str, np.dtype[Any]] = {"float": np.dtype(np.float32), "double": np.dtype(np.float64)}


def stored_dtype(bits_allocated: int, pixel_representation: int, kind: str = "int") -> np.dtype:
    """Native dtype of one stored sample: BitsAllocated bits, signed when PixelRepresentation is 1.

    ``stored_dtype(16, 1)`` is ``int16``, ``stored_dtype(8, 0)`` is ``uint8``, ``stored_dtype(1, 0)``
    is ``uint8`` (one unpacked bit), ``stored_dtype(32, 0, "float")`` is ``float32``. An integer
    sample holds the stored bits unmasked; masking to BitsStored and sign extension happen later.

    Raises
    ------
    UnsupportedError
        BitsAllocated other than 1, 8, 16 or 32, or a float kind of another width (callers that
        know the file check first and name it).
    """
    if kind in _FLOAT_DTYPES:
        if bits_allocated != FLOAT_BITS[kind]:
            raise UnsupportedError(f"{kind} pixel data with BitsAllocated {bits_allocated} is not "
                                   f"supported ({FLOAT_BITS[kind]})")  # fmt: skip
        return _FLOAT_DTYPES[kind]
    try:
        return _DTYPES[(bits_allocated, bool(pixel_representation))]
    except KeyError:
        raise UnsupportedError(
            f"BitsAllocated {bits_allocated} is not supported (1, 8, 16 or 32)"
        ) from None


def unpack_bits(packed: np.ndarray, first_bit: int, count: int) -> np.ndarray:
    """``count`` 1-bit samples starting ``first_bit`` bits into ``packed``, as ``uint8`` 0/1.

    DICOM packs BitsAllocated 1 samples least significant bit first, and frames follow each other
    without padding, so a frame may start inside a byte (PS3.5 8.1.1).
    """
    bits = np.unpackbits(np.asarray(packed, dtype=np.uint8), bitorder="little")
    return bits[first_bit : first_bit + count]
