"""One unit of work: a frozen, picklable plan for one series, and the function that runs it.

The same :func:`convert_one` runs in the calling process (``-j 1``), in a local worker process
(``-j N``) and on a Dask worker: it gets a :class:`SeriesTask` (the scanned series, its output
paths and the options, plain values only) and returns the report line as a plain dict. Outputs
are written atomically, so a task killed at any moment leaves either its finished files or
hidden temporaries that the next write of the same target removes.
"""

from __future__ import annotations

import io
import json
import os
import threading
import time
import warnings
from typing import TYPE_CHECKING, Any

from .._frozen import frozen
from ..errors import FastvolError, UnsupportedError

if TYPE_CHECKING:
    from ..group import Series
    from ..options import Options
    from ..volume import Volume

__all__ = ["FORMATS", "SeriesTask", "convert_one", "output_suffix"]

#: ``--format`` -> the Volume writer method.
FORMATS = {"nifti": "to_nifti", "npz": "to_npz", "zarr": "to_zarr"}


def output_suffix(fmt: str, compress: bool) -> str:
    """File suffix of the main output of a format."""
    if fmt == "nifti":
        return ".nii.gz" if compress else ".nii"
    return {"npz": ".npz", "zarr": ".zarr"}[fmt]


@frozen(slots=True)
class SeriesTask:
    """Everything a worker needs to convert one series (pickles: plain values and the Series).

    Attributes
    ----------
    index
        Position in the plan (report order).
    key
        Fingerprint of the series' files and of every option that changes the outputs; a
        rerun reuses a finished line only when its key is the same.
    series
        The scanned series (header records; sources are paths or URLs).
    image, sidecar
        Output paths (``None``: not written; ``-b o`` writes only the sidecar).
    fmt
        ``nifti``, ``npz`` or ``zarr``.
    options
        Load options (``threads=1`` in workers: the parallelism is across series).
    version
        fastvol's version, for the sidecar.
    storage_options
        ``None``: ``image`` and ``sidecar`` are local paths. Otherwise they are URLs, and
        these are the fsspec options to reach them: the files are written into a local
        staging folder, then uploaded (see :mod:`.output`).
    """

    index: int
    key: str
    series: Series
    image: str | None
    sidecar: str | None
    fmt: str
    options: Options
    version: str
    storage_options: dict[str, Any] | None = None


def series_fields(series: Series) -> dict[str, Any]:
    """The identity part of a report line, from headers alone."""
    sizes = {r.path: r.file_size for r in series.records}
    return {
        "kind": "series",
        "series": series.id,
        "series_instance_uid": series.uid,
        "series_number": series.number,
        "description": series.description,
        "modality": series.modality,
        "localizer": series.is_localizer,
        "image_type": list(series.records[0].image_type),
        "folder": series.folder,
        "n_files": len(sizes),
        "n_frames": series.n_frames,
        "bytes_in": int(sum(sizes.values())),
        "inputs": list(sizes),
    }


#: Pieces in which the NIfTI's bytes go into ISA-L's deflate: its output depends on how the
#: input is cut, so the cut is fixed (runs and versions give identical bytes).
_GZIP_CHUNK = 8 << 20


_buffers = threading.local()


class _Chunked(io.RawIOBase):
    """A write-only stream handing ``sink`` exactly ``_GZIP_CHUNK`` bytes a call; :meth:`finish`
    hands it the rest. The pieces are gathered in one buffer per thread, reused (a growing
    buffer for every file costs more in page faults than the copy)."""

    def __init__(self, sink: Any):
        super().__init__()
        self._sink = sink
        buf = getattr(_buffers, "buf", None)
        if buf is None:
            buf = _buffers.buf = bytearray(_GZIP_CHUNK)
        self._view = memoryview(buf)
        self._fill = 0
        self._pos = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        with memoryview(data) as whole, whole.cast("B") as src:
            n = len(src)
            done = 0
            while done < n:
                k = min(n - done, _GZIP_CHUNK - self._fill)
                self._view[self._fill : self._fill + k] = src[done : done + k]
                self._fill += k
                done += k
                if self._fill == _GZIP_CHUNK:
                    self._sink.write(self._view)
                    self._fill = 0
        self._pos += n
        return n

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        # nibabel seeks to where it is before writing; a stream cannot go anywhere else.
        target = offset if whence == io.SEEK_SET else self._pos + offset if whence == io.SEEK_CUR else -1
        if target != self._pos:
            raise io.UnsupportedOperation("a gzip stream is written front to back")
        return self._pos

    def finish(self) -> None:
        if self._fill:
            self._sink.write(self._view[: self._fill])
            self._fill = 0


def _write_nifti_gz(vol: Volume, path: str) -> bool:
    """``.nii.gz`` through ISA-L's deflate (the ``isal`` package: about 10x zlib's speed, the
    same gzip format, mtime 0 so runs give identical bytes); False when isal is not installed.

    ``Volume.to_nifti`` writes the NIfTI's bytes straight into the gzip stream (no
    uncompressed copy on disk), which goes into a hidden temporary renamed into place.
    """
    try:
        from isal import igzip
    except ImportError:
        return False
    from ..atomic import atomic_path

    # No file name in the gzip header (it would be the temporary's): identical bytes.
    with atomic_path(path) as tmp, open(tmp, "wb") as fp, \
            igzip.IGzipFile(filename="", mode="wb", fileobj=fp, compresslevel=1, mtime=0) as gz:  # fmt: skip
        chunked = _Chunked(gz)
        vol.to_nifti(chunked)  # type: ignore[arg-type]
        chunked.finish()
    return True


def _write_image(vol: Volume, path: str, fmt: str) -> None:
    if fmt == "nifti" and path.lower().endswith(".nii.gz") and _write_nifti_gz(vol, path):
        return
    writer = getattr(vol, FORMATS[fmt], None)
    if writer is None:  # zarr lands with the writers issue; until then say so
        raise UnsupportedError(f"{path}: this fastvol has no Volume.{FORMATS[fmt]} writer; "
                               f"use --format nifti or npz", files=[path])  # fmt: skip
    writer(path)


def _write_json(data: dict[str, Any], path: str) -> None:
    from ..atomic import atomic_path

    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as fp:
        json.dump(data, fp, indent=2, default=str)
        fp.write("\n")


def _written_note(vol: Volume, fmt: str) -> dict[str, Any] | None:
    """What the main file holds when the geometry is unusual (tilt kept: a sheared affine).

    Says the codes the NIfTI writer writes: the same test (:meth:`Volume.writes_qform`), so
    a rounding-level tilt under the tolerance (a qform, code 1) gets no note.
    """
    from ..nifti import SCANNER, qform_fits

    report = vol.geometry
    if report.tilt_deg <= 0 or any("tilt='resample'" in d for d in report.decisions):
        return None
    verdict = vol.writes_qform()
    if verdict is None:
        verdict = qform_fits(vol.affine)  # shear is the same in LPS and RAS, any axis order
    if verdict:
        return None
    holds = {
        "nifti": "sform holds the exact sheared affine (sform_code 1, scanner); qform left unset "
                 "(qform_code 0) because a quaternion cannot hold a shear",
        "npz": "affine_lps holds the exact sheared affine",
        "zarr": "the exact sheared affine is stored with the array",
    }[fmt]  # fmt: skip
    note = {"tilt": "kept", "tilt_deg": report.tilt_deg, "affine": holds,
            "hint": "rerun with --tilt resample for an orthogonal grid (float32, resampled)"}  # fmt: skip
    if fmt == "nifti":  # the codes in the file, as data
        note.update(sform_code=SCANNER, qform_code=0)
    return note


def _mkdirs(*paths: str | None) -> None:
    for path in paths:
        if path:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)


def convert_one(task: SeriesTask) -> dict[str, Any]:
    """Convert one series; returns its report line (never raises for a fastvol error).

    A :class:`~fastvol.FastvolError` (gaps, unsupported syntax, corrupt file, ...) makes the
    line ``refused`` with the error's class and message; anything else propagates (the
    runner records it as ``failed``, and Dask retries it). For a URL output, the files are
    written into a local staging folder and then uploaded; an upload that fails makes the
    line ``failed`` (a rerun converts the series again).
    """
    t0 = time.perf_counter()
    line = {**series_fields(task.series), "index": task.index, "key": task.key}
    if task.storage_options is None:
        return _convert_here(task, line, t0, task.image, task.sidecar)
    import shutil
    import tempfile

    staging = tempfile.mkdtemp(prefix="fastvol-stage-")
    try:
        image = os.path.join(staging, "i", task.image.rsplit("/", 1)[-1]) if task.image else None
        json_path = os.path.join(staging, "s", task.sidecar.rsplit("/", 1)[-1]) if task.sidecar else None
        line = _convert_here(task, line, t0, image, json_path)
        if line["status"] == "converted":
            from .output import upload

            t1 = time.perf_counter()
            try:
                for local, url in ((image, task.image), (json_path, task.sidecar)):
                    if local and url:
                        upload(local, url, task.storage_options)
            except FastvolError as exc:  # not "refused": a rerun converts it again
                line.update(status="failed", outputs=[], bytes_out=0, error=type(exc).__name__,
                            message=str(exc))  # fmt: skip
            else:
                line["outputs"] = [p for p in (task.image, task.sidecar) if p]
            line["timings"]["upload_s"] = round(time.perf_counter() - t1, 4)
            line["timings"]["total_s"] = round(time.perf_counter() - t0, 4)
        return line
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _convert_here(task: SeriesTask, line: dict[str, Any], t0: float, image_path: str | None,
                  sidecar_path: str | None) -> dict[str, Any]:  # fmt: skip
    """:func:`convert_one` writing the outputs at these local paths."""
    from ..api import load_series
    from .sidecar import geometry_block, sidecar

    outputs = [p for p in (image_path, sidecar_path) if p]
    timings: dict[str, float] = {}
    notes: list[str] = []
    try:
        _mkdirs(*outputs)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if image_path:
                vol = load_series(task.series, task.options, executor="default")
                report, meta = vol.geometry, vol.meta
                timings["load_s"] = time.perf_counter() - t0
                _write_image(vol, image_path, task.fmt)
                timings["write_s"] = time.perf_counter() - t0 - timings["load_s"]
                written = _written_note(vol, task.fmt)
                line["shape"] = list(vol.shape)
                line["dtype"] = str(vol.array.dtype)
                del vol
            else:  # -b o: headers only, no pixel read
                from ..api import describe

                report, meta, written = describe(task.series, task.options), None, None
            if sidecar_path:
                _write_json(sidecar(task.series, report, meta, version=task.version,
                                    written=written), sidecar_path)  # fmt: skip
        notes = list(dict.fromkeys(str(w.message) for w in caught))
        line.update(status="converted", outputs=outputs,
                    bytes_out=sum(_size(p) for p in outputs), geometry=geometry_block(report),
                    written=written)  # fmt: skip
    except FastvolError as exc:
        line.update(status="refused", outputs=[], bytes_out=0, error=type(exc).__name__,
                    message=str(exc), geometry=_headers_geometry(task))  # fmt: skip
    line["warnings"] = notes
    timings["total_s"] = time.perf_counter() - t0
    line["timings"] = {k: round(v, 4) for k, v in timings.items()}
    line["worker"] = os.getpid()
    return line


def _headers_geometry(task: SeriesTask) -> dict[str, Any] | None:
    """For a refused series: the geometry from headers, when one can be told at all."""
    from ..api import describe
    from .sidecar import geometry_block

    try:
        return geometry_block(describe(task.series, task.options))
    except FastvolError:
        return None


def _size(path: str) -> int:
    if os.path.isdir(path):  # zarr stores are folders
        return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)
    return os.path.getsize(path)
