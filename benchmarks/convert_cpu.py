"""Wall and CPU time of ``fastvol convert -j 2`` and ``dcm2niix`` on one folder, one after the other.

CPU is user + system time of each whole process tree (workers included), which says more than
wall time on a crowded machine. Run from the repository root::

    python benchmarks/convert_cpu.py FOLDER [y|n] [ROUNDS]

``y``/``n``: ``-z`` for both (.nii.gz or .nii). dcm2niix is taken from PATH or beside Python.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed(command: list[str], out: str) -> tuple[float, float]:
    """(wall, CPU) seconds of ``command`` writing into a fresh ``out``."""
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode not in (0, 1):  # 1: some series refused (fastvol) or skipped (dcm2niix)
        sys.exit(done.stderr.decode(errors="replace")[-2000:])
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    src = sys.argv[1]
    z = sys.argv[2] if len(sys.argv) > 2 else "y"
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    dcm2niix = shutil.which("dcm2niix") or str(Path(sys.executable).with_name("dcm2niix"))
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(rounds):
            fv = timed([sys.executable, "-m", "fastvol", "convert", src, "-o", f"{tmp}/fv", "-j", "2",
                        "-q", "-z", z], f"{tmp}/fv")  # fmt: skip
            dn = timed([dcm2niix, "-z", z, "-f", "%f_%p_%t_%s", "-o", f"{tmp}/dn", src], f"{tmp}/dn")
            load = os.getloadavg()[0]
            print(f"-z {z}: fastvol {fv[0]:.1f} s (CPU {fv[1]:.1f} s), dcm2niix {dn[0]:.1f} s "
                  f"(CPU {dn[1]:.1f} s): {dn[0] / fv[0]:.2f}x wall, {dn[1] / fv[1]:.2f}x CPU, "
                  f"load {load:.1f}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
