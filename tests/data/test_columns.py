"""Records as columns: the request path (JSON records) and the batch path (frames) agree."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from riskml.data import schema
from riskml.data.columns import Columns, as_columns
from riskml.data.history import previous_from_panel
from riskml.data.periods import parse_period
from riskml.model.features import FEATURE_NAMES, build_features
from riskml.policy import rules
from riskml.scoring.decide import ModelInfo, decide

INFO = ModelInfo("household-risk", "1")


@pytest.fixture(scope="module")
def frames(sample_panel):
    """The sample panel's latest period (canonical) and its previous records, 400 households."""
    panel = schema.coerce_frame(sample_panel[list(schema.FIELD_NAMES)])
    prev = previous_from_panel(panel)
    latest = panel["period"] == panel["period"].max()
    records = panel[latest].head(400).reset_index(drop=True)
    previous = prev[latest.to_numpy()].head(400).reset_index(drop=True)
    # some missing values and one household without a previous record
    records.loc[3, "medical_expense"] = np.nan
    records.loc[5, "housing_safe"] = pd.NA
    previous.loc[7, :] = None
    return records, previous


def _json(frame: pd.DataFrame) -> list[dict | None]:
    return [
        None if pd.isna(r["household_id"]) else r for r in schema.to_json_records(frame)
    ]  # a previous row of all-missing stands for "no previous record"


def _same_arrays(a: Columns, b: Columns) -> None:
    assert a.names == b.names and len(a) == len(b)
    for name in a.names:
        if name in ("household_id", "period", "county_code", "village_code"):
            assert a[name].tolist() == b[name].tolist(), name
        else:
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_json_records_and_frames_give_the_same_columns(frames):
    records, previous = frames
    _same_arrays(Columns.from_records(schema.to_json_records(records)), Columns.from_frame(records))
    _same_arrays(Columns.from_records(_json(previous)), Columns.from_frame(previous))


def test_features_and_rules_are_the_same_on_columns_and_frames(frames, lines):
    records, previous = frames
    cols = Columns.from_records(schema.to_json_records(records))
    prev = Columns.from_records(_json(previous))
    from_frames = build_features(records, previous, lines)
    from_columns = build_features(cols, prev, lines)
    pd.testing.assert_frame_equal(from_frames, from_columns)
    assert list(from_frames.columns) == list(FEATURE_NAMES)
    assert from_frames["has_previous"].iloc[7] == 0.0 and from_frames["has_previous"].mean() > 0.9

    a = rules.evaluate(records, lines=lines, previous=previous)
    b = rules.evaluate(cols, lines=lines, previous=prev)
    np.testing.assert_array_equal(a.fired_matrix, b.fired_matrix)
    np.testing.assert_array_equal(a.evaluated_matrix, b.evaluated_matrix)
    assert [a.for_row(i) for i in range(len(records))] == [b.for_row(i) for i in range(len(cols))]
    assert a.fired_matrix.any()


def test_decide_on_json_records_equals_decide_on_the_frame(frames, trained):
    records, previous = frames
    model = trained.model
    ruleset = rules.default_ruleset()
    json_records = schema.to_json_records(records)
    for explain in ("flagged", "all"):
        on_frame = decide(records, previous, model, ruleset, INFO, explain=explain)
        on_json = decide(
            Columns.from_records(json_records),
            Columns.from_records(_json(previous)),
            model,
            ruleset,
            INFO,
            explain=explain,
        )
        for a, b in zip(on_frame, on_json, strict=True):
            a.pop("decision_id"), b.pop("decision_id")
            assert a == b
        assert any(r["flagged"] for r in on_frame) and any(r["reasons"] for r in on_frame)


def test_derived_keys_and_their_errors():
    cols = Columns.from_records(
        [
            {"county_code": "530102", "period": "2024-06"},
            {"county_code": "110101", "period": "2025-01"},
        ]
    )
    assert cols.province().tolist() == [53, 11]
    assert cols.month().tolist() == [2024 * 12 + 5, 2025 * 12]
    assert cols.year().tolist() == [2024, 2025]
    assert cols.floats("debt").shape == (2,) and np.isnan(cols.floats("debt")).all()
    assert as_columns(cols) is cols and as_columns(None) is None
    with pytest.raises(ValueError, match="county_code is missing"):
        Columns.from_records([{"county_code": None, "period": "2024-06"}]).province()
    with pytest.raises(ValueError, match="record 1: field debt: must be a number or null, got str"):
        Columns.from_records([{"debt": 1.0}, {"debt": "12,000"}])  # no value in the message
    with pytest.raises(ValueError, match="record 0: field debt: .* got str"):
        Columns.from_records([{"debt": "12"}])  # a numeric string is not read as a number
    for bad in ("2024-13", "2024/06", "June", "2024-06-01", "2024-06x"):
        with pytest.raises(ValueError, match="YYYY-MM"):
            parse_period(bad)


def test_features_name_the_fields_a_frame_lacks(frames, lines):
    records, _ = frames
    with pytest.raises(ValueError, match="debt"):
        build_features(records.drop(columns=["debt"]), None, lines)
