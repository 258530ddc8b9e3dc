"""Options: how a load treats unusual geometry and pixel values, as one value object.

:class:`Options` is written once, here. :func:`fastvol.load` takes it whole (``options=``) plus
keyword overrides of any of its fields (tolerances included, by their own names); the CLI makes
its flags from these fields; the readers, the converter and Dask tasks pass the same object. It
is frozen and plain, so it pickles into DataLoader and Dask workers.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import field, fields
from typing import Any

from ._frozen import frozen
from .errors import InputError

__all__ = ["Options", "Tolerances", "check_extra_tags", "check_threads"]

#: Steps between slices agreeing within this fraction of the regular step count as equal.
SPACING_RTOL = 0.01
#: Largest allowed deviation from unit length and from perpendicularity of the orientation cosines.
ORIENTATION_TOLERANCE = 1e-3
#: Positions off the stacking line by more than this fraction of the smallest voxel size make
#: the stack non-collinear (no single affine describes it).
POSITION_RTOL = 0.05
#: Stacks whose step leans off the normal by more than this angle are reported as tilted.
TILT_TOLERANCE_DEG = 0.01


#: Output dtypes a load can produce (the pixel kernels' types).
OUTPUT_DTYPES = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
                 "float32", "float64")  # fmt: skip


def check_threads(threads: object) -> None:
    """Refuse a thread count that is not a whole number >= 1 (or None)."""
    if threads is not None and (
        isinstance(threads, bool) or not isinstance(threads, int) or threads < 1
    ):
        raise InputError(f"threads={threads!r}: expected a whole number >= 1 or None")


def check_extra_tags(tags: object) -> tuple[str | int, ...]:
    """``extra_tags`` as a tuple of DICOM keywords or int tags, or an InputError."""
    if isinstance(tags, (str, bytes, int)) or not isinstance(tags, Iterable):
        raise InputError(f"extra_tags={tags!r}: expected a list of DICOM keywords or int tags")
    out = tuple(tags)
    if not all(isinstance(t, (str, int)) and not isinstance(t, bool) for t in out):
        raise InputError(f"extra_tags={tags!r}: expected DICOM keywords or int tags")
    return out


def _option(
    default: Any, help: str, choices: tuple[Any, ...] = (), cli: str = "", cli_help: str = ""
) -> Any:
    """A field with what the CLI and validation need: its help text and allowed values."""
    metadata = {"help": help, "choices": choices, "cli": cli, "cli_help": cli_help or help}
    return field(default=default, metadata=metadata)


@frozen(slots=True)
class Tolerances:
    """Tolerances of the geometry checks (defaults: the named constants of this module)."""

    spacing_rtol: float = _option(SPACING_RTOL, "steps agreeing within this fraction are equal")
    orientation_tolerance: float = _option(
        ORIENTATION_TOLERANCE, "allowed deviation of the orientation cosines from orthonormal"
    )
    position_rtol: float = _option(
        POSITION_RTOL, "allowed distance of positions off one line, as a fraction of a voxel"
    )
    tilt_tolerance_deg: float = _option(
        TILT_TOLERANCE_DEG, "stacks leaning more than this (degrees) are tilted"
    )

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise InputError(f"{f.name}={value!r}: expected a number") from None
            if not number >= 0 or number == float("inf"):
                raise InputError(f"{f.name}={value!r}: expected a finite number >= 0")
            object.__setattr__(self, f.name, number)


@frozen(slots=True)
class Options:
    """How a load treats unusual geometry and pixel values; see :func:`fastvol.load`.

    Examples
    --------
    >>> from fastvol import Options
    >>> opts = Options(gaps="fill", threads=1)
    >>> opts.replace(spacing_rtol=0.02).tolerances.spacing_rtol
    0.02
    """

    gaps: str = _option("raise", "missing slices: raise, or fill them", ("raise", "fill"))
    irregular: str = _option(
        "raise", "uneven spacing: raise, or resample onto a regular grid", ("raise", "resample")
    )
    tilt: str = _option(
        "keep", "gantry tilt: keep pixels with a sheared affine, or resample", ("keep", "resample")
    )
    repeats: str = _option(
        "split", "repeated positions: split into volumes, or keep the first", ("split", "first")
    )
    incomplete: str = _option(
        "raise", "volumes lacking slices: raise, or drop them", ("raise", "drop")
    )
    select: int | slice | tuple[int, ...] | None = _option(
        None, "volumes to load from a 4D series: N, START:STOP[:STEP] or N,N,...", cli="select"
    )
    rescale: bool = _option(
        True, "apply RescaleSlope/RescaleIntercept", cli="no-rescale",
        cli_help="return stored values (RescaleSlope/RescaleIntercept not applied)",
    )  # fmt: skip
    dtype: str | None = _option(None, "output dtype (e.g. float32)")
    fill_value: float | None = _option(
        None, "value of filled slices (default NaN, or the integer dtype's minimum)"
    )
    unreadable: str = _option(
        "raise", "files that may be the series' slices but cannot be read (the OS refused "
        "them, or they are damaged: truncated, empty, unparseable): raise, or skip them",
        ("raise", "skip"),
    )
    threads: int | None = _option(
        None, "decode threads: 1 reads in the calling thread (default: a shared pool)"
    )
    extra_tags: tuple[str | int, ...] = _option(
        (), "further attributes carried into Volume.meta: keywords or tags, comma-separated"
    )
    tolerances: Tolerances = field(default_factory=Tolerances)

    def __post_init__(self) -> None:
        for f in fields(self):
            choices = f.metadata.get("choices")
            if choices and getattr(self, f.name) not in choices:
                raise InputError(f"{f.name}={getattr(self, f.name)!r}: expected one of {choices}")
        if not isinstance(self.rescale, bool):
            raise InputError(f"rescale={self.rescale!r}: expected True or False")
        if self.fill_value is not None:
            try:
                object.__setattr__(self, "fill_value", float(self.fill_value))
            except (TypeError, ValueError):
                raise InputError(f"fill_value={self.fill_value!r}: expected a number") from None
        if self.dtype is not None:
            import numpy as np

            try:
                dtype = np.dtype(self.dtype)
            except Exception:  # TypeError, ValueError, even SyntaxError for odd strings
                raise InputError(f"dtype={self.dtype!r} is not a numpy dtype") from None
            if dtype.name not in OUTPUT_DTYPES:
                raise InputError(f"dtype={self.dtype!r}: expected one of {', '.join(OUTPUT_DTYPES)}")
            object.__setattr__(self, "dtype", dtype.str)
        check_threads(self.threads)
        select = self.select
        if isinstance(select, (str, bytes)):  # "12" would silently become (1, 2)
            raise InputError(f"select={select!r}: expected an int, a slice or ints")
        if select is not None and not isinstance(select, (int, slice)):
            try:
                select = tuple(int(i) for i in select)
            except (TypeError, ValueError):
                raise InputError(f"select={self.select!r}: expected an int, a slice or ints") from None
            object.__setattr__(self, "select", select)
        object.__setattr__(self, "extra_tags", check_extra_tags(self.extra_tags))
        if not isinstance(self.tolerances, Tolerances):
            raise InputError(f"tolerances={self.tolerances!r}: expected fastvol.Tolerances")

    def __hash__(self) -> int:
        # slice is unhashable before Python 3.12: hash its three ends instead.
        select = self.select
        key = (select.start, select.stop, select.step) if isinstance(select, slice) else select
        return hash(tuple(key if f.name == "select" else getattr(self, f.name) for f in fields(self)))

    def replace(self, **overrides: Any) -> Options:
        """A copy with some fields changed; tolerance fields may be given by their own names.

        Raises
        ------
        InputError
            An unknown option name or a value it does not accept.
        """
        if not overrides:
            return self
        own = {f.name for f in fields(self)}
        tolerance_names = {f.name for f in fields(Tolerances)}
        unknown = set(overrides) - own - tolerance_names
        if unknown:
            raise InputError(
                f"unknown option(s) {sorted(unknown)}; options are {sorted(own | tolerance_names)}"
            )
        tol = {k: overrides.pop(k) for k in list(overrides) if k in tolerance_names}
        if tol:
            base = overrides.get("tolerances", self.tolerances)
            overrides["tolerances"] = dataclasses.replace(base, **tol)
        return dataclasses.replace(self, **overrides)

    @classmethod
    def resolve(cls, options: Options | None, overrides: dict[str, Any]) -> Options:
        """``options`` (or the defaults) with ``overrides`` applied: what every entry point does."""
        if options is not None and not isinstance(options, Options):
            raise InputError(f"options={options!r}: expected fastvol.Options or None")
        return (options or cls()).replace(**overrides)
