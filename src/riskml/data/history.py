"""A household's previous period, for change features and the income-drop rule.

The one rule: a record's previous period is the same household's latest
strictly earlier record, used only when it is at most ``MAX_GAP_MONTHS``
before (``is_previous_gap``). Every path applies it: training and batch take it
from the panel or file (``previous_positions``, ``previous_from_panel``; the
batch engine's links and the Spark window mirror it on their own keys), the
online service from the decision ledger (``previous_from_ledger``). One table of
cases in ``tests/data/test_history.py`` runs through each of them.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import pandas as pd

from riskml.data.columns import Columns, as_columns
from riskml.data.periods import month_index, parse_period

MAX_GAP_MONTHS = 12


def is_previous_gap(gap: Any, max_gap: int = MAX_GAP_MONTHS) -> Any:
    """Whether a record ``gap`` months earlier can be the previous period (0 < gap ≤ max_gap)."""
    return (gap > 0) & (gap <= max_gap)


def within_gap(period: str, previous_period: str | None, max_gap: int = MAX_GAP_MONTHS) -> bool:
    """Whether ``previous_period`` is earlier than ``period`` by at most ``max_gap`` months."""
    if previous_period is None:
        return False
    return bool(is_previous_gap(parse_period(period) - parse_period(previous_period), max_gap))


def previous_positions(
    households: np.ndarray, months: np.ndarray, max_gap: int = MAX_GAP_MONTHS
) -> np.ndarray:
    """For each row, the position of its previous period's row, or -1 (keys unique per row)."""
    n = len(households)
    order = np.lexsort((months, households))  # by household, then month
    sorted_hid = households[order]
    sorted_m = months[order]
    same_household = np.r_[False, sorted_hid[1:] == sorted_hid[:-1]]
    gap = np.r_[0, sorted_m[1:] - sorted_m[:-1]]
    has_prev = same_household & is_previous_gap(gap, max_gap)
    prev_pos = np.full(n, -1)
    prev_pos[order[has_prev]] = order[np.flatnonzero(has_prev) - 1]
    return prev_pos


def previous_from_panel(panel: pd.DataFrame, max_gap: int = MAX_GAP_MONTHS) -> pd.DataFrame:
    """For each row, the same household's most recent earlier record within ``max_gap`` months.

    Aligned to the panel's index; rows without such a record are all-missing.
    Columns are the panel's columns.
    """
    prev_pos = previous_positions(
        panel["household_id"].astype(str).to_numpy(),
        month_index(panel["period"]).to_numpy(),
        max_gap,
    )
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
