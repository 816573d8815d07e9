"""Capacity-aware worklists: what is due first, then new leads by expected benefit, cut at capacity.

A caseworker can make ``weekly_visits`` home visits a week (configuration). The list puts
first the visits due by deadline (a lead or an assigned case whose deadline falls within the
window, a follow-up due this week), overdue first; then the new leads: riskml's warnings
(flagged households without an open case) and leads not yet due, ordered by expected benefit, the calibrated risk that the
household falls below the line next year (the rule level shown beside it). It is cut at the
week's capacity: ``fits`` is what fits this week, ``beyond`` counts the rest. Steps that are
not visits (assign, review, decide, plan, notice) are listed by deadline under ``steps``
for the role that takes them. Per village, ``expected`` is the expected number of households
that will fall below the line next year (the sum of their calibrated risks) with a 90% interval.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from riskml.cases.machine import IDENTIFYING, OPEN, STATUSES, Step, iso, next_step, parse_time
from riskml.cases.procedure import Procedure
from riskml.model.expected import ExpectedCount, expected_count

VISIT_STEPS = ("visit", "follow_up")
STEP_ROLES = {
    "caseworker": ("visit", "follow_up", "notice", "plan"),
    "township": ("assign", "township_review", "elimination_review"),
    "county": ("cross_check", "decide", "elimination_decide"),
}
LEVEL_ORDER = {"red": 0, "orange": 1, "yellow": 2, "green": 3}
# the statuses a worklist reads (a rejected or dropped case has no next step: nothing to list)
LISTED_STATUSES = tuple(s for s in STATUSES if s not in ("rejected", "dropped"))


@dataclass
class Item:
    """One line of a worklist: a case's step, or a warning not yet a case."""

    kind: str  # "due" (a visit due by deadline), "lead" (a new lead or warning), "step"
    household_id: str
    village_code: str
    case_id: str | None
    status: str | None
    step: str
    due_at: str | None
    clock: str | None
    score: float | None
    risk_level: str | None
    flagged_by: str | None
    decision_id: str | None

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Worklist:
    role: str
    now: str
    capacity: int  # visits that fit in the window
    fits: list[Item]
    beyond: int  # visits (due or new) that do not fit
    beyond_items: list[Item]
    steps: list[Item]  # the role's other steps, by deadline
    counts: dict[str, int]  # overdue, due_soon (all open cases in scope), open, warnings
    expected: dict[str, ExpectedCount] = field(default_factory=dict)  # per village
    beyond_by_village: dict[str, int] = field(default_factory=dict)

    def as_dict(self, limit_beyond: int = 0) -> dict[str, Any]:
        return {
            "role": self.role, "now": self.now, "capacity": self.capacity,
            "fits": [i.as_dict() for i in self.fits], "beyond": self.beyond,
            "beyond_items": [i.as_dict() for i in self.beyond_items[:limit_beyond]],
            "beyond_by_village": self.beyond_by_village,
            "steps": [i.as_dict() for i in self.steps], "counts": self.counts,
            "expected": {v: e.__dict__ for v, e in self.expected.items()},
        }  # fmt: skip


def _lead_key(item: Item) -> tuple:
    return (
        item.score is None,
        -(item.score or 0.0),
        LEVEL_ORDER.get(item.risk_level or "", 9),
        item.household_id,
    )


def build(
    role: str,
    cases: list[dict[str, Any]],
    decisions: list[dict[str, Any]],
    procedure: Procedure,
    now: str,
    *,
    caseworkers: int = 1,
    weeks: int = 1,
    assignee: str | None = None,
) -> Worklist:
    """The worklist of a role over the cases and latest decisions in its scope.

    ``cases``: the current case of each household (``CaseStore.current_cases``, a summary
    is enough); ``decisions``: the latest decision of each household
    (``riskml.store.latest.latest_scores``: rows with household_id, village_code, score,
    risk_level, flagged, flagged_by, decision_id). ``caseworkers`` share the visits (per village for a township: each
    village's grid worker); ``assignee``: a caseworker sees the cases assigned to it or to
    nobody. ``weeks``: the window the capacity covers.
    """
    by_household = {d["household_id"]: d for d in decisions}
    horizon = iso(parse_time(now) + timedelta(days=7 * weeks))
    soon = iso(parse_time(now) + timedelta(days=procedure.due_soon_days))  # as machine.clock
    visits: list[Item] = []
    leads: list[Item] = []
    steps: list[Item] = []
    counts = {"open": 0, "overdue": 0, "due_soon": 0, "warnings": 0, "monitored": 0}
    with_case = set()
    for c in cases:
        if c["status"] in OPEN:
            with_case.add(c["household_id"])
        step: Step | None = next_step(c, procedure)
        if step is None:  # rejected or dropped (an eliminated case still has follow-ups)
            continue
        state = "overdue" if now > step.due_at else "due_soon" if step.due_at <= soon else "on_time"
        if c["status"] in OPEN:
            counts["open"] += 1
            counts["monitored"] += c["status"] not in IDENTIFYING
        if state in ("overdue", "due_soon"):
            counts[state] += 1
        if assignee is not None and c.get("assignee") not in (None, assignee):
            continue
        d = by_household.get(c["household_id"], {})
        item = Item(
            "due", c["household_id"], c["village_code"], c["case_id"], c["status"], step.step,
            step.due_at, state, d.get("score"), d.get("risk_level"), d.get("flagged_by"),
            d.get("decision_id"),
        )  # fmt: skip
        if c["status"] == "lead":  # not yet visited: a new lead, by expected benefit...
            item.step = "visit"
            if step.due_at <= horizon:  # ...unless its deadline falls in the window: due
                visits.append(item)
            else:
                item.kind = "lead"
                leads.append(item)
            if role in ("township", "county", "admin") and step.step == "assign":
                steps.append(Item(**{**item.__dict__, "kind": "step", "step": "assign"}))
        elif step.step in VISIT_STEPS:
            if step.due_at <= horizon:
                visits.append(item)
        elif role == "admin" or step.step in STEP_ROLES.get(role, ()):
            item.kind = "step"
            steps.append(item)
    for d in decisions:
        if d.get("flagged") and d["household_id"] not in with_case:
            counts["warnings"] += 1
            leads.append(
                Item(
                    "lead",
                    d["household_id"],
                    d["village_code"],
                    None,
                    None,
                    "lead",
                    None,
                    None,
                    d.get("score"),
                    d.get("risk_level"),
                    d.get("flagged_by"),
                    d.get("decision_id"),
                )  # fmt: skip
            )
    visits.sort(key=lambda i: (i.due_at or "", i.household_id))
    leads.sort(key=_lead_key)
    steps.sort(key=lambda i: (i.due_at or "", i.household_id))
    ordered = visits + leads
    per_worker = procedure.weekly_visits * weeks
    if role == "caseworker":
        capacity = per_worker * max(caseworkers, 1)
        fits, rest = ordered[:capacity], ordered[capacity:]
        beyond_by_village: dict[str, int] = {}
        for i in rest:
            beyond_by_village[i.village_code] = beyond_by_village.get(i.village_code, 0) + 1
    else:  # each village's grid worker works its own list: what is beyond each one's capacity
        by_village: dict[str, list[Item]] = defaultdict(list)
        for i in ordered:
            by_village[i.village_code].append(i)
        fits, rest, beyond_by_village = [], [], {}
        for v, items in sorted(by_village.items()):
            fits += items[:per_worker]
            rest += items[per_worker:]
            if len(items) > per_worker:
                beyond_by_village[v] = len(items) - per_worker
        capacity = per_worker * len(by_village)
        fits.sort(key=lambda i: (i.kind != "due", i.due_at or "", *_lead_key(i)))
        rest.sort(key=lambda i: (i.kind != "due", i.due_at or "", *_lead_key(i)))
    scores: dict[str, list[float]] = defaultdict(list)
    for d in decisions:
        if d.get("score") is not None:
            scores[d["village_code"]].append(float(d["score"]))
    expected = {v: expected_count(p) for v, p in sorted(scores.items())}
    return Worklist(
        role, now, capacity, fits, len(rest), rest, steps, counts, expected, beyond_by_village
    )
