#!/usr/bin/env bash
# Benchmarks against the installed package (fastvol and its peers in one run), then a markdown
# report with the machine, the issue's targets and one table per group.
#
#   ci/bench.sh [--compare BASELINE.json] [--save-baseline] [pytest args...]
#
# Writes bench-results/results.json and bench-results/report.md (gitignored, never committed).
# --compare fails (exit 1) when a fastvol benchmark's median is slower than the baseline's by
# more than $FASTVOL_BENCH_TOLERANCE (default 0.25); --save-baseline copies the results to
# bench-results/baseline.json. $FASTVOL_BENCH_DATA keeps the written series between runs.
source "$(dirname "$0")/_env.sh"
baseline=""
save=0
pytest_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --compare) baseline="$2"; shift 2 ;;
    --save-baseline) save=1; shift ;;
    *) pytest_args+=("$1"); shift ;;
  esac
done
install_package "test,bench"
cd "$ROOT"
mkdir -p bench-results
status=0  # a failing benchmark still gets its report; the script fails at the end
"$PY" -m pytest benchmarks -q -p no:cacheprovider --benchmark-only \
  --benchmark-json=bench-results/results.json ${pytest_args[@]+"${pytest_args[@]}"} || status=$?
"$PY" benchmarks/report.py bench-results/results.json ${baseline:+--baseline "$baseline"} \
  --tolerance "${FASTVOL_BENCH_TOLERANCE:-0.25}" --out bench-results/report.md || status=1
echo "report: bench-results/report.md"
if [ "$save" = 1 ]; then
  cp bench-results/results.json bench-results/baseline.json
  echo "baseline: bench-results/baseline.json"
fi
exit "$status"
