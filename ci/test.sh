#!/usr/bin/env bash
# The import-layer check, then the whole test suite against the installed package: unit, property and corpus tests, the
# kernels once more as plain Python (NUMBA_DISABLE_JIT=1), and the benchmarks once with timing
# disabled so they cannot rot. Extra arguments go to the main pytest run.
source "$(dirname "$0")/_env.sh"
install_package "test"
cd "$ROOT"
"$PY" ci/check_imports.py  # no import circle, imports follow the layers, one module reads files
"$PY" -m pytest tests "$@"
"$PY" tests/fuzz/run.py --mutants 2000 500 --seed 1 "$(date -u +%Y%m%d)"  # hostile files: fixed + rotating seed
NUMBA_DISABLE_JIT=1 "$PY" -m pytest -q tests -m kernels -p no:randomly
"$PY" -m pytest -q benchmarks --benchmark-disable
