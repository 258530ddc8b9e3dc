"""The test-data factory writes what it says it wrote (checked with pydicom as the reader)."""

from __future__ import annotations

import os

import numpy as np
import pydicom
import pytest
from factory import (
    LOCALIZER_ORIENTATION,
    LOSSLESS_SYNTAXES,
    LOSSY_SYNTAXES,
    NATIVE_SYNTAXES,
    REPEAT_TAGS,
    FactoryUnavailable,
    declare_huge,
    require,
    short_pixel_data,
    truncate,
    write_dicomdir_like,
    write_no_pixel_object,
    write_non_dicom,
    write_series,
)
from factory import _pixel_value_offset as pixel_value_offset
from pydicom.dataset import FileMetaDataset
from pydicom.errors import InvalidDicomError


def read(path: str, **kwargs: object) -> pydicom.Dataset:
    with open(path, "rb") as fp:
        return pydicom.dcmread(fp, **kwargs)


def pixels(path: str) -> np.ndarray:
    with open(path, "rb") as fp:
        return pydicom.dcmread(fp).pixel_array


@pytest.mark.parametrize("ts", LOSSLESS_SYNTAXES, ids=lambda uid: pydicom.uid.UID(uid).keyword)
@pytest.mark.parametrize("signed, bits_stored", [(True, 16), (False, 12), (True, 12)])
def test_lossless_pixels_read_back_as_stored(tmp_path, ts, signed, bits_stored):
    require(ts)
    series = write_series(tmp_path, n=2, transfer_syntax=ts, bits_stored=bits_stored, signed=signed)
    assert not series.lossy and series.tolerance == 0
    for path, stored in zip(series.paths, series.stored, strict=True):
        ds = read(path)
        assert ds.file_meta.TransferSyntaxUID == ts
        decoded = ds.pixel_array
        assert (decoded.dtype.kind, decoded.dtype.itemsize) == (
            stored.dtype.kind,
            stored.dtype.itemsize,
        )
        np.testing.assert_array_equal(decoded, stored)
    low = -(1 << (bits_stored - 1)) if signed else 0  # the extremes of the range are exercised
    assert series.stored.min() == low
    assert series.stored.max() == low + (1 << bits_stored) - 1


@pytest.mark.parametrize("ts", LOSSY_SYNTAXES, ids=lambda uid: pydicom.uid.UID(uid).keyword)
def test_lossy_pixels_within_tolerance(tmp_path, ts):
    require(ts)
    series = write_series(
        tmp_path, n=2, rows=24, columns=20, transfer_syntax=ts, bits_allocated=8, signed=False
    )
    assert series.lossy and series.tolerance > 0
    for path, stored in zip(series.paths, series.stored, strict=True):
        decoded = pixels(path).astype(int)
        assert np.abs(decoded - stored).max() <= series.tolerance
    assert not np.array_equal(series.stored[0], series.stored[1])


def test_eight_bit_and_colour(tmp_path):
    series = write_series(tmp_path / "a", bits_allocated=8, signed=False, n=2)
    assert (pixels(series.paths[1]) == series.stored[1]).all()
    colour = write_series(tmp_path / "b", bits_allocated=8, signed=False, samples_per_pixel=3, n=2)
    assert colour.stored.shape == (2, 16, 12, 3)
    assert read(colour.paths[0]).PhotometricInterpretation == "RGB"
    assert (pixels(colour.paths[0]) == colour.stored[0]).all()


def test_geometry_as_asked(tmp_path):
    c, s = np.cos(0.3), np.sin(0.3)
    orientation = (c, s, 0.0, 0.0, 0.0, -1.0)
    series = write_series(
        tmp_path,
        n=5,
        orientation=orientation,
        origin=(10, -20, 30),
        pixel_spacing=(0.5, 0.75),
        step=1.25,
        rows=10,
        columns=7,
    )
    normal = np.cross(orientation[:3], orientation[3:])
    expected = np.array([10, -20, 30]) + np.arange(5)[:, None] * 1.25 * normal
    np.testing.assert_allclose(series.positions, expected, atol=1e-9)
    np.testing.assert_allclose(series.normal, normal, atol=1e-9)
    assert series.pixel_spacing == (0.5, 0.75)
    for path, position in zip(series.paths, series.positions, strict=True):
        ds = read(path)
        assert (ds.Rows, ds.Columns) == (10, 7)
        assert [float(v) for v in ds.ImagePositionPatient] == list(position)  # exact: as written
        assert [float(v) for v in ds.ImageOrientationPatient] == list(series.orientation)
        assert [float(v) for v in ds.PixelSpacing] == [0.5, 0.75]
    assert series.volume().shape == (5, 10, 7)
    # Volume order runs down the normal (highdicom's): the reverse of write order here.
    np.testing.assert_array_equal(series.sorted_positions(), series.positions[::-1])


def test_tilt_explicit_positions_and_reverse_step(tmp_path):
    tilted = write_series(tmp_path / "t", n=3, step_vector=(0, 0.5, 2.0))
    np.testing.assert_allclose(np.diff(tilted.positions, axis=0), [[0, 0.5, 2.0]] * 2)
    given = [[0, 0, 5], [0, 0, 1], [0, 0, 3]]
    explicit = write_series(tmp_path / "e", positions=given)
    np.testing.assert_array_equal(explicit.positions, given)
    np.testing.assert_array_equal(explicit.sorted_positions()[:, 2], [5, 3, 1])
    reverse = write_series(tmp_path / "r", n=3, step=-2.0)
    np.testing.assert_array_equal(reverse.sorted_positions()[:, 2], [0, -2, -4])
    np.testing.assert_array_equal(reverse.volume(), reverse.stored)  # written downward already


def test_shuffle_changes_order_not_content(tmp_path):
    plain = write_series(tmp_path / "p", n=12)
    mixed = write_series(tmp_path / "m", n=12, shuffle=True)
    assert [read(p).SOPInstanceUID for p in mixed.paths] == mixed.sop_uids
    assert mixed.sop_uids != plain.sop_uids  # another write order (UIDs differ per call too)
    assert not np.array_equal(mixed.positions, plain.positions)
    np.testing.assert_array_equal(np.sort(mixed.positions[:, 2]), plain.positions[:, 2])
    # The ground truth volume does not depend on the write order.
    np.testing.assert_array_equal(mixed.sorted_positions(), plain.sorted_positions())
    np.testing.assert_array_equal(mixed.volume(), plain.volume())
    assert sorted(os.listdir(mixed.folder)) == [os.path.basename(p) for p in mixed.paths]
    again = write_series(tmp_path / "again", n=12, shuffle=True)
    np.testing.assert_array_equal(again.stored, mixed.stored)  # deterministic


def test_instance_numbers(tmp_path):
    series = write_series(tmp_path / "a", n=4, shuffle=3, instance_numbers="reversed")
    for path, index in zip(series.paths, series.position_index, strict=True):
        assert read(path).InstanceNumber == 4 - index
    bare = write_series(tmp_path / "b", n=2, instance_numbers=None)
    assert "InstanceNumber" not in read(bare.paths[0])


def test_drop_and_duplicate(tmp_path):
    series = write_series(tmp_path, n=6, drop=(2, 3), duplicate=(4,))
    assert len(series.paths) == 5
    assert list(series.position_index) == [0, 1, 4, 4, 5]
    assert list(series.is_duplicate) == [False, False, False, True, False]
    with open(series.paths[2], "rb") as a, open(series.paths[3], "rb") as b:
        assert a.read() == b.read()
    assert series.sop_uids[2] == series.sop_uids[3]
    assert series.volume().shape[0] == 4
    np.testing.assert_allclose(np.diff(series.sorted_positions()[:, 2]), [-2, -6, -2])


@pytest.mark.parametrize("tag", [*REPEAT_TAGS, None])
def test_repeats(tmp_path, tag):
    series = write_series(tmp_path, n=3, repeats=2, repeat_tag=tag)
    assert len(series.paths) == 6
    assert series.volume().shape == (2, 3, 16, 12)
    assert not np.array_equal(series.volume()[0], series.volume()[1])
    for path, repeat in zip(series.paths, series.repeat_index, strict=True):
        ds = read(path)
        if tag is None:
            assert not any(t in ds for t in REPEAT_TAGS if t != "AcquisitionNumber")
        else:
            assert float(ds[tag].value) == float(REPEAT_TAGS[tag](repeat))


def test_rescale_per_file(tmp_path):
    series = write_series(tmp_path, n=3, slopes=[0.5, 1.0, 2.0], intercepts=-1024)
    for path, slope, intercept in zip(series.paths, series.slopes, series.intercepts, strict=True):
        ds = read(path)
        assert (float(ds.RescaleSlope), float(ds.RescaleIntercept)) == (slope, intercept)
    np.testing.assert_array_equal(series.volume(rescaled=True)[0], series.stored[2] * 2.0 - 1024)


def test_junk_high_bits(tmp_path):
    series = write_series(tmp_path, n=1, bits_stored=12, signed=True, junk_high_bits=True)
    ds = read(series.paths[0])
    raw = np.frombuffer(ds.PixelData, "<u2")
    assert ((raw >> 12) != 0).any() and ((raw >> 12) != 0xF).any()  # not mere sign extension
    assert (raw & 0xFFF == series.stored[0].reshape(-1).view("u2") & 0xFFF).all()
    assert (ds.pixel_array == series.stored[0]).all()  # pydicom masks and sign-extends
    with pytest.raises(ValueError):
        write_series(tmp_path / "x", bits_stored=16, junk_high_bits=True)


@pytest.mark.parametrize("ts", [NATIVE_SYNTAXES[0], NATIVE_SYNTAXES[1], NATIVE_SYNTAXES[2]])
def test_raw_dataset(tmp_path, ts):
    series = write_series(tmp_path, n=2, raw_dataset=True, transfer_syntax=ts)
    with open(series.paths[0], "rb") as fp:
        head = fp.read(132)
    assert b"DICM" not in head
    assert head[:2] == b"\x08\x00" if ts != NATIVE_SYNTAXES[2] else head[:2] == b"\x00\x08"
    with pytest.raises(InvalidDicomError):
        read(series.paths[0])
    ds = read(series.paths[0], force=True)
    assert "TransferSyntaxUID" not in ds.file_meta
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ts
    assert (ds.pixel_array == series.stored[0]).all()


def test_raw_dataset_default_is_implicit(tmp_path):
    series = write_series(tmp_path, n=1, raw_dataset=True)
    assert series.transfer_syntax == NATIVE_SYNTAXES[0]
    assert read(series.paths[0], force=True).original_encoding == (True, True)


def test_localizer(tmp_path):
    series = write_series(tmp_path, n=3, localizer=True)
    assert list(series.is_localizer) == [True, False, False, False]
    ds = read(series.paths[0])
    assert "LOCALIZER" in ds.ImageType
    assert [float(v) for v in ds.ImageOrientationPatient] == list(LOCALIZER_ORIENTATION)
    assert ds.SeriesInstanceUID == series.series_uid
    assert series.volume().shape == (3, 16, 12)


def test_extra_and_edit(tmp_path):
    def edit(i: int, ds: pydicom.Dataset) -> None:
        ds.SeriesDescription = f"file {i}"

    series = write_series(
        tmp_path,
        n=2,
        extra={"RescaleSlope": None, "SpacingBetweenSlices": "2"},
        edit=edit,
        modality="MR",
    )
    ds = read(series.paths[1])
    assert "RescaleSlope" not in ds
    assert ds.SpacingBetweenSlices == 2
    assert ds.SeriesDescription == "file 1"
    assert ds.SOPClassUID == pydicom.uid.MRImageStorage


def test_invalid_requests(tmp_path):
    with pytest.raises(ValueError, match="JPEG Baseline"):
        write_series(tmp_path, transfer_syntax=pydicom.uid.JPEGBaseline8Bit)
    with pytest.raises(FactoryUnavailable):
        write_series(tmp_path, transfer_syntax="1.2.840.10008.1.2.4.100")  # MPEG2
    with pytest.raises(ValueError):
        write_series(tmp_path, n=3, drop=[3])


# ------------------------------------------------------------------------------------ defects


def test_truncate(tmp_path):
    path = write_series(tmp_path, n=1).paths[0]
    size = os.path.getsize(path)
    truncate(path, 100)
    assert os.path.getsize(path) == size - 100


@pytest.mark.parametrize("ts", [NATIVE_SYNTAXES[0], NATIVE_SYNTAXES[2], pydicom.uid.RLELossless])
def test_short_pixel_data(tmp_path, ts):
    path = write_series(tmp_path, n=1, transfer_syntax=ts).paths[0]
    offset, declared = pixel_value_offset(path)
    short_pixel_data(path)
    assert pixel_value_offset(path) == (offset, declared)  # header and declared length intact
    present = os.path.getsize(path) - offset
    if declared == 0xFFFFFFFF:  # encapsulated: the sequence delimiter is gone
        with open(path, "rb") as fp:
            assert b"\xfe\xff\xdd\xe0" not in fp.read()[offset:]
    else:
        assert 0 < present < declared
        with pytest.raises(ValueError, match="less than expected"):
            pixels(path)


def test_declare_huge(tmp_path):
    path = write_series(tmp_path, n=1).paths[0]
    declare_huge(path)
    ds = read(path)
    assert (ds.Rows, ds.Columns) == (65535, 65535)
    assert 65535 * 65535 * 2 > os.path.getsize(path)


def test_non_pixel_files(tmp_path):
    with pytest.raises(InvalidDicomError):
        read(write_non_dicom(tmp_path))
    report = read(write_no_pixel_object(tmp_path, series_uid="1.2.3.4"))
    assert "PixelData" not in report
    assert report.SeriesInstanceUID == "1.2.3.4"
    assert report.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    directory = read(write_dicomdir_like(tmp_path))
    assert directory.file_meta.MediaStorageSOPClassUID == "1.2.840.10008.1.3.10"
    assert "PixelData" not in directory


# ------------------------------------------------------------------------ fastvol.sample


def test_sample_series(tmp_path):
    from fastvol.sample import write_sample_series

    paths = write_sample_series(tmp_path, n_slices=4, rows=32, columns=24, seed=1)
    assert [os.path.basename(p) for p in paths] == ["IM0001", "IM0002", "IM0003", "IM0004"]
    first, last = read(paths[0]), read(paths[-1])
    assert first.SeriesDescription == "fastvol sample phantom"
    assert first.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    assert float(last.ImagePositionPatient[2]) - float(first.ImagePositionPatient[2]) == 7.5
    hu = pixels(paths[1]) * float(first.RescaleSlope) + float(first.RescaleIntercept)
    assert hu.min() == -1000 and abs(np.median(hu[12:20, 8:16])) < 50  # air outside, water in
    again = write_sample_series(tmp_path / "again", n_slices=4, rows=32, columns=24, seed=1)
    with open(paths[2], "rb") as a, open(again[2], "rb") as b:
        assert a.read() == b.read()
