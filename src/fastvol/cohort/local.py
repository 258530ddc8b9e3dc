"""Run conversion tasks here: in this process (``jobs=1``) or in ``jobs`` worker processes.

Workers are started once and each converts many series (no start-up cost per series). Every
worker dies with the process that started it (Linux ``PR_SET_PDEATHSIG``), so a killed
``fastvol convert`` leaves no worker writing behind it; their hidden temporaries are removed by
the next run. Workers ignore SIGINT: Ctrl-C is the parent's to handle.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from .tasks import SeriesTask, convert_one, series_fields

__all__ = ["failed_line", "run_local", "start_pool"]


def failed_line(task: SeriesTask, why: str, error: str = "WorkerDied") -> dict[str, Any]:
    """The report line of a task that did not come back (its worker died, or a foreign error)."""
    return {**series_fields(task.series), "index": task.index, "key": task.key, "status": "failed",
            "outputs": [], "bytes_out": 0, "error": error, "message": why}  # fmt: skip


#: Added where workers died before converting anything: the usual cause is a script without a
#: main guard (spawned workers import the script, which calls convert again).
_GUARD_HINT = (". If fastvol.convert(..., jobs > 1) was called at the top level of a script, put "
               "the call under `if __name__ == \"__main__\":` (workers are spawned processes that "
               "import the script)")  # fmt: skip


def _worker_init(parent: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        import ctypes

        with_errno = ctypes.CDLL(None, use_errno=True)
        with_errno.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG: die with our parent
    try:
        os.kill(parent, 0)  # the run may have died before prctl took effect
    except ProcessLookupError:
        os._exit(1)


#: Imported by each worker as it starts (while the main process lists the files), so no
#: series pays for them.
_PRELOAD = ("fastvol.api", "fastvol.stack", "fastvol.decode", "fastvol.cohort.tasks", "fastvol.headers.scan",
            "fastvol.cohort.sidecar", "nibabel")  # fmt: skip
#: Only where the C scanner was not built: a worker reads part of the headers, then converts
#: many series, so numba pays for itself (fastvol.kernels runs compiled once it is imported).
#: With the C kernels nothing a worker does runs faster under numba, whose import (with
#: scipy.linalg) would cost each worker about a second.
_PRELOAD_NUMBA = ("fastvol._kernels.pixels", "fastvol._kernels.rle")


def _warm() -> int:
    import importlib

    from ..kernels import native_scan

    for name in _PRELOAD + (_PRELOAD_NUMBA if native_scan() is None else ()):
        try:
            importlib.import_module(name)
        except ImportError:  # an optional one (nibabel): the task says so when it needs it
            pass
    return os.getpid()


def start_pool(jobs: int) -> Any:
    """``jobs`` worker processes, started now and importing the loader while the caller lists files.

    Spawned, not forked from a server: each worker's parent is this process, so
    ``PR_SET_PDEATHSIG`` ends it when this process dies, SIGKILL included (a fork server's
    workers keep the server alive, and it them).
    """
    from concurrent.futures import ProcessPoolExecutor

    pool = ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_worker_init, initargs=(os.getpid(),))  # fmt: skip
    for _ in range(jobs):
        pool.submit(_warm)
    return pool


def run_local(tasks: Sequence[SeriesTask], jobs: int, on_done: Callable[[dict[str, Any]], None],
              pool: Any = None) -> None:  # fmt: skip
    """Convert ``tasks``; ``on_done`` gets each report line as its series finishes.

    ``pool``: workers from :func:`start_pool` (shut down here); without one, ``jobs`` > 1
    starts them now. Biggest series first, so the workers finish together.
    """
    order = sorted(tasks, key=lambda t: -sum(r.file_size for r in t.series.records))
    if pool is None and (jobs <= 1 or len(tasks) <= 1):
        for task in order:
            on_done(convert_one(task))
        return
    from concurrent.futures import FIRST_COMPLETED, wait
    from concurrent.futures.process import BrokenProcessPool

    pool = pool if pool is not None else start_pool(jobs)
    try:
        pending = {pool.submit(convert_one, task): task for task in order}
    except BrokenProcessPool:  # a worker died before (reading headers, importing): fresh ones
        pool = start_pool(jobs)
        pending = {pool.submit(convert_one, task): task for task in order}
    converted_any = warned = False
    try:
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                task = pending.pop(future)
                try:
                    line = future.result()
                    converted_any = True
                except BrokenProcessPool:
                    line = failed_line(task, "a worker process died (killed, or out of memory) "
                                             "while this series was queued or running; rerun "
                                             "to convert it" + ("" if converted_any else _GUARD_HINT))  # fmt: skip
                    if not converted_any and not warned:  # said once where a script shows it
                        warnings.warn("fastvol.convert: worker processes died before converting "
                                      "anything" + _GUARD_HINT, RuntimeWarning, stacklevel=2)  # fmt: skip
                        warned = True
                except Exception as exc:  # a foreign error in one series must not stop the rest
                    line = failed_line(task, f"{type(exc).__name__}: {exc}", type(exc).__name__)
                on_done(line)
    except BaseException:
        # Interrupted: stop now. Workers being killed leave only hidden temporaries.
        for process in list(getattr(pool, "_processes", {}).values()):
            process.kill()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
