"""The plan package: decisions as data, and the layout step on headers alone."""

from __future__ import annotations

import json
import pickle
import warnings

import numpy as np
import pytest

import fastvol
import factory as fx
from fastvol.dicom import TS, HeaderRecord
from fastvol.group import Series
from fastvol.options import Options
from fastvol.plan import Decision, LoadPlan, make_plan
from fastvol.plan.decisions import TEMPLATES, render
from fastvol.plan.duplicates import dedupe
from fastvol.plan.layout import arrange


def _codes(items) -> list[str]:
    return [d.code for d in items]


def test_gaps_fill_decision_carries_code_and_missing_indices(tmp_path):
    fx.write_series(tmp_path, n=10, drop=[2, 5, 6])  # slice k lands at grid index 9 - k
    series = fastvol.scan(tmp_path)[0]
    report = make_plan(series, Options(gaps="fill")).report
    (gaps,) = [d for d in report.decisions if d.code == "gaps_filled"]
    assert gaps.facts == (("n_missing", 3), ("missing", (3, 4, 7)))
    assert gaps.fact("missing") == report.missing == (3, 4, 7)
    # The text is derived from the code and facts, and reads as before.
    assert gaps == render(gaps.code, dict(gaps.facts))
    assert gaps == "gaps='fill': 3 missing slice(s) at grid indices [3, 4, 7] filled"
    # Describing (no gaps option) notes the gaps as a warning with the same facts.
    (note,) = [w for w in series.geometry.warnings if w.code == "gaps_present"]
    assert note.fact("missing") == (3, 4, 7) and "a load raises unless gaps='fill'" in note


def test_every_decision_and_warning_has_a_known_code(tmp_path):
    fx.write_series(tmp_path, n=6, step_vector=(0.0, 0.3, 2.0), photometric="MONOCHROME1",
                    slopes=[1.0, 1.5, 1.0, 1.0, 1.0, 1.0])  # fmt: skip
    with pytest.warns(fastvol.FastvolWarning, match="gantry tilt"):
        vol = fastvol.load(tmp_path)
    geometry = vol.geometry
    for item in geometry.decisions + geometry.warnings:
        assert isinstance(item, Decision) and item.code in TEMPLATES
        assert str(item) == render(item.code, dict(item.facts))
    assert {"rescale_per_slice", "rescale_float", "dtype"} <= set(_codes(geometry.decisions))
    assert {"tilt_kept", "monochrome1"} <= set(_codes(geometry.warnings))
    (dtype,) = [d for d in geometry.decisions if d.code == "dtype"]
    assert dict(dtype.facts) == {"dtype": "float32", "rescale": True}
    # Old readers see strings: substring tests and JSON dumps work unchanged.
    assert any("MONOCHROME1" in w for w in geometry.warnings)
    dumped = json.loads(json.dumps(geometry.as_dict()))
    assert dumped["decisions"] == [str(d) for d in geometry.decisions]


def test_render_fills_the_usual_specs_and_the_two_of_its_own():
    assert render("dtype", {"dtype": "int16", "rescale": True}) == "output dtype int16"
    assert render("dtype", {"dtype": "uint16", "rescale": False}) == \
        "output dtype uint16 (stored values, rescale=False)"  # fmt: skip
    assert render("single_slice", {"step": 2.50, "source": "SliceThickness"}) == \
        "one slice: slice step 2.5 mm from SliceThickness"  # fmt: skip
    assert "volumes [0, 1, 2] of" in render("select", {"select": "0:3", "volumes": range(3), "n_volumes": 9})
    assert "[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11] mm" in render("irregular_present", {"steps": range(99)})
    with pytest.raises(KeyError):
        render("dtype", {"dtype": "int16"})  # a fact the template needs is missing


def test_decision_pickles_with_code_and_facts():
    d = Decision("select", select="[2, 0]", volumes=np.array([2, 0]), n_volumes=np.int64(4))
    assert d == "select=[2, 0]: volumes [2, 0] of 4; the others are not read"
    assert d.facts == (("select", "[2, 0]"), ("volumes", (2, 0)), ("n_volumes", 4))
    assert type(d.fact("n_volumes")) is int  # numpy facts become plain values
    back = pickle.loads(pickle.dumps(d))
    assert type(back) is Decision and back == d
    assert (back.code, back.facts) == (d.code, d.facts)
    assert d.as_dict() == {"code": "select", "facts": dict(d.facts), "text": str(d)}
    with pytest.raises(KeyError):
        Decision("no_such_code")


def test_plan_and_report_pickle_keep_decision_data(tmp_path):
    fx.write_series(tmp_path, n=4, repeats=3)
    plan = make_plan(fastvol.scan(tmp_path)[0], Options(select=[2, 0]))
    back = pickle.loads(pickle.dumps(plan))
    assert isinstance(back, LoadPlan)
    assert _codes(back.report.decisions) == _codes(plan.report.decisions)
    assert "select" in _codes(back.report.decisions)
    assert "repeats_split" in _codes(back.report.decisions)


def _record(k: int, position: float, **extra: object) -> HeaderRecord:
    """A header record of a file that does not exist: planning must never open it."""
    return HeaderRecord.build({
        "path": f"/nonexistent/IM{k:04d}", "file_size": 10_000, "transfer_syntax": TS.EXPLICIT_LE,
        "sop_instance_uid": f"1.2.3.{k}", "series_instance_uid": "1.2.3", "modality": "CT",
        "instance_number": k, "rows": 16, "columns": 12, "bits_allocated": 16,
        "pixel_representation": 1, "photometric_interpretation": "MONOCHROME2",
        "image_position": (0.0, 0.0, position), "image_orientation": (1, 0, 0, 0, 1, 0),
        "pixel_spacing": (0.8, 0.9), "pixel_offset": 1000, "pixel_length": 16 * 12 * 2, **extra,
    })  # fmt: skip


def test_layout_orders_slots_and_places_records_without_reading_pixels():
    positions = [4.0, 0.0, 10.0, 2.0, 8.0]  # shuffled; one slice missing at 6 mm
    deduped = dedupe([_record(k, z) for k, z in enumerate(positions)] + [_record(0, 4.0)])
    records, dropped = list(deduped.records), deduped.dropped
    assert dropped == ("/nonexistent/IM0000",)
    layout = arrange(records, dropped, Options(), name="s", uid="1.2.3")
    # Array order is descending along the normal (z): 10, 8, 4, 2, 0 mm; slot 1 -> 3 skips one.
    z = [layout.record(0, i).image_position[2] for i in range(5)]
    assert z == [10.0, 8.0, 4.0, 2.0, 0.0]
    assert layout.stack.slots.tolist() == [0, 1, 3, 4, 5]
    geometry = layout.geometry
    assert geometry.shape == (6, 16, 12) and geometry.kind == "gaps" and geometry.missing == (2,)
    np.testing.assert_allclose(geometry.affine @ [5, 0, 0, 1], [0, 0, 0, 1], atol=1e-9)
    np.testing.assert_allclose(geometry.spacing, (2.0, 0.8, 0.9))
    assert _codes(layout.decisions) == ["duplicates_dropped"]
    # The whole plan runs on these records too: every file is named, none is opened.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plan = make_plan(Series(records=tuple(records)), Options(gaps="fill"))
    assert plan.shape == (6, 16, 12)
    assert [s.slot for s in plan.sources] == [0, 1, 3, 4, 5]
    assert all(s.source is not None for s in plan.sources)
    assert "gaps_filled" in _codes(plan.report.decisions)


def test_layout_splits_repeats_and_applies_select():
    # 3 positions x 3 volumes told apart by TemporalPositionIdentifier 1, 2, 3.
    records = [_record(k, float(k % 3), temporal_position_identifier=k // 3 + 1) for k in range(9)]
    layout = arrange(records, [], Options(select=(2, 0)), name="s", uid="1.2.3")
    assert layout.n_volumes == 2 and layout.repeats.values == (3, 1)
    assert [layout.record(v, 0).temporal_position_identifier for v in range(2)] == [3, 1]
    assert len(layout.unselected) == 3
    assert _codes(layout.decisions) == ["select", "repeats_split"]
