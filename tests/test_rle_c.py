"""The C RLE kernel (fastvol._ckernels._rle): the numba kernel's statuses and bytes, pydicom's image.

Every comparison fills both output buffers with the same sentinel first and compares all of
them, so the bytes a failing segment leaves behind must agree too, not only the status.
"""

from __future__ import annotations

import struct
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_decode import (
    corrupted_rle,
    frame_kwargs,
    reference_rle,
    rle_encode,
    rle_images,
)

from fastvol import _ckernels, decode
from fastvol._kernels import rle as numba_rle
from fastvol.decode import get_decoder

ckernel = pytest.importorskip(
    "fastvol._ckernels._rle", reason="C kernels not built: python setup.py build_ext --inplace"
)

# Also run with NUMBA_DISABLE_JIT=1 (ci/test.sh): the C kernel against the kernel's Python body.
pytestmark = pytest.mark.kernels

RLE = "1.2.840.10008.1.2.5"
STATUSES = ("RLE_OK", "RLE_SHORT_HEADER", "RLE_SEGMENT_COUNT", "RLE_BAD_OFFSET",
            "RLE_SHORT_SEGMENT", "RLE_BAD_OUTPUT")  # fmt: skip


def both(data: bytes, rows: int, columns: int, bps: int, samples: int, size: int) -> tuple[int, np.ndarray]:
    """Run the C and the numba kernel on the same input; assert equal status and bytes."""
    fill = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8)
    c_out, numba_out = fill.copy(), fill.copy()
    c_status = ckernel.rle_decode_frame(data, c_out, rows, columns, bps, samples)
    numba_status = numba_rle.rle_decode_frame(
        np.frombuffer(data, np.uint8), numba_out, rows, columns, bps, samples
    )
    assert c_status == numba_status
    np.testing.assert_array_equal(c_out, numba_out)
    return c_status, c_out


def test_status_codes_are_the_kernels() -> None:
    for name in STATUSES:
        assert getattr(ckernel, name) == getattr(numba_rle, name)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=rle_images())
def test_valid_frames_equal_numba_and_pydicom(case: tuple[np.ndarray, int]) -> None:
    # 1, 2 and 4 bytes per sample, 1 and 3 samples, odd sizes, long and short runs.
    image, bits = case
    rows, columns = image.shape[:2]
    samples = image.shape[2] if image.ndim == 3 else 1
    data = rle_encode(image, bits)
    status, out = both(data, rows, columns, bits // 8, samples, image.size * (bits // 8))
    assert status == ckernel.RLE_OK
    np.testing.assert_array_equal(out.view(f"<u{bits // 8}"), reference_rle(data, rows, columns, samples, bits))
    np.testing.assert_array_equal(out.view(f"<u{bits // 8}"), image.reshape(-1))


@pytest.mark.parametrize("size", [512, 1449])  # 1449: a scratch of over 4 MiB (huge pages)
def test_large_ct_frame(size: int) -> None:
    rng = np.random.default_rng(3)
    noise = rng.normal(40, 20, (size, size))
    image = np.where(rng.random((size, size)) < 0.5, -1000, noise).astype(np.int16)
    data = rle_encode(image.view(np.uint16), 16)
    status, out = both(data, size, size, 2, 1, image.nbytes)
    assert status == ckernel.RLE_OK
    np.testing.assert_array_equal(out.view(np.int16).reshape(size, size), image)
    cut = data[: len(data) - 1000]  # the LSB segment runs out: MSB plane in place, LSB partly
    assert both(cut, size, size, 2, 1, image.nbytes)[0] == ckernel.RLE_SHORT_SEGMENT


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=corrupted_rle())
def test_corrupted_frames_equal_numba(case: tuple[bytes, int, int, int, int]) -> None:
    # Truncated, bytes flipped, an offset or the segment count overwritten.
    data, rows, columns, samples, bits = case
    size = rows * columns * samples * bits // 8
    status, out = both(data, rows, columns, bits // 8, samples, size)
    if status == ckernel.RLE_OK:  # what the kernel accepts, pydicom decodes the same way
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom warns of a pad byte
            expected = reference_rle(data, rows, columns, samples, bits)
        np.testing.assert_array_equal(out.view(f"<u{bits // 8}"), expected)


@st.composite
def packbits(draw: st.DrawFn, count: int) -> bytes:
    """A PackBits segment of about ``count`` bytes: literal, replicate and no-op runs, whose
    last run may overshoot, then maybe a pad byte or two, a cut, or a changed byte."""
    out, written = bytearray(), 0
    while written < count:
        kind = draw(st.integers(0, 9))
        if kind == 0:
            out.append(0x80)  # no-op
            continue
        run = draw(st.integers(1, 128 if kind > 5 else min(128, count - written + 2)))
        if kind <= 5:  # literal
            out += bytes([run - 1]) + draw(st.binary(min_size=run, max_size=run))
        else:  # replicate (a run of 1 is a literal's job: 0x80 + 1 is 257 - 128)
            run = max(run, 2)
            out += bytes([257 - run, draw(st.integers(0, 255))])
        written += run
    tail = draw(st.sampled_from(["", "", "pad", "pad2", "cut", "change"]))
    if tail == "pad":
        out += b"\0"
    elif tail == "pad2":
        out += b"\0\0"
    elif tail == "cut" and out:
        del out[draw(st.integers(0, len(out) - 1)) :]
    elif tail == "change" and out:
        out[draw(st.integers(0, len(out) - 1))] = draw(st.integers(0, 255))
    return bytes(out)


@st.composite
def hostile(draw: st.DrawFn) -> tuple[bytes, int, int, int, int, int]:
    """Frames from plausible to absurd: sizes, output length, segment count, offsets, segments."""
    weird = draw(st.integers(0, 9)) == 0  # one in ten: any sizes and output length
    if weird:
        rows, columns = draw(st.integers(-2, 9)), draw(st.integers(-2, 9))
        bps, samples = draw(st.integers(0, 5)), draw(st.integers(0, 4))
    else:
        rows, columns = draw(st.integers(0, 9)), draw(st.integers(1, 9))
        bps, samples = draw(st.sampled_from([1, 2, 4])), draw(st.sampled_from([1, 3]))
    expected = max(rows, 0) * max(columns, 0) * max(bps, 0) * max(samples, 0)
    size = draw(st.integers(0, 80)) if weird else expected
    kind = draw(st.integers(0, 9))
    if kind == 0:  # random bytes
        return draw(st.binary(max_size=300)), rows, columns, bps, samples, size
    stride = max(bps, 0) * max(samples, 0)
    count = stride if kind > 2 else draw(st.one_of(st.integers(0, 16), st.integers(0, 2**32 - 1)))
    segments = [draw(packbits(max(rows, 0) * max(columns, 0))) for _ in range(min(count, 15))]
    offsets, at = [], 64
    for segment in segments:
        offsets.append(at)
        at += len(segment)
    body = b"".join(segments)
    offsets += [0] * (15 - len(offsets))
    if kind == 1:  # any offsets
        end = 64 + len(body)
        offset = st.one_of(st.integers(0, end + 2), st.integers(60, 68), st.integers(0, 2**32 - 1))
        offsets = draw(st.lists(offset, min_size=15, max_size=15))
    elif kind == 2 and count:  # one offset moved a little
        i = draw(st.integers(0, min(count, 15) - 1))
        offsets[i] = max(0, offsets[i] + draw(st.integers(-3, 3)))
    data = struct.pack("<16I", count, *offsets) + body
    if draw(st.integers(0, 4)) == 0:
        data = data[: draw(st.integers(0, len(data)))]
    return data, rows, columns, bps, samples, size


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=hostile())
def test_hostile_frames_equal_numba(case: tuple[bytes, int, int, int, int, int]) -> None:
    status, _ = both(*case)
    assert 0 <= status <= 5


def test_sizes_that_overflow_int64_are_refused() -> None:
    out = np.empty(16, np.uint8)
    big = 2**62
    for args in ((big, big, 1, 1), (1, 1, big, big), (big, 4, 4, 1), (-1, 4, 4, 1)):
        assert ckernel.rle_decode_frame(b"\0" * 64, out, *args) == ckernel.RLE_BAD_OUTPUT


def test_buffers_it_takes_and_refuses() -> None:
    data = rle_encode(np.arange(12, dtype=np.uint16).reshape(3, 4), 16)
    for src in (data, bytearray(data), memoryview(data), np.frombuffer(data, np.uint8)):
        out = bytearray(24)
        assert ckernel.rle_decode_frame(src, out, 3, 4, 2, 1) == ckernel.RLE_OK
        assert np.frombuffer(out, "<u2").tolist() == list(range(12))
    with pytest.raises(TypeError):
        ckernel.rle_decode_frame(data, bytes(24), 3, 4, 2, 1)  # read-only
    with pytest.raises(TypeError):
        ckernel.rle_decode_frame(data, np.empty(12, np.uint16), 3, 4, 2, 1)  # not bytes
    with pytest.raises(TypeError):
        ckernel.rle_decode_frame(data, np.empty(48, np.uint8)[::2], 3, 4, 2, 1)  # strided
    with pytest.raises(TypeError):
        ckernel.rle_decode_frame(data, bytearray(24), 3.0, 4, 2, 1)
    # The output aliasing the input: garbage, but in bounds.
    frame = bytearray(data)
    assert 0 <= ckernel.rle_decode_frame(frame, frame, 1, len(frame), 1, 1) <= 5


def test_decoder_uses_c_and_falls_back_to_numba(monkeypatch: pytest.MonkeyPatch) -> None:
    image = np.arange(30, dtype=np.uint16).reshape(5, 6)
    data = rle_encode(image, 16)
    names = {}
    for native in ("1", "0"):
        monkeypatch.setenv("FASTVOL_NATIVE", native)
        get_decoder.cache_clear()
        try:
            decoder = get_decoder(RLE)
            names[native] = (decoder.name, decoder.releases_gil, decoder.fallbacks[:1])
            np.testing.assert_array_equal(decoder(data, **frame_kwargs(5, 6, 1, 16)), image)
        finally:
            get_decoder.cache_clear()
    assert names == {"1": ("fastvol.rle-c", True, ("fastvol.rle",)),
                     "0": ("fastvol.rle", True, ("pylibjpeg-rle",))}  # fmt: skip
    assert not _ckernels.available("_rle")  # FASTVOL_NATIVE=0 still set
    assert "pip install numba" in decode._install_hint(RLE)


def test_corrupt_frame_refused_by_c_as_by_numba() -> None:
    data = bytearray(rle_encode(np.arange(64, dtype=np.uint8).reshape(8, 8), 8))
    data[64:] = b"\x05" * (len(data) - 64)  # literal runs of 6: the segment is not 8 x 8 bytes
    for name in ("fastvol.rle-c", "fastvol.rle"):
        decoder = decode.Decoder(name, RLE, True, fallbacks=("pydicom.rle",))
        with pytest.raises(decode.CorruptFrameError, match=r"x\.dcm: RLE Lossless .*frame 2 is corrupt"):
            decoder(bytes(data), **frame_kwargs(8, 8, 1, 8), source="x.dcm", frame=2)
