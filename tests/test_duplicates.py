"""Files that claim one SOPInstanceUID: true copies are dropped and named, impostors refused.

A copy is dropped only when its headers agree with the file kept (checked by every plan, the
geometry report included) and its stored pixels are equal (checked by a load, which reads both).
"""

from __future__ import annotations

import io
import os
import shutil
import struct

import numpy as np
import pydicom
import pytest

import factory as fx
import factory_enhanced as fe
import fastvol


def _with_copy(folder, index=2, **kwargs):
    """A series whose file ``index`` is written twice, byte for byte; the copy's path."""
    w = fx.write_series(folder, n=6, duplicate=(index,), **kwargs)
    (copy,) = [p for p, dup in zip(w.paths, w.is_duplicate) if dup]
    return w, copy


def _twin(folder, other, seed, **kwargs):
    """Write a series whose instances carry the UIDs of series ``other`` (same geometry): with
    another ``seed``, other pixels; with the same one, the same pixels."""
    uids = {"StudyInstanceUID": other.study_uid, "SeriesInstanceUID": other.series_uid,
            "FrameOfReferenceUID": other.frame_of_reference_uid}  # fmt: skip

    def edit(i, ds):
        ds.SOPInstanceUID = other.sop_uids[i]
        for keyword, value in uids.items():
            setattr(ds, keyword, value)

    return fx.write_series(folder, n=6, seed=seed, edit=edit, **kwargs)



def test_true_copy_is_dropped_and_named(tmp_path):
    w, copy = _with_copy(tmp_path)
    vol = fastvol.load(tmp_path)
    np.testing.assert_array_equal(vol.array, w.volume(rescaled=True))
    assert vol.geometry.duplicates_dropped == (copy,)
    (decision,) = [d for d in vol.geometry.decisions if d.code == "duplicates_dropped"]
    assert decision.fact("files") == (copy,) and copy in decision
    assert copy not in vol.meta["files"]


def test_copy_with_other_pixels_is_refused_by_a_load_naming_both(tmp_path):
    w, copy = _with_copy(tmp_path)
    original = w.paths[w.paths.index(copy) - 1]  # written just before its copy
    ds = pydicom.dcmread(copy)
    values = ds.pixel_array.copy()
    values[3, 4] += 1  # one pixel differs, headers identical
    ds.PixelData = values.tobytes()
    ds.save_as(copy)
    with pytest.raises(fastvol.DuplicateInstanceError) as info:
        fastvol.load(tmp_path)
    err = info.value
    assert set(err.files) == {original, copy}
    assert original in str(err) and copy in str(err) and "pixel data" in str(err)
    assert "move the wrong file out of the folder" in str(err)
    assert err.sop_instance_uid == ds.SOPInstanceUID
    assert isinstance(err, fastvol.InputError)
    # The geometry report reads no pixels: it compares headers only, and they agree.
    (series,) = fastvol.scan(tmp_path)
    assert series.geometry.duplicates_dropped == (copy,)
    # Either file alone loads.
    os.remove(copy)
    np.testing.assert_array_equal(fastvol.load(tmp_path).array, w.volume(rescaled=True))


@pytest.mark.parametrize(("keyword", "value", "named"), [
    ("ImagePositionPatient", [0.0, 0.0, 4.7], "ImagePositionPatient"),
    ("ImagePositionPatient", [0.5, 0.0, 4.0], "ImagePositionPatient"),  # in-plane shift
    ("RescaleIntercept", "-1024", "RescaleIntercept"),
    ("RescaleSlope", "2", "RescaleSlope"),
    ("SliceThickness", "5", "SliceThickness"),
])  # fmt: skip
def test_copy_with_other_headers_is_refused_by_scan_geometry_and_load(tmp_path, keyword, value, named):
    w, copy = _with_copy(tmp_path)
    original = w.paths[w.paths.index(copy) - 1]
    ds = pydicom.dcmread(copy)
    setattr(ds, keyword, value)
    ds.save_as(copy)
    (series,) = [s for s in fastvol.scan(tmp_path) if s.n_files >= 6]
    for attempt in (lambda: series.geometry, lambda: fastvol.load(tmp_path)):
        with pytest.raises(fastvol.DuplicateInstanceError, match=named) as info:
            attempt()
        assert set(info.value.files) == {original, copy}


def test_copy_re_encoded_losslessly_is_a_copy(tmp_path):
    a = fx.write_series(tmp_path / "a", n=6, seed=3)
    _twin(tmp_path / "b", a, seed=3, transfer_syntax=fx.ImplicitVRLittleEndian)
    copy = str(tmp_path / "a" / "ZZ_implicit")
    shutil.copy(tmp_path / "b" / "IM0003", copy)
    vol = fastvol.load(tmp_path / "a")
    assert vol.geometry.duplicates_dropped == (copy,)
    np.testing.assert_array_equal(vol.array, a.volume(rescaled=True))


@pytest.mark.parametrize("syntax", [fx.RLELossless, fx.DeflatedExplicitVRLittleEndian, fx.ExplicitVRBigEndian])
def test_compressed_deflated_and_big_endian_copies_are_compared_after_decoding(tmp_path, syntax):
    a = fx.write_series(tmp_path / "a", n=6, seed=3, transfer_syntax=syntax)
    _twin(tmp_path / "same", a, seed=3, transfer_syntax=syntax)
    _twin(tmp_path / "other", a, seed=4, transfer_syntax=syntax)
    shutil.copy(tmp_path / "same" / "IM0004", tmp_path / "a" / "ZZ_copy")
    vol = fastvol.load(tmp_path / "a")
    np.testing.assert_array_equal(vol.array, a.volume(rescaled=True))
    assert [os.path.basename(f) for f in vol.geometry.duplicates_dropped] == ["ZZ_copy"]
    shutil.copy(tmp_path / "other" / "IM0004", tmp_path / "a" / "ZZ_copy")
    with pytest.raises(fastvol.DuplicateInstanceError, match="pixel data") as info:
        fastvol.load(tmp_path / "a")
    assert sorted(os.path.basename(f) for f in info.value.files) == ["IM0004", "ZZ_copy"]


def test_enhanced_copy_with_other_pixels_names_the_frame(tmp_path):
    a = fe.write_enhanced(tmp_path / "a", n_slices=4, seed=0)
    first = pydicom.dcmread(a.paths[0], stop_before_pixels=True)
    uids = {k: first[k].value for k in ("SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID",
                                        "FrameOfReferenceUID")}  # fmt: skip

    def same_uids(ds):
        for keyword, value in uids.items():
            setattr(ds, keyword, value)

    b = fe.write_enhanced(tmp_path / "b", n_slices=4, seed=1, edit_dataset=same_uids)
    shutil.copy(a.paths[0], tmp_path / "a" / "ZZ_copy.dcm")  # a true copy: dropped
    vol = fastvol.load(tmp_path / "a")
    assert [os.path.basename(f) for f in vol.geometry.duplicates_dropped] == ["ZZ_copy.dcm"]
    shutil.copy(b.paths[0], tmp_path / "a" / "ZZ_copy.dcm")
    with pytest.raises(fastvol.DuplicateInstanceError, match=r"\(frame \d\)") as info:
        fastvol.load(tmp_path / "a")
    assert sorted(os.path.basename(f) for f in info.value.files) == ["EN0001.dcm", "ZZ_copy.dcm"]


def test_file_objects_are_compared_through_their_sources(tmp_path):
    w, copy = _with_copy(tmp_path)
    ds = pydicom.dcmread(copy)
    ds.PixelData = (ds.pixel_array + 1).astype(ds.pixel_array.dtype).tobytes()
    ds.save_as(copy)
    buffers = []
    for p in w.paths:
        with open(p, "rb") as fp:
            buffers.append(io.BytesIO(fp.read()))
    with pytest.raises(fastvol.DuplicateInstanceError, match="pixel data"):
        fastvol.load(buffers)


def test_a_region_compares_only_the_copies_of_frames_it_reads(tmp_path):
    w, copy = _with_copy(tmp_path, index=0)
    ds = pydicom.dcmread(copy)
    ds.PixelData = (ds.pixel_array + 1).astype(ds.pixel_array.dtype).tobytes()
    ds.save_as(copy)
    from fastvol.plan import make_plan
    from fastvol.region import read_region

    plan = make_plan(fastvol.scan(tmp_path)[0])
    assert len(plan.duplicates) == 1
    k = plan.meta["files"].index(plan.duplicates[0].kept.path)
    others = [i for i in range(6) if i != k]
    np.testing.assert_array_equal(read_region(plan, [0], others)[0], w.volume(rescaled=True)[others])
    with pytest.raises(fastvol.DuplicateInstanceError):
        read_region(plan, [0], [k])


def _set_transfer_syntax(path, uid):
    """Rewrite the file meta's TransferSyntaxUID in place (pydicom will not write an unknown one)."""
    with open(path, "rb") as fp:
        raw = bytearray(fp.read())
    at = raw.find(b"\x02\x00\x10\x00", 132)
    old = struct.unpack("<H", raw[at + 6 : at + 8])[0]
    new = uid.encode() + b"\0" * (len(uid) % 2)
    raw[at + 6 : at + 8 + old] = struct.pack("<H", len(new)) + new
    group = raw.find(b"\x02\x00\x00\x00", 132)
    length = struct.unpack("<I", raw[group + 8 : group + 12])[0]
    raw[group + 8 : group + 12] = struct.pack("<I", length + len(new) - old)
    with open(path, "wb") as fp:
        fp.write(bytes(raw))


def test_unknown_transfer_syntax_names_its_files(tmp_path):
    w = fx.write_series(tmp_path, n=5)
    bad = w.paths[2]
    _set_transfer_syntax(bad, "1.2.3.4")
    with pytest.raises(fastvol.UnsupportedError) as info:
        fastvol.load(tmp_path)
    err = info.value
    assert err.files == (bad,)
    assert bad in str(err) and "1.2.3.4" in str(err) and "1 of its 5 files" in str(err)
    assert "move these files out of the folder" in str(err) and "unreadable='skip'" in str(err)
    vol = fastvol.load(tmp_path, unreadable="skip", gaps="fill")  # damaged file meta: skippable
    assert vol.meta["unreadable_skipped"] == [bad] and vol.shape[0] == 5
    os.remove(bad)
    assert fastvol.load(tmp_path, gaps="fill").shape[0] == 5


# ------------------------------------------------------------------------------------------
# Copies that are copies though a naive comparison says otherwise (from a review)


def test_a_true_copy_with_an_unusable_rescale_is_still_a_copy(tmp_path):
    def damage(i, ds):  # the raw string, as a damaged file holds it
        if "RescaleSlope" not in ds:
            ds.add_new("RescaleSlope", "DS", "1")
        ds["RescaleSlope"]._value = "xyz"

    written = fx.write_series(tmp_path / "s", n=4, edit=damage)
    shutil.copyfile(written.paths[1], str(tmp_path / "s" / "ZZ_copy"))
    with pytest.raises(fastvol.CorruptFileError, match="rescale=False"):  # refused for its slope
        fastvol.load(written.folder)
    vol = fastvol.load(written.folder, rescale=False)  # NaN marker equal in both: a copy
    assert vol.shape == (4, 16, 12) and len(vol.geometry.duplicates_dropped) == 1


def test_a_float_copy_holding_nan_is_a_copy(tmp_path):
    written = fx.write_series(tmp_path / "s", n=4, rows=6, columns=7)
    for k, path in enumerate(written.paths):
        ds = pydicom.dcmread(path)
        del ds.PixelData
        for keyword in ("BitsStored", "HighBit", "PixelRepresentation", "RescaleSlope", "RescaleIntercept"):
            if keyword in ds:
                delattr(ds, keyword)
        values = np.arange(42, dtype="<f4").reshape(6, 7) + k
        values[0, 0] = np.nan
        ds.BitsAllocated = 32
        ds.FloatPixelData = values.tobytes()
        ds.save_as(path)
    shutil.copyfile(written.paths[2], written.paths[2] + "_copy")
    vol = fastvol.load(written.folder)
    assert vol.shape == (4, 6, 7) and np.isnan(vol.array[:, 0, 0]).all()


def test_a_copy_differing_only_in_junk_high_bits_is_a_copy(tmp_path):
    clean = fx.write_series(tmp_path / "a", n=4, seed=3, bits_stored=12, signed=False)

    def same_instances(i, ds):
        ds.SOPInstanceUID = clean.sop_uids[i]
        ds.StudyInstanceUID, ds.SeriesInstanceUID = clean.study_uid, clean.series_uid
        ds.FrameOfReferenceUID = clean.frame_of_reference_uid

    junk = fx.write_series(tmp_path / "b", n=4, seed=3, bits_stored=12, signed=False, junk_high_bits=True,
                           edit=same_instances)  # fmt: skip
    np.testing.assert_array_equal(fastvol.load(junk.folder).array, fastvol.load(clean.folder).array)
    shutil.copyfile(junk.paths[2], str(tmp_path / "a" / "ZZ_copy"))
    vol = fastvol.load(clean.folder)
    assert len(vol.geometry.duplicates_dropped) == 1
    other = fx.write_series(tmp_path / "c", n=4, seed=4, bits_stored=12, signed=False, edit=same_instances)
    shutil.copyfile(other.paths[2], str(tmp_path / "a" / "ZZ_other"))
    with pytest.raises(fastvol.DuplicateInstanceError, match="pixel data"):  # other voxels: refused
        fastvol.load(clean.folder)
