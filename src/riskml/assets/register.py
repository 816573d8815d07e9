"""The asset register on the ledger's database: insert-only events, the current register.

``AssetStore`` keeps every event of an asset in ``asset_events`` (numbered 1, 2, ... per
asset; the ledger's triggers refuse UPDATE, DELETE and TRUNCATE on it as on every table of
the record). A batch of events (``append``; ``register`` for a file of records) is checked
whole, against each asset's latest state and the batch's earlier events, and stored in one
transaction, or nothing is stored. Each event row keeps the state it led to, so the current
register is each asset's latest row (``states``); ``rebuild_check`` replays every event
(``riskml.assets.events.replay``, a pure function) and names the assets whose stored state
differs. ``register_frame`` is the register as a table (one row per asset).
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from riskml.assets import contract as c
from riskml.assets.events import EventError, apply, check, replay
from riskml.assets.validation import AssetSchemaError, missing, parse_date, record_problems
from riskml.data.json_text import dumps
from riskml.store.entries import describe, now_iso
from riskml.store.ledger import Ledger, LedgerError
from riskml.store.tables import asset_events

_RETRIES = 5


class EventsRefused(ValueError):
    """A batch of events refused (nothing stored): names the event's position and the error."""

    def __init__(self, row: int, error: EventError):
        self.row, self.error = row, error
        super().__init__(f"event {row}: {error}; nothing stored")


@dataclass(frozen=True)
class Rebuilt:
    """``rebuild_check``: assets and events replayed, and the assets whose stored state differs."""

    assets: int
    events: int
    mismatched: list[str]
    seconds: float


def canonical_record(rec: dict[str, Any]) -> dict[str, Any]:
    """A valid record with every contract field, in JSON types: whole numbers as int, money as
    float, dates as ``YYYY-MM-DD``, missing as None."""
    out: dict[str, Any] = {}
    for f in c.FIELDS:
        v = rec.get(f.name)
        if isinstance(v, list):
            if f.kind == "funding":
                v = [{"source": i["source"], "amount": float(i["amount"])} for i in v]
            else:
                v = [{"household_id": i["household_id"], "share": float(i["share"])} for i in v]
        elif missing(v):
            v = None
        elif f.kind == "int":
            v = int(v)
        elif f.kind == "float":
            v = float(v)
        elif f.kind == "date":
            v = parse_date(v).isoformat()  # type: ignore[union-attr]
        out[f.name] = v
    return out


def _normal(value: Any) -> Any:
    """A value as it reads back from the database's JSON."""
    return json.loads(dumps(value))


class AssetStore:
    """Asset events on a Ledger's database (thread-safe, like the Ledger)."""

    def __init__(self, ledger: Ledger):
        self.ledger = ledger

    # ------------------------------------------------------------------ reads
    def _rows(self, stmt: Any) -> list[dict[str, Any]]:
        try:
            with self.ledger.engine.connect() as conn:
                rows = [dict(r._mapping) for r in conn.execute(stmt)]
        except SQLAlchemyError as exc:
            raise LedgerError(f"asset register read failed: {describe(exc)}") from exc
        for r in rows:
            for k in ("payload", "state"):
                if isinstance(r.get(k), str):
                    r[k] = json.loads(r[k])
        return rows

    def _latest(self, asset_ids: Sequence[str] | None = None) -> list[dict[str, Any]]:
        e = asset_events.c
        last = select(e.asset_id, func.max(e.seq).label("seq")).group_by(e.asset_id)
        if asset_ids is not None:
            last = last.where(e.asset_id.in_(list(asset_ids)))
        sub = last.subquery()
        stmt = (
            select(asset_events)
            .join(sub, (e.asset_id == sub.c.asset_id) & (e.seq == sub.c.seq))
            .order_by(e.asset_id)
        )
        return self._rows(stmt)

    def states(self, county_code: str | None = None) -> dict[str, dict[str, Any]]:
        """Every asset's current state (its latest event's), by asset id."""
        rows = self._latest()
        return {
            r["asset_id"]: r["state"]
            for r in rows
            if county_code is None or r["county_code"] == county_code
        }

    def state(self, asset_id: str) -> dict[str, Any] | None:
        rows = self._latest([asset_id])
        return rows[0]["state"] if rows else None

    def events(self, asset_id: str | None = None) -> list[dict[str, Any]]:
        """Events in order (each asset's by seq), as ``events.apply`` reads them."""
        e = asset_events.c
        stmt = select(asset_events).order_by(e.asset_id, e.seq)
        if asset_id is not None:
            stmt = stmt.where(e.asset_id == asset_id)
        return [
            {"asset_id": r["asset_id"], "seq": r["seq"], "event": r["event"],
             "date": r["event_date"], "payload": r["payload"], "actor": r["actor"]}
            for r in self._rows(stmt)
        ]  # fmt: skip

    def count(self) -> int:
        with self.ledger.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(asset_events)).scalar_one())

    # ------------------------------------------------------------------ writes
    def register(
        self, records: Sequence[Any], *, actor: str, date: str | None = None
    ) -> list[dict[str, Any]]:
        """Register asset records (each one ``register`` event dated ``date``, default today):
        every record valid and new, or AssetSchemaError / EventsRefused and nothing stored."""
        problems = record_problems(records)
        if problems:
            raise AssetSchemaError(problems)
        when = date or dt.datetime.now(dt.UTC).date().isoformat()
        events = [
            {"asset_id": r["asset_id"], "event": "register", "date": when,
             "payload": {"record": canonical_record(r)}}
            for r in records
        ]  # fmt: skip
        return self.append(events, actor=actor)

    def append(self, events: Sequence[dict[str, Any]], *, actor: str) -> list[dict[str, Any]]:
        """Check and store a batch of events in one transaction; the stored rows. EventsRefused
        (naming the event's position) and nothing stored when any is refused."""
        for attempt in range(_RETRIES):
            rows = self._checked(events, actor)
            try:
                with self.ledger.writer.begin() as conn:
                    if rows:
                        conn.execute(asset_events.insert(), rows)
                return rows
            except IntegrityError:
                # another writer took one of the numbers: check the batch again on its states
                time.sleep(0.01 * (attempt + 1))
            except SQLAlchemyError as exc:
                raise LedgerError(
                    f"nothing stored: writing asset events failed: {describe(exc)}"
                ) from exc
        raise LedgerError("nothing stored: the asset events kept meeting concurrent writes")

    def _checked(self, events: Sequence[dict[str, Any]], actor: str) -> list[dict[str, Any]]:
        ids = sorted({e.get("asset_id") for e in events if isinstance(e.get("asset_id"), str)})
        states: dict[str, dict[str, Any] | None] = {
            r["asset_id"]: r["state"] for r in self._latest(ids)
        } if ids else {}  # fmt: skip
        rows = []
        created = now_iso()
        for k, raw in enumerate(events):
            if not isinstance(raw, dict):
                raise EventsRefused(k, EventError(None, "?", "(event)", "must be a JSON object"))
            event = {key: raw.get(key) for key in ("asset_id", "event", "date", "payload")}
            if not isinstance(event["payload"], dict) and event["payload"] is not None:
                raise EventsRefused(
                    k, EventError(None, str(event["event"]), "payload", "must be a JSON object")
                )
            event["payload"] = _normal(event["payload"] or {})
            state = states.get(event["asset_id"])
            try:
                check(state, event)
            except EventError as exc:
                raise EventsRefused(k, exc) from None
            event["seq"] = (state["seq"] if state else 0) + 1
            new = _normal(apply(state, event))
            states[event["asset_id"]] = new
            rows.append({
                "asset_id": event["asset_id"], "seq": event["seq"], "event_id": uuid.uuid4().hex,
                "event": event["event"], "event_date": str(event["date"])[:10],
                "created_at": created, "actor": actor, "county_code": new["county_code"],
                "village_code": new["village_code"], "status": new["status"],
                "payload": event["payload"], "state": new,
            })  # fmt: skip
        return rows

    # ------------------------------------------------------------------ checks
    def rebuild_check(self) -> Rebuilt:
        """Replay every event and compare with each asset's stored current state."""
        t0 = time.perf_counter()
        events = self.events()
        replayed = {k: _normal(v) for k, v in replay(events).items()}
        stored = self.states()
        mismatched = sorted(
            a for a in set(replayed) | set(stored) if replayed.get(a) != stored.get(a)
        )
        return Rebuilt(len(replayed), len(events), mismatched, time.perf_counter() - t0)


# ---------------------------------------------------------------------- the register as a table
DERIVED_COLUMNS: tuple[str, ...] = (
    "seq", "events", "registered_date", "last_event_date", "incomes", "distributions",
    "maintenance_count", "maintenance_spent", "last_maintenance_date", "last_inspection_date",
    "last_finding", "idle_since", "low_since", "revivals", "contracts", "disposal_method",
    "disposal_date",
)  # fmt: skip


def register_frame(states: dict[str, dict[str, Any]] | Sequence[dict[str, Any]]) -> pd.DataFrame:
    """The current register: one row per asset, the contract's fields then the events' columns
    (``incomes``: {year: yuan}; ``distributions`` and ``revivals``: lists), by asset id."""
    items = list(states.values()) if isinstance(states, dict) else list(states)
    rows = []
    for s in sorted(items, key=lambda s: s["asset_id"]):
        d = s.get("disposal") or {}
        row = {k: s.get(k) for k in c.FIELD_NAMES}
        row.update(
            {k: s.get(k) for k in DERIVED_COLUMNS if k not in ("disposal_method", "disposal_date")}
        )
        row["disposal_method"], row["disposal_date"] = d.get("method"), d.get("date")
        rows.append(row)
    frame = pd.DataFrame(rows, columns=[*c.FIELD_NAMES, *DERIVED_COLUMNS])
    for name in ("original_value", "book_value", "maintenance_fund", "guaranteed_return_rate",
                 "maintenance_spent"):  # fmt: skip
        frame[name] = pd.to_numeric(frame[name], errors="coerce").astype("float64")
    return frame


__all__ = [
    "DERIVED_COLUMNS", "AssetStore", "EventsRefused", "Rebuilt", "canonical_record",
    "register_frame",
]  # fmt: skip
