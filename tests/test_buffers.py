"""Recycled output blocks (fastvol.buffers): reused only when nothing made from them lives."""

from __future__ import annotations

import pickle
import threading
import warnings

import factory as fx
import numpy as np
import pytest

import fastvol
from fastvol import buffers


@pytest.fixture
def small_blocks(monkeypatch):
    """Recycle blocks of any size, under a 64 MiB limit, starting with none kept or counted.

    A new generation (as in a forked child) keeps blocks under arrays that other tests still
    hold out of this test's counts.
    """
    monkeypatch.setattr(buffers, "MIN_BYTES", 1)
    monkeypatch.setattr(buffers, "_limit", 64 << 20)
    monkeypatch.setattr(buffers, "_idle", [])
    monkeypatch.setattr(buffers, "_returned", [])
    monkeypatch.setattr(buffers, "_in_use", 0)
    monkeypatch.setattr(buffers, "_generation", buffers._generation + 1)
    yield


def _block(array: np.ndarray) -> int:
    """The address of the block under ``array`` (a reference to the block would keep it busy)."""
    return array.base.__array_interface__["data"][0] if array.base is not None else -1


def test_a_freed_block_is_reused_and_a_live_one_is_not(small_blocks):
    first = buffers.empty((4, 8, 8), np.int32)
    first_block = _block(first)
    assert _block(buffers.empty((4, 8, 8), np.int32)) != first_block  # first still lives
    del first
    again = buffers.empty((2, 8, 8), np.int64)  # same bytes, other dtype and shape
    assert _block(again) == first_block and again.shape == (2, 8, 8) and again.dtype == np.int64
    assert again.flags.c_contiguous and again.flags.writeable


@pytest.mark.parametrize("keep", [
    lambda a: a[1:],                       # a slice
    lambda a: a.reshape(-1),               # a reshape
    lambda a: memoryview(a),               # a buffer export
    lambda a: np.frombuffer(a, np.uint8),  # an array made over its buffer
    lambda a: [a[0]],                      # a view held in a container
])  # fmt: skip
def test_anything_made_from_an_array_keeps_its_block(small_blocks, keep):
    array = buffers.empty((4, 8, 8), np.int16)
    array[...] = 7
    held = keep(array)
    block = _block(array)
    del array
    for _ in range(3):
        other = buffers.empty((4, 8, 8), np.int16)
        assert _block(other) != block
        other[...] = -1
    assert (np.asarray(held if not isinstance(held, list) else held[0]).view(np.uint8) != 0xFF).all()
    del held
    assert _block(buffers.empty((4, 8, 8), np.int16)) == block


def test_a_torch_tensor_keeps_its_block(small_blocks):
    torch = pytest.importorskip("torch")
    array = buffers.empty((4, 8, 8), np.float32)
    block = _block(array)
    tensor = torch.from_numpy(array)
    del array
    assert _block(buffers.empty((4, 8, 8), np.float32)) != block
    del tensor
    assert _block(buffers.empty((4, 8, 8), np.float32)) == block


def test_only_a_block_of_one_to_one_and_a_half_times_the_size_serves(small_blocks):
    big = buffers.empty((1000,), np.uint8)
    block = _block(big)
    del big
    assert _block(buffers.empty((600,), np.uint8)) != block  # would pin 1.67x the bytes
    assert _block(buffers.empty((700,), np.uint8)) == block


def test_limit_bounds_blocks_in_use_and_idle(small_blocks):
    buffers.set_limit(3000)
    a = buffers.empty((1000,), np.uint8)
    b = buffers.empty((1000,), np.uint8)
    c = buffers.empty((1000,), np.uint8)
    over = buffers.empty((1000,), np.uint8)  # all three blocks in use: a plain array
    assert over.flags.owndata
    assert buffers.held() == (3000, 0)
    del a, b
    assert buffers.held() == (1000, 2000)
    d = buffers.empty((1500,), np.uint8)  # no idle block fits: an idle one is dropped for it
    assert not d.flags.owndata and buffers.held() == (2500, 0)
    del c, d
    assert buffers.release() == 2500 and buffers.held() == (0, 0)
    buffers.set_limit(0)
    assert buffers.empty((10,), np.uint8).flags.owndata


def test_set_limit_gives_back_idle_blocks_beyond_it(small_blocks):
    kept = buffers.empty((1000,), np.uint8)
    freed = buffers.empty((2000,), np.uint8)
    del freed
    buffers.set_limit(1500)
    assert buffers.held() == (1000, 0)
    assert kept.base is not None
    with pytest.raises(fastvol.InputError, match="whole number"):
        buffers.set_limit(-1)


@pytest.mark.parametrize("text, nbytes", [
    ("0", 0), ("off", 0), ("False", 0), ("on", buffers.DEFAULT_LIMIT), ("1048576", 1 << 20), ("512M", 512 << 20), ("2G", 2 << 30), ("2GiB", 2 << 30),
    (" 64 k ", 64 << 10), ("1t", 1 << 40),
])  # fmt: skip
def test_sizes_from_the_environment(text, nbytes):
    assert buffers.parse_size(text) == nbytes


@pytest.mark.parametrize("text", ["1.5G", "-1", "lots", "G", "12X"])
def test_a_bad_size_names_the_variable(text):
    with pytest.raises(fastvol.InputError, match="FASTVOL_BUFFER_CACHE"):
        buffers.parse_size(text)


def test_the_environment_sets_the_limit(monkeypatch):
    monkeypatch.setattr(buffers, "_limit", None)
    monkeypatch.setenv("FASTVOL_BUFFER_CACHE", "0")
    assert buffers.limit() == 0
    monkeypatch.setattr(buffers, "_limit", None)
    monkeypatch.delenv("FASTVOL_BUFFER_CACHE")
    assert buffers.limit() == buffers.DEFAULT_LIMIT


def test_small_arrays_are_plain_numpy():
    assert buffers.empty((4, 4), np.int16).flags.owndata


def test_threads_never_share_a_live_block(small_blocks):
    errors: list[str] = []

    def worker(k: int) -> None:
        for i in range(200):
            a = buffers.empty((64,), np.int64)
            a[...] = k * 1000 + i
            if not (a == k * 1000 + i).all():
                errors.append(f"thread {k} round {i}")

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_a_load_on_a_dirty_recycled_block_is_exact(small_blocks, tmp_path):
    """Stale bytes never show: every voxel, missing slots included, is written by the load."""
    gappy = fx.write_series(tmp_path / "g", n=6, drop=[2], intercepts=-1024.0)
    expected = fastvol.load(gappy.folder, gaps="fill").array.copy()
    for dirty in (0x55, 0xFF, 0x00):
        junk = buffers.empty(expected.shape, expected.dtype)
        junk.view(np.uint8)[...] = dirty
        block = _block(junk)
        del junk
        vol = fastvol.load(gappy.folder, gaps="fill")
        assert _block(vol.array) == block
        np.testing.assert_array_equal(vol.array, expected)
        np.testing.assert_array_equal(pickle.loads(pickle.dumps(vol)).array, expected)  # a copy
        del vol
    tilted = fx.write_series(tmp_path / "t", n=5, step_vector=(0, 0.3, 2.0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fastvol.FastvolWarning)
        reference = fastvol.load(tilted.folder, tilt="resample").array.copy()
        for _ in range(3):
            np.testing.assert_array_equal(fastvol.load(tilted.folder, tilt="resample").array, reference)


def test_at_most_two_idle_blocks_stay(small_blocks):
    arrays = [buffers.empty((1000,), np.uint8) for _ in range(4)]
    assert buffers.held() == (4000, 0)
    del arrays  # the holders' finalizers hand the blocks back at once
    assert buffers.held() == (0, 2000)
    kept = buffers.empty((1000,), np.uint8)
    assert buffers.held() == (1000, 1000) and not kept.flags.owndata


def test_a_lowered_limit_frees_a_block_in_use_when_its_array_goes(small_blocks):
    live = buffers.empty((1000,), np.uint8)
    buffers.set_limit(0)
    del live
    assert buffers.held() == (0, 0)
    buffers.set_limit(1500)
    live = buffers.empty((1000,), np.uint8)
    buffers.set_limit(500)
    del live
    assert buffers.held() == (0, 0)


def test_a_block_returned_while_the_lock_is_held_waits_for_the_next_call(small_blocks):
    live = buffers.empty((1000,), np.uint8)
    with buffers._lock:  # as when a collection runs a finalizer inside a locked region
        del live
    assert buffers._returned
    assert buffers.held() == (0, 1000)


def _child_holds_no_idle_block() -> None:
    import os

    # The parent's array lives on in the child (a copy of its memory), but is not counted here,
    # and its block is never reused: the child recycles only its own.
    empty = buffers.held() == (0, 0)
    _PARENT.clear()
    os._exit(0 if empty and buffers.held() == (0, 0) else 3)


_PARENT: list[np.ndarray] = []


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs fork")
def test_a_forked_child_starts_without_idle_blocks(small_blocks):
    import multiprocessing

    idle = buffers.empty((1000,), np.uint8)
    del idle
    _PARENT.append(buffers.empty((1200,), np.uint8))
    assert buffers.held() == (1200, 1000)
    child = multiprocessing.get_context("fork").Process(target=_child_holds_no_idle_block)
    child.start()
    child.join(60)
    assert child.exitcode == 0
    _PARENT.clear()
    assert buffers.held() == (0, 2200)  # the parent keeps its own


def test_out_with_resampling_is_written_straight_into(small_blocks, tmp_path):
    tilted = fx.write_series(tmp_path / "t", n=5, step_vector=(0, 0.3, 2.0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fastvol.FastvolWarning)
        reference = fastvol.load(tilted.folder, tilt="resample").array.copy()
        buffers.release()
        given = np.empty(reference.shape, reference.dtype)
        vol = fastvol.load(tilted.folder, tilt="resample", out=given)
    assert vol.array is given
    np.testing.assert_array_equal(given, reference)
    # Only the pixels as read (before resampling) were on a block: one, idle now.
    in_use, idle = buffers.held()
    assert in_use == 0 and 0 < idle <= reference.size * 4


def test_a_holder_is_never_duplicated(small_blocks):
    import copy

    array = buffers.empty((1000,), np.uint8)
    holder = array.base
    assert copy.copy(holder) is holder and copy.deepcopy(holder) is holder
    with pytest.raises(TypeError, match="pickle the array"):
        pickle.dumps(holder)
    del holder, array
    assert buffers.held() == (0, 1000)  # handed back once


def test_the_module_is_reachable_from_a_fresh_import():
    """The README's `fastvol.buffers.release()` works before any load (a new user's first try)."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", "import fastvol; print(fastvol.buffers.held())"],
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(0, 0)"
