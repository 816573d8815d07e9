"""The decision ledger: an insert-only store of every score the service answers.

Every answered result of ``POST /score`` is written here, under its
``decision_id``, before the response is sent (shared/contract.md). A row keeps
what a caseworker needs months later to answer "why was this household flagged,
by which model or rule, on which data?": the record as received, the full
result, the contributions, the model and rules versions, who asked (a key id,
never a raw key), when, and whether scoring completed or failed.

Storage is SQLAlchemy Core. The default is SQLite under the state folder
(``config.ledger_url()``) in WAL mode with ``synchronous = FULL`` and a busy
timeout, so concurrent writers wait for each other instead of failing
(``riskml.store.engine``); any SQLAlchemy URL (PostgreSQL, ...) can be passed
instead. The class has no update or delete method, and triggers abort UPDATE
and DELETE on every table (SQLite and PostgreSQL).

Writes that must happen once (``riskml.store.once``): ``record_once`` stores a
request sent with an idempotency key, or gives back what the key stored the
first time; ``begin_run`` and ``record_run`` store a batch run's decisions once
per (run, household_id, period), so a rerun after a crash resumes.

Privacy: nothing here logs record contents, results, SQL parameters or keys.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import (
    String,
    and_,
    false,
    func,
    or_,
    select,
    values,
)
from sqlalchemy import column as sa_column
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from riskml import config
from riskml.store import chains, moves, once
from riskml.store.engine import create_schema, make_engine
from riskml.store.entries import (
    LedgerError,
    describe,
    iso_utc,
    new_decision_id,
    now_iso,
    request_digest,
    rows_from_entries,
)
from riskml.store.once import IDEMPOTENCY_KEY_RULE, IdempotencyConflict, Recorded, RunBlock
from riskml.store.tables import (
    ACCESS_COLUMNS,
    DECISION_COLUMNS,
    DECISION_ORDER,
    HISTORY_KEYS,
    JSON_COLUMNS,
    LATEST_FIRST,
    PREVIOUS_COLUMNS,
    RECORDS_BY_ID,
    access_log_table,
    decisions,
)

log = logging.getLogger(__name__)

__all__ = [
    "Ledger",
    "LedgerError",
    "IdempotencyConflict",
    "IDEMPOTENCY_KEY_RULE",
    "Recorded",
    "RunBlock",
    "request_digest",
    "DECISION_COLUMNS",
    "ACCESS_COLUMNS",
]

BUSY_TIMEOUT_S = 30.0
# previous_records() sends its keys as one VALUES list; above this many keys it
# splits them (each chunk is one query). The service sends at most 1,000.
_KEYS_PER_QUERY = 5_000
# up to this many keys (a request), two IN queries whose statements compile once;
# beyond, one VALUES query (SQLAlchemy compiles it anew for every call, which cost
# more than the look-up itself for a request of 1 or 100 records)
_REQUEST_KEYS = 1_000


def _check_key(key: Any, digest: Any) -> None:
    if not isinstance(key, str) or not once.IDEMPOTENCY_KEY.match(key):
        raise ValueError(f"idempotency key {IDEMPOTENCY_KEY_RULE}")
    if not isinstance(digest, str) or not once.DIGEST.match(digest):
        raise ValueError("request_digest must be a sha256 hex digest (64 lowercase hex digits)")


def _write_failed(what: str, exc: BaseException) -> LedgerError:
    log.error("ledger write of %s failed: %s", what, describe(exc))
    return LedgerError(f"nothing stored: writing {what} failed: {describe(exc)}")


class Ledger:
    """The insert-only decision ledger (thread-safe: one Engine, pooled connections)."""

    def __init__(self, url: str | None = None, *, busy_timeout: float = BUSY_TIMEOUT_S):
        """Open (and create if needed) the ledger at ``url`` (default ``config.ledger_url()``).

        ``busy_timeout`` (seconds) is how long a SQLite writer waits for another
        one. An in-memory SQLite URL ("sqlite://") is one shared connection:
        fine for tests, not for concurrent writers.
        """
        self.url = url or config.ledger_url()
        self._busy_timeout = float(busy_timeout)
        parsed = make_url(self.url)
        self.dialect = parsed.get_backend_name()
        self._safe_url = parsed.render_as_string(hide_password=True)
        self.engine, self._memory = make_engine(parsed, self._busy_timeout)
        # Same engine and pool; connections from it BEGIN IMMEDIATE on SQLite.
        self._writer = self.engine.execution_options(riskml_write=True)
        self._create()
        log.info("decision ledger at %s", self._safe_url)

    # ------------------------------------------------------------------ setup
    def _create(self) -> None:
        try:
            create_schema(self._writer, self.dialect)
        except SQLAlchemyError as exc:
            raise LedgerError(
                f"cannot open the decision ledger at {self._safe_url}: {describe(exc)}"
            ) from exc
        if self.dialect not in ("sqlite", "postgresql"):
            log.warning("ledger: no insert-only triggers for dialect %s", self.dialect)

    @property
    def writer(self) -> Any:
        """The engine for write transactions (BEGIN IMMEDIATE on SQLite), for the stores beside
        the decisions (riskml.cases) that write in the ledger's database."""
        return self._writer

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
            log.warning("ledger not writable: %s", describe(exc))
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
                log.warning("ledger not writable: %s", describe(exc))
            # back to the normal timeout before the connection returns to the pool
            cur.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")
            cur.close()
        except Exception as exc:
            log.warning("ledger not writable: %s", describe(exc))
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
        return new_decision_id()

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
        rows = rows_from_entries(
            entries, caller=caller, request_id=request_id, created_at=now_iso()
        )
        if not rows:
            return []
        ids = [r["decision_id"] for r in rows]
        try:
            with self._writer.begin() as conn:
                conn.execute(decisions.insert(), rows)
        except SQLAlchemyError as exc:
            raise _write_failed(f"{len(rows)} decision(s)", exc) from exc
        log.debug("ledger: stored %d decision(s) for request %s", len(rows), request_id)
        return ids

    def record_once(
        self,
        entries: list[dict[str, Any]],
        *,
        caller: str,
        request_id: str,
        idempotency_key: str,
        request_digest: str,
    ) -> Recorded:
        """``record`` for a request sent with an idempotency key (see ``riskml.store.once``).

        The first call with a (caller, idempotency_key) stores the decisions and
        the key in one transaction (``replayed`` False). A later call with the same
        caller, key and ``request_digest`` (sha256 hex of the body:
        ``request_digest(body)``) stores nothing and returns what the first one
        stored: its request_id, created_at, decision ids and results, in order
        (``replayed`` True). The same key with another digest raises
        IdempotencyConflict; a malformed key or digest ValueError (nothing stored).
        """
        _check_key(idempotency_key, request_digest)
        created_at = now_iso()
        rows = rows_from_entries(
            entries, caller=caller, request_id=request_id, created_at=created_at
        )
        try:
            return once.record_once(
                self._writer,
                rows,
                caller=caller,
                key=idempotency_key,
                digest=request_digest,
                request_id=request_id,
                created_at=created_at,
            )
        except SQLAlchemyError as exc:
            raise _write_failed(f"{len(rows)} decision(s)", exc) from exc

    def replay(self, *, caller: str, idempotency_key: str, request_digest: str) -> Recorded | None:
        """What ``record_once`` stored under (caller, idempotency_key), or None (nothing yet).

        For a check before scoring; IdempotencyConflict when the digest differs.
        """
        _check_key(idempotency_key, request_digest)
        try:
            return once.replay(self.engine, caller, idempotency_key, request_digest)
        except SQLAlchemyError as exc:
            raise LedgerError(f"ledger read failed: {describe(exc)}") from exc

    def begin_run(self, run_id: str, *, caller: str, **about: str | None) -> bool:
        """A batch run's row (stored once): True for a new run, False for a rerun of one.

        ``about``: input_sha256, model_name, model_version, rules_version, explain.
        """
        if not isinstance(run_id, str) or not 0 < len(run_id) <= 64:
            raise LedgerError("run_id must be a string of 1 to 64 characters")
        rows_from_entries([], caller=caller, request_id=run_id, created_at="")  # checks caller
        run = {"run_id": run_id, "created_at": now_iso(), "caller": caller, **about}
        try:
            return once.begin_run(self._writer, run)
        except SQLAlchemyError as exc:
            raise _write_failed("the batch run", exc) from exc

    def record_run(
        self, entries: list[dict[str, Any]], *, run_id: str, caller: str, request_id: str
    ) -> RunBlock:
        """``record`` for a block of a batch run (``begin_run`` first): each key stored once.

        Entries whose (run_id, household_id, period) is stored already are not
        stored again; ``RunBlock.existing`` gives their stored decision id and
        result by position in ``entries``. All or nothing, like ``record``.
        """
        rows = rows_from_entries(
            entries, caller=caller, request_id=request_id, created_at=now_iso()
        )
        keys = {(r["household_id"], r["period"]) for r in rows}
        if len(keys) != len(rows):
            raise LedgerError("nothing stored: the same household_id and period twice in a block")
        try:
            return once.record_run_block(self._writer, run_id, rows)
        except SQLAlchemyError as exc:
            raise _write_failed(f"{len(rows)} decision(s) of a batch run", exc) from exc

    def run_count(self, run_id: str) -> int:
        """Decisions stored for a batch run."""
        try:
            return once.run_count(self.engine, run_id)
        except SQLAlchemyError as exc:
            raise LedgerError(f"ledger read failed: {describe(exc)}") from exc

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
            "at": now_iso(),
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
            raise LedgerError(f"could not write the access log: {describe(exc)}") from exc

    # ------------------------------------------------------------------ reads
    def _read(self, stmt: Any) -> list[dict[str, Any]]:
        try:
            with self.engine.connect() as conn:
                return [dict(r._mapping) for r in conn.execute(stmt)]
        except SQLAlchemyError as exc:
            raise LedgerError(f"ledger read failed: {describe(exc)}") from exc

    def get(self, decision_id: str) -> dict[str, Any] | None:
        """One decision with its JSON columns decoded, or None."""
        rows = self._read(select(decisions).where(decisions.c.decision_id == decision_id))
        return rows[0] if rows else None

    def locations(self, household_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
        """(county_code, village_code) where each known household is registered (``moves``)."""
        try:
            return moves.locations(self.engine, household_ids)
        except SQLAlchemyError as exc:
            raise LedgerError(f"ledger read failed: {describe(exc)}") from exc

    def record_move(
        self, household_id: str, to: tuple[str, str], reason: str, caller: str
    ) -> dict[str, Any]:
        """Move a household to (county_code, village_code): an admin's act, stored insert-only."""
        try:
            return moves.record_move(self.engine, self._writer, household_id, to, reason, caller)
        except SQLAlchemyError as exc:
            raise _write_failed("a household move", exc) from exc

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
            .order_by(*(d[name] for name in DECISION_ORDER))
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
                    HISTORY_KEYS, {"ids": households, "before": max(p for _, p in keys)}
                ).all()
                by_household: dict[str, list[tuple[str, str, str]]] = {}
                for decision_id, household_id, period, created_at in candidates:
                    # a tuple in DECISION_ORDER: max() is the latest
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
                    conn.execute(RECORDS_BY_ID, {"ids": sorted(set(chosen.values()))}).all()
                )
        except SQLAlchemyError as exc:
            raise LedgerError(f"ledger read failed: {describe(exc)}") from exc
        return {key: records[decision_id] for key, decision_id in chosen.items()}

    def earlier_records(
        self, keys: Iterable[tuple[str, str]], lags: int = 3
    ) -> dict[tuple[str, str], list[dict]]:
        """Per (household_id, period), its chain of earlier records (``store.chains``)."""
        return chains.earlier_records(self.engine, keys, lags)

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
                    order_by=LATEST_FIRST,
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
            "order_by": LATEST_FIRST,
        }
        cols = [c for c in decisions.columns if with_json or c.name not in JSON_COLUMNS]
        inner = select(
            *cols,
            func.row_number().over(**window).label("rn"),
            *[
                func.lead(decisions.c[name], type_=decisions.c[name].type)
                .over(**window)
                .label(f"previous_{name}")
                for name in PREVIOUS_COLUMNS
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
            stmt = stmt.where(d.created_at >= iso_utc(since))
        if until is not None:
            stmt = stmt.where(d.created_at < iso_utc(until))
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
