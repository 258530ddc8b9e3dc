"""The public calls, reading like the pipeline: sources -> headers -> series -> plan -> stack -> Volume.

This is the one module that imports every stage; the stages import only leaves and earlier
stages, and value objects (:class:`~fastvol.group.Series`, :class:`~fastvol.Volume`, plans,
reports) never call back up here.
"""

from __future__ import annotations

import bisect
import dataclasses
import operator
import os
from collections.abc import Iterable, Sequence
from numbers import Integral
from typing import TYPE_CHECKING, Any

from .errors import (
    CorruptFileError,
    DecodeError,
    FastvolError,
    InputError,
    MissingDependencyError,
    MixedGeometryError,
    NotDicomError,
    SeriesSelectionError,
    UnreadableError,
    UnsupportedError,
    map_exceptions,
)
from .find import Inputs, locate
from .group import Series, group_series, main_series
from .headers import DAMAGED_IMAGE, UNREADABLE_FILE, UNREADABLE_FOLDER, read_records
from .options import Options, check_extra_tags
from .plan import describe_series, make_plan
from .report import GeometryReport
from .sources import LocalFile
from .volume import Volume

if TYPE_CHECKING:
    from concurrent.futures import Executor

    from .plan import LoadPlan

__all__ = ["ScanResult", "describe", "find_series", "load", "load_series", "scan", "select_series"]

class ScanResult(list[Series]):
    """The series found by :func:`scan` (a list), plus what was skipped and why.

    Attributes
    ----------
    skipped
        Reason -> file names: ``"not DICOM"``, ``"unreadable"`` (headers that cannot be parsed),
        ``"unreadable file"`` and ``"unreadable folder"`` (the OS refused to read or list them),
        ``"damaged image"`` (an image file without its pixel data: truncated or damaged),
        ``"DICOMDIR"``, ``"no pixel data"``, ``"not a regular file"``.
    errors
        File name -> why it was unreadable.
    damaged
        File name -> SeriesInstanceUID (``""`` when unknown) of each damaged image: an image
        file without its pixel data (skipped as ``"damaged image"``), and, where images were
        found, a DICOM file whose header cannot be parsed (``"unreadable"``), and a file cut
        before its header: shorter than the 132-byte preamble and ``DICM`` and equal to the
        start of an image file beside it (an empty file too), skipped as ``"damaged image"``.
        Any of them may be a slice of a series found here.
    """

    skipped: dict[str, list[str]]
    errors: dict[str, str]
    damaged: dict[str, str]

    def __init__(self, series: Iterable[Series] = (), skipped: dict[str, list[str]] | None = None,
                 errors: dict[str, str] | None = None, damaged: dict[str, str] | None = None):  # fmt: skip
        super().__init__(series)
        self.skipped = skipped or {}
        self.errors = errors or {}
        self.damaged = damaged or {}

    def __reduce__(self) -> tuple[Any, ...]:
        return (ScanResult, (list(self), self.skipped, self.errors, self.damaged))

    @property
    def unreadable(self) -> list[str]:
        """Files and folders the OS would not let the scan read, and damaged images (see
        ``damaged``): their slices may be missing."""
        return self.skipped.get(UNREADABLE_FOLDER, []) + self.skipped.get(UNREADABLE_FILE, []) + list(self.damaged)

    def segmentations_of(self, series: Series | str | int) -> list[Series]:
        """The Segmentation (SEG) series found here that segment ``series``.

        ``series`` is a :class:`~fastvol.Series`, an index into this list, or a
        SeriesInstanceUID / ``Series.id``. A SEG segments the series its ReferencedSeriesSequence
        names (read from the SEG files' headers on first use). Load one with
        ``fastvol.load_segmentation(seg, series)``.
        """
        from .headers.references import SEG_SOP_CLASS, referenced_series_uids

        if isinstance(series, Series):
            uid = series.uid
        elif isinstance(series, str):
            uid = next((s.uid for s in self if series in (s.id, s.uid)), series)
        else:
            uid = select_series(self, series, "segmentations_of").uid
        cache: dict[str, tuple[str, ...]] = self.__dict__.setdefault("_references", {})
        found = []
        for candidate in self:
            segs = [r for r in candidate.records if r.sop_class_uid == SEG_SOP_CLASS]
            refs: set[str] = set()
            for rec in {r.path: r for r in segs}.values():  # one read per file, not per frame
                if rec.path not in cache:
                    with map_exceptions(rec.path, files=[rec.path]):
                        cache[rec.path] = referenced_series_uids(rec)
                refs.update(cache[rec.path])
            if uid in refs:
                found.append(candidate)
        return found

    def summary(self) -> str:
        """One line per series, then the skipped counts, naming the damaged and unreadable
        files (they may be slices of a series listed)."""
        lines = [f"[{i}] {s}" for i, s in enumerate(self)]
        for reason, files in sorted(self.skipped.items()):
            lines.append(f"skipped {len(files)} file(s): {reason}")
            if reason in (DAMAGED_IMAGE, "unreadable", UNREADABLE_FILE, UNREADABLE_FOLDER):
                # what may cost a series its slices: named (and why), the first few
                lines += [f"  {self.errors.get(name, name)}" for name in files[:5]]
                if len(files) > 5:
                    lines.append(f"  ... and {len(files) - 5} more (ScanResult.errors)")
        return "\n".join(lines)


def scan(
    paths: Inputs,
    *,
    extra_tags: Sequence[str | int] = (),
    storage_options: dict[str, Any] | None = None,
    cache: str | os.PathLike[str] | None = None,
) -> ScanResult:
    """Find the DICOM image series under ``paths``, reading headers only.

    Parameters
    ----------
    paths
        Files and folders (walked recursively), URLs (``s3://bucket/prefix/``, ``gs://``,
        ``https://``, any protocol fsspec knows, glob patterns; ``idc://<SeriesInstanceUID>``),
        open binary file objects, byte sources, or a list of them. DICOM is recognised by
        content, not by suffix.
    extra_tags
        DICOM keywords or integer tags of further attributes to carry into each record
        (``HeaderRecord.extra``) and into ``Volume.meta``.
    storage_options
        Passed to fsspec for URLs, as pandas and Dask do (``{"anon": True}``, credentials,
        ``endpoint_url``, ...). Needs ``pip install 'fastvol[cloud]'``.
    cache
        A folder keeping the bytes remote reads fetch, keyed by URL and ETag: a second load
        of the same remote series reads only the cache (and one listing).

    Returns
    -------
    ScanResult
        A list of :class:`~fastvol.group.Series`, each one stackable group (a SeriesInstanceUID
        split by orientation, size, pixel spacing and localizers), ordered by SeriesNumber; its
        ``skipped`` maps a reason to the files not used (non-DICOM, DICOMDIR, objects without
        pixels, unreadable headers, files and folders the OS refused). Nothing here is fatal but
        a path that does not exist (:class:`~fastvol.PathNotFoundError`): a header that cannot
        be read or expanded is an entry of ``errors``.
    """
    extra_tags = check_extra_tags(extra_tags)
    sources, unlisted = locate(paths, storage_options=storage_options, cache=cache)
    records, skipped, errors, pixelless = read_records(sources, extra_tags=extra_tags)
    return scan_result(records, skipped, errors, unlisted, pixelless)


def scan_result(records: list[Any], skipped: dict[str, list[str]], errors: dict[str, str],
                unlisted: list[str], pixelless: Sequence[tuple[str, str, str]] = ()) -> ScanResult:  # fmt: skip
    """The :class:`ScanResult` of a header pass: its records grouped into series, the folders
    that could not be listed added to ``skipped`` and ``errors`` (both updated), and the damaged
    images decided over the whole scan (so split worker scans agree).

    ``pixelless`` (name, SOP class, series UID) holds the files that gave no image record:
    without pixel data, with pixel data cut short (already skipped as damaged images), or with
    frames that could not be expanded (skipped as unreadable).
    """
    if unlisted:
        skipped[UNREADABLE_FOLDER] = unlisted
        errors.update((folder, f"{folder}: folder cannot be listed") for folder in unlisted)
    # Skipped by the header pass, but perhaps images (header unparsed, frames not expanded,
    # pixel data cut short): their series, where it is known.
    flagged = [*skipped.get("unreadable", []), *skipped.get(DAMAGED_IMAGE, [])]
    flagged_set = set(flagged)
    damaged = _damaged_images(records, [p for p in pixelless if p[0] not in flagged_set])
    if damaged:
        kept = [name for name in skipped.get("no pixel data", []) if name not in damaged]
        if kept:
            skipped["no pixel data"] = kept
        else:
            skipped.pop("no pixel data", None)
        skipped.setdefault(DAMAGED_IMAGE, []).extend(damaged)
        why = "no pixel data, though files of its SOP class hold images: truncated or damaged"
        errors.update((name, f"{name}: {why}") for name in damaged)
    if records and flagged:
        uids = {r.series_instance_uid for r in records}
        known = {name: uid for name, _, uid in pixelless if name in flagged_set}
        for name in flagged:
            uid = known.get(name, "")
            if not uid:
                damaged[name] = ""  # header not parsed: any series beside it may lack it
            elif uid in uids:
                damaged[name] = uid  # (else its whole series is unreadable: it costs no other)
    if records:
        cut = _cut_files(records, skipped.get("not DICOM", []))
        if cut:
            skipped["not DICOM"] = [name for name in skipped["not DICOM"] if name not in cut]
            if not skipped["not DICOM"]:
                del skipped["not DICOM"]
            skipped.setdefault(DAMAGED_IMAGE, []).extend(cut)
            damaged.update((name, "") for name in cut)
            errors.update((name, f"{name}: empty, or cut before its DICOM header: truncated or damaged")
                          for name in cut)  # fmt: skip
    found = group_series(records, services=_SERVICES)
    classes = {name: sop_class for name, sop_class, _ in pixelless if sop_class}
    beside = _beside(found, damaged, skipped.get(UNREADABLE_FILE, []), unlisted, errors, classes)
    for i, marks in beside.items():  # few: the others are made once, as they are
        found[i] = dataclasses.replace(found[i], damaged=marks)
    return ScanResult(found, skipped, errors, damaged)


def _cut_files(records: Sequence[Any], not_dicom: Sequence[str]) -> dict[str, None]:
    """The files found not DICOM that are DICOM files cut before their header (in order)."""
    if not not_dicom:
        return {}
    first_image: dict[str, str] = {}  # folder -> one image file there: what a cut file starts as
    for r in records:
        first_image.setdefault(os.path.dirname(r.path), r.path)
    starts: dict[str, bytes] = {}  # image file -> its first 132 bytes, read once per folder
    return {name: None for name in not_dicom
            if _cut_before_header(name, first_image.get(os.path.dirname(name)), starts)}  # fmt: skip


def _beside(found: Sequence[Series], damaged: dict[str, str], refused: Sequence[str],
            unlisted: Sequence[str], errors: dict[str, str],
            classes: dict[str, str]) -> dict[int, tuple[tuple[str, str], ...]]:  # fmt: skip
    """Series index -> ``(file, why)`` of what the scan could not read that may be its slices:
    damaged images of its UID; damaged images of no known series and files the OS refused, in
    a folder holding its files (unless the damaged file's SOP class, read whole before the cut,
    is another series' and not this one's); every folder that could not be listed."""
    if not (damaged or refused or unlisted):
        return {}
    by_uid: dict[str, list[str]] = {}
    by_folder: dict[str, list[str]] = {}
    for name, uid in damaged.items():
        if uid:
            by_uid.setdefault(uid, []).append(name)
        else:
            by_folder.setdefault(os.path.dirname(name), []).append(name)
    for name in refused:
        by_folder.setdefault(os.path.dirname(name), []).append(name)
    out = {}
    found_classes = {r.sop_class_uid for s in found for r in s.records} if classes else set()
    for i, series in enumerate(found):
        names = list(by_uid.get(series.uid, ()))
        if by_folder:
            own_classes = {r.sop_class_uid for r in series.records} if classes else set()
            for folder in sorted({os.path.dirname(r.path) for r in series.records} & by_folder.keys()):
                names += [name for name in by_folder[folder]
                          if classes.get(name) not in found_classes or classes[name] in own_classes]  # fmt: skip
        names += unlisted
        if names:
            out[i] = tuple((name, errors.get(name, name)) for name in names)
    return out


def _cut_before_header(name: str, sibling: str | None, starts: dict[str, bytes]) -> bool:
    """Whether a file found not DICOM is a DICOM file cut before its header: a local file, not
    hidden, beside image files, shorter than the 132-byte preamble and ``DICM`` magic and equal
    to the start of an image file beside it (``sibling``, whose start ``starts`` keeps): a copy
    that failed early, an empty file too. Vendors write the same preamble into every file. (A suffix proves nothing: a
    ``.dcm`` file fastvol cannot read, such as a data set without preamble, is no cut file.)"""
    if sibling is None or "://" in name or os.path.basename(name).startswith("."):
        return False
    try:
        head = _start(name, 131)
        if head is None:
            return False
        if sibling not in starts:
            starts[sibling] = _start(sibling, None) or b""
        return starts[sibling].startswith(head)
    except (OSError, FastvolError):
        return False


def _start(name: str, whole_below: int | None) -> bytes | None:
    """The first 132 bytes of a local file; with ``whole_below``, the whole file if it holds no
    more than that, else None."""
    source = LocalFile(name)
    try:
        size = source.size()
        if whole_below is not None and size > whole_below:
            return None
        return source.read(0, min(size, 132))
    finally:
        source.close()


def _damaged_images(records: list[Any], pixelless: Sequence[tuple[str, str, str]]) -> dict[str, str]:
    """File -> SeriesInstanceUID ("" when unknown) of the image files without pixel data.

    Such a file is damaged (truncated before or inside its PixelData element, which its storage
    class requires), not one to leave out in silence: at an end of its series, the volume would
    lose a slice with nothing to show. Image storage classes are recognised by the images found
    beside it; a file of a series with no images at all (test data stripped of pixels) costs no
    volume a slice.
    """
    if not pixelless or not records:
        return {}
    classes = {r.sop_class_uid for r in records}
    series = sorted({r.series_instance_uid for r in records})

    def cut_inside(uid: str) -> bool:  # a proper prefix of a series' UID: cut inside the value
        i = bisect.bisect_left(series, uid)
        return i < len(series) and series[i].startswith(uid)

    # Without a SeriesInstanceUID (every stored object has one; the SOP class comes before
    # it): cut before or inside it. With one: an image class, of a series here or cut inside.
    # A UID cut short names no series: "", as an unknown one (convert goes by the folder).
    exact = set(series)
    return {name: uid if uid in exact else "" for name, sop_class, uid in pixelless
            if not uid or (sop_class in classes and cut_inside(uid))}  # fmt: skip


def _listing(found: Sequence[Series], only: Sequence[Series] | None = None) -> str:
    """One line per series of ``found`` (or of ``only`` among them), with its index there."""
    ids = None if only is None else {s.id for s in only}
    return "\n".join(f"  [{i}] {s}" for i, s in enumerate(found) if ids is None or s.id in ids)


def _candidates(found: ScanResult, series: str | int | None, where: str) -> list[Series]:
    if series is not None and not isinstance(series, (str, bool)) and isinstance(series, Integral):
        series = operator.index(series)  # numpy integers too
    elif series is not None and not isinstance(series, str):
        raise SeriesSelectionError(f"{where}: series={series!r}: expected an index, a Series, a "
                                   f"Series.id/SeriesInstanceUID or a SeriesNumber string")  # fmt: skip
    if isinstance(series, str):  # the listing's own spellings: "[2]" an index, "#8" a SeriesNumber
        inner = series.strip()[1:-1].strip() if series.strip()[:1] + series.strip()[-1:] == "[]" else ""
        if inner.lstrip("-").isdecimal():
            series = int(inner)
        elif series.startswith("#") and series[1:].strip().lstrip("-").isdecimal():
            series = series[1:].strip()
    if isinstance(series, int):
        if not -len(found) <= series < len(found):
            raise SeriesSelectionError(f"{where}: series={series} but {len(found)} series found:\n"
                                       f"{_listing(found)}")  # fmt: skip
        return [found[series]]
    if isinstance(series, str):
        chosen = [s for s in found if series in (s.id, s.uid, str(s.number))]
        if not chosen:
            raise SeriesSelectionError(f"{where}: no series has {series!r} as Series.id, "
                                       f"SeriesInstanceUID or SeriesNumber (#N below, also as '#N'; "
                                       f"an index [N] is an int or '[N]'); found:\n"
                                       f"{_listing(found)}")  # fmt: skip
        return chosen
    return list(found)


def select_series(found: ScanResult, series: Series | str | int | None, where: str) -> Series:
    """The one series ``series`` names among ``found`` (see :func:`load`), or a typed error."""
    if isinstance(series, Series):
        if found and series.id not in {s.id for s in found}:
            raise SeriesSelectionError(f"{where}: series={series.id!r} was not found there; "
                                       f"found:\n{_listing(found)}")  # fmt: skip
        return series
    candidates = _candidates(found, series, where)
    if len(candidates) == 1:
        return candidates[0]
    main = main_series(candidates)
    if main is not None:
        return main
    if len({s.uid for s in candidates}) == 1:
        raise MixedGeometryError(
            f"{where}: series {candidates[0].uid} holds {len(candidates)} groups of different "
            f"orientation or size that cannot be stacked:\n{_listing(found, candidates)}\npass "
            f"series='<id>' (e.g. {candidates[0].id!r}) to load one group",
            files=[f for s in candidates for f in s.files[:2]], uid=candidates[0].uid,
            groups=tuple(s.id for s in candidates),
        )  # fmt: skip
    matched = f" match {series!r} (as SeriesNumber)" if isinstance(series, str) else " found"
    raise SeriesSelectionError(
        f"{where}: {len(candidates)} series{matched}; pass series= (an index, a Series, a "
        f"SeriesInstanceUID or SeriesNumber) to choose one:\n{_listing(found, candidates)}",
        files=[f for s in candidates for f in s.files[:1]],
        series=tuple(s.id for s in candidates),
    )


def describe(series: Series, options: Options | None = None) -> GeometryReport:
    """The geometry report of a scanned series from headers alone, without raising for gaps,
    uneven spacing or tilt (what ``Series.geometry`` shows)."""
    with map_exceptions(f"series {series.id}", files=series.files[:3], uid=series.uid):
        return describe_series(series, options)


def load_series(
    series: Series,
    options: Options | None = None,
    *,
    executor: Executor | None | str = "default",
    out: Any = None,
    **overrides: Any,
) -> Volume:
    """Load one scanned series; see :func:`load` for the options and ``out``."""
    from .stack import execute

    opts = Options.resolve(options, overrides)
    if series.damaged and opts.unreadable == "raise":
        raise _damaged_error(series, f"series {series.id}")
    n_damaged = len(series.damaged)
    skipped: FastvolError | None = None  # the last damage skipped, once a file was
    while True:
        # The load boundary: whatever a lower layer raises on bad input leaves as a fastvol error.
        with map_exceptions(f"series {series.id}", files=series.files[:3], uid=series.uid):
            plan = make_plan(series, opts)
            if skipped is not None and out is not None:
                _check_out_after_skip(plan, out, series, n_damaged, skipped)
            try:
                array = execute(plan, executor=executor, threads=opts.threads, out=out)
                break
            except (CorruptFileError, DecodeError, UnsupportedError) as exc:
                series = _without_damaged(exc, series, opts, n_damaged)
                skipped = exc
    volume = Volume(array=array, affine=plan.affine, geometry=plan.report, meta=plan.meta)
    if series.damaged:  # unreadable="skip": said where the volume is looked at
        return _with_skipped(volume, [name for name, _ in series.damaged])
    return volume


def _without_damaged(exc: FastvolError, series: Series, opts: Options, n_damaged: int) -> Series:
    """``series`` without the files whose pixel data ``exc`` found damaged when read (a
    compressed frame cut short or not what its header says: more damaged images of the series),
    for ``unreadable="skip"``; otherwise the error to raise, saying what to do."""
    bad = _damaged_pixels(exc, series)
    if not bad:
        dropped = [name for name, _ in series.damaged[n_damaged:]]
        if opts.unreadable == "skip" and dropped and set(exc.files) == set(series.files):
            raise type(exc)(
                f"series {series.id}: the pixel data of every file is damaged: {len(dropped)} "
                f"skipped (unreadable='skip'), then {exc.message}", files=[*dropped, *exc.files],
                uid=series.uid,
            ) from exc  # fmt: skip
        raise exc
    if opts.unreadable == "raise":
        raise type(exc)(f"{exc.message}; pass unreadable='skip' to load the series "
                        f"without {'it' if len(bad) == 1 else 'them'}",
                        files=exc.files, uid=exc.uid or series.uid, **exc._data) from exc  # fmt: skip
    return dataclasses.replace(
        series, records=tuple(r for r in series.records if r.path not in bad),
        damaged=(*series.damaged, *((name, exc.message) for name in bad)), _report=[],
    )  # fmt: skip


def _check_out_after_skip(plan: LoadPlan, out: Any, series: Series, n_damaged: int, skipped: FastvolError) -> None:
    """Raise when the volume left after skipping damaged files no longer fits ``out``."""
    given = tuple(getattr(out, "shape", ()))
    if given != plan.shape:
        raise InputError(
            f"series {series.id}: {len(series.damaged) - n_damaged} file(s) with damaged pixel "
            f"data skipped (unreadable='skip'), leaving a volume of shape {plan.shape} that out= "
            f"(shape {given}) cannot take; pass gaps='fill' to keep the shape, or no out=",
            files=[name for name, _ in series.damaged[n_damaged:]], uid=series.uid,
        ) from skipped  # fmt: skip


def _damaged_pixels(exc: FastvolError, series: Series) -> set[str]:
    """The files of ``series`` whose pixel data ``exc`` (raised while reading them) found
    damaged; empty when it names none, names a file of no frame left after them, or is a
    missing codec (not damage)."""
    if isinstance(exc, MissingDependencyError):
        return set()
    if isinstance(exc, UnsupportedError) and not getattr(exc, "damaged_meta", False):
        return set()  # valid data fastvol does not load (colour, ...): not damage
    named = set(exc.files)
    files = set(series.files)
    if not named or not named <= files or named == files:
        return set()
    return named


def _damaged_error(series: Series, where: str) -> UnreadableError:
    """The error of a series beside files the scan could not read (:attr:`Series.damaged`)."""
    names = [name for name, _ in series.damaged]
    why = "".join(f"\n  {text}" for _, text in series.damaged[:5])
    return UnreadableError(
        f"{where}: {len(names)} file(s) or folder(s) that may hold its slices could not be read "
        f"(damaged or refused by the OS), so it may lack slices; pass unreadable='skip' to load "
        f"what could be read{why}", files=names, uid=series.uid,
    )  # fmt: skip


def _nothing_found(found: ScanResult, where: str) -> Exception:
    skipped = "; ".join(f"{len(v)} {k}" + (f": {', '.join(v[:3])}" if len(found.skipped) * len(v) <= 3 else "")
                        for k, v in found.skipped.items()) or "no files"  # fmt: skip  # a few: named
    why = "".join(f"\n  {e}" for e in list(found.errors.values())[:5])
    if found.errors and "not DICOM" not in found.skipped:
        return CorruptFileError(f"{where}: no readable DICOM image series ({skipped}){why}",
                                files=list(found.errors)[:20])  # fmt: skip
    return NotDicomError(f"{where}: no DICOM image series found ({skipped}){why}",
                         files=[f for v in found.skipped.values() for f in v][:20])  # fmt: skip


def _unreadable(found: ScanResult, where: str, names: list[str] | None = None) -> UnreadableError:
    """The error of a path with unreadable files: ``names``, by default all of ``found``'s."""
    names = found.unreadable if names is None else names
    why = "".join(f"\n  {found.errors.get(n, n)}" for n in names[:5])
    return UnreadableError(
        f"{where}: {len(names)} file(s) or folder(s) could not be read, so a series may lack "
        f"slices; pass unreadable='skip' to load what could be read{why}", files=names,
    )  # fmt: skip


def load(
    path: Inputs | Series,
    options: Options | None = None,
    *,
    series: Series | str | int | None = None,
    executor: Executor | None | str = "default",
    storage_options: dict[str, Any] | None = None,
    cache: str | os.PathLike[str] | None = None,
    out: Any = None,
    **overrides: Any,
) -> Volume:
    """Load one DICOM series from a folder, a file, a list of files, or byte sources.

    Parameters
    ----------
    path
        Folder (walked recursively), file, files, URLs, file objects or
        :class:`~fastvol.sources.ByteSource` (see :func:`scan`); or a
        :class:`~fastvol.group.Series` from :func:`scan` (as :func:`load_series`).
    options
        A :class:`~fastvol.Options` (defaults raise on gaps, uneven spacing and ambiguous
        repeats). ``**overrides`` change single fields of it, tolerances included, e.g.
        ``load(path, gaps="fill", spacing_rtol=0.02)``:

        - ``gaps``: ``"raise"`` on missing slices, or ``"fill"`` (the full regular grid,
          missing slices set to ``fill_value``: NaN for float output, the dtype's minimum for
          integers; their indices in ``geometry.missing``).
        - ``irregular``: ``"raise"`` on steps that are not whole multiples of one step, or
          ``"resample"`` (linear, onto a regular grid of the median step, float32).
        - ``tilt``: ``"keep"`` (pixels untouched, exact sheared affine, a FastvolWarning) or
          ``"resample"`` (slices shifted in-plane onto an orthogonal grid, float32).
        - ``repeats``: ``"split"`` slices sharing a position into volumes (output
          ``(volume, slice, row, column)``) by the first tag that tells them apart
          (TemporalPositionIdentifier, TriggerTime, AcquisitionNumber, EchoNumbers, EchoTime,
          DiffusionBValue, (b-value, gradient), DimensionIndexValues), else by acquisition
          order (said in the report); ``"first"`` keeps the lowest InstanceNumber per position.
        - ``incomplete``: ``"raise"`` when a volume lacks slices, or ``"drop"`` such volumes.
        - ``select``: volumes of a 4D series by numpy indexing of the volume axis (an int gives
          a 3D array); frames of other volumes are never read.
        - ``rescale``: apply RescaleSlope/Intercept per slice (output: the smallest signed
          integer holding every value when they are whole, else float32); ``False`` returns
          stored values. ``dtype`` overrides the output dtype.
        - ``unreadable``: ``"raise"`` when a file that may be a slice of the series could not
          be read (permission denied, I/O error; or damaged: truncated, empty, unparseable;
          see ``Series.damaged``), or ``"skip"`` it (the volume's report and
          ``meta["unreadable_skipped"]`` say so). Compressed pixel data found damaged only
          when read (a frame cut short, or not in the codec its header names) is a
          :class:`~fastvol.CorruptFileError` naming the file, or skipped the same way.
        - ``threads``: ``None`` (the process's shared pool), ``1`` (the calling thread; for
          DataLoader and Dask workers) or a count.
        - tolerances: ``spacing_rtol``, ``orientation_tolerance``, ``position_rtol``,
          ``tilt_tolerance_deg`` (see :class:`~fastvol.Tolerances`).
    series
        Which series when ``path`` holds several: an index into :func:`scan`'s list, a
        :class:`~fastvol.group.Series`, a ``Series.id``/SeriesInstanceUID, or a SeriesNumber as
        a string. When omitted and several series are found, raises listing them (localizers of
        the same SeriesInstanceUID do not count: they are skipped and reported).
    executor
        ``"default"`` (as ``threads`` says), ``None`` (calling thread) or an Executor.
    storage_options, cache
        For URLs: see :func:`scan`.
    out
        A numpy array to fill instead of allocating one (e.g. a slot of a preallocated batch,
        or pinned memory): C-contiguous, writeable, exactly the load's shape and dtype
        (``scan`` then ``Series.geometry.shape`` tell the shape before reading pixels; pass
        ``dtype=`` to fix the dtype). ``Volume.array`` is then ``out``. Otherwise an
        :class:`~fastvol.InputError` naming the expected shape and dtype, before any pixel is
        read. Without ``out``, an output of 16 MiB or more is made on a block this process
        recycles once every array made from it is gone (:mod:`fastvol.buffers`; the
        ``FASTVOL_BUFFER_CACHE`` environment variable sets its limit, 1 GiB by default, ``0``
        turns it off), so a loop of loads pays the kernel's zeroing of fresh pages once.

    Raises
    ------
    SeriesSelectionError
        Several series and no ``series=``.
    GeometryError
        Gaps, uneven spacing, ambiguous repeats or mixed geometry (each subclass names the files
        and the option that loads the series anyway).
    UnreadableError
        A file or folder that may hold the series' slices could not be read, or is damaged
        (unless ``unreadable="skip"``).
    PathNotFoundError, NotDicomError, CorruptFileError, UnsupportedError, DecodeError
        Missing paths; unreadable, truncated or unsupported files.
    """
    opts = Options.resolve(options, overrides)  # bad options fail before any file is read
    if isinstance(path, Series):  # one already scanned: load(scan(folder)[0]) as one expects
        if series is not None:
            raise InputError(f"series={series!r} with a Series given as path: give one of them")
        return load_series(path, opts, executor=executor, out=out)
    found = scan(path, extra_tags=opts.extra_tags, storage_options=storage_options, cache=cache)
    chosen = _choose(found, path, opts, series)
    return load_series(chosen, opts, executor=executor, out=out)  # says what was skipped


def _with_skipped(volume: Volume, names: list[str]) -> Volume:
    """``volume`` whose report warns that files of its path were skipped, and whose meta lists
    them (``unreadable_skipped``)."""
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    text = (f"{len(names)} unreadable or damaged file(s) beside the series were skipped "
            f"(unreadable='skip'), so slices may be missing: {shown}")  # fmt: skip
    left_out = tuple((name, "unreadable or damaged (unreadable='skip')") for name in names)
    geometry = dataclasses.replace(volume.geometry, warnings=(*volume.geometry.warnings, text),
                                   skipped=(*volume.geometry.skipped, *left_out))  # fmt: skip
    return dataclasses.replace(volume, geometry=geometry, meta={**volume.meta, "unreadable_skipped": list(names)})


def find_series(
    path: Inputs,
    options: Options,
    *,
    series: Series | str | int | None = None,
    storage_options: dict[str, Any] | None = None,
    cache: str | os.PathLike[str] | None = None,
) -> Series:
    """The series :func:`load` would load from ``path``, found from headers alone (the same
    errors: unreadable files, nothing found, several series and no ``series=``)."""
    found = scan(path, extra_tags=options.extra_tags, storage_options=storage_options, cache=cache)
    return _choose(found, path, options, series)


def _choose(found: ScanResult, path: Inputs, options: Options, series: Series | str | int | None) -> Series:
    where = os.fspath(path) if isinstance(path, (str, os.PathLike)) else "the given files"
    raising = options.unreadable == "raise"
    if not found:
        if found.unreadable and raising:  # nothing to load, but something could not be read
            raise _unreadable(found, where)
        raise _nothing_found(found, where)
    chosen = select_series(found, series, where)
    if chosen.damaged and raising:  # only what may be its slices refuses it
        raise _damaged_error(chosen, where)
    return chosen


#: What a scanned Series delegates to (injected, so group.py never imports this module).
_SERVICES = (load_series, describe)
