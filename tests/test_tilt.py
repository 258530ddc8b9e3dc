"""Gantry tilt in world space: ``tilt="resample"`` keeps every value where it was in the patient.

The reference is the ``tilt="keep"`` load, whose sheared affine reproduces every
ImagePositionPatient (checked here too). Each voxel of the resampled volume sits at world point
``affine @ (k, i, j, 1)``; the kept affine's inverse maps that point back into the acquired
slices, where the kept array is interpolated: the two must agree voxel for voxel. Comparing
arrays by index instead would hide which way the slices were shifted.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import fastvol
import factory as fx
from fastvol import cli
from world import LPS_FROM_RAS, assert_close_where_defined, assert_same_world_values, resampled_from

# Not a kernel test itself, but it runs the shift kernel end to end: ci/test.sh repeats it with
# NUMBA_DISABLE_JIT=1, so the kernel's plain-Python body is checked in world space too.
pytestmark = pytest.mark.kernels

AXIAL = (1, 0, 0, 0, 1, 0)
CORONAL = (1, 0, 0, 0, 0, -1)
OBLIQUE = (0.94959868, 0.19249318, 0.24740396, -0.26145154, 0.92176808, 0.2863332)


def _step_vector(orientation, step: float, lean_row_deg: float, lean_col_deg: float) -> np.ndarray:
    """A step of ``step`` mm along the normal, leaning by the given angles towards the row
    direction (column index) and the column direction (row index)."""
    row, col = np.array(orientation[:3], float), np.array(orientation[3:], float)
    normal = np.cross(row, col)
    along = abs(step)
    return (step * normal + along * np.tan(np.radians(lean_row_deg)) * row
            + along * np.tan(np.radians(lean_col_deg)) * col)  # fmt: skip


def _kept(folder, **kw) -> fastvol.Volume:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fastvol.FastvolWarning)  # tilt kept: a sheared affine
        return fastvol.load(folder, **kw)


def _assert_orthogonal(affine: np.ndarray, kept: fastvol.Volume) -> None:
    gram = affine[:3, :3].T @ affine[:3, :3]
    np.testing.assert_allclose(gram - np.diag(np.diag(gram)), 0, atol=1e-9)
    normal = np.cross(kept.affine[:3, 2], kept.affine[:3, 1])
    assert abs(abs(affine[:3, 0] @ normal) - np.linalg.norm(affine[:3, 0]) * np.linalg.norm(normal)) < 1e-9
    np.testing.assert_allclose(affine[:3, 1:], kept.affine[:3, 1:], atol=1e-12)  # in-plane axes kept
    np.testing.assert_allclose(affine[:3, 3], kept.affine[:3, 3], atol=1e-9)  # slice 0 stays put


CASES = {
    # id: (orientation, n, step mm, lean towards row dir (deg), towards column dir (deg))
    "y+15-even": (AXIAL, 6, 2.0, 0.0, 15.0),
    "y-15-odd": (AXIAL, 5, 2.0, 0.0, -15.0),
    "x+10-odd": (AXIAL, 7, 2.5, 10.0, 0.0),
    "x-22-even": (AXIAL, 8, 1.25, -22.0, 0.0),
    "y+30-descending": (AXIAL, 6, -2.0, 0.0, 30.0),
    "x+7-descending-odd": (AXIAL, 5, -3.0, 7.0, 0.0),
    "both-5-25": (AXIAL, 6, 1.5, 5.0, 25.0),
    "coronal-x+12": (CORONAL, 5, 2.0, 12.0, 0.0),
    "oblique-both-12--8": (OBLIQUE, 6, 2.0, 12.0, -8.0),
    "oblique-descending-y-18": (OBLIQUE, 7, -2.0, 0.0, -18.0),
}


@pytest.mark.parametrize("case", list(CASES))
def test_resampled_values_sit_where_the_kept_ones_do(tmp_path: Path, case: str) -> None:
    orientation, n, step, lean_row, lean_col = CASES[case]
    w = fx.write_series(tmp_path, n=n, rows=24, columns=20, orientation=orientation, origin=(-7.0, 12.0, 30.0),
                        step_vector=_step_vector(orientation, step, lean_row, lean_col), shuffle=n,
                        slopes=1.5, intercepts=-20.0)  # fmt: skip
    kept = _kept(tmp_path)
    for k, pos in enumerate(w.sorted_positions()):  # the reference itself: exact at every slice
        np.testing.assert_allclose((kept.affine @ [k, 0, 0, 1])[:3], pos, atol=1e-4)
    np.testing.assert_array_equal(kept.array, w.volume(rescaled=True))
    vol = fastvol.load(tmp_path, tilt="resample")
    assert vol.shape == kept.shape
    _assert_orthogonal(vol.affine, kept)
    assert_same_world_values(vol.array, vol.affine, kept.array, kept.affine)


def _between_acquired_slices(vol: fastvol.Volume, w: fx.WrittenSeries) -> tuple[np.ndarray, np.ndarray]:
    """The acquired slices interpolated at ``vol``'s voxel centres: each output voxel's world
    point projected along the normal onto the two acquired planes around it, sampled there
    in-plane, then weighted by distance (NaN where either sample is)."""
    positions, values = w.sorted_positions(), w.volume(rescaled=True)
    axis = vol.affine[:3, 0] / np.linalg.norm(vol.affine[:3, 0])
    at = (positions - positions[0]) @ axis  # ascending distances of the acquired planes
    expected = np.empty(vol.shape)
    edge = np.zeros(vol.shape, dtype=bool)
    for k in range(vol.shape[0]):
        centre = vol.affine[:3, 3] + k * vol.affine[:3, 0]
        t = (centre - positions[0]) @ axis
        a = 0
        while a < len(at) - 2 and at[a + 1] < t - 1e-9:  # the kernel's choice of neighbours
            a += 1
        samples = []
        for b in (a, a + 1):
            plane = vol.affine.copy()
            plane[:3, 3] = centre + (at[b] - t) * axis  # output slice k moved onto plane b
            source = vol.affine.copy()
            source[:3, 3] = positions[b]
            value, on_edge = resampled_from(values[b][None], source, plane, (1, *vol.shape[1:]))
            samples.append(value[0])
            edge[k] |= on_edge[0]
        weight = min(max((t - at[a]) / (at[a + 1] - at[a]), 0.0), 1.0)
        expected[k] = samples[0] * (1 - weight) + samples[1] * weight
    return expected, edge


def test_uneven_tilted_stack_resamples_both_ways_in_world_space(tmp_path: Path) -> None:
    # Positions on one leaning line, unevenly spaced: irregular="resample" makes the grid, the
    # tilt then shifts each acquired slice by its own fractional grid index.
    step = _step_vector(AXIAL, 2.0, 0.0, 14.0) / 2.0
    distances = np.array([0.0, 2.0, 4.0, 7.0, 9.0, 11.0])
    w = fx.write_series(tmp_path, positions=distances[:, None] * step, rows=20, columns=16)
    kept = _kept(tmp_path, irregular="resample")
    assert kept.geometry.tilt_deg == pytest.approx(14.0, abs=1e-3)
    vol = fastvol.load(tmp_path, irregular="resample", tilt="resample")
    assert vol.shape == kept.shape
    _assert_orthogonal(vol.affine, kept)
    expected, edge = _between_acquired_slices(vol, w)
    assert_close_where_defined(vol.array, expected, edge, scale=float(np.abs(w.volume()).max()))


def test_gapped_and_repeated_tilted_stacks_in_world_space(tmp_path: Path) -> None:
    step = _step_vector(AXIAL, 2.0, -9.0, 11.0)
    fx.write_series(tmp_path / "gaps", n=7, drop=[3], rows=20, columns=16, step_vector=step)
    kept = _kept(tmp_path / "gaps", gaps="fill", dtype="float32")  # the missing slice: NaN
    vol = fastvol.load(tmp_path / "gaps", gaps="fill", tilt="resample")
    assert np.isnan(vol.array[3]).all()
    assert_same_world_values(vol.array, vol.affine, kept.array, kept.affine, min_valid=0.4)
    fx.write_series(tmp_path / "4d", n=5, repeats=2, rows=20, columns=16, step_vector=step)
    kept = _kept(tmp_path / "4d")
    vol = fastvol.load(tmp_path / "4d", tilt="resample")
    assert vol.shape == kept.shape == (2, 5, 20, 16)
    for t in range(2):
        assert_same_world_values(vol.array[t], vol.affine, kept.array[t], kept.affine)


def test_cli_out_and_convert_nifti_hold_the_world_values(tmp_path: Path) -> None:
    import nibabel as nib

    folder = tmp_path / "in" / "ct"
    fx.write_series(folder, n=6, rows=20, columns=16, orientation=OBLIQUE,
                    step_vector=_step_vector(OBLIQUE, -2.0, 10.0, 15.0))  # fmt: skip
    kept = _kept(folder)
    npz = tmp_path / "vol.npz"
    assert cli.main([str(folder), "--tilt", "resample", "--out", str(npz)], stdout=io.StringIO(),
                    stderr=io.StringIO()) == 0  # fmt: skip
    with np.load(npz) as saved:
        _assert_orthogonal(saved["affine_lps"], kept)
        assert_same_world_values(saved["array"], saved["affine_lps"], kept.array, kept.affine)
    out = tmp_path / "out"
    err = io.StringIO()
    assert cli.main(["convert", str(tmp_path / "in"), "-o", str(out), "--tilt", "resample", "-q"],
                    stdout=io.StringIO(), stderr=err) == 0, err.getvalue()  # fmt: skip
    (path,) = [p for p in out.rglob("*.nii*")]
    img = nib.load(path)
    data = np.asarray(img.dataobj, dtype=np.float64)  # NIfTI (i, j, k) with its own RAS affine
    affine_lps = LPS_FROM_RAS @ img.affine
    gram = affine_lps[:3, :3].T @ affine_lps[:3, :3]
    np.testing.assert_allclose(gram - np.diag(np.diag(gram)), 0, atol=1e-4)
    assert_same_world_values(data, affine_lps, kept.array, kept.affine)


@pytest.mark.parametrize("env", [{"NUMBA_DISABLE_JIT": "1"}, {"FASTVOL_JIT": "0"}], ids=["python", "jit0"])
def test_kernel_paths_agree(tmp_path: Path, env: dict[str, str]) -> None:
    folder = tmp_path / "ct"
    fx.write_series(folder, n=5, rows=20, columns=16, step_vector=_step_vector(AXIAL, 2.0, -6.0, 17.0))
    here = fastvol.load(folder, tilt="resample").array
    code = ("import sys, numpy as np, fastvol; "
            "np.save(sys.argv[2], fastvol.load(sys.argv[1], tilt='resample').array)")  # fmt: skip
    src = str(Path(fastvol.__file__).resolve().parents[1])
    child_env = {**os.environ, **env, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    subprocess.run([sys.executable, "-W", "ignore", "-c", code, str(folder), str(tmp_path / "a.npy")],
                   check=True, env=child_env)  # fmt: skip
    np.testing.assert_allclose(np.load(tmp_path / "a.npy"), here, rtol=1e-6, equal_nan=True)
