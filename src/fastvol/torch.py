"""PyTorch: :class:`SeriesDataset`, one DICOM series per item, for a ``torch.utils.data.DataLoader``.

Needs the ``torch`` extra (``pip install 'fastvol[torch]'``). This module's name shadows nothing:
``import torch`` below is absolute and imports PyTorch itself.

Workers: the dataset holds only plain values (items, :class:`~fastvol.Options`, the transform,
the cache folder), so it pickles for ``spawn``, ``forkserver`` and ``fork`` alike, and opens
nothing before its first item in each worker. Each load decodes with at most
``cores // num_workers`` threads (the cores this process may run on), so ``num_workers x
threads`` never exceeds the cores; in the main process the options' ``threads`` apply as given.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, Union

import numpy as np

try:
    import torch
    from torch.utils.data import Dataset, get_worker_info
except ImportError as exc:  # a fastvol error naming the extra, not a bare ModuleNotFoundError
    from .errors import MissingDependencyError

    _INSTALL = "pip install 'fastvol[torch]'"
    raise MissingDependencyError(f"fastvol.torch needs PyTorch: {_INSTALL}", install_hint=_INSTALL) from exc

from .api import load, load_series
from .atomic import atomic_path
from .errors import InputError
from .group import Series
from .kernels import COMPILE_AFTER, SCAN_FILE_WORK, native_scan
from .options import OUTPUT_DTYPES, Options
from .volume import Volume

__all__ = ["SeriesDataset", "decode_threads"]

#: What one item may be: a path or URL, a scanned Series, or (path, series) with the series
#: chosen as ``fastvol.load(path, series=...)`` chooses it.
Item = Union[str, os.PathLike, Series, tuple[Any, Any]]

#: Scalar ``Volume.meta`` entries copied into each sample (strings; ``""`` when absent, so the
#: default collate never meets ``None``).
META_KEYS = ("series_instance_uid", "study_instance_uid", "frame_of_reference_uid",
             "series_description", "modality", "manufacturer")  # fmt: skip
_CACHE_VERSION = "2"  # 2: colour as (3, slice, row, column)


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def decode_threads(requested: int | None = None) -> int | None:
    """Decode threads for a load in this process.

    In a DataLoader worker: ``min(requested, cores // num_workers)``, at least 1 (``requested``
    None means no limit but the cores). In the main process: ``requested`` unchanged.
    """
    info = get_worker_info()
    if info is None:
        return requested
    share = max(1, _cores() // max(1, info.num_workers))
    return share if requested is None else max(1, min(requested, share))


#: Work units (:mod:`fastvol.kernels`) of the items this process has loaded, and how many.
_done = {"items": 0, "work": 0}


def _item_work(item: Item) -> int:
    """Compile-free work units a load of ``item`` is expected to cost, before loading it.

    Only headers scanned in plain Python count (:mod:`fastvol.kernels`: pixel work never
    switches a process, and headers scanned by the C scanner cost no more than numba's): so
    paths, when the C scanner is not built, count their files (:data:`SCAN_FILE_WORK` each);
    everything else counts 0, as do URLs (their files cannot be told cheaply).
    """
    if isinstance(item, Series) or native_scan() is not None:
        return 0
    path = item[0] if isinstance(item, tuple) and len(item) == 2 else item
    if not isinstance(path, (str, os.PathLike)) or "://" in os.fspath(path):
        return 0
    try:
        return len(_files_under(os.fspath(path))) * SCAN_FILE_WORK
    except OSError:
        return 0  # the load reports it


def _compile_if_worth_it(item: Item, n_items: int) -> None:
    """In a DataLoader worker, switch to numba's kernels when this worker's share pays for it.

    A fresh process runs compile-free (the header scanner as plain Python, numpy pixel twins)
    and switches only once its own work passes :data:`fastvol.kernels.COMPILE_AFTER`, about
    what numba's import and cached kernels cost. A worker knows more: the items left in its
    share of the epoch (``n_items / num_workers``). When their expected work (the mean of the
    items loaded here, else this item's files) passes ``COMPILE_AFTER``, it imports numba now,
    before the item, so the whole share runs compiled. With the C scanner built that work is
    always 0: uncompressed series never need numba. ``FASTVOL_JIT`` (``0``/``1``) overrides
    as everywhere.
    """
    info = get_worker_info()
    if info is None or "numba" in sys.modules or os.environ.get("FASTVOL_JIT", "") == "0":
        return
    share = -(-n_items // max(1, info.num_workers))
    left = share - _done["items"] % share  # this item and those after it, this epoch
    per_item = _done["work"] // _done["items"] if _done["items"] else _item_work(item)
    if left * per_item <= COMPILE_AFTER:
        return
    try:
        import numba  # noqa: F401  (fastvol.kernels runs compiled from now on)
    except ImportError:  # compile-free kernels still work
        pass


def _count_work(item: Item, vol: Volume) -> None:
    """Add a load's work in compile-free units (files scanned in plain Python) to :data:`_done`."""
    files = vol.meta.get("files")
    scanned = 0 if isinstance(item, Series) else len(set(files)) if isinstance(files, (list, tuple)) else 1
    _done["items"] += 1
    _done["work"] += 0 if native_scan() is not None else scanned * SCAN_FILE_WORK


def _torch_dtype(dtype: Any) -> tuple[np.dtype, torch.dtype] | None:
    if dtype is None:
        return None
    if isinstance(dtype, torch.dtype):
        np_dtype = torch.empty((), dtype=dtype).numpy().dtype
        return np_dtype, dtype
    try:
        np_dtype = np.dtype(dtype)
        return np_dtype, torch.from_numpy(np.empty(0, dtype=np_dtype)).dtype
    except (TypeError, ValueError) as exc:
        raise InputError(f"out_dtype={dtype!r}: expected a numpy or torch dtype PyTorch supports "
                         f"(e.g. 'float32', torch.int16)") from exc  # fmt: skip


class SeriesDataset(Dataset):
    """A map-style Dataset: item ``i`` is ``items[i]`` loaded as one volume.

    Parameters
    ----------
    items
        Paths (folder or file) or URLs, scanned :class:`~fastvol.Series`, or ``(path, series)``
        pairs (``series`` as :func:`fastvol.load` takes it: index, UID, SeriesNumber string).
    options
        :class:`~fastvol.Options` for every load (gaps, rescale, dtype, ...); ``threads`` is
        capped per worker (:func:`decode_threads`).
    transform
        Called on each sample dict, after conversion to tensors (must pickle for spawn).
    out_dtype
        numpy or torch dtype of ``"image"``; default the load's dtype (int16 for most CT).
    cache
        A folder: each loaded item is kept there as ``.npy`` plus a ``.json`` of its affine and
        meta, keyed by the series' files (names, sizes, modification times), the options and
        ``out_dtype``; later epochs read the ``.npy`` instead of the DICOM files. A changed or
        added file gives a new key. URLs are not cached (no modification times).

    Returns (``__getitem__``)
    -------------------------
    dict
        ``"image"``: tensor ``(1, slice, row, column)`` for a 3D series, ``(volume, slice, row,
        column)`` for 4D, ``(3, slice, row, column)`` for colour (R, G, B; ``(volume x 3,
        ...)`` for 4D colour); ``"affine"``: float64 ``(4, 4)`` tensor, ``(slice, row, column)``
        -> LPS mm; ``"spacing"``: float64 ``(3,)``; ``"meta"``: plain strings (:data:`META_KEYS`)
        and ``"source"`` (the item, as text). Every value collates with the default collate.
    """

    def __init__(
        self,
        items: Sequence[Item],
        *,
        options: Options | None = None,
        transform: Callable[[dict[str, Any]], Any] | None = None,
        out_dtype: Any = None,
        cache: str | os.PathLike[str] | None = None,
    ) -> None:
        self.items = list(items)
        self.options = Options.resolve(options, {})
        self.transform = transform
        self.out_dtype = out_dtype
        self._dtypes = _torch_dtype(out_dtype)  # checked now: a bad dtype fails before workers
        self.cache = os.fspath(cache) if cache is not None else None
        if self.cache is not None and not os.path.isdir(self.cache):
            raise InputError(f"cache={self.cache!r}: not a folder; create it first", files=[self.cache])

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> Any:
        item = self.items[index]
        array, affine, meta = self._cached_or_loaded(item)
        image = torch.from_numpy(array)
        if image.ndim == 3:
            image = image.unsqueeze(0)
        elif image.ndim > 4:
            image = image.reshape((-1, *image.shape[-3:]))
        sample = {
            "image": image,
            "affine": torch.from_numpy(np.array(affine, dtype=np.float64)),
            "spacing": torch.from_numpy(np.linalg.norm(np.asarray(affine)[:3, :3], axis=0)),
            "meta": meta,
        }
        return self.transform(sample) if self.transform is not None else sample

    # -------------------------------------------------------------------------- loading

    def _load(self, item: Item) -> Volume:
        _compile_if_worth_it(item, len(self.items))
        opts = self.options.replace(threads=decode_threads(self.options.threads))
        if self._dtypes is not None and self.options.dtype is None and self._dtypes[0].name in OUTPUT_DTYPES:
            # The load writes out_dtype itself (rescale into it): no second copy of the volume.
            opts = opts.replace(dtype=self._dtypes[0].name)
        if isinstance(item, Series):
            return load_series(item, opts)
        if isinstance(item, tuple) and len(item) == 2:
            path, series = item
            return load(path, opts, series=series)
        if isinstance(item, (str, os.PathLike)):
            return load(item, opts)
        raise InputError(f"SeriesDataset item {item!r}: expected a path, URL, Series or "
                         f"(path, series) pair")  # fmt: skip

    def _loaded(self, item: Item) -> tuple[np.ndarray, np.ndarray, dict[str, str]]:
        vol = self._load(item)
        _count_work(item, vol)
        array = vol.array
        if self._dtypes is not None and array.dtype != self._dtypes[0]:
            array = array.astype(self._dtypes[0])
        if vol.is_rgb:  # (..., slice, row, column, 3) -> channels first, (..., 3, slice, row, column)
            array = np.moveaxis(array, -1, -4)
        meta = {key: "" if vol.meta.get(key) is None else str(vol.meta[key]) for key in META_KEYS}
        meta["source"] = _describe(item)
        return np.ascontiguousarray(array), vol.affine, meta

    def _cached_or_loaded(self, item: Item) -> tuple[np.ndarray, np.ndarray, dict[str, str]]:
        key = self._cache_key(item) if self.cache is not None else None
        if key is None:
            return self._loaded(item)
        base = os.path.join(self.cache, key)  # type: ignore[arg-type]
        try:
            array = np.load(base + ".npy", allow_pickle=False)
            with open(base + ".json", encoding="utf-8") as fp:  # our own cache, not an input
                side = json.load(fp)
            return array, np.array(side["affine"], dtype=np.float64), side["meta"]
        except (OSError, ValueError, KeyError):
            pass  # not cached yet, or a torn entry: load and (re)write it
        array, affine, meta = self._loaded(item)
        with atomic_path(base + ".npy") as tmp, open(tmp, "wb") as fp:
            np.save(fp, array, allow_pickle=False)
        with atomic_path(base + ".json") as tmp, open(tmp, "w", encoding="utf-8") as fp:
            json.dump({"affine": affine.tolist(), "meta": meta}, fp)
        return array, affine, meta

    def _cache_key(self, item: Item) -> str | None:
        """Hash of what the item's array depends on, or None when it cannot be told (URLs)."""
        if isinstance(item, Series):
            files, selector = list(item.files), item.id
        else:
            path, selector = (item if isinstance(item, tuple) else (item, None))  # type: ignore[assignment]
            if isinstance(selector, Series):
                selector = selector.id
            if not isinstance(path, (str, os.PathLike)) or "://" in os.fspath(path):
                return None
            files = _files_under(os.fspath(path))
        stats = []
        for name in sorted(files):
            try:
                st = os.stat(name)
            except OSError:
                return None  # let the load report it
            stats.append((name, st.st_size, st.st_mtime_ns))
        text = json.dumps([_CACHE_VERSION, stats, repr(selector), repr(self.options),
                           str(self._dtypes[0]) if self._dtypes else None])  # fmt: skip
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def __repr__(self) -> str:
        return f"SeriesDataset({len(self.items)} items, cache={self.cache!r})"


def _files_under(path: str) -> list[str]:
    if not os.path.isdir(path):
        return [path]
    out = []
    for folder, _, names in os.walk(path):
        out += [os.path.join(folder, n) for n in names]
    return out


def _describe(item: Item) -> str:
    if isinstance(item, Series):
        return item.id
    if isinstance(item, tuple):
        return f"{os.fspath(item[0]) if isinstance(item[0], (str, os.PathLike)) else item[0]!r}#{_describe_series(item[1])}"
    return os.fspath(item) if isinstance(item, (str, os.PathLike)) else repr(item)


def _describe_series(series: Any) -> str:
    return series.id if isinstance(series, Series) else str(series)
