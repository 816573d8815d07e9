"""The case loop's state machine and store: every allowed transition, every refused one (naming
why), deadlines, merging, elimination criteria, insert-only events, rebuild, concurrency."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import text

from riskml.cases import elimination, machine, notice, procedure, support, worklist
from riskml.cases.machine import ACTIONS, FROM, ROLE_ACTIONS, STATUSES, Actor, Refusal
from riskml.cases.store import CaseStore
from riskml.data.reference import default_lines
from riskml.model.expected import expected_count, poisson_binomial
from riskml.policy.risk_types import RISK_TYPE_CODES
from riskml.store.ledger import Ledger

VILLAGE = "532328101201"
CW = Actor("grid-1", "caseworker", villages=frozenset({VILLAGE}))
TOWN = Actor("town-1", "township", townships=frozenset({VILLAGE[:9]}))
COUNTY = Actor("county-1", "county", counties=frozenset({VILLAGE[:6]}))
ADMIN = Actor("ops", "admin")
PROC = procedure.load(path=None)


def day(n: int, hour: int = 0) -> str:
    """Day n of 2026 (n=1: 1 January) as the store's ISO time."""
    from datetime import datetime, timedelta

    return machine.iso(datetime(2026, 1, 1, hour) + timedelta(days=n - 1))


BODIES = {
    "lead": {"source": "cadre_visit"},
    "assign": {"caseworker": "grid-1"},
    "visit": {"consent": True, "outcome": "propose", "coping_capacity": "weak", "risk_types": ["illness"]},
    "cross_check": {"result": "consistent"},
    "notice": {},
    "township_review": {"decision": "approve"},
    "decide": {"decision": "confirm", "household_type": "marginal", "risk_types": ["illness"]},
    "plan": {"measures": [{"risk_type": "illness", "measure": "医疗救助", "department": "医保局",
                           "start": "2026-02-01", "end": "2026-12-31"}]},
    "deliver": {"measure": 0, "delivered_on": "2026-02-10"},
    "follow_up": {"consent": True},
    "propose_elimination": {},
    "elimination_review": {"decision": "approve"},
    "elimination_decide": {"decision": "approve"},
    "rollback": {"reason": "income fell again"},
}  # fmt: skip
WHO = {"lead": CW, "assign": TOWN, "visit": CW, "cross_check": COUNTY, "notice": CW,
       "township_review": TOWN, "decide": COUNTY, "plan": CW, "deliver": CW, "follow_up": CW,
       "propose_elimination": CW, "elimination_review": TOWN, "elimination_decide": COUNTY,
       "rollback": COUNTY}  # fmt: skip
PATH = ["lead", "assign", "visit", "cross_check", "notice", "township_review", "decide", "plan",
        "deliver", "follow_up", "propose_elimination", "elimination_review", "elimination_decide",
        "rollback"]  # fmt: skip
MET = [
    {"criterion": c, "met": True, "evidence": "ok", "evidence_zh": "ok"}
    for c in elimination.CRITERIA
]


@pytest.fixture
def store(tmp_path):
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    yield CaseStore(ledger, PROC)
    ledger.close()


def _walk(store, hid: str, upto: str) -> dict:
    """Take the household's case along the loop up to (and including) ``upto``."""
    state = None
    for i, action in enumerate(PATH, start=1):
        at = day(i * 6)  # six days apart: the notice has run when the township reviews
        facts = {"criteria": MET} if action == "propose_elimination" else None
        state = store.act(WHO[action], hid, action, BODIES[action], at=at, facts=facts,
                          where=(VILLAGE[:6], VILLAGE)).state  # fmt: skip
        if action == upto:
            return state
    return state


def test_the_loop_visits_every_status_and_rebuilds(store):
    seen = []
    state = None
    for i, action in enumerate(PATH, start=1):
        facts = {"criteria": MET} if action == "propose_elimination" else None
        state = store.act(WHO[action], "hh_a", action, BODIES[action], at=day(i * 6), facts=facts,
                          where=(VILLAGE[:6], VILLAGE)).state  # fmt: skip
        seen.append(state["status"])
    assert seen == ["lead", "assigned", "visited", "checked", "noticed", "township_approved",
                    "monitored", "monitored", "monitored", "monitored", "elimination_proposed",
                    "elimination_township_approved", "eliminated", "monitored"]  # fmt: skip
    assert state["rollbacks"] == 1 and len(state["deliveries"]) == 1
    events = store.events(state["case_id"])
    assert [e["seq"] for e in events] == list(range(1, len(PATH) + 1))
    assert all(e["actor"] for e in events)  # every action names its actor
    rebuilt = store.rebuild()
    assert rebuilt.events == len(PATH) and rebuilt.cases == 1 and not rebuilt.mismatched


@pytest.mark.parametrize("action", [a for a in ACTIONS if a != "lead"])
def test_every_action_is_refused_in_every_status_it_does_not_take(store, action):
    """Walk a case to each status; an action not allowed there is a 409 naming the status."""
    for k, upto in enumerate(PATH):
        hid = f"hh_{action}_{k}"
        state = _walk(store, hid, upto)
        status = state["status"]
        body = BODIES[action]
        facts = {"criteria": MET} if action == "propose_elimination" else None
        if status in FROM[action]:
            continue
        with pytest.raises(Refusal) as exc:
            store.act(WHO[action], hid, action, body, at=day(200), facts=facts)
        assert exc.value.status == 409, (action, status, exc.value.message)
        assert status in exc.value.problems[0]["problem"]


def test_roles_may_take_only_their_actions(store):
    _walk(store, "hh_roles", "lead")
    for role_actor in (CW, TOWN, COUNTY):
        for action in ACTIONS:
            if action in ROLE_ACTIONS[role_actor.role]:
                continue
            with pytest.raises(Refusal) as exc:
                store.act(role_actor, "hh_roles", action, BODIES[action], at=day(3))
            assert exc.value.status == 403 and exc.value.problems[0]["field"] == "action"


def test_scope_is_village_township_county():
    assert CW.covers(VILLAGE) and not CW.covers("532328101202")
    assert TOWN.covers("532328101299") and not TOWN.covers("532328102201")
    assert COUNTY.covers("532328201201") and not COUNTY.covers("530326101201")
    assert ADMIN.covers("110101001001")


def test_out_of_scope_actor_is_refused(store):
    _walk(store, "hh_scope", "lead")
    other = Actor("grid-9", "caseworker", villages=frozenset({"532328101202"}))
    with pytest.raises(Refusal) as exc:
        store.act(other, "hh_scope", "visit", BODIES["visit"], at=day(3))
    assert exc.value.status == 403 and exc.value.problems[0]["field"] == "household_id"


@pytest.mark.parametrize(
    ("action", "body", "field"),
    [
        ("lead", {}, "source"),
        ("lead", {"source": "rumour"}, "source"),
        ("lead", {"source": "warning", "risk_types": ["illness", "bogus"]}, "risk_types[1]"),
        ("lead", {"source": "warning", "decision_id": "x"}, "decision_id"),  # riskml sets it
        ("lead", {"source": "warning", "colour": "red"}, "colour"),
        ("lead", {"source": "warning", "note": "x" * 501}, "note"),
        ("visit", {"consent": False, "outcome": "propose", "coping_capacity": "weak"}, "consent"),
        ("visit", {"consent": True, "outcome": "maybe", "coping_capacity": "weak"}, "outcome"),
        (
            "decide",
            {"decision": "confirm", "household_type": "marginal", "risk_types": ["illness"] * 2},
            "risk_types",
        ),  # fmt: skip
        (
            "decide",
            {
                "decision": "confirm",
                "household_type": "marginal",
                "risk_types": list(RISK_TYPE_CODES[:6]),
            },
            "risk_types",
        ),  # fmt: skip
        ("decide", {"decision": "reject"}, "note"),
        ("plan", {"measures": []}, "measures"),
        (
            "plan",
            {
                "measures": [
                    {
                        "risk_type": "illness",
                        "measure": "x",
                        "department": "y",
                        "start": "2026-02-30",
                        "end": "2026-03-01",
                    }
                ]
            },
            "measures[0].start",
        ),  # fmt: skip
        ("deliver", {"measure": -1, "delivered_on": "2026-01-01"}, "measure"),
        ("rollback", {}, "reason"),
    ],
)
def test_a_bad_field_is_a_422_naming_it(action, body, field):
    problems = machine.payload_problems(action, body, PROC)
    assert field in [p["field"] for p in problems], problems


def test_a_lead_on_an_open_case_is_merged_and_after_a_closed_one_opens_a_new_case(store):
    first = _walk(store, "hh_merge", "assign")
    merged = store.act(TOWN, "hh_merge", "lead", {"source": "department_alert"}, at=day(20))
    assert merged.state["case_id"] == first["case_id"] and merged.state["leads"] == 2
    assert merged.event["payload"]["merged"] is True and merged.state["status"] == "assigned"
    store.act(CW, "hh_merge", "visit", {**BODIES["visit"], "outcome": "drop"}, at=day(21))
    assert store.current("hh_merge")["status"] == "dropped"
    again = store.act(CW, "hh_merge", "lead", {"source": "self_report"}, at=day(40))
    assert again.state["case_id"] != first["case_id"] and again.state["status"] == "lead"
    assert len(store.household_cases("hh_merge")) == 2


def test_notice_must_run_its_days_and_fast_track_allows_support_before_confirmation(store):
    store.act(CW, "hh_fast", "lead", {"source": "cadre_visit", "fast_track": True},
              where=(VILLAGE[:6], VILLAGE), at=day(1))  # fmt: skip
    store.act(CW, "hh_fast", "visit", {**BODIES["visit"], "outcome": "fast_track"}, at=day(1, 5))
    # support starts at once, before the steps end
    store.act(CW, "hh_fast", "plan", BODIES["plan"], at=day(1, 6))
    store.act(CW, "hh_fast", "deliver", BODIES["deliver"], at=day(1, 7))
    store.act(COUNTY, "hh_fast", "cross_check", {"result": "consistent"}, at=day(2))
    store.act(CW, "hh_fast", "notice", {}, at=day(3))
    with pytest.raises(Refusal) as exc:
        store.act(TOWN, "hh_fast", "township_review", {"decision": "approve"}, at=day(7))
    assert exc.value.status == 409 and "5 days" in exc.value.problems[0]["problem"]
    state = store.act(TOWN, "hh_fast", "township_review", {"decision": "approve"}, at=day(8)).state
    assert state["status"] == "township_approved"
    # without the fast track, no support before confirmation
    store.act(
        CW, "hh_slow", "lead", {"source": "cadre_visit"}, where=(VILLAGE[:6], VILLAGE), at=day(1)
    )
    store.act(CW, "hh_slow", "visit", BODIES["visit"], at=day(2))
    with pytest.raises(Refusal) as exc:
        store.act(CW, "hh_slow", "plan", BODIES["plan"], at=day(2))
    assert exc.value.status == 409 and "fast" in exc.value.message


def test_a_plan_needs_a_measure_for_every_risk_type(store):
    _walk(store, "hh_plan", "township_review")
    store.act(
        COUNTY,
        "hh_plan",
        "decide",
        {**BODIES["decide"], "risk_types": ["illness", "schooling"]},
        at=day(50),
    )
    with pytest.raises(Refusal) as exc:
        store.act(CW, "hh_plan", "plan", BODIES["plan"], at=day(51))
    assert exc.value.status == 422 and "schooling" in exc.value.problems[0]["problem"]


def test_deadlines_and_clock(store):
    state = store.act(
        CW, "hh_clock", "lead", {"source": "warning"}, where=(VILLAGE[:6], VILLAGE), at=day(1)
    ).state
    step = machine.next_step(state, PROC)
    assert step.step == "assign" and step.due_at == day(1 + PROC.days("assign"))
    assert machine.clock(state, PROC, day(1)) == "on_time"
    assert machine.clock(state, PROC, day(1 + PROC.days("assign") - 1, 1)) == "due_soon"
    assert machine.clock(state, PROC, day(1 + PROC.days("assign"), 1)) == "overdue"
    # the decision deadline (15 days from the lead) caps every identification step
    state = store.act(TOWN, "hh_clock", "assign", BODIES["assign"], at=day(14)).state
    assert machine.next_step(state, PROC).due_at == day(1 + PROC.days("decision"))
    closed = store.act(
        CW, "hh_clock", "visit", {**BODIES["visit"], "outcome": "drop"}, at=day(15)
    ).state
    assert machine.next_step(closed, PROC) is None and machine.clock(closed, PROC, day(99)) is None


def test_procedure_from_configuration(tmp_path):
    f = tmp_path / "procedure.yaml"
    f.write_text("deadlines_days:\n  decision: 20\ncapacity:\n  weekly_visits: 7\n")
    p = procedure.load(f)
    assert p.days("decision") == 20 and p.days("assign") == 2 and p.weekly_visits == 7
    f.write_text("deadlines_days:\n  decison: 20\n")
    with pytest.raises(procedure.ProcedureError, match="unknown step"):
        procedure.load(f)
    f.write_text("capacity:\n  weekly_visits: 0\n")
    with pytest.raises(procedure.ProcedureError, match="capacity.weekly_visits"):
        procedure.load(f)


def _record(period: str, wage: float, **more) -> dict:
    base = {"household_id": "hh_e", "period": period, "county_code": VILLAGE[:6], "village_code": VILLAGE,
            "household_size": 4, "labor_count": 2, "income_wage": wage, "income_business": 0.0,
            "income_property": 0.0, "income_transfer": 0.0, "medical_expense": 0.0,
            "education_expense": 0.0, "medical_insured": True, "housing_safe": True,
            "water_safe": True, "dropout": False}  # fmt: skip
    return {**base, **more}


def _monthly(months: int, wage: float, **more) -> list[dict]:
    return [_record(f"2026-{m:02d}", wage, **more) for m in range(1, months + 1)]


def test_elimination_criteria(store):
    lines = default_lines()
    case = {"decided_at": day(1), "deliveries": [{"measure": 0}]}
    good = elimination.criteria(case, _monthly(7, 80000.0), lines, PROC, day(200))
    assert all(c["met"] for c in good), good
    # fewer than six months above the line
    short = elimination.criteria(
        case, [_record("2026-01", 1000.0), *_monthly(5, 80000.0)[1:]], lines, PROC, day(200)
    )
    by = {c["criterion"]: c for c in short}
    assert not by["income_above_line"]["met"] and "needs 6" in by["income_above_line"]["evidence"]
    # no one able to work: never eliminated
    none = elimination.criteria(case, _monthly(7, 80000.0, labor_count=0), lines, PROC, day(200))
    assert not {c["criterion"]: c for c in none}["labour"]["met"]
    # rigid costs and guarantees
    costly = elimination.criteria(
        case, _monthly(7, 30000.0, medical_expense=28000.0, water_safe=False), lines, PROC, day(200)
    )
    by = {c["criterion"]: c for c in costly}
    assert not by["rigid_costs"]["met"] and not by["guarantees"]["met"]
    # monitored under six months, nothing delivered
    fresh = elimination.criteria(
        {"decided_at": day(150), "deliveries": []}, _monthly(7, 80000.0), lines, PROC, day(200)
    )
    by = {c["criterion"]: c for c in fresh}
    assert not by["monitored"]["met"] and not by["measures"]["met"]


def test_a_proposal_with_an_unmet_criterion_is_refused_naming_it(store):
    _walk(store, "hh_noelim", "follow_up")
    failed = [dict(c) for c in MET]
    failed[0] = {**failed[0], "met": False, "evidence": "no member able to work"}
    with pytest.raises(Refusal) as exc:
        store.act(
            CW, "hh_noelim", "propose_elimination", {}, facts={"criteria": failed}, at=day(300)
        )
    assert exc.value.status == 409
    assert exc.value.problems == [{"field": "criteria.labour", "problem": "no member able to work"}]


def test_events_are_insert_only(store):
    _walk(store, "hh_io", "assign")
    with store.ledger.engine.begin() as conn, pytest.raises(Exception, match="insert-only"):
        conn.execute(text("UPDATE case_events SET status = 'eliminated'"))
    with store.ledger.engine.begin() as conn, pytest.raises(Exception, match="insert-only"):
        conn.execute(text("DELETE FROM case_events"))
    assert store.count() == 2


def test_concurrent_actions_on_one_household_are_serialised(store):
    _walk(store, "hh_race", "lead")
    results: list = []

    def assign(n: int) -> None:
        try:
            results.append(store.act(TOWN, "hh_race", "assign", {"caseworker": f"grid-{n}"}).state)
        except Refusal as exc:
            results.append(exc)

    threads = [threading.Thread(target=assign, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    events = store.events(store.current("hh_race")["case_id"])
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))  # no gap, no twin
    assert len(events) == 1 + sum(isinstance(r, dict) for r in results)
    assert not store.rebuild().mismatched


def test_idempotency_key_makes_one_event(store):
    _walk(store, "hh_idem", "lead")
    a = store.act(TOWN, "hh_idem", "assign", BODIES["assign"], idempotency_key="k-1", at=day(2))
    b = store.act(TOWN, "hh_idem", "assign", BODIES["assign"], idempotency_key="k-1", at=day(3))
    assert b.replayed and b.event["event_id"] == a.event["event_id"]
    with pytest.raises(Refusal) as exc:
        store.act(TOWN, "hh_idem", "lead", {"source": "warning"}, idempotency_key="k-1")
    assert exc.value.status == 422 and exc.value.problems[0]["field"] == "Idempotency-Key"
    assert store.count() == 2


def test_support_suggestions_fit_the_household():
    from datetime import date

    on_dibao = support.suggest(["low_income"], {"labor_count": 2, "dibao": True}, date(2026, 1, 1))
    assert all("低保" not in m["measure"] for m in on_dibao)
    no_labour = support.suggest(["unstable_employment"], {"labor_count": 0}, date(2026, 1, 1))
    assert [m["kind"] for m in no_labour] == ["safety_net"]
    with_labour = support.suggest(["unstable_employment"], {"labor_count": 2}, date(2026, 1, 1))
    assert {m["kind"] for m in with_labour} == {"jobs"}
    assert all(m["department"] and m["start"] < m["end"] for m in with_labour)


def test_public_notice_shows_no_health_or_personal_details():
    case = {"case_id": "ab" * 16, "village_code": VILLAGE, "risk_types": ["illness", "schooling"],
            "proposed_risk_types": [], "household_type": "marginal"}  # fmt: skip
    from datetime import date

    n = notice.notice(case, 4, date(2026, 3, 1), 5)
    assert "因病" not in n["zh"] and "因学" in n["zh"] and "其他" in n["zh"]
    assert "illness" not in n["en"] and n["end"] == "2026-03-06"
    assert "hh_" not in n["zh"]  # not even the pseudonymous id


def test_worklist_puts_due_first_then_leads_by_risk_and_cuts_at_capacity(store):
    proc = procedure.load(capacity={"weekly_visits": 3})
    _walk(store, "hh_due", "assign")  # assigned: its visit is due
    decisions = [
        {
            "household_id": f"hh_w{i}",
            "village_code": VILLAGE,
            "score": s,
            "risk_level": "red",
            "flagged": True,
            "flagged_by": "model",
            "decision_id": f"d{i}",
        }  # fmt: skip
        for i, s in enumerate([0.2, 0.9, 0.5, 0.7])
    ]
    wl = worklist.build(
        "caseworker", store.current_cases(village_codes=[VILLAGE]), decisions, proc, day(15)
    )
    assert [i.household_id for i in wl.fits] == ["hh_due", "hh_w1", "hh_w3"]
    assert wl.fits[0].kind == "due" and wl.fits[0].clock == "overdue"
    assert wl.beyond == 2 and wl.capacity == 3
    assert wl.counts["overdue"] == 1 and wl.counts["warnings"] == 4
    e = wl.expected[VILLAGE]
    assert e.expected == pytest.approx(2.3) and e.low <= 2 <= e.high


def test_poisson_binomial_is_exact_and_the_interval_covers():
    import numpy as np

    p = np.array([0.1, 0.5, 0.9])
    dist = poisson_binomial(p)
    assert dist.sum() == pytest.approx(1.0)
    assert dist[0] == pytest.approx(0.9 * 0.5 * 0.1) and dist[3] == pytest.approx(0.1 * 0.5 * 0.9)
    rng = np.random.default_rng(3)
    q = rng.uniform(0, 0.4, 400)
    e = expected_count(q)
    draws = rng.binomial(1, np.tile(q, (4000, 1))).sum(axis=1)
    inside = ((draws >= e.low) & (draws <= e.high)).mean()
    assert 0.88 <= inside <= 0.97
    big = expected_count(rng.uniform(0, 0.4, 5000))  # the normal approximation
    assert big.low < big.expected < big.high


def test_statuses_are_all_reachable():
    assert set(STATUSES) >= {"lead", "eliminated", "rejected", "dropped"}


def test_a_moved_household_leaves_its_old_village_list(store):
    store.act(
        CW, "hh_moved", "lead", {"source": "warning"}, where=(VILLAGE[:6], VILLAGE), at=day(1)
    )
    store.ledger.record_move("hh_moved", (VILLAGE[:6], "532328102201"), "moved", "admin:ops")
    store.act(COUNTY, "hh_moved", "assign", BODIES["assign"], at=day(2))
    assert store.current_cases(village_codes=[VILLAGE]) == []
    assert store.current_cases(township_codes=[VILLAGE[:9]]) == []
    moved = store.current_cases(village_codes=["532328102201"])
    assert [c["household_id"] for c in moved] == ["hh_moved"] and moved[0]["status"] == "assigned"
