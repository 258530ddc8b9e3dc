"""Benchmark report and regression gate for pytest-benchmark JSON results.

    python benchmarks/report.py results.json [--baseline baseline.json] [--tolerance 0.25]
                                             [--out report.md]

Writes markdown: the machine, then the issue's targets as measured, then one table per group
(and per case inside a group: ``extra_info["case"]``) with mean/median times and each row's
ratio to fastvol and to the floor. Rows are told apart by ``extra_info`` (``loader``, ``role``:
``fastvol``/``floor``/``peer``), else by name (``fastvol``/``floor`` in it).

With ``--baseline``, every fastvol benchmark (memory and startup groups aside: whole processes)
is compared by median with the baseline's of the same full name; exit status 1 when one is
slower by more than the tolerance (default ``$FASTVOL_BENCH_TOLERANCE`` or 0.25).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable
from typing import Any

GROUP_ORDER = ("headers", "geometry", "decode", "stack", "end-to-end", "startup", "memory",
               "series-count", "segmentation")
QUIET_KEYS = {"loader", "role", "case"}
Bench = dict[str, Any]


def _role(b: Bench) -> str:
    info = b.get("extra_info", {})
    if "role" in info:
        return str(info["role"])
    name = b["name"].lower()
    return "fastvol" if "fastvol" in name else "floor" if "floor" in name else "peer"


def _label(b: Bench) -> str:
    return str(b.get("extra_info", {}).get("loader") or b["name"])


def _median(b: Bench) -> float:
    return float(b["stats"]["median"])


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.3g}" if seconds < 1e-3 else f"{seconds * 1000:.1f}"


def _reference(rows: list[Bench]) -> Bench | None:
    """The fastvol row ratios refer to: loader ``fastvol``, else the first fastvol row."""
    for b in rows:
        if b.get("extra_info", {}).get("loader") == "fastvol":
            return b
    return next((b for b in rows if _role(b) == "fastvol"), None)


def _floor(rows: list[Bench]) -> Bench | None:
    return next((b for b in rows if _role(b) == "floor"), None)


def _tables(benchmarks: list[Bench]) -> dict[tuple[str, str], list[Bench]]:
    tables: dict[tuple[str, str], list[Bench]] = {}
    for b in benchmarks:
        key = (b.get("group") or "ungrouped", str(b.get("extra_info", {}).get("case", "")))
        tables.setdefault(key, []).append(b)

    def order(key: tuple[str, str]) -> tuple[int, str, list[Any]]:
        group, case = key
        rank = GROUP_ORDER.index(group) if group in GROUP_ORDER else len(GROUP_ORDER)
        # Sort cases naturally ("75x512" before "150x512").
        words = [int(w) if w.isdigit() else w for w in case.replace("x", " x ").split()]
        return rank, group, [(isinstance(w, str), w) for w in words]

    return {k: tables[k] for k in sorted(tables, key=order)}


def _notes(b: Bench) -> str:
    info = {k: v for k, v in b.get("extra_info", {}).items() if k not in QUIET_KEYS}
    return ", ".join(f"{k}={v}" for k, v in info.items())


def render_table(rows: list[Bench]) -> list[str]:
    ref, floor = _reference(rows), _floor(rows)
    out = ["| benchmark | mean ms | median ms | rounds | x fastvol | x floor | notes |",
           "|---|---:|---:|---:|---:|---:|---|"]  # fmt: skip
    for b in sorted(rows, key=_median):
        med = _median(b)
        x_ref = f"{med / _median(ref):.2f}" if ref is not None and ref is not b else ""
        x_floor = f"{med / _median(floor):.2f}" if floor is not None and floor is not b else ""
        name = f"**{_label(b)}**" if b is ref else _label(b)
        out.append(f"| {name} | {_ms(b['stats']['mean'])} | {_ms(med)} | {b['stats']['rounds']} "
                   f"| {x_ref} | {x_floor} | {_notes(b)} |")  # fmt: skip
    return out


def machine_lines(data: Bench) -> list[str]:
    info = data.get("machine_info", {})
    mine = info.get("fastvol_bench", {})
    cpu = mine.get("cpu_model") or info.get("cpu", {}).get("brand_raw", "?")
    lines = [(f"- CPU: {cpu}; cores: {mine.get('cores', '?')} (usable {mine.get('cores_usable', '?')}); "
              f"memory: {mine.get('memory_gib', '?')} GiB; load average at start: "
              f"{mine.get('load_average', '?')} (other work on the machine skews timings, thread "
              "speed-ups most)"),
             f"- Python {mine.get('python', info.get('python_version', '?'))} on {mine.get('platform', info.get('system', '?'))}"]  # fmt: skip
    versions = mine.get("versions", {})
    if versions:
        lines.append("- " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    commit = data.get("commit_info", {})
    if commit.get("id"):
        lines.append(f"- commit {commit['id'][:12]}{' (dirty)' if commit.get('dirty') else ''}; "
                     f"run {data.get('datetime', '?')}")  # fmt: skip
    return lines


def _find(benchmarks: Iterable[Bench], group: str, loader: str, case_part: str = "",
          exact: bool = False) -> Bench | None:  # fmt: skip
    for b in benchmarks:
        info = b.get("extra_info", {})
        case = str(info.get("case", ""))
        if (b.get("group") == group and info.get("loader") == loader
                and (case == case_part if exact else case_part in case)):  # fmt: skip
            return b
    return None


def target_lines(benchmarks: list[Bench]) -> list[str]:
    """The issue's targets, each as measured (rows missing from the results are left out)."""
    out: list[str] = []

    def check(label: str, value: float | None, limit: float, higher_is_better: bool = False) -> None:
        if value is None:
            return
        ok = value >= limit if higher_is_better else value <= limit
        sign = ">=" if higher_is_better else "<="
        out.append(f"| {label} | {value:.2f} | {sign} {limit:g} | {'met' if ok else '**not met**'} |")

    def ratio(a: Bench | None, b: Bench | None) -> float | None:
        return _median(a) / _median(b) if a is not None and b is not None else None

    e2e = "end-to-end"
    check("load 300x512x512 / floor", ratio(_find(benchmarks, e2e, "fastvol", "300x512x512 explicit"),
                                           _find(benchmarks, e2e, "floor", "300x512x512 explicit")), 3)  # fmt: skip
    for kind, case in (("int16", "300x512x512 explicit"), ("int32", "300x512x512 explicit int32")):
        for loader, how in (("fastvol", ""), ("fastvol-fresh", ", fresh output memory")):
            mine = _find(benchmarks, e2e, loader, case, exact=True)
            check(f"load 300x512x512 {kind}{how}: dicomsdl / fastvol",
                  ratio(_find(benchmarks, e2e, "dicomsdl", case, exact=True), mine), 2, True)  # fmt: skip
            check(f"load 300x512x512 {kind}{how} / floor",
                  ratio(mine, _find(benchmarks, e2e, "floor", case, exact=True)), 3)  # fmt: skip
    check("scan 300 files / floor", ratio(_find(benchmarks, "headers", "fastvol-scan"),
                                         _find(benchmarks, "headers", "floor")), 0.5)  # fmt: skip
    mem = _find(benchmarks, "memory", "fastvol")
    if mem is not None:
        check("load peak RSS above baseline / output", mem["extra_info"].get("rss_peak_over_output"), 1.1)
    per_slice = {}
    for n in (75, 150, 300, 600):
        b = _find(benchmarks, e2e, "fastvol", f"{n}x512x512 explicit")
        if b is not None:
            per_slice[n] = _median(b) / n
    if len(per_slice) > 1:
        spread = max(per_slice.values()) / min(per_slice.values())
        detail = ", ".join(f"{n}: {v * 1000:.3f}" for n, v in per_slice.items())
        check(f"linear in slices: max/min ms per slice ({detail})", spread, 1.25)
    per_series = {}
    for k in (1, 4, 16):
        b = _find(benchmarks, "series-count", "fastvol", f"{k} series")
        if b is not None:
            per_series[k] = _median(b) / k
    if len(per_series) > 1:
        detail = ", ".join(f"{k}: {v * 1000:.2f}" for k, v in per_series.items())
        check(f"linear in series: max/min ms per series ({detail})",
              max(per_series.values()) / min(per_series.values()), 1.25)  # fmt: skip
    for syntax in ("j2k", "htj2k", "jpeg-ls", "jpeg-lossless", "rle"):
        pool = _find(benchmarks, e2e, "fastvol", f" {syntax}")
        serial = _find(benchmarks, e2e, "fastvol-serial", f" {syntax}")
        check(f"{syntax}: load one thread / default pool", ratio(serial, pool), 1.9, True)
    check("j2k: pydicom / fastvol (same frames)",
          ratio(_find(benchmarks, e2e, "pydicom", " j2k"), _find(benchmarks, e2e, "fastvol", " j2k")),
          2.2, True)  # fmt: skip
    check("CT + 10-segment SEG aligned: highdicom / fastvol",
          ratio(_find(benchmarks, "segmentation", "highdicom"), _find(benchmarks, "segmentation", "fastvol")),
          10, True)  # fmt: skip
    cli = _find(benchmarks, e2e, "fastvol-cli", "300x512x512")
    if cli is not None and "start_to_volume_ms" in cli["extra_info"]:
        out.append(f"| CLI process start to first volume, 300x512x512 (ms) | "
                   f"{cli['extra_info']['start_to_volume_ms']} | (report) | |")  # fmt: skip
    if not out:
        return []
    return ["| target | measured | goal | status |", "|---|---:|---|---|", *out]


def compare(current: list[Bench], baseline: list[Bench], tolerance: float) -> tuple[list[str], bool]:
    """Markdown lines comparing fastvol medians with the baseline; True when within tolerance."""
    base = {b["fullname"]: b for b in baseline}
    lines = [f"Tolerance: +{tolerance:.0%} on the median of each fastvol benchmark.", "",
             "| benchmark | baseline ms | now ms | change | |", "|---|---:|---:|---:|---|"]  # fmt: skip
    ok = True
    for b in current:
        # Whole processes (memory, startup) swing with the machine: reported, not gated.
        if _role(b) != "fastvol" or b.get("group") in ("memory", "startup") or b["fullname"] not in base:
            continue
        before, now = _median(base[b["fullname"]]), _median(b)
        change = now / before - 1
        slower = change > tolerance
        ok &= not slower
        lines.append(f"| {b['fullname'].split('::', 1)[-1]} | {_ms(before)} | {_ms(now)} "
                     f"| {change:+.0%} | {'**REGRESSION**' if slower else ''} |")  # fmt: skip
    return lines, ok


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("results", help="pytest-benchmark JSON (--benchmark-json)")
    p.add_argument("--baseline", help="earlier results to gate against")
    p.add_argument("--tolerance", type=float,
                   default=float(os.environ.get("FASTVOL_BENCH_TOLERANCE", "0.25")))  # fmt: skip
    p.add_argument("--out", help="markdown file to write (default: stdout)")
    args = p.parse_args(argv)
    with open(args.results, encoding="utf-8") as fp:
        data = json.load(fp)
    benchmarks = [b for b in data.get("benchmarks", []) if b.get("stats")]
    lines = ["# fastvol benchmarks", "", "## Machine", "", *machine_lines(data), ""]
    targets = target_lines(benchmarks)
    if targets:
        lines += ["## Targets", "", *targets, ""]
    ok = True
    if args.baseline:
        with open(args.baseline, encoding="utf-8") as fp:
            baseline = [b for b in json.load(fp).get("benchmarks", []) if b.get("stats")]
        gate, ok = compare(benchmarks, baseline, args.tolerance)
        lines += ["## Regression gate", "", *gate, "", f"Result: {'pass' if ok else 'FAIL'}", ""]
    current = None
    for (group, case), rows in _tables(benchmarks).items():
        if group != current:
            lines += [f"## {group}", ""]
            current = group
        if case:
            lines += [f"### {case}", ""]
        lines += [*render_table(rows), ""]
    text = "\n".join(lines)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fp:
            fp.write(text)
    else:
        print(text)
    if not ok:
        print(f"benchmark regression beyond {args.tolerance:.0%}: see the report's gate", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
