"""Pixel kinds of derived objects: Float / Double Float Pixel Data and BitsAllocated 1.

pydicom's ``pixel_array`` is the oracle for the values; files are made by highdicom from factory
series (parametric maps, 1-bit SEG) or rewritten with pydicom (classic FloatPixelData slices).
"""

from __future__ import annotations

import types

from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest

import factory as fx
import factory_derived as fd
import fastvol
from fastvol.headers import read_header_pydicom
from fastvol.headers.scan import scan_header
from fastvol.pixels import unpack_bits
from fastvol.sources import LocalFile


def _in_volume_order(vol: Any, ds: pydicom.Dataset) -> np.ndarray:
    """``ds.pixel_array`` frames placed at the slice their PlanePosition maps to."""
    frames = ds.pixel_array.reshape((int(ds.get("NumberOfFrames", 1)), ds.Rows, ds.Columns))
    pos = np.array([f.PlanePositionSequence[0].ImagePositionPatient
                    for f in ds.PerFrameFunctionalGroupsSequence], dtype=float)  # fmt: skip
    ijk = np.linalg.solve(vol.affine[:3, :3], (pos - vol.affine[:3, 3]).T).T
    assert np.allclose(ijk[:, 1:], 0, atol=1e-6)
    out = np.zeros(vol.shape, dtype=frames.dtype)
    out[np.round(ijk[:, 0]).astype(int)] = frames
    return out


def _float_slices(tmp_path: Path, dtype: type) -> tuple[fx.WrittenSeries, list[np.ndarray]]:
    """A classic series rewritten with (Double) Float Pixel Data of random values per slice."""
    w = fx.write_series(tmp_path / "float", n=5, rows=6, columns=7, orientation=(0, 1, 0, 0, 0, -1))
    rng = np.random.default_rng(3)
    values = []
    for path in w.paths:
        ds = pydicom.dcmread(path)
        del ds.PixelData
        for keyword in ("BitsStored", "HighBit", "PixelRepresentation", "RescaleSlope",
                        "RescaleIntercept"):  # fmt: skip
            if keyword in ds:
                delattr(ds, keyword)
        v = rng.normal(scale=1000, size=(ds.Rows, ds.Columns)).astype(dtype)
        ds.BitsAllocated = 8 * np.dtype(dtype).itemsize
        if dtype is np.float32:
            ds.FloatPixelData = v.astype("<f4").tobytes()
        else:
            ds.DoubleFloatPixelData = v.astype("<f8").tobytes()
        ds.save_as(path)
        values.append(v)
    return w, values


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_pixel_data_slices_equal_pixel_array(tmp_path: Path, dtype: type) -> None:
    w, _ = _float_slices(tmp_path, dtype)
    vol = fastvol.load(w.folder)
    assert vol.array.dtype == np.dtype(dtype)
    expected = np.stack([pydicom.dcmread(p).pixel_array for p in vol.meta["files"]])
    assert np.array_equal(vol.array, expected)  # not int bit patterns: the same floats
    assert np.isfinite(vol.array).all() and np.abs(vol.array).max() > 1


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_pixel_kind_scanner_equals_pydicom(tmp_path: Path, dtype: type) -> None:
    w, _ = _float_slices(tmp_path, dtype)
    scanned = scan_header(LocalFile(w.paths[0]))
    reference = read_header_pydicom(LocalFile(w.paths[0]))
    assert scanned is not None and scanned == reference
    assert scanned.pixel_kind == ("float" if dtype is np.float32 else "double")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_parametric_map_equals_pixel_array(tmp_path: Path, dtype: type) -> None:
    w = fx.write_series(tmp_path / "ct", n=5, orientation=(1, 0, 0, 0, 0, -1))
    values = np.random.default_rng(0).normal(size=(5, 16, 12)).astype(dtype)
    path = fd.write_pm(fd.source_datasets(w), values, tmp_path / "pm.dcm")
    vol = fastvol.load(path)
    assert vol.array.dtype == np.dtype(dtype)
    assert np.array_equal(vol.array, _in_volume_order(vol, pydicom.dcmread(path)))


def test_float_pixel_data_refuses_integer_dtype(tmp_path: Path) -> None:
    w, _ = _float_slices(tmp_path, np.float32)
    with pytest.raises(fastvol.InputError, match="float"):
        fastvol.load(w.folder, dtype="int16")


@pytest.mark.parametrize(("rows", "columns"), [(7, 9), (5, 5), (8, 8)])
def test_one_bit_frames_across_byte_boundaries(tmp_path: Path, rows: int, columns: int) -> None:
    w = fx.write_series(tmp_path / "ct", n=6, rows=rows, columns=columns)
    masks = np.random.default_rng(rows).random((6, rows, columns, 1)) > 0.5
    path = fd.write_seg(fd.source_datasets(w), masks, tmp_path / "seg.dcm", omit_empty_frames=False)
    ds = pydicom.dcmread(path)
    assert ds.BitsAllocated == 1
    vol = fastvol.load_segmentation(path)  # a SEG: fastvol.load refuses it (segments would merge)
    grid = types.SimpleNamespace(affine=vol.affine, shape=vol.shape[1:])
    assert vol.shape[0] == 1 and np.array_equal(vol.array[0], _in_volume_order(grid, ds))
    with pytest.raises(fastvol.UnsupportedError, match="load_segmentation"):
        fastvol.load(path)


def test_unpack_bits_against_slow_reference() -> None:
    rng = np.random.default_rng(1)
    packed = rng.integers(0, 256, size=40, dtype=np.uint8)
    for first in (0, 1, 7, 8, 13, 63):
        for count in (1, 5, 63, 200):
            slow = [(int(packed[(first + i) // 8]) >> ((first + i) % 8)) & 1 for i in range(count)]
            assert unpack_bits(packed, first, count).tolist() == slow


def test_parametric_map_units_in_meta(tmp_path: Path) -> None:
    w = fx.write_series(tmp_path / "ct", n=4)
    values = np.random.default_rng(1).random((4, 16, 12)).astype(np.float32)
    vol = fastvol.load(fd.write_pm(fd.source_datasets(w), values, tmp_path / "pm.dcm", unit="mm2/s"))
    assert vol.meta["units"] == "mm2/s"
    rwvm = vol.meta["real_world_value_mapping"]
    assert rwvm["units_meaning"] == "mm2/s" and rwvm["slope"] == 1 and rwvm["intercept"] == 0


def test_rt_dose_units_in_meta(tmp_path: Path) -> None:
    import factory_enhanced as fe

    fe.write_enhanced(tmp_path / "dose", seed=2)
    path = next((tmp_path / "dose").iterdir())
    ds = pydicom.dcmread(path)
    n = int(ds.NumberOfFrames)
    ds.Modality = "RTDOSE"
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.481.2"
    ds.ImagePositionPatient = [0, 0, 0]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.PixelSpacing = [2, 2]
    del ds.PerFrameFunctionalGroupsSequence
    del ds.SharedFunctionalGroupsSequence
    ds.GridFrameOffsetVector = [2.5 * k for k in range(n)]
    ds.DoseUnits, ds.DoseType, ds.DoseGridScaling = "GY", "PHYSICAL", "0.001"
    ds.save_as(path)
    vol = fastvol.load(path)
    assert vol.meta["units"] == "GY" and vol.meta["dose_units"] == "GY"
    assert "real_world_value_mapping" not in vol.meta


# --- colour: a trailing RGB axis, equal to pydicom's pixel_array (RGB by default) -------------


def _colour_series(tmp_path: Path, photometric: str, planar: int, bits: int = 8) -> fx.WrittenSeries:
    return fx.write_series(
        tmp_path / f"{photometric}-{planar}-{bits}", n=4, rows=6, columns=8, samples_per_pixel=3,
        photometric=photometric, bits_allocated=bits, signed=False, shuffle=True,
        edit=lambda i, ds: setattr(ds, "PlanarConfiguration", planar),
    )  # fmt: skip


@pytest.mark.parametrize(("photometric", "planar", "bits"), [
    ("RGB", 0, 8), ("RGB", 1, 8), ("YBR_FULL", 0, 8), ("YBR_FULL", 1, 8), ("RGB", 0, 16),
])  # fmt: skip
def test_colour_equals_pixel_array(tmp_path: Path, photometric: str, planar: int, bits: int) -> None:
    w = _colour_series(tmp_path, photometric, planar, bits)
    vol = fastvol.load(w.folder)
    expected = np.stack([pydicom.dcmread(p).pixel_array for p in vol.meta["files"]])
    assert vol.shape == (4, 6, 8, 3) and vol.array.dtype == expected.dtype
    assert np.array_equal(vol.array, expected)
    assert vol.meta["channels"] == "RGB" and vol.meta["axes"][-1] == "channel"
    if photometric == "YBR_FULL":  # really converted: not the stored samples
        raw = np.frombuffer(pydicom.dcmread(vol.meta["files"][0]).PixelData, np.uint8)
        assert not np.array_equal(vol.array[0].reshape(-1), raw)


def test_ybr_full_422_equals_pixel_array(tmp_path: Path) -> None:
    w = _colour_series(tmp_path, "YBR_FULL", 0)
    rng = np.random.default_rng(9)
    for path in w.paths:
        ds = pydicom.dcmread(path)
        rows, columns = ds.Rows, ds.Columns
        packed = rng.integers(16, 240, size=(rows, columns // 2, 4), dtype=np.uint8)  # Y Y Cb Cr
        ds.PhotometricInterpretation = "YBR_FULL_422"
        ds.PixelData = packed.tobytes()
        ds.save_as(path)
    vol = fastvol.load(w.folder)
    expected = np.stack([pydicom.dcmread(p).pixel_array for p in vol.meta["files"]])
    assert vol.shape == (4, 6, 8, 3) and np.array_equal(vol.array, expected)


def test_to_rgb_on_pydicom_ybr_422_file() -> None:
    from pydicom.data import get_testdata_file

    from fastvol.colour import to_rgb

    path = get_testdata_file("SC_ybr_full_422_uncompressed.dcm", download=False)
    if path is None:
        pytest.skip("pydicom's SC_ybr_full_422_uncompressed.dcm is not installed")
    ds = pydicom.dcmread(path)
    samples = np.frombuffer(ds.PixelData, np.uint8)[: ds.Rows * ds.Columns * 2]
    assert np.array_equal(to_rgb(samples, ds.Rows, ds.Columns, "YBR_FULL_422", 0), ds.pixel_array)


def _palette(i: int, ds: pydicom.Dataset, entry_bits: int = 16) -> None:
    """A 256-entry palette (first mapped value 10: lower values take entry 0)."""
    rng = np.random.default_rng(5)  # the same palette in every file
    ds.PhotometricInterpretation = "PALETTE COLOR"
    for colour in ("Red", "Green", "Blue"):
        table = rng.integers(0, 1 << entry_bits, 256).astype("<u2")
        setattr(ds, f"{colour}PaletteColorLookupTableDescriptor", [256, 10, entry_bits])
        setattr(ds, f"{colour}PaletteColorLookupTableData", table.tobytes())


def test_palette_colour_equals_apply_color_lut(tmp_path: Path) -> None:
    from pydicom.pixels.processing import apply_color_lut

    w = fx.write_series(tmp_path / "pal", n=3, rows=5, columns=7, bits_allocated=8, signed=False,
                        edit=_palette)  # fmt: skip
    vol = fastvol.load(w.folder)
    expected = np.stack([apply_color_lut(d.pixel_array, d) for d in map(pydicom.dcmread, vol.meta["files"])])
    assert vol.shape == (3, 5, 7, 3) and vol.array.dtype == expected.dtype == np.uint16
    assert np.array_equal(vol.array, expected) and vol.meta["channels"] == "RGB"


def test_different_palettes_are_refused(tmp_path: Path) -> None:
    def edit(i: int, ds: pydicom.Dataset) -> None:
        _palette(i, ds)
        ds.RedPaletteColorLookupTableData = np.full(256, i, "<u2").tobytes()

    w = fx.write_series(tmp_path / "pal", n=3, bits_allocated=8, signed=False, edit=edit)
    with pytest.raises(fastvol.UnsupportedError, match="different palettes"):
        fastvol.load(w.folder)


def test_compressed_colour_is_refused(tmp_path: Path) -> None:
    rle = "1.2.840.10008.1.2.5"
    if not fx.can_encode(rle):
        pytest.skip("no RLE encoder installed")
    c = fx.write_series(tmp_path / "rle", n=3, rows=6, columns=8, samples_per_pixel=3, photometric="RGB",
                        bits_allocated=8, signed=False, transfer_syntax=rle)  # fmt: skip
    with pytest.raises(fastvol.UnsupportedError, match="compressed colour"):
        fastvol.load(c.folder)
