"""Department alerts in the simulated year of the case loop: pushes through the real intake, judged.

``run_year_with_alerts`` runs ``riskml.cases.year.run_year`` with a hook (``DepartmentPushes``,
one per ordering) that makes the departments push their alerts through
``riskml.alerts.intake.take``, the path of ``POST /alerts`` and ``riskml alerts import``:
validated, merged onto the household's latest record in the ledger, re-scored by the world's
model and rules (``riskml.scoring.online.decide_records``, as the service does), stored, and led
(source ``department_alert``, one lead per household and month, on the loop's own case store
with the simulated clock). The caseworkers take those leads at their next week's planning,
before the warnings, and the visit finds what the world holds (``YearWorld.finds_risk``), so
the alerts get real confirmations and rejections. After the year ``riskml.alerts.quality``
judges them (``report["orderings"][...]["hook"]``).

**The ledger.** The monthly pushes are stored as decisions, as riskml's batch scoring would
store them: the June ``t - 1`` records and push 0 on 1 July, push ``k`` on the first working
day of month ``k + 1`` (the same records the loop's warnings come from, decided again through
the service's path with their previous record from the ledger).

**What the departments push** (an approximation: the world is yearly, see
``riskml.cases.year_world``):

- *medical* (医保局), month ``k``'s data on the 5th (working day) of month ``k + 1``: each
  household whose 12-month out-of-pocket cost (month ``k``'s ``medical_expense``) is at least
  ``medical_floor`` (2,500 yuan: half the lowest medical threshold, so that lower thresholds
  can be judged), pushed again only when it rose by ``medical_rise`` (20%) since its last
  push. Care is *inpatient* when the household's cost of the year rose by at least
  ``inpatient_rise`` (2,000 yuan: a hospital stay), else *outpatient* with the month's cost a
  twelfth of the 12 months'.
- *emergency* (应急管理局), after each disaster: a county is hit in the year when at least
  ``disaster_share`` of its households have a disaster loss in the June ``t + 1`` record; its
  disaster day is drawn (``seed``) in August to May, and ``emergency_lag_days`` later every
  household of the county with a loss is pushed (the year's loss; the house damaged when it
  was safe in June ``t`` and is not in June ``t + 1``).

Alert ids name the department, the month and the household's position in the world, never
the household id.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from riskml.alerts import quality
from riskml.alerts.intake import MAX_ALERTS, take
from riskml.alerts.triggers import TriggerSet
from riskml.cases.machine import iso
from riskml.cases.store import CaseStore
from riskml.cases.year import YearLoop, YearSettings, run_year, workday_add
from riskml.data import schema
from riskml.scoring import online
from riskml.scoring.decide import records_as_dicts

__all__ = [
    "DEPARTMENTS",
    "AlertSettings",
    "ClockedCases",
    "DepartmentPushes",
    "run_year_with_alerts",
]

DEPARTMENTS = ("medical", "emergency")


@dataclass(frozen=True)
class AlertSettings:
    """Which departments push in the simulated year, and how (see the module's docstring)."""

    departments: tuple[str, ...] = DEPARTMENTS
    medical_floor: float = 2500.0
    medical_rise: float = 0.2
    inpatient_rise: float = 2000.0
    medical_day: int = 5
    disaster_share: float = 0.5
    emergency_lag_days: int = 7
    seed: int = 7
    window_days: int = quality.WINDOW_DAYS

    def __post_init__(self) -> None:
        problems = []
        unknown = [d for d in self.departments if d not in DEPARTMENTS]
        if unknown or not self.departments:
            problems.append(f"departments must be some of {', '.join(DEPARTMENTS)}")
        if self.medical_floor < 0 or self.medical_rise < 0 or self.inpatient_rise < 0:
            problems.append("medical_floor, medical_rise and inpatient_rise must be at least 0")
        if not 1 <= self.medical_day <= 28:
            problems.append("medical_day must be 1 to 28")
        if not 0 < self.disaster_share <= 1:
            problems.append("disaster_share must be above 0 and at most 1")
        if not 0 <= self.emergency_lag_days <= 30:
            problems.append("emergency_lag_days must be 0 to 30")
        if problems:
            raise ValueError("; ".join(problems))


class ClockedCases(CaseStore):
    """A case store whose actions without ``at=`` happen at ``now`` (the simulation's clock)."""

    now: str | None = None

    def act(self, *args: Any, at: str | None = None, **kwargs: Any):  # type: ignore[override]
        return super().act(*args, at=at or self.now, **kwargs)


def _first_of(year: int, month_index: int) -> date:
    """The first day of month ``month_index`` (0: June of ``year``)."""
    m = year * 12 + 5 + month_index
    return date(m // 12, m % 12 + 1, 1)


class DepartmentPushes:
    """The departments' pushes of one ordering's year (a ``riskml.cases.year.LoopHook``)."""

    def __init__(self, loop: YearLoop, settings: AlertSettings, triggers: TriggerSet):
        w = loop.w
        if w.model is None or w.ruleset is None or w.info is None:
            raise ValueError("department alerts need the world's model (build it with build_world)")
        self.loop, self.s, self.triggers = loop, settings, triggers
        self.cases = ClockedCases(loop.ledger, loop.proc)
        self.count: Counter[str] = Counter()
        self.stored = -2  # the last push stored in the ledger (-1: the June t - 1 records)
        self.last_pushed = np.full(w.n, np.nan)  # the medical cost last pushed per household
        med = [m["medical_expense"].to_numpy(np.float64, na_value=np.nan) for m in w.months]
        self.inpatient = np.nan_to_num(med[12] - med[0], nan=0.0) >= settings.inpatient_rise
        self.days: dict[date, list[tuple[str, int]]] = {}
        if "medical" in settings.departments:
            for k in range(12):
                day = workday_add(
                    _first_of(w.year, k + 1) + timedelta(days=settings.medical_day - 1), 0
                )
                self.days.setdefault(day, []).append(("medical", k))
        self.disasters: dict[str, date] = {}
        if "emergency" in settings.departments:
            self.plan_disasters()

    # ------------------------------------------------------------------ the world's pushes
    def plan_disasters(self) -> None:
        w, s = self.loop.w, self.s
        loss = w.months[12]["disaster_loss"].to_numpy(np.float64, na_value=0.0) > 0
        share = pd.Series(loss).groupby(w.county).mean()
        rng = np.random.default_rng([s.seed, w.year, 16])
        for c in sorted(share.index[share >= s.disaster_share]):
            first = _first_of(w.year, int(rng.integers(2, 12)))  # August .. May
            event = first + timedelta(days=int(rng.integers(0, 20)))
            self.disasters[c] = event
            day = workday_add(event + timedelta(days=s.emergency_lag_days), 0)
            self.days.setdefault(day, []).append(("emergency", len(self.disasters) - 1))
        self.disaster_list = list(self.disasters.items())

    def medical(self, k: int) -> list[dict[str, Any]]:
        w, s = self.loop.w, self.s
        cost = w.months[k]["medical_expense"].to_numpy(np.float64, na_value=np.nan)
        last = self.last_pushed
        send = (np.nan_to_num(cost, nan=-1.0) >= s.medical_floor) & (
            np.isnan(last) | (np.nan_to_num(cost, nan=-1.0) >= last * (1 + s.medical_rise))
        )
        out = []
        for h in np.flatnonzero(send).tolist():
            a = {"alert_id": f"sim-medical-{w.periods[k]}-{h:06d}",
                 "household_id": str(w.households[h]), "county_code": str(w.county[h]),
                 "period": w.periods[k], "out_of_pocket": float(cost[h]),
                 "care": "inpatient" if self.inpatient[h] else "outpatient"}  # fmt: skip
            if not self.inpatient[h]:
                a["month_out_of_pocket"] = float(round(cost[h] / 12))
            out.append(a)
            last[h] = cost[h]
        return out

    def emergency(self, i: int) -> list[dict[str, Any]]:
        w = self.loop.w
        county, event = self.disaster_list[i]
        loss = w.months[12]["disaster_loss"].to_numpy(np.float64, na_value=0.0)
        safe0 = w.months[0]["housing_safe"].fillna(False).to_numpy(dtype=bool)
        safe1 = w.months[12]["housing_safe"].fillna(True).to_numpy(dtype=bool)
        return [
            {
                "alert_id": f"sim-emergency-{event.isoformat()}-{h:06d}",
                "household_id": str(w.households[h]),
                "county_code": county,
                "event_date": event.isoformat(),
                "loss": float(loss[h]),
                "house_damaged": bool(safe0[h] and not safe1[h]),
            }  # fmt: skip
            for h in np.flatnonzero((w.county == county) & (loss > 0)).tolist()
        ]

    # ------------------------------------------------------------------ the ledger
    def decide(self, records: list[dict[str, Any]]):
        w = self.loop.w
        refusal = online.record_refusals(records, w.model)
        if refusal is not None:
            return refusal[1], [], []
        return (None, *online.decide_records(records, self.loop.ledger, w.model, w.ruleset, w.info))

    def store_records(self, frame: pd.DataFrame, label: str) -> None:
        """Records decided through the service's path and stored, as a batch run stores them.

        A record the service would refuse (the monthly interpolation can put months employed
        above 12 × a household size that changes only at the new year) is not stored: that
        household's alerts merge onto its latest stored record.
        """
        rows = np.flatnonzero(frame["county_code"].notna().to_numpy())
        records = records_as_dicts(frame, rows)
        bad = {p.row for p in schema.record_problems(records)}
        records = [r for i, r in enumerate(records) if i not in bad]
        self.count["records_refused"] += len(bad)
        if online.record_refusals(records, self.loop.w.model) is not None:
            raise ValueError(f"the simulated records of {label} have no reference line in force")
        _, entries = online.decide_records(records, self.loop.ledger, self.loop.w.model,
                                           self.loop.w.ruleset, self.loop.w.info)  # fmt: skip
        self.loop.ledger.record(entries, caller="simulation:push", request_id=f"push-{label}")
        self.count["stored_decisions"] += len(entries)

    def push(self, department: str, alerts: list[dict[str, Any]], d: date) -> None:
        self.cases.now = iso(datetime(d.year, d.month, d.day, 7))
        for i in range(0, len(alerts), MAX_ALERTS):
            taken = take(alerts[i : i + MAX_ALERTS], ledger=self.loop.ledger, decide=self.decide,
                         triggers=self.triggers, caller=f"simulation:{department}",
                         cases=self.cases, department=department)  # fmt: skip
            self.count[f"{department}_alerts"] += taken.stored
            self.count[f"{department}_unmatched"] += taken.unmatched
            for line in taken.rescored:
                if line["lead"]:
                    h = self.loop.position[line["household_id"]]
                    self.loop.adopt(h, self.cases.current(line["household_id"]))
                    self.count["leads"] += 1

    # ------------------------------------------------------------------ the hook
    def on_day(self, d: date) -> None:
        w = self.loop.w
        if self.stored < -1:
            if w.last_year is not None:
                self.store_records(w.last_year, w.last_year["period"].dropna().iloc[0])
            self.stored = -1
        while self.stored < 11 and _first_of(w.year, self.stored + 2) <= d:
            self.stored += 1
            self.store_records(w.months[self.stored], w.periods[self.stored])
        for department, i in self.days.pop(d, []):
            alerts = self.medical(i) if department == "medical" else self.emergency(i)
            if alerts:
                self.push(department, alerts, d)
                self.count[f"{department}_pushes"] += 1

    def report(self) -> dict[str, Any]:
        q = quality.load(self.loop.ledger, self.triggers, cases=self.cases,
                         window_days=self.s.window_days)  # fmt: skip
        return {"department_alerts": dict(sorted(self.count.items())),
                "disaster_counties": len(self.disasters), "alert_quality": q.as_dict()}  # fmt: skip


def run_year_with_alerts(
    settings: YearSettings | None = None,
    alerts: AlertSettings | None = None,
    *,
    triggers: TriggerSet | None = None,
    say: Callable[[str], None] | None = None,
    **run_args: Any,
) -> dict[str, Any]:
    """``riskml.cases.year.run_year`` with the departments pushing (``alerts``)."""
    a = alerts or AlertSettings()
    t = triggers or TriggerSet.load()

    def hook(loop: YearLoop) -> DepartmentPushes:
        return DepartmentPushes(loop, a, t)

    report = run_year(settings, say=say, hook=hook, **run_args)
    report["settings"]["alerts"] = {**asdict(a), "departments": list(a.departments),
                                    "triggers_version": t.version}  # fmt: skip
    return report
