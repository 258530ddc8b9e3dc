"""Cohort conversion to a URL output (``fastvol convert IN -o s3://bucket/prefix/``).

Against moto's S3 on loopback (the ``s3`` fixture of ``test_remote.py``): the objects equal a
local conversion's files byte for byte, the report is in the bucket and lists URLs, a rerun
resumes from it without uploading again, and write failures are fastvol errors naming the URL.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

pytest.importorskip("fsspec")
pytest.importorskip("s3fs")
pytest.importorskip("moto")

import factory as fx  # noqa: E402
from test_remote import quick_retries, s3  # noqa: E402, F401 (fixtures, reused)

import fastvol  # noqa: E402
from fastvol import cli  # noqa: E402
from fastvol.cohort import output as output_mod  # noqa: E402
from fastvol.cohort.report import REPORT_NAME  # noqa: E402
from fastvol.sources import remote  # noqa: E402


def small_cohort(root: Path) -> None:
    fx.write_series(root / "p1" / "ct", n=6, extra={"SeriesNumber": 2}, seed=1)
    fx.write_series(root / "p1" / "mr", n=5, modality="MR", extra={"SeriesNumber": 3}, seed=2)
    fx.write_series(root / "p2" / "gaps", n=6, drop=[2], extra={"SeriesNumber": 4}, seed=3)


def _fs(server):
    fs, _ = remote.filesystem("s3://conv/", server.storage_options)
    return fs


def _bucket(server, name: str = "conv") -> None:
    server.put(name, {})


def _report(fs, url: str) -> list[dict]:
    return [json.loads(raw) for raw in fs.cat(url + REPORT_NAME).decode().splitlines()]


@pytest.mark.parametrize("jobs", [1, 2])
def test_convert_to_s3_equals_local_and_resumes(s3, tmp_path, jobs):  # noqa: F811
    small_cohort(tmp_path / "in")
    _bucket(s3)
    local = fastvol.convert(tmp_path / "in", tmp_path / "out")
    url = f"s3://conv/out-j{jobs}/"
    report = fastvol.convert(tmp_path / "in", url, jobs=jobs, storage_options=s3.storage_options)
    assert report.exit_code == local.exit_code == 1  # the gapped series is refused, both ways
    assert report.path == url + REPORT_NAME
    assert [line["status"] for line in report.lines] == [line["status"] for line in local.lines]
    fs = _fs(s3)
    fs.invalidate_cache()
    converted = 0
    for here, there in zip(local.lines, report.lines):
        assert len(here["outputs"]) == len(there["outputs"])
        for path, obj in zip(here["outputs"], there["outputs"]):
            assert obj == url + Path(path).name  # the same names, as URLs
            assert fs.cat(obj) == Path(path).read_bytes()
            converted += 1
        assert there["bytes_out"] == here["bytes_out"]
    assert converted == 4  # ct and mr: image and sidecar each
    lines = _report(fs, url)
    assert lines[0]["kind"] == "scan" and all(p.startswith(url) for p in lines[0]["planned"])
    assert [line["outputs"] for line in lines[1:]] == [line["outputs"] for line in report.lines]

    s3.faults.clear()
    again = fastvol.convert(tmp_path / "in", url, jobs=jobs, storage_options=s3.storage_options)
    assert again.exit_code == 1
    assert all(line.get("reused") for line in again.lines)
    puts = s3.faults.per_path("PUT")
    assert set(puts) == {f"/conv/out-j{jobs}/{REPORT_NAME}"}, puts  # no output uploaded again


def test_clash_with_a_foreign_object_gets_a_letter(s3, tmp_path):  # noqa: F811
    fx.write_series(tmp_path / "in" / "ct", n=4, extra={"SeriesNumber": 2}, seed=1)
    _bucket(s3)
    first = fastvol.convert(tmp_path / "in", "s3://conv/clash/", sidecar="n",
                            storage_options=s3.storage_options)  # fmt: skip
    name = first.outputs[0]
    fs = _fs(s3)
    fs.rm(first.path)  # forget the run: the object is now someone else's
    fs.invalidate_cache()
    second = fastvol.convert(tmp_path / "in", "s3://conv/clash/", sidecar="n",
                             storage_options=s3.storage_options)  # fmt: skip
    assert second.outputs == [name.replace(".nii.gz", "a.nii.gz")]
    fs.rm(second.path)
    fs.invalidate_cache()
    third = fastvol.convert(tmp_path / "in", "s3://conv/clash/", sidecar="n", clash=0,
                            storage_options=s3.storage_options)  # fmt: skip
    assert third.lines[0]["status"] == "skipped" and third.lines[0]["reason"] == "-w 0: output exists"


def test_missing_bucket_is_an_error_naming_the_url(s3, tmp_path):  # noqa: F811
    fx.write_series(tmp_path / "in" / "ct", n=3, seed=1)
    with pytest.raises(fastvol.FastvolError, match=r"s3://no-such-bucket/out/fastvol-report\.jsonl"):
        fastvol.convert(tmp_path / "in", "s3://no-such-bucket/out/", storage_options=s3.storage_options)


def test_denied_upload_fails_the_series_and_a_rerun_converts_it(s3, tmp_path, monkeypatch):  # noqa: F811
    fx.write_series(tmp_path / "in" / "ct", n=3, extra={"SeriesNumber": 2}, seed=1)
    _bucket(s3)
    real = output_mod.upload

    def denied(local, url, storage_options):
        if not url.endswith(REPORT_NAME):
            raise remote.translate(PermissionError("Access Denied"), url, "upload")
        real(local, url, storage_options)

    monkeypatch.setattr(output_mod, "upload", denied)
    report = fastvol.convert(tmp_path / "in", "s3://conv/denied/", storage_options=s3.storage_options)
    line = report.lines[0]
    assert report.exit_code == 1 and line["status"] == "failed" and line["outputs"] == []
    assert "s3://conv/denied/" in line["message"] and "access denied" in line["message"]
    monkeypatch.setattr(output_mod, "upload", real)
    again = fastvol.convert(tmp_path / "in", "s3://conv/denied/", storage_options=s3.storage_options)
    assert again.exit_code == 0 and not again.lines[0].get("reused")
    assert _fs(s3).exists(again.outputs[0])


def test_cli_to_a_memory_url(tmp_path):
    fsspec = pytest.importorskip("fsspec")
    fx.write_series(tmp_path / "in" / "ct", n=3, extra={"SeriesNumber": 2}, seed=1)
    err = io.StringIO()
    code = cli.main(["convert", str(tmp_path / "in"), "-o", "memory://fastvol-cli/out/"],
                    stdout=io.StringIO(), stderr=err)  # fmt: skip
    assert code == 0, err.getvalue()
    assert "report memory://fastvol-cli/out/fastvol-report.jsonl" in err.getvalue()
    names = sorted(p.rsplit("/", 1)[-1] for p in fsspec.filesystem("memory").find("/fastvol-cli/out"))
    assert names == ["ct__20240115093000_2.json", "ct__20240115093000_2.nii.gz", REPORT_NAME]
