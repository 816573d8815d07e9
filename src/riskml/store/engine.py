"""The ledger's database: its engine (SQLite pragmas, write transactions) and its schema.

SQLite: every connection gets a busy timeout, foreign keys, WAL and
``synchronous = FULL`` (set explicitly: some builds default WAL databases to
NORMAL, where a commit can be lost in a power cut after it was answered);
transactions of the write engine (``execution_options(riskml_write=True)``)
take the write lock up front (BEGIN IMMEDIATE). The schema is the tables of
``riskml.store.tables`` with their insert-only triggers (SQLite and PostgreSQL),
and the trigger that keeps each household's latest decision (``riskml.store.latest``).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import URL
from sqlalchemy.pool import StaticPool

from riskml.data.json_text import serialize
from riskml.store import latest
from riskml.store.tables import (
    INSERT_ONLY,
    PG_CREATE_LOCK,
    PG_FUNCTION,
    PG_TRIGGERS,
    SQLITE_TRIGGERS,
    metadata,
)

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
    """The tables (those missing) and their insert-only triggers, in one transaction."""
    with writer.begin() as conn:
        if dialect == "postgresql":
            conn.execute(text(f"SELECT pg_advisory_xact_lock({PG_CREATE_LOCK})"))
        metadata.create_all(conn, checkfirst=True)
        _create_indexes(conn)
        if dialect == "sqlite":
            for stmt in SQLITE_TRIGGERS:
                conn.exec_driver_sql(stmt)
        elif dialect == "postgresql":
            tables = ", ".join(f"'{t}'::regclass" for t in INSERT_ONLY)
            existing = set(
                conn.execute(
                    text(
                        "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal "
                        f"AND tgrelid IN ({tables})"
                    )
                ).scalars()
            )
            missing = [stmt for name, stmt in PG_TRIGGERS.items() if name not in existing]
            if missing:
                conn.exec_driver_sql(PG_FUNCTION)
                for stmt in missing:
                    conn.exec_driver_sql(stmt)
        latest.create(conn, dialect)


def _create_indexes(conn: Connection) -> None:
    """Indexes added to tables that already existed (create_all makes only a new table's)."""
    for table in metadata.sorted_tables:
        for index in table.indexes:
            index.create(conn, checkfirst=True)
