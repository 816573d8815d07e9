"""Data tests: the previous period of a household, the same in batch and online."""

from __future__ import annotations

import pandas as pd

from riskml.data.history import previous_from_panel, within_gap


def test_previous_is_the_latest_earlier_record_within_12_months():
    panel = pd.DataFrame(
        {
            "household_id": ["a", "a", "b", "a", "b", "c"],
            "period": ["2020-06", "2021-06", "2021-06", "2023-06", "2021-09", "2021-06"],
            "x": pd.array([1, 2, 3, 4, 5, 6], dtype="Int64"),
        },
        index=[10, 11, 12, 13, 14, 15],
    )
    prev = previous_from_panel(panel)
    assert list(prev.index) == [10, 11, 12, 13, 14, 15]
    assert pd.isna(prev.loc[10, "x"]) and prev.loc[11, "x"] == 1
    assert pd.isna(prev.loc[12, "x"])  # b's first record
    assert pd.isna(prev.loc[13, "x"])  # a's 2021 record is 24 months back: too old
    assert prev.loc[14, "x"] == 3  # b: 3 months back
    assert pd.isna(prev.loc[15, "x"])
    assert str(prev["x"].dtype) == "Int64"


def test_within_gap_matches_the_batch_rule():
    assert within_gap("2024-06", "2023-06")
    assert within_gap("2024-06", "2024-05")
    assert not within_gap("2024-06", "2023-05")
    assert not within_gap("2024-06", "2024-06")
    assert not within_gap("2024-06", None)
