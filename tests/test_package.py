"""The public surface, the cost of importing, and the command line."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np
import pytest

import fastvol
import factory as fx
from fastvol import cli, errors


def test_exported_members_are_pinned():
    assert sorted(fastvol.__all__) == sorted([
        "AlignmentError", "BadOrientationError", "CorruptFileError", "DecodeError", "DuplicateInstanceError", "FastvolError", "FastvolWarning",
        "GeometryError", "GeometryReport", "InputError", "IrregularSpacingError",
        "MissingCodecError", "MissingDependencyError", "MissingSlicesError", "MixedGeometryError",
        "NonCollinearError", "NotDicomError", "Options", "OutputError", "OverlapError", "PathNotFoundError",
        "RepeatedPositionsError", "ScanResult", "Series", "SeriesSelectionError", "Tolerances",
        "UnreadableError", "UnsupportedError", "Volume", "__version__", "convert", "from_nifti",
        "from_zarr", "load", "load_segmentation", "load_series",
        "scan",
    ])  # fmt: skip
    for name in fastvol.__all__:
        assert getattr(fastvol, name) is not None


def test_every_error_is_a_fastvol_error_and_a_builtin():
    for name in errors.__all__:
        cls = getattr(errors, name)
        if name == "FastvolWarning":
            assert issubclass(cls, UserWarning)
            continue
        assert issubclass(cls, fastvol.FastvolError)
        if cls is not fastvol.FastvolError:
            assert issubclass(cls, (ValueError, LookupError, ImportError, NotImplementedError, OSError))


def test_import_is_cheap():
    code = ("import sys, fastvol; heavy = {'numpy', 'numba', 'pydicom', 'torch', 'nibabel', "
            "'imagecodecs', 'pylibjpeg', 'highdicom'}; print(sorted(heavy & set(sys.modules)))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_loading_starts_no_thread_at_import_or_scan(tmp_path):
    fx.write_series(tmp_path, n=2)
    code = ("import threading, fastvol, sys; n = threading.active_count(); "
            f"fastvol.scan({str(tmp_path)!r}); print(n, threading.active_count())")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["1", "1"]


def test_cli_sample_prints_report():
    out, err = io.StringIO(), io.StringIO()
    assert cli.main([], stdout=out, stderr=err) == 0
    text = out.getvalue()
    assert "sample series" in text and "affine" in text and "spacing" in text
    assert "(48, 128, 128)" in text


def test_cli_json_scan_and_errors(tmp_path):
    w = fx.write_series(tmp_path / "s", n=4, drop=(1,))
    out, err = io.StringIO(), io.StringIO()
    assert cli.main([str(tmp_path / "s")], stdout=out, stderr=err) == 2
    assert "MissingSlicesError" in err.getvalue() and "gaps='fill'" in err.getvalue()
    out = io.StringIO()
    assert cli.main([str(tmp_path / "s"), "--gaps", "fill", "--json"], stdout=out) == 0
    report = json.loads(out.getvalue())
    assert report["missing"] == [2] and report["shape"] == [4, 16, 12]
    out = io.StringIO()
    assert cli.main([str(tmp_path / "s"), "--scan"], stdout=out) == 0
    assert w.series_uid in out.getvalue()


def test_cli_writes_npz_atomically(tmp_path):
    w = fx.write_series(tmp_path / "s", n=3)
    target = tmp_path / "vol.npz"
    assert cli.main([str(tmp_path / "s"), "--out", str(target)], stdout=io.StringIO()) == 0
    with np.load(target) as saved:
        np.testing.assert_array_equal(saved["array"], w.volume(rescaled=True))
        assert saved["affine_lps"].shape == (4, 4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s", "vol.npz"]


def test_cli_help_is_instant():
    out = subprocess.run([sys.executable, "-m", "fastvol.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "geometry report" in out.stdout


@pytest.mark.parametrize(("value", "expected"), [("8", "8"), ("[0]", 0), ("[-1]", -1),
                                               ("1.2.3", "1.2.3"), ("[x]", "[x]")])
def test_cli_series_argument(value, expected):
    # A number is a SeriesNumber (the listing shows it as #8); [N] is the listing's index.
    assert cli._series_arg(value) == expected


def test_load_takes_a_scanned_series(tmp_path):
    """``load(scan(folder)[0])`` loads that series (as ``load_series``); ``series=`` with it is
    a contradiction and says so."""
    written = fx.write_series(tmp_path, n=4)
    found = fastvol.scan(tmp_path)
    vol = fastvol.load(found[0])
    np.testing.assert_array_equal(vol.array, written.volume(rescaled=True))
    np.testing.assert_array_equal(vol.affine, fastvol.load(tmp_path).affine)
    with pytest.raises(fastvol.InputError, match="give one of them"):
        fastvol.load(found[0], series=0)


@pytest.mark.parametrize(("module", "blocked", "extra"), [
    ("fastvol.torch", "torch", "torch"), ("fastvol.monai", "monai", "monai"),
    ("fastvol.torchio", "torch", "torchio"),
])  # fmt: skip
def test_integrations_without_their_package_say_what_to_install(module, blocked, extra):
    code = (f"import sys; sys.modules[{blocked!r}] = None\n"  # as if not installed
            f"import fastvol\n"
            f"try:\n    import {module}\n"
            f"except fastvol.MissingDependencyError as exc:\n    print(exc.install_hint)")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"pip install 'fastvol[{extra}]'"
