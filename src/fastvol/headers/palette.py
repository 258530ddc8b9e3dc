"""Palette colour: the lookup table of a PALETTE COLOR file, as one ``(values, 3)`` table.

The table maps every stored value a file can hold (``0 .. 2**BitsStored - 1``) to its RGB
colour, made by pydicom's ``apply_color_lut`` (descriptor, first mapped value, segmented tables
and all), so a load indexes it once per frame and gives exactly what pydicom gives.
"""

from __future__ import annotations

import io

import numpy as np

from ..dicom import HeaderRecord
from ..errors import CorruptFileError, FastvolError
from ..sources import ByteSource, LocalFile

__all__ = ["read_palette"]


def read_palette(record: HeaderRecord) -> np.ndarray:
    """The ``(2**BitsStored, 3)`` RGB table of the file's palette (uint8 or uint16 entries).

    Raises
    ------
    CorruptFileError
        The palette is missing or unreadable.
    """
    import pydicom
    from pydicom.pixels.processing import apply_color_lut

    source: ByteSource = record.source if record.source is not None else LocalFile(record.path)
    try:
        size = record.pixel_offset if record.pixel_offset > 0 else source.size()
        with io.BytesIO(source.read(0, size)) as fp:
            ds = pydicom.dcmread(fp, stop_before_pixels=True, force=True)
        bits = min(record.bits_stored or record.bits_allocated, 16)
        values = np.arange(1 << bits, dtype=np.uint16 if bits > 8 else np.uint8)
        return np.ascontiguousarray(apply_color_lut(values, ds))
    except FastvolError:
        raise
    except Exception as exc:
        raise CorruptFileError(f"{record.path}: PALETTE COLOR without a readable palette "
                               f"({type(exc).__name__}: {exc})", files=[record.path]) from exc  # fmt: skip
    finally:
        source.close()
