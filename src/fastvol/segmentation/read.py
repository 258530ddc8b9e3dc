"""Read a DICOM Segmentation: its segments, one plain fact row per frame, and its frames' pixels.

The header is parsed once with pydicom from the bytes before the pixel data (read through the
file's :class:`~fastvol.sources.ByteSource`); what later stages need is kept as plain values and
arrays (:class:`SegFile`), so alignment (:mod:`.align`) never sees a Dataset. Uncompressed
frames are read straight from their offset and unpacked in one pass (1-bit frames are packed
across byte boundaries); compressed ones go through pydicom's decoders.
"""

from __future__ import annotations

import io
import struct
from dataclasses import field
from typing import Any

import numpy as np

from .._frozen import frozen
from ..dicom import TS, HeaderRecord
from ..errors import CorruptFileError, FastvolError, UnsupportedError
from ..headers import read_header
from ..headers.convert import _float, _floats, _int, _text
from ..headers.groups import Unparsed, Walker, value
from ..headers.multiframe import _item, _lookup
from ..headers.references import LABEL_MAP_SEG_SOP_CLASS, SEG_SOP_CLASS

#: Label Map Segmentation Storage (DICOM 2024): pixel values are segment numbers.
from ..pixels import unpack_bits
from ..sources import ByteSource

__all__ = ["SEG_SOP_CLASS", "Frames", "SegFile", "read_frames", "read_seg", "referenced_series"]

#: The per-frame groups' raw items and the walker that reads them further.
RawFrames = tuple[Walker, list[dict[int, Any]]]



@frozen(eq=False)
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


def _dataset_split(record: HeaderRecord, source: ByteSource) -> tuple[Any, RawFrames | None]:
    """The data set before the per-frame groups through pydicom, and the per-frame groups'
    items walked from their raw bytes with their walker (``None`` when they cannot be, or are
    absent).

    pydicom parses a sequence of undefined length (dcmqi writes them) as soon as it reads it, a
    Dataset per item: stopping before it and walking its bytes here keeps a SEG of thousands of
    frames from costing seconds. Everything else a SEG needs precedes tag (5200,9230).
    """
    from pydicom.filereader import read_partial

    if record.pixel_offset <= 0:
        return _dataset(record, source), None
    data = source.read(0, record.pixel_offset)
    with io.BytesIO(data) as fp:
        ds = read_partial(fp, stop_when=lambda tag, vr, length: tag == _PER_FRAME, force=True)
        pos = fp.tell()
    implicit, little = ds.original_encoding
    if not little or pos + 12 > len(data) or _TAG_AT.unpack_from(data, pos) != (0x5200, 0x9230):
        return ds, None
    if implicit:
        length, start = _U32.unpack_from(data, pos + 4)[0], pos + 8
    elif data[pos + 4 : pos + 6] == b"SQ":
        length, start = _U32.unpack_from(data, pos + 8)[0], pos + 12
    else:
        return ds, None
    walker = _walker(bool(implicit))
    try:
        return ds, (walker, walker.sequence_at(data, start, length))
    except Unparsed:
        return ds, None


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
    if record.sop_class_uid == LABEL_MAP_SEG_SOP_CLASS:
        raise UnsupportedError(f"{path}: Label Map Segmentation Storage (one label per voxel, "
                               f"SegmentationType LABELMAP) is not supported yet", files=[path])  # fmt: skip
    if record.sop_class_uid != SEG_SOP_CLASS:
        from ..errors import InputError

        raise InputError(f"{path}: not a DICOM Segmentation (SOPClassUID {record.sop_class_uid!r}, "
                         f"Modality {record.modality!r}); load images with fastvol.load",
                         files=[path])  # fmt: skip
    try:
        ds, raw = _dataset_split(record, source)
        return _seg_file(record, ds, source, raw)
    except FastvolError:
        raise
    except Exception as exc:  # pydicom and value conversion raise many types on garbage
        raise CorruptFileError(f"{path}: cannot read its segmentation header "
                               f"({type(exc).__name__}: {exc})", files=[path]) from exc  # fmt: skip
    finally:
        source.close()


def _seg_file(record: HeaderRecord, ds: Any, source: ByteSource, raw: RawFrames | None = None) -> SegFile:
    path = record.path
    seg_type = _text(ds.get("SegmentationType")).upper()
    if seg_type not in ("BINARY", "FRACTIONAL"):
        raise UnsupportedError(f"{path}: SegmentationType {seg_type or 'absent'!r} is not supported "
                               f"(BINARY or FRACTIONAL)", files=[path])  # fmt: skip
    n = record.number_of_frames
    shared = _item(ds, "SharedFunctionalGroupsSequence")
    try:
        if raw is None:
            raw = _raw_items(ds, _PER_FRAME)
        numbers, positions, uids, ref_frames, first = _frame_facts_raw(*raw, n, shared, path)
    except (Unparsed, ValueError, UnicodeDecodeError):  # the same facts through pydicom
        if "PerFrameFunctionalGroupsSequence" not in ds:
            ds = _dataset(record, source)  # read whole (the split read stopped before them)
        if "PerFrameFunctionalGroupsSequence" not in ds:
            raise UnsupportedError(f"{path}: segmentation without per-frame functional groups "
                                   f"(tiled or single-frame form) is not supported", files=[path]) from None  # fmt: skip
        numbers, positions, uids, ref_frames, first = _frame_facts(ds, n, shared, path)
    common = _plane(shared)  # a frame's own value first, then the shared one
    orientation = first["orientation"] or common["orientation"]
    spacing = first["spacing"] or common["spacing"]
    thickness = first["thickness"] if first["thickness"] is not None else common["thickness"]
    segments = tuple(_segment(item) for item in ds.get("SegmentSequence") or ())
    referenced = _referenced_series(ds)
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
        positions=positions, source_uids=uids, source_frames=ref_frames,
    )  # fmt: skip


#: Per frame: segment numbers, positions, source UIDs and frame numbers; then the first frame's
#: own orientation, spacing and thickness.
FrameFacts = tuple[np.ndarray, np.ndarray, tuple[str, ...], np.ndarray, dict[str, Any]]


def _frame_facts(ds: Any, n: int, shared: Any, path: str) -> FrameFacts:
    """Per frame: segment number, position, first source image UID and frame number; and the
    first frame's group (for orientation and spacing), read through pydicom."""
    per_frame = ds.PerFrameFunctionalGroupsSequence
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
    return numbers, positions, tuple(uids), ref_frames, _plane(per_frame[0] if n else None)


# Tags of the per-frame facts (raw walk).
_PER_FRAME = 0x52009230
_REFERENCED_SERIES = 0x00081115
_SERIES_UID = 0x0020000E
_SEGMENT_ID, _SEGMENT_NUMBER = 0x0062000A, 0x0062000B
_PLANE_POSITION, _POSITION = 0x00209113, 0x00200032
_PLANE_ORIENTATION, _ORIENTATION = 0x00209116, 0x00200037
_PIXEL_MEASURES, _SPACING, _THICKNESS = 0x00289110, 0x00280030, 0x00180050
_DERIVATION, _SOURCE_IMAGE = 0x00089124, 0x00082112
_REF_SOP_UID, _REF_FRAME = 0x00081155, 0x00081160
#: What the raw walk keeps: tag -> dictionary VR.
_WANTED = {
    _SEGMENT_ID: b"SQ", _SEGMENT_NUMBER: b"US", _PLANE_POSITION: b"SQ", _POSITION: b"DS",
    _PLANE_ORIENTATION: b"SQ", _ORIENTATION: b"DS", _PIXEL_MEASURES: b"SQ", _SPACING: b"DS",
    _THICKNESS: b"DS", _DERIVATION: b"SQ", _SOURCE_IMAGE: b"SQ", _REF_SOP_UID: b"UI",
    _REF_FRAME: b"IS", _REFERENCED_SERIES: b"SQ", _SERIES_UID: b"UI",
}  # fmt: skip


def _walker(implicit: bool) -> Walker:
    return Walker(implicit, _WANTED)


def _raw_items(ds: Any, tag: int) -> tuple[Walker, list[dict[int, Any]]]:
    """Items of top-level sequence ``tag`` walked from its raw bytes (:mod:`~fastvol.headers.groups`),
    and the walker that reads them further."""
    from pydicom.dataelem import RawDataElement

    raw = ds._dict.get(tag) if hasattr(ds, "_dict") else None
    if not isinstance(raw, RawDataElement) or not raw.is_little_endian or raw.value is None:
        raise Unparsed("sequence already parsed, big endian, or absent")
    walker = _walker(bool(raw.is_implicit_VR))
    if not raw.is_implicit_VR and raw.VR != "SQ":
        raise Unparsed("not a sequence")
    return walker, walker.items(bytes(raw.value))


def _first(walker: Walker, item: dict[int, Any] | None, *tags: int) -> bytes | None:
    """The value at ``tags`` (sequence, its first item's sequence, ..., an element's value) in
    raw items; ``None`` where any is absent."""
    for tag in tags[:-1]:
        item = walker.first(item, tag)
    return value(item, tags[-1]) if item is not None else None


_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_TAG_AT = struct.Struct("<HH")


def _raw_text(value: bytes) -> str:
    return value.decode("latin-1").rstrip("\x00 ").strip()


def _frame_facts_raw(walker: Walker, items: list[dict[int, Any]], n: int, shared: Any, path: str) -> FrameFacts:
    """:func:`_frame_facts` from the per-frame groups walked from raw bytes (no Dataset per item)."""
    if len(items) != n:
        raise Unparsed("frame count differs: let pydicom's path say so")
    shared_number = _lookup((shared,), "SegmentIdentificationSequence", "ReferencedSegmentNumber")
    shared_position = _floats(_lookup((shared,), "PlanePositionSequence", "ImagePositionPatient"), 3)
    numbers = np.empty(n, dtype=np.int64)
    positions = np.full((n, 3), np.nan)
    uids: list[str] = []
    ref_frames = np.zeros(n, dtype=np.int64)
    for i, item in enumerate(items):
        number = _first(walker, item, _SEGMENT_ID, _SEGMENT_NUMBER)
        if number is not None:
            if len(number) < 2:
                raise Unparsed("empty segment number")
            numbers[i] = _U16.unpack_from(number)[0]
        elif shared_number is not None:
            numbers[i] = int(shared_number)
        else:
            raise CorruptFileError(f"{path}: frame {i + 1} names no segment "
                                   f"(ReferencedSegmentNumber)", files=[path])  # fmt: skip
        pos = _first(walker, item, _PLANE_POSITION, _POSITION)
        if pos is not None:
            values = _raw_text(pos).split("\\")
            if len(values) != 3:
                raise Unparsed("position without three values")
            positions[i] = [float(v) for v in values]
        elif shared_position is not None:
            positions[i] = shared_position
        source = walker.first(walker.first(item, _DERIVATION), _SOURCE_IMAGE)
        uid = value(source, _REF_SOP_UID) if source is not None else None
        uids.append(_raw_text(uid) if uid is not None else "")
        frame = value(source, _REF_FRAME) if source is not None else None
        if frame is not None:
            text = _raw_text(frame).split("\\")[0].strip()
            ref_frames[i] = int(text) if text else 0
    return numbers, positions, tuple(uids), ref_frames, _plane_raw(walker, items[0] if items else None)


def _plane_raw(walker: Walker, item: dict[int, Any] | None) -> dict[str, Any]:
    """Orientation, pixel spacing and thickness in one frame's raw groups (absent: None)."""

    def values(*tags: int) -> list[float] | None:
        raw = _first(walker, item, *tags)
        return [float(v) for v in _raw_text(raw).split("\\")] if raw else None

    orientation = values(_PLANE_ORIENTATION, _ORIENTATION)
    spacing = values(_PIXEL_MEASURES, _SPACING)
    thickness = values(_PIXEL_MEASURES, _THICKNESS)
    return {
        "orientation": tuple(orientation) if orientation and len(orientation) == 6 else None,
        "spacing": tuple(spacing) if spacing and len(spacing) == 2 else None,
        "thickness": thickness[0] if thickness else None,
    }


def _plane(group: Any) -> dict[str, Any]:
    """Orientation, pixel spacing and thickness in one frame's groups read by pydicom."""
    return {
        "orientation": _floats(_lookup((group,), "PlaneOrientationSequence", "ImageOrientationPatient"), 6),
        "spacing": _floats(_lookup((group,), "PixelMeasuresSequence", "PixelSpacing"), 2),
        "thickness": _float(_lookup((group,), "PixelMeasuresSequence", "SliceThickness")),
    }


def _referenced_series(ds: Any) -> tuple[str, ...]:
    """SeriesInstanceUIDs of ReferencedSeriesSequence (raw walk: it lists every source image)."""
    try:
        uids = (value(item, _SERIES_UID) for item in _raw_items(ds, _REFERENCED_SERIES)[1])
        return tuple(_raw_text(uid) for uid in uids if uid is not None)
    except (Unparsed, UnicodeDecodeError, KeyError):
        return tuple(_text(item.get("SeriesInstanceUID")) for item in ds.get("ReferencedSeriesSequence") or ())


def referenced_series(source: ByteSource) -> tuple[str, ...]:
    """SeriesInstanceUIDs a SEG's ReferencedSeriesSequence names (header only)."""
    return read_seg(source).referenced_series


class Frames:
    """The stored frames of a SEG, read once: ``frames[i]`` is frame ``i`` as ``(rows, columns)``
    uint8 (0/1, or 0..MaximumFractionalValue). Packed 1-bit frames stay packed until asked for,
    so placing them unpacks each once, straight into the output."""

    def __init__(self, packed: np.ndarray | None, frames: np.ndarray | None, rows: int, columns: int) -> None:
        self._packed, self._frames = packed, frames
        self._shape = (rows, columns)
        self._count = rows * columns

    def __getitem__(self, i: int) -> np.ndarray:
        if self._frames is not None:
            return self._frames[i]
        assert self._packed is not None
        first = int(i) * self._count
        if first % 8 == 0:  # byte-aligned frame: no bit offset
            start = first // 8
            bits = np.unpackbits(self._packed[start : start + (self._count + 7) // 8],
                                 count=self._count, bitorder="little")  # fmt: skip
        else:
            bits = unpack_bits(self._packed[first // 8 : (first + self._count + 7) // 8 + 1], first % 8,
                               self._count)  # fmt: skip
        return bits.reshape(self._shape)


def read_frames(seg: SegFile, source: ByteSource) -> Frames:
    """Every stored frame of ``seg`` (:class:`Frames`), in stored order.

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
                return Frames(raw, None, rows, columns)
            return Frames(None, raw.reshape(n, rows, columns), rows, columns)
        return Frames(None, _frames_via_pydicom(seg, source), rows, columns)
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

