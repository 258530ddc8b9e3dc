"""fastvol: DICOM series to volumes, one numpy array plus a correct affine, fast.

>>> import fastvol
>>> vol = fastvol.load("path/to/series")        # doctest: +SKIP
>>> vol.array.shape, vol.affine                  # (slice, row, column), LPS mm  # doctest: +SKIP

The data's path, one module per stage: :mod:`~fastvol.sources` (bytes) ->
:mod:`~fastvol.headers` (header records) -> :mod:`~fastvol.group` (series) ->
:mod:`~fastvol.geometry` -> :mod:`~fastvol.plan` -> :mod:`~fastvol.decode` /
:mod:`~fastvol.stack` -> :class:`Volume`; :mod:`~fastvol.api` strings them together, and
:class:`Options` says how.

Importing fastvol is cheap: numpy, pydicom, numba and the codecs load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import (
    AlignmentError,
    BadOrientationError,
    CorruptFileError,
    DecodeError,
    DuplicateInstanceError,
    FastvolError,
    FastvolWarning,
    GeometryError,
    InputError,
    IrregularSpacingError,
    MissingCodecError,
    MissingDependencyError,
    MissingSlicesError,
    MixedGeometryError,
    NonCollinearError,
    NotDicomError,
    OutputError,
    OverlapError,
    PathNotFoundError,
    RepeatedPositionsError,
    SeriesSelectionError,
    UnreadableError,
    UnsupportedError,
)

if TYPE_CHECKING:
    from .api import ScanResult, load, load_series, scan
    from .cohort import convert
    from .group import Series
    from .options import Options, Tolerances
    from .report import GeometryReport
    from .segmentation import load_segmentation
    from .volume import Volume, from_nifti, from_zarr

__version__ = "0.1.0"

__all__ = [
    "AlignmentError",
    "BadOrientationError",
    "CorruptFileError",
    "DecodeError",
    "DuplicateInstanceError",
    "FastvolError",
    "FastvolWarning",
    "GeometryError",
    "GeometryReport",
    "InputError",
    "IrregularSpacingError",
    "MissingCodecError",
    "MissingDependencyError",
    "MissingSlicesError",
    "MixedGeometryError",
    "NonCollinearError",
    "NotDicomError",
    "OutputError",
    "OverlapError",
    "Options",
    "PathNotFoundError",
    "RepeatedPositionsError",
    "ScanResult",
    "Series",
    "SeriesSelectionError",
    "Tolerances",
    "UnreadableError",
    "UnsupportedError",
    "Volume",
    "__version__",
    "convert",
    "from_nifti",
    "from_zarr",
    "load",
    "load_segmentation",
    "load_series",
    "scan",
]

_LAZY = {
    "convert": ("cohort", "convert"),
    "from_nifti": ("volume", "from_nifti"),
    "from_zarr": ("volume", "from_zarr"),
    "load": ("api", "load"),
    "load_series": ("api", "load_series"),
    "load_segmentation": ("segmentation", "load_segmentation"),
    "Options": ("options", "Options"),
    "Tolerances": ("options", "Tolerances"),
    "scan": ("api", "scan"),
    "ScanResult": ("api", "ScanResult"),
    "Series": ("group", "Series"),
    "GeometryReport": ("report", "GeometryReport"),
    "Volume": ("volume", "Volume"),
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(f".{module}", __name__), attr)
        globals()[name] = value
        return value
    if name in ("idc", "buffers"):  # fastvol.idc.load(uid), fastvol.buffers.release(): no import first
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'fastvol' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
