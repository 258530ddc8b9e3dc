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
from collections.abc import Callable, Sequence
from typing import Any

from .tasks import SeriesTask, convert_one, series_fields

__all__ = ["failed_line", "run_local", "warm_up"]


def failed_line(task: SeriesTask, why: str, error: str = "WorkerDied") -> dict[str, Any]:
    """The report line of a task that did not come back (its worker died, or a foreign error)."""
    return {**series_fields(task.series), "index": task.index, "key": task.key, "status": "failed",
            "outputs": [], "bytes_out": 0, "error": error, "message": why}  # fmt: skip


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


#: Imported once by the fork server, so no worker pays for them on its first series (an
#: optional one that is missing is left out by multiprocessing itself). The compiled kernels
#: too: a worker converts many series, so numba pays for itself (fastvol.kernels runs the
#: compiled kernels once numba is imported), and RLE decodes 10x faster than compile-free.
_PRELOAD = ["fastvol.api", "fastvol.stack", "fastvol.decode", "fastvol.cohort.tasks",
            "fastvol.cohort.sidecar", "nibabel", "numpy", "fastvol._kernels.pixels",
            "fastvol._kernels.rle"]  # fmt: skip


def _context() -> Any:
    # forkserver: cheap forks of a clean server (no threads inherited, unlike fork); the
    # server exits with this process, and the workers with it.
    # The server imports the loader once, so each worker starts with it already imported.
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(_PRELOAD)
    return context


def warm_up() -> None:
    """Start the fork server now, so its imports overlap the header scan of the run."""
    context = _context()
    if context.get_start_method() == "forkserver":
        from multiprocessing import forkserver

        forkserver.ensure_running()


def run_local(tasks: Sequence[SeriesTask], jobs: int, on_done: Callable[[dict[str, Any]], None]) -> None:
    """Convert ``tasks``; ``on_done`` gets each report line as its series finishes.

    Biggest series first, so the last to finish are small ones and the workers end together.
    """
    order = sorted(tasks, key=lambda t: -sum(r.file_size for r in t.series.records))
    if jobs <= 1 or len(tasks) <= 1:
        for task in order:
            on_done(convert_one(task))
        return
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    pool = ProcessPoolExecutor(min(jobs, len(tasks)), mp_context=_context(),
                               initializer=_worker_init, initargs=(os.getpid(),))  # fmt: skip
    pending = {pool.submit(convert_one, task): task for task in order}
    try:
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                task = pending.pop(future)
                try:
                    line = future.result()
                except BrokenProcessPool:
                    line = failed_line(task, "a worker process died (killed, or out of memory) "
                                             "while this series was queued or running; rerun "
                                             "to convert it")  # fmt: skip
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
