"""Cohort conversion to .nii.gz, whole processes, peers in the same run.

- ``fastvol``: ``python -m fastvol convert IN -o OUT -j 2 -q`` (one header scan, two worker
  processes, JSON sidecars and the report included);
- ``dcm2niix``: ``dcm2niix -z y -f %f_%p_%t_%s -o OUT IN`` (pigz when it is on PATH, else its
  internal gzip: the row label says which);
- ``dicom2nifti``: ``dicom2nifti.convert_directory(IN, OUT, compression=True)`` in a process.

Cases: the mixed cohort of ``cohort.py`` (CT and MR, classic and enhanced, some compressed,
30 % junk), and one folder holding every file of many series (dcm2niix's weak spot). Sizes:
``$FASTVOL_BENCH_COHORT`` series (default 40) and ``$FASTVOL_BENCH_FLAT`` files (default 2000);
the issue's figures (200 series, 10,000 files) are measured by hand with those set. Each round
writes into a fresh folder; ``extra_info`` holds files/s and MB/s (input bytes). Under
``--benchmark-disable`` each row runs once on a tiny cohort and only checks it converts.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cohort import write_cohort, write_flat_folder

pytestmark = pytest.mark.benchmark(group="convert")

PEERS = ("fastvol", "dcm2niix", "dicom2nifti")
#: Rounds per peer ($FASTVOL_BENCH_ROUNDS; dicom2nifti always 1: minutes per round at full size).
ROUNDS = int(os.environ.get("FASTVOL_BENCH_ROUNDS", "3"))


def _disabled(config: pytest.Config) -> bool:
    return bool(config.getoption("benchmark_disable", False))


@pytest.fixture(scope="module")
def cohort_folder(bench_data_root: Path, request: pytest.FixtureRequest) -> str:
    tiny = _disabled(request.config)
    n = 10 if tiny else int(os.environ.get("FASTVOL_BENCH_COHORT", "40"))
    size = dict(n_slices=4, rows=32, columns=32) if tiny else {}
    folder = bench_data_root / f"cohort-{n}{'-tiny' if tiny else ''}"
    if not (bench_data_root / f"{folder.name}.done").exists():
        shutil.rmtree(folder, ignore_errors=True)
        write_cohort(str(folder), n, **size)
        (bench_data_root / f"{folder.name}.done").touch()
    return str(folder)


@pytest.fixture(scope="module")
def flat_folder(bench_data_root: Path, request: pytest.FixtureRequest) -> str:
    tiny = _disabled(request.config)
    n = 200 if tiny else int(os.environ.get("FASTVOL_BENCH_FLAT", "2000"))
    folder = bench_data_root / f"flat-{n}"
    if not (bench_data_root / f"{folder.name}.done").exists():
        shutil.rmtree(folder, ignore_errors=True)
        write_flat_folder(str(folder), n, files_per_series=min(100, n // 2))
        (bench_data_root / f"{folder.name}.done").touch()
    return str(folder)


def _command(peer: str, exe: Callable[[str], str], src: str, out: str, gz: bool = True) -> list[str]:
    z = "y" if gz else "n"
    if peer == "fastvol":
        return [sys.executable, "-m", "fastvol", "convert", src, "-o", out, "-j", "2", "-q", "-z", z]
    if peer == "dcm2niix":
        return [exe("dcm2niix"), "-z", z, "-f", "%f_%p_%t_%s", "-o", out, src]
    pytest.importorskip("dicom2nifti")
    return [sys.executable, "-c", "import dicom2nifti, logging; logging.disable(logging.CRITICAL); "
            f"dicom2nifti.convert_directory({src!r}, {out!r}, compression={gz})"]  # fmt: skip



def _tree_stats(folder: str) -> tuple[int, int]:
    files = [os.path.join(d, f) for d, _, fs in os.walk(folder) for f in fs]
    return len(files), sum(os.path.getsize(f) for f in files)


def _run_peer(benchmark: Any, peer: str, exe: Callable[[str], str], src: str, tmp: Path,
              gz: bool = True) -> None:  # fmt: skip
    command = _command(peer, exe, src, "@OUT@", gz)
    numbers = iter(range(1000))

    def setup() -> tuple[tuple[str, ...], dict[str, Any]]:
        out = tmp / f"{peer}-{next(numbers)}"
        out.mkdir()
        return (str(out),), {}

    def run(out: str) -> None:
        done = subprocess.run([c.replace("@OUT@", out) for c in command],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
        # fastvol exits 1 when it refused a series, dcm2niix 1 on some of its own failures:
        # both still converted the rest; anything else is a failed run.
        assert done.returncode in (0, 1), done.stderr[-2000:]

    rounds = 1 if peer == "dicom2nifti" else ROUNDS  # minutes per round at full size
    benchmark.pedantic(run, setup=setup, rounds=rounds, iterations=1, warmup_rounds=0)
    n_files, n_bytes = _tree_stats(src)
    outputs = list((tmp / f"{peer}-0").rglob("*.nii*"))
    assert outputs, f"{peer} wrote no NIfTI"
    benchmark.extra_info.update(files=n_files, mb=round(n_bytes / 1e6, 1), outputs=len(outputs))
    if not benchmark.disabled and benchmark.stats:
        median = benchmark.stats.stats.median
        benchmark.extra_info.update(files_per_s=round(n_files / median),
                                    mb_per_s=round(n_bytes / 1e6 / median, 1))  # fmt: skip
    if peer == "dcm2niix":
        benchmark.extra_info["gzip"] = "pigz" if shutil.which("pigz") else "internal"


@pytest.mark.parametrize("peer", PEERS)
def test_convert_cohort(benchmark: Any, exe: Callable[[str], str], cohort_folder: str, peer: str,
                        tmp_path: Path) -> None:  # fmt: skip
    benchmark.group = "convert: mixed cohort to .nii.gz"
    _run_peer(benchmark, peer, exe, cohort_folder, tmp_path)


@pytest.mark.parametrize("peer", PEERS[:2])
def test_convert_cohort_uncompressed(benchmark: Any, exe: Callable[[str], str], cohort_folder: str,
                                     peer: str, tmp_path: Path) -> None:  # fmt: skip
    """The same cohort to .nii: the conversion without the gzip both peers spend most time in."""
    benchmark.group = "convert: mixed cohort to .nii"
    _run_peer(benchmark, peer, exe, cohort_folder, tmp_path, gz=False)


@pytest.mark.parametrize("peer", PEERS)
def test_convert_flat_folder(benchmark: Any, exe: Callable[[str], str], flat_folder: str, peer: str,
                             tmp_path: Path) -> None:  # fmt: skip
    benchmark.group = "convert: one folder of many series to .nii.gz"
    _run_peer(benchmark, peer, exe, flat_folder, tmp_path)
