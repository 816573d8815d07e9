"""Code tests: the feature pipeline on hand-made records (values, missing stays missing, change features)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from riskml.data import schema
from riskml.model.features import FEATURE_NAMES, build_features, feature_matrix
from tests.data.test_schema import good_record


@pytest.fixture(scope="module")
def yunnan_2024(lines):
    return lines.lookup("53", 2024)


def _frame(*records):
    return schema.records_to_frame(list(records))


def test_income_features_are_per_capita_over_the_local_lines(lines, yunnan_2024):
    rec = good_record()  # Yunnan (53) 2024-06, 4 members
    X = build_features(_frame(rec), None, lines).iloc[0]
    net = (
        rec["income_wage"]
        + rec["income_business"]
        + rec["income_property"]
        + rec["income_transfer"]
    )
    assert X["pc_income_to_line"] == pytest.approx(net / 4 / yunnan_2024.monitoring)
    assert X["pc_income_to_dibao"] == pytest.approx(net / 4 / yunnan_2024.dibao)
    rigid = rec["medical_expense"] + rec["education_expense"]
    assert X["adj_pc_income_to_line"] == pytest.approx((net - rigid) / 4 / yunnan_2024.monitoring)
    assert X["monitoring_line"] == yunnan_2024.monitoring
    assert X["wage_pc_to_line"] == pytest.approx(rec["income_wage"] / 4 / yunnan_2024.monitoring)
    assert X["dependency_ratio"] == pytest.approx((1 + 1) / 4)
    assert X["labor_share"] == pytest.approx(2 / 4)


def test_a_missing_input_stays_missing_and_is_never_read_as_zero(lines):
    X = build_features(_frame(good_record(income_wage=None)), None, lines).iloc[0]
    assert math.isnan(X["pc_income_to_line"]) and math.isnan(X["wage_pc_to_line"])
    assert not math.isnan(X["medical_pc_to_line"])  # features that do not need wages are kept


def test_without_a_previous_period_change_features_are_missing(lines):
    X = build_features(_frame(good_record()), None, lines).iloc[0]
    assert X["has_previous"] == 0
    for name in ("income_change", "d_pc_income_to_line", "d_household_size", "d_labor_count"):
        assert math.isnan(X[name]), name


def test_change_features_compare_with_the_previous_period(lines):
    now = good_record(income_wage=10000.0, household_size=4)
    before = good_record(period="2023-06", income_wage=30000.0, household_size=5)
    X = build_features(_frame(now), _frame(before), lines).iloc[0]
    net_now = 10000.0 - 800.0 + 0.0 + 3200.0
    net_before = 30000.0 - 800.0 + 0.0 + 3200.0
    assert X["has_previous"] == 1
    assert X["income_change"] == pytest.approx(net_now / net_before - 1)
    assert X["d_household_size"] == -1
    assert X["d_pc_income_to_line"] < 0


def test_identifiers_and_location_codes_are_not_features(lines):
    assert not {"household_id", "period", "county_code", "village_code"} & set(FEATURE_NAMES)
    a = build_features(_frame(good_record()), None, lines)
    b = build_features(
        _frame(good_record(household_id="other", village_code="532328101299")), None, lines
    )
    pd.testing.assert_frame_equal(a, b)


def test_the_matrix_path_equals_the_frame_path(sample_panel, lines):
    rec = sample_panel[list(schema.FIELD_NAMES)].head(300)
    frame = build_features(rec, None, lines)
    np.testing.assert_array_equal(feature_matrix(rec, None, lines), frame.to_numpy())
    assert list(frame.columns) == list(FEATURE_NAMES)


# --------------------------------------------------------------------------- history features
def _household(lines):
    """One household over four years (Yunnan, 4 members until 2022): incomes, a disaster in
    2022, a medical shock in 2023, an income fall in 2024."""
    rows = [
        good_record(period="2021-06", income_wage=30000.0, household_size=5, labor_count=3),
        good_record(period="2022-06", income_wage=28000.0, disaster_loss=2000.0),
        good_record(period="2023-06", income_wage=26000.0, medical_expense=9000.0),
        good_record(period="2024-06", income_wage=12000.0, medical_expense=1000.0),
    ]
    return _frame(*rows)


def _net(wage):
    return wage - 800.0 + 0.0 + 3200.0  # good_record's business, property and transfers


def test_history_features_on_a_hand_made_household(lines):
    from riskml.data.history import earlier_from_panel

    panel = _household(lines)
    X = build_features(panel, earlier_from_panel(panel), lines).iloc[3]  # the 2024 record
    line = lines.lookup("53", 2024)
    pc = [_net(w) / s / line.monitoring for w, s in ((26000, 4), (28000, 4), (30000, 5))]
    assert X["h_n_lags"] == 3
    for k, v in enumerate(pc, start=1):  # each lag against today's (2024) line
        assert X[f"h_pc_income_to_line_l{k}"] == pytest.approx(v)
    assert X["h_pc_income_to_line_mean"] == pytest.approx(np.mean(pc))
    assert X["h_pc_income_to_line_min"] == pytest.approx(min(pc))
    now = _net(12000) / 4 / line.monitoring
    y = np.array([now, *pc])
    t = np.array([0.0, -1.0, -2.0, -3.0])
    assert X["h_pc_income_trend"] == pytest.approx(np.polyfit(t, y, 1)[0])
    assert X["h_pc_income_volatility"] == pytest.approx(np.std(y))
    assert X["h_lags_below_line"] == sum(v < 1 for v in pc)
    dibao = [v * line.monitoring / line.dibao for v in pc]
    assert X["h_lags_below_1_5_dibao"] == sum(v < 1.5 for v in dibao)
    assert X["h_medical_to_income_l1"] == pytest.approx(9000.0 / _net(26000))
    assert X["h_education_to_income_l2"] == pytest.approx(
        good_record()["education_expense"] / _net(28000)
    )
    assert X["h_employment_intensity_l1"] == pytest.approx(
        good_record()["months_employed"] / (12 * good_record()["labor_count"])
    )
    assert X["h_migrant_share_l1"] == pytest.approx(
        good_record()["migrant_workers"] / good_record()["labor_count"]
    )
    assert X["h_months_since_disaster"] == 24  # 2022-06
    assert X["h_months_since_medical_shock"] == 12  # 2023-06: 9,000 of 28,400
    assert X["h_months_since_income_drop"] == 0  # 14,400 against 28,400 now
    assert X["h_d_household_size_l3"] == -1 and X["h_d_household_size_l2"] == 0
    assert X["h_d_labor_count_l3"] == good_record()["labor_count"] - 3


def test_without_history_the_history_features_are_missing_and_n_lags_is_zero(lines):
    X = build_features(_frame(good_record()), None, lines).iloc[0]
    assert X["h_n_lags"] == 0
    for name in FEATURE_NAMES:
        if name.startswith("h_") and name != "h_n_lags" and not name.startswith("h_months"):
            assert math.isnan(X[name]), name
    # "months since" counts the record itself: nothing happened now, nothing is known before
    assert math.isnan(X["h_months_since_disaster"])
    assert math.isnan(X["h_months_since_income_drop"])


def test_history_with_no_event_is_missing_but_counts_its_lags(lines):
    from riskml.data.history import earlier_from_panel

    panel = _frame(good_record(period="2023-06"), good_record(period="2024-06"))
    X = build_features(panel, earlier_from_panel(panel), lines).iloc[1]
    assert X["h_n_lags"] == 1  # history known ...
    assert math.isnan(X["h_months_since_disaster"])  # ... and no disaster in it
    assert math.isnan(X["h_pc_income_to_line_l2"]) and math.isnan(X["h_d_household_size_l2"])


def test_a_missing_lag_input_stays_missing(lines):
    from riskml.data.history import earlier_from_panel

    panel = _frame(good_record(period="2023-06", income_wage=None), good_record())
    X = build_features(panel, earlier_from_panel(panel), lines).iloc[1]
    assert X["h_n_lags"] == 1
    assert math.isnan(X["h_pc_income_to_line_l1"]) and math.isnan(X["h_pc_income_to_line_mean"])
    assert math.isnan(X["h_lags_below_line"])  # no lag income known: no count
    assert not math.isnan(X["h_employment_intensity_l1"])


def test_history_features_do_not_depend_on_record_order_or_ids(lines):
    from riskml.data.history import earlier_from_panel

    panel = _household(lines)
    a = build_features(panel, earlier_from_panel(panel), lines)
    shuffled = panel.iloc[[2, 0, 3, 1]].copy()
    shuffled["household_id"] = "someone_else"
    shuffled["village_code"] = "532328101299"
    b = build_features(shuffled, earlier_from_panel(shuffled), lines).loc[a.index]
    pd.testing.assert_frame_equal(a, b)


def test_the_model_input_columns_carry_the_lags_and_their_periods(lines):
    from riskml.data.history import earlier_from_panel
    from riskml.model.features import join_previous, lag_columns, split_previous

    panel = _household(lines)
    earlier = earlier_from_panel(panel)
    wide = join_previous(panel, earlier)
    assert {name for name, _ in lag_columns()} <= set(wide.columns)
    records, previous = split_previous(wide)
    pd.testing.assert_frame_equal(
        build_features(records, previous, lines), build_features(panel, earlier, lines)
    )
    # a lag 2 whose period breaks the chain (13 months before lag 1) is not used
    wide.loc[3, "prev2_period"] = "2022-05"
    records, previous = split_previous(wide)
    X = build_features(records, previous, lines).iloc[3]
    assert X["h_n_lags"] == 1 and math.isnan(X["h_pc_income_to_line_l3"])
