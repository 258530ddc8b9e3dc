"""Reading from anywhere: URLs on real loopback servers (S3 by moto, plain HTTP), file objects.

The servers run in this process (``servers.py``) behind a middleware that counts requests,
records how many were in flight at once, and injects latency, 503s and connections reset
mid-body. Every remote load is compared with the local load of the same files.
"""

from __future__ import annotations

import io
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest

pytest.importorskip("fsspec")
pytest.importorskip("s3fs")
pytest.importorskip("moto")
pytest.importorskip("aiohttp")

import factory as fx  # noqa: E402
import factory_enhanced as fe  # noqa: E402
from servers import HttpFileServer, S3Server  # noqa: E402

import fastvol  # noqa: E402
from fastvol.sources import remote  # noqa: E402
from fastvol.sources.fileobj import FileObjectSource  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def s3():
    server = S3Server()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def s3_slow():
    # 200 ms per request: long enough that a loaded machine still accepts every connection
    # of a batch while the first ones are in flight.
    server = S3Server(latency=0.2)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def http():
    server = HttpFileServer()
    yield server
    server.stop()


@pytest.fixture
def small_blocks(monkeypatch):
    """Files above 4 KiB not taken whole: a 128 x 128 slice (34 kB, beyond the scanner's 16 KiB
    first block) then costs a header and a pixel request, as a 1 MB one does by default."""
    monkeypatch.setattr(remote, "HEAD_BLOCK", 4096)
    monkeypatch.setattr(remote, "WHOLE_FILE", 4096)


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    # Backoff of milliseconds: the policy is the same, the suite stays fast.
    monkeypatch.setattr(remote, "RETRY", remote.Retry(attempts=4, backoff=0.001, max_backoff=0.01))


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def upload(server: S3Server, folder: Path, prefix: str) -> str:
    """Put every file under ``folder`` into the bucket under ``prefix``; the prefix's URL."""
    server.put("bucket", {f"{prefix}/{name}": data for name, data in _files(folder).items()})
    return f"s3://bucket/{prefix}/"


def serve(server: HttpFileServer, folder: Path, prefix: str) -> list[str]:
    """Serve every file under ``folder`` under ``/prefix/``; their URLs, sorted."""
    names = _files(folder)
    server.files.update({f"/{prefix}/{name}": data for name, data in names.items()})
    server.faults.clear()
    return [f"{server.url}/{prefix}/{name}" for name in names]


def assert_same(remote_vol: fastvol.Volume, local_vol: fastvol.Volume) -> None:
    np.testing.assert_array_equal(remote_vol.array, local_vol.array)
    assert remote_vol.array.dtype == local_vol.array.dtype
    np.testing.assert_array_equal(remote_vol.affine, local_vol.affine)
    assert remote_vol.meta["sop_instance_uids"] == local_vol.meta["sop_instance_uids"]


# --- every factory case, through S3 and HTTP --------------------------------------------------

CASES = {
    "plain": lambda d: fx.write_series(d, n=6),
    "shuffled": lambda d: fx.write_series(d, n=7, shuffle=3, rows=20, columns=18),
    "tilted": lambda d: fx.write_series(d, n=5, step_vector=(0, 0.3, 2.0)),
    "gaps": lambda d: fx.write_series(d, n=8, drop=[3]),
    "repeats": lambda d: fx.write_series(d, n=4, repeats=3),
    "rescaled": lambda d: fx.write_series(d, n=4, slopes=[0.5, 1, 2, 1], intercepts=-1024),
    "implicit": lambda d: fx.write_series(d, n=4, transfer_syntax="1.2.840.10008.1.2"),
    "big_endian": lambda d: fx.write_series(d, n=4, transfer_syntax="1.2.840.10008.1.2.2"),
    "deflated": lambda d: fx.write_series(d, n=4, transfer_syntax="1.2.840.10008.1.2.1.99"),
    "rle": lambda d: fx.write_series(d, n=4, transfer_syntax="1.2.840.10008.1.2.5"),
    "jpeg_ls": lambda d: fx.write_series(d, n=4, transfer_syntax="1.2.840.10008.1.2.4.80"),
    "raw_dataset": lambda d: fx.write_series(d, n=4, raw_dataset=True),
    "localizer": lambda d: fx.write_series(d, n=5, localizer=True),
    "enhanced": lambda d: fe.write_enhanced(d, n_slices=5, n_volumes=2, dimension="TemporalPositionIndex"),
    "enhanced_rle_fragments": lambda d: fe.write_enhanced(
        d, n_slices=4, transfer_syntax="1.2.840.10008.1.2.5", fragments_per_frame=2),
}  # fmt: skip
OPTIONS = {"gaps": {"gaps": "fill"}, "tilted": {"tilt": "keep"}}


def _write_case(name: str, folder: Path) -> None:
    if name == "jpeg_ls":
        fx.require("1.2.840.10008.1.2.4.80")
    CASES[name](folder)


@pytest.mark.filterwarnings("ignore::fastvol.FastvolWarning")
@pytest.mark.parametrize("case", sorted(CASES))
def test_every_case_equals_local_load_s3(s3, tmp_path, case):
    _write_case(case, tmp_path / "s")
    url = upload(s3, tmp_path / "s", f"cases/{case}")
    local = fastvol.load(tmp_path / "s", **OPTIONS.get(case, {}))
    vol = fastvol.load(url, storage_options=s3.storage_options, **OPTIONS.get(case, {}))
    assert_same(vol, local)
    assert all(f.startswith(url) for f in vol.meta["files"])


@pytest.mark.filterwarnings("ignore::fastvol.FastvolWarning")
@pytest.mark.parametrize("case", ["plain", "deflated", "rle", "enhanced", "repeats"])
def test_cases_equal_local_load_http(http, tmp_path, case):
    _write_case(case, tmp_path / "s")
    urls = serve(http, tmp_path / "s", f"cases/{case}")
    local = fastvol.load(tmp_path / "s", **OPTIONS.get(case, {}))
    assert_same(fastvol.load(urls, **OPTIONS.get(case, {})), local)
    # a "folder" over HTTP: the server's listing of links
    assert_same(fastvol.load(f"{http.url}/cases/{case}/", **OPTIONS.get(case, {})), local)


def test_memory_and_glob_urls(tmp_path):
    import fsspec

    fx.write_series(tmp_path / "s", n=5)
    fs = fsspec.filesystem("memory")
    for name, data in _files(tmp_path / "s").items():
        fs.pipe(f"/fastvol-test/s/{name}", data)
    fs.pipe("/fastvol-test/s/notes.txt", b"not DICOM")
    local = fastvol.load(tmp_path / "s")
    assert_same(fastvol.load("memory://fastvol-test/s/"), local)
    assert_same(fastvol.load("memory://fastvol-test/s/IM*"), local)
    found = fastvol.scan("memory://fastvol-test/s")
    assert len(found) == 1 and found.skipped["not DICOM"] == ["memory:///fastvol-test/s/notes.txt"]


# --- requests: few, ranged, concurrent --------------------------------------------------------


def test_small_files_cost_one_request_each(s3, tmp_path):
    fx.write_series(tmp_path / "s", n=12, rows=64, columns=64)
    url = upload(s3, tmp_path / "s", "count/small")
    fastvol.load(url, storage_options=s3.storage_options)
    per_file = s3.faults.per_path("GET")
    listing = per_file.pop("/bucket", 0)
    assert listing == 1
    assert len(per_file) == 12 and set(per_file.values()) == {1}
    assert s3.faults.per_path("HEAD") == {}
    # The scanned series holds no file bytes once loaded (only URLs, sizes, ETags).
    found = fastvol.scan(url, storage_options=s3.storage_options)
    found[0].load()
    assert all(not r.source._spans for r in found[0].records)


def test_urls_of_unknown_size_cost_one_request_each_over_http(http, tmp_path):
    fx.write_series(tmp_path / "s", n=9, rows=64, columns=64)
    urls = serve(http, tmp_path / "s", "count/http")
    assert_same(fastvol.load(urls), fastvol.load(tmp_path / "s"))
    # no HEAD for sizes: each file asked for whole came whole, and shorter than asked
    assert http.faults.per_path("HEAD") == {}
    assert sorted(http.faults.per_path("GET").values()) == [1] * 9


def test_large_files_cost_a_header_and_a_pixel_request(s3, tmp_path, small_blocks):
    fx.write_series(tmp_path / "s", n=10, rows=128, columns=128)
    url = upload(s3, tmp_path / "s", "count/large")
    vol = fastvol.load(url, storage_options=s3.storage_options)
    assert_same(vol, fastvol.load(tmp_path / "s"))
    gets = [(p, r) for m, p, r in s3.faults.requests if m == "GET" and p != "/bucket"]
    per_file: dict[str, list[str]] = {}
    for path, byte_range in gets:
        per_file.setdefault(path, []).append(byte_range)
    assert len(per_file) == 10
    for ranges in per_file.values():
        assert len(ranges) == 2
        assert ranges[0].startswith("bytes=0-")  # the first block
        offset = int(ranges[1].split("=")[1].split("-")[0])
        end = int(ranges[1].split("-")[1]) + 1
        assert end - offset == 128 * 128 * 2  # exactly the pixel data, nothing more


def test_copies_are_compared_from_the_prefetched_bytes(s3, tmp_path, small_blocks):
    # A copy of one instance (same SOPInstanceUID) is read through its own remote source: still
    # a header and a pixel request per file, the kept file's pixels fetched once for both reads.
    w = fx.write_series(tmp_path / "s", n=6, rows=128, columns=128, duplicate=(2,))
    url = upload(s3, tmp_path / "s", "dups/true")
    vol = fastvol.load(url, storage_options=s3.storage_options)
    assert_same(vol, fastvol.load(tmp_path / "s"))
    (copy,) = [p for p, dup in zip(w.paths, w.is_duplicate) if dup]
    assert vol.geometry.duplicates_dropped == (url + os.path.basename(copy),)
    per_file: dict[str, int] = {}
    for method, path, _ in s3.faults.requests:
        if method == "GET" and path != "/bucket":
            per_file[path] = per_file.get(path, 0) + 1
    assert len(per_file) == 7 and set(per_file.values()) == {2}
    # Other pixels under the same SOPInstanceUID: refused, both URLs named.
    ds = pydicom.dcmread(copy)
    ds.PixelData = (ds.pixel_array ^ 1).astype(ds.pixel_array.dtype).tobytes()
    ds.save_as(copy)
    url = upload(s3, tmp_path / "s", "dups/other")
    with pytest.raises(fastvol.DuplicateInstanceError, match="pixel data") as info:
        fastvol.load(url, storage_options=s3.storage_options)
    assert url + os.path.basename(copy) in info.value.files and len(info.value.files) == 2


def test_long_header_grows_for_that_file_only(s3, tmp_path, small_blocks):
    def edit(k: int, ds) -> None:
        if k == 0:  # a vendor blob before the pixels
            ds.private_block(0x0029, "FASTVOL TEST", create=True).add_new(0x10, "OB", b"\0" * 150_000)

    fx.write_series(tmp_path / "s", n=6, rows=128, columns=128, edit=edit)
    url = upload(s3, tmp_path / "s", "count/long")
    vol = fastvol.load(url, storage_options=s3.storage_options)
    assert_same(vol, fastvol.load(tmp_path / "s"))
    counts = s3.faults.per_path("GET")
    assert counts.pop("/bucket") == 1
    # five files of a first block and the pixels; the long header grows by doubling reads
    assert sorted(counts.values())[:5] == [2] * 5 and 2 < counts["/bucket/count/long/IM0001"] <= 6


def test_requests_are_concurrent_under_latency(s3_slow, tmp_path):
    n = 40
    fx.write_series(tmp_path / "s", n=n, rows=32, columns=32)
    url = upload(s3_slow, tmp_path / "s", "concurrent")
    fastvol.load(url, storage_options=s3_slow.storage_options)
    assert s3_slow.faults.gets() == n + 1
    # All files were asked for at once: one round trip for the whole series, not one per file.
    assert s3_slow.faults.max_in_flight >= n // 2


def test_scan_reads_headers_only_for_files_above_whole_file(s3, tmp_path, monkeypatch):
    monkeypatch.setattr(remote, "WHOLE_FILE", remote.HEAD_BLOCK)
    fx.write_series(tmp_path / "s", n=4, rows=256, columns=256)  # 128 KiB of pixels each
    url = upload(s3, tmp_path / "s", "count/scan")
    fastvol.scan(url, storage_options=s3.storage_options)
    ranges = [r for m, p, r in s3.faults.requests if m == "GET" and p != "/bucket"]
    assert len(ranges) == 4
    assert all(r == f"bytes=0-{remote.HEAD_BLOCK - 1}" for r in ranges)


# --- failures ---------------------------------------------------------------------------------


def test_transient_failures_are_retried(s3, tmp_path, small_blocks):
    fx.write_series(tmp_path / "s", n=8, rows=128, columns=128)
    url = upload(s3, tmp_path / "s", "retry")
    s3.faults.inject("IM0002", ["503", "reset"], where="head")
    s3.faults.inject("IM0005", ["reset", "503"], where="rest")
    s3.faults.inject("IM0007", ["503"])
    vol = fastvol.load(url, storage_options=s3.storage_options)
    assert_same(vol, fastvol.load(tmp_path / "s"))
    assert s3.faults.failures == 5
    assert s3.faults.gets() == 1 + 2 * 8 + 5  # each failure cost exactly one more request


def test_reset_and_503_over_http(http, tmp_path):
    fx.write_series(tmp_path / "s", n=5, rows=40, columns=40)
    urls = serve(http, tmp_path / "s", "retry")
    http.faults.inject("IM0001", ["reset", "reset"])
    http.faults.inject("IM0004", ["503"])
    assert_same(fastvol.load(urls), fastvol.load(tmp_path / "s"))
    assert http.faults.failures == 3


def test_persistent_failure_in_header_pass_names_the_url(s3, tmp_path):
    fx.write_series(tmp_path / "s", n=5)
    url = upload(s3, tmp_path / "s", "broken/head")
    s3.faults.inject("IM0003", "503")
    with pytest.raises(fastvol.UnreadableError) as info:
        fastvol.load(url, storage_options=s3.storage_options)
    assert f"{url}IM0003" in info.value.files and f"{url}IM0003" in str(info.value)
    assert s3.faults.gets("IM0003") == remote.RETRY.attempts
    found = fastvol.scan(url, storage_options=s3.storage_options)  # a scan records it
    assert found.skipped["unreadable file"] == [f"{url}IM0003"]
    # skipping it is the user's choice, and then the gap shows
    with pytest.raises(fastvol.MissingSlicesError):
        fastvol.load(url, storage_options=s3.storage_options, unreadable="skip")


def test_persistent_failure_in_pixel_pass_names_the_url(s3, tmp_path, small_blocks):
    fx.write_series(tmp_path / "s", n=5, rows=128, columns=128)
    url = upload(s3, tmp_path / "s", "broken/pixels")
    s3.faults.inject("IM0004", "reset", where="rest")
    with pytest.raises(fastvol.UnreadableError) as info:
        fastvol.load(url, storage_options=s3.storage_options)
    assert info.value.files == (f"{url}IM0004",)
    assert "after 4 attempts" in str(info.value)


def test_missing_objects_and_prefixes(s3, http):
    with pytest.raises(fastvol.PathNotFoundError) as info:
        fastvol.load("s3://bucket/no/such/prefix/", storage_options=s3.storage_options)
    assert info.value.files == ("s3://bucket/no/such/prefix/",)
    with pytest.raises(fastvol.PathNotFoundError):
        fastvol.load("s3://bucket/no-such-object.dcm", storage_options=s3.storage_options)
    with pytest.raises(fastvol.PathNotFoundError):
        fastvol.load(f"{http.url}/nothing/here.dcm")


def test_unknown_protocol_is_an_input_error():
    with pytest.raises(fastvol.InputError, match="nosuchproto"):
        fastvol.load("nosuchproto://a/b")


# --- pickling, cache ------------------------------------------------------------------------


def test_sources_and_series_pickle_without_sessions(s3, tmp_path):
    fx.write_series(tmp_path / "s", n=4)
    url = upload(s3, tmp_path / "s", "pickle")
    found = fastvol.scan(url, storage_options=s3.storage_options)
    source = found[0].records[0].source
    state = pickle.dumps(source)
    assert b"aiobotocore" not in state and b"ClientSession" not in state
    clone = pickle.loads(state)
    assert clone == source and clone.size() == source.size() and clone.etag == source.etag
    again = pickle.loads(pickle.dumps(found[0]))
    assert_same(again.load(), fastvol.load(tmp_path / "s"))


def test_cache_second_load_reads_only_the_cache(s3, tmp_path, small_blocks):
    fx.write_series(tmp_path / "s", n=6, rows=128, columns=128)
    url = upload(s3, tmp_path / "s", "cached")
    cache = tmp_path / "cache"
    first = fastvol.load(url, storage_options=s3.storage_options, cache=cache)
    assert s3.faults.gets() == 1 + 2 * 6
    s3.faults.clear()
    second = fastvol.load(url, storage_options=s3.storage_options, cache=cache)
    assert_same(second, first)
    assert s3.faults.gets() == 1  # the listing (it brings the ETags), no object read
    # A changed object has a new ETag: its bytes are fetched again, the others not.
    s3.put("bucket", {"cached/IM0002": (tmp_path / "s" / "IM0002").read_bytes() + b""})
    s3.faults.clear()
    fastvol.load(url, storage_options=s3.storage_options, cache=cache)
    assert s3.faults.gets() == 1  # same bytes, same ETag: still cached
    data = bytearray((tmp_path / "s" / "IM0003").read_bytes())
    data[-1] ^= 0x01  # the last pixel changes
    s3.put("bucket", {"cached/IM0003": bytes(data)})
    vol = fastvol.load(url, storage_options=s3.storage_options, cache=cache)
    assert s3.faults.per_path("GET") == {"/bucket": 1, "/bucket/cached/IM0003": 2}
    assert not np.array_equal(vol.array, first.array)


# --- file objects -----------------------------------------------------------------------------


def test_file_objects(tmp_path):
    fx.write_series(tmp_path / "s", n=5)
    local = fastvol.load(tmp_path / "s")
    paths = sorted((tmp_path / "s").iterdir())
    buffers = [io.BytesIO(p.read_bytes()) for p in paths]
    assert_same(fastvol.load(buffers), local)
    handles = [open(p, "rb") for p in paths]  # noqa: SIM115
    try:
        for h in handles:
            h.seek(10)
        vol = fastvol.load(handles)
        assert_same(vol, local)
        assert vol.meta["files"][0] in {str(p) for p in paths}
        assert all(h.tell() == 10 for h in handles)  # positions restored
    finally:
        for h in handles:
            h.close()


def test_one_file_object_and_unseekable_streams(tmp_path):
    fx.write_series(tmp_path / "s", n=1)
    path = next((tmp_path / "s").iterdir())

    class Stream(io.RawIOBase):  # a pipe-like stream: no seek
        def __init__(self, data: bytes) -> None:
            self._data = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def readinto(self, b) -> int:
            return self._data.readinto(b)

    local = fastvol.load(path)
    assert_same(fastvol.load(io.BytesIO(path.read_bytes())), local)
    assert_same(fastvol.load(Stream(path.read_bytes())), local)


def test_file_object_errors_and_pickle(tmp_path):
    fx.write_series(tmp_path / "s", n=1)
    path = next((tmp_path / "s").iterdir())
    with open(path, encoding="latin-1") as text, pytest.raises(fastvol.InputError, match="binary"):
        fastvol.load(text)
    source = FileObjectSource(io.BytesIO(path.read_bytes()), name="x.dcm")
    clone = pickle.loads(pickle.dumps(source))
    assert clone.name == "x.dcm" and clone.read(0, clone.size()) == path.read_bytes()


# --- imports ----------------------------------------------------------------------------------


def _run(code: str) -> str:
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return out.stdout.strip()


def test_local_paths_and_file_urls_never_import_fsspec(tmp_path):
    fx.write_series(tmp_path / "s", n=3)
    code = (
        "import sys, fastvol\n"
        f"a = fastvol.load({str(tmp_path / 's')!r}).array\n"
        f"b = fastvol.load('file://' + {str(tmp_path / 's')!r}).array\n"
        "assert (a == b).all()\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('fsspec', 's3fs', 'aiohttp')))\n"
    )
    assert _run(code) == "[]"


def test_missing_fsspec_says_what_to_install(tmp_path):
    code = (
        "import sys; sys.modules['fsspec'] = None\n"
        "import fastvol\n"
        "try:\n    fastvol.load('s3://bucket/prefix/')\n"
        "except fastvol.MissingDependencyError as e:\n    print(e.install_hint)\n"
    )
    assert _run(code) == "pip install 'fastvol[cloud]'"


# --- IDC --------------------------------------------------------------------------------------


def _an_idc_series() -> tuple[str, str, str]:
    """(SeriesInstanceUID, bucket, crdc_series_uuid) of a series in idc-index's bundled index."""
    pq = pytest.importorskip("pyarrow.parquet")
    idc_index_data = pytest.importorskip("idc_index_data")
    row = pq.ParquetFile(idc_index_data.IDC_INDEX_PARQUET_FILEPATH).read_row_group(
        0, columns=["SeriesInstanceUID", "series_aws_url"]).slice(0, 1).to_pylist()[0]  # fmt: skip
    bucket, uuid = row["series_aws_url"].split("/")[2:4]
    return row["SeriesInstanceUID"], bucket, uuid


def test_idc_series_by_uid_from_the_bundled_index(s3, tmp_path):
    from fastvol.sources.idc import series_location

    uid, bucket, uuid = _an_idc_series()
    assert series_location(uid) == (f"s3://{bucket}/{uuid}/", {"anon": True})
    url, options = series_location(uid, "gcs")
    assert url.startswith("gs://") and url.endswith(f"/{uuid}/") and options == {"token": "anon"}
    # The public bucket, played by the loopback server: same keys, read anonymously.
    fx.write_series(tmp_path / "s", n=5)
    s3.put(bucket, {f"{uuid}/{name}": data for name, data in _files(tmp_path / "s").items()}, public=True)
    endpoint = {"endpoint_url": s3.url, "client_kwargs": {"region_name": "us-east-1"}}
    local = fastvol.load(tmp_path / "s")
    assert_same(fastvol.idc.load(uid, storage_options=endpoint), local)
    assert_same(fastvol.load(f"idc://{uid}", storage_options=endpoint), local)
    assert len(fastvol.idc.scan([uid], storage_options=endpoint)) == 1
    assert all(m == "GET" or m == "HEAD" for m, _, _ in s3.faults.requests)


def test_idc_unknown_uid_and_mirror():
    pytest.importorskip("idc_index_data")
    with pytest.raises(fastvol.PathNotFoundError, match="idc-index-data"):
        fastvol.idc.load("1.2.3.4.5.6.7.8.9")
    with pytest.raises(fastvol.InputError, match="mirror"):
        fastvol.idc.load(_an_idc_series()[0], mirror="azure")


@pytest.mark.filterwarnings("ignore::fastvol.FastvolWarning")
def test_idc_geometry_flags_disagreements_are_reported(tmp_path):
    from fastvol.idc import compare_geometry, with_idc_flags

    fx.write_series(tmp_path / "tilted", n=5, step_vector=(0, 0.3, 2.0))
    fx.write_series(tmp_path / "regular", n=5)
    tilted = fastvol.load(tmp_path / "tilted", tilt="keep")
    regular = fastvol.load(tmp_path / "regular")
    says_regular = {"uniform_slice_spacing": True, "consistent_in_plane_row": True,
                    "consistent_in_plane_col": True, "unique_slice_positions": True,
                    "regularly_spaced_3d_volume": True}  # fmt: skip
    assert compare_geometry(says_regular, regular.geometry) == []
    found = compare_geometry(says_regular, tilted.geometry)
    assert {f.split("=")[0].rsplit(" ", 1)[1] for f in found} == {
        "consistent_in_plane_row", "consistent_in_plane_col", "regularly_spaced_3d_volume"}
    says_tilted = dict(says_regular, consistent_in_plane_col=False, regularly_spaced_3d_volume=False)
    assert len(compare_geometry(says_tilted, regular.geometry)) == 2
    assert compare_geometry({"consistent_in_plane_col": None}, tilted.geometry) == []
    flagged = with_idc_flags(regular, says_tilted)
    assert flagged.meta["idc_geometry"]["disagreements"] == compare_geometry(says_tilted, regular.geometry)
    assert "IDC volume_geometry_index says consistent_in_plane_col=False" in flagged.geometry.text()


def _load_in_worker(series) -> np.ndarray:
    return series.load(threads=1).array


def test_scanned_remote_series_load_in_forked_and_spawned_workers(s3, tmp_path):
    import multiprocessing

    fx.write_series(tmp_path / "s", n=4)
    url = upload(s3, tmp_path / "s", "workers")
    found = fastvol.scan(url, storage_options=s3.storage_options)  # this process has a session
    local = fastvol.load(tmp_path / "s").array
    for method in ("fork", "spawn"):
        with multiprocessing.get_context(method).Pool(1) as pool:
            np.testing.assert_array_equal(pool.apply(_load_in_worker, (found[0],)), local)


def test_command_line_takes_urls(http, tmp_path):
    from fastvol.cli import main

    fx.write_series(tmp_path / "s", n=4)
    serve(http, tmp_path / "s", "cli")
    out, err = io.StringIO(), io.StringIO()
    assert main([f"{http.url}/cli/"], stdout=out, stderr=err) == 0
    assert "shape       (4, 16, 12)" in out.getvalue()
    assert main([f"{http.url}/cli/missing.dcm"], stdout=out, stderr=err) == 2
    assert f"{http.url}/cli/missing.dcm" in err.getvalue()


def test_seg_and_float_pixel_data_over_s3(s3, tmp_path):
    """Derived objects read through the same sources: a 1-bit SEG (frames packed across byte
    boundaries) and a float parametric map."""
    pytest.importorskip("highdicom")
    import factory_derived as fd

    w = fx.write_series(tmp_path / "ct", n=4, rows=11, columns=13)
    sources = fd.source_datasets(w)
    masks = np.random.default_rng(3).random((4, 11, 13, 2)) > 0.6
    (tmp_path / "seg").mkdir()
    seg_path = fd.write_seg(sources, masks, tmp_path / "seg" / "seg.dcm", omit_empty_frames=False)
    (tmp_path / "pm").mkdir()
    values = np.random.default_rng(4).random((4, 11, 13)).astype(np.float32) * 100
    pm_path = fd.write_pm(sources, values, tmp_path / "pm" / "pm.dcm")
    seg_url = upload(s3, tmp_path / "seg", "derived/seg")
    pm_url = upload(s3, tmp_path / "pm", "derived/pm")
    local_seg = fastvol.load_segmentation(seg_path)
    remote_seg = fastvol.load_segmentation(fastvol.scan(seg_url, storage_options=s3.storage_options)[0])
    np.testing.assert_array_equal(remote_seg.array, local_seg.array)
    np.testing.assert_array_equal(remote_seg.affine, local_seg.affine)
    assert_same(fastvol.load(pm_url, storage_options=s3.storage_options), fastvol.load(pm_path))
