"""Outcomes: reading outcome files, joining them to decisions, due dates and realised metrics.

**Outcomes** (``load_outcomes``; stored by ``riskml.store.outcomes.OutcomeStore``)
live in a table of their own, ``outcomes``, in the ledger's database (the
ledger is insert-only and owned by the service). An outcome says whether the
household was at risk at ``period`` (the contract's label measured on the later
record); it belongs to the decision of ``decision_period = period − 12
months``. The table is insert-only with (household_id, period) unique: loading
the same outcome again is skipped, loading a *different* value for a stored one
is refused (the whole file, nothing stored) because a correction of an observed
outcome is a data-governance event, not a routine load. Each decision (latest
per household and period) then is

* ``matched``: its outcome arrived by the due date;
* ``late``: its outcome arrived after the due date — the first day of the
  month after the outcome period plus ``outcomes.grace_days`` (60);
  a late outcome is used in the metrics like a matched one, but earlier
  monitoring runs did not have it;
* ``pending``: no outcome yet and not yet due; ``overdue``: no outcome and past
  due. Pending and overdue decisions are never counted as negatives; they are
  left out of every realised metric.

Realised metrics per decision period: ROC AUC, recall and precision at capacity
(the top ``outcomes.capacity`` share of *all* the period's scored households by
score, overall and each county its own top share; recall and precision over
the decisions with an outcome), ECE and the reliability table.
"""

from __future__ import annotations

from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from riskml.data import schema
from riskml.data.label import spend_adjusted_pc_income
from riskml.data.periods import shift_period, year_of
from riskml.model.metrics import (
    auc,
    expected_calibration_error,
    reliability_table,
    selection_metrics,
    top_k_mask,
)
from riskml.monitoring.config import HORIZON_MONTHS
from riskml.monitoring.windows import utc_timestamp


# =========================================================================== reading
def load_outcomes(path: str | Path, lines: Any = None) -> pd.DataFrame:
    """Outcomes from a file: household_id, period (observed), decision_period, at_risk (0/1).

    Three layouts, checked in this order:

    * **full later records** (every contract field): the outcome at the record's
      ``period`` is the contract's label measured on it (spend-adjusted
      per-capita income below that record's monitoring line); rows where an
      input is missing are dropped; any ``at_risk_next`` column is ignored;
    * ``household_id, period, at_risk``: at risk observed at ``period``;
    * ``household_id, period, at_risk_next``: the contract's label of the
      record *at* ``period`` (as in a labelled panel), i.e. observed 12 months
      later.

    Every outcome joins to the decision of ``period − 12 months``.
    """
    from riskml.data.io import read_table

    df = read_table(path)
    return outcomes_from_frame(df, lines)


def outcomes_from_frame(df: pd.DataFrame, lines: Any = None) -> pd.DataFrame:
    """``load_outcomes`` on a frame already read."""
    for col in ("household_id", "period"):
        if col not in df.columns:
            raise ValueError(f"outcomes need a {col!r} column")
    full = all(f.name in df.columns for f in schema.FIELDS)
    hid = df["household_id"].astype(str)
    period = df["period"].astype(str)
    if not period.str.fullmatch(schema.FIELD_BY_NAME["period"].pattern or "").all():
        raise ValueError("outcomes: every period must be YYYY-MM")
    if full:
        from riskml.data.reference import default_lines

        records = schema.require_valid(df[list(schema.FIELD_NAMES)])
        lines = lines or default_lines()
        prov = records["county_code"].astype(str).str.slice(0, 2)
        line = lines.for_frame(prov, year_of(records["period"]))["monitoring_line"].to_numpy(float)
        value = spend_adjusted_pc_income(records).to_numpy(dtype=float)
        at_risk = np.where(np.isnan(value), np.nan, (value < line).astype(float))
        observed = period.to_numpy()
    elif "at_risk" in df.columns and "at_risk_next" in df.columns:
        raise ValueError("outcomes: give at_risk (observed at period) or at_risk_next, not both")
    elif "at_risk" in df.columns:
        at_risk = pd.to_numeric(df["at_risk"], errors="coerce").to_numpy(dtype=float)
        observed = period.to_numpy()
    elif "at_risk_next" in df.columns:
        at_risk = pd.to_numeric(df["at_risk_next"], errors="coerce").to_numpy(dtype=float)
        observed = np.array([shift_period(p, HORIZON_MONTHS) for p in period], dtype=object)
    else:
        raise ValueError(
            "outcomes need at_risk (observed at period), at_risk_next (label of the record at "
            "period) or every contract field of the later record"
        )
    bad = ~np.isnan(at_risk) & ~np.isin(at_risk, (0.0, 1.0))
    if bad.any():
        raise ValueError(f"outcomes: at_risk must be 0 or 1; {int(bad.sum())} row(s) are not")
    out = pd.DataFrame(
        {
            "household_id": hid.to_numpy(),
            "period": observed,
            "decision_period": [shift_period(p, -HORIZON_MONTHS) for p in observed],
            "at_risk": at_risk,
        }
    )
    out = out[~np.isnan(at_risk)].reset_index(drop=True)
    out["at_risk"] = out["at_risk"].astype(int)
    return out


# =========================================================================== joining
def due_date(
    decision_period: str, horizon_months: int = HORIZON_MONTHS, grace_days: int = 60
) -> pd.Timestamp:
    """When the outcome of a decision is due: 1st of the month after its outcome period + grace."""
    after = shift_period(decision_period, horizon_months + 1)
    return pd.Timestamp(f"{after}-01", tz=UTC) + timedelta(days=grace_days)


def join_outcomes(
    decisions: pd.DataFrame,
    outcomes: pd.DataFrame,
    as_of: Any = None,
    horizon_months: int = HORIZON_MONTHS,
    grace_days: int = 60,
) -> pd.DataFrame:
    """Decisions (latest per household-period) with their outcome and status.

    ``status``: matched, late (arrived after ``due_date``), pending (no outcome,
    not yet due) or overdue (no outcome, past due), as of ``as_of`` (default now).
    """
    as_of = utc_timestamp(as_of) if as_of is not None else pd.Timestamp.now(tz=UTC)
    cols = ["household_id", "period", "county_code", "score", "flagged", "created_at"]
    d = decisions[[c for c in cols if c in decisions.columns]].copy()
    o = outcomes.rename(columns={"period": "outcome_period", "decision_period": "period"})
    o = o[["household_id", "period", "outcome_period", "at_risk", "loaded_at"]]
    j = d.merge(o, on=["household_id", "period"], how="left", validate="1:1")
    due = {p: due_date(p, horizon_months, grace_days) for p in pd.unique(j["period"])}
    j["due"] = pd.to_datetime(j["period"].map(due), utc=True)
    has = j["at_risk"].notna().to_numpy()
    loaded = pd.to_datetime(j["loaded_at"], utc=True, format="ISO8601")
    late = has & (loaded > j["due"]).fillna(False).to_numpy(dtype=bool)
    overdue = ~has & (as_of > j["due"]).to_numpy(dtype=bool)
    j["status"] = np.select(
        [has & ~late, late, overdue], ["matched", "late", "overdue"], default="pending"
    )
    return j


def unmatched_outcomes(joined: pd.DataFrame, outcomes: pd.DataFrame) -> int:
    """Stored outcomes whose decision (household, decision period) is not among ``joined``."""
    matched_keys = set(zip(joined["household_id"], joined["period"], strict=True))
    return int(
        sum(
            (h, p) not in matched_keys
            for h, p in zip(outcomes["household_id"], outcomes["decision_period"], strict=True)
        )
    )


# =========================================================================== realised metrics
def _county_selection(score: np.ndarray, county: np.ndarray, capacity: float) -> np.ndarray:
    sel = np.zeros(len(score), dtype=bool)
    for c in pd.unique(county):
        idx = np.flatnonzero(county == c)
        sel[idx] = top_k_mask(score[idx], capacity)
    return sel


def _realised(
    y: np.ndarray, p: np.ndarray, sel: np.ndarray, sel_county: np.ndarray
) -> dict[str, float]:
    n = len(y)
    m = selection_metrics(y, sel)
    mc = selection_metrics(y, sel_county)
    return {
        "positives": int(y.sum()),
        "base_rate": float(y.mean()) if n else float("nan"),
        "mean_score": float(p.mean()) if n else float("nan"),
        "roc_auc": auc(y, p) if n else float("nan"),
        "recall_at_capacity": m["recall"],
        "precision_at_capacity": m["precision"],
        "recall_at_capacity_per_county": mc["recall"],
        "precision_at_capacity_per_county": mc["precision"],
        "ece": expected_calibration_error(y, p) if n >= 10 else float("nan"),
    }


def realised_metrics(
    joined: pd.DataFrame, capacity: float = 0.10, bins: int = 10
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, pd.DataFrame]]:
    """Per decision period and per (period, county): counts by status and realised metrics.

    Capacity is the top ``capacity`` share of every scored household of the
    period (outcome or not); recall and precision are over those with an
    outcome (matched or late). Returns (by period, by county, reliability
    table per period).
    """
    per_rows, county_rows, reliability = [], [], {}
    for period, g in joined.groupby("period", sort=True):
        g = g.reset_index(drop=True)
        score = g["score"].to_numpy(dtype=float)
        county = g["county_code"].astype(str).to_numpy()
        sel = top_k_mask(score, capacity)
        sel_c = _county_selection(score, county, capacity)
        known = g["status"].isin(["matched", "late"]).to_numpy()
        counts = g["status"].value_counts()
        y = g.loc[known, "at_risk"].to_numpy(dtype=int)
        p = score[known]
        row = {
            "period": period,
            "decisions": len(g),
            **{s: int(counts.get(s, 0)) for s in ("matched", "late", "pending", "overdue")},
            "with_outcome": int(known.sum()),
        }
        row.update(_realised(y, p, sel[known], sel_c[known]))
        per_rows.append(row)
        if known.sum() >= 10:
            reliability[str(period)] = reliability_table(y, p, bins)
        for c in sorted(pd.unique(county)):
            cm = county == c
            k = known & cm
            yc = g.loc[k, "at_risk"].to_numpy(dtype=int)
            r = {
                "period": period,
                "county_code": c,
                "decisions": int(cm.sum()),
                "with_outcome": int(k.sum()),
            }
            r.update(_realised(yc, score[k], sel[k], sel_c[k]))
            county_rows.append(r)
    return pd.DataFrame(per_rows), pd.DataFrame(county_rows), reliability


__all__ = [
    "due_date",
    "join_outcomes",
    "load_outcomes",
    "outcomes_from_frame",
    "realised_metrics",
    "unmatched_outcomes",
]
