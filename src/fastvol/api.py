"""The public calls, reading like the pipeline: find files -> read headers -> group -> plan -> stack."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from concurrent.futures import Executor
from typing import Any, Literal

from .errors import (
    CorruptFileError,
    MixedGeometryError,
    NotDicomError,
    PathNotFoundError,
    SeriesSelectionError,
)
from .group import Series, group_series, main_series
from .headers import read_records
from .plan import LoadOptions, make_plan
from .sources import ByteSource, as_sources
from .volume import Volume

__all__ = ["ScanResult", "load", "load_series", "scan"]

PathLike = str | os.PathLike[str]


class ScanResult(list[Series]):
    """The series found by :func:`scan` (a list), plus what was skipped and why.

    Attributes
    ----------
    skipped
        Reason -> files: ``"not DICOM"``, ``"not a regular file"``, ``"unreadable"``,
        ``"DICOMDIR"``, ``"no pixel data"``.
    errors
        File -> why it was unreadable.
    """

    skipped: dict[str, list[str]]
    errors: dict[str, str]

    def __init__(self, series: Iterable[Series] = (), skipped: dict[str, list[str]] | None = None,
                 errors: dict[str, str] | None = None):  # fmt: skip
        super().__init__(series)
        self.skipped = skipped or {}
        self.errors = errors or {}

    def __reduce__(self) -> tuple[Any, ...]:
        return (ScanResult, (list(self), self.skipped, self.errors))

    def summary(self) -> str:
        """One line per series, then the skipped counts."""
        lines = [f"[{i}] {s}" for i, s in enumerate(self)]
        for reason, files in sorted(self.skipped.items()):
            lines.append(f"skipped {len(files)} file(s): {reason}")
        return "\n".join(lines)


def scan(
    paths: PathLike | ByteSource | Iterable[PathLike | ByteSource],
    *,
    extra_tags: Sequence[str | int] = (),
) -> ScanResult:
    """Find the DICOM image series under ``paths``, reading headers only.

    Parameters
    ----------
    paths
        Files and folders (walked recursively), or byte sources. DICOM is recognised by
        content, not by suffix.
    extra_tags
        DICOM keywords or integer tags of further attributes to read into each record
        (``HeaderRecord.extra``, plain values keyed by keyword).

    Returns
    -------
    ScanResult
        A list of :class:`~fastvol.group.Series`, each one stackable group (a SeriesInstanceUID
        split by orientation, size, pixel spacing and localizers), ordered by SeriesNumber; its
        ``skipped`` maps a reason to the files not used (non-DICOM, not regular files,
        DICOMDIR, objects without pixels, unreadable headers). Nothing here is fatal but a path
        that does not exist.
    """
    try:
        sources = as_sources(paths)
    except PathNotFoundError as exc:  # a missing path has always been a NotDicomError here
        raise NotDicomError(exc.message, files=exc.files) from exc
    records, skipped, errors = read_records(sources, extra_tags=tuple(extra_tags))
    return ScanResult(group_series(records), skipped, errors)


def _select(found: ScanResult, series: Series | str | int | None, where: str) -> Series:
    listing = "\n".join(f"  [{i}] {s}" for i, s in enumerate(found))
    if isinstance(series, Series):
        return series
    if isinstance(series, int):
        if not -len(found) <= series < len(found):
            raise SeriesSelectionError(f"{where}: series={series} but {len(found)} series found:\n{listing}")
        return found[series]
    candidates = list(found)
    if isinstance(series, str):
        candidates = [s for s in found if series in (s.id, s.uid, str(s.number))]
        if not candidates:
            raise SeriesSelectionError(f"{where}: no series matches {series!r}; found:\n{listing}")
    if len(candidates) == 1:
        return candidates[0]
    main = main_series(candidates)
    if main is not None:
        return main
    if len({s.uid for s in candidates}) == 1:
        raise MixedGeometryError(
            f"{where}: series {candidates[0].uid} holds {len(candidates)} groups of different "
            f"orientation or size that cannot be stacked:\n{listing}\npass series='<id>' (e.g. "
            f"{candidates[0].id!r}) to load one group",
            files=[f for s in candidates for f in s.files[:2]], uid=candidates[0].uid,
            groups=tuple(s.id for s in candidates),
        )  # fmt: skip
    raise SeriesSelectionError(
        f"{where}: {len(candidates)} series found; pass series= (an index, a Series, a "
        f"SeriesInstanceUID or SeriesNumber) to choose one:\n{listing}",
        files=[f for s in candidates for f in s.files[:1]],
        series=tuple(s.id for s in candidates),
    )


def load_series(
    series: Series,
    *,
    gaps: Literal["raise", "fill"] = "raise",
    irregular: Literal["raise", "resample"] = "raise",
    tilt: Literal["keep", "resample"] = "keep",
    repeats: Literal["split", "first"] = "split",
    incomplete: Literal["raise", "drop"] = "raise",
    select: int | slice | Sequence[int] | None = None,
    rescale: bool = True,
    dtype: Any = None,
    fill_value: float | None = None,
    executor: Executor | None | str = "default",
    **tolerances: float,
) -> Volume:
    """Load one scanned series; see :func:`load` for the options."""
    import numpy as np

    from .errors import InputError
    from .stack import execute

    if isinstance(executor, str) and executor != "default":
        raise InputError(f"executor={executor!r}: expected 'default', None or an Executor")
    if dtype is not None:
        try:
            dtype = np.dtype(dtype)
        except TypeError:
            raise InputError(f"dtype={dtype!r} is not a numpy dtype") from None
    try:
        options = LoadOptions(
            gaps=gaps, irregular=irregular, tilt=tilt, repeats=repeats, incomplete=incomplete,
            select=select if isinstance(select, (int, slice, type(None))) else tuple(select),
            rescale=rescale, dtype=None if dtype is None else np.dtype(dtype).str,
            fill_value=fill_value,
            **tolerances,
        )  # fmt: skip
    except TypeError as exc:
        raise InputError(f"unknown option: {exc}") from None
    plan = make_plan(series, options)
    array = execute(plan, executor=executor)
    return Volume(array=array, affine=plan.affine, geometry=plan.report, meta=plan.meta)


def load(
    path: PathLike | Iterable[PathLike],
    *,
    series: Series | str | int | None = None,
    gaps: Literal["raise", "fill"] = "raise",
    irregular: Literal["raise", "resample"] = "raise",
    tilt: Literal["keep", "resample"] = "keep",
    repeats: Literal["split", "first"] = "split",
    incomplete: Literal["raise", "drop"] = "raise",
    select: int | slice | Sequence[int] | None = None,
    rescale: bool = True,
    dtype: Any = None,
    fill_value: float | None = None,
    executor: Executor | None | str = "default",
    **tolerances: float,
) -> Volume:
    """Load one DICOM series from a folder, a file, or a list of files.

    Parameters
    ----------
    path
        Folder (walked recursively), file, or files.
    series
        Which series when ``path`` holds several: an index into :func:`scan`'s list, a
        :class:`~fastvol.group.Series`, a ``Series.id``/SeriesInstanceUID, or a SeriesNumber as
        a string. When omitted and several series are found, raises listing them (localizers of
        the same SeriesInstanceUID do not count: they are skipped and reported).
    gaps
        ``"raise"`` (default) on missing slices, or ``"fill"``: return the full regular grid,
        missing slices set to ``fill_value`` (default NaN for float output, the dtype's minimum
        for integer output), their indices in ``geometry.missing``.
    irregular
        ``"raise"`` (default) on steps that are not whole multiples of one step, or
        ``"resample"``: linear interpolation onto a regular grid of the median step (float32).
    tilt
        ``"keep"`` (default): pixels untouched, exact sheared affine, a FastvolWarning; or
        ``"resample"``: slices shifted in-plane onto an orthogonal grid (float32).
    repeats
        ``"split"`` (default): slices sharing a position become volumes (output
        ``(volume, slice, row, column)``) ordered by the first of TemporalPositionIdentifier
        (TemporalPositionIndex), TriggerTime, AcquisitionNumber, EchoNumbers, EchoTime,
        DiffusionBValue, (b-value, gradient), DimensionIndexValues that tells them apart; failing
        that, by acquisition order (AcquisitionNumber, AcquisitionTime, InstanceNumber within
        each position), said in the report; ``"first"``: keep the lowest InstanceNumber at each
        position.
    incomplete
        ``"raise"`` (default) when a volume lacks slices (an interrupted run), or ``"drop"``
        to keep only complete volumes (dropped files in ``geometry.skipped``).
    select
        Volumes to load from a 4D series, by numpy indexing of the volume axis: an int (returns
        a 3D array), a slice or a sequence of ints (keeps the volume axis). Frames of other
        volumes are never read or decoded.
    rescale
        Apply RescaleSlope/RescaleIntercept per slice (default). Output dtype is then the smallest
        signed integer holding every value when slopes and intercepts are whole, else float32;
        ``False`` returns stored values in their stored dtype.
    dtype
        Output dtype, overriding the above.
    executor
        ``"default"`` (shared thread pool), ``None`` (calling thread) or an Executor.
    **tolerances
        ``spacing_rtol``, ``orientation_tolerance``, ``position_rtol``, ``tilt_tolerance_deg``
        (defaults in :mod:`fastvol.geometry`).

    Raises
    ------
    SeriesSelectionError
        Several series and no ``series=``.
    GeometryError
        Gaps, uneven spacing, ambiguous repeats or mixed geometry (each subclass names the files
        and the option that loads the series anyway).
    NotDicomError, CorruptFileError, UnsupportedError, DecodeError
        Unreadable, truncated or unsupported files.
    """
    found = scan(path)
    where = os.fspath(path) if isinstance(path, (str, os.PathLike)) else "the given files"
    if not found:
        skipped = "; ".join(f"{len(v)} {k}" for k, v in found.skipped.items()) or "no files"
        why = "".join(f"\n  {e}" for e in list(found.errors.values())[:5])
        if found.errors and "not DICOM" not in found.skipped:
            raise CorruptFileError(f"{where}: no readable DICOM image series ({skipped}){why}",
                                   files=list(found.errors)[:20])  # fmt: skip
        raise NotDicomError(f"{where}: no DICOM image series found ({skipped}){why}",
                            files=[f for v in found.skipped.values() for f in v][:20])  # fmt: skip
    chosen = _select(found, series, where)
    return load_series(
        chosen, gaps=gaps, irregular=irregular, tilt=tilt, repeats=repeats,
        incomplete=incomplete, select=select, rescale=rescale, dtype=dtype, fill_value=fill_value,
        executor=executor, **tolerances,
    )  # fmt: skip
