"""A household's earlier records: the previous period and the chain of lags behind it.

The one rule: a record's previous period is the same household's latest
strictly earlier record, used only when it is at most ``MAX_GAP_MONTHS``
before (``is_previous_gap``). The history is a chain of that rule: lag 1 is the
previous period, lag 2 the previous period of lag 1, lag 3 that of lag 2 (at
most ``HISTORY_LAGS``), each link within ``MAX_GAP_MONTHS``, and no lag more
than ``HISTORY_MONTHS`` before the record (``chain_positions``); a broken link
ends the chain. Every path applies it: training and batch take it from the
panel or file (``previous_positions``, ``earlier_positions``,
``previous_from_panel``, ``earlier_from_panel``; the batch engine's links and
Spark's blocks use ``chain_positions`` on their own keys), the online service
from the decision ledger (``previous_from_ledger``, ``earlier_from_ledger``).
One table of cases in ``tests/data/test_history.py`` runs through each of them.

Lags travel as a list (lag 1 first) of frames or ``Columns`` aligned with the
records, missing where unknown; ``history_frame`` folds them into one frame
(lag 1's columns as they are, lag k's as ``prev<k>_<column>``) that can be
subset like any frame and that ``model.features`` reads back.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import pandas as pd

from riskml.data.columns import Columns, as_columns
from riskml.data.periods import month_index, parse_period, period_or

MAX_GAP_MONTHS = 12  # one link of the chain: at most this many months back
HISTORY_MONTHS = 36  # the look-back: no lag more than this many months before the record
HISTORY_LAGS = 3  # lags the model uses


def lag_prefix(k: int) -> str:
    """Column prefix of lag ``k`` in a model input or a ``history_frame``: prev_, prev2_, ..."""
    return "prev_" if k == 1 else f"prev{k}_"


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


def chain_positions(
    previous: np.ndarray,
    months: np.ndarray,
    lags: int = HISTORY_LAGS,
    history_months: int = HISTORY_MONTHS,
) -> list[np.ndarray]:
    """Lags 1..``lags`` as positions (-1: none) from each row's previous-period position.

    Lag k is the previous of lag k-1 (a broken link ends the chain), dropped with
    every later lag when it is more than ``history_months`` before the row
    (``months``: month counts by position). Lag 1 is ``previous`` bounded the same way.
    """
    out: list[np.ndarray] = []
    cur = previous
    if len(previous) == 0:
        return [previous.copy() for _ in range(lags)]
    for k in range(lags):
        if k:
            cur = np.where(cur >= 0, previous[np.maximum(cur, 0)], -1).astype(previous.dtype)
        back = months - months[np.maximum(cur, 0)]
        cur = np.where((cur >= 0) & (back <= history_months), cur, -1).astype(previous.dtype)
        out.append(cur)
    return out


def chain_valid(
    months: np.ndarray,
    lag_months: list[np.ndarray],
    present: list[np.ndarray],
    max_gap: int = MAX_GAP_MONTHS,
    history_months: int = HISTORY_MONTHS,
) -> list[np.ndarray]:
    """Per lag, which rows may use it: the chain rule on given lags (float months, NaN unknown).

    Lag 1 without a period is taken as given (an input's ``prev_*`` columns);
    a lag 2 or later needs its period and that of the lag before it. A lag
    fails when absent (``present``), when its link is not a previous gap, when
    it is more than ``history_months`` before the record, or when the lag
    before it failed.
    """
    out: list[np.ndarray] = []
    later = np.asarray(months, dtype=np.float64)
    ok = np.ones(len(later), dtype=bool)
    for k, (m, here) in enumerate(zip(lag_months, present, strict=True)):
        with np.errstate(invalid="ignore"):
            link = is_previous_gap(later - m, max_gap) & (months - m <= history_months)
        ok = ok & here & (link | (np.isnan(m) if k == 0 else False))
        out.append(ok)
        later = m
    return out


def earlier_positions(
    households: np.ndarray,
    months: np.ndarray,
    lags: int = HISTORY_LAGS,
    max_gap: int = MAX_GAP_MONTHS,
    history_months: int = HISTORY_MONTHS,
) -> list[np.ndarray]:
    """For each row, the positions of its lags 1..``lags`` (-1: none); see ``chain_positions``."""
    prev = previous_positions(households, months, max_gap)
    return chain_positions(prev, np.asarray(months, dtype=np.int64), lags, history_months)


def _rows_at(panel: pd.DataFrame, pos: np.ndarray) -> pd.DataFrame:
    """The panel's rows at ``pos`` (all-missing where -1), indexed like the panel."""
    base = panel.reset_index(drop=True)
    out = base.iloc[np.where(pos >= 0, pos, 0)].copy()
    out.index = panel.index
    missing = pos < 0
    if missing.any():
        out.loc[out.index[missing], :] = None
        for col in panel.columns:  # keep the original dtypes where assignment widened them
            with contextlib.suppress(TypeError, ValueError):
                out[col] = out[col].astype(panel[col].dtype)
    return out


def earlier_from_panel(
    panel: pd.DataFrame,
    lags: int = HISTORY_LAGS,
    max_gap: int = MAX_GAP_MONTHS,
    history_months: int = HISTORY_MONTHS,
) -> list[pd.DataFrame]:
    """For each row, its lags 1..``lags`` (the chain of previous periods), one frame per lag.

    Each frame is aligned to the panel's index, with the panel's columns;
    all-missing where the lag is unknown. Lag 1 equals ``previous_from_panel``
    (within ``history_months``).
    """
    positions = earlier_positions(
        panel["household_id"].astype(str).to_numpy(),
        month_index(panel["period"]).to_numpy(),
        lags,
        max_gap,
        history_months,
    )
    return [_rows_at(panel, pos) for pos in positions]


def history_frame(earlier: list[pd.DataFrame]) -> pd.DataFrame:
    """Lags as one frame: lag 1's columns as they are, lag k's as ``prev<k>_<column>``.

    What training keeps as "the previous periods" (it subsets like any frame);
    ``model.features`` reads the deeper lags back from their prefixes.
    """
    if not earlier:
        raise ValueError("history_frame needs at least lag 1")
    parts = [earlier[0]]
    for k, lag in enumerate(earlier[1:], start=2):
        parts.append(lag.add_prefix(lag_prefix(k)).set_axis(earlier[0].index))
    return pd.concat(parts, axis=1) if len(parts) > 1 else parts[0].copy()


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
    return _rows_at(panel, prev_pos)


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


def earlier_from_ledger(
    ledger,
    records: pd.DataFrame | Columns,
    lags: int = HISTORY_LAGS,
    max_gap: int = MAX_GAP_MONTHS,
    history_months: int = HISTORY_MONTHS,
) -> list[Columns] | None:
    """The online lags: ``earlier_from_panel``'s rule on each household's stored records.

    ``ledger`` is a ``riskml.ledger.Ledger``; ``Ledger.earlier_records`` gives,
    per key, its chain of strictly earlier stored records (the latest of each
    earlier period; a few queries for all keys) and the rule is applied here: a
    link more than ``max_gap`` months back, or a lag more than ``history_months``
    before the record, ends the chain. None when no household has lag 1;
    otherwise ``lags`` Columns aligned with ``records`` (missing where unknown).
    """
    cols = as_columns(records)
    keys = [(str(h), str(p)) for h, p in zip(cols["household_id"], cols["period"], strict=True)]
    found = ledger.earlier_records(keys, lags)
    rows: list[list[dict | None]] = [[] for _ in range(lags)]
    any_found = False
    for key in keys:
        chain = found.get(key) or []
        month = parse_period(key[1])
        later = key[1]
        for k in range(lags):
            rec = chain[k] if k < len(chain) else None
            period = rec.get("period") if rec is not None else None
            ok = (
                rec is not None
                and within_gap(later, period, max_gap)
                and month - parse_period(period) <= history_months
            )
            if not ok:
                for j in range(k, lags):
                    rows[j].append(None)
                break
            rows[k].append(rec)
            later = period
            any_found = True
    if not any_found:
        return None
    return [Columns.from_records(r) for r in rows]


def period_months(values: np.ndarray) -> np.ndarray:
    """Periods (text, None or NaN for missing) as float month counts, NaN where missing or bad."""
    n = len(values)
    if n <= 8:  # a request: no hashing machinery
        out = np.array([float(period_or(v, -1)) for v in values], dtype=np.float64)
        out[out < 0] = np.nan
        return out
    codes, uniques = pd.factorize(np.asarray(values, dtype=object), use_na_sentinel=True)
    mapped = np.array([float(period_or(u, -1)) for u in uniques] + [-1.0])
    out = mapped[codes]  # -1 (missing) indexes the trailing -1
    out[out < 0] = np.nan
    return out


def month_periods(months: np.ndarray) -> np.ndarray:
    """Float month counts as ``YYYY-MM`` text (None where NaN), as an object array."""
    out = np.empty(len(months), dtype=object)
    known = ~np.isnan(months)
    if known.any():
        codes, uniques = pd.factorize(months[known].astype(np.int64))
        text = np.array([f"{m // 12:04d}-{m % 12 + 1:02d}" for m in uniques], dtype=object)
        out[known] = text[codes]
    return out
