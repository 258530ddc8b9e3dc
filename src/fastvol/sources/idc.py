"""NCI Imaging Data Commons: a SeriesInstanceUID -> its files in IDC's public buckets.

The series is looked up in the index idc-index bundles (``idc_index_data``'s parquet file:
no network), which gives its ``crdc_series_uuid`` and bucket; its files are the objects under
``s3://<bucket>/<crdc_series_uuid>/`` (AWS, read anonymously with s3fs) or the mirror
``gs://<bucket>/<crdc_series_uuid>/`` (Google Cloud Storage, anonymously with gcsfs), listed
once like any prefix. ``idc://<SeriesInstanceUID>`` (``?mirror=gcs`` for Google) is the URL
form :func:`fastvol.load` accepts; :mod:`fastvol.idc` adds the comparison with IDC's own
geometry flags (``volume_geometry_index``).
"""

from __future__ import annotations

import functools
import os
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ..errors import InputError, MissingDependencyError, PathNotFoundError
from .remote import RemoteFile, list_urls

__all__ = ["MIRRORS", "geometry_flags", "idc_sources", "parse_idc_url", "series_location"]

#: Mirror -> (URL scheme, anonymous storage options, bucket renames from AWS's names).
MIRRORS: dict[str, tuple[str, dict[str, Any], dict[str, str]]] = {
    "aws": ("s3", {"anon": True}, {}),
    # idc-index's fixed AWS -> GCS bucket mapping (idc-open-data has the same name on both)
    "gcs": ("gs", {"token": "anon"}, {"idc-open-data-two": "idc-open-idc1", "idc-open-data-cr": "idc-open-cr"}),
}
_INSTALL = "pip install 'fastvol[idc]'"


def _index_path() -> str:
    try:
        import idc_index_data
    except ImportError as exc:
        raise MissingDependencyError(f"IDC series need idc-index: {_INSTALL}", install_hint=_INSTALL) from exc
    return str(idc_index_data.IDC_INDEX_PARQUET_FILEPATH)


def _parquet() -> Any:
    """``pyarrow.parquet`` (idc-index's own dependency), or the error saying what to install."""
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise MissingDependencyError(f"IDC series need idc-index (with pyarrow): {_INSTALL}",
                                     install_hint=_INSTALL) from exc  # fmt: skip
    return pq


@functools.lru_cache(maxsize=256)
def _lookup(uid: str) -> tuple[str, str] | None:
    """(bucket, crdc_series_uuid) of a series in the bundled index, or None."""
    index = _index_path()  # first: without idc-index, say so (not "no module pyarrow")
    pq = _parquet()
    table = pq.read_table(index, columns=["SeriesInstanceUID", "series_aws_url"],
                          filters=[("SeriesInstanceUID", "=", uid)])  # fmt: skip
    if table.num_rows == 0:
        return None
    url = table.column("series_aws_url")[0].as_py()  # s3://<bucket>/<crdc_series_uuid>/*
    bucket, uuid = url.split("/")[2:4]
    return bucket, uuid


def series_location(
    uid: str, mirror: str = "aws", storage_options: dict[str, Any] | None = None
) -> tuple[str, dict[str, Any]]:
    """The prefix URL of a series' files in IDC and the storage options that read it.

    Parameters
    ----------
    uid
        SeriesInstanceUID.
    mirror
        ``"aws"`` (``s3://``, s3fs) or ``"gcs"`` (``gs://``, gcsfs).
    storage_options
        Merged over the anonymous defaults (e.g. an ``endpoint_url``).

    Raises
    ------
    PathNotFoundError
        The series is not in the installed idc-index's index (name its version).
    InputError
        An unknown mirror.
    """
    if mirror not in MIRRORS:
        raise InputError(f"IDC mirror {mirror!r}: expected one of {sorted(MIRRORS)}")
    found = _lookup(uid.strip())
    if found is None:
        import idc_index_data

        raise PathNotFoundError(
            f"idc://{uid}: no such SeriesInstanceUID in the IDC index of idc-index-data "
            f"{idc_index_data.__version__} (a newer release may hold it: pip install -U idc-index-data)",
            files=[f"idc://{uid}"], uid=uid,
        )  # fmt: skip
    scheme, anonymous, renames = MIRRORS[mirror]
    bucket, uuid = found
    return f"{scheme}://{renames.get(bucket, bucket)}/{uuid}/", {**anonymous, **(storage_options or {})}


def parse_idc_url(url: str) -> tuple[str, str]:
    """``idc://<SeriesInstanceUID>[?mirror=gcs]`` -> (uid, mirror)."""
    parts = urlsplit(url)
    uid = (parts.netloc + parts.path).strip("/")
    mirror = parse_qs(parts.query).get("mirror", ["aws"])[0]
    if not uid:
        raise InputError(f"{url}: expected idc://<SeriesInstanceUID>", files=[url])
    return uid, mirror


def idc_sources(
    url: str, storage_options: dict[str, Any] | None = None, cache: str | os.PathLike[str] | None = None
) -> list[RemoteFile]:
    """The sources of the series an ``idc://`` URL names (one listing of its prefix)."""
    uid, mirror = parse_idc_url(url)
    prefix, options = series_location(uid, mirror, storage_options)
    return list_urls([prefix], options, cache)[0]


def geometry_flags(uid: str) -> dict[str, Any] | None:
    """IDC's geometry flags of a series (``volume_geometry_index``), or None when unknown.

    idc-index does not bundle that index: it is read only where idc-index has downloaded it
    before (``IDCClient().fetch_index("volume_geometry_index")``); nothing is fetched here.
    """
    try:
        from importlib.metadata import version

        import platformdirs
    except ImportError:
        return None
    folder = platformdirs.user_data_dir("idc_index_data", "IDC", version=version("idc-index-data"))
    path = os.path.join(folder, "volume_geometry_index.parquet")
    if not os.path.isfile(path):
        return None
    table = _parquet().read_table(path, filters=[("SeriesInstanceUID", "=", uid)])
    return table.to_pylist()[0] if table.num_rows else None
