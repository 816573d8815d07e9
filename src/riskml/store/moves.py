"""Where a household is registered, and moving it: an admin's explicit act, kept in the ledger.

A household's location is the county and village of what was stored for it
last (by ``created_at``): its latest decision or a later move. The service
refuses a record of a household at another location (a scorer cannot move a
household's history into or out of a caseworker's view); an admin moves it with
``record_move``, which is insert-only like every ledger table.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from riskml.store.entries import new_decision_id, now_iso
from riskml.store.tables import decisions, household_moves

_IDS_PER_QUERY = 1_000


def locations(engine: Engine, household_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
    """(county_code, village_code) where each known household is registered now."""
    ids = sorted(set(household_ids))
    found: dict[str, tuple[str, str, str]] = {}  # household -> (created_at, county, village)
    d, m = decisions.c, household_moves.c
    with engine.connect() as conn:
        for start in range(0, len(ids), _IDS_PER_QUERY):
            chunk = ids[start : start + _IDS_PER_QUERY]
            ranked = (
                select(
                    d.household_id,
                    d.created_at,
                    d.county_code,
                    d.village_code,
                    func.row_number()
                    .over(
                        partition_by=d.household_id,
                        order_by=(d.created_at.desc(), d.decision_id.desc()),
                    )
                    .label("rn"),
                )
                .where(d.household_id.in_(chunk))
                .subquery()
            )
            rows = conn.execute(
                select(ranked.c.household_id, ranked.c.created_at, ranked.c.county_code,
                       ranked.c.village_code).where(ranked.c.rn == 1)
            ).all()  # fmt: skip
            moves = conn.execute(
                select(m.household_id, m.created_at, m.to_county, m.to_village).where(
                    m.household_id.in_(chunk)
                )
            ).all()
            for h, at, county, village in [*rows, *moves]:
                if h not in found or at >= found[h][0]:
                    found[h] = (at, county, village)
    return {h: (county, village) for h, (_, county, village) in found.items()}


def record_move(
    engine: Engine,
    writer: Engine,
    household_id: str,
    to: tuple[str, str],
    reason: str,
    caller: str,
) -> dict[str, Any]:
    """Store a move of a household from where it is registered to ``to`` (county, village)."""
    here = locations(engine, [household_id]).get(household_id)
    row = {
        "move_id": new_decision_id(),
        "created_at": now_iso(),
        "caller": caller,
        "household_id": household_id,
        "from_county": here[0] if here else None,
        "from_village": here[1] if here else None,
        "to_county": to[0],
        "to_village": to[1],
        "reason": reason,
    }
    with writer.begin() as conn:
        conn.execute(household_moves.insert(), [row])
    return row
