"""Run conversion tasks on a Dask cluster (``--dask ADDRESS`` or ``convert(..., client=)``).

The same plan as a local run: one Dask task per series, carrying only the picklable
:class:`~.tasks.SeriesTask` (the series' header records with their paths or URLs, the output
paths, the options). Dask's scheduler does the rest: a task whose worker dies is run again
elsewhere, and since outputs are written atomically, the rerun's files are whole. Needs the
``dask`` extra (``dask[distributed]``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import MissingDependencyError
from .local import failed_line
from .tasks import SeriesTask, convert_one

__all__ = ["client_for", "run_dask"]

#: Retries of a task that raised (a worker's death is retried by the scheduler itself).
RETRIES = 2


def _distributed() -> Any:
    try:
        import distributed
    except ImportError as exc:
        raise MissingDependencyError(
            "running on Dask needs dask.distributed: pip install 'fastvol[dask]'",
            install_hint="pip install 'fastvol[dask]'",
        ) from exc
    return distributed


def client_for(address: str) -> Any:
    """A ``distributed.Client`` connected to the scheduler at ``address``."""
    return _distributed().Client(address)


def run_dask(tasks: Sequence[SeriesTask], client: Any, on_done: Callable[[dict[str, Any]], None]) -> None:
    """Convert ``tasks`` on ``client``'s cluster; ``on_done`` gets each line as it finishes."""
    distributed = _distributed()
    run = uuid.uuid4().hex[:8]  # keys unique to this run on a shared cluster
    keys = [f"fastvol-convert-{run}-{t.index}" for t in tasks]
    futures = client.map(convert_one, tasks, key=keys, retries=RETRIES)
    by_key = {f.key: t for f, t in zip(futures, tasks)}
    try:
        for future in distributed.as_completed(futures):
            task = by_key[future.key]
            try:
                line = future.result()
            except Exception as exc:  # KilledWorker after repeated deaths, or a foreign error
                line = failed_line(task, f"{type(exc).__name__}: {exc}", type(exc).__name__)
            on_done(line)
    except BaseException:
        client.cancel(futures)
        raise
