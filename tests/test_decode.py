"""decode.py and the RLE kernel: stored bits equal pydicom's, malformed input is DecodeError."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydicom.encaps import generate_frames
from pydicom.pixels.decoders.rle import _rle_decode_frame
from pydicom.pixels.encoders import RLELosslessEncoder
from test_frames import corpus_compressed_files, corpus_root, pydicom_file

from fastvol import _ckernels, decode
from fastvol._kernels.rle import RLE_OK, RLE_SEGMENT_COUNT, RLE_SHORT_HEADER, rle_decode_frame
from fastvol.decode import REGISTRY, Candidate, Decoder, get_decoder
from fastvol.errors import DecodeError, MissingCodecError, UnsupportedError

RLE = "1.2.840.10008.1.2.5"
#: Lossy syntaxes where decoders may differ by IDCT rounding: max allowed difference.
LOSSY_TOLERANCE = {"1.2.840.10008.1.2.4.50": 3, "1.2.840.10008.1.2.4.51": 1}

PYDICOM_FILES = [
    "MR_small_RLE.dcm", "rtdose_rle.dcm", "rtdose_rle_1frame.dcm", "SC_rgb_rle.dcm",
    "SC_rgb_rle_16bit.dcm", "SC_rgb_rle_16bit_2frame.dcm", "SC_rgb_rle_2frame.dcm",
    "SC_rgb_rle_32bit.dcm", "SC_rgb_rle_32bit_2frame.dcm",
    "JPEG2000.dcm", "693_J2KI.dcm", "MR_small_jp2klossless.dcm", "J2K_pixelrep_mismatch.dcm",
    "GDCMJ2K_TextGBR.dcm", "examples_jpeg2k.dcm", "SC_rgb_gdcm_KY.dcm",
    "MR_small_jpeg_ls_lossless.dcm", "JPEGLSNearLossless_08.dcm", "JPEGLSNearLossless_16.dcm",
    "SC_rgb_jls_lossy_line.dcm", "SC_rgb_jls_lossy_sample.dcm",
    "SC_rgb_jpeg_gdcm.dcm", "JPGExtended.dcm",
    "SC_rgb_jpeg.dcm", "SC_jpeg_no_color_transform.dcm", "SC_jpeg_no_color_transform_2.dcm",
    "SC_rgb_jpeg_app14_dcmd.dcm", "SC_rgb_dcmtk_+eb+cr.dcm", "SC_rgb_dcmtk_+eb+cy+n1.dcm",
    "SC_rgb_dcmtk_+eb+cy+np.dcm", "SC_rgb_jpeg_dcmtk.dcm", "SC_rgb_jpeg_lossy_gdcm.dcm",
    "SC_rgb_small_odd_jpeg.dcm", "examples_ybr_color.dcm",
]  # fmt: skip

# The RLE kernel runs here; ci/test.sh repeats these with NUMBA_DISABLE_JIT=1.
pytestmark = pytest.mark.kernels


# --- helpers ----------------------------------------------------------------------------------


def stored_value(array: np.ndarray, bits_stored: int, signed: bool) -> np.ndarray:
    """Mask to BitsStored and sign-extend: the value both decoders must agree on."""
    masked = array.astype(np.int64) & ((1 << bits_stored) - 1)
    if signed:
        masked = np.where(masked >= 1 << (bits_stored - 1), masked - (1 << bits_stored), masked)
    return masked


def decode_file(path: Path, decoder: Decoder) -> tuple[np.ndarray, pydicom.Dataset]:
    ds = pydicom.dcmread(path)
    n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    frames = [
        decoder(
            frame,
            rows=ds.Rows,
            columns=ds.Columns,
            samples_per_pixel=ds.SamplesPerPixel,
            bits_allocated=ds.BitsAllocated,
            bits_stored=ds.BitsStored,
            pixel_representation=ds.PixelRepresentation,
            photometric_interpretation=str(ds.PhotometricInterpretation),
            source=str(path),
        )
        for frame in generate_frames(ds.PixelData, number_of_frames=n_frames)
    ]
    return np.stack(frames), ds


def check_against_pydicom(path: Path, decoder: Decoder) -> None:
    got, ds = decode_file(path, decoder)
    bits, signed = ds.BitsAllocated, bool(ds.PixelRepresentation)
    assert got.dtype == np.dtype(f"{'i' if signed else 'u'}{bits // 8}")
    expected_shape = (ds.Rows, ds.Columns) + (
        (ds.SamplesPerPixel,) if ds.SamplesPerPixel > 1 else ()
    )
    assert got.shape[1:] == expected_shape
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reference = ds.pixel_array.reshape(got.shape)
    except Exception as exc:  # pydicom cannot decode it (e.g. 12-bit JPEG extended)
        pytest.skip(f"pydicom cannot decode the reference: {str(exc)[:80]}")
    mine = stored_value(got, ds.BitsStored, signed)
    theirs = stored_value(reference, ds.BitsStored, signed)
    tolerance = LOSSY_TOLERANCE.get(ds.file_meta.TransferSyntaxUID, 0)
    assert np.abs(mine - theirs).max() <= tolerance


def frame_kwargs(rows: int, columns: int, samples: int, bits: int, signed: int = 0) -> dict:
    return dict(rows=rows, columns=columns, samples_per_pixel=samples, bits_allocated=bits,
                bits_stored=bits, pixel_representation=signed)  # fmt: skip


def rle_encode(array: np.ndarray, bits: int) -> bytes:
    rows, columns = array.shape[:2]
    samples = array.shape[2] if array.ndim == 3 else 1
    # validate=False: pydicom's checks refuse 32-bit monochrome, which RLE allows (PS3.5 G).
    return RLELosslessEncoder.encode(
        array, validate=False, rows=rows, columns=columns, samples_per_pixel=samples,
        bits_allocated=bits, bits_stored=bits, pixel_representation=0, number_of_frames=1,
        planar_configuration=0,
        photometric_interpretation="RGB" if samples == 3 else "MONOCHROME2",
    )  # fmt: skip


def reference_rle(data: bytes, rows: int, columns: int, samples: int, bits: int) -> np.ndarray:
    """pydicom's pure-Python decoder, reordered to colour-by-pixel like the kernel."""
    planes = np.frombuffer(_rle_decode_frame(data, rows, columns, samples, bits), f"<u{bits // 8}")
    return planes.reshape(samples, rows * columns).T.reshape(-1)


# --- every compressed file: fastvol's decoder equals pydicom ----------------------------------


@pytest.mark.parametrize("name", PYDICOM_FILES)
def test_pydicom_files(name: str) -> None:
    path = pydicom_file(name)
    ts = pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID
    check_against_pydicom(path, get_decoder(ts))


@pytest.mark.corpus
@pytest.mark.parametrize(
    "path", corpus_compressed_files(), ids=lambda p: str(p.relative_to(corpus_root() or "/"))
)
def test_corpus_files(path: Path) -> None:
    ts = pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID
    check_against_pydicom(path, get_decoder(ts))


def all_candidates() -> list[tuple[str, Candidate]]:
    """(pydicom test file, candidate) for every installed candidate of its syntax."""
    files = {
        RLE: ["MR_small_RLE.dcm", "SC_rgb_rle_16bit.dcm", "rtdose_rle.dcm"],
        "1.2.840.10008.1.2.4.70": ["SC_rgb_jpeg_gdcm.dcm"],
        "1.2.840.10008.1.2.4.80": ["MR_small_jpeg_ls_lossless.dcm"],
        "1.2.840.10008.1.2.4.81": ["JPEGLSNearLossless_16.dcm", "SC_rgb_jls_lossy_line.dcm"],
        "1.2.840.10008.1.2.4.90": ["MR_small_jp2klossless.dcm", "examples_jpeg2k.dcm"],
        "1.2.840.10008.1.2.4.91": ["693_J2KI.dcm"],
        "1.2.840.10008.1.2.4.51": ["JPGExtended.dcm"],
    }
    return [(name, c) for ts, names in files.items() for name in names for c in REGISTRY[ts]]


@pytest.mark.parametrize(
    ("name", "candidate"), all_candidates(), ids=lambda v: getattr(v, "name", v)
)
def test_every_candidate_on_valid_data(name: str, candidate: Candidate) -> None:
    if not candidate.is_available():
        pytest.skip(f"{candidate.name} not installed")
    path = pydicom_file(name)
    ts = pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID
    check_against_pydicom(path, Decoder(candidate.name, ts, candidate.releases_gil))


def test_jpeg_lossy_extended_decodes() -> None:
    # pydicom's own decoders fail on this 12-bit file; libjpeg-turbo decodes it.
    path = pydicom_file("JPEG-lossy.dcm")
    got, ds = decode_file(path, get_decoder("1.2.840.10008.1.2.4.51"))
    assert got.shape == (1, ds.Rows, ds.Columns) and got.dtype == np.uint16


def test_embedded_delimiter_frame_is_decode_error() -> None:
    path = pydicom_file("JPEG2000-embedded-sequence-delimiter.dcm")
    with pytest.raises(DecodeError, match="embedded-sequence-delimiter"):
        decode_file(path, get_decoder("1.2.840.10008.1.2.4.91"))


# --- registry ---------------------------------------------------------------------------------


def test_every_syntax_resolves() -> None:
    for ts in REGISTRY:
        decoder = get_decoder(ts)
        assert decoder.transfer_syntax == ts
        assert get_decoder(ts) is decoder  # resolved once, cached
        assert all(decode._CANDIDATES[name].crash_safe for name in decoder.fallbacks)


def test_chosen_decoders() -> None:
    # The preference the benchmarks justify (imagecodecs installed in the test environment);
    # RLE: the C kernel where it was built (setup.py), else the numba one.
    assert get_decoder(RLE).name == ("fastvol.rle-c" if _ckernels.available("_rle") else "fastvol.rle")
    assert get_decoder("1.2.840.10008.1.2.4.70").name == "imagecodecs.jpeg8"
    assert get_decoder("1.2.840.10008.1.2.4.80").name == "imagecodecs.jpegls"
    assert get_decoder("1.2.840.10008.1.2.4.90").name == "imagecodecs.jpeg2k"
    assert get_decoder("1.2.840.10008.1.2.4.201").name == "imagecodecs.jpeg2k"


def test_decoder_pickles() -> None:
    decoder = get_decoder(RLE)
    clone = pickle.loads(pickle.dumps(decoder))
    assert clone == decoder
    data = rle_encode(np.arange(12, dtype=np.uint16).reshape(3, 4), 16)
    np.testing.assert_array_equal(clone(data, **frame_kwargs(3, 4, 1, 16)),
                                  np.arange(12).reshape(3, 4))  # fmt: skip


@pytest.mark.parametrize("ts", ["1.2.3.4", "1.2.840.10008.1.2.4.100", "1.2.840.10008.1.2.1"])
def test_unsupported_syntax(ts: str) -> None:
    with pytest.raises(UnsupportedError, match=ts.replace(".", r"\.")):
        get_decoder(ts)


def test_missing_codec(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Candidate, "is_available", lambda self: False)
    get_decoder.cache_clear()
    try:
        with pytest.raises(MissingCodecError) as info:
            get_decoder("1.2.840.10008.1.2.4.90")
        assert "pip install imagecodecs" in info.value.install_hint
        assert isinstance(info.value, ImportError)
    finally:
        get_decoder.cache_clear()


def test_import_is_cheap() -> None:
    code = (
        "import sys, fastvol.decode, fastvol.frames; "
        "heavy = [m for m in ('numba', 'imagecodecs', 'pylibjpeg', 'libjpeg', 'openjpeg', 'rle')"
        " if m in sys.modules]; print(heavy); sys.exit(bool(heavy))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


# --- dtype and size contract ------------------------------------------------------------------


def test_signed_jpegls_comes_back_signed() -> None:
    imagecodecs = pytest.importorskip("imagecodecs")
    image = np.array([[-5, 7], [-1000, 1000]], dtype=np.int16)
    data = imagecodecs.jpegls_encode(image.view(np.uint16))
    got = get_decoder("1.2.840.10008.1.2.4.80")(data, **frame_kwargs(2, 2, 1, 16, signed=1))
    assert got.dtype == np.int16
    np.testing.assert_array_equal(got, image)


def test_narrow_codec_output_widened() -> None:
    imagecodecs = pytest.importorskip("imagecodecs")
    image = np.array([[1, 200], [255, 0]], dtype=np.uint8)
    data = imagecodecs.jpegls_encode(image)  # 8-bit precision in a 16-bit container
    got = get_decoder("1.2.840.10008.1.2.4.80")(data, **frame_kwargs(2, 2, 1, 16))
    assert got.dtype == np.uint16
    np.testing.assert_array_equal(got, image)


def test_wrong_size_is_decode_error() -> None:
    data = rle_encode(np.zeros((4, 4), np.uint8), 8)
    with pytest.raises(DecodeError, match=r"f\.dcm"):
        get_decoder(RLE)(data, **frame_kwargs(5, 4, 1, 8), source="f.dcm")
    imagecodecs = pytest.importorskip("imagecodecs")
    data = imagecodecs.jpegls_encode(np.zeros((4, 6), np.uint16))
    with pytest.raises(DecodeError, match=r"shape \(4, 6\), expected \(6, 4\)"):
        get_decoder("1.2.840.10008.1.2.4.80")(data, **frame_kwargs(6, 4, 1, 16))


def test_bits_allocated_12_unsupported() -> None:
    with pytest.raises(UnsupportedError):
        get_decoder(RLE)(b"", **frame_kwargs(2, 2, 1, 12))


@pytest.mark.parametrize("ts", sorted(REGISTRY))
@pytest.mark.parametrize(
    "garbage",
    [b"", b"\x00", b"\xff\xd8\xff", b"\xff\x4f\xff\x51" + b"\x00" * 40,
     bytes(np.random.default_rng(0).integers(0, 256, 300, dtype=np.uint8))],
    ids=["empty", "zero", "soi", "soc", "random"],
)  # fmt: skip
def test_garbage_is_decode_error(ts: str, garbage: bytes) -> None:
    decoder = get_decoder(ts)
    with pytest.raises(DecodeError, match="garbage.dcm"):
        decoder(garbage, **frame_kwargs(64, 64, 1, 16), source="garbage.dcm")


# --- the RLE kernel against pydicom's pure-Python decoder -------------------------------------

KERNELS = [
    pytest.param(rle_decode_frame, id="compiled"),
    # The same body run as plain Python, as under NUMBA_DISABLE_JIT=1.
    pytest.param(getattr(rle_decode_frame, "py_func", rle_decode_frame), id="python"),
]


@st.composite
def rle_images(draw: st.DrawFn) -> tuple[np.ndarray, int]:
    bits = draw(st.sampled_from([8, 16, 32]))
    samples = draw(st.sampled_from([1, 3]))
    rows = draw(st.integers(1, 12))
    columns = draw(st.integers(1, 40))
    shape = (rows, columns, samples) if samples > 1 else (rows, columns)
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    # Few distinct values so both replicate and literal runs occur, of all lengths.
    palette = rng.integers(0, 2**bits, draw(st.integers(1, 6)), dtype=np.uint64)
    image = palette[rng.integers(0, len(palette), shape)].astype(f"u{bits // 8}")
    if draw(st.booleans()):
        image = np.repeat(image, draw(st.integers(1, 200)), axis=1)[:, :300]
    return np.ascontiguousarray(image), bits


@pytest.mark.parametrize("kernel", KERNELS)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=rle_images())
def test_rle_kernel_matches_pydicom(kernel, case: tuple[np.ndarray, int]) -> None:  # type: ignore[no-untyped-def]
    image, bits = case
    rows, columns = image.shape[:2]
    samples = image.shape[2] if image.ndim == 3 else 1
    data = rle_encode(image, bits)
    out = np.empty(image.size * (bits // 8), np.uint8)
    assert kernel(np.frombuffer(data, np.uint8), out, rows, columns, bits // 8, samples) == RLE_OK
    expected = reference_rle(data, rows, columns, samples, bits)
    np.testing.assert_array_equal(out.view(f"<u{bits // 8}"), expected)
    np.testing.assert_array_equal(out.view(f"<u{bits // 8}"), image.reshape(-1))


def test_rle_long_runs_and_noop() -> None:
    # Hand-made segment: replicate 128 (0x81), noop (0x80), literal 2, replicate 3.
    segment = b"\x81\x07" + b"\x80" + b"\x01\x0a\x0b" + b"\xfe\x0c"
    header = np.zeros(16, "<u4")
    header[0], header[1] = 1, 64
    data = header.tobytes() + segment
    out = np.empty(133, np.uint8)
    assert rle_decode_frame(np.frombuffer(data, np.uint8), out, 1, 133, 1, 1) == RLE_OK
    np.testing.assert_array_equal(out, [7] * 128 + [10, 11] + [12] * 3)


@pytest.mark.parametrize("kernel", KERNELS)
def test_rle_kernel_status_codes(kernel) -> None:  # type: ignore[no-untyped-def]
    out = np.empty(8, np.uint8)
    assert kernel(np.zeros(10, np.uint8), out, 2, 2, 2, 1) == RLE_SHORT_HEADER
    data = rle_encode(np.zeros((2, 2), np.uint16), 16)
    assert kernel(np.frombuffer(data, np.uint8), out, 2, 2, 1, 1) != RLE_OK  # out size wrong
    assert kernel(np.frombuffer(data, np.uint8), out[:4], 2, 2, 1, 1) == RLE_SEGMENT_COUNT


@st.composite
def corrupted_rle(draw: st.DrawFn) -> tuple[bytes, int, int, int, int]:
    image, bits = draw(rle_images())
    data = bytearray(rle_encode(image, bits))
    action = draw(st.sampled_from(["truncate", "flip", "offsets", "count"]))
    if action == "truncate":
        data = data[: draw(st.integers(0, len(data) - 1))]
    elif action == "flip":
        for _ in range(draw(st.integers(1, 8))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    elif action == "offsets":
        at = 4 * draw(st.integers(0, 15))
        data[at : at + 4] = draw(st.binary(min_size=4, max_size=4))
    else:
        data[0:4] = draw(st.integers(0, 2**32 - 1)).to_bytes(4, "little")
    rows, columns = image.shape[:2]
    samples = image.shape[2] if image.ndim == 3 else 1
    return bytes(data), rows, columns, samples, bits


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=corrupted_rle())
def test_corrupt_rle_is_decode_error_or_right_size(case: tuple[bytes, int, int, int, int]) -> None:
    data, rows, columns, samples, bits = case
    status = rle_decode_frame(
        np.frombuffer(data, np.uint8),
        np.empty(rows * columns * samples * bits // 8, np.uint8),
        rows, columns, bits // 8, samples,
    )  # fmt: skip
    assert 0 <= status <= 5
    try:
        got = get_decoder(RLE)(data, **frame_kwargs(rows, columns, samples, bits), source="c.dcm")
    except DecodeError as exc:
        assert "c.dcm" in str(exc)
        assert status != RLE_OK
    else:
        assert got.size == rows * columns * samples


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=400), rows=st.integers(1, 9), columns=st.integers(1, 9))
def test_random_bytes_never_crash_kernel(data: bytes, rows: int, columns: int) -> None:
    out = np.empty(rows * columns * 2, np.uint8)
    status = rle_decode_frame(np.frombuffer(data, np.uint8), out, rows, columns, 2, 1)
    assert 0 <= status <= 5


def test_kernel_under_numba_disable_jit() -> None:
    """The whole module imports and decodes with NUMBA_DISABLE_JIT=1 (coverage runs this way)."""
    code = (
        "import numpy as np\n"
        "from pydicom.pixels.encoders import RLELosslessEncoder\n"
        "from fastvol._kernels.rle import rle_decode_frame\n"
        "img = (np.arange(60, dtype=np.uint16) * 1031).reshape(6, 10)\n"
        "data = RLELosslessEncoder.encode(img, rows=6, columns=10, samples_per_pixel=1,"
        " bits_allocated=16, bits_stored=16, pixel_representation=0, number_of_frames=1,"
        " photometric_interpretation='MONOCHROME2')\n"
        "out = np.empty(120, np.uint8)\n"
        "assert not hasattr(rle_decode_frame, 'py_func')\n"
        "assert rle_decode_frame(np.frombuffer(data, np.uint8), out, 6, 10, 2, 1) == 0\n"
        "assert (out.view('<u2').reshape(6, 10) == img).all()\n"
    )
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
