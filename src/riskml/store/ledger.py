"""The decision ledger: an insert-only store of every score the service answers.

Every answered result of ``POST /score`` is written here, under its
``decision_id``, before the response is sent (shared/contract.md). A row keeps
what a caseworker needs months later to answer "why was this household flagged,
by which model or rule, on which data?": the record as received, the full
result, the contributions, the model and rules versions, who asked (a key id,
never a raw key), when, and whether scoring completed or failed.

Storage is SQLAlchemy Core. The default is SQLite under the state folder
(``config.ledger_url()``) in WAL mode with a busy timeout, so concurrent writers
wait for each other instead of failing; any SQLAlchemy URL (PostgreSQL, ...)
can be passed instead. The class has no update or delete method, and triggers
abort UPDATE and DELETE on both tables (SQLite and PostgreSQL).

Privacy: nothing here logs record contents, results, SQL parameters or keys.
"""

from __future__ import annotations

import json
import logging
import math
import re
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Column,
    Engine,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    bindparam,
    create_engine,
    event,
    false,
    func,
    or_,
    select,
    text,
    values,
)
from sqlalchemy import column as sa_column
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import StaticPool

from riskml import config

log = logging.getLogger(__name__)

__all__ = ["Ledger", "LedgerError", "DECISION_COLUMNS", "ACCESS_COLUMNS"]

STATUSES = ("completed", "failed")
RISK_LEVELS = ("red", "yellow", "green")
BUSY_TIMEOUT_S = 30.0
# previous_records() sends its keys as one VALUES list; above this many keys it
# splits them (each chunk is one query). The service sends at most 1,000.
_KEYS_PER_QUERY = 5_000
# up to this many keys (a request), two IN queries whose statements compile once;
# beyond, one VALUES query (SQLAlchemy compiles it anew for every call, which cost
# more than the look-up itself for a request of 1 or 100 records)
_REQUEST_KEYS = 1_000

_DECISION_ID = re.compile(r"^[0-9a-f]{32}$")
# A caller that looks like a raw API token (access.new_token) is refused.
_RAW_TOKEN = re.compile(r"^rk_[A-Za-z0-9_-]{20,}$")


class LedgerError(RuntimeError):
    """The ledger could not store or read decisions (nothing of a failed write is kept)."""


# --------------------------------------------------------------------------- tables
metadata = MetaData()


def _json() -> Any:
    # none_as_null: a Python None is stored as SQL NULL, not the JSON text 'null'.
    return JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


decisions = Table(
    "decisions",
    metadata,
    Column("decision_id", String(32), primary_key=True),
    Column("request_id", String, nullable=False),
    Column("created_at", String(32), nullable=False),  # UTC ISO 8601, microseconds
    Column("caller", String, nullable=False),  # key id / role, never a raw key
    Column("household_id", String(64), nullable=False),
    Column("period", String(7), nullable=False),
    Column("county_code", String(6), nullable=False),
    Column("village_code", String(12), nullable=False),
    Column("model_name", String),
    Column("model_version", String),
    Column("rules_version", String),
    Column("score", Float),
    Column("risk_level", String(16)),
    Column("flagged", Boolean, nullable=False),
    Column("flagged_by", String),
    Column("record", _json(), nullable=False),
    Column("result", _json()),
    Column("contributions", _json()),
    Column("status", String(16), nullable=False),
    Column("errors", _json()),
    CheckConstraint("status IN ('completed', 'failed')", name="ck_decisions_status"),
)
Index("ix_decisions_household_period", decisions.c.household_id, decisions.c.period)
Index("ix_decisions_county", decisions.c.county_code)
Index("ix_decisions_village", decisions.c.village_code)
Index("ix_decisions_created_at", decisions.c.created_at)

access_log_table = Table(
    "access_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", String(32), nullable=False),
    Column("actor", String, nullable=False),
    Column("role", String, nullable=False),
    Column("action", String, nullable=False),
    Column("household_id", String(64)),
    Column("scope", String),
)
Index("ix_access_log_household", access_log_table.c.household_id)
Index("ix_access_log_at", access_log_table.c.at)

DECISION_COLUMNS: tuple[str, ...] = tuple(c.name for c in decisions.columns)
ACCESS_COLUMNS: tuple[str, ...] = tuple(c.name for c in access_log_table.columns)
_JSON_COLUMNS = ("record", "result", "contributions", "errors")
_PREVIOUS_COLUMNS = ("decision_id", "period", "created_at", "risk_level", "score", "flagged")

# a request's previous records: the households' earlier decisions (keys only), then the
# chosen records; "latest" is the largest (period, created_at, decision_id), as in
# ``Ledger._previous_records``
_HISTORY_KEYS = select(
    decisions.c.decision_id, decisions.c.household_id, decisions.c.period, decisions.c.created_at
).where(
    decisions.c.household_id.in_(bindparam("ids", expanding=True)),
    decisions.c.period < bindparam("before"),
)
_RECORDS_BY_ID = select(decisions.c.decision_id, decisions.c.record).where(
    decisions.c.decision_id.in_(bindparam("ids", expanding=True))
)

_SQLITE_TRIGGERS = [
    f"CREATE TRIGGER IF NOT EXISTS {table}_no_{op.lower()} BEFORE {op} ON {table} "
    f"BEGIN SELECT RAISE(ABORT, 'riskml ledger: {table} is insert-only ({op} refused)'); END"
    for table in ("decisions", "access_log")
    for op in ("UPDATE", "DELETE")
]
_PG_FUNCTION = (
    "CREATE OR REPLACE FUNCTION riskml_ledger_insert_only() RETURNS trigger "
    "LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION USING MESSAGE = "
    "'riskml ledger: ' || TG_TABLE_NAME || ' is insert-only (' || TG_OP || ' refused)'; "
    "END $$"
)
# trigger name -> statement; created only when missing (no table lock on every start)
_PG_TRIGGERS = {
    name: stmt
    for table in ("decisions", "access_log")
    for name, stmt in (
        (
            f"{table}_insert_only",
            f"CREATE TRIGGER {table}_insert_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION riskml_ledger_insert_only()",
        ),
        (
            f"{table}_no_truncate",
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION riskml_ledger_insert_only()",
        ),
    )
}
# serialises table/trigger creation between processes starting at once
_PG_CREATE_LOCK = 7_305_914_202


# --------------------------------------------------------------------------- helpers
def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _iso(ts: str | datetime | date | pd.Timestamp) -> str:
    """A bound of a created_at window in the stored format (UTC, microseconds).

    Accepts ISO strings ("2025-03-01", "2025-03-01T08:00:00+08:00", "...Z") and
    datetimes; a bound without a time zone is taken as UTC.
    """
    if isinstance(ts, str):
        try:
            dt = datetime.fromisoformat(ts)
        except ValueError as exc:
            raise ValueError(f"not an ISO date or timestamp: {ts!r}") from exc
    elif isinstance(ts, datetime):  # includes pd.Timestamp
        dt = ts
    elif isinstance(ts, date):
        dt = datetime(ts.year, ts.month, ts.day)
    else:
        raise TypeError(f"expected an ISO string or a datetime, got {type(ts).__name__}")
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).isoformat(timespec="microseconds")


def _plain(value: Any) -> Any:
    """JSON-safe plain Python: numpy scalars unwrapped, NaN/inf and pd.NA to None."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v) for v in value]
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return _plain(float(value))
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if hasattr(value, "model_dump"):  # a pydantic model
        return _plain(value.model_dump(mode="json"))
    raise TypeError(f"a value of type {type(value).__name__} cannot be stored as JSON")


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


class _JsonText(str):
    """A value already encoded as JSON (``_encode``); the engine's serializer passes it through."""


def _serialize(value: Any) -> str:
    """The engine's JSON serializer."""
    return str(value) if isinstance(value, _JsonText) else _dumps(_plain(value))


def _encode(value: Any) -> _JsonText | None:
    """``value`` as JSON text, as ``_plain`` then ``_dumps`` would write it (None stays None).

    The C encoder takes plain values directly, which a request's records and
    results are; only values it refuses (NaN, numpy arrays, odd keys) take the
    slow path through ``_plain``.
    """
    if value is None:
        return None
    try:
        return _JsonText(
            json.dumps(
                value,
                ensure_ascii=False,
                allow_nan=False,
                separators=(",", ":"),
                default=_plain,  # numpy scalars, pd.NA, dates; TypeError otherwise
            )
        )
    except (ValueError, TypeError):
        return _JsonText(_dumps(_plain(value)))


def _describe(exc: BaseException) -> str:
    """An error's class and message, without SQL parameters (hide_parameters is on)."""
    orig = getattr(exc, "orig", None)
    return f"{type(orig or exc).__name__}: {orig or exc}".splitlines()[0]


_REQUIRED = ("household_id", "period", "county_code", "village_code", "record")
_REQUIRED_COMPLETED = (
    "model_name",
    "model_version",
    "rules_version",
    "score",
    "risk_level",
    "flagged",
    "flagged_by",
    "result",
)
_OPTIONAL = ("decision_id", "contributions", "status", "errors")
_ALLOWED = frozenset(_REQUIRED + _REQUIRED_COMPLETED + _OPTIONAL)


def _row_from_entry(
    i: int, entry: dict[str, Any], *, caller: str, request_id: str, created_at: str
) -> dict[str, Any]:
    """The row to insert for one entry, or ValueError naming the entry and key."""

    def bad(key: str, what: str) -> ValueError:
        return ValueError(f"entry {i}: {key}: {what}")

    if not isinstance(entry, dict):
        raise ValueError(f"entry {i}: must be a dict, got {type(entry).__name__}")
    unknown = sorted(set(entry) - _ALLOWED)
    if unknown:
        raise bad(", ".join(unknown), "unknown key(s)")
    status = entry.get("status", "completed")
    if status not in STATUSES:
        raise bad("status", f"must be one of {', '.join(STATUSES)}, got {status!r}")
    required = _REQUIRED + (_REQUIRED_COMPLETED if status == "completed" else ())
    missing = [k for k in required if k not in entry]
    if missing:
        raise bad(", ".join(missing), f"missing (required for a {status} decision)")
    for key in ("household_id", "period", "county_code", "village_code"):
        if not isinstance(entry[key], str) or not entry[key]:
            raise bad(key, "must be a non-empty string")
    if not isinstance(entry["record"], dict):
        raise bad("record", "must be the record as received (a dict)")

    result = entry.get("result")
    if result is not None and not isinstance(result, dict):
        raise bad("result", "must be the result dict")
    decision_id = entry.get("decision_id")
    result_id = result.get("decision_id") if result else None
    if decision_id is None:
        decision_id = result_id or Ledger.new_decision_id()
    elif result_id is not None and result_id != decision_id:
        raise bad("decision_id", "differs from result['decision_id']")
    if not isinstance(decision_id, str) or not _DECISION_ID.match(decision_id):
        raise bad("decision_id", "must be 32 lowercase hex digits (uuid4().hex)")

    score = entry.get("score")
    if score is not None:
        if isinstance(score, (bool, np.bool_)) or not isinstance(score, (int, float, np.number)):
            raise bad("score", f"must be a number or None, got {type(score).__name__}")
        score = float(score)
        if not math.isfinite(score):
            score = None
    flagged = entry.get("flagged", False)
    if not isinstance(flagged, (bool, np.bool_)):
        raise bad("flagged", f"must be a bool, got {type(flagged).__name__}")
    flagged_by = entry.get("flagged_by")
    if isinstance(flagged_by, (list, tuple)):
        flagged_by = "+".join(str(x) for x in flagged_by) or None
    if flagged_by is not None and not isinstance(flagged_by, str):
        raise bad("flagged_by", "must be a string, a list of strings or None")
    risk_level = entry.get("risk_level")
    if status == "completed" and risk_level not in RISK_LEVELS:
        raise bad("risk_level", f"must be one of {', '.join(RISK_LEVELS)}, got {risk_level!r}")
    errors = entry.get("errors")
    if status == "failed" and not errors:
        raise bad("errors", "a failed decision must say what went wrong")

    row: dict[str, Any] = {
        "decision_id": decision_id,
        "request_id": request_id,
        "created_at": created_at,
        "caller": caller,
        "household_id": entry["household_id"],
        "period": entry["period"],
        "county_code": entry["county_code"],
        "village_code": entry["village_code"],
        "score": score,
        "risk_level": risk_level,
        "flagged": bool(flagged),
        "flagged_by": flagged_by,
        "status": status,
    }
    for key in ("model_name", "model_version", "rules_version"):
        v = entry.get(key)
        if v is not None and not isinstance(v, str):
            v = str(v)
        row[key] = v
    for key in _JSON_COLUMNS:
        try:
            row[key] = _encode(entry.get(key))
        except TypeError as exc:
            raise bad(key, str(exc)) from None
    return row


# --------------------------------------------------------------------------- the ledger
class Ledger:
    """The insert-only decision ledger (thread-safe: one Engine, pooled connections)."""

    def __init__(self, url: str | None = None, *, busy_timeout: float = BUSY_TIMEOUT_S):
        """Open (and create if needed) the ledger at ``url`` (default ``config.ledger_url()``).

        ``busy_timeout`` (seconds) is how long a SQLite writer waits for another
        one. An in-memory SQLite URL ("sqlite://") is one shared connection:
        fine for tests, not for concurrent writers.
        """
        self.url = url or config.ledger_url()
        self._memory = False
        self._busy_timeout = float(busy_timeout)
        parsed = make_url(self.url)
        self.dialect = parsed.get_backend_name()
        self._safe_url = parsed.render_as_string(hide_password=True)
        self.engine = self._make_engine(parsed)
        # Same engine and pool; connections from it BEGIN IMMEDIATE on SQLite.
        self._writer = self.engine.execution_options(riskml_write=True)
        self._create()
        log.info("decision ledger at %s", self._safe_url)

    # ------------------------------------------------------------------ setup
    def _make_engine(self, url: Any) -> Engine:
        kwargs: dict[str, Any] = {
            "hide_parameters": True,  # errors never echo record values
            "json_serializer": _serialize,
            "json_deserializer": json.loads,
        }
        if self.dialect != "sqlite":
            engine = create_engine(url, pool_pre_ping=True, **kwargs)
            return engine

        database = url.database or ""
        memory = database in ("", ":memory:") or url.query.get("mode") == "memory"
        self._memory = memory
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": self._busy_timeout}
        if memory:
            # one shared connection, or every connection would see its own empty database
            kwargs["poolclass"] = StaticPool
        else:
            if not database.startswith("file:"):
                Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            kwargs.update(pool_size=8, max_overflow=8, pool_timeout=60)
        engine = create_engine(url, **kwargs)
        busy_ms = int(self._busy_timeout * 1000)

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

        return engine

    def _create(self) -> None:
        try:
            with self._writer.begin() as conn:
                if self.dialect == "postgresql":
                    conn.execute(text(f"SELECT pg_advisory_xact_lock({_PG_CREATE_LOCK})"))
                metadata.create_all(conn, checkfirst=True)
                if self.dialect == "sqlite":
                    for stmt in _SQLITE_TRIGGERS:
                        conn.exec_driver_sql(stmt)
                elif self.dialect == "postgresql":
                    existing = set(
                        conn.execute(
                            text(
                                "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal AND "
                                "tgrelid IN ('decisions'::regclass, 'access_log'::regclass)"
                            )
                        ).scalars()
                    )
                    missing = [stmt for name, stmt in _PG_TRIGGERS.items() if name not in existing]
                    if missing:
                        conn.exec_driver_sql(_PG_FUNCTION)
                        for stmt in missing:
                            conn.exec_driver_sql(stmt)
        except SQLAlchemyError as exc:
            raise LedgerError(
                f"cannot open the decision ledger at {self._safe_url}: {_describe(exc)}"
            ) from exc
        if self.dialect not in ("sqlite", "postgresql"):
            log.warning("ledger: no insert-only triggers for dialect %s", self.dialect)

    def close(self) -> None:
        """Release pooled connections."""
        self.engine.dispose()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Ledger({self._safe_url!r})"

    # ------------------------------------------------------------------ health
    def writable(self, timeout: float = 2.0) -> bool:
        """True when a write transaction can be opened now (for the readiness probe).

        SQLite: BEGIN IMMEDIATE then ROLLBACK, waiting at most ``timeout``
        seconds for another writer. Elsewhere: an empty transaction that also
        checks the session is not read-only (PostgreSQL standby). Never raises.
        """
        try:
            if self.dialect == "sqlite":
                return self._sqlite_writable(timeout)
            with self._writer.connect() as conn, conn.begin() as tx:
                if self.dialect == "postgresql":
                    read_only = conn.exec_driver_sql("SHOW transaction_read_only").scalar()
                    if str(read_only).lower() == "on":
                        return False
                else:
                    conn.exec_driver_sql("SELECT 1")
                tx.rollback()
            return True
        except Exception as exc:  # a probe reports, it does not raise
            log.warning("ledger not writable: %s", _describe(exc))
            return False

    def _sqlite_writable(self, timeout: float) -> bool:
        raw = self.engine.raw_connection()
        ok = False
        try:
            cur = raw.cursor()
            cur.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
            try:
                cur.execute("BEGIN IMMEDIATE")
                cur.execute("ROLLBACK")
                ok = True
            except Exception as exc:
                log.warning("ledger not writable: %s", _describe(exc))
            # back to the normal timeout before the connection returns to the pool
            cur.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")
            cur.close()
        except Exception as exc:
            log.warning("ledger not writable: %s", _describe(exc))
            if not self._memory:
                raw.invalidate()  # state unknown: do not hand it back to the pool
            return False
        finally:
            raw.close()
        return ok

    # ------------------------------------------------------------------ writes
    @staticmethod
    def new_decision_id() -> str:
        """A fresh decision id: uuid4 as 32 lowercase hex digits."""
        return uuid.uuid4().hex

    def record(self, entries: list[dict[str, Any]], *, caller: str, request_id: str) -> list[str]:
        """Store decisions in one transaction (all or nothing); their decision ids in order.

        Each entry: household_id, period, county_code, village_code, model_name,
        model_version, rules_version, score, risk_level, flagged, flagged_by,
        record, result; optional decision_id (else result["decision_id"], else
        a new one), contributions, status ("completed" or "failed"; a failed
        entry needs only the identifiers, record and errors). Every entry of a
        call gets the same created_at. Any problem raises LedgerError and
        nothing of the call is stored.
        """
        if not isinstance(caller, str) or not caller.strip():
            raise LedgerError("caller must be a key id or role")
        if _RAW_TOKEN.match(caller):
            raise LedgerError("caller looks like a raw API key; pass the key's id instead")
        if not isinstance(request_id, str) or not request_id:
            raise LedgerError("request_id must be a non-empty string")
        if not entries:
            return []
        created_at = _now()
        try:
            rows = [
                _row_from_entry(i, e, caller=caller, request_id=request_id, created_at=created_at)
                for i, e in enumerate(entries)
            ]
        except ValueError as exc:
            raise LedgerError(f"nothing stored: {exc}") from None
        ids = [r["decision_id"] for r in rows]
        if len(set(ids)) != len(ids):
            raise LedgerError("nothing stored: the same decision_id appears twice in one call")
        try:
            with self._writer.begin() as conn:
                conn.execute(decisions.insert(), rows)
        except SQLAlchemyError as exc:
            log.error("ledger write of %d decision(s) failed: %s", len(rows), _describe(exc))
            raise LedgerError(
                f"nothing stored: writing {len(rows)} decision(s) failed: {_describe(exc)}"
            ) from exc
        log.debug("ledger: stored %d decision(s) for request %s", len(rows), request_id)
        return ids

    def log_access(
        self,
        actor: str,
        role: str,
        action: str,
        household_id: str | None = None,
        scope: str | Sequence[str] | None = None,
    ) -> None:
        """Append one line to the access log (who read what, when)."""
        if scope is not None and not isinstance(scope, str):
            scope = ",".join(str(s) for s in scope)
        row = {
            "at": _now(),
            "actor": actor,
            "role": role,
            "action": action,
            "household_id": household_id,
            "scope": scope,
        }
        try:
            with self._writer.begin() as conn:
                conn.execute(access_log_table.insert(), [row])
        except SQLAlchemyError as exc:
            raise LedgerError(f"could not write the access log: {_describe(exc)}") from exc

    # ------------------------------------------------------------------ reads
    def _read(self, stmt: Any) -> list[dict[str, Any]]:
        try:
            with self.engine.connect() as conn:
                return [dict(r._mapping) for r in conn.execute(stmt)]
        except SQLAlchemyError as exc:
            raise LedgerError(f"ledger read failed: {_describe(exc)}") from exc

    def get(self, decision_id: str) -> dict[str, Any] | None:
        """One decision with its JSON columns decoded, or None."""
        rows = self._read(select(decisions).where(decisions.c.decision_id == decision_id))
        return rows[0] if rows else None

    def count(self) -> int:
        """Number of stored decisions."""
        rows = self._read(select(func.count().label("n")).select_from(decisions))
        return int(rows[0]["n"])

    def household_history(self, household_id: str) -> list[dict[str, Any]]:
        """Every decision of one household, by period then created_at."""
        d = decisions.c
        stmt = (
            select(decisions)
            .where(d.household_id == household_id)
            .order_by(d.period, d.created_at, d.decision_id)
        )
        return self._read(stmt)

    def previous_records(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], dict]:
        """For each (household_id, period): the record of that household's latest earlier decision.

        "Earlier" is a strictly earlier period; among those the latest period
        wins, then the latest created_at. Keys without one are absent from the
        answer. One query per call (the keys go as one VALUES list).
        """
        unique = list(dict.fromkeys((str(h), str(p)) for h, p in keys))
        if len(unique) <= _REQUEST_KEYS:
            return self._previous_records_few(unique)
        out: dict[tuple[str, str], dict] = {}
        for start in range(0, len(unique), _KEYS_PER_QUERY):
            out.update(self._previous_records(unique[start : start + _KEYS_PER_QUERY]))
        return out

    def _previous_records_few(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], dict]:
        """``_previous_records`` for a request's keys: the candidates' ids, then their records."""
        if not keys:
            return {}
        households = sorted({h for h, _ in keys})
        try:
            with self.engine.connect() as conn:
                candidates = conn.execute(
                    _HISTORY_KEYS, {"ids": households, "before": max(p for _, p in keys)}
                ).all()
                by_household: dict[str, list[tuple[str, str, str]]] = {}
                for decision_id, household_id, period, created_at in candidates:
                    by_household.setdefault(household_id, []).append(
                        (period, created_at, decision_id)
                    )
                chosen: dict[tuple[str, str], str] = {}
                for h, p in keys:
                    earlier = [c for c in by_household.get(h, ()) if c[0] < p]
                    if earlier:
                        chosen[(h, p)] = max(earlier)[2]
                if not chosen:
                    return {}
                records = dict(
                    conn.execute(_RECORDS_BY_ID, {"ids": sorted(set(chosen.values()))}).all()
                )
        except SQLAlchemyError as exc:
            raise LedgerError(f"ledger read failed: {_describe(exc)}") from exc
        return {key: records[decision_id] for key, decision_id in chosen.items()}

    def _previous_records(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], dict]:
        k = (
            values(sa_column("k_household", String), sa_column("k_period", String), name="keys")
            .data(keys)
            .cte("keys")
        )
        d = decisions.c
        ranked = (
            select(
                k.c.k_household,
                k.c.k_period,
                d.decision_id,
                func.row_number()
                .over(
                    partition_by=(k.c.k_household, k.c.k_period),
                    order_by=(d.period.desc(), d.created_at.desc(), d.decision_id.desc()),
                )
                .label("rn"),
            )
            .select_from(
                k.join(decisions, and_(d.household_id == k.c.k_household, d.period < k.c.k_period))
            )
            .subquery("ranked")
        )
        stmt = (
            select(ranked.c.k_household, ranked.c.k_period, d.record)
            .select_from(ranked.join(decisions, d.decision_id == ranked.c.decision_id))
            .where(ranked.c.rn == 1)
        )
        return {(r["k_household"], r["k_period"]): r["record"] for r in self._read(stmt)}

    def latest_by_household(
        self,
        county_codes: Sequence[str] | None = None,
        village_codes: Sequence[str] | None = None,
        flagged_only: bool = False,
        *,
        with_json: bool = True,
    ) -> list[dict[str, Any]]:
        """The latest decision of each household in scope, for a caseworker's worklist.

        Scope: both None means every household; otherwise a household is in
        scope when its latest decision's county_code is in ``county_codes`` or
        its village_code is in ``village_codes`` (None counts as an empty
        list, so ([], []) matches nothing). "Latest" is the latest period, then
        the latest created_at. Each row also carries ``previous_decision_id``,
        ``previous_period``, ``previous_created_at``, ``previous_risk_level``,
        ``previous_score`` and ``previous_flagged`` of the household's decision
        before it (None when there is none). Sorted flagged first, then by
        score (highest first, missing last), then household_id.
        ``with_json=False`` leaves out the record/result/contributions/errors.
        """
        d = decisions.c
        if county_codes is None and village_codes is None:
            in_scope = None
        else:
            county_codes = list(county_codes or [])
            village_codes = list(village_codes or [])
            if not county_codes and not village_codes:
                return []

            def scope(county: Any, village: Any) -> Any:
                conds = []
                if county_codes:
                    conds.append(county.in_(county_codes))
                if village_codes:
                    conds.append(village.in_(village_codes))
                return or_(*conds) if conds else false()

            in_scope = scope
        window = {
            "partition_by": d.household_id,
            "order_by": (d.period.desc(), d.created_at.desc(), d.decision_id.desc()),
        }
        cols = [c for c in decisions.columns if with_json or c.name not in _JSON_COLUMNS]
        inner = select(
            *cols,
            func.row_number().over(**window).label("rn"),
            *[
                func.lead(decisions.c[name], type_=decisions.c[name].type)
                .over(**window)
                .label(f"previous_{name}")
                for name in _PREVIOUS_COLUMNS
            ],
        )
        if in_scope is not None:
            # only households that ever had a decision in scope are ranked
            households = select(d.household_id).where(in_scope(d.county_code, d.village_code))
            inner = inner.where(d.household_id.in_(households))
        ranked = inner.subquery("ranked")
        stmt = select(*[c for c in ranked.c if c.name != "rn"]).where(ranked.c.rn == 1)
        if in_scope is not None:
            stmt = stmt.where(in_scope(ranked.c.county_code, ranked.c.village_code))
        if flagged_only:
            stmt = stmt.where(ranked.c.flagged.is_(True))
        rows = self._read(stmt)
        rows.sort(
            key=lambda r: (
                not r["flagged"],
                r["score"] is None,
                -(r["score"] or 0.0),
                r["household_id"],
            )
        )
        return rows

    def decisions_frame(
        self,
        since: str | datetime | None = None,
        until: str | datetime | None = None,
        *,
        expand_records: bool = True,
    ) -> pd.DataFrame:
        """Decisions with since <= created_at < until (UTC; either bound optional), oldest first.

        ``created_at`` becomes a UTC datetime column. With ``expand_records``
        the fields of each record become columns of their own (named as in the
        contract; the identifiers are already columns) and the ``record``
        column is dropped; ``result``, ``contributions`` and ``errors`` stay
        dicts/lists.
        """
        d = decisions.c
        stmt = select(decisions).order_by(d.created_at, d.decision_id)
        if since is not None:
            stmt = stmt.where(d.created_at >= _iso(since))
        if until is not None:
            stmt = stmt.where(d.created_at < _iso(until))
        rows = self._read(stmt)
        frame = pd.DataFrame(rows, columns=list(DECISION_COLUMNS))
        frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True, format="ISO8601")
        if not expand_records:
            return frame
        records = pd.DataFrame([r["record"] or {} for r in rows], index=frame.index)
        extra = [c for c in records.columns if c not in frame.columns]
        return pd.concat([frame.drop(columns=["record"]), records[extra]], axis=1)

    def access_log(
        self,
        limit: int = 100,
        *,
        household_id: str | None = None,
        actor: str | None = None,
    ) -> list[dict[str, Any]]:
        """The latest access-log lines, newest first (optionally for one household or actor)."""
        a = access_log_table.c
        stmt = select(access_log_table).order_by(a.id.desc()).limit(int(limit))
        if household_id is not None:
            stmt = stmt.where(a.household_id == household_id)
        if actor is not None:
            stmt = stmt.where(a.actor == actor)
        return self._read(stmt)
