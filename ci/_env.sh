# Sourced by the ci/*.sh scripts: one virtual environment in .venv with the package installed
# (not editable: the tests import the installed package, never the source tree).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3}"
VENV="${FASTVOL_VENV:-$ROOT/.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
export PIP_DISABLE_PIP_VERSION_CHECK=1
install_package() {  # $1: extras, e.g. "test" or "test,bench"
  "$PY" -m pip install -q --upgrade pip >/dev/null
  "$PY" -m pip install -q --upgrade --force-reinstall --no-deps "$ROOT"
  "$PY" -m pip install -q "$ROOT${1:+[$1]}"
}
