"""frames.py: fragment ranges agree with pydicom.encaps; malformed items are CorruptFileError."""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.encaps import encapsulate, encapsulate_extended, generate_frames

from fastvol.errors import CorruptFileError
from fastvol.frames import frame_ranges, read_frame
from fastvol.sources import LocalFile, MemorySource

REPO = Path(__file__).resolve().parents[1]
UNCOMPRESSED = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2",
                "1.2.840.10008.1.2.1.99"}  # fmt: skip

#: pydicom's bundled encapsulated files, including multi-frame and multi-fragment ones.
PYDICOM_FILES = [
    "rtdose_rle.dcm", "rtdose_rle_1frame.dcm", "MR_small_RLE.dcm", "SC_rgb_rle_2frame.dcm",
    "SC_rgb_rle_32bit_2frame.dcm", "examples_ybr_color.dcm", "JPEG2000.dcm", "693_J2KI.dcm",
    "MR_small_jpeg_ls_lossless.dcm", "JPGExtended.dcm", "SC_rgb_jpeg_gdcm.dcm",
    "JPEG2000-embedded-sequence-delimiter.dcm",
]  # fmt: skip


def corpus_root() -> Path | None:
    env = os.environ.get("FASTVOL_CORPUS")
    root = Path(env) if env else REPO.parent / "shared" / "corpus"
    return root if (root / "manifest.json").is_file() else None


def corpus_compressed_files() -> list[Path]:
    """Every file of every corpus series whose transfer syntax is compressed."""
    root = corpus_root()
    if root is None:
        return []
    manifest = json.loads((root / "manifest.json").read_text())
    files: list[Path] = []
    for series in manifest["series"]:
        if not {t["uid"] for t in series["transfer_syntaxes"]} - UNCOMPRESSED:
            continue
        base = root / series["path"]
        for name in series["files"]:
            path = base / name if base.is_dir() else base.parent / name
            files.append(path)
    return sorted(set(files))


def pydicom_file(name: str) -> Path:
    path = get_testdata_file(name, download=False)
    if path is None:
        pytest.skip(f"pydicom test file {name} not installed")
    return Path(path)


def pydicom_frames(path: Path) -> tuple[list[bytes], int, int]:
    """pydicom's frames, the PixelData value offset and NumberOfFrames."""
    ds = pydicom.dcmread(path)
    element = ds.get_item("PixelData")
    n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    frames = list(generate_frames(ds.PixelData, number_of_frames=n_frames))
    return frames, element.value_tell, n_frames


def check_against_pydicom(path: Path) -> None:
    expected, value_offset, n_frames = pydicom_frames(path)
    with LocalFile(path) as fp:
        ranges = frame_ranges(fp, value_offset, path.stat().st_size, n_frames)
        got = [read_frame(fp, r) for r in ranges]
    assert len(ranges) == n_frames
    assert got == expected


@pytest.mark.parametrize("name", PYDICOM_FILES)
def test_pydicom_files_match_pydicom(name: str) -> None:
    check_against_pydicom(pydicom_file(name))


@pytest.mark.corpus
@pytest.mark.parametrize(
    "path", corpus_compressed_files(), ids=lambda p: str(p.relative_to(corpus_root() or "/"))
)
def test_corpus_files_match_pydicom(path: Path) -> None:
    check_against_pydicom(path)


def test_corpus_present_or_skipped() -> None:
    if corpus_root() is None:
        pytest.skip("real DICOM corpus absent: set FASTVOL_CORPUS or place it at ../shared/corpus")
    assert corpus_compressed_files(), "corpus manifest lists no compressed series"


# --- synthetic encapsulated data --------------------------------------------------------------

PREFIX = b"\x00" * 132  # stands in for preamble and header: value_offset is not 0


def jpeg_like(n: int, seed: int) -> bytes:
    """A fake JPEG codestream: SOI, payload without markers, EOI (even length)."""
    payload = np.random.default_rng(seed).integers(0, 0xFF, n, dtype=np.uint8).tobytes()
    return b"\xff\xd8\xff\xe0" + payload + b"\xff\xd9"


def write(tmp_path: Path, value: bytes) -> Path:
    path = tmp_path / "pixels.bin"
    path.write_bytes(PREFIX + value)
    return path


def ranges_of(path: Path, n_frames: int, **kwargs: object) -> list[bytes]:
    with LocalFile(path) as fp:
        ranges = frame_ranges(fp, len(PREFIX), path.stat().st_size, n_frames, **kwargs)  # type: ignore[arg-type]
        return [read_frame(fp, r) for r in ranges]


@pytest.mark.parametrize("has_bot", [True, False])
@pytest.mark.parametrize("fragments_per_frame", [1, 2, 3])
def test_synthetic_fragments(tmp_path: Path, has_bot: bool, fragments_per_frame: int) -> None:
    frames = [jpeg_like(1000 + 18 * i, i) for i in range(5)]
    value = encapsulate(frames, fragments_per_frame=fragments_per_frame, has_bot=has_bot)
    path = write(tmp_path, value + b"\xfe\xff\xdd\xe0\x00\x00\x00\x00")
    assert ranges_of(path, 5) == frames


def test_synthetic_extended_offsets(tmp_path: Path) -> None:
    frames = [jpeg_like(500 + 2 * i, i) for i in range(4)]
    value, offsets, lengths = encapsulate_extended(frames)
    path = write(tmp_path, value + b"\xfe\xff\xdd\xe0\x00\x00\x00\x00")
    eot = (np.frombuffer(offsets, "<u8"), np.frombuffer(lengths, "<u8"))
    assert ranges_of(path, 4, extended_offsets=eot) == frames
    bad = (eot[0] + 2, eot[1])
    with pytest.raises(CorruptFileError, match="Extended Offset Table"):
        ranges_of(path, 4, extended_offsets=bad)


def test_one_frame_takes_every_fragment(tmp_path: Path) -> None:
    frame = jpeg_like(3000, 0)
    value = encapsulate([frame], fragments_per_frame=4, has_bot=False)
    path = write(tmp_path, value + b"\xfe\xff\xdd\xe0\x00\x00\x00\x00")
    with LocalFile(path) as fp:
        ranges = frame_ranges(fp, len(PREFIX), path.stat().st_size, 1)
        assert len(ranges[0]) == 4
        assert read_frame(fp, ranges[0]) == frame
    # Without a file descriptor (bytes in memory) the same bytes come back.
    buffer = MemorySource(path.read_bytes())
    ranges = frame_ranges(buffer, len(PREFIX), buffer.size(), 1)
    assert read_frame(buffer, ranges[0]) == frame


def test_inconsistent_bot_falls_back_to_markers(tmp_path: Path) -> None:
    frames = [jpeg_like(800, i) for i in range(3)]
    value = bytearray(encapsulate(frames, fragments_per_frame=2, has_bot=True))
    value[8:12] = struct.pack("<L", 6)  # first offset must be 0
    path = write(tmp_path, bytes(value) + b"\xfe\xff\xdd\xe0\x00\x00\x00\x00")
    assert ranges_of(path, 3) == frames


def test_no_markers_more_fragments_than_frames(tmp_path: Path) -> None:
    frames = [b"\x01\x02" * 300, b"\x03\x04" * 300]  # RLE-like: no JPEG markers to split on
    value = encapsulate(frames, fragments_per_frame=2, has_bot=False)
    path = write(tmp_path, value + b"\xfe\xff\xdd\xe0\x00\x00\x00\x00")
    with pytest.raises(CorruptFileError, match="4 fragments for 2 frames"):
        ranges_of(path, 2)


def test_fewer_fragments_than_frames(tmp_path: Path) -> None:
    value = encapsulate([jpeg_like(100, 0)], has_bot=False)
    path = write(tmp_path, value + b"\xfe\xff\xdd\xe0\x00\x00\x00\x00")
    with pytest.raises(CorruptFileError, match="1 fragments for 3 frames"):
        ranges_of(path, 3)


def valid_value() -> bytes:
    frames = [jpeg_like(400, i) for i in range(2)]
    return encapsulate(frames, has_bot=True) + b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"


@pytest.mark.parametrize("cut", [0, 4, 8, 20, 300, 430, -8, -4, -1])
def test_truncated_is_corrupt(tmp_path: Path, cut: int) -> None:
    value = valid_value()
    path = write(tmp_path, value[:cut] if cut else b"")
    with pytest.raises(CorruptFileError, match="pixels.bin"):
        ranges_of(path, 2)


def test_bad_item_tag_is_corrupt(tmp_path: Path) -> None:
    value = bytearray(valid_value())
    first_item = 8 + struct.unpack("<L", value[4:8])[0]
    value[first_item : first_item + 4] = b"\xe0\x7f\x10\x00"
    path = write(tmp_path, bytes(value))
    with pytest.raises(CorruptFileError, match=r"\(7FE0,0010\)"):
        ranges_of(path, 2)


def test_bad_bot_tag_is_corrupt(tmp_path: Path) -> None:
    value = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"  # delimiter where the BOT item belongs
    path = write(tmp_path, value)
    with pytest.raises(CorruptFileError):
        ranges_of(path, 1)


def test_undefined_item_length_is_corrupt(tmp_path: Path) -> None:
    value = b"\xfe\xff\x00\xe0\x00\x00\x00\x00" + b"\xfe\xff\x00\xe0\xff\xff\xff\xff" + b"\0" * 16
    path = write(tmp_path, value)
    with pytest.raises(CorruptFileError, match="undefined length"):
        ranges_of(path, 1)


def test_no_fragments_is_corrupt(tmp_path: Path) -> None:
    path = write(tmp_path, b"\xfe\xff\x00\xe0\x00\x00\x00\x00\xfe\xff\xdd\xe0\x00\x00\x00\x00")
    with pytest.raises(CorruptFileError, match="no fragments"):
        ranges_of(path, 1)


def test_truncated_real_file_is_corrupt(tmp_path: Path) -> None:
    source = pydicom_file("rtdose_rle.dcm")
    _, value_offset, n_frames = pydicom_frames(source)
    data = source.read_bytes()
    for keep in (value_offset + 4, value_offset + 100, len(data) - 9, len(data) - 1):
        path = tmp_path / f"cut{keep}.dcm"
        path.write_bytes(data[:keep])
        with LocalFile(path) as fp, pytest.raises(CorruptFileError, match=f"cut{keep}"):
            frame_ranges(fp, value_offset, keep, n_frames)


def test_read_frame_short_file_is_corrupt(tmp_path: Path) -> None:
    path = write(tmp_path, valid_value())
    with LocalFile(path) as fp:
        ranges = frame_ranges(fp, len(PREFIX), path.stat().st_size, 2)
    path.write_bytes(path.read_bytes()[:200])  # the file shrank after the header pass
    with LocalFile(path) as fp, pytest.raises(CorruptFileError, match="shorter"):
        read_frame(fp, ranges[1])


def test_several_fragments_are_one_contiguous_read(tmp_path: Path) -> None:
    frame = jpeg_like(3000, 0)
    value = encapsulate([frame], fragments_per_frame=4, has_bot=False)
    path = write(tmp_path, value + b"\xfe\xff\xdd\xe0\x00\x00\x00\x00")
    calls: list[list[tuple[int, int]]] = []

    class Spy(MemorySource):
        def read_into(self, ranges, buffers):  # type: ignore[no-untyped-def]
            calls.append(list(ranges))
            super().read_into(ranges, buffers)

    source = Spy(path.read_bytes(), "spy.dcm")
    (ranges,) = frame_ranges(source, len(PREFIX), source.size(), 1)
    assert read_frame(source, ranges) == frame
    (spans,) = calls  # one call, whose ranges (fragments and item headers between) touch
    assert all(a + n == b for (a, n), (b, _) in zip(spans, spans[1:]))
    assert spans[0][0] == ranges[0][0] and sum(n for _, n in spans) == (
        ranges[-1][0] + ranges[-1][1] - ranges[0][0]
    )


def test_several_fragments_short_file_is_corrupt(tmp_path: Path) -> None:
    frame = jpeg_like(3000, 0)
    value = encapsulate([frame], fragments_per_frame=4, has_bot=False)
    data = PREFIX + value + b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
    (ranges,) = frame_ranges(MemorySource(data), len(PREFIX), len(data), 1)
    for source in (MemorySource(data[:-100], "cut.dcm"), LocalFile(write(tmp_path, data[132:-100]))):
        with source, pytest.raises(CorruptFileError, match="shorter") as info:
            read_frame(source, ranges)
        assert source.name in info.value.files
