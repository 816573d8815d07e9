"""The case loop over HTTP, free of any web framework: ``CaseDesk`` turns calls into case actions.

Every action is ``act(household_id, action, body)``: the key's principal becomes the actor
(its id, role and villages, townships and counties), the body is checked field by field, and
the action is stored as one case event (``riskml.cases.store``). A visit (and a follow-up)
carries a household record: the fields the visit collected, laid over the household's latest
record, validated like any record and scored through the same decision path as ``/score``;
the decision is stored in the same transaction as the event, so the decision history shows
the visit. A proposal of risk elimination is checked against the criteria computed here
from the household's records (``riskml.cases.elimination``), never from what a client sends.

Answers: 200/201 with the case; 401 without a valid key; 403 for a role that may not act or a
household outside the key's scope; 404 for an unknown case (and a household out of scope);
409 for a wrong transition (naming the status and what is allowed now); 422 naming the field.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import Counter
from datetime import UTC, date, datetime
from typing import Any

from riskml.cases import elimination, notice, support, worklist
from riskml.cases.fields import ALLOWED_FIELDS
from riskml.cases.machine import ACTIONS, CLOSED, Actor, Refusal, clock, next_step
from riskml.cases.store import Acted, CaseStore
from riskml.data import schema
from riskml.store.entries import now_iso
from riskml.store.latest import latest_scores
from riskml.store.ledger import LedgerError
from riskml.store.once import IDEMPOTENCY_KEY, IDEMPOTENCY_KEY_RULE

log = logging.getLogger("riskml.cases")

NOT_FOUND = {"error": "no such case or household"}
NOT_FOUND_LEAD = {
    "error": "no such household in this key's scope: a lead for a household riskml has not "
    "seen gives its county_code and village_code"
}
RECORD_ACTIONS = ("visit", "follow_up")
CASE_ACTIONS = ("lead", *ALLOWED_FIELDS)


def actor_of(principal: Any) -> Actor:
    """The case actor of an authenticated key."""
    return Actor(
        principal.id,
        principal.role,
        frozenset(principal.villages),
        frozenset(getattr(principal, "townships", ()) or ()),
        frozenset(principal.counties),
    )


def _reply(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
    """A Reply; problems in the API's one form (index and household_id null: not a batch)."""
    from riskml.service.core import Reply

    if "problems" in body:
        problems = [
            {
                "index": p.get("index"),
                "household_id": p.get("household_id"),
                "field": p["field"],
                "problem": p["problem"],
            }  # fmt: skip
            for p in body["problems"]
        ]
        body = {**body, "problems": problems, "problems_total": len(problems)}
        if not problems:
            body.pop("problems")
            body.pop("problems_total")
    return Reply(status, body, headers or {})


def _refusal(exc: Refusal) -> Any:
    return _reply(exc.status, {"error": exc.message, "problems": exc.problems})


def case_view(state: dict[str, Any], procedure: Any, now: str | None = None) -> dict[str, Any]:
    """A case as the API shows it: its state, its next step and clock."""
    now = now or now_iso()
    step = next_step(state, procedure)
    return {
        **state,
        "next_step": step.__dict__ if step else None,
        "clock": clock(state, procedure, now),
        "open": state["status"] not in CLOSED,
    }


class CaseDesk:
    """The case loop's calls, on a ScoringService's keys, model and ledger."""

    METRICS_TTL_S = 30.0

    def __init__(self, service: Any, store: CaseStore | None = None):
        self.service = service
        self.store = store or CaseStore(service.ledger)
        self.procedure = self.store.procedure
        self.actions: Counter[tuple[str, int]] = Counter()
        self._gauges: tuple[float, dict[tuple[str, str], int]] = (0.0, {})
        self._gauge_lock = threading.Lock()

    # ------------------------------------------------------------------ helpers
    def _principal(self, authorization: str | None) -> tuple[Any, Any]:
        principal = self.service.authenticate(authorization)
        if principal is None:
            return None, _reply(
                401, {"error": "missing or invalid API key"}, {"WWW-Authenticate": "Bearer"}
            )
        if principal.role not in ("caseworker", "township", "county", "admin"):
            return principal, _reply(403, {"error": f"role {principal.role} has no case access"})
        return principal, None

    def _visible(self, principal: Any, household_id: str) -> tuple[str, str] | None:
        """Where the household is, when the key may see it (None: unknown or out of scope)."""
        here = self.service.ledger.locations([household_id]).get(household_id)
        if here is None:
            latest = self.store.latest(household_id)
            here = (latest["county_code"], latest["village_code"]) if latest else None
        if here is None or not actor_of(principal).covers(here[1]):
            return None
        return here

    def _count(self, action: str, status: int) -> None:
        self.actions[(action, status)] += 1

    # ------------------------------------------------------------------ reads
    def household_case(self, authorization: str | None, household_id: str) -> Any:
        principal, denied = self._principal(authorization)
        if denied:
            return denied
        if self._visible(principal, household_id) is None:
            return _reply(404, NOT_FOUND)
        cases = self.store.household_cases(household_id)
        self.service.ledger.log_access(
            principal.id, principal.role, "read_cases", household_id=household_id
        )
        return _reply(
            200,
            {
                "household_id": household_id,
                "current": case_view(cases[-1], self.procedure) if cases else None,
                "cases": [c["case_id"] for c in cases],
            },
        )

    def case(self, authorization: str | None, case_id: str) -> Any:
        principal, denied = self._principal(authorization)
        if denied:
            return denied
        state = self.store.case(case_id)
        if state is None or not actor_of(principal).covers(state["village_code"]):
            return _reply(404, NOT_FOUND)
        events = [
            {
                k: e[k]
                for k in ("seq", "event_id", "created_at", "actor", "action", "status", "payload")
            }
            for e in self.store.events(case_id)
        ]
        self.service.ledger.log_access(
            principal.id, principal.role, "read_case", household_id=state["household_id"]
        )
        return _reply(200, {"case": case_view(state, self.procedure), "events": events})

    def scoped_cases(
        self, principal: Any, statuses: list[str] | None = None, *, summary: bool = False
    ) -> list[dict]:
        a = actor_of(principal)
        if a.role == "admin":
            return self.store.current_cases(statuses=statuses, summary=summary)
        return self.store.current_cases(
            sorted(a.counties), sorted(a.villages), sorted(a.townships), statuses=statuses,
            summary=summary,
        )  # fmt: skip

    def worklist(self, authorization: str | None, now: str | None = None) -> Any:
        principal, denied = self._principal(authorization)
        if denied:
            return denied
        wl = self.worklist_for(principal, now)
        return _reply(200, wl.as_dict(limit_beyond=50))

    def worklist_for(self, principal: Any, now: str | None = None) -> worklist.Worklist:
        now = now or now_iso()
        a = actor_of(principal)
        engine = self.service.ledger.engine
        if a.role == "admin":
            decisions = latest_scores(engine)
        elif a.role in ("caseworker", "township", "county"):
            decisions = latest_scores(
                engine, sorted(a.counties), sorted(a.villages), sorted(a.townships)
            )
        else:
            decisions = []
        return worklist.build(
            principal.role,
            self.scoped_cases(principal, list(worklist.LISTED_STATUSES), summary=True),
            decisions,
            self.procedure,
            now,
            assignee=principal.id if principal.role == "caseworker" else None,
        )

    def suggestion(self, authorization: str | None, household_id: str) -> Any:
        """The suggested support plan, the public-notice text and the elimination criteria now."""
        principal, denied = self._principal(authorization)
        if denied:
            return denied
        if self._visible(principal, household_id) is None:
            return _reply(404, NOT_FOUND)
        state = self.store.current(household_id)
        if state is None:
            return _reply(404, NOT_FOUND)
        return _reply(200, self.aids(state))

    def aids(self, state: dict[str, Any], now: str | None = None) -> dict[str, Any]:
        records = self.records(state["household_id"])
        latest = records[-1] if records else None
        types = state["risk_types"] or state["proposed_risk_types"] or ["other"]
        today = date.fromisoformat((now or now_iso())[:10])
        return {
            "suggested_plan": support.suggest(types, latest, today),
            "notice": notice.notice(
                state,
                latest["household_size"] if latest else None,
                today,
                self.procedure.days("notice_min"),
            ),  # fmt: skip
            "elimination": elimination.criteria(
                state, records, self.lines(), self.procedure, now or now_iso()
            ),
        }

    def records(self, household_id: str) -> list[dict[str, Any]]:
        """The household's records, oldest first, one per period (the latest decision of each)."""
        by_period: dict[str, dict[str, Any]] = {}
        for d in self.service.ledger.household_history(household_id):
            if d["status"] == "completed":
                by_period[d["period"]] = d["record"]
        return [by_period[p] for p in sorted(by_period)]

    def lines(self) -> Any:
        loaded = self.service.loaded
        if loaded is not None:
            return self.service.scoring_model(loaded).lines
        from riskml.data.reference import default_lines

        return default_lines()

    # ------------------------------------------------------------------ actions
    def act(
        self,
        authorization: str | None,
        household_id: str,
        action: str,
        body: Any,
        idempotency_key: str | None = None,
        case_id: str | None = None,
    ) -> Any:
        principal, denied = self._principal(authorization)
        if denied:
            self._count(action if action in CASE_ACTIONS else "unknown", denied.status)
            return denied
        return self.act_as(principal, household_id, action, body, idempotency_key, case_id)

    def act_as(
        self,
        principal: Any,
        household_id: str,
        action: str,
        body: Any,
        idempotency_key: str | None = None,
        case_id: str | None = None,
    ) -> Any:
        """``act`` for a principal already authenticated (a page's session)."""
        reply = self._act(principal, household_id, action, body, idempotency_key, case_id)
        self._count(action if action in CASE_ACTIONS else "unknown", reply.status)
        return reply

    def _act(self, principal, household_id, action, body, idempotency_key, case_id) -> Any:
        if action not in ACTIONS:
            return _reply(404, {"error": f"no such case action {action!r}", "problems": [
                {"field": "action", "problem": f"one of {', '.join(ACTIONS)}"}]})  # fmt: skip
        if idempotency_key is not None and not IDEMPOTENCY_KEY.match(idempotency_key):
            return _reply(422, {"error": "invalid request", "problems": [
                {"field": "Idempotency-Key", "problem": IDEMPOTENCY_KEY_RULE}]})  # fmt: skip
        if not isinstance(body, dict):
            return _reply(422, {"error": "invalid request", "problems": [
                {"field": "(body)", "problem": "must be a JSON object"}]})  # fmt: skip
        if not isinstance(household_id, str) or schema.pseudonymous_id(household_id) is None:
            return _reply(404, NOT_FOUND)
        actor = actor_of(principal)
        where = None
        payload = dict(body)
        if action == "lead" and ("county_code" in payload or "village_code" in payload):
            where = (payload.pop("county_code", None), payload.pop("village_code", None))
            if not (
                isinstance(where[0], str)
                and isinstance(where[1], str)
                and re.fullmatch(r"[0-9]{6}", where[0])
                and re.fullmatch(r"[0-9]{12}", where[1])
                and where[1].startswith(where[0])
            ):
                return _reply(422, {"error": "invalid request", "problems": [{"field": "village_code",
                    "problem": "county_code (6 digits) and village_code (12 digits, starting with it) go together"}]})  # fmt: skip
        if where is None and self._visible(principal, household_id) is None:
            # one answer for unknown and out of scope (says nothing of existence); a lead for
            # a household riskml has not seen names its place
            return _reply(404, NOT_FOUND_LEAD if action == "lead" else NOT_FOUND)
        if idempotency_key is not None:
            prior = self.store.find_replay(actor, idempotency_key)
            if prior is not None:
                try:
                    acted = self.store.replayed_event(prior, household_id, action)
                except Refusal as exc:
                    return _refusal(exc)
                return self._acted(acted)
        facts: dict[str, Any] = {}
        entries: list[dict[str, Any]] | None = None
        try:
            if action in RECORD_ACTIONS:
                record = payload.pop("record", None)
                refused, entries, facts = self._visit_record(principal, household_id, record)
                if refused is not None:
                    return refused
            if action == "propose_elimination":
                state = self.store.current(household_id)
                if state is not None:
                    records = self.records(household_id)
                    facts["criteria"] = elimination.criteria(
                        state, records, self.lines(), self.procedure, now_iso()
                    )
            if action == "notice":
                state = self.store.current(household_id)
                if state is not None:
                    facts["notice_text"] = self.aids(state)["notice"]["zh"]
            acted = self.store.act(
                actor, household_id, action, payload, case_id=case_id, where=where,
                facts=facts, decisions_=entries, idempotency_key=idempotency_key,
            )  # fmt: skip
        except Refusal as exc:
            return _refusal(exc)
        except LedgerError as exc:
            log.error("case action %s not stored: %s", action, type(exc).__name__)
            return _reply(503, {"error": "the case store could not be written; nothing was stored"})
        return self._acted(acted, status=201 if action == "lead" else 200)

    def _acted(self, acted: Acted, status: int = 200) -> Any:
        headers = {"Idempotent-Replayed": "true"} if acted.replayed else {}
        return _reply(
            status,
            {
                "case": case_view(acted.state, self.procedure),
                "event": {k: acted.event[k] for k in ("event_id", "seq", "at", "actor", "action")},
            },  # fmt: skip
            headers,
        )

    def _visit_record(
        self, principal: Any, household_id: str, record: Any
    ) -> tuple[Any, list, dict]:
        """The visit's record laid over the latest one, decided; (refusal, ledger entries, facts)."""
        if record is None:
            return _reply(422, {"error": "invalid request", "problems": [
                {"field": "record", "problem": "a visit carries the household record it collected (the fields seen; the rest come from the latest record)"}]}), [], {}  # fmt: skip
        if not isinstance(record, dict):
            return _reply(422, {"error": "invalid request", "problems": [
                {"field": "record", "problem": "must be a JSON object of record fields"}]}), [], {}  # fmt: skip
        unknown = sorted(set(record) - set(schema.FIELD_NAMES))
        if unknown:
            return _reply(422, {"error": "invalid request", "problems": [
                {"field": f"record.{k}"[:80], "problem": "not a field of the household record"} for k in unknown[:20]]}), [], {}  # fmt: skip
        loaded = self.service.loaded
        if loaded is None:
            return _reply(503, {"error": "not ready: no model loaded"}), [], {}
        history = self.records(household_id)
        base = dict(history[-1]) if history else {}
        merged = {**base, **record, "household_id": household_id}
        merged.setdefault("period", datetime.now(UTC).strftime("%Y-%m"))
        if "period" not in record:
            merged["period"] = datetime.now(UTC).strftime("%Y-%m")
        refused, results, entries = self.service.decide_records(
            [merged], "flagged", loaded, principal, write_scope=False
        )
        if refused is not None:
            body = dict(refused.body)
            body["problems"] = [
                {**p, "field": f"record.{p['field']}"} for p in body.get("problems", [])
            ]
            return _reply(refused.status, body), [], {}
        return (
            None,
            entries,
            {"decision_id": results[0]["decision_id"], "record_period": merged["period"]},
        )

    # ------------------------------------------------------------------ metrics
    def gauges(self) -> dict[tuple[str, str], int]:
        """Open cases by status and clock (overdue, due_soon, on_time), cached a few seconds."""
        with self._gauge_lock:
            at, cached = self._gauges
            if time.monotonic() - at < self.METRICS_TTL_S and cached:
                return cached
            now = now_iso()
            counts: Counter[tuple[str, str]] = Counter()
            for s in self.store.current_cases(summary=True):
                counts[(s["status"], clock(s, self.procedure, now) or "closed")] += 1
            self._gauges = (time.monotonic(), dict(counts))
            return self._gauges[1]


class CaseMetrics:
    """The case loop in ``/metrics`` (no household ids): current cases by status and clock
    (``overdue``, ``due_soon``, ``on_time``; ``closed`` for rejected and dropped), and the
    actions answered, by action and HTTP status."""

    def collect(self) -> Any:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        from riskml.service import state

        if state.bound() is None:
            return
        desk = state.desk()
        cases = GaugeMetricFamily(
            "riskml_cases", "Current cases by status and deadline clock", labels=["status", "clock"]
        )
        try:
            for (status, clk), n in sorted(desk.gauges().items()):
                cases.add_metric([status, clk], n)
        except LedgerError:
            pass  # the store cannot be read: no gauge rather than a failed scrape
        yield cases
        actions = CounterMetricFamily(
            "riskml_case_actions",
            "Case actions answered, by action and status",
            labels=["action", "status"],
        )
        for (action, status), n in sorted(desk.actions.items()):
            actions.add_metric([action, str(status)], n)
        yield actions
