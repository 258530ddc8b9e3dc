"""Command line: ``fastvol [PATH] [options]`` loads a series and prints its geometry report.

With no PATH it writes the built-in sample series (a synthetic CT phantom) to a temporary folder
and loads that. Heavy modules are imported inside :func:`main` so ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from typing import IO, Any

_T0 = time.perf_counter()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fastvol",
        description="Load a DICOM series as a volume and print its geometry report.",
    )
    p.add_argument("path", nargs="*", help="folders or files (default: the built-in sample series)")
    p.add_argument("--scan", action="store_true", help="list the series found and exit")
    p.add_argument("--series", help="which series: index, SeriesInstanceUID, Series.id or number")
    p.add_argument("--gaps", choices=("raise", "fill"), default="raise")
    p.add_argument("--irregular", choices=("raise", "resample"), default="raise")
    p.add_argument("--tilt", choices=("keep", "resample"), default="keep")
    p.add_argument("--repeats", choices=("split", "first"), default="split")
    p.add_argument("--no-rescale", action="store_true", help="return stored values")
    p.add_argument("--dtype", help="output dtype (e.g. float32)")
    p.add_argument("--out", help="write the volume: .npz (array, affine LPS) or .nii/.nii.gz")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--timing", action="store_true", help="print process start to first volume")
    return p


def _series_arg(value: str | None) -> Any:
    if value is None:
        return None
    return int(value) if value.lstrip("-").isdigit() and len(value) < 6 else value


def _write_npz(path: str, array: Any, affine: Any) -> None:
    import numpy as np

    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as fp:
            np.savez(fp, array=array, affine_lps=affine)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def main(argv: list[str] | None = None, stdout: IO[str] | None = None, stderr: IO[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 2 a fastvol error on the input)."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    args = _parser().parse_args(argv)

    import fastvol

    tmp: tempfile.TemporaryDirectory[str] | None = None
    paths = args.path
    try:
        if not paths:
            from .sample import write_sample_series

            tmp = tempfile.TemporaryDirectory(prefix="fastvol-sample-")
            write_sample_series(tmp.name)
            paths = [tmp.name]
            print(f"sample series: synthetic CT phantom written to {tmp.name}", file=out)
        if args.scan:
            found = fastvol.scan(paths)
            print(found.summary() or "no DICOM image series found", file=out)
            return 0
        vol = fastvol.load(
            paths, series=_series_arg(args.series), gaps=args.gaps, irregular=args.irregular,
            tilt=args.tilt, repeats=args.repeats, rescale=not args.no_rescale, dtype=args.dtype,
        )  # fmt: skip
        elapsed = time.perf_counter() - _T0
        if args.json:
            print(json.dumps(vol.geometry.as_dict(), default=str, indent=1), file=out)
        else:
            print(f"{vol!r}", file=out)
            print(vol.geometry.text(), file=out)
        if args.timing:
            print(f"timing      process start to first volume {elapsed * 1000:.1f} ms", file=out)
        if args.out:
            if args.out.endswith((".nii", ".nii.gz")):
                vol.to_nifti(args.out)
            else:
                _write_npz(args.out, vol.array, vol.affine)
            print(f"written     {args.out}", file=out)
        return 0
    except fastvol.FastvolError as exc:
        print(f"fastvol: {type(exc).__name__}: {exc}", file=err)
        return 2
    finally:
        if tmp is not None:
            tmp.cleanup()


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
