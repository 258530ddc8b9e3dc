"""Header values present but unusable are refused, never read as their default.

A RescaleSlope/RescaleIntercept of text or several values once loaded as slope 1 / intercept 0
(or the first value), and a PixelSpacing of text, one value or a NaN item as 1 mm, silently.
Each reader gives the same marker (``convert.INVALID_SCALE``, ``convert.INVALID_SPACING``) and
the plan refuses it, naming the files: the C scanner, the Python scanner (``FASTVOL_NATIVE=0``)
and pydicom (``FASTVOL_SCANNER=0``) alike.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import factory as fx
import factory_enhanced as fe
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset

import fastvol
from fastvol.errors import CorruptFileError, FastvolError, FastvolWarning
from fastvol.headers import convert, read_header_pydicom
from fastvol.headers import scan as header_scan
from fastvol.sources import LocalFile

READERS = {"c": {}, "python scanner": {"FASTVOL_NATIVE": "0"}, "pydicom": {"FASTVOL_SCANNER": "0"}}


@pytest.fixture(params=list(READERS))
def reader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each header reader in turn (the environment is read on every load)."""
    for name, value in READERS[request.param].items():
        monkeypatch.setenv(name, value)
    return str(request.param)


def _set(ds: Dataset, keyword: str, value: str) -> None:
    # The raw string as a damaged file holds it: pydicom would refuse or convert a typed value.
    if keyword not in ds:
        ds.add_new(keyword, "DS", "1")
    ds[keyword]._value = value


# ------------------------------------------------------------------------------- rescale

BAD_SCALES = ["xyz", "2\\3", "1\\", "-1024\\0", "nan", "1e999"]


@pytest.mark.parametrize("keyword", ["RescaleSlope", "RescaleIntercept"])
@pytest.mark.parametrize("value", BAD_SCALES)
def test_unusable_rescale_is_refused(tmp_path: Path, reader: str, keyword: str, value: str) -> None:
    w = fx.write_series(tmp_path, n=4, slopes=2.0, intercepts=-100.0,
                        edit=lambda i, ds: _set(ds, keyword, value) if i == 2 else None)  # fmt: skip
    with pytest.raises(CorruptFileError, match="rescale=False") as info:
        fastvol.load(tmp_path)
    assert list(info.value.files) == [w.paths[2]]
    assert w.paths[2] in str(info.value) and "not one number" in str(info.value)
    # The stored values are still there for who asks for them.
    stored = fastvol.load(tmp_path, rescale=False).array
    np.testing.assert_array_equal(stored, w.stored[w.order()])


@pytest.mark.parametrize("value", ["", " "])
def test_blank_rescale_is_absent(tmp_path: Path, reader: str, value: str) -> None:
    # pydicom reads a blank DS as None: the default (slope 1) applies, as for an absent one.
    w = fx.write_series(tmp_path, n=3, slopes=1.0, intercepts=5.0,
                        edit=lambda i, ds: _set(ds, "RescaleSlope", value))  # fmt: skip
    volume = fastvol.load(tmp_path)
    np.testing.assert_array_equal(volume.array, w.stored[w.order()].astype(np.int64) + 5)


def test_absent_rescale_is_unchanged(tmp_path: Path, reader: str) -> None:
    w = fx.write_series(tmp_path, n=3, extra={"RescaleSlope": None, "RescaleIntercept": None})
    volume = fastvol.load(tmp_path)
    assert volume.array.dtype == w.stored.dtype
    np.testing.assert_array_equal(volume.array, w.stored[w.order()])


def test_other_numbers_keep_their_reading(tmp_path: Path, reader: str) -> None:
    # Only the rescale and PixelSpacing refuse: an unusable SliceThickness or WindowCenter is
    # absent, as before (neither changes a voxel value or the in-plane geometry).
    def damage(i: int, ds: Dataset) -> None:
        _set(ds, "SliceThickness", "thick")
        _set(ds, "WindowCenter", "40\\x")
        _set(ds, "GantryDetectorTilt", "1\\2\\3")

    w = fx.write_series(tmp_path, n=3, slopes=2.0, edit=damage)
    volume = fastvol.load(tmp_path)
    np.testing.assert_array_equal(volume.array, 2 * w.stored[w.order()].astype(np.int64))
    records = fastvol.scan(tmp_path)[0].records
    assert {r.slice_thickness for r in records} == {None}


@pytest.mark.parametrize("value", ["abc", "2\\3"])
@pytest.mark.parametrize("keyword", ["RescaleSlope", "RescaleIntercept"])
def test_unusable_per_frame_rescale_is_refused(tmp_path: Path, reader: str, keyword: str, value: str) -> None:
    def damage(i: int, item: Dataset) -> None:
        if i == 4:
            _set(item.PixelValueTransformationSequence[0], keyword, value)

    w = fe.write_enhanced(tmp_path, n_slices=6, slopes=np.linspace(0.5, 2.0, 6), intercepts=np.arange(6.0),
                          edit_frame=damage)  # fmt: skip
    with pytest.raises(CorruptFileError, match="rescale=False") as info:
        fastvol.load(tmp_path)
    assert list(info.value.files) == list(w.paths) and "in 1 file(s)" in str(info.value)
    assert fastvol.load(tmp_path, rescale=False).shape == (6, 12, 10)


# ---------------------------------------------------------------------------- PixelSpacing

BAD_SPACINGS = ["nan\\1", "x\\y", "0.5", "0.5\\0.5\\0.5", "\\", "0.5\\", "0\\0"]


@pytest.mark.parametrize("value", BAD_SPACINGS)
def test_unusable_pixel_spacing_is_refused(tmp_path: Path, reader: str, value: str) -> None:
    w = fx.write_series(tmp_path, n=3, edit=lambda i, ds: _set(ds, "PixelSpacing", value))
    with pytest.raises(CorruptFileError, match="PixelSpacing") as info:
        fastvol.load(tmp_path)
    assert sorted(info.value.files) == sorted(w.paths)


def _per_frame_spacing(value: str, frames: tuple[int, ...]) -> Any:
    def damage(i: int, item: Dataset) -> None:
        if i in frames:
            item.PixelMeasuresSequence = [Dataset()]
            _set(item.PixelMeasuresSequence[0], "PixelSpacing", value)

    return damage


@pytest.mark.parametrize("value", ["x\\y", "0.5", "nan\\1"])
def test_unusable_per_frame_pixel_spacing_is_refused(tmp_path: Path, reader: str, value: str) -> None:
    w = fe.write_enhanced(tmp_path, n_slices=4, edit_frame=_per_frame_spacing(value, (0, 1, 2, 3)))
    with pytest.raises(CorruptFileError, match="PixelSpacing") as info:
        fastvol.load(tmp_path)
    assert list(info.value.files) == list(w.paths)


@pytest.mark.parametrize("value", ["x\\y", "0.5"])
def test_one_unusable_frame_spacing_is_refused_as_zero(tmp_path: Path, reader: str, value: str) -> None:
    # One frame's spacing unusable: refused as a frame with 0\0 is (a group of its own, so the
    # series holds two that cannot be stacked), no longer read as the shared spacing.
    def error(folder: Path, bad: str) -> FastvolError:
        fe.write_enhanced(folder, n_slices=4, edit_frame=_per_frame_spacing(bad, (2,)))
        with pytest.raises(FastvolError) as info:
            fastvol.load(folder)
        return info.value

    damaged, zero = error(tmp_path / "damaged", value), error(tmp_path / "zero", "0\\0")
    assert type(damaged) is type(zero)
    assert str(damaged).replace("damaged", "zero") == str(zero)


@pytest.mark.parametrize("value", [None, ""])
def test_absent_pixel_spacing_warns_and_assumes_1_mm(tmp_path: Path, reader: str, value: Any) -> None:
    fx.write_series(tmp_path, n=3, pixel_spacing=(0.5, 0.7), extra={"PixelSpacing": value})
    with pytest.warns(FastvolWarning, match="PixelSpacing missing") as caught:
        volume = fastvol.load(tmp_path)
    assert len(caught) == 1
    assert volume.spacing[1:] == (1.0, 1.0)
    assert any("PixelSpacing missing" in w for w in volume.geometry.warnings)


def test_absent_pixel_spacing_report_does_not_warn(tmp_path: Path) -> None:
    # A report (Series.geometry) states it; only a load raises the warning, as for tilt (any
    # warning here fails the test: the suite turns warnings into errors).
    fx.write_series(tmp_path, n=3, extra={"PixelSpacing": None})
    (series,) = fastvol.scan(tmp_path)
    assert any("PixelSpacing missing" in w for w in series.geometry.warnings)


# ------------------------------------------------------------------------- converters agree


@pytest.mark.parametrize("kind", ["scale", "spacing"])
@pytest.mark.parametrize("text", ["", " ", "1", " 2.5 ", "1\\2", "1\\", "\\", "0.5\\0.7", "0.5\\0.7\\1",
                                  "-1024", "1e999", "\\1"])  # fmt: skip
def test_raw_converters_equal_the_pydicom_ones(tmp_path: Path, kind: str, text: str) -> None:
    keyword = "RescaleSlope" if kind == "scale" else "PixelSpacing"
    path = fx.write_series(tmp_path, n=1, edit=lambda i, ds: _set(ds, keyword, text)).paths[0]
    value = pydicom.dcmread(path).get(keyword)
    from_pydicom = convert.ELEMENT_CONVERTERS[kind](value)
    from_raw = convert.RAW_CONVERTERS[kind](text.encode())
    assert from_raw is from_pydicom or from_raw == from_pydicom
    field = "rescale_slope" if kind == "scale" else "pixel_spacing"
    scanned = header_scan.scan_header(LocalFile(path))
    if scanned is not None:
        assert getattr(scanned, field) is from_raw or getattr(scanned, field) == from_raw
        assert scanned == read_header_pydicom(LocalFile(path))


def test_markers() -> None:
    assert math.isnan(convert.INVALID_SCALE)
    assert convert.INVALID_SPACING == convert.INVALID_SPACING and not all(map(math.isfinite, convert.INVALID_SPACING))
    assert convert.RAW_CONVERTERS["scale"](b"1\\2") is convert.INVALID_SCALE
    assert convert.ELEMENT_CONVERTERS["scale"]("abc") is convert.INVALID_SCALE
    assert convert.RAW_CONVERTERS["spacing"](b"1") is convert.INVALID_SPACING
    assert convert.ELEMENT_CONVERTERS["spacing"]("x\\y") is convert.INVALID_SPACING
