"""The case loop as a state machine: statuses, actions, who may take them, and their fields.

Pure functions over plain dicts. ``check`` says whether an actor may take an action on a
case now (or refuses, naming the field and the reason); ``apply`` folds an accepted event
into the case's state; ``next_step`` tells what the case waits for and by when. The store
(``riskml.cases.store``) keeps the events; the state of a case is always ``apply`` over them.

The loop (shared/domain.md): lead -> assigned (township) -> visited (home visit, signed
consent) -> checked (county data cross-check) -> noticed (village review, public notice)
-> township_approved -> monitored (county decision: type and 1-5 risk types) or rejected;
then a support plan, deliveries and follow-up visits; elimination proposed -> township ->
county -> eliminated; follow-ups after it, and rollback (回退) to monitored. A visit may
drop the case (no risk found) or fast-track it (disaster, accident: support starts at once,
the steps follow).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from riskml.cases.fields import (
    payload_problems,
    problem,
)
from riskml.cases.procedure import Procedure

# ------------------------------------------------------------------------- vocabulary
STATUSES = (
    "lead", "assigned", "visited", "checked", "noticed", "township_approved", "monitored",
    "elimination_proposed", "elimination_township_approved", "eliminated",
    "rejected", "dropped",
)  # fmt: skip
IDENTIFYING = ("lead", "assigned", "visited", "checked", "noticed", "township_approved")
MONITORED = ("monitored", "elimination_proposed", "elimination_township_approved")
CLOSED = ("eliminated", "rejected", "dropped")  # a new lead opens a new case
OPEN = IDENTIFYING + MONITORED

FAST_TRACK_TYPES = ("disaster", "accident")

ROLES = ("caseworker", "township", "county", "admin", "system", "department")
ACTIONS = (
    "lead", "assign", "visit", "cross_check", "notice", "township_review", "decide", "plan",
    "deliver", "follow_up", "propose_elimination", "elimination_review", "elimination_decide",
    "rollback",
)  # fmt: skip
ROLE_ACTIONS: dict[str, frozenset[str]] = {
    "caseworker": frozenset(
        {"lead", "visit", "notice", "plan", "deliver", "follow_up", "propose_elimination"}
    ),
    "township": frozenset(
        {
            "lead",
            "assign",
            "visit",
            "notice",
            "township_review",
            "plan",
            "deliver",
            "follow_up",
            "propose_elimination",
            "elimination_review",
        }  # fmt: skip
    ),
    "county": frozenset(
        {
            "lead",
            "assign",
            "cross_check",
            "decide",
            "plan",
            "deliver",
            "elimination_decide",
            "rollback",
        }  # fmt: skip
    ),
    "admin": frozenset(ACTIONS),
    "system": frozenset({"lead"}),
    "department": frozenset({"lead"}),
}
# the statuses an action may be taken in (a lead: any, it opens or merges)
FROM: dict[str, tuple[str, ...]] = {
    "assign": ("lead", "assigned"),
    "visit": ("lead", "assigned"),  # a grid worker who found the risk may visit at once
    "cross_check": ("visited",),
    "notice": ("checked",),
    "township_review": ("noticed",),
    "decide": ("township_approved",),
    "plan": MONITORED + ("visited", "checked", "noticed", "township_approved", "eliminated"),
    "deliver": MONITORED + ("visited", "checked", "noticed", "township_approved", "eliminated"),
    "follow_up": MONITORED + ("eliminated",),
    "propose_elimination": ("monitored",),
    "elimination_review": ("elimination_proposed",),
    "elimination_decide": ("elimination_township_approved",),
    "rollback": ("eliminated",),
}


class Refusal(Exception):
    """An action refused: HTTP-like ``status`` (403, 404, 409, 422) and problems naming fields."""

    def __init__(self, status: int, message: str, problems: list[dict[str, str]] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.problems = problems or []


@dataclass(frozen=True)
class Actor:
    """Who acts: a key's id and role, and the villages, townships (9 digits) and counties it covers."""

    id: str
    role: str
    villages: frozenset[str] = field(default_factory=frozenset)
    townships: frozenset[str] = field(default_factory=frozenset)
    counties: frozenset[str] = field(default_factory=frozenset)

    def covers(self, village_code: str) -> bool:
        if self.role in ("admin", "system"):
            return True
        return (
            village_code in self.villages
            or village_code[:9] in self.townships
            or village_code[:6] in self.counties
        )

    def may(self, action: str) -> bool:
        return action in ROLE_ACTIONS.get(self.role, frozenset())

    @property
    def name(self) -> str:
        return f"{self.role}:{self.id}"


# ------------------------------------------------------------------------- time
def parse_time(at: str) -> datetime:
    return datetime.fromisoformat(at.replace("Z", "+00:00")).astimezone(UTC)


def iso(t: datetime) -> str:
    """UTC ISO 8601 with microseconds and Z (isoformat: strftime cost a third of a worklist)."""
    return t.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _plus_days(at: str, days: int) -> str:
    # UTC with microseconds, as the store writes times (``iso``'s Z or ``now_iso``'s +00:00):
    # whole days move the date only (a county's worklist adds some 30,000 deadlines)
    if at[10:11] == "T" and (len(at) == 27 and at[26] == "Z" or at[26:] == "+00:00"):
        return f"{(date.fromisoformat(at[:10]) + timedelta(days=days)).isoformat()}{at[10:26]}Z"
    return iso(parse_time(at) + timedelta(days=days))


def months_between(earlier: str, later: str) -> float:
    return (parse_time(later) - parse_time(earlier)).days / 30.4375


# ------------------------------------------------------------------------- state
def new_state(case_id: str, household_id: str, county_code: str, village_code: str) -> dict:
    return {
        "case_id": case_id, "household_id": household_id, "county_code": county_code,
        "village_code": village_code, "status": "lead", "opened_at": None, "updated_at": None,
        "seq": 0, "events": 0, "sources": [], "leads": 0, "fast_track": False,
        "fast_tracked_at": None, "assignee": None, "assigned_at": None, "visited_at": None,
        "visit_outcome": None, "coping_capacity": None, "proposed_risk_types": [],
        "decision_ids": [], "checked_at": None, "check_result": None, "notice_at": None,
        "township_at": None, "decided_at": None, "household_type": None, "risk_types": [],
        "plan": [], "planned_at": None, "deliveries": [], "last_visit_at": None,
        "follow_ups": 0, "proposed_at": None, "criteria": [], "elimination_township_at": None,
        "eliminated_at": None, "rollbacks": 0, "closed_at": None, "closed_reason": None,
    }  # fmt: skip


def check(
    state: dict | None,
    action: str,
    payload: dict,
    actor: Actor,
    at: str,
    procedure: Procedure,
    village_code: str,
    facts: dict | None = None,
) -> None:
    """Raise Refusal unless ``actor`` may take ``action`` (with ``payload``) on the case now.

    ``state`` is the case the action is on (None: the household has no case yet, or only
    closed ones, for a lead). ``village_code`` is where the household is. ``facts``: what
    riskml set beside the caller's fields (an elimination proposal's ``criteria``).
    """
    if action not in ACTIONS:
        raise Refusal(
            404, f"no such action {action!r}", [problem("action", f"one of {', '.join(ACTIONS)}")]
        )
    if not actor.may(action):
        raise Refusal(
            403,
            f"role {actor.role} may not {action}",
            [problem("action", f"not for role {actor.role}")],
        )
    if not actor.covers(village_code):
        raise Refusal(
            403,
            "the household is outside this key's scope",
            [problem("household_id", "outside this key's villages, townships and counties")],
        )
    problems = payload_problems(action, payload, procedure)
    if problems:
        raise Refusal(422, f"{len(problems)} problem(s) with the {action} fields", problems)
    if action == "lead":
        return
    if state is None:
        raise Refusal(
            409,
            f"no open case to {action}",
            [problem("case", "the household has no case: a lead opens one")],
        )
    status = state["status"]
    if status not in FROM[action]:
        allowed = [a for a in ACTIONS if a != "lead" and status in FROM[a]]
        raise Refusal(
            409,
            f"a case {status} cannot take {action}",
            [
                problem(
                    "action",
                    f"the case is {status}; allowed now: {', '.join(allowed) or 'lead (opens a new case)'}",
                )
            ],
        )
    if action == "township_review" and payload.get("decision") == "approve":
        ends = _plus_days(state["notice_at"], procedure.days("notice_min"))
        if at < ends:
            raise Refusal(
                409,
                "the public notice has not run its time",
                [
                    problem(
                        "decision",
                        f"the notice stays up {procedure.days('notice_min')} days, until {ends[:10]}",
                    )
                ],
            )
    if action in ("plan", "deliver") and status in IDENTIFYING and not state["fast_track"]:
        raise Refusal(
            409,
            "support before confirmation needs the fast track",
            [problem("action", f"the case is {status} and not fast-tracked")],
        )
    if action == "plan":
        covered = {m["risk_type"] for m in payload["measures"]}
        needed = state["risk_types"] or state["proposed_risk_types"]
        missing = [t for t in needed if t not in covered]
        if missing:
            raise Refusal(
                422,
                "every risk type needs a measure",
                [problem("measures", f"no measure for risk type {t}") for t in missing],
            )
    if action == "deliver" and payload["measure"] >= len(state["plan"]):
        raise Refusal(
            422,
            "no such measure in the plan",
            [problem("measure", f"the plan has {len(state['plan'])} measure(s)")],
        )
    if action == "propose_elimination":
        failed = [c for c in (facts or {}).get("criteria", []) if not c["met"]]
        if failed:
            raise Refusal(
                409,
                "the risk is not eliminated",
                [problem(f"criteria.{c['criterion']}", c["evidence"]) for c in failed],
            )


def apply(state: dict | None, event: dict) -> dict:
    """The case's state after ``event`` (a new state for a lead opening a case)."""
    action, at, p = event["action"], event["at"], event["payload"]
    if state is None or (action == "lead" and not p.get("merged")):
        state = new_state(
            event["case_id"], event["household_id"], event["county_code"], event["village_code"]
        )
        state["opened_at"] = at
    s = dict(state)
    s["seq"], s["updated_at"], s["events"] = event["seq"], at, s["events"] + 1
    s["county_code"], s["village_code"] = event["county_code"], event["village_code"]
    if p.get("decision_id"):
        s["decision_ids"] = [*s["decision_ids"], p["decision_id"]]
    if action == "lead":
        s["sources"] = [*s["sources"], {"source": p["source"], "at": at, "actor": event["actor"]}]
        s["leads"] += 1
        if p.get("risk_types"):
            s["proposed_risk_types"] = list(
                dict.fromkeys([*s["proposed_risk_types"], *p["risk_types"]])
            )
        if p.get("fast_track") and not s["fast_track"]:
            s["fast_track"], s["fast_tracked_at"] = True, at
    elif action == "assign":
        s["status"], s["assignee"], s["assigned_at"] = "assigned", p["caseworker"], at
    elif action == "visit":
        s["visited_at"] = s["last_visit_at"] = at
        if s["assignee"] is None:  # visited without an assignment: the visitor took it
            s["assignee"], s["assigned_at"] = event["actor"].split(":", 1)[-1], at
        s["visit_outcome"], s["coping_capacity"] = p["outcome"], p["coping_capacity"]
        if p.get("risk_types"):
            s["proposed_risk_types"] = list(
                dict.fromkeys([*s["proposed_risk_types"], *p["risk_types"]])
            )
        if p["outcome"] == "drop":
            s["status"], s["closed_at"], s["closed_reason"] = (
                "dropped",
                at,
                "no risk found at the visit",
            )
        else:
            s["status"] = "visited"
            if p["outcome"] == "fast_track" and not s["fast_track"]:
                s["fast_track"], s["fast_tracked_at"] = True, at
    elif action == "cross_check":
        s["status"], s["checked_at"], s["check_result"] = "checked", at, p["result"]
    elif action == "notice":
        s["status"], s["notice_at"] = "noticed", at
    elif action == "township_review":
        s["township_at"] = at
        if p["decision"] == "approve":
            s["status"] = "township_approved"
        else:
            s["status"], s["closed_at"], s["closed_reason"] = (
                "rejected",
                at,
                "rejected by the township",
            )
    elif action == "decide":
        s["decided_at"] = at
        if p["decision"] == "confirm":
            s["status"], s["household_type"], s["risk_types"] = (
                "monitored",
                p["household_type"],
                list(p["risk_types"]),
            )
        else:
            s["status"], s["closed_at"], s["closed_reason"] = (
                "rejected",
                at,
                "rejected by the county",
            )
    elif action == "plan":
        s["plan"], s["planned_at"] = [dict(m) for m in p["measures"]], at
    elif action == "deliver":
        s["deliveries"] = [
            *s["deliveries"],
            {"measure": p["measure"], "delivered_on": p["delivered_on"], "at": at},
        ]
    elif action == "follow_up":
        s["last_visit_at"], s["follow_ups"] = at, s["follow_ups"] + 1
        if p.get("coping_capacity"):
            s["coping_capacity"] = p["coping_capacity"]
    elif action == "propose_elimination":
        s["status"], s["proposed_at"], s["criteria"] = (
            "elimination_proposed",
            at,
            list(p.get("criteria", [])),
        )
    elif action == "elimination_review":
        s["status"] = "elimination_township_approved" if p["decision"] == "approve" else "monitored"
        s["elimination_township_at"] = at
    elif action == "elimination_decide":
        if p["decision"] == "approve":
            s["status"], s["eliminated_at"] = "eliminated", at
        else:
            s["status"] = "monitored"
    elif action == "rollback":
        s["status"], s["rollbacks"], s["eliminated_at"] = "monitored", s["rollbacks"] + 1, None
    return s


# ------------------------------------------------------------------------- clocks
@dataclass(frozen=True)
class Step:
    """What a case waits for: the step, who takes it, from when, and by when."""

    step: str
    role: str
    due_at: str
    not_before: str | None = None


def next_step(s: dict, procedure: Procedure) -> Step | None:
    """The case's next step and its deadline (None for a closed case)."""
    d = procedure.days
    status = s["status"]
    if status in IDENTIFYING:  # identification has its deadline from the lead
        decision_due = _plus_days(s["opened_at"], d("decision"))
    if status == "lead":
        return Step(
            "assign", "township", min(_plus_days(s["opened_at"], d("assign")), decision_due)
        )
    if status == "assigned":
        return Step(
            "visit", "caseworker", min(_plus_days(s["assigned_at"], d("visit")), decision_due)
        )
    if status == "visited":
        return Step(
            "cross_check",
            "county",
            min(_plus_days(s["visited_at"], d("cross_check")), decision_due),
        )
    if status == "checked":
        return Step(
            "notice", "caseworker", min(_plus_days(s["checked_at"], d("notice")), decision_due)
        )
    if status == "noticed":
        ends = _plus_days(s["notice_at"], d("notice_min"))
        return Step(
            "township_review",
            "township",
            max(min(_plus_days(ends, d("township_review")), decision_due), ends),
            ends,
        )
    if status == "township_approved":
        return Step("decide", "county", decision_due)
    if status == "monitored":
        if not s["plan"]:
            return Step("plan", "caseworker", _plus_days(s["decided_at"], d("plan")))
        return Step(
            "follow_up",
            "caseworker",
            _plus_days(s["last_visit_at"] or s["decided_at"], d("follow_up")),
        )
    if status == "elimination_proposed":
        return Step(
            "elimination_review", "township", _plus_days(s["proposed_at"], d("elimination_review"))
        )
    if status == "elimination_township_approved":
        return Step(
            "elimination_decide",
            "county",
            _plus_days(s["elimination_township_at"], d("elimination_review")),
        )
    if status == "eliminated":
        last = max(s["eliminated_at"], s["last_visit_at"] or s["eliminated_at"])
        return Step("follow_up", "caseworker", _plus_days(last, d("after_elimination_follow_up")))
    return None


def clock(s: dict, procedure: Procedure, now: str) -> str | None:
    """'overdue', 'due_soon' or 'on_time' for the case's next step (None when closed)."""
    step = next_step(s, procedure)
    if step is None:
        return None
    if now > step.due_at:
        return "overdue"
    if now >= _plus_days(step.due_at, -procedure.due_soon_days):
        return "due_soon"
    return "on_time"
