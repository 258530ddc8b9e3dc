"""Per-frame records read from the raw functional groups equal those of the pydicom path.

:func:`fastvol.headers.multiframe_raw.expand_raw` must give exactly (``==``) the records the
pydicom path (``FASTVOL_SCANNER=0``) gives, on every multi-frame file of the corpus and on
generated enhanced files of every shape the functional groups take (explicit and implicit VR,
defined and undefined lengths, groups shared or per frame or missing, empty values, per-frame
orientations, converted attributes, units), or refuse the file (``Unparsed``/``Unsure``), which
:func:`~fastvol.headers.multiframe.expand_frames` then reads through pydicom.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

import factory_enhanced as fe
from fastvol.errors import FastvolError
from fastvol.headers import read_header, read_headers
from fastvol.headers.convert import Unsure
from fastvol.headers.groups import Unparsed
from fastvol.headers.multiframe import expand_frames, needs_expansion
from fastvol.headers.multiframe_raw import WANTED, expand_raw
from fastvol.sources import LocalFile


def _data(record: Any) -> bytes:
    source = LocalFile(record.path)
    try:
        return source.read(0, record.pixel_offset)
    finally:
        source.close()


def _pydicom_path(record: Any, monkeypatch: pytest.MonkeyPatch) -> list[Any] | type[Exception]:
    """What the pydicom path gives (its records, or the type of its error)."""
    with monkeypatch.context() as m:
        m.setenv("FASTVOL_SCANNER", "0")
        try:
            return expand_frames(record)
        except FastvolError as exc:
            return type(exc)


def _raw(record: Any) -> list[Any] | None:
    """The raw path's records, or None when it refuses the file."""
    try:
        return expand_raw(record, _data(record))
    except (Unparsed, Unsure):
        return None


def _assert_equal(raw: list[Any], slow: list[Any], name: str) -> None:
    assert len(raw) == len(slow), name
    for a, b in zip(raw, slow):
        if a != b:
            da, db = a.as_dict(), b.as_dict()
            pytest.fail(f"{name} frame {a.frame}: " + repr({k: (da[k], db[k]) for k in da if da[k] != db[k]}))


def test_wanted_vrs_are_the_dictionary_s() -> None:
    from pydicom.datadict import dictionary_VR

    from fastvol.segmentation.read import _WANTED as SEG_WANTED

    for table in (WANTED, SEG_WANTED):
        for tag, vr in table.items():
            assert dictionary_VR(tag) == vr.decode(), f"{tag:08X}"


# ------------------------------------------------------------------------------------ corpus


def test_corpus_multiframe_files_equal_pydicom(corpus: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every file of the corpus that expands into frames: raw records == pydicom path records;
    the raw path refuses only big endian files and files the pydicom path refuses too."""
    paths = sorted(str(p) for p in corpus.rglob("*") if p.is_file() and p.suffix.lower() not in
                   (".json", ".md", ".nii", ".gz", ".nrrd", ".txt", ".bval", ".bvec", ".py", ".csv"))  # fmt: skip
    records = [r for r in read_headers([LocalFile(p) for p in paths]) if not isinstance(r, Exception)]
    compared = 0
    for record in records:
        if not record.has_pixels or not needs_expansion(record):
            continue
        slow = _pydicom_path(record, monkeypatch)
        raw = _raw(record) if record.pixel_offset > 0 else None
        if raw is None:
            assert record.transfer_syntax == "1.2.840.10008.1.2.2" or not isinstance(slow, list), record.path
            continue
        assert isinstance(slow, list), record.path
        _assert_equal(raw, slow, record.path)
        compared += 1
    assert compared >= 30  # the enhanced MR of four vendors, legacy converted CT, RT dose, SEG


# ------------------------------------------------------------------------- generated files


def _seq(**attributes: Any) -> list[Dataset]:
    return fe._seq(**attributes)


def _orientation_per_frame(i: int, item: Dataset) -> None:
    iop = [1, 0, 0, 0, 1, 0] if i % 2 else [0.0, 1.0, 0.0, 0.0, 0.0, -1.0]
    item.PlaneOrientationSequence = _seq(ImageOrientationPatient=iop)


def _measures_in_frames(i: int, item: Dataset) -> None:
    item.PixelMeasuresSequence = _seq(PixelSpacing=[0.5 + i / 10, 0.5], SliceThickness=1 + i,
                                      SpacingBetweenSlices="2.5")  # fmt: skip


def _drop_shared(shared: Dataset) -> None:
    for keyword in ("PixelMeasuresSequence", "PlaneOrientationSequence", "PixelValueTransformationSequence",
                    "MREchoSequence"):  # fmt: skip
        if keyword in shared:
            delattr(shared, keyword)


def _missing_groups(i: int, item: Dataset) -> None:
    if i % 2:
        del item.PlanePositionSequence
    if i % 3 == 0:
        del item.FrameContentSequence


def _empty_values(i: int, item: Dataset) -> None:
    content = item.FrameContentSequence[0]
    content.StackID = ""
    content.TemporalPositionIndex = None
    content.FrameAcquisitionNumber = None
    content.FrameAcquisitionDateTime = "" if i % 2 else "20240115093000.5 "
    item.PixelMeasuresSequence = _seq(SliceThickness=None, PixelSpacing=None, SpacingBetweenSlices="")
    item.PixelValueTransformationSequence = _seq(RescaleSlope=None, RescaleIntercept="")
    item.MREchoSequence = _seq(EffectiveEchoTime=None)
    if i % 3 == 0:
        item.PlaneOrientationSequence = []  # an empty sequence: the shared one counts


def _converted(i: int, item: Dataset) -> None:
    item.UnassignedPerFrameConvertedAttributesSequence = _seq(
        InstanceNumber=str(i + 1) if i % 2 else " ", AcquisitionTime="101010.5 " if i % 3 else "",
        TriggerTime=f"{12.5 * i}", AcquisitionNumber="3\\4", EchoNumbers=str(1 + i % 2),
        EchoTime="4.2" if i % 2 else None, TemporalPositionIdentifier=f" {i % 3}",
        DiffusionBValue=float(i),
    )  # fmt: skip


def _converted_shared(shared: Dataset) -> None:
    shared.UnassignedSharedConvertedAttributesSequence = _seq(
        InstanceNumber="7", AcquisitionTime="090000", TriggerTime="", EchoTime="9.5", EchoNumbers="2",
        TemporalPositionIdentifier="5", AcquisitionNumber="2.0",
    )  # fmt: skip


def _units(code: str, slope: float) -> list[Dataset]:
    units = Dataset()
    units.CodeValue, units.CodingSchemeDesignator, units.CodeMeaning = code, "UCUM", f"{code} units"
    mapping = Dataset()
    mapping.MeasurementUnitsCodeSequence = [units]
    mapping.RealWorldValueSlope, mapping.RealWorldValueIntercept = slope, 0.0
    mapping.LUTLabel = "map"
    return [mapping]


def _units_shared(shared: Dataset) -> None:
    shared.RealWorldValueMappingSequence = _units("mm2/s", 1.0)


def _units_frames(i: int, item: Dataset) -> None:
    if i % 2:
        item.RealWorldValueMappingSequence = _units("ms", 0.5 * i)
    item.CardiacSynchronizationSequence = _seq(NominalCardiacTriggerDelayTime=10.0 * i)


def _odd_strings(i: int, item: Dataset) -> None:
    item.PlanePositionSequence[0]["ImagePositionPatient"] = DataElement(
        0x00200032, "DS", [" 1.5", "1e1", f"{-i}.250 "])
    item.FrameContentSequence[0].StackID = "é" if i % 2 else " 2 "  # Latin-1 (ISO_IR 100)


def _unusable_numbers(i: int, item: Dataset) -> None:
    # Present but unusable: several slopes, one spacing value, a blank intercept item. Both paths
    # give the markers the plan refuses (convert.INVALID_SCALE / INVALID_SPACING), not absent.
    item.PixelValueTransformationSequence = _seq(RescaleSlope="1", RescaleIntercept="0")
    transform = item.PixelValueTransformationSequence[0]
    transform["RescaleSlope"]._value = ["2\\3", "1", " 1.5 "][i % 3]
    transform["RescaleIntercept"]._value = ["0\\", "", "-4"][i % 3]
    item.PixelMeasuresSequence = _seq(PixelSpacing="1\\1")
    item.PixelMeasuresSequence[0]["PixelSpacing"]._value = ["0.5", "\\", "0.5\\0.6", " "][i % 4]


def _private(i: int, item: Dataset) -> None:
    block = item.private_block(0x0021, "FASTVOL TEST", create=True)
    inner = Dataset()
    inner.add_new(0x00211010, "LO", f"frame {i}")
    inner.add_new(0x00180050, "DS", "99")  # a wanted tag inside a private sequence: not read
    block.add_new(0x10, "SQ", [inner, Dataset()])
    block.add_new(0x11, "OB", b"\xfe\xff\xdd\xe0\x00\x00\x00\x00")  # delimiter bytes in a value


def _extended_offsets(ds: Dataset) -> None:
    ds.ExtendedOffsetTable = np.arange(int(ds.NumberOfFrames), dtype="<u8").tobytes()
    ds.ExtendedOffsetTableLengths = np.full(int(ds.NumberOfFrames), 8, dtype="<u8").tobytes()


Edit = Callable[..., None] | None
CASES: dict[str, dict[str, Any]] = {
    "plain": {},
    "orientation per frame": {"edit_frame": _orientation_per_frame},
    "groups per frame, none shared": {"edit_frame": _measures_in_frames, "edit_shared": _drop_shared},
    "missing groups": {"edit_frame": _missing_groups, "edit_shared": _drop_shared},
    "empty values": {"edit_frame": _empty_values},
    "converted attributes": {"edit_frame": _converted, "edit_shared": _converted_shared, "legacy_converted": True,
                             "modality": "CT"},
    "shared converted only": {"edit_shared": _converted_shared, "legacy_converted": True},
    "units and cardiac": {"edit_frame": _units_frames, "edit_shared": _units_shared},
    "odd strings": {"edit_frame": _odd_strings},
    "private groups": {"edit_frame": _private},
    "extended offset table": {"edit_dataset": _extended_offsets},
    "temporal 4D": {"dimension": "TemporalPositionIndex", "n_volumes": 3},
    "echo 4D": {"dimension": "EchoTime", "n_volumes": 2},
    "diffusion 4D": {"dimension": "Diffusion", "n_volumes": 4},
    "per-frame rescale": {"slopes": np.linspace(0.5, 2.0, 6), "intercepts": np.arange(6.0)},
    "unusable numbers": {"edit_frame": _unusable_numbers, "edit_shared": _drop_shared},
    "CT": {"modality": "CT"},
}


@pytest.mark.parametrize("undefined", [False, True], ids=["defined", "undefined"])
@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian], ids=["explicit", "implicit"])
@pytest.mark.parametrize("case", list(CASES))
def test_generated_enhanced_equal_pydicom(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str, syntax: str,
                                          undefined: bool) -> None:  # fmt: skip
    w = fe.write_enhanced(tmp_path, n_slices=6, transfer_syntax=syntax, undefined_lengths=undefined,
                          shuffle_frames=True, **CASES[case])  # fmt: skip
    (path,) = w.paths
    record = read_header(path)
    raw = _raw(record)
    assert raw is not None, "the raw path refused a file it reads"
    slow = _pydicom_path(record, monkeypatch)
    assert isinstance(slow, list)
    _assert_equal(raw, slow, case)
    assert expand_frames(record) == raw


# --------------------------------------------------------------------------------- fallback


def _utf8_stack(i: int, item: Dataset) -> None:
    item.FrameContentSequence[0].StackID = "é"


def _charset_inside(i: int, item: Dataset) -> None:
    item.SpecificCharacterSet = "ISO_IR 100"


def _thickness_as_lo(i: int, item: Dataset) -> None:
    item.PixelMeasuresSequence = [Dataset()]
    item.PixelMeasuresSequence[0].add_new(0x00180050, "LO", "2.50")  # pydicom converts by the file's VR


REFUSED: dict[str, dict[str, Any]] = {
    "UTF-8 text": {"edit_frame": _utf8_stack, "edit_dataset": lambda ds: setattr(ds, "SpecificCharacterSet", "ISO_IR 192")},
    "character set inside a frame": {"edit_frame": _charset_inside},
    "VR other than the dictionary's": {"edit_frame": _thickness_as_lo},
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_refused_files_take_the_pydicom_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str) -> None:
    """Files the raw walk cannot read exactly: it refuses them, and expand_frames gives the
    pydicom path's records."""
    (path,) = fe.write_enhanced(tmp_path, n_slices=4, **REFUSED[case]).paths
    record = read_header(path)
    with pytest.raises((Unparsed, Unsure)):
        expand_raw(record, _data(record))
    slow = _pydicom_path(record, monkeypatch)
    assert isinstance(slow, list) and len(slow) == 4
    assert expand_frames(record) == slow


@pytest.mark.parametrize("undefined", [False, True], ids=["defined", "undefined"])
@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian], ids=["explicit", "implicit"])
def test_damaged_groups_read_as_pydicom_or_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, syntax: str,
                                                   undefined: bool) -> None:  # fmt: skip
    """Random bytes changed in the functional groups: wherever the raw path gives records, they
    are the pydicom path's (and it never raises anything but a refusal)."""
    w = fe.write_enhanced(tmp_path / "src", n_slices=4, transfer_syntax=syntax, undefined_lengths=undefined,
                          edit_frame=_units_frames, edit_shared=_converted_shared)  # fmt: skip
    original = Path(w.paths[0]).read_bytes()
    ds = pydicom.dcmread(w.paths[0], stop_before_pixels=True)
    start = original.find(b"\x00\x52\x29\x92")  # SharedFunctionalGroupsSequence, then the per-frame groups
    stop = original.find(b"\xe0\x7f\x10\x00")
    assert 0 < start < stop and "PerFrameFunctionalGroupsSequence" in ds
    rng = random.Random(f"{syntax}{undefined}")
    answered = 0
    for k in range(60):
        data = bytearray(original)
        for _ in range(rng.choice((1, 2, 4))):
            data[rng.randrange(start, stop)] = rng.choice((0, 1, 0x20, 0x2E, 0x5C, 0xFF, rng.randrange(256)))
        path = tmp_path / f"m{k}.dcm"
        path.write_bytes(bytes(data))
        try:
            record = read_header(str(path))
        except FastvolError:
            continue
        if record.pixel_offset <= 0 or not needs_expansion(record):
            continue
        try:
            raw = expand_raw(record, _data(record))
        except (Unparsed, Unsure):
            continue
        slow = _pydicom_path(record, monkeypatch)
        assert isinstance(slow, list), f"mutation {k}: pydicom path raised {slow}"
        _assert_equal(raw, slow, f"mutation {k}")
        answered += 1
    assert answered > 10
