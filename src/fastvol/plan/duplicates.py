"""Duplicates: files that claim one SOPInstanceUID (and frame) count once, if they are copies.

A folder often holds the same instance twice (exported twice, copied under another name). Such
copies are dropped, but a file that merely *claims* an instance's SOPInstanceUID may hold other
pixels or lie elsewhere (an edited or misfiled copy); keeping whichever sorts first would put
its pixels or position into the volume silently. So a copy is dropped only when it agrees with
the instance it duplicates, in two steps:

- here, from headers alone (:func:`dedupe`, run by every plan, ``Series.geometry`` included):
  the facts in :data:`FACTS` (position, orientation, spacing, pixel format, rescale, the tags
  that split volumes) must agree, else :class:`~fastvol.errors.DuplicateInstanceError`;
- when a load reads pixels (:func:`fastvol.stack.execute`), each kept frame's stored values are
  compared with its copy's (:attr:`fastvol.plan.LoadPlan.duplicates`), read through the copy's
  own byte source: only duplicates cost a read. A geometry report never reads pixels, so it
  compares headers only.

The transfer syntax need not agree: stored values are compared after decoding, so a copy
re-encoded losslessly is a copy, and a lossy one is not.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from .._frozen import frozen
from ..dicom import HEADER_FIELDS, HeaderRecord
from ..errors import DuplicateInstanceError

__all__ = ["FACTS", "Deduped", "conflict_error", "dedupe", "differences"]

#: Header facts a copy must share with the instance it duplicates: what places the frame,
#: shapes its pixels, scales its values and tells volumes apart.
FACTS: tuple[str, ...] = (
    "image_position", "image_orientation", "pixel_spacing", "slice_thickness",
    "spacing_between_slices", "gantry_tilt",
    "rows", "columns", "samples_per_pixel", "photometric_interpretation", "bits_allocated",
    "bits_stored", "high_bit", "pixel_representation", "planar_configuration",
    "number_of_frames", "pixel_kind", "mosaic",
    "rescale_slope", "rescale_intercept", "units",
    "temporal_position_identifier", "trigger_time", "acquisition_number", "echo_number",
    "echo_time", "diffusion_b_value", "diffusion_gradient", "dimension_index", "stack_id",
)  # fmt: skip
_KEYWORDS = {f.name: f.keyword for f in HEADER_FIELDS}
#: Numbers agree within these (DS strings of one value may be written with other digits).
_REL_TOL, _ABS_TOL = 1e-7, 1e-4


@frozen(eq=False)
class Deduped:
    """Records with each instance once, and the copies dropped.

    Attributes
    ----------
    records
        Each ``(SOPInstanceUID, frame)`` once, in path order (the first file by name is kept).
    dropped
        Paths of the files dropped as copies, each once, in path order.
    pairs
        ``(kept, copy)`` records of every dropped frame, for the pixel comparison of a load.
    """

    records: tuple[HeaderRecord, ...]
    dropped: tuple[str, ...]
    pairs: tuple[tuple[HeaderRecord, HeaderRecord], ...]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        # NaN: a value present but unusable (convert.INVALID_SCALE) is the same in both copies
        return (a == b or math.isclose(a, b, rel_tol=_REL_TOL, abs_tol=_ABS_TOL)
                or (math.isnan(a) and math.isnan(b)))  # fmt: skip
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return bool(a == b)


def differences(kept: HeaderRecord, copy: HeaderRecord) -> list[str]:
    """The facts of :data:`FACTS` on which two records of one instance disagree, in words."""
    return [f"{_KEYWORDS.get(name, name)} {getattr(kept, name)!r} vs {getattr(copy, name)!r}"
            for name in FACTS if not _same(getattr(kept, name), getattr(copy, name))]  # fmt: skip


def conflict_error(kept: str, copy: str, sop_instance_uid: str, frame: int, n_frames: int, what: str,
                   *, name: str, uid: str | None) -> DuplicateInstanceError:  # fmt: skip
    """The error for two files that claim one instance but differ in ``what``."""
    which = f" (frame {frame})" if n_frames > 1 else ""
    return DuplicateInstanceError(
        f"series {name}: {kept} and {copy} claim the same SOPInstanceUID {sop_instance_uid}"
        f"{which} but differ in {what}: they are not copies of one instance and fastvol does not "
        f"guess which is right; move the wrong file out of the folder, or load the files you "
        f"want as a list (fastvol.load([...]))",
        files=[kept, copy], uid=uid, sop_instance_uid=sop_instance_uid, frame=frame,
    )  # fmt: skip


def dedupe(records: Sequence[HeaderRecord], *, name: str = "", uid: str | None = None) -> Deduped:
    """Each (SOPInstanceUID, frame) once, in path order; copies whose headers agree dropped.

    Raises
    ------
    DuplicateInstanceError
        Two files claim one instance (and frame) but disagree on a fact of :data:`FACTS`.
    """
    seen: dict[tuple[str, int], HeaderRecord] = {}
    dropped: dict[str, None] = {}
    pairs: list[tuple[HeaderRecord, HeaderRecord]] = []
    for rec in sorted(records, key=lambda r: (r.path, r.frame)):
        key = (rec.sop_instance_uid or rec.path, rec.frame)
        kept = seen.get(key)
        if kept is None:
            seen[key] = rec
            continue
        diff = differences(kept, rec)
        if diff:
            raise conflict_error(kept.path, rec.path, rec.sop_instance_uid, rec.frame,
                                 rec.number_of_frames, "; ".join(diff[:3]), name=name, uid=uid)  # fmt: skip
        dropped[rec.path] = None
        pairs.append((kept, rec))
    return Deduped(records=tuple(seen.values()), dropped=tuple(dropped), pairs=tuple(pairs))
