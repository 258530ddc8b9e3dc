"""The header scan of a cohort, read by the worker processes that then convert it.

The main process lists the files (nothing is opened), cuts the list into parts, and the
workers read the parts' headers while the main process waits: the scan runs on every core,
in processes that have the loader imported already, and the main process never starts numba.
The parts come back in listing order and are grouped into series here, exactly as
:func:`fastvol.scan` groups the whole list (each file's record depends on that file alone).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..api import ScanResult
    from ..sources import ByteSource

__all__ = ["read_part", "scan_in_pool"]

#: Fewest files worth a part of their own: below this, shipping the part costs more than it saves.
MIN_PART = 64
#: Parts per worker: enough for the workers to finish together when some files cost more
#: (enhanced multi-frame files expand to a record per frame).
PARTS_PER_JOB = 4


def read_part(sources: Sequence[ByteSource], extra_tags: Sequence[str | int]) -> tuple[Any, ...]:
    """The header pass over one part (runs in a worker): ``(records, skipped, errors, pixelless)``."""
    from ..headers import read_records

    return read_records(sources, extra_tags=extra_tags)


def _parts(sources: list[ByteSource], jobs: int) -> list[list[ByteSource]]:
    size = max(MIN_PART, -(-len(sources) // (jobs * PARTS_PER_JOB)))
    return [sources[i : i + size] for i in range(0, len(sources), size)]


def scan_in_pool(inputs: Any, pool: Any, jobs: int, extra_tags: Sequence[str | int]) -> ScanResult | None:
    """:func:`fastvol.scan` of local ``inputs`` with the headers read in ``pool``'s workers.

    ``None`` when the inputs are not all local files (URLs and file objects: their scan stays
    :func:`fastvol.scan`'s, which fetches first blocks concurrently) or too few to split.
    A part whose worker died is read here instead.
    """
    from concurrent.futures.process import BrokenProcessPool

    from ..api import scan_result
    from ..find import locate
    from ..options import check_extra_tags
    from ..sources.local import LocalFile
    from ..sources.urls import is_url

    items = [inputs] if isinstance(inputs, (str, os.PathLike)) else inputs
    if not isinstance(items, (list, tuple)) or not all(
        isinstance(i, (str, os.PathLike)) and not is_url(os.fspath(i)) for i in items
    ):
        return None  # URLs, file objects, byte sources
    extra_tags = check_extra_tags(extra_tags)
    sources, unlisted = locate(items)
    if len(sources) < 2 * MIN_PART or not all(type(s) is LocalFile for s in sources):
        return None
    parts = _parts(sources, jobs)
    futures = [pool.submit(read_part, part, extra_tags) for part in parts]
    records: list[Any] = []
    skipped: dict[str, list[str]] = {}
    errors: dict[str, str] = {}
    pixelless: list[tuple[str, str, str]] = []
    for future, part in zip(futures, parts):
        try:
            part_records, part_skipped, part_errors, part_pixelless = future.result()
        except BrokenProcessPool:
            part_records, part_skipped, part_errors, part_pixelless = read_part(part, extra_tags)
        records += part_records
        for reason, names in part_skipped.items():  # first-seen order, as one pass gives
            skipped.setdefault(reason, []).extend(names)
        errors.update(part_errors)
        pixelless += part_pixelless
    return scan_result(records, skipped, errors, unlisted, pixelless)
