"""Model test: how the trained model (the session's, on the sample panel) uses the history.

Households of the test period with three earlier records (the chain of ``data.history``)
are scored with their real history, then with only the history changed: earlier years
below the line raise the risk, better earlier years lower it, while the current record
and lag 1 stay as they are. A household's risk does not move when only its id, village
or the order of the records change. Each rolling fold is calibrated.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from riskml.data import schema
from riskml.data.history import earlier_from_panel
from riskml.data.label import INCOME_FIELDS

DEEP = (1, 2)  # lags 2 and 3 (positions in the list of lags)


@pytest.fixture(scope="module")
def with_history(trained, sample_panel):
    """(records, lags) of the test period's households with three earlier records."""
    panel = schema.require_valid(sample_panel)[list(schema.FIELD_NAMES)]
    panel = panel.sort_values(["period", "household_id"], kind="stable").reset_index(drop=True)
    lags = earlier_from_panel(panel)
    full = (panel["period"] == trained.splits.test_period).to_numpy()
    for lag in lags:
        full &= lag["household_size"].notna().to_numpy()
    assert full.sum() >= 500, "the sample panel should give households three earlier years"
    keep = np.flatnonzero(full)
    return (
        panel.iloc[keep].reset_index(drop=True),
        [lag.iloc[keep].reset_index(drop=True) for lag in lags],
    )


def _scaled(lags: list[pd.DataFrame], factor: float) -> list[pd.DataFrame]:
    """The lags with lags 2 and 3's incomes multiplied by ``factor`` (lag 1 unchanged)."""
    out = [lag.copy() for lag in lags]
    for k in DEEP:
        for col in INCOME_FIELDS:
            out[k][col] = out[k][col] * factor
    return out


def test_earlier_years_below_the_line_raise_the_risk(trained, with_history):
    records, lags = with_history
    base = trained.model.score_records(records, lags)
    poorer = trained.model.score_records(records, _scaled(lags, 0.2))
    assert poorer.mean() > base.mean() * 1.05, (poorer.mean(), base.mean())
    assert (poorer >= base - 1e-12).mean() >= 0.6


def test_better_earlier_years_lower_the_risk(trained, with_history):
    records, lags = with_history
    base = trained.model.score_records(records, lags)
    better = trained.model.score_records(records, _scaled(lags, 3.0))
    assert better.mean() < base.mean(), (better.mean(), base.mean())
    assert (better <= base + 1e-12).mean() >= 0.6


def test_history_is_used_at_all(trained, with_history):
    records, lags = with_history
    with_lags = trained.model.score_records(records, lags)
    lag1_only = trained.model.score_records(records, lags[:1])
    assert np.abs(with_lags - lag1_only).max() > 1e-3  # the deeper lags change scores


def test_risk_does_not_move_with_id_village_or_record_order(trained, with_history):
    records, lags = with_history
    base = trained.model.score_records(records, lags)
    renamed = records.copy()
    new_ids = pd.Series([f"X{i:07d}" for i in range(len(records))])
    renamed["household_id"] = new_ids
    renamed["village_code"] = renamed["county_code"] + "999999"  # another village, same county
    moved = [lag.assign(household_id=new_ids, village_code=renamed["village_code"]) for lag in lags]
    np.testing.assert_array_equal(trained.model.score_records(renamed, moved), base)
    order = np.random.default_rng(5).permutation(len(records))
    shuffled = trained.model.score_records(
        records.iloc[order].reset_index(drop=True),
        [lag.iloc[order].reset_index(drop=True) for lag in lags],
    )
    np.testing.assert_array_equal(shuffled, base[order])


def test_every_rolling_fold_is_calibrated(trained):
    table = trained.fold_table()
    assert len(table) >= 2
    assert (table["test_ece"] < 0.05).all(), table[["test_period", "test_ece"]]
