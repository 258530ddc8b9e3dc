"""Volumes: split frames sharing positions into volumes, or keep the first, then apply ``select``.

Part of the layout step. Which tag tells the volumes apart is decided in
:func:`fastvol.geometry.split_repeats`; this module offers it the candidate tags read from the
records and turns the outcome into decisions.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import geometry as geo
from ..dicom import HeaderRecord
from ..errors import InputError
from ..options import Options
from .decisions import Decision

if TYPE_CHECKING:
    from .layout import Placement

__all__ = ["repeat_tags", "select_volumes", "split_volumes"]


def split_volumes(placement: Placement, options: Options, *, name: str, uid: str
                  ) -> tuple[geo.Repeats, list[int], list[Decision]]:  # fmt: skip
    """Volumes of the placed records, the record indices ``select`` left out, and the decisions.

    Raises
    ------
    RepeatedPositionsError
        Repeated positions no tag or acquisition order splits into whole volumes.
    InputError
        ``select`` does not index the volumes.
    """
    records, distances = placement.records, placement.distances
    decisions: list[Decision] = []
    if options.repeats == "first":
        repeats = _keep_first(records, distances)
        skipped = len(records) - repeats.table.shape[1]
        if skipped:
            decisions.append(Decision("repeats_first", skipped=skipped))
    else:
        tags, order_tags = repeat_tags(records, distances)
        try:
            repeats = geo.split_repeats(distances, tags, order_tags=order_tags,
                                        files=placement.files, incomplete=options.incomplete)  # fmt: skip
        except geo.RepeatedPositionsError as exc:
            raise type(exc)(f"series {name}: {exc.message}", files=exc.files, uid=uid,
                            **exc._data) from None  # fmt: skip
    n_volumes = repeats.table.shape[0]
    unselected: list[int] = []
    if options.select is not None:
        chosen = select_volumes(options.select, n_volumes, name)
        unselected = [int(i) for v in sorted(set(range(n_volumes)) - set(chosen.tolist()))
                      for i in repeats.table[v]]  # fmt: skip
        repeats = dataclasses.replace(
            repeats, table=repeats.table[chosen],
            values=tuple(repeats.values[i] for i in chosen) if repeats.values else (),
        )  # fmt: skip
        decisions.append(Decision("select", select=repr(options.select), volumes=chosen,
                                  n_volumes=n_volumes))  # fmt: skip
        n_volumes = len(chosen)
    if repeats.tag and repeats.by_order:
        decisions.append(Decision("repeats_by_order", n_volumes=n_volumes, tag=repeats.tag))
    elif repeats.tag:
        decisions.append(Decision("repeats_split", n_volumes=n_volumes, tag=repeats.tag,
                                  values=repeats.values))  # fmt: skip
    if repeats.dropped:
        decisions.append(Decision("incomplete_dropped", n_frames=len(repeats.dropped)))
    return repeats, unselected, decisions


def _keep_first(records: tuple[HeaderRecord, ...], distances: np.ndarray) -> geo.Repeats:
    """One volume: the lowest InstanceNumber at each position (``repeats="first"``)."""
    at = geo.position_clusters(distances)
    inst = np.array([r.instance_number if r.instance_number is not None else 0 for r in records])
    keep: dict[int, int] = {}
    for i in np.lexsort((inst, at)):
        keep.setdefault(int(at[i]), int(i))
    table = np.array([[keep[p] for p in sorted(keep)]], dtype=np.int64)
    return geo.Repeats(tag=None, values=(), table=table, position_of=at)


def select_volumes(select: int | slice | tuple[int, ...], n_volumes: int, name: str) -> np.ndarray:
    """Volume indices chosen by ``select`` (numpy indexing rules), or a typed error."""
    try:
        chosen = np.arange(n_volumes)[select if not isinstance(select, tuple) else list(select)]
    except (IndexError, TypeError) as exc:
        raise InputError(f"series {name}: select={select!r} does not index its {n_volumes} "
                         f"volume(s) ({exc})") from None  # fmt: skip
    chosen = np.atleast_1d(chosen)
    if chosen.size == 0:
        raise InputError(f"series {name}: select={select!r} chooses none of its {n_volumes} volumes")
    return chosen


def repeat_tags(records: tuple[HeaderRecord, ...], distances: np.ndarray
                ) -> tuple[dict[str, list[Any]], dict[str, list[Any]]]:  # fmt: skip
    """Candidate tags telling volumes apart (by value), then those giving acquisition order."""
    diffusion = [
        None if r.diffusion_b_value is None else (r.diffusion_b_value, r.diffusion_gradient or ())
        for r in records
    ]
    tags: dict[str, list[Any]] = {
        "TemporalPositionIdentifier": [r.temporal_position_identifier for r in records],
        "TriggerTime": [r.trigger_time for r in records],
        "AcquisitionNumber": [r.acquisition_number for r in records],
        "EchoNumbers": [r.echo_number for r in records],
        "EchoTime": [r.echo_time for r in records],
        "DiffusionBValue": [r.diffusion_b_value for r in records],
        "Diffusion (b-value, gradient)": diffusion,
    }
    dims = _non_spatial_dimensions(records, distances)
    if dims is not None:
        tags["DimensionIndexValues"] = dims
    # Several tags together (multi-echo time series, ...): volumes ordered by the tuple.
    varying = [k for k, v in tags.items() if None not in v and len(set(v)) > 1]
    if len(varying) > 1:
        tags[" + ".join(varying)] = [tuple(tags[k][i] for k in varying) for i in range(len(records))]
    order_tags: dict[str, list[Any]] = {
        "AcquisitionNumber": [r.acquisition_number for r in records],
        "AcquisitionTime": [r.acquisition_time or None for r in records],
        "InstanceNumber": [r.instance_number for r in records],
    }
    return tags, order_tags


def _non_spatial_dimensions(records: tuple[HeaderRecord, ...], distances: np.ndarray
                            ) -> list[Any] | None:  # fmt: skip
    """DimensionIndexValues without the components that follow the slice position."""
    dims = [r.dimension_index for r in records]
    if not dims[0] or any(len(d) != len(dims[0]) for d in dims):
        return None
    labels = geo.position_clusters(distances)
    arr = np.array(dims)
    keep = []
    for j in range(arr.shape[1]):
        column = arr[:, j]
        per_position: dict[int, set[int]] = {int(lab): set() for lab in labels}
        for lab, value in zip(labels, column):
            per_position[int(lab)].add(int(value))
        spatial = all(len(v) == 1 for v in per_position.values()) and len(set(column)) > 1
        if not spatial:
            keep.append(j)
    if not keep:
        return None
    return [tuple(int(v) for v in row[keep]) for row in arr]
