"""Unattended batch use: bad input gives fastvol errors, never foreign ones, hangs or debris.

One class of defect per section: foreign exceptions from lower layers, absurd geometry and
values, unreadable files and folders, output debris, and read-only installs.
"""

from __future__ import annotations

import io
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest

import factory as fx
import factory_enhanced as fe
import fastvol
from fastvol import api, cli
from fastvol.atomic import TMP_MARK, atomic_path, remove_stale
from fastvol.errors import CorruptFileError, GeometryError, UnreadableError, map_exceptions
from fastvol.sources import LocalFile

SRC = Path(fastvol.__file__).resolve().parents[1]

# ------------------------------------------------------------------------------------- helpers


def good_and_enhanced(tmp_path: Path, patch=None) -> tuple[fx.WrittenSeries, Path]:
    """A good classic series and an enhanced file beside it, edited by ``patch(ds)``.

    ``patch`` may return ``(old, new)`` bytes replaced in the written file (for values pydicom
    refuses to write).
    """
    good = fx.write_series(tmp_path / "good", n=4, seed=1)
    fe.write_enhanced(tmp_path / "enh", seed=2)
    path = next((tmp_path / "enh").iterdir())
    if patch is not None:
        ds = pydicom.dcmread(path)
        swap = patch(ds)
        ds.save_as(path)
        if swap:
            data = path.read_bytes()
            assert swap[0] in data
            path.write_bytes(data.replace(*swap))
    return good, path


def grid_offsets_not_numbers(ds) -> tuple[bytes, bytes]:
    """An RT dose grid whose GridFrameOffsetVector is "0\\abcde"."""
    ds.Modality = "RTDOSE"
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.481.2"
    ds.ImagePositionPatient = [0, 0, 0]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    del ds.PerFrameFunctionalGroupsSequence
    ds.GridFrameOffsetVector = "0\\12345"
    return b"0\\12345", b"0\\abcde"


def per_frame_not_a_sequence(ds) -> None:
    """PerFrameFunctionalGroupsSequence as text of NumberOfFrames characters."""
    from pydicom.dataelem import DataElement

    del ds.PerFrameFunctionalGroupsSequence
    ds.add(DataElement(0x52009230, "LO", "abcdef"))  # 6 frames: len() agrees, items are str


def unknown_vr_in_frame(ds) -> tuple[bytes, bytes]:
    """A per-frame ImagePositionPatient whose VR is "QQ" (pydicom: NotImplementedError)."""
    item = ds.PerFrameFunctionalGroupsSequence[0].PlanePositionSequence[0]
    item.ImagePositionPatient = ["0", "0", "7.5"]
    return b"\x20\x00\x32\x00DS\x08\x000\\0\\7.5 ", b"\x20\x00\x32\x00QQ\x08\x000\\0\\7.5 "


# ------------------------------------------- 1. foreign exceptions become fastvol errors


@pytest.mark.parametrize("patch", [grid_offsets_not_numbers, per_frame_not_a_sequence,
                                   unknown_vr_in_frame])  # fmt: skip
def test_broken_enhanced_file_is_a_scan_error_and_the_good_series_loads(tmp_path, patch):
    good, broken = good_and_enhanced(tmp_path, patch)
    found = fastvol.scan(tmp_path)  # never raises for a file
    assert str(broken) in found.errors
    assert str(broken) in found.skipped["unreadable"]
    assert len(found) == 1 and found[0].uid == good.series_uid
    vol = fastvol.load(tmp_path)
    np.testing.assert_array_equal(vol.array, good.volume(rescaled=True))


@pytest.mark.parametrize("foreign", [
    NotImplementedError("unknown VR 'QQ'"), AttributeError("'str' object has no attribute 'get'"),
    ValueError("could not convert string to float: 'abcde'"), IndexError("list index out of range"),
    KeyError(0x00200032), OverflowError("cannot convert float infinity to integer"),
    TypeError("'NoneType' object is not subscriptable"),
])  # fmt: skip
def test_any_foreign_error_while_expanding_frames_is_a_scan_error(tmp_path, monkeypatch, foreign):
    good, broken = good_and_enhanced(tmp_path)
    from fastvol.headers import multiframe

    def explode(record):
        raise foreign

    monkeypatch.setattr(multiframe, "expand_frames", explode)
    found = fastvol.scan(tmp_path)
    assert type(foreign).__name__ in found.errors[str(broken)]
    assert [s.uid for s in found] == [good.series_uid]


def test_map_exceptions_keeps_the_original_as_cause():
    from pydicom.errors import BytesLengthException

    for foreign in (BytesLengthException("odd length"), EOFError(), ZeroDivisionError()):
        with pytest.raises(CorruptFileError) as info:
            with map_exceptions("a.dcm: header", files=["a.dcm"]):
                raise foreign
        assert info.value.__cause__ is foreign and info.value.files == ("a.dcm",)
    with pytest.raises(UnreadableError):
        with map_exceptions("a.dcm: header"):
            raise PermissionError(13, "Permission denied")
    for passes in (GeometryError("ours"), UserWarning("warning as error"), RuntimeError("bug")):
        with pytest.raises(type(passes)):
            with map_exceptions("a.dcm"):
                raise passes


def test_a_foreign_error_at_the_load_boundary_is_a_fastvol_error(tmp_path, monkeypatch):
    fx.write_series(tmp_path, n=3)

    def explode(series, options):
        raise IndexError("index 7 is out of bounds")

    monkeypatch.setattr(api, "make_plan", explode)
    with pytest.raises(CorruptFileError, match="IndexError") as info:
        fastvol.load(tmp_path)
    assert isinstance(info.value.__cause__, IndexError) and info.value.files


# ------------------------------------------------------ 2. absurd geometry and pixel values


def far_slice(z: str):
    def edit(i, ds):
        if i == 4:
            ds.ImagePositionPatient = ["0", "0", z]

    return edit


@pytest.mark.parametrize("z", ["1e308", "inf", "-1.5e6"])
def test_absurd_position_is_a_geometry_error_naming_the_file(tmp_path, z):
    written = fx.write_series(tmp_path, n=5, edit=far_slice(z))
    found = fastvol.scan(tmp_path)  # scanning never allocates a grid
    with pytest.raises(GeometryError) as info:
        fastvol.load(tmp_path)
    assert written.paths[4] in info.value.files
    with pytest.raises(GeometryError):
        found[0].geometry


def test_a_grid_the_files_cannot_fill_is_refused_before_allocating(tmp_path):
    written = fx.write_series(tmp_path, n=5, edit=far_slice("2000"))  # 4 slices, then 1000 steps on
    for gaps in ("raise", "fill"):
        with pytest.raises(GeometryError, match="grid of") as info:
            fastvol.load(tmp_path, gaps=gaps)
        assert written.paths[4] in info.value.files


def test_an_irregular_stack_is_not_resampled_onto_an_absurd_grid(tmp_path):
    def edit(i, ds):  # steps 2, 2, 3, 1993 mm: not whole multiples of one step
        if i >= 3:
            ds.ImagePositionPatient = ["0", "0", ("7", "2000")[i - 3]]

    fx.write_series(tmp_path, n=5, edit=edit)
    with pytest.raises(GeometryError, match="resampling would make"):
        fastvol.load(tmp_path, irregular="resample")


@pytest.mark.parametrize("extra, error", [
    ({"PixelSpacing": [0, 0]}, CorruptFileError),
    ({"PixelSpacing": [-0.8, 0.9]}, CorruptFileError),
    ({"PixelSpacing": ["inf", "0.9"]}, CorruptFileError),
    ({"ImageOrientationPatient": ["1", "0", "0", "0", "inf", "0"]}, GeometryError),
    ({"RescaleSlope": 0}, CorruptFileError),
    ({"RescaleSlope": "inf"}, CorruptFileError),
    ({"RescaleIntercept": "-inf"}, CorruptFileError),
    ({"PixelRepresentation": 2}, CorruptFileError),
])  # fmt: skip
def test_absurd_spacing_orientation_rescale_and_representation_are_refused(tmp_path, extra, error):
    written = fx.write_series(tmp_path, n=4, extra=extra)
    with pytest.raises(error) as info:
        fastvol.load(tmp_path)
    assert set(info.value.files) & set(written.paths)


def test_absurd_rescale_is_fine_when_rescale_is_off(tmp_path):
    written = fx.write_series(tmp_path, n=4, extra={"RescaleSlope": 0})
    vol = fastvol.load(tmp_path, rescale=False)
    np.testing.assert_array_equal(vol.array, written.volume())
    assert np.isfinite(vol.affine).all()


def test_nan_single_slice_step_does_not_give_a_nan_affine(tmp_path):
    fx.write_series(tmp_path, n=1, extra={"SliceThickness": "nan", "SpacingBetweenSlices": "nan"})
    assert np.isfinite(fastvol.load(tmp_path).affine).all()


# ---------------------------------------------------------- 3. unreadable files and folders


class Denied(LocalFile):
    """A file the OS refuses to read (chmod 000 does not stop root, who runs the tests)."""

    def size(self) -> int:
        raise PermissionError(13, "Permission denied", self.name)

    def read(self, offset: int, length: int) -> bytes:
        raise PermissionError(13, "Permission denied", self.name)

    def read_into(self, ranges, buffers) -> None:
        raise PermissionError(13, "Permission denied", self.name)


def test_unreadable_file_is_reported_and_refused_unless_skipped(tmp_path):
    written = fx.write_series(tmp_path, n=6)
    sources = [LocalFile(p) for p in written.paths[:-1]] + [Denied(written.paths[-1])]
    found = fastvol.scan(sources)
    assert found.skipped["unreadable file"] == [written.paths[-1]]
    assert "not DICOM" not in found.skipped and found.unreadable == [written.paths[-1]]
    assert "Permission denied" in found.errors[written.paths[-1]]
    with pytest.raises(UnreadableError) as info:
        fastvol.load(sources)
    assert info.value.files == (written.paths[-1],)
    assert isinstance(info.value, PermissionError) and isinstance(info.value, ValueError)
    vol = fastvol.load(sources, unreadable="skip")  # the end slice is lost, as the user chose
    assert vol.shape[0] == 5
    assert vol.meta["unreadable_skipped"] == [written.paths[-1]]  # and the volume says so
    assert any("unreadable='skip'" in w and written.paths[-1] in w for w in vol.geometry.warnings)
    assert "unreadable_skipped" not in fastvol.load(sources[:-1]).meta


def deny_listing(monkeypatch, denied: Path) -> None:
    real = os.scandir

    def scandir(path="."):
        if os.fspath(path) == str(denied):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)  # os.walk lists folders through os.scandir


def test_unlistable_folder_is_reported_and_refused_unless_skipped(tmp_path, monkeypatch):
    written = fx.write_series(tmp_path / "a", n=6)
    hidden = tmp_path / "a" / "more"
    fx.write_series(hidden, n=2, series_uid=written.series_uid, seed=7)
    deny_listing(monkeypatch, hidden)
    found = fastvol.scan(tmp_path)
    assert found.skipped["unreadable folder"] == [str(hidden)]
    assert "unreadable folder" in found.summary()
    with pytest.raises(UnreadableError, match="unreadable='skip'") as info:
        fastvol.load(tmp_path)
    assert str(hidden) in info.value.files
    assert fastvol.load(tmp_path, unreadable="skip").shape[0] == 6
    err = io.StringIO()
    assert cli.main([str(tmp_path)], stdout=io.StringIO(), stderr=err) == 2
    assert "UnreadableError" in err.getvalue()
    assert cli.main([str(tmp_path), "--unreadable", "skip"], stdout=io.StringIO()) == 0


def test_fifo_behind_a_symlink_is_skipped_not_opened(tmp_path):
    written = fx.write_series(tmp_path / "s", n=3)
    os.mkfifo(tmp_path / "fifo")  # outside the series folder: only the link is scanned
    os.symlink(tmp_path / "fifo", tmp_path / "s" / "zz-link")
    os.mkfifo(tmp_path / "s" / "pipe")
    found = fastvol.scan(tmp_path / "s")  # would block forever on open()
    assert sorted(found.skipped["not a regular file"]) == sorted(
        [str(tmp_path / "s" / "zz-link"), str(tmp_path / "s" / "pipe")])
    assert fastvol.load(tmp_path / "s").shape[0] == len(written.paths)


# ------------------------------------------------------------------------- 4. output debris


def test_stale_temporaries_of_dead_writers_are_removed_on_the_next_write(tmp_path):
    from fastvol.atomic import _host_tag

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = _host_tag()
    stale = tmp_path / f".vol.npz{TMP_MARK}{host}-{dead.pid}-abcd.npz"
    live = tmp_path / f".vol.npz{TMP_MARK}{host}-{os.getpid()}-efgh.npz"
    other_old = tmp_path / f".vol.npz{TMP_MARK}0123abcd-{dead.pid}-ijkl.npz"  # another host
    other_new = tmp_path / f".vol.npz{TMP_MARK}0123abcd-{dead.pid}-mnop.npz"
    unrelated = tmp_path / f".other.npz{TMP_MARK}{host}-{dead.pid}-qrst.npz"
    for p in (stale, live, other_old, other_new, unrelated):
        p.write_bytes(b"partial")
    hour_ago = time.time() - 3600
    os.utime(other_old, (hour_ago, hour_ago))
    with atomic_path(tmp_path / "vol.npz") as tmp:
        Path(tmp).write_bytes(b"done")
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted([live.name, other_new.name, unrelated.name, "vol.npz"])
    assert oct((tmp_path / "vol.npz").stat().st_mode & 0o777) == oct(0o666 & ~_umask())
    assert remove_stale(tmp_path / "vol.npz") == []


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_sigterm_during_out_write_removes_the_temporary(tmp_path):
    fx.write_series(tmp_path / "s", n=3)
    out = tmp_path / "vol.nii.gz"
    code = textwrap.dedent(f"""
        import sys, time
        from fastvol import cli
        from fastvol.atomic import atomic_path

        def slow(vol, path):
            with atomic_path(path) as tmp:
                open(tmp, "wb").write(b"half")
                print("WRITING", flush=True)
                time.sleep(60)

        cli._write = slow
        sys.exit(cli.main([{str(tmp_path / "s")!r}, "--out", {str(out)!r}]))
    """)
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    with subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                          env=env) as proc:  # fmt: skip
        try:
            for line in proc.stdout:  # the report first, then the writer's mark
                if line.startswith("WRITING"):
                    break
            assert any(TMP_MARK in p.name for p in tmp_path.iterdir())
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 128 + signal.SIGTERM
        finally:
            proc.kill()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]


def test_sigterm_handler_is_installed_only_while_the_cli_runs():
    before = signal.getsignal(signal.SIGTERM)
    with cli.sigterm_exits():
        assert signal.getsignal(signal.SIGTERM) is cli._terminate
        with pytest.raises(SystemExit) as info:
            cli._terminate(signal.SIGTERM, None)
        assert info.value.code == 143
    assert signal.getsignal(signal.SIGTERM) is before


# --------------------------------------------------------------------- 5. read-only installs

_CACHE_PROBE = """
import os, sys, warnings, json
deny = sys.argv[1:]
real_access = os.access

def access(path, mode, **kw):  # root writes anywhere: simulate read-only folders
    full = os.path.abspath(path)
    if any(full == d or full.startswith(d + os.sep) for d in deny):
        return False
    return real_access(path, mode, **kw)

os.access = access
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import numba
    import fastvol._kernels as k
    from fastvol._kernels import pixels
    import numpy as np
    out = np.zeros((2, 2, 2), np.int16)
    pixels.fill_slots(out, np.array([1], np.int64), 5)  # compiles and runs, cached or not
    assert out[1].min() == 5 and out[0].max() == 0
print(json.dumps({"cache": k.CACHE, "dir": numba.config.CACHE_DIR,
                  "path": pixels.fill_slots._cache.cache_path,
                  "warnings": [f"{w.category.__name__}: {w.message}" for w in caught
                               if w.category.__name__ == "FastvolWarning"]}))
"""


def _probe_cache(tmp_path: Path, *deny: str) -> dict:
    import json

    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env.update(PYTHONPATH=str(SRC), XDG_CACHE_HOME=str(tmp_path / "xdg"))
    out = subprocess.run([sys.executable, "-c", _CACHE_PROBE, *deny], capture_output=True,
                         text=True, env=env, timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_read_only_package_caches_kernels_in_the_user_cache(tmp_path):
    kernels = str(SRC / "fastvol" / "_kernels")
    got = _probe_cache(tmp_path, kernels)
    assert got["cache"] is True and got["warnings"] == []
    assert got["dir"] == str(tmp_path / "xdg" / "fastvol" / "numba")
    assert got["path"].startswith(got["dir"])


def test_nothing_writable_compiles_without_cache_and_warns_once(tmp_path):
    kernels = str(SRC / "fastvol" / "_kernels")
    (tmp_path / "xdg").mkdir()
    got = _probe_cache(tmp_path, kernels, str(tmp_path / "xdg"))
    assert got["cache"] is False and got["path"] is None
    assert len(got["warnings"]) == 1 and "without a disk cache" in got["warnings"][0]


def test_fifo_given_directly_is_not_a_regular_file(tmp_path):
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    with pytest.raises(fastvol.NotDicomError, match="not a regular file"):
        fastvol.load(pipe)


@pytest.mark.parametrize("slope", ["NaN", "inf", "0"])
def test_rescale_slope_not_a_usable_number_is_refused(tmp_path, slope):
    import warnings

    import pydicom

    fx.write_series(tmp_path, n=3)
    first = sorted(tmp_path.iterdir())[0]
    ds = pydicom.dcmread(first)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom warns on NaN/inf DS values
        ds.RescaleSlope = slope
        ds.save_as(first)
    with pytest.raises(fastvol.CorruptFileError, match="RescaleSlope"):
        fastvol.load(tmp_path)
    assert fastvol.load(tmp_path, rescale=False).shape[0] == 3  # stored values need no slope


@pytest.mark.parametrize("kind", ["none", "int", "text_file", "raw_bytes", "list_with_none", "stringio"])
def test_what_names_no_file_is_an_input_error(tmp_path: Path, kind: str) -> None:
    series = fx.write_series(tmp_path / "s", n=2, rows=4, columns=4)
    path = series.paths[0]
    given = {
        "none": lambda: None, "int": lambda: 5, "text_file": lambda: open(path),  # noqa: SIM115
        "raw_bytes": lambda: Path(path).read_bytes(), "list_with_none": lambda: [path, None],
        "stringio": lambda: io.StringIO("DICM"),
    }[kind]()  # fmt: skip
    try:
        with pytest.raises(fastvol.InputError, match="BytesIO|binary mode|is not an input"):
            fastvol.load(given)
    finally:
        if hasattr(given, "close"):
            given.close()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="zombies are told from /proc")
def test_temporary_of_a_zombie_writer_is_stale(tmp_path: Path) -> None:
    # A writer killed while its parent was gone can stay a zombie where PID 1 does not reap:
    # it exists for kill(0) but will never finish its temporary.
    from fastvol.atomic import _host_tag

    pid = os.fork()
    if pid == 0:  # the writer: waits to be killed
        time.sleep(60)
        os._exit(0)
    target = tmp_path / "out.nii.gz"
    leftover = tmp_path / f".out.nii.gz{TMP_MARK}{_host_tag()}-{pid}-abcd.nii.gz"
    leftover.touch()
    try:
        assert remove_stale(target) == []  # alive: kept
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # a zombie until reaped below
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                break
            time.sleep(0.01)
        assert remove_stale(target) == [str(leftover)]
    finally:
        os.kill(pid, signal.SIGKILL)  # a zombie takes it too
        os.waitpid(pid, 0)


def _unwritable_folder(tmp_path):
    """A folder this process cannot create files in: /sys refuses even root here; otherwise a
    folder without write permission (which root would ignore)."""
    try:
        probe = os.open("/sys/fastvol-probe", os.O_CREAT | os.O_WRONLY, 0o600)
    except OSError:
        return "/sys"
    os.close(probe)
    os.unlink("/sys/fastvol-probe")
    if os.geteuid() == 0:
        pytest.skip("no folder refuses root here")
    folder = tmp_path / "ro"
    folder.mkdir(mode=0o555)
    return str(folder)


@pytest.mark.parametrize("suffix", [".nii.gz", ".npz"])
def test_an_unwritable_output_is_an_output_error(tmp_path, suffix):
    """A new-user trial got a raw PermissionError (and a traceback from the CLI)."""
    fx.write_series(tmp_path / "s", n=3)
    vol = fastvol.load(tmp_path / "s")
    target = os.path.join(_unwritable_folder(tmp_path), "x" + suffix)
    write = vol.to_nifti if suffix == ".nii.gz" else vol.to_npz
    with pytest.raises(fastvol.OutputError, match="cannot be written") as caught:
        write(target)
    assert isinstance(caught.value, OSError) and target in str(caught.value)
    assert not os.path.exists(target)


def test_symlinked_folders_are_walked_once(tmp_path):
    """A cohort made of links to series folders is read (a new-user trial lost them silently);
    a link back to an ancestor or a second link to one folder does not walk it again."""
    first = fx.write_series(tmp_path / "data" / "a", n=3, seed=1)
    fx.write_series(tmp_path / "data" / "b", n=4, seed=2, series_uid="1.2.3.4.9")
    links = tmp_path / "links"
    links.mkdir()
    os.symlink(tmp_path / "data" / "a", links / "a")
    os.symlink(tmp_path / "data" / "b", links / "b")
    os.symlink(tmp_path / "data" / "b", links / "b-again")
    os.symlink(links, links / "up")  # a loop
    found = fastvol.scan(links)
    assert sorted(len(s.files) for s in found) == [3, 4]
    np.testing.assert_array_equal(fastvol.load(links / "a").array, first.volume(rescaled=True))


@pytest.mark.parametrize("cut", ["after_meta", "before_pixel_tag", "inside_pixel_header"])
def test_an_image_file_cut_before_its_pixels_is_unreadable_not_left_out(tmp_path, cut):
    """A file of the series cut short before its pixel data reads as a data set without
    PixelData. Left out as 'no pixel data', an end slice would vanish with the volume still
    regular; it is refused as damaged, naming the file, unless unreadable='skip'."""
    written = fx.write_series(tmp_path, n=6)
    whole = fastvol.load(tmp_path)
    end = whole.meta["files"][0]  # array slice 0: an end of the stack
    data = Path(end).read_bytes()
    pixel_tag = data.rfind(b"\xe0\x7f\x10\x00")
    at = {"after_meta": data.find(b"\x08\x00") + 2, "before_pixel_tag": pixel_tag,
          "inside_pixel_header": pixel_tag + 6}[cut]  # fmt: skip
    Path(end).write_bytes(data[:at])
    found = fastvol.scan(tmp_path)
    assert found.unreadable == [end] and found.skipped["damaged image"] == [end]
    assert "truncated or damaged" in found.errors[end]
    with pytest.raises(fastvol.FastvolError) as info:
        fastvol.load(tmp_path)
    assert end in info.value.files
    assert "unreadable='skip'" in str(info.value)
    skipped = fastvol.load(tmp_path, unreadable="skip")
    assert skipped.shape[0] == 5 and len(written.paths) == 6
    assert skipped.meta["unreadable_skipped"] == [end]


@pytest.mark.parametrize("syntax", ["explicit", "implicit"])
def test_an_end_slice_cut_anywhere_never_loads_a_shorter_volume(tmp_path, syntax):
    """An end slice cut at any byte: before its preamble ends, inside its file meta, inside
    a UID (a prefix of the series' own), before or inside its pixels. The load refuses (naming
    the file, or the corrupt pixels), never a volume one slice short with regular spacing;
    with unreadable='skip' what loads says what was skipped."""
    ts = fx.ImplicitVRLittleEndian if syntax == "implicit" else fx.ExplicitVRLittleEndian
    fx.write_series(tmp_path, n=4, transfer_syntax=ts)
    end = fastvol.load(tmp_path).meta["files"][-1]
    data = Path(end).read_bytes()
    for at in [*range(0, 300, 1), *range(300, len(data), 7)]:
        Path(end).write_bytes(data[:at])
        with pytest.raises(fastvol.FastvolError) as info:
            fastvol.load(tmp_path)
        assert end in info.value.files or end in str(info.value), at
        if isinstance(info.value, fastvol.UnreadableError):
            assert fastvol.load(tmp_path, unreadable="skip").meta["unreadable_skipped"] == [end], at
    Path(end).write_bytes(data)
    assert fastvol.load(tmp_path).shape[0] == 4


def test_a_file_cut_inside_a_vendor_preamble_is_damaged_not_left_out(tmp_path):
    # Some vendors write bytes into the 128-byte preamble; a copy cut inside it (no suffix)
    # equals the start of its siblings, so it is a cut DICOM file, not "not DICOM".
    fx.write_series(tmp_path, n=4)
    for path in sorted(tmp_path.iterdir()):
        data = bytearray(path.read_bytes())
        data[17] = 1
        path.write_bytes(bytes(data))
    end = fastvol.load(tmp_path).meta["files"][-1]
    data = Path(end).read_bytes()
    for at in (18, 64, 131):
        Path(end).write_bytes(data[:at])
        with pytest.raises(fastvol.UnreadableError) as info:
            fastvol.load(tmp_path)
        assert list(info.value.files) == [end], at
    (tmp_path / "README").write_bytes(b"notes about this series")  # not a prefix: not DICOM
    Path(end).write_bytes(data)
    assert fastvol.load(tmp_path).shape[0] == 4


def test_empty_and_unparseable_files_beside_images_are_damaged_only_there(tmp_path):
    fx.write_series(tmp_path / "s", n=3)
    (tmp_path / "s" / "IM0099").write_bytes(b"")  # a copy that failed at its start
    (tmp_path / "s" / ".keep").write_bytes(b"")  # hidden: not a slice
    (tmp_path / "s" / "notes.txt").write_bytes(b"not an image")
    found = fastvol.scan(tmp_path / "s")
    assert found.damaged == {str(tmp_path / "s" / "IM0099"): ""}
    assert sorted(found.skipped["not DICOM"]) == [str(tmp_path / "s" / n) for n in (".keep", "notes.txt")] or \
        found.skipped["not DICOM"] == [str(tmp_path / "s" / "notes.txt")]  # fmt: skip
    alone = tmp_path / "alone"
    alone.mkdir()
    (alone / "empty.dcm").write_bytes(b"")
    assert fastvol.scan(alone).damaged == {}  # no images here: nothing lost
    (tmp_path / "s" / "IM0099").unlink()
    (tmp_path / "s" / "image.dcm").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(300))  # misnamed
    assert fastvol.scan(tmp_path / "s").damaged == {}  # a suffix proves nothing: not a cut file


def test_a_damaged_image_of_a_known_series_refuses_only_that_series(tmp_path):
    a = fx.write_series(tmp_path / "a", n=3, seed=1)
    b = fx.write_series(tmp_path / "b", n=4, seed=2, series_uid="1.2.3.4.9")
    victim = fastvol.load(tmp_path / "b").meta["files"][0]
    data = Path(victim).read_bytes()
    Path(victim).write_bytes(data[: data.rfind(b"\xe0\x7f\x10\x00")])  # cut at its PixelData tag
    assert fastvol.scan(tmp_path).damaged == {victim: b.series_uid}
    np.testing.assert_array_equal(fastvol.load(tmp_path, series=a.series_uid).array, a.volume(rescaled=True))
    with pytest.raises(fastvol.UnreadableError) as info:
        fastvol.load(tmp_path, series=b.series_uid)
    assert list(info.value.files) == [victim]
    (tmp_path / "a" / "IM0100").write_bytes(b"")  # a file of no known series: refuses any
    with pytest.raises(fastvol.UnreadableError):
        fastvol.load(tmp_path, series=a.series_uid)


def test_a_scanned_series_carries_its_damaged_files_into_its_own_load(tmp_path):
    """scan(...)[i].load() and load(Series) refuse as load(path) does: the damage travels
    with the Series (and pickles with it), and a skipped load says so in warnings, skipped
    and meta; damage beside another series leaves this one's report clean."""
    a = fx.write_series(tmp_path / "a", n=3, seed=1)
    fx.write_series(tmp_path / "b", n=4, seed=2)
    victim = fastvol.load(tmp_path / "b").meta["files"][-1]
    Path(victim).write_bytes(Path(victim).read_bytes()[:435])  # inside a UID: series unknown
    found = fastvol.scan(tmp_path)
    b = next(s for s in found if s.folder.endswith("b"))
    assert [name for name, _ in b.damaged] == [victim]
    for attempt in (b.load, lambda: fastvol.load(b), lambda: pickle.loads(pickle.dumps(b)).load()):
        with pytest.raises(fastvol.UnreadableError) as info:
            attempt()
        assert list(info.value.files) == [victim] and "unreadable='skip'" in str(info.value)
    vol = b.load(unreadable="skip")
    assert vol.shape[0] == 3 and vol.meta["unreadable_skipped"] == [victim]
    assert victim in [name for name, _ in vol.geometry.skipped] and "skipped" in vol.geometry.warnings[-1]
    clean = fastvol.load(tmp_path, series=a.series_uid)
    assert clean.geometry.warnings == () and "unreadable_skipped" not in clean.meta


def test_the_command_says_what_became_of_a_damaged_file_without_pydicoms_warnings(tmp_path):
    written = fx.write_series(tmp_path, n=3)
    data = Path(written.paths[0]).read_bytes()
    Path(written.paths[0]).write_bytes(data[: data.find(b"\x20\x00\x0e\x00") + 12])  # inside a UID
    env = {**os.environ, "FASTVOL_NATIVE": "0"}  # pydicom reads (and warns about) the header
    done = subprocess.run([sys.executable, "-m", "fastvol", str(tmp_path)], capture_output=True,
                          text=True, env=env, timeout=120, check=False)  # fmt: skip
    assert done.returncode == 2 and done.stderr.startswith("fastvol: UnreadableError")
    assert "UserWarning" not in done.stderr and written.paths[0] in done.stderr


def test_one_slice_with_a_damaged_position_is_named_as_damaged_not_as_a_projection(tmp_path):
    written = fx.write_series(tmp_path, n=4)
    path = Path(written.paths[1])
    data = path.read_bytes()
    at = data.find(b"\x20\x00\x32\x00DS") + 8  # ImagePositionPatient's value
    size = int.from_bytes(data[at - 2 : at], "little")
    path.write_bytes(data[:at] + b"abc\\0\\1".ljust(size) + data[at + size :])  # not three numbers
    with pytest.raises(fastvol.CorruptFileError, match="damaged headers") as info:
        fastvol.load(tmp_path)
    assert list(info.value.files) == [str(path)] and "DX/CR" not in str(info.value)


def test_a_file_cut_before_its_series_uid_is_not_laid_on_a_series_of_another_sop_class(tmp_path):
    """In a flat folder of an MR and a CT series, a CT file cut after its SOP class but before
    its SeriesInstanceUID may be a CT slice, not an MR one: the MR loads, the CT refuses."""
    flat = tmp_path / "flat"
    flat.mkdir()
    for kind, seed in (("MR", 1), ("CT", 2)):
        written = fx.write_series(tmp_path / kind, n=3, seed=seed, modality=kind)
        for path in written.paths:
            os.rename(path, flat / f"{kind}-{Path(path).name}")
    victim = str(flat / "CT-IM0003")
    data = Path(victim).read_bytes()
    Path(victim).write_bytes(data[: data.find(b"\x20\x00\x0e\x00")])  # SOP class read, series UID not
    found = fastvol.scan(flat)
    mr = next(s for s in found if s.modality == "MR")
    ct = next(s for s in found if s.modality == "CT")
    assert mr.damaged == () and [name for name, _ in ct.damaged] == [victim]
    assert fastvol.load(flat, series=mr.uid).shape[0] == 3
    with pytest.raises(fastvol.UnreadableError):
        fastvol.load(flat, series=ct.uid)


def test_a_compressed_file_found_damaged_only_at_load_is_skippable(tmp_path):
    """An encapsulated file cut inside its pixel data passes the header scan; its load names
    the file and the option, and unreadable='skip' loads the series without it."""
    written = fx.write_series(tmp_path / "s", n=5, transfer_syntax=fx.RLELossless)
    whole = fastvol.load(written.folder).array
    cut = written.paths[2]
    fx.truncate(cut, 40)
    with pytest.raises(CorruptFileError, match="unreadable='skip'") as raised:
        fastvol.load(written.folder)
    assert raised.value.files == (cut,)
    with pytest.raises(fastvol.MissingSlicesError):  # the middle slice is gone: a gap
        fastvol.load(written.folder, unreadable="skip")
    vol = fastvol.load(written.folder, unreadable="skip", gaps="fill")
    assert vol.meta["unreadable_skipped"] == [cut]
    assert any("unreadable='skip'" in w for w in vol.geometry.warnings)
    (missing,) = vol.geometry.missing
    kept = [i for i in range(5) if i != missing]
    np.testing.assert_array_equal(vol.array[kept], whole[kept])
    series = fastvol.scan(written.folder)[0]  # the scan alone cannot see it
    assert series.damaged == ()
    assert series.load(unreadable="skip", gaps="fill").meta["unreadable_skipped"] == [cut]


def test_a_damaged_single_file_series_is_not_skipped_to_nothing(tmp_path):
    written = fx.write_series(tmp_path / "s", n=1, transfer_syntax=fx.RLELossless)
    fx.truncate(written.paths[0], 40)
    with pytest.raises(CorruptFileError) as raised:
        fastvol.load(written.folder, unreadable="skip")
    assert "unreadable='skip'" not in str(raised.value)


def test_skipping_every_damaged_file_says_so(tmp_path):
    written = fx.write_series(tmp_path / "s", n=3, transfer_syntax=fx.RLELossless)
    for path in written.paths:
        fx.truncate(path, 40)
    with pytest.raises(CorruptFileError, match="every file is damaged: 2 skipped") as raised:
        fastvol.load(written.folder, unreadable="skip")
    assert sorted(raised.value.files) == sorted(written.paths)


def test_skipping_a_damaged_end_file_into_a_fixed_out_says_why_it_cannot(tmp_path):
    written = fx.write_series(tmp_path / "s", n=5, transfer_syntax=fx.RLELossless)
    fx.truncate(written.paths[0], 40)
    out = np.empty((5, 16, 12), dtype=np.int16)
    with pytest.raises(fastvol.InputError, match=r"shape \(4, 16, 12\) that out= \(shape \(5, 16, 12\)\)") as raised:
        fastvol.load(written.folder, unreadable="skip", out=out)
    assert raised.value.files == (written.paths[0],)
    assert isinstance(raised.value.__cause__, CorruptFileError)
