"""Sources: the frames a load reads, each with its byte source, output slot and rescale."""

from __future__ import annotations

from collections.abc import Sequence

from .._frozen import frozen
from ..dicom import HeaderRecord
from ..sources import LocalFile
from .layout import Layout
from .policy import Grid
from .types import Duplicate, FrameSource

__all__ = ["Frames", "duplicate_sources", "frame_source", "frame_sources"]


@frozen
class Frames:
    """What a load reads, and what each output slice came from.

    Attributes
    ----------
    sources
        One per frame read, in output order.
    records, slopes, intercepts
        Per output slice (a mosaic frame counts once per tile, see :meth:`per_tile`).
    """

    sources: tuple[FrameSource, ...]
    records: tuple[HeaderRecord, ...]
    slopes: tuple[float, ...]
    intercepts: tuple[float, ...]

    def per_tile(self, n_tiles: int) -> Frames:
        """The same frames, each record and rescale repeated for the tiles cut from it."""
        return Frames(
            sources=self.sources,
            records=tuple(r for r in self.records for _ in range(n_tiles)),
            slopes=tuple(x for x in self.slopes for _ in range(n_tiles)),
            intercepts=tuple(x for x in self.intercepts for _ in range(n_tiles)),
        )


def frame_sources(layout: Layout, grid: Grid, *, rescale: bool) -> Frames:
    """Volume ``v``, slice ``p`` (array order) -> slot ``v * grid.read_slices + grid.slot_of[p]``.

    Without ``rescale``, slope and intercept are 1 and 0 (stored values are returned).
    """
    sources: list[FrameSource] = []
    records: list[HeaderRecord] = []
    slopes: list[float] = []
    intercepts: list[float] = []
    per_volume = grid.read_slices
    for v in range(layout.n_volumes):
        for p in range(len(layout.stack.order)):
            rec = layout.record(v, p)
            slope = rec.rescale_slope if (rescale and rec.rescale_slope is not None) else 1.0
            icpt = rec.rescale_intercept if (rescale and rec.rescale_intercept is not None) else 0.0
            records.append(rec)
            slopes.append(float(slope))
            intercepts.append(float(icpt))
            sources.append(frame_source(rec, v * per_volume + int(grid.slot_of[p]), float(slope),
                                        float(icpt)))  # fmt: skip
    return Frames(sources=tuple(sources), records=tuple(records), slopes=tuple(slopes),
                  intercepts=tuple(intercepts))  # fmt: skip


def frame_source(rec: HeaderRecord, slot: int, slope: float = 1.0, intercept: float = 0.0) -> FrameSource:
    """The frame of ``rec``, read through its byte source, into ``slot``."""
    return FrameSource(
        path=rec.path, slot=slot, transfer_syntax=rec.transfer_syntax,
        pixel_offset=rec.pixel_offset,
        source=rec.source if rec.source is not None else LocalFile(rec.path),
        pixel_length=rec.pixel_length, file_size=rec.file_size,
        frame=rec.frame, n_frames=rec.number_of_frames,
        slope=slope, intercept=intercept, extended_offsets=rec.extended_offsets,
    )  # fmt: skip


def duplicate_sources(pairs: Sequence[tuple[HeaderRecord, HeaderRecord]], frames: Frames
                      ) -> tuple[Duplicate, ...]:  # fmt: skip
    """The ``(kept, copy)`` pairs whose kept frame the load reads, as frame sources.

    The kept side is the load's own :class:`FrameSource` (its byte source shared with the
    fill); the copy reads through its own record's source, into no slot.
    """
    read = {(s.path, s.frame): s for s in frames.sources}
    out: list[Duplicate] = []
    for kept, copy in pairs:
        src = read.get((kept.path, kept.frame))
        if src is not None:
            out.append(Duplicate(kept=src, copy=frame_source(copy, -1),
                                 sop_instance_uid=copy.sop_instance_uid))  # fmt: skip
    return tuple(out)
