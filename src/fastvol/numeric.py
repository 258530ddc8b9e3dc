"""Small numeric helpers shared across layers.

:func:`median` exists because ``numpy.median`` imports ``numpy.ma`` on its first call (about
20 ms of a fresh process's start, for a median of a few slice steps).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["median"]


def median(values: Any) -> float:
    """The median of ``values`` (flattened) as ``numpy.median`` gives it: NaN when any is NaN.

    Raises
    ------
    ValueError
        On an empty input (callers check sizes first; ``numpy.median`` would give NaN and warn).
    """
    a = np.sort(np.asarray(values, dtype=np.float64).ravel())
    n = a.shape[0]
    if n == 0:
        raise ValueError("median of an empty array")
    if np.isnan(a[-1]):
        return float("nan")
    return float((a[(n - 1) // 2] + a[n // 2]) / 2)
