"""Decode: per-frame time of every decoder candidate, and whether threads decode in parallel.

Group ``decode``
----------------
``test_decode_frame[<codec>-<candidate>]``  one 512 x 512 CT-like int16 frame decoded by each
    installed candidate of the codec's transfer syntax: fastvol's choice (``extra_info``
    ``chosen=True``) beside its peers (pylibjpeg, pyjpegls, pydicom's pure-Python RLE).
``test_decode_threads[<codec>-<candidate>]``  64 frames decoded on a pool of 2 threads; the
    best 1-thread time of the same frames and ``speedup`` (1-thread / 2-thread, ~2 when the codec
    releases the GIL on a 2-core machine, <= 1 when it holds it) are in ``extra_info``.

Frames are made in code: a CT-like image (air, a noisy water disc, bone) encoded with
imagecodecs' encoders (and pydicom's RLE encoder). Runs under ``--benchmark-disable`` too, on a
64 x 64 image, checking every decoder returns the image.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest

from fastvol.decode import REGISTRY, Decoder, get_decoder

CODECS: dict[str, str] = {
    "rle": "1.2.840.10008.1.2.5",
    "jpeg-baseline": "1.2.840.10008.1.2.4.50",
    "jpeg-lossless": "1.2.840.10008.1.2.4.70",
    "jpeg-ls": "1.2.840.10008.1.2.4.80",
    "j2k": "1.2.840.10008.1.2.4.90",
    "htj2k": "1.2.840.10008.1.2.4.201",
}
THREAD_FRAMES = 64


def ct_image(size: int, seed: int = 0) -> np.ndarray:
    """int16 CT-like slice: air -1000, water ~40 +- 20, a bone block ~900."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[-size // 2 : size // 2, -size // 2 : size // 2]
    body = x * x + y * y < (0.4 * size) ** 2
    image = np.where(body, 40 + rng.normal(0, 20, (size, size)), -1000)
    image[size // 3 : size // 2, size // 3 : size // 2] += 860
    return image.astype(np.int16)


def encode(codec: str, image: np.ndarray) -> tuple[bytes, dict[str, int]]:
    """The codestream and the frame keyword arguments it decodes with."""
    imagecodecs = pytest.importorskip("imagecodecs")
    rows, columns = image.shape
    signed = dict(rows=rows, columns=columns, samples_per_pixel=1, bits_allocated=16,
                  bits_stored=16, pixel_representation=1)  # fmt: skip
    unsigned8 = {**signed, "bits_allocated": 8, "bits_stored": 8, "pixel_representation": 0}
    if codec == "rle":
        from pydicom.pixels.encoders import RLELosslessEncoder

        data = RLELosslessEncoder.encode(
            image, rows=rows, columns=columns, samples_per_pixel=1, bits_allocated=16,
            bits_stored=16, pixel_representation=1, photometric_interpretation="MONOCHROME2",
            number_of_frames=1,
        )  # fmt: skip
        return bytes(data), signed
    if codec == "jpeg-baseline":  # 8-bit window of the CT: what a lossy export would hold
        window = np.clip((image.astype(np.int32) + 160) * 255 // 400, 0, 255).astype(np.uint8)
        return bytes(imagecodecs.jpeg8_encode(window, level=90)), unsigned8
    # Signed data in JPEG lossless / JPEG-LS is the stored bit pattern, unsigned.
    stored = image.view(np.uint16)
    if codec == "jpeg-lossless":
        return bytes(imagecodecs.jpeg8_encode(stored, lossless=True, predictor=1,
                                              bitspersample=16)), signed  # fmt: skip
    if codec == "jpeg-ls":
        return bytes(imagecodecs.jpegls_encode(stored)), signed
    if codec == "j2k":
        return bytes(imagecodecs.jpeg2k_encode(image, level=0, codecformat="J2K",
                                               reversible=True)), signed  # fmt: skip
    if codec == "htj2k":
        return bytes(imagecodecs.htj2k_encode(image, reversible=True)), signed
    raise AssertionError(codec)


def cases() -> list[Any]:
    return [
        pytest.param(codec, candidate.name, id=f"{codec}-{candidate.name}")
        for codec, ts in CODECS.items()
        for candidate in REGISTRY[ts]
    ]


@pytest.fixture
def frame(
    request: pytest.FixtureRequest,
) -> Callable[[str, str], tuple[Decoder, Callable[[], Any]]]:
    """``(codec, candidate) -> (decoder, decode_once)`` on a 512 (64 when disabled) image."""
    size = 64 if request.config.getoption("benchmark_disable", False) else 512

    def make(codec: str, name: str) -> tuple[Decoder, Callable[[], Any]]:
        ts = CODECS[codec]
        candidate = next(c for c in REGISTRY[ts] if c.name == name)
        if not candidate.is_available():
            pytest.skip(f"{name} is not installed")
        image = ct_image(size)
        data, kwargs = encode(codec, image)
        decoder = Decoder(candidate.name, ts, candidate.releases_gil)
        decoded = decoder(data, **kwargs)
        if codec == "jpeg-baseline":
            assert decoded.shape == image.shape and decoded.dtype == np.uint8
        else:
            np.testing.assert_array_equal(decoded, image)
        return decoder, lambda: decoder(data, **kwargs)

    return make


@pytest.mark.benchmark(group="decode")
@pytest.mark.parametrize(("codec", "name"), cases())
def test_decode_frame(benchmark: Any, frame: Callable[..., Any], codec: str, name: str) -> None:
    decoder, decode_once = frame(codec, name)
    benchmark.extra_info.update(
        codec=codec, decoder=name, chosen=get_decoder(CODECS[codec]).name == name,
        releases_gil=decoder.releases_gil,
    )  # fmt: skip
    benchmark(decode_once)


def _best(fn: Callable[[], Any], repeat: int) -> float:
    # Best of: other processes on a small shared machine only ever make a run slower.
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


@pytest.mark.benchmark(group="decode")
@pytest.mark.parametrize(("codec", "name"), cases())
def test_decode_threads(benchmark: Any, frame: Callable[..., Any], codec: str, name: str) -> None:
    decoder, decode_once = frame(codec, name)
    frames = range(THREAD_FRAMES)
    with ThreadPoolExecutor(max_workers=2) as pool:

        def two_threads() -> None:
            list(pool.map(lambda _: decode_once(), frames))

        def one_thread() -> None:
            for _ in frames:
                decode_once()

        two_threads()  # warm up: numba loads, pool threads start
        repeat = 1 if benchmark.disabled else 5
        t1 = _best(one_thread, repeat)
        t2 = _best(two_threads, repeat)
        benchmark.extra_info.update(
            codec=codec, decoder=name, chosen=get_decoder(CODECS[codec]).name == name,
            releases_gil=decoder.releases_gil, frames=THREAD_FRAMES,
            one_thread_s=t1, two_threads_s=t2, speedup=t1 / t2 if t2 else float("nan"),
        )  # fmt: skip
        benchmark(two_threads)
