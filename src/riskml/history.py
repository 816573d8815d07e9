"""A household's previous period, for change features and the income-drop rule.

Batch: from the panel itself (the same household's record 12 months earlier).
Online: the service reads it from the decision ledger and passes it the same way.
"""

from __future__ import annotations

import pandas as pd

from riskml.periods import month_index

LOOKBACK_MONTHS = 12


def previous_from_panel(panel: pd.DataFrame, months: int = LOOKBACK_MONTHS) -> pd.DataFrame:
    """For each row, the same household's record ``months`` earlier (aligned to the panel's index).

    Rows without such a record are all-missing. Columns are the panel's columns.
    """
    key = pd.DataFrame(
        {
            "household_id": panel["household_id"].astype(str).to_numpy(),
            "m": month_index(panel["period"]).to_numpy(),
        }
    )
    earlier = panel.reset_index(drop=True).copy()
    earlier["__hid"] = key["household_id"].to_numpy()
    earlier["__m"] = key["m"].to_numpy() + months
    merged = key.merge(
        earlier,
        left_on=["household_id", "m"],
        right_on=["__hid", "__m"],
        how="left",
        suffixes=("__key", ""),
        validate="m:1",
    )
    out = merged[list(panel.columns)]
    out.index = panel.index
    return out
