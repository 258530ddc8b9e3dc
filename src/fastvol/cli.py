"""Command line: ``fastvol [PATH] [options]`` loads a series and prints its geometry report.

With no PATH it writes the built-in sample series (a synthetic CT phantom) to a temporary folder
and loads that. The load flags are made from the fields of :class:`fastvol.Options` (and its
:class:`~fastvol.Tolerances`), so every option of the library is a flag here. Heavy modules are
imported inside :func:`main` so ``--help`` is instant; a command line of paths alone
(``fastvol FOLDER``) is parsed without argparse, and json is imported for ``--json`` only, so
the first volume comes sooner.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import sys
import time
import warnings
from collections.abc import Iterator
from types import SimpleNamespace
from typing import IO, TYPE_CHECKING, Any

from .options import Options, Tolerances

if TYPE_CHECKING:
    import argparse
    import tempfile

    #: Parsed arguments: argparse's, or :func:`_paths_only`'s for a command line of paths.
    Args = argparse.Namespace | SimpleNamespace

_T0 = time.perf_counter()
#: Suffixes ``--out`` writes, and how.
OUT_SUFFIXES = (".nii", ".nii.gz", ".npz")


def parse_select(text: str) -> int | slice | tuple[int, ...]:
    """``--select``: ``N``, ``START:STOP[:STEP]`` or ``N,N,...`` (numpy indexing of volumes)."""
    import argparse

    try:
        if ":" in text:
            parts = [int(p) if p.strip() else None for p in text.split(":")]
            if len(parts) > 3:
                raise ValueError(text)
            return slice(*parts)
        if "," in text:
            return tuple(int(p) for p in text.split(",") if p.strip())
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected N, START:STOP[:STEP] or N,N,...") from None


def parse_tags(text: str) -> tuple[str | int, ...]:
    """``--extra-tags``: keywords or hexadecimal tags (``0x00180050``), comma-separated."""
    import argparse

    tags: list[str | int] = []
    for item in (t.strip() for t in text.split(",")):
        if item.lower().startswith("0x"):
            try:
                tags.append(int(item, 16))
            except ValueError:
                raise argparse.ArgumentTypeError(f"{item!r} is not a hexadecimal tag") from None
        elif item:
            tags.append(item)
    return tuple(tags)


def _option_flag(p: argparse._ActionsContainer, f: dataclasses.Field[Any]) -> None:
    """One flag for one Options/Tolerances field, from its metadata and default."""
    import argparse

    meta = f.metadata
    flag = "--" + (meta.get("cli") or f.name.replace("_", "-"))
    default = "" if f.default in (None, (), True) else f" (default {f.default})"
    common: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS,
                              "help": f"{meta.get('cli_help') or meta.get('help')}{default}"}  # fmt: skip
    if meta.get("choices"):
        p.add_argument(flag, choices=meta["choices"], **common)
    elif isinstance(f.default, bool):  # only rescale: on by default, the flag turns it off
        p.add_argument(flag, action="store_const", const=not f.default, **common)
    elif f.name == "select":
        p.add_argument(flag, type=parse_select, **common)
    elif f.name == "threads":
        p.add_argument(flag, type=int, **common)
    elif f.name == "extra_tags":
        p.add_argument(flag, type=parse_tags, **common)
    elif isinstance(f.default, float) or f.name == "fill_value":
        p.add_argument(flag, type=float, **common)
    else:
        p.add_argument(flag, **common)


def add_load_flags(p: argparse.ArgumentParser) -> None:
    """One flag per field of Options and Tolerances (also for ``fastvol convert``)."""
    load = p.add_argument_group("load options (fastvol.Options)")
    for f in dataclasses.fields(Options):
        if f.name != "tolerances":
            _option_flag(load, f)
    tolerances = p.add_argument_group("tolerances (fastvol.Tolerances)")
    for f in dataclasses.fields(Tolerances):
        _option_flag(tolerances, f)


def _parser() -> argparse.ArgumentParser:
    import argparse

    p = argparse.ArgumentParser(
        prog="fastvol",
        description="Load a DICOM series as a volume and print its geometry report.",
        epilog="Whole cohorts, one output per series (NIfTI, Zarr, npz, sidecars, a report): "
               "fastvol convert IN... -o OUT  (see fastvol convert --help).",
    )
    p.add_argument("path", nargs="*", help="folders or files (default: the built-in sample series)")
    p.add_argument("--scan", action="store_true", help="list the series found and exit")
    p.add_argument("--series", help="which series: SeriesNumber (#N in the --scan listing), "
                                    "[N] for the index in that listing, Series.id or "
                                    "SeriesInstanceUID")  # fmt: skip
    add_load_flags(p)
    p.add_argument("--out", help="write the volume: .npz (array, affine_lps) or .nii/.nii.gz")
    p.add_argument("--json", action="store_true",
                   help="print the report (or with --scan, the series) as JSON on stdout; "
                        "other lines go to stderr")  # fmt: skip
    p.add_argument("--timing", action="store_true", help="print process start to first volume")
    return p


def _series_arg(value: str | None) -> Any:
    """``[N]`` is an index into the listing (as it shows ``[N]``); anything else, ``8`` too, a
    SeriesNumber, Series.id or UID (the listing shows ``#8`` for SeriesNumber 8)."""
    if value is None:
        return None
    inner = value[1:-1].strip() if value.startswith("[") and value.endswith("]") else ""
    return int(inner) if inner.lstrip("-").isdecimal() else value


def _paths_only(argv: list[str]) -> SimpleNamespace | None:
    """What :func:`_parser` makes of a command line of paths alone (``fastvol FOLDER``), without
    importing argparse or building the parser: together about 10 ms of a fresh process (argparse
    brings gettext, locale and shutil). None when an argument is (or may be) a flag."""
    if any(arg.startswith("-") for arg in argv):
        return None
    return SimpleNamespace(path=list(argv), scan=False, series=None, out=None, json=False, timing=False)


def options_from_args(args: Args) -> Options:
    """The :class:`~fastvol.Options` the parsed flags ask for (unset flags keep defaults)."""
    names = {f.name for f in dataclasses.fields(Options)} | {f.name for f in dataclasses.fields(Tolerances)}
    return Options.resolve(None, {k: v for k, v in vars(args).items() if k in names})


def _write(vol: Any, path: str) -> None:
    if path.lower().endswith((".nii", ".nii.gz")):
        vol.to_nifti(path)
    else:
        vol.to_npz(path)


def _scan_json(found: Any) -> str:
    import json

    series = [{"index": i, "id": s.id, "series_number": s.number, "modality": s.modality,
               "description": s.description, "files": s.n_files, "frames": s.n_frames,
               "folder": s.folder} for i, s in enumerate(found)]  # fmt: skip
    return json.dumps({"series": series, "skipped": found.skipped, "errors": found.errors}, indent=1)


def _run(args: Args, paths: list[str], out: IO[str], err: IO[str]) -> int:
    import fastvol

    notes = err if args.json else out  # --json keeps stdout pure JSON
    target: Any = paths[0] if len(paths) == 1 else paths  # one path: errors name it
    options = options_from_args(args)
    if args.scan:
        found = fastvol.scan(target, extra_tags=options.extra_tags)
        print(_scan_json(found) if args.json else found.summary() or "no DICOM image series found",
              file=out)  # fmt: skip
        return 0 if len(found) else 2
    if args.out:  # refuse a bad target before the work
        _check_out(args.out)
    vol = fastvol.load(target, options, series=_series_arg(args.series))
    elapsed = time.perf_counter() - _T0
    if args.json:
        import json

        report = {**vol.geometry.as_dict(), "decision_data": vol.geometry.decision_data(),
                  "meta": vol.meta}  # fmt: skip
        print(json.dumps(report, default=str, indent=1), file=out)
    else:
        print(f"{vol!r}", file=out)
        print(vol.geometry.text(), file=out)
        for keyword in _extra_keywords(vol, options):
            print(f"extra       {keyword}: {vol.meta.get(keyword)!r}", file=out)
    if args.timing:
        print(f"timing      fastvol start to first volume {elapsed * 1000:.1f} ms", file=notes)
    if args.out:
        _write(vol, args.out)
        print(f"written     {args.out}", file=notes)
    return 0


def _extra_keywords(vol: Any, options: Options) -> list[str]:
    """Keywords of the ``--extra-tags`` values in ``vol.meta``, in the order asked."""
    if not options.extra_tags:
        return []
    from .headers.convert import resolve_extra_tags

    return [x.keyword for x in resolve_extra_tags(options.extra_tags)]


#: Library hints name keyword arguments (``gaps='fill'``); on the command line they are flags.
_HINT = re.compile(r"\b(\w+)=('([^']*)'|\S*?)(?=[;,)\s]|$)")


def cli_hint(message: str) -> str:
    """``message`` plus, for its ``name='value'`` hints naming options, the flags to pass."""
    fields = {f.name: f for f in (*dataclasses.fields(Options), *dataclasses.fields(Tolerances))}
    flags = []
    for match in _HINT.finditer(message):
        name = match.group(1)
        value = match.group(3) if match.group(3) is not None else match.group(2)
        if name == "series":
            flags.append("--series ID")
        elif name in fields:
            f = fields[name]
            flag = "--" + (f.metadata.get("cli") or name.replace("_", "-"))  # as _option_flag
            if isinstance(f.default, bool):
                flags.append(flag)  # a switch: no value
            elif not f.metadata.get("choices") or value in f.metadata["choices"]:
                flags.append(f"{flag} {value or 'N'}")
    unique = list(dict.fromkeys(flags))
    return message + (f"\n  on the command line: {', '.join(unique)}" if unique else "")


def _check_out(path: str) -> None:
    import os

    from .errors import InputError

    if not path.lower().endswith(OUT_SUFFIXES):
        raise InputError(f"--out {path}: unknown suffix; use one of {', '.join(OUT_SUFFIXES)}",
                         files=[path])  # fmt: skip
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise InputError(f"--out {path}: is a folder; give a file name", files=[path])
    if not os.path.isdir(folder):
        raise InputError(f"--out {path}: folder {folder} does not exist", files=[path])


def _terminate(signum: int, frame: Any) -> None:
    """SIGTERM handler: exit through Python, so ``finally`` and ``atomic_path`` clean up."""
    raise SystemExit(128 + signum)


@contextlib.contextmanager
def sigterm_exits(needed: bool = True) -> Iterator[None]:
    """While inside, SIGTERM raises ``SystemExit(143)`` instead of killing the process.

    The default action kills without unwinding, leaving a half-written ``--out`` temporary and
    the sample folder behind. Only the main thread can set handlers; elsewhere this does nothing.
    With ``needed`` false (nothing to clean up) it does nothing either, and imports nothing.
    """
    if not needed:
        yield
        return
    import signal

    try:
        previous = signal.signal(signal.SIGTERM, _terminate)
    except ValueError:  # not the main thread (of the main interpreter): no handlers there
        yield
        return
    try:
        yield
    finally:  # None: a handler set outside Python; the default is the closest we can restore
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def run() -> None:
    """The ``fastvol`` command (console script and ``python -m fastvol``): :func:`main`, then
    :func:`exit_now` with its status.

    numpy's OpenBLAS starts a thread per core when numpy is imported, and each spins a while
    before it sleeps: on a few cores that competes with the threads filling the volume, and
    costs about 5% of a small load's instructions. No command does linear algebra that BLAS
    threads would speed up (affines are 4 x 4), so the command, and the worker processes of
    ``fastvol convert``, run BLAS in one thread unless ``OPENBLAS_NUM_THREADS`` says otherwise.
    """
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # before anything imports numpy
    exit_now(main())


def exit_now(status: int) -> None:
    """End the process with ``status`` as Python's exit would, less the interpreter's teardown.

    Python's own exit first waits for non-daemon threads, runs the ``atexit`` functions (which
    also finalize temporary folders, logging and pools) and flushes the standard streams; then it
    frees every module and object, which with numpy loaded costs about 45 ms, a sixth of a small
    load's whole process, and ends in the same exit status. This does the first part, and lets
    the OS do the freeing. Only for the command: library callers keep Python's exit.
    """
    import atexit

    if "threading" in sys.modules:  # as Python's exit: join the threads a user may have left
        sys.modules["threading"]._shutdown()  # type: ignore[attr-defined]
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # closed, or the reader of a pipe left
            stream.flush()
    os._exit(status)


def main(argv: list[str] | None = None, stdout: IO[str] | None = None, stderr: IO[str] | None = None) -> int:
    """Run the CLI; returns the exit status (0 ok, 2 a fastvol error on the input).

    ``fastvol convert ...`` runs the cohort converter (:mod:`fastvol.cohort.cli`).
    """
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    argv = sys.argv[1:] if argv is None else list(argv)
    # pydicom warns as it parses a damaged header; the command's report and errors say what
    # became of that file, in fastvol's words, so its warnings would only repeat them.
    warnings.filterwarnings("ignore", category=UserWarning, module=r"pydicom(\.|$)")
    if argv[:1] == ["convert"]:  # the cohort command (a folder named convert: ./convert)
        from .cohort.cli import main as convert_main

        return convert_main(argv[1:], out, err, load_flags=add_load_flags,
                            options_from_args=options_from_args, hint=cli_hint)  # fmt: skip
    args = _paths_only(argv) or _parser().parse_args(argv)
    with sigterm_exits(needed=bool(args.out) or not args.path):  # else nothing to clean up
        try:
            return _main(args, out, err)
        except BrokenPipeError:  # `fastvol ... | head`: the reader left; not an error of ours
            with contextlib.suppress(OSError), open(os.devnull, "w") as devnull:
                os.dup2(devnull.fileno(), sys.stdout.fileno())  # no second error at exit
            return 0


def _main(args: Args, out: IO[str], err: IO[str]) -> int:
    from .errors import FastvolError

    tmp: tempfile.TemporaryDirectory[str] | None = None
    paths = args.path
    try:
        if not paths:
            import tempfile  # only here: a fresh process that loads a path never needs it

            from .sample import write_sample_series

            tmp = tempfile.TemporaryDirectory(prefix="fastvol-sample-")
            write_sample_series(tmp.name)
            paths = [tmp.name]
            print(f"sample series: synthetic CT phantom written to {tmp.name} (removed on exit)",
                  file=err if args.json else out)  # fmt: skip
        return _run(args, paths, out, err)
    except FastvolError as exc:
        print(f"fastvol: {type(exc).__name__}: {cli_hint(str(exc))}", file=err)
        return 2
    finally:
        if tmp is not None:
            tmp.cleanup()


if __name__ == "__main__":  # pragma: no cover
    run()
