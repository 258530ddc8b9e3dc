"""DICOM vocabulary, a leaf: transfer syntaxes, tags, and the header record with its field table.

:class:`HeaderRecord` is declared once here, and its declaration *is* the table of header fields:
each field read from the file carries its tag, dictionary VR, DICOM keyword and converter kind in
its metadata (:func:`header_field`). Everything else is derived from it: the scanner's wanted
tags and expected VRs, and the two converters (pydicom Dataset -> record, raw bytes -> record).
Records are always built by keyword, through :meth:`HeaderRecord.build`, which applies the few
rules that tie fields together (BitsStored defaults to BitsAllocated, ...).

This module imports nothing of fastvol but :mod:`fastvol._frozen` (how its records are declared),
and no third-party package.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field, fields
from typing import TYPE_CHECKING, Any

from ._frozen import frozen

if TYPE_CHECKING:
    from .sources import ByteSource

__all__ = [
    "HEADER_FIELDS",
    "NOT_ADDRESSABLE",
    "PER_FRAME_FUNCTIONAL_GROUPS",
    "PIXEL_DATA_TAGS",
    "PIXEL_KINDS",
    "TS",
    "UNDEFINED_LENGTH",
    "HeaderField",
    "HeaderRecord",
    "header_field",
]


class TS:
    """Transfer syntax UIDs fastvol knows by name."""

    IMPLICIT_LE = "1.2.840.10008.1.2"
    EXPLICIT_LE = "1.2.840.10008.1.2.1"
    DEFLATED_LE = "1.2.840.10008.1.2.1.99"
    EXPLICIT_BE = "1.2.840.10008.1.2.2"
    UNCOMPRESSED = frozenset({IMPLICIT_LE, EXPLICIT_LE, EXPLICIT_BE})


#: Value length of sequences, items and encapsulated pixel data of undefined length.
UNDEFINED_LENGTH = 0xFFFFFFFF
#: ``pixel_length`` of a file that has pixel data whose bytes are not addressable in the file
#: (deflated data sets): the pixels must be read through pydicom.
NOT_ADDRESSABLE = -2
PER_FRAME_FUNCTIONAL_GROUPS = 0x52009230
#: PixelData, FloatPixelData, DoubleFloatPixelData.
PIXEL_DATA_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)
#: Pixel data element number -> ``HeaderRecord.pixel_kind``: integer samples (PixelData), or
#: IEEE floats of 32 bits (FloatPixelData, parametric maps) or 64 bits (DoubleFloatPixelData).
PIXEL_KINDS = {0x0010: "int", 0x0008: "float", 0x0009: "double"}


@frozen(slots=True)
class HeaderField:
    """One header attribute read by the header pass.

    Attributes
    ----------
    name
        Attribute of :class:`HeaderRecord`.
    keyword, tag, vr
        DICOM keyword, tag and dictionary VR.
    kind
        Converter: ``text`` (CS/TM/...), ``uid``, ``lo`` (text that depends on the character
        set), ``int`` (IS, first value), ``us`` (US, first value), ``float`` (DS, first value),
        ``scale`` (DS, one value, NaN and inf kept so the plan can refuse them; a value
        present but not one number, such as text or several values, is NaN), ``spacing``
        (DS, two values; present but not two numbers is ``(inf, inf)``, refused by the plan),
        ``floats2``/``floats3``/``floats6`` (DS with exactly that many values), ``fd`` (FD,
        first value), ``image_type`` (CS, all values).
    default
        Value when the attribute is absent or unusable.
    """

    name: str
    keyword: str
    tag: int
    vr: str
    kind: str
    default: Any


def header_field(keyword: str, tag: int, vr: str, kind: str, default: Any = None) -> Any:
    """Declare a :class:`HeaderRecord` attribute read from the file (its row of the table)."""
    return field(default=default, metadata={"header": (keyword, tag, vr, kind)})


#: What :attr:`HeaderRecord.needs_expansion` reads besides ``has_pixels`` (the header pass
#: tests one record per combination of them).
EXPANSION_FIELDS = ("number_of_frames", "is_enhanced", "modality")


@frozen(slots=True)  # the header scanner builds its records in C (fastvol.headers.scan)
class HeaderRecord:
    """What fastvol knows about one DICOM file after the header pass.

    Strings are stripped of DICOM padding (trailing spaces and NULs); numbers missing or
    unparseable in the file are ``None``. Positions and spacings are in mm, patient LPS.

    Attributes
    ----------
    path
        Name of the file (its path as given, or its URL), for messages and ``meta["files"]``.
    file_size
        Size of the file in bytes when it was read, to detect truncation before reading pixels.
    transfer_syntax
        TransferSyntaxUID from the file meta, or the encoding pydicom inferred for a raw data set.
    pixel_offset
        Byte offset in the file of the first byte of the PixelData *value* (after the element's
        tag, VR and length); ``-1`` when the file has no PixelData or its bytes are not addressable
        in the file (deflated data sets).
    pixel_length
        Declared length of the PixelData value in bytes; ``0xFFFFFFFF`` for encapsulated
        (compressed) pixel data of undefined length; ``-1`` when there is no PixelData;
        ``-2`` when the pixel bytes are not addressable in the file (deflated).
    pixel_kind
        Which pixel data element holds the pixels: ``int`` (PixelData, also when there is none),
        ``float`` (FloatPixelData, float32 samples) or ``double`` (DoubleFloatPixelData, float64).
    is_enhanced
        The data set has a PerFrameFunctionalGroupsSequence.
    source
        The :class:`~fastvol.sources.ByteSource` the file is read through (not compared).
    frame, dimension_index, stack_id, diffusion_gradient, extended_offsets
        Per-frame facts, set when a multi-frame file is expanded into one record per frame.
    mosaic
        :class:`~fastvol.headers.csa.MosaicInfo` of a Siemens mosaic (from its CSA header, read
        in the header pass), else ``None``.
    extra
        ``(keyword, value)`` of the attributes asked for with ``scan(..., extra_tags=...)``.
    """

    path: str = ""
    file_size: int = 0
    transfer_syntax: str = ""
    sop_class_uid: str = header_field("SOPClassUID", 0x00080016, "UI", "uid", "")
    sop_instance_uid: str = header_field("SOPInstanceUID", 0x00080018, "UI", "uid", "")
    study_instance_uid: str = header_field("StudyInstanceUID", 0x0020000D, "UI", "uid", "")
    series_instance_uid: str = header_field("SeriesInstanceUID", 0x0020000E, "UI", "uid", "")
    frame_of_reference_uid: str = header_field("FrameOfReferenceUID", 0x00200052, "UI", "uid", "")
    modality: str = header_field("Modality", 0x00080060, "CS", "text", "")
    manufacturer: str = header_field("Manufacturer", 0x00080070, "LO", "lo", "")
    series_number: int | None = header_field("SeriesNumber", 0x00200011, "IS", "int")
    series_description: str = header_field("SeriesDescription", 0x0008103E, "LO", "lo", "")
    image_type: tuple[str, ...] = header_field("ImageType", 0x00080008, "CS", "image_type", ())
    instance_number: int | None = header_field("InstanceNumber", 0x00200013, "IS", "int")
    rows: int = header_field("Rows", 0x00280010, "US", "us", 0)
    columns: int = header_field("Columns", 0x00280011, "US", "us", 0)
    samples_per_pixel: int = header_field("SamplesPerPixel", 0x00280002, "US", "us", 1)
    photometric_interpretation: str = header_field(
        "PhotometricInterpretation", 0x00280004, "CS", "text", ""
    )
    bits_allocated: int = header_field("BitsAllocated", 0x00280100, "US", "us", 0)
    bits_stored: int = header_field("BitsStored", 0x00280101, "US", "us", 0)
    high_bit: int = header_field("HighBit", 0x00280102, "US", "us", 0)
    pixel_representation: int = header_field("PixelRepresentation", 0x00280103, "US", "us", 0)
    planar_configuration: int = header_field("PlanarConfiguration", 0x00280006, "US", "us", 0)
    number_of_frames: int = header_field("NumberOfFrames", 0x00280008, "IS", "int", 1)
    image_position: tuple[float, float, float] | None = header_field(
        "ImagePositionPatient", 0x00200032, "DS", "floats3"
    )
    image_orientation: tuple[float, float, float, float, float, float] | None = header_field(
        "ImageOrientationPatient", 0x00200037, "DS", "floats6"
    )
    pixel_spacing: tuple[float, float] | None = header_field("PixelSpacing", 0x00280030, "DS", "spacing")
    slice_thickness: float | None = header_field("SliceThickness", 0x00180050, "DS", "float")
    spacing_between_slices: float | None = header_field(
        "SpacingBetweenSlices", 0x00180088, "DS", "float"
    )
    gantry_tilt: float | None = header_field("GantryDetectorTilt", 0x00181120, "DS", "float")
    rescale_slope: float | None = header_field("RescaleSlope", 0x00281053, "DS", "scale")
    rescale_intercept: float | None = header_field("RescaleIntercept", 0x00281052, "DS", "scale")
    temporal_position_identifier: int | None = header_field(
        "TemporalPositionIdentifier", 0x00200100, "IS", "int"
    )
    trigger_time: float | None = header_field("TriggerTime", 0x00181060, "DS", "float")
    acquisition_number: int | None = header_field("AcquisitionNumber", 0x00200012, "IS", "int")
    acquisition_time: str = header_field("AcquisitionTime", 0x00080032, "TM", "text", "")
    echo_number: int | None = header_field("EchoNumbers", 0x00180086, "IS", "int")
    echo_time: float | None = header_field("EchoTime", 0x00180081, "DS", "float")
    diffusion_b_value: float | None = header_field("DiffusionBValue", 0x00189087, "FD", "fd")
    is_enhanced: bool = False
    pixel_offset: int = -1
    pixel_length: int = -1
    pixel_kind: str = "int"
    # Per-frame facts (multi-frame files expanded into one record per frame).
    frame: int = 0
    dimension_index: tuple[int, ...] = ()
    stack_id: str = ""
    diffusion_gradient: tuple[float, float, float] | None = None
    #: Extended Offset Table (offsets, lengths) of an encapsulated multi-frame file, if it has one.
    extended_offsets: tuple[tuple[int, ...], tuple[int, ...]] | None = None
    mosaic: Any = None
    #: Units of the values: the RealWorldValueMapping's (UCUM code, meaning, slope, intercept)
    #: of a parametric map, or ``(DoseUnits, "", None, None)`` of an RT dose; set when a
    #: multi-frame file is expanded.
    units: tuple[str, str, float | None, float | None] | None = None
    extra: tuple[tuple[str, Any], ...] = ()
    source: ByteSource | None = field(default=None, compare=False, repr=False)

    @classmethod
    def build(cls, values: Mapping[str, Any]) -> HeaderRecord:
        """A record from converted field values (absent ones take their defaults).

        Applies the rules that tie fields together, identically for both header readers:
        BitsStored defaults to BitsAllocated, HighBit to BitsStored - 1, SamplesPerPixel to 1,
        NumberOfFrames to at least 1, and the SOP class falls back to MediaStorageSOPClassUID
        (passed as ``media_storage_sop_class_uid``).
        """
        return cls(**cls.completed(values))

    @staticmethod
    def completed(values: Mapping[str, Any]) -> dict[str, Any]:
        """The keyword arguments :meth:`build` passes to the class: ``values`` with its rules
        applied (the header scanner constructs its records from them in C)."""
        # Written for speed: the header scanner builds every record through here.
        kw = dict(values)
        media_sop_class = kw.pop("media_storage_sop_class_uid", None)
        get = kw.get
        bits_allocated = get("bits_allocated") or 0
        bits_stored = get("bits_stored")
        if bits_stored is None:
            bits_stored = bits_allocated
        high_bit = get("high_bit")
        kw.update(
            bits_allocated=bits_allocated,
            bits_stored=bits_stored,
            high_bit=bits_stored - 1 if high_bit is None else high_bit,
            rows=get("rows") or 0,
            columns=get("columns") or 0,
            pixel_representation=get("pixel_representation") or 0,
            planar_configuration=get("planar_configuration") or 0,
            samples_per_pixel=get("samples_per_pixel") or 1,
            number_of_frames=max(get("number_of_frames") or 1, 1),
        )
        if not get("sop_class_uid"):
            kw["sop_class_uid"] = media_sop_class or ""
        for name, default in _OTHER_DEFAULTS:  # text fields are "" rather than None
            if get(name, default) is None:
                kw[name] = default
        return kw

    @property
    def has_pixels(self) -> bool:
        """True when the file has a PixelData element."""
        return self.pixel_length != -1

    @property
    def is_encapsulated(self) -> bool:
        """True when pixel data is encapsulated (compressed frames in fragments)."""
        return self.pixel_length == UNDEFINED_LENGTH

    @property
    def is_localizer(self) -> bool:
        """True when ImageType marks a localizer/scout image."""
        return any(v.upper() in ("LOCALIZER", "SCOUT") for v in self.image_type)

    @property
    def needs_expansion(self) -> bool:
        """True for files holding several frames (or enhanced single-frame files): their frames
        become records of their own (:func:`fastvol.headers.multiframe.expand_frames`)."""
        # RT Dose also for one frame: its values need DoseGridScaling, read with the grid offsets.
        return self.has_pixels and (self.number_of_frames > 1 or self.is_enhanced or self.modality == "RTDOSE")

    @property
    def is_mosaic(self) -> bool:
        """True when ImageType marks a Siemens mosaic."""
        return any(v.upper() == "MOSAIC" for v in self.image_type)

    def as_dict(self) -> dict[str, Any]:
        """Plain dict of the compared fields (for reports and equality diagnostics)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.compare}


#: The table of header fields, in declaration order, derived from :class:`HeaderRecord`.
HEADER_FIELDS: tuple[HeaderField, ...] = tuple(
    HeaderField(f.name, keyword, tag, vr, kind, f.default)
    for f in fields(HeaderRecord)
    if "header" in f.metadata
    for keyword, tag, vr, kind in [f.metadata["header"]]
)
#: (name, default) of the header fields whose default is not ``None``, but for those
#: :meth:`HeaderRecord.build` sets itself.
_OTHER_DEFAULTS: tuple[tuple[str, Any], ...] = tuple(
    (f.name, f.default)
    for f in HEADER_FIELDS
    if f.default is not None
    and f.name not in {"bits_allocated", "bits_stored", "high_bit", "rows", "columns",
                       "pixel_representation", "planar_configuration", "samples_per_pixel",
                       "number_of_frames", "sop_class_uid"}  # fmt: skip
)
