"""The case loop's counts by village and period, to be added up with the decisions.

From each household's current case (``CaseStore.current_cases()``, whole states), per
village and period P (a month ``YYYY-MM``):

* ``monitored``: confirmed (a county decision gave a household type) before the end of P
  and not eliminated by then; by household type (``monitored_<type>``) and risk type
  (``monitored_rt_<type>``, a household in each of its types);
* ``confirmed`` in P, ``confirm_days`` (their days from the lead to the decision, summed:
  the table divides by ``confirmed``), ``eliminated`` in P;
* ``open_cases`` and ``overdue`` (the next step past its deadline, ``machine.clock``) now:
  only in the latest period, where "now" belongs.

A household's earlier cases, closed before its current one opened, are not in the current
states: counts of past periods see only current cases, and a rollback (回退) clears the
elimination date, so a household eliminated and rolled back counts as monitored throughout.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from riskml.cases.fields import HOUSEHOLD_TYPES
from riskml.cases.machine import OPEN, clock, iso
from riskml.cases.procedure import Procedure
from riskml.data.periods import month_text, parse_period
from riskml.policy.risk_types import RISK_TYPES

TYPE_COLUMNS = tuple(f"monitored_{t}" for t in HOUSEHOLD_TYPES)
RT_COLUMNS = tuple(f"monitored_rt_{code}" for code in RISK_TYPES)
CASE_SUMS = (
    "monitored", *TYPE_COLUMNS, *RT_COLUMNS, "confirmed", "confirm_days", "eliminated",
    "open_cases", "overdue",
)  # fmt: skip
CURRENT_ONLY = ("open_cases", "overdue")


def _frame(states: Iterable[dict[str, Any]], procedure: Procedure, now: str) -> pd.DataFrame:
    rows = []
    for s in states:
        status = s.get("status")
        rows.append(
            {
                "village": int(s["village_code"]),
                "household_type": s.get("household_type"),
                "risk_types": list(s.get("risk_types") or []),
                "opened_at": s.get("opened_at") or "",
                "decided_at": s.get("decided_at") or "",
                "eliminated_at": s.get("eliminated_at") or "",
                "open": status in OPEN,
                "overdue": status in OPEN and clock(s, procedure, now) == "overdue",
            }
        )
    cols = ["village", "household_type", "risk_types", "opened_at", "decided_at",
            "eliminated_at", "open", "overdue"]  # fmt: skip
    return pd.DataFrame(rows, columns=cols)


def case_sums(
    states: Iterable[dict[str, Any]],
    periods: Sequence[str],
    procedure: Procedure,
    now: str | None = None,
) -> pd.DataFrame:
    """``CASE_SUMS`` per (period, village code) for ``periods`` (rows with a case only)."""
    now = now or iso(datetime.now(UTC))
    f = _frame(states, procedure, now)
    periods = sorted(set(periods))
    if f.empty or not periods:
        return pd.DataFrame(columns=["period", "code", *CASE_SUMS])
    confirmed = f["household_type"].notna().to_numpy() & (f["decided_at"] != "").to_numpy()
    decided = f["decided_at"].to_numpy(dtype=object)
    eliminated = f["eliminated_at"].to_numpy(dtype=object)
    opened = pd.to_datetime(f["opened_at"].replace("", None), utc=True, format="ISO8601")
    days = (
        pd.to_datetime(f["decided_at"].replace("", None), utc=True, format="ISO8601") - opened
    ).dt.total_seconds().to_numpy() / 86400.0
    types = f["household_type"].to_numpy(dtype=object)
    rts = f["risk_types"].to_list()
    rt_masks = {code: np.array([code in r for r in rts], dtype=bool) for code in RISK_TYPES}
    group, villages = pd.factorize(f["village"])
    latest = periods[-1]
    out = []
    for period in periods:
        start = f"{period}-01"
        end = f"{month_text(parse_period(period) + 1)}-01"
        monitored = confirmed & (decided < end) & ((eliminated == "") | (eliminated >= end))
        confirmed_in = confirmed & (decided >= start) & (decided < end)
        masks: dict[str, np.ndarray] = {
            "monitored": monitored,
            **{f"monitored_{t}": monitored & (types == t) for t in HOUSEHOLD_TYPES},
            **{f"monitored_rt_{c}": monitored & m for c, m in rt_masks.items()},
            "confirmed": confirmed_in,
            "eliminated": (eliminated >= start) & (eliminated < end) & (eliminated != ""),
            "open_cases": f["open"].to_numpy() & (period == latest),
            "overdue": f["overdue"].to_numpy() & (period == latest),
        }
        sums = {
            name: np.bincount(group, weights=m.astype(float), minlength=len(villages))
            .round()
            .astype(np.int64)  # fmt: skip
            for name, m in masks.items()
        }
        sums["confirm_days"] = np.bincount(
            group, weights=np.where(confirmed_in, np.nan_to_num(days), 0.0), minlength=len(villages)
        )
        block = pd.DataFrame({"period": period, "code": np.asarray(villages, dtype=np.int64), **sums})  # fmt: skip
        out.append(block[block[list(CASE_SUMS)].to_numpy(dtype=float).sum(axis=1) > 0])
    frame = pd.concat(out, ignore_index=True)
    return frame[["period", "code", *CASE_SUMS]]
