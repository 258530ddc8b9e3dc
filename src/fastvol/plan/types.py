"""The plan's value objects: frozen, plain and picklable, so every process runs the same plan."""

from __future__ import annotations

from dataclasses import field
from typing import TYPE_CHECKING, Any

import numpy as np

from .._frozen import frozen
from ..colour import SUBSAMPLED
from ..dicom import TS
from ..pixels import stored_dtype
from ..report import GeometryReport

if TYPE_CHECKING:
    from ..geometry import StackGeometry
    from ..sources import ByteSource

__all__ = [
    "MAX_FRAME_PIXELS",
    "MAX_OUTPUT_BYTES",
    "Duplicate",
    "FrameSource",
    "LoadPlan",
    "Mosaic",
    "PixelFormat",
    "Resample",
    "VolumeGeometry",
]

#: Largest Rows x Columns x samples accepted for one frame (a 6 KB file can declare 4 GiB).
MAX_FRAME_PIXELS = 1 << 28
#: Largest output accepted, in bytes, before any allocation.
MAX_OUTPUT_BYTES = 1 << 36


@frozen(slots=True)
class PixelFormat:
    """Stored pixel layout shared by every frame of a series."""

    rows: int
    columns: int
    samples_per_pixel: int
    bits_allocated: int
    bits_stored: int
    pixel_representation: int
    photometric_interpretation: str
    #: ``int`` (PixelData), ``float`` or ``double`` (Float / Double Float Pixel Data).
    kind: str = "int"
    #: PlanarConfiguration of colour data: 0 ``RGBRGB...``, 1 ``RR..GG..BB..``.
    planar_configuration: int = 0

    @property
    def is_colour(self) -> bool:
        """Three samples per pixel, or palette colour: the output gets a trailing RGB axis."""
        return self.samples_per_pixel > 1 or self.is_palette

    @property
    def is_palette(self) -> bool:
        """PALETTE COLOR: stored values are indices into the series' palette."""
        return self.photometric_interpretation == "PALETTE COLOR"

    @property
    def stored_dtype(self) -> np.dtype:
        """Native dtype of one stored sample (``int16`` for signed 16-bit, ``uint8`` for 1 bit, ...)."""
        return stored_dtype(self.bits_allocated, self.pixel_representation, self.kind)

    @property
    def frame_samples(self) -> int:
        """Stored samples of one uncompressed frame (YBR_FULL_422: two per pixel)."""
        per_pixel = 2 if self.photometric_interpretation in SUBSAMPLED else self.samples_per_pixel
        return self.rows * self.columns * per_pixel

    @property
    def frame_bytes(self) -> int:
        """Bytes of one uncompressed frame (1-bit frames: the bytes one frame can touch)."""
        return (self.frame_samples * self.bits_allocated + 7) // 8

    def bytes_for(self, n_frames: int) -> int:
        """Bytes of ``n_frames`` uncompressed frames (1-bit frames are packed without padding)."""
        return (n_frames * self.frame_samples * self.bits_allocated + 7) // 8

    def stored_range(self) -> tuple[int, int]:
        """Smallest and largest value a stored sample can hold after masking to BitsStored."""
        if self.pixel_representation:
            return -(1 << (self.bits_stored - 1)), (1 << (self.bits_stored - 1)) - 1
        return 0, (1 << self.bits_stored) - 1


@frozen(slots=True, compiled_init=True)  # built once per frame
class FrameSource:
    """One frame to read: where its bytes are and which output slot it fills.

    ``slot`` indexes the output flattened over its leading axes: ``volume * n_slices + slice``.
    ``pixel_offset`` is the PixelData value offset (uncompressed: the frame starts at
    ``pixel_offset + frame * frame_bytes``); ``-1`` with ``pixel_length == -2`` means pydicom must
    read the pixels (deflated files).
    """

    path: str
    slot: int
    transfer_syntax: str
    source: ByteSource = field(compare=False, repr=False)
    pixel_offset: int
    pixel_length: int
    file_size: int
    frame: int = 0
    n_frames: int = 1
    slope: float = 1.0
    intercept: float = 0.0
    extended_offsets: tuple[tuple[int, ...], tuple[int, ...]] | None = None


@frozen(slots=True)
class Duplicate:
    """A frame read (``kept``) and a copy dropped from the load (``copy``): same
    SOPInstanceUID and frame, same headers; a load compares their stored values before filling
    (:mod:`fastvol.plan.duplicates`). ``copy.slot`` is -1: it fills nothing."""

    kept: FrameSource
    copy: FrameSource
    sop_instance_uid: str


@frozen(slots=True)
class Resample:
    """Resampling applied after reading, onto the regular orthogonal output grid.

    Attributes
    ----------
    slice_index
        Fractional output-grid index of each acquired slice along the normal (irregular spacing);
        empty when slices are already on the grid.
    shift
        ``(rows, columns)`` in pixels per unit of slice index that undoes the shear of a tilted
        stack: output pixel ``(i, j)`` of slice ``k`` reads acquired slice ``k`` at
        ``(i + index[k] * shift[0], j + index[k] * shift[1])``, i.e. minus the lean of the
        step off the normal in pixels; ``(0, 0)`` when not tilted.
    n_slices
        Slices of the output grid.
    """

    slice_index: tuple[float, ...]
    shift: tuple[float, float]
    n_slices: int


@frozen(slots=True)
class Mosaic:
    """Cut each read mosaic image into ``info.n_images`` tiles, then reorder them by ``order``."""

    info: Any  # fastvol.mosaic.MosaicInfo (plain picklable values)
    order: tuple[int, ...]


@frozen(eq=False)
class VolumeGeometry:
    """The grid one volume fills, from headers alone and without pixels.

    Like highdicom's ``VolumeGeometry``: a shape and an affine, plus what the headers said about
    the acquired slices, so the report can be written before anything is read.

    Attributes
    ----------
    shape
        ``(slice, row, column)`` of one output volume.
    affine
        4x4 LPS affine of ``(slice, row, column)`` indices.
    orientation
        ImageOrientationPatient (mean over the files).
    kind
        ``regular``, ``gaps``, ``irregular`` or ``single`` (as acquired, before any policy).
    distances
        Acquired slice positions along the stacking axis ``-normal`` (mm), in array order
        (ascending).
    steps
        Steps between consecutive distinct positions (mm).
    missing
        Grid indices with no acquired slice (kind ``gaps``).
    tilt_deg, residual_mm
        Lean of the stack off the normal, and how far positions lie off one line.
    """

    shape: tuple[int, int, int]
    affine: np.ndarray
    orientation: tuple[float, ...]
    kind: str
    distances: tuple[float, ...]
    steps: tuple[float, ...]
    missing: tuple[int, ...] = ()
    tilt_deg: float = 0.0
    residual_mm: float = 0.0

    @classmethod
    def from_stack(cls, stack: StackGeometry, orientation: np.ndarray, rows: int, columns: int,
                   *, affine: np.ndarray | None = None) -> VolumeGeometry:  # fmt: skip
        """The geometry of an analysed stack of ``rows x columns`` slices."""
        steps = stack.steps if stack.steps.size else np.array([stack.step])
        return cls(
            shape=(int(stack.n_slots), int(rows), int(columns)),
            affine=stack.affine if affine is None else affine,
            orientation=tuple(float(v) for v in orientation),
            kind=stack.kind,
            distances=tuple(float(d) for d in stack.distances),
            steps=tuple(float(s) for s in steps),
            missing=tuple(int(m) for m in stack.missing) if stack.kind == "gaps" else (),
            tilt_deg=float(stack.tilt_deg),
            residual_mm=float(stack.residual),
        )

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Distance between neighbouring voxel centres along ``(slice, row, column)`` (mm)."""
        return tuple(float(v) for v in np.linalg.norm(self.affine[:3, :3], axis=0))  # type: ignore[return-value]


@frozen(eq=False)
class LoadPlan:
    """Everything a load does, decided from headers: frozen, plain, picklable."""

    shape: tuple[int, ...]
    read_shape: tuple[int, ...]
    dtype: str
    pixel: PixelFormat
    sources: tuple[FrameSource, ...]
    fill_value: float
    resample: Resample | None
    affine: np.ndarray
    report: GeometryReport
    meta: dict[str, Any] = field(default_factory=dict)
    mosaic: Mosaic | None = None
    #: PALETTE COLOR: ``(2**BitsStored, 3)`` RGB table indexed by stored value.
    palette: np.ndarray | None = None
    #: Copies dropped from the load whose pixels must equal those of a frame read.
    duplicates: tuple[Duplicate, ...] = ()

    @property
    def all_uncompressed(self) -> bool:
        """True when every frame can be read straight from its offset."""
        return all(s.transfer_syntax in TS.UNCOMPRESSED and s.pixel_offset >= 0 for s in self.sources)
