"""Per-frame records of a multi-frame file read from its raw bytes: the fast path of
:func:`~fastvol.headers.multiframe.expand_frames`.

The pydicom path (:mod:`.multiframe`) parses the data set into Datasets, one per item of every
functional group of every frame (about 1-2 ms per frame). Here the same attributes are taken
from the bytes before the pixel data by :class:`~fastvol.headers.groups.Walker`, which keeps
only them, and converted by the raw converters of :mod:`.convert`, which give exactly what
pydicom's values give after the pydicom path's own conversions. The records are equal (``==``)
to the pydicom path's, field by field (the tests compare both on every multi-frame file at
hand).

Only what can be read exactly is read: anything else (no preamble, big endian or deflated data
sets, a VR other than the dictionary's, a value pydicom might convert otherwise, a character
set set inside an item, any structure the walk refuses, a frame count that disagrees) raises
:class:`~fastvol.headers.groups.Unparsed` or :class:`~fastvol.headers.convert.Unsure`, and the
caller reads the file through pydicom, which also says what is wrong with a broken one. This
path never raises a :class:`~fastvol.errors.FastvolError` itself.
"""

from __future__ import annotations

import math
import struct
from typing import Any

from ..dicom import PIXEL_DATA_TAGS, TS, HeaderRecord
from .convert import LATIN1_CHARSETS, RAW_CONVERTERS, ds_values, ui
from .frame_records import (
    extended_offsets,
    grid_frames,
    replace,
    replacer,
    unplaced_frames,
)
from .groups import Item, Unparsed, Walker, value

__all__ = ["WANTED", "expand_raw"]

# Top level.
CHARSET = 0x00080005
SHARED = 0x52009229
PER_FRAME = 0x52009230
EOT, EOT_LENGTHS = 0x7FE00001, 0x7FE00002
GRID_OFFSETS, DOSE_SCALING, DOSE_UNITS = 0x3004000C, 0x3004000E, 0x30040002
# Functional groups and their attributes.
PLANE_POSITION, POSITION = 0x00209113, 0x00200032
PLANE_ORIENTATION, ORIENTATION = 0x00209116, 0x00200037
PIXEL_MEASURES, SPACING, THICKNESS, BETWEEN = 0x00289110, 0x00280030, 0x00180050, 0x00180088
TRANSFORMATION, INTERCEPT, SLOPE = 0x00289145, 0x00281052, 0x00281053
FRAME_CONTENT, DIMENSION_INDEX, TEMPORAL_INDEX = 0x00209111, 0x00209157, 0x00209128
FRAME_ACQUISITION_NUMBER, FRAME_ACQUISITION_DATETIME, STACK_ID = 0x00209156, 0x00189074, 0x00209056
DIFFUSION, B_VALUE, GRADIENT_SEQUENCE, GRADIENT = 0x00189117, 0x00189087, 0x00189076, 0x00189089
CARDIAC, TRIGGER_DELAY = 0x00189118, 0x00209153
ECHO, EFFECTIVE_ECHO_TIME = 0x00189114, 0x00189082
UNASSIGNED_PER_FRAME, UNASSIGNED_SHARED = 0x00209171, 0x00209170
TEMPORAL_ID, TRIGGER_TIME, ACQUISITION_NUMBER = 0x00200100, 0x00181060, 0x00200012
ACQUISITION_TIME, INSTANCE_NUMBER, ECHO_NUMBERS, ECHO_TIME = 0x00080032, 0x00200013, 0x00180086, 0x00180081
REAL_WORLD, UNITS_CODE, CODE_VALUE, CODE_MEANING = 0x00409096, 0x004008EA, 0x00080100, 0x00080104
REAL_WORLD_SLOPE, REAL_WORLD_INTERCEPT = 0x00409225, 0x00409224

#: Everything read, tag -> dictionary VR (a test checks them against pydicom's dictionary).
WANTED: dict[int, bytes] = {
    CHARSET: b"CS", SHARED: b"SQ", PER_FRAME: b"SQ", EOT: b"OV", EOT_LENGTHS: b"OV",
    GRID_OFFSETS: b"DS", DOSE_SCALING: b"DS", DOSE_UNITS: b"CS",
    PLANE_POSITION: b"SQ", POSITION: b"DS", PLANE_ORIENTATION: b"SQ", ORIENTATION: b"DS",
    PIXEL_MEASURES: b"SQ", SPACING: b"DS", THICKNESS: b"DS", BETWEEN: b"DS",
    TRANSFORMATION: b"SQ", INTERCEPT: b"DS", SLOPE: b"DS",
    FRAME_CONTENT: b"SQ", DIMENSION_INDEX: b"UL", TEMPORAL_INDEX: b"UL",
    FRAME_ACQUISITION_NUMBER: b"US", FRAME_ACQUISITION_DATETIME: b"DT", STACK_ID: b"SH",
    DIFFUSION: b"SQ", B_VALUE: b"FD", GRADIENT_SEQUENCE: b"SQ", GRADIENT: b"FD",
    CARDIAC: b"SQ", TRIGGER_DELAY: b"FD", ECHO: b"SQ", EFFECTIVE_ECHO_TIME: b"FD",
    UNASSIGNED_PER_FRAME: b"SQ", UNASSIGNED_SHARED: b"SQ",
    TEMPORAL_ID: b"IS", TRIGGER_TIME: b"DS", ACQUISITION_NUMBER: b"IS", ACQUISITION_TIME: b"TM",
    INSTANCE_NUMBER: b"IS", ECHO_NUMBERS: b"IS", ECHO_TIME: b"DS",
    REAL_WORLD: b"SQ", UNITS_CODE: b"SQ", CODE_VALUE: b"SH", CODE_MEANING: b"LO",
    REAL_WORLD_SLOPE: b"FD", REAL_WORLD_INTERCEPT: b"FD",
}  # fmt: skip

_EXPLICIT = struct.Struct("<HH2sH")
_U32 = struct.Struct("<I")
_TAG = struct.Struct("<HH")
_LONG_VRS = frozenset({b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"})
_SHORT_VRS = frozenset({b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FD", b"FL", b"IS", b"LO", b"LT",
                        b"PN", b"SH", b"SL", b"SS", b"ST", b"TM", b"UI", b"UL", b"US"})  # fmt: skip
_UNDEFINED = 0xFFFFFFFF

# Converters of raw values, each exactly the pydicom path's conversion of pydicom's value.
_FLOATS3, _FLOATS6 = RAW_CONVERTERS["floats3"], RAW_CONVERTERS["floats6"]
_SPACING = RAW_CONVERTERS["spacing"]  # _spacing: two values; present but unusable: INVALID_SPACING
_SCALE = RAW_CONVERTERS["scale"]  # _scale: one value; present but not one number: INVALID_SCALE
_DS = RAW_CONVERTERS["float"]  # _float(DS): first value
_IS = RAW_CONVERTERS["int"]  # _int(IS): first value, if integral
_FD = RAW_CONVERTERS["fd"]  # _float(FD): first value, NaN -> None
_TEXT = RAW_CONVERTERS["text"]  # _text(CS/DT/TM): decoded Latin-1 whatever the character set
_LO = RAW_CONVERTERS["lo"]  # _text(SH/LO): depends on the character set


def _first_number(raw: bytes, size: int, code: str) -> int:
    """_int of a US/UL value (non-empty): its first value; pydicom raises on a partial one."""
    if len(raw) % size:
        raise Unparsed("partial binary value")
    return int(struct.unpack_from(code, raw)[0])


def _unsigned_all(raw: bytes | None) -> tuple[int, ...]:
    """DimensionIndexValues (UL, all values); () when absent or empty."""
    if not raw:
        return ()
    if len(raw) % 4:
        raise Unparsed("partial UL value")
    return struct.unpack(f"<{len(raw) // 4}I", raw)


def _fd3(raw: bytes | None) -> tuple[float, float, float] | None:
    """_floats(FD value, 3): exactly three values, none NaN."""
    if not raw:
        return None
    if len(raw) % 8:
        raise Unparsed("partial FD value")
    if len(raw) != 24:
        return None
    out: tuple[float, float, float] = struct.unpack("<3d", raw)
    return None if any(math.isnan(v) for v in out) else out


def _data_set(record: HeaderRecord, data: bytes) -> tuple[Walker, Item]:
    """The walker of the data set's encoding and its top level, up to the pixel data."""
    if len(data) < 140 or data[128:132] != b"DICM":
        raise Unparsed("no preamble")  # pydicom then guesses where the data set starts
    pos, end = 132, len(data)
    ts_raw: bytes | None = None
    while True:  # file meta: explicit VR little endian, group 0002
        if pos + 8 > end:
            raise Unparsed("truncated file meta")
        group, element, vr, length = _EXPLICIT.unpack_from(data, pos)
        if group != 2:
            break
        if vr in _LONG_VRS:
            length, header = _U32.unpack_from(data, pos + 8)[0], 12
        elif vr in _SHORT_VRS:
            header = 8
        else:
            raise Unparsed("file meta not in explicit VR")
        if length == _UNDEFINED:
            raise Unparsed("file meta value of undefined length")
        if element == 0x0010:
            ts_raw = data[pos + header : pos + header + length]
        pos += header + length
    if ts_raw is None or group == 0:  # no TransferSyntaxUID (pydicom guesses), or a command set
        raise Unparsed("no transfer syntax in the file meta")
    ts = ui(ts_raw)
    if not ts or ts.strip("0123456789.") or ts_raw.rstrip(b"\x00 ").strip(b"0123456789."):
        raise Unparsed("transfer syntax UID not plain")
    if ts in (TS.EXPLICIT_BE, TS.DEFLATED_LE):
        raise Unparsed("big endian or deflated")
    implicit = ts == TS.IMPLICIT_LE  # any other syntax: explicit VR little endian, as pydicom
    # The pixel data element's header ends the bytes read (they stop at its value).
    stop = end - (8 if implicit else 12)
    if stop < pos:
        raise Unparsed("the bytes end inside the file meta")
    group, element = _TAG.unpack_from(data, stop)
    if group << 16 | element not in PIXEL_DATA_TAGS:
        raise Unparsed("the bytes do not end at the pixel data")
    if not implicit and data[stop + 4 : stop + 6] not in _LONG_VRS:
        raise Unparsed("pixel data with a short VR")
    if stop > pos:
        # pydicom switches encoding when the first element's VR bytes say otherwise.
        looks_explicit = 0x40 < data[pos + 4] < 0x5B and 0x40 < data[pos + 5] < 0x5B
        if looks_explicit == implicit:
            raise Unparsed("the data set's encoding is not its transfer syntax's")
    walker = Walker(implicit, WANTED)
    return walker, walker.dataset(data, pos, stop)


def _latin1(top: Item) -> bool:
    """Whether text decodes like Latin-1 (the scanner's rule, by the SpecificCharacterSet)."""
    raw = value(top, CHARSET)
    charset = "" if raw is None else _TEXT(raw).strip()
    if "\x00" in charset:
        raise Unparsed("character set with NUL")
    return charset in LATIN1_CHARSETS


def expand_raw(record: HeaderRecord, data: bytes) -> list[HeaderRecord]:
    """One record per frame of ``record``'s file from ``data``, its bytes up to the pixel data's
    value, equal to what the pydicom path gives.

    Raises
    ------
    Unparsed, Unsure
        Anything not read exactly as pydicom reads it: read the file through pydicom.
    """
    walker, top = _data_set(record, data)
    eot = extended_offsets(value(top, EOT), value(top, EOT_LENGTHS))
    if eot is not None:
        record = replace(record, extended_offsets=eot)
    n = record.number_of_frames
    per_frame = walker.sequence(top, PER_FRAME)
    if per_frame is not None:
        if len(per_frame) != n:
            raise Unparsed("frame count differs: the pydicom path says so")
        shared = walker.first(top, SHARED)
        if shared is not None and CHARSET in shared:
            raise Unparsed("character set inside the functional groups")
        reader = _FrameReader(record, shared, walker, _latin1(top))
        return [reader.frame(i, frame) for i, frame in enumerate(per_frame)]
    offsets = value(top, GRID_OFFSETS)
    if offsets and record.image_position and record.image_orientation:  # b"": None to pydicom
        values = ds_values(offsets)
        if None in values or (len(values) != n and n != 1):
            raise Unparsed("blank grid offset or wrong count: the pydicom path says so")
        scaling, units = value(top, DOSE_SCALING), value(top, DOSE_UNITS)
        return grid_frames(record, values, _DS(scaling) if scaling else None,  # type: ignore[arg-type]
                               _TEXT(units) if units is not None else "")  # fmt: skip
    return unplaced_frames(record)


#: Attributes read from each functional group, in the order :meth:`_FrameReader._group` gives them.
_CONVERTED = (TEMPORAL_ID, TRIGGER_TIME, ACQUISITION_NUMBER, ACQUISITION_TIME, INSTANCE_NUMBER, ECHO_NUMBERS,
              ECHO_TIME, B_VALUE)  # fmt: skip
_READ: dict[int, tuple[int, ...]] = {
    PLANE_POSITION: (POSITION,),
    PLANE_ORIENTATION: (ORIENTATION,),
    PIXEL_MEASURES: (SPACING, THICKNESS, BETWEEN),
    TRANSFORMATION: (SLOPE, INTERCEPT),
    FRAME_CONTENT: (TEMPORAL_INDEX, FRAME_ACQUISITION_NUMBER, FRAME_ACQUISITION_DATETIME, DIMENSION_INDEX, STACK_ID),
    CARDIAC: (TRIGGER_DELAY,),
    ECHO: (EFFECTIVE_ECHO_TIME,),
    DIFFUSION: (B_VALUE,),
    UNASSIGNED_PER_FRAME: _CONVERTED,
    UNASSIGNED_SHARED: _CONVERTED,
}
#: SH/LO attributes: decoded by the character set, which no item on their way may set.
_TEXT_TAGS = frozenset({STACK_ID})


class _FrameReader:
    """:func:`multiframe._enhanced_frame` from raw items: the same lookups and fallbacks.

    A lookup of (group, attribute) gives the value bytes from the first item of that group
    sequence, the frame's own when it holds the attribute (even empty, ``b""``), else the
    shared one's; ``None`` when neither does. pydicom reads an empty value as ``None`` for
    numbers (the next candidate of a chain is then taken) and ``""`` for text.

    Frames repeat most groups byte for byte, and the walk gives repeated groups as one object:
    each group's lookups are made once per distinct item (by identity; the items stay alive
    in the per-frame list while frames are read).
    """

    def __init__(self, record: HeaderRecord, shared: Item | None, walker: Walker, latin1: bool) -> None:
        self.record, self.walker, self.latin1 = record, walker, latin1
        self.make = replacer(record)
        self.shared = shared
        self.shared_items = {seq: walker.first(shared, seq) for seq in (*_READ, REAL_WORLD)}
        self.cache: dict[tuple[int, int], Any] = {}

    def _group(self, frame: Item, seq: int) -> tuple[bytes | None, ...]:
        """The lookups of group ``seq``'s attributes (:data:`_READ`) for ``frame``."""
        own = self.walker.first(frame, seq)
        key = (seq, id(own))
        got = self.cache.get(key)
        if got is None:
            common = self.shared_items[seq]
            values: list[bytes | None] = []
            for tag in _READ[seq]:
                item = own if own is not None and tag in own else common
                if item is None or tag not in item:
                    values.append(None)
                    continue
                if tag in _TEXT_TAGS and CHARSET in item:
                    raise Unparsed("character set inside an item")
                values.append(value(item, tag))
            got = self.cache[key] = (own, tuple(values))  # (keeps ``own`` alive: its id is the key)
        return got[1]  # type: ignore[no-any-return]

    def frame(self, index: int, frame: Item) -> HeaderRecord:
        if CHARSET in frame:
            raise Unparsed("character set inside the functional groups")
        group = self._group
        record = self.record
        (position,) = group(frame, PLANE_POSITION)
        (orientation,) = group(frame, PLANE_ORIENTATION)
        spacing, thickness, between = group(frame, PIXEL_MEASURES)
        slope, intercept = group(frame, TRANSFORMATION)
        temporal, number, acquired, dims, stack = group(frame, FRAME_CONTENT)
        (trigger,) = group(frame, CARDIAC)
        (echo,) = group(frame, ECHO)
        (b_value,) = group(frame, DIFFUSION)
        own = group(frame, UNASSIGNED_PER_FRAME)
        common = group(frame, UNASSIGNED_SHARED)

        def unassigned(k: int, is_text: bool = False) -> bytes | None:
            raw = own[k]
            return raw if raw is not None and (is_text or raw) else common[k]

        iop = _FLOATS6(orientation) if orientation is not None else None
        pixel_spacing = _SPACING(spacing) if spacing is not None else None
        slope_value = _SCALE(slope) if slope else None
        intercept_value = _SCALE(intercept) if intercept else None
        temporal_id: int | None
        acquisition_number: int | None
        if temporal:
            temporal_id = _first_number(temporal, 4, "<I")
        else:
            raw = unassigned(0)
            temporal_id = _IS(raw) if raw else None
        if trigger:
            trigger_time = _FD(trigger)
        else:
            raw = unassigned(1)
            trigger_time = _DS(raw) if raw else record.trigger_time
        if number:
            acquisition_number = _first_number(number, 2, "<H")
        else:
            raw = unassigned(2)
            acquisition_number = _IS(raw) if raw else None
        if acquired is not None:
            acquisition_time = _TEXT(acquired)
        else:
            raw = unassigned(3, is_text=True)
            acquisition_time = _TEXT(raw) if raw is not None else record.acquisition_time
        raw = unassigned(4)
        instance_number = _IS(raw) if raw else record.instance_number
        raw = unassigned(5)
        echo_number = _IS(raw) if raw else None
        if echo:
            echo_time = _FD(echo)
        else:
            raw = unassigned(6)
            echo_time = _DS(raw) if raw else None
        if b_value:
            b = _FD(b_value)
        else:
            raw = unassigned(7)
            b = _FD(raw) if raw else None
        units = self._units(frame)
        return self.make(  # type: ignore[no-any-return]
            frame=index,
            image_position=_FLOATS3(position) if position is not None else None,
            image_orientation=iop if iop is not None else record.image_orientation,
            pixel_spacing=pixel_spacing if pixel_spacing is not None else record.pixel_spacing,
            slice_thickness=(_DS(thickness) if thickness else None) or record.slice_thickness,
            spacing_between_slices=(_DS(between) if between else None) or record.spacing_between_slices,
            rescale_slope=slope_value if slope_value is not None else record.rescale_slope,
            rescale_intercept=intercept_value if intercept_value is not None else record.rescale_intercept,
            temporal_position_identifier=temporal_id,
            trigger_time=trigger_time,
            acquisition_number=acquisition_number,
            acquisition_time=acquisition_time,
            instance_number=instance_number,
            echo_number=echo_number,
            echo_time=echo_time,
            diffusion_b_value=b,
            diffusion_gradient=self._gradient(frame),
            dimension_index=_unsigned_all(dims),
            stack_id=_LO(stack, self.latin1) if stack is not None else "",
            units=units if units is not None else record.units,
        )

    def _gradient(self, frame: Item) -> tuple[float, float, float] | None:
        """DiffusionGradientOrientation of the first MR Diffusion item (the frame's, then the
        shared) whose gradient direction item holds it."""
        own = self.walker.first(frame, DIFFUSION)
        key = (GRADIENT, id(own))
        got = self.cache.get(key)
        if got is None:
            gradient = None
            for diffusion in (own, self.shared_items[DIFFUSION]):
                item = self.walker.first(diffusion, GRADIENT_SEQUENCE)
                if item is not None and GRADIENT in item:
                    gradient = _fd3(value(item, GRADIENT))
                    break
            got = self.cache[key] = (own, gradient)
        return got[1]  # type: ignore[no-any-return]

    def _units(self, frame: Item) -> tuple[str, str, float | None, float | None] | None:
        """:func:`multiframe._real_world_units`: the first RealWorldValueMapping item's (the
        frame's, then the shared) unit code, meaning, slope and intercept."""
        own = self.walker.first(frame, REAL_WORLD)
        key = (REAL_WORLD, id(own))
        got = self.cache.get(key)
        if got is None:
            mapping = own if own is not None else self.shared_items[REAL_WORLD]
            got = self.cache[key] = (own, _mapping_units(mapping, self.walker, self.latin1))
        return got[1]  # type: ignore[no-any-return]


def _mapping_units(mapping: Item | None, walker: Walker,
                   latin1: bool) -> tuple[str, str, float | None, float | None] | None:  # fmt: skip
    if mapping is None:
        return None
    code = walker.first(mapping, UNITS_CODE)
    if CHARSET in mapping or (code is not None and CHARSET in code):
        raise Unparsed("character set inside an item")
    code_value = value(code, CODE_VALUE) if code is not None else None
    meaning = value(code, CODE_MEANING) if code is not None else None
    slope, intercept = value(mapping, REAL_WORLD_SLOPE), value(mapping, REAL_WORLD_INTERCEPT)
    return (_LO(code_value, latin1) if code_value is not None else "",
            _LO(meaning, latin1) if meaning is not None else "",
            _FD(slope) if slope else None, _FD(intercept) if intercept else None)  # fmt: skip
