"""Resampling kernels: undo the shear of a tilted stack, interpolate uneven slices onto a grid."""

from __future__ import annotations

import numpy as np

from . import jit


@jit
def shift_slices(stack, index, drow, dcol, fill):  # type: ignore[no-untyped-def]
    """Shift each slice in-plane by ``-index[k] * (drow, dcol)`` pixels, bilinear, in place.

    Output pixel ``(i, j)`` of slice ``k`` takes the input at ``(i + index[k]*drow,
    j + index[k]*dcol)``. A tilted slice's origin sits ``index[k]`` lean vectors off the normal
    line, so ``(drow, dcol)`` is minus the lean in pixels (see ``fastvol.plan.types.Resample``)
    and this moves every slice back onto an orthogonal grid. Pixels that come from outside the
    slice are set to ``fill``. An offset within ``1e-6`` pixel of a whole number is taken as that
    number: rounding noise in the positions must not push a whole edge row or column outside.
    """
    n, rows, cols = stack.shape
    tmp = np.empty((rows, cols), dtype=stack.dtype)
    for k in range(n):
        oy = index[k] * drow
        ox = index[k] * dcol
        if abs(oy - np.rint(oy)) < 1e-6:
            oy = np.rint(oy)
        if abs(ox - np.rint(ox)) < 1e-6:
            ox = np.rint(ox)
        for i in range(rows):
            y = i + oy
            y0 = int(np.floor(y))
            fy = y - y0
            for j in range(cols):
                x = j + ox
                x0 = int(np.floor(x))
                fx = x - x0
                if y0 < 0 or x0 < 0 or y0 >= rows or x0 >= cols:
                    tmp[i, j] = fill
                    continue
                y1 = min(y0 + 1, rows - 1)
                x1 = min(x0 + 1, cols - 1)
                if (fy > 0 and y0 + 1 >= rows) or (fx > 0 and x0 + 1 >= cols):
                    tmp[i, j] = fill
                    continue
                top = stack[k, y0, x0] * (1 - fx) + stack[k, y0, x1] * fx
                bottom = stack[k, y1, x0] * (1 - fx) + stack[k, y1, x1] * fx
                tmp[i, j] = top * (1 - fy) + bottom * fy
        stack[k] = tmp


@jit
def interpolate_slices(src, index, dst):  # type: ignore[no-untyped-def]
    """Linear interpolation along axis 0 from slices at fractional grid ``index`` onto ``dst``.

    ``index`` is ascending with ``index[0] == 0`` and ``index[-1] == dst.shape[0] - 1``.
    """
    n = src.shape[0]
    k = 0
    for j in range(dst.shape[0]):
        while k < n - 2 and index[k + 1] < j:
            k += 1
        span = index[k + 1] - index[k]
        w = (j - index[k]) / span if span > 0 else 0.0
        w = min(max(w, 0.0), 1.0)
        dst[j] = src[k] * (1 - w) + src[k + 1] * w
