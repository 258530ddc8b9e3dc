"""Read headers: each file becomes one small, picklable :class:`HeaderRecord`.

A record holds exactly what grouping, geometry and the load plan need, plus where the pixel data
sits in the file (offset and length of the PixelData value), so pixels can later be read straight
into the output without parsing the file again, and the source it was read through.

Every byte is read through :class:`~fastvol.sources.ByteSource` objects. Two readers produce the
same records: :func:`~fastvol.headers.pydicom_reader.read_header_pydicom` (any encoding pydicom
reads) and the compiled scanner (:mod:`fastvol.headers.scan`, explicit and implicit VR little
endian, the common case). :func:`read_headers` tries the scanner first and falls back to pydicom
file by file; tests assert the two agree on every file they both read. The header pass also
reads a Siemens mosaic's CSA header into ``record.mosaic``.

:func:`read_records` is the whole pass a scan makes: sources in, image records out (multi-frame
files expanded to one record per frame), plus what was skipped and why.

Modules: :mod:`~fastvol.headers.scan` (scanner driver), :mod:`~fastvol.headers.convert`
(converters by field kind), :mod:`~fastvol.headers.pydicom_reader`,
:mod:`~fastvol.headers.multiframe` (per-frame records), :mod:`~fastvol.headers.csa` (Siemens
CSA, :class:`MosaicInfo`). numpy, numba and pydicom load on first use.
"""

from __future__ import annotations

import dataclasses
import functools
import operator
import os
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ..dicom import (
    EXPANSION_FIELDS,
    HEADER_FIELDS,
    NOT_ADDRESSABLE,
    PER_FRAME_FUNCTIONAL_GROUPS,
    PIXEL_DATA_TAGS,
    TS,
    UNDEFINED_LENGTH,
    HeaderRecord,
)
from .._ckernels import group_by_slots, types_of
from ..errors import FastvolError, NotDicomError, UnreadableError, map_exceptions
from .sniff import is_dicom_source
from ..sources import ByteSource, LocalFile

if TYPE_CHECKING:
    from .csa import MosaicInfo

__all__ = [
    "DICOMDIR_SOP_CLASS",
    "DAMAGED_IMAGE",
    "HEADER_FIELDS",
    "NOT_ADDRESSABLE",
    "PER_FRAME_FUNCTIONAL_GROUPS",
    "PIXEL_DATA_TAGS",
    "TS",
    "UNDEFINED_LENGTH",
    "UNREADABLE_FILE",
    "UNREADABLE_FOLDER",
    "HeaderRecord",
    "MosaicInfo",
    "NotDicomContent",
    "read_header",
    "read_header_pydicom",
    "read_headers",
    "read_records",
    "record_from_dataset",
]

DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"
#: Skip reasons of files and folders the OS would not let us read (a load refuses them).
UNREADABLE_FILE = "unreadable file"
UNREADABLE_FOLDER = "unreadable folder"
#: Skip reason of an image file without its pixel data (truncated or damaged): a load refuses
#: it too, since its slice would be missing.
DAMAGED_IMAGE = "damaged image"


class NotDicomContent(NotDicomError):
    """A file whose first bytes are not DICOM (sniffed): skipped as ``"not DICOM"`` by a scan."""


def __getattr__(name: str) -> Any:
    # Submodules import numpy/pydicom: load them on first use, not with the package.
    if name == "read_header_pydicom":
        from .pydicom_reader import read_header_pydicom

        return read_header_pydicom
    if name == "record_from_dataset":
        from .convert import record_from_dataset

        return record_from_dataset
    if name == "MosaicInfo":
        from .csa import MosaicInfo

        return MosaicInfo
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _scanner_enabled() -> bool:
    # FASTVOL_SCANNER=0 forces pydicom for every file (debugging, benchmarks of the fallback).
    return os.environ.get("FASTVOL_SCANNER", "1") != "0"


def _as_source(source: ByteSource | str | os.PathLike[str]) -> ByteSource:
    return source if isinstance(source, ByteSource) else LocalFile(source)


def read_header(
    source: ByteSource | str | os.PathLike[str], *, extra_tags: Iterable[str | int] = ()
) -> HeaderRecord:
    """Read one file's header: the compiled scanner when it handles the file, else pydicom.

    Raises the :class:`~fastvol.errors.FastvolError` saying why the file cannot be read.
    """
    return read_headers([_as_source(source)], skip_unreadable=False, extra_tags=extra_tags)[0]  # type: ignore[return-value]


def read_headers(
    sources: Sequence[ByteSource],
    *,
    skip_unreadable: bool = True,
    extra_tags: Iterable[str | int] = (),
) -> list[HeaderRecord | FastvolError]:
    """Read many files' headers: one batch through the compiled scanner, pydicom for the rest.

    Files whose ImageType says MOSAIC get their Siemens CSA mosaic description in
    ``record.mosaic``.

    Returns one entry per source: its record, or (with ``skip_unreadable``) the
    :class:`~fastvol.errors.FastvolError` saying why it could not be read; a file whose content
    is not DICOM gives a :class:`NotDicomContent`.
    """
    from .convert import resolve_extra_tags

    extras = resolve_extra_tags(extra_tags)  # checked before any file is read
    scanned: list[HeaderRecord | None] = [None] * len(sources)
    if _scanner_enabled() and sources:
        from .scan import scan_headers  # compiled fast path

        scanned = scan_headers(sources, extra_tags=[x.tag for x in extras])
    done = list(filter(_is_record, scanned))
    if len(done) == len(sources):
        # Every file scanned: the records are final unless a mosaic's (one record per ImageType
        # says; is_mosaic reads only it).
        by_type = group_by_slots(done, HeaderRecord, ("image_type",))
        if not any(same[0].is_mosaic for same in by_type.values()):
            return list(done)  # type: ignore[arg-type]  # None filtered out
    out: list[HeaderRecord | FastvolError] = []
    tags = [x.tag for x in extras]
    mosaic_types: dict[tuple[str, ...], bool] = {}  # ImageType values repeat: test each once
    for source, rec in zip(sources, scanned):
        if rec is not None:
            mosaic = mosaic_types.get(rec.image_type)
            if mosaic is None:
                mosaic = mosaic_types[rec.image_type] = rec.is_mosaic
            if not mosaic:  # the common case: the scanner's record is final (file closed)
                out.append(rec)
                continue
        try:
            with map_exceptions(f"{source.name}: header cannot be read", files=[source.name]):
                out.append(_finish_header(source, rec, tags))
        except FastvolError as exc:
            if not skip_unreadable:
                raise
            out.append(exc)
        finally:
            source.close()
    return out


_is_record = functools.partial(operator.is_not, None)
_IS_REGULAR = operator.methodcaller("is_regular")
_PIXEL_LENGTH = operator.attrgetter("pixel_length")
#: What the tests of :func:`read_records` read of a record: it tests one per combination.
_KIND_FIELDS = ("sop_class_uid", *EXPANSION_FIELDS, "pixel_offset", "pixel_length", "file_size")


def _finish_header(
    source: ByteSource, rec: HeaderRecord | None, tags: list[int]
) -> HeaderRecord:
    """The record of one source: the scanner's, else pydicom's; with its mosaic description."""
    if rec is None:
        if not is_dicom_source(source):  # sniffed only when the scanner did not take it
            raise NotDicomContent(f"{source.name}: not DICOM", files=[source.name])
        from .pydicom_reader import read_header_pydicom

        rec = read_header_pydicom(source, extra_tags=tags)
    if rec.is_mosaic and rec.has_pixels:
        from .csa import read_mosaic_info

        rec = dataclasses.replace(rec, mosaic=read_mosaic_info(source))
    return rec


def _pixels_cut(rec: HeaderRecord) -> bool:
    """Whether the file ends before its native (not encapsulated) pixel data does."""
    return 0 <= rec.pixel_offset and rec.pixel_length != UNDEFINED_LENGTH and \
        rec.pixel_offset + rec.pixel_length > rec.file_size > 0  # fmt: skip


def read_records(
    sources: Sequence[ByteSource], *, extra_tags: Iterable[str | int] = ()
) -> tuple[list[HeaderRecord], dict[str, list[str]], dict[str, str], list[tuple[str, str, str]]]:
    """The header pass of a scan: image records of ``sources``, and what was skipped and why.

    Multi-frame files become one record per frame. Nothing here raises for a file.

    Parameters
    ----------
    sources
        The files (see :func:`fastvol.find.find_sources`).
    extra_tags
        DICOM keywords or integer tags of further attributes to read into ``record.extra``.

    Returns
    -------
    records
        One record per image (per frame of multi-frame files).
    skipped
        Reason -> file names: ``"not DICOM"``, ``"not a regular file"`` (FIFOs, devices: never
        opened), ``"unreadable"`` (a header that cannot be parsed or expanded),
        ``"unreadable file"`` (the OS refused the read), ``"DICOMDIR"``, ``"no pixel data"``.
    errors
        File name -> why it was unreadable.
    pixelless
        ``(name, SOP class UID, SeriesInstanceUID)`` of each file without pixel data, and of
        each multi-frame file whose frames could not be expanded (skipped as unreadable): which
        of them are damaged images is decided over the whole scan
        (:func:`fastvol.api.scan_result`).

    Raises
    ------
    InputError
        ``extra_tags`` names no attribute of the DICOM dictionary.
    """

    skipped: dict[str, list[str]] = {}
    errors: dict[str, str] = {}
    records: list[HeaderRecord] = []
    pixelless: list[tuple[str, str, str]] = []
    regular = list(sources)
    if not LocalFile.all_listed_regular(regular):  # else each is, known from its listing
        flags = list(map(_IS_REGULAR, regular))
        if not all(flags):
            regular = [source for source, ok in zip(sources, flags) if ok]
            skipped["not a regular file"] = [source.name for source, ok in zip(sources, flags) if not ok]
    results = read_headers(regular, extra_tags=extra_tags)
    if types_of(results) <= {HeaderRecord} and -1 not in map(_PIXEL_LENGTH, results):
        # Only image records (has_pixels): final unless a DICOMDIR or one to expand, which one
        # record per combination of what those tests read tells.
        kinds = group_by_slots(results, HeaderRecord, _KIND_FIELDS).values()
        if not any(same[0].sop_class_uid == DICOMDIR_SOP_CLASS or same[0].needs_expansion
                   or _pixels_cut(same[0]) for same in kinds):  # fmt: skip
            return results, skipped, errors, pixelless  # type: ignore[return-value]
    for source, rec in zip(regular, results):
        name = source.name
        if isinstance(rec, NotDicomContent):
            skipped.setdefault("not DICOM", []).append(name)
        elif isinstance(rec, FastvolError):
            reason = UNREADABLE_FILE if isinstance(rec, UnreadableError) else "unreadable"
            skipped.setdefault(reason, []).append(name)
            errors[name] = str(rec)
        elif rec.sop_class_uid == DICOMDIR_SOP_CLASS:
            skipped.setdefault("DICOMDIR", []).append(name)
        elif not rec.has_pixels:
            skipped.setdefault("no pixel data", []).append(name)
            pixelless.append((name, rec.sop_class_uid, rec.series_instance_uid))
        elif _pixels_cut(rec):
            # Native pixel data cut short: damaged (decided over the whole scan), not a
            # CorruptFileError at load that unreadable='skip' could not pass.
            skipped.setdefault(DAMAGED_IMAGE, []).append(name)
            errors[name] = (f"{name}: pixel data cut short: the file ends "
                            f"{rec.pixel_offset + rec.pixel_length - rec.file_size} bytes before "
                            f"its PixelData does (truncated)")  # fmt: skip
            pixelless.append((name, rec.sop_class_uid, rec.series_instance_uid))  # no images
        elif rec.needs_expansion:
            from .multiframe import expand_frames  # only for multi-frame files

            try:
                # One broken enhanced file must not cost the scan of every other series.
                with map_exceptions(f"{name}: per-frame headers cannot be read", files=[name]):
                    records.extend(expand_frames(rec))
            except FastvolError as exc:
                skipped.setdefault("unreadable", []).append(name)
                errors[name] = str(exc)
                pixelless.append((name, rec.sop_class_uid, rec.series_instance_uid))  # no images
        else:
            records.append(rec)
    return records, skipped, errors, pixelless
