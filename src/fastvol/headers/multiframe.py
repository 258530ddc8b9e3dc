"""Read per-frame headers: a multi-frame file becomes one :class:`HeaderRecord` per frame.

Enhanced CT/MR/PET objects (and their Legacy Converted forms) carry the geometry and values of
each frame in the Shared and Per-Frame Functional Groups; a frame's attributes are the shared
ones overridden by its own. RT Dose grids carry one ImagePositionPatient plus
GridFrameOffsetVector along the normal. After expansion every frame is placed, sorted and split
into volumes by exactly the same geometry code as classic single-frame slices: frames are
ordered by geometry, never by their stored order.

The functional groups are read from ``record.source`` (the data set's bytes before its pixel
data, in one read); no path is opened here. They are read from the raw bytes
(:mod:`.multiframe_raw`, equal records) whenever that can be done exactly, else, and always with
``FASTVOL_SCANNER=0``, through pydicom (this module, the reference).
"""

from __future__ import annotations

import io
import os
from typing import Any

from ..dicom import HeaderRecord
from ..errors import CorruptFileError, FastvolError
from ..sources import ByteSource, LocalFile
from .convert import Unsure, _float, _floats, _int, _scale, _spacing, _text
from .frame_records import extended_offsets, grid_frames, replace, unplaced_frames
from .groups import Unparsed

_RLE_LOSSLESS = "1.2.840.10008.1.2.5"

__all__ = ["expand_frames", "needs_expansion"]


def needs_expansion(record: HeaderRecord) -> bool:
    """True for files holding several frames (or enhanced single-frame files)."""
    return record.needs_expansion


def _item(ds: Any, keyword: str) -> Any:
    seq = ds.get(keyword) if ds is not None else None
    if seq is None or len(seq) == 0:
        return None
    return seq[0]


def _lookup(groups: tuple[Any, ...], sequence: str, keyword: str) -> Any:
    """Attribute ``keyword`` of the first item of ``sequence``, per-frame group first, then shared."""
    for group in groups:
        item = _item(group, sequence)
        if item is not None and keyword in item:
            return item.get(keyword)
    return None


def _raw_enabled() -> bool:
    # FASTVOL_SCANNER=0 reads every header through pydicom, the per-frame groups included.
    return os.environ.get("FASTVOL_SCANNER", "1") != "0"


def expand_frames(record: HeaderRecord) -> list[HeaderRecord]:
    """One record per frame of a multi-frame file, each with that frame's geometry and values.

    Raises
    ------
    CorruptFileError
        The functional groups cannot be read or disagree with NumberOfFrames.
    """
    _check_declared_frames(record)
    source: ByteSource = record.source if record.source is not None else LocalFile(record.path)
    try:
        if record.pixel_offset > 0:
            # The data set up to the pixel data's value: pydicom stops at the PixelData header.
            data = source.read(0, record.pixel_offset)
            if _raw_enabled():
                frames = _expand_raw(record, data)
                if frames is not None:
                    return frames
            import pydicom

            with io.BytesIO(data) as fp:
                ds = pydicom.dcmread(fp, stop_before_pixels=True, force=True)
        else:  # deflated: inflated in bounded chunks up to the pixel data
            from .pydicom_reader import inflate_dataset

            ds = inflate_dataset(source)[0]
    except Exception as exc:
        raise CorruptFileError(f"{record.path}: cannot read its per-frame headers ({exc})",
                               files=[record.path]) from exc  # fmt: skip
    finally:
        source.close()
    try:  # values convert lazily: garbage VRs and values raise here, not in dcmread
        return _frames_of(record, ds)
    except FastvolError:
        raise
    except Exception as exc:
        raise CorruptFileError(
            f"{record.path}: cannot read its per-frame headers ({type(exc).__name__}: {exc})",
            files=[record.path],
        ) from exc


def _expand_raw(record: HeaderRecord, data: bytes) -> list[HeaderRecord] | None:
    """:func:`.multiframe_raw.expand_raw`, or ``None`` where the pydicom path must read the file."""
    from .multiframe_raw import expand_raw

    try:
        return expand_raw(record, data)
    except (Unparsed, Unsure):
        return None
    except Exception:  # noqa: BLE001 - a file the walk misjudged: the reference path reads it
        return None


def _frames_of(record: HeaderRecord, ds: Any) -> list[HeaderRecord]:
    """One record per frame from the data set read up to the pixel data."""
    n = record.number_of_frames
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    shared = _item(ds, "SharedFunctionalGroupsSequence")
    eot = extended_offsets(ds.get("ExtendedOffsetTable"), ds.get("ExtendedOffsetTableLengths"))
    if eot is not None:
        record = replace(record, extended_offsets=eot)
    if per_frame is not None:
        if len(per_frame) != n:
            raise CorruptFileError(
                f"{record.path}: {len(per_frame)} per-frame functional groups for "
                f"NumberOfFrames {n}", files=[record.path],
            )  # fmt: skip
        return [_enhanced_frame(record, i, (per_frame[i], shared)) for i in range(n)]
    offsets = ds.get("GridFrameOffsetVector")
    if offsets is not None and record.image_position and record.image_orientation:
        values = [float(offsets)] if isinstance(offsets, (int, float, str)) else list(offsets)
        return grid_frames(record, [float(v) for v in values], _float(ds.get("DoseGridScaling")),
                            _text(ds.get("DoseUnits")))  # fmt: skip
    return unplaced_frames(record)


def _check_declared_frames(record: HeaderRecord) -> None:
    """Refuse NumberOfFrames the file cannot hold, before making a record per frame."""
    n = record.number_of_frames
    available = record.file_size - max(record.pixel_offset, 0)
    if record.is_encapsulated:
        # Every frame needs an item header and a codestream: at least an RLE header (64 bytes)
        # or a JPEG / J2K start, frame header and end marker (>= 20 bytes).
        needed = n * (8 + (64 if record.transfer_syntax == _RLE_LOSSLESS else 20))
    elif record.pixel_length >= 0:
        bits = max(record.bits_allocated, 1)
        needed = (record.rows * record.columns * record.samples_per_pixel * bits * n + 7) // 8
        available = min(available, record.pixel_length)
    else:
        return  # deflated: sizes are checked when pydicom inflates the pixels
    if n > 1 and needed > available:
        raise CorruptFileError(
            f"{record.path}: NumberOfFrames {n} of {record.rows}x{record.columns} needs {needed} "
            f"bytes of pixel data but the file holds {available}", files=[record.path],
        )  # fmt: skip


def _enhanced_frame(record: HeaderRecord, index: int, groups: tuple[Any, ...]) -> HeaderRecord:
    def get(sequence: str, keyword: str) -> Any:
        return _lookup(groups, sequence, keyword)

    def unassigned(keyword: str) -> Any:
        # Legacy Converted objects keep classic per-frame attributes (TemporalPositionIdentifier,
        # InstanceNumber, ...) in the Unassigned Per-Frame / Shared Converted Attributes.
        return (get("UnassignedPerFrameConvertedAttributesSequence", keyword)
                if get("UnassignedPerFrameConvertedAttributesSequence", keyword) is not None
                else get("UnassignedSharedConvertedAttributesSequence", keyword))  # fmt: skip

    def first(*values: Any) -> Any:
        return next((v for v in values if v is not None), None)

    position = _floats(get("PlanePositionSequence", "ImagePositionPatient"), 3)
    orientation = _floats(get("PlaneOrientationSequence", "ImageOrientationPatient"), 6)
    # As the file's own: present but unusable is a marker the plan refuses, not absent.
    spacing = _spacing(get("PixelMeasuresSequence", "PixelSpacing"))
    slope = _scale(get("PixelValueTransformationSequence", "RescaleSlope"))
    intercept = _scale(get("PixelValueTransformationSequence", "RescaleIntercept"))
    dims = get("FrameContentSequence", "DimensionIndexValues")
    dimension_index: tuple[int, ...] = ()
    if dims is not None:
        values = [dims] if isinstance(dims, int) else list(dims)
        dimension_index = tuple(int(v) for v in values)
    gradient = _floats(
        _lookup(tuple(_item(g, "MRDiffusionSequence") for g in groups),
                "DiffusionGradientDirectionSequence", "DiffusionGradientOrientation"), 3,
    )  # fmt: skip
    trigger = get("CardiacSynchronizationSequence", "NominalCardiacTriggerDelayTime")
    units = _real_world_units(groups)
    acquired = get("FrameContentSequence", "FrameAcquisitionDateTime")
    return replace(
        record,
        frame=index,
        image_position=position,  # type: ignore[arg-type]
        image_orientation=orientation if orientation is not None else record.image_orientation,  # type: ignore[arg-type]
        pixel_spacing=spacing if spacing is not None else record.pixel_spacing,  # type: ignore[arg-type]
        slice_thickness=_float(get("PixelMeasuresSequence", "SliceThickness")) or record.slice_thickness,
        spacing_between_slices=(_float(get("PixelMeasuresSequence", "SpacingBetweenSlices"))
                                or record.spacing_between_slices),  # fmt: skip
        rescale_slope=slope if slope is not None else record.rescale_slope,
        rescale_intercept=intercept if intercept is not None else record.rescale_intercept,
        temporal_position_identifier=_int(first(
            get("FrameContentSequence", "TemporalPositionIndex"),
            unassigned("TemporalPositionIdentifier"))),
        trigger_time=_float(first(trigger, unassigned("TriggerTime"), record.trigger_time)),
        acquisition_number=_int(first(get("FrameContentSequence", "FrameAcquisitionNumber"),
                                      unassigned("AcquisitionNumber"))),
        acquisition_time=(_text(acquired) if acquired is not None
                          else _text(first(unassigned("AcquisitionTime"), record.acquisition_time))),
        instance_number=_int(first(unassigned("InstanceNumber"), record.instance_number)),
        echo_number=_int(unassigned("EchoNumbers")),
        echo_time=_float(first(get("MREchoSequence", "EffectiveEchoTime"), unassigned("EchoTime"))),
        diffusion_b_value=_float(first(get("MRDiffusionSequence", "DiffusionBValue"),
                                       unassigned("DiffusionBValue"))),
        diffusion_gradient=gradient,  # type: ignore[arg-type]
        dimension_index=dimension_index,
        stack_id=_text(get("FrameContentSequence", "StackID")),
        units=units if units is not None else record.units,
    )


def _real_world_units(groups: tuple[Any, ...]) -> tuple[str, str, float | None, float | None] | None:
    """(UCUM code, meaning, slope, intercept) of the frame's first RealWorldValueMapping.

    Said in ``meta``, not applied: a map's stored values are what the file holds (its float
    values already are the quantity when slope 1 and intercept 0, as highdicom writes them).
    """
    mapping = next((m for m in (_item(g, "RealWorldValueMappingSequence") for g in groups)
                    if m is not None), None)  # fmt: skip
    if mapping is None:
        return None
    code = _item(mapping, "MeasurementUnitsCodeSequence")
    value = _text(code.get("CodeValue")) if code is not None else ""
    meaning = _text(code.get("CodeMeaning")) if code is not None else ""
    return (value, meaning, _float(mapping.get("RealWorldValueSlope")),
            _float(mapping.get("RealWorldValueIntercept")))  # fmt: skip
