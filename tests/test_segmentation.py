"""load_segmentation against highdicom, the oracle: SEGs highdicom writes from factory series of
many geometries, and every SEG of the real corpus (dcmqi and highdicom test files).

On the reference grid the oracle is ``Segmentation.get_pixels_by_source_instance`` asked for the
reference's slices in fastvol's order; on the SEG's own grid it is ``Segmentation.get_volume``.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest

import factory as fx
import factory_derived as fd
import fastvol

hd = pytest.importorskip("highdicom")

SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"


def _oracle_on(seg_path: str | Path, ref: fastvol.Volume) -> np.ndarray:
    """highdicom's masks ``(segment, slice, row, column)`` for the reference's slices, in order."""
    seg = hd.seg.segread(seg_path)
    pixels = seg.get_pixels_by_source_instance(
        list(ref.meta["sop_instance_uids"]), combine_segments=False, skip_overlap_checks=True,
        ignore_spatial_locations=True, assert_missing_frames_are_empty=True,
    )  # fmt: skip
    return np.moveaxis(np.asarray(pixels), -1, 0)


def _masks(shape: tuple[int, ...], n_segments: int, seed: int, *, empty_slices: tuple[int, ...] = (),
           overlap: bool = True) -> np.ndarray:  # fmt: skip
    """Random blob masks ``(slice, row, column, segment)``; ``empty_slices`` hold no mask."""
    rng = np.random.default_rng(seed)
    n, rows, columns = shape
    r, c = np.mgrid[:rows, :columns]
    masks = np.zeros((n, rows, columns, n_segments), dtype=bool)
    for k in range(n):
        for s in range(n_segments):
            cy, cx = rng.uniform(0, rows), rng.uniform(0, columns)
            masks[k, :, :, s] = (r - cy) ** 2 + (c - cx) ** 2 < rng.uniform(4, 30)
    if not overlap:
        first = np.argmax(masks, axis=-1)
        masks = masks & (np.arange(n_segments) == first[..., None])
    masks[list(empty_slices)] = False
    return masks


GEOMETRIES: dict[str, dict[str, Any]] = {
    "axial": {},
    "descending": {"step": -2.5},
    "sagittal": {"orientation": (0, 1, 0, 0, 0, -1)},
    "coronal_shuffled": {"orientation": (1, 0, 0, 0, 0, -1), "shuffle": 3},
    "oblique": {"orientation": (0.866025, 0.5, 0, -0.5, 0.866025, 0)},
    "double_oblique": {"orientation": (0.8, 0.36, 0.48, -0.6, 0.48, 0.64)},
    "tilted": {"step_vector": (0, 0.5, 2.0)},
}


def _written(tmp_path: Path, geometry: str, n: int = 7) -> fx.WrittenSeries:
    return fx.write_series(tmp_path / "ct", n=n, rows=11, columns=13, **GEOMETRIES[geometry])


@pytest.mark.parametrize("geometry", list(GEOMETRIES))
def test_masks_on_reference_equal_highdicom(tmp_path: Path, geometry: str) -> None:
    w = _written(tmp_path, geometry)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fastvol.FastvolWarning)  # tilt kept: a sheared affine
        ref = fastvol.load(w.folder)
    sources = fd.source_datasets(w)
    masks = _masks((len(sources), 11, 13), 3, seed=len(geometry), empty_slices=(0, 4))
    seg_path = fd.write_seg(sources, masks, tmp_path / "seg.dcm")
    vol = fastvol.load_segmentation(seg_path, ref)
    assert vol.shape == (3, *ref.shape) and vol.array.dtype == np.uint8
    np.testing.assert_array_equal(vol.affine, ref.affine)
    expected = _oracle_on(seg_path, ref)
    assert np.array_equal(vol.array, expected)
    uids = list(ref.meta["sop_instance_uids"])
    empty = [uids.index(sources[i].SOPInstanceUID) for i in (0, 4)]  # their frames were omitted
    assert vol.array.any() and not vol.array[:, empty].any()
    # The same with the reference given as its Series.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fastvol.FastvolWarning)
        series = fastvol.scan(w.folder)[0]
        assert np.array_equal(fastvol.load_segmentation(seg_path, series).array, expected)
    assert [s["number"] for s in vol.meta["segments"]] == [1, 2, 3]
    assert vol.meta["placed_by"] == "source image and position"


@pytest.mark.parametrize("geometry", ["axial", "descending", "sagittal", "oblique", "double_oblique"])
def test_masks_on_own_grid_equal_highdicom_get_volume(tmp_path: Path, geometry: str) -> None:
    w = _written(tmp_path, geometry)
    sources = fd.source_datasets(w)
    masks = _masks((len(sources), 11, 13), 2, seed=7)
    seg_path = fd.write_seg(sources, masks, tmp_path / "seg.dcm", omit_empty_frames=False)
    vol = fastvol.load_segmentation(seg_path)
    oracle = hd.seg.segread(seg_path).get_volume(combine_segments=False, allow_missing_positions=True)
    np.testing.assert_allclose(vol.affine, oracle.affine, atol=1e-4)  # DS strings: 1e-6 mm apart
    assert np.array_equal(vol.array, np.moveaxis(oracle.array, -1, 0))


def test_tilted_seg_on_own_grid_has_the_sheared_affine(tmp_path: Path) -> None:
    # highdicom finds no regular volume here; fastvol keeps the pixels on the sheared grid the
    # frames lie on, as it does for the tilted source: every frame's position is its slice's.
    w = _written(tmp_path, "tilted")
    masks = _masks((7, 11, 13), 1, seed=8)
    seg_path = fd.write_seg(fd.source_datasets(w), masks, tmp_path / "seg.dcm", omit_empty_frames=False)
    vol = fastvol.load_segmentation(seg_path)
    ds = pydicom.dcmread(seg_path)
    for i, item in enumerate(ds.PerFrameFunctionalGroupsSequence):
        pos = np.array(item.PlanePositionSequence[0].ImagePositionPatient, dtype=float)
        ijk = np.linalg.solve(vol.affine[:3, :3], pos - vol.affine[:3, 3])
        np.testing.assert_allclose(ijk[1:], 0, atol=1e-4)
        k = int(round(ijk[0]))
        assert np.array_equal(vol.array[0, k], ds.pixel_array[i])


def test_sparse_seg_empty_frames_omitted_is_zero_on_reference(tmp_path: Path) -> None:
    w = fx.write_series(tmp_path / "ct", n=12, rows=9, columns=10)
    ref = fastvol.load(w.folder)
    sources = fd.source_datasets(w)
    masks = _masks((12, 9, 10), 2, seed=2, empty_slices=(0, 1, 2, 5, 6, 7, 11))
    seg_path = fd.write_seg(sources, masks, tmp_path / "seg.dcm", omit_empty_frames=True)
    assert pydicom.dcmread(seg_path).NumberOfFrames < 12 * 2  # frames really omitted
    vol = fastvol.load_segmentation(seg_path, ref)
    assert vol.shape == (2, 12, 9, 10)
    assert np.array_equal(vol.array, _oracle_on(seg_path, ref))
    # On its own grid the sparse SEG spans only its frames' positions, with the source's step.
    own = fastvol.load_segmentation(seg_path)
    assert own.shape[1] < 12 and np.isclose(own.spacing[0], ref.spacing[0])


def test_frames_without_source_references_are_placed_by_position(tmp_path: Path) -> None:
    w = fx.write_series(tmp_path / "ct", n=6, rows=9, columns=10, shuffle=1)
    ref = fastvol.load(w.folder)
    sources = fd.source_datasets(w)
    masks = _masks((6, 9, 10), 2, seed=4)
    seg_path = fd.write_seg(sources, masks, tmp_path / "seg.dcm")
    ds = pydicom.dcmread(seg_path)
    for item in ds.PerFrameFunctionalGroupsSequence:
        del item.DerivationImageSequence
    stripped = tmp_path / "stripped.dcm"
    ds.save_as(stripped)
    vol = fastvol.load_segmentation(stripped, ref)
    assert vol.meta["placed_by"] == "position"
    assert np.array_equal(vol.array, _oracle_on(seg_path, ref))


def test_fractional_scaled_by_maximum_fractional_value(tmp_path: Path) -> None:
    w = fx.write_series(tmp_path / "ct", n=5, rows=8, columns=9)
    ref = fastvol.load(w.folder)
    sources = fd.source_datasets(w)
    rng = np.random.default_rng(5)
    values = np.round(rng.random((5, 8, 9, 2)) * 255) / 255
    values[values < 0.3] = 0
    seg_path = fd.write_seg(sources, values.astype(np.float32), tmp_path / "seg.dcm", fractional=True)
    vol = fastvol.load_segmentation(seg_path, ref)
    assert vol.array.dtype == np.float32 and vol.meta["segmentation_type"] == "FRACTIONAL"
    oracle = hd.seg.segread(seg_path).get_pixels_by_source_instance(
        list(ref.meta["sop_instance_uids"]), combine_segments=False, ignore_spatial_locations=True,
        rescale_fractional=True, dtype=np.float32,
    )  # fmt: skip
    np.testing.assert_allclose(vol.array, np.moveaxis(oracle, -1, 0), atol=1e-6)
    assert vol.array.max() > 0.5
    with pytest.raises(fastvol.InputError, match="BINARY"):
        fastvol.load_segmentation(seg_path, ref, labelmap=True)


def test_labelmap_and_overlaps(tmp_path: Path) -> None:
    w = fx.write_series(tmp_path / "ct", n=6, rows=12, columns=12)
    ref = fastvol.load(w.folder)
    sources = fd.source_datasets(w)
    masks = _masks((6, 12, 12), 3, seed=11, overlap=True)
    assert (masks.sum(-1) > 1).any()
    seg_path = fd.write_seg(sources, masks, tmp_path / "seg.dcm")
    with pytest.raises(fastvol.OverlapError) as info:
        fastvol.load_segmentation(seg_path, ref, labelmap=True)
    assert "overlap='max'" in str(info.value)
    lm = fastvol.load_segmentation(seg_path, ref, labelmap=True, overlap="max")
    stack = fastvol.load_segmentation(seg_path, ref).array
    expected = np.max(stack * np.arange(1, 4)[:, None, None, None], axis=0)
    assert lm.shape == ref.shape and lm.array.dtype == np.uint8
    assert np.array_equal(lm.array, expected)
    np.testing.assert_array_equal(lm.affine, ref.affine)


def test_labelmap_without_overlap_equals_highdicom_combined(tmp_path: Path) -> None:
    w = fx.write_series(tmp_path / "ct", n=6, rows=12, columns=12, orientation=(0, 1, 0, 0, 0, -1))
    ref = fastvol.load(w.folder)
    masks = _masks((6, 12, 12), 3, seed=12, overlap=False)
    seg_path = fd.write_seg(fd.source_datasets(w), masks, tmp_path / "seg.dcm")
    lm = fastvol.load_segmentation(seg_path, ref, labelmap=True)
    oracle = hd.seg.segread(seg_path).get_pixels_by_source_instance(
        list(ref.meta["sop_instance_uids"]), combine_segments=True, ignore_spatial_locations=True
    )
    assert np.array_equal(lm.array, np.asarray(oracle))


def test_segments_selected_in_order_and_meta(tmp_path: Path) -> None:
    w = fx.write_series(tmp_path / "ct", n=4, rows=8, columns=8)
    masks = _masks((4, 8, 8), 3, seed=13)
    seg_path = fd.write_seg(fd.source_datasets(w), masks, tmp_path / "seg.dcm",
                            labels=["liver", "spleen", "kidney"])  # fmt: skip
    full = fastvol.load_segmentation(seg_path, w.folder)
    picked = fastvol.load_segmentation(seg_path, w.folder, segments=[3, 1])
    assert np.array_equal(picked.array, full.array[[2, 0]])
    assert [s["label"] for s in picked.meta["segments"]] == ["kidney", "liver"]
    s = full.meta["segments"][0]
    assert s["algorithm_type"] == "MANUAL" and s["category"]["meaning"] == "Tissue"
    assert s["type"]["scheme"] == "SCT" and full.meta["axes"][0] == "segment"
    with pytest.raises(fastvol.InputError, match="unknown"):
        fastvol.load_segmentation(seg_path, w.folder, segments=[4])


def test_reference_of_another_scan_is_refused(tmp_path: Path) -> None:
    w = fx.write_series(tmp_path / "ct", n=5, rows=8, columns=8)
    other = fx.write_series(tmp_path / "other", n=5, rows=8, columns=8,
                            frame_of_reference_uid="1.2.3.4.5.6")  # another scan, same grid
    seg_path = fd.write_seg(fd.source_datasets(w), _masks((5, 8, 8), 1, seed=1), tmp_path / "seg.dcm")
    with pytest.raises(fastvol.AlignmentError, match="FrameOfReferenceUID") as info:
        fastvol.load_segmentation(seg_path, other.folder)
    assert info.value.reason == "frame of reference"


def test_frame_on_no_reference_slice_is_refused(tmp_path: Path) -> None:
    w = fx.write_series(tmp_path / "ct", n=8, rows=8, columns=8)
    seg_path = fd.write_seg(fd.source_datasets(w), _masks((8, 8, 8), 1, seed=1), tmp_path / "seg.dcm",
                            omit_empty_frames=False)  # fmt: skip
    part = fastvol.load(w.paths[:4])  # the reference lacks the slices the other frames lie on
    with pytest.raises(fastvol.AlignmentError, match="on no reference slice") as info:
        fastvol.load_segmentation(seg_path, part)
    assert info.value.reason == "no slice" and len(info.value.frames) == 4


def test_reference_on_another_grid_is_refused(tmp_path: Path) -> None:
    w = fx.write_series(tmp_path / "ct", n=5, rows=8, columns=8, step_vector=(0, 0.5, 2.0))
    seg_path = fd.write_seg(fd.source_datasets(w), _masks((5, 8, 8), 1, seed=1), tmp_path / "seg.dcm",
                            omit_empty_frames=False)  # fmt: skip
    resampled = fastvol.load(w.folder, tilt="resample")  # frames keep the sheared positions
    with pytest.raises(fastvol.AlignmentError):
        fastvol.load_segmentation(seg_path, resampled)


def test_not_a_segmentation_is_a_typed_error(tmp_path: Path) -> None:
    w = fx.write_series(tmp_path / "ct", n=2)
    with pytest.raises(fastvol.InputError, match="not a DICOM Segmentation"):
        fastvol.load_segmentation(w.paths[0])
    with pytest.raises(fastvol.InputError):
        fastvol.load_segmentation(w.paths[0], overlap="min")


# --- the real corpus -------------------------------------------------------------------------


def _corpus_segs(corpus: Path) -> list[Path]:
    out = []
    for path in sorted(corpus.glob("QIICR+dcmqi/data/segmentations/**/*")) + sorted(
        corpus.glob("ImagingDataCommons+highdicom/data/test_files/*.dcm")
    ):
        if path.is_file() and path.suffix in (".dcm", ".seg"):
            ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
            if ds.get("SOPClassUID") == SEG_SOP_CLASS:
                out.append(path)
    return out


def test_every_corpus_seg_equals_highdicom(corpus: Path) -> None:
    segs = _corpus_segs(corpus)
    assert len(segs) >= 8, segs
    compared = 0
    for path in segs:
        oracle_seg = hd.seg.segread(path)
        try:
            oracle = oracle_seg.get_volume(combine_segments=False)
        except Exception:  # highdicom finds no volume either (a CR without geometry)
            with pytest.raises(fastvol.GeometryError):
                fastvol.load_segmentation(path)
            continue
        vol = fastvol.load_segmentation(path)
        np.testing.assert_allclose(vol.affine, oracle.affine, atol=1e-4, err_msg=str(path))
        expected = np.moveaxis(oracle.array, -1, 0)
        if vol.array.dtype == np.float32:
            np.testing.assert_allclose(vol.array, expected, atol=1e-6, err_msg=str(path))
        else:
            assert np.array_equal(vol.array, expected), path
        compared += 1
    assert compared >= 7


@pytest.mark.parametrize(("seg", "source"), [
    ("liver.dcm", "ct-3slice"), ("partial_overlaps.dcm", "ct-3slice"),
    ("24x38x3/seg/label.seg", "24x38x3/image"), ("23x38x3/seg/label.seg", "23x38x3/image"),
])  # fmt: skip
def test_corpus_seg_on_its_source_equals_highdicom(corpus: Path, seg: str, source: str) -> None:
    base = corpus / "QIICR+dcmqi/data/segmentations"
    ref = fastvol.load(base / source)
    vol = fastvol.load_segmentation(base / seg, ref)
    assert vol.shape[1:] == ref.shape
    assert np.array_equal(vol.array, _oracle_on(base / seg, ref))
    np.testing.assert_array_equal(vol.affine, ref.affine)


def test_raw_frame_facts_equal_pydicom(tmp_path: Path, corpus_or_none: Path | None) -> None:
    """The raw walk of the per-frame groups gives pydicom's facts, on every SEG at hand (defined
    and undefined lengths, explicit and implicit VR)."""
    from fastvol.headers import read_header
    from fastvol.segmentation import read
    from fastvol.sources import LocalFile

    w = fx.write_series(tmp_path / "ct", n=5, rows=9, columns=10, orientation=(0, 1, 0, 0, 0, -1))
    paths = [fd.write_seg(fd.source_datasets(w), _masks((5, 9, 10), 3, seed=21), tmp_path / "a.dcm"),
             fd.write_seg(fd.source_datasets(w), _masks((5, 9, 10), 2, seed=22), tmp_path / "b.dcm",
                          transfer_syntax=pydicom.uid.ImplicitVRLittleEndian)]  # fmt: skip
    if corpus_or_none is not None:
        paths += [str(p) for p in _corpus_segs(corpus_or_none)]
    for path in paths:
        record = read_header(LocalFile(path))
        partial, raw_frames = read._dataset_split(record, LocalFile(path))
        assert raw_frames is not None, path  # walked from raw bytes, not through pydicom
        assert "PerFrameFunctionalGroupsSequence" not in partial
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        n = int(ds.NumberOfFrames)
        shared = ds.SharedFunctionalGroupsSequence[0]
        raw = read._frame_facts_raw(*raw_frames, n, shared, str(path))
        slow = read._frame_facts(ds, n, shared, str(path))
        for a, b in zip(raw[:4], slow[:4]):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=str(path))
        assert raw[4] == slow[4], path


def test_scan_lists_segmentations_of_a_series(tmp_path: Path) -> None:
    study = tmp_path / "study"
    ct1 = fx.write_series(study / "ct1", n=5, rows=8, columns=8)
    ct2 = fx.write_series(study / "ct2", n=4, rows=8, columns=9, orientation=(0, 1, 0, 0, 0, -1),
                          frame_of_reference_uid="1.2.3.9")  # fmt: skip
    seg1 = fd.write_seg(fd.source_datasets(ct1), _masks((5, 8, 8), 2, seed=1), study / "seg" / "s1.dcm")
    fd.write_seg(fd.source_datasets(ct2), _masks((4, 8, 9), 1, seed=2), study / "seg" / "s2.dcm")
    found = fastvol.scan(study)
    first = next(s for s in found if s.uid == ct1.series_uid)
    second = next(s for s in found if s.uid == ct2.series_uid)
    segs = found.segmentations_of(first)
    assert [s.files for s in segs] == [(seg1,)]
    assert found.segmentations_of(ct1.series_uid) == segs
    assert len(found.segmentations_of(second)) == 1 and found.segmentations_of(second) != segs
    assert found.segmentations_of(segs[0]) == []  # a SEG segments no SEG
    vol = fastvol.load_segmentation(segs[0], first)
    assert np.array_equal(vol.array, fastvol.load_segmentation(seg1, ct1.folder).array)
    assert vol.meta["referenced_series"] == [ct1.series_uid]


def test_label_map_segmentation_storage_is_refused_by_name(corpus: Path) -> None:
    path = corpus / "QIICR+dcmqi/data/segmentations/sparse-labelmap-ppv5.dcm"
    if not path.exists():
        pytest.skip("corpus lacks sparse-labelmap-ppv5.dcm")
    with pytest.raises(fastvol.UnsupportedError, match="Label Map Segmentation"):
        fastvol.load_segmentation(path)


@pytest.mark.parametrize(("syntax", "fractional"), [
    ("1.2.840.10008.1.2.5", True),  # RLE Lossless (highdicom allows it for fractional SEGs only)
    ("1.2.840.10008.1.2", False),  # implicit VR little endian, 1-bit
])  # fmt: skip
def test_compressed_and_implicit_seg_equal_highdicom(tmp_path: Path, syntax: str, fractional: bool) -> None:
    w = fx.write_series(tmp_path / "ct", n=5, rows=10, columns=12)
    ref = fastvol.load(w.folder)
    masks = _masks((5, 10, 12), 2, seed=31).astype(np.float32)
    if fractional:
        masks *= np.random.default_rng(3).integers(1, 256, masks.shape) / 255
    seg_path = fd.write_seg(fd.source_datasets(w), masks, tmp_path / "seg.dcm", transfer_syntax=syntax,
                            fractional=fractional)  # fmt: skip
    assert pydicom.dcmread(seg_path, stop_before_pixels=True).file_meta.TransferSyntaxUID == syntax
    vol = fastvol.load_segmentation(seg_path, ref)
    oracle = hd.seg.segread(seg_path).get_pixels_by_source_instance(
        list(ref.meta["sop_instance_uids"]), combine_segments=False, ignore_spatial_locations=True,
        dtype=np.float32 if fractional else np.uint8,
    )  # fmt: skip
    np.testing.assert_allclose(vol.array, np.moveaxis(oracle, -1, 0), atol=1e-6)
    assert vol.array.any()


def test_damaged_seg_is_a_fastvol_error_or_loads(tmp_path: Path) -> None:
    """Byte flips and truncations of a SEG: load_segmentation raises only fastvol errors."""
    w = fx.write_series(tmp_path / "ct", n=4, rows=8, columns=9)
    ref = fastvol.load(w.folder)
    good = Path(fd.write_seg(fd.source_datasets(w), _masks((4, 8, 9), 2, seed=41), tmp_path / "seg.dcm"))
    data = good.read_bytes()
    rng = np.random.default_rng(0)
    outcomes = set()
    for k in range(30):
        bad = bytearray(data)
        if k % 3 == 0:
            bad = bad[: int(rng.integers(200, len(data)))]
        else:
            for at in rng.integers(132, len(data), size=int(rng.integers(1, 6))):
                bad[at] = int(rng.integers(0, 256))
        path = tmp_path / f"bad{k}.dcm"
        path.write_bytes(bytes(bad))
        for reference in (None, ref):
            try:
                fastvol.load_segmentation(path, reference)
                outcomes.add("loaded")
            except fastvol.FastvolError as exc:
                assert str(exc)
                outcomes.add(type(exc).__name__)
    assert len(outcomes) > 1  # some damage is detected, naming what is wrong


def test_load_and_convert_refuse_a_seg_naming_load_segmentation(tmp_path: Path) -> None:
    # Stacked as one image, a SEG's frames of several segments would merge into one mask.
    ct = fx.write_series(tmp_path / "study" / "ct", n=4, rows=8, columns=8)
    seg = fd.write_seg(fd.source_datasets(ct), _masks((4, 8, 8), 2, seed=3, overlap=False),
                       tmp_path / "study" / "seg" / "s.dcm")  # fmt: skip
    with pytest.raises(fastvol.UnsupportedError, match="load_segmentation") as info:
        fastvol.load(seg)
    assert seg in info.value.files
    report = fastvol.convert(tmp_path / "study", tmp_path / "out")
    by_uid = {line["series_instance_uid"]: line for line in report.lines}
    seg_line = next(line for uid, line in by_uid.items() if uid != ct.series_uid)
    assert seg_line["status"] == "skipped" and "load_segmentation" in seg_line["reason"]
    assert by_uid[ct.series_uid]["status"] == "converted" and report.exit_code == 0
