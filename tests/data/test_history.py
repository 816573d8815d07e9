"""Data tests: a household's previous period and its chain of lags, the same on every path."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

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


# --------------------------------------------------------------------------- the chain of lags
# (household_id, period, expected lags 1-3 as periods; "repeat": a later record of the same
# household and period, which batch scoring rejects and so no path uses): the table every
# path must pass. Rows are listed out of order on purpose.
HISTORY_CASES = [
    ("a", "2023-06", ["2022-06", "2021-06", "2020-06"]),
    ("a", "2020-06", []),
    ("a", "2021-06", ["2020-06"]),
    ("a", "2024-06", ["2023-06", "2022-06", "2021-06"]),  # lag 4 (2020-06) is not used
    ("a", "2022-06", ["2021-06", "2020-06"]),
    ("b", "2022-09", ["2021-09", "2021-06"]),  # exactly 12 months, then 3
    ("b", "2021-09", ["2021-06"]),
    ("b", "2021-06", []),
    ("b", "2023-03", ["2022-09", "2021-09", "2021-06"]),
    ("c", "2021-12", ["2021-01", "2020-03"]),  # the chain breaks at 2019-01 (10 months)
    ("c", "2020-03", []),  # 2019-01 is 14 months back: a broken link
    ("c", "2019-01", []),
    ("c", "2021-01", ["2020-03"]),
    ("d", "2022-06", []),
    ("d", "2023-06", ["2022-06"]),
    ("d", "2022-06", "repeat"),  # rejected in batch: the first 2022-06 record is the lag
    ("e", "2023-02", ["2023-01", "2022-01", "2021-01"]),
    ("e", "2023-01", ["2022-01", "2021-01", "2020-01"]),
    ("e", "2022-01", ["2021-01", "2020-01"]),
    ("e", "2021-01", ["2020-01"]),
    ("e", "2020-01", []),
    ("f", "2023-01", ["2022-06", "2022-01", "2021-06"]),  # lag 4 (2021-01) is not used
    ("f", "2021-06", ["2021-01"]),
    ("f", "2022-01", ["2021-06", "2021-01"]),
    ("f", "2021-01", []),
    ("f", "2022-06", ["2022-01", "2021-06", "2021-01"]),
]
# with four lags, f's 2023-01 record gets its fourth (24 months back), while the look-back
# bound (36 months) drops a's 2020-06 for 2024-06 (48) and e's 2020-01 for 2023-02 (37)
FOUR_LAGS = {("f", "2023-01"): ["2022-06", "2022-01", "2021-06", "2021-01"]}


def _history_records() -> list[dict]:
    """The cases as records; ``income_wage`` marks the row (its position) so a lag is known
    by the record it came from, not only by its period."""
    from tests.data.test_schema import good_record

    return [
        good_record(household_id=h, period=p, income_wage=1000.0 + i)
        for i, (h, p, _) in enumerate(HISTORY_CASES)
    ]


def _valid_cases() -> list[int]:
    return [i for i, (_, _, lags) in enumerate(HISTORY_CASES) if lags != "repeat"]


def _expected_marks(lags: int = 3) -> list[list[float]]:
    """Per valid case, its lags as the marks of the records they come from."""
    first = {}
    for i in _valid_cases():
        first.setdefault(HISTORY_CASES[i][:2], 1000.0 + i)
    out = []
    for i in _valid_cases():
        h, p, want = HISTORY_CASES[i]
        if lags != 3:
            want = FOUR_LAGS.get((h, p), want)
        out.append([first[(h, q)] for q in want])
    return out


def _marks(frames) -> list[list[float]]:
    """Per row, the marks of its known lags (lag 1 first) from lag frames or Columns."""
    cols = [np.asarray(f["income_wage"], dtype=float) for f in frames]
    return [[c[r] for c in cols if not np.isnan(c[r])] for r in range(len(cols[0]))]


def _valid_frame():
    from riskml.data import schema

    records = _history_records()
    return schema.records_to_frame([records[i] for i in _valid_cases()])


@pytest.mark.parametrize("lags", [3, 4])
def test_history_chain_on_the_panel(lags):
    from riskml.data.history import earlier_from_panel, previous_from_panel

    panel = _valid_frame()
    earlier = earlier_from_panel(panel, lags=lags)
    assert len(earlier) == lags and all(list(e.index) == list(panel.index) for e in earlier)
    assert _marks(earlier) == _expected_marks(lags)
    # lag 1 is the previous period, as it always was
    pd.testing.assert_frame_equal(earlier[0], previous_from_panel(panel))


@pytest.mark.parametrize("lags", [3, 4])
def test_history_chain_in_the_batch_engine(tmp_path, lags):
    from riskml.data import schema
    from riskml.scoring.batch import link_previous, scan_keys

    path = tmp_path / "cases.parquet"
    schema.records_to_frame(_history_records()).to_parquet(path, index=False)
    keys = scan_keys(path, chunk_rows=4)  # several chunks: the links cross them
    valid = ~keys.duplicate  # the repeat is rejected, as validation does
    links = link_previous(keys, valid, lags=lags)
    marks = [[1000.0 + int(lag[i]) for lag in links.lags if lag[i] >= 0] for i in _valid_cases()]
    assert marks == _expected_marks(lags)
    # every record used as a lag is kept until its last user: the last row pointing at it
    for i in _valid_cases():
        users = [j for j in range(keys.n) if any(lag[j] == i for lag in links.lags)]
        assert links.last_use[i] == (max(users) if users else -1)


def test_history_chain_in_sparks_blocks():
    import pyarrow as pa

    from riskml.data import schema
    from riskml.scoring.spark import lag_rows

    frame = _valid_frame()
    order = frame.sort_values(["household_id", "period"], kind="stable").index.to_numpy()
    block = pa.Table.from_pandas(frame.loc[order].reset_index(drop=True)[list(schema.FIELD_NAMES)])
    lags = lag_rows(block)
    marks_sorted = [
        [float(frame.loc[order[int(lag[r])], "income_wage"]) for lag in lags if lag[r] >= 0]
        for r in range(len(order))
    ]
    expected = _expected_marks()
    assert marks_sorted == [expected[int(i)] for i in order]


@pytest.mark.parametrize("lags", [3, 4])
def test_history_chain_on_the_ledger(tmp_path, lags):
    from riskml.data.history import earlier_from_ledger
    from riskml.store.ledger import Ledger
    from tests.code.test_ledger import entry

    records = _history_records()
    valid = [records[i] for i in _valid_cases()]
    with Ledger(f"sqlite:///{tmp_path / 'ledger.db'}") as ledger:
        # stored in two requests, in the cases' order: only valid records reach the ledger
        for k, part in enumerate((valid[:7], valid[7:])):
            ledger.record(
                [{**entry(r["household_id"], r["period"]), "record": r} for r in part],
                caller="test",
                request_id=f"r{k}",
            )
        earlier = earlier_from_ledger(ledger, _valid_frame(), lags=lags)
        assert ledger.earlier_records([]) == {}
    assert _marks(earlier) == _expected_marks(lags)


def test_a_household_rescored_in_a_period_gives_its_latest_record_to_the_chain(tmp_path):
    from riskml.data.history import earlier_from_ledger
    from riskml.store.ledger import Ledger
    from tests.code.test_ledger import entry
    from tests.data.test_schema import good_record

    first = good_record(household_id="a", period="2023-06", income_wage=1.0)
    again = good_record(household_id="a", period="2023-06", income_wage=2.0)
    older = good_record(household_id="a", period="2022-06", income_wage=3.0)
    now = good_record(household_id="a", period="2024-06")
    with Ledger(f"sqlite:///{tmp_path / 'ledger.db'}") as ledger:
        for k, r in enumerate((older, first, again)):  # one request each: created_at rises
            ledger.record([{**entry("a", r["period"]), "record": r}], caller="t", request_id=f"{k}")
        earlier = earlier_from_ledger(ledger, _frame_of(now))
        previous = ledger.previous_records([("a", "2024-06")])
    assert _marks(earlier) == [[2.0, 3.0]]
    assert previous[("a", "2024-06")]["income_wage"] == 2.0  # the same record as lag 1


def _frame_of(*records):
    from riskml.data import schema

    return schema.records_to_frame(list(records))


def test_features_are_equal_from_the_panel_the_ledger_and_the_batch_store(tmp_path, lines):
    """The lags each path gives make the same features, bit for bit."""
    from riskml.data.history import earlier_from_ledger, earlier_from_panel, history_frame
    from riskml.model.features import build_features
    from riskml.scoring.batch import numeric_matrix
    from riskml.scoring.batch.links import lag_frames
    from riskml.store.ledger import Ledger
    from tests.code.test_ledger import entry

    panel = _valid_frame()
    from_panel = build_features(panel, earlier_from_panel(panel), lines)
    pd.testing.assert_frame_equal(
        from_panel, build_features(panel, history_frame(earlier_from_panel(panel)), lines)
    )
    records = [_history_records()[i] for i in _valid_cases()]
    with Ledger(f"sqlite:///{tmp_path / 'ledger.db'}") as ledger:
        ledger.record(
            [{**entry(r["household_id"], r["period"]), "record": r} for r in records],
            caller="test",
            request_id="r",
        )
        from_ledger = build_features(panel, earlier_from_ledger(ledger, panel), lines)
    pd.testing.assert_frame_equal(from_panel, from_ledger)
    # the batch store keeps numbers and the month: lags rebuilt from them
    from riskml.data.history import earlier_positions, period_months
    from riskml.data.periods import month_index

    values = np.column_stack([numeric_matrix(panel), period_months(panel["period"].to_numpy())])
    padded = np.vstack([values, np.full((1, values.shape[1]), np.nan)])
    pos = earlier_positions(
        panel["household_id"].to_numpy(), month_index(panel["period"]).to_numpy()
    )
    from_store = build_features(panel, lag_frames(np.stack([padded[p] for p in pos])), lines)
    pd.testing.assert_frame_equal(from_panel, from_store)
    assert from_panel["h_n_lags"].tolist() == [len(m) for m in _expected_marks()]
