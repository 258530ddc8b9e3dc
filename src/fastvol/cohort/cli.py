"""``fastvol convert IN... -o OUT``: the command line of :func:`fastvol.convert`.

dcm2niix's flags where it has them (``-f``, ``-z``, ``-b``, ``-i``, ``-w``, ``-d``), plus ``-j``,
``--resume``, ``--dask`` and every load option of :class:`fastvol.Options` (``--gaps``,
``--tilt``, ...). The load flags come from ``fastvol.cli``, which calls :func:`main` with its
flag maker, so this module does not import the CLI that imports it.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable
from typing import IO, Any

from .naming import DEFAULT_PATTERN, TOKENS
from .report import EXIT_CODES

__all__ = ["main"]


def _yes_no(text: str) -> bool:
    if text.lower() in ("y", "yes", "1", "true"):
        return True
    if text.lower() in ("n", "no", "0", "false"):
        return False
    raise argparse.ArgumentTypeError(f"{text!r}: expected y or n")


def parser(load_flags: Callable[[argparse.ArgumentParser], None] | None = None) -> argparse.ArgumentParser:
    tokens = ", ".join(f"%{k} {v[0]}" for k, v in TOKENS.items())
    codes = "; ".join(f"{k}: {v}" for k, v in EXIT_CODES.items())
    p = argparse.ArgumentParser(
        prog="fastvol convert",
        description="Convert every DICOM series found to one file each, with a JSON sidecar and "
                    "a report (OUT/fastvol-report.jsonl, summary on stderr).",
        epilog=f"exit status: {codes}",
    )  # fmt: skip
    p.add_argument("inputs", nargs="+", metavar="IN", help="folders (walked recursively) or files")
    p.add_argument("-o", "--out", required=True, metavar="OUT",
                   help="output folder (created), or a URL (s3://bucket/prefix/, gs://...)")  # fmt: skip
    p.add_argument("-f", dest="pattern", default=DEFAULT_PATTERN,  # argparse formats help with %
                   help=f"file name pattern, '/' makes folders (default {DEFAULT_PATTERN}): "
                        f"{tokens}".replace("%", "%%"))  # fmt: skip
    p.add_argument("-z", dest="compress", type=_yes_no, default=True, metavar="y|n",
                   help="gzip NIfTI: .nii.gz (y, default) or .nii (n)")  # fmt: skip
    p.add_argument("--format", default="nifti", choices=("nifti", "zarr", "npz"),
                   help="output format (default nifti)")  # fmt: skip
    p.add_argument("-b", dest="sidecar", default="y", choices=("y", "n", "o"),
                   help="BIDS-style JSON sidecar: y (default), n, o (only the sidecar)")  # fmt: skip
    p.add_argument("-i", dest="ignore_derived", type=_yes_no, default=False, metavar="y|n",
                   help="skip localizers and derived images (default n)")  # fmt: skip
    p.add_argument("-w", dest="clash", type=int, default=2, choices=(0, 1, 2),
                   help="a name taken by a file not written by an earlier run here: 0 skip, "
                        "1 overwrite, 2 add a letter (default)")  # fmt: skip
    p.add_argument("-d", dest="depth", type=int, default=None,
                   help="walk folders this many levels deep (default: all)")  # fmt: skip
    p.add_argument("-j", "--jobs", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                   help="keep series an earlier run here finished (default on)")  # fmt: skip
    p.add_argument("--dask", metavar="ADDRESS", help="run on the Dask scheduler at ADDRESS")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress, no summary")
    if load_flags is not None:
        load_flags(p)
    return p


class _Interrupted(KeyboardInterrupt):
    """SIGTERM, turned into an interrupt so the report of finished series is written."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise _Interrupted


def main(argv: list[str], stdout: IO[str] | None = None, stderr: IO[str] | None = None, *,
         load_flags: Callable[[argparse.ArgumentParser], None] | None = None,
         options_from_args: Callable[[argparse.Namespace], Any] | None = None,
         hint: Callable[[str], str] = str) -> int:  # fmt: skip
    """Run ``fastvol convert``; returns the exit status (:data:`~.report.EXIT_CODES`)."""
    from ..errors import FastvolError
    from .run import _convert

    err = stderr or sys.stderr
    args = parser(load_flags).parse_args(argv)
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
    client = None
    try:
        options = options_from_args(args) if options_from_args is not None else None
        if args.dask:
            from .dask import client_for

            client = client_for(args.dask)
        report = _convert(args.inputs, args.out, options, pattern=args.pattern,
                          compress=args.compress, format=args.format, sidecar=args.sidecar,
                          ignore_derived=args.ignore_derived, clash=args.clash, depth=args.depth,
                          jobs=args.jobs, resume=args.resume, client=client,
                          progress="quiet" if args.quiet else "auto", progress_stream=err,
                          overrides={})  # fmt: skip
    except FastvolError as exc:
        print(f"fastvol convert: {type(exc).__name__}: {hint(str(exc))}", file=err)
        return 2
    except KeyboardInterrupt:  # before the run started: nothing to report
        print("fastvol convert: interrupted", file=err)
        return 3
    finally:
        if client is not None:
            client.close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    if not args.quiet:
        print(report.summary(), file=err)
    if not report.lines:
        print(f"fastvol convert: no DICOM image series found in {' '.join(args.inputs)}", file=err)
    return report.exit_code
