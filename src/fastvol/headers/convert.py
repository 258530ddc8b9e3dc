"""Converters by field kind: raw value bytes -> value, and pydicom value -> value.

Both header readers derive from :data:`fastvol.dicom.HEADER_FIELDS`: each field's ``kind``
names one converter here, applied to the raw bytes of the value (the compiled scanner, which
must give exactly what pydicom followed by :func:`record_from_dataset` gives) or to the value
pydicom read (:func:`record_from_dataset`). Records are built by keyword through
:meth:`~fastvol.dicom.HeaderRecord.build`.

Raw converters raise :class:`Unsure` where pydicom might convert the value differently; the
file then goes to pydicom. They are pure functions of the value's bytes and memoised (the files
of a series repeat most values).

Extra attributes (``extra_tags``) are converted to plain Python values (``str``, ``int``,
``float``, ``bytes``, tuples of them; ``None`` when absent or empty) by the same rules from both
readers: :func:`extra_from_raw` and :func:`extra_from_element`.
"""

from __future__ import annotations

import functools
import math
import struct
from collections.abc import Callable, Iterable
from typing import Any

from .._frozen import frozen
from ..dicom import HEADER_FIELDS, TS, HeaderRecord
from ..errors import InputError

__all__ = [
    "ELEMENT_CONVERTERS",
    "INVALID_SCALE",
    "INVALID_SPACING",
    "RAW_CONVERTERS",
    "ExtraTag",
    "Unsure",
    "extra_from_element",
    "extra_from_raw",
    "record_from_dataset",
    "resolve_extra_tags",
]


class Unsure(Exception):
    """A value pydicom might convert differently: give the file to pydicom."""


# --------------------------------------------------------------------------------------------
# pydicom values -> field values


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        value = value.decode("latin-1", "replace")
    if not isinstance(value, str):
        # Multi-valued strings come back as MultiValue; keep the DICOM form.
        try:
            value = "\\".join(str(v) for v in value)
        except TypeError:
            value = str(value)
    return value.rstrip(" \x00").lstrip(" ")


def _floats(value: Any, n: int) -> tuple[float, ...] | None:
    if value is None or value == "":
        return None
    try:
        items = list(value) if not isinstance(value, (str, bytes, int, float)) else [value]
        out = tuple(float(v) for v in items)
    except (TypeError, ValueError):
        return None
    if len(out) != n or any(v != v for v in out):  # wrong count or NaN
        return None
    return out


def _float(value: Any) -> float | None:
    if value is None or value == "":
        return None
    if not isinstance(value, (str, bytes, int, float)):
        value = value[0] if len(value) else None  # multi-valued: first value
        if value is None:
            return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return None if out != out else out


#: A RescaleSlope/RescaleIntercept present but not one number (text, several values): NaN,
#: which the plan refuses (:func:`fastvol.plan.values.check_rescale`) as it does a "nan" value.
#: One object, so the records of both readers compare equal.
INVALID_SCALE = float("nan")
#: A PixelSpacing present but not two numbers (one value, text, a NaN item): infinite, which the
#: plan refuses as it does 0\0; not NaN, which would differ from itself in series keys.
INVALID_SPACING = (float("inf"), float("inf"))


def _blank(value: Any) -> bool:
    return isinstance(value, (str, bytes)) and not value.strip()


def _scale(value: Any) -> float | None:
    """``_float``, but NaN and inf are kept and a value present but not one number is
    :data:`INVALID_SCALE`: a rescale that is not a number must be refused, not read as absent
    (slope 1) or as its first value."""
    if value is None or value == "":
        return None
    if not isinstance(value, (str, bytes, int, float)):
        items = list(value)
        if len(items) != 1:
            return INVALID_SCALE if items else None
        value = items[0]
    try:
        return float(value)
    except (TypeError, ValueError):
        return None if _blank(value) else INVALID_SCALE


def _spacing(value: Any) -> tuple[float, float] | None:
    """PixelSpacing: two numbers; ``None`` when absent or blank; :data:`INVALID_SPACING` for
    anything else present (one value, three, text, NaN), which the plan refuses."""
    if value is None or value == "":
        return None
    items = list(value) if not isinstance(value, (str, bytes, int, float)) else [value]
    if not items or (len(items) == 1 and _blank(items[0])):
        return None
    try:
        out = tuple(float(v) for v in items)
    except (TypeError, ValueError):
        return INVALID_SPACING
    if len(out) != 2 or any(math.isnan(v) for v in out):
        return INVALID_SPACING
    return out  # type: ignore[return-value]


def _int(value: Any) -> int | None:
    out = _float(value)
    if out is None or out != int(out):
        return None
    return int(out)


def _image_type_value(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(v.strip(" \x00") for v in value.split("\\"))
    return tuple(_text(v) for v in value)


#: Field kind -> converter of the value pydicom read (``ds.get(keyword)``).
ELEMENT_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "text": _text,
    "uid": _text,
    "lo": _text,
    "int": _int,
    "us": _int,
    "float": _float,
    "scale": _scale,
    "fd": _float,
    "floats2": lambda v: _floats(v, 2),
    "spacing": _spacing,
    "floats3": lambda v: _floats(v, 3),
    "floats6": lambda v: _floats(v, 6),
    "image_type": _image_type_value,
}
assert {f.kind for f in HEADER_FIELDS} <= set(ELEMENT_CONVERTERS)

_ENCODING_TS = {
    (True, True): TS.IMPLICIT_LE,
    (False, True): TS.EXPLICIT_LE,
    (False, False): TS.EXPLICIT_BE,
}
#: (record attribute, keyword, converter) of every header field, for :func:`record_from_dataset`.
_DATASET_FIELDS = tuple((f.name, f.keyword, ELEMENT_CONVERTERS[f.kind]) for f in HEADER_FIELDS)


def record_from_dataset(
    ds: Any,
    *,
    path: str,
    file_size: int,
    pixel_offset: int,
    pixel_length: int,
    source: Any = None,
    extras: tuple[ExtraTag, ...] = (),
    pixel_kind: str = "int",
) -> HeaderRecord:
    """Build a :class:`HeaderRecord` from a pydicom Dataset read without its pixels."""
    meta = getattr(ds, "file_meta", None)
    ts = _text(meta.get("TransferSyntaxUID")) if meta is not None and "TransferSyntaxUID" in meta else ""
    if not ts:
        enc = getattr(ds, "original_encoding", (True, True))
        ts = _ENCODING_TS.get((bool(enc[0]), bool(enc[1])), TS.IMPLICIT_LE)
    values: dict[str, Any] = {name: convert(ds.get(keyword)) for name, keyword, convert in _DATASET_FIELDS}
    values["media_storage_sop_class_uid"] = (
        _text(meta.get("MediaStorageSOPClassUID")) if meta is not None else ""
    )
    values.update(
        path=path, file_size=file_size, transfer_syntax=ts, source=source,
        is_enhanced="PerFrameFunctionalGroupsSequence" in ds,
        pixel_offset=pixel_offset, pixel_length=pixel_length, pixel_kind=pixel_kind,
    )  # fmt: skip
    if extras:
        values["extra"] = tuple((x.keyword, extra_from_element(ds.get(x.tag_obj))) for x in extras)
    return HeaderRecord.build(values)


# --------------------------------------------------------------------------------------------
# Raw value bytes -> field values, exactly as pydicom + record_from_dataset

# Bytes a DS/IS value may hold for the scanner to parse it itself: with anything else pydicom's
# conversion can fail and retry as another VR, or Python's float() accept more than digits.
_NUMERIC_BYTES = b"0123456789+-.eE \\\x00"
# Character sets that decode like Latin-1 (pydicom's default 'iso8859'); with any other, text
# is decoded here only when it is printable ASCII (identical in every DICOM character set).
LATIN1_CHARSETS = frozenset({"", "ISO_IR 100", "ISO_IR 6"})
_ASCII_TEXT_BYTES = bytes(range(0x20, 0x7F)) + b"\x00"
_INF = float("inf")
#: Values are sliced from the reused bytearray of a batch or the bytes of one file.
_Bytes = bytes | bytearray


def ui(raw: _Bytes) -> str:
    """_text(UI value): pydicom strips NUL/space, splits, strips each UID of whitespace."""
    value = raw.decode("latin-1").rstrip("\x00 ")
    if "\\" in value:
        value = "\\".join(v.strip() for v in value.split("\\"))
    else:
        value = value.strip()
    return value.rstrip(" \x00").lstrip(" ")


def cs(raw: _Bytes) -> str:
    """_text(CS or TM value): decoded Latin-1, trailing padding and leading spaces removed."""
    return raw.decode("latin-1").rstrip(" \x00").lstrip(" ")


def lo(raw: _Bytes, latin1: bool) -> str:
    """_text(LO value): decoded with the character set, each value stripped of padding."""
    if b"\x1b" in raw or (not latin1 and raw.translate(None, _ASCII_TEXT_BYTES)):
        raise Unsure  # escape sequences or bytes another character set may decode otherwise
    text = raw.decode("latin-1")
    if "\\" in text:
        text = "\\".join(v.rstrip("\x00 ") for v in text.split("\\"))
    else:
        text = text.rstrip("\x00 ")
    return text.rstrip(" \x00").lstrip(" ")


def image_type(raw: _Bytes) -> tuple[str, ...]:
    values = raw.decode("latin-1").rstrip(" \x00").split("\\")
    if len(values) == 1:
        return (values[0].strip(" \x00"),)
    return tuple(v.rstrip(" \x00").lstrip(" ") for v in values)


def ds_values(raw: _Bytes) -> list[float | None]:
    """DS items as pydicom converts them: floats, ``None`` for a blank item.

    Raises Unsure on bytes outside digits/sign/point/exponent/space, or an item float()
    refuses (pydicom would then retry the whole value as another VR).
    """
    if len(raw) > 512 or raw.translate(None, _NUMERIC_BYTES):
        raise Unsure
    out: list[float | None] = []
    # convert_DS_string strips whitespace, then multi_string strips padding and splits.
    for item in raw.decode("ascii").strip().rstrip(" \x00").split("\\"):
        try:
            out.append(float(item))  # DSfloat(item) is float(item)
        except ValueError:
            if item.strip():
                raise Unsure from None
            out.append(None)  # DSfloat keeps a blank item as the string
    return out


def ds_first(raw: _Bytes) -> float | None:
    """_float of a DS value: its first item, None when empty or blank."""
    return ds_values(raw)[0] if raw else None


def ds_scale(raw: _Bytes) -> float | None:
    """_scale of a DS value: its one item, None when empty or blank, INVALID_SCALE for more."""
    if not raw:
        return None
    values = ds_values(raw)
    return values[0] if len(values) == 1 else INVALID_SCALE


def ds_spacing(raw: _Bytes) -> tuple[float, float] | None:
    """_spacing of a DS value: two items, None when empty or blank, else INVALID_SPACING."""
    if not raw:
        return None
    values = ds_values(raw)
    if len(values) == 1 and values[0] is None:
        return None
    if len(values) != 2 or None in values:
        return INVALID_SPACING
    return tuple(values)  # type: ignore[return-value]


def ds_n(raw: _Bytes, n: int) -> tuple[float, ...] | None:
    """_floats of a DS value: exactly n non-blank items, else None."""
    if not raw:
        return None
    values = ds_values(raw)
    if len(values) != n or None in values:
        return None
    return tuple(values)  # type: ignore[arg-type]


def is_values(raw: _Bytes) -> list[int | None]:
    """IS items as ints (``None`` for blank items) when pydicom converts every one of them.

    Raises Unsure where pydicom would retry the value as another VR (one bad item sends the
    whole value down that path) or raise.
    """
    if len(raw) > 512 or raw.translate(None, _NUMERIC_BYTES):
        raise Unsure
    out: list[int | None] = []
    for item in raw.decode("ascii").rstrip(" \x00").split("\\"):
        try:
            number = float(int(item))  # IS(item): int(item) ...
        except ValueError:
            try:
                number = float(item)  # ... else float(item) (ISfloat when not integral)
            except ValueError:
                if item.strip():
                    raise Unsure from None
                out.append(None)  # blank item: kept as a string, None to _int
                continue
        except OverflowError:
            raise Unsure from None  # _float(IS) raises on ints beyond float range
        if number == _INF or number == -_INF:
            raise Unsure  # IS(int(inf)) raises OverflowError in pydicom
        out.append(int(number) if number == int(number) else _NOT_INTEGRAL)  # type: ignore[arg-type]
    return out


_NOT_INTEGRAL: Any = object()  # an ISfloat item: _int gives None, extras refuse it


def is_first(raw: _Bytes) -> int | None:
    """_int of an IS value: its first item as an int; None if empty, blank or not integral."""
    first = is_values(raw)[0]
    return None if first is _NOT_INTEGRAL else first


def fd_first(raw: _Bytes) -> float | None:
    if len(raw) % 8:
        raise Unsure  # pydicom raises on a partial value
    if not raw:
        return None
    value: float = struct.unpack_from("<d", raw)[0]
    return None if value != value else value


def _cached(func: Callable[..., Any]) -> Callable[..., Any]:
    # Memoised on the value's bytes; a raised Unsure is not cached.
    return functools.lru_cache(maxsize=4096)(func)


#: Field kind -> memoised converter of the raw value bytes (``bytes``), for the scanner. ``lo``
#: also takes whether the character set decodes like Latin-1; ``us`` values are decoded by the
#: kernel itself (their first value), so they have no entry.
RAW_CONVERTERS: dict[str, Callable[..., Any]] = {
    "text": _cached(cs),
    "uid": _cached(ui),
    "lo": _cached(lo),
    "int": _cached(is_first),
    "float": _cached(ds_first),
    # NaN/inf text has letters, which the scanner leaves to pydicom: only finite values here.
    "scale": _cached(ds_scale),
    "spacing": _cached(ds_spacing),
    "fd": _cached(fd_first),
    "floats2": _cached(lambda raw: ds_n(raw, 2)),
    "floats3": _cached(lambda raw: ds_n(raw, 3)),
    "floats6": _cached(lambda raw: ds_n(raw, 6)),
    "image_type": _cached(image_type),
}
assert {f.kind for f in HEADER_FIELDS} - {"us"} <= set(RAW_CONVERTERS)


# --------------------------------------------------------------------------------------------
# Extra attributes: plain values, identically from both readers


@frozen(slots=True)
class ExtraTag:
    """An attribute asked for with ``extra_tags``: its keyword, tag and dictionary VR."""

    keyword: str
    tag: int
    vr: str

    @property
    def tag_obj(self) -> Any:
        from pydicom.tag import Tag

        return Tag(self.tag)


def resolve_extra_tags(tags: Iterable[str | int]) -> tuple[ExtraTag, ...]:
    """Check ``extra_tags`` (DICOM keywords or integer tags) against pydicom's dictionary.

    Raises
    ------
    InputError
        A keyword or tag not in the dictionary, a file meta (group 0002) tag, or a sequence.
    """
    if isinstance(tags, (str, int)):
        tags = [tags]
    tags = tuple(tags)
    return _resolve(tags) if tags else ()  # no tags: no dictionary (pydicom not imported)


@functools.lru_cache(maxsize=64)
def _resolve(tags: tuple[str | int, ...]) -> tuple[ExtraTag, ...]:
    from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword

    out: dict[int, ExtraTag] = {}
    for item in tags:
        if isinstance(item, bool) or not isinstance(item, (str, int)):
            raise InputError(f"extra_tags: {item!r} is neither a DICOM keyword nor an integer tag")
        tag = tag_for_keyword(item) if isinstance(item, str) else item
        keyword = keyword_for_tag(tag) if tag is not None and 0 <= tag <= 0xFFFFFFFF else ""
        if tag is None or not keyword:
            raise InputError(f"extra_tags: {item!r} is not an attribute of the DICOM dictionary")
        if tag >> 16 == 0x0002:
            raise InputError(f"extra_tags: {keyword} is a file meta attribute (group 0002)")
        vr = dictionary_VR(tag)
        if vr == "SQ":
            raise InputError(f"extra_tags: {keyword} is a sequence; only plain values are read")
        out.setdefault(tag, ExtraTag(keyword, tag, vr))
    return tuple(out.values())


_NUMBER_VRS = frozenset({"DS", "IS"})
#: String VRs pydicom splits into values at backslashes (the others hold one value).
_SINGLE_VALUE_TEXT = frozenset({"LT", "ST", "UT", "UR"})
_TEXT_VRS = frozenset({"AE", "AS", "CS", "DA", "DT", "LO", "PN", "SH", "TM", "UC", "UI"}) | _SINGLE_VALUE_TEXT
_BINARY = {"US": "H", "SS": "h", "UL": "I", "SL": "i", "FL": "f", "FD": "d"}
_STRIP = " \x00\t\n\r\f\v"


def _plain(items: list[Any]) -> Any:
    if not items or (len(items) == 1 and (items[0] is None or items[0] == "")):
        return None
    return items[0] if len(items) == 1 else tuple(items)


def _plain_item(value: Any, vr: str) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, str):  # str, UID; a blank DS/IS item stays a string in pydicom
        return None if vr in _NUMBER_VRS else value.strip(_STRIP)
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):  # int, IS, BaseTag
        return int(value)
    if isinstance(value, float):  # float, DSfloat, ISfloat
        if value != value:
            return None
        return int(value) if vr == "IS" else float(value)
    return str(value).strip(_STRIP)  # PersonName


def extra_from_element(elem: Any) -> Any:
    """Plain value of a pydicom DataElement (``None`` when absent or empty)."""
    if elem is None:
        return None
    value, vr = elem.value, elem.VR
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray)):
        return bytes(value) or None
    from pydicom.multival import MultiValue

    items = list(value) if isinstance(value, (MultiValue, list, tuple)) else [value]
    return _plain([_plain_item(v, vr) for v in items])


def extra_from_raw(raw: bytes, vr: str, latin1: bool) -> Any:
    """Plain value of a raw little endian value read with dictionary VR ``vr``.

    Raises Unsure for VRs and values left to pydicom.
    """
    if not raw:
        return None
    if vr in _TEXT_VRS:
        if b"\x1b" in raw or (not latin1 and raw.translate(None, _ASCII_TEXT_BYTES)):
            raise Unsure
        text = raw.decode("latin-1")
        if vr == "PN" and "=" in text:
            raise Unsure  # component groups: left to pydicom's PersonName
        items = [text] if vr in _SINGLE_VALUE_TEXT else text.split("\\")
        return _plain([v.strip(_STRIP) for v in items])
    if vr == "DS":
        return _plain(ds_values(raw))
    if vr == "IS":
        values = is_values(raw)
        if _NOT_INTEGRAL in values:
            raise Unsure
        return _plain(values)
    code = _BINARY.get(vr)
    if code is None:
        raise Unsure  # bytes, tags, 64-bit and ambiguous VRs: pydicom's reading is the rule
    size = struct.calcsize(code)
    if len(raw) % size:
        raise Unsure  # pydicom raises on a partial value
    values = list(struct.unpack(f"<{len(raw) // size}{code}", raw))
    if code in "fd":
        values = [None if v != v else v for v in values]
    return _plain(values)
