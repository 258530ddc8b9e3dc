"""fastvol.torch.SeriesDataset in real DataLoaders (spawn, forkserver, fork) over factory series."""

from __future__ import annotations

import os
import pickle
import sys

import numpy as np
import pytest

import factory as fx
import fastvol

torch = pytest.importorskip("torch")
from torch.utils.data import DataLoader  # noqa: E402

from fastvol.torch import SeriesDataset, decode_threads  # noqa: E402


def _with_threads(sample: dict) -> dict:
    """A transform run in the worker: records the decode threads a load there gets."""
    sample["threads"] = decode_threads(None)
    sample["pid"] = os.getpid()
    sample["numba"] = "numba" in sys.modules  # compiled kernels switched on in this worker
    return sample


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> list[str]:
    root = tmp_path_factory.mktemp("cohort")
    return [fx.write_series(root / f"s{i}", n=5, orientation=(1, 0, 0, 0, 0.8660254, 0.5) if i % 2 else
                            (1, 0, 0, 0, 1, 0), origin=(i, 2 * i, -i), shuffle=i, seed=i).folder
            for i in range(4)]  # fmt: skip


# 2026-12: Python >= 3.12 warns when forking a process with threads (the test runner's).
@pytest.mark.filterwarnings("ignore:.*fork\\(\\) may lead to deadlocks:DeprecationWarning")
@pytest.mark.parametrize("method", ["spawn", "forkserver", "fork"])
def test_dataloader_two_workers_yields_what_load_gives(cohort, method):
    import multiprocessing

    if method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"start method {method} not available here")
    dataset = SeriesDataset(cohort, transform=_with_threads)
    loader = DataLoader(dataset, batch_size=2, num_workers=2, multiprocessing_context=method)
    batches = list(loader)
    assert len(batches) == 2
    pids = set()
    for b, batch in enumerate(batches):
        assert batch["image"].shape == (2, 1, 5, 16, 12) and batch["image"].dtype == torch.int16
        assert batch["affine"].dtype == torch.float64
        for k in range(2):
            path = cohort[2 * b + k]
            vol = fastvol.load(path)
            np.testing.assert_array_equal(batch["image"][k, 0].numpy(), vol.array)
            np.testing.assert_array_equal(batch["affine"][k].numpy(), vol.affine)
            np.testing.assert_allclose(batch["spacing"][k].numpy(), vol.spacing)
            assert batch["meta"]["source"][k] == path
            assert batch["meta"]["series_instance_uid"][k] == vol.meta["series_instance_uid"]
        # workers x threads never exceeds the cores
        assert all(int(t) * 2 <= max(2, _cores()) for t in batch["threads"])
        pids.update(int(p) for p in batch["pid"])
    assert os.getpid() not in pids
    if method == "spawn" and os.environ.get("FASTVOL_JIT", "") != "1":
        # two 5-file series per worker: far less work than numba's import, so none
        assert not any(bool(x) for batch in batches for x in batch["numba"])


@pytest.mark.skipif(os.environ.get("FASTVOL_JIT", "") in ("0", "1"), reason="FASTVOL_JIT decides instead")
@pytest.mark.parametrize("native", [True, False], ids=["c-scanner", "no-c-scanner"])
@pytest.mark.parametrize("copies", [4, 60])
def test_spawn_worker_compiles_when_its_share_pays(cohort, copies, native, monkeypatch):
    """Items of 5 files each, half per worker. Without the C scanner, 8 per worker are far less
    scan work than numba's import (COMPILE_AFTER), so no numba; 120 per worker pass it, so each
    worker imports numba before its first item (every sample of the epoch sees it). With the C
    scanner no worker ever imports numba: nothing it does would run faster compiled."""
    pytest.importorskip("numba")
    from fastvol.kernels import COMPILE_AFTER, SCAN_FILE_WORK, native_scan

    if native and native_scan() is None:
        pytest.skip("the C scanner is not built in this install")
    if not native:
        monkeypatch.setenv("FASTVOL_NATIVE", "0")  # inherited by the spawned workers
    items = cohort * copies
    busy = not native and len(items) // 2 * 5 * SCAN_FILE_WORK > COMPILE_AFTER
    assert busy == (not native and copies == 60)
    loader = DataLoader(SeriesDataset(items, transform=_with_threads), batch_size=8, num_workers=2,
                        multiprocessing_context="spawn")  # fmt: skip
    seen = [bool(x) for batch in loader for x in batch["numba"]]
    assert len(seen) == len(items) and seen == [busy] * len(items)


def test_items_of_every_kind_dtype_and_4d(tmp_path):
    single = fx.write_series(tmp_path / "a", n=3, seed=1)
    fx.write_series(tmp_path / "two" / "x", n=3, seed=2, series_uid="1.2.3.4.1")
    fx.write_series(tmp_path / "two" / "y", n=4, seed=3, series_uid="1.2.3.4.2")
    four = fx.write_series(tmp_path / "d", n=3, repeats=2, seed=4)
    found = fastvol.scan(tmp_path / "two")
    items = [single.folder, str(tmp_path / "two"), found[1], (str(tmp_path / "two"), "1.2.3.4.1"),
             four.folder]  # fmt: skip
    dataset = SeriesDataset(items, out_dtype="float32")
    assert dataset[0]["image"].dtype == torch.float32 and dataset[0]["image"].shape == (1, 3, 16, 12)
    with pytest.raises(fastvol.SeriesSelectionError):
        dataset[1]  # two series and no choice: the load's own error
    np.testing.assert_array_equal(dataset[2]["image"][0].numpy(), found[1].load().array)
    assert dataset[3]["image"].shape == (1, 3, 16, 12)
    assert dataset[3]["meta"]["source"].endswith("#1.2.3.4.1")
    assert dataset[4]["image"].shape == (2, 3, 16, 12)  # (volume, slice, row, column)
    restored = pickle.loads(pickle.dumps(dataset))
    np.testing.assert_array_equal(restored[4]["image"].numpy(), four.volume().astype(np.float32))
    assert SeriesDataset([single.folder], out_dtype=torch.int32)[0]["image"].dtype == torch.int32


def test_bad_arguments_are_fastvol_errors(tmp_path):
    with pytest.raises(fastvol.InputError, match="out_dtype"):
        SeriesDataset(["x"], out_dtype="not-a-dtype")
    with pytest.raises(fastvol.InputError, match="cache"):
        SeriesDataset(["x"], cache=tmp_path / "absent")
    with pytest.raises(fastvol.InputError, match="expected a path"):
        SeriesDataset([42])[0]
    with pytest.raises(fastvol.PathNotFoundError):
        SeriesDataset([str(tmp_path / "absent")])[0]


def test_cache_serves_later_epochs_and_notices_changed_files(tmp_path):
    written = fx.write_series(tmp_path / "s", n=4)
    cache = tmp_path / "cache"
    cache.mkdir()
    dataset = SeriesDataset([written.folder], cache=cache)
    first = dataset[0]
    entries = sorted(p.name for p in cache.iterdir())
    assert len(entries) == 2 and entries[0].endswith(".json") and entries[1].endswith(".npy")
    np.testing.assert_array_equal(first["image"][0].numpy(), written.volume())
    # Epoch 2 reads the cache, not the DICOM files: a changed cache entry shows through.
    npy = cache / entries[1]
    np.save(npy, np.full((1, 4, 16, 12), 7, dtype=np.int16))
    assert int(dataset[0]["image"].max()) == 7
    np.testing.assert_array_equal(dataset[0]["affine"].numpy(), first["affine"].numpy())
    # A touched file is a new key: loaded again from DICOM, a second entry written.
    os.utime(written.paths[0], ns=(1, 1))
    np.testing.assert_array_equal(dataset[0]["image"][0].numpy(), written.volume())
    assert len(list(cache.iterdir())) == 4
    # Other options are other keys.
    assert SeriesDataset([written.folder], cache=cache, out_dtype="float32")[0]["image"].dtype == torch.float32
    assert len(list(cache.iterdir())) == 6


def test_decode_threads_in_the_main_process_are_as_asked():
    assert decode_threads(None) is None and decode_threads(3) == 3


def test_colour_image_is_channel_first(tmp_path):
    written = fx.write_series(tmp_path / "c", n=5, rows=16, columns=12, photometric="RGB", samples_per_pixel=3,
                              bits_allocated=8, signed=False)  # fmt: skip
    vol = fastvol.load(written.folder)
    cache = tmp_path / "cache"
    cache.mkdir()
    dataset = SeriesDataset([written.folder], cache=cache)
    for _ in range(2):  # loaded, then from the cache
        image = dataset[0]["image"]
        assert image.shape == (3, 5, 16, 12) and image.dtype == torch.uint8  # (channel, slice, row, column)
        np.testing.assert_array_equal(image.numpy(), np.moveaxis(vol.array, -1, 0))
