"""Fuzz fastvol.load with mutated DICOM files; print the outcome counts.

Usage::

    python tests/fuzz/run.py --mutants 2000 --seed 1      # fixed seed
    python tests/fuzz/run.py --mutants 2000 500 --seed 1 $(date -u +%Y%m%d)   # CI: fixed + rotating
    python tests/fuzz/run.py --mutants 20000 --seed 7 --keep /tmp/fuzz-failures

Seeds: factory series in every transfer syntax it writes (native, deflated, RLE, JPEG baseline,
JPEG lossless, JPEG-LS, JPEG 2000, HTJ2K; single-frame, enhanced multi-frame with several
fragments per frame) and real files from pydicom's test data when installed. Mutant *i* is
made by :func:`mutate.mutate` from a generator seeded with ``(seed, i)``: a run is reproduced
by its seed.

Each mutant is loaded (``fastvol.scan`` then ``load``, ``threads=1``) inside one of
``--workers`` long-lived worker processes, under an address-space cap (``RLIMIT_AS``: the
worker's size after warm-up plus ``--memory-mb`` plus the declared output, 16 bytes per
sample) and a time limit (``signal.alarm``; the parent kills a worker that does not answer
within the limit plus 5 s). Outcomes:

loaded       the load returned a volume
refused      a fastvol.FastvolError (the expected answer to a broken file)
foreign      any other exception: a bug
crash        the worker died (signal or exit): the mutant it was on is counted, a new worker
             starts and the run goes on
hang         the time limit passed
over-memory  MemoryError under the cap (also when it is the cause of a fastvol error)

Exit status 1 on any foreign, crash, hang or over-memory outcome (each listed with its mutant
index and operators; ``--keep DIR`` saves those mutants for reproduction).
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

OUTCOMES = ("loaded", "refused", "foreign", "crash", "hang", "over-memory")
FAILURES = ("foreign", "crash", "hang", "over-memory")
REAL_FILES = ("MR_small_RLE.dcm", "MR_small_jpeg_ls_lossless.dcm", "JPEG2000.dcm", "CT_small.dcm",
              "SC_rgb_rle_2frame.dcm", "emri_small_jpeg_2k_lossless.dcm", "JPGLosslessP14SV1_1s_1f_8b.dcm",
              "MR_small_bigendian.dcm", "emri_small_RLE.dcm", "SC_rgb_jpeg_dcmtk.dcm")  # fmt: skip


# --- seeds ------------------------------------------------------------------------------------


def make_seeds(folder: Path) -> list[Path]:
    """Write the factory seed files into ``folder`` and add pydicom's real files."""
    import factory
    import factory_enhanced

    paths: list[Path] = []
    for i, ts in enumerate((*factory.ALL_SYNTAXES, factory.DeflatedExplicitVRLittleEndian)):
        if ts in factory.COMPRESSED_SYNTAXES and not factory.can_encode(ts):
            continue
        bits = 8 if ts == factory.JPEGBaseline8Bit else 16
        ws = factory.write_series(folder / f"s{i}", n=1, rows=24, columns=20, transfer_syntax=ts,
                                  bits_allocated=bits, signed=bits == 16, seed=i)  # fmt: skip
        paths += [Path(p) for p in ws.paths]
    for i, ts in enumerate((factory.ExplicitVRLittleEndian, factory.RLELossless, factory.JPEGLSLossless)):
        if ts in factory.COMPRESSED_SYNTAXES and not factory.can_encode(ts):
            continue
        written = factory_enhanced.write_enhanced(folder / f"e{i}", n_slices=3, rows=16, columns=12,
                                                  transfer_syntax=ts, fragments_per_frame=1 + i % 2)
        paths += sorted((folder / f"e{i}").glob("*.dcm"))
        del written
    return paths + _real_files()


def _real_files() -> list[Path]:
    try:
        from pydicom.data import get_testdata_file
    except ImportError:
        return []
    found = [get_testdata_file(name, download=False) for name in REAL_FILES]
    return [Path(p) for p in found if p and os.path.getsize(p) < 2_000_000]


# --- the worker (a subprocess) ----------------------------------------------------------------


def _declared_bytes(found: object) -> int:
    total = 0
    for series in found:  # type: ignore[attr-defined]
        r = series.records[0]
        total += len(series.records) * r.rows * r.columns * max(r.samples_per_pixel, 1) * 16
    return total


def _classify(exc: BaseException) -> str:
    from fastvol import FastvolError

    chain: BaseException | None = exc
    while chain is not None:
        # A decoder's MemoryError may be folded into a DecodeError's message (fallbacks).
        if isinstance(chain, MemoryError) or "MemoryError" in str(chain):
            return "over-memory"
        chain = chain.__cause__ or chain.__context__
    return "refused" if isinstance(exc, FastvolError) else "foreign"


class _Hang(BaseException):
    pass


def _load_one(path: str, base: int, memory: int, seconds: int) -> dict:
    import resource
    import signal

    import fastvol

    resource.setrlimit(resource.RLIMIT_AS, (base + memory, resource.RLIM_INFINITY))
    signal.alarm(seconds)
    try:
        found = fastvol.scan(path)
        cap = base + memory + _declared_bytes(found)
        resource.setrlimit(resource.RLIMIT_AS, (cap, resource.RLIM_INFINITY))
        vol = found[0].load(threads=1) if len(found) == 1 else fastvol.load(path, threads=1)
        del vol
        return {"outcome": "loaded"}
    except _Hang:
        return {"outcome": "hang"}
    except BaseException as exc:  # noqa: BLE001 - every exception is classified
        return {"outcome": _classify(exc), "error": f"{type(exc).__name__}: {str(exc)[:300]}"}
    finally:
        signal.alarm(0)
        resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))


def worker(memory_mb: int, seconds: int, warm: list[str]) -> None:
    """Load each path read from stdin; answer one JSON line per path on stdout."""
    import signal
    import warnings

    import fastvol

    warnings.simplefilter("ignore")

    def alarm(signum: int, frame: object) -> None:
        raise _Hang

    signal.signal(signal.SIGALRM, alarm)
    for path in warm:  # compile every kernel before the address-space cap
        try:
            fastvol.load(path, threads=1)
        except Exception:
            pass
    base = _vm_size()
    out = sys.stdout
    for line in sys.stdin:
        result = _load_one(line.strip(), base, memory_mb << 20, seconds)
        out.write(json.dumps(result) + "\n")
        out.flush()


def _vm_size() -> int:
    with open("/proc/self/status") as fp:
        for line in fp:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


# --- the parent -------------------------------------------------------------------------------


class Worker:
    """One worker subprocess; restarted after it dies or hangs."""

    def __init__(self, args: argparse.Namespace, warm: list[Path]) -> None:
        self.args = args
        self.warm = [str(p) for p in warm]
        self.proc: subprocess.Popen[str] | None = None
        self.warmed = False

    def start(self) -> subprocess.Popen[str]:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker",
               "--memory-mb", str(self.args.memory_mb), "--seconds", str(self.args.seconds),
               "--warm", json.dumps(self.warm)]  # fmt: skip
        return subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                stderr=subprocess.DEVNULL, bufsize=1)  # fmt: skip

    def run(self, path: str) -> dict:
        if self.proc is None or self.proc.poll() is not None:
            self.proc = self.start()
            self.warmed = False
        proc = self.proc
        assert proc.stdin is not None and proc.stdout is not None
        answer: list[str] = []
        stdout = proc.stdout
        reader = threading.Thread(target=lambda: answer.append(stdout.readline()), daemon=True)
        try:
            proc.stdin.write(path + "\n")
            proc.stdin.flush()
        except BrokenPipeError:
            pass
        reader.start()
        # The first call also waits for the warm-up (imports and JIT compilation).
        reader.join(self.args.seconds + 5 + (0 if self.warmed else 120))
        self.warmed = True
        if reader.is_alive():
            proc.kill()
            proc.wait()
            self.proc = None
            return {"outcome": "hang", "error": "no answer: killed"}
        if not answer or not answer[0]:
            code = proc.wait()
            self.proc = None
            return {"outcome": "crash", "error": f"worker exited with {code}"}
        return json.loads(answer[0])

    def close(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()


def run(args: argparse.Namespace) -> int:
    """Make the seeds, fuzz, print the table; 1 on any failure."""
    start = time.time()
    with tempfile.TemporaryDirectory(prefix="fastvol-fuzz-") as tmp:
        seeds = make_seeds(Path(tmp) / "seeds")
        blobs = [p.read_bytes() for p in seeds]
        jobs: queue.Queue[int] = queue.Queue()
        for i in range(args.mutants):
            jobs.put(i)
        counts: Counter[str] = Counter()
        by_op: dict[str, Counter[str]] = {}
        failures: list[str] = []
        lock = threading.Lock()

        def drive(w: Worker) -> None:
            import mutate

            while True:
                try:
                    i = jobs.get_nowait()
                except queue.Empty:
                    return
                rng = np.random.default_rng([args.seed, i])
                k = int(rng.integers(len(blobs)))
                data, ops = mutate.mutate(blobs[k], rng, blobs)
                path = Path(tmp) / f"mutant{i}.dcm"
                path.write_bytes(data)
                result = w.run(str(path))
                outcome = result["outcome"]
                with lock:
                    counts[outcome] += 1
                    for op in ops.split("+"):
                        by_op.setdefault(op, Counter())[outcome] += 1
                    if outcome in FAILURES:
                        error = result.get("error", "")
                        failures.append(f"mutant {i} ({seeds[k].name}, {ops}): {outcome}: {error}")
                        if args.keep:
                            os.makedirs(args.keep, exist_ok=True)
                            Path(args.keep, f"mutant{i}-{outcome}.dcm").write_bytes(data)
                path.unlink()

        workers = [Worker(args, seeds) for _ in range(args.workers)]
        threads = [threading.Thread(target=drive, args=(w,)) for w in workers]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for w in workers:
            w.close()
    _report(args, counts, by_op, failures, len(seeds), time.time() - start)
    return 1 if any(counts[o] for o in FAILURES) else 0


def _report(args: argparse.Namespace, counts: Counter[str], by_op: dict[str, Counter[str]],
            failures: list[str], n_seeds: int, seconds: float) -> None:  # fmt: skip
    print(f"fastvol fuzz: {args.mutants} mutants of {n_seeds} seed files, seed {args.seed}, "
          f"{args.workers} workers, {seconds:.0f} s")  # fmt: skip
    print(f"{'operator':<20}" + "".join(f"{o:>12}" for o in OUTCOMES))
    for op in sorted(by_op):
        print(f"{op:<20}" + "".join(f"{by_op[op][o]:>12}" for o in OUTCOMES))
    print(f"{'total':<20}" + "".join(f"{counts[o]:>12}" for o in OUTCOMES))
    for line in failures[:50]:
        print("FAIL", line)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mutants", type=int, nargs="+", default=[2000], help="per seed")
    parser.add_argument("--seed", type=int, nargs="+", default=[1], help="one run per seed")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--memory-mb", type=int, default=512, help="address space over the warm worker")
    parser.add_argument("--seconds", type=int, default=10, help="time limit per mutant")
    parser.add_argument("--keep", default="", help="folder to save failing mutants in")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--warm", default="[]", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.memory_mb, args.seconds, json.loads(args.warm))
        return 0
    if len(args.mutants) != len(args.seed):
        parser.error("give one --mutants count per --seed")
    status = 0
    for mutants, seed in zip(args.mutants, args.seed):
        status |= run(argparse.Namespace(**{**vars(args), "mutants": mutants, "seed": seed}))
    return status


if __name__ == "__main__":
    sys.exit(main())
