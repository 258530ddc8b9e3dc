"""RLE Lossless per-frame decode: fastvol's C kernel against its numba kernel and the other decoders.

Usage::

    PYTHONPATH=src python benchmarks/rle_kernels.py [--rounds 7] [--sizes 512 2048]
    env -u PYTHONDONTWRITEBYTECODE PYTHONPATH=src python benchmarks/rle_kernels.py --process FOLDER

Frames: the CT-like int16 image of ``benchmarks/test_decode.py`` (air, a noisy water disc, bone)
at 512 x 512 and 2048 x 2048, RLE-encoded by pydicom. Each decoder is called the way fastvol calls
it (a :class:`fastvol.decode.Decoder`: header check, output allocation, colour-by-plane
decoders interleaved), and fastvol's two kernels also alone into a preallocated buffer. Times
are the best of ``--rounds`` rounds, decoders interleaved in a shuffled order within each round
so a busy machine slows them alike: ms per frame on one thread (wall clock, and the thread's CPU time, which other
processes on a busy machine inflate less), and the speed-up of a 2-thread pool over one
thread on the same frames (~2 when the GIL is released and two cores are free).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_decode import ct_image, encode

from fastvol.decode import REGISTRY, Decoder

RLE = "1.2.840.10008.1.2.5"
DECODERS = ("fastvol.rle-c", "fastvol.rle", "pylibjpeg-rle", "imagecodecs.dicomrle")


def kernels(data: bytes, size: int) -> dict[str, Callable[[], Any]]:
    """fastvol's kernels alone: decode into one preallocated buffer."""
    out = np.empty(size * size * 2, np.uint8)
    src = np.frombuffer(data, np.uint8)
    found: dict[str, Callable[[], Any]] = {}
    try:
        from fastvol._ckernels._rle import rle_decode_frame as c_kernel

        found["C kernel, preallocated"] = lambda: c_kernel(src, out, size, size, 2, 1)
    except ImportError:
        pass
    from fastvol._kernels.rle import rle_decode_frame as numba_kernel

    numba_kernel(src, out, size, size, 2, 1)  # compile or load from the cache first
    found["numba kernel, preallocated"] = lambda: numba_kernel(src, out, size, size, 2, 1)
    return found


def best(fn: Callable[[], Any], repeat: int) -> float:
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - t0) / repeat


def cpu(fn: Callable[[], Any], repeat: int) -> float:
    """CPU seconds of this thread per call: what a busy machine's other processes do not add."""
    t0 = time.thread_time()
    for _ in range(repeat):
        fn()
    return (time.thread_time() - t0) / repeat


def measure(size: int, rounds: int) -> None:
    image = ct_image(size)
    data, kwargs = encode("rle", image)
    candidates = {c.name: c for c in REGISTRY[RLE]}
    calls: dict[str, Callable[[], Any]] = {}
    for name in DECODERS:
        if not candidates[name].is_available():
            print(f"  {name}: not installed")
            continue
        decoder = Decoder(name, RLE, candidates[name].releases_gil)
        np.testing.assert_array_equal(decoder(data, **kwargs), image)
        calls[name] = lambda decoder=decoder: decoder(data, **kwargs)
    calls.update(kernels(data, size))
    frames = 64 if size <= 512 else 8
    per_call = 50 if size <= 512 else 5
    single: dict[str, list[float]] = {n: [] for n in calls}
    single_cpu: dict[str, list[float]] = {n: [] for n in calls}
    one: dict[str, list[float]] = {n: [] for n in calls}
    two: dict[str, list[float]] = {n: [] for n in calls}
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(lambda _: None, range(4)))  # threads started
        order = list(calls.items())
        for round_ in range(rounds):
            np.random.default_rng(round_).shuffle(order)  # type: ignore[arg-type]
            for name, call in order:
                single[name].append(best(call, per_call))
                single_cpu[name].append(cpu(call, per_call))
                one[name].append(best(lambda call=call: [call() for _ in range(frames)], 1))
                two[name].append(best(lambda call=call: list(pool.map(lambda _: call(), range(frames))), 1))
    print(f"{size} x {size} int16 CT-like, {len(data) / 1024:.0f} KiB RLE "
          f"({image.nbytes / len(data):.1f}:1), best of {rounds} rounds:")  # fmt: skip
    base = min(single["fastvol.rle-c"]) if "fastvol.rle-c" in single else None
    for name in calls:
        ms = min(single[name]) * 1e3
        ratio = f"  {min(single[name]) / base:4.2f}x C" if base else ""
        speedup = min(one[name]) / min(two[name])
        cpu_ms = min(single_cpu[name]) * 1e3
        print(f"  {name:28s} {ms:8.3f} ms/frame{ratio} (CPU {cpu_ms:.3f})   2 threads x{speedup:.2f} "
              f"({frames} frames: {min(one[name]) * 1e3:.1f} -> {min(two[name]) * 1e3:.1f} ms)")  # fmt: skip


def processes(folder: str, rounds: int) -> None:
    """Whole ``fastvol FOLDER`` processes: the C kernel, the numba kernel with its cache warm,
    and with an empty cache (a first RLE load after install); ``python -c 'import numpy'`` as
    the floor. Configurations interleaved, one untimed warm-up round."""
    import os
    import shutil
    import subprocess
    import tempfile

    exe = shutil.which("fastvol", path=os.path.dirname(sys.executable)) or "fastvol"
    base = {k: v for k, v in os.environ.items() if k not in ("FASTVOL_NATIVE", "FASTVOL_JIT")}
    cases: dict[str, tuple[list[str], dict[str, str], bool]] = {
        "python -c 'import numpy'": ([sys.executable, "-c", "import numpy"], {}, False),
        "fastvol, C kernel": ([exe, folder], {}, False),
        "fastvol, numba kernel (cache warm)": ([exe, folder], {"FASTVOL_NATIVE": "0"}, False),
        "fastvol, numba kernel (cache empty)": ([exe, folder], {"FASTVOL_NATIVE": "0"}, True),
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    for round_ in range(rounds + 1):
        for name, (argv, env, fresh) in cases.items():
            with tempfile.TemporaryDirectory() as cache:
                extra = {"NUMBA_CACHE_DIR": cache} if fresh else {}
                t0 = time.perf_counter()
                subprocess.run(argv, check=True, capture_output=True, env={**base, **env, **extra})
                if round_:
                    times[name].append(time.perf_counter() - t0)
    print(f"whole process, {folder}: median (min) s of {rounds} rounds")
    for name, values in times.items():
        print(f"  {name:38s} {np.median(values):6.3f} ({min(values):.3f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--sizes", type=int, nargs="+", default=[512, 2048])
    parser.add_argument("--process", metavar="FOLDER", help="time whole `fastvol FOLDER` processes instead")
    args = parser.parse_args()
    if args.process:
        processes(args.process, args.rounds)
        return
    for size in args.sizes:
        measure(size, args.rounds)


if __name__ == "__main__":
    main()
