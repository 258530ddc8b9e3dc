"""Progress of a conversion: a bar on a terminal, plain lines otherwise, nothing with ``-q``.

The bar (tqdm, the ``convert`` extra) shows series done/total, files/s, MB/s and the time
left; without a terminal, or without tqdm, one line per finished series goes to the stream.
"""

from __future__ import annotations

import time
from typing import IO, Any

__all__ = ["Progress"]


class Progress:
    """Counts finished series; ``mode`` is ``"auto"``, ``"bar"``, ``"lines"`` or ``"quiet"``."""

    def __init__(self, total: int, stream: IO[str], mode: str = "auto", *, files: int = 0,
                 nbytes: int = 0) -> None:  # fmt: skip
        self.total, self.stream = total, stream
        self.files_total, self.bytes_total = files, nbytes
        self.done = self.files = self.nbytes = 0
        self.t0 = time.perf_counter()
        self._bar: Any = None
        if mode == "auto":
            isatty = getattr(stream, "isatty", None)
            mode = "bar" if isatty is not None and isatty() else "lines"
        if mode == "bar":
            try:
                from tqdm import tqdm
            except ImportError:
                mode = "lines"  # cosmetic: no bar is no reason to stop a conversion
            else:
                self._bar = tqdm(total=total, file=stream, unit="series", dynamic_ncols=True,
                                 smoothing=0.1)  # fmt: skip
        self.mode = mode

    def update(self, line: dict[str, Any]) -> None:
        """One series finished (its report line)."""
        self.done += 1
        self.files += int(line.get("n_files", 0))
        self.nbytes += int(line.get("bytes_in", 0))
        elapsed = max(time.perf_counter() - self.t0, 1e-9)
        rates = f"{self.files / elapsed:.0f} files/s, {self.nbytes / 1e6 / elapsed:.1f} MB/s"
        if self._bar is not None:
            self._bar.set_postfix_str(rates, refresh=False)
            self._bar.update(1)
        elif self.mode == "lines":
            left = ""
            if self.bytes_total and self.nbytes:
                left = f", {elapsed * (self.bytes_total - self.nbytes) / self.nbytes:.0f} s left"
            outs = ", ".join(line.get("outputs", ())) or line.get("error") or line.get("reason", "")
            self.stream.write(f"[{self.done}/{self.total}] {line['status']} {line['series']}: "
                              f"{outs} ({rates}{left})\n")  # fmt: skip
            self.stream.flush()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
