"""fastvol stage by stage: headers, geometry, stack, memory, and the cost per series.

Groups
------
headers       fastvol.scan (find + headers + group) and read_headers alone, against a pydicom
              ``stop_before_pixels`` pass and the floor (read every byte), 300x512x512 CT.
geometry      group_series, geometry.analyze_stack and plan.make_plan on 600 slices.
stack         stack.execute on a ready plan: uncompressed (rescaled 12-bit and plain int16) and
              J2K, on the calling thread (``executor=None``) and on the default pool.
memory        peak RSS above baseline (and tracemalloc's peak) of one load in a fresh process,
              over the output's bytes, in ``extra_info``; the time is the whole process's.
series-count  scan + load of every series in a folder of 1, 4 and 16 small series.
enhanced-headers
              the header pass of one enhanced MR file of 384 frames (64x64; per-frame groups as
              Siemens XA writes them: undefined lengths, a private group per frame; and the same
              with defined lengths, pydicom's default): ``read_records`` (header scan + one
              record per frame, functional groups read from raw bytes) with the compiled scanner
              and compile-free, the old pydicom path (``FASTVOL_SCANNER=0``), against
              ``pydicom.dcmread`` of the file, dcmread up to the pixels plus a read of every
              frame's groups, and the floor (read the file). ``x_dcmread`` in extra_info.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import fastvol
from fastvol.geometry import analyze_stack
from fastvol.group import group_series
from fastvol.headers import read_headers
from fastvol.options import Options
from fastvol.plan import make_plan
from fastvol.sources import LocalFile
from fastvol.stack import execute

HEADER_SLICES = 300
GEOMETRY_SLICES = 600
STACK_SLICES = 300
J2K_SLICES = 64


def _tag(benchmark: Any, loader: str, case: str, role: str | None = None) -> None:
    role = role or ("fastvol" if loader.startswith("fastvol") else "floor" if loader == "floor" else "peer")
    benchmark.extra_info.update(loader=loader, role=role, case=case)


def _vs_floor(benchmark: Any, paths: Any, floor: Callable[[Any], int],
              timed_median: Callable[..., float]) -> None:  # fmt: skip
    """Record this row's median over the floor's (read every file's bytes) in extra_info."""
    if benchmark.disabled:
        return
    floor_s = timed_median(lambda: floor(paths))
    benchmark.extra_info.update(floor_median_ms=round(floor_s * 1000, 2),
                                x_floor=round(benchmark.stats.stats.median / floor_s, 3))  # fmt: skip


# ------------------------------------------------------------------------------------ headers


def _pydicom_headers(paths: Any) -> list[Any]:
    import pydicom

    return [pydicom.dcmread(p, stop_before_pixels=True) for p in paths]


HEADER_LOADERS: dict[str, Callable[[Any], Any]] = {
    "fastvol-scan": lambda s: fastvol.scan(s.folder),
    "fastvol-read-headers": lambda s: read_headers([LocalFile(p) for p in s.paths]),
    "pydicom-stop-before-pixels": lambda s: _pydicom_headers(s.paths),
}


@pytest.mark.benchmark(group="headers")
@pytest.mark.parametrize("loader", [*HEADER_LOADERS, "floor"])
def test_headers(benchmark: Any, ct_series: Callable[..., Any], bench_size: Callable[..., Any],
                 floor: Callable[[Any], int], timed_median: Callable[..., float],
                 loader: str) -> None:  # fmt: skip
    series = ct_series(*bench_size(HEADER_SLICES))
    _tag(benchmark, loader, f"{series.label} headers")
    if loader == "floor":
        benchmark(floor, series.paths)
        return
    result = benchmark(HEADER_LOADERS[loader], series)
    if loader == "fastvol-scan":
        assert len(result) == 1 and result[0].n_files == series.n
    _vs_floor(benchmark, series.paths, floor, timed_median)


# ----------------------------------------------------------------------------------- geometry


@pytest.fixture(scope="module")
def scanned_600(ct_series: Callable[..., Any], request: pytest.FixtureRequest) -> Any:
    """Headers of a 600-slice series (small images: planning reads no pixels)."""
    n = 6 if request.config.getoption("benchmark_disable", False) else GEOMETRY_SLICES
    return fastvol.scan(ct_series(n, 32, 32).folder)[0]


@pytest.mark.benchmark(group="geometry")
def test_group_series(benchmark: Any, scanned_600: Any) -> None:
    _tag(benchmark, "fastvol-group-series", f"{scanned_600.n_files} slices")
    records = list(scanned_600.records)
    assert len(benchmark(group_series, records)) == 1


@pytest.mark.benchmark(group="geometry")
def test_analyze_stack(benchmark: Any, bench_size: Callable[..., Any]) -> None:
    n = bench_size(GEOMETRY_SLICES)[0]
    _tag(benchmark, "fastvol-analyze-stack", f"{GEOMETRY_SLICES if n > 6 else n} slices")
    rng = np.random.default_rng(0)
    positions = np.column_stack([np.full(n, -180.0), np.full(n, -180.0), np.arange(n) * 0.625])
    positions = positions[rng.permutation(n)]
    geometry = benchmark(analyze_stack, positions, (1, 0, 0, 0, 1, 0), (0.7, 0.7))
    assert geometry.kind == "regular" and geometry.n_slots == n


@pytest.mark.benchmark(group="geometry")
def test_make_plan(benchmark: Any, scanned_600: Any) -> None:
    _tag(benchmark, "fastvol-make-plan", f"{scanned_600.n_files} slices")
    plan = benchmark(make_plan, scanned_600, Options())
    assert plan.shape[0] == scanned_600.n_files


# -------------------------------------------------------------------------------------- stack

STACK_CASES = {"ct12": ("explicit", False, STACK_SLICES), "int16-plain": ("explicit", True, STACK_SLICES),
               "j2k": ("j2k", False, J2K_SLICES)}  # fmt: skip


@pytest.mark.benchmark(group="stack")
@pytest.mark.parametrize("executor", ["default", "serial"])
@pytest.mark.parametrize("case", list(STACK_CASES))
def test_stack(benchmark: Any, ct_series: Callable[..., Any], bench_size: Callable[..., Any],
               floor: Callable[[Any], int], timed_median: Callable[..., float],
               case: str, executor: str) -> None:  # fmt: skip
    syntax, plain, n = STACK_CASES[case]
    series = ct_series(*bench_size(n), syntax=syntax, plain=plain)
    plan = make_plan(fastvol.scan(series.folder)[0])
    loader = "fastvol" if executor == "default" else "fastvol-serial"
    _tag(benchmark, loader, f"{series.label} {case} execute")
    array = benchmark(execute, plan, executor="default" if executor == "default" else None)
    assert array.shape == (series.n, series.rows, series.columns) and array.dtype == np.int16
    _vs_floor(benchmark, series.paths, floor, timed_median)


# ------------------------------------------------------------------------------------- memory

#: Run in a fresh process: warm up on a tiny series, reset the RSS high-water mark, load once
#: (peak RSS), then once more under tracemalloc; print JSON.
MEMORY_SCRIPT = textwrap.dedent("""
    import json, sys, tracemalloc
    import numpy as np
    folder, warm, loader = sys.argv[1:4]
    if loader.startswith("fastvol"):
        import fastvol
        executor = None if loader == "fastvol-serial" else "default"
        load = lambda f: fastvol.load(f, executor=executor).array
    elif loader == "pydicom":
        import os, pydicom
        def load(f):
            ds = [pydicom.dcmread(os.path.join(f, n)) for n in sorted(os.listdir(f))]
            v = np.stack([d.pixel_array for d in ds]).astype(np.float32)
            return v * float(ds[0].RescaleSlope) + float(ds[0].RescaleIntercept)
    elif loader == "simpleitk":
        import SimpleITK as sitk
        def load(f):
            r = sitk.ImageSeriesReader()
            r.SetFileNames(r.GetGDCMSeriesFileNames(f))
            return sitk.GetArrayFromImage(r.Execute())
    def status(key):
        with open("/proc/self/status") as fp:
            return next(int(l.split()[1]) * 1024 for l in fp if l.startswith(key))
    load(warm)
    try:
        with open("/proc/self/clear_refs", "w") as fp:
            fp.write("5")  # reset VmHWM to the current RSS
    except OSError:
        pass
    base = status("VmRSS:")
    out = load(folder)
    peak = status("VmHWM:")
    nbytes = out.nbytes
    del out
    tracemalloc.start()
    load(folder)
    traced = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    print(json.dumps({"base": base, "peak": peak, "nbytes": nbytes, "traced_peak": traced}))
""")


@pytest.mark.benchmark(group="memory")
@pytest.mark.parametrize("loader", ["fastvol", "fastvol-serial", "pydicom", "simpleitk"])
def test_memory(benchmark: Any, ct_series: Callable[..., Any], bench_size: Callable[..., Any],
                loader: str) -> None:  # fmt: skip
    if loader == "simpleitk":
        pytest.importorskip("SimpleITK")
    if not os.path.exists("/proc/self/status"):
        pytest.skip("needs /proc (Linux) for the RSS high-water mark")
    series = ct_series(*bench_size(STACK_SLICES))
    warm = ct_series(4, 32, 32, seed=99)
    _tag(benchmark, loader, f"{series.label} peak memory of one load")

    def run() -> dict[str, int]:
        done = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, series.folder, warm.folder, loader],
                              check=True, capture_output=True, text=True)  # fmt: skip
        return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]

    m = benchmark.pedantic(run, rounds=1, iterations=1)
    assert m["nbytes"] == series.n * series.rows * series.columns * (4 if loader == "pydicom" else 2)
    benchmark.extra_info.update(
        output_mb=round(m["nbytes"] / 2**20, 1),
        rss_above_baseline_mb=round((m["peak"] - m["base"]) / 2**20, 1),
        rss_peak_over_output=round((m["peak"] - m["base"]) / m["nbytes"], 3),
        tracemalloc_peak_over_output=round(m["traced_peak"] / m["nbytes"], 3),
    )  # fmt: skip


# ------------------------------------------------------------------------------- series-count


@pytest.mark.benchmark(group="series-count")
@pytest.mark.parametrize("loader", ["fastvol", "floor"])
@pytest.mark.parametrize("n_series", [1, 4, 16])
def test_series_count(benchmark: Any, ct_study: Callable[..., str], bench_size: Callable[..., Any],
                      floor: Callable[[Any], int], n_series: int, loader: str) -> None:  # fmt: skip
    n, rows, columns = bench_size(32, 128, 128)
    folder = ct_study(n_series, n, rows, columns)
    paths = [os.path.join(d, f) for d, _, files in os.walk(folder) for f in files]
    _tag(benchmark, loader, f"{n_series} series x {n}x{rows}x{columns}")
    benchmark.extra_info["series"] = n_series
    if loader == "floor":
        benchmark(floor, paths)
        return

    def scan_and_load() -> list[Any]:
        return [s.load() for s in fastvol.scan(folder)]

    volumes = benchmark(scan_and_load)
    assert len(volumes) == n_series
    if not benchmark.disabled:
        benchmark.extra_info["ms_per_series"] = round(benchmark.stats.stats.median * 1000 / n_series, 3)


# --------------------------------------------------------------------------- enhanced headers

ENHANCED_SLICES, ENHANCED_VOLUMES = 96, 4


def _siemens_like(i: int, item: Any) -> None:
    """Per-frame groups Siemens XA adds: the frame type and a private group of ~30 values."""
    from pydicom.dataset import Dataset

    frame_type = Dataset()
    frame_type.FrameType = ["ORIGINAL", "PRIMARY", "M", "NONE"]
    frame_type.PixelPresentation, frame_type.VolumetricProperties = "MONOCHROME", "VOLUME"
    frame_type.ComplexImageComponent, frame_type.AcquisitionContrast = "MAGNITUDE", "UNKNOWN"
    item.MRImageFrameTypeSequence = [frame_type]
    item.FrameVOILUTSequence = [Dataset()]
    item.FrameVOILUTSequence[0].WindowCenter, item.FrameVOILUTSequence[0].WindowWidth = "515", "1039"
    private = Dataset()
    block = private.private_block(0x0021, "SIEMENS MR SDI 02", create=True)
    for k in range(28):
        block.add_new(0x03 + k, "DS" if k % 3 else "LO", f"{i * 0.5 + k:.3f}" if k % 3 else f"X_{i}_{k}")
    outer = item.private_block(0x0021, "SIEMENS MR SDI 02", create=True)
    outer.add_new(0xFE, "SQ", [private])


@pytest.fixture(scope="module")
def enhanced_file(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], str]:
    """Path of the enhanced MR file, by lengths (``undefined`` or ``defined``), written once."""
    import factory_enhanced as fe

    disabled = request.config.getoption("benchmark_disable", False)
    n_slices, n_volumes = (4, 2) if disabled else (ENHANCED_SLICES, ENHANCED_VOLUMES)
    paths: dict[str, str] = {}

    def get(lengths: str) -> str:
        if lengths not in paths:
            w = fe.write_enhanced(tmp_path_factory.mktemp(f"enhanced-{lengths}"), n_slices=n_slices,
                                  n_volumes=n_volumes, rows=64, columns=64, dimension="TemporalPositionIndex",
                                  undefined_lengths=lengths == "undefined", edit_frame=_siemens_like)  # fmt: skip
            paths[lengths] = w.paths[0]
        return paths[lengths]

    return get


def _dcmread_groups(path: str) -> int:
    """dcmread up to the pixels, then every frame's groups (defined lengths parse on access)."""
    import pydicom

    ds = pydicom.dcmread(path, stop_before_pixels=True)
    shared = ds.SharedFunctionalGroupsSequence[0]
    return len(shared) + sum(len(group.value[0]) for frame in ds.PerFrameFunctionalGroupsSequence
                             for group in frame if group.VR == "SQ" and len(group.value))  # fmt: skip


def _dcmread(path: str) -> Any:
    import pydicom

    return pydicom.dcmread(path)


def _records(path: str) -> int:
    from fastvol.headers import read_records

    records, skipped, _, _ = read_records([LocalFile(path)])
    assert not skipped
    return len(records)


#: loader -> (environment, function of the path).
ENHANCED_LOADERS: dict[str, tuple[dict[str, str], Callable[[str], Any]]] = {
    "fastvol": ({"FASTVOL_JIT": "1"}, _records),
    "fastvol-compile-free": ({"FASTVOL_JIT": "0"}, _records),
    "fastvol-pydicom-path": ({"FASTVOL_SCANNER": "0"}, _records),
    "pydicom-dcmread": ({}, _dcmread),
    "pydicom-dcmread-groups": ({}, _dcmread_groups),
}


@pytest.mark.benchmark(group="enhanced-headers")
@pytest.mark.parametrize("lengths", ["undefined", "defined"])
@pytest.mark.parametrize("loader", [*ENHANCED_LOADERS, "floor"])
def test_enhanced_headers(benchmark: Any, enhanced_file: Callable[[str], str], floor: Callable[[Any], int],
                          timed_median: Callable[..., float], monkeypatch: pytest.MonkeyPatch, loader: str,
                          lengths: str) -> None:  # fmt: skip
    path = enhanced_file(lengths)
    _tag(benchmark, loader, f"enhanced MR {ENHANCED_SLICES * ENHANCED_VOLUMES} frames, {lengths} lengths")
    if loader == "floor":
        benchmark(floor, [path])
        return
    env, func = ENHANCED_LOADERS[loader]
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = benchmark(func, path)
    if func is _records:
        assert result > 1
    if not benchmark.disabled and loader != "pydicom-dcmread":
        with monkeypatch.context() as m:
            for name in env:
                m.delenv(name)
            dcmread_s = timed_median(lambda: _dcmread(path))
        benchmark.extra_info.update(dcmread_median_ms=round(dcmread_s * 1000, 2),
                                    x_dcmread=round(dcmread_s / benchmark.stats.stats.median, 2))  # fmt: skip
    if not benchmark.disabled and loader == "fastvol":
        # On a shared machine load comes and goes between rows: also time dcmread and this row
        # alternately, and keep the median of the paired ratios.
        ratios = []
        for _ in range(9):
            t0 = time.perf_counter()
            with monkeypatch.context() as m:
                for name in env:
                    m.delenv(name)
                _dcmread(path)
            t1 = time.perf_counter()
            func(path)
            ratios.append((t1 - t0) / (time.perf_counter() - t1))
        benchmark.extra_info.update(x_dcmread_paired=round(float(np.median(ratios)), 2))
