"""Every error and warning fastvol raises.

::

    FastvolError
    ├── InputError(ValueError)              bad input that is not DICOM geometry
    │   ├── PathNotFoundError(FileNotFoundError)  a path that does not exist
    │   ├── UnreadableError(PermissionError)  a file or folder the OS would not let us read
    │   ├── NotDicomError                   a path holds no readable DICOM image
    │   ├── CorruptFileError                truncated file, short pixel data, absurd sizes
    │   ├── UnsupportedError(NotImplementedError)  valid DICOM we do not load (yet)
    │   ├── DuplicateInstanceError          files claim one SOPInstanceUID, contents differ
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
        ├── MixedGeometryError              orientations/sizes under one series
        └── AlignmentError                  a derived object's frames do not fit its reference
    OverlapError(InputError)                segments overlap where a label map needs one label

    FastvolWarning(UserWarning)             geometry kept but unusual (tilt, fill, resample)

Each class subclasses the builtin a caller would catch, and carries the data it is about
(``files``, ``positions``, ``spacings``, ``uid``, ``install_hint``) so code can act on it.

Lower layers (pydicom, numpy, the OS) raise their own types on bad input; :func:`map_exceptions`
is the one place they become fastvol errors (:data:`FOREIGN_ERRORS`), the original kept as
``__cause__``.
"""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Iterator, Sequence
from typing import Any

__all__ = [
    "AlignmentError",
    "BadOrientationError",
    "CorruptFileError",
    "DecodeError",
    "DuplicateInstanceError",
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
    "OutputError",
    "OverlapError",
    "PathNotFoundError",
    "RepeatedPositionsError",
    "SeriesSelectionError",
    "UnreadableError",
    "UnsupportedError",
]  # map_exceptions is internal: __all__ lists the public error classes only


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

    def __str__(self) -> str:
        # The message, also for the OSError-derived errors, whose own __str__ would print
        # "[Errno 2] None: 'path'" once errno and filename are set.
        return self.message

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


class UnreadableError(InputError, PermissionError):
    """A file or folder could not be read (permission denied, I/O error): its data is missing.

    A load refuses a path where anything could not be read, since a series could silently
    lose slices; ``Options(unreadable="skip")`` loads what could be read.
    """


class NotDicomError(InputError):
    """A path holds no readable DICOM image."""


class CorruptFileError(InputError):
    """A file is truncated, its pixel data is shorter than declared, or its sizes are absurd."""


class UnsupportedError(InputError, NotImplementedError):
    """Valid DICOM that fastvol does not load (e.g. colour images)."""


class DuplicateInstanceError(InputError):
    """Files claim the same SOPInstanceUID (and frame) but their headers or pixels differ.

    A true copy is dropped (``GeometryReport.duplicates_dropped``); files that only share the
    UID cannot both be the instance, and which one is right is not fastvol's guess to make.
    Carries ``sop_instance_uid`` and ``frame``; ``files`` names both.
    """


class DecodeError(InputError):
    """A codec failed on a frame."""


class OutputError(FastvolError, OSError):
    """An output could not be written (permission denied, disk full, ...): nothing was left at
    the target, and the message names it and the reason."""


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


class AlignmentError(GeometryError):
    """Frames of a segmentation (or other derived object) do not fit the reference grid.

    Carries ``reason`` (frame of reference, orientation, pixel spacing, frame size, no slice,
    ...) and, for frames, ``frames`` (1-based frame numbers).
    """


class OverlapError(InputError):
    """Segments overlap where a label map can hold one label per voxel (``overlap="raise"``)."""


class FastvolWarning(UserWarning):
    """Geometry was kept but is unusual (gantry tilt, filled gaps, resampling, ...)."""


#: Foreign exception types -> the fastvol error they become at a boundary (first match wins).
#: OSError means the bytes could not be read; the others are what parsers raise on garbage
#: (pydicom's unknown-VR error is a NotImplementedError).
FOREIGN_ERRORS: tuple[tuple[type[BaseException], type[FastvolError]], ...] = (
    (OSError, UnreadableError),
    (ValueError, CorruptFileError),
    (IndexError, CorruptFileError),
    (KeyError, CorruptFileError),
    (AttributeError, CorruptFileError),
    (TypeError, CorruptFileError),
    (NotImplementedError, CorruptFileError),
    (ArithmeticError, CorruptFileError),  # OverflowError, ZeroDivisionError
    (EOFError, CorruptFileError),
    (struct.error, CorruptFileError),
)
#: Modules whose own exception classes all mean "this file is malformed" (pydicom's
#: BytesLengthException derives from Exception alone); matched by name, so this leaf module
#: imports no parser.
FOREIGN_MODULES: tuple[str, ...] = ("pydicom", "nibabel", "zarr")


@contextlib.contextmanager
def map_exceptions(what: str, *, files: Sequence[str] = (), uid: str | None = None) -> Iterator[None]:
    """Turn a foreign exception raised inside the block into the fastvol error it maps to.

    Modelled on httpx's ``map_exceptions``: the one translation of lower-layer errors, used
    where a file's header is read or expanded and at the load boundary, so no bare builtin
    error escapes the public API on bad input. Fastvol errors, warnings raised as errors,
    ``MemoryError``, ``KeyboardInterrupt`` and anything not in :data:`FOREIGN_ERRORS` pass.

    Parameters
    ----------
    what
        What was being done, starting with the file or series (``"a.dcm: per-frame headers"``).
    files, uid
        Carried into the raised error.

    Raises
    ------
    FastvolError
        The mapped error; the original exception is its ``__cause__``.
    """
    try:
        yield
    except FastvolError:
        raise
    except Exception as exc:
        if isinstance(exc, (Warning, MemoryError)):
            raise
        ours = _mapped(exc)
        if ours is None:
            raise
        raise ours(f"{what}: {type(exc).__name__}: {exc}", files=files, uid=uid) from exc


def _mapped(exc: BaseException) -> type[FastvolError] | None:
    """The fastvol error ``exc`` becomes, or None when it passes unchanged."""
    for foreign, ours in FOREIGN_ERRORS:
        if isinstance(exc, foreign):
            return ours
    if type(exc).__module__.split(".")[0] in FOREIGN_MODULES:
        return CorruptFileError
    return None
