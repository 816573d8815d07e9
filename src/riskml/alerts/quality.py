"""Alert quality: how often each department's alerts were confirmed, which source found a case first,
and what another threshold would have changed on past alerts.

The figures are pure functions of the stored alerts (``alerts`` table rows: department,
alert_id, household_id, county_code, period, fields, matched, decision_id, triggers,
received_at) and of the case loop's events (``CaseStore.iter_events`` rows: household_id,
seq, case_id, created_at, action, payload); ``load`` reads both from a ledger.

**Leads and alerts.** Intake (``riskml.alerts.intake``) makes at most one lead per household
and month (source ``department_alert``, reference: the id of the first alert of that
household and month), so every alert of that household and month shares the lead. A lead is
*new* when it opened its case or joined it before the case's home visit (a lead that joins a
case already visited or monitored is counted apart, ``on_visited_case``); a new lead is
*visited* when its case got a home visit, and *confirmed* when the county confirmed the case.
*Share confirmed* is confirmed / visited, with a 95% Wilson interval.

**By department and threshold** (``by_trigger``): one row per department, trigger and the
threshold in force for the alert (provincial overrides give a trigger several), an alert
counted under every trigger it fired; ``(none fired)`` holds the alerts that fired none
(their lead, if any, came from the re-scored record being flagged); ``(all)`` counts each of
the department's alerts once.

**By source** (``by_source``, every source value present, e.g. warning, self_report,
cadre_visit, department_alert, social_report): its leads as above; *found first*: confirmed
cases whose first lead had that source, their share of all confirmed cases, and the median
days from that first lead to the confirmation. (A source whose lead is recorded only when the
caseworker takes it, like the simulated year's warnings, starts its clock later.)

**Threshold what-if** (``what_if``): for each trigger whose condition is a number compared
with a threshold, each matched alert of its department is judged again (``Trigger.holds``:
the same conditions, the record before the alert as intake saw it) at ``factor ×`` the
threshold in force (a zero threshold: at the quartiles of the alerts' values instead). Per
threshold: the alerts that fire, how many of their households were confirmed *by any source*
(a confirmed case of the household monitored at some time from the alert's month to
``window_days`` after it), the alerts added and removed against the threshold in force, and
the confirmed cases that would have been missed: cases found first by the lead of a
household and month where this trigger fired, no trigger fires there at the new threshold
(the others as they fired) and the re-scored record was not flagged.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from riskml.alerts.triggers import Trigger, TriggerSet
from riskml.cases.machine import parse_time
from riskml.cases.store import CaseStore
from riskml.store.entries import describe
from riskml.store.ledger import Ledger, LedgerError
from riskml.store.tables import alerts as alerts_table
from riskml.store.tables import decisions as decisions_table

__all__ = [
    "FACTORS",
    "NONE_FIRED",
    "SOURCE_ORDER",
    "AlertQuality",
    "case_outcomes",
    "compute",
    "load",
    "wilson",
]

FACTORS = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0)
WINDOW_DAYS = 120
NONE_FIRED = "(none fired)"
ALL = "(all)"
SOURCE_ORDER = ("warning", "self_report", "cadre_visit", "department_alert", "social_report")
Z95 = 1.959963984540054
SHARE = ("share", "ci_low", "ci_high")
BY_TRIGGER = ("department", "trigger", "threshold", "alerts", "matched", "leads",
              "on_visited_case", "visited", "dropped", "confirmed", *SHARE)  # fmt: skip
BY_SOURCE = ("source", "leads", "on_visited_case", "visited", "confirmed", *SHARE,
             "cases_found_first", "share_found_first", "cases_involved",
             "median_days_to_confirmation")  # fmt: skip
WHAT_IF = ("trigger", "department", "field", "op", "factor", "threshold", "alerts_judged",
           "stored_fired", "fire", "added", "removed", "confirmed_any_source", *SHARE,
           "confirmed_cases_missed")  # fmt: skip


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of k successes in n (NaN, NaN for n = 0)."""
    if n <= 0:
        return math.nan, math.nan
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (0.0 if k == 0 else max(0.0, centre - half)), (
        1.0 if k == n else min(1.0, centre + half)
    )


def _share(k: int, n: int) -> dict[str, float]:
    lo, hi = wilson(k, n)
    return {"share": k / n if n else math.nan, "ci_low": lo, "ci_high": hi}


# --------------------------------------------------------------------------- the case loop
@dataclass
class CaseOutcome:
    """One case as the figures need it."""

    case_id: str
    household_id: str
    leads: list[tuple[int, str, str, Any]] = field(default_factory=list)  # (seq, at, source, ref)
    visited_seq: int | None = None  # the first home visit
    dropped: bool = False
    confirmed_at: str | None = None
    rejected: bool = False
    left_at: str | None = None  # eliminated (no longer monitored)


@dataclass(frozen=True)
class LeadOutcome:
    """One lead event and what became of its case."""

    household_id: str
    case_id: str
    source: str
    reference: str | None
    at: str
    new: bool  # opened the case or joined it before its home visit
    visited: bool
    confirmed: bool
    dropped: bool


def case_outcomes(
    events: Iterable[dict[str, Any]],
) -> tuple[dict[str, CaseOutcome], list[LeadOutcome]]:
    """Cases and lead events from case events (any order; each with household_id, seq, case_id,
    created_at, action, payload)."""
    cases: dict[str, CaseOutcome] = {}
    for e in sorted(events, key=lambda e: (e["household_id"], e["seq"])):
        c = cases.get(e["case_id"])
        if c is None:
            c = cases[e["case_id"]] = CaseOutcome(e["case_id"], e["household_id"])
        p, action = e.get("payload") or {}, e["action"]
        if action == "lead":
            c.leads.append((e["seq"], e["created_at"], str(p.get("source")), p.get("reference")))
        elif action == "visit" and c.visited_seq is None:
            c.visited_seq = e["seq"]
            c.dropped = p.get("outcome") == "drop"
        elif action == "decide":
            if p.get("decision") == "confirm":
                c.confirmed_at = e["created_at"]
            else:
                c.rejected = True
        elif action == "township_review" and p.get("decision") != "approve":
            c.rejected = True
        elif action == "elimination_decide" and p.get("decision") == "approve":
            c.left_at = e["created_at"]
    leads = []
    for c in cases.values():
        for seq, at, source, ref in c.leads:
            new = c.visited_seq is None or seq < c.visited_seq
            visited = new and c.visited_seq is not None
            leads.append(LeadOutcome(c.household_id, c.case_id, source, ref, at, new, visited,
                                     visited and c.confirmed_at is not None,
                                     visited and c.dropped))  # fmt: skip
    return cases, leads


def _days(a: str, b: str) -> float:
    return (parse_time(b) - parse_time(a)).total_seconds() / 86400


def _month_start(period: str) -> date:
    return date(int(period[:4]), int(period[5:7]), 1)


def _month_end(period: str) -> date:
    d = _month_start(period)
    return date(d.year + d.month // 12, d.month % 12 + 1, 1) - timedelta(days=1)


# --------------------------------------------------------------------------- the figures
@dataclass
class AlertQuality:
    """The three tables, and counts: alerts, matched, leads, cases confirmed."""

    by_trigger: pd.DataFrame
    by_source: pd.DataFrame
    what_if: pd.DataFrame
    counts: dict[str, Any]
    window_days: int = WINDOW_DAYS

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AlertQuality:
        """Back from ``as_dict`` (e.g. a simulated year's JSON report)."""
        cols = {"by_trigger": BY_TRIGGER, "by_source": BY_SOURCE, "what_if": WHAT_IF}
        frames = {k: pd.DataFrame(d.get(k) or [], columns=list(c)) for k, c in cols.items()}
        floats = (*SHARE, "threshold", "factor", "share_found_first", "median_days_to_confirmation")
        for df in frames.values():
            for c in floats:
                if c in df:
                    df[c] = pd.to_numeric(df[c], errors="coerce").astype(float)
        return cls(counts=dict(d["counts"]), window_days=int(d["window_days"]), **frames)

    def as_dict(self) -> dict[str, Any]:
        def rows(df: pd.DataFrame) -> list[dict[str, Any]]:
            out = df.astype(object).where(df.notna(), None).to_dict("records")
            return [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()}
                    for r in out]  # fmt: skip

        return {"counts": self.counts, "window_days": self.window_days,
                "by_trigger": rows(self.by_trigger), "by_source": rows(self.by_source),
                "what_if": rows(self.what_if)}  # fmt: skip


def _group_leads(
    alerts: Sequence[dict], leads: list[LeadOutcome]
) -> dict[tuple[str, str], LeadOutcome]:
    """The lead of each (household, month) of alerts: the department_alert lead naming one of them."""
    period_of = {(a["household_id"], a["alert_id"]): a["period"] for a in alerts}
    out: dict[tuple[str, str], LeadOutcome] = {}
    for lead in sorted(leads, key=lambda x: x.at):
        if lead.source != "department_alert" or lead.reference is None:
            continue
        p = period_of.get((lead.household_id, lead.reference))
        if p is not None:
            out.setdefault((lead.household_id, p), lead)
    return out


def _threshold_of(triggers: TriggerSet | None, a: dict, trigger_id: str) -> float | None:
    if triggers is None:
        return None
    for t in triggers.active(a["department"], a["county_code"], a["period"]):
        if t.id == trigger_id:
            return t.condition.threshold
    return None


def _by_trigger(alerts: Sequence[dict], lead_of: dict, triggers: TriggerSet | None) -> pd.DataFrame:
    groups: dict[tuple[str, str, Any], list[dict]] = defaultdict(list)
    for a in alerts:
        fired = a.get("triggers") or []
        for t in fired or [NONE_FIRED]:
            th = _threshold_of(triggers, a, t) if t != NONE_FIRED else None
            groups[(a["department"], t, th)].append(a)
        groups[(a["department"], ALL, None)].append(a)
    rows = []
    for (dept, trig, th), members in groups.items():
        # one lead per household and month, however many of its alerts are here
        leads = {lead_of[k] for a in members if (k := (a["household_id"], a["period"])) in lead_of}
        new = [x for x in leads if x.new]
        visited = sum(x.visited for x in new)
        confirmed = sum(x.confirmed for x in new)
        rows.append({
            "department": dept, "trigger": trig, "threshold": th, "alerts": len(members),
            "matched": sum(bool(a["matched"]) for a in members),
            "leads": len(leads),
            "on_visited_case": len(leads) - len(new), "visited": visited,
            "dropped": sum(x.dropped for x in new), "confirmed": confirmed,
            **_share(confirmed, visited),
        })  # fmt: skip
    df = pd.DataFrame(rows, columns=list(BY_TRIGGER))
    df["threshold"] = pd.to_numeric(df["threshold"]).astype(float)
    rank = df["trigger"].map({ALL: 2, NONE_FIRED: 1}).fillna(0)
    return (df.assign(_r=rank).sort_values(["department", "_r", "trigger", "threshold"])
            .drop(columns="_r").reset_index(drop=True))  # fmt: skip


def _source_key(s: str) -> tuple[int, str]:
    return (SOURCE_ORDER.index(s), s) if s in SOURCE_ORDER else (len(SOURCE_ORDER), s)


def _by_source(cases: dict[str, CaseOutcome], leads: list[LeadOutcome]) -> pd.DataFrame:
    confirmed = [c for c in cases.values() if c.confirmed_at is not None and c.leads]
    first: dict[str, list[float]] = defaultdict(list)
    involved: dict[str, int] = defaultdict(int)
    for c in confirmed:
        seq, at, source, _ = min(c.leads)
        first[source].append(_days(at, c.confirmed_at))
        for s in {x[2] for x in c.leads if x[1] <= c.confirmed_at}:
            involved[s] += 1
    rows = []
    for s in sorted({x.source for x in leads} | set(first), key=_source_key):
        mine = [x for x in leads if x.source == s]
        new = [x for x in mine if x.new]
        visited, conf = sum(x.visited for x in new), sum(x.confirmed for x in new)
        days = first.get(s, [])
        rows.append({
            "source": s, "leads": len(mine), "on_visited_case": len(mine) - len(new),
            "visited": visited, "confirmed": conf, **_share(conf, visited),
            "cases_found_first": len(days),
            "share_found_first": len(days) / len(confirmed) if confirmed else math.nan,
            "cases_involved": involved.get(s, 0),
            "median_days_to_confirmation": float(np.median(days)) if days else math.nan,
        })  # fmt: skip
    return pd.DataFrame(rows, columns=list(BY_SOURCE))


def _confirmed_windows(cases: dict[str, CaseOutcome]) -> dict[str, list[tuple[date, date | None]]]:
    out: dict[str, list[tuple[date, date | None]]] = defaultdict(list)
    for c in cases.values():
        if c.confirmed_at is not None:
            left = parse_time(c.left_at).date() if c.left_at else None
            out[c.household_id].append((parse_time(c.confirmed_at).date(), left))
    return out


def _numeric(t: Trigger) -> bool:
    return t.condition.threshold is not None and not t.condition.on_record


def _grid(
    t: Trigger, values: list[float], factors: Sequence[float]
) -> list[tuple[float | None, float]]:
    """(factor, national threshold) pairs: factors of the threshold (a provincial override is
    scaled by the same factor), or for a zero threshold the quartiles of the values (factor None)."""
    th = float(t.condition.threshold)  # type: ignore[arg-type]
    if th != 0:
        return [(f, th * f) for f in sorted(set(factors) | {1.0})]
    pos = [v for v in values if v > 0]
    qs = np.quantile(pos, [0.25, 0.5, 0.75]) if pos else []
    return [(1.0, 0.0)] + [(None, q) for q in sorted({float(f"{q:.2g}") for q in qs} - {0.0})]


def _what_if(
    alerts: Sequence[dict],
    triggers: TriggerSet,
    cases: dict[str, CaseOutcome],
    lead_of: dict,
    records_before: Mapping[tuple[str, str], dict | None],
    flagged: set[str],
    factors: Sequence[float],
    window_days: int,
) -> pd.DataFrame:
    windows = _confirmed_windows(cases)
    found_first = {c.case_id for c in cases.values() if c.confirmed_at and c.leads
                   and min(c.leads)[2] == "department_alert"}  # fmt: skip
    matched = [a for a in alerts if a["matched"]]
    fired_in_group: dict[tuple[str, str], set[str]] = defaultdict(set)
    flagged_group: set[tuple[str, str]] = set()
    for a in matched:
        key = (a["household_id"], a["period"])
        fired_in_group[key].update(a.get("triggers") or [])
        if a.get("decision_id") in flagged:
            flagged_group.add(key)

    def confirmed_any(a: dict) -> bool:
        lo, hi = _month_start(a["period"]), _month_end(a["period"]) + timedelta(days=window_days)
        return any(c <= hi and (left is None or left >= lo)
                   for c, left in windows.get(a["household_id"], ()))  # fmt: skip

    rows = []
    for base in triggers.triggers:
        if not _numeric(base):
            continue
        mine = []  # (alert, the trigger as in force for it, the record intake judged it on)
        for a in matched:
            if a["department"] != base.department:
                continue
            active = [t for t in triggers.active(a["department"], a["county_code"], a["period"])
                      if t.id == base.id]  # fmt: skip
            if active:
                mine.append((a, active[0], records_before.get((a["household_id"], a["period"]))))
        if not mine:
            continue
        values = [float(v) for a, _, _ in mine
                  if isinstance(v := a["fields"].get(base.condition.field), int | float)]  # fmt: skip
        now_fires = [t.holds(a["fields"], r) for a, t, r in mine]
        confirmed = [confirmed_any(a) for a, _, _ in mine]
        stored = sum(base.id in (a.get("triggers") or []) for a, _, _ in mine)
        national = float(base.condition.threshold)  # type: ignore[arg-type]
        for factor, th in _grid(base, values, factors):
            fires = added = removed = conf = 0
            had: set[tuple[str, str]] = set()
            still: set[tuple[str, str]] = set()
            for (a, t, r), before, ok in zip(mine, now_fires, confirmed, strict=True):
                th_a = (
                    th if factor is None or national == 0 else float(t.condition.threshold) * factor
                )  # type: ignore[arg-type]
                f = replace(t, condition=replace(t.condition, threshold=th_a)).holds(a["fields"], r)
                fires, conf = fires + f, conf + (f and ok)
                added, removed = added + (f and not before), removed + (before and not f)
                key = (a["household_id"], a["period"])
                if before:
                    had.add(key)
                if f:
                    still.add(key)
            missed = set()
            for key in had - still:
                lead = lead_of.get(key)
                others = fired_in_group[key] - {base.id}
                if (lead is not None and lead.case_id in found_first and not others
                        and key not in flagged_group):  # fmt: skip
                    missed.add(lead.case_id)
            rows.append({
                "trigger": base.id, "department": base.department, "field": base.condition.field,
                "op": base.condition.op, "factor": factor, "threshold": th,
                "alerts_judged": len(mine), "stored_fired": stored, "fire": fires,
                "added": added, "removed": removed, "confirmed_any_source": conf,
                **_share(conf, fires), "confirmed_cases_missed": len(missed),
            })  # fmt: skip
    return pd.DataFrame(rows, columns=list(WHAT_IF))


def compute(
    alerts: Sequence[dict[str, Any]],
    events: Iterable[dict[str, Any]],
    triggers: TriggerSet | None = None,
    *,
    records_before: Mapping[tuple[str, str], dict | None] | None = None,
    flagged: Iterable[str] = (),
    factors: Sequence[float] = FACTORS,
    window_days: int = WINDOW_DAYS,
) -> AlertQuality:
    """The alert-quality tables (see the module's docstring); ``triggers`` None: no what-if.

    ``records_before[(household_id, period)]``: the record intake judged the alert on (for
    triggers with conditions on the record; a missing key is an unknown record);
    ``flagged``: decision ids of re-scored records that were flagged.
    """
    if window_days < 0:
        raise ValueError("window_days must be at least 0")
    if any(not f > 0 for f in factors):
        raise ValueError("threshold factors must be positive")
    alerts = list(alerts)
    cases, leads = case_outcomes(events)
    lead_of = _group_leads(alerts, leads)
    what_if = (
        _what_if(
            alerts,
            triggers,
            cases,
            lead_of,
            records_before or {},
            set(flagged),
            factors,
            window_days,
        )  # fmt: skip
        if triggers is not None
        else _what_if([], TriggerSet((), "", ""), cases, lead_of, {}, set(), factors, window_days)
    )
    counts = {
        "alerts": len(alerts), "matched": sum(bool(a["matched"]) for a in alerts),
        "household_months": len({(a["household_id"], a["period"]) for a in alerts}),
        "alert_leads": len(lead_of), "lead_events": len(leads), "cases": len(cases),
        "confirmed_cases": sum(c.confirmed_at is not None for c in cases.values()),
        "first_period": min((a["period"] for a in alerts), default=None),
        "last_period": max((a["period"] for a in alerts), default=None),
    }  # fmt: skip
    return AlertQuality(_by_trigger(alerts, lead_of, triggers), _by_source(cases, leads), what_if,
                        counts, window_days)  # fmt: skip


# --------------------------------------------------------------------------- from a ledger
def _decoded(row: Any) -> dict[str, Any]:
    m = dict(row._mapping)
    for k in ("fields", "triggers", "record"):
        if isinstance(m.get(k), str):
            m[k] = json.loads(m[k])
    return m


def _records_before(ledger: Ledger, alerts: list[dict], triggers: TriggerSet) -> dict:
    """The record each alert was judged on (latest decision at or before its month, stored
    before the alert was received), with only the fields the numeric triggers' conditions read."""
    numeric = [t for t in triggers.triggers if _numeric(t)]
    need = sorted({c.field for t in numeric for c in t.only_if if c.on_record})
    depts = {t.department for t in numeric if any(c.on_record for c in t.only_if)}
    wanted = [a for a in alerts if a["matched"] and a["department"] in depts]
    if not wanted or not need:
        return {}
    d = decisions_table.c
    history: dict[str, list[tuple[str, str, str, dict]]] = defaultdict(list)
    households = sorted({a["household_id"] for a in wanted})
    last = max(a["period"] for a in wanted)
    with ledger.engine.connect() as conn:
        for i in range(0, len(households), 500):
            stmt = select(d.household_id, d.period, d.created_at, d.decision_id, d.record).where(
                d.household_id.in_(households[i : i + 500]), d.period <= last
            )
            for r in conn.execute(stmt):
                m = _decoded(r)
                rec = m["record"] or {}
                history[m["household_id"]].append(
                    (m["period"], m["created_at"], m["decision_id"], {f: rec.get(f) for f in need})
                )
    out: dict[tuple[str, str], dict | None] = {}
    for h in history.values():
        h.sort()
    for a in wanted:
        earlier = [x for x in history.get(a["household_id"], ())
                   if x[0] <= a["period"] and x[1] < a["received_at"]]  # fmt: skip
        out[(a["household_id"], a["period"])] = earlier[-1][3] if earlier else None
    return out


def _flagged(ledger: Ledger, decision_ids: list[str]) -> set[str]:
    d = decisions_table.c
    out: set[str] = set()
    with ledger.engine.connect() as conn:
        for i in range(0, len(decision_ids), 500):
            stmt = select(d.decision_id).where(
                d.decision_id.in_(decision_ids[i : i + 500]), d.flagged.is_(True)
            )
            out.update(r[0] for r in conn.execute(stmt))
    return out


def load(
    ledger: Ledger,
    triggers: TriggerSet | None = None,
    *,
    cases: CaseStore | None = None,
    period_from: str | None = None,
    period_to: str | None = None,
    factors: Sequence[float] = FACTORS,
    window_days: int = WINDOW_DAYS,
) -> AlertQuality:
    """The figures of a ledger's alerts (months ``period_from``..``period_to``, inclusive) and cases."""
    a = alerts_table.c
    stmt = select(a.department, a.alert_id, a.received_at, a.household_id, a.county_code,
                  a.period, a.fields, a.matched, a.decision_id, a.triggers)  # fmt: skip
    if period_from:
        stmt = stmt.where(a.period >= period_from)
    if period_to:
        stmt = stmt.where(a.period <= period_to)
    try:
        with ledger.engine.connect() as conn:
            alerts = [_decoded(r) for r in conn.execute(stmt)]
        store = cases or CaseStore(ledger)
        events = [e for batch in store.iter_events() for e in batch]
        before = _records_before(ledger, alerts, triggers) if triggers is not None else {}
        flagged = _flagged(ledger, sorted({x["decision_id"] for x in alerts if x["decision_id"]}))
    except SQLAlchemyError as exc:
        raise LedgerError(f"ledger read failed: {describe(exc)}") from exc
    return compute(alerts, events, triggers, records_before=before, flagged=flagged,
                   factors=factors, window_days=window_days)  # fmt: skip
