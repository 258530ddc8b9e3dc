"""fastvol.region.read_region: a region of a load equals the whole load indexed, and reads only
the frames it covers (counted on the byte sources the scan itself used)."""

from __future__ import annotations

import factory as fx
import factory_enhanced as fe
import numpy as np
import pytest
from pydicom.uid import ExplicitVRLittleEndian, RLELossless

import fastvol
from fastvol.plan import make_plan
from fastvol.region import read_region
from fastvol.sources import ByteSource, LocalFile


class CountingFile(ByteSource):
    """A local file that records the offsets of the ranges read from it (after ``armed``)."""

    def __init__(self, path):
        self.inner = LocalFile(path)
        self.name = self.inner.name
        self.armed = False
        self.reads: list[int] = []

    def size(self):
        return self.inner.size()

    def read(self, offset, length):
        if self.armed:
            self.reads.append(offset)
        return self.inner.read(offset, length)

    def read_into(self, ranges, buffers):
        if self.armed:
            self.reads.extend(o for o, _ in ranges)
        self.inner.read_into(ranges, buffers)

    def close(self):
        self.inner.close()


def _planned(paths, **options):
    sources = [CountingFile(p) for p in sorted(paths)]
    series = fastvol.scan(sources)[0]
    plan = make_plan(series, fastvol.Options(**options))
    for s in sources:
        s.armed = True  # the header pass is over: from here on, only pixels are read
    return plan, sources


def _touched(sources):
    return {s.name for s in sources if s.reads}


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, RLELossless])
def test_slices_and_volumes_read_only_their_files(tmp_path, syntax):
    fx.require(syntax)
    w = fx.write_series(tmp_path, n=6, repeats=2, shuffle=True, transfer_syntax=syntax)
    whole = fastvol.load(w.folder).array  # (volume, slice, row, column)
    plan, sources = _planned(w.paths)
    region = read_region(plan, [1], [4, 1, -1])
    np.testing.assert_array_equal(region, whole[[1]][:, [4, 1, 5]])
    wanted = {s.path for s in plan.sources if s.slot in (1 * 6 + 4, 1 * 6 + 1, 1 * 6 + 5)}
    assert len(wanted) == 3
    assert _touched(sources) == wanted


def test_multiframe_file_reads_only_the_frames_asked_for(tmp_path):
    fe.write_enhanced(tmp_path, n_slices=8, shuffle_frames=True)
    paths = [str(p) for p in tmp_path.iterdir()]
    whole = fastvol.load(paths).array
    plan, sources = _planned(paths)
    np.testing.assert_array_equal(read_region(plan, [0], range(2, 5)), whole[None, 2:5])
    assert len(sources) == 1 and len(sources[0].reads) == 3  # one read per frame asked for


def test_filled_gaps_and_resampled_plans_equal_the_whole_load(tmp_path):
    gappy = fx.write_series(tmp_path / "g", n=6, drop=[2])
    whole = fastvol.load(gappy.folder, gaps="fill").array
    plan, sources = _planned(gappy.paths, gaps="fill")
    np.testing.assert_array_equal(read_region(plan, [0], [1, 2, 3]), whole[None, 1:4])  # 2: filled
    assert len(_touched(sources)) == 2
    d = np.array([0.0, 2.0, 4.0, 7.0, 9.0, 11.0])
    uneven = fx.write_series(tmp_path / "u", n=6, positions=np.outer(d, [0, 0, -1.0]))
    whole = fastvol.load(uneven.folder, irregular="resample").array
    plan, _ = _planned(uneven.paths, irregular="resample")
    np.testing.assert_array_equal(read_region(plan, [0], [6, 0]), whole[None, [6, 0]])


def test_out_of_range_is_an_input_error(tmp_path):
    w = fx.write_series(tmp_path, n=4)
    plan, _ = _planned(w.paths)
    with pytest.raises(fastvol.InputError, match="slice 4 is out of range"):
        read_region(plan, [0], [4])
    with pytest.raises(fastvol.InputError, match="volume 1 is out of range"):
        read_region(plan, [1], [0])
