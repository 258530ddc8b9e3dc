"""End to end: a folder of one CT series -> one volume, fastvol against its peers and the floor.

Peers: pydicom (two recipes), highdicom, SimpleITK, dicom-numpy, dicomsdl (``recipes.py``: serial
loop, sort along the normal, one preallocated array, rescale) and dcm2niix; each is skipped when
it is not installed.

Cases: uncompressed 512x512 CT series of 75, 150, 300 and 600 slices (explicit VR little endian),
and 64-slice series in each lossless compressed syntax. Every loader returns the volume in memory
(dcm2niix and the fastvol CLI are processes: start, read, write/print included). The floor reads
every file's bytes in one thread. ``extra_info`` holds each row's loader, role and case, and for
fastvol its ratio to the floor (and to itself on one thread for compressed series).
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import recipes  # benchmarks/recipes.py: peer recipes shared with test_startup

import fastvol
from fastvol import buffers

pytestmark = pytest.mark.benchmark(group="end-to-end")

SIZES = (75, 150, 300, 600)
COMPRESSED = ("j2k", "htj2k", "jpeg-ls", "jpeg-lossless", "rle")
COMPRESSED_SLICES = 64
#: "explicit-int32": the 300-slice CT declared 16 bits stored (intercept -1024): int32 output.
CASES = ([("explicit", n) for n in SIZES] + [("explicit-int32", 300)]
         + [(s, COMPRESSED_SLICES) for s in COMPRESSED])  # fmt: skip
PEERS = ("pydicom", "pydicom-prealloc", "highdicom", "simpleitk", "dicom-numpy", "dicomsdl",
         "dcm2niix")
#: "fastvol-fresh": fastvol.load with recycled output blocks off (fastvol.buffers), so each round
#: pays the kernel's zeroing of a new output, as a process's first load does.
LOADERS = ("fastvol", "fastvol-fresh", "fastvol-serial", "fastvol-cli", "floor", *PEERS)


# ----------------------------------------------------------------------------------- loaders


def _datasets(folder: str) -> list[Any]:
    import pydicom

    return [pydicom.dcmread(os.path.join(folder, f)) for f in os.listdir(folder)]


def _by_position(datasets: list[Any]) -> list[Any]:
    """Sort along the slice normal, descending (fastvol's and highdicom's order)."""
    iop = np.array(datasets[0].ImageOrientationPatient, dtype=float)
    normal = np.cross(iop[:3], iop[3:])
    return sorted(datasets, key=lambda ds: -float(np.dot(normal, ds.ImagePositionPatient)))


def pydicom_stack(folder: str) -> np.ndarray:
    """The usual recipe: dcmread all, sort, stack pixel_array, rescale (float32)."""
    datasets = _by_position(_datasets(folder))
    volume = np.stack([ds.pixel_array for ds in datasets]).astype(np.float32)
    volume *= np.array([float(ds.RescaleSlope) for ds in datasets], np.float32)[:, None, None]
    volume += np.array([float(ds.RescaleIntercept) for ds in datasets], np.float32)[:, None, None]
    return volume


def pydicom_prealloc(folder: str) -> np.ndarray:
    """Careful pydicom: one preallocated int16 output, rescaled in place slice by slice."""
    datasets = _by_position(_datasets(folder))
    first = datasets[0]
    out = np.empty((len(datasets), first.Rows, first.Columns), dtype=np.int16)
    for i, ds in enumerate(datasets):
        out[i] = ds.pixel_array
        slope, intercept = int(ds.RescaleSlope), int(ds.RescaleIntercept)
        if slope != 1:
            out[i] *= slope
        if intercept:
            out[i] += intercept
    return out


def highdicom_volume(folder: str) -> np.ndarray:
    import highdicom

    volume = highdicom.get_volume_from_series(_datasets(folder), dtype=np.float32)
    return np.asarray(volume.array)


def simpleitk_series(folder: str) -> np.ndarray:
    import SimpleITK as sitk

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(folder))
    return sitk.GetArrayFromImage(reader.Execute())


def dicom_numpy_combine(folder: str) -> np.ndarray:
    import dicom_numpy

    voxels, _ = dicom_numpy.combine_slices(_datasets(folder))
    return voxels


def dcm2niix_run(exe: str, folder: str, out: str) -> None:
    subprocess.run([exe, "-z", "n", "-b", "n", "-w", "1", "-f", "vol", "-o", out, folder],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip


def fastvol_cli(exe: str, folder: str) -> float:
    """Run ``fastvol FOLDER --timing``; returns its process-start-to-first-volume, seconds."""
    done = subprocess.run([exe, folder, "--timing"], check=True, capture_output=True, text=True)
    found = re.search(r"first volume ([0-9.]+) ms", done.stdout)
    assert found, done.stdout
    return float(found.group(1)) / 1000


# ------------------------------------------------------------------------------------- tests


def _loader(name: str, exe: Callable[[str], str], floor: Callable[[Any], int], tmp: Path
            ) -> Callable[[str], Any]:  # fmt: skip
    """The function timed for loader ``name`` (skips when its package or program is absent)."""
    if name == "fastvol":
        return lambda folder: fastvol.load(folder).array
    if name == "fastvol-fresh":
        return lambda folder: fastvol.load(folder).array
    if name == "fastvol-serial":
        return lambda folder: fastvol.load(folder, executor=None).array
    if name == "fastvol-cli":
        program = exe("fastvol")
        return lambda folder: fastvol_cli(program, folder)
    if name == "floor":
        return lambda folder: floor([os.path.join(folder, f) for f in os.listdir(folder)])
    if name == "dcm2niix":
        program = exe("dcm2niix")
        return lambda folder: dcm2niix_run(program, folder, str(tmp))
    module = {"highdicom": "highdicom", "simpleitk": "SimpleITK", "dicom-numpy": "dicom_numpy",
              "dicomsdl": "dicomsdl"}  # fmt: skip
    if name in module:
        pytest.importorskip(module[name])
    return {"pydicom": pydicom_stack, "pydicom-prealloc": pydicom_prealloc,
            "highdicom": highdicom_volume, "simpleitk": simpleitk_series,
            "dicom-numpy": dicom_numpy_combine, "dicomsdl": recipes.dicomsdl_stack}[name]  # fmt: skip


@pytest.mark.parametrize("loader", LOADERS)
@pytest.mark.parametrize(("syntax", "n"), CASES, ids=[f"{s}-{n}" for s, n in CASES])
def test_load(benchmark: Any, ct_series: Callable[..., Any], bench_size: Callable[..., Any],
              exe: Callable[[str], str], floor: Callable[[Any], int],
              timed_median: Callable[..., float], tmp_path: Path, request: pytest.FixtureRequest,
              syntax: str, n: int, loader: str) -> None:  # fmt: skip
    """Time ``loader`` on one series; fastvol rows also record their ratio to the floor."""
    if loader == "fastvol-serial" and syntax.startswith("explicit") and n != 300:
        pytest.skip("one thread vs the pool: compressed series and the 300-slice case only")
    if loader == "fastvol-fresh":
        if not syntax.startswith("explicit") or n != 300 or benchmark.disabled:
            pytest.skip("fresh output memory: the 300-slice uncompressed cases, when timing")
        request.addfinalizer(partial(buffers.set_limit, buffers.limit()))
        buffers.set_limit(0)
    if loader == "fastvol-cli" and (syntax != "explicit" or (benchmark.disabled and n != 300)):
        pytest.skip("process start to first volume: uncompressed series only (300 when not timing)")
    wide = syntax == "explicit-int32"
    if wide and benchmark.disabled and loader not in ("fastvol", "dicomsdl"):
        pytest.skip("not timing: the int32 case runs for fastvol and dicomsdl only")
    series = ct_series(*bench_size(n), syntax="explicit" if wide else syntax, wide=wide)
    fn = _loader(loader, exe, floor, tmp_path)
    if not loader.startswith("fastvol") and loader != "floor":
        try:  # a peer that cannot read this syntax is skipped, not failed
            fn(series.folder)
        except Exception as exc:  # noqa: BLE001
            pytest.skip(f"{loader} cannot read {syntax}: {type(exc).__name__}: {exc}"[:300])
    role = "fastvol" if loader.startswith("fastvol") else "floor" if loader == "floor" else "peer"
    benchmark.extra_info.update(loader=loader, role=role, case=series.label, slices=series.n,
                                file_mb=round(series.file_bytes / 2**20, 1))  # fmt: skip
    result = benchmark(fn, series.folder)

    if isinstance(result, np.ndarray):
        assert sorted(result.shape) == sorted((series.n, series.rows, series.columns))
        if wide and loader.startswith("fastvol"):
            assert result.dtype == np.int32
    if loader == "fastvol-cli":
        benchmark.extra_info["start_to_volume_ms"] = round(float(result) * 1000, 1)
    if benchmark.disabled or not loader.startswith("fastvol") or loader == "fastvol-cli":
        return
    mine = benchmark.stats.stats.median
    floor_s = timed_median(lambda: floor(series.paths))
    benchmark.extra_info.update(floor_median_ms=round(floor_s * 1000, 2),
                                x_floor=round(mine / floor_s, 2),
                                ms_per_slice=round(mine * 1000 / series.n, 3))  # fmt: skip
    if loader == "fastvol" and syntax != "explicit":
        serial = timed_median(lambda: fastvol.load(series.folder, executor=None), repeat=3)
        benchmark.extra_info["thread_speedup"] = round(serial / mine, 2)


def test_dicomsdl_matches_fastvol(ct_series: Callable[..., Any], bench_size: Callable[..., Any]
                                  ) -> None:  # fmt: skip
    """The dicomsdl recipe returns fastvol's array (values, dtype, slice order): explicit CT."""
    pytest.importorskip("dicomsdl")
    series = ct_series(*bench_size(8), syntax="explicit")
    mine = fastvol.load(series.folder).array
    theirs = recipes.dicomsdl_stack(series.folder)
    assert theirs.dtype == mine.dtype
    np.testing.assert_array_equal(theirs, mine)
