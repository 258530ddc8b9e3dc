"""Enhanced (multi-frame) MR/CT objects against the ground truth of ``factory_enhanced``.

Frames are placed by their own geometry (PlanePositionSequence), never by storage order; volumes
are told apart by the frame's TemporalPositionIndex, EffectiveEchoTime, (b-value, gradient) or
non-spatial DimensionIndexValues; a Legacy Converted object (highdicom) loads like the classic
series it came from.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.uid import (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    RLELossless,
)

import factory as fx
import factory_enhanced as fe
import fastvol

OBLIQUE = (0.94959868, 0.19249318, 0.24740396, -0.26145154, 0.92176808, 0.2863332)


def _write(folder, **kw) -> fe.WrittenEnhanced:
    ts = kw.get("transfer_syntax")
    if ts is not None:
        fx.require(ts)
    return fe.write_enhanced(folder, **kw)


def _assert_affine_law(vol: fastvol.Volume, w: fe.WrittenEnhanced, slots=None) -> None:
    """``affine @ [k, 0, 0, 1]`` is the position of output slice ``k``."""
    positions = w.sorted_positions()
    slots = range(len(positions)) if slots is None else slots
    for k, position in zip(slots, positions):
        np.testing.assert_allclose((vol.affine @ [k, 0, 0, 1])[:3], position, atol=1e-4)


def _assert_frames(vol: fastvol.Volume, w: fe.WrittenEnhanced) -> None:
    """Per-slice provenance in meta: the file and frame each output slice was read from."""
    order = w.order()
    assert vol.meta["files"] == tuple(w.paths[i] for i in w.file_index[order])
    assert vol.meta["frames"] == tuple(int(i) for i in w.frame_in_file[order])


# --- one volume -----------------------------------------------------------------------------


@pytest.mark.parametrize("modality", ["MR", "CT"])
@pytest.mark.parametrize("step", [2.0, -1.5])
def test_single_volume_shuffled_frames_equal_ground_truth(tmp_path, modality, step):
    w = _write(tmp_path, n_slices=7, orientation=OBLIQUE, step=step, shuffle_frames=3,
               modality=modality, slopes=2.0, intercepts=-100.0)  # fmt: skip
    assert not np.array_equal(w.slice_index, np.sort(w.slice_index))  # really shuffled
    vol = fastvol.load(tmp_path)
    assert vol.shape == (7, 12, 10)
    np.testing.assert_array_equal(vol.array, w.volume(rescaled=True))
    _assert_affine_law(vol, w)
    _assert_frames(vol, w)
    assert vol.geometry.kind == "regular"
    np.testing.assert_allclose(vol.affine[:3, 2], np.array(OBLIQUE[:3]) * w.pixel_spacing[1], atol=1e-6)
    np.testing.assert_allclose(vol.affine[:3, 1], np.array(OBLIQUE[3:]) * w.pixel_spacing[0], atol=1e-6)
    assert np.linalg.det(vol.affine[:3, :3]) > 0  # (slice, row, column) right-handed


def test_single_volume_matches_highdicom_volume(tmp_path):
    hd = pytest.importorskip("highdicom")
    w = _write(tmp_path, n_slices=6, orientation=OBLIQUE, shuffle_frames=8, slopes=0.5,
               intercepts=3.0)  # fmt: skip
    vol = fastvol.load(w.paths[0])
    ref = hd.imread(w.paths[0]).get_volume()
    np.testing.assert_allclose(vol.affine, ref.affine, atol=1e-4)
    np.testing.assert_allclose(vol.array, ref.array, rtol=1e-6)


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
def test_native_syntaxes_and_legacy_sop_class(tmp_path, syntax):
    w = _write(tmp_path, transfer_syntax=syntax, shuffle_frames=1, modality="CT",
               legacy_converted=True, intercepts=-1024.0)  # fmt: skip
    vol = fastvol.load(tmp_path)
    np.testing.assert_array_equal(vol.array, w.volume(rescaled=True))
    _assert_affine_law(vol, w)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000), n_slices=st.integers(2, 9))
def test_property_frame_order_does_not_matter(tmp_path_factory, seed, n_slices):
    a, b = tmp_path_factory.mktemp("a"), tmp_path_factory.mktemp("b")
    fe.write_enhanced(a, n_slices=n_slices, orientation=OBLIQUE, seed=seed)
    w = fe.write_enhanced(b, n_slices=n_slices, orientation=OBLIQUE, seed=seed,
                          shuffle_frames=seed + 1)  # fmt: skip
    va, vb = fastvol.load(a), fastvol.load(b)
    np.testing.assert_array_equal(va.array, vb.array)
    np.testing.assert_array_equal(va.affine, vb.affine)
    np.testing.assert_array_equal(vb.array, w.volume())
    _assert_affine_law(vb, w)


def test_missing_slice_raises_then_fills(tmp_path):
    w = _write(tmp_path, n_slices=8, drop_frames=(2,), shuffle_frames=4, slopes=0.5)
    with pytest.raises(fastvol.MissingSlicesError) as info:
        fastvol.load(tmp_path)
    err = info.value
    assert "gaps='fill'" in str(err)
    assert isinstance(err, ValueError)
    np.testing.assert_array_equal(err.missing, [5])  # generated slice 2 of 8, counted downward
    assert err.files and all(f == w.paths[0] for f in err.files)

    vol = fastvol.load(tmp_path, gaps="fill")
    assert vol.shape == (8, 12, 10)
    assert vol.geometry.missing == (5,)
    assert np.isnan(vol.array[5]).all()
    kept = [k for k in range(8) if k != 5]
    np.testing.assert_allclose(vol.array[kept], w.volume(rescaled=True), rtol=1e-6)
    _assert_affine_law(vol, w, slots=kept)


# --- several volumes ------------------------------------------------------------------------


#: Per dimension, values given out of storage order (volumes must come out sorted by value).
FOUR_D = {
    "TemporalPositionIndex": {
        "dimension": "TemporalPositionIndex",
        "dimension_values": (3, 1, 4, 2),
    },
    "EchoTime": {"dimension": "EchoTime", "dimension_values": (30.0, 10.0, 40.0, 20.0)},
    "Diffusion": {
        "dimension": "Diffusion",
        "dimension_values": (
            (1000.0, (0.0, 1.0, 0.0)),
            (0.0, None),
            (1000.0, (1.0, 0.0, 0.0)),
            (2000.0, (0.0, 0.0, 1.0)),
        ),
    },
}
#: ``volumes_tag`` fastvol reports for each dimension.
TAG_OF = {
    "TemporalPositionIndex": "TemporalPositionIdentifier",
    "EchoTime": "EchoTime",
    "Diffusion": "Diffusion (b-value, gradient)",
}


def _assert_4d_meta(vol: fastvol.Volume, w: fe.WrittenEnhanced, dimension: str) -> None:
    values = w.values_per_volume()
    if dimension == "Diffusion":
        assert vol.meta["b_values"] == tuple(b for b, _ in values)
        assert vol.meta["gradients"] == tuple(g for _, g in values)
    elif dimension == "EchoTime":
        assert vol.meta["echo_times"] == tuple(values)
    else:
        assert list(vol.meta["volumes_values"]) == sorted(values)


@pytest.mark.parametrize("dimension", list(FOUR_D))
def test_4d_split_by_dimension_sorted_by_value(tmp_path, dimension):
    w = _write(tmp_path, n_slices=5, n_volumes=4, orientation=OBLIQUE, shuffle_frames=11,
               **FOUR_D[dimension])  # fmt: skip
    vol = fastvol.load(tmp_path)
    assert vol.shape == (4, 5, 12, 10)
    np.testing.assert_array_equal(vol.array, w.volume(rescaled=True))
    _assert_affine_law(vol, w)
    _assert_frames(vol, w)
    assert vol.meta["volumes_tag"] == TAG_OF[dimension]
    assert not vol.meta["volumes_by_order"]
    _assert_4d_meta(vol, w, dimension)


def test_4d_diffusion_meta_values(tmp_path):
    w = _write(tmp_path, n_slices=4, n_volumes=4, dimension="Diffusion", shuffle_frames=2)
    vol = fastvol.load(tmp_path)
    assert vol.meta["b_values"] == (0.0, 1000.0, 1000.0, 1000.0)
    assert vol.meta["gradients"] == (None, (0.0, 0.0, 1.0), (0.0, 1.0, 0.0), (1.0, 0.0, 0.0))
    assert vol.meta["echo_times"] == (fe.SHARED_ECHO_TIME,) * 4
    np.testing.assert_array_equal(vol.array, w.volume())


@pytest.mark.parametrize("dimension", list(FOUR_D))
def test_4d_split_by_dimension_index_values_alone(tmp_path, dimension):
    w = _write(tmp_path, n_slices=5, n_volumes=4, shuffle_frames=6, index_only=True,
               **FOUR_D[dimension])  # fmt: skip
    vol = fastvol.load(tmp_path)
    assert vol.meta["volumes_tag"] == "DimensionIndexValues"
    np.testing.assert_array_equal(vol.array, w.volume())
    _assert_affine_law(vol, w)


@pytest.mark.parametrize("dimension", ["TemporalPositionIndex", "EchoTime"])
def test_one_file_per_volume_like_siemens_xa(tmp_path, dimension):
    w = _write(tmp_path, n_slices=6, n_volumes=4, files=4, orientation=OBLIQUE, step=-2.5,
               shuffle_frames=5, **FOUR_D[dimension])  # fmt: skip
    assert len(w.paths) == 4
    vol = fastvol.load(tmp_path)
    assert vol.shape == (4, 6, 12, 10)
    np.testing.assert_array_equal(vol.array, w.volume())
    _assert_affine_law(vol, w)
    _assert_frames(vol, w)
    _assert_4d_meta(vol, w, dimension)
    # Each output volume comes from one file.
    per_volume = np.array(vol.meta["files"]).reshape(4, 6)
    assert all(len(set(row)) == 1 for row in per_volume)
    assert len({row[0] for row in per_volume}) == 4


@pytest.mark.parametrize("files", [1, 3])
def test_missing_frame_is_an_incomplete_volume(tmp_path, files):
    w = _write(tmp_path, n_slices=6, n_volumes=3, files=files, dimension="TemporalPositionIndex",
               dimension_values=(2, 3, 1), drop_frames=[(1, 4)], shuffle_frames=7)  # fmt: skip
    with pytest.raises(fastvol.RepeatedPositionsError, match="incomplete") as info:
        fastvol.load(tmp_path)
    assert isinstance(info.value, ValueError)
    assert "incomplete='drop'" in str(info.value)

    vol = fastvol.load(tmp_path, incomplete="drop")
    assert w.complete_volumes() == [2, 0]  # temporal index 1 then 2; volume 1 (index 3) dropped
    assert vol.shape == (2, 6, 12, 10)
    np.testing.assert_array_equal(vol.array, w.volume())
    _assert_affine_law(vol, w)
    _assert_frames(vol, w)
    assert tuple(vol.meta["volumes_values"]) == (1, 2)
    dropped = [path for path, why in vol.geometry.skipped if why == "incomplete volume"]
    assert len(dropped) == 5  # the five frames written of the incomplete volume


# --- pixels: syntaxes, rescale, executors ---------------------------------------------------


@pytest.mark.parametrize(
    ("syntax", "fragments"),
    [(RLELossless, 1), (RLELossless, 2), (JPEG2000Lossless, 1), (JPEG2000Lossless, 3)],
)
def test_compressed_frames_shuffled(tmp_path, syntax, fragments):
    w = _write(tmp_path, n_slices=5, n_volumes=2, dimension="TemporalPositionIndex",
               dimension_values=(2, 1), transfer_syntax=syntax, fragments_per_frame=fragments,
               shuffle_frames=9, orientation=OBLIQUE)  # fmt: skip
    vol = fastvol.load(tmp_path)
    np.testing.assert_array_equal(vol.array, w.volume())
    _assert_affine_law(vol, w)
    _assert_frames(vol, w)


def test_per_frame_rescale(tmp_path):
    rng = np.random.default_rng(4)
    total = 2 * 6
    slopes = np.round(rng.uniform(0.25, 4.0, total), 3)
    intercepts = np.round(rng.uniform(-50, 50, total), 2)
    w = _write(tmp_path, n_slices=6, n_volumes=2, dimension="EchoTime", shuffle_frames=3,
               slopes=slopes, intercepts=intercepts)  # fmt: skip
    assert np.ptp(w.slopes) > 0
    vol = fastvol.load(tmp_path)
    assert vol.array.dtype == np.float32
    np.testing.assert_allclose(vol.array, w.volume(rescaled=True), rtol=1e-6, atol=1e-3)
    order = w.order()
    np.testing.assert_allclose(vol.meta["rescale_slope"], w.slopes[order])
    np.testing.assert_allclose(vol.meta["rescale_intercept"], w.intercepts[order])
    raw = fastvol.load(tmp_path, rescale=False)
    assert raw.array.dtype == np.int16
    np.testing.assert_array_equal(raw.array, w.volume(rescaled=False))


def test_per_frame_whole_rescale_stays_integer(tmp_path):
    w = _write(tmp_path, n_slices=4, shuffle_frames=2, slopes=[1, 2, 3, 1],
               intercepts=[0, -1024, 5, 7])  # fmt: skip
    vol = fastvol.load(tmp_path)
    assert vol.array.dtype.kind == "i"
    np.testing.assert_array_equal(vol.array, w.volume(rescaled=True))


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, RLELossless, JPEG2000Lossless])
def test_executor_none_and_pool_equal_default(tmp_path, syntax):
    w = _write(tmp_path, n_slices=6, n_volumes=2, dimension="EchoTime", transfer_syntax=syntax,
               shuffle_frames=1, slopes=1.5)  # fmt: skip
    default = fastvol.load(tmp_path)
    serial = fastvol.load(tmp_path, executor=None)
    with ThreadPoolExecutor(3) as pool:
        pooled = fastvol.load(tmp_path, executor=pool)
    np.testing.assert_array_equal(serial.array, default.array)
    np.testing.assert_array_equal(pooled.array, default.array)
    np.testing.assert_array_equal(serial.affine, default.affine)
    np.testing.assert_allclose(default.array, w.volume(), rtol=1e-6)


# --- legacy converted (highdicom) -----------------------------------------------------------


def _legacy(tmp_path, modality, **kw):
    pytest.importorskip("highdicom")
    classic = fx.write_series(tmp_path / "classic", modality=modality, **kw)
    try:
        path = fe.write_legacy_converted(classic, tmp_path / "legacy" / "LC0001.dcm",
                                         modality=modality)  # fmt: skip
    except fx.FactoryUnavailable as exc:
        pytest.skip(str(exc))
    return classic, path


@pytest.mark.parametrize(
    ("modality", "kw"),
    [
        ("CT", {"n": 7, "orientation": OBLIQUE, "shuffle": 3, "intercepts": -1024.0}),
        ("MR", {"n": 6, "step": -2.5, "shuffle": 5, "slopes": np.linspace(0.5, 2.0, 6),
                "intercepts": 3.0}),
    ],
)
def test_legacy_converted_equals_classic_series(tmp_path, modality, kw):
    classic, path = _legacy(tmp_path, modality, **kw)
    reference = fastvol.load(tmp_path / "classic")
    vol = fastvol.load(path)
    assert vol.shape == reference.shape
    np.testing.assert_array_equal(vol.array, reference.array)
    np.testing.assert_allclose(vol.affine, reference.affine, atol=1e-6)
    np.testing.assert_allclose(vol.array, classic.volume(rescaled=True), rtol=1e-6)
    assert vol.array.dtype == reference.array.dtype
    assert set(vol.meta["files"]) == {os.fspath(path)}
    assert sorted(vol.meta["frames"]) == list(range(reference.shape[0]))


def test_legacy_converted_4d_equals_classic_series(tmp_path):
    _, path = _legacy(tmp_path, "CT", n=5, repeats=2, shuffle=2)
    reference = fastvol.load(tmp_path / "classic")
    vol = fastvol.load(path)
    assert vol.shape == reference.shape == (2, 5, 16, 12)
    np.testing.assert_array_equal(vol.array, reference.array)
    np.testing.assert_allclose(vol.affine, reference.affine, atol=1e-6)


def test_extended_offset_table_locates_frames(tmp_path):
    """Empty Basic Offset Table, one fragment per frame (as the standard requires with an
    Extended Offset Table) stored in reverse frame order: only the table says which item holds
    which frame, so a sequential fallback would give wrong pixels."""
    import pydicom
    from pydicom.encaps import generate_frames

    rle = "1.2.840.10008.1.2.5"
    fx.require(rle)
    truth = fe.write_enhanced(tmp_path / "e", n_slices=5, transfer_syntax=rle, shuffle_frames=3)
    (path,) = truth.paths
    ds = pydicom.dcmread(path)
    frames = list(generate_frames(ds.PixelData, number_of_frames=int(ds.NumberOfFrames)))
    items: list[bytes] = []
    offsets = [0] * len(frames)
    position = 0
    for k in reversed(range(len(frames))):
        frame = frames[k] + b"\0" * (len(frames[k]) % 2)
        offsets[k] = position
        items.append(b"\xfe\xff\x00\xe0" + len(frame).to_bytes(4, "little") + frame)
        position += 8 + len(frame)
    ds.PixelData = (b"\xfe\xff\x00\xe0\x00\x00\x00\x00" + b"".join(items)
                    + b"\xfe\xff\xdd\xe0\x00\x00\x00\x00")  # fmt: skip
    ds.ExtendedOffsetTable = np.array(offsets, "<u8").tobytes()
    ds.ExtendedOffsetTableLengths = np.array([len(f) for f in frames], "<u8").tobytes()
    ds.save_as(path)
    vol = fastvol.load(path)
    np.testing.assert_array_equal(vol.array, truth.volume(rescaled=True))


def test_a_frame_without_its_position_is_named_by_file_and_frame(tmp_path):
    def no_position(i, item):
        if i == 4:
            del item.PlanePositionSequence

    w = fe.write_enhanced(tmp_path, n_slices=8, edit_frame=no_position)
    with pytest.raises(fastvol.CorruptFileError, match=r"1 of its 8 frames .* frame\(s\) \[5\]") as raised:
        fastvol.load(tmp_path)
    assert "move them out" not in str(raised.value)
    assert len(raised.value.files) == 1 and raised.value.files[0].startswith(str(tmp_path))
