"""Read a DICOM Segmentation: its segments, one plain fact row per frame, and its frames' pixels.

The header is parsed once with pydicom from the bytes before the pixel data (read through the
file's :class:`~fastvol.sources.ByteSource`); what later stages need is kept as plain values and
arrays (:class:`SegFile`), so alignment (:mod:`.align`) never sees a Dataset. Uncompressed
frames are read straight from their offset and unpacked in one pass (1-bit frames are packed
across byte boundaries); compressed ones go through pydicom's decoders.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..dicom import TS, HeaderRecord
from ..errors import CorruptFileError, FastvolError, UnsupportedError
from ..headers import read_header
from ..headers.convert import _float, _floats, _int, _text
from ..sources import ByteSource

__all__ = ["SEG_SOP_CLASS", "SegFile", "read_frames", "read_seg", "referenced_series"]

#: Segmentation Storage.
SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"


@dataclass(frozen=True, eq=False)
class SegFile:
    """What a SEG says, as plain values; per-frame facts as arrays in stored frame order.

    Attributes
    ----------
    segment_numbers
        ``(frames,)`` ReferencedSegmentNumber of each frame.
    positions
        ``(frames, 3)`` ImagePositionPatient of each frame, LPS mm (NaN where absent).
    source_uids, source_frames
        Per frame, the ReferencedSOPInstanceUID of its first source image (``""`` when none)
        and its ReferencedFrameNumber (``0`` when none).
    segments
        One dict per segment, in SegmentSequence order: ``number``, ``label``,
        ``algorithm_type``, ``algorithm_name``, ``category`` and ``type`` (each a dict of
        ``value``, ``scheme``, ``meaning``), ``cielab`` (RecommendedDisplayCIELabValue as stored)
        and ``rgb`` (the same colour in sRGB, 0-255), ``description``.
    referenced_series
        SeriesInstanceUIDs of ReferencedSeriesSequence (the series the SEG segments).
    """

    path: str
    record: HeaderRecord = field(repr=False)
    segmentation_type: str
    max_fractional: int
    rows: int
    columns: int
    orientation: tuple[float, ...] | None
    pixel_spacing: tuple[float, float] | None
    slice_thickness: float | None
    frame_of_reference_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    segments: tuple[dict[str, Any], ...]
    referenced_series: tuple[str, ...]
    segment_numbers: np.ndarray
    positions: np.ndarray
    source_uids: tuple[str, ...]
    source_frames: np.ndarray

    @property
    def n_frames(self) -> int:
        """Frames stored."""
        return int(self.segment_numbers.shape[0])


def _item(ds: Any, keyword: str) -> Any:
    seq = ds.get(keyword) if ds is not None else None
    return seq[0] if seq else None


def _lookup(groups: tuple[Any, ...], sequence: str, keyword: str) -> Any:
    for group in groups:
        item = _item(group, sequence)
        if item is not None and keyword in item:
            return item.get(keyword)
    return None


def _code(ds: Any, keyword: str) -> dict[str, str] | None:
    item = _item(ds, keyword)
    if item is None:
        return None
    return {"value": _text(item.get("CodeValue") or item.get("LongCodeValue") or item.get("URNCodeValue")),
            "scheme": _text(item.get("CodingSchemeDesignator")), "meaning": _text(item.get("CodeMeaning"))}  # fmt: skip


def cielab_to_rgb(lab: tuple[int, int, int]) -> tuple[int, int, int]:
    """A DICOM scaled CIELab triple (0..65535 each, PS3.3 C.10.7.1.1) as sRGB 0-255 (D65)."""
    L = lab[0] * 100.0 / 65535.0
    a = lab[1] * 255.0 / 65535.0 - 128.0
    b = lab[2] * 255.0 / 65535.0 - 128.0
    fy = (L + 16.0) / 116.0
    f = np.array([fy + a / 500.0, fy, fy - b / 200.0])
    xyz = np.where(f > 6.0 / 29.0, f**3, 3 * (6.0 / 29.0) ** 2 * (f - 4.0 / 29.0))
    xyz *= np.array([0.95047, 1.0, 1.08883])
    m = np.array([[3.2406, -1.5372, -0.4986], [-0.9689, 1.8758, 0.0415], [0.0557, -0.2040, 1.0570]])
    lin = np.clip(m @ xyz, 0.0, 1.0)
    srgb = np.where(lin <= 0.0031308, 12.92 * lin, 1.055 * lin ** (1 / 2.4) - 0.055)
    return tuple(int(round(v)) for v in np.clip(srgb, 0, 1) * 255)  # type: ignore[return-value]


def _segment(item: Any) -> dict[str, Any]:
    lab = item.get("RecommendedDisplayCIELabValue")
    cielab = tuple(int(v) for v in lab) if lab is not None and len(lab) == 3 else None
    return {
        "number": _int(item.get("SegmentNumber")),
        "label": _text(item.get("SegmentLabel")),
        "description": _text(item.get("SegmentDescription")),
        "algorithm_type": _text(item.get("SegmentAlgorithmType")),
        "algorithm_name": _text(item.get("SegmentAlgorithmName")),
        "category": _code(item, "SegmentedPropertyCategoryCodeSequence"),
        "type": _code(item, "SegmentedPropertyTypeCodeSequence"),
        "cielab": cielab,
        "rgb": cielab_to_rgb(cielab) if cielab is not None else None,  # type: ignore[arg-type]
    }


def _dataset(record: HeaderRecord, source: ByteSource) -> Any:
    """The data set before the pixel data (deflated files: through pydicom's inflater)."""
    import pydicom

    if record.pixel_offset > 0:
        with io.BytesIO(source.read(0, record.pixel_offset)) as fp:
            return pydicom.dcmread(fp, stop_before_pixels=True, force=True)
    from ..headers.pydicom_reader import inflate_dataset

    return inflate_dataset(source)[0]


def read_seg(source: ByteSource) -> SegFile:
    """Read a SEG's header and per-frame facts (no pixels).

    Raises
    ------
    InputError
        The file is not a Segmentation (a :class:`~fastvol.NotDicomError` when not DICOM).
    UnsupportedError
        LABELMAP segmentations, or frames without per-frame functional groups.
    CorruptFileError
        Functional groups that disagree with NumberOfFrames or cannot be read.
    """
    record = read_header(source)
    path = record.path
    if record.sop_class_uid != SEG_SOP_CLASS:
        from ..errors import InputError

        raise InputError(f"{path}: not a DICOM Segmentation (SOPClassUID {record.sop_class_uid!r}, "
                         f"Modality {record.modality!r}); load images with fastvol.load",
                         files=[path])  # fmt: skip
    try:
        ds = _dataset(record, source)
        return _seg_file(record, ds)
    except FastvolError:
        raise
    except Exception as exc:  # pydicom and value conversion raise many types on garbage
        raise CorruptFileError(f"{path}: cannot read its segmentation header "
                               f"({type(exc).__name__}: {exc})", files=[path]) from exc  # fmt: skip
    finally:
        source.close()


def _seg_file(record: HeaderRecord, ds: Any) -> SegFile:
    path = record.path
    seg_type = _text(ds.get("SegmentationType")).upper()
    if seg_type not in ("BINARY", "FRACTIONAL"):
        raise UnsupportedError(f"{path}: SegmentationType {seg_type or 'absent'!r} is not supported "
                               f"(BINARY or FRACTIONAL)", files=[path])  # fmt: skip
    n = record.number_of_frames
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    shared = _item(ds, "SharedFunctionalGroupsSequence")
    if per_frame is None:
        raise UnsupportedError(f"{path}: segmentation without per-frame functional groups "
                               f"(tiled or single-frame form) is not supported", files=[path])  # fmt: skip
    if len(per_frame) != n:
        raise CorruptFileError(f"{path}: {len(per_frame)} per-frame functional groups for "
                               f"NumberOfFrames {n}", files=[path])  # fmt: skip
    numbers = np.empty(n, dtype=np.int64)
    positions = np.full((n, 3), np.nan)
    uids: list[str] = []
    ref_frames = np.zeros(n, dtype=np.int64)
    shared_number = _lookup((shared,), "SegmentIdentificationSequence", "ReferencedSegmentNumber")
    for i, frame in enumerate(per_frame):
        groups = (frame, shared)
        number = _lookup(groups, "SegmentIdentificationSequence", "ReferencedSegmentNumber")
        if number is None:
            number = shared_number
        if number is None:
            raise CorruptFileError(f"{path}: frame {i + 1} names no segment "
                                   f"(ReferencedSegmentNumber)", files=[path])  # fmt: skip
        numbers[i] = int(number)
        pos = _floats(_lookup(groups, "PlanePositionSequence", "ImagePositionPatient"), 3)
        if pos is not None:
            positions[i] = pos
        uid, ref_frame = "", 0
        derivation = _item(frame, "DerivationImageSequence")
        source_item = _item(derivation, "SourceImageSequence") if derivation is not None else None
        if source_item is not None:
            uid = _text(source_item.get("ReferencedSOPInstanceUID"))
            value = source_item.get("ReferencedFrameNumber")
            if value is not None:
                value = value[0] if not isinstance(value, (int, str)) else value
                ref_frame = int(value)
        uids.append(uid)
        ref_frames[i] = ref_frame
    first = per_frame[0] if n else None
    orientation = _floats(_lookup((first, shared), "PlaneOrientationSequence", "ImageOrientationPatient"), 6)
    spacing = _floats(_lookup((first, shared), "PixelMeasuresSequence", "PixelSpacing"), 2)
    thickness = _float(_lookup((first, shared), "PixelMeasuresSequence", "SliceThickness"))
    segments = tuple(_segment(item) for item in ds.get("SegmentSequence") or ())
    referenced = tuple(_text(item.get("SeriesInstanceUID")) for item in ds.get("ReferencedSeriesSequence") or ())
    known = {s["number"] for s in segments}
    unknown = sorted(set(numbers.tolist()) - known)
    if unknown:
        raise CorruptFileError(f"{path}: frames reference segment(s) {unknown} that SegmentSequence "
                               f"does not describe (it has {sorted(known)})", files=[path])  # fmt: skip
    return SegFile(
        path=path, record=record, segmentation_type=seg_type,
        max_fractional=int(ds.get("MaximumFractionalValue") or 255) if seg_type == "FRACTIONAL" else 1,
        rows=record.rows, columns=record.columns,
        orientation=orientation, pixel_spacing=spacing, slice_thickness=thickness,  # type: ignore[arg-type]
        frame_of_reference_uid=record.frame_of_reference_uid,
        series_instance_uid=record.series_instance_uid, sop_instance_uid=record.sop_instance_uid,
        segments=segments, referenced_series=referenced, segment_numbers=numbers,
        positions=positions, source_uids=tuple(uids), source_frames=ref_frames,
    )  # fmt: skip


def referenced_series(source: ByteSource) -> tuple[str, ...]:
    """SeriesInstanceUIDs a SEG's ReferencedSeriesSequence names (header only)."""
    return read_seg(source).referenced_series


def read_frames(seg: SegFile, source: ByteSource) -> np.ndarray:
    """Every stored frame of ``seg`` as ``(frames, rows, columns)`` uint8 (0/1, or 0..max
    fractional value), in stored order.

    Raises
    ------
    CorruptFileError
        Pixel data shorter than NumberOfFrames x Rows x Columns.
    UnsupportedError
        BitsAllocated other than 1 (binary) or 8 (fractional).
    """
    rec = seg.record
    n, rows, columns = seg.n_frames, seg.rows, seg.columns
    count = n * rows * columns
    bits = rec.bits_allocated
    if bits not in (1, 8):
        raise UnsupportedError(f"{seg.path}: SEG with BitsAllocated {bits} is not supported (1 or 8)",
                               files=[seg.path])  # fmt: skip
    try:
        if rec.transfer_syntax in TS.UNCOMPRESSED and rec.pixel_offset >= 0 and not rec.is_encapsulated:
            nbytes = (count * bits + 7) // 8
            if rec.pixel_length < nbytes or rec.pixel_offset + nbytes > rec.file_size:
                raise CorruptFileError(
                    f"{seg.path}: pixel data holds {min(rec.pixel_length, rec.file_size - rec.pixel_offset)} "
                    f"bytes, {n} frames of {rows}x{columns} at {bits} bit(s) need {nbytes}", files=[seg.path],
                )  # fmt: skip
            raw = np.empty(nbytes, dtype=np.uint8)
            source.read_into([(rec.pixel_offset, nbytes)], [raw])
            if bits == 1:
                out = np.unpackbits(raw, count=count, bitorder="little")
            else:
                out = raw
            return out.reshape(n, rows, columns)
        return _frames_via_pydicom(seg, source)
    finally:
        source.close()


def _frames_via_pydicom(seg: SegFile, source: ByteSource) -> np.ndarray:
    """Compressed or deflated pixel data: pydicom's decoders, frames as stored."""
    import pydicom

    from ..headers.pydicom_reader import open_source

    try:
        with open_source(source) as fp:
            ds = pydicom.dcmread(fp, force=True)
            pixels = np.asarray(ds.pixel_array)
    except FastvolError:
        raise
    except Exception as exc:
        from ..errors import DecodeError

        raise DecodeError(f"{seg.path}: pixel data cannot be decoded ({type(exc).__name__}: {exc}); "
                          f"transfer syntax {seg.record.transfer_syntax}", files=[seg.path]) from exc  # fmt: skip
    return pixels.reshape(seg.n_frames, seg.rows, seg.columns).astype(np.uint8, copy=False)

