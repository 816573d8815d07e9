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
