"""Decisions as data: what the planner chose or noticed, as a stable code and its facts.

A :class:`Decision` is a ``str`` whose value is its text, so ``GeometryReport.decisions`` and
``.warnings`` read as before (``"resample" in d``, JSON dumps), while new readers (sidecars,
reports) use :attr:`Decision.code` and :attr:`Decision.facts`. The text is never written by hand:
:func:`render` derives it from the code's template in :data:`TEMPLATES` and the facts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["TEMPLATES", "Decision", "render"]

#: Wording of each code. Besides the usual format specs, ``{name:firstN}`` writes the first N
#: items of a sequence as a list, and ``{name:?yes|no}`` writes ``yes`` when the fact is true.
TEMPLATES: dict[str, str] = {
    # Decisions: choices taken while planning.
    "duplicates_dropped": (
        "dropped {n} duplicate file(s) (same SOPInstanceUID and headers as a file kept; a load "
        "also compares their pixels): {files:first4}"
    ),
    "multiframe": "{n_files} multi-frame file(s): frames placed by their own geometry",
    "repeats_first": "repeats='first': kept 1 of each repeated position, skipped {skipped} files",
    "select": "select={select}: volumes {volumes:first16} of {n_volumes}; the others are not read",
    "repeats_by_order": (
        "positions repeat {n_volumes} times and no tag tells the volumes apart: volumes inferred "
        "from acquisition order ({tag} within each position)"
    ),
    "repeats_split": "positions repeat {n_volumes} times: split into volumes by {tag} {values:first8}",
    "incomplete_dropped": "incomplete='drop': {n_frames} frame(s) of incomplete volumes left out",
    "single_slice": "one slice: slice step {step:g} mm from {source}",
    "gaps_filled": "gaps='fill': {n_missing} missing slice(s) at grid indices {missing:first20} filled",
    "irregular_resampled": (
        "irregular='resample': {n_acquired} slices resampled linearly onto {n_slices} slices of "
        "{step:.4g} mm"
    ),
    "tilt_resampled": (
        "tilt='resample': {tilt_deg:.3f} deg shear removed by shifting each slice in-plane; "
        "affine is orthogonal"
    ),
    "mosaic": (
        "Siemens mosaic: {n_tiles} slices of {tile_rows}x{tile_cols} cut from each {rows}x{columns} "
        "image ({source}); positions corrected from the mosaic corner, stored "
        "{ascending:?ascending|descending} along the normal"
    ),
    "rescale_per_slice": "rescale slope/intercept vary per slice: applied per slice",
    "rescale_float": "rescale slope or intercept not whole: output float32",
    "dtype": "output dtype {dtype}{rescale:?| (stored values, rescale=False)}",
    "siblings_skipped": (
        "skipped {n_files} file(s) of the same SeriesInstanceUID with other geometry (localizers "
        "or other orientations)"
    ),
    # Warnings: what a reader of the volume should know.
    "pixel_spacing_missing": (
        "series {series}: PixelSpacing missing: in-plane spacing taken as 1 mm (as dcm2niix and "
        "SimpleITK do); distances in the affine may not be millimetres"
    ),
    "frames_of_reference": (
        "series {series}: its files name {n_frames} FrameOfReferenceUIDs (or none); {n_files} "
        "file(s) differ from the rest ({files:first3}): their positions may be in another coordinate system "
        "(stacked as given; move them out of the folder if they do not belong)"
    ),
    "gaps_present": (
        "{n_missing} slice(s) missing at grid indices {missing:first20}: a load raises unless "
        "gaps='fill'"
    ),
    "irregular_present": (
        "uneven slice steps {steps:first12} mm: a load raises unless irregular='resample'; affine "
        "uses the mean step"
    ),
    "tilt_kept": (
        "series {series}: stack leans {tilt_deg:.3f} deg off the slice normal (gantry tilt); "
        "pixels kept, affine is sheared; pass tilt='resample' for an orthogonal grid"
    ),
    "monochrome1": "MONOCHROME1: values returned as modality values, not inverted for display",
}


class _Fact:
    """A fact as ``str.format`` formats it: the usual specs, plus the two of :data:`TEMPLATES`
    (list prefix, two-way choice). Not a ``string.Formatter``: importing :mod:`string` costs a
    fresh process about 2 ms (it compiles ``Template``'s pattern), and every load renders."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __format__(self, format_spec: str) -> str:
        if format_spec.startswith("first"):
            return str(list(self.value)[: int(format_spec[5:])])
        if format_spec.startswith("?"):
            yes, no = format_spec[1:].split("|", 1)
            return yes if self.value else no
        return format(self.value, format_spec)


def render(code: str, facts: Mapping[str, Any]) -> str:
    """The text of a decision: its code's template filled with its facts.

    Raises
    ------
    KeyError
        An unknown code, or a fact its template needs is missing.
    """
    return TEMPLATES[code].format_map({name: _Fact(value) for name, value in facts.items()})


def _plain(value: Any) -> Any:
    """Facts as plain Python values (numpy scalars and arrays become numbers and tuples)."""
    if isinstance(value, np.ndarray):
        return tuple(_plain(v) for v in value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return tuple(_plain(v) for v in value)
    return value


class Decision(str):
    """A choice or finding of the planner: ``code`` and ``facts``, its text derived from them.

    Parameters
    ----------
    code
        Short stable identifier, a key of :data:`TEMPLATES` (``"gaps_filled"``, ``"dtype"``, ...).
    **facts
        Plain values the text is made from (counts, indices, tags, dtypes); stored in order.

    Examples
    --------
    >>> d = Decision("gaps_filled", n_missing=2, missing=(3, 4))
    >>> d.code, d.fact("missing")
    ('gaps_filled', (3, 4))
    >>> str(d)
    "gaps='fill': 2 missing slice(s) at grid indices [3, 4] filled"
    """

    code: str
    facts: tuple[tuple[str, Any], ...]

    def __new__(cls, code: str, /, **facts: Any) -> Decision:
        plain = tuple((name, _plain(value)) for name, value in facts.items())
        self = super().__new__(cls, render(code, dict(plain)))
        object.__setattr__(self, "code", code)
        object.__setattr__(self, "facts", plain)
        return self

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"Decision is immutable: cannot set {name!r}")

    def __reduce__(self) -> tuple[Any, ...]:
        # str's own pickling would rebuild from the text alone and lose code and facts.
        return (_rebuild, (self.code, self.facts))

    def fact(self, name: str, default: Any = None) -> Any:
        """The value of one fact, or ``default``."""
        return dict(self.facts).get(name, default)

    def as_dict(self) -> dict[str, Any]:
        """``{"code", "facts", "text"}``, for JSON sidecars."""
        return {"code": self.code, "facts": dict(self.facts), "text": str(self)}


def _rebuild(code: str, facts: tuple[tuple[str, Any], ...]) -> Decision:
    return Decision(code, **dict(facts))
