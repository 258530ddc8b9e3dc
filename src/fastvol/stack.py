"""Stack: run a :class:`~fastvol.plan.LoadPlan`, filling one preallocated output array.

Every byte comes through the frame's :class:`~fastvol.sources.ByteSource`. Uncompressed frames
are read with ``source.read_into`` (``os.preadv`` for a local file) from their byte offset
straight into their slice of the output (or, when the output dtype is wider than the stored one,
into a per-thread scratch frame), then masked, sign-extended and rescaled in place by one numba
kernel. Compressed frames are located and read by :mod:`fastvol.frames` and decoded by the
series' decoder. Frames are spread over an executor: the process's shared thread pool by default
(the kernels and imagecodecs release the GIL), a pool of ``threads`` threads, or the calling
thread (``threads=1``, and always for a decoder that holds the GIL); a process pool also works,
frames then travel back as arrays. Each source is closed after its last frame is read.
"""

from __future__ import annotations

import os
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from . import buffers
from .colour import to_rgb
from .dicom import TS, UNDEFINED_LENGTH
from .errors import (
    CorruptFileError,
    DecodeError,
    FastvolError,
    InputError,
    MissingCodecError,
    UnsupportedError,
)
from .kernels import pixel_kernels
from .options import check_threads
from .pixels import unpack_bits
from .plan.types import Duplicate, FrameSource, LoadPlan, PixelFormat
from .sources import ByteSource, prefetch

if TYPE_CHECKING:  # concurrent.futures (and logging) load only when a pool is made
    from concurrent.futures import Executor, ThreadPoolExecutor

__all__ = ["default_executor", "execute", "thread_pool"]

_POOLS: dict[int | None, ThreadPoolExecutor] = {}
_POOLS_PID = -1
_POOL_LOCK = threading.Lock()
_SCRATCH = threading.local()
#: Per source (by id), how many running executes still read it: a source is closed only when
#: none does, so two loads of one scanned series in two threads never close each other's file.
_HOLDS: dict[int, int] = {}
_HOLDS_LOCK = threading.Lock()


def thread_pool(threads: int | None = None) -> ThreadPoolExecutor:
    """This process's pool of ``threads`` threads, created on first use (and again after a fork).

    ``None`` is the shared default pool: ``min(8, max(2, cpu_count))`` threads. Pools are cached
    per size, so repeated loads with the same ``threads`` reuse one pool.
    """
    global _POOLS_PID
    with _POOL_LOCK:
        if _POOLS_PID != os.getpid():  # a forked child must not use its parent's (dead) threads
            _POOLS.clear()
            _POOLS_PID = os.getpid()
        pool = _POOLS.get(threads)
        if pool is None:
            workers = threads if threads is not None else min(8, max(2, (os.cpu_count() or 2)))
            from concurrent.futures import ThreadPoolExecutor

            pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fastvol")
            _POOLS[threads] = pool
        return pool


def _after_fork_in_child() -> None:
    # The parent's pool threads do not exist in the child, and a lock held by one of the
    # parent's threads at the fork would never be released: start afresh.
    global _POOL_LOCK, _HOLDS_LOCK, _POOLS_PID
    _POOL_LOCK = threading.Lock()
    _HOLDS_LOCK = threading.Lock()
    _POOLS.clear()
    _POOLS_PID = os.getpid()
    _HOLDS.clear()


def default_executor() -> ThreadPoolExecutor:
    """The process's shared thread pool, created on first use (and again after a fork)."""
    return thread_pool(None)


def _scratch(nbytes: int) -> np.ndarray:
    buf = getattr(_SCRATCH, "buf", None)
    if buf is None or buf.size < nbytes:
        buf = np.empty(nbytes, dtype=np.uint8)
        _SCRATCH.buf = buf
    return buf[:nbytes]


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _stored_frame(
    src: FrameSource,
    pixel: PixelFormat,
    decoders: dict[str, Any],
    into: np.ndarray | None,
    ranges: dict[str, list[Any]] | None = None,
) -> np.ndarray:
    """Read (and decode) one frame's stored samples, flat, native byte order.

    ``into`` is a flat stored-dtype array to read uncompressed bytes into (a view of the output
    when widths match); otherwise a scratch or decoded array is returned.
    """
    stored = pixel.stored_dtype
    n = pixel.frame_samples
    ts = src.transfer_syntax
    if src.pixel_offset < 0:
        return _stored_via_pydicom(src, pixel)
    source = src.source
    if pixel.bits_allocated == 1:  # uncompressed only (the plan refuses compressed 1-bit data)
        return _packed_frame(src, pixel)
    if ts in TS.UNCOMPRESSED:
        buf = into if into is not None else _scratch(n * stored.itemsize).view(stored)
        source.read_into([(src.pixel_offset + src.frame * pixel.frame_bytes, buf.nbytes)], [buf])
        if ts == TS.EXPLICIT_BE and stored.itemsize > 1:
            buf.byteswap(inplace=True)
        return buf
    from .frames import frame_ranges, max_fragments, read_frame

    known = ranges.get(src.path) if ranges else None
    if known is None:
        limit = max_fragments(src.n_frames, pixel.frame_bytes)
        known = frame_ranges(source, src.pixel_offset, src.file_size, src.n_frames, fragment_limit=limit)
    data = read_frame(source, known[src.frame])
    frame = decoders[ts](
        data, rows=pixel.rows, columns=pixel.columns, samples_per_pixel=pixel.samples_per_pixel,
        bits_allocated=pixel.bits_allocated, bits_stored=pixel.bits_stored,
        pixel_representation=pixel.pixel_representation, source=src.path, frame=src.frame,
    )  # fmt: skip
    flat = np.ascontiguousarray(frame).reshape(-1)
    if flat.size != n:
        raise DecodeError(f"{src.path}: decoded {flat.size} samples, expected {n}", files=[src.path])
    return flat.view(stored) if flat.dtype.itemsize == stored.itemsize else flat


def _packed_frame(src: FrameSource, pixel: PixelFormat) -> np.ndarray:
    """One frame of 1-bit samples, unpacked to uint8: frames are packed without padding, so
    frame ``k`` starts at bit ``k * samples`` of the pixel data, possibly inside a byte."""
    n = pixel.frame_samples
    first = src.frame * n
    raw = np.empty((first % 8 + n + 7) // 8, dtype=np.uint8)
    src.source.read_into([(src.pixel_offset + first // 8, raw.nbytes)], [raw])
    return unpack_bits(raw, first % 8, n)


def _stored_via_pydicom(src: FrameSource, pixel: PixelFormat) -> np.ndarray:
    """Pixels whose bytes are not addressable in the file (deflated): inflate just enough.

    The data set is inflated in bounded chunks up to the end of this frame
    (:func:`fastvol.headers.pydicom_reader.inflate_dataset`), never whole: a small file that
    inflates to gigabytes costs what the frame needs. Every byte comes through the source.
    """
    from .headers.pydicom_reader import inflate_dataset

    size = pixel.frame_bytes
    needed = pixel.bytes_for(src.frame + 1)
    try:
        _, raw, _ = inflate_dataset(src.source, needed)
    except FastvolError:
        raise
    except Exception as exc:
        raise CorruptFileError(f"{src.path}: pixel data cannot be read ({exc})", files=[src.path]) from exc
    if len(raw) < needed:
        raise CorruptFileError(
            f"{src.path}: pixel data holds {len(raw)} bytes, frame {src.frame} needs {needed}",
            files=[src.path],
        )
    if pixel.bits_allocated == 1:
        first = src.frame * pixel.frame_samples
        return unpack_bits(np.frombuffer(raw, np.uint8, offset=first // 8), first % 8, pixel.frame_samples)
    return np.frombuffer(raw, dtype=pixel.stored_dtype.newbyteorder("<"), count=size // pixel.stored_dtype.itemsize,
                         offset=src.frame * size).astype(pixel.stored_dtype)  # fmt: skip


def _convert(stored: np.ndarray, dst: np.ndarray, src: FrameSource, pixel: PixelFormat, plain: bool,
             kernels: ModuleType, palette: np.ndarray | None = None) -> None:  # fmt: skip
    """Stored samples -> output values, with ``kernels`` (compiled or numpy, chosen per load)."""
    if palette is not None:  # indices, masked to BitsStored, into the series' RGB table
        index = stored & stored.dtype.type((1 << min(pixel.bits_stored, 16)) - 1)
        np.copyto(dst.reshape(-1, 3), palette[index], casting="unsafe")
        return
    if pixel.is_colour:  # (rows, columns, 3) RGB, masked to BitsStored; no rescale
        rgb = to_rgb(stored, pixel.rows, pixel.columns, pixel.photometric_interpretation,
                     pixel.planar_configuration)  # fmt: skip
        if pixel.bits_stored < pixel.bits_allocated:
            rgb = rgb & rgb.dtype.type((1 << pixel.bits_stored) - 1)
        np.copyto(dst.reshape(rgb.shape), rgb, casting="unsafe")
        return
    if plain and stored.dtype == dst.dtype:
        if not np.shares_memory(stored, dst):
            dst[...] = stored
        return
    if pixel.kind != "int":  # IEEE samples: nothing to mask; a rescale only if the file has one
        if src.slope == 1.0 and src.intercept == 0.0:
            dst[...] = stored
        else:
            np.copyto(dst, stored * np.float64(src.slope) + np.float64(src.intercept), casting="unsafe")
        return
    signed = bool(pixel.pixel_representation)
    mask = pixel.bits_stored < pixel.bits_allocated or stored.dtype.itemsize * 8 != pixel.bits_allocated
    if dst.dtype.kind in "iu":
        slope, intercept = int(src.slope), int(src.intercept)
        if dst.dtype.itemsize == stored.dtype.itemsize and np.shares_memory(stored, dst):
            # Read into the output itself: convert on one unsigned view of it (vectorises).
            unsigned = dst.view(f"u{dst.dtype.itemsize}")
            kernels.store_frame_in_place(unsigned, pixel.bits_stored, signed, mask or signed, slope,
                                         intercept)  # fmt: skip
            return
    else:
        # float64, whatever the output: each value is then rounded once, as pydicom's float64
        # values cast to the output are (a float32 copy of the slope would be rounded first)
        slope, intercept = np.float64(src.slope), np.float64(src.intercept)  # type: ignore[assignment]
    kernels.store_frame(stored, dst, pixel.bits_stored, signed, mask, slope, intercept)


def _fill_one(
    plan: LoadPlan,
    flat_out: np.ndarray,
    src: FrameSource,
    decoders: dict[str, Any],
    ranges: dict[str, list[Any]],
    kernels: ModuleType,
) -> None:
    pixel = plan.pixel
    dst = flat_out[src.slot].reshape(-1)
    stored_dtype = pixel.stored_dtype
    identity = src.slope == 1.0 and src.intercept == 0.0
    plain = identity and pixel.bits_stored == pixel.bits_allocated
    into = None
    if (src.transfer_syntax in TS.UNCOMPRESSED and src.pixel_offset >= 0 and pixel.bits_allocated > 1
            and not pixel.is_colour):  # colour: read into scratch, then reordered into dst
        if dst.dtype.itemsize == stored_dtype.itemsize and dst.flags.c_contiguous:
            into = dst.view(stored_dtype)
    try:
        stored = _stored_frame(src, pixel, decoders, into, ranges)
        _convert(stored, dst, src, pixel, plain and dst.dtype == stored_dtype, kernels, plan.palette)
    except FastvolError:
        raise
    except OSError as exc:
        raise CorruptFileError(f"{src.path}: cannot be read ({exc})", files=[src.path]) from exc


class _ProcessTask:
    """Process-pool task (picklable): one frame's stored samples as a fresh array."""

    def __init__(
        self, pixel: PixelFormat, decoders: dict[str, Any], ranges: dict[str, list[Any]]
    ) -> None:
        self.pixel = pixel
        self.decoders = decoders
        self.ranges = ranges

    def __call__(self, src: FrameSource) -> np.ndarray:
        try:  # src (and its source) is this task's own unpickled copy: close it when done
            return np.array(_stored_frame(src, self.pixel, self.decoders, None, self.ranges), copy=True)
        except OSError as exc:
            raise CorruptFileError(f"{src.path}: cannot be read ({exc})", files=[src.path]) from exc
        finally:
            src.source.close()


class _Closer:
    """Closes each source once its last frame is read, so open descriptors stay few."""

    def __init__(self, sources: Iterable[FrameSource]) -> None:
        self.sources = {id(s.source): s.source for s in sources}
        self.left = dict(Counter(id(s.source) for s in sources))
        with _HOLDS_LOCK:
            for key in self.left:
                _HOLDS[key] = _HOLDS.get(key, 0) + 1

    def done(self, src: FrameSource) -> None:
        """One frame of ``src.source`` is read: close the source after its last one."""
        key = id(src.source)
        with _HOLDS_LOCK:
            left = self.left[key] - 1
            self.left[key] = left
            if left == 0:
                self._release(key)

    def close_all(self) -> None:
        """Release the sources whose frames were not all read (an error stopped the load)."""
        with _HOLDS_LOCK:
            for key, left in self.left.items():
                if left > 0:
                    self.left[key] = 0
                    self._release(key)

    def _release(self, key: int) -> None:
        # Called under _HOLDS_LOCK, so no other execute takes the source up meanwhile.
        holds = _HOLDS[key] - 1
        if holds:
            _HOLDS[key] = holds
        else:
            del _HOLDS[key]
            self.sources[key].close()


def _is_executor(obj: object) -> bool:
    """Whether ``obj`` is a concurrent.futures Executor (a caller who made one imported it)."""
    module = sys.modules.get("concurrent.futures")
    return module is not None and isinstance(obj, module.Executor)


def _is_process_pool(pool: Executor | None) -> bool:
    """Whether ``pool`` is a ProcessPoolExecutor, without importing that module (a fresh
    process that never made one would pay about 10 ms for the check)."""
    module = sys.modules.get("concurrent.futures.process")
    return module is not None and isinstance(pool, module.ProcessPoolExecutor)


def _run(executor: Executor | None, fn: Callable[..., Any], items: Iterable[Any]) -> list[Any]:
    items = list(items)
    if executor is None or len(items) <= 1:
        return [fn(i) for i in items]
    futures = [executor.submit(fn, i) for i in items]
    results = []
    error: BaseException | None = None
    for fut in futures:
        try:
            results.append(fut.result())
        except BaseException as exc:  # finish waiting, raise the first error
            if error is None:
                error = exc
    if error is not None:
        raise error
    return results


def _holds_gil(plan: LoadPlan, decoders: dict[str, Any]) -> bool:
    """True when no frame of ``plan`` is read by code that releases the GIL.

    Uncompressed frames (``preadv`` and the numba kernels) release it; deflated ones go through
    pydicom's Python parser; compressed ones release it when their decoder does
    (``Decoder.releases_gil``, per candidate in :data:`fastvol.decode.REGISTRY`).
    """
    for src in plan.sources:
        if src.pixel_offset < 0:
            continue
        if src.transfer_syntax in TS.UNCOMPRESSED:
            return False
        decoder = decoders.get(src.transfer_syntax)
        if decoder is None or getattr(decoder, "releases_gil", True):
            return False
    return True


#: Uncompressed loads of fewer output bytes run in the calling thread: starting a pool (and
#: importing concurrent.futures, in a fresh process) costs more than two threads save.
SMALL_LOAD_BYTES = 8 << 20


def _small(plan: LoadPlan) -> bool:
    nbytes = np.dtype(plan.dtype).itemsize * int(np.prod(plan.read_shape))
    return nbytes < SMALL_LOAD_BYTES and all(
        src.pixel_offset < 0 or src.transfer_syntax in TS.UNCOMPRESSED for src in plan.sources
    )


def _choose_executor(
    plan: LoadPlan, executor: Executor | None | str, threads: int | None, decoders: dict[str, Any]
) -> Executor | None:
    if executor != "default":
        return executor  # type: ignore[return-value]
    if threads == 1 or len(plan.sources) <= 1 or _holds_gil(plan, decoders):
        return None  # the calling thread: a pool only adds overhead
    if threads is None and _small(plan):
        return None  # an explicit threads=N is honoured even then
    return thread_pool(threads)


def execute(
    plan: LoadPlan,
    *,
    executor: Executor | None | str = "default",
    threads: int | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Read every frame of ``plan`` into a new array of shape ``plan.shape`` (or into ``out``).

    Parameters
    ----------
    executor
        ``"default"`` to let ``threads`` choose; ``None`` to run in the calling thread; or any
        ``concurrent.futures.Executor``, used as given whatever ``threads`` says (a
        ProcessPoolExecutor receives picklable tasks and returns decoded frames).
    threads
        With ``executor="default"``: ``None`` for the process's shared thread pool, ``1`` to run
        in the calling thread (a DataLoader or Dask worker), ``n`` for this process's pool of
        ``n`` threads (created on first use, kept for later loads, recreated after a fork). A
        series whose decoder holds the GIL (pylibjpeg, pydicom) is read in the calling thread
        whatever ``threads`` says: a pool only adds overhead to it.
    out
        A C-contiguous, writeable array of exactly ``plan.shape`` and ``plan.dtype`` to fill
        and return (frames are read straight into it unless the plan resamples or demosaics).

    Raises
    ------
    InputError
        ``threads`` is not a whole number >= 1 or None, ``executor`` is another string, or
        ``out`` has another shape or dtype, or is not C-contiguous and writeable.
    """
    check_threads(threads)
    check_out(out, plan)
    if executor is not None and executor != "default" and not _is_executor(executor):
        raise InputError(f"executor={executor!r}: expected 'default', None or an Executor")
    dtype = np.dtype(plan.dtype)
    work_dtype = dtype if plan.resample is None else np.dtype(np.float32) if dtype.kind != "f" else dtype
    direct = out is not None and plan.resample is None and plan.mosaic is None and work_dtype == dtype
    given, out = out, (out if direct else buffers.empty(plan.read_shape, work_dtype))
    assert out is not None
    frame_axes = 3 if plan.pixel.is_colour else 2  # (row, column[, channel]) of one slot
    flat = out.reshape((-1,) + out.shape[-frame_axes:])
    filled = np.zeros(len(flat), dtype=np.bool_)
    filled[[s.slot for s in plan.sources]] = True
    missing = np.flatnonzero(~filled)
    kernels = pixel_kernels()
    if missing.size:
        kernels.fill_slots(flat, missing, flat.dtype.type(plan.fill_value))
    sources = plan.sources
    duplicates = _read_duplicates(plan)
    read = sources + tuple(d.copy for d in duplicates) if duplicates else sources  # all read
    decoders = {} if plan.all_uncompressed and not duplicates else _decoders(read, plan)
    pool = _choose_executor(plan, executor, threads, decoders)
    closer = _Closer(read)
    try:
        if any(type(s.source).prefetch_many is not None for s in read):
            # Remote sources: every frame's bytes fetched now, concurrently (local: untouched).
            prefetch(_pixel_ranges(read, plan.pixel.frame_bytes, packed=plan.pixel.bits_allocated == 1))
        ranges = _multiframe_ranges(read, plan.pixel.frame_bytes)
        for dup in duplicates:  # before any fill: a conflicting copy leaves no partial output
            _check_duplicate(dup, plan, decoders, ranges)
            closer.done(dup.copy)
        if _is_process_pool(pool):
            frames = _run(pool, _ProcessTask(plan.pixel, decoders, ranges), sources)
            for src, stored in zip(sources, frames):
                dst = flat[src.slot].reshape(-1)
                _convert(stored, dst, src, plan.pixel, False, kernels, plan.palette)
        else:
            # Batches of frames per task: enough tasks to balance, few enough to keep overhead low.
            workers = getattr(pool, "_max_workers", 1) if pool is not None else 1
            size = max(1, len(sources) // (4 * workers))
            batches = [sources[i : i + size] for i in range(0, len(sources), size)]

            def fill(batch: tuple[FrameSource, ...]) -> None:
                for src in batch:
                    try:
                        _fill_one(plan, flat, src, decoders, ranges, kernels)
                    finally:
                        closer.done(src)

            _run(pool, fill, batches)
    finally:  # every task has ended (_run waits for all)
        closer.close_all()
    if plan.resample is not None:
        out = _resample(out, plan, dtype, into=given)
    if plan.mosaic is not None:
        from .mosaic import demosaic

        tiles = demosaic(out.reshape((-1,) + out.shape[-2:]), plan.mosaic.info)
        out = np.ascontiguousarray(tiles[:, list(plan.mosaic.order)]).reshape(plan.shape)
    if given is not None and out is not given:
        np.copyto(given, out)
        return given
    return out


def _decoders(sources: tuple[FrameSource, ...], plan: LoadPlan) -> dict[str, Any]:
    """The decoder of every compressed syntax the frames use, resolved once per load.

    Raises
    ------
    UnsupportedError, MissingCodecError
        As :func:`fastvol.decode.get_decoder`, naming the files of that syntax.
    """
    syntaxes = {s.transfer_syntax for s in sources if s.pixel_offset >= 0} - TS.UNCOMPRESSED
    syntaxes.discard(TS.DEFLATED_LE)  # inflated by pydicom, no decoder
    if not syntaxes:
        return {}
    from .decode import get_decoder  # resolved once per series, not per frame

    decoders: dict[str, Any] = {}
    for ts in sorted(syntaxes):
        try:
            decoders[ts] = get_decoder(ts)
        except (UnsupportedError, MissingCodecError) as exc:
            files = list(dict.fromkeys(s.path for s in sources if s.transfer_syntax == ts))
            n_all = len({s.path for s in plan.sources})
            advice = (
                "install it, or move these files out of the folder"
                if isinstance(exc, MissingCodecError)
                else "an unknown syntax among readable files suggests damaged file meta; move these "
                "files out of the folder, or convert them to a syntax fastvol reads (e.g. "
                "gdcmconv --raw, or dcmtk's dcmdjpeg)"
            )
            # An unknown syntax (not a codec left uninstalled) marks the files damaged: a load
            # with unreadable='skip' goes on without them.
            damaged = {} if isinstance(exc, MissingCodecError) else {"damaged_meta": True}
            raise type(exc)(
                f"series {plan.report.series}: {len(files)} of its {n_all} files use transfer "
                f"syntax {ts} (e.g. {files[:3]}): {exc.message}; {advice}",
                files=files, uid=plan.meta.get("series_instance_uid"), **{**exc._data, **damaged},
            ) from None  # fmt: skip
    return decoders


def _read_duplicates(plan: LoadPlan) -> tuple[Duplicate, ...]:
    """The plan's duplicates whose kept frame this load reads (a region reads only some)."""
    if not plan.duplicates:
        return ()
    read = {(s.path, s.frame) for s in plan.sources}
    return tuple(d for d in plan.duplicates if (d.kept.path, d.kept.frame) in read)


def _check_duplicate(dup: Duplicate, plan: LoadPlan, decoders: dict[str, Any],
                     ranges: dict[str, list[Any]]) -> None:  # fmt: skip
    """Raise unless a dropped copy's stored values equal those of the frame kept.

    Both frames are read (and decoded) as the fill reads them, through their own byte sources;
    equal headers were checked by the plan (:mod:`fastvol.plan.duplicates`).

    Raises
    ------
    DuplicateInstanceError
        The two files claim one instance but hold different pixels.
    """
    from .plan.duplicates import conflict_error

    frames = []
    for src in (dup.kept, dup.copy):
        try:  # a copy: the next read may reuse this thread's scratch buffer
            frames.append(np.array(_stored_frame(src, plan.pixel, decoders, None, ranges), copy=True))
        except OSError as exc:
            raise CorruptFileError(f"{src.path}: cannot be read ({exc})", files=[src.path]) from exc
    kept, copy = frames
    if kept.shape != copy.shape or not _same_values(kept, copy, plan.pixel):
        raise conflict_error(dup.kept.path, dup.copy.path, dup.sop_instance_uid, dup.kept.frame,
                             dup.kept.n_frames, "pixel data", name=plan.report.series,
                             uid=plan.meta.get("series_instance_uid"))  # fmt: skip


def _same_values(a: np.ndarray, b: np.ndarray, pixel: PixelFormat) -> bool:
    """Whether two frames of stored samples give the same voxels: integers compared on their
    BitsStored bits (what every conversion keeps; a lossless re-encoding drops junk high bits),
    floats with NaN equal to NaN."""
    if a.dtype != b.dtype:
        return False
    if a.dtype.kind in "iu":
        bits = min(pixel.bits_stored, a.dtype.itemsize * 8)
        if bits < a.dtype.itemsize * 8:
            unsigned = np.dtype(f"u{a.dtype.itemsize}")
            mask = unsigned.type((1 << bits) - 1)
            return bool(np.array_equal(a.view(unsigned) & mask, b.view(unsigned) & mask))
        return bool(np.array_equal(a, b))
    return bool(np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))


def check_out(out: np.ndarray | None, plan: LoadPlan) -> None:
    """Raise InputError unless ``out`` is None or can take the plan's array as it is."""
    if out is None:
        return
    shape, dtype = tuple(plan.shape), np.dtype(plan.dtype)
    if not isinstance(out, np.ndarray):
        raise InputError(f"out= must be a numpy array of shape {shape} and dtype {dtype}, "
                         f"got {type(out).__name__}")  # fmt: skip
    if tuple(out.shape) != shape or out.dtype != dtype:
        raise InputError(f"out= has shape {tuple(out.shape)} and dtype {out.dtype}; this load "
                         f"needs shape {shape} and dtype {dtype} (pass dtype= to choose it)")  # fmt: skip
    if not (out.flags.c_contiguous and out.flags.writeable):
        raise InputError(f"out= must be C-contiguous and writeable (shape {shape}, dtype {dtype})")


def _pixel_ranges(
    sources: tuple[FrameSource, ...], frame_bytes: int, packed: bool = False
) -> list[tuple[ByteSource, int, int]]:
    """The byte ranges the frames will read: an uncompressed frame's own bytes; the pixel data
    value (to the end of the file when its length is undefined) of an encapsulated file or of
    packed 1-bit frames (which start mid-byte); the whole of a deflated one."""
    out: list[tuple[ByteSource, int, int]] = []
    whole: set[int] = set()
    for src in sources:
        if src.pixel_offset >= 0 and src.transfer_syntax in TS.UNCOMPRESSED and not packed:
            out.append((src.source, src.pixel_offset + src.frame * frame_bytes, frame_bytes))
        elif id(src.source) not in whole:
            whole.add(id(src.source))
            start = max(0, src.pixel_offset)
            defined = src.pixel_offset >= 0 and src.pixel_length != UNDEFINED_LENGTH
            end = src.pixel_offset + src.pixel_length if defined else src.file_size
            out.append((src.source, start, end - start))
    return out


def _multiframe_ranges(sources: tuple[FrameSource, ...], frame_bytes: int) -> dict[str, list[Any]]:
    """Fragment ranges of every encapsulated multi-frame file, walked once per file, not per frame."""
    out: dict[str, list[Any]] = {}
    for src in sources:
        if src.n_frames > 1 and src.pixel_length == UNDEFINED_LENGTH and src.path not in out:
            from .frames import frame_ranges, max_fragments  # encapsulated multi-frame only

            eot = src.extended_offsets
            try:
                out[src.path] = frame_ranges(
                    src.source, src.pixel_offset, src.file_size, src.n_frames,
                    extended_offsets=None if eot is None else (np.array(eot[0]), np.array(eot[1])),
                    fragment_limit=max_fragments(src.n_frames, frame_bytes),
                )  # fmt: skip
            except OSError as exc:
                raise CorruptFileError(f"{src.path}: cannot be read ({exc})", files=[src.path]) from exc
    return out


def _resample(read: np.ndarray, plan: LoadPlan, dtype: np.dtype, into: np.ndarray | None = None
              ) -> np.ndarray:  # fmt: skip
    """The resampled volume, written into ``into`` (a caller's ``out=``) when given."""
    from ._kernels.resample import interpolate_slices, shift_slices

    spec = plan.resample
    assert spec is not None
    stacks = read.reshape((-1, *read.shape[-3:]))
    n_read = stacks.shape[1]
    index = np.asarray(spec.slice_index if spec.slice_index else range(n_read), dtype=np.float64)
    out = buffers.empty(plan.shape, dtype) if into is None else into
    out_stacks = out.reshape((-1, *out.shape[-3:]))
    fill = stacks.dtype.type(plan.fill_value)
    for v in range(stacks.shape[0]):
        if spec.shift != (0.0, 0.0):
            shift_slices(stacks[v], index, spec.shift[0], spec.shift[1], fill)
        if spec.slice_index:
            tmp = np.empty(out_stacks.shape[1:], dtype=stacks.dtype)
            interpolate_slices(stacks[v], index, tmp)
            _cast_into(tmp, out_stacks[v])
        else:
            _cast_into(stacks[v], out_stacks[v])
    return out


def _cast_into(src: np.ndarray, dst: np.ndarray) -> None:
    if dst.dtype.kind in "iu":
        info = np.iinfo(dst.dtype)
        np.copyto(dst, np.clip(np.rint(np.nan_to_num(src, nan=info.min)), info.min, info.max), casting="unsafe")
    else:
        np.copyto(dst, src, casting="unsafe")

