"""Every series of the real corpus against pydicom, dcm2niix and shipped references, in world space.

Values: each slice equals pydicom's decode of the file (and frame) fastvol put there, with the
rescale fastvol applied. Geometry: classic slices sit at their ImagePositionPatient; the grid's
voxel centres equal those of dcm2niix's output (its affine from the manifest), whatever axis order
and flips dcm2niix chose; where a reference NIfTI ships, values too, volume by volume for 4D.
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
    "non-image-object": fastvol.NotDicomError,
    "repeated-positions-no-distinguishing-tag": fastvol.RepeatedPositionsError,
    "multiframe": fastvol.UnsupportedError,
    "1-bit": fastvol.UnsupportedError,
    "SEG(0 seg)": fastvol.UnsupportedError,
}


#: Corpus files that are malformed on purpose or by truncation: a typed refusal is the answer.
MALFORMED = {
    # pydicom's one-frame extracts keep three per-frame functional groups for NumberOfFrames 1.
    "liver_1frame.dcm", "liver_expb_1frame.dcm",
}


def _entries():
    from conftest import corpus_root

    root = corpus_root()
    if root is None:
        return []
    items = json.loads((root / "manifest.json").read_text())["series"]
    out = []
    for it in items:
        out.append(pytest.param(it, id=f"{it['path']}#{it.get('series_instance_uid', '')[-6:]}"))
    return out


def _files(root: Path, it: dict) -> list[str]:
    p = root / it["path"]
    return [str(p / f) for f in it["files"]] if p.is_dir() else [str(p)]


_PIXELS: dict[str, np.ndarray] = {}


def _pydicom_frame(path: str, frame: int) -> np.ndarray:
    if path not in _PIXELS:
        _PIXELS.clear()
        ds = pydicom.dcmread(path)
        arr = ds.pixel_array
        _PIXELS[path] = arr if int(ds.get("NumberOfFrames", 1) or 1) > 1 else arr[None]
    return _PIXELS[path][frame].astype(np.float64)


def _is_segmentation(files: list[str]) -> bool:
    sop_class = pydicom.dcmread(files[0], stop_before_pixels=True).get("SOPClassUID", "")
    return sop_class in ("1.2.840.10008.5.1.4.1.1.66.4", "1.2.840.10008.5.1.4.1.1.66.7")


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
            if Path(it["path"]).name in MALFORMED:
                allowed = (fastvol.CorruptFileError,)
            elif _is_segmentation(files):  # masks per segment: load_segmentation reads them
                allowed = (fastvol.UnsupportedError,)
                assert "load_segmentation" in str(exc)
            assert allowed and isinstance(exc, allowed), f"unexpected {type(exc).__name__}: {exc}"
            assert str(exc)
            return
    # Values: every slice is its file's pixels, rescaled.
    meta = vol.meta
    channel = 1 if "channels" in meta else 0  # colour: a trailing RGB axis after the column
    flat = vol.array.reshape((-1,) + vol.array.shape[-2 - channel :])
    assert len(meta["files"]) == flat.shape[0]
    mosaic = "mosaic_images" in meta
    if mosaic:  # values of cut tiles are checked against the reference NIfTIs below
        assert it.get("references"), "a mosaic without reference cannot be checked"
    for k, (path, frame) in enumerate(zip(meta["files"], meta["frames"]) if not mosaic else ()):
        expected = (_pydicom_frame(path, frame) * meta["rescale_slope"][k]
                    + meta["rescale_intercept"][k])  # fmt: skip
        np.testing.assert_allclose(flat[k], expected, rtol=1e-5, atol=1e-3)
    # Affine law: slice k's first voxel sits at that file's ImagePositionPatient.
    n_slices = vol.array.shape[-3 - channel]
    classic = (all(f == 0 for f in meta["frames"]) and not it.get("enhanced_multiframe")
               and not mosaic)  # fmt: skip
    for k in range(n_slices if classic and it.get("n_frames") == it.get("n_files") else 0):
        ipp = np.array([float(v) for v in pydicom.dcmread(vol.meta["files"][k], stop_before_pixels=True).ImagePositionPatient])
        np.testing.assert_allclose((vol.affine @ [k, 0, 0, 1])[:3], ipp, atol=1e-3)
    spatial = vol.array.shape[vol.array.ndim - 3 - channel : vol.array.ndim - channel]
    _check_grid(vol, it, spatial)
    if channel:
        return  # reference NIfTIs of colour series hold another layout (RGB24 records)
    # Values against shipped reference NIfTIs (one 4D file, or one 3D file per volume).
    niftis = [corpus / n for ref in it.get("references", []) for n in ref.get("nifti", [])]
    tool = " ".join(ref.get("tool", "") for ref in it.get("references", []))
    if len(niftis) > 1 and len(niftis) == len(vol.array.reshape((-1,) + spatial)):
        for k, nii in enumerate(sorted(niftis)):
            _compare_nifti(vol, nii, tool, volume=k, manufacturer=meta.get("manufacturer", ""))
    else:
        for nii in niftis:
            _compare_nifti(vol, nii, tool, manufacturer=meta.get("manufacturer", ""))


def _check_grid(vol: fastvol.Volume, it: dict, spatial: tuple[int, ...]) -> None:
    """Voxel centres against the manifest's header affine, else dcm2niix's output."""
    header = it.get("geom_header_affine_lps")
    if header is not None and it.get("geom_header_affine_exact"):
        # (column, row, slice) -> LPS, computed from the headers by the corpus' makers.
        shape = (spatial[2], spatial[1], spatial[0])
        np.testing.assert_allclose(corners_lps(vol.affine, spatial),
                                   corners_lps(np.array(header), shape), atol=0.05)  # fmt: skip
        return
    outs = [o for o in it.get("dcm2niix_outputs", []) if "affine_ras" in o]
    matching = [o for o in outs if int(np.prod(o["shape"][:3])) == int(np.prod(spatial))]
    if len(matching) == 1:
        ref_lps = LPS_FROM_RAS @ np.array(matching[0]["affine_ras"])
        np.testing.assert_allclose(corners_lps(vol.affine, spatial),
                                   corners_lps(ref_lps, tuple(matching[0]["shape"][:3])), atol=0.05)  # fmt: skip


def _compare_nifti(vol: fastvol.Volume, path: Path, tool: str, *, volume: int | None = None,
                   manufacturer: str = "") -> None:  # fmt: skip
    """Our volume(s) against a reference NIfTI in world space, value by value."""
    nib = pytest.importorskip("nibabel")
    if not path.exists():
        return
    img = nib.load(str(path))
    data = np.asarray(img.dataobj, dtype=np.float64)  # nibabel applies scl_slope/inter
    ref_lps = LPS_FROM_RAS @ img.affine
    spatial = vol.array.shape[-3:]
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    ours_volumes = list(vol.array.reshape((-1,) + spatial))
    if volume is not None:
        ours_volumes = [ours_volumes[volume]]
    ref_volumes = [data] if data.ndim == 3 else [data[..., t] for t in range(data.shape[3])]
    assert len(ours_volumes) == len(ref_volumes), (vol.shape, data.shape, str(path))
    t = index_map(vol.affine, ref_lps, atol=0.05)
    ours = [to_reference_layout(v.astype(np.float64), t, data.shape[:3]) for v in ours_volumes]
    philips = "philips" in manufacturer.lower()

    def same(a: np.ndarray, b: np.ndarray) -> bool:
        if np.allclose(a, b, rtol=1e-4, atol=0.5):
            return True
        if philips and np.any(a) and np.any(b):
            # Philips: the reference used the vendor's "precise" floating-point scaling
            # (stored / (RescaleSlope * ScaleSlope)), fastvol returns DICOM modality values:
            # the same image up to one constant factor per volume. Said, not skipped.
            factor = float(np.sum(a * b) / np.sum(a * a))
            if factor > 0 and np.allclose(a * factor, b, rtol=1e-3, atol=0.5 * factor):
                _NOTES.append(f"{path}: Philips precise scaling in {tool} (factor {factor:.6g})")
                return True
        return False

    if all(same(a, b) for a, b in zip(ours, ref_volumes)):
        return
    # Volume order may legitimately differ (dicom2nifti orders some 4D series its own way), and
    # a reference made from a fuller series than the corpus holds has empty volumes: every
    # non-empty reference volume must equal exactly one of ours; say what was allowed.
    empty = [j for j, b in enumerate(ref_volumes) if not np.any(b)]
    matches = {j: [i for i, a in enumerate(ours) if same(a, b)]
               for j, b in enumerate(ref_volumes) if j not in empty}  # fmt: skip
    assert matches and all(len(m) == 1 for m in matches.values()), (
        f"{tool} reference {path}: volumes differ in value (ours matching each: {matches})"
    )
    assert len({m[0] for m in matches.values()}) == len(matches)
    _NOTES.append(f"{path}: {tool} volume -> ours {matches}; empty reference volumes {empty}")


#: What the comparisons had to allow for (vendor scaling, volume order), for the record.
_NOTES: list[str] = []
