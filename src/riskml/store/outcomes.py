"""Observed outcomes: the insert-only ``outcomes`` table beside the decision ledger (same database).

The ledger itself is insert-only and owned by the service, so outcomes live in a
table of their own. An outcome says whether the household was at risk at
``period``; it belongs to the decision of ``decision_period = period − 12
months``. The table is insert-only with (household_id, period) unique: storing
the same outcome again is skipped, storing a *different* value for a stored one
is refused (the whole call, nothing stored) because a correction of an observed
outcome is a data-governance event, not a routine load. The ledger's migrations create the
table (``riskml.store.migrations``); on SQLite and PostgreSQL triggers refuse UPDATE and
DELETE (and TRUNCATE on PostgreSQL).

Reading outcomes files and joining them to decisions is monitoring's job
(``riskml.monitoring.outcomes``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from riskml.store.ledger import Ledger


def _utc(value: Any) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    return ts.tz_localize(UTC) if ts.tzinfo is None else ts.tz_convert(UTC)


def outcomes_table(metadata: Any) -> Any:
    """The ``outcomes`` table on ``metadata`` (a SQLAlchemy ``MetaData``): what the migrations
    made (``riskml.store.migrations``), for the queries and the schema check."""
    from sqlalchemy import CheckConstraint, Column, Index, Integer, String, Table, UniqueConstraint

    table = Table(
        "outcomes",
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("household_id", String(64), nullable=False),
        Column("period", String(7), nullable=False),  # when the outcome was observed
        Column("decision_period", String(7), nullable=False),  # period − 12 months
        Column("at_risk", Integer, nullable=False),
        Column("source", String),
        Column("loaded_at", String(32), nullable=False),  # UTC ISO 8601
        UniqueConstraint("household_id", "period", name="uq_outcomes_household_period"),
        CheckConstraint("at_risk IN (0, 1)", name="ck_outcomes_at_risk"),
    )
    Index("ix_outcomes_decision", table.c.household_id, table.c.decision_period)
    return table


class OutcomeError(ValueError):
    """An outcomes file that cannot be stored (conflicts with stored outcomes, bad rows)."""


class OutcomeStore:
    """The ``outcomes`` table in the ledger's database (insert-only; (household_id, period) unique)."""

    def __init__(self, ledger: Ledger, create: bool = True):
        """The table on the ledger's engine. The ledger's migrations create it with its
        triggers (``riskml.store.migrations``); ``create`` is kept for callers and has nothing
        left to do once the ledger is open."""
        from sqlalchemy import MetaData

        self.ledger = ledger
        self.engine = ledger.engine
        self.metadata = MetaData()
        self.table = outcomes_table(self.metadata)

    @staticmethod
    def exists(ledger: Ledger) -> bool:
        """Whether the ledger's database has an ``outcomes`` table (checking never creates it)."""
        from sqlalchemy import inspect

        return inspect(ledger.engine).has_table("outcomes")

    def frame(self) -> pd.DataFrame:
        from sqlalchemy import select

        with self.engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(select(self.table))]
        cols = [c.name for c in self.table.columns]
        return pd.DataFrame(rows, columns=cols)

    def add(
        self, outcomes: pd.DataFrame, source: str | None = None, loaded_at: Any = None
    ) -> dict[str, int]:
        """Store new outcomes (all or nothing): counts of stored, already stored and conflicts.

        An outcome identical to a stored one is skipped; one that differs from a
        stored one (or from another row of the same file) refuses the whole call
        with ``OutcomeError`` listing the first conflicts.
        """
        new = outcomes[["household_id", "period", "decision_period", "at_risk"]].copy()
        new["at_risk"] = new["at_risk"].astype(int)
        dup = new.duplicated(["household_id", "period"], keep=False)
        if dup.any():
            clash = new[dup].groupby(["household_id", "period"])["at_risk"].nunique()
            clash = clash[clash > 1]
            if len(clash):
                shown = ", ".join(f"{h}/{p}" for h, p in clash.index[:5])
                raise OutcomeError(
                    f"nothing stored: {len(clash)} household-period(s) appear with different "
                    f"outcomes in the file: {shown}"
                )
            new = new.drop_duplicates(["household_id", "period"])
        stamp = (
            _utc(loaded_at).isoformat(timespec="microseconds")
            if loaded_at is not None
            else (datetime.now(UTC).isoformat(timespec="microseconds"))
        )
        writer = self.engine.execution_options(riskml_write=True)
        with writer.begin() as conn:
            stored = self._stored(conn, new["household_id"].unique().tolist())
            merged = new.merge(
                stored, on=["household_id", "period"], how="left", suffixes=("", "_stored")
            )
            known = merged["at_risk_stored"].notna()
            conflict = known & (merged["at_risk_stored"] != merged["at_risk"])
            if conflict.any():
                c = merged[conflict]
                shown = ", ".join(
                    f"{h}/{p} (stored {int(s)}, file {int(v)})"
                    for h, p, s, v in c[["household_id", "period", "at_risk_stored", "at_risk"]]
                    .head(5)
                    .itertuples(index=False)
                )
                raise OutcomeError(
                    f"nothing stored: {int(conflict.sum())} outcome(s) differ from stored ones "
                    f"(outcomes are insert-only; a correction needs a data-governance decision): {shown}"
                )
            to_add = merged[~known]
            rows = [
                {
                    "household_id": str(r.household_id),
                    "period": str(r.period),
                    "decision_period": str(r.decision_period),
                    "at_risk": int(r.at_risk),
                    "source": source,
                    "loaded_at": stamp,
                }
                for r in to_add.itertuples(index=False)
            ]
            if rows:
                conn.execute(self.table.insert(), rows)
        return {"stored": len(rows), "already_stored": int(known.sum()), "rows": len(outcomes)}

    def _stored(self, conn: Any, households: list[str]) -> pd.DataFrame:
        from sqlalchemy import select

        t = self.table.c
        parts = []
        for start in range(0, len(households), 5000):
            chunk = households[start : start + 5000]
            stmt = select(t.household_id, t.period, t.at_risk.label("at_risk_stored")).where(
                t.household_id.in_(chunk)
            )
            parts += [dict(r._mapping) for r in conn.execute(stmt)]
        return pd.DataFrame(parts, columns=["household_id", "period", "at_risk_stored"])


__all__ = ["OutcomeError", "OutcomeStore", "outcomes_table"]
