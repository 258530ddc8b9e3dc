"""Shared benchmark fixtures: series written once per session, a warmed-up ``benchmark``.

Data
----
``ct_series(n, rows, columns, syntax=..., plain=False, seed=0)`` writes (once per session and
arguments) a classic single-frame CT series with a scanner-like header and CT-like content (air,
a water body with noise, lungs, bone; 12 bits stored, RescaleIntercept -1024, so the output is
int16), uncompressed or compressed (``syntax``: a key of :data:`SYNTAXES`); ``plain=True``
writes signed 16-bit values with identity rescale instead (the pure-copy path). Headers and files
come from :func:`fastvol.sample.write_ct_series` (the one CT writer, shared with the test factory
and the built-in sample), compressed frames from ``factory.encode_frame`` (``tests/factory.py``).
``ct_study(n_series, ...)`` writes that many such series in sub-folders of one folder, and
``factory_series(**kwargs)`` any series of ``tests/factory.py`` (``write_series``). Set
``FASTVOL_BENCH_DATA`` to a folder to keep the written series between sessions.

``bench_size(n, rows=512, columns=512)`` gives the size a test should use: as asked when timing,
tiny under ``--benchmark-disable`` (the test suite runs the benchmarks once that way, for rot).

Warm-up
-------
``benchmark`` is pytest-benchmark's fixture wrapped so that calling it runs the function once
untimed first (numba compiles, caches fill, pages are touched), as datashader's conftest does.
A function whose second (warm) call takes longer than :data:`SLOW_S` is then timed over
:data:`SLOW_ROUNDS` rounds (``pedantic``) instead of calibrated rounds. Nothing changes under
``--benchmark-disable`` (one plain call), nor for ``benchmark.pedantic``.

Peers
-----
``require_exe(name)`` skips unless the executable is on PATH or beside the running Python;
modules: ``pytest.importorskip``.
"""

from __future__ import annotations

import os
import platform
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pytest_benchmark.fixture import BenchmarkFixture

# The test factory (``tests/factory.py``) encodes compressed frames; fastvol from the source tree
# when it is not installed (both the factory and the writer, ``fastvol.sample``, need it).
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
try:
    import fastvol  # noqa: F401
except ImportError:  # running from a source checkout without an install
    sys.path.insert(0, str(REPO / "src"))

#: Transfer syntaxes the CT writer knows, by short label.
SYNTAXES: dict[str, str] = {
    "explicit": "1.2.840.10008.1.2.1",
    "implicit": "1.2.840.10008.1.2",
    "rle": "1.2.840.10008.1.2.5",
    "jpeg-lossless": "1.2.840.10008.1.2.4.70",
    "jpeg-ls": "1.2.840.10008.1.2.4.80",
    "j2k": "1.2.840.10008.1.2.4.90",
    "htj2k": "1.2.840.10008.1.2.4.201",
}
#: Warm-up slower than this (s): time a few pedantic rounds rather than calibrated ones.
SLOW_S = 0.25
SLOW_ROUNDS = 3
#: Size used for every series under ``--benchmark-disable``.
TINY = (6, 32, 32)
BITS_STORED = 12
INTERCEPT = -1024
PIXEL_SPACING = 0.703125


# ------------------------------------------------------------------------------------ writer


@dataclass(frozen=True)
class BenchSeries:
    """One written series: its folder, files (InstanceNumber order) and sizes."""

    folder: str
    paths: tuple[str, ...]
    n: int
    rows: int
    columns: int
    syntax: str
    plain: bool
    wide: bool = False

    @property
    def file_bytes(self) -> int:
        """Total size of the files, bytes."""
        return sum(os.path.getsize(p) for p in self.paths)

    @property
    def output_bytes(self) -> int:
        """Bytes of the volume a loader returns (int16, or int32 when ``wide``)."""
        return self.n * self.rows * self.columns * (4 if self.wide else 2)

    @property
    def label(self) -> str:
        return f"{self.n}x{self.rows}x{self.columns} {self.syntax}{' int32' if self.wide else ''}"


def _ct_slice_base(rows: int, columns: int) -> np.ndarray:
    """A CT slice in HU without noise: air, water body, two lungs, a bone ring."""
    y, x = np.meshgrid(np.linspace(-1, 1, rows), np.linspace(-1, 1, columns), indexing="ij")
    hu = np.full((rows, columns), -1000.0, dtype=np.float32)
    hu[(x / 0.85) ** 2 + (y / 0.65) ** 2 <= 1] = 0.0
    for cx in (-0.4, 0.4):
        hu[((x - cx) / 0.28) ** 2 + (y / 0.4) ** 2 <= 1] = -800.0
    r = np.hypot(x, y + 0.45)
    hu[(r > 0.08) & (r < 0.14)] = 700.0
    return hu


def _bench_header(seed: int) -> dict[str, Any]:
    """The benchmark series' descriptive elements: :data:`fastvol.sample.SCANNER_HEADER` and
    a few more a scanner writes."""
    from fastvol.sample import SCANNER_HEADER

    return {
        **SCANNER_HEADER,
        "AcquisitionDate": "20240115",
        "AccessionNumber": f"BENCH{seed:05d}",
        "InstitutionName": "Benchmark Lab",
        "StudyDescription": "CT CHEST",
        "SeriesDescription": f"Axial 1.0 bench {seed}",
        "ManufacturerModelName": "Bench 1",
        "PatientName": "Bench^Patient",
        "PatientID": f"BENCH{seed:04d}",
        "PatientBirthDate": "19700101",
        "PatientAge": "054Y",
        "SoftwareVersions": "bench",
        "ReconstructionDiameter": "360",
        "Exposure": 100,
        "FilterType": "BODY FILTER",
        "GeneratorPower": 24000,
        "FocalSpots": "1.2",
        "PositionReferenceIndicator": "SN",
    }


def write_ct_series(
    folder: str, n: int, rows: int, columns: int, *, syntax: str = "explicit",
    plain: bool = False, seed: int = 0, wide: bool = False,
) -> list[str]:  # fmt: skip
    """Write an axial CT series (files ``IM0001``... along +z, 1 mm apart) and return the paths.

    ``plain``: signed 16-bit stored values, slope 1, intercept 0 (else 12 bits stored unsigned,
    intercept -1024). ``wide``: the same values declared 16 bits stored, so the rescaled range
    (-1024 to 64511) needs int32 output. ``syntax``: a key of :data:`SYNTAXES`. Headers and files come from
    :func:`fastvol.sample.write_ct_series`, compressed frames from ``factory.encode_frame``.
    """
    import factory
    from fastvol.sample import write_ct_series as write

    base = _ct_slice_base(rows, columns)
    rng = np.random.default_rng(seed)

    def slices() -> Any:
        for _ in range(n):
            hu = base + rng.standard_normal((rows, columns), dtype=np.float32) * 12.0
            if plain:
                yield np.rint(hu).astype(np.int16)
            else:
                yield np.clip(np.rint(hu - INTERCEPT), 0, (1 << BITS_STORED) - 1).astype(np.uint16)

    # Slice centre on the z axis; x and y written as "%g" (6 significant digits), as ever.
    x0, y0 = f"{-PIXEL_SPACING * (columns - 1) / 2:g}", f"{-PIXEL_SPACING * (rows - 1) / 2:g}"
    return write(
        folder,
        slices(),
        positions=[(x0, y0, k - (n - 1) / 2) for k in range(n)],
        pixel_spacing=(PIXEL_SPACING, PIXEL_SPACING),
        slice_thickness=1,
        transfer_syntax=SYNTAXES[syntax],
        encode=factory.encode_frame,
        bits_stored=16 if plain or wide else BITS_STORED,
        intercept=0 if plain else INTERCEPT,
        uid_entropy=("fastvol bench", str(seed)),
        series_number=2 + seed,
        header=_bench_header(seed),
    )


# ---------------------------------------------------------------------------------- fixtures


def _is_disabled(config: pytest.Config) -> bool:
    return bool(config.getoption("benchmark_disable", False))


@pytest.fixture(scope="session")
def bench_data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where series are written: ``$FASTVOL_BENCH_DATA`` (kept), else a session tmp folder."""
    env = os.environ.get("FASTVOL_BENCH_DATA")
    if env:
        Path(env).mkdir(parents=True, exist_ok=True)
        return Path(env)
    return tmp_path_factory.mktemp("bench-data")


def _cached(root: Path, key: str, write: Callable[[str], object]) -> str:
    """``root/key``, written by ``write(tmp_folder)`` once (marker ``key.done`` beside it)."""
    folder, done = root / key, root / f"{key}.done"
    if not done.exists():
        tmp = root / f"{key}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(folder, ignore_errors=True)
        write(str(tmp))
        tmp.rename(folder)
        done.touch()
    return str(folder)


@pytest.fixture(scope="session")
def ct_series(bench_data_root: Path) -> Callable[..., BenchSeries]:
    """Callable ``(n, rows, columns, *, syntax="explicit", plain=False, seed=0, wide=False)
    -> BenchSeries`` (see :func:`write_ct_series`)."""

    def get(n: int, rows: int = 512, columns: int = 512, *, syntax: str = "explicit",
            plain: bool = False, seed: int = 0, wide: bool = False) -> BenchSeries:  # fmt: skip
        kind = "plain" if plain else "u16" if wide else "ct12"
        key = f"ct-{n}x{rows}x{columns}-{syntax}-{kind}-s{seed}"
        folder = _cached(bench_data_root, key, lambda tmp: write_ct_series(
            tmp, n, rows, columns, syntax=syntax, plain=plain, seed=seed, wide=wide))  # fmt: skip
        paths = tuple(sorted(os.path.join(folder, f) for f in os.listdir(folder)))
        return BenchSeries(folder, paths, n, rows, columns, syntax, plain, wide)

    return get


@pytest.fixture(scope="session")
def ct_study(bench_data_root: Path) -> Callable[..., str]:
    """Callable ``(n_series, n, rows, columns) -> folder`` of that many CT series (sub-folders)."""

    def get(n_series: int, n: int, rows: int, columns: int) -> str:
        def write(tmp: str) -> None:
            for i in range(n_series):
                write_ct_series(os.path.join(tmp, f"S{i + 1:03d}"), n, rows, columns, seed=i)

        return _cached(bench_data_root, f"study-{n_series}x{n}x{rows}x{columns}", write)

    return get


@pytest.fixture(scope="session")
def factory_series(bench_data_root: Path) -> Callable[..., Any]:
    """Callable ``(**write_series_kwargs) -> WrittenSeries`` (tests/factory.py), cached."""
    import factory

    cache: dict[str, Any] = {}

    def get(**kwargs: Any) -> Any:
        key = repr(sorted(kwargs.items()))
        if key not in cache:
            folder = bench_data_root / f"factory-{len(cache):03d}"
            shutil.rmtree(folder, ignore_errors=True)
            try:
                cache[key] = factory.write_series(folder, **kwargs)
            except factory.FactoryUnavailable as exc:
                pytest.skip(str(exc))
        return cache[key]

    return get


@pytest.fixture
def bench_size(request: pytest.FixtureRequest) -> Callable[..., tuple[int, int, int]]:
    """Callable ``(n, rows=512, columns=512)``: that size when timing, :data:`TINY` when not."""
    disabled = _is_disabled(request.config)

    def size(n: int, rows: int = 512, columns: int = 512) -> tuple[int, int, int]:
        return TINY if disabled else (n, rows, columns)

    return size


def require_exe(name: str) -> str:
    """Path of executable ``name`` (PATH, then beside ``sys.executable``), else skip the test."""
    found = shutil.which(name) or shutil.which(name, path=os.path.dirname(sys.executable))
    if found is None:
        pytest.skip(f"{name} is not installed")
    return found


@pytest.fixture(scope="session")
def exe() -> Callable[[str], str]:
    """:func:`require_exe` as a fixture (test modules do not import conftest)."""
    return require_exe


class _Warmed(BenchmarkFixture):  # type: ignore[misc]
    """pytest-benchmark's fixture, warming the function up once before timing it."""

    def __call__(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        if self.disabled:
            return super().__call__(fn, *args, **kwargs)
        fn(*args, **kwargs)  # warm-up: compile, fill caches, touch pages
        t0 = time.perf_counter()
        fn(*args, **kwargs)  # a warm call decides how to time it
        if time.perf_counter() - t0 > SLOW_S:
            return self.pedantic(fn, args, kwargs, rounds=SLOW_ROUNDS, iterations=1)
        return super().__call__(fn, *args, **kwargs)


@pytest.fixture
def benchmark(benchmark: BenchmarkFixture) -> BenchmarkFixture:
    """The ``benchmark`` fixture with a warm-up call first (see the module docstring).

    The same object, its class switched to :class:`_Warmed` (pytest-benchmark insists on a
    ``BenchmarkFixture`` instance).
    """
    benchmark.__class__ = _Warmed
    return benchmark


def median_s(fn: Callable[[], Any], repeat: int = 5) -> float:
    """Median wall time of ``fn()`` over ``repeat`` calls (after one warm-up call), seconds."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def read_all_bytes(paths: Any) -> int:
    """The floor: read every file's bytes (one thread); returns the byte count."""
    total = 0
    for p in paths:
        with open(p, "rb", buffering=0) as fp:
            total += len(fp.read())
    return total


@pytest.fixture(scope="session")
def floor() -> Callable[[Any], int]:
    """:func:`read_all_bytes` as a fixture."""
    return read_all_bytes


@pytest.fixture(scope="session")
def timed_median() -> Callable[..., float]:
    """:func:`median_s` as a fixture."""
    return median_s


# ------------------------------------------------------------------------------ machine info


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fp:
            for line in fp:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        with open("/proc/meminfo", encoding="utf-8") as fp:
            for line in fp:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict[str, Any]) -> None:
    """Record the machine and the versions that matter in the JSON results."""
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for name in ("fastvol", "numpy", "pydicom", "numba", "imagecodecs", "pylibjpeg", "highdicom",
                 "SimpleITK", "dicom-numpy", "dicomsdl", "dcm2niix"):  # fmt: skip
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            pass
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    machine_info["fastvol_bench"] = {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "cores_usable": affinity,
        "memory_gib": _memory_gib(),
        "load_average": [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
    }
