"""The case store: insert-only case events in the decision ledger's database.

Every action is one event, written in one transaction with whatever it stores beside it
(a visit's scored record goes to the decision ledger in the same transaction). There is no
update or delete: the ledger's triggers refuse them on ``case_events`` as on every table.
The state of a case is ``riskml.cases.machine.apply`` folded over its events; each event
row also keeps the state it led to, and each household's current case is also one row of
``case_current`` (``riskml.cases.current``, written with the event), so reading a county's
current cases is one indexed range. ``rebuild`` replays every event and checks the stored
states and the current rows against the replay (and rewrites the current rows on request).

One open case per household: a household's events are numbered 1, 2, ... across its cases
(the primary key), an action is checked against the household's latest event and stored
with the next number, so of two concurrent actions the second is checked again on the
state the first one made. A lead on a household with an open case is merged into it
(recorded, ``merged``); after a closed case (eliminated, rejected, dropped) it opens a new one.
"""

from __future__ import annotations

import gc
import json
import logging
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from riskml.cases import current as projection
from riskml.cases import machine
from riskml.cases.machine import Actor, Refusal
from riskml.cases.procedure import Procedure
from riskml.cases.procedure import load as load_procedure
from riskml.store.entries import describe, new_decision_id, now_iso, rows_from_entries
from riskml.store.ledger import Ledger, LedgerError
from riskml.store.tables import case_current, case_events, decisions

log = logging.getLogger("riskml.cases")

_RETRIES = 8


@dataclass(frozen=True)
class Acted:
    """An action stored (or, for a retried Idempotency-Key, the one stored the first time)."""

    event: dict[str, Any]
    state: dict[str, Any]
    replayed: bool = False


@dataclass(frozen=True)
class Rebuilt:
    """``CaseStore.rebuild``: cases and events replayed, and the cases whose stored state differs."""

    cases: int
    events: int
    households: int
    mismatched: list[str]
    seconds: float
    current_mismatched: int = 0  # households whose ``case_current`` row differs (or is missing)
    current_repaired: int = 0  # of them, rewritten (``rebuild(repair=True)``)


def _event_row(row: Any) -> dict[str, Any]:
    m = dict(row._mapping)
    for k in ("payload", "state"):
        if isinstance(m.get(k), str):
            m[k] = json.loads(m[k])
    return m


def _event(row: dict[str, Any]) -> dict[str, Any]:
    """The event as ``machine.apply`` reads it."""
    return {
        "event_id": row["event_id"], "case_id": row["case_id"], "household_id": row["household_id"],
        "seq": row["seq"], "at": row["created_at"], "actor": row["actor"],
        "county_code": row["county_code"], "village_code": row["village_code"],
        "action": row["action"], "payload": row["payload"],
    }  # fmt: skip


class CaseStore:
    """Cases on a Ledger's database (thread-safe, like the Ledger)."""

    def __init__(self, ledger: Ledger, procedure: Procedure | None = None):
        self.ledger = ledger
        self.procedure = procedure or load_procedure()
        if projection.is_empty(ledger.engine) and self.count():
            self.rebuild(repair=True)  # a database from before ``case_current``: fill it

    # ------------------------------------------------------------------ reads
    def _rows(self, stmt: Any) -> list[dict[str, Any]]:
        try:
            with self.ledger.engine.connect() as conn:
                return [_event_row(r) for r in conn.execute(stmt)]
        except SQLAlchemyError as exc:
            raise LedgerError(f"case store read failed: {describe(exc)}") from exc

    def latest(self, household_id: str) -> dict[str, Any] | None:
        """The household's latest event row (its current case's state is ``["state"]``)."""
        e = case_events.c
        rows = self._rows(
            select(case_events)
            .where(e.household_id == household_id)
            .order_by(e.seq.desc())
            .limit(1)
        )
        return rows[0] if rows else None

    def current(self, household_id: str) -> dict[str, Any] | None:
        """The state of the household's current (latest) case, or None."""
        row = self.latest(household_id)
        return row["state"] if row else None

    def events(self, case_id: str) -> list[dict[str, Any]]:
        """Every event of a case, in order."""
        e = case_events.c
        return self._rows(select(case_events).where(e.case_id == case_id).order_by(e.seq))

    def case(self, case_id: str) -> dict[str, Any] | None:
        """The case's state after its latest event, or None for an unknown case id."""
        e = case_events.c
        rows = self._rows(
            select(case_events).where(e.case_id == case_id).order_by(e.seq.desc()).limit(1)
        )
        return rows[0]["state"] if rows else None

    def household_cases(self, household_id: str) -> list[dict[str, Any]]:
        """Every case of a household (its state after its last event), oldest first."""
        e = case_events.c
        rows = self._rows(select(case_events).where(e.household_id == household_id).order_by(e.seq))
        last: dict[str, dict[str, Any]] = {}
        for r in rows:
            last[r["case_id"]] = r["state"]
        return list(last.values())

    def current_cases(
        self,
        county_codes: Sequence[str] | None = None,
        village_codes: Sequence[str] | None = None,
        township_codes: Sequence[str] | None = None,
        statuses: Sequence[str] | None = None,
        *,
        summary: bool = False,
    ) -> list[dict[str, Any]]:
        """The current case of every household in scope (None everywhere: all), optionally by status.

        Scope: in any of the counties, villages or townships given (an empty scope: nothing).
        A household's current case is its latest event anywhere: one moved out of the scope is
        not in it. ``summary``: only what a worklist reads (``current.SUMMARY``), from the
        ``case_current`` rows alone; else each case's whole state.
        """
        c = case_current.c
        where = []
        if county_codes is not None or village_codes is not None or township_codes is not None:
            ors = []
            if county_codes:
                ors.append(c.county_code.in_(sorted(county_codes)))
            if village_codes:
                ors.append(c.village_code.in_(sorted(village_codes)))
            if township_codes:
                ors.append(c.township_code.in_(sorted(township_codes)))
            if not ors:
                return []
            where.append(or_(*ors))
        if statuses is not None:
            where.append(c.status.in_(list(statuses)))
        try:
            with self.ledger.engine.connect() as conn:
                if summary:
                    return projection.summaries(conn, and_(*where) if where else None)
                stmt = select(case_events.c.state).join(
                    case_current,
                    and_(case_events.c.household_id == c.household_id, case_events.c.seq == c.seq),
                )
                values = conn.execute(stmt.where(*where)).scalars().all()
        except SQLAlchemyError as exc:
            raise LedgerError(f"case store read failed: {describe(exc)}") from exc
        return [json.loads(v) if isinstance(v, str) else v for v in values]

    def find_replay(self, actor: Actor, idempotency_key: str) -> dict[str, Any] | None:
        """The event an actor stored with this Idempotency-Key, if any."""
        rows = self._rows(
            select(case_events).where(
                case_events.c.request_key == _request_key(actor, idempotency_key)
            )
        )
        return rows[0] if rows else None

    def iter_events(self, batch: int = 50_000) -> Iterator[list[dict[str, Any]]]:
        """Every event, by household then number, in batches (for rebuilds and outcomes)."""
        e = case_events.c
        after: tuple[str, int] = ("", 0)
        while True:
            stmt = (
                select(
                    e.household_id,
                    e.seq,
                    e.event_id,
                    e.case_id,
                    e.created_at,
                    e.actor,
                    e.county_code,
                    e.village_code,
                    e.action,
                    e.payload,
                    e.status,
                )  # fmt: skip
                .where(
                    or_(
                        e.household_id > after[0],
                        and_(e.household_id == after[0], e.seq > after[1]),
                    )
                )
                .order_by(e.household_id, e.seq)
                .limit(batch)
            )
            rows = self._rows(stmt)
            if not rows:
                return
            yield rows
            after = (rows[-1]["household_id"], rows[-1]["seq"])

    def count(self) -> int:
        with self.ledger.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(case_events)).scalar_one())

    # ------------------------------------------------------------------ writes
    def act(
        self,
        actor: Actor,
        household_id: str,
        action: str,
        payload: dict[str, Any],
        *,
        case_id: str | None = None,
        where: tuple[str, str] | None = None,
        facts: dict[str, Any] | None = None,
        decisions_: list[dict[str, Any]] | None = None,
        idempotency_key: str | None = None,
        at: str | None = None,
    ) -> Acted:
        """Check and store one action on the household's current case; Refusal when not allowed.

        ``case_id``: the case the caller acts on (409 when it is not the household's current
        case). ``where``: (county, village) of a household with no case yet (for a lead; else
        the ledger's registered location is used). ``facts``: fields riskml sets (a visit's
        decision_id, an elimination's criteria). ``decisions_``: ledger entries stored in the
        same transaction (a visit's scored record). ``at``: the time of the action (default now;
        simulations pass their clock).
        """
        if idempotency_key is not None:
            prior = self.find_replay(actor, idempotency_key)
            if prior is not None:
                return self.replayed_event(prior, household_id, action)
        for _attempt in range(_RETRIES):
            now = at or now_iso()
            latest = self.latest(household_id)
            state = latest["state"] if latest else None
            if case_id is not None and (state is None or state["case_id"] != case_id):
                raise Refusal(409, "not the household's current case", [
                    {"field": "case_id", "problem": "the household has a newer case, or this case is not its"}
                ])  # fmt: skip
            county, village = self._where(household_id, where, latest)
            # a lead merges into an open case, else opens one; any other action is on the
            # current case (a closed one refuses it as a wrong transition)
            on = state
            if action == "lead" and state is not None and state["status"] in machine.CLOSED:
                on = None
            machine.check(on, action, payload, actor, now, self.procedure, village, facts)
            body = {**payload, **(facts or {})}
            if action == "lead" and on is not None:
                body["merged"] = True
            event = {
                "event_id": new_decision_id(),
                "case_id": on["case_id"] if on is not None else uuid.uuid4().hex,
                "household_id": household_id, "seq": (latest["seq"] if latest else 0) + 1,
                "at": now, "actor": actor.name, "county_code": county, "village_code": village,
                "action": action, "payload": body,
            }  # fmt: skip
            after = machine.apply(on, event)
            row = {
                "household_id": household_id, "seq": event["seq"], "event_id": event["event_id"],
                "case_id": event["case_id"], "created_at": now, "actor": actor.name,
                "county_code": county, "village_code": village, "action": action,
                "status": after["status"], "payload": body, "state": after,
                "request_key": _request_key(actor, idempotency_key) if idempotency_key else None,
            }  # fmt: skip
            try:
                with self.ledger.writer.begin() as conn:
                    if decisions_:
                        conn.execute(
                            decisions.insert(),
                            rows_from_entries(
                                decisions_,
                                caller=actor.name,
                                request_id=event["event_id"],
                                created_at=now,
                            ),  # fmt: skip
                        )
                    conn.execute(case_events.insert(), [row])
                    projection.upsert(conn, [projection.row(event["seq"], after)])
            except IntegrityError as exc:
                if idempotency_key is not None:
                    prior = self.find_replay(actor, idempotency_key)
                    if prior is not None:
                        return self.replayed_event(prior, household_id, action)
                if "decision" in str(exc.orig).lower():
                    raise LedgerError(f"nothing stored: {describe(exc)}") from exc
                time.sleep(0.001 * (_attempt + 1))  # another action took this number: re-check
                continue
            except SQLAlchemyError as exc:
                log.error("case store write failed: %s", describe(exc))
                raise LedgerError(
                    f"nothing stored: writing the {action} failed: {describe(exc)}"
                ) from exc
            return Acted(event, after)
        raise LedgerError(
            "nothing stored: the household's case changed too often while acting; retry"
        )

    def _where(
        self, household_id: str, where: tuple[str, str] | None, latest: dict[str, Any] | None
    ) -> tuple[str, str]:
        """Where the household is: registered in the ledger (a move follows it), else where its
        case is, else ``where`` (a lead for a household riskml has not seen)."""
        known = self.ledger.locations([household_id]).get(household_id)
        if known is None and latest is not None:
            known = (latest["county_code"], latest["village_code"])
        if known is not None:
            if where is not None and tuple(where) != known:
                field_ = "county_code" if where[0] != known[0] else "village_code"
                raise Refusal(409, "the household is registered elsewhere", [
                    {"field": field_, "problem": "the household is registered in another county or village (moving it is an admin's act)"}
                ])  # fmt: skip
            return known
        if where is None:
            raise Refusal(422, "unknown household", [
                {"field": "village_code", "problem": "the household has no record or case here: give county_code and village_code"}
            ])  # fmt: skip
        return where[0], where[1]

    @staticmethod
    def replayed_event(prior: dict[str, Any], household_id: str, action: str) -> Acted:
        if prior["household_id"] != household_id or prior["action"] != action:
            raise Refusal(422, "idempotency key reused", [
                {"field": "Idempotency-Key", "problem": "this key was used for another action; use a new key for a new action"}
            ])  # fmt: skip
        return Acted(_event(prior), prior["state"], replayed=True)

    # ------------------------------------------------------------------ rebuild
    def rebuild(self, batch: int = 20_000, *, repair: bool = False) -> Rebuilt:
        """Replay every event through ``machine.apply``; compare with each case's stored state
        and each household's ``case_current`` row (``repair``: rewrite the rows that differ).

        One query streamed in (household, number) order; the garbage collector is paused
        while every case's state stays live (it would walk them over and over).
        """
        t0, e = time.perf_counter(), case_events.c
        cols = (e.event_id, e.case_id, e.household_id, e.seq, e.created_at.label("at"), e.actor,
                e.county_code, e.village_code, e.action, e.payload, e.status)  # fmt: skip
        stmt = select(*cols).order_by(e.household_id, e.seq)
        keys = [c.name for c in stmt.selected_columns]
        states: dict[str, dict[str, Any]] = {}
        stored: dict[str, str] = {}  # case_id -> status stored with its last event
        latest: dict[str, tuple[int, dict[str, Any]]] = {}  # household -> (seq, state)
        n = 0
        current: dict[str, Any] | None = None
        was = gc.isenabled()
        gc.disable()
        try:
            with self.ledger.engine.connect() as conn:
                for row in conn.execution_options(yield_per=batch).execute(stmt):
                    n += 1
                    ev = dict(zip(keys, row, strict=True))  # the event as apply reads it
                    if isinstance(ev["payload"], str):
                        ev["payload"] = json.loads(ev["payload"])
                    other = current is None or current["household_id"] != ev["household_id"]
                    if other or (ev["action"] == "lead" and not ev["payload"].get("merged")):
                        current = None  # another household's case, or a new case
                    current = states[ev["case_id"]] = machine.apply(current, ev)
                    stored[ev["case_id"]] = ev["status"]
                    latest[ev["household_id"]] = (ev["seq"], current)
            kept = projection.stored(self.ledger.engine)
        except SQLAlchemyError as exc:
            raise LedgerError(f"case store read failed: {describe(exc)}") from exc
        finally:
            if was:
                gc.enable()
        mismatched = sorted(c for c, s in states.items() if s["status"] != stored[c])
        differ = [
            (h, seq, state, h in kept)
            for h, (seq, state) in latest.items()
            if kept.get(h) != projection.row(seq, state)
        ]
        extra = sorted(set(kept) - set(latest))  # a row with no events: never written by act
        repaired = self._repair(differ, extra) if repair else 0
        return Rebuilt(
            len(states), n, len(latest), mismatched, time.perf_counter() - t0,
            len(differ) + len(extra), repaired,
        )  # fmt: skip

    def _repair(self, differ: list[tuple[str, int, dict[str, Any], bool]], extra: list[str]) -> int:
        """Rewrite the current rows that differ from the replay, in one transaction; a row a
        concurrent action has made newer meanwhile is left as that action wrote it."""
        c = case_current.c
        try:
            with self.ledger.writer.begin() as conn:
                if extra:
                    conn.execute(case_current.delete().where(c.household_id.in_(extra)))
                for i in range(0, len(differ), 5_000):
                    part = differ[i : i + 5_000]
                    for h, seq, _, had_row in part:
                        if had_row:
                            conn.execute(
                                case_current.delete().where(c.household_id == h, c.seq <= seq)
                            )
                    projection.upsert(conn, [projection.row(seq, st) for _, seq, st, _ in part])
        except SQLAlchemyError as exc:
            raise LedgerError(f"nothing repaired: {describe(exc)}") from exc
        return len(differ) + len(extra)


def _request_key(actor: Actor, key: str) -> str:
    return f"{actor.name}\x1f{key}"[:400]


__all__ = ["Acted", "Actor", "CaseStore", "Rebuilt", "Refusal"]
