"""Decode compressed frames: one codec registry keyed by transfer syntax UID.

Each transfer syntax lists candidate decoders in order of preference. A candidate names the
packages it needs (for the install hint), how to check it is usable, and whether it releases
the GIL (measured in ``benchmarks/test_decode.py``, not assumed), so a thread pool is only
trusted with decoders that run in parallel: :func:`fastvol.stack.execute` decodes a series whose
decoder holds the GIL in the calling thread. :func:`get_decoder` picks the first available
candidate once per transfer syntax (cached) and returns a :class:`Decoder`: a small, frozen,
picklable value that any executor can call with bytes and plain ints.

Preference: fastest first among decoders that survive corrupt input. Per-frame times for a
512 x 512 int16 CT-like image (``benchmarks/test_decode.py`` on the 2-core development machine,
imagecodecs 2026.3.6), and the speed-up of 64 frames on 2 threads over 1 thread, which shows
whether the GIL is released (~2) or held (<= 1):

=====================  ==============================================================
syntax                 candidates in order: ms per frame (2-thread speed-up)
=====================  ==============================================================
RLE Lossless           fastvol C kernel (**), numba kernel 0.21 (x0.92 *), pylibjpeg-rle
                       0.22 (x0.90), pydicom pure Python 1.68 (x0.98),
                       [imagecodecs.dicomrle 0.19]
JPEG baseline/ext.     imagecodecs.jpeg8 0.46 (x0.99), pylibjpeg-libjpeg 2.67 (x0.97)
JPEG lossless 14/SV1   imagecodecs.jpeg8 1.10 (x1.89), pylibjpeg-libjpeg 5.82 (x0.98),
                       [imagecodecs.ljpeg 1.68 (x1.81)]
JPEG-LS                imagecodecs.jpegls 2.17 (x1.94), pylibjpeg-libjpeg 10.1 (x0.93),
                       pyjpegls 2.32 (x0.95)
JPEG 2000              imagecodecs.jpeg2k 16.8 (x2.03), pylibjpeg-openjpeg 16.4 (x0.98)
HTJ2K                  imagecodecs.jpeg2k 1.59 (x1.95), pylibjpeg-openjpeg 1.67 (x0.91),
                       [imagecodecs.htj2k 0.73 (x1.80)]
=====================  ==============================================================

(*) The RLE kernel runs without the GIL (x1.6-1.8 on 2048 x 2048 frames decoded into
preallocated buffers), but at 0.2 ms per 512 x 512 frame the pool's per-task overhead and the
512 KiB output allocation dominate; every RLE decoder measures ~x0.9 there.

(**) :mod:`fastvol._ckernels` ``_rle``, built at install (optional; ``FASTVOL_NATIVE=0`` turns it
off): the numba kernel ported to C, equal byte for byte and status for status, GIL released. It
spares a process numba's import and cached-kernel load (about 0.5-1 s) or, after install, its
compile (about 2.5 s): ``fastvol FOLDER`` on 8 RLE slices of 512 x 512 took 0.48 s against
2.40 s (numba, cache warm) and 3.91 s (cache empty), ``python -c 'import numpy'`` 0.31 s
(medians of 7 whole processes, one run).
Per frame it decodes into contiguous planes and interleaves once: 512 x 512 CT-like frames 0.22
ms (thread CPU time 0.19) against numba 0.93 (0.73), pylibjpeg-rle 1.03 (0.52) and
imagecodecs.dicomrle 0.94 (0.48); 2048 x 2048: 9.2 (8.6) against 11.0 (10.2), 25.4 (22.9) and
8.2 (8.0); the kernels alone into a preallocated buffer: 0.19 vs 1.15 ms and 4.2 vs 8.8 ms
(``benchmarks/rle_kernels.py``, all in one run, 2026-12-02, the 2-core machine shared at load
5-6: absolute times are inflated and 2-thread speed-ups were not measurable that day).

Candidates in brackets crashed the interpreter (segmentation fault) when fed corrupted
codestreams in fuzzing (imagecodecs 2026.3.6), so they are marked ``crash_safe=False``: they
come last, are used only when nothing else is installed, and are never tried as fallbacks
(a fallback runs exactly when a frame is likely corrupt). RLE: the numba kernel and
imagecodecs' ``dicomrle`` are within 10 % (0.21 vs 0.19 ms on CT-like data, 24 vs 20 ms on a
2048 x 2048 noise frame), but ``dicomrle`` segfaults on corrupted segment offsets while the
kernel (and its C port) checks every index. HTJ2K: OpenJPH is ~2x faster than OpenJPEG but segfaults on
corrupted streams. CharLS (JPEG-LS) does not crash but can take seconds on truncated streams.

Before any decoder runs, the frame's own codestream header (JPEG SOFn / JPEG-LS SOF55, J2K and
HTJ2K SIZ, the RLE segment table: :mod:`fastvol.codestream`, microseconds) must match Rows,
Columns, SamplesPerPixel and BitsAllocated, and a JPEG or J2K stream must end with its
end-of-image / end-of-codestream marker: a codec allocates what the codestream claims, so a
64 x 64 frame claiming 65535 x 65535 would cost gigabytes and minutes. A mismatch is a
:class:`CorruptFrameError` (a :class:`~fastvol.errors.CorruptFileError` and a
:class:`~fastvol.errors.DecodeError`) naming the file and frame, and is never retried on another
candidate; nor is a frame the RLE kernels refuse (they check every segment's length).

When the preferred decoder raises on a frame whose header passed, the other available
candidates are tried before :class:`~fastvol.errors.DecodeError` is raised (codecs disagree on
edge cases, e.g. 12-bit JPEG extended). The returned array holds the *stored* bits in the dtype of BitsAllocated and
PixelRepresentation; masking to BitsStored, sign extension and rescaling happen later.

No codec (nor numba) is imported until a decoder is resolved or called; an RLE series decoded
by the C kernel never imports numba.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
from collections.abc import Callable
from typing import Any

import numpy as np

from ._frozen import frozen
from .codestream import frame_problem
from .errors import CorruptFileError, DecodeError, FastvolError, MissingCodecError, UnsupportedError
from .pixels import SUPPORTED_BITS_ALLOCATED, stored_dtype

__all__ = [
    "REGISTRY",
    "TRANSFER_SYNTAX_NAMES",
    "Candidate",
    "CorruptFrameError",
    "Decoder",
    "get_decoder",
]

Buffer = bytes | bytearray


class CorruptFrameError(CorruptFileError, DecodeError):
    """A compressed frame's codestream contradicts the file's header, or is cut short.

    Both a :class:`~fastvol.errors.CorruptFileError` (the file is corrupt) and a
    :class:`~fastvol.errors.DecodeError` (the frame cannot be decoded). ``frame`` is the frame's
    index in its file (-1 when unknown).
    """


class UID:
    """Compressed transfer syntax UIDs fastvol decodes."""

    RLE_LOSSLESS = "1.2.840.10008.1.2.5"
    JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
    JPEG_EXTENDED = "1.2.840.10008.1.2.4.51"
    JPEG_LOSSLESS = "1.2.840.10008.1.2.4.57"
    JPEG_LOSSLESS_SV1 = "1.2.840.10008.1.2.4.70"
    JPEG_LS_LOSSLESS = "1.2.840.10008.1.2.4.80"
    JPEG_LS_NEAR_LOSSLESS = "1.2.840.10008.1.2.4.81"
    JPEG_2000_LOSSLESS = "1.2.840.10008.1.2.4.90"
    JPEG_2000 = "1.2.840.10008.1.2.4.91"
    HTJ2K_LOSSLESS = "1.2.840.10008.1.2.4.201"
    HTJ2K_LOSSLESS_RPCL = "1.2.840.10008.1.2.4.202"
    HTJ2K = "1.2.840.10008.1.2.4.203"


TRANSFER_SYNTAX_NAMES: dict[str, str] = {
    UID.RLE_LOSSLESS: "RLE Lossless",
    UID.JPEG_BASELINE: "JPEG Baseline (Process 1)",
    UID.JPEG_EXTENDED: "JPEG Extended (Process 2 and 4)",
    UID.JPEG_LOSSLESS: "JPEG Lossless (Process 14)",
    UID.JPEG_LOSSLESS_SV1: "JPEG Lossless SV1 (Process 14, Selection Value 1)",
    UID.JPEG_LS_LOSSLESS: "JPEG-LS Lossless",
    UID.JPEG_LS_NEAR_LOSSLESS: "JPEG-LS Near-Lossless",
    UID.JPEG_2000_LOSSLESS: "JPEG 2000 Lossless",
    UID.JPEG_2000: "JPEG 2000",
    UID.HTJ2K_LOSSLESS: "HTJ2K Lossless",
    UID.HTJ2K_LOSSLESS_RPCL: "HTJ2K Lossless RPCL",
    UID.HTJ2K: "HTJ2K",
}

#: Transfer syntaxes that are valid DICOM but have no pixel codec here (video, JPIP,
#: deflate, JPEG XL): known, so the error says "unsupported" rather than "unknown".
_KNOWN_UNSUPPORTED: dict[str, str] = {
    "1.2.840.10008.1.2.4.52": "JPEG Extended (Process 3 and 5, retired)",
    "1.2.840.10008.1.2.4.53": "JPEG Spectral Selection (retired)",
    "1.2.840.10008.1.2.4.55": "JPEG Full Progression (retired)",
    "1.2.840.10008.1.2.4.92": "JPEG 2000 Part 2 Multi-component Lossless",
    "1.2.840.10008.1.2.4.93": "JPEG 2000 Part 2 Multi-component",
    "1.2.840.10008.1.2.4.94": "JPIP Referenced",
    "1.2.840.10008.1.2.4.95": "JPIP Referenced Deflate",
    "1.2.840.10008.1.2.4.100": "MPEG2 Main Profile",
    "1.2.840.10008.1.2.4.102": "MPEG-4 AVC/H.264",
    "1.2.840.10008.1.2.4.110": "JPEG XL Lossless",
    "1.2.840.10008.1.2.4.111": "JPEG XL JPEG Recompression",
    "1.2.840.10008.1.2.4.112": "JPEG XL",
}


# --- candidates -------------------------------------------------------------------------------


@frozen(slots=True)
class Candidate:
    """One way to decode a transfer syntax.

    Attributes
    ----------
    name
        Key into the implementation table, e.g. ``"imagecodecs.jpeg8"``.
    packages
        pip requirements the candidate needs (for the install hint).
    modules
        Import names that must be importable.
    codec_attr
        For imagecodecs: the codec class whose ``available`` flag must be true (imagecodecs
        builds may omit codecs).
    releases_gil
        Whether decoding runs without the GIL, as measured by the GIL benchmark.
    crash_safe
        False when fuzzing crashed the interpreter: then never used as a fallback.
    native
        For fastvol's own C kernels: the extension's name in :mod:`fastvol._ckernels`, usable
        when it was built and ``FASTVOL_NATIVE`` is not ``0``.
    """

    name: str
    packages: tuple[str, ...]
    modules: tuple[str, ...]
    releases_gil: bool
    codec_attr: str = ""
    crash_safe: bool = True
    native: str = ""

    def is_available(self) -> bool:
        """Whether the packages are installed (and the imagecodecs codec or C kernel built)."""
        if self.native:
            from . import _ckernels

            return _ckernels.available(self.native)
        return _modules_available(self.modules, self.codec_attr)


@functools.cache
def _modules_available(modules: tuple[str, ...], codec_attr: str) -> bool:
    for module in modules:
        try:
            if importlib.util.find_spec(module) is None:
                return False
        except (ImportError, ValueError):
            return False
    if codec_attr:
        try:
            imagecodecs = importlib.import_module("imagecodecs")
            return bool(getattr(getattr(imagecodecs, codec_attr), "available", False))
        except Exception:  # a broken install is an unavailable one
            return False
    return True


_IMAGECODECS = ("imagecodecs",)
# releases_gil, per candidate: the 2-thread speed-up of ``test_decode_threads`` (table above) or,
# where it is lost in per-task overhead, what the code does. False sends a series' frames through
# the calling thread (fastvol.stack): a pool only adds overhead to a decoder holding the GIL.
# fastvol's C port of the numba kernel, built at install (optional): no numba import, no compile;
# decodes with the GIL released.
_RLE_C = Candidate("fastvol.rle-c", (), (), True, native="_rle")
# numba kernel compiled nogil=True (x1.6-1.8 on 2048 x 2048 frames; x0.92 at 512 x 512).
_RLE_NUMBA = Candidate("fastvol.rle", ("numba",), ("numba",), True)
# imagecodecs C code, called with the GIL released (as every imagecodecs codec here).
_RLE_IMAGECODECS = Candidate(
    "imagecodecs.dicomrle", _IMAGECODECS, _IMAGECODECS, True, "DICOMRLE", crash_safe=False
)
# Rust (pyo3) decoder that keeps the GIL: x0.90.
_RLE_PYLIBJPEG = Candidate("pylibjpeg-rle", ("pylibjpeg-rle",), ("rle",), False)
# pydicom's pure-Python RLE decoder: x0.98.
_RLE_PYDICOM = Candidate("pydicom.rle", ("pydicom",), ("pydicom",), False)
# libjpeg-turbo with the GIL released: x1.89 on lossless (baseline frames too short to show).
_JPEG8 = Candidate("imagecodecs.jpeg8", _IMAGECODECS, _IMAGECODECS, True, "JPEG8")
# imagecodecs' lossless JPEG codec, GIL released: x1.81.
_LJPEG = Candidate("imagecodecs.ljpeg", _IMAGECODECS, _IMAGECODECS, True, "LJPEG", crash_safe=False)
# CharLS with the GIL released: x1.94.
_JPEGLS = Candidate("imagecodecs.jpegls", _IMAGECODECS, _IMAGECODECS, True, "JPEGLS")
# OpenJPEG with the GIL released: x2.03 (JPEG 2000), x1.95 (HTJ2K).
_JPEG2K = Candidate("imagecodecs.jpeg2k", _IMAGECODECS, _IMAGECODECS, True, "JPEG2K")
# OpenJPH, GIL released: x1.80.
_HTJ2K = Candidate("imagecodecs.htj2k", _IMAGECODECS, _IMAGECODECS, True, "HTJ2K", crash_safe=False)
# pylibjpeg's Cython wrapper holds the GIL while decoding: x0.97 (baseline), x0.98 (lossless),
# x0.93 (JPEG-LS).
_LIBJPEG = Candidate("pylibjpeg-libjpeg", ("pylibjpeg-libjpeg",), ("libjpeg",), False)
# pylibjpeg's Cython wrapper of OpenJPEG, GIL held: x0.98 (JPEG 2000), x0.91 (HTJ2K).
_OPENJPEG = Candidate("pylibjpeg-openjpeg", ("pylibjpeg-openjpeg",), ("openjpeg",), False)
# Cython wrapper of CharLS holding the GIL: x0.95.
_PYJPEGLS = Candidate("pyjpegls", ("pyjpegls",), ("jpeg_ls",), False)

#: Candidates per transfer syntax, preferred first.
REGISTRY: dict[str, tuple[Candidate, ...]] = {
    UID.RLE_LOSSLESS: (_RLE_C, _RLE_NUMBA, _RLE_PYLIBJPEG, _RLE_PYDICOM, _RLE_IMAGECODECS),
    UID.JPEG_BASELINE: (_JPEG8, _LIBJPEG),
    UID.JPEG_EXTENDED: (_JPEG8, _LIBJPEG),
    UID.JPEG_LOSSLESS: (_JPEG8, _LIBJPEG, _LJPEG),
    UID.JPEG_LOSSLESS_SV1: (_JPEG8, _LIBJPEG, _LJPEG),
    UID.JPEG_LS_LOSSLESS: (_JPEGLS, _LIBJPEG, _PYJPEGLS),
    UID.JPEG_LS_NEAR_LOSSLESS: (_JPEGLS, _LIBJPEG, _PYJPEGLS),
    UID.JPEG_2000_LOSSLESS: (_JPEG2K, _OPENJPEG),
    UID.JPEG_2000: (_JPEG2K, _OPENJPEG),
    UID.HTJ2K_LOSSLESS: (_JPEG2K, _OPENJPEG, _HTJ2K),
    UID.HTJ2K_LOSSLESS_RPCL: (_JPEG2K, _OPENJPEG, _HTJ2K),
    UID.HTJ2K: (_JPEG2K, _OPENJPEG, _HTJ2K),
}

#: Which codestream header (:func:`fastvol.codestream.frame_problem`) each syntax carries.
_KIND: dict[str, str] = {
    UID.RLE_LOSSLESS: "rle",
    **dict.fromkeys(
        (UID.JPEG_BASELINE, UID.JPEG_EXTENDED, UID.JPEG_LOSSLESS, UID.JPEG_LOSSLESS_SV1,
         UID.JPEG_LS_LOSSLESS, UID.JPEG_LS_NEAR_LOSSLESS),
        "jpeg",
    ),
    **dict.fromkeys(
        (UID.JPEG_2000_LOSSLESS, UID.JPEG_2000, UID.HTJ2K_LOSSLESS, UID.HTJ2K_LOSSLESS_RPCL,
         UID.HTJ2K),
        "j2k",
    ),
}  # fmt: skip

_CANDIDATES: dict[str, Candidate] = {c.name: c for cs in REGISTRY.values() for c in cs}


def _install_hint(transfer_syntax: str) -> str:
    # Candidates without packages (fastvol's own C kernels) have nothing to install.
    candidates = [c for c in REGISTRY[transfer_syntax] if c.packages]
    first = candidates[0]
    others = [c for c in candidates[1:] if c.packages != first.packages]
    hint = f"pip install {' '.join(first.packages)}"
    if others:
        hint += " (or: " + "; ".join(f"pip install {' '.join(c.packages)}" for c in others) + ")"
    return hint


def _syntax_label(transfer_syntax: str) -> str:
    name = TRANSFER_SYNTAX_NAMES.get(transfer_syntax) or _KNOWN_UNSUPPORTED.get(transfer_syntax)
    return f"{name} ({transfer_syntax})" if name else transfer_syntax


# --- the decoder value ------------------------------------------------------------------------


@frozen(slots=True)
class Decoder:
    """A resolved decoder for one transfer syntax: plain values, picklable, callable.

    Attributes
    ----------
    name
        The candidate that decodes, e.g. ``"imagecodecs.jpeg2k"``.
    transfer_syntax
        TransferSyntaxUID it was resolved for.
    releases_gil
        True when threads decode in parallel with it.
    fallbacks
        Other available candidates, tried in order when ``name`` raises on a frame.
    """

    name: str
    transfer_syntax: str
    releases_gil: bool
    fallbacks: tuple[str, ...] = ()

    def __call__(
        self,
        data: Buffer,
        *,
        rows: int,
        columns: int,
        samples_per_pixel: int,
        bits_allocated: int,
        bits_stored: int,
        pixel_representation: int,
        planar_configuration: int = 0,
        photometric_interpretation: str = "",
        source: str = "",
        frame: int = -1,
    ) -> np.ndarray:
        """Decode one frame.

        Parameters
        ----------
        data
            The frame's codestream (fragments already joined).
        rows, columns, samples_per_pixel, bits_allocated, bits_stored, pixel_representation
            The image pixel module values of the file.
        planar_configuration
            Accepted for symmetry with native data; compressed codestreams define their own
            sample order and every decoder here returns colour-by-pixel.
        photometric_interpretation
            Only used for 3-sample JPEG baseline/extended: ``"RGB"`` means the codestream holds
            RGB without a colour transform (DICOM's meaning), whatever its markers suggest;
            otherwise libjpeg-turbo converts YCbCr to RGB as the markers say.
        source
            File name for error messages.
        frame
            The frame's index in its file, for error messages (-1: unknown).

        Returns
        -------
        numpy.ndarray
            Shape ``(rows, columns)``, or ``(rows, columns, samples_per_pixel)`` for colour;
            dtype ``uint``/``int`` (per PixelRepresentation) of BitsAllocated bits, holding the
            stored bits unmasked: high bits above BitsStored may be zero, set, or junk. Colour
            is as the codec delivers it (JPEG and JPEG 2000 apply their own colour transforms
            and return RGB).

        Raises
        ------
        CorruptFrameError
            The codestream's own header contradicts the declared image or the stream is cut
            short (checked before any decoder runs), or the RLE kernel refuses a segment; no
            other candidate is tried.
        DecodeError
            Every candidate failed, or the decoded frame has the wrong size.
        UnsupportedError
            BitsAllocated other than 8, 16 or 32.
        """
        del planar_configuration  # colour-by-pixel from every codec; see docstring
        _check_frame_params(
            rows,
            columns,
            samples_per_pixel,
            bits_allocated,
            bits_stored,
            pixel_representation,
            self.transfer_syntax,
            source,
        )
        problem = frame_problem(
            _KIND[self.transfer_syntax], data, rows, columns, samples_per_pixel, bits_allocated
        )
        if problem is not None:
            raise _refused(problem, self.transfer_syntax, source, frame)
        return self._first_decoded(
            data,
            rows,
            columns,
            samples_per_pixel,
            bits_allocated,
            pixel_representation,
            photometric_interpretation,
            source,
            frame,
        )

    def _first_decoded(
        self,
        data: Buffer,
        rows: int,
        columns: int,
        samples: int,
        bits_allocated: int,
        pixel_representation: int,
        photometric: str,
        source: str,
        frame: int = -1,
    ) -> np.ndarray:
        """Stored bits of the frame from the first candidate that decodes it.

        Tries ``name``, then each fallback in order; a candidate that raises is skipped (its
        error kept for the message), except for fastvol's own errors, a frame the candidate
        refuses as corrupt (:class:`_Refused`: no fallback) and interpreter exits, which
        propagate.

        Raises
        ------
        DecodeError
            Every candidate raised, or the decoded frame has the wrong size or values.
        """
        errors: list[str] = []
        for name in (self.name, *self.fallbacks):
            try:
                decoded = _IMPLEMENTATIONS[name](
                    data, rows, columns, samples, bits_allocated, photometric
                )
            except FastvolError:
                raise
            except _Refused as exc:
                raise _refused(str(exc), self.transfer_syntax, source, frame) from None
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as exc:  # noqa: B036 - pyo3 panics (pylibjpeg-rle) are not Exception
                errors.append(f"{name}: {type(exc).__name__}: {exc}")
                continue
            return _as_stored(
                decoded,
                rows,
                columns,
                samples,
                bits_allocated,
                pixel_representation,
                name,
                self.transfer_syntax,
                source,
            )
        raise _all_candidates_failed(self.transfer_syntax, self.name, source, errors)


@functools.cache
def get_decoder(transfer_syntax: str) -> Decoder:
    """Resolve the decoder for ``transfer_syntax`` (cached: once per process and syntax).

    Parameters
    ----------
    transfer_syntax
        TransferSyntaxUID of the series' files (must be a compressed syntax).

    Returns
    -------
    Decoder
        The first available candidate, with the other available ones as fallbacks.

    Raises
    ------
    UnsupportedError
        The syntax has no codec here (unknown, video, JPIP, ...), or is not compressed.
    MissingCodecError
        The syntax is supported but none of its decoders is installed; ``install_hint`` says
        what to ``pip install``.
    """
    transfer_syntax = transfer_syntax.strip().rstrip("\0")
    candidates = REGISTRY.get(transfer_syntax)
    if candidates is None:
        raise UnsupportedError(
            f"no decoder for transfer syntax {_syntax_label(transfer_syntax)}",
            transfer_syntax=transfer_syntax,
        )
    available = [c for c in candidates if c.is_available()]
    if not available:
        hint = _install_hint(transfer_syntax)
        raise MissingCodecError(
            f"no installed decoder for {_syntax_label(transfer_syntax)}: {hint}",
            install_hint=hint,
            transfer_syntax=transfer_syntax,
        )
    first, *rest = available
    return Decoder(
        name=first.name,
        transfer_syntax=transfer_syntax,
        releases_gil=first.releases_gil,
        fallbacks=tuple(c.name for c in rest if c.crash_safe),
    )


# --- checks and dtype -------------------------------------------------------------------------


def _check_frame_params(
    rows: int,
    columns: int,
    samples: int,
    bits_allocated: int,
    bits_stored: int,
    pixel_representation: int,
    transfer_syntax: str,
    source: str,
) -> None:
    files = (source,) if source else ()
    if bits_allocated not in SUPPORTED_BITS_ALLOCATED:
        raise UnsupportedError(
            f"BitsAllocated {bits_allocated} with {_syntax_label(transfer_syntax)} is not "
            "supported (8, 16 or 32)" + (f" in {source}" if source else ""),
            files=files,
        )
    if rows <= 0 or columns <= 0 or samples <= 0 or not 0 < bits_stored <= bits_allocated:
        raise DecodeError(
            f"bad frame parameters rows={rows} columns={columns} samples={samples} "
            f"bits_stored={bits_stored} bits_allocated={bits_allocated}"
            + (f" in {source}" if source else ""),
            files=files,
        )
    if pixel_representation not in (0, 1):
        raise DecodeError(
            f"bad PixelRepresentation {pixel_representation}" + (f" in {source}" if source else ""),
            files=files,
        )


class _Refused(ValueError):
    """A decoder found the frame corrupt (not a codec quirk): no fallback is tried."""


def _refused(problem: str, transfer_syntax: str, source: str, frame: int) -> CorruptFrameError:
    """The error for a frame refused before or by its decoder: names the file and frame."""
    where = f"{source}: " if source else ""
    which = f"frame {frame}" if frame >= 0 else "frame"
    return CorruptFrameError(
        f"{where}{_syntax_label(transfer_syntax)} {which} is corrupt: {problem}",
        files=(source,) if source else (),
        frame=frame,
        transfer_syntax=transfer_syntax,
    )


def _all_candidates_failed(
    transfer_syntax: str, codec: str, source: str, errors: list[str]
) -> DecodeError:
    """The error for a frame no candidate could decode; ``errors`` holds one line per try."""
    where = f" in {source}" if source else ""
    return DecodeError(
        f"cannot decode {_syntax_label(transfer_syntax)} frame{where}: " + "; ".join(errors),
        files=(source,) if source else (),
        transfer_syntax=transfer_syntax,
        codec=codec,
    )


def _as_stored(
    decoded: np.ndarray,
    rows: int,
    columns: int,
    samples: int,
    bits_allocated: int,
    pixel_representation: int,
    codec: str,
    transfer_syntax: str,
    source: str,
) -> np.ndarray:
    """Check the size and give the stored bits the dtype of BitsAllocated/PixelRepresentation.

    Codecs pick their own container: JPEG-LS returns unsigned samples for signed data, OpenJPEG
    returns signed ones, 8-bit precision comes back as uint8 even when BitsAllocated is 16. A
    same-width view keeps the bits; a width change keeps the value (the bits that matter).
    """
    where = f" in {source}" if source else ""
    expected = (rows, columns) if samples == 1 else (rows, columns, samples)
    if decoded.dtype.kind not in "ui":
        raise DecodeError(
            f"{codec} returned {decoded.dtype} samples for {_syntax_label(transfer_syntax)}{where}",
            files=(source,) if source else (),
        )
    # Flat arrays come from the RLE decoders, which write rows x columns x samples in order.
    if not (
        decoded.shape == expected
        or (decoded.ndim == 1 and decoded.size == rows * columns * samples)
        or (samples == 1 and decoded.shape == (rows, columns, 1))
    ):
        raise DecodeError(
            f"{codec} decoded {_syntax_label(transfer_syntax)} frame{where} to shape "
            f"{decoded.shape}, expected {expected} (rows x columns x samples)",
            files=(source,) if source else (),
        )
    dtype = stored_dtype(bits_allocated, pixel_representation)
    if decoded.dtype.itemsize == dtype.itemsize:
        stored = decoded.view(dtype)
    else:
        if decoded.dtype.itemsize > dtype.itemsize and decoded.size:
            # Narrowing (a codec container wider than BitsAllocated) must not lose bits.
            low, high = int(decoded.min()), int(decoded.max())
            if low < -(1 << (bits_allocated - 1)) or high >= 1 << bits_allocated:
                raise DecodeError(
                    f"{codec} decoded {_syntax_label(transfer_syntax)} frame{where} to values "
                    f"{low}..{high} that do not fit BitsAllocated {bits_allocated}",
                    files=(source,) if source else (),
                )
        stored = decoded.astype(dtype, casting="unsafe")
    return np.ascontiguousarray(stored.reshape(expected))


# --- implementations: (data, rows, columns, samples, bits, photometric) -> ndarray -----------
# Each returns the codec's own array; _as_stored fixes dtype and checks the size.


def _rle_c(
    data: Buffer, rows: int, columns: int, samples: int, bits_allocated: int, photometric: str
) -> np.ndarray:
    from ._ckernels._rle import rle_decode_frame  # type: ignore[import-not-found]

    return _rle_kernel(rle_decode_frame, data, rows, columns, samples, bits_allocated)


def _rle_numba(
    data: Buffer, rows: int, columns: int, samples: int, bits_allocated: int, photometric: str
) -> np.ndarray:
    from ._kernels.rle import rle_decode_frame

    return _rle_kernel(rle_decode_frame, data, rows, columns, samples, bits_allocated)


def _rle_kernel(
    kernel: Callable[..., int], data: Buffer, rows: int, columns: int, samples: int,
    bits_allocated: int,
) -> np.ndarray:
    """Run fastvol's RLE kernel (C or numba: same signature and statuses) on one frame."""
    bytes_per_sample = bits_allocated // 8
    src = np.frombuffer(data, dtype=np.uint8)
    out = np.empty(rows * columns * samples * bytes_per_sample, dtype=np.uint8)
    status = int(kernel(src, out, rows, columns, bytes_per_sample, samples))
    if status != 0:  # RLE_OK
        # The statuses' messages, from the kernel's source run as plain Python (no numba).
        from ._pykernels.rle import RLE_STATUS_MESSAGES

        raise _Refused(RLE_STATUS_MESSAGES.get(status, f"status {status}"))
    return out.view(f"<u{bytes_per_sample}")


def _rle_planar_to_pixels(planes: np.ndarray, rows: int, columns: int, samples: int) -> np.ndarray:
    # RLE decoders outside fastvol return colour-by-plane; interleave to colour-by-pixel.
    if planes.size != rows * columns * samples:
        return planes
    if samples == 1:
        return planes.reshape(rows, columns)
    return planes.reshape(samples, rows, columns).transpose(1, 2, 0)


def _rle_imagecodecs(
    data: Buffer, rows: int, columns: int, samples: int, bits_allocated: int, photometric: str
) -> np.ndarray:
    import imagecodecs

    dtype = f"<u{bits_allocated // 8}"
    planes = np.frombuffer(imagecodecs.dicomrle_decode(data, dtype), dtype=dtype)
    return _rle_planar_to_pixels(planes, rows, columns, samples)


def _rle_pylibjpeg(
    data: Buffer, rows: int, columns: int, samples: int, bits_allocated: int, photometric: str
) -> np.ndarray:
    from rle.rle import decode_frame

    dtype = f"<u{bits_allocated // 8}"
    planes = np.frombuffer(
        decode_frame(bytes(data), rows * columns, bits_allocated, "<"), dtype=dtype
    )
    return _rle_planar_to_pixels(planes, rows, columns, samples)


def _rle_pydicom(
    data: Buffer, rows: int, columns: int, samples: int, bits_allocated: int, photometric: str
) -> np.ndarray:
    from pydicom.pixels.decoders.rle import _rle_decode_frame

    dtype = f"<u{bits_allocated // 8}"
    frame = _rle_decode_frame(bytes(data), rows, columns, samples, bits_allocated)
    return _rle_planar_to_pixels(np.frombuffer(frame, dtype=dtype), rows, columns, samples)


def _jpeg8(
    data: Buffer, rows: int, columns: int, samples: int, bits_allocated: int, photometric: str
) -> np.ndarray:
    import imagecodecs

    # libjpeg-turbo 3 decodes baseline, 12-bit extended and lossless (process 14, any
    # predictor) and is the fastest lossless JPEG decoder measured (1.1 ms vs 1.7 ms ljpeg).
    if samples == 3 and photometric.strip() == "RGB":
        # Without JFIF/Adobe markers libjpeg-turbo assumes YCbCr; DICOM RGB means untransformed.
        return imagecodecs.jpeg8_decode(data, colorspace="RGB", outcolorspace="RGB")
    return imagecodecs.jpeg8_decode(data)


def _ljpeg(
    data: Buffer, rows: int, columns: int, samples: int, bits_allocated: int, photometric: str
) -> np.ndarray:
    import imagecodecs

    return imagecodecs.ljpeg_decode(data)


def _jpegls(
    data: Buffer, rows: int, columns: int, samples: int, bits_allocated: int, photometric: str
) -> np.ndarray:
    import imagecodecs

    return imagecodecs.jpegls_decode(data)


def _jpeg2k(
    data: Buffer, rows: int, columns: int, samples: int, bits_allocated: int, photometric: str
) -> np.ndarray:
    import imagecodecs

    # One thread per frame: parallelism comes from decoding frames concurrently.
    return imagecodecs.jpeg2k_decode(data, numthreads=1)


def _htj2k(
    data: Buffer, rows: int, columns: int, samples: int, bits_allocated: int, photometric: str
) -> np.ndarray:
    import imagecodecs

    return imagecodecs.htj2k_decode(data)


def _libjpeg(
    data: Buffer, rows: int, columns: int, samples: int, bits_allocated: int, photometric: str
) -> np.ndarray:
    from libjpeg import decode

    return decode(bytes(data))


def _openjpeg(
    data: Buffer, rows: int, columns: int, samples: int, bits_allocated: int, photometric: str
) -> np.ndarray:
    from openjpeg import decode

    return decode(bytes(data))


def _pyjpegls(
    data: Buffer, rows: int, columns: int, samples: int, bits_allocated: int, photometric: str
) -> np.ndarray:
    from jpeg_ls import decode_pixel_data

    buffer, info = decode_pixel_data(bytes(data))
    dtype = "<u1" if info["bits_per_sample"] <= 8 else "<u2"
    decoded = np.frombuffer(buffer, dtype=dtype)
    components = int(info["components"])
    height, width = int(info["height"]), int(info["width"])
    if components > 1 and info["interleave_mode"] == 0:  # colour-by-plane
        return decoded.reshape(components, height, width).transpose(1, 2, 0)
    if components > 1:
        return decoded.reshape(height, width, components)
    return decoded.reshape(height, width)


_IMPLEMENTATIONS: dict[str, Callable[[Any, int, int, int, int, str], np.ndarray]] = {
    _RLE_C.name: _rle_c,
    _RLE_NUMBA.name: _rle_numba,
    _RLE_IMAGECODECS.name: _rle_imagecodecs,
    _RLE_PYLIBJPEG.name: _rle_pylibjpeg,
    _RLE_PYDICOM.name: _rle_pydicom,
    _JPEG8.name: _jpeg8,
    _LJPEG.name: _ljpeg,
    _JPEGLS.name: _jpegls,
    _JPEG2K.name: _jpeg2k,
    _HTJ2K.name: _htj2k,
    _LIBJPEG.name: _libjpeg,
    _OPENJPEG.name: _openjpeg,
    _PYJPEGLS.name: _pyjpegls,
}
