"""Cohort conversion (``fastvol convert`` / :func:`fastvol.convert`) on factory cohorts.

Outputs are checked against what fastvol.load returns for the same series (array and affine,
through NIfTI's explicit layout change), sidecars against the headers the factory wrote.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pickle
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest

import factory as fx
import fastvol
from fastvol import cli
from fastvol.cohort.naming import assign_names, check_pattern, expand
from fastvol.cohort.report import REPORT_NAME, read_lines
from fastvol.volume import Volume

nib = pytest.importorskip("nibabel")

MR_HEADER = {"ProtocolName": "t1 mprage/sag", "EchoTime": 2.5, "RepetitionTime": 2300,
             "FlipAngle": 9, "MagneticFieldStrength": 3, "InPlanePhaseEncodingDirection": "ROW",
             "ManufacturerModelName": "Prisma", "StudyDate": "20240102", "StudyTime": "101112.5",
             "PatientID": "sub 01"}  # fmt: skip


def cohort(root: Path) -> dict[str, fx.WrittenSeries]:
    """A small mixed cohort: good CT and MR, a gapped and a tilted CT, a localizer, a derived
    image, and junk."""
    written = {
        "ct": fx.write_series(root / "pat1" / "ct", n=8, extra={"SeriesNumber": 2}, seed=1),
        "mr": fx.write_series(root / "pat1" / "mr", n=6, modality="MR", seed=2,
                              extra={**MR_HEADER, "SeriesNumber": 8}),
        "gaps": fx.write_series(root / "pat2" / "gaps", n=7, drop=[3], seed=3,
                                extra={"SeriesNumber": 4}),
        "tilt": fx.write_series(root / "pat2" / "tilt", n=6, step_vector=(0, 0.6, 2.0), seed=4,
                                extra={"SeriesNumber": 5}),
        "derived": fx.write_series(root / "pat2" / "derived", n=4, seed=5,
                                   image_type=("DERIVED", "SECONDARY", "MPR"),
                                   extra={"SeriesNumber": 6}),
    }  # fmt: skip
    fx.write_non_dicom(root / "pat2", "notes.txt")
    return written


def nifti_as_volume_layout(path: str) -> tuple[np.ndarray, np.ndarray]:
    """A fastvol NIfTI back in fastvol's layout: array (slice, row, column), LPS affine."""
    image = nib.load(path)
    array = np.asarray(image.dataobj).transpose(2, 1, 0)
    perm = np.zeros((4, 4))
    perm[0, 2] = perm[1, 1] = perm[2, 0] = perm[3, 3] = 1.0
    return array, np.diag([-1.0, -1.0, 1.0, 1.0]) @ image.affine @ perm


def series_lines(out: Path) -> list[dict]:
    return [line for line in read_lines(str(out / REPORT_NAME)) if line["kind"] == "series"]


def run_cli(*argv: str) -> tuple[int, str]:
    err = io.StringIO()
    code = cli.main(["convert", *argv], stdout=io.StringIO(), stderr=err)
    return code, err.getvalue()


def test_cohort_outputs_report_and_sidecars(tmp_path: Path) -> None:
    written = cohort(tmp_path / "in")
    out = tmp_path / "out"
    code, err = run_cli(str(tmp_path / "in"), "-o", str(out), "-q")
    assert code == 1, err  # the gapped series is refused
    lines = series_lines(out)
    by_folder = {Path(line["folder"]).name: line for line in lines}
    assert set(by_folder) == {"ct", "mr", "gaps", "tilt", "derived"}
    assert [line["index"] for line in lines] == list(range(len(lines)))
    gaps = by_folder["gaps"]
    assert gaps["status"] == "refused" and gaps["error"] == "MissingSlicesError"
    assert "gaps='fill'" in gaps["message"] and gaps["outputs"] == []
    assert gaps["geometry"]["missing"] == [3]  # the geometry from headers, still reported
    assert sorted(gaps["inputs"]) == sorted(map(str, written["gaps"].paths))
    for name in ("ct", "mr", "tilt", "derived"):
        line = by_folder[name]
        assert line["status"] == "converted", line
        image, side = line["outputs"]
        assert image.endswith(".nii.gz") and side.endswith(".json")
        with warnings.catch_warnings():  # the tilted one warns; the report line says it too
            warnings.simplefilter("ignore", fastvol.FastvolWarning)
            vol = fastvol.load(line["folder"])
        array, affine = nifti_as_volume_layout(image)
        np.testing.assert_array_equal(array, vol.array)
        np.testing.assert_allclose(affine, vol.affine, atol=1e-5)
        assert line["geometry"]["shape"] == list(vol.shape)
        assert line["timings"]["total_s"] > 0 and line["bytes_out"] > 0
    # dcm2niix's default pattern %f_%p_%t_%s, values made file-name safe
    assert Path(by_folder["mr"]["outputs"][0]).name == "mr_t1_mprage_sag_20240102101112_8.nii.gz"
    scan_line = read_lines(str(out / REPORT_NAME))[0]
    assert scan_line["kind"] == "scan" and any("notes.txt" in f for f in scan_line["skipped"]["not DICOM"])

    mr = json.loads(Path(by_folder["mr"]["outputs"][1]).read_text())
    assert mr["Modality"] == "MR" and mr["ProtocolName"] == "t1 mprage/sag"
    assert mr["EchoTime"] == pytest.approx(0.0025) and mr["RepetitionTime"] == pytest.approx(2.3)
    assert mr["FlipAngle"] == 9 and mr["MagneticFieldStrength"] == 3
    assert mr["PhaseEncodingAxis"] == "i" and mr["ManufacturersModelName"] == "Prisma"
    assert mr["ConversionSoftware"] == "fastvol" and mr["ConversionSoftwareVersion"] == fastvol.__version__
    assert mr["fastvol"]["kind"] == "regular" and mr["fastvol"]["tilt_deg"] == 0

    tilt_line = by_folder["tilt"]
    tilt = json.loads(Path(tilt_line["outputs"][1]).read_text())
    assert tilt["fastvol"]["tilt_deg"] > 10
    assert tilt["fastvol"]["written"]["tilt"] == "kept" and "--tilt resample" in tilt["fastvol"]["written"]["hint"]
    header = nib.load(tilt_line["outputs"][0]).header
    assert header["sform_code"] == 1 and header["qform_code"] == 0  # sform holds the shear
    written_codes = tilt["fastvol"]["written"]
    assert (written_codes["sform_code"], written_codes["qform_code"]) == (header["sform_code"], header["qform_code"])
    assert tilt_line["written"] == tilt["fastvol"]["written"]
    assert any("gantry tilt" in w for w in tilt_line["warnings"])


@pytest.mark.parametrize("tolerance", [None, "1.0"])
def test_nifti_qform_follows_the_tilt_tolerance_and_the_sidecar_says_so(tmp_path: Path, tolerance) -> None:
    """A 0.57 deg lean: tilted under the default tolerance (sheared sform, no qform, a note with
    the file's codes); untilted under --tilt-tolerance-deg 1 (a qform, code 1, no note)."""
    fx.write_series(tmp_path / "in" / "lean", n=6, step_vector=(0, 0.02, 2.0), seed=7)
    out = tmp_path / "out"
    extra = [] if tolerance is None else ["--tilt-tolerance-deg", tolerance]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fastvol.FastvolWarning)
        code, err = run_cli(str(tmp_path / "in"), "-o", str(out), "-q", *extra)
    assert code == 0, err
    (line,) = series_lines(out)
    header = nib.load(line["outputs"][0]).header
    side = json.loads(Path(line["outputs"][1]).read_text())["fastvol"]
    assert side["tilt_deg"] == pytest.approx(np.degrees(np.arctan(0.01)), rel=1e-3)
    assert int(header["sform_code"]) == 1
    if tolerance is None:
        assert int(header["qform_code"]) == 0
        assert (side["written"]["sform_code"], side["written"]["qform_code"]) == (1, 0)
        assert line["written"] == side["written"]
    else:
        assert int(header["qform_code"]) == 1
        assert "written" not in side and line["written"] is None


@pytest.mark.corpus
def test_corpus_untilted_series_get_a_qform_and_sidecars_say_the_codes(corpus: Path, tmp_path: Path) -> None:
    """Every corpus series fastvol converts has a tilt under the tolerance (header rounding
    leaves up to 3e-3 deg): each NIfTI gets qform code 1 beside sform code 1, no note."""
    from fastvol.options import TILT_TOLERANCE_DEG

    out = tmp_path / "out"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fastvol.FastvolWarning)
        run_cli(str(corpus), "-o", str(out), "-q")  # exit 1: some corpus series are refused
    lines = [line for line in series_lines(out) if line["status"] == "converted"]
    assert len(lines) > 50
    for line in lines:
        header = nib.load(line["outputs"][0]).header
        side = json.loads(Path(line["outputs"][1]).read_text())["fastvol"]
        assert side["tilt_deg"] <= TILT_TOLERANCE_DEG, line["outputs"][0]
        assert (int(header["sform_code"]), int(header["qform_code"])) == (1, 1), line["outputs"][0]
        assert "written" not in side and line["written"] is None


def test_tilt_resample_and_ignore_derived(tmp_path: Path) -> None:
    cohort(tmp_path / "in")
    out = tmp_path / "out"
    report = fastvol.convert(tmp_path / "in", out, tilt="resample", gaps="fill", ignore_derived=True)
    assert report.exit_code == 0
    by_folder = {Path(line["folder"]).name: line for line in report.lines}
    assert by_folder["derived"]["status"] == "skipped" and "derived" in by_folder["derived"]["reason"]
    assert by_folder["gaps"]["status"] == "converted"
    header = nib.load(by_folder["tilt"]["outputs"][0]).header
    affine = header.get_best_affine()[:3, :3]
    gram = affine.T @ affine
    np.testing.assert_allclose(gram - np.diag(np.diag(gram)), 0, atol=1e-4)  # orthogonal grid
    assert by_folder["tilt"]["written"] is None


def test_formats_and_sidecar_modes(tmp_path: Path) -> None:
    written = fx.write_series(tmp_path / "in" / "ct", n=5, extra={"SeriesNumber": 3})
    vol = fastvol.load(tmp_path / "in")
    report = fastvol.convert(tmp_path / "in", tmp_path / "npz", format="npz", sidecar="n", pattern="%s")
    assert [Path(p).name for p in report.outputs] == ["3.npz"]
    with np.load(report.outputs[0]) as data:
        np.testing.assert_array_equal(data["array"], vol.array)
        np.testing.assert_array_equal(data["affine_lps"], vol.affine)
    report = fastvol.convert(tmp_path / "in", tmp_path / "only", sidecar="o", pattern="%s")
    assert [Path(p).name for p in report.outputs] == ["3.json"]
    assert json.loads(Path(report.outputs[0]).read_text())["fastvol"]["shape"] == [5, 16, 12]
    report = fastvol.convert(tmp_path / "in", tmp_path / "gz", pattern="%s")
    head = Path(report.outputs[0]).read_bytes()[:10]  # gzip: no file name, mtime 0 (repeatable)
    assert head[:3] == b"\x1f\x8b\x08" and not head[3] & 0x08 and head[4:8] == b"\0\0\0\0"
    np.testing.assert_array_equal(nifti_as_volume_layout(report.outputs[0])[0], vol.array)
    report = fastvol.convert(tmp_path / "in", tmp_path / "nii", compress=False, pattern="%s")
    assert Path(report.outputs[0]).name == "3.nii"
    assert nib.load(report.outputs[0]).shape == (12, 16, 5)
    assert len(written.paths) == 5
    code, err = run_cli(str(tmp_path / "in"), "-o", str(tmp_path / "zarr"), "--format", "zarr", "-q")
    if hasattr(Volume, "to_zarr"):
        assert code == 0, err
    else:
        assert code == 2 and "UnsupportedError" in err and "--format nifti or npz" in err


def test_exit_codes_and_usage(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    fx.write_non_dicom(tmp_path / "empty")
    code, err = run_cli(str(tmp_path / "empty"), "-o", str(tmp_path / "out"))
    assert code == 2 and "no DICOM image series found" in err
    fx.write_series(tmp_path / "one", n=4)
    code, err = run_cli(str(tmp_path / "one"), "-o", str(tmp_path / "out1"))
    assert code == 0 and "converted" in err  # the summary table
    code, err = run_cli(str(tmp_path / "one"), "-o", str(tmp_path / "out2"), "-f", "%q")
    assert code == 2 and "unknown token %q" in err
    help_text = io.StringIO()
    with pytest.raises(SystemExit) as exc, contextlib.redirect_stdout(help_text):
        cli.main(["convert", "--help"])
    assert exc.value.code == 0 and "%f_%p_%t_%s" in help_text.getvalue() and "--gaps" in help_text.getvalue()
    with pytest.raises(SystemExit) as exc:  # argparse: bad usage is 2, as in dcm2niix
        cli.main(["convert", str(tmp_path / "one")], stderr=io.StringIO())
    assert exc.value.code == 2
    with pytest.raises(fastvol.InputError):
        fastvol.convert(tmp_path / "one", tmp_path / "out3", jobs=0)
    with pytest.raises(fastvol.InputError):
        fastvol.convert(tmp_path / "one", tmp_path / "out3", gaps="maybe")


def test_naming_tokens_and_clashes(tmp_path: Path) -> None:
    fx.write_series(tmp_path / "a", n=3, extra=MR_HEADER | {"SeriesNumber": 7}, modality="MR")
    series = fastvol.scan(tmp_path / "a", extra_tags=["ProtocolName", "StudyDate", "StudyTime", "PatientID"])[0]
    assert expand("%i/%p_%s", series) == "sub_01/t1_mprage_sag_7"
    assert expand("%j", series) == series.uid and expand("%f-%m", series) == "a-fastvol_factory"
    assert expand("../%s", series) == "7"  # never leaves the output folder
    assert assign_names(["x", "X", "x", "y"], 2) == ["x", "Xa", "xb", "y"]
    assert assign_names(["x", "x"], 0) == ["x", None]
    for bad in ("%q", "/abs/%s", "../%s", ""):
        with pytest.raises(fastvol.InputError):
            check_pattern(bad)
    # a file in the way that no earlier run wrote: -w 2 adds a letter, 0 skips, 1 overwrites
    out = tmp_path / "out"
    out.mkdir()
    (out / "7.nii.gz").write_bytes(b"not ours")
    report = fastvol.convert(tmp_path / "a", out, pattern="%s", sidecar="n")
    assert [Path(p).name for p in report.outputs] == ["7a.nii.gz"]
    report = fastvol.convert(tmp_path / "a", tmp_path / "out", pattern="%s", sidecar="n", resume=False)
    assert [Path(p).name for p in report.outputs] == ["7a.nii.gz"]  # ours now: same name again
    (out / "7.nii.gz").write_bytes(b"not ours")
    report = fastvol.convert(tmp_path / "a", out / "w0", pattern="%s", sidecar="n")
    (out / "w0" / "7.nii.gz").write_bytes(b"x")
    os.remove(out / "w0" / REPORT_NAME)
    report = fastvol.convert(tmp_path / "a", out / "w0", pattern="%s", sidecar="n", clash=0)
    assert report.lines[0]["status"] == "skipped" and report.outputs == []
    report = fastvol.convert(tmp_path / "a", out / "w0", pattern="%s", sidecar="n", clash=1)
    assert [Path(p).name for p in report.outputs] == ["7.nii.gz"]
    assert nib.load(report.outputs[0]).shape == (12, 16, 3)


def test_depth_limits_the_walk(tmp_path: Path) -> None:
    fx.write_series(tmp_path / "in" / "top", n=3, seed=1)
    fx.write_series(tmp_path / "in" / "a" / "b" / "deep", n=3, seed=2)
    assert len(fastvol.convert(tmp_path / "in", tmp_path / "o1", depth=1).lines) == 1
    assert len(fastvol.convert(tmp_path / "in", tmp_path / "o2").lines) == 2


def _tree(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and p.name != REPORT_NAME}  # fmt: skip


def test_resume_keeps_finished_series_and_redoes_changed(tmp_path: Path) -> None:
    cohort(tmp_path / "in")
    out = tmp_path / "out"
    first = fastvol.convert(tmp_path / "in", out, sidecar="y")
    before = _tree(out)
    mtimes = {p: os.stat(p).st_mtime_ns for p in first.outputs}
    again = fastvol.convert(tmp_path / "in", out)
    assert all(line.get("reused") for line in again.lines)
    assert {p: os.stat(p).st_mtime_ns for p in again.outputs} == mtimes
    assert _tree(out) == before and again.exit_code == first.exit_code == 1
    os.remove(first.outputs[0])  # an output gone: that series is redone
    redone = fastvol.convert(tmp_path / "in", out)
    assert sum(not line.get("reused") for line in redone.lines) == 1 and _tree(out) == before
    fx.write_series(tmp_path / "in" / "pat0" / "new", n=3, seed=9, extra={"SeriesNumber": 1})
    grown = fastvol.convert(tmp_path / "in", out)  # a series added in front: only it is new
    assert [line.get("reused", False) for line in grown.lines] == [False] + [True] * len(redone.lines)
    assert [line["index"] for line in grown.lines] == list(range(len(grown.lines)))
    # A file rewritten with other values but the same size: its series is redone, not kept.
    victim = grown.lines[0]["inputs"][0]
    ds = pydicom.dcmread(victim)
    ds.PixelData = bytes(len(ds.PixelData))
    ds.save_as(victim)
    os.utime(victim, ns=(time.time_ns(), time.time_ns() + 10**9))  # a coarse clock still moves
    changed = fastvol.convert(tmp_path / "in", out)
    assert [line.get("reused", False) for line in changed.lines].count(False) == 1
    assert not changed.lines[0].get("reused")
    fill = fastvol.convert(tmp_path / "in", out, gaps="fill")  # other options: all redone
    assert fill.exit_code == 0 and not any(line.get("reused") for line in fill.lines)
    fresh = fastvol.convert(tmp_path / "in", out, resume=False)
    assert not any(line.get("reused") for line in fresh.lines)


def test_tasks_pickle(tmp_path: Path) -> None:
    from fastvol.cohort.run import plan_tasks

    fx.write_series(tmp_path / "a", n=3)
    found = fastvol.scan(tmp_path / "a")
    tasks, _ = plan_tasks(found, str(tmp_path / "o"), fastvol.Options(), pattern="%s", fmt="nifti",
                          compress=True, sidecar="y", ignore_derived=False, clash=2,
                          version="0", ours=set())  # fmt: skip
    assert pickle.loads(pickle.dumps(tasks[0])) == tasks[0]


def big_cohort(root: Path, n_series: int, n_slices: int = 24) -> None:
    for i in range(n_series):
        fx.write_series(root / f"s{i:02d}", n=n_slices, rows=64, columns=64, seed=100 + i,
                        extra={"SeriesNumber": i + 1})  # fmt: skip


def _debris(out: Path) -> list[Path]:
    return [p for p in out.rglob("*") if ".fastvol-tmp-" in p.name]


def _convert_process(*argv: str) -> subprocess.Popen[bytes]:
    """``python -m fastvol convert ...`` as a process (this fastvol first on its path)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(fastvol.__file__).parents[1]),
                                                         os.environ.get("PYTHONPATH", "")])}  # fmt: skip
    return subprocess.Popen([sys.executable, "-m", "fastvol", "convert", *argv, "-q"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip


def test_parallel_sigkill_then_rerun_matches_uninterrupted(tmp_path: Path) -> None:
    big_cohort(tmp_path / "in", 12)
    reference = fastvol.convert(tmp_path / "in", tmp_path / "ref", jobs=2)
    assert reference.exit_code == 0 and len({line["worker"] for line in reference.lines}) >= 1
    out = tmp_path / "out"
    proc = _convert_process(str(tmp_path / "in"), "-o", str(out), "-j", "2")
    deadline = time.monotonic() + 120
    while len(series_lines(out) if (out / REPORT_NAME).exists() else []) < 3:
        assert proc.poll() is None
        assert time.monotonic() < deadline
        time.sleep(0.005)
    children = _children(proc.pid)
    assert len(children) >= 2 or not sys.platform.startswith("linux")  # the two workers
    proc.send_signal(signal.SIGKILL)  # mid-run: some series done, some being written
    proc.wait()
    done_before = len(series_lines(out))
    assert 3 <= done_before
    rerun = _convert_process(str(tmp_path / "in"), "-o", str(out), "-j", "2")
    assert rerun.wait() == 0
    lines = series_lines(out)
    assert sum(bool(line.get("reused")) for line in lines) >= 3
    assert [line["status"] for line in lines] == ["converted"] * 12
    assert _tree(out) == _tree(tmp_path / "ref")
    assert _debris(out) == []
    deadline = time.monotonic() + 30  # the killed run's workers died with it
    while [p for p in children if _alive(p)] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [p for p in children if _alive(p)] == []


def _children(pid: int) -> list[int]:
    """Child processes of ``pid`` (Linux /proc; empty elsewhere)."""
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_sigterm_exits_3_and_rerun_finishes(tmp_path: Path) -> None:
    big_cohort(tmp_path / "in", 6)
    out = tmp_path / "out"
    proc = _convert_process(str(tmp_path / "in"), "-o", str(out), "-j", "2")
    deadline = time.monotonic() + 120
    while not ((out / REPORT_NAME).exists() and series_lines(out)):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.005)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait() in (0, 3)  # 0 when it finished first
    assert _debris(out) == []
    rerun = _convert_process(str(tmp_path / "in"), "-o", str(out), "-j", "2")
    assert rerun.wait() == 0
    assert [line["status"] for line in series_lines(out)] == ["converted"] * 6


def test_series_number_on_the_command_line(tmp_path: Path) -> None:
    fx.write_series(tmp_path / "a", n=3, seed=1, extra={"SeriesNumber": 8})
    fx.write_series(tmp_path / "b", n=4, seed=2, extra={"SeriesNumber": 9})
    out = io.StringIO()
    assert cli.main([str(tmp_path), "--series", "8", "--json"], stdout=out, stderr=io.StringIO()) == 0
    assert json.loads(out.getvalue())["shape"] == [3, 16, 12]  # SeriesNumber 8, not index 8
    out = io.StringIO()
    assert cli.main([str(tmp_path), "--series", "[1]", "--json"], stdout=out, stderr=io.StringIO()) == 0
    assert json.loads(out.getvalue())["shape"] == [4, 16, 12]  # index 1, written as listed
    err = io.StringIO()
    assert cli.main([str(tmp_path), "--series", "1"], stdout=io.StringIO(), stderr=err) == 2
    assert "no series has '1' as Series.id, SeriesInstanceUID or SeriesNumber" in err.getvalue()


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_on_a_terminal_lines_otherwise(tmp_path: Path) -> None:
    pytest.importorskip("tqdm")
    fx.write_series(tmp_path / "a", n=3, seed=1)
    fx.write_series(tmp_path / "b", n=3, seed=2)
    tty = _Terminal()
    fastvol.convert(tmp_path, tmp_path / "o1", progress="auto", progress_stream=tty)
    assert "2/2" in tty.getvalue() and "files/s" in tty.getvalue() and "MB/s" in tty.getvalue()
    plain = io.StringIO()
    fastvol.convert(tmp_path, tmp_path / "o2", progress="auto", progress_stream=plain)
    lines = plain.getvalue().splitlines()
    assert [line.split()[0] for line in lines] == ["[1/2]", "[2/2]"] and "\r" not in plain.getvalue()
    quiet = io.StringIO()
    code = cli.main(["convert", str(tmp_path), "-o", str(tmp_path / "o3"), "-q"], stdout=io.StringIO(),
                    stderr=quiet)  # fmt: skip
    assert code == 0 and quiet.getvalue() == ""


def test_scan_in_workers_matches_one_scan(tmp_path: Path) -> None:
    """``-j 2`` reads the headers in its workers, in parts: the same series, skipped files,
    errors, report and outputs as one scan in one process."""
    from fastvol.cohort.local import start_pool
    from fastvol.cohort.run import _depth_limited
    from fastvol.cohort.scanning import MIN_PART, scan_in_pool
    from fastvol.cohort.sidecar import SIDECAR_TAGS

    big_cohort(tmp_path / "in", 6)
    cohort(tmp_path / "in" / "mixed")
    fx.write_non_dicom(tmp_path / "in" / "s03", "junk.txt")
    first = sorted((tmp_path / "in" / "s04").iterdir())[0]
    (tmp_path / "in" / "s04" / "cut").write_bytes(first.read_bytes()[:300])  # a header cut short
    files = _depth_limited(str(tmp_path / "in"), 99)
    assert len(files) >= 2 * MIN_PART  # enough to be read in parts
    pool = start_pool(2)
    try:
        split = scan_in_pool(str(tmp_path / "in"), pool, 2, SIDECAR_TAGS)
    finally:
        pool.shutdown()
    whole = fastvol.scan(tmp_path / "in", extra_tags=SIDECAR_TAGS)
    assert split is not None and list(split) == list(whole)
    assert split.skipped == whole.skipped and split.errors == whole.errors
    assert whole.skipped["not DICOM"] and len(whole.skipped) >= 2, whole.skipped.keys()

    one = fastvol.convert(tmp_path / "in", tmp_path / "one", jobs=1)
    two = fastvol.convert(tmp_path / "in", tmp_path / "two", jobs=2)
    assert _tree(tmp_path / "one") == _tree(tmp_path / "two")

    def same(line: dict) -> dict:
        return {k: v for k, v in line.items() if k not in ("timings", "worker", "outputs", "planned", "key")}

    assert [same(line) for line in read_lines(str(tmp_path / "one" / REPORT_NAME))] == \
        [same(line) for line in read_lines(str(tmp_path / "two" / REPORT_NAME))]  # fmt: skip
    assert one.exit_code == two.exit_code == 1


def test_nii_gz_streamed_is_the_nii_compressed(tmp_path: Path) -> None:
    """The .nii.gz a task writes is the .nii's bytes through ISA-L in 8 MiB pieces, as when it
    compressed a written .nii (identical bytes across versions), with no .nii on disk."""
    igzip = pytest.importorskip("isal.igzip")
    from fastvol.cohort.tasks import _GZIP_CHUNK, _write_nifti_gz

    fx.write_series(tmp_path / "in", n=5, rows=700, columns=1300, seed=3)  # 9 MB: two pieces
    vol = fastvol.load(tmp_path / "in")
    assert vol.array.nbytes > _GZIP_CHUNK
    tmp_path = tmp_path / "out"
    tmp_path.mkdir()
    vol.to_nifti(str(tmp_path / "a.nii"))
    raw = (tmp_path / "a.nii").read_bytes()
    stream = io.BytesIO()
    vol.to_nifti(stream)
    assert stream.getvalue() == raw
    expected = io.BytesIO()
    with igzip.IGzipFile(filename="", mode="wb", fileobj=expected, compresslevel=1, mtime=0) as gz:
        for start in range(0, len(raw), _GZIP_CHUNK):
            gz.write(raw[start : start + _GZIP_CHUNK])
    assert _write_nifti_gz(vol, str(tmp_path / "b.nii.gz"))
    assert (tmp_path / "b.nii.gz").read_bytes() == expected.getvalue()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.nii", "b.nii.gz"]


def test_workers_dead_before_the_conversion_are_replaced(tmp_path: Path) -> None:
    """A worker killed before the tasks are handed out (while it read headers): the run starts
    fresh workers instead of failing every series."""
    from concurrent.futures.process import BrokenProcessPool

    from fastvol.cohort.local import run_local, start_pool
    from fastvol.cohort.run import plan_tasks

    big_cohort(tmp_path / "in", 3, n_slices=4)
    found = fastvol.scan(tmp_path / "in")
    tasks, _ = plan_tasks(found, str(tmp_path / "o"), fastvol.Options(threads=1), pattern="%s",
                          fmt="nifti", compress=True, sidecar="n", ignore_derived=False, clash=2,
                          version="0", ours=set())  # fmt: skip
    pool = start_pool(2)
    next(iter(pool._processes.values())).kill()
    with pytest.raises(BrokenProcessPool):  # the pool notices the death
        pool.submit(os.getpid).result(timeout=60)
    lines: list[dict] = []
    run_local(tasks, 2, lines.append, pool=pool)
    assert sorted(line["status"] for line in lines) == ["converted"] * 3
    pool.shutdown()


def test_convert_without_the_writer_package_fails_once_up_front(tmp_path):
    """Without nibabel, convert stops at once with the pip command (exit 2), instead of
    refusing every series one by one."""
    fx.write_series(tmp_path / "in", n=3)
    code = ("import sys; sys.modules['nibabel'] = None  # as if not installed\n"
            "from fastvol.cli import main\n"
            "sys.exit(main(['convert', sys.argv[1], '-o', sys.argv[2], '-q']))")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "in"), str(tmp_path / "out")],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "pip install 'fastvol[nifti]'" in done.stderr


def test_a_script_without_a_main_guard_is_told_to_add_one(tmp_path):
    """A script calling convert(jobs=2) at its top level: its spawned workers import it and die
    starting; every series fails, and the report says how to fix the script."""
    fx.write_series(tmp_path / "in" / "a", n=3, seed=1)
    fx.write_series(tmp_path / "in" / "b", n=3, seed=2)
    script = tmp_path / "unguarded.py"
    script.write_text("import sys, fastvol\n"
                      f"report = fastvol.convert({str(tmp_path / 'in')!r}, {str(tmp_path / 'out')!r}, jobs=2)\n"
                      "print('MESSAGES', [line['message'] for line in report.lines])\n")  # fmt: skip
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert "MESSAGES" in done.stdout, done.stderr[-2000:]
    assert 'if __name__ == "__main__":' in done.stdout
    assert "RuntimeWarning: fastvol.convert: worker processes died" in done.stderr  # seen, not only in the report


def test_a_damaged_image_refuses_its_series_not_the_batch(tmp_path):
    """An image file cut before its pixels refuses the series it belongs to (naming the file
    and --unreadable skip); the other series of the cohort convert."""
    fx.write_series(tmp_path / "in" / "a", n=4, seed=1)
    fx.write_series(tmp_path / "in" / "b", n=4, seed=2)
    victim = sorted((tmp_path / "in" / "b").iterdir())[0]
    data = victim.read_bytes()
    victim.write_bytes(data[: data.rfind(b"\xe0\x7f\x10\x00")])  # cut at its PixelData tag
    report = fastvol.convert(tmp_path / "in", tmp_path / "out", jobs=1)
    by_status = {line["status"]: line for line in report.lines}
    assert sorted(line["status"] for line in report.lines) == ["converted", "refused"]
    assert str(victim) in by_status["refused"]["message"]
    assert "--unreadable skip" in by_status["refused"]["message"]
    summary = report.summary()  # what the terminal shows names the series and the file
    assert f"refused {tmp_path / 'in' / 'b'}:" in summary and f"damaged image: {victim}" in summary
    again = fastvol.convert(tmp_path / "in", tmp_path / "out2", jobs=1, unreadable="skip")
    assert sorted(line["status"] for line in again.lines) == ["converted", "converted"]
    line_b = next(line for line in again.lines if line["folder"].endswith("b"))
    assert str(victim) in json.dumps(line_b["geometry"])  # the skip is said, per series
    sidecar = json.loads(Path(next(p for p in line_b["outputs"] if p.endswith(".json"))).read_text())
    assert str(victim) in json.dumps(sidecar)


def test_a_file_cut_before_its_series_uid_refuses_the_series_of_its_folder(tmp_path):
    """A file cut before (or inside) its SeriesInstanceUID names no series: the series with
    files in its folder are refused (a slice of theirs may be missing), the others convert."""
    fx.write_series(tmp_path / "in" / "a", n=4, seed=1)
    fx.write_series(tmp_path / "in" / "b", n=4, seed=2)
    victim = fastvol.load(tmp_path / "in" / "b").meta["files"][-1]
    data = Path(victim).read_bytes()
    Path(victim).write_bytes(data[: data.find(b"\x20\x00\x0e\x00") + 12])  # inside the UID's value
    report = fastvol.convert(tmp_path / "in", tmp_path / "out", jobs=1)
    statuses = {line["folder"]: line["status"] for line in report.lines}
    assert statuses == {str(tmp_path / "in" / "a"): "converted", str(tmp_path / "in" / "b"): "refused"}
    refused = next(line for line in report.lines if line["status"] == "refused")
    assert victim in refused["message"] and "--unreadable skip" in refused["message"]
