"""Policy: apply the options to the layout's geometry, or raise the typed errors.

The layout says what the headers hold (gaps, uneven steps, a lean off the normal); the policy
says what a load does about it: raise (the default, naming the option that loads the series
anyway), fill, resample, or keep with a warning. With ``strict=False`` (``Series.geometry``)
it describes instead of raising, so a report exists for every series that has a geometry.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .. import geometry as geo
from .._frozen import frozen
from ..errors import (
    GeometryError,
    IrregularSpacingError,
    MissingSlicesError,
    NonCollinearError,
)
from ..numeric import median
from ..options import Options
from .decisions import Decision
from .layout import Layout
from .types import Resample, VolumeGeometry

__all__ = ["Grid", "apply"]


@frozen(eq=False)
class Grid:
    """The output grid of one volume, as the options chose it.

    Attributes
    ----------
    geometry
        Shape and affine of one output volume (the layout's, changed by resampling).
    slot_of
        Output slot (or read slot, when resampled) of each acquired slice in array order.
    resample
        Resampling onto the output grid after reading, or ``None``.
    decisions, warnings
        What the policy chose and noticed.
    alerts
        Warnings a load also raises as :class:`~fastvol.errors.FastvolWarning`.
    """

    geometry: VolumeGeometry
    slot_of: np.ndarray
    resample: Resample | None = None
    decisions: tuple[Decision, ...] = ()
    warnings: tuple[Decision, ...] = ()
    alerts: tuple[Decision, ...] = ()

    @property
    def n_slices(self) -> int:
        """Slices of one output volume."""
        return self.geometry.shape[0]

    @property
    def read_slices(self) -> int:
        """Slices read per volume: the acquired ones when resampled along the normal."""
        if self.resample is not None and self.resample.slice_index:
            return len(self.slot_of)
        return self.n_slices

    def but(self, **changes: object) -> Grid:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


def apply(layout: Layout, options: Options, *, strict: bool, name: str, uid: str) -> Grid:
    """The output grid of ``layout`` under ``options``.

    Raises
    ------
    NonCollinearError
        Positions off one line by more than ``position_rtol`` of a voxel.
    MissingSlicesError, IrregularSpacingError
        Gaps or uneven steps, unless the options fill or resample them (or ``strict`` is False).
    """
    stack = layout.stack
    _check_collinear(layout, options.tolerances.position_rtol, name=name, uid=uid)
    # A guessed pixel size is raised as a warning too: dcm2niix and SimpleITK guess it silently.
    missing = tuple(n for n in layout.warnings if n.code in ("pixel_spacing_missing", "frames_of_reference"))
    grid = Grid(geometry=layout.geometry, slot_of=stack.slots, alerts=missing if strict else ())
    if stack.kind == "gaps":
        grid = _gaps(grid, layout, options, strict=strict, name=name, uid=uid)
    elif stack.kind == "irregular":
        grid = _irregular(grid, layout, options, strict=strict, name=name, uid=uid)
    if stack.tilt_deg > options.tolerances.tilt_tolerance_deg:
        grid = _tilt(grid, layout, options, strict=strict, name=name)
    return grid


def _check_collinear(layout: Layout, position_rtol: float, *, name: str, uid: str) -> None:
    stack, spacing = layout.stack, layout.place.pixel_spacing
    voxel = min(min(spacing), abs(stack.step) or 1.0)
    if stack.residual > position_rtol * voxel:
        raise NonCollinearError(
            f"series {name}: slice positions lie up to {stack.residual:.3g} mm off one line "
            f"(tolerance {position_rtol * voxel:.3g} mm), so no single affine describes "
            f"them; pass position_rtol= to accept it",
            files=layout.sorted_files(), uid=uid, residual=stack.residual,
        )  # fmt: skip


def _gaps(grid: Grid, layout: Layout, options: Options, *, strict: bool, name: str,
          uid: str) -> Grid:  # fmt: skip
    """Missing slices: raise, fill them (the grid keeps its slots), or note them."""
    stack = layout.stack
    missing = stack.missing
    if options.gaps == "raise" and strict:
        labels = layout.sorted_files(labels=True)
        before = np.searchsorted(stack.slots, missing) - 1
        pairs = sorted({(labels[b], labels[b + 1]) for b in before})
        files = layout.sorted_files()
        raise MissingSlicesError(
            f"series {name}: {missing.size} slice(s) missing from a regular grid of step "
            f"{stack.step:.4g} mm (grid indices {missing.tolist()[:20]}); gaps between "
            f"{pairs[:5]}; pass gaps='fill' to load it with the missing slices filled",
            files=list(dict.fromkeys(files[i] for b in before for i in (b, b + 1))),
            uid=uid, positions=stack.distances, expected_spacing=stack.step, missing=missing,
        )  # fmt: skip
    if options.gaps == "fill":
        fill = Decision("gaps_filled", n_missing=missing.size, missing=missing)
        return grid.but(decisions=grid.decisions + (fill,))
    note = Decision("gaps_present", n_missing=missing.size, missing=missing)
    return grid.but(warnings=grid.warnings + (note,))


def _irregular(grid: Grid, layout: Layout, options: Options, *, strict: bool, name: str,
               uid: str) -> Grid:  # fmt: skip
    """Uneven steps: raise, resample linearly onto a regular grid, or note them."""
    stack = layout.stack
    n_acquired = len(stack.order)
    steps = np.unique(np.round(stack.steps, 4)).tolist()
    if options.irregular == "raise" and not strict:
        note = Decision("irregular_present", steps=steps)
        return grid.but(geometry=_with(grid.geometry, n_slices=n_acquired),
                        slot_of=np.arange(n_acquired), warnings=grid.warnings + (note,))  # fmt: skip
    if options.irregular == "raise":
        raise IrregularSpacingError(
            f"series {name}: slice steps along the normal differ and are not whole multiples "
            f"of one step: {steps[:12]} mm; pass irregular='resample' to resample linearly onto "
            f"a regular grid",
            files=layout.sorted_files(), uid=uid, spacings=stack.steps,
        )  # fmt: skip
    step = median(stack.steps)
    extent = float(stack.distances[-1] - stack.distances[0])
    ratio = extent / step + 1.0
    if not ratio <= geo.MAX_GRID_RATIO * n_acquired:  # refused before any array of that size
        raise GeometryError(
            f"series {name}: resampling would make {ratio:.4g} slices of {n_acquired} acquired "
            f"(more than {geo.MAX_GRID_RATIO} per slice): a position is wrong",
            files=layout.sorted_files(), uid=uid,
        )  # fmt: skip
    n_slices = int(np.ceil(extent / step - 1e-9)) + 1  # no coarser than the median step
    grid_step = extent / (n_slices - 1)
    rel = (stack.distances - stack.distances[0]) / grid_step
    along = float(stack.step_vector @ stack.axis)
    step_vector = stack.step_vector * (grid_step / along)
    place = layout.place
    affine = geo.affine_from(stack.origin, step_vector, place.row, place.col, place.pixel_spacing)
    resample = Resample(slice_index=tuple(rel.tolist()), shift=(0.0, 0.0), n_slices=n_slices)
    done = Decision("irregular_resampled", n_acquired=n_acquired, n_slices=n_slices, step=grid_step)
    return grid.but(geometry=_with(grid.geometry, n_slices=n_slices, affine=affine),
                    slot_of=np.arange(n_acquired), resample=resample,
                    decisions=grid.decisions + (done,))  # fmt: skip


def _tilt(grid: Grid, layout: Layout, options: Options, *, strict: bool, name: str) -> Grid:
    """A stack leaning off its normal: shift slices in-plane onto an orthogonal grid, or warn."""
    stack, spacing = layout.stack, layout.place.pixel_spacing
    affine = grid.geometry.affine
    along = float(affine[:3, 0] @ stack.axis)
    lean = affine[:3, 0] - along * stack.axis
    if options.tilt != "resample":
        note = Decision("tilt_kept", series=name, tilt_deg=stack.tilt_deg)
        return grid.but(warnings=grid.warnings + (note,), alerts=grid.alerts + ((note,) if strict else ()))
    # Output voxel (k, i, j) sits at the sheared voxel's world point less k lean vectors, so it
    # reads sheared slice k at (i, j) minus the lean in pixels: the shift is the negative lean.
    col, row = layout.place.col, layout.place.row
    shift = (-float(lean @ col) / spacing[0], -float(lean @ row) / spacing[1])
    base = grid.resample or Resample(slice_index=(), shift=(0.0, 0.0), n_slices=grid.n_slices)
    resample = Resample(slice_index=base.slice_index, shift=shift, n_slices=grid.n_slices)
    affine = affine.copy()
    affine[:3, 0] = along * stack.axis
    done = Decision("tilt_resampled", tilt_deg=stack.tilt_deg)
    return grid.but(geometry=_with(grid.geometry, affine=affine), resample=resample,
                    decisions=grid.decisions + (done,))  # fmt: skip


def _with(geometry: VolumeGeometry, *, n_slices: int | None = None,
          affine: np.ndarray | None = None) -> VolumeGeometry:  # fmt: skip
    """``geometry`` with another slice count or affine."""
    shape = geometry.shape if n_slices is None else (n_slices, *geometry.shape[1:])
    return dataclasses.replace(geometry, shape=shape,
                               affine=geometry.affine if affine is None else affine)  # fmt: skip
