"""Data tests: the label function on hand-made panels (look-ahead, gaps, size changes, line changes)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from riskml.data.label import label_panel, training_labels
from riskml.data.reference import COLUMNS, ReferenceLines


@pytest.fixture
def lines():
    rows = []
    for prov, base in (("53", 6000.0), ("35", 9000.0)):
        for year in range(2019, 2027):
            rows.append(
                (prov, "x", year, "monitoring", base + 500 * (year - 2019), "estimate", "test")
            )
            rows.append((prov, "x", year, "dibao", base * 0.8, "estimate", "test"))
    return ReferenceLines(pd.DataFrame(rows, columns=list(COLUMNS)))


def rec(hid, period, size, income, medical=0.0, education=0.0, county="532328"):
    return {
        "household_id": hid, "period": period, "county_code": county, "household_size": size,
        "income_wage": income, "income_business": 0.0, "income_property": 0.0, "income_transfer": 0.0,
        "medical_expense": medical, "education_expense": education,
    }  # fmt: skip


def test_label_looks_exactly_12_months_ahead(lines):
    # 2021 line for province 53: 7,000; 2022: 7,500 per person
    panel = pd.DataFrame(
        [
            rec("a", "2021-06", 2, 20000),  # next: 2022-06, 2 × 7,400 → below 7,500 → 1
            rec("a", "2022-06", 2, 14800),  # next: none → missing
            rec("b", "2021-06", 1, 5000),  # next: 2022-06, 8,000 → above 7,500 → 0
            rec("b", "2022-06", 1, 8000),
            rec("c", "2021-06", 1, 5000),  # next record is 2022-07, not 12 months later → missing
            rec("c", "2022-07", 1, 100),
        ]
    )
    y = label_panel(panel, lines)
    assert y.iloc[0] == 1.0 and np.isnan(y.iloc[1])
    assert y.iloc[2] == 0.0
    assert np.isnan(y.iloc[4])


def test_label_skips_a_gap_year(lines):
    panel = pd.DataFrame([rec("a", "2020-06", 2, 1000), rec("a", "2022-06", 2, 1000)])
    assert label_panel(panel, lines).isna().all()


def test_label_uses_the_later_household_size(lines):
    # later record: income 15,000 for 3 people = 5,000 each < 7,500 → 1; for 1 person it would be 0
    panel = pd.DataFrame([rec("a", "2021-06", 1, 15000), rec("a", "2022-06", 3, 15000)])
    assert label_panel(panel, lines).iloc[0] == 1.0
    panel = pd.DataFrame([rec("a", "2021-06", 3, 15000), rec("a", "2022-06", 1, 15000)])
    assert label_panel(panel, lines).iloc[0] == 0.0


def test_label_subtracts_medical_and_schooling_spending(lines):
    # 2022 line 7,500; 9,000 income − 1,000 medical − 600 school = 7,400 < 7,500 → 1
    panel = pd.DataFrame([rec("a", "2021-06", 1, 9000), rec("a", "2022-06", 1, 9000, 1000, 600)])
    assert label_panel(panel, lines).iloc[0] == 1.0
    panel = pd.DataFrame([rec("a", "2021-06", 1, 9000), rec("a", "2022-06", 1, 9000, 1000, 400)])
    assert label_panel(panel, lines).iloc[0] == 0.0  # exactly on the line is not below it


def test_label_uses_the_later_records_province_and_year_line(lines):
    # moved from Yunnan (53) to Fujian (35): Fujian's 2022 line is 10,500
    panel = pd.DataFrame(
        [rec("a", "2021-06", 1, 9000), rec("a", "2022-06", 1, 9000, county="350121")]
    )
    assert label_panel(panel, lines).iloc[0] == 1.0
    # the same income against Yunnan's 2022 line (7,500) is not at risk
    panel = pd.DataFrame([rec("a", "2021-06", 1, 9000), rec("a", "2022-06", 1, 9000)])
    assert label_panel(panel, lines).iloc[0] == 0.0


def test_missing_income_in_the_later_record_gives_a_missing_label(lines):
    later = rec("a", "2022-06", 1, 9000)
    later["income_business"] = None
    panel = pd.DataFrame([rec("a", "2021-06", 1, 9000), later])
    assert np.isnan(label_panel(panel, lines).iloc[0])


def test_label_keeps_the_panel_index(lines):
    panel = pd.DataFrame([rec("a", "2021-06", 1, 100), rec("a", "2022-06", 1, 100)], index=[7, 3])
    y = label_panel(panel, lines)
    assert list(y.index) == [7, 3] and y.loc[7] == 1.0


def test_a_given_label_column_is_used_as_given(lines):
    panel = pd.DataFrame([rec("a", "2021-06", 1, 100), rec("a", "2022-06", 1, 100)])
    panel["at_risk_next"] = [0, None]
    y = training_labels(panel, lines)
    assert y.iloc[0] == 0.0 and np.isnan(y.iloc[1])
