#!/usr/bin/env bash
# The import-layer check, then the whole test suite against the installed package: unit, property and corpus tests, the
# TorchIO tests again on the TorchIO 2.0 alpha, the kernels once more as plain Python (NUMBA_DISABLE_JIT=1), and the
# benchmarks once with timing disabled so they cannot rot. Extra arguments go to the main pytest run.
source "$(dirname "$0")/_env.sh"
install_package "test"
cd "$ROOT"
"$PY" ci/check_imports.py  # no import circle, imports follow the layers, one module reads files
"$PY" -m pytest tests "$@"
# TorchIO 2.0 is an alpha that the torchio extra (<2) does not take: install it aside (no deps: the
# test extra brings its imports but loguru) and run the TorchIO tests on it, the lazy ones required.
TIO2="$ROOT/.ci-cache/torchio-2.0.0a2"
if [ ! -d "$TIO2" ]; then
  rm -rf "$TIO2.partial"
  "$PY" -m pip install -q --no-deps --target "$TIO2.partial" torchio==2.0.0a2 loguru==0.7.3
  mv "$TIO2.partial" "$TIO2"
fi
FASTVOL_REQUIRE_TORCHIO2=1 PYTHONPATH="$TIO2${PYTHONPATH:+:$PYTHONPATH}" \
  "$PY" -m pytest -q -p no:randomly tests/test_torchio_lazy.py tests/test_torchio.py
"$PY" tests/fuzz/run.py --mutants 2000 500 --seed 1 "$(date -u +%Y%m%d)"  # hostile files: fixed + rotating seed
NUMBA_DISABLE_JIT=1 "$PY" -m pytest -q tests -m kernels -p no:randomly
"$PY" -m pytest -q benchmarks --benchmark-disable
