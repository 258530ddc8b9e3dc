"""Header pass over a study of many series: 100 series x 100 files (issue 9's scan goal).

The floor is reading the first 64 KiB of every file (what any header pass must at least touch);
fastvol's ``scan`` (walk, compiled header pass, grouping into series) is timed beside it and
beside pydicom's ``dcmread(stop_before_pixels=True)`` of the same files. Images are 64x64 so
that headers, not pixels, make up the files, as in a study folder of many small series. The
curve to 10,000 series is ``benchmarks/scan_curve.py`` (run by hand: it writes 30,000 files).
Under ``--benchmark-disable`` the study is 4 series x 3 files.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pytest

import fastvol

N_SERIES, N_FILES, SIZE = 100, 100, 64
HEAD = 64 * 1024


def _files(folder: str) -> list[str]:
    return sorted(
        os.path.join(root, name) for root, _, names in os.walk(folder) for name in names
    )


def read_heads(paths: list[str]) -> int:
    """The floor: the first 64 KiB of each file, one open and one read per file."""
    total = 0
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            total += len(os.pread(fd, HEAD, 0))
        finally:
            os.close(fd)
    return total


@pytest.fixture
def study(ct_study: Callable[..., str], request: pytest.FixtureRequest) -> tuple[str, int]:
    disabled = request.config.getoption("benchmark_disable", False)
    n_series, n_files = (4, 3) if disabled else (N_SERIES, N_FILES)
    return ct_study(n_series, n_files, SIZE, SIZE), n_series


def test_floor_read_heads(benchmark: Any, study: tuple[str, int]) -> None:
    folder, n_series = study
    paths = _files(folder)
    benchmark.group = "scan many series"
    assert benchmark(read_heads, paths) > 0


def test_fastvol_scan(benchmark: Any, study: tuple[str, int]) -> None:
    folder, n_series = study
    benchmark.group = "scan many series"
    found = benchmark(fastvol.scan, folder)
    assert len(found) == n_series
    assert not found.skipped


def test_pydicom_headers(benchmark: Any, study: tuple[str, int]) -> None:
    import pydicom

    folder, n_series = study
    paths = _files(folder)
    benchmark.group = "scan many series"
    datasets = benchmark.pedantic(
        lambda: [pydicom.dcmread(p, stop_before_pixels=True) for p in paths], rounds=1
    )
    assert len({ds.SeriesInstanceUID for ds in datasets}) == n_series
