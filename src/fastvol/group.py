"""Group into series: header records become :class:`Series`, each one stackable volume.

Files are grouped by SeriesInstanceUID, then split where one volume cannot hold them: different
orientation, Rows/Columns, pixel spacing or samples per pixel, and localizers (ImageType
LOCALIZER/SCOUT) apart from the main stack. A Series whose UID was split gets a ``part`` number,
so ``Series.id`` stays unique (``uid`` or ``uid#part``).
"""

from __future__ import annotations

import operator
import os
from collections.abc import Iterable, Sequence
from dataclasses import field
from typing import TYPE_CHECKING, Any

from ._ckernels import group_by_slots
from ._frozen import frozen
from .dicom import HeaderRecord

if TYPE_CHECKING:
    from .report import GeometryReport
    from .volume import Volume

__all__ = ["ORIENTATION_DECIMALS", "SPACING_DECIMALS", "Series", "group_series"]

#: Orientation cosines agreeing to this many decimals are one orientation (about 0.006 degrees).
ORIENTATION_DECIMALS = 4
#: Pixel spacings agreeing to this many decimals (mm) are one spacing.
SPACING_DECIMALS = 4


@frozen
class Series:
    """One stackable series found by :func:`fastvol.scan`: files that can form one volume.

    Attributes
    ----------
    records
        Header records of the series' files (in scan order; slice order comes from geometry).
    part
        0 when the SeriesInstanceUID holds one group, else 1, 2, ... for each group it was split into.
    siblings
        Records of the other groups under the same UID (localizers, other orientations), kept so a
        load can report what it skipped.
    services
        ``(load_series, describe)`` of :mod:`fastvol.api`, set by :func:`fastvol.scan` so that
        :meth:`load` and :attr:`geometry` work without this value module importing the loader.
    damaged
        ``(file, why)`` of the files the scan could not read that may be slices of this series
        (damaged images of its UID; damaged images of unknown series, and files the OS refused,
        in its folders; folders that could not be listed): its load refuses unless
        ``unreadable="skip"``, which loads without them and says so. Set by :func:`fastvol.scan`.
    """

    records: tuple[HeaderRecord, ...]
    part: int = 0
    siblings: tuple[HeaderRecord, ...] = ()
    services: tuple[Any, ...] = field(default=(), repr=False, compare=False)
    damaged: tuple[tuple[str, str], ...] = field(default=(), repr=False, compare=False)
    _report: list[Any] = field(default_factory=list, repr=False, compare=False)

    @property
    def uid(self) -> str:
        """SeriesInstanceUID."""
        return self.records[0].series_instance_uid

    @property
    def id(self) -> str:
        """Unique key: the UID, or ``uid#part`` when the UID was split into several groups."""
        return self.uid if self.part == 0 else f"{self.uid}#{self.part}"

    @property
    def number(self) -> int | None:
        """SeriesNumber."""
        return self.records[0].series_number

    @property
    def description(self) -> str:
        """SeriesDescription."""
        return self.records[0].series_description

    @property
    def modality(self) -> str:
        """Modality (CT, MR, PT, ...)."""
        return self.records[0].modality

    @property
    def n_files(self) -> int:
        """Number of files in this series."""
        return len(self.files)

    @property
    def n_frames(self) -> int:
        """Number of frames (slices) in this series, over all its files."""
        return len(self.records)

    @property
    def files(self) -> tuple[str, ...]:
        """File paths, in scan order (each once, also when it holds several frames)."""
        return tuple(dict.fromkeys(r.path for r in self.records))

    @property
    def is_localizer(self) -> bool:
        """True when every file of the group is a localizer/scout image."""
        return all(r.is_localizer for r in self.records)

    @property
    def geometry(self) -> GeometryReport:
        """The geometry report from headers alone, before any pixel is read (computed once)."""
        if not self._report:
            self._report.append(self._service(1)(self))
        return self._report[0]  # type: ignore[no-any-return]

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape the default load would return, from headers alone."""
        return self.geometry.shape

    def load(self, options: Any = None, **overrides: Any) -> Volume:
        """Load this series as a :class:`~fastvol.Volume`; options as for :func:`fastvol.load`."""
        return self._service(0)(self, options, **overrides)  # type: ignore[no-any-return]

    def _service(self, index: int) -> Any:
        if not self.services:
            from .errors import InputError

            raise InputError(f"series {self.id}: not made by fastvol.scan; use "
                             f"fastvol.load_series(series) instead")  # fmt: skip
        return self.services[index]

    @property
    def folder(self) -> str:
        """The folder holding the series' files (their common parent)."""
        parents = sorted({os.path.dirname(r.path) for r in self.records})
        if len(parents) <= 1:
            return parents[0] if parents else ""
        try:
            return os.path.commonpath(parents)
        except ValueError:  # absolute and relative paths mixed
            return parents[0]

    def __str__(self) -> str:
        first = self.records[0]
        frames = f", {self.n_frames} frames" if self.n_frames != self.n_files else ""
        return (
            f"{self.id} #{self.number} {self.modality} {self.description!r}: {self.n_files} "
            f"file{'s' if self.n_files != 1 else ''}"
            f"{frames}, {first.rows}x{first.columns}{' (localizer)' if self.is_localizer else ''}"
            f" in {self.folder or '.'}"
        )

    def __repr__(self) -> str:
        return f"<Series {self}>"


def _rounded(values: tuple[float, ...] | None, decimals: int, memo: dict[Any, Any]) -> Any:
    # Series share a handful of distinct tuples: round each once, not once per file.
    if values is None:
        return None
    key = (values, decimals)
    if key not in memo:
        memo[key] = tuple(round(v, decimals) + 0.0 for v in values)
    return memo[key]


def _group_key(r: HeaderRecord, memo: dict[Any, Any]) -> tuple[Any, ...]:
    return (
        r.is_localizer,
        _rounded(r.image_orientation, ORIENTATION_DECIMALS, memo),
        r.rows,
        r.columns,
        _rounded(r.pixel_spacing, SPACING_DECIMALS, memo),
        r.samples_per_pixel,
        r.is_enhanced,
    )


#: What a record's group key (:func:`_group_key`) is made of, with its SeriesInstanceUID first.
_KEY_PARTS = ("series_instance_uid", "image_type", "image_orientation", "rows", "columns",
              "pixel_spacing", "samples_per_pixel", "is_enhanced")  # fmt: skip


def _by_uid_and_key(records: Sequence[HeaderRecord]) -> dict[str, dict[tuple[Any, ...], list[HeaderRecord]]]:
    """uid -> group key -> records, each in order of first appearance.

    The records are first sorted out by the parts of their key (one pass, in C where built:
    the files of a series share most values, often the very objects), and the key is computed
    once per distinct parts.
    """
    memo: dict[Any, Any] = {}
    by_uid: dict[str, dict[tuple[Any, ...], list[HeaderRecord]]] = {}
    key_of: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    merged = False
    for parts, same in group_by_slots(records, HeaderRecord, _KEY_PARTS).items():
        groups = by_uid.setdefault(parts[0], {})
        key = key_of[parts] = _group_key(same[0], memo)
        merged |= key in groups
        groups.setdefault(key, []).extend(same)
    if merged:
        # Parts that differ and give one key (two ImageTypes, neither a localizer): their
        # records may interleave, so the group is laid out again in scan order.
        by_uid = {}
        get = operator.attrgetter(*_KEY_PARTS)
        for rec in records:
            parts = get(rec)
            by_uid.setdefault(parts[0], {}).setdefault(key_of[parts], []).append(rec)
    return by_uid


#: Places in a group key holding rounded values, and the step of their rounding.
_ROUNDED_PARTS = {1: 10.0**-ORIENTATION_DECIMALS, 4: 10.0**-SPACING_DECIMALS}


def _join_rounding_neighbours(groups: dict[tuple[Any, ...], list[HeaderRecord]],
                              records: Sequence[HeaderRecord]) -> dict[tuple[Any, ...], list[HeaderRecord]]:  # fmt: skip
    """Join groups of one UID whose keys differ only by rounded values one rounding step apart.

    Rounding sorts files fast but is no tolerance: values 1e-9 apart can round to either side of
    a boundary (0.12345 and 0.1234499999). Joined groups are checked again by the plan, against
    the orientation tolerance, like any series.
    """
    keys = list(groups)
    parent = list(range(len(keys)))

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    # Neighbours share every other part and lie within one step on each rounded value: sweep
    # each bucket of other parts along the first orientation value, not over every pair (a
    # folder whose files all carry one UID may hold thousands of groups).
    buckets: dict[tuple[Any, ...], list[int]] = {}
    for k, key in enumerate(keys):
        if key[1] and key[1][0] == key[1][0]:  # an orientation, not None or NaN
            buckets.setdefault(tuple(v for i, v in enumerate(key) if i not in _ROUNDED_PARTS), []).append(k)
    reach = _ROUNDED_PARTS[1] * 1.001
    for bucket in buckets.values():
        bucket.sort(key=lambda k: keys[k][1][0])
        for a, i in enumerate(bucket):
            for j in bucket[a + 1:]:
                if keys[j][1][0] - keys[i][1][0] > reach:
                    break
                if _neighbours(keys[i], keys[j]):
                    parent[root(j)] = root(i)
    if all(parent[i] == i for i in range(len(keys))):
        return groups
    joined: dict[tuple[Any, ...], list[HeaderRecord]] = {}
    key_of = {id(r): keys[root(k)] for k, key in enumerate(keys) for r in groups[key]}
    for rec in records:  # scan order, as every group is
        joined_key = key_of.get(id(rec))
        if joined_key is not None:
            joined.setdefault(joined_key, []).append(rec)
    return joined


def _neighbours(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    for i, (x, y) in enumerate(zip(a, b)):
        if x == y:
            continue
        step = _ROUNDED_PARTS.get(i)
        if step is None or x is None or y is None or len(x) != len(y):
            return False
        if not all(abs(u - v) <= step * 1.001 for u, v in zip(x, y)):  # NaN: never near
            return False
    return True


def group_series(records: Iterable[HeaderRecord], *, services: tuple[Any, ...] = ()) -> list[Series]:
    """Group header records into stackable series.

    Records without pixel data must be filtered out before. Series come out ordered by
    SeriesNumber, then UID, then group size (largest first), so runs are repeatable.
    ``services`` become each Series' :attr:`Series.services` (what :func:`fastvol.scan` gives).
    """
    if not isinstance(records, (list, tuple)):
        records = list(records)  # read more than once
    by_uid = _by_uid_and_key(records)
    for uid, groups in by_uid.items():
        if len(groups) > 1:
            by_uid[uid] = _join_rounding_neighbours(groups, records)
    # A UID split into groups keeps the others' records as siblings, in scan order.
    split: dict[str, list[HeaderRecord]] = {uid: [] for uid, groups in by_uid.items() if len(groups) > 1}
    if split:
        for rec in records:
            in_split = split.get(rec.series_instance_uid)
            if in_split is not None:
                in_split.append(rec)
    out: list[Series] = []
    for uid, groups in by_uid.items():
        # Largest non-localizer group first; it gets part 1 when the UID splits.
        ordered = sorted(groups.items(), key=lambda kv: (kv[0][0], -len(kv[1])))
        if len(ordered) == 1:
            out.append(Series(records=tuple(ordered[0][1]), services=services))
            continue
        uid_records = split[uid]
        for part, (_, group_records) in enumerate(ordered, start=1):
            mine = {id(r) for r in group_records}
            siblings = tuple(r for r in uid_records if id(r) not in mine)
            out.append(Series(records=tuple(group_records), part=part, siblings=siblings, services=services))
    out.sort(key=lambda s: (s.number if s.number is not None else 1 << 30, s.uid, s.part))
    return out


def main_series(candidates: Sequence[Series]) -> Series | None:
    """The one non-localizer group when all other candidates are localizers of the same UID."""
    volumes = [s for s in candidates if not s.is_localizer]
    if len(volumes) == 1 and len({s.uid for s in candidates}) == 1:
        return volumes[0]
    return None
