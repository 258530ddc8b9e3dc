"""Hostile files are refused fast and small: codestream headers, end markers, RLE segments,
deflate bombs and fragment floods (files made with tests/factory.py)."""

from __future__ import annotations

import struct
import time
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.encaps import encapsulate, generate_frames

import factory
import fastvol
from fastvol import codestream
from fastvol.decode import CorruptFrameError, get_decoder
from fastvol.errors import CorruptFileError, DecodeError
from fastvol.frames import frame_ranges, max_fragments
from fastvol.sources import MemorySource

JPEG_LS = factory.JPEGLSLossless
JPEG_SV1 = factory.JPEGLosslessSV1
JPEG_BASELINE = factory.JPEGBaseline8Bit
J2K = factory.JPEG2000Lossless
HTJ2K = factory.HTJ2KLossless
RLE = factory.RLELossless
SOF_MARKERS = (b"\xff\xc0", b"\xff\xc1", b"\xff\xc3", b"\xff\xf7")


def one_file(tmp_path: Path, ts: str, rows: int = 64, columns: int = 64) -> Path:
    """A one-slice series in ``ts`` (skipped when the encoder is missing)."""
    if not factory.can_encode(ts):
        pytest.skip(f"no encoder for {ts}")
    bits = 8 if ts == JPEG_BASELINE else 16
    ws = factory.write_series(tmp_path / "s", n=1, rows=rows, columns=columns, transfer_syntax=ts,
                              bits_allocated=bits, signed=bits == 16)  # fmt: skip
    return Path(ws.paths[0])


def first_frame(path: Path) -> bytes:
    ds = pydicom.dcmread(path)
    return next(generate_frames(ds.PixelData, number_of_frames=1))


def replace_frame(path: Path, frame: bytes) -> None:
    ds = pydicom.dcmread(path)
    ds.PixelData = encapsulate([frame])
    ds.save_as(path)


def claim_size(frame: bytes, height: int, width: int) -> bytes:
    """The frame with its codestream header claiming ``height x width``."""
    data = bytearray(frame)
    if data[:4] == b"\xff\x4f\xff\x51":
        data[8:12] = struct.pack(">I", width)
        data[12:16] = struct.pack(">I", height)
        data[16:24] = bytes(8)  # no image offset
        return bytes(data)
    at = min(p for p in (data.find(m) for m in SOF_MARKERS) if p >= 0)
    data[at + 5 : at + 9] = struct.pack(">HH", height, width)
    return bytes(data)


# --- codestream headers -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ts", "size"),
    [(JPEG_LS, 65535), (JPEG_BASELINE, 65535), (JPEG_SV1, 65535), (J2K, 100000), (HTJ2K, 100000)],
)
def test_huge_codestream_claim_refused_fast(tmp_path: Path, ts: str, size: int) -> None:
    path = one_file(tmp_path, ts)
    replace_frame(path, claim_size(first_frame(path), size, size))
    fastvol.load(one_file(tmp_path / "ok", ts), threads=1)  # warm-up: imports and kernels
    tracemalloc.start()
    start = time.perf_counter()
    with pytest.raises(CorruptFileError) as info:
        fastvol.load(path, threads=1)
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert seconds < 1.0
    assert peak < 32 << 20
    message = str(info.value)
    assert path.name in message and "frame 0" in message
    if ts in (J2K, HTJ2K):
        assert f"({size}, {size})" in message and "expected (64, 64)" in message


@pytest.mark.parametrize("ts", [JPEG_LS, JPEG_SV1, JPEG_BASELINE, J2K, HTJ2K])
def test_refused_frame_is_not_retried(tmp_path: Path, ts: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from fastvol import decode

    path = one_file(tmp_path, ts)
    frame = claim_size(first_frame(path), 4000, 4000)
    calls: list[str] = []
    for name, impl in list(decode._IMPLEMENTATIONS.items()):
        def spy(*args, _name=name, _impl=impl):  # type: ignore[no-untyped-def]
            calls.append(_name)
            return _impl(*args)

        monkeypatch.setitem(decode._IMPLEMENTATIONS, name, spy)
    with pytest.raises(CorruptFrameError, match="frame 3"):
        get_decoder(ts)(frame, rows=64, columns=64, samples_per_pixel=1, bits_allocated=16,
                        bits_stored=16, pixel_representation=0, source="x.dcm", frame=3)  # fmt: skip
    assert calls == []


def test_precision_over_bits_allocated_refused(tmp_path: Path) -> None:
    frame = bytearray(first_frame(one_file(tmp_path, JPEG_LS)))
    at = frame.find(b"\xff\xf7")
    frame[at + 4] = 16
    with pytest.raises(CorruptFrameError, match="precision 16"):
        get_decoder(JPEG_LS)(bytes(frame), rows=64, columns=64, samples_per_pixel=1, bits_allocated=8,
                             bits_stored=8, pixel_representation=0, source="x.dcm")  # fmt: skip


def test_parsers_read_real_headers(tmp_path: Path) -> None:
    assert codestream.parse_jpeg(first_frame(one_file(tmp_path / "a", JPEG_LS, 40, 30)))[:3] == (40, 30, 1)
    assert codestream.parse_j2k(first_frame(one_file(tmp_path / "b", J2K, 40, 30)))[:3] == (40, 30, 1)


# --- truncated streams and corrupt RLE --------------------------------------------------------


@pytest.mark.parametrize("ts", [JPEG_LS, JPEG_SV1, factory.JPEGLossless, J2K, HTJ2K])
@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_truncated_stream_refused(tmp_path: Path, ts: str, keep: float) -> None:
    path = one_file(tmp_path, ts)
    frame = first_frame(path)
    replace_frame(path, frame[: int(len(frame) * keep)])
    with pytest.raises(CorruptFileError, match=r"frame 0 .*truncated|frame 0 .*end"):
        fastvol.load(path, threads=1)


def test_random_rle_segments_refused(tmp_path: Path) -> None:
    path = one_file(tmp_path, RLE)
    frame = bytearray(first_frame(path))
    rng = np.random.default_rng(0)
    for trial in range(20):
        body = bytes(rng.integers(0, 256, len(frame) - 64, dtype=np.uint8))
        with pytest.raises(CorruptFrameError, match="x.dcm"):
            get_decoder(RLE)(bytes(frame[:64]) + body, rows=64, columns=64, samples_per_pixel=1,
                             bits_allocated=16, bits_stored=16, pixel_representation=0,
                             source="x.dcm", frame=trial)  # fmt: skip


def test_random_rle_file_refused(tmp_path: Path) -> None:
    path = one_file(tmp_path, RLE)
    frame = first_frame(path)
    body = bytes(np.random.default_rng(1).integers(0, 256, len(frame) - 64, dtype=np.uint8))
    replace_frame(path, frame[:64] + body)
    with pytest.raises(CorruptFileError, match="frame 0"):
        fastvol.load(path, threads=1)


def test_rle_header_checked() -> None:
    assert codestream.rle_problem(b"\0" * 10, 1) is not None
    header = struct.pack("<16I", 2, 64, 70, *[0] * 13)
    assert "segments" in (codestream.rle_problem(header + b"\0" * 20, 1) or "")
    assert codestream.rle_problem(header + b"\0" * 20, 2) is None
    bad = struct.pack("<16I", 2, 64, 9999, *[0] * 13)
    assert "past the frame" in (codestream.rle_problem(bad + b"\0" * 20, 2) or "")


# --- deflate ----------------------------------------------------------------------------------


def deflate_bomb(path: Path, extra_mib: int) -> None:
    """Append ``extra_mib`` MiB of zeros to a deflated file's data set (a few kB on disk)."""
    data = path.read_bytes()
    (meta_length,) = struct.unpack_from("<I", data, 140)
    start = 144 + meta_length
    inflated = zlib.decompress(data[start:], -zlib.MAX_WBITS)
    packer = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    parts = [packer.compress(inflated)]
    zeros = bytes(1 << 20)
    parts += [packer.compress(zeros) for _ in range(extra_mib)]
    path.write_bytes(data[:start] + b"".join(parts) + packer.flush())


def test_deflated_bomb_stops_early(tmp_path: Path) -> None:
    ws = factory.write_series(tmp_path / "d", n=1, rows=64, columns=64,
                              transfer_syntax=factory.DeflatedExplicitVRLittleEndian)  # fmt: skip
    path = Path(ws.paths[0])
    expected = fastvol.load(path, threads=1).array
    deflate_bomb(path, 256)  # 256 MiB inflated, about 250 kB on disk
    assert path.stat().st_size < 2 << 20
    tracemalloc.start()
    start = time.perf_counter()
    got = fastvol.load(path, threads=1).array
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    np.testing.assert_array_equal(got, expected)
    assert seconds < 2.0
    assert peak < 16 << 20


def test_deflated_short_pixels_refused(tmp_path: Path) -> None:
    ws = factory.write_series(tmp_path / "d", n=1, rows=64, columns=64,
                              transfer_syntax=factory.DeflatedExplicitVRLittleEndian)  # fmt: skip
    path = Path(ws.paths[0])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptFileError):
        fastvol.load(path, threads=1)


# --- fragment floods --------------------------------------------------------------------------


def empty_items(n: int) -> bytes:
    item = b"\xfe\xff\x00\xe0\x00\x00\x00\x00"
    return item + item * n + b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"


def test_million_frames_of_empty_fragments_refused_fast(tmp_path: Path) -> None:
    path = one_file(tmp_path, JPEG_LS)
    fastvol.load(path, threads=1)  # warm-up
    ds = pydicom.dcmread(path)
    ds.NumberOfFrames = 1_000_000
    ds.PixelData = empty_items(1_000_000)
    ds["PixelData"].is_undefined_length = True
    ds.save_as(path)
    start = time.perf_counter()
    with pytest.raises(CorruptFileError, match="NumberOfFrames 1000000"):
        fastvol.load(path, threads=1)
    assert time.perf_counter() - start < 0.5


def test_frame_ranges_bounds() -> None:
    data = empty_items(1_000_000)
    start = time.perf_counter()
    with pytest.raises(CorruptFileError, match="cannot hold NumberOfFrames"):
        frame_ranges(MemorySource(data, name="m.dcm"), 0, len(data), 1_000_000)
    assert time.perf_counter() - start < 0.05
    flood = empty_items(3000)
    with pytest.raises(CorruptFileError, match="more than 2048 fragments"):
        frame_ranges(MemorySource(flood, name="m.dcm"), 0, len(flood), 2)
    with pytest.raises(CorruptFileError, match="more than 8 fragments"):  # 2 frames of 8x8x2
        frame_ranges(MemorySource(flood, name="m.dcm"), 0, len(flood), 2,
                     fragment_limit=max_fragments(2, 128))  # fmt: skip
    assert max_fragments(2, 128) == 8 and max_fragments(1, 512 * 512 * 2) == 1024


def test_garbage_frame_is_both_corrupt_and_decode_error() -> None:
    with pytest.raises(CorruptFileError) as info:
        get_decoder(JPEG_LS)(b"\xff\xd8\xff", rows=4, columns=4, samples_per_pixel=1, bits_allocated=8,
                             bits_stored=8, pixel_representation=0, source="g.dcm", frame=2)  # fmt: skip
    assert isinstance(info.value, DecodeError) and info.value.frame == 2


def test_deflated_header_bomb_refused(tmp_path: Path) -> None:
    """A data set whose elements before the pixel data inflate past the bound is refused."""
    from fastvol.headers import pydicom_reader

    ws = factory.write_series(tmp_path / "d", n=1, rows=8, columns=8,
                              transfer_syntax=factory.DeflatedExplicitVRLittleEndian)  # fmt: skip
    path = Path(ws.paths[0])
    ds = pydicom.dcmread(path)
    ds.add_new(0x00291010, "OB", bytes(80 << 20))  # 80 MiB of zeros before the pixel data
    ds.save_as(path)
    assert path.stat().st_size < 1 << 20
    start = time.perf_counter()
    with pytest.raises(CorruptFileError, match="MiB before its pixel data"):
        pydicom_reader.inflate_dataset(MemorySource(path.read_bytes(), name=str(path)))
    assert time.perf_counter() - start < 5.0
    with pytest.raises(CorruptFileError):
        fastvol.load(path, threads=1)
