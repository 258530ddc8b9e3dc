"""Geometry on plain arrays: ordering, spacing classes, tilt, repeats, against slow references."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastvol import geometry as geo
from fastvol.errors import BadOrientationError, RepeatedPositionsError

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def rotation(ax: float, ay: float, az: float) -> np.ndarray:
    cx, sx, cy, sy, cz, sz = np.cos(ax), np.sin(ax), np.cos(ay), np.sin(ay), np.cos(az), np.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def oblique_iop(r: np.ndarray) -> np.ndarray:
    return np.concatenate([r[:, 0], r[:, 1]])


def stack(iop, n, step, origin=(10.0, -20.0, 30.0), lean=(0.0, 0.0)):
    """Positions in array order: slice k is k steps along -normal (highdicom's direction)."""
    row, col, normal = geo.unit_vectors(iop)
    vec = -normal * step + row * lean[0] + col * lean[1]
    return np.asarray(origin) + np.outer(np.arange(n), vec), vec


def test_unit_vectors_rejects_non_perpendicular():
    with pytest.raises(BadOrientationError, match="perpendicular"):
        geo.unit_vectors((1, 0, 0, 0.1, 1, 0))
    with pytest.raises(BadOrientationError):
        geo.unit_vectors((1, 0, 0, 0, 1))


def test_regular_stack_shuffled_gives_sorted_order_and_exact_affine():
    rng = np.random.default_rng(0)
    iop = oblique_iop(rotation(0.3, -0.2, 0.1))
    pos, vec = stack(iop, 12, 2.5)
    perm = rng.permutation(12)
    g = geo.analyze_stack(pos[perm], iop, (0.7, 0.9))
    assert g.kind == "regular"
    np.testing.assert_array_equal(perm[g.order], np.arange(12))
    np.testing.assert_allclose(g.step_vector, vec, atol=1e-9)
    # The affine maps every slice index onto that slice's position.
    for k in range(12):
        np.testing.assert_allclose(g.affine @ [k, 0, 0, 1], np.r_[pos[k], 1], atol=1e-9)
    assert g.tilt_deg < 1e-6


def test_order_never_uses_z_alone_for_oblique_stacks():
    # A sagittal-ish stack whose z decreases while the position along the normal increases.
    r = rotation(0.0, np.pi / 2 - 0.2, 0.0)
    iop = oblique_iop(r)
    pos, _ = stack(iop, 6, 3.0)
    row, col, normal = geo.unit_vectors(iop)
    g = geo.analyze_stack(pos[::-1], iop, (1.0, 1.0))
    d = pos[::-1][g.order] @ normal
    assert np.all(np.diff(d) < 0)  # descending along the normal, whatever z does
    assert np.linalg.det(g.affine[:3, :3]) > 0  # (slice, row, column) right-handed


def test_gaps_are_whole_multiples():
    pos, _ = stack(AXIAL, 10, 2.0)
    keep = [0, 1, 2, 5, 6, 7, 9]
    g = geo.analyze_stack(pos[keep], AXIAL, (1, 1))
    assert g.kind == "gaps"
    assert g.n_slots == 10
    np.testing.assert_array_equal(g.missing, [3, 4, 8])
    np.testing.assert_allclose(g.step, 2.0)


def test_irregular_spacing_detected():
    d = np.array([0.0, 2.0, 4.0, 7.0, 9.0])
    pos = np.outer(d, [0, 0, -1.0])
    g = geo.analyze_stack(pos, AXIAL, (1, 1))
    assert g.kind == "irregular"


def test_spacing_within_tolerance_is_regular():
    d = np.array([0.0, 2.0, 4.01, 6.0, 8.0])
    g = geo.analyze_stack(np.outer(d, [0, 0, -1.0]), AXIAL, (1, 1))
    assert g.kind == "regular"


def test_tilt_gives_sheared_affine_and_angle():
    pos, vec = stack(AXIAL, 8, 2.0, lean=(0.0, 2.0 * np.tan(np.radians(12))))
    g = geo.analyze_stack(pos, AXIAL, (0.5, 0.5))
    assert g.tilt_deg == pytest.approx(12.0, abs=1e-6)
    np.testing.assert_allclose(g.affine[:3, 0], vec, atol=1e-9)
    for k in range(8):
        np.testing.assert_allclose(g.affine @ [k, 0, 0, 1], np.r_[pos[k], 1], atol=1e-9)


def test_uneven_tilted_stack_reports_its_tilt():
    # The lean is measured off the slice normal for uneven stacks too (not off their own line,
    # which leaves nothing): else tilt="resample" would keep the shear without a word.
    lean = np.array([0.0, np.tan(np.radians(9.0)), 0.0])
    pos = np.outer([0.0, 2.0, 4.0, 7.0, 9.0], lean + [0.0, 0.0, -1.0])
    g = geo.analyze_stack(pos, AXIAL, (0.5, 0.5))
    assert g.kind == "irregular" and g.residual < 1e-9
    assert g.tilt_deg == pytest.approx(9.0, abs=1e-6)
    straight = geo.analyze_stack(np.outer([0.0, 2.0, 4.0, 7.0, 9.0], [0.0, 0.0, -1.0]), AXIAL, (0.5, 0.5))
    assert straight.kind == "irregular" and straight.tilt_deg < 1e-9


def test_single_slice_uses_given_step():
    g = geo.analyze_stack(np.zeros((1, 3)), AXIAL, (1, 1), single_slice_step=(3.0, "SliceThickness"))
    assert g.kind == "single"
    np.testing.assert_allclose(g.affine[:3, 0], [0, 0, -3.0])


def test_affine_columns_follow_highdicom_convention():
    # column index moves along the row direction by PixelSpacing[1]; row along column dir by [0].
    a = geo.affine_from(np.zeros(3), np.array([0, 0, 5.0]), np.array([1.0, 0, 0]),
                        np.array([0, 1.0, 0]), (0.5, 0.25))
    np.testing.assert_allclose(a @ [0, 0, 1, 1], [0.25, 0, 0, 1])
    np.testing.assert_allclose(a @ [0, 1, 0, 1], [0, 0.5, 0, 1])


def test_split_repeats_by_tag():
    d = np.repeat([0.0, 2.0, 4.0], 3)
    t = [30, 10, 20] * 3
    r = geo.split_repeats(d, {"TriggerTime": t})
    assert r.tag == "TriggerTime"
    assert r.values == (10, 20, 30)
    assert r.table.shape == (3, 3)
    assert [t[i] for i in r.table[0]] == [10, 10, 10]


def test_split_repeats_without_tag_raises():
    d = np.repeat([0.0, 2.0], 2)
    with pytest.raises(RepeatedPositionsError, match="no tag tells them apart"):
        geo.split_repeats(d, {"TriggerTime": [None] * 4}, files=["a", "b", "c", "d"])


def test_split_repeats_incomplete_volume_raises():
    d = np.array([0.0, 0.0, 2.0])
    with pytest.raises(RepeatedPositionsError, match="incomplete"):
        geo.split_repeats(d, {"AcquisitionNumber": [1, 2, 1]}, files=["a", "b", "c"])


@settings(max_examples=60, deadline=None)
@given(
    angles=st.tuples(*[st.floats(-np.pi, np.pi, allow_nan=False)] * 3),
    n=st.integers(2, 30),
    step=st.floats(0.2, 10.0),
    seed=st.integers(0, 2**31 - 1),
)
def test_property_shuffle_invariance_and_affine_law(angles, n, step, seed):
    iop = oblique_iop(rotation(*angles))
    pos, _ = stack(iop, n, step)
    perm = np.random.default_rng(seed).permutation(n)
    g = geo.analyze_stack(pos[perm], iop, (0.8, 0.6))
    assert g.kind == "regular"
    sorted_pos = pos[perm][g.order]
    idx = np.c_[np.arange(n), np.zeros((n, 2)), np.ones(n)]
    np.testing.assert_allclose((g.affine @ idx.T).T[:, :3], sorted_pos, atol=1e-6)


def test_degenerate_orientation_is_refused_whatever_the_tolerance():
    from fastvol.geometry import unit_vectors

    for iop in ([1, 0, 0, 1, 0, 0], [1, 0, 0, 0, 0, 0], [1e-9, 0, 0, 0, 1e-9, 0]):
        with pytest.raises(BadOrientationError, match="spans no plane"):
            unit_vectors(iop, tolerance=10.0)


def test_one_absurd_position_of_three_does_not_merge_the_other_two(tmp_path):
    """Of two steps (2.5 and 997.5 mm) the tolerance for "same position" follows the smaller:
    an averaged median (5 mm) merged the two true slices and read them as repeats."""
    import factory as fx
    import fastvol

    written = fx.write_series(tmp_path / "s", n=3, positions=[(0, 0, 8.76), (0, 0, 6.26), (0, 0, -991.24)])
    with pytest.raises(fastvol.GeometryError, match="a position is wrong") as raised:
        fastvol.load(written.folder)
    assert not isinstance(raised.value, fastvol.RepeatedPositionsError)
    assert raised.value.files == (written.paths[2],)  # the one far from the others, named
    repeated = fx.write_series(tmp_path / "r", n=3, repeats=2)  # true repeats still cluster
    assert fastvol.load(repeated.folder).shape == (2, 3, 16, 12)
