"""Each household's latest decision, kept by the database: ``latest_decisions``.

A trigger on every insert into ``decisions`` (SQLite and PostgreSQL) writes the new
decision's worklist columns over the household's row when it is later by
``DECISION_ORDER`` (period, created_at, decision_id), so every writer keeps it (the API,
batch runs, alerts, visits) and two concurrent writers leave the later decision. A county's
worklist then reads one row per household in scope, not every decision it ever had. The
rows are derived: ``create`` fills the table from ``decisions`` when a ledger made before
it opens, and ``check`` compares it with a ranking of ``decisions``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Engine, func, or_, select

from riskml.store.raw import tuples
from riskml.store.tables import DECISION_ORDER, decisions, latest_decisions

COLUMNS = (
    "household_id", "decision_id", "period", "created_at", "county_code", "township_code",
    "village_code", "score", "risk_level", "flagged", "flagged_by",
)  # fmt: skip
_FROM_NEW = ", ".join(
    "substr(NEW.village_code, 1, 9)" if c == "township_code" else f"NEW.{c}" for c in COLUMNS
)
_SET = ", ".join(f"{c} = excluded.{c}" for c in COLUMNS if c != "household_id")
_LATER = (
    f"({', '.join(f'excluded.{c}' for c in DECISION_ORDER)}) > "
    f"({', '.join(f'latest_decisions.{c}' for c in DECISION_ORDER)})"
)
_UPSERT = (
    f"INSERT INTO latest_decisions ({', '.join(COLUMNS)}) VALUES ({_FROM_NEW}) "
    f"ON CONFLICT (household_id) DO UPDATE SET {_SET} WHERE {_LATER}"
)
SQLITE_TRIGGER = (
    "CREATE TRIGGER IF NOT EXISTS decisions_keep_latest AFTER INSERT ON decisions "
    f"BEGIN {_UPSERT}; END"
)
PG_FUNCTION = (
    "CREATE OR REPLACE FUNCTION riskml_keep_latest_decision() RETURNS trigger "
    f"LANGUAGE plpgsql AS $$ BEGIN {_UPSERT}; RETURN NULL; END $$"
)
PG_TRIGGER = (
    "CREATE TRIGGER decisions_keep_latest AFTER INSERT ON decisions "
    "FOR EACH ROW EXECUTE FUNCTION riskml_keep_latest_decision()"
)


def _ranked() -> Any:
    """Every household's latest decision, ranked from ``decisions`` (the rows' source of truth)."""
    d = decisions.c
    rank = func.row_number().over(
        partition_by=d.household_id, order_by=[d[c].desc() for c in DECISION_ORDER]
    )
    cols = [
        func.substr(d.village_code, 1, 9).label(c) if c == "township_code" else d[c]
        for c in COLUMNS
    ]
    inner = select(*cols, rank.label("rn")).subquery("ranked")
    return select(*[inner.c[c] for c in COLUMNS]).where(inner.c.rn == 1)


def create(conn: Connection, dialect: str) -> None:
    """The trigger (if missing), and the rows of a ledger that had decisions before it."""
    if dialect == "sqlite":
        conn.exec_driver_sql(SQLITE_TRIGGER)
    elif dialect == "postgresql":
        found = conn.exec_driver_sql(
            "SELECT 1 FROM pg_trigger WHERE tgname = 'decisions_keep_latest'"
        ).first()
        if found is None:
            conn.exec_driver_sql(PG_FUNCTION)
            conn.exec_driver_sql(PG_TRIGGER)
    else:
        return
    empty = conn.execute(select(latest_decisions.c.household_id).limit(1)).first() is None
    if empty and conn.execute(select(decisions.c.decision_id).limit(1)).first() is not None:
        conn.execute(latest_decisions.insert().from_select(list(COLUMNS), _ranked()))


def check(engine: Engine) -> int:
    """Households whose row differs from the ranking of their decisions (0: in step)."""
    with engine.connect() as conn:
        kept = {r[0]: tuple(r) for r in conn.execute(select(latest_decisions))}
        ranked = {r[0]: tuple(r) for r in conn.execute(_ranked())}
    return sum(kept.get(h) != row for h, row in ranked.items()) + len(set(kept) - set(ranked))


WORKLIST_COLUMNS = (
    "household_id", "village_code", "decision_id", "score", "risk_level", "flagged", "flagged_by",
)  # fmt: skip


def latest_scores(
    engine: Engine,
    county_codes: Sequence[str] | None = None,
    village_codes: Sequence[str] | None = None,
    township_codes: Sequence[str] | None = None,
    columns: Sequence[str] = WORKLIST_COLUMNS,
) -> list[dict[str, Any]]:
    """The latest decision of each household in scope (None everywhere: all): ``columns`` of
    ``latest_decisions`` (by default what a worklist reads). Scope: in any of the counties,
    villages or townships given (an empty scope: nothing)."""
    c = latest_decisions.c
    stmt = select(*[c[k] for k in columns])
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
        stmt = stmt.where(or_(*ors))
    with engine.connect() as conn:
        rows = tuples(conn, stmt)
    out = [dict(zip(columns, r, strict=True)) for r in rows]
    if "flagged" in columns:
        for d in out:
            d["flagged"] = bool(d["flagged"])
    return out


__all__ = ["COLUMNS", "WORKLIST_COLUMNS", "check", "create", "latest_scores"]
