"""Load NCI Imaging Data Commons series by SeriesInstanceUID, straight from the public buckets.

>>> import fastvol.idc
>>> vol = fastvol.idc.load("1.3.6.1.4.1.14519.5.2.1.6834.5010.155488857019753544209698582121")  # doctest: +SKIP
>>> vol = fastvol.load("idc://1.3.6.1.4.1.14519.5.2.1.6834.5010.155488857019753544209698582121")  # doctest: +SKIP

The series' files are found with idc-index's bundled index (no network until files are read)
and read anonymously from AWS (default) or Google Cloud Storage (``mirror="gcs"``), with the
ranged, concurrent reads of every remote load. Needs ``pip install 'fastvol[idc]'``.

IDC also publishes geometry flags per series (``volume_geometry_index``: regular spacing,
consistent in-plane position, one orientation, ...). Where idc-index has that index
installed, :func:`load` compares them with what fastvol found and says in the geometry
report (a warning) and in ``vol.meta["idc_geometry"]`` when they disagree.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import Any

from .api import ScanResult, scan as _scan, load as _load
from .options import Options
from .report import GeometryReport
from .sources.idc import geometry_flags, series_location
from .volume import Volume

__all__ = ["compare_geometry", "load", "scan", "series_url"]


def series_url(uid: str, *, mirror: str = "aws") -> str:
    """The ``idc://`` URL of a series (what :func:`fastvol.load` accepts)."""
    return f"idc://{uid}" + (f"?mirror={mirror}" if mirror != "aws" else "")


def scan(
    uids: str | Sequence[str],
    *,
    mirror: str = "aws",
    storage_options: dict[str, Any] | None = None,
    cache: str | os.PathLike[str] | None = None,
    extra_tags: Sequence[str | int] = (),
) -> ScanResult:
    """Scan one IDC series or several (headers only); see :func:`fastvol.scan`.

    Raises
    ------
    PathNotFoundError
        A UID that the installed idc-index does not know.
    """
    uids = [uids] if isinstance(uids, str) else list(uids)
    for uid in uids:
        series_location(uid, mirror)  # unknown UIDs and mirrors fail before any request
    return _scan([series_url(uid, mirror=mirror) for uid in uids], extra_tags=extra_tags,
                 storage_options=storage_options, cache=cache)  # fmt: skip


def load(
    uid: str,
    options: Options | None = None,
    *,
    mirror: str = "aws",
    storage_options: dict[str, Any] | None = None,
    cache: str | os.PathLike[str] | None = None,
    **overrides: Any,
) -> Volume:
    """Load an IDC series by its SeriesInstanceUID; options as :func:`fastvol.load`.

    Parameters
    ----------
    uid
        SeriesInstanceUID.
    mirror
        ``"aws"`` (s3://, needs s3fs) or ``"gcs"`` (gs://, needs gcsfs).
    storage_options
        Merged over the anonymous defaults (``{"anon": True}`` / ``{"token": "anon"}``).
    cache
        A folder keeping what was read, keyed by URL and ETag (a second load reads only it).

    Returns
    -------
    Volume
        ``meta["idc_geometry"]``: IDC's geometry flags and their disagreements with fastvol's
        findings, when idc-index has ``volume_geometry_index`` installed.
    """
    series_location(uid, mirror)
    vol = _load(series_url(uid, mirror=mirror), options, storage_options=storage_options, cache=cache,
                **overrides)  # fmt: skip
    flags = geometry_flags(uid)
    return vol if flags is None else with_idc_flags(vol, flags)


def with_idc_flags(vol: Volume, flags: dict[str, Any]) -> Volume:
    """``vol`` with IDC's flags in its meta, and each disagreement as a report warning."""
    disagreements = compare_geometry(flags, vol.geometry)
    report = dataclasses.replace(vol.geometry, warnings=vol.geometry.warnings + tuple(disagreements))
    meta = {**vol.meta, "idc_geometry": {"flags": flags, "disagreements": disagreements}}
    return dataclasses.replace(vol, geometry=report, meta=meta)


#: Degrees above which fastvol calls slices tilted (in-plane positions drift along the stack).
_TILT_DEG = 0.01


def compare_geometry(flags: dict[str, Any], report: GeometryReport) -> list[str]:
    """Where IDC's geometry flags of a series disagree with fastvol's report of it, in words.

    Compared: regular spacing (``uniform_slice_spacing``; fastvol: no gaps, no uneven steps),
    tilt or shear (``consistent_in_plane_row``/``_col``; fastvol: ``tilt_deg``), distinct
    positions (``unique_slice_positions``; fastvol: one slice per position in each volume),
    and the verdict ``regularly_spaced_3d_volume``. Flags that are missing (None) are skipped.
    """
    ours_regular = report.kind == "regular" and not report.missing
    ours_tilted = report.tilt_deg > _TILT_DEG
    ours_unique = report.volumes_tag is None and not report.duplicates_dropped
    checks = [
        ("uniform_slice_spacing", ours_regular, f"fastvol found {report.kind} spacing "
         f"(steps {report.step_min:.4g}-{report.step_max:.4g} mm)"),
        ("consistent_in_plane_row", not ours_tilted, f"fastvol found a tilt of {report.tilt_deg:.3f} deg"),
        ("consistent_in_plane_col", not ours_tilted, f"fastvol found a tilt of {report.tilt_deg:.3f} deg"),
        ("unique_slice_positions", ours_unique, "fastvol found repeated positions"
         + (f" (split by {report.volumes_tag})" if report.volumes_tag else "")),
        ("regularly_spaced_3d_volume", ours_regular and not ours_tilted and ours_unique,
         f"fastvol found {report.kind} spacing, tilt {report.tilt_deg:.3f} deg"),
    ]  # fmt: skip
    out = []
    for flag, ours, facts in checks:
        theirs = flags.get(flag)
        if theirs is not None and bool(theirs) != ours:
            out.append(f"IDC volume_geometry_index says {flag}={bool(theirs)}, but {facts}")
    return out
