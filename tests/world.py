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
