"""Writes that happen once: scoring requests with an idempotency key, batch runs that resume.

Idempotency: a request sent with a key stores the key (per caller), the digest of
its body and its decision ids in the transaction of its decisions. The same key
and caller again, with the same body, stores nothing and gets the decisions
stored the first time (``Recorded.replayed``); with another body,
``IdempotencyConflict``. Two requests with one key at once: the database's
primary key on (caller, idempotency_key) lets one commit; the other waits for it
(SQLite: the write lock; PostgreSQL: the unique index) and then replays it.

Batch runs: a run's decisions are stored with (run_id, household_id, period),
unique in ``batch_decisions``. A block whose keys are partly stored already
(a rerun after a crash) stores only the others, in one transaction, and gives
back the stored decision of each of the rest.

The functions take the ledger's write engine (connections that BEGIN IMMEDIATE
on SQLite); ``Ledger`` checks the rows and turns database errors into
``LedgerError``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, func, select
from sqlalchemy.exc import IntegrityError

from riskml.store.tables import batch_decisions, batch_runs, decisions, idempotency_keys

IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
IDEMPOTENCY_KEY_RULE = "must be 1 to 255 visible ASCII characters (no spaces)"
DIGEST = re.compile(r"^[0-9a-f]{64}$")
_IDS_PER_QUERY = 5_000  # bound parameters of one IN list (SQLite allows 32,766 at least)
_ATTEMPTS = 3  # a batch block that met a concurrent writer of the same run is tried again

BY_ID = select(decisions.c.decision_id, decisions.c.result).where(
    decisions.c.decision_id.in_(bindparam("ids", expanding=True))
)
RUN_ITEMS = select(
    batch_decisions.c.household_id, batch_decisions.c.period, batch_decisions.c.decision_id
).where(
    batch_decisions.c.run_id == bindparam("run_id"),
    batch_decisions.c.household_id.in_(bindparam("households", expanding=True)),
)


class IdempotencyConflict(Exception):
    """The caller used this idempotency key before for a request with another body."""

    def __init__(self, request_id: str, created_at: str):
        self.request_id = request_id
        self.created_at = created_at
        super().__init__(
            "this Idempotency-Key was already used for a different request "
            f"(request {request_id}, {created_at}); send a new key for a new request"
        )


@dataclass(frozen=True)
class Recorded:
    """What a request with an idempotency key stored, or had stored the first time."""

    request_id: str  # the first request's when replayed
    created_at: str
    decision_ids: list[str]
    replayed: bool  # True: nothing was stored now; these are the first request's decisions
    # when replayed: the stored result of each decision, in the request's order
    results: list[dict[str, Any] | None] = field(default_factory=list)


@dataclass(frozen=True)
class RunBlock:
    """A block of a batch run: how many decisions it stored, and those stored before."""

    stored: int
    # position in the block -> the decision stored before: {"decision_id", "result"}
    existing: dict[int, dict[str, Any]]


def chunks(items: list[Any], size: int = _IDS_PER_QUERY) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _by_id(conn: Connection, ids: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for part in chunks(sorted(set(ids))):
        out.update(conn.execute(BY_ID, {"ids": part}).all())
    return out


# --------------------------------------------------------------------------- idempotency keys
def _prior(conn: Connection, caller: str, key: str) -> Any:
    k = idempotency_keys.c
    return conn.execute(
        select(idempotency_keys).where(k.caller == caller, k.idempotency_key == key)
    ).first()


def _replayed(conn: Connection, prior: Any, digest: str) -> Recorded:
    if prior.request_digest != digest:
        raise IdempotencyConflict(prior.request_id, prior.created_at)
    ids = list(prior.decision_ids)
    results = _by_id(conn, ids)
    return Recorded(prior.request_id, prior.created_at, ids, True, [results.get(d) for d in ids])


def replay(engine: Engine, caller: str, key: str, digest: str) -> Recorded | None:
    """The decisions a request with this key stored before, or None (IdempotencyConflict)."""
    with engine.connect() as conn:
        prior = _prior(conn, caller, key)
        return None if prior is None else _replayed(conn, prior, digest)


def record_once(
    writer: Engine,
    rows: list[dict[str, Any]],
    *,
    caller: str,
    key: str,
    digest: str,
    request_id: str,
    created_at: str,
) -> Recorded:
    """The rows and the key in one transaction, or the decisions stored before under the key."""
    try:
        with writer.begin() as conn:
            prior = _prior(conn, caller, key)
            if prior is not None:
                return _replayed(conn, prior, digest)
            ids = [r["decision_id"] for r in rows]
            conn.execute(
                idempotency_keys.insert(),
                [
                    {
                        "caller": caller,
                        "idempotency_key": key,
                        "request_digest": digest,
                        "request_id": request_id,
                        "created_at": created_at,
                        "decision_ids": ids,
                    }
                ],
            )
            if rows:
                conn.execute(decisions.insert(), rows)
            return Recorded(request_id, created_at, ids, False)
    except IntegrityError:
        # another request with the key committed while this one waited (PostgreSQL)
        with writer.connect() as conn:
            prior = _prior(conn, caller, key)
            if prior is None:
                raise
            return _replayed(conn, prior, digest)


# --------------------------------------------------------------------------- batch runs
def begin_run(writer: Engine, run: dict[str, Any]) -> bool:
    """The run's row, stored unless it is there: True for a new run, False for a rerun."""
    try:
        with writer.begin() as conn:
            r = batch_runs.c
            if conn.execute(select(r.run_id).where(r.run_id == run["run_id"])).first():
                return False
            conn.execute(batch_runs.insert(), [run])
            return True
    except IntegrityError:
        return False  # another process began the run at the same moment


def run_count(engine: Engine, run_id: str) -> int:
    """Decisions stored for a batch run."""
    stmt = select(func.count()).select_from(batch_decisions)
    with engine.connect() as conn:
        return int(conn.execute(stmt.where(batch_decisions.c.run_id == run_id)).scalar_one())


def _stored_items(conn: Connection, run_id: str, keys: list[tuple[str, str]]) -> dict:
    wanted = set(keys)
    out: dict[tuple[str, str], str] = {}
    for part in chunks(sorted({h for h, _ in keys})):
        for h, p, decision_id in conn.execute(RUN_ITEMS, {"run_id": run_id, "households": part}):
            if (h, p) in wanted:
                out[(h, p)] = decision_id
    return out


def record_run_block(writer: Engine, run_id: str, rows: list[dict[str, Any]]) -> RunBlock:
    """The block's rows not stored for the run yet, in one transaction; the others' stored ones."""
    keys = [(r["household_id"], r["period"]) for r in rows]
    for attempt in range(_ATTEMPTS):
        try:
            with writer.begin() as conn:
                stored = _stored_items(conn, run_id, keys)
                new = [r for r, k in zip(rows, keys, strict=True) if k not in stored]
                if new:
                    conn.execute(decisions.insert(), new)
                    conn.execute(
                        batch_decisions.insert(),
                        [
                            {
                                "run_id": run_id,
                                "household_id": r["household_id"],
                                "period": r["period"],
                                "decision_id": r["decision_id"],
                            }
                            for r in new
                        ],
                    )
                results = _by_id(conn, list(stored.values())) if stored else {}
                existing = {
                    i: {"decision_id": stored[k], "result": results.get(stored[k])}
                    for i, k in enumerate(keys)
                    if k in stored
                }
                return RunBlock(len(new), existing)
        except IntegrityError:
            # another process stored some of these keys first (PostgreSQL): look again
            if attempt == _ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")  # pragma: no cover
