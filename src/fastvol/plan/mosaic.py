"""Mosaic: the layout of a Siemens mosaic series, where each file holds one whole volume.

Another layout provider: the ordinary layout still orders the files (one per volume), but the
slices of a volume are the tiles of one image, placed by :func:`fastvol.mosaic.mosaic_geometry`
from the mosaic's corner position and its CSA description. The plan reads whole mosaics; the
stack step cuts them into tiles.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import geometry as geo
from .._frozen import frozen
from ..dicom import HeaderRecord
from ..errors import UnsupportedError
from .decisions import Decision
from .layout import Layout
from .types import Mosaic, PixelFormat, VolumeGeometry

__all__ = ["MosaicLayout", "detect", "mosaic_layout"]


@frozen(eq=False)
class MosaicLayout:
    """The tiles of each mosaic: how to cut them, the volume they form, and the decision."""

    mosaic: Mosaic
    geometry: VolumeGeometry
    decision: Decision


def detect(records: Sequence[HeaderRecord], name: str) -> Any:
    """The tile grid (``MosaicInfo``) of a mosaic series, ``None`` for any other series.

    Raises
    ------
    UnsupportedError
        Some files are mosaics and some not, or the mosaic has no usable CSA description.
    """
    one_per_type = {r.image_type: r for r in records}.values()  # ImageType values repeat
    if not any(r.is_mosaic for r in one_per_type):
        return None
    mosaic = [r for r in records if r.is_mosaic]
    info = mosaic[0].mosaic  # read from the CSA header in the header pass: planning reads no file
    if info is None or len(mosaic) != len(records):
        raise UnsupportedError(
            f"series {name}: ImageType MOSAIC on {len(mosaic)} of {len(records)} files, but no "
            f"usable mosaic description (CSA NumberOfImagesInMosaic); cannot cut the tiles",
            files=[r.path for r in mosaic[:8]],
        )  # fmt: skip
    return info


def mosaic_layout(info: Any, layout: Layout, fmt: PixelFormat) -> MosaicLayout:
    """The volume the tiles of each mosaic form, from the first volume's file."""
    from ..mosaic import mosaic_geometry  # here: it brings the CSA parser, for mosaics only

    rec = layout.record(0, 0)
    assert rec.image_position is not None  # the layout placed every record
    orientation, spacing = layout.place.orientation, layout.place.pixel_spacing
    order, affine = mosaic_geometry(
        rec.image_position, orientation, spacing, fmt.rows, fmt.columns, info,
        rec.spacing_between_slices, slice_thickness=rec.slice_thickness,
    )  # fmt: skip
    n_tiles = info.n_images
    index = np.c_[np.arange(n_tiles), np.zeros((n_tiles, 2)), np.ones(n_tiles)]
    tiles = geo.analyze_stack((affine @ index.T).T[:, :3], orientation, spacing)
    geometry = VolumeGeometry.from_stack(tiles, orientation, info.tile_rows, info.tile_cols,
                                         affine=affine)  # fmt: skip
    geometry = dataclasses.replace(geometry, shape=(n_tiles, info.tile_rows, info.tile_cols))
    decision = Decision(
        "mosaic", n_tiles=n_tiles, tile_rows=info.tile_rows, tile_cols=info.tile_cols,
        rows=fmt.rows, columns=fmt.columns, source=info.n_images_source, ascending=info.ascending,
    )  # fmt: skip
    return MosaicLayout(mosaic=Mosaic(info=info, order=tuple(int(i) for i in order)),
                        geometry=geometry, decision=decision)  # fmt: skip
