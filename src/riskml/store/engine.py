"""The ledger's database: its engine (SQLite pragmas, write transactions) and its schema.

SQLite: every connection gets a busy timeout, foreign keys, WAL and
``synchronous = FULL`` (set explicitly: some builds default WAL databases to
NORMAL, where a commit can be lost in a power cut after it was answered);
transactions of the write engine (``execution_options(riskml_write=True)``)
take the write lock up front (BEGIN IMMEDIATE). The schema is made and upgraded by the
Alembic migrations of ``riskml.store.migrations``: the tables of ``riskml.store.tables``
and ``outcomes``, their insert-only triggers (SQLite and PostgreSQL) and the trigger that
keeps each household's latest decision (``riskml.store.latest``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import StaticPool

from riskml.data.json_text import serialize
from riskml.store import latest, migrations
from riskml.store.entries import LedgerError, describe
from riskml.store.tables import PG_CREATE_LOCK

log = logging.getLogger(__name__)

SQLITE_SYNCHRONOUS = "FULL"


def make_engine(url: URL, busy_timeout: float) -> tuple[Engine, bool]:
    """The engine for ``url``, and whether it is an in-memory SQLite database."""
    kwargs: dict[str, Any] = {
        "hide_parameters": True,  # errors never echo record values
        "json_serializer": serialize,
        "json_deserializer": json.loads,
    }
    if url.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True, **kwargs), False

    database = url.database or ""
    memory = database in ("", ":memory:") or url.query.get("mode") == "memory"
    kwargs["connect_args"] = {"check_same_thread": False, "timeout": busy_timeout}
    if memory:
        # one shared connection, or every connection would see its own empty database
        kwargs["poolclass"] = StaticPool
    else:
        if not database.startswith("file:"):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        kwargs.update(pool_size=8, max_overflow=8, pool_timeout=60)
    engine = create_engine(url, **kwargs)
    busy_ms = int(busy_timeout * 1000)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # SQLAlchemy, not the sqlite3 module, decides where transactions begin.
        dbapi_connection.isolation_level = None
        cur = dbapi_connection.cursor()
        try:
            cur.execute(f"PRAGMA busy_timeout = {busy_ms}")
            cur.execute("PRAGMA foreign_keys = ON")
            if not memory:
                mode = cur.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    log.warning("ledger: SQLite journal mode is %s, not WAL", mode)
            # a commit is on disk (the WAL synced) before it returns
            cur.execute(f"PRAGMA synchronous = {SQLITE_SYNCHRONOUS}")
        finally:
            cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Writers take the write lock up front: a deferred transaction that
        # upgrades from reader to writer can fail with "database is locked"
        # without waiting for the busy timeout.
        if conn.get_execution_options().get("riskml_write"):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")

    return engine, memory


def create_schema(writer: Engine, dialect: str) -> None:
    """The schema at the newest migration (``riskml.store.migrations``), in one transaction (no
    DDL when the database is already there), and ``latest_decisions`` filled if it is empty."""
    with writer.begin() as conn:
        if dialect == "postgresql":  # processes starting at once: one upgrades, the others wait
            conn.execute(text(f"SELECT pg_advisory_xact_lock({PG_CREATE_LOCK})"))
        before = migrations.current(conn)
        if before != migrations.head():
            try:
                migrations.upgrade(conn)
            except SQLAlchemyError as exc:
                raise LedgerError(
                    f"the ledger's database is at revision {before or 'none'}, this riskml "
                    f"needs {migrations.head()}, and the upgrade failed (`riskml db upgrade` as "
                    f"the owner of the database): {describe(exc)}"
                ) from exc
        latest.create(conn, dialect)  # derived rows missing (deleted): filled from decisions
