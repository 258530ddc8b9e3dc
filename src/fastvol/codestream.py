"""Read a compressed frame's own header before any decoder sees it.

A codestream states its image size and sample precision (JPEG SOFn, JPEG-LS SOF55, JPEG 2000 and
HTJ2K SIZ, the RLE header's segment table). Decoders allocate what the codestream states, not
what the DICOM header states, so a 64 x 64 frame whose codestream claims 65535 x 65535 costs
gigabytes and minutes inside the codec. :func:`frame_problem` parses those few bytes
(microseconds) and says what does not match Rows, Columns, SamplesPerPixel and BitsAllocated,
or that the stream is cut short (no end-of-image / end-of-codestream marker), so the caller
refuses the frame before a decoder allocates anything.

Only plain bytes in, a message (or None) out: no codec, no numpy.
"""

from __future__ import annotations

import struct

__all__ = ["CodestreamInfo", "frame_problem", "parse_j2k", "parse_jpeg", "rle_problem"]

#: (height, width, components, precision) as the codestream declares them.
CodestreamInfo = tuple[int, int, int, int]

_SOF_MARKERS = frozenset(
    [0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF, 0xF7]
)
#: Markers without a length field (RSTn, TEM, SOI, EOI).
_STANDALONE = frozenset([0x01, *range(0xD0, 0xD9)])
_SOS = 0xDA
_EOI = b"\xff\xd9"
_J2K_SOC_SIZ = b"\xff\x4f\xff\x51"
_JP2_SIGNATURE = b"\x00\x00\x00\x0cjP  "
#: How far into a JP2 file the codestream (jp2c box contents) may start.
_JP2_SEARCH = 4096
_RLE_HEADER = 64


class CodestreamError(ValueError):
    """The codestream header cannot be parsed (internal: turned into a message)."""


def parse_jpeg(data: bytes | bytearray) -> CodestreamInfo:
    """Height, width, components and precision from a JPEG / JPEG-LS frame header.

    Walks the marker segments from SOI to the first SOFn (SOF0-SOF15 less DHT/JPG/DAC) or SOF55
    (JPEG-LS); a scan (SOS) before any frame header, a truncated segment or a byte that is
    not a marker raises :class:`CodestreamError`.
    """
    if data[:2] != b"\xff\xd8":
        raise CodestreamError("no JPEG start-of-image marker (FFD8)")
    pos, n = 2, len(data)
    while pos + 4 <= n:
        if data[pos] != 0xFF:
            raise CodestreamError(f"byte {pos} is {data[pos]:02X} where a JPEG marker belongs")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _STANDALONE:
            pos += 2
            continue
        (length,) = struct.unpack_from(">H", data, pos + 2)
        if length < 2:
            raise CodestreamError(f"JPEG marker FF{marker:02X} has length {length}")
        if marker in _SOF_MARKERS:
            if length < 8 or pos + 10 > n:
                raise CodestreamError("JPEG frame header is truncated")
            precision, height, width, components = struct.unpack_from(">BHHB", data, pos + 4)
            return height, width, components, precision
        if marker == _SOS:
            raise CodestreamError("JPEG scan before any frame header (SOFn)")
        pos += 2 + length
    raise CodestreamError("no JPEG frame header (SOFn) before the end of the data")


def parse_j2k(data: bytes | bytearray) -> CodestreamInfo:
    """Height, width, components and highest precision from a JPEG 2000 / HTJ2K SIZ segment.

    Accepts a raw codestream (SOC then SIZ) or a JP2 file whose codestream starts within its
    first 4 KiB.
    """
    start = 0
    if data.startswith(_JP2_SIGNATURE):
        start = data.find(_J2K_SOC_SIZ, len(_JP2_SIGNATURE), _JP2_SEARCH)
        if start < 0:
            raise CodestreamError("JP2 file without a codestream (SOC, SIZ) in its first 4 KiB")
    elif data[:4] != _J2K_SOC_SIZ:
        raise CodestreamError("no JPEG 2000 start of codestream and SIZ (FF4F FF51)")
    if start + 42 > len(data):
        raise CodestreamError("JPEG 2000 SIZ segment is truncated")
    xsiz, ysiz, xosiz, yosiz = struct.unpack_from(">IIII", data, start + 8)
    (csiz,) = struct.unpack_from(">H", data, start + 40)
    if csiz < 1 or start + 42 + 3 * csiz > len(data):
        raise CodestreamError(f"JPEG 2000 SIZ segment with {csiz} components is truncated")
    precision = max((data[start + 42 + 3 * c] & 0x7F) + 1 for c in range(csiz))
    if xosiz > xsiz or yosiz > ysiz:
        raise CodestreamError("JPEG 2000 image offset lies past the image size")
    return ysiz - yosiz, xsiz - xosiz, csiz, precision


def rle_problem(data: bytes | bytearray, segments: int) -> str | None:
    """What is wrong with an RLE frame's 64-byte header, or None.

    The segment count must be ``segments`` (SamplesPerPixel x bytes per sample) and the
    offsets must start after the header, ascend, and stay inside the frame.
    """
    if len(data) < _RLE_HEADER:
        return f"RLE frame of {len(data)} bytes has no room for its 64-byte header"
    header = struct.unpack_from("<16I", data, 0)
    if header[0] != segments:
        return f"RLE header declares {header[0]} segments, the image needs {segments}"
    offsets = [*header[1 : 1 + segments], len(data)]
    if offsets[0] != _RLE_HEADER:
        return f"RLE first segment offset {offsets[0]} is not 64"
    for i in range(segments):
        if not offsets[i] <= offsets[i + 1] <= len(data):
            return (
                f"RLE segment {i} offset {offsets[i]} .. {offsets[i + 1]} is out of order or "
                f"past the frame ({len(data)} bytes)"
            )
    return None


def _ends_with_marker(data: bytes | bytearray) -> bool:
    """True when the stream ends with FFD9 (JPEG EOI, J2K EOC).

    Up to 8 bytes of padding after it are allowed: writers pad odd-length streams with 00 or FF.
    """
    tail = data[-10:]
    return any(tail.rstrip(pad).endswith(_EOI) for pad in (b"\x00", b"\xff", b"\x00\xff"))


def frame_problem(
    kind: str,
    data: bytes | bytearray,
    rows: int,
    columns: int,
    samples: int,
    bits_allocated: int,
) -> str | None:
    """What keeps a frame's codestream from being the declared image, or None.

    Parameters
    ----------
    kind
        ``"rle"``, ``"jpeg"`` (baseline, extended, lossless, JPEG-LS) or ``"j2k"`` (JPEG 2000
        and HTJ2K).
    data
        The frame's codestream, fragments joined.
    rows, columns, samples, bits_allocated
        What the DICOM header declares.

    Returns
    -------
    str or None
        A sentence for the error message; None when the header matches and the stream ends
        with its end marker.
    """
    if kind == "rle":
        return rle_problem(data, samples * (bits_allocated // 8))
    try:
        parse = parse_jpeg if kind == "jpeg" else parse_j2k
        height, width, components, precision = parse(data)
    except (CodestreamError, struct.error) as exc:
        return f"codestream header unreadable: {exc}"
    expected = (rows, columns) if samples == 1 else (rows, columns, samples)
    declared = (height, width) if components == 1 else (height, width, components)
    if (height, width, components) != (rows, columns, samples):
        return f"codestream header declares shape {declared}, expected {expected}"
    if not 1 <= precision <= bits_allocated:
        return f"codestream precision {precision} bits does not fit BitsAllocated {bits_allocated}"
    if not _ends_with_marker(data):
        marker = "end-of-image" if kind == "jpeg" else "end-of-codestream"
        return f"codestream is truncated: no {marker} marker (FFD9) at its end"
    return None
