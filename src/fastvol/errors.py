"""Every error and warning fastvol raises.

::

    FastvolError
    ├── InputError(ValueError)              bad input that is not DICOM geometry
    │   ├── PathNotFoundError(FileNotFoundError)  a path that does not exist
    │   ├── NotDicomError                   a path holds no readable DICOM image
    │   ├── CorruptFileError                truncated file, short pixel data, absurd sizes
    │   ├── UnsupportedError(NotImplementedError)  valid DICOM we do not load (yet)
    │   └── DecodeError                     a codec failed on a frame
    │       └── MissingCodecError           no installed decoder for the syntax
    ├── MissingDependencyError(ImportError) an optional package is not installed
    │   └── MissingCodecError               (also a DecodeError)
    ├── SeriesSelectionError(LookupError)   several series where one was asked for, or none
    └── GeometryError(ValueError)           slices do not form one volume as asked
        ├── BadOrientationError             ImageOrientationPatient unusable
        ├── MissingSlicesError              gaps of whole multiples of the step
        ├── IrregularSpacingError           steps that are not whole multiples
        ├── NonCollinearError               positions off the stacking line
        ├── RepeatedPositionsError          several slices per position, no tag apart
        └── MixedGeometryError              orientations/sizes under one series

    FastvolWarning(UserWarning)             geometry kept but unusual (tilt, fill, resample)

Each class subclasses the builtin a caller would catch, and carries the data it is about
(``files``, ``positions``, ``spacings``, ``uid``, ``install_hint``) so code can act on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "BadOrientationError",
    "CorruptFileError",
    "DecodeError",
    "FastvolError",
    "FastvolWarning",
    "GeometryError",
    "InputError",
    "IrregularSpacingError",
    "MissingCodecError",
    "MissingDependencyError",
    "MissingSlicesError",
    "MixedGeometryError",
    "NonCollinearError",
    "NotDicomError",
    "PathNotFoundError",
    "RepeatedPositionsError",
    "SeriesSelectionError",
    "UnsupportedError",
]


class FastvolError(Exception):
    """Root of every error fastvol raises on bad input.

    Parameters
    ----------
    message
        What went wrong, which file or series, and what to do about it.
    files
        Paths the error is about, in a useful order (e.g. either side of a gap).
    uid
        SeriesInstanceUID concerned, when known.
    **data
        Further facts, stored as attributes (``positions``, ``spacings``, ...).
    """

    def __init__(
        self,
        message: str,
        *,
        files: Sequence[str] = (),
        uid: str | None = None,
        **data: Any,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.files = tuple(str(f) for f in files)
        self.uid = uid
        for key, value in data.items():
            setattr(self, key, value)
        self._data = data

    def __reduce__(self) -> tuple[Any, ...]:
        # Keyword-only constructors do not pickle by default; DataLoader workers pickle errors.
        return (_rebuild, (type(self), self.message, self.files, self.uid, self._data))


def _rebuild(
    cls: type[FastvolError], message: str, files: tuple[str, ...], uid: str | None, data: dict
) -> FastvolError:
    return cls(message, files=files, uid=uid, **data)


class InputError(FastvolError, ValueError):
    """The input is not something fastvol can read as asked."""


class PathNotFoundError(InputError, FileNotFoundError):
    """A file or folder given to fastvol does not exist (``errno`` ENOENT, ``filename`` set)."""

    def __init__(self, message: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        import errno

        self.errno = errno.ENOENT
        self.filename = self.files[0] if self.files else None


class NotDicomError(InputError):
    """A path holds no readable DICOM image."""


class CorruptFileError(InputError):
    """A file is truncated, its pixel data is shorter than declared, or its sizes are absurd."""


class UnsupportedError(InputError, NotImplementedError):
    """Valid DICOM that fastvol does not load (e.g. colour images)."""


class DecodeError(InputError):
    """A codec failed on a frame."""


class MissingDependencyError(FastvolError, ImportError):
    """An optional package is not installed; ``install_hint`` says what to install."""


class MissingCodecError(DecodeError, MissingDependencyError):
    """No installed decoder handles the transfer syntax; ``install_hint`` says what to install."""


class SeriesSelectionError(FastvolError, LookupError):
    """Several series where one was asked for, or the asked-for series is not there."""


class GeometryError(FastvolError, ValueError):
    """The slices do not form one regular volume as asked."""


class BadOrientationError(GeometryError):
    """ImageOrientationPatient is missing, not unit length, or not perpendicular."""


class MissingSlicesError(GeometryError):
    """Steps between slices are whole multiples of the regular step: slices are missing."""


class IrregularSpacingError(GeometryError):
    """Steps between slices differ and are not whole multiples of one step."""


class NonCollinearError(GeometryError):
    """Slice positions do not lie on one line: no single affine describes them."""


class RepeatedPositionsError(GeometryError):
    """Several slices share a position and no tag tells them apart."""


class MixedGeometryError(GeometryError):
    """One series holds groups of different orientation or size that cannot be stacked."""


class FastvolWarning(UserWarning):
    """Geometry was kept but is unusual (gantry tilt, filled gaps, resampling, ...)."""
