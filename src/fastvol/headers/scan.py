"""Driver of the compiled header scanner: read first blocks through sources, scan, build records.

The kernel (:mod:`fastvol._kernels.scan`) receives buffers and the wanted tags only. This
module reads the first block of every file of a batch through
:meth:`~fastvol.sources.ByteSource.read` into one reused buffer, calls the kernel once,
re-reads (doubling) the few files whose header runs past the first block, and converts the
wanted values to a :class:`~fastvol.dicom.HeaderRecord` by the converters of
:mod:`fastvol.headers.convert`, field by field as :data:`~fastvol.dicom.HEADER_FIELDS` declares.
Where the C converter is built, the records of plain files (every value provably converted,
the common encodings) are built whole in C, a batch per call (:func:`_c_plan`: the same values,
transfer syntax and :meth:`~fastvol.dicom.HeaderRecord.completed` rules); :func:`_record`
stays the rule for the rest and the reference the C records are tested against.

The contract is strict: a record from :func:`scan_header` is equal (``==``) to the record
:func:`~fastvol.headers.read_header_pydicom` gives for the same file. Whenever the scanner
cannot be sure of that it gives ``None`` and the caller reads the file with pydicom.
"""

from __future__ import annotations

import array
import dataclasses
import functools
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from .. import _ckernels, kernels
from .._frozen import frozen
from .._pykernels.scan import (  # the kernel's constants, without importing numba
    INFO_COLUMNS,
    INFO_ENHANCED,
    INFO_FIRST_GROUP,
    INFO_FIRST_VR_VALID,
    INFO_IMPLICIT,
    INFO_META_TS,
    INFO_PIXEL_ELEMENT,
    INFO_PIXEL_LENGTH,
    INFO_PIXEL_OFFSET,
    INFO_STATUS,
    NEED_DICTIONARY,
    NEED_MORE,
    OK,
    VR_KIND,
    vr_code,
)
from ..dicom import _OTHER_DEFAULTS, HEADER_FIELDS, PIXEL_KINDS, TS, HeaderRecord
from ..errors import FastvolError
from ..sources import ByteSource, LocalFile, prefetch
from .convert import (
    LATIN1_CHARSETS,
    RAW_CONVERTERS,
    ExtraTag,
    Unsure,
    extra_from_raw,
    resolve_extra_tags,
)
from .convert import cs as _cs
from .convert import ui as _ui

__all__ = ["BATCH", "FIRST_BLOCK", "scan_header", "scan_headers"]

#: Bytes read first from each file: most headers (CT, MR without vendor blobs) fit in 16 KiB,
#: and reading less saves little (a page-cache copy of 16 KiB costs about a microsecond). Not a
#: multiple of 4 KiB: a batch's blocks lie at multiples of it in one buffer, and the headers the
#: scanner reads would otherwise all start in the same few cache sets.
FIRST_BLOCK = 16 * 1024 + 320
#: Files read per kernel call in :func:`scan_headers`: bounds the buffer (reused per thread,
#: since first-touch page faults of a fresh buffer cost as much as the scan).
BATCH = 256

# Tags recorded besides the record's: the character set (decides how text decodes) and two
# file meta tags.
SPECIFIC_CHARACTER_SET = 0x00080005
MEDIA_STORAGE_SOP_CLASS_UID = 0x00020002
TRANSFER_SYNTAX_UID = 0x00020010
_OWN_TAGS = {SPECIFIC_CHARACTER_SET: "CS", MEDIA_STORAGE_SOP_CLASS_UID: "UI", TRANSFER_SYNTAX_UID: "UI"}

#: Keys of the C converter's values of the own tags (not record fields).
_TS, _CHARSET = "_transfer_syntax", "_character_set"

_SQ_TAGS: np.ndarray | None = None
#: No dictionary: the kernel asks for it (NEED_DICTIONARY) only when a file needs it, so most
#: scans never import pydicom.
_NO_SQ_TAGS = np.zeros(0, dtype=np.int64)


def _sq_tags() -> np.ndarray:
    """Sorted tags whose dictionary VR is SQ (pydicom's dictionary, loaded once)."""
    global _SQ_TAGS
    if _SQ_TAGS is None:
        from pydicom.datadict import DicomDictionary

        _SQ_TAGS = np.array(
            sorted(tag for tag, entry in DicomDictionary.items() if entry[0] == "SQ"),
            dtype=np.int64,
        )
    return _SQ_TAGS


@frozen
class Layout:
    """The wanted tags of one scan and where each value sits in a file's flat row.

    A row holds ``(offset, length, US value)`` per wanted tag; ``3 * index`` is where a tag's
    triple starts. Derived once from :data:`HEADER_FIELDS` (plus the extra tags of a call).
    """

    wanted: np.ndarray
    expected_vr: np.ndarray
    #: (attribute, row index, converter of the value bytes)
    converted: tuple[tuple[str, int, Callable[[bytes], Any]], ...]
    #: (attribute, row index) of text that depends on the character set
    text: tuple[tuple[str, int], ...]
    #: (attribute, row index) of US values the kernel decoded
    us: tuple[tuple[str, int], ...]
    #: (keyword, row index, dictionary VR) of extra attributes
    extras: tuple[tuple[str, int, str], ...]
    i_ts: int
    i_charset: int
    #: (attribute, wanted index, kind code) of every converted field, for the C converter
    c_spec: tuple[tuple[str, int, int], ...] = ()
    #: attribute -> (row index, converter of the value bytes, whether it is ``lo`` text, which
    #: also takes the character set) of the fields the C converter may leave to Python
    by_name: dict[str, tuple[int, Callable[..., Any], bool]] | None = None


@functools.lru_cache(maxsize=16)
def layout(extras: tuple[ExtraTag, ...] = ()) -> Layout:
    """The :class:`Layout` of the record's fields plus ``extras`` (memoised)."""
    vrs: dict[int, str] = dict(_OWN_TAGS)
    for f in HEADER_FIELDS:
        vrs[f.tag] = f.vr
    for x in extras:
        vrs.setdefault(x.tag, x.vr)
    wanted = np.array(sorted(vrs), dtype=np.int64)
    index = {int(tag): 3 * i for i, tag in enumerate(wanted)}
    converted = [(f.name, index[f.tag], RAW_CONVERTERS[f.kind]) for f in HEADER_FIELDS
                 if f.kind not in ("lo", "us")]  # fmt: skip
    converted.append(("media_storage_sop_class_uid", index[MEDIA_STORAGE_SOP_CLASS_UID], RAW_CONVERTERS["uid"]))
    kinds = {f.name: f.kind for f in HEADER_FIELDS}
    kinds["media_storage_sop_class_uid"] = "uid"
    c_spec = tuple((name, index[tag] // 3, C_KINDS[kinds[name]])
                   for name, tag in [(f.name, f.tag) for f in HEADER_FIELDS]
                   + [("media_storage_sop_class_uid", MEDIA_STORAGE_SOP_CLASS_UID)])  # fmt: skip
    c_spec += ((_TS, index[TRANSFER_SYNTAX_UID] // 3, C_KINDS["uid"]),
               (_CHARSET, index[SPECIFIC_CHARACTER_SET] // 3, C_KINDS["text"]))  # fmt: skip
    by_name = {name: (k, convert, False) for name, k, convert in converted}
    by_name.update((f.name, (index[f.tag], RAW_CONVERTERS["lo"], True)) for f in HEADER_FIELDS if f.kind == "lo")
    return Layout(
        wanted=wanted,
        expected_vr=np.array([vr_code(vrs[int(tag)]) for tag in wanted], dtype=np.int64),
        converted=tuple(converted),
        text=tuple((f.name, index[f.tag]) for f in HEADER_FIELDS if f.kind == "lo"),
        us=tuple((f.name, index[f.tag]) for f in HEADER_FIELDS if f.kind == "us"),
        extras=tuple((x.keyword, index[x.tag], x.vr) for x in extras),
        i_ts=index[TRANSFER_SYNTAX_UID],
        i_charset=index[SPECIFIC_CHARACTER_SET],
        c_spec=c_spec,
        by_name=by_name,
    )


_LO = RAW_CONVERTERS["lo"]
#: Field kind -> kind code of the C converter (:mod:`fastvol._ckernels._values`; a test checks
#: them against its constants).
C_KINDS = {"text": 1, "uid": 2, "lo": 3, "int": 4, "float": 5, "scale": 12, "fd": 6, "floats2": 7,
           "floats3": 8, "floats6": 9, "image_type": 10, "us": 11, "spacing": 13}  # fmt: skip


def _c_values() -> Any:
    """The C converter module, or None (not built, or ``FASTVOL_NATIVE=0``)."""
    if not _ckernels.enabled():
        return None
    try:
        from .._ckernels import _values  # type: ignore[attr-defined]
    except ImportError:
        return None
    return _values


#: A file's converted values: ``(values by attribute, attributes left to Python)``, from the C
#: converter; ``None`` converts every field in Python.
Converted = tuple[dict[str, Any], tuple[str, ...]] | None


def _record(
    data: bytes | bytearray,
    row: Sequence[int],
    info: Sequence[int],
    source: ByteSource,
    file_size: int,
    lay: Layout,
    converted: Converted = None,
    new_record: Callable[..., HeaderRecord | None] | None = None,
) -> HeaderRecord | None:
    """Build the record of one scanned file; None when pydicom might read it otherwise.

    ``row`` is the file's flattened ``fields`` row, offsets into ``data``; ``info`` its info
    row; ``converted`` the C converter's values of the file, if it ran, and ``new_record`` its
    constructor of records. This is most of the header pass: per-field lists are precomputed
    in ``lay``.
    """
    if info[INFO_STATUS] != OK:
        return None
    implicit = info[INFO_IMPLICIT] == 1
    try:
        # The transfer syntax (a plain UID or None) and the character set's text.
        if converted is not None:
            # C converts both: a UID it is unsure of is not plain (bytes other than digits and
            # dots before the padding); text it always converts.
            values, unsure = converted
            if _CHARSET in unsure:
                return None  # only where the kernel's offsets left the buffer: never expected
            meta_ts = values.pop(_TS, "") if _TS not in unsure else None
            charset = values.pop(_CHARSET, "")
        else:
            o = row[lay.i_ts]
            ts_raw = data[o : o + row[lay.i_ts + 1]]
            meta_ts = _ui(ts_raw)
            if meta_ts.strip("0123456789.") or ts_raw.rstrip(b"\x00 ").strip(b"0123456789."):
                meta_ts = None
            o = row[lay.i_charset]
            charset = "" if o < 0 else _cs(data[o : o + row[lay.i_charset + 1]])
        charset = charset.strip()

        # Encoding: pydicom parses with the encoding found in the bytes but reports (and
        # places PixelData by) the one the transfer syntax implies; accept only agreement.
        if info[INFO_META_TS]:
            transfer_syntax = meta_ts
            # Only plain UIDs: then pydicom's UID value and the record's text are the same.
            if (
                not transfer_syntax
                or transfer_syntax in (TS.EXPLICIT_BE, TS.DEFLATED_LE)
                or implicit != (transfer_syntax == TS.IMPLICIT_LE)
            ):
                return None
        else:
            if implicit == (info[INFO_FIRST_VR_VALID] == 1):
                return None  # pydicom's guess (a known VR) and its parse (letters) disagree
            if not implicit and info[INFO_FIRST_GROUP] >= 1024:
                return None  # pydicom guesses big endian
            transfer_syntax = TS.IMPLICIT_LE if implicit else TS.EXPLICIT_LE

        if "\x00" in charset:
            return None  # pydicom fails looking up such a character set (ValueError)
        latin1 = charset in LATIN1_CHARSETS

        if converted is not None:
            for name in unsure:  # the few values C leaves to the Python converters
                if name == _TS:
                    continue
                k, convert, is_lo = lay.by_name[name]  # type: ignore[index]
                raw = bytes(data[row[k] : row[k] + row[k + 1]])
                values[name] = convert(raw, latin1) if is_lo else convert(raw)
        else:
            values = {}
            # Absent values are left out: HeaderRecord.build gives them their defaults.
            for name, k, convert in lay.converted:
                o = row[k]
                if o >= 0:
                    values[name] = convert(bytes(data[o : o + row[k + 1]]))
            for name, k in lay.text:
                o = row[k]
                if o >= 0:
                    values[name] = _LO(bytes(data[o : o + row[k + 1]]), latin1)
            for name, k in lay.us:
                # the kernel decoded the first value: -1 for an empty value (None to pydicom)
                if row[k] >= 0 and row[k + 2] >= 0:
                    values[name] = row[k + 2]
        values.update(
            path=source.name,
            file_size=file_size,
            transfer_syntax=transfer_syntax,
            is_enhanced=info[INFO_ENHANCED] == 1,
            pixel_offset=info[INFO_PIXEL_OFFSET],
            pixel_length=info[INFO_PIXEL_LENGTH],
            pixel_kind=PIXEL_KINDS.get(info[INFO_PIXEL_ELEMENT], "int"),
            source=source,
        )
        if lay.extras:
            values["extra"] = tuple(
                (keyword, None if row[k] < 0 else extra_from_raw(bytes(data[row[k] : row[k] + row[k + 1]]), vr, latin1))
                for keyword, k, vr in lay.extras
            )  # fmt: skip
        slots = _record_slots() if new_record is not None else None
        if slots is None:
            return HeaderRecord.build(values)
        kw = HeaderRecord.completed(values)
        return new_record(HeaderRecord, slots, kw) or HeaderRecord(**kw)  # type: ignore[misc]
    except Unsure:
        return None


@functools.lru_cache(maxsize=1)
def _record_slots() -> tuple[tuple[str, Any, Any], ...] | None:
    """(name, member descriptor, default) of every field of HeaderRecord, for ``new_record``;
    None if a field has no plain default (a factory, or none): then records are constructed
    by ``HeaderRecord(**kw)``, which knows what to do."""
    found = dataclasses.fields(HeaderRecord)
    if any(f.default is dataclasses.MISSING for f in found):
        return None
    return tuple((f.name, HeaderRecord.__dict__[f.name], f.default) for f in found)


#: HeaderRecord.completed's rules, for the C record builder (:func:`_c_plan`): attribute ->
#: (rule, constant, attribute the rule reads). The text fields' None -> default rule
#: (``_OTHER_DEFAULTS``) is added by :func:`_c_plan`. tests/test_crecords.py proves records built
#: by these equal to ``HeaderRecord.build``'s on generated values.
_C_RULES: dict[str, tuple[str, Any, str | None]] = {
    "bits_allocated": ("R_OR", 0, None),
    "bits_stored": ("R_NONE_SAME", None, "bits_allocated"),
    "high_bit": ("R_NONE_MINUS_ONE", None, "bits_stored"),
    "rows": ("R_OR", 0, None),
    "columns": ("R_OR", 0, None),
    "pixel_representation": ("R_OR", 0, None),
    "planar_configuration": ("R_OR", 0, None),
    "samples_per_pixel": ("R_OR", 1, None),
    "number_of_frames": ("R_FRAMES", 1, None),
    "sop_class_uid": ("R_FALSY_FROM", "", "media_storage_sop_class_uid"),
}
#: Record attributes the builder sets from the scan itself, not from a value of the file.
_C_FROM_SCAN = {"path": "H_PATH", "file_size": "H_SIZE", "transfer_syntax": "H_TS",
                "is_enhanced": "H_ENHANCED", "pixel_offset": "H_PIXEL_OFFSET",
                "pixel_length": "H_PIXEL_LENGTH", "pixel_kind": "H_PIXEL_KIND", "source": "H_SOURCE"}  # fmt: skip


@functools.lru_cache(maxsize=1)
def _c_plan() -> Any:
    """The C record builder's plan for records without extra tags (``_values.make_plan``), or
    None where records are not built by slots (:func:`_record_slots`)."""
    values, slots = _c_values(), _record_slots()
    if values is None or slots is None:
        return None
    lay = layout()
    index = {int(tag): i for i, tag in enumerate(lay.wanted)}
    by_name = {f.name: f for f in HEADER_FIELDS}
    rules = dict(_C_RULES)
    rules.update((name, ("R_NONE_DEFAULT", default, None)) for name, default in _OTHER_DEFAULTS)
    names = [name for name, _, _ in slots] + ["media_storage_sop_class_uid"]
    plan_values = []
    for name in names:
        if name in by_name or name == "media_storage_sop_class_uid":
            tag, kind = ((by_name[name].tag, by_name[name].kind) if name in by_name
                         else (MEDIA_STORAGE_SOP_CLASS_UID, "uid"))  # fmt: skip
            how, wanted, code = values.H_FIELD, index[tag], C_KINDS[kind]
        else:
            how, wanted, code = getattr(values, _C_FROM_SCAN.get(name, "H_DEFAULT")), 0, 0
        rule, constant, ref = rules.get(name, ("R_KEEP", None, None))
        plan_values.append((name, how, wanted, code, getattr(values, rule), constant,
                            -1 if ref is None else names.index(ref)))  # fmt: skip
    info = (INFO_STATUS, INFO_IMPLICIT, INFO_META_TS, INFO_FIRST_VR_VALID, INFO_FIRST_GROUP,
            INFO_ENHANCED, INFO_PIXEL_OFFSET, INFO_PIXEL_LENGTH, INFO_PIXEL_ELEMENT, INFO_COLUMNS)  # fmt: skip
    return values.make_plan(
        HeaderRecord, slots, tuple(plan_values), index[TRANSFER_SYNTAX_UID],
        index[SPECIFIC_CHARACTER_SET], info, OK,
        (TS.IMPLICIT_LE, TS.EXPLICIT_LE, TS.EXPLICIT_BE, TS.DEFLATED_LE), (PIXEL_KINDS, "int"),
        LocalFile,  # its instances hold a path and descriptor state only: records of them are
        # left out of the garbage collector's tracking (no cycle can pass through one)
    )  # fmt: skip


def _scan(
    buf: np.ndarray, starts: np.ndarray, sizes: np.ndarray, whole: np.ndarray, lay: Layout
) -> tuple[np.ndarray, np.ndarray]:
    """Run the kernel; return the fields table (n_files, len(wanted), 3) and the info table
    (n_files, INFO_COLUMNS)."""
    n_files = starts.shape[0]
    fields = np.empty((n_files, len(lay.wanted), 3), dtype=np.int64)
    info = np.empty((n_files, INFO_COLUMNS), dtype=np.int64)
    sq_tags = _NO_SQ_TAGS if _SQ_TAGS is None else _SQ_TAGS
    args = (buf, starts, sizes, whole, VR_KIND, sq_tags, lay.wanted, lay.expected_vr, fields, info)
    kernels.scan_buffers(*args, n_files=n_files)
    if sq_tags is _NO_SQ_TAGS and (info[:, INFO_STATUS] == NEED_DICTIONARY).any():
        args = (buf, starts, sizes, whole, VR_KIND, _sq_tags(), lay.wanted, lay.expected_vr, fields, info)
        kernels.scan_buffers(*args, n_files=0)  # the same files again: counted once
    return fields, info


def _records(
    data: bytes | bytearray,
    fields: np.ndarray,
    info: np.ndarray,
    todo: list[int],
    sources: Sequence[ByteSource],
    sizes: Sequence[int],
    lay: Layout,
) -> list[HeaderRecord | None]:
    """Records of the files ``todo`` (indices) of one kernel call, in that order; ``sources``
    and ``sizes`` are per file of the call.

    With the C converter, whole records of the plain files are built in one call
    (:func:`_c_plan`) and the others go through :func:`_record` with the values C could convert;
    without it each value is converted in Python.
    """
    values = _c_values()
    if values is None:
        rows_list = fields.reshape(len(fields), -1).tolist()
        infos = info.tolist()
        return [_record(data, rows_list[i], infos[i], sources[i], sizes[i], lay) for i in todo]
    plan = _c_plan() if not lay.extras else None
    out: list[HeaderRecord | None]
    if plan is not None:
        out = values.build_records(plan, data, fields, info, todo, sources, sizes)
        left = [k for k, rec in enumerate(out) if rec is None] if type(None) in _ckernels.types_of(out) else []
    else:
        out = [None] * len(todo)
        left = list(range(len(todo)))
    if left:  # values C left to Python, other statuses and encodings: _record decides
        ok = [todo[k] for k in left if info[todo[k], INFO_STATUS] == OK]  # others: None at once
        converted = dict(zip(ok, values.convert_rows(data, fields, lay.c_spec, ok)))
        rows = fields.reshape(len(fields), -1)  # read for a few offsets only: no list made
        for k in left:
            i = todo[k]
            out[k] = _record(data, rows[i], info[i].tolist(), sources[i], sizes[i], lay, converted.get(i),
                             values.new_record)  # fmt: skip
    return out


def _scan_growing(source: ByteSource, first_block: int, lay: Layout) -> HeaderRecord | None:
    """Scan one file, reading a block and doubling it until the header fits."""
    try:
        if not source.is_regular():
            return None
        file_size = source.size()
        size = min(first_block, file_size)
        data = b""
        while True:
            chunk = source.read(len(data), size - len(data))
            if len(chunk) < size - len(data):
                return None  # the file shrank while being read
            data += chunk
            whole = len(data) >= file_size
            fields, info = _scan(
                np.frombuffer(data, dtype=np.uint8),
                np.zeros(1, np.int64),
                np.array([len(data)], np.int64),
                np.array([whole]),
                lay,
            )
            if info[0, INFO_STATUS] != NEED_MORE or whole:
                break
            size = min(2 * size, file_size)
    except (OSError, FastvolError):
        return None  # pydicom raises the right error for unreadable files
    return _records(data, fields, info, [0], [source], [file_size], lay)[0]


def _grown(source: ByteSource, first_block: int, lay: Layout) -> HeaderRecord | None:
    """:func:`_scan_growing`, the source closed after."""
    try:
        return _scan_growing(source, first_block, lay)
    finally:
        source.close()


def scan_header(
    source: ByteSource, *, first_block: int = FIRST_BLOCK, extra_tags: Iterable[str | int] = ()
) -> HeaderRecord | None:
    """Read one file's header with the compiled scanner.

    Parameters
    ----------
    source
        The file (its ``name`` becomes the record's ``path``).
    first_block
        Bytes read first; the read doubles until the header (up to PixelData) fits.
    extra_tags
        Keywords or tags of further attributes to read into ``record.extra``.

    Returns
    -------
    HeaderRecord or None
        A record equal to :func:`fastvol.headers.read_header_pydicom`'s, or ``None`` when the
        scanner cannot be sure of that (unsupported encoding, unusual structure or value,
        unreadable file): read the file with pydicom then.
    """
    lay = layout(resolve_extra_tags(extra_tags))
    try:
        return _scan_growing(source, first_block, lay)
    finally:
        source.close()


_buffers = threading.local()


def _batch_buffer(size: int, which: int = 0) -> bytearray:
    """This thread's reused buffer ``which`` (0 or 1: a batch is read into one while the
    previous is scanned from the other) of at least ``size`` bytes."""
    name = ("buf", "buf1")[which]
    buf: bytearray | None = getattr(_buffers, name, None)
    if buf is None or len(buf) < size:
        buf = bytearray(size)
        setattr(_buffers, name, buf)
    return buf


#: Batches a scan must have for their first blocks to be read ahead on a thread of its own.
READ_AHEAD_BATCHES = 3


class _ReadAhead:
    """The first blocks of the next batch, read on a short-lived thread (the batch reader is C
    and releases the GIL) while the calling thread scans and builds the current batch's
    records: the system calls then cost the scan little more than the work beside them."""

    def __init__(self, read_heads: Callable[..., Any], first_block: int) -> None:
        self.read_heads = read_heads
        self.first_block = first_block
        self.thread: threading.Thread | None = None
        self.out: tuple[bytearray, Any] | None = None
        self.error: BaseException | None = None

    def start(self, batch: Sequence[ByteSource], which: int) -> None:
        data = _batch_buffer(len(batch) * self.first_block, which)  # made here: buffers are per thread

        def read() -> None:
            try:
                self.out = (data, self.read_heads(batch, data, self.first_block))
            except BaseException as exc:  # raised where the batch is taken
                self.error = exc

        self.thread = threading.Thread(target=read, name="fastvol-read-ahead", daemon=True)
        self.thread.start()

    def take(self) -> tuple[bytearray, Any]:
        assert self.thread is not None
        self.thread.join()
        self.thread = None
        if self.error is not None:
            raise self.error
        assert self.out is not None
        out, self.out = self.out, None
        return out


def scan_headers(
    sources: Sequence[ByteSource],
    *,
    first_block: int = FIRST_BLOCK,
    extra_tags: Iterable[str | int] = (),
) -> list[HeaderRecord | None]:
    """Read many files' headers with the compiled scanner, one kernel call per batch.

    The first ``first_block`` bytes of every file of a batch of :data:`BATCH` are read into
    one reused buffer (one ``read`` per file), scanned in one kernel call, and converted
    to records; files whose header runs past the first block are scanned again one by one
    with a growing block. Sources are closed after their headers are read (a later read
    reopens them).

    Returns
    -------
    list of HeaderRecord or None
        Per source, as :func:`scan_header`: ``None`` where pydicom must read the file.
    """
    lay = layout(resolve_extra_tags(extra_tags))
    if any(getattr(kind, "prefetch_many", None) is not None for kind in _ckernels.types_of(sources)):
        # Remote sources fetch every first block now, concurrently; local ones are not touched.
        prefetch([(s, 0, first_block) for s in sources if s.is_regular()], errors="defer")
    records: list[HeaderRecord | None] = []
    batches = [sources[first : first + BATCH] for first in range(0, len(sources), BATCH)]
    read_heads = type(sources[0]).read_heads if sources else None
    if read_heads is None or len(batches) < READ_AHEAD_BATCHES:
        for batch in batches:
            records.extend(_scan_batch(batch, first_block, lay))
        return records
    ahead = _ReadAhead(read_heads, first_block)
    ahead.start(batches[0], 0)
    try:
        for k, batch in enumerate(batches):
            taken = ahead.take()
            if k + 1 < len(batches):
                ahead.start(batches[k + 1], (k + 1) % 2)
            records.extend(_scan_batch(batch, first_block, lay, taken))
    finally:
        if ahead.thread is not None:  # an error here: let the read in flight end first
            ahead.thread.join()
    return records


def _int64s(values: list[int]) -> np.ndarray:
    """A list of ints as an int64 array (through ``array``: numpy's own conversion inspects
    each item's type)."""
    return np.frombuffer(array.array("q", values), dtype=np.int64)


def _scan_batch(sources: Sequence[ByteSource], first_block: int, lay: Layout,
                ahead: tuple[bytearray, Any] | None = None) -> list[HeaderRecord | None]:  # fmt: skip
    """Records of one batch; ``ahead``: its buffer and ``read_heads``' answer, when read ahead."""
    n_files = len(sources)
    data = _batch_buffer(n_files * first_block) if ahead is None else ahead[0]
    view = memoryview(data)
    starts = np.arange(n_files, dtype=np.int64) * first_block
    sizes = np.zeros(n_files, dtype=np.int64)
    whole = np.zeros(n_files, dtype=np.bool_)
    file_sizes = [-1] * n_files
    total: np.ndarray | None = None
    try:
        if ahead is not None:
            heads = ahead[1]
        else:
            read_heads = type(sources[0]).read_heads  # it refuses (None) sources not all its own
            heads = read_heads(sources, data, first_block) if read_heads is not None else None
        if heads is not None:  # one call for the batch (local files, in C); -1: unreadable
            file_sizes = heads[1]
            read, total = _int64s(heads[0]), _int64s(file_sizes)
            sizes[:] = np.maximum(read, 0)
            whole[:] = (total >= 0) & (read >= total)
        for i, source in enumerate(sources if heads is None else ()):
            # An unreadable file keeps size 0 and not whole: NEED_MORE, retried (and refused) below.
            # Sources that are not regular files are left out by read_records (never opened);
            # a LocalFile given here anyway refuses one without blocking (FastvolError).
            try:
                file_size = source.size()
                block = source.read(0, min(first_block, file_size))
            except (OSError, FastvolError):
                source.close()
                continue
            if type(source).prefetch_many is None:
                source.close()  # a batch holds no descriptors (a later read reopens); remote
                # sources are closed once, below: a second close would drop what they keep
            got = len(block)
            start = i * first_block
            view[start : start + got] = block  # read + copy: cheaper than read_into for 16 KiB
            sizes[i] = got
            whole[i] = got >= file_size
            file_sizes[i] = file_size
        fields, info = _scan(np.frombuffer(data, dtype=np.uint8), starts, sizes, whole, lay)
    finally:
        view.release()
    # A file that could not be read (size -1): the pydicom path names the error.
    readable = (_int64s(file_sizes) if total is None else total) >= 0
    more = readable & (info[:, INFO_STATUS] == NEED_MORE)  # its header runs past the first block
    todo = np.flatnonzero(readable & ~more).tolist()
    records = _records(data, fields, info, todo, sources, file_sizes, lay)
    if len(todo) < n_files:
        scanned = dict(zip(todo, records))
        grow = set(np.flatnonzero(more).tolist())
        records = [_grown(source, 2 * first_block, lay) if i in grow else scanned.get(i)
                   for i, source in enumerate(sources)]  # fmt: skip
    if heads is not None:
        LocalFile.close_all(sources)
    else:
        for source in sources:
            source.close()
    return records
