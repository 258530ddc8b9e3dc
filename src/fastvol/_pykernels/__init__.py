"""The kernels of :mod:`fastvol._kernels` as plain Python, and numpy twins of the pixel kernels.

A fresh process that loads one small series would spend most of its time importing numba and
loading compiled kernels (about a second) for work that takes milliseconds. This package runs
the *same source files* as :mod:`fastvol._kernels` with :func:`jit` as the identity (its
``__path__`` includes that folder), so nothing here imports numba; :mod:`.vector` holds numpy
versions of the pixel kernels, which are fast in plain Python where loops are not.
:mod:`fastvol.kernels` chooses between the two per call.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

_HERE = os.path.dirname(os.path.abspath(__file__))
# Own modules first (vector.py), then the compiled kernels' sources, run as plain Python.
__path__ = [_HERE, os.path.join(os.path.dirname(_HERE), "_kernels")]


def jit(func: F) -> F:
    """The identity: the kernel runs as the Python it is written in."""
    return func
