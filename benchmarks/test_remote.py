"""Remote: one CT series on a loopback server in its own process with 20 ms of injected latency
per request, fastvol reading it in place against the usual workflows. Servers: S3 (moto: about
10 ms of server CPU per 512 kB GET, which bounds every loader on a 2-core machine) and plain
HTTP (``tests/servers.py``'s static file server: little CPU per request, so the figures show
the clients).

Loaders:

- ``fastvol``: ``fastvol.load("s3://bench/<prefix>/", storage_options=...)``: one listing, then
  ranged GETs, :data:`fastvol.sources.remote.CONCURRENCY` in flight; nothing written to disk.
- ``s3fs+pydicom``: list, then each file fetched (one GET) and parsed by pydicom, one after the
  other; sorted along the normal, stacked, rescaled (the pydicom recipe of test_end_to_end).
- ``download+fastvol``: the s5cmd workflow: the prefix downloaded to a temporary folder with
  s3fs (concurrent GETs, as many connections as fastvol), then ``fastvol.load`` of the folder;
  the download and the load are both in the time.

``extra_info``: loader, role, case, and for fastvol its speed-up over each peer measured in the
same run (targets: at least 5x the file-by-file peer, within 1.5x of download-then-load).
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

import fastvol

pytest.importorskip("s3fs")
pytest.importorskip("moto")

pytestmark = pytest.mark.benchmark(group="remote")

LATENCY = 0.02
SLICES = 300
LOADERS = ("fastvol", "s3fs+pydicom", "download+fastvol")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_MEDIANS: dict[tuple[str, str], float] = {}


@pytest.fixture(scope="module", params=["s3", "http"])
def remote_series(ct_series: Callable[..., Any], request: pytest.FixtureRequest) -> Iterator[tuple[str, dict, Any]]:
    """(prefix URL, storage options, BenchSeries) of a CT series served with latency."""
    disabled = request.config.getoption("benchmark_disable", False)
    series = ct_series(*((6, 32, 32) if disabled else (SLICES, 512, 512)))
    kind = request.param
    with subprocess.Popen(
        [sys.executable, os.path.join(REPO, "tests", "servers.py"), kind, series.folder,
         "--prefix", "ct", "--latency", str(LATENCY)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    ) as server:  # fmt: skip
        assert server.stdin is not None and server.stdout is not None
        url = server.stdout.readline().strip()
        try:
            if not url:
                pytest.skip("the S3 server did not start")
            if kind == "http":
                yield f"{url}/ct/", {}, series
            else:
                options = {"endpoint_url": url, "key": "testing", "secret": "testing",
                           "client_kwargs": {"region_name": "us-east-1"}}  # fmt: skip
                yield "s3://bench/ct/", options, series
        finally:
            server.stdin.close()
            server.wait(timeout=30)


def _peer_fs(url: str, options: dict) -> Any:
    import fsspec

    if url.startswith("http"):
        return fsspec.filesystem("http", skip_instance_cache=True)
    # As many connections as fastvol keeps in flight: the peers are not starved of them.
    return fsspec.filesystem("s3", skip_instance_cache=True, config_kwargs={"max_pool_connections": 64},
                             **options)  # fmt: skip


def _pydicom_file_by_file(url: str, options: dict) -> np.ndarray:
    import pydicom

    fs = _peer_fs(url, options)
    names = sorted(fs.ls(url, detail=False))
    datasets = [pydicom.dcmread(io.BytesIO(fs.cat_file(p))) for p in names]
    iop = np.array(datasets[0].ImageOrientationPatient, dtype=float)
    normal = np.cross(iop[:3], iop[3:])
    datasets.sort(key=lambda ds: -float(np.dot(normal, ds.ImagePositionPatient)))
    volume = np.stack([ds.pixel_array for ds in datasets]).astype(np.float32)
    volume *= np.array([float(ds.RescaleSlope) for ds in datasets], np.float32)[:, None, None]
    volume += np.array([float(ds.RescaleIntercept) for ds in datasets], np.float32)[:, None, None]
    return volume


def _download_then_load(url: str, options: dict) -> np.ndarray:
    fs = _peer_fs(url, options)
    folder = tempfile.mkdtemp(prefix="fastvol-bench-download-")
    try:
        if url.startswith("http"):  # no recursive listing over HTTP: the listed files
            names = sorted(fs.ls(url, detail=False))
            fs.get(names, [os.path.join(folder, n.rsplit("/", 1)[1]) for n in names])
        else:
            fs.get(url, folder + "/", recursive=True)
        return fastvol.load(folder).array
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.parametrize("loader", LOADERS)
def test_remote_load(benchmark: Any, remote_series: tuple[str, dict, Any], loader: str) -> None:
    url, options, series = remote_series
    server = "S3" if url.startswith("s3") else "HTTP"
    fn = {
        "fastvol": lambda: fastvol.load(url, storage_options=options).array,
        "s3fs+pydicom": lambda: _pydicom_file_by_file(url, options),
        "download+fastvol": lambda: _download_then_load(url, options),
    }[loader]
    benchmark.extra_info.update(loader=loader, role="fastvol" if loader == "fastvol" else "peer",
                                case=f"{series.label} on {server}, {LATENCY * 1000:.0f} ms/request",
                                slices=series.n, file_mb=round(series.file_bytes / 2**20, 1))  # fmt: skip
    result = benchmark.pedantic(fn, rounds=1 if benchmark.disabled else 3, warmup_rounds=0 if benchmark.disabled else 1)
    assert result.shape == (series.n, series.rows, series.columns)
    if benchmark.disabled:
        return
    _MEDIANS[(server, loader)] = benchmark.stats.stats.median
    if loader != "fastvol" and (server, "fastvol") in _MEDIANS:
        ratio = benchmark.stats.stats.median / _MEDIANS[(server, "fastvol")]
        benchmark.extra_info["x_fastvol"] = round(ratio, 2)
