"""DICOM RLE Lossless (PS3.5 Annex G) frame decoder, compiled with numba.

A frame is a 64-byte header (segment count, then 15 little-endian uint32 segment offsets from
the start of the frame) followed by one PackBits segment per byte plane: for every sample, the
most significant byte plane first. The kernel writes little-endian, colour-by-pixel samples,
so ``out.view(dtype).reshape(rows, columns[, samples])`` is the image.

Every index is checked against the array it reads or writes before use (numba does not
bounds-check), so any input bytes give a status code, never a crash. The pure-Python reference
is ``pydicom.pixels.decoders.rle._rle_decode_frame``; the tests compare against it.
"""

from __future__ import annotations

import numpy as np

from . import jit

__all__ = [
    "RLE_BAD_OFFSET",
    "RLE_BAD_OUTPUT",
    "RLE_OK",
    "RLE_SEGMENT_COUNT",
    "RLE_SHORT_HEADER",
    "RLE_SHORT_SEGMENT",
    "RLE_STATUS_MESSAGES",
    "rle_decode_frame",
]

RLE_OK = 0
#: Fewer than 64 bytes: no room for the RLE header.
RLE_SHORT_HEADER = 1
#: Header segment count is not samples x bytes per sample (or exceeds 15).
RLE_SEGMENT_COUNT = 2
#: A segment offset points inside the header, past the end, or before the previous segment.
RLE_BAD_OFFSET = 3
#: A segment does not decode to exactly rows x columns bytes using exactly its own bytes
#: (truncated or corrupt data: it runs out early, or bytes are left over beyond one pad byte).
RLE_SHORT_SEGMENT = 4
#: ``out`` does not have rows x columns x bytes per sample x samples bytes.
RLE_BAD_OUTPUT = 5

RLE_STATUS_MESSAGES: dict[int, str] = {
    RLE_SHORT_HEADER: "fewer than 64 bytes, no room for the RLE header",
    RLE_SEGMENT_COUNT: "RLE header segment count does not match samples x bytes per sample",
    RLE_BAD_OFFSET: "RLE segment offset outside the frame or out of order",
    RLE_SHORT_SEGMENT: (
        "an RLE segment does not decode to exactly rows x columns bytes from its own bytes "
        "(truncated or corrupt)"
    ),
    RLE_BAD_OUTPUT: "output buffer size does not match the frame size",
}

_HEADER_BYTES = 64
_MAX_SEGMENTS = 15
#: Bytes a segment may hold after its last run: the pad byte to an even length (PS3.5 G.3.1).
_SEGMENT_SLACK = 1


@jit
def _read_u32(src: np.ndarray, pos: int) -> int:
    # Widen to int64 first: uint8 << 8 stays uint8 in plain-Python numpy, and unsigned ints
    # mixed with signed ones turn into float64 under numba's typing.
    return (
        np.int64(src[pos])
        | (np.int64(src[pos + 1]) << 8)
        | (np.int64(src[pos + 2]) << 16)
        | (np.int64(src[pos + 3]) << 24)
    )


@jit
def _decode_segment(
    src: np.ndarray, start: int, end: int, out: np.ndarray, first: int, stride: int, count: int
) -> int:
    """PackBits-decode ``src[start:end]`` into ``out[first::stride]``, ``count`` bytes.

    Returns the number of bytes written (``< count`` when the segment runs out), or -1 when
    the runs reach ``count`` with more than one byte of the segment left over, or with a
    literal run reaching past the segment's end: the segment is not the image (random bytes
    decode to a wrong length). Bytes a final replicate run decodes past ``count`` are dropped,
    as pydicom does.
    """
    written = 0
    pos = start
    dst = first
    while written < count and pos < end:
        header = np.int64(src[pos])
        pos += 1
        if header < 128:
            # Literal run: copy the next header + 1 bytes.
            run = header + 1
            run = min(run, end - pos)
            run = min(run, count - written)
            for k in range(run):
                out[dst] = src[pos + k]
                dst += stride
            pos += header + 1
            written += run
        elif header > 128:
            # Replicate run: the next byte 257 - header times (header is -N as int8, N + 1 copies).
            if pos >= end:
                break
            value = src[pos]
            pos += 1
            run = 257 - header
            run = min(run, count - written)
            for _ in range(run):
                out[dst] = value
                dst += stride
            written += run
        # header == 128 (-128) is a no-op by definition.
    if written == count and not 0 <= end - pos <= _SEGMENT_SLACK:
        return -1
    return written


@jit
def rle_decode_frame(
    src: np.ndarray,
    out: np.ndarray,
    rows: int,
    columns: int,
    bytes_per_sample: int,
    samples: int,
) -> int:
    """Decode one RLE Lossless frame into ``out``.

    Parameters
    ----------
    src
        The frame's bytes, ``uint8``, 1-D (header and segments, fragments already joined).
    out
        Destination, ``uint8``, 1-D, ``rows * columns * bytes_per_sample * samples`` bytes.
        Receives little-endian samples, colour-by-pixel (planar configuration 0). Bytes of a
        segment that fails to decode are left as they were.
    rows, columns
        Frame size in pixels.
    bytes_per_sample
        BitsAllocated // 8 (1, 2 or 4 in practice).
    samples
        SamplesPerPixel.

    Returns
    -------
    int
        ``RLE_OK`` (0) on success, otherwise one of the ``RLE_*`` codes; see
        ``RLE_STATUS_MESSAGES``.
    """
    n_src = src.shape[0]
    pixels = rows * columns
    stride = bytes_per_sample * samples
    if rows < 0 or columns < 0 or bytes_per_sample < 1 or samples < 1:
        return RLE_BAD_OUTPUT
    if out.shape[0] != pixels * stride:
        return RLE_BAD_OUTPUT
    if n_src < _HEADER_BYTES:
        return RLE_SHORT_HEADER
    n_segments = _read_u32(src, 0)
    if n_segments != stride or n_segments > _MAX_SEGMENTS:
        return RLE_SEGMENT_COUNT

    for segment in range(n_segments):
        start = _read_u32(src, 4 + 4 * segment)
        if segment + 1 < n_segments:
            end = _read_u32(src, 8 + 4 * segment)
        else:
            end = n_src
        if start < _HEADER_BYTES or start > end or end > n_src:
            return RLE_BAD_OFFSET
        sample = segment // bytes_per_sample
        # Segments run MSB first; little-endian output puts the MSB at the highest address.
        byte_in_sample = bytes_per_sample - 1 - segment % bytes_per_sample
        first = sample * bytes_per_sample + byte_in_sample
        if _decode_segment(src, start, end, out, first, stride, pixels) < pixels:
            return RLE_SHORT_SEGMENT
    return RLE_OK
