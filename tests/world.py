"""Compare volumes in world space (LPS mm), never by array layout."""

from __future__ import annotations

import numpy as np

LPS_FROM_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def index_map(affine_ours: np.ndarray, affine_ref_lps: np.ndarray, atol: float = 0.02) -> np.ndarray:
    """The 4x4 map from our (slice, row, column) indices to the reference's indices.

    Asserts it is a signed axis permutation with integer offsets: both grids then share every
    voxel centre, only their index order differs.
    """
    t = np.linalg.inv(affine_ref_lps) @ affine_ours
    rounded = np.round(t)
    assert np.allclose(t, rounded, atol=atol), f"grids differ in world space:\n{np.round(t, 4)}"
    lin = rounded[:3, :3]
    assert np.all(np.abs(lin).sum(axis=0) == 1) and np.all(np.abs(lin).sum(axis=1) == 1), lin
    return rounded


def to_reference_layout(array: np.ndarray, t: np.ndarray, ref_shape: tuple[int, ...]) -> np.ndarray:
    """Re-index our spatial array (slice, row, column) into the reference's (i, j, k)."""
    lin = t[:3, :3]
    out_axes = [int(np.flatnonzero(lin[:, a])[0]) for a in range(3)]  # ours axis a -> ref axis
    signs = [int(lin[out_axes[a], a]) for a in range(3)]
    data = array
    for a in range(3):
        if signs[a] < 0:
            data = np.flip(data, axis=a)
    order = np.argsort(out_axes)  # ref axis r takes our axis order[r]
    data = np.transpose(data, order)
    assert data.shape == tuple(ref_shape[:3]), (data.shape, ref_shape)
    return data


def corners_lps(affine: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """The 8 corner voxel centres of a grid, sorted, for layout-free comparison."""
    idx = np.array([[a, b, c, 1] for a in (0, shape[0] - 1) for b in (0, shape[1] - 1)
                    for c in (0, shape[2] - 1)], dtype=float)  # fmt: skip
    pts = (affine @ idx.T).T[:, :3]
    return pts[np.lexsort(np.round(pts, 2).T[::-1])]


def resampled_from(source: np.ndarray, source_affine: np.ndarray, affine: np.ndarray,
                   shape: tuple[int, int, int], snap: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """``source`` linearly interpolated at the voxel centres of another grid (``affine``, ``shape``).

    Every voxel ``(k, i, j)`` of the other grid sits at world point ``affine @ (k, i, j, 1)``;
    ``inv(source_affine)`` maps that back to fractional source indices, where ``source`` is
    sampled trilinearly (NaN outside it). Returns the values and a mask of voxels whose mapped
    index lies within ``snap`` of the source's edge, where an exact sampler may go either way.
    """
    idx = np.indices(shape, dtype=float).reshape(3, -1)
    raw = (np.linalg.inv(source_affine) @ affine @ np.vstack([idx, np.ones(idx.shape[1])]))[:3]
    size = np.array(source.shape, dtype=float)[:, None]
    q = np.where(np.abs(raw - np.rint(raw)) < snap, np.rint(raw), raw)  # float noise on grid points
    inside = ((q >= 0) & (q <= size - 1)).all(axis=0)
    edge = ((np.abs(raw) < snap) | (np.abs(raw - (size - 1)) < snap)).any(axis=0)
    q = np.clip(q, 0, size - 1)
    lo = np.clip(np.floor(q).astype(int), 0, np.maximum(size.astype(int) - 2, 0))
    frac = q - lo
    data = source.astype(np.float64)
    out = np.zeros(idx.shape[1])
    for corner in np.ndindex(2, 2, 2):
        weight = np.ones(idx.shape[1])
        at = []
        for axis, c in enumerate(corner):
            weight *= frac[axis] if c else 1 - frac[axis]
            at.append(np.minimum(lo[axis] + c, source.shape[axis] - 1))
        out += np.where(weight > 0, weight * data[tuple(at)], 0.0)  # NaN x 0 must not spread
    return np.where(inside, out, np.nan).reshape(shape), edge.reshape(shape)


def assert_same_world_values(array: np.ndarray, affine: np.ndarray, source: np.ndarray,
                             source_affine: np.ndarray, *, min_valid: float = 0.5) -> None:
    """Every voxel of ``array`` holds ``source`` (interpolated) at the same world point.

    NaN in ``array`` must match points outside ``source`` (or NaN there), except on its very
    edge; at least ``min_valid`` of the voxels must hold a value, so the check cannot pass empty.
    """
    expected, edge = resampled_from(source, source_affine, affine, array.shape)
    scale = max(1.0, float(np.nanmax(np.abs(source))))
    assert_close_where_defined(array, expected, edge, scale=scale, min_valid=min_valid)


def assert_close_where_defined(array: np.ndarray, expected: np.ndarray, edge: np.ndarray, *,
                               scale: float, min_valid: float = 0.5) -> None:
    """``array`` equals ``expected`` to ``1e-5 * scale``, NaN where it is NaN (but on ``edge``)."""
    got = array.astype(np.float64)
    differ = np.isnan(got) != np.isnan(expected)
    assert not (differ & ~edge).any(), f"NaN where a value is due at {np.argwhere(differ & ~edge)[:5]}"
    both = ~np.isnan(got) & ~np.isnan(expected)
    assert both.mean() >= min_valid, f"only {both.mean():.2f} of the voxels hold values"
    err = np.abs(got[both] - expected[both])
    worst = np.unravel_index(np.argmax(np.where(both, np.abs(got - expected), -1)), got.shape)
    assert err.max() <= 1e-5 * scale, f"off by {err.max():.4g} at voxel {worst}"
