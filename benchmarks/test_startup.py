"""Whole process: start to first volume, fastvol's CLI against its peers as processes.

Each round is one ``subprocess.run`` timed by wall clock: interpreter (or program) start, imports,
reading the series, the volume in memory (dcm2niix: written to a NIfTI file, its only output).
Cases: an 8-slice and the 300-slice 512x512 CT (explicit VR little endian). Rows:

- ``fastvol-cli``: ``fastvol FOLDER`` (the venv's console script; prints the geometry report);
- ``dicomsdl``, ``simpleitk``: ``python -c`` running the recipe in ``recipes.py``;
- ``dicomsdl-exit``: the same dicomsdl recipe ending with ``os._exit`` after flushing, as
  ``fastvol``'s command ends (:func:`fastvol.cli.exit_now`): without the interpreter's teardown,
  about 45 ms once numpy is loaded. The row keeps the comparison fair to a script that does so;
- ``dcm2niix``: the program, writing an uncompressed NIfTI;
- ``floor``: ``python -c`` importing numpy and reading every file's bytes (one thread).

A peer that is not installed is skipped. Rounds are pedantic (one untimed warm-up round: page
cache, numba's on-disk cache); under ``--benchmark-disable`` each row runs once on a tiny series.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from test_end_to_end import dcm2niix_run

pytestmark = pytest.mark.benchmark(group="startup")

SIZES = (8, 300)
LOADERS = ("fastvol-cli", "dicomsdl", "dicomsdl-exit", "simpleitk", "dcm2niix", "floor")
ROUNDS = 5
BENCH = str(Path(__file__).resolve().parent)
#: ``python -c`` programs; ``{folder}`` is filled in (repr), ``recipes`` is importable.
PROGRAMS = {
    "dicomsdl": "import recipes; print(recipes.dicomsdl_stack({folder}).shape)",
    "dicomsdl-exit": ("import os, sys, recipes; print(recipes.dicomsdl_stack({folder}).shape)\n"
                      "sys.stdout.flush(); os._exit(0)"),
    "simpleitk": "import recipes; print(recipes.simpleitk_series({folder}).shape)",
    "floor": ("import os, numpy; d = {folder}; n = 0\n"
              "for f in os.listdir(d):\n"
              "    with open(os.path.join(d, f), 'rb', buffering=0) as fp: n += len(fp.read())\n"
              "print(n)"),
}  # fmt: skip
MODULES = {"dicomsdl": "dicomsdl", "dicomsdl-exit": "dicomsdl", "simpleitk": "SimpleITK"}


def _python(program: str) -> Callable[[], str]:
    """A round: run ``program`` in a fresh interpreter (``recipes`` on its path), stdout back."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (BENCH, os.environ.get("PYTHONPATH"))))}
    argv = [sys.executable, "-c", program]
    return lambda: subprocess.run(argv, check=True, capture_output=True, text=True, env=env).stdout


@pytest.mark.parametrize("loader", LOADERS)
@pytest.mark.parametrize("n", SIZES, ids=[f"{n}" for n in SIZES])
def test_startup(benchmark: Any, ct_series: Callable[..., Any], bench_size: Callable[..., Any],
                 exe: Callable[[str], str], tmp_path: Path, n: int, loader: str) -> None:  # fmt: skip
    """Time whole processes of ``loader``, start to first volume, on an ``n``-slice CT."""
    if benchmark.disabled and n != SIZES[0]:
        pytest.skip("not timing: one case is enough to keep the rows from rotting")
    if loader in MODULES:
        pytest.importorskip(MODULES[loader])
    series = ct_series(*bench_size(n), syntax="explicit")
    if loader == "fastvol-cli":
        program = exe("fastvol")

        def run() -> str:
            argv = [program, series.folder]
            return subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    elif loader == "dcm2niix":
        program = exe("dcm2niix")

        def run() -> str:
            dcm2niix_run(program, series.folder, str(tmp_path))
            return ""
    else:
        run = _python(PROGRAMS[loader].format(folder=repr(series.folder)))
    role = "fastvol" if loader.startswith("fastvol") else "floor" if loader == "floor" else "peer"
    benchmark.extra_info.update(loader=loader, role=role, case=series.label,
                                slices=series.n,
                                file_mb=round(series.file_bytes / 2**20, 1))  # fmt: skip
    out = benchmark.pedantic(run, rounds=ROUNDS, iterations=1, warmup_rounds=1)

    shape = (series.n, series.rows, series.columns)
    if loader == "fastvol-cli":
        assert f"shape       {shape}" in out, out
    elif loader in ("dicomsdl", "dicomsdl-exit", "simpleitk"):
        assert out.strip() == str(shape), out
    elif loader == "floor":
        assert int(out) == series.file_bytes
