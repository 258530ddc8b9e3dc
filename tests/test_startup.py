"""Compile-free start: small loads need neither numba nor pydicom, and give the same volumes."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import factory as fx
import fastvol
from fastvol._pykernels import vector
from fastvol.headers import scan as header_scan


#: Modules a small local load in a fresh process must not import: numba and pydicom (about a
#: second together), and the standard library's heavier ones that only some loads need
#: (numpy.ma through numpy.median, a thread pool and logging, fsspec, atomic writes' helpers;
#: the command line's argparse with what it brings, and json, for ``fastvol FOLDER``; string,
#: which compiles a pattern at import).
HEAVY = ("numba", "pydicom", "numpy.ma", "concurrent.futures", "logging", "fsspec", "socket",
         "hashlib", "tempfile", "fastvol.sources.remote", "argparse", "gettext", "locale", "shutil",
         "json", "string")  # fmt: skip


@pytest.mark.parametrize("cli", [False, True], ids=["api", "cli"])
def test_small_load_in_a_fresh_process_imports_none_of_the_heavy_modules(tmp_path, cli):
    fx.write_series(tmp_path, n=4)
    load = ("from fastvol.cli import main; main([sys.argv[1]])" if cli
            else "import fastvol; v = fastvol.load(sys.argv[1]); print(v.shape)")  # fmt: skip
    code = f"import sys\n{load}\nprint('heavy', sorted(set({HEAVY!r}) & set(sys.modules)))"
    env = {k: v for k, v in __import__("os").environ.items() if k != "FASTVOL_JIT"}
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                         text=True, check=True, env=env)  # fmt: skip
    assert "(4, 16, 12)" in out.stdout
    assert out.stdout.strip().splitlines()[-1] == "heavy []"


@pytest.mark.parametrize("argv", [[], ["a"], ["a", "b c"], ["convert.d", "+x"]])
def test_a_command_line_of_paths_parses_as_argparse_parses_it(argv):
    from fastvol import cli

    assert vars(cli._paths_only(argv)) == vars(cli._parser().parse_args(argv))


@pytest.mark.parametrize("argv", [["a", "--json"], ["-h"], ["a", "--gaps=fill"], ["--", "-a"]])
def test_a_command_line_with_flags_is_left_to_argparse(argv):
    from fastvol import cli

    assert cli._paths_only(argv) is None


def test_small_rle_load_in_a_fresh_process_imports_no_numba(tmp_path):
    # The C kernel decodes RLE (fastvol._ckernels._rle); numba would cost an import, or a compile.
    pytest.importorskip("fastvol._ckernels._rle", reason="C kernels not built")
    fx.require(fx.RLELossless)
    fx.write_series(tmp_path, n=4, transfer_syntax=fx.RLELossless)
    code = ("import sys, fastvol; from fastvol.decode import get_decoder; "
            "v = fastvol.load(sys.argv[1]); print(v.shape, get_decoder('1.2.840.10008.1.2.5').name, "
            "sorted({'numba', 'fastvol._kernels'} & set(sys.modules)))")  # fmt: skip
    env = {k: v for k, v in __import__("os").environ.items() if k not in ("FASTVOL_JIT", "FASTVOL_NATIVE")}
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                         text=True, check=True, env=env)  # fmt: skip
    assert out.stdout.strip() == "(4, 16, 12) fastvol.rle-c []"


@pytest.mark.parametrize("syntax", ["explicit", "implicit", "big", "rle"])
@pytest.mark.parametrize("bits", [(16, 12, 1), (16, 16, 0), (8, 8, 0)])
def test_compile_free_and_compiled_loads_agree(tmp_path, monkeypatch, syntax, bits):
    ts = {"explicit": fx.ExplicitVRLittleEndian, "implicit": fx.ImplicitVRLittleEndian,
          "big": fx.ExplicitVRBigEndian, "rle": fx.RLELossless}[syntax]  # fmt: skip
    allocated, stored, signed = bits
    fx.require(ts)
    fx.write_series(tmp_path, n=5, transfer_syntax=ts, bits_allocated=allocated,
                    bits_stored=stored, signed=bool(signed), drop=(2,))  # fmt: skip
    loads = {}
    for jit in ("0", "1"):
        monkeypatch.setenv("FASTVOL_JIT", jit)
        loads[jit] = fastvol.load(tmp_path, gaps="fill")
    np.testing.assert_array_equal(loads["0"].array, loads["1"].array)
    assert loads["0"].array.dtype == loads["1"].array.dtype
    np.testing.assert_array_equal(loads["0"].affine, loads["1"].affine)


@pytest.mark.kernels
@pytest.mark.parametrize("seed", range(6))
def test_numpy_twins_equal_the_pixel_kernels(seed):
    from fastvol._kernels.pixels import fill_slots, store_frame, store_frame_in_place

    rng = np.random.default_rng(seed)
    bits_stored = int(rng.integers(1, 17))
    signed, mask = bool(rng.integers(2)), bool(rng.integers(2)) or bits_stored < 16
    src = rng.integers(0, 1 << 16, 257, dtype=np.uint16)
    for out_dtype, slope, intercept in ((np.int32, 3, -1024), (np.float32, 0.5, 1.25), (np.int16, 1, 0),
                                        (np.float32, 1.2904, -0.37), (np.float64, 0.1, 1e-3)):  # fmt: skip
        a, b = np.empty(257, out_dtype), np.empty(257, out_dtype)
        store_frame(src, a, bits_stored, signed, mask, out_dtype(slope), out_dtype(intercept))
        vector.store_frame(src, b, bits_stored, signed, mask, out_dtype(slope), out_dtype(intercept))
        np.testing.assert_array_equal(a, b)
    a, b = src.copy(), src.copy()
    store_frame_in_place(a, bits_stored, signed, True, 2, -7)
    vector.store_frame_in_place(b, bits_stored, signed, True, 2, -7)
    np.testing.assert_array_equal(a, b)
    a, b = np.zeros((5, 3, 3), np.float32), np.zeros((5, 3, 3), np.float32)
    fill_slots(a, np.array([1, 3]), np.float32(np.nan))
    vector.fill_slots(b, np.array([1, 3]), np.float32(np.nan))
    np.testing.assert_array_equal(a, b)


def test_dictionary_is_loaded_only_when_a_file_needs_it(tmp_path, monkeypatch):
    from fastvol.find import find_sources
    from fastvol.headers import read_header_pydicom

    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    def edit(_: int, ds: Dataset) -> None:
        item = Dataset()
        item.ReferencedSOPInstanceUID = "1.2.3"
        ds.ReferencedImageSequence = Sequence([item])
        ds["ReferencedImageSequence"].is_undefined_length = True  # the dictionary decides

    fx.write_series(tmp_path, n=2, transfer_syntax=fx.ImplicitVRLittleEndian, edit=edit)
    monkeypatch.setattr(header_scan, "_SQ_TAGS", None)
    sources = find_sources(tmp_path)
    records = header_scan.scan_headers(sources)
    assert header_scan._SQ_TAGS is not None  # asked for by the kernel (NEED_DICTIONARY)
    assert all(r is not None for r in records)
    assert records == [read_header_pydicom(s) for s in sources]


@pytest.mark.kernels
def test_in_place_twin_wraps_like_the_kernel():
    from fastvol._kernels.pixels import store_frame_in_place

    rng = np.random.default_rng(7)
    for _ in range(200):
        dtype = (np.uint8, np.uint16, np.uint32)[int(rng.integers(3))]
        bits = int(rng.integers(1, 8 * np.dtype(dtype).itemsize + 1))
        signed = bool(rng.integers(2))
        mask = signed or bool(rng.integers(2))
        slope, intercept = int(rng.integers(-5, 6)), int(rng.integers(-70000, 70000))
        src = rng.integers(0, np.iinfo(dtype).max, 300, dtype=dtype, endpoint=True)
        a, b = src.copy(), src.copy()
        store_frame_in_place(a, bits, signed, mask, slope, intercept)
        vector.store_frame_in_place(b, bits, signed, mask, slope, intercept)
        np.testing.assert_array_equal(a, b)


def _run_command(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=False,
                          timeout=120)  # fmt: skip


def test_the_command_exits_as_python_would_less_the_teardown(tmp_path):
    # exit_now skips freeing the interpreter, not what Python's exit promises: non-daemon
    # threads are joined, atexit functions run, buffered output reaches a pipe, status kept.
    fx.write_series(tmp_path / "s", n=4)
    flag = tmp_path / "thread-finished"
    code = (
        "import atexit, sys, threading, time\n"
        "atexit.register(lambda: print('atexit ran'))\n"
        "def late(flag=sys.argv[2]):\n    time.sleep(0.3); open(flag, 'w').close()\n"
        "threading.Thread(target=late).start()\n"
        "sys.argv = ['fastvol', sys.argv[1]]\n"
        "from fastvol.cli import run\nrun()\nprint('not reached')\n"
    )
    ok = _run_command(code, str(tmp_path / "s"), str(flag))
    assert ok.returncode == 0, ok.stderr
    assert "shape       (4, 16, 12)" in ok.stdout and ok.stdout.rstrip().endswith("atexit ran")
    assert "not reached" not in ok.stdout
    assert flag.exists()
    missing = _run_command(code, str(tmp_path / "none"), str(tmp_path / "flag2"))
    assert missing.returncode == 2
    assert "PathNotFoundError" in missing.stderr and "atexit ran" in missing.stdout


def test_python_m_fastvol_prints_the_whole_report_into_a_pipe(tmp_path):
    fx.write_series(tmp_path, n=3)
    out = subprocess.run([sys.executable, "-m", "fastvol", str(tmp_path)], capture_output=True, check=False,
                         text=True, timeout=120)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("Volume(shape=(3, 16, 12)") and "affine (slice, row, column)" in out.stdout


def test_the_command_runs_blas_in_one_thread_unless_told(tmp_path):
    # The command imports numpy after setting it; a user's own setting is kept.
    fx.write_series(tmp_path / "s", n=2)
    code = ("import atexit, os, sys\n"
            "atexit.register(lambda: print('BLAS', os.environ.get('OPENBLAS_NUM_THREADS')))\n"
            "sys.argv = ['fastvol', sys.argv[1]]\nfrom fastvol.cli import run\nrun()\n")  # fmt: skip
    env = {k: v for k, v in __import__("os").environ.items() if k != "OPENBLAS_NUM_THREADS"}
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "s")], capture_output=True,
                         text=True, check=True, env=env, timeout=120)  # fmt: skip
    assert out.stdout.rstrip().endswith("BLAS 1")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "s")], capture_output=True,
                         text=True, check=True, env={**env, "OPENBLAS_NUM_THREADS": "3"}, timeout=120)  # fmt: skip
    assert out.stdout.rstrip().endswith("BLAS 3")
