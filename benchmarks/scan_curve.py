"""Scan time against the number of series, to 10,000 series (issue 9: linear, near the floor).

Writes (once, into ``--data``) ``max(--series)`` series of ``--files`` 32x32 CT slices each,
then for each count scans the first that many series folders with :func:`fastvol.scan` and reads
the first 64 KiB of each of their files (the floor), best of ``--repeat`` runs, and prints a
markdown table: series, files, floor ms, scan ms, scan/floor, and microseconds per file (flat
when the scan is linear).

    python benchmarks/scan_curve.py --data /tmp/scan-curve --series 100 1000 10000
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

try:
    import fastvol
except ImportError:  # a source checkout without an install
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    import fastvol

from fastvol.sample import SCANNER_HEADER, write_ct_series

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_scan_many import read_heads  # noqa: E402


def write_study(root: Path, n_series: int, n_files: int) -> list[str]:
    """``root/S00001`` ... one series per folder; written once (``root/.done-N-F`` marks it)."""
    folders = [str(root / f"S{i + 1:05d}") for i in range(n_series)]
    done = root / f".done-{n_series}-{n_files}"
    if done.exists():
        return folders
    stored = np.full((n_files, 32, 32), 1000, dtype=np.uint16)
    for i, folder in enumerate(folders):
        write_ct_series(
            folder, stored, positions=[(0, 0, k) for k in range(n_files)],
            pixel_spacing=(0.7, 0.7), slice_thickness=1, bits_stored=12,
            uid_entropy=("scan curve", str(i)), series_number=i + 1,
            header={**SCANNER_HEADER, "SeriesDescription": f"curve {i}"},
        )  # fmt: skip
    done.touch()
    return folders


def best_of(repeat: int, func, *args) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        func(*args)
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--series", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--files", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    args.data.mkdir(parents=True, exist_ok=True)
    folders = write_study(args.data, max(args.series), args.files)
    fastvol.scan(folders[:2])  # warm-up: kernels loaded, imports done
    print("| series | files | floor ms | scan ms | scan/floor | us per file |")
    print("|---:|---:|---:|---:|---:|---:|")
    for n in sorted(args.series):
        subset = folders[:n]
        paths = [os.path.join(f, name) for f in subset for name in sorted(os.listdir(f))]
        floor = best_of(args.repeat, read_heads, paths)
        scan = best_of(args.repeat, fastvol.scan, subset)
        found = fastvol.scan(subset)
        assert len(found) == n, (len(found), n)
        print(f"| {n} | {len(paths)} | {floor * 1e3:.0f} | {scan * 1e3:.0f} | "
              f"{scan / floor:.2f} | {scan / len(paths) * 1e6:.1f} |")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
