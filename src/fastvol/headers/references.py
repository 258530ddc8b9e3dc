"""What a derived object refers to: the series a Segmentation (or other derived object) was made
from, from its ReferencedSeriesSequence, read with pydicom up to the pixel data."""

from __future__ import annotations

import io

from ..dicom import HeaderRecord
from ..errors import CorruptFileError, FastvolError
from ..sources import ByteSource, LocalFile
from .convert import _text

__all__ = ["SEG_SOP_CLASS", "referenced_series_uids"]

#: Segmentation Storage.
SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"
#: Label Map Segmentation Storage.
LABEL_MAP_SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.7"
#: Segmentations: their frames are masks per segment, not one image (load_segmentation reads them).
SEG_SOP_CLASSES = (SEG_SOP_CLASS, LABEL_MAP_SEG_SOP_CLASS)


def referenced_series_uids(record: HeaderRecord) -> tuple[str, ...]:
    """SeriesInstanceUIDs the file's ReferencedSeriesSequence names (empty when it has none).

    Raises
    ------
    CorruptFileError
        The header cannot be read again.
    """
    import pydicom

    source: ByteSource = record.source if record.source is not None else LocalFile(record.path)
    try:
        size = record.pixel_offset if record.pixel_offset > 0 else source.size()
        with io.BytesIO(source.read(0, size)) as fp:
            ds = pydicom.dcmread(fp, stop_before_pixels=True, force=True,
                                 specific_tags=["ReferencedSeriesSequence"])  # fmt: skip
        items = ds.get("ReferencedSeriesSequence") or ()
        return tuple(uid for uid in (_text(item.get("SeriesInstanceUID")) for item in items) if uid)
    except FastvolError:
        raise
    except Exception as exc:
        raise CorruptFileError(f"{record.path}: cannot read its ReferencedSeriesSequence ({exc})",
                               files=[record.path]) from exc  # fmt: skip
    finally:
        source.close()
