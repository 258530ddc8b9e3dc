"""Stored pixel samples, a leaf: which BitsAllocated fastvol reads and the dtype holding a sample.

One definition shared by the plan (:attr:`fastvol.plan.PixelFormat.stored_dtype`, the checks of a
series' pixel format) and the decoders (:mod:`fastvol.decode`, which give every codec's output
this dtype). Imports numpy and :mod:`fastvol.errors` only.
"""

from __future__ import annotations

import numpy as np

from .errors import UnsupportedError

__all__ = ["SUPPORTED_BITS_ALLOCATED", "stored_dtype"]

#: BitsAllocated values fastvol reads: samples of one, two or four whole bytes.
SUPPORTED_BITS_ALLOCATED = (8, 16, 32)

_DTYPES = {
    (bits, signed): np.dtype(f"{'i' if signed else 'u'}{bits // 8}")
    for bits in SUPPORTED_BITS_ALLOCATED
    for signed in (False, True)
}


def stored_dtype(bits_allocated: int, pixel_representation: int) -> np.dtype:
    """Native dtype of one stored sample: BitsAllocated bits, signed when PixelRepresentation is 1.

    ``stored_dtype(16, 1)`` is ``int16``, ``stored_dtype(8, 0)`` is ``uint8``. The sample holds the
    stored bits unmasked; masking to BitsStored and sign extension happen later.

    Raises
    ------
    UnsupportedError
        BitsAllocated other than 8, 16 or 32 (callers that know the file check first and name it).
    """
    try:
        return _DTYPES[(bits_allocated, bool(pixel_representation))]
    except KeyError:
        raise UnsupportedError(
            f"BitsAllocated {bits_allocated} is not supported (8, 16 or 32)"
        ) from None
