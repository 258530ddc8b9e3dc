"""Every classic single-frame stack in the real corpus, against pydicom and dcm2niix, in world space.

Values: each slice equals pydicom's decode of the file fastvol put there, rescaled.
Geometry: the grid's voxel centres equal those of dcm2niix's output (its affine from the manifest),
whatever axis order and flips dcm2niix chose; where a reference NIfTI ships, values too.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest

import fastvol
from world import LPS_FROM_RAS, corners_lps, index_map, to_reference_layout

pytestmark = pytest.mark.corpus

# What a classic entry may legitimately refuse, by the manifest's "exercises" tags.
EXPECTED_REFUSALS = {
    "no-plane-geometry": fastvol.GeometryError,
    "colour": fastvol.UnsupportedError,
    "multiple-orientations-in-series": fastvol.MixedGeometryError,
    "gap/missing-slice": fastvol.MissingSlicesError,
    "siemens-mosaic": fastvol.UnsupportedError,
    "non-image-object": fastvol.NotDicomError,
    "repeated-positions-no-distinguishing-tag": fastvol.RepeatedPositionsError,
    "multiframe": fastvol.UnsupportedError,
    # Classic 4D whose volumes only acquisition order tells apart (GE/Philips DWI, fMRI): the
    # classic loader refuses them by name; inferring volumes from order is the 4D loader's job.
    "4D": fastvol.RepeatedPositionsError,
}


def _entries():
    from conftest import corpus_root

    root = corpus_root()
    if root is None:
        return []
    items = json.loads((root / "manifest.json").read_text())["series"]
    out = []
    for it in items:
        if it.get("enhanced_multiframe") or it.get("is_seg"):
            continue
        out.append(pytest.param(it, id=f"{it['path']}#{it.get('series_instance_uid', '')[-6:]}"))
    return out


def _files(root: Path, it: dict) -> list[str]:
    p = root / it["path"]
    return [str(p / f) for f in it["files"]] if p.is_dir() else [str(p)]


def _pydicom_values(path: str) -> np.ndarray:
    ds = pydicom.dcmread(path)
    arr = ds.pixel_array.astype(np.float64)
    return arr * float(ds.get("RescaleSlope", 1) or 1) + float(ds.get("RescaleIntercept", 0) or 0)


@pytest.mark.parametrize("it", _entries())
def test_classic_entry(corpus: Path, it: dict) -> None:
    files = _files(corpus, it)
    tags = set(it.get("exercises", []))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fastvol.FastvolWarning)
        try:
            vol = fastvol.load(files)
        except fastvol.FastvolError as exc:
            allowed = tuple(cls for tag, cls in EXPECTED_REFUSALS.items() if tag in tags)
            assert allowed and isinstance(exc, allowed), f"unexpected {type(exc).__name__}: {exc}"
            assert str(exc)
            return
    # Values: every slice is its file's pixels, rescaled.
    flat = vol.array.reshape((-1,) + vol.array.shape[-2:])
    assert len(vol.meta["files"]) == flat.shape[0]
    for k, path in enumerate(vol.meta["files"]):
        np.testing.assert_allclose(flat[k], _pydicom_values(path), rtol=1e-5, atol=1e-3)
    # Affine law: slice k's first voxel sits at that file's ImagePositionPatient.
    n_slices = vol.array.shape[-3]
    for k in range(n_slices):
        ipp = np.array([float(v) for v in pydicom.dcmread(vol.meta["files"][k], stop_before_pixels=True).ImagePositionPatient])
        np.testing.assert_allclose((vol.affine @ [k, 0, 0, 1])[:3], ipp, atol=1e-3)
    # Geometry against dcm2niix (single output of the same voxel count).
    outs = [o for o in it.get("dcm2niix_outputs", []) if "affine_ras" in o]
    spatial = vol.array.shape[-3:]
    matching = [o for o in outs if int(np.prod(o["shape"][:3])) == int(np.prod(spatial))]
    if len(matching) == 1:
        ref_lps = LPS_FROM_RAS @ np.array(matching[0]["affine_ras"])
        ref_shape = tuple(matching[0]["shape"][:3])
        np.testing.assert_allclose(corners_lps(vol.affine, spatial),
                                   corners_lps(ref_lps, ref_shape), atol=0.05)  # fmt: skip
    # Values against a shipped reference NIfTI, where one exists and is a single 3D volume.
    for ref in it.get("references", []):
        for nii in ref.get("nifti", []):
            _compare_nifti(vol, corpus / nii, ref.get("tool", ""))


def _compare_nifti(vol: fastvol.Volume, path: Path, tool: str) -> None:
    nib = pytest.importorskip("nibabel")
    if not path.exists():
        return
    img = nib.load(str(path))
    data = np.asarray(img.dataobj, dtype=np.float64) * 1.0
    slope, inter = img.header.get_slope_inter()
    if slope is not None:
        data = data * slope + (inter or 0.0)
    ref_lps = LPS_FROM_RAS @ img.affine
    spatial = vol.array.shape[-3:]
    if data.ndim != 3 or vol.array.ndim != 3:
        return  # 4D comparisons belong to the 4D suite
    t = index_map(vol.affine, ref_lps, atol=0.05)
    ours = to_reference_layout(vol.array.astype(np.float64), t, data.shape)
    assert ours.shape == data.shape
    np.testing.assert_allclose(ours, data, rtol=1e-4, atol=0.5, err_msg=f"{tool} {path}")
