"""The conversion report: ``OUT/fastvol-report.jsonl`` and the summary table.

One JSON line per series found (``"kind": "series"``: input files, outputs, status, error
class and message, geometry decisions, timings), after one ``"kind": "scan"`` line (inputs,
files skipped by the scan and why). Lines are appended as series finish, so a killed run keeps
what it finished; at the end the file is rewritten atomically in plan order. A rerun reads the
lines back to skip finished series (:func:`read_lines`); a torn last line is ignored.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import IO, Any

__all__ = ["EXIT_CODES", "REPORT_NAME", "Report", "ReportLog", "read_lines"]

#: The report's file name inside the output folder.
REPORT_NAME = "fastvol-report.jsonl"
#: Refused or failed series the summary names one by one (the report holds them all).
SHOWN = 10

#: Exit status of ``fastvol convert`` -> meaning.
EXIT_CODES = {
    0: "every series found was converted (or skipped as asked)",
    1: "some series were refused or failed; the report says which and why",
    2: "nothing found, or bad usage (as dcm2niix's 2 for 'no DICOM')",
    3: "interrupted; rerun the same command to finish (finished series are kept)",
}


def _dumps(line: dict[str, Any]) -> str:
    return json.dumps(line, default=str, separators=(",", ":"))


def read_lines(path: str) -> list[dict[str, Any]]:
    """The parseable lines of an earlier report (a line torn by a kill is left out)."""
    try:
        with open(path, encoding="utf-8") as fp:
            text = fp.read()
    except FileNotFoundError:
        return []
    out = []
    for raw in text.splitlines():
        try:
            line = json.loads(raw)
        except ValueError:
            continue
        if isinstance(line, dict):
            out.append(line)
    return out


class ReportLog:
    """Appends lines to the report as series finish (flushed, so a kill loses none)."""

    def __init__(self, path: str, header: dict[str, Any], keep: Iterable[dict[str, Any]] = ()):
        from ..atomic import atomic_path

        self.path = path
        # The lines kept from an earlier run replace that report in one rename: a kill here
        # loses nothing, then new lines are appended.
        with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fp:
            fp.writelines(_dumps(line) + "\n" for line in [header, *keep])
        self._fp: IO[str] | None = open(path, "a", encoding="utf-8")

    def write(self, line: dict[str, Any]) -> None:
        if self._fp is not None:
            self._fp.write(_dumps(line) + "\n")
            self._fp.flush()

    def close(self) -> None:
        if self._fp is not None:
            self._fp.close()
            self._fp = None


@dataclass
class Report:
    """What :func:`fastvol.convert` did: the report lines, and the counts and exit status.

    Attributes
    ----------
    path
        ``OUT/fastvol-report.jsonl`` (a URL when ``OUT`` is one).
    scan
        The scan line (inputs, files skipped by the scan and why).
    lines
        One dict per series found, in plan order (``status``: ``converted``, ``refused``,
        ``skipped`` or ``failed``; ``reused`` when a resumed run kept an earlier line).
    interrupted
        The run was stopped before every series was done.
    """

    path: str
    scan: dict[str, Any]
    lines: list[dict[str, Any]] = field(default_factory=list)
    interrupted: bool = False
    wall_s: float = 0.0

    @property
    def counts(self) -> dict[str, int]:
        """Series per status."""
        return dict(Counter(line["status"] for line in self.lines))

    @property
    def exit_code(self) -> int:
        """0, 1, 2 or 3 as :data:`EXIT_CODES` says."""
        if self.interrupted:
            return 3
        if not self.lines:
            return 2
        return 1 if any(line["status"] in ("refused", "failed") for line in self.lines) else 0

    @property
    def outputs(self) -> list[str]:
        """Every file written or kept, in plan order."""
        return [p for line in self.lines for p in line.get("outputs", ())]

    def summary(self) -> str:
        """The table printed on stderr at the end of ``fastvol convert``."""
        rows = [("status", "series", "files", "MB in", "MB out")]
        by_status: dict[str, list[dict[str, Any]]] = {}
        for line in self.lines:
            by_status.setdefault(line["status"], []).append(line)
        for status in ("converted", "refused", "skipped", "failed"):
            group = by_status.get(status, [])
            if group:
                rows.append((status, str(len(group)), str(sum(g["n_files"] for g in group)),
                             f"{sum(g['bytes_in'] for g in group) / 1e6:.1f}",
                             f"{sum(g.get('bytes_out', 0) for g in group) / 1e6:.1f}"))  # fmt: skip
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        text = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
                for r in rows]  # fmt: skip
        reasons = Counter(f"{line.get('error') or line.get('reason')}" for line in self.lines
                          if line["status"] != "converted")  # fmt: skip
        for reason, n in reasons.most_common(8):
            text.append(f"  {n:>5} x {reason}")
        # What needs the user: each refused or failed series, and the files behind it.
        problems = [line for line in self.lines if line["status"] in ("refused", "failed")]
        for line in problems[:SHOWN]:
            why = str(line.get("message") or line.get("error") or "").splitlines()
            text.append(f"  {line['status']} {line.get('folder') or line['series']}: {why[0][:300] if why else ''}")
        if len(problems) > SHOWN:
            text.append(f"  ... {len(problems) - SHOWN} more refused or failed: see {self.path}")
        skipped = self.scan.get("skipped", {})
        if skipped:
            text.append("scan skipped: " + ", ".join(f"{len(v)} {k}" for k, v in sorted(skipped.items())))
            for reason in ("damaged image", "unreadable", "unreadable file", "unreadable folder"):
                names = skipped.get(reason, [])
                if names:
                    more = f" and {len(names) - 3} more" if len(names) > 3 else ""
                    text.append(f"  {reason}: {', '.join(names[:3])}{more}")
        files = sum(line["n_files"] for line in self.lines if line["status"] == "converted")
        mb = sum(line["bytes_in"] for line in self.lines if line["status"] == "converted") / 1e6
        if self.wall_s > 0:
            text.append(f"{self.wall_s:.2f} s, {files / self.wall_s:.0f} files/s, "
                        f"{mb / self.wall_s:.1f} MB/s read; report {self.path}")  # fmt: skip
        if self.interrupted:
            text.append("interrupted: rerun the same command to finish")
        return "\n".join(text)

    def finish(self) -> None:
        """Rewrite the report atomically, in plan order (also after a resumed run)."""
        from ..atomic import atomic_path

        with atomic_path(self.path) as tmp, open(tmp, "w", encoding="utf-8") as fp:
            for line in [self.scan, *self.lines]:
                fp.write(_dumps(line) + "\n")
