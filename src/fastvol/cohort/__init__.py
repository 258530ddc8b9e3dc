"""Cohort conversion: ``fastvol convert IN... -o OUT`` and :func:`fastvol.convert`.

Scan once, plan one task per series, convert here, in worker processes or on Dask, report.

::

    run.py       convert(): scan -> plan_tasks -> resume -> run -> sweep -> report
    naming.py    dcm2niix-style name patterns (-f), clashes (-w)
    tasks.py     SeriesTask (picklable) and convert_one, the one function every runner runs
    output.py    OUT: a local folder, or a URL (staged locally per task, then uploaded)
    local.py     -j N worker processes      dask.py   the same tasks on a Dask cluster
    sidecar.py   BIDS-style JSON (-b)       report.py fastvol-report.jsonl, summary, exit codes
    progress.py  bar on a terminal, lines otherwise
    cli.py       the `fastvol convert` command line
"""

from __future__ import annotations

from .report import EXIT_CODES, REPORT_NAME, Report
from .run import convert

__all__ = ["EXIT_CODES", "REPORT_NAME", "Report", "convert"]
