"""The geometry report: what fastvol found in a series and every decision it took.

A :class:`GeometryReport` is plain data (numbers, tuples, short strings) so it pickles, compares and
serialises; :meth:`GeometryReport.text` renders it for people.
"""

from __future__ import annotations

from dataclasses import field, fields
from typing import Any

import numpy as np

from ._frozen import frozen

__all__ = ["GeometryReport"]


@frozen
class GeometryReport:
    """Geometry of one series, from headers (``Series.geometry``) or after a load (``Volume.geometry``).

    Attributes
    ----------
    series
        ``Series.id`` (SeriesInstanceUID, ``#part`` when the UID was split).
    shape
        Output array shape, ``(..., slice, row, column)``.
    spacing
        Distance in mm between neighbouring voxel centres along ``(slice, row, column)`` (the
        norms of the affine's columns; for a tilted stack the slice value exceeds the step
        along the normal, which ``step_median`` gives).
    affine
        4x4 LPS affine of ``(slice, row, column)`` indices, as nested tuples.
    orientation
        ImageOrientationPatient (row direction, column direction).
    plane, obliquity
        Dominant plane (axial/coronal/sagittal) and orthogonal/single-oblique/double-oblique.
    slice_positions
        Acquired slice positions along the normal ``row x column`` (mm), in array order
        (descending: slice 0 is furthest along the normal, as in highdicom).
    step_min, step_median, step_max
        Steps between consecutive distinct positions (mm).
    kind
        ``regular``, ``gaps``, ``irregular`` or ``single``.
    missing
        Grid indices with no acquired slice (filled when ``gaps="fill"``).
    tilt_deg
        Angle between the stacking direction and the slice normal (gantry tilt / shear).
    handedness
        Handedness of the ``(slice, row, column)`` index frame in LPS (``right``, as highdicom).
    volumes_tag, volumes_values
        Tag that split repeated positions into volumes, and its value per volume.
    duplicates_dropped
        Files dropped as copies of an instance already read (same SOPInstanceUID).
    skipped
        ``(file, reason)`` for files of the series not loaded (localizers, other groups).
    decisions
        Every choice fastvol made, in words; each is a :class:`fastvol.plan.Decision`, a ``str``
        that also carries its ``code`` and ``facts``.
    warnings
        Everything unusual, in words (also :class:`~fastvol.plan.Decision` strings).
    """

    series: str
    shape: tuple[int, ...]
    spacing: tuple[float, float, float]
    affine: tuple[tuple[float, ...], ...]
    orientation: tuple[float, ...]
    plane: str
    obliquity: str
    slice_positions: tuple[float, ...]
    step_min: float
    step_median: float
    step_max: float
    kind: str
    missing: tuple[int, ...] = ()
    tilt_deg: float = 0.0
    gantry_tilt_tag: float | None = None
    residual_mm: float = 0.0
    handedness: str = "right"
    n_files: int = 0
    volumes_tag: str | None = None
    volumes_values: tuple[Any, ...] = ()
    duplicates_dropped: tuple[str, ...] = ()
    skipped: tuple[tuple[str, str], ...] = ()
    decisions: tuple[str, ...] = field(default=())
    warnings: tuple[str, ...] = field(default=())

    @property
    def affine_array(self) -> np.ndarray:
        """The affine as a float64 array."""
        return np.array(self.affine, dtype=np.float64)

    @property
    def oblique(self) -> bool:
        """True unless the orientation is orthogonal to the patient axes."""
        return self.obliquity != "orthogonal"

    def as_dict(self) -> dict[str, Any]:
        """Plain dict of the report (JSON-serialisable values)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def decision_data(self) -> list[dict[str, Any]]:
        """Decisions, then warnings, as data: ``{"kind", "code", "facts", "text"}`` each.

        Sidecars and machine-readable reports read these; the text is derived from code and
        facts (plain strings from elsewhere get code ``None``).
        """
        out = []
        for kind, items in (("decision", self.decisions), ("warning", self.warnings)):
            for item in items:
                data = item.as_dict() if hasattr(item, "as_dict") else {
                    "code": None, "facts": {}, "text": str(item)}  # fmt: skip
                out.append({"kind": kind, **data})
        return out

    def text(self) -> str:
        """Human-readable report."""
        fmt = np.array2string
        lines = [
            f"series      {self.series}",
            f"shape       {self.shape}  (..., slice, row, column)",
            f"spacing     slice {self.spacing[0]:.4g} mm, row {self.spacing[1]:.4g} mm, "
            f"column {self.spacing[2]:.4g} mm",
            f"orientation {self.plane}, {self.obliquity}  IOP {[round(v, 5) for v in self.orientation]}",
            f"slices      {len(self.slice_positions)} acquired from {self.n_files} files, {self.kind}; "
            f"step min/median/max {self.step_min:.4g}/{self.step_median:.4g}/{self.step_max:.4g} mm",
            f"tilt        {self.tilt_deg:.3f} deg"
            + (f" (GantryDetectorTilt {self.gantry_tilt_tag:g})" if self.gantry_tilt_tag else ""),
            f"handedness  {self.handedness} ((slice, row, column) in LPS)",
            "affine (slice, row, column) -> LPS mm:",
            # rounded first and + 0.0: a tiny negative entry would print as -0.0000
            *("  " + row for row in fmt(np.round(np.array(self.affine), 4) + 0.0, precision=4,
                                        suppress_small=True, floatmode="fixed").splitlines()),
        ]
        if self.volumes_tag:
            lines.append(f"volumes     {len(self.volumes_values)} by {self.volumes_tag}: "
                         f"{list(self.volumes_values)[:8]}")  # fmt: skip
        if self.missing:
            lines.append(f"missing     slice indices {list(self.missing)}")
        if self.duplicates_dropped:
            lines.append(f"duplicates  {len(self.duplicates_dropped)} copies dropped")
        if self.skipped:
            lines.append(f"skipped     {len(self.skipped)} file{'s' if len(self.skipped) != 1 else ''}: "
                         f"{sorted({reason for _, reason in self.skipped})}")  # fmt: skip
        lines += [f"decision    {d}" for d in self.decisions]
        lines += [f"warning     {w}" for w in self.warnings]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.text()
