"""Outcomes from the case loop: case decisions as labelled outcomes, and a confirmed-identification label.

**Monitoring outcomes** (``outcomes_from_cases``; stored with ``riskml outcomes --from-cases``
in the ``outcomes`` table, ``riskml.store.outcomes.OutcomeStore``). A case decision that says
something about the household's risk is an outcome *observed in the month of the decision*:

=========================================  =======  ======================
event                                      at_risk  ``outcome``
=========================================  =======  ======================
county ``decide`` confirm                  1        confirmed
county ``decide`` reject                   0        rejected_county
``township_review`` reject                 0        rejected_township
``visit`` with outcome drop                0        dropped
``elimination_decide`` approve             0        eliminated
``elimination_review``/``_decide`` reject  1        elimination_refused
``rollback`` (回退)                         1        rollback
=========================================  =======  ======================

``period`` is the month of the decision, not of the lead or the visit: the decision is the
reviewed fact (a visit only proposes), it is when the outcome becomes known, and eliminations
and rollbacks have no visit of their own. Like every outcome it joins the decision of
``decision_period = period − 12 months``: a confirmation in 2026-03 says the household was at
risk in 2026-03 and so grades the score riskml gave it in 2025-03 ("below the line 12 months
after scoring"). It does *not* grade the warning that started the case a few weeks earlier;
that decision is graded by whatever outcome arrives 12 months after it. One outcome per
household and month (the table's key): when a household has several such decisions in one
month, the last one (the household's state at the end of the month) is the outcome. Only
complete months count (before the month of ``as_of``), so a later run never finds a different
value for a month it already stored.

A confirmation is **identification**, not the income label. The contract's label
(``at_risk_next``) is spend-adjusted per-capita income below the monitoring line; a county
confirms a monitoring object on the identification standard (income near the line *or* large
rigid costs or a sudden hardship, judged at the visit and reviewed). The two mostly agree but
not always, and a case outcome may differ from an income outcome loaded from a file for the
same household and month; the outcomes store then refuses the load (insert-only).

**The training label** (``confirmed_labels``, training config ``data.label: confirmed`` or
``confirmed_visited``): for a record of period P, 1 when the household was confirmed (or
rolled back) in one of the 12 months after it, P+1 … P+12. Only visited households can be
confirmed, so the label reflects who was visited as much as who was at risk
(``SELECTION_BIAS``, printed in the model card of a model trained on it).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from riskml.cases.machine import MONITORED
from riskml.cases.store import CaseStore
from riskml.data.periods import month_index, month_text, parse_date_month

HORIZON_MONTHS = 12
SOURCE = "cases"
CONFIRMED_LABEL = "confirmed_next"  # the column ``confirmed_labels`` fills in a panel
UNVISITED = ("zero", "unlabelled")

OUTCOME_COLUMNS = (
    "household_id", "period", "decision_period", "at_risk", "source", "outcome", "action",
    "event_id", "case_id", "county_code", "decided_at",
)  # fmt: skip

SELECTION_BIAS = (
    "The label is confirmed identification from the case loop (`confirmed_next`: the county "
    "confirmed the household as a monitoring object, or rolled back its risk elimination, within "
    "the 12 months after the record), not the income label. Only visited households can be "
    "confirmed: a household nobody visited cannot become a positive, so these labels reflect who "
    "was visited (the worklist order, the rules and caseworker capacity) as much as who was at "
    "risk, and a model trained on them learns that order back. Identification also uses more "
    "than income (rigid costs, sudden hardship, the reviewers' judgement). Judge such a model "
    "against income outcomes, and read its recall as recall among the households the loop reached."
)


def _month(at: str) -> int:
    """The month count of an event's time (``created_at``, UTC ISO 8601)."""
    return parse_date_month(at[:10])


def _as_of_month(as_of: Any) -> int:
    if as_of is None:
        return parse_date_month(datetime.now(UTC).date())
    if isinstance(as_of, datetime):
        return parse_date_month(as_of.astimezone(UTC).date())
    return parse_date_month(str(as_of)[:10])


def decision_outcome(action: str, payload: dict[str, Any]) -> tuple[int, str] | None:
    """(at_risk, outcome) of a case event that says something about the household's risk, or None."""
    decision = payload.get("decision")
    if action == "decide":
        return (1, "confirmed") if decision == "confirm" else (0, "rejected_county")
    if action == "township_review" and decision == "reject":
        return 0, "rejected_township"
    if action == "visit" and payload.get("outcome") == "drop":
        return 0, "dropped"
    if action == "elimination_decide":
        return (0, "eliminated") if decision == "approve" else (1, "elimination_refused")
    if action == "elimination_review" and decision == "reject":
        return 1, "elimination_refused"
    if action == "rollback":
        return 1, "rollback"
    return None


def outcomes_from_cases(store: CaseStore, as_of: Any = None, batch: int = 50_000) -> pd.DataFrame:
    """One outcome per household and month from the case decisions (see the module's table).

    Columns: household_id, period (the decision's month), decision_period (period − 12
    months), at_risk (0/1), source (``"cases"``), outcome, action, event_id, case_id,
    county_code, decided_at. ``OutcomeStore.add`` takes it as it is (it keeps the first four;
    ``event_id`` is the provenance of each row). Months from that of ``as_of`` (default now)
    on are left out: they are not complete yet.
    """
    cutoff = _as_of_month(as_of)
    rows = []
    for chunk in store.iter_events(batch):
        for r in chunk:
            found = decision_outcome(r["action"], r["payload"] or {})
            if found is None:
                continue
            m = _month(r["created_at"])
            if m >= cutoff:
                continue
            rows.append(
                {
                    "household_id": r["household_id"],
                    "period": month_text(m),
                    "decision_period": month_text(m - HORIZON_MONTHS),
                    "at_risk": found[0],
                    "source": SOURCE,
                    "outcome": found[1],
                    "action": r["action"],
                    "event_id": r["event_id"],
                    "case_id": r["case_id"],
                    "county_code": r["county_code"],
                    "decided_at": r["created_at"],
                    "_seq": r["seq"],
                }  # fmt: skip
            )
    if not rows:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in OUTCOME_COLUMNS}).astype(
            {"at_risk": "int64"}
        )
    df = pd.DataFrame(rows).sort_values(["household_id", "_seq"], kind="stable")
    df = df.drop_duplicates(["household_id", "period"], keep="last")
    return df[list(OUTCOME_COLUMNS)].reset_index(drop=True)


def _case_events(store: CaseStore, batch: int) -> pd.DataFrame:
    rows = [
        {
            "household_id": r["household_id"],
            "seq": r["seq"],
            "m": _month(r["created_at"]),
            "action": r["action"],
            "status": r["status"],
            "confirming": (found := decision_outcome(r["action"], r["payload"] or {})) is not None
            and found[1] in ("confirmed", "rollback"),
        }
        for chunk in store.iter_events(batch)
        for r in chunk
    ]
    cols = ["household_id", "seq", "m", "action", "status", "confirming"]
    return pd.DataFrame(rows, columns=cols)


def _any_in_window(records: pd.DataFrame, months: pd.DataFrame) -> np.ndarray:
    """Per record: an event month in (m0, m0 + 12] for the same household."""
    hit = np.zeros(len(records), dtype=bool)
    if months.empty:
        return hit
    j = records[["household_id", "m0", "row"]].merge(months, on="household_id")
    j = j[(j["m"] > j["m0"]) & (j["m"] <= j["m0"] + HORIZON_MONTHS)]
    hit[j["row"].unique()] = True
    return hit


def confirmed_labels(
    store: CaseStore,
    panel: pd.DataFrame,
    as_of: Any = None,
    unvisited: str = "zero",
    batch: int = 50_000,
) -> pd.Series:
    """``confirmed_next`` for every record (household_id, period) of a panel: 1.0, 0.0 or NaN.

    NaN when the window is not complete yet (P + 12 is the month of ``as_of``, default now,
    or later), or when the household already was a monitoring object at the end of month P
    (confirmed and still monitored: it cannot be newly identified). Otherwise 1 when the
    household was confirmed as a monitoring object (county ``decide`` confirm) or rolled back
    (回退) in one of the months P+1 … P+12 after the record's period P; and when it was not:

    * 0 for a household visited in the window (a home visit or a follow-up);
    * for a household nobody visited in the window: ``unvisited="zero"`` (default; config
      ``data.label: confirmed``) gives 0, the literal "not confirmed", so the model learns
      P(visited and confirmed); ``"unlabelled"`` (``confirmed_visited``) gives NaN, so the
      model learns P(confirmed | visited) from visited households only. Either way the label
      carries the worklist's selection (``SELECTION_BIAS``).

    Aligned to ``panel``'s index, named ``confirmed_next``.
    """
    if unvisited not in UNVISITED:
        raise ValueError(f"unvisited must be one of {', '.join(UNVISITED)}, got {unvisited!r}")
    for col in ("household_id", "period"):
        if col not in panel.columns:
            raise ValueError(f"confirmed labels need a {col!r} column")
    cutoff = _as_of_month(as_of)
    records = pd.DataFrame(
        {
            "household_id": panel["household_id"].astype(str).to_numpy(),
            "m0": month_index(panel["period"]).to_numpy(),
            "row": np.arange(len(panel)),
        }
    )
    ev = _case_events(store, batch)
    positive = _any_in_window(records, ev.loc[ev["confirming"], ["household_id", "m"]])
    visited = positive | _any_in_window(
        records, ev.loc[ev["action"].isin(["visit", "follow_up"]), ["household_id", "m"]]
    )
    # the household's case status at the end of month P (its last event up to then)
    monitored = np.zeros(len(records), dtype=bool)
    if not ev.empty:
        last = ev.sort_values(["household_id", "seq"]).drop_duplicates(
            ["household_id", "m"], keep="last"
        )
        at_p = pd.merge_asof(
            records.sort_values("m0"),
            last[["household_id", "m", "status"]].sort_values("m"),
            left_on="m0",
            right_on="m",
            by="household_id",
            direction="backward",
        )
        monitored[at_p["row"].to_numpy()] = at_p["status"].isin(MONITORED).to_numpy()
    y = np.where(positive, 1.0, 0.0)
    if unvisited == "unlabelled":
        y[~visited] = np.nan
    y[monitored] = np.nan
    y[records["m0"].to_numpy() + HORIZON_MONTHS >= cutoff] = np.nan
    return pd.Series(y, index=panel.index, name=CONFIRMED_LABEL)


def with_confirmed_labels(
    panel: pd.DataFrame, store: CaseStore, as_of: Any = None, unvisited: str = "zero"
) -> pd.DataFrame:
    """A copy of ``panel`` with its ``confirmed_next`` column from the case store."""
    out = panel.copy()
    out[CONFIRMED_LABEL] = confirmed_labels(store, panel, as_of=as_of, unvisited=unvisited)
    return out


__all__ = [
    "CONFIRMED_LABEL",
    "SELECTION_BIAS",
    "SOURCE",
    "confirmed_labels",
    "decision_outcome",
    "outcomes_from_cases",
    "with_confirmed_labels",
]
