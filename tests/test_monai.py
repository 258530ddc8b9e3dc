"""fastvol.monai.FastvolReader inside MONAI's LoadImage, against MONAI's own ITKReader.

The ITKReader oracle runs in one child process for the whole module: with itk loaded, the test
process segfaulted at interpreter exit after the full suite (itk 5.4.7 beside SimpleITK, torch
and numba), which would fail CI after every test had passed.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import factory as fx
import fastvol

monai = pytest.importorskip("monai")
from monai.transforms import LoadImage  # noqa: E402

from fastvol.monai import FastvolReader, restore_url  # noqa: E402

pytestmark = pytest.mark.filterwarnings(
    # 2026-12: MONAI warns about its optional GPU codecs (nvImageCodec) at first use.
    "ignore::UserWarning:monai",
)

GEOMETRIES = {
    "axial": dict(orientation=(1, 0, 0, 0, 1, 0)),
    "oblique": dict(orientation=(0.8660254, 0.5, 0, -0.5, 0.8660254, 0), origin=(3, -4, 5)),
    "sagittal": dict(orientation=(0, 1, 0, 0, 0, -1), origin=(-20, 10, 30)),
    "reversed-step": dict(step=-2.5),
}


DTYPES = {"None": None, "float32": "float32"}

#: Run in a child: LoadImage with MONAI's ITKReader on each folder, results to one .npz each.
ITK_SCRIPT = """
import json, sys, warnings
import numpy as np
warnings.simplefilter("ignore")
from monai.transforms import LoadImage
for job in json.loads(sys.argv[1]):
    dtype = None if job["dtype"] == "None" else job["dtype"]
    image = LoadImage(reader="ITKReader", image_only=True, dtype=dtype)(job["folder"])
    meta = {str(k): v for k, v in image.meta.items()}
    np.savez(job["out"], array=image.numpy(), affine=image.affine.numpy(),
             original_affine=np.asarray(meta["original_affine"]),
             spatial_shape=np.asarray(meta["spatial_shape"]), spacing=np.asarray(meta["spacing"]),
             channel=np.asarray(meta["original_channel_dim"], dtype=float),
             space=str(meta["space"]), filename=str(meta["filename_or_obj"]),
             keys=np.array(sorted(meta)))
"""


@pytest.fixture(scope="module")
def itk_oracle(tmp_path_factory) -> dict:
    """(geometry, dtype) -> (folder, ITKReader's results), from one child process."""
    pytest.importorskip("itk")
    root = tmp_path_factory.mktemp("itk")
    jobs, cases = [], {}
    for name, kwargs in GEOMETRIES.items():
        folder = fx.write_series(root / name, n=6, shuffle=True, intercepts=-1024.0, **kwargs).folder
        for dtype in DTYPES:
            out = str(root / f"{name}-{dtype}.npz")
            jobs.append({"folder": folder, "dtype": dtype, "out": out})
            cases[(name, dtype)] = (folder, out)
    colour = fx.write_series(root / "colour", n=5, rows=16, columns=12, photometric="RGB", samples_per_pixel=3,
                             bits_allocated=8, signed=False, shuffle=True, **GEOMETRIES["oblique"]).folder  # fmt: skip
    jobs.append({"folder": colour, "dtype": "None", "out": str(root / "colour.npz")})
    cases[("colour", "None")] = (colour, str(root / "colour.npz"))
    subprocess.run([sys.executable, "-c", ITK_SCRIPT, json.dumps(jobs)], check=True, timeout=600)
    return {key: (folder, dict(np.load(out))) for key, (folder, out) in cases.items()}


@pytest.mark.parametrize("name", sorted(GEOMETRIES))
@pytest.mark.parametrize("dtype", sorted(DTYPES))
def test_dotted_name_returns_what_itkreader_returns(itk_oracle, name, dtype):
    folder, itk = itk_oracle[(name, dtype)]
    ours = LoadImage(reader="fastvol.monai.FastvolReader", image_only=True,
                     dtype=DTYPES[dtype])(folder)  # fmt: skip
    assert ours.numpy().dtype == itk["array"].dtype  # int16 kept when dtype=None
    assert ours.shape == itk["array"].shape
    np.testing.assert_array_equal(ours.numpy(), itk["array"])
    np.testing.assert_allclose(ours.affine.numpy(), itk["affine"], atol=1e-6)
    assert sorted(map(str, ours.meta)) == list(itk["keys"])
    for key in ("original_affine", "spatial_shape", "spacing"):
        np.testing.assert_allclose(np.asarray(ours.meta[key]), itk[key], atol=1e-6)
    assert ours.meta["space"] == str(itk["space"]) == "RAS"
    assert np.isnan(ours.meta["original_channel_dim"]) and np.isnan(itk["channel"])
    assert ours.meta["filename_or_obj"] == str(itk["filename"]) == folder


def test_colour_returns_what_itkreader_returns(itk_oracle):
    folder, itk = itk_oracle[("colour", "None")]
    ours = LoadImage(reader="fastvol.monai.FastvolReader", image_only=True, dtype=None)(folder)
    assert ours.shape == itk["array"].shape == (12, 16, 5, 3)  # (W, H, D, colour)
    assert ours.dtype == torch_uint8()
    np.testing.assert_array_equal(ours.numpy(), itk["array"])
    np.testing.assert_allclose(ours.affine.numpy(), itk["affine"], atol=1e-4)
    np.testing.assert_allclose(np.asarray(ours.meta["original_affine"]), itk["original_affine"], atol=1e-4)
    np.testing.assert_array_equal(np.asarray(ours.meta["spatial_shape"]), itk["spatial_shape"])
    np.testing.assert_allclose(np.asarray(ours.meta["spacing"]), itk["spacing"], atol=1e-5)
    assert float(ours.meta["original_channel_dim"]) == float(itk["channel"]) == -1
    channel_first = LoadImage(reader="fastvol.monai.FastvolReader", image_only=True, dtype=None,
                              ensure_channel_first=True)(folder)  # fmt: skip
    assert channel_first.shape == (3, 12, 16, 5)
    vol = fastvol.load(folder)
    native = LoadImage(reader=FastvolReader(layout="fastvol"), image_only=True, dtype=None)(folder)
    assert native.shape == (5, 16, 12, 3) and native.meta["original_channel_dim"] == -1
    np.testing.assert_array_equal(native.numpy(), vol.array)


def torch_uint8():
    import torch

    return torch.uint8


def test_class_instance_fastvol_layout_and_4d(tmp_path):
    written = fx.write_series(tmp_path / "s", n=4, repeats=3)
    vol = fastvol.load(written.folder)
    by_class = LoadImage(reader=FastvolReader, image_only=True, dtype=None)(written.folder)
    # 4D: volumes last as a channel axis, which EnsureChannelFirst moves to the front.
    assert by_class.shape == (12, 16, 4, 3) and by_class.meta["original_channel_dim"] == -1
    first = LoadImage(reader=FastvolReader(), image_only=True, dtype=None, ensure_channel_first=True)
    image = first(written.folder)
    assert image.shape == (3, 12, 16, 4)
    np.testing.assert_array_equal(image[2].numpy(), vol.array[2, ::-1].transpose(2, 1, 0))
    native = LoadImage(reader=FastvolReader(layout="fastvol"), image_only=True, dtype=None)(written.folder)
    np.testing.assert_array_equal(native.numpy(), vol.array)
    np.testing.assert_allclose(native.affine.numpy(), vol.affine)
    assert native.meta["space"] == "LPS"
    with pytest.raises(fastvol.InputError, match="layout"):
        FastvolReader(layout="ras")


def test_options_reach_the_load_and_errors_stay_fastvol_errors(tmp_path):
    written = fx.write_series(tmp_path / "s", n=6, drop=[2])
    with pytest.raises(fastvol.MissingSlicesError):
        FastvolReader().read(written.folder)
    filled = FastvolReader(gaps="fill").read(written.folder)
    assert filled.shape == (6, 16, 12)
    assert FastvolReader().verify_suffix([written.folder, "x.dcm"])
    assert not FastvolReader().verify_suffix("t1.nii.gz")


def test_urls_survive_expanduser(tmp_path):
    from pathlib import Path

    assert restore_url(str(Path("s3://bucket/study/ct").expanduser())) == "s3://bucket/study/ct"
    assert restore_url("https:/host/a") == "https://host/a"
    assert restore_url("/local/path") == "/local/path" and restore_url("C:/x") == "C:/x"
    local = tmp_path / "s3:" / "bucket"
    local.mkdir(parents=True)
    assert restore_url(str(local)) == str(local)  # an existing local path is not a URL
    # End to end through LoadImage (expanduser on): the URL reaches fastvol.load intact.
    fsspec = pytest.importorskip("fsspec")
    written = fx.write_series(tmp_path / "s", n=3)
    fs = fsspec.filesystem("memory")
    for path in written.paths:
        fs.pipe(f"/issue11/{Path(path).name}", Path(path).read_bytes())
    try:
        fastvol.load("memory://issue11")
    except fastvol.FastvolError as exc:
        pytest.skip(f"this fastvol reads no URLs yet ({type(exc).__name__}); restore_url tested above")
    image = LoadImage(reader="fastvol.monai.FastvolReader", image_only=True, dtype=None)("memory://issue11")
    np.testing.assert_array_equal(image.numpy(), fastvol.load(written.folder).array[::-1].transpose(2, 1, 0))
