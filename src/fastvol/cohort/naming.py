"""Output names: dcm2niix-style patterns (``-f %f_%p_%t_%s``) filled from a series' headers.

Names are decided in the main process from the header scan alone, in plan order, so a rerun
(``--resume``) or a Dask run gives every series the same name as an uninterrupted local run.
Clashes between series of one run are resolved here (``-w``); clashes with files already on
disk are the runner's business (it knows which files an earlier run of the same plan wrote).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import InputError

if TYPE_CHECKING:
    from ..group import Series

__all__ = ["DEFAULT_PATTERN", "NAME_TAGS", "TOKENS", "expand", "assign_names", "check_pattern"]

#: dcm2niix's default file name pattern.
DEFAULT_PATTERN = "%f_%p_%t_%s"
#: Attributes the tokens need beyond the header record's own fields (read by the one scan).
NAME_TAGS = ("ProtocolName", "StudyDate", "StudyTime", "PatientID", "AcquisitionNumber")

_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")
_TOKEN = re.compile(r"%(.)")


def _extra(series: Series, keyword: str) -> Any:
    return dict(series.records[0].extra).get(keyword)


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _time(series: Series) -> str:
    """dcm2niix's ``%t``: StudyDate and StudyTime as ``YYYYMMDDhhmmss``."""
    date = _text(_extra(series, "StudyDate")).strip()
    clock = _text(_extra(series, "StudyTime")).strip().replace(":", "").split(".")[0]
    return date + clock[:6]


def _folder(series: Series) -> str:
    folder = series.folder.rstrip("/\\")
    return os.path.basename(folder) or folder


def _echo(series: Series) -> str:
    echoes = sorted({r.echo_number for r in series.records if r.echo_number is not None})
    return str(echoes[0]) if len(echoes) == 1 else ""  # several echoes: one 4D file, no number


#: Token letter -> (what it stands for, its value for a series).
TOKENS: dict[str, tuple[str, Callable[[Series], str]]] = {
    "d": ("SeriesDescription", lambda s: s.description),
    "e": ("EchoNumbers (when the series has one echo)", _echo),
    "f": ("folder name", _folder),
    "i": ("PatientID", lambda s: _text(_extra(s, "PatientID"))),
    "j": ("SeriesInstanceUID", lambda s: s.uid),
    "k": ("StudyInstanceUID", lambda s: s.records[0].study_instance_uid),
    "m": ("Manufacturer", lambda s: s.records[0].manufacturer),
    "p": ("ProtocolName", lambda s: _text(_extra(s, "ProtocolName"))),
    "s": ("SeriesNumber", lambda s: _text(s.number)),
    "t": ("StudyDate and StudyTime (YYYYMMDDhhmmss)", _time),
    "u": ("AcquisitionNumber", lambda s: _text(_extra(s, "AcquisitionNumber"))),
}


def check_pattern(pattern: str) -> str:
    """``pattern`` if every ``%x`` in it is a known token, else an :class:`InputError`."""
    for letter in _TOKEN.findall(pattern):
        if letter != "%" and letter not in TOKENS:
            known = ", ".join(f"%{k} {v[0]}" for k, v in TOKENS.items())
            raise InputError(f"-f {pattern!r}: unknown token %{letter}; tokens are {known}")
    if not pattern.strip("/ ") or os.path.isabs(pattern) or ".." in pattern.split("/"):
        raise InputError(f"-f {pattern!r}: expected a relative name pattern such as '%f_%p_%t_%s'")
    return pattern


def expand(pattern: str, series: Series) -> str:
    """The relative output name (no suffix) of ``series``; ``/`` in the pattern makes folders.

    Token values are made file-name safe (anything but letters, digits, ``._+-`` becomes
    ``_``), so a description can never make a folder or leave the output folder.
    """

    def value(match: re.Match[str]) -> str:
        letter = match.group(1)
        if letter == "%":
            return "%"
        return _UNSAFE.sub("_", TOKENS[letter][1](series).strip())

    parts = [_UNSAFE.sub("_", _TOKEN.sub(value, part)).strip("._") for part in pattern.split("/")]
    parts = [p for p in parts if p]
    return "/".join(parts) or "series"


def _suffix_letters(k: int) -> str:
    """``a``, ``b``, ..., ``z``, ``aa``, ...: dcm2niix's habit for clashing names."""
    letters = ""
    while True:
        letters = chr(ord("a") + k % 26) + letters
        k = k // 26 - 1
        if k < 0:
            return letters


def assign_names(names: Sequence[str], clash: int) -> list[str | None]:
    """Unique names for one run, in plan order.

    Parameters
    ----------
    names
        The expanded name of each series (case-insensitively compared, as on macOS/Windows).
    clash
        ``-w``: 0 skips a later series whose name is taken (``None``), 1 and 2 add ``a``,
        ``b``, ... to it (two series of one run never overwrite each other; ``-w 1`` only
        overwrites files that were there before the run).
    """
    taken: set[str] = {n.lower() for n in names}
    seen: set[str] = set()
    out: list[str | None] = []
    for name in names:
        key = name.lower()
        if key not in seen:
            seen.add(key)
            out.append(name)
            continue
        if clash == 0:
            out.append(None)
            continue
        k = 0
        while (name + _suffix_letters(k)).lower() in taken | seen:
            k += 1
        seen.add((name + _suffix_letters(k)).lower())
        out.append(name + _suffix_letters(k))
    return out
