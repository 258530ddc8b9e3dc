"""stack.execute: bytes only through the frames' sources; the thread count and the executor chosen."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

import factory as fx
import fastvol
import fastvol.decode
import fastvol.stack as stack
from fastvol.decode import Decoder
from fastvol.plan import LoadPlan, make_plan
from fastvol.sources import LocalFile, MemorySource

RLE = "1.2.840.10008.1.2.5"
DEFLATED = "1.2.840.10008.1.2.1.99"
EXPLICIT_BE = "1.2.840.10008.1.2.2"


def _plan(folder: Path) -> LoadPlan:
    (series,) = fastvol.scan(folder)
    return make_plan(series)


def _threads_seen(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the threads that read each frame, in the order read."""
    seen: list[str] = []
    original = stack._stored_frame

    def spy(src, *args):  # type: ignore[no-untyped-def]
        seen.append(threading.current_thread().name)
        return original(src, *args)

    monkeypatch.setattr(stack, "_stored_frame", spy)
    return seen


# --- sources ----------------------------------------------------------------------------------


@pytest.mark.parametrize("ts", [None, EXPLICIT_BE, RLE, DEFLATED])
def test_every_byte_comes_through_the_source(tmp_path: Path, ts: str | None) -> None:
    w = fx.write_series(tmp_path, n=4, transfer_syntax=ts, slopes=2.0, intercepts=-10.0)
    plan = _plan(tmp_path)
    in_memory = tuple(
        dataclasses.replace(s, source=MemorySource(Path(s.path).read_bytes(), s.path))
        for s in plan.sources
    )
    for path in w.paths:
        Path(path).unlink()  # nothing may open the path any more
    out = stack.execute(dataclasses.replace(plan, sources=in_memory), threads=1)
    np.testing.assert_array_equal(out, w.volume(rescaled=True))


def test_sources_closed_after_load(tmp_path: Path) -> None:
    fx.write_series(tmp_path, n=5, transfer_syntax=RLE)
    plan = _plan(tmp_path)
    stack.execute(plan)
    local = [s.source for s in plan.sources if isinstance(s.source, LocalFile)]
    assert len(local) == 5
    assert all(source._fd == -1 for source in local)


def test_concurrent_loads_sharing_sources(tmp_path: Path) -> None:
    w = fx.write_series(tmp_path, n=12, transfer_syntax=RLE)
    plan = _plan(tmp_path)  # both loads read through the very same LocalFile objects
    truth = w.volume(rescaled=True)
    with ThreadPoolExecutor(3) as users:
        outs = list(users.map(lambda _: stack.execute(plan, threads=2), range(12)))
    for out in outs:
        np.testing.assert_array_equal(out, truth)
    assert not stack._HOLDS
    assert all(s.source._fd == -1 for s in plan.sources)


def test_truncated_file_names_it(tmp_path: Path) -> None:
    w = fx.write_series(tmp_path, n=3)
    plan = _plan(tmp_path)
    victim = Path(w.paths[1])
    victim.write_bytes(victim.read_bytes()[:-100])  # shrank after the header pass
    with pytest.raises(fastvol.CorruptFileError) as info:
        stack.execute(plan, threads=1)
    assert str(victim) in info.value.files
    assert not stack._HOLDS  # the frames left unread released their sources too
    assert all(s.source._fd == -1 for s in plan.sources)


# --- threads ----------------------------------------------------------------------------------


def test_threads_1_reads_in_the_calling_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    w = fx.write_series(tmp_path, n=8, transfer_syntax=RLE)
    plan = _plan(tmp_path)
    seen = _threads_seen(monkeypatch)
    monkeypatch.setattr(stack, "thread_pool", lambda *a: pytest.fail("threads=1 made a pool"))
    out = stack.execute(plan, threads=1)
    assert seen == [threading.current_thread().name] * 8
    np.testing.assert_array_equal(out, w.volume(rescaled=True))


def test_threads_1_starts_no_thread_in_a_fresh_process(tmp_path: Path) -> None:
    fx.write_series(tmp_path, n=6, transfer_syntax=RLE)
    code = (
        "import sys, threading, fastvol\n"
        "from fastvol.plan import make_plan\n"
        "from fastvol.stack import execute\n"
        "(series,) = fastvol.scan(sys.argv[1])\n"
        "plan = make_plan(series)\n"
        "execute(plan, threads=1)\n"
        "print(sorted(t.name for t in threading.enumerate() if t.name.startswith('fastvol')))\n"
        "execute(plan)\n"  # the check sees pool threads when there are some
        "print(bool([t for t in threading.enumerate() if t.name.startswith('fastvol')]))\n"
    )
    src = str(Path(fastvol.__file__).resolve().parents[1])
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": src}, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["[]", "True"]


def test_threads_2_uses_a_pool_of_two(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    w = fx.write_series(tmp_path, n=8)
    plan = _plan(tmp_path)
    seen = _threads_seen(monkeypatch)
    out = stack.execute(plan, threads=2)
    np.testing.assert_array_equal(out, w.volume(rescaled=True))
    assert len(seen) == 8 and all(name.startswith("fastvol") for name in seen)
    pool = stack.thread_pool(2)
    assert pool._max_workers == 2
    assert stack.thread_pool(2) is pool and stack.default_executor() is not pool
    assert {name for name in seen} <= {t.name for t in pool._threads}


def test_pools_recreated_after_fork(monkeypatch: pytest.MonkeyPatch) -> None:
    pool = stack.thread_pool(3)
    monkeypatch.setattr(stack, "_POOLS_PID", -1)  # as a forked child sees it
    again = stack.thread_pool(3)
    assert again is not pool and again._max_workers == 3
    pool.shutdown(wait=False)


def test_pools_work_in_a_forked_child(tmp_path: Path) -> None:
    fx.write_series(tmp_path, n=6, transfer_syntax=RLE)
    code = (
        "import os, sys, numpy as np, fastvol\n"
        "from fastvol.plan import make_plan\n"
        "from fastvol import stack\n"
        "(series,) = fastvol.scan(sys.argv[1])\n"
        "plan = make_plan(series)\n"
        "first = stack.execute(plan)\n"
        "parent = stack.default_executor()\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    ok = stack.default_executor() is not parent\n"
        "    ok &= all(np.array_equal(stack.execute(plan, threads=t), first) for t in (None, 2))\n"
        "    os._exit(0 if ok else 3)\n"
        "print(os.waitpid(pid, 0)[1] >> 8)\n"
    )
    src = str(Path(fastvol.__file__).resolve().parents[1])
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": src}, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["0"]


def test_explicit_executor_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fx.write_series(tmp_path, n=8)
    plan = _plan(tmp_path)
    seen = _threads_seen(monkeypatch)
    stack.execute(plan, executor=None, threads=4)
    assert set(seen) == {threading.current_thread().name}
    seen.clear()
    with ThreadPoolExecutor(2, thread_name_prefix="mine") as mine:
        stack.execute(plan, executor=mine, threads=1)
    assert len(seen) == 8 and all(name.startswith("mine") for name in seen)


@pytest.mark.parametrize("threads", [0, -1, 1.5, True, "2"])
def test_bad_threads(tmp_path: Path, threads: object) -> None:
    fx.write_series(tmp_path, n=2)
    with pytest.raises(fastvol.InputError, match="threads"):
        stack.execute(_plan(tmp_path), threads=threads)  # type: ignore[arg-type]


# --- decoders holding the GIL -----------------------------------------------------------------


def test_registry_declares_gil_per_candidate() -> None:
    for candidates in fastvol.decode.REGISTRY.values():
        for candidate in candidates:
            assert isinstance(candidate.releases_gil, bool)
    holds = {c.name for cs in fastvol.decode.REGISTRY.values() for c in cs if not c.releases_gil}
    assert {"pydicom.rle", "pylibjpeg-libjpeg", "pylibjpeg-openjpeg"} <= holds


@pytest.mark.parametrize("threads", [None, 2])
def test_gil_holding_decoder_runs_serially(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           threads: int | None) -> None:  # fmt: skip
    w = fx.write_series(tmp_path, n=8, transfer_syntax=RLE)
    plan = _plan(tmp_path)
    holding = Decoder("pydicom.rle", RLE, releases_gil=False)
    monkeypatch.setattr(fastvol.decode, "get_decoder", lambda ts: holding)
    monkeypatch.setattr(stack, "thread_pool", lambda *a: pytest.fail("a pool for a GIL-bound decoder"))
    seen = _threads_seen(monkeypatch)
    out = stack.execute(plan, threads=threads)
    assert seen == [threading.current_thread().name] * 8
    np.testing.assert_array_equal(out, w.volume(rescaled=True))


def test_gil_releasing_decoder_uses_the_pool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fx.write_series(tmp_path, n=8, transfer_syntax=RLE)
    plan = _plan(tmp_path)
    releasing = Decoder("fastvol.rle", RLE, releases_gil=True)
    monkeypatch.setattr(fastvol.decode, "get_decoder", lambda ts: releasing)
    seen = _threads_seen(monkeypatch)
    stack.execute(plan, threads=2)
    assert len(seen) == 8 and all(name.startswith("fastvol") for name in seen)


def test_deflated_counts_as_holding_the_gil(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fx.write_series(tmp_path, n=4, transfer_syntax=DEFLATED)
    plan = _plan(tmp_path)
    seen = _threads_seen(monkeypatch)
    stack.execute(plan)
    assert seen == [threading.current_thread().name] * 4


@pytest.mark.parametrize("slope, intercept", [(3.3, -7.5), (0.1, 0.0), (0.001, 2.25)])
def test_float_output_is_rounded_once_from_float64(tmp_path, slope, intercept):
    """A float32 output holds each float64 value rounded once, as pydicom's float64 values cast
    to float32, not values computed with a float32 copy of the slope (1 ulp off for some)."""
    import pydicom

    written = fx.write_series(tmp_path, n=3, bits_stored=16, signed=False, slopes=slope,
                              intercepts=intercept, seed=11)  # fmt: skip
    vol = fastvol.load(tmp_path, dtype="float32")
    for k, path in enumerate(vol.meta["files"]):
        stored = pydicom.dcmread(path).pixel_array.astype(np.float64)
        expected = (stored * slope + intercept).astype(np.float32)
        np.testing.assert_array_equal(vol.array[k], expected)
    assert len(written.paths) == 3
