"""``fastvol.convert``: a cohort of DICOM folders to one file per series, with a report.

Reads like the job: scan every input once (headers only; with ``jobs`` > 1 the worker processes
read the headers, in parts, see :mod:`.scanning`) -> one task per series found (name, outputs,
options) -> skip what an earlier run finished -> convert the rest here, in worker processes or
on Dask -> remove debris -> write the report in plan order.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..atomic import TMP_MARK, remove_stale
from ..errors import InputError, MissingDependencyError, UnsupportedError
from ..headers.references import SEG_SOP_CLASSES
from ..options import Options
from .naming import DEFAULT_PATTERN, NAME_TAGS, assign_names, check_pattern, expand
from .output import Output
from .report import Report, ReportLog, read_lines
from .sidecar import SIDECAR_TAGS
from .tasks import FORMATS, SeriesTask, output_suffix, series_fields

if TYPE_CHECKING:
    from ..group import Series

__all__ = ["convert", "plan_tasks", "sweep"]


def _depth_limited(inputs: Any, depth: int) -> Any:
    """Local folders expanded to their files down to ``depth`` levels (dcm2niix's ``-d``)."""
    items = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
    out: list[Any] = []
    for item in items:
        if not (isinstance(item, (str, os.PathLike)) and os.path.isdir(item)):
            out.append(item)  # files, URLs and byte sources pass straight to scan
            continue
        root = os.fspath(item)
        base = root.rstrip(os.sep).count(os.sep)
        for folder, dirs, files in os.walk(root):
            level = folder.rstrip(os.sep).count(os.sep) - base
            dirs[:] = sorted(d for d in dirs if not d.startswith(".")) if level < depth else []
            out.extend(os.path.join(folder, f) for f in sorted(files) if not f.startswith("."))
    return out


def _is_derived(series: Series) -> bool:
    image_type = series.records[0].image_type
    return bool(image_type) and image_type[0].upper() == "DERIVED"


def _stamp(record: Any) -> Any:
    """What tells a changed file from the one converted before: its ETag or mtime."""
    etag = getattr(record.source, "etag", None)
    if etag:
        return etag
    try:
        return os.stat(record.path).st_mtime_ns
    except (OSError, ValueError):  # a URL or a file object: its size only
        return None


def _key(series: Series, parts: Sequence[Any]) -> str:
    # A rewritten file of the same size must redo the series: sizes alone would keep stale outputs.
    files = sorted({(r.path, r.file_size, _stamp(r)) for r in series.records}, key=str)
    blob = json.dumps([series.id, files, *parts], default=str, separators=(",", ":"))
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def plan_tasks(found: Sequence[Series], out: str, options: Options, *, pattern: str, fmt: str,
               compress: bool, sidecar: str, ignore_derived: bool, clash: int, version: str,
               ours: set[str], storage_options: dict[str, Any] | None = None,
               ) -> tuple[list[SeriesTask], list[dict[str, Any]]]:  # fmt: skip
    """One task per series to convert, and the report lines of the series skipped or refused.

    ``out``: the output folder, or a URL (then the tasks carry it and ``storage_options``).
    ``ours``: absolute paths (or URLs) an earlier run of this output wrote (overwritten freely;
    any other file in the way is a clash for ``-w``). A series beside files the scan could not
    read (``Series.damaged``) is refused, naming them, unless ``options.unreadable`` is
    ``"skip"`` (then its load says what it skipped).
    """
    output = Output(out, storage_options)
    skipped: dict[int, dict[str, Any]] = {}
    wanted = []
    for i, series in enumerate(found):
        bad = [name for name, _ in series.damaged] if options.unreadable == "raise" else []
        if bad:
            skipped[i] = {**series_fields(series), "index": i, "status": "refused",
                          "error": "UnreadableError", "outputs": [], "bytes_out": 0,
                          "message": f"series {series.uid}: {len(bad)} damaged image file(s) "
                                     f"(truncated, unparseable or unreadable), so a slice may be missing; "
                                     f"--unreadable skip converts it without them: "
                                     f"{', '.join(bad[:3])}"}  # fmt: skip
        elif series.records and series.records[0].sop_class_uid in SEG_SOP_CLASSES:
            skipped[i] = {**series_fields(series), "index": i, "status": "skipped",
                          "reason": "DICOM Segmentation: load it with fastvol.load_segmentation",
                          "outputs": [], "bytes_out": 0}  # fmt: skip
        elif ignore_derived and (series.is_localizer or _is_derived(series)):
            why = "localizer" if series.is_localizer else "derived image (ImageType DERIVED)"
            skipped[i] = {**series_fields(series), "index": i, "status": "skipped",
                          "reason": f"-i y: {why}", "outputs": [], "bytes_out": 0}  # fmt: skip
        else:
            wanted.append(i)
    names = assign_names([expand(pattern, found[i]) for i in wanted], clash)
    suffix = output_suffix(fmt, compress)
    fingerprint = [repr(options.replace(threads=1)), fmt, compress, sidecar, version]
    tasks = []
    for i, name in zip(wanted, names):
        series = found[i]
        if name is None:
            skipped[i] = {**series_fields(series), "index": i, "status": "skipped",
                          "reason": "-w 0: name taken by an earlier series", "outputs": [],
                          "bytes_out": 0}  # fmt: skip
            continue
        name = _free_name(output, name, (suffix if sidecar != "o" else "", ".json" if sidecar != "n" else ""),
                          ours, clash)  # fmt: skip
        if name is None:
            skipped[i] = {**series_fields(series), "index": i, "status": "skipped",
                          "reason": "-w 0: output exists", "outputs": [], "bytes_out": 0}  # fmt: skip
            continue
        base = output.join(name)
        image = base + suffix if sidecar != "o" else None
        json_path = base + ".json" if sidecar != "n" else None
        tasks.append(SeriesTask(index=i, key=_key(series, [*fingerprint, image, json_path]),
                                series=series, image=image, sidecar=json_path, fmt=fmt,
                                options=options, version=version,
                                storage_options=output.storage_options if output.remote else None))  # fmt: skip
    return tasks, [skipped[i] for i in sorted(skipped)]


def _free_name(output: Output, name: str, suffixes: tuple[str, ...], ours: set[str], clash: int) -> str | None:
    """``name``, or with letters added, so as not to overwrite files not written by fastvol."""
    from .naming import _suffix_letters

    def taken(candidate: str) -> bool:
        paths = [output.norm(output.join(candidate + s)) for s in suffixes if s]
        return any(p not in ours and output.exists(p) for p in paths)

    if clash == 1 or not taken(name):
        return name
    if clash == 0:
        return None
    k = 0
    while taken(name + _suffix_letters(k)):
        k += 1
    return name + _suffix_letters(k)


def sweep(out: str) -> list[str]:
    """Remove hidden temporaries of dead writers anywhere under ``out``; returns their paths."""
    removed = []
    for folder, _, files in os.walk(out):
        for name in files:
            if name.startswith(".") and TMP_MARK in name:
                target = os.path.join(folder, name[1 : name.index(TMP_MARK)])
                removed += remove_stale(target)
    return removed


def _reusable(line: dict[str, Any] | None, output: Output) -> bool:
    if not line or line.get("status") not in ("converted", "refused"):
        return False
    if output.remote:
        return all(output.exists(p) for p in line.get("outputs", ()))
    return all(os.path.exists(p) for p in line.get("outputs", ()))


def convert(
    inputs: Any,
    out: str | os.PathLike[str],
    options: Options | None = None,
    *,
    pattern: str = DEFAULT_PATTERN,
    compress: bool = True,
    format: str = "nifti",
    sidecar: str = "y",
    ignore_derived: bool = False,
    clash: int = 2,
    depth: int | None = None,
    jobs: int = 1,
    resume: bool = True,
    client: Any = None,
    progress: str = "quiet",
    progress_stream: Any = None,
    storage_options: dict[str, Any] | None = None,
    **overrides: Any,
) -> Report:
    """Convert every DICOM series under ``inputs`` to one file each in ``out``, with a report.

    Parameters
    ----------
    inputs
        Folders (walked recursively), files, or a list of them; passed to :func:`fastvol.scan`
        as given (URLs too, once fastvol reads them).
    out
        Output folder (created), or an fsspec URL (``s3://bucket/prefix/``, ``gs://...``).
        Gets one file per series, its sidecar, and ``fastvol-report.jsonl`` (one line per
        series found). For a URL, each task writes its files into a local staging folder and
        uploads each finished one (one PUT: an object appears whole); the report is uploaded
        at the start and the end of the run, and read back from the URL to resume.
    options
        Load :class:`~fastvol.Options` for every series (``gaps``, ``tilt``, ...); ``**overrides``
        change single fields, as in :func:`fastvol.load`. ``threads`` defaults to 1 in workers.
    pattern
        dcm2niix-style name (``-f``): ``%f`` folder, ``%p`` protocol, ``%t`` study date and time,
        ``%s`` series number, ``%d`` description, ``%i`` patient id, ``%j`` series UID, ``%k``
        study UID, ``%e`` echo number, ``%m`` manufacturer, ``%u`` acquisition number; ``/``
        makes subfolders.
    compress
        ``.nii.gz`` (True) or ``.nii`` (``-z``).
    format
        ``"nifti"``, ``"npz"`` or ``"zarr"`` (when this fastvol has ``Volume.to_zarr``).
    sidecar
        ``"y"`` JSON sidecar beside each file, ``"n"`` none, ``"o"`` only the sidecar (``-b``).
    ignore_derived
        Skip localizers and derived images (``-i y``).
    clash
        ``-w``: what to do when a name is taken by a file this output folder's report does not
        list: 0 skip the series, 1 overwrite, 2 add ``a``, ``b``, ... Two series of one run never
        overwrite each other (the later gets a letter; with 0 it is skipped).
    depth
        Walk folders only this many levels deep (``-d``); ``None`` walks all.
    jobs
        Worker processes (``-j``); each converts many series.
    resume
        Keep series an earlier run of the same output folder finished with the same inputs and
        options (their outputs exist and their report line is whole); redo the rest.
    client
        A ``distributed.Client``: run the tasks on its cluster instead of locally.
    progress, progress_stream
        ``"quiet"``, ``"auto"`` (a bar on a terminal, else lines), ``"bar"`` or ``"lines"``, on
        ``progress_stream`` (default stderr).
    storage_options
        fsspec options for URL inputs and a URL ``out`` (credentials, ``endpoint_url``, ...),
        carried to every worker.

    Returns
    -------
    Report
        Lines per series, counts and :attr:`Report.exit_code`.

    Raises
    ------
    InputError
        Bad settings, an output folder that cannot be made, or an output URL that cannot be
        read or written (missing bucket, access denied).
    UnreadableError
        A file or folder could not be read, unless ``unreadable="skip"``.
    KeyboardInterrupt
        Re-raised after the report of the finished series is written.
    """
    report = _convert(inputs, out, options, pattern=pattern, compress=compress, format=format,
                      sidecar=sidecar, ignore_derived=ignore_derived, clash=clash, depth=depth,
                      jobs=jobs, resume=resume, client=client, progress=progress,
                      progress_stream=progress_stream, overrides=overrides,
                      storage_options=storage_options)  # fmt: skip
    if report.interrupted:
        raise KeyboardInterrupt
    return report


#: The package each output format's writer imports, and the extra that installs it.
_WRITER_PACKAGES = {"nifti": ("nibabel", "nifti"), "zarr": ("zarr", "zarr")}


def _check_writer_package(format: str) -> None:
    """Fail once, before any work, when the format's writer package is missing (rather than
    refusing every series one by one)."""
    import importlib.util

    package, extra = _WRITER_PACKAGES.get(format, ("", ""))
    if not package:
        return
    try:
        found = importlib.util.find_spec(package) is not None  # not imported: costs the main process nothing
    except (ImportError, ValueError):  # a broken install, or a module blocked in sys.modules
        found = False
    if not found:
        install = f"pip install 'fastvol[{extra}]'"
        raise MissingDependencyError(f"--format {format} needs {package}: {install}", install_hint=install)


def _check(format: str, sidecar: str, clash: int, jobs: int, depth: int | None, progress: str) -> None:
    if format not in FORMATS:
        raise InputError(f"format={format!r}: expected one of {', '.join(FORMATS)}")
    from ..volume import Volume

    if not hasattr(Volume, FORMATS[format]):  # zarr arrives with the writers' issue
        raise UnsupportedError(f"--format {format}: this fastvol has no Volume.{FORMATS[format]} "
                               f"writer yet; use --format nifti or npz")  # fmt: skip
    _check_writer_package(format)
    if sidecar not in ("y", "n", "o"):
        raise InputError(f"-b {sidecar!r}: expected y, n or o")
    if clash not in (0, 1, 2):
        raise InputError(f"-w {clash!r}: expected 0, 1 or 2")
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise InputError(f"jobs={jobs!r}: expected a whole number >= 1")
    if depth is not None and (isinstance(depth, bool) or not isinstance(depth, int) or depth < 0):
        raise InputError(f"depth={depth!r}: expected a whole number >= 0")
    if progress not in ("quiet", "auto", "bar", "lines"):
        raise InputError(f"progress={progress!r}: expected quiet, auto, bar or lines")


def _convert(inputs: Any, out: str | os.PathLike[str], options: Options | None, *, pattern: str,
             compress: bool, format: str, sidecar: str, ignore_derived: bool, clash: int,
             depth: int | None, jobs: int, resume: bool, client: Any, progress: str,
             progress_stream: Any, overrides: dict[str, Any],
             storage_options: dict[str, Any] | None = None) -> Report:  # fmt: skip
    """:func:`convert` without re-raising an interrupt: the CLI reads ``Report.interrupted``."""
    t0 = time.perf_counter()
    opts = Options.resolve(options, overrides)
    check_pattern(pattern)
    _check(format, sidecar, clash, jobs, depth, progress)
    if (jobs > 1 or client is not None) and "threads" not in overrides and (options is None or options.threads is None):
        opts = opts.replace(threads=1)  # parallel across series, not within one
    output = Output(out, storage_options)
    output.prepare()
    path = output.report_path
    previous = read_lines(path)
    pool = None
    if jobs > 1 and client is None:  # workers start (and import) while the scan runs
        from .local import start_pool

        pool = start_pool(jobs)
    try:
        return _run(inputs, output, opts, path=path, previous=previous, pool=pool, pattern=pattern,
                    compress=compress, format=format, sidecar=sidecar,
                    ignore_derived=ignore_derived, clash=clash, depth=depth, jobs=jobs,
                    resume=resume, client=client, progress=progress,
                    progress_stream=progress_stream, t0=t0)  # fmt: skip
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        output.close()


def _run(inputs: Any, output: Output, opts: Options, *, path: str, previous: list[dict[str, Any]],
         pool: Any, pattern: str, compress: bool, format: str, sidecar: str,
         ignore_derived: bool, clash: int, depth: int | None, jobs: int, resume: bool,
         client: Any, progress: str, progress_stream: Any, t0: float) -> Report:  # fmt: skip
    import sys

    from .. import __version__
    from ..api import _unreadable, scan
    from .progress import Progress

    # Files an earlier run here wrote or was writing (a killed run's last files have no line
    # yet): ours to overwrite, never a clash for -w.
    ours = {output.norm(p) for line in previous for p in (*line.get("outputs", ()),
                                                              *line.get("planned", ()))}  # fmt: skip
    by_key = {line["key"]: line for line in previous if line.get("kind") == "series" and "key" in line}
    tags = tuple(dict.fromkeys((*opts.extra_tags, *NAME_TAGS, *SIDECAR_TAGS)))
    listed = inputs if depth is None else _depth_limited(inputs, depth)
    found = None
    if pool is not None:  # local inputs: the workers read the headers
        from .scanning import scan_in_pool

        found = scan_in_pool(listed, pool, jobs, tags)
    if found is None:
        found = scan(listed, extra_tags=tags, storage_options=output.storage_options or None)
    # A damaged image refuses only the series it may belong to (plan_tasks, Series.damaged):
    # one bad file must not end the batch, nor leave a series short of a slice in silence.
    # Files and folders the OS refused stop the run: they may hold anything, whole series too.
    refused = [name for name in found.unreadable if name not in found.damaged]
    if refused and opts.unreadable == "raise":
        raise _unreadable(found, ", ".join(map(str, inputs)) if isinstance(inputs, list) else str(inputs), refused)
    tasks, skipped_lines = plan_tasks(found, output.root, opts, pattern=pattern, fmt=format, compress=compress,
                                      sidecar=sidecar, ignore_derived=ignore_derived, clash=clash,
                                      version=__version__, ours=ours,
                                      storage_options=output.storage_options)  # fmt: skip
    # Plan positions may move when inputs are added: a kept line takes this run's index.
    reused = [{**by_key[t.key], "reused": True, "index": t.index} for t in tasks
              if resume and _reusable(by_key.get(t.key), output)]  # fmt: skip
    reused_keys = {line["key"] for line in reused}
    todo = [t for t in tasks if t.key not in reused_keys]
    scan_line = {"kind": "scan", "fastvol": __version__,
                 "inputs": [str(i) for i in (inputs if isinstance(inputs, (list, tuple)) else [inputs])],
                 "series_found": len(found), "to_convert": len(todo), "reused": len(reused),
                 "skipped": found.skipped, "errors": found.errors,
                 "planned": [p for t in tasks for p in (t.image, t.sidecar) if p]}  # fmt: skip
    report = Report(path=path, scan=scan_line)
    lines: dict[int, dict[str, Any]] = {line["index"]: line for line in [*skipped_lines, *reused]}
    log = ReportLog(path, scan_line, keep=[lines[i] for i in sorted(lines)])
    try:
        output.publish()  # a URL output: proves it writable before any series is converted
    except BaseException:
        log.close()
        raise
    bar = Progress(len(todo), progress_stream or sys.stderr, progress,
                   files=sum(len(t.series.files) for t in todo))  # fmt: skip

    def done(line: dict[str, Any]) -> None:
        lines[line["index"]] = line
        log.write(line)
        bar.update(line)

    try:
        if client is not None:
            from .dask import run_dask

            run_dask(todo, client, done)
        else:
            from .local import run_local

            run_local(todo, jobs, done, pool=pool)
    except KeyboardInterrupt:
        report.interrupted = True
    finally:
        bar.close()
        log.close()
        if not output.remote:
            sweep(output.root)
    report.lines = [lines[i] for i in sorted(lines)]
    report.wall_s = time.perf_counter() - t0
    report.finish()
    if output.remote:
        output.publish()
        report.path = output.report_location
    return report
