"""Read headers: each file becomes one small, picklable :class:`HeaderRecord`.

A record holds exactly what grouping, geometry and the load plan need, plus where the pixel data
sits in the file (offset and length of the PixelData value), so pixels can later be read straight
into the output without parsing the file again.

Two readers produce the same records: :func:`read_header_pydicom` (any encoding pydicom reads) and
the compiled scanner in :mod:`fastvol._kernels.scan` (explicit and implicit VR little endian, the
common case). :func:`read_header` tries the scanner first and falls back to pydicom file by file;
tests assert the two agree on every file they both read.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence
from typing import Any

from .dicom import (
    HEADER_FIELDS,
    NOT_ADDRESSABLE,
    PER_FRAME_FUNCTIONAL_GROUPS,
    PIXEL_DATA_TAGS,
    TS,
    UNDEFINED_LENGTH,
    HeaderRecord,
)
from .errors import CorruptFileError, FastvolError, NotDicomError

__all__ = ["TS", "HeaderRecord", "read_header", "read_header_pydicom", "read_headers"]


# Tags read by the header pass, by record attribute (derived from the one field table).
HEADER_TAGS: dict[str, int] = {f.name: f.tag for f in HEADER_FIELDS}


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        value = value.decode("latin-1", "replace")
    if not isinstance(value, str):
        # Multi-valued strings come back as MultiValue; keep the DICOM form.
        try:
            value = "\\".join(str(v) for v in value)
        except TypeError:
            value = str(value)
    return value.rstrip(" \x00").lstrip(" ")


def _floats(value: Any, n: int) -> tuple[float, ...] | None:
    if value is None or value == "":
        return None
    try:
        items = list(value) if not isinstance(value, (str, bytes, int, float)) else [value]
        out = tuple(float(v) for v in items)
    except (TypeError, ValueError):
        return None
    if len(out) != n or any(v != v for v in out):  # wrong count or NaN
        return None
    return out


def _float(value: Any) -> float | None:
    if value is None or value == "":
        return None
    if not isinstance(value, (str, bytes, int, float)):
        value = value[0] if len(value) else None  # multi-valued: first value
        if value is None:
            return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return None if out != out else out


def _int(value: Any) -> int | None:
    out = _float(value)
    if out is None or out != int(out):
        return None
    return int(out)


_ENCODING_TS = {
    (True, True): TS.IMPLICIT_LE,
    (False, True): TS.EXPLICIT_LE,
    (False, False): TS.EXPLICIT_BE,
}


def record_from_dataset(
    ds: Any, *, path: str, file_size: int, pixel_offset: int, pixel_length: int
) -> HeaderRecord:
    """Build a :class:`HeaderRecord` from a pydicom Dataset read without its pixels."""
    meta = getattr(ds, "file_meta", None)
    ts = _text(meta.get("TransferSyntaxUID")) if meta is not None and "TransferSyntaxUID" in meta else ""
    if not ts:
        enc = getattr(ds, "original_encoding", (True, True))
        ts = _ENCODING_TS.get((bool(enc[0]), bool(enc[1])), TS.IMPLICIT_LE)

    def get(keyword: str) -> Any:
        elem = ds.get(keyword)
        return elem

    sop_class = _text(get("SOPClassUID")) or (
        _text(meta.get("MediaStorageSOPClassUID")) if meta is not None else ""
    )
    image_type_raw = get("ImageType")
    if image_type_raw is None:
        image_type: tuple[str, ...] = ()
    elif isinstance(image_type_raw, str):
        image_type = tuple(v.strip(" \x00") for v in image_type_raw.split("\\"))
    else:
        image_type = tuple(_text(v) for v in image_type_raw)
    bits_allocated = _int(get("BitsAllocated")) or 0
    bits_stored = _int(get("BitsStored"))
    return HeaderRecord(
        path=path,
        file_size=file_size,
        transfer_syntax=ts,
        sop_class_uid=sop_class,
        sop_instance_uid=_text(get("SOPInstanceUID")),
        study_instance_uid=_text(get("StudyInstanceUID")),
        series_instance_uid=_text(get("SeriesInstanceUID")),
        frame_of_reference_uid=_text(get("FrameOfReferenceUID")),
        modality=_text(get("Modality")),
        manufacturer=_text(get("Manufacturer")),
        series_number=_int(get("SeriesNumber")),
        series_description=_text(get("SeriesDescription")),
        image_type=image_type,
        instance_number=_int(get("InstanceNumber")),
        rows=_int(get("Rows")) or 0,
        columns=_int(get("Columns")) or 0,
        samples_per_pixel=_int(get("SamplesPerPixel")) or 1,
        photometric_interpretation=_text(get("PhotometricInterpretation")),
        bits_allocated=bits_allocated,
        bits_stored=bits_stored if bits_stored is not None else bits_allocated,
        high_bit=_int(get("HighBit")) if get("HighBit") is not None else (  # type: ignore[arg-type]
            (bits_stored if bits_stored is not None else bits_allocated) - 1
        ),
        pixel_representation=_int(get("PixelRepresentation")) or 0,
        planar_configuration=_int(get("PlanarConfiguration")) or 0,
        number_of_frames=max(_int(get("NumberOfFrames")) or 1, 1),
        image_position=_floats(get("ImagePositionPatient"), 3),  # type: ignore[arg-type]
        image_orientation=_floats(get("ImageOrientationPatient"), 6),  # type: ignore[arg-type]
        pixel_spacing=_floats(get("PixelSpacing"), 2),  # type: ignore[arg-type]
        slice_thickness=_float(get("SliceThickness")),
        spacing_between_slices=_float(get("SpacingBetweenSlices")),
        gantry_tilt=_float(get("GantryDetectorTilt")),
        rescale_slope=_float(get("RescaleSlope")),
        rescale_intercept=_float(get("RescaleIntercept")),
        temporal_position_identifier=_int(get("TemporalPositionIdentifier")),
        trigger_time=_float(get("TriggerTime")),
        acquisition_number=_int(get("AcquisitionNumber")),
        acquisition_time=_text(get("AcquisitionTime")),
        echo_number=_int(get("EchoNumbers")),
        echo_time=_float(get("EchoTime")),
        diffusion_b_value=_float(get("DiffusionBValue")),
        is_enhanced="PerFrameFunctionalGroupsSequence" in ds,
        pixel_offset=pixel_offset,
        pixel_length=pixel_length,
    )


def _pixel_element_after(fp: Any, implicit: bool, little: bool) -> tuple[int, int]:
    """Parse the PixelData element header at ``fp``'s position: (value offset, value length)."""
    start = fp.tell()
    head = fp.read(12)
    if len(head) < 8:
        return -1, -1
    endian = "<" if little else ">"
    group, elem = struct.unpack(endian + "HH", head[:4])
    if ((group << 16) | elem) not in PIXEL_DATA_TAGS:
        return -1, -1
    if implicit:
        (length,) = struct.unpack(endian + "I", head[4:8])
        return start + 8, length
    if len(head) < 12:
        raise EOFError
    (length,) = struct.unpack(endian + "I", head[8:12])
    return start + 12, length


def read_header_pydicom(path: str | os.PathLike[str]) -> HeaderRecord:
    """Read one file's header with pydicom (any encoding), without reading pixel data.

    Raises
    ------
    NotDicomError
        The file is not DICOM or its header cannot be parsed.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    path = os.fspath(path)
    try:
        with open(path, "rb") as fp:
            file_size = os.fstat(fp.fileno()).st_size
            ds = pydicom.dcmread(fp, stop_before_pixels=True, force=True)
            ts = ""
            if getattr(ds, "file_meta", None) is not None and "TransferSyntaxUID" in ds.file_meta:
                ts = _text(ds.file_meta.TransferSyntaxUID)
            if ts == TS.DEFLATED_LE:
                # Offsets refer to the inflated stream, not the file: pydicom reads the pixels.
                probe = pydicom.dcmread(path, force=True, defer_size=64)
                has = "PixelData" in probe
                offset, length = (-1, NOT_ADDRESSABLE) if has else (-1, -1)
            else:
                enc = ds.original_encoding
                implicit, little = (bool(enc[0]), bool(enc[1])) if enc[0] is not None else (True, True)
                offset, length = _pixel_element_after(fp, implicit, little)
        # Inside the try: converting values can raise on garbage (bad VR, wrong-length US, ...).
        return record_from_dataset(
            ds, path=path, file_size=file_size, pixel_offset=offset, pixel_length=length
        )
    except (InvalidDicomError, EOFError, struct.error) as exc:
        raise NotDicomError(f"{path}: not a readable DICOM file ({exc})", files=[path]) from exc
    except OSError as exc:
        raise NotDicomError(f"{path}: cannot be read ({exc})", files=[path]) from exc
    except Exception as exc:  # pydicom raises many types on garbage; none may escape bare
        raise CorruptFileError(
            f"{path}: header cannot be parsed ({type(exc).__name__}: {exc})", files=[path]
        ) from exc


def _scanner_enabled() -> bool:
    # FASTVOL_SCANNER=0 forces pydicom for every file (debugging, benchmarks of the fallback).
    return os.environ.get("FASTVOL_SCANNER", "1") != "0"


def read_header(path: str | os.PathLike[str]) -> HeaderRecord:
    """Read one file's header: the compiled scanner when it handles the file, else pydicom."""
    return read_headers([os.fspath(path)], skip_unreadable=False)[0]  # type: ignore[return-value]


def read_headers(
    paths: Sequence[str], *, skip_unreadable: bool = True
) -> list[HeaderRecord | FastvolError]:
    """Read many files' headers: one batch through the compiled scanner, pydicom for the rest.

    Returns one entry per path: its record, or (with ``skip_unreadable``) the
    :class:`~fastvol.errors.FastvolError` saying why it could not be read.
    """
    scanned: list[HeaderRecord | None] = [None] * len(paths)
    if _scanner_enabled() and paths:
        from ._kernels.scan import scan_headers  # compiled fast path

        scanned = list(scan_headers(list(paths)))
    out: list[HeaderRecord | FastvolError] = []
    for path, rec in zip(paths, scanned):
        if rec is None:
            from .find import is_dicom_file

            if not is_dicom_file(path):  # sniffed only when the scanner did not take the file
                out.append(NotDicomError(f"{path}: not DICOM", files=[path], reason="not DICOM"))
                continue
            try:
                rec = read_header_pydicom(path)
            except FastvolError as exc:
                if not skip_unreadable:
                    raise
                out.append(exc)
                continue
        out.append(rec)
    return out
