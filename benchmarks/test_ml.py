"""One training epoch's data loading: 20 CT series through a DataLoader with 2 spawn workers.

Two sizes: ``96x256x256`` (the issue's case: small series, so each epoch is mostly the fixed cost
of two spawn workers, the same for every loader) and ``200x512x512`` (a chest CT's matrix and a
realistic slice count, where the loaders' own work dominates).

Loaders: ``fastvol.torch.SeriesDataset`` against MONAI's ``Dataset`` + ``LoadImaged`` with its
ITKReader and with its PydicomReader, each returning float32 ``(1, ...)`` images (MONAI's
default dtype; fastvol asked for float32 too). Each timed epoch builds a fresh DataLoader, so
starting the two spawn workers (Python, torch, the loader's imports) and the first batch's
latency are inside the figure, as a user's first epoch sees them; ``extra_info`` adds the time
to the first batch, measured once more on its own.

Under ``--benchmark-disable`` (the CI run that keeps benchmarks from rotting) the series are tiny
and the loaders run in the main process (``num_workers=0``): spawning workers is what
``tests/test_torch.py`` tests, and it costs seconds per loader.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.benchmark(group="ml-epoch")

N_SERIES = 20
LOADERS = ("fastvol", "monai-itk", "monai-pydicom")
#: Series sizes (slices, rows, columns): the issue's small case, and a realistic CT.
SIZES = {"96x256x256": (96, 256, 256), "200x512x512": (200, 512, 512)}


def _fastvol_dataset(folders: list[str]) -> Any:
    from fastvol.torch import SeriesDataset

    return SeriesDataset(folders, out_dtype="float32")


def _monai_dataset(folders: list[str], reader: str) -> Any:
    monai = pytest.importorskip("monai")
    if reader == "ITKReader":
        pytest.importorskip("itk")
    from monai.transforms import LoadImaged

    transform = LoadImaged(keys="image", reader=reader, ensure_channel_first=True)
    return monai.data.Dataset([{"image": f} for f in folders], transform=transform)


def _dataset(loader: str, folders: list[str]) -> Any:
    if loader == "fastvol":
        return _fastvol_dataset(folders)
    return _monai_dataset(folders, "ITKReader" if loader == "monai-itk" else "PydicomReader")


def _epoch(dataset: Any, workers: int) -> Callable[[], int]:
    from torch.utils.data import DataLoader

    def run() -> int:
        loader = DataLoader(dataset, batch_size=1, num_workers=workers,
                            multiprocessing_context="spawn" if workers else None)  # fmt: skip
        voxels = 0
        for batch in loader:
            voxels += int(batch["image"].numel())
        return voxels

    return run


def _first_batch_s(dataset: Any, workers: int) -> float:
    from torch.utils.data import DataLoader

    t0 = time.perf_counter()
    loader = DataLoader(dataset, batch_size=1, num_workers=workers,
                        multiprocessing_context="spawn" if workers else None)  # fmt: skip
    next(iter(loader))
    return time.perf_counter() - t0


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning", "ignore::FutureWarning")
@pytest.mark.parametrize("loader", LOADERS)
@pytest.mark.parametrize("size", list(SIZES))
def test_epoch_two_spawn_workers(benchmark: Any, ct_study: Callable[..., str],
                                 bench_size: Callable[..., tuple[int, int, int]], size: str,
                                 loader: str) -> None:  # fmt: skip
    if benchmark.disabled and size != next(iter(SIZES)):
        pytest.skip("untimed, every size is the same tiny series: the first size covers it")
    benchmark.group = f"ml-epoch {size}"
    n, rows, columns = bench_size(*SIZES[size])
    study = ct_study(N_SERIES, n, rows, columns)
    folders = sorted(os.path.join(study, f) for f in os.listdir(study))
    if benchmark.disabled and loader == "monai-itk":
        # itk loaded in the pytest process segfaulted at interpreter exit (itk 5.4.7 beside
        # SimpleITK, torch and numba); timed runs load it in the spawned workers only.
        pytest.skip("ITKReader runs only when timing (in spawn workers, never in this process)")
    dataset = _dataset(loader, folders)
    workers = 0 if benchmark.disabled else 2
    run = _epoch(dataset, workers)
    if benchmark.disabled:
        voxels = benchmark(run)
    else:  # seconds per epoch: three rounds, no warm-up (every epoch spawns afresh anyway)
        voxels = benchmark.pedantic(run, rounds=3, iterations=1)
        benchmark.extra_info["first_batch_s"] = round(_first_batch_s(dataset, workers), 3)
    assert voxels == N_SERIES * n * rows * columns
    benchmark.extra_info.update(loader=loader, series=N_SERIES, slices=n, rows=rows,
                                columns=columns, workers=workers, start_method="spawn")  # fmt: skip
    expected = (1, n, rows, columns) if loader == "fastvol" else (1, columns, rows, n)
    assert tuple(np.asarray(dataset[0]["image"]).shape) == expected
