"""One options object: validation, overrides, pickling, the CLI made from it, atomic outputs."""

from __future__ import annotations

import dataclasses
import io
import os
import pickle
import stat
import subprocess
import sys

import numpy as np
import pytest

import factory as fx
import fastvol
from fastvol import Options, Tolerances, cli
from fastvol.atomic import TMP_MARK, atomic_path


def test_defaults_and_nested_tolerances():
    opts = Options()
    assert (opts.gaps, opts.irregular, opts.tilt, opts.repeats) == ("raise", "raise", "keep", "split")
    assert isinstance(opts.tolerances, Tolerances)
    changed = opts.replace(spacing_rtol=0.05, gaps="fill")
    assert changed.tolerances.spacing_rtol == 0.05 and changed.gaps == "fill"
    assert opts.tolerances.spacing_rtol != 0.05  # frozen: the original is untouched


@pytest.mark.parametrize(
    "overrides",
    [{"gaps": "maybe"}, {"tilt": 1}, {"dtype": "no-such-dtype"}, {"fill_value": "x"},
     {"threads": 0}, {"threads": True}, {"spacing_rtol": -1}, {"spacing_rtol": float("nan")},
     {"select": "a"}, {"rescale": "yes"}, {"no_such_option": 1}],
)  # fmt: skip
def test_bad_options_raise_input_error(overrides):
    with pytest.raises(fastvol.InputError):
        Options().replace(**overrides)


def test_options_pickle_and_normalise():
    opts = Options(dtype="float32", select=[0, 2], threads=1, fill_value=3)
    again = pickle.loads(pickle.dumps(opts))
    assert again == opts
    assert opts.dtype == np.dtype("float32").str and opts.select == (0, 2) and opts.fill_value == 3.0


def test_load_takes_options_object_or_overrides(tmp_path):
    fx.write_series(tmp_path, n=6, drop=(2,))
    by_object = fastvol.load(tmp_path, Options(gaps="fill", threads=1))
    by_keyword = fastvol.load(tmp_path, gaps="fill")
    np.testing.assert_array_equal(by_object.array, by_keyword.array)
    np.testing.assert_array_equal(by_object.affine, by_keyword.affine)
    with pytest.raises(fastvol.InputError, match="unknown option"):
        fastvol.load(tmp_path, gap="fill")
    with pytest.raises(fastvol.InputError):
        fastvol.load(tmp_path, options={"gaps": "fill"})  # type: ignore[arg-type]


def test_threads_one_loads_in_the_calling_thread(tmp_path):
    fx.write_series(tmp_path, n=4)
    code = ("import threading, fastvol, sys; "
            f"fastvol.load({str(tmp_path)!r}, threads=1); "
            "print(sorted(t.name for t in threading.enumerate() if t.name.startswith('fastvol')))")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_missing_path_is_a_file_not_found_error(tmp_path):
    with pytest.raises(fastvol.PathNotFoundError) as info:
        fastvol.load(tmp_path / "nowhere")
    assert isinstance(info.value, FileNotFoundError) and "nowhere" in str(info.value)


def test_series_repr_is_one_short_line(tmp_path):
    fx.write_series(tmp_path, n=30)
    (series,) = fastvol.scan(tmp_path)
    text = repr(series)
    assert "\n" not in text and len(text) < 400
    assert str(tmp_path) in text and "CT" in text and "30 files" in text


def test_series_not_from_scan_says_what_to_do(tmp_path):
    fx.write_series(tmp_path, n=3)
    (series,) = fastvol.scan(tmp_path)
    bare = dataclasses.replace(series, services=())
    with pytest.raises(fastvol.InputError, match="load_series"):
        bare.load()
    assert fastvol.load_series(bare).shape == series.load().shape


# --- CLI made from Options ------------------------------------------------------------------


def _flags() -> set[str]:
    return {a for action in cli._parser()._actions for a in action.option_strings}


def test_every_option_is_a_cli_flag():
    flags = _flags()
    for f in dataclasses.fields(Options):
        if f.name != "tolerances":
            assert "--" + (f.metadata.get("cli") or f.name.replace("_", "-")) in flags
    for f in dataclasses.fields(Tolerances):
        assert "--" + f.name.replace("_", "-") in flags


def test_cli_flags_become_options():
    args = cli._parser().parse_args(
        ["x", "--gaps", "fill", "--select", "1:3", "--no-rescale", "--threads", "1",
         "--spacing-rtol", "0.2", "--fill-value", "-5", "--incomplete", "drop"]
    )  # fmt: skip
    opts = cli.options_from_args(args)
    assert opts == Options(gaps="fill", select=slice(1, 3), rescale=False, threads=1,
                           fill_value=-5.0, incomplete="drop",
                           tolerances=Tolerances(spacing_rtol=0.2))  # fmt: skip
    assert cli.options_from_args(cli._parser().parse_args(["x"])) == Options()


@pytest.mark.parametrize("text, value", [("2", 2), ("1:3", slice(1, 3)), ("::2", slice(None, None, 2)),
                                         ("0,2,4", (0, 2, 4))])  # fmt: skip
def test_select_flag(text, value):
    assert cli.parse_select(text) == value


def test_cli_out_refuses_unknown_suffix_and_missing_folder(tmp_path):
    fx.write_series(tmp_path / "s", n=3)
    err = io.StringIO()
    assert cli.main([str(tmp_path / "s"), "--out", str(tmp_path / "v.zarr")], stdout=io.StringIO(), stderr=err) == 2
    assert "suffix" in err.getvalue() and not (tmp_path / "v.zarr").exists()
    err = io.StringIO()
    assert cli.main([str(tmp_path / "s"), "--out", str(tmp_path / "no" / "v.npz")], stdout=io.StringIO(),
                    stderr=err) == 2  # fmt: skip
    assert cli.main([str(tmp_path / "s"), "--out", str(tmp_path)], stdout=io.StringIO(), stderr=io.StringIO()) == 2


# --- atomic outputs -------------------------------------------------------------------------


def test_atomic_write_is_hidden_then_renamed_with_usual_permissions(tmp_path):
    target = tmp_path / "vol.nii.gz"
    with atomic_path(target) as tmp:
        name = os.path.basename(tmp)
        assert name.startswith(".vol.nii.gz" + TMP_MARK) and name.endswith(".nii.gz")
        with open(tmp, "wb") as fp:
            fp.write(b"data")
        assert not target.exists()
    assert target.read_bytes() == b"data"
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vol.nii.gz"]


def test_atomic_write_failure_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "v.npz") as tmp:
        open(tmp, "wb").close()
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_volume_writes_npz(tmp_path):
    fx.write_series(tmp_path / "s", n=3)
    vol = fastvol.load(tmp_path / "s")
    vol.to_npz(tmp_path / "v.npz")
    with np.load(tmp_path / "v.npz") as data:
        np.testing.assert_array_equal(data["array"], vol.array)
        np.testing.assert_array_equal(data["affine_lps"], vol.affine)


def test_extra_tags_reach_volume_meta(tmp_path):
    fx.write_series(tmp_path, n=4)
    vol = fastvol.load(tmp_path, extra_tags=("SOPInstanceUID", "Modality", 0x00200013))
    assert vol.meta["Modality"] == "CT"
    assert vol.meta["SOPInstanceUID"] == vol.meta["sop_instance_uids"]  # differs per slice
    assert len(vol.meta["InstanceNumber"]) == 4
    with pytest.raises(fastvol.InputError):
        Options(extra_tags="PatientID")  # a bare string is not a list of tags
    assert cli.parse_tags("PatientID, 0x00180050") == ("PatientID", 0x00180050)


def test_cli_json_carries_decisions_as_data(tmp_path):
    import json

    fx.write_series(tmp_path / "s", n=6, drop=(2,))
    out = io.StringIO()
    assert cli.main([str(tmp_path / "s"), "--gaps", "fill", "--json"], stdout=out) == 0
    data = json.loads(out.getvalue())
    (filled,) = [d for d in data["decision_data"] if d["code"] == "gaps_filled"]
    assert filled["facts"]["missing"] == data["missing"] == [3] and filled["text"] in data["decisions"]


def test_cli_hints_name_flags_and_json_stays_pure(tmp_path):
    import json

    fx.write_series(tmp_path / "s", n=6, drop=(2,))
    err = io.StringIO()
    assert cli.main([str(tmp_path / "s")], stdout=io.StringIO(), stderr=err) == 2
    assert "on the command line: --gaps fill" in err.getvalue() and str(tmp_path / "s") in err.getvalue()
    out, err = io.StringIO(), io.StringIO()
    target = tmp_path / "v.npz"
    assert cli.main([str(tmp_path / "s"), "--gaps", "fill", "--json", "--timing", "--out", str(target)],
                    stdout=out, stderr=err) == 0  # fmt: skip
    json.loads(out.getvalue())  # nothing but JSON on stdout
    assert "timing" in err.getvalue() and target.exists()
    out = io.StringIO()
    assert cli.main([str(tmp_path / "s"), "--scan", "--json"], stdout=out) == 0
    assert json.loads(out.getvalue())["series"][0]["files"] == 5


def test_dtype_and_series_mistakes_are_input_errors(tmp_path):
    fx.write_series(tmp_path / "a", n=3)
    fx.write_series(tmp_path / "b", n=3, series_uid="1.2.3.4.5")
    with pytest.raises(fastvol.InputError, match="float32"):
        fastvol.load(tmp_path / "a", dtype="float16")
    (other,) = fastvol.scan(tmp_path / "b")
    with pytest.raises(fastvol.SeriesSelectionError):
        fastvol.load(tmp_path / "a", series=other)
    with pytest.raises(fastvol.InputError):
        fastvol.scan(tmp_path / "a", extra_tags="PatientID")  # type: ignore[arg-type]
    assert fastvol.load(os.fsencode(tmp_path / "a")).shape[0] == 3
    assert hash(Options(select=slice(0, 2))) == hash(Options(select=slice(0, 2)))


def test_integer_dtype_that_cannot_hold_the_values_is_refused(tmp_path):
    fx.write_series(tmp_path, n=3)  # 12 bits stored, rescaled to HU: needs int16
    with pytest.raises(fastvol.InputError, match="cannot hold"):
        fastvol.load(tmp_path, dtype="uint8")
    assert fastvol.load(tmp_path, dtype="int32").array.dtype == np.int32


@pytest.mark.parametrize(
    "overrides",
    [{"extra_tags": None}, {"dtype": ("i4", -1)}, {"dtype": "i4,("}, {"select": "12"},
     {"executor": 3}, {"series": 1.5}, {"series": [0]}],
)  # fmt: skip
def test_more_bad_arguments_are_fastvol_errors(tmp_path, overrides):
    fx.write_series(tmp_path, n=3)
    with pytest.raises(fastvol.FastvolError):
        fastvol.load(tmp_path, **overrides)


def test_fill_value_must_fit_an_integer_output_when_slices_are_filled(tmp_path):
    fx.write_series(tmp_path / "gap", n=5, drop=(2,))
    fx.write_series(tmp_path / "full", n=3)
    with pytest.raises(fastvol.InputError, match="fill_value"):
        fastvol.load(tmp_path / "gap", gaps="fill", fill_value=float("nan"))
    assert fastvol.load(tmp_path / "full", fill_value=float("nan")).shape[0] == 3  # nothing filled
    assert fastvol.load(tmp_path / "gap", series=np.int64(0), gaps="fill").shape[0] == 5


def test_upper_case_suffixes_write(tmp_path):
    pytest.importorskip("nibabel")
    fx.write_series(tmp_path / "s", n=3)
    vol = fastvol.load(tmp_path / "s")
    vol.to_nifti(tmp_path / "v.NII.GZ")
    vol.to_npz(tmp_path / "v.NPZ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s", "v.NII.GZ", "v.NPZ"]


def test_path_not_found_message_is_the_message(tmp_path):
    with pytest.raises(fastvol.PathNotFoundError) as info:
        fastvol.scan(tmp_path / "nowhere")
    assert str(info.value) == f"{tmp_path / 'nowhere'}: no such file or folder"


def test_asked_dtype_is_not_explained_as_a_rescale(tmp_path):
    fx.write_series(tmp_path, n=3)
    vol = fastvol.load(tmp_path, dtype="float32")
    assert not any(d.code == "rescale_float" for d in vol.geometry.decisions)


def test_integer_dtype_with_a_fractional_rescale_is_refused_not_truncated(tmp_path):
    """A slope of 1.29 must not become 1 in an integer output (a new-user trial found the stored
    values returned silently); float output and stored values still load."""
    w = fx.write_series(tmp_path, n=3, slopes=1.29, intercepts=0.0)
    for dtype in ("int16", "int32"):
        with pytest.raises(fastvol.InputError, match="not whole"):
            fastvol.load(tmp_path, dtype=dtype)
    np.testing.assert_allclose(fastvol.load(tmp_path, dtype="float64").array,
                               w.volume(rescaled=True), rtol=1e-12)  # fmt: skip
    assert fastvol.load(tmp_path, dtype="int32", rescale=False).array.dtype == np.int32
