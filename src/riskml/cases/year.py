"""A year of the case loop, simulated: caseworkers with a fixed capacity, riskml order vs rules only.

The world (``riskml.cases.year_world``): households of the sample world, a model trained on the
years before, twelve monthly pushes scored by the real decision path. Then, for each ordering
on the same households, pushes, capacity and clock, caseworkers work their lists for a year
(1 July ``year`` to 30 June ``year + 1``) and every step goes through the real state machine:
``riskml.cases.store.CaseStore`` on a temporary SQLite ledger, with ``Actor`` objects of the
caseworker, township and county roles and simulated ``at=`` timestamps.

**Caseworkers.** Villages (in code order) are grouped into beats of about
``households_per_caseworker`` households, one caseworker each (``None``: one per village). The
simulated households are a sample of the real ones (about 9 per village here against some 300
in a real village), so the default of 300 simulated households per caseworker keeps a real
caseworker's load: ``capacity`` home visits a week (``Procedure.weekly_visits``, 20) for about 300
households. Every Monday each caseworker fills the week: first the follow-ups of monitored (and
eliminated) cases due by Sunday, earliest first, then new leads from the latest push, cut at the
capacity and spread over Monday to Friday (no holidays). A new lead is a household flagged in
the latest push with no open case, not eliminated, and not dropped or rejected in the last
``relead_after_days``. The orderings:

- ``riskml``: flagged by the rules or the model, calibrated score descending;
- ``rules_only``: flagged by the hard rules, a red rule first, then the household id.

**A visit.** A lead is recorded when the caseworker takes it (``lead``, source ``warning``) and
visited at once (signed consent). It *finds risk* (outcome ``propose``, later confirmed) when at
the visit, in that month's record, per-capita income is below the monitoring line, or medical
and schooling costs take it below the line, or the household's true next-year label (the June
``year`` record's ``at_risk_next``) is 1: the visit sees what records do not. Otherwise the case is
dropped. A proposal goes ``cross_check`` (county) -> ``notice`` (caseworker) ->
``township_review`` (township, after ``notice_min`` days) -> ``decide`` (county: confirm) ->
``plan`` (caseworker, ``riskml.cases.support.suggest``) -> ``deliver`` (every measure,
``delivery_lag_days`` after the plan's start) -> follow-ups. At a follow-up of a monitored case
the elimination criteria (``riskml.cases.elimination.criteria``, on the household's monthly
records up to the visit and ``default_lines()``) are evaluated; when all are met the caseworker
proposes elimination, the township reviews and the county decides (both approve). At a follow-up
after elimination, income below the line is a rollback (county). Township and county act
``office_lag_days`` working days after a step becomes possible, caseworkers' desk steps
``desk_lag_days`` after. Support does not change the simulated incomes (the world is the same
in both orderings): the figures measure reach, not the effect of support.

**Figures.** *Fell below the line*: above the line in June ``year``, below it in a later month's
record (``YearWorld.fell_month``). *Reached before it fell*: a home visit (first visit or
follow-up) before the first day of that month. *Overdue steps*: each step taken after its
deadline (``riskml.cases.machine.next_step``) plus each case whose next step is overdue on the
last day (``machine.clock``); flagged households never taken as leads are counted as the
backlog, not as overdue steps. Household ids appear in no figure.

**Other sources of leads.** ``hook`` (``run_year``; none by default, and then the figures
are those above) makes an object per ordering that is called every working day at 07:00
(``on_day(d)``), before the offices, and may store leads of its own through the loop's
store (department alerts: ``riskml.alerts.year``), each then handed to ``adopt``. Such a
lead waits for the caseworker's next week, before the warning leads, earliest first, and
is visited like them (the visit sees the same world). Its ``report()`` joins the
ordering's figures under ``"hook"``.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from riskml.cases import elimination, machine, support
from riskml.cases.machine import CLOSED, Actor, iso, next_step, parse_time
from riskml.cases.procedure import Procedure
from riskml.cases.procedure import load as load_procedure
from riskml.cases.store import CaseStore
from riskml.cases.year_world import YearWorld, build_world
from riskml.data.reference import ReferenceLines, default_lines
from riskml.store.ledger import Ledger

ORDERINGS = ("riskml", "rules_only")
OFFICE = {"visited": ("cross_check", "county"), "noticed": ("township_review", "township"),
          "township_approved": ("decide", "county"),
          "elimination_proposed": ("elimination_review", "township"),
          "elimination_township_approved": ("elimination_decide", "county")}  # fmt: skip


class LoopHook(Protocol):
    """Another source of leads in the year (see the module's docstring)."""

    def on_day(self, d: date) -> None: ...

    def report(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class YearSettings:
    """How the year is run (the world's size and seed, the caseworkers, the offices' pace)."""

    households: int = 5000
    seed: int = 7
    year: int = 2024
    capacity: int | None = None  # weekly visits per caseworker (None: Procedure.weekly_visits)
    households_per_caseworker: int | None = 300  # None: one caseworker per village
    office_lag_days: int = 1  # working days the township and county take to act
    desk_lag_days: int = 1  # working days a caseworker takes for the notice and the plan
    delivery_lag_days: int = 14  # calendar days from a plan's start to its delivery
    relead_after_days: int = 90  # a dropped or rejected household is a lead again after this
    previous: str = "push"  # the pushes' previous period: "push" (last month) or "year"

    def __post_init__(self) -> None:
        problems = [
            f"{k} must be at least {low}"
            for k, low in (("households", 1), ("office_lag_days", 0), ("desk_lag_days", 0),
                           ("delivery_lag_days", 0), ("relead_after_days", 0))
            if getattr(self, k) < low
        ]  # fmt: skip
        if self.capacity is not None and self.capacity < 1:
            problems.append("capacity must be at least 1 visit a week")
        if self.households_per_caseworker is not None and self.households_per_caseworker < 1:
            problems.append("households_per_caseworker must be at least 1 (None: one per village)")
        if self.previous not in ("push", "year"):
            problems.append("previous must be 'push' or 'year'")
        if problems:
            raise ValueError("; ".join(problems))


def _day(d: date, hour: int, minute: int = 0, second: int = 0) -> str:
    """The simulated time of an action: day ``d`` at ``hour`` plus minutes and seconds (UTC)."""
    return iso(datetime(d.year, d.month, d.day, hour) + timedelta(minutes=minute, seconds=second))


def workday_add(d: date, n: int) -> date:
    """``n`` working days (Monday-Friday) after ``d``; 0: ``d`` or the next working day."""
    while d.weekday() >= 5:
        d += timedelta(days=1)
    while n > 0:
        d += timedelta(days=1)
        if d.weekday() < 5:
            n -= 1
    return d


def beats(world: YearWorld, per_caseworker: int | None) -> list[np.ndarray]:
    """Households (world positions) of each caseworker: whole villages in code order."""
    out: list[list[int]] = []
    by_village: dict[str, list[int]] = defaultdict(list)
    for h, v in enumerate(world.village):
        by_village[v].append(h)
    current: list[int] = []
    for v in sorted(by_village):
        current += by_village[v]
        if per_caseworker is None or len(current) >= per_caseworker:
            out.append(current)
            current = []
    if current:
        if out and per_caseworker is not None and len(current) < per_caseworker / 2:
            out[-1] += current
        else:
            out.append(current)
    return [np.array(b, dtype=np.int64) for b in out]


class YearLoop:
    """One ordering's year on a world: the caseworkers' weeks and every step through the store."""

    def __init__(self, world: YearWorld, ordering: str, settings: YearSettings,
                 procedure: Procedure, lines: ReferenceLines, ledger_url: str,
                 hook: Callable[[YearLoop], LoopHook] | None = None):  # fmt: skip
        if ordering not in ORDERINGS:
            raise ValueError(f"ordering must be one of {', '.join(ORDERINGS)}")
        self.w, self.ordering, self.s = world, ordering, settings
        self.proc, self.lines = procedure, lines
        self.capacity = settings.capacity or procedure.weekly_visits
        self.ledger = Ledger(ledger_url)
        self.store = CaseStore(self.ledger, procedure)
        self.beats = beats(world, settings.households_per_caseworker)
        self.caseworkers = [
            Actor(f"cw{i:04d}", "caseworker", villages=frozenset(world.village[b]))
            for i, b in enumerate(self.beats)
        ]
        self.beat_of = np.zeros(world.n, dtype=np.int64)
        for i, b in enumerate(self.beats):
            self.beat_of[b] = i
        self.townships = {t: Actor(f"tw{t}", "township", townships=frozenset({t}))
                          for t in sorted({v[:9] for v in world.village})}  # fmt: skip
        self.counties = {c: Actor(f"co{c}", "county", counties=frozenset({c}))
                         for c in sorted(set(world.county))}  # fmt: skip
        self.start = date(world.year, 7, 1)
        self.end = date(world.year + 1, 6, 30)
        self.state: dict[int, dict[str, Any]] = {}
        self.first_visit: dict[int, date] = {}
        self.confirmed_on: dict[int, date] = {}
        self.agenda: dict[tuple[date, str], list[tuple[int, int]]] = defaultdict(list)
        self.visits_on: dict[date, list[tuple[int, str, int]]] = defaultdict(list)
        self.rollback_wanted: set[int] = set()
        self.count: Counter[str] = Counter()
        self.late: Counter[str] = Counter()
        self.slots = 0
        self.eliminated_labour: list[int] = []
        self.position = {str(h): i for i, h in enumerate(world.households)}
        self.hook = hook(self) if hook is not None else None

    # ------------------------------------------------------------------ helpers
    def month_of(self, d: date) -> int:
        """The month (0-12) of the year whose record a visit on ``d`` sees."""
        return min(max(d.year * 12 + d.month - 1 - (self.w.year * 12 + 5), 0), 12)

    def push_on(self, d: date) -> int:
        """The latest push sent on or before ``d`` (push k on the 1st of month k + 1 of the year)."""
        return min(max(d.year * 12 + d.month - 1 - (self.w.year * 12 + 6), 0), 11)

    def act(self, h: int, actor: Actor, action: str, payload: dict[str, Any], at: str,
            facts: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
        s = self.state.get(h)
        if s is not None and not (action == "lead" and s["status"] in CLOSED):
            step = next_step(s, self.proc)
            if step is not None and step.step == action and at > step.due_at:
                self.late[action] += 1
        where = None if s is not None else (self.w.county[h], self.w.village[h])
        acted = self.store.act(actor, str(self.w.households[h]), action, payload, at=at,
                               facts=facts, where=where)  # fmt: skip
        self.state[h] = acted.state
        self.count[action] += 1
        self.schedule(h)
        return acted.state

    def adopt(self, h: int, state: dict[str, Any]) -> None:
        """A case the hook changed through the store (a lead): follow it from its new state."""
        self.state[h] = state
        self.count["external_lead"] += 1
        self.schedule(h)

    def schedule(self, h: int) -> None:
        """Put the case's next office (08:00) or desk (17:00) step on the agenda."""
        s = self.state[h]
        status, ready = s["status"], s["updated_at"]
        if status in OFFICE or (status == "eliminated" and h in self.rollback_wanted):
            step = next_step(s, self.proc)
            if step is not None and step.not_before:
                ready = max(ready, step.not_before)
            kind, lag = "office", self.s.office_lag_days
            when = workday_add(parse_time(ready).date(), lag)
        elif status == "checked" or (status == "monitored" and not s["plan"]):
            kind, lag = "desk", self.s.desk_lag_days
            when = workday_add(parse_time(ready).date(), lag)
        elif status in machine.MONITORED and s["plan"] and not s["deliveries"]:
            start = date.fromisoformat(s["plan"][0]["start"])
            kind = "desk"
            when = workday_add(start + timedelta(days=self.s.delivery_lag_days), 0)
        else:
            return
        if _day(when, 8 if kind == "office" else 17) <= ready:
            when = workday_add(when, 1)
        if when <= self.end:
            self.agenda[(when, kind)].append((h, s["seq"]))

    # ------------------------------------------------------------------ the day
    def office(self, d: date) -> None:
        """The township's and the county's steps of the day (08:00)."""
        for h, seq in self.agenda.pop((d, "office"), []):
            s = self.state[h]
            if s["seq"] != seq:
                continue
            town, county = self.townships[self.w.village[h][:9]], self.counties[s["county_code"]]
            status, at = s["status"], _day(d, 8)
            if status == "visited":
                self.act(h, county, "cross_check", {"result": "consistent"}, at)
            elif status == "noticed":
                self.act(h, town, "township_review", {"decision": "approve"}, at)
            elif status == "township_approved":
                self.decide(h, county, d)
            elif status == "elimination_proposed":
                self.act(h, town, "elimination_review", {"decision": "approve"}, at)
            elif status == "elimination_township_approved":
                self.act(h, county, "elimination_decide", {"decision": "approve"}, at)
                labour = self.w.record(h, self.month_of(d))["labor_count"]
                self.eliminated_labour.append(int(labour or 0))
            elif status == "eliminated" and h in self.rollback_wanted:
                self.rollback_wanted.discard(h)
                reason = "income below the line at a follow-up after elimination"
                self.act(h, county, "rollback", {"reason": reason}, at)

    def desk(self, d: date) -> None:
        """The caseworkers' desk steps of the day (17:00): notices, plans, deliveries."""
        for h, seq in self.agenda.pop((d, "desk"), []):
            s = self.state[h]
            if s["seq"] != seq:
                continue
            cw, status = self.caseworkers[self.beat_of[h]], s["status"]
            if status == "checked":
                self.act(h, cw, "notice", {"start": d.isoformat()}, _day(d, 17))
            elif status == "monitored" and not s["plan"]:
                record = self.w.record(h, self.month_of(d))
                measures = support.suggest(s["risk_types"], record, d)
                self.act(h, cw, "plan", {"measures": measures}, _day(d, 17))
            elif status in machine.MONITORED and s["plan"] and not s["deliveries"]:
                for i in range(len(s["plan"])):
                    payload = {"measure": i, "delivered_on": d.isoformat()}
                    self.act(h, cw, "deliver", payload, _day(d, 17, i + 1))

    def decide(self, h: int, county: Actor, d: date) -> None:
        s = self.state[h]
        k = self.push_on(d)
        kind = self.w.pushes[k].household_type[h]
        if kind is None:
            kind = "unstable_alleviated" if self.w.record(h, 0)["formerly_poor"] else "marginal"
        types = (s["proposed_risk_types"] or ["low_income"])[: self.proc.max_risk_types]
        self.act(h, county, "decide", {"decision": "confirm", "household_type": kind,
                                       "risk_types": types}, _day(d, 8))  # fmt: skip
        self.confirmed_on[h] = d

    def plan_week(self, monday: date) -> None:
        days = [monday + timedelta(days=i) for i in range(5)]
        days = [d for d in days if self.start <= d <= self.end]
        if not days:
            return
        cap = self.capacity * len(days) // 5
        week_end = _day(monday + timedelta(days=6), 23, 59)
        push = self.w.pushes[self.push_on(monday)]
        due: dict[int, list[tuple[str, int]]] = defaultdict(list)
        for h, s in self.state.items():
            if s["status"] in ("monitored", "eliminated") and s["plan"]:
                step = next_step(s, self.proc)
                if step is not None and step.step == "follow_up" and step.due_at <= week_end:
                    due[int(self.beat_of[h])].append((step.due_at, h))
        relead = _day(monday - timedelta(days=self.s.relead_after_days), 0)
        for b, members in enumerate(self.beats):
            self.slots += cap
            todo = [(h, "follow_up") for _, h in sorted(due.get(b, []))][:cap]
            if self.hook is not None and len(todo) < cap:  # leads stored by the hook
                waiting = sorted((self.state[h]["opened_at"], h) for h in members.tolist()
                                 if h in self.state and self.state[h]["status"] == "lead")  # fmt: skip
                todo += [(h, "lead") for _, h in waiting[: cap - len(todo)]]
            if len(todo) < cap:
                todo += [(h, "lead") for h in self.leads(members, push, relead)[: cap - len(todo)]]
            for i, (h, kind) in enumerate(todo):
                self.visits_on[days[i * len(days) // cap]].append((h, kind, i))

    def leads(self, members: np.ndarray, push: Any, relead: str) -> list[int]:
        hs = members[push.flagged[members] if self.ordering == "riskml" else push.by_rules[members]]
        if self.ordering == "riskml":
            hs = hs[np.lexsort((hs, -push.score[hs]))]
        else:
            hs = hs[np.lexsort((hs, ~push.rule_red[hs]))]
        out = []
        for h in hs.tolist():
            s = self.state.get(h)
            if s is None or (s["status"] in ("dropped", "rejected") and s["closed_at"] <= relead):
                out.append(h)
        return out

    def visit(self, h: int, kind: str, d: date, i: int) -> None:
        cw = self.caseworkers[self.beat_of[h]]
        at, m = _day(d, 9, i), self.month_of(d)
        self.first_visit.setdefault(h, d)
        self.count["visits"] += 1
        if kind == "lead":
            push = self.w.pushes[self.push_on(d)]
            lead: dict[str, Any] = {"source": "warning"}
            if push.risk_types[h]:
                lead["risk_types"] = push.risk_types[h][: self.proc.max_risk_types]
            if self.state.get(h, {}).get("status") != "lead":  # not a lead stored by the hook
                self.act(h, cw, "lead", lead, at)
            risk = self.w.finds_risk(h, m)
            types = self.found_types(h, m) if risk else []
            self.act(h, cw, "visit", {"consent": True, "outcome": "propose" if risk else "drop",
                                      "coping_capacity": "weak" if risk else "some",
                                      **({"risk_types": types} if types else {})},
                     _day(d, 9, i, 30))  # fmt: skip
            self.count["proposed" if risk else "dropped"] += 1
            return
        s = self.state[h]
        self.act(h, cw, "follow_up", {"consent": True}, at)
        if s["status"] == "monitored":
            crit = elimination.criteria(self.state[h], self.w.records_until(h, m), self.lines,
                                        self.proc, at)  # fmt: skip
            if all(c["met"] for c in crit):
                self.act(h, cw, "propose_elimination", {}, _day(d, 16, i),
                         facts={"criteria": crit})  # fmt: skip
        elif s["status"] == "eliminated" and self.w.pc[m, h] < self.w.line[m, h]:
            self.rollback_wanted.add(h)
            self.schedule(h)

    def found_types(self, h: int, m: int) -> list[str]:
        w, r = self.w, self.w.record(h, m)
        types = []
        if w.pc[m, h] < w.line[m, h]:
            types.append("low_income")
        if w.pc_after_costs[m, h] < w.line[m, h]:
            med, edu = r["medical_expense"] or 0, r["education_expense"] or 0
            types.append("illness" if med >= edu else "schooling")
        return list(dict.fromkeys(types or ["low_income"]))

    # ------------------------------------------------------------------ the year
    def run(self) -> dict[str, Any]:
        t0 = time.perf_counter()
        d = self.start
        while d <= self.end:
            if d.weekday() == 0 or d == self.start:
                self.plan_week(d - timedelta(days=d.weekday()))
            if d.weekday() < 5:
                if self.hook is not None:
                    self.hook.on_day(d)
                self.office(d)
                for h, kind, i in self.visits_on.pop(d, []):
                    self.visit(h, kind, d, i)
                self.desk(d)
            d += timedelta(days=1)
        return self.report(time.perf_counter() - t0)

    def report(self, seconds: float) -> dict[str, Any]:
        w, c = self.w, self.count
        end = _day(self.end, 23, 59)
        open_overdue: Counter[str] = Counter()
        for s in self.state.values():
            if machine.clock(s, self.proc, end) == "overdue":
                step = next_step(s, self.proc)
                open_overdue[step.step if step else "?"] += 1
        fell = w.fell_month()
        starts = [date(*map(int, (w.periods[m] + "-01").split("-"))) if m else None for m in fell]
        fallers = np.flatnonzero(fell > 0)
        reached = sum(
            1 for h in fallers if h in self.first_visit and self.first_visit[h] < starts[h]
        )
        confirmed_before = sum(1 for h in fallers
                               if h in self.confirmed_on and self.confirmed_on[h] < starts[h])  # fmt: skip
        positives = np.flatnonzero(w.at_risk_next == 1)
        last = w.pushes[-1]
        flagged_last = np.flatnonzero(last.flagged if self.ordering == "riskml" else last.by_rules)
        rebuilt = self.store.rebuild()
        late, total_late = dict(sorted(self.late.items())), sum(self.late.values())
        return {
            "ordering": self.ordering,
            "caseworkers": len(self.beats),
            "capacity_per_week": self.capacity,
            "visit_slots": self.slots,
            "visits": c["visits"],
            "first_visits": c["visit"],
            "follow_ups": c["follow_up"],
            "capacity_used": round(c["visits"] / self.slots, 4) if self.slots else 0.0,
            "fell_below_line": len(fallers),
            "reached_before_fell": reached,
            "reached_before_fell_share": round(reached / len(fallers), 4) if len(fallers) else 0.0,
            "confirmed_before_fell": confirmed_before,
            "at_risk_next": len(positives),
            "at_risk_next_visited": sum(1 for h in positives if h in self.first_visit),
            "proposed": c["proposed"],
            "dropped": c["dropped"],
            "confirmed": c["decide"],
            "rejected": 0,
            "eliminated": c["elimination_decide"],
            "eliminated_without_labour": sum(1 for x in self.eliminated_labour if x == 0),
            "rollbacks": c["rollback"],
            "overdue_steps": total_late + sum(open_overdue.values()),
            "overdue_done_late": late,
            "overdue_open_at_end": dict(sorted(open_overdue.items())),
            "backlog_flagged_never_visited": sum(
                1 for h in flagged_last if h not in self.first_visit
            ),
            "case_events": rebuilt.events,
            "cases": rebuilt.cases,
            "rebuild_mismatches": len(rebuilt.mismatched),
            "seconds": round(seconds, 1),
            **({"hook": self.hook.report()} if self.hook is not None else {}),
        }


def run_year(
    settings: YearSettings | None = None,
    *,
    world: YearWorld | None = None,
    procedure: Procedure | None = None,
    lines: ReferenceLines | None = None,
    ledger_dir: str | Path | None = None,
    say: Callable[[str], None] | None = None,
    hook: Callable[[YearLoop], LoopHook] | None = None,
    **world_args: Any,
) -> dict[str, Any]:
    """Both orderings on the same world; the report as a dict (``format_report`` prints it)."""
    s = settings or YearSettings()
    say = say or (lambda _m: None)
    lines = lines or default_lines()
    proc = procedure or load_procedure()
    t0 = time.perf_counter()
    if world is None:
        world = build_world(s.households, s.seed, s.year, previous=s.previous, lines=lines,
                            say=say, **world_args)  # fmt: skip
    out: dict[str, Any] = {}
    shm = Path("/dev/shm")  # a memory file system where there is one: commits cost no disk sync
    base = str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None
    with tempfile.TemporaryDirectory(prefix="riskml-year-", dir=base) as tmp:
        where = Path(ledger_dir) if ledger_dir else Path(tmp)
        where.mkdir(parents=True, exist_ok=True)
        for ordering in ORDERINGS:
            say(f"running the year in {ordering} order")
            loop = YearLoop(world, ordering, s, proc, lines,
                            f"sqlite:///{where / f'cases-{ordering}.db'}", hook)  # fmt: skip
            try:
                out[ordering] = loop.run()
            finally:
                loop.ledger.close()
    flagged = [int(p.flagged.sum()) for p in world.pushes]
    by_rules = [int(p.by_rules.sum()) for p in world.pushes]
    return {
        "settings": {
            **asdict(s),
            "capacity": s.capacity or proc.weekly_visits,
            "procedure_version": proc.version,
        },  # fmt: skip
        "world": {
            "households": world.n,
            "year": f"{world.periods[0]} to {world.periods[-1]}",
            "pushes": [p.period for p in world.pushes],
            "flagged_per_push_mean": round(float(np.mean(flagged)), 1),
            "flagged_by_rules_per_push_mean": round(float(np.mean(by_rules)), 1),
            "flagged_by_rules_per_push": by_rules,
            "flagged_per_push": flagged,
            "above_line_at_start": int(world.start_above().sum()),
            "fell_below_line": int((world.fell_month() > 0).sum()),
            "fell_by_month": np.bincount(world.fell_month(), minlength=13)[1:].tolist(),
            "training": world.training,
            "seconds": {k: round(v, 1) for k, v in world.seconds.items()},
        },
        "orderings": out,
        "seconds": round(time.perf_counter() - t0, 1),
    }


ROWS = (
    ("fell_below_line", "households that fell below the line"),
    ("reached_before_fell", "  reached before they fell"),
    ("reached_before_fell_share", "  share reached before they fell"),
    ("confirmed_before_fell", "  confirmed before they fell"),
    ("at_risk_next_visited", "next-year at-risk households visited"),
    ("visits", "home visits"),
    ("first_visits", "  first visits (leads)"),
    ("follow_ups", "  follow-ups"),
    ("capacity_used", "capacity used"),
    ("proposed", "proposed at the visit"),
    ("dropped", "dropped at the visit"),
    ("confirmed", "confirmed cases"),
    ("rejected", "rejected"),
    ("overdue_steps", "overdue steps"),
    ("eliminated", "eliminations"),
    ("rollbacks", "rollbacks"),
    ("backlog_flagged_never_visited", "flagged in the last push, never visited"),
)


def format_report(report: dict[str, Any]) -> str:
    """The report as a plain-text table (riskml order vs rules only)."""
    o, wd, st = report["orderings"], report["world"], report["settings"]
    first = next(iter(o.values()))
    lines = [
        f"A year of the case loop, simulated: {wd['households']:,} households, {wd['year']}; "
        f"{first['caseworkers']} caseworkers × {st['capacity']} visits a week",
        f"model trained on {', '.join(wd['training']['train_periods'])} "
        f"(calibrated on {wd['training']['valid_period']}, tested on {wd['training']['test_period']})",
        "",
    ]
    width = max(len(label) for _, label in ROWS)
    lines.append(f"{'':{width}}  {'riskml order':>13}  {'rules only':>11}")
    for key, label in ROWS:
        vals = [o[k][key] for k in ORDERINGS]
        shown = [f"{v:.1%}" if isinstance(v, float) else f"{v:,}" for v in vals]
        lines.append(f"{label:{width}}  {shown[0]:>13}  {shown[1]:>11}")
    return "\n".join(lines)
