"""The conversion plan on a real Dask cluster: a LocalCluster with 2 worker processes, one of
them killed mid-run; the outputs match a local run byte for byte."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

import fastvol
from test_convert import _debris, _tree, big_cohort

distributed = pytest.importorskip("distributed")
pytest.importorskip("nibabel")


@pytest.fixture
def client():
    # Real worker processes with nannies (which restart a killed worker), started by the test.
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None, silence_logs=50) as cluster, \
            distributed.Client(cluster) as c:  # fmt: skip
        yield c


def test_dask_run_with_a_worker_killed_mid_run(tmp_path: Path, client) -> None:
    big_cohort(tmp_path / "in", 16, n_slices=32)
    local = fastvol.convert(tmp_path / "in", tmp_path / "local")
    assert local.exit_code == 0
    pids_before = set(client.run(os.getpid).values())
    result: dict[str, object] = {}

    def run() -> None:
        result["report"] = fastvol.convert(tmp_path / "in", tmp_path / "dask", client=client)

    thread = threading.Thread(target=run)
    thread.start()
    victim = None
    deadline = time.monotonic() + 120
    while victim is None and thread.is_alive() and time.monotonic() < deadline:
        busy = [addr for addr, keys in client.processing().items() if keys]
        if busy:  # a worker holding tasks: kill its process without warning
            victim = client.run(os.getpid, workers=[busy[0]])[busy[0]]
            os.kill(victim, signal.SIGKILL)
        time.sleep(0.001)
    thread.join(300)
    assert victim is not None, "no worker was seen busy"
    report = result["report"]
    assert isinstance(report, fastvol.cohort.Report)
    assert [line["status"] for line in report.lines] == ["converted"] * 16
    assert len({line["worker"] for line in report.lines} - {victim}) >= 1
    assert _tree(tmp_path / "dask") == _tree(tmp_path / "local")
    assert _debris(tmp_path / "dask") == []
    client.wait_for_workers(2, timeout=60)
    assert set(client.run(os.getpid).values()) != pids_before  # the killed one was replaced
