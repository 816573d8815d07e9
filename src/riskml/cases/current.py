"""Each household's current case as one row: the projection a worklist reads.

``case_current`` (``riskml.store.tables``) holds, per household, its latest event's number
and, as plain columns, the keys of the case's state a worklist, the clocks and the gauges
read (``SUMMARY``; ``plan`` as a flag; the township besides). It is written in the same
transaction as every event, and kept only when that event is the household's newest, so
two concurrent actions leave the newer one. It is derived, never the record: the events
are; ``CaseStore.rebuild`` compares it with the replayed events and can rewrite it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Engine, select
from sqlalchemy.dialects import postgresql, sqlite

from riskml.store.raw import tuples
from riskml.store.tables import case_current

# the keys of a case's state a worklist reads (``worklist.build``, ``machine.next_step``, clocks)
SUMMARY: tuple[str, ...] = (
    "case_id", "household_id", "county_code", "village_code", "status", "assignee",
    "opened_at", "assigned_at", "visited_at", "checked_at", "notice_at", "decided_at", "plan",
    "last_visit_at", "proposed_at", "elimination_township_at", "eliminated_at",
)  # fmt: skip
TOWNSHIP_DIGITS = 9  # a township's code: the first 9 digits of its villages' codes


def summary(state: dict[str, Any]) -> dict[str, Any]:
    """The worklist's view of a case's state (``plan``: whether it has one)."""
    out = {k: state.get(k) for k in SUMMARY}
    out["plan"] = bool(state.get("plan"))
    return out


def row(seq: int, state: dict[str, Any]) -> dict[str, Any]:
    """The projection row of a household whose latest event ``seq`` led to ``state``."""
    return {
        "household_id": state["household_id"], "seq": seq,
        "township_code": state["village_code"][:TOWNSHIP_DIGITS], **summary(state),
    }  # fmt: skip


def summaries(conn: Connection, where: Any = None) -> list[dict[str, Any]]:
    """The summaries of the rows ``where`` selects (None: all)."""
    stmt = select(*[case_current.c[k] for k in SUMMARY])
    if where is not None:
        stmt = stmt.where(where)
    out = [dict(zip(SUMMARY, r, strict=True)) for r in tuples(conn, stmt)]
    for d in out:
        d["plan"] = bool(d["plan"])
    return out


def upsert(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Write the rows, each kept only over an older event of its household (same transaction
    as the events)."""
    if not rows:
        return
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(case_current)
    keep = {c.name: stmt.excluded[c.name] for c in case_current.columns if c.name != "household_id"}
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=[case_current.c.household_id],
            set_=keep,
            where=case_current.c.seq < stmt.excluded.seq,
        ),
        rows,
    )


def is_empty(engine: Engine) -> bool:
    with engine.connect() as conn:
        return conn.execute(select(case_current.c.household_id).limit(1)).first() is None


def stored(engine: Engine) -> dict[str, dict[str, Any]]:
    """Every household's projection row (as ``row`` makes it), by household."""
    with engine.connect() as conn:
        result = conn.execute(select(case_current))
        keys = list(result.keys())
        return {r[0]: dict(zip(keys, r, strict=True)) for r in result}


__all__ = [
    "SUMMARY", "TOWNSHIP_DIGITS", "is_empty", "row", "stored", "summaries", "summary", "upsert",
]  # fmt: skip
