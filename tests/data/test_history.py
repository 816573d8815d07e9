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


# --------------------------------------------------------------------------- one rule, every path
# (household_id, period, expected previous period or None): the table every path must pass
PREVIOUS_CASES = [
    ("a", "2020-06", None),
    ("a", "2021-06", "2020-06"),
    ("a", "2022-07", None),  # 13 months back: too old
    ("a", "2023-06", "2022-07"),  # 11 months
    ("b", "2021-09", "2021-06"),  # listed before its predecessor: order in the input is irrelevant
    ("b", "2021-06", None),
    ("b", "2022-09", "2021-09"),  # exactly 12 months
    ("c", "2021-06", None),
]


def _case_records() -> list[dict]:
    from tests.data.test_schema import good_record

    return [good_record(household_id=h, period=p) for h, p, _ in PREVIOUS_CASES]


def _expected() -> list[str | None]:
    return [prev for _, _, prev in PREVIOUS_CASES]


def test_previous_rule_on_the_panel():
    from riskml.data import schema

    panel = schema.records_to_frame(_case_records())
    got = previous_from_panel(panel)["period"].tolist()
    assert [None if pd.isna(p) else p for p in got] == _expected()


def test_previous_rule_on_the_ledger(tmp_path):
    from riskml.data import schema
    from riskml.data.history import previous_from_ledger
    from riskml.store.ledger import Ledger
    from tests.code.test_ledger import entry

    records = _case_records()
    with Ledger(f"sqlite:///{tmp_path / 'ledger.db'}") as ledger:
        ledger.record(
            [{**entry(r["household_id"], r["period"]), "record": r} for r in records],
            caller="test",
            request_id="r1",
        )
        prev = previous_from_ledger(ledger, schema.records_to_frame(records))
    assert [p if isinstance(p, str) else None for p in prev["period"]] == _expected()


def test_is_previous_gap_is_the_rule_on_arrays():
    import numpy as np

    from riskml.data.history import is_previous_gap

    gaps = np.array([-1, 0, 1, 12, 13])
    assert is_previous_gap(gaps).tolist() == [False, False, True, True, False]


def test_previous_rule_in_the_batch_engine(tmp_path):
    import numpy as np

    from riskml.data import schema
    from riskml.scoring.batch import link_previous, scan_keys

    path = tmp_path / "cases.parquet"
    schema.records_to_frame(_case_records()).to_parquet(path, index=False)
    keys = scan_keys(path, chunk_rows=3)  # several chunks: the links cross them
    links = link_previous(keys, np.ones(len(PREVIOUS_CASES), dtype=bool))
    periods = [p for _, p, _ in PREVIOUS_CASES]
    got = [periods[i] if i >= 0 else None for i in links.previous.tolist()]
    assert got == _expected()
