"""A household's previous period, for change features and the income-drop rule.

The previous period is the household's most recent earlier record, at most
``MAX_GAP_MONTHS`` before. Batch scoring and training take it from the panel
(``previous_from_panel``); the online service takes it from the decision
ledger and filters it with ``within_gap``, so both read the same record.
"""

from __future__ import annotations

import contextlib

import numpy as np
import pandas as pd

from riskml.data.columns import Columns, as_columns
from riskml.data.periods import month_index

MAX_GAP_MONTHS = 12


def within_gap(period: str, previous_period: str | None, max_gap: int = MAX_GAP_MONTHS) -> bool:
    """Whether ``previous_period`` is earlier than ``period`` by at most ``max_gap`` months."""
    if previous_period is None:
        return False
    m = month_index(pd.Series([period, previous_period]))
    gap = int(m.iloc[0] - m.iloc[1])
    return 0 < gap <= max_gap


def previous_from_panel(panel: pd.DataFrame, max_gap: int = MAX_GAP_MONTHS) -> pd.DataFrame:
    """For each row, the same household's most recent earlier record within ``max_gap`` months.

    Aligned to the panel's index; rows without such a record are all-missing.
    Columns are the panel's columns.
    """
    n = len(panel)
    m = month_index(panel["period"]).to_numpy()
    hid = panel["household_id"].astype(str).to_numpy()
    order = np.lexsort((m, hid))  # by household, then month
    sorted_hid = hid[order]
    sorted_m = m[order]
    same_household = np.r_[False, sorted_hid[1:] == sorted_hid[:-1]]
    gap = np.r_[0, sorted_m[1:] - sorted_m[:-1]]
    has_prev = same_household & (gap > 0) & (gap <= max_gap)
    prev_pos = np.full(n, -1)
    prev_pos[order[has_prev]] = order[np.flatnonzero(has_prev) - 1]
    base = panel.reset_index(drop=True)
    out = base.iloc[np.where(prev_pos >= 0, prev_pos, 0)].copy()
    out.index = panel.index
    missing = prev_pos < 0
    if missing.any():
        out.loc[out.index[missing], :] = None
        for col in panel.columns:  # keep the original dtypes where assignment widened them
            with contextlib.suppress(TypeError, ValueError):
                out[col] = out[col].astype(panel[col].dtype)
    return out


def previous_from_ledger(ledger, records: pd.DataFrame | Columns) -> Columns | None:
    """The online previous period: each household's latest stored record before this period.

    ``ledger`` is a ``riskml.ledger.Ledger`` (one query for all keys). Records older than
    ``MAX_GAP_MONTHS`` are not used, as in ``previous_from_panel``. None when no household
    has one; otherwise ``Columns`` aligned with ``records`` (missing where unknown).
    """
    cols = as_columns(records)
    keys = [(str(h), str(p)) for h, p in zip(cols["household_id"], cols["period"], strict=True)]
    found = ledger.previous_records(keys)
    if not found:
        return None
    rows: list[dict | None] = []
    for key in keys:
        prev = found.get(key)
        rows.append(prev if prev is not None and within_gap(key[1], prev.get("period")) else None)
    return Columns.from_records(rows)
