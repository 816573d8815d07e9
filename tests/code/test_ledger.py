"""The decision ledger: insert-only, all-or-nothing batches, concurrent writers, look-ups."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import event, text

from riskml.store.ledger import (
    DECISION_COLUMNS,
    IdempotencyConflict,
    Ledger,
    LedgerError,
    request_digest,
)

COUNTY = "530102"
VILLAGE = "530102001001"


def entry(household_id: str, period: str, **overrides):
    """One ledger entry as the scoring service would build it."""
    record = {
        "household_id": household_id,
        "period": period,
        "county_code": overrides.get("county_code", COUNTY),
        "village_code": overrides.get("village_code", VILLAGE),
        "household_size": 4,
        "income_wage": 12000.0,
        "medical_expense": None,
    }
    out = {
        "household_id": household_id,
        "period": period,
        "county_code": COUNTY,
        "village_code": VILLAGE,
        "model_name": "household-risk",
        "model_version": "3",
        "rules_version": "2024.1",
        "score": 0.42,
        "risk_level": "yellow",
        "flagged": True,
        "flagged_by": "model",
        "record": record,
        "result": {"household_id": household_id, "period": period, "score": 0.42},
        "contributions": {"income_wage": -0.3, "medical_expense": 0.1},
    }
    out.update(overrides)
    return out


@pytest.fixture
def db_path(tmp_path):
    return tmp_path / "ledger.db"


# SQLite-only tests (PRAGMAs, file locks, the sqlite3 module): the others run on PostgreSQL too
SQLITE_ONLY = {"test_sqlite_is_wal_with_busy_timeout_and_foreign_keys"}


def pytest_generate_tests(metafunc):
    """Every test of a ``ledger`` that does not read its SQLite file runs on both databases."""
    names = metafunc.fixturenames
    if (
        "ledger" in names
        and "db_path" not in names
        and metafunc.function.__name__ not in SQLITE_ONLY
    ):
        metafunc.parametrize("backend", ["sqlite", "postgresql"])


@pytest.fixture
def backend():
    return "sqlite"


@pytest.fixture
def ledger(request, backend, tmp_path):
    if backend == "postgresql":
        url = request.getfixturevalue("pg_url")
    else:
        url = f"sqlite:///{tmp_path / 'ledger.db'}"
    led = Ledger(url)
    yield led
    led.close()


# --------------------------------------------------------------------------- basics
def test_record_then_get_round_trips_every_column(ledger):
    e = entry("hh-1", "2024-06", score=np.float64(0.81), flagged=np.bool_(True))
    e["record"]["income_business"] = float("nan")  # missing stays missing (null)
    e["record"]["labor_count"] = np.int64(2)
    e["result"]["text_zh"] = "因病风险"
    (did,) = ledger.record([e], caller="scorer-app", request_id="req-1")

    assert len(did) == 32 and int(did, 16) >= 0
    row = ledger.get(did)
    assert row is not None
    assert set(row) == set(DECISION_COLUMNS)
    assert row["decision_id"] == did
    assert row["request_id"] == "req-1"
    assert row["caller"] == "scorer-app"
    assert row["status"] == "completed"
    assert row["errors"] is None
    assert row["score"] == pytest.approx(0.81)
    assert row["flagged"] is True
    assert row["risk_level"] == "yellow"
    assert row["model_version"] == "3"
    assert row["record"]["labor_count"] == 2
    assert row["record"]["income_business"] is None
    assert row["record"]["medical_expense"] is None
    assert row["result"]["text_zh"] == "因病风险"
    assert row["contributions"] == {"income_wage": -0.3, "medical_expense": 0.1}
    created = datetime.fromisoformat(row["created_at"])
    assert created.utcoffset().total_seconds() == 0
    assert abs((datetime.now(UTC) - created).total_seconds()) < 60
    assert ledger.get("0" * 32) is None
    assert ledger.count() == 1


@pytest.mark.parametrize(
    "value",
    [
        {"a": 1, "b": [1.5, None, True], "c": "因病"},  # plain: the C encoder's fast path
        {"x": np.float64(0.25), "n": np.int64(3), "f": np.bool_(False)},  # numpy scalars
        {"nan": float("nan"), "inf": [float("inf")], "na": pd.NA},  # missing becomes null
        {"arr": np.array([1.0, np.nan]), 2: "int key", "t": (1, 2)},
        [],
    ],
)
def test_json_encoding_matches_the_plain_conversion(value):
    from riskml.data.json_text import dumps, encode, plain

    assert encode(value) == dumps(value) == dumps(plain(value))


def test_json_encoding_refuses_what_json_cannot_hold():
    from riskml.data.json_text import encode

    assert encode(None) is None
    with pytest.raises(TypeError, match="object cannot be stored as JSON"):
        encode({"a": object()})


def test_decision_id_comes_from_entry_or_result_or_is_new(ledger):
    given = Ledger.new_decision_id()
    in_result = Ledger.new_decision_id()
    e2 = entry("hh-2", "2024-06")
    e2["result"]["decision_id"] = in_result
    ids = ledger.record(
        [entry("hh-1", "2024-06", decision_id=given), e2, entry("hh-3", "2024-06")],
        caller="s",
        request_id="r",
    )
    assert ids[0] == given and ids[1] == in_result
    assert len(set(ids)) == 3
    assert [ledger.get(i)["household_id"] for i in ids] == ["hh-1", "hh-2", "hh-3"]

    clash = entry("hh-4", "2024-06", decision_id=Ledger.new_decision_id())
    clash["result"]["decision_id"] = Ledger.new_decision_id()
    with pytest.raises(LedgerError, match="decision_id"):
        ledger.record([clash], caller="s", request_id="r")


def test_failed_decision_is_kept_with_its_errors(ledger):
    failed = {
        "household_id": "hh-9",
        "period": "2024-06",
        "county_code": COUNTY,
        "village_code": VILLAGE,
        "record": {"household_id": "hh-9"},
        "status": "failed",
        "errors": [{"stage": "model", "error": "ValueError: shape mismatch"}],
        "model_name": "household-risk",
    }
    (did,) = ledger.record([failed], caller="s", request_id="r")
    row = ledger.get(did)
    assert row["status"] == "failed"
    assert row["errors"][0]["stage"] == "model"
    assert row["score"] is None and row["result"] is None and row["flagged"] is False


def test_sqlite_is_wal_with_busy_timeout_and_foreign_keys(ledger):
    with ledger.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        indexes = {r[1] for r in conn.exec_driver_sql("PRAGMA index_list('decisions')")}
    assert {
        "ix_decisions_household_period",
        "ix_decisions_county",
        "ix_decisions_village",
        "ix_decisions_created_at",
    } <= indexes


def test_sqlite_synchronous_is_full_and_set_explicitly(db_path):
    """FULL whatever the library's default (some builds give WAL databases NORMAL)."""
    statements: list[str] = []
    led = Ledger(f"sqlite:///{db_path}")
    try:
        led.engine.dispose()  # the connections from here on are new ones

        def trace(dbapi_connection, _record):  # runs before the ledger's own set-up
            dbapi_connection.set_trace_callback(statements.append)

        event.listen(led.engine, "connect", trace, insert=True)
        with led.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # 2 is FULL
    finally:
        led.close()
    assert "PRAGMA synchronous = FULL" in statements


def test_default_url_comes_from_config(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'sub' / 'from-env.db'}"
    monkeypatch.setenv("RISKML_LEDGER_URL", url)
    with Ledger() as led:
        assert led.url == url
        led.record([entry("hh-1", "2024-06")], caller="s", request_id="r")
    assert (tmp_path / "sub" / "from-env.db").exists()
    # a second Ledger on the same file sees the row (tables are not re-created)
    with Ledger(url) as again:
        assert again.count() == 1


def test_in_memory_ledger_works():
    with Ledger("sqlite://") as led:
        led.record([entry("hh-1", "2024-06")], caller="s", request_id="r")
        assert led.count() == 1


# --------------------------------------------------------------------------- all or nothing
def test_batch_with_duplicate_decision_id_writes_nothing(ledger):
    (existing,) = ledger.record([entry("hh-0", "2024-01")], caller="s", request_id="r0")
    fresh_a, fresh_b = Ledger.new_decision_id(), Ledger.new_decision_id()
    batch = [
        entry("hh-1", "2024-06", decision_id=fresh_a),
        entry("hh-2", "2024-06", decision_id=existing),  # already stored: the DB refuses it
        entry("hh-3", "2024-06", decision_id=fresh_b),
    ]
    with pytest.raises(LedgerError, match="nothing stored"):
        ledger.record(batch, caller="s", request_id="r1")
    assert ledger.count() == 1
    assert ledger.get(fresh_a) is None and ledger.get(fresh_b) is None
    assert ledger.get(existing)["household_id"] == "hh-0"


def test_batch_with_an_invalid_entry_writes_nothing(ledger):
    bad = entry("hh-2", "2024-06")
    del bad["risk_level"]
    with pytest.raises(LedgerError, match=r"entry 1: risk_level"):
        ledger.record([entry("hh-1", "2024-06"), bad], caller="s", request_id="r")
    with pytest.raises(LedgerError, match=r"entry 0: colour: unknown"):
        ledger.record([entry("hh-1", "2024-06", colour="red")], caller="s", request_id="r")
    same = Ledger.new_decision_id()
    with pytest.raises(LedgerError, match="twice"):
        ledger.record(
            [
                entry("hh-1", "2024-06", decision_id=same),
                entry("hh-2", "2024-06", decision_id=same),
            ],
            caller="s",
            request_id="r",
        )
    assert ledger.count() == 0


def test_errors_and_logs_never_carry_record_contents(ledger, caplog):
    (existing,) = ledger.record([entry("hh-0", "2024-01")], caller="s", request_id="r0")
    secret = entry("hh-1", "2024-06", decision_id=existing)
    secret["record"]["household_id"] = "SECRET-PERSON-7731"
    secret["result"]["note"] = "SECRET-PERSON-7731"
    with caplog.at_level(logging.DEBUG), pytest.raises(LedgerError) as info:
        ledger.record([secret], caller="s", request_id="r1")
    chain = []
    exc: BaseException | None = info.value
    while exc is not None:
        chain.append(str(exc))
        exc = exc.__cause__
    assert not any("SECRET-PERSON" in s for s in chain)
    assert "SECRET-PERSON" not in caplog.text


def test_raw_key_is_refused_as_caller(ledger):
    with pytest.raises(LedgerError, match="raw API key"):
        ledger.record(
            [entry("hh-1", "2024-06")],
            caller="rk_" + "A" * 43,
            request_id="r",
        )
    assert ledger.count() == 0


# --------------------------------------------------------------------------- insert-only
def test_no_update_or_delete_methods():
    public = {n for n in dir(Ledger) if not n.startswith("_")}
    assert not {n for n in public if any(w in n for w in ("update", "delete", "remove", "purge"))}


def test_triggers_abort_update_and_delete(ledger, db_path):
    (did,) = ledger.record([entry("hh-1", "2024-06")], caller="s", request_id="r")
    ledger.log_access("cw-1", "caseworker", "view_household", "hh-1", "county:530102")
    ledger.record_once(
        [entry("hh-2", "2024-06")], caller="s", request_id="r2", idempotency_key="k",
        request_digest=request_digest({"n": 1}),
    )  # fmt: skip
    ledger.begin_run("run-1", caller="batch:test")
    ledger.record_run([entry("hh-3", "2024-06")], run_id="run-1", caller="s", request_id="r3")
    ledger.record_move("hh-1", ("530103", "530103001001"), "relocated", "admin:ops")

    for stmt in (
        "UPDATE decisions SET score = 0.0",
        "DELETE FROM decisions",
        f"DELETE FROM decisions WHERE decision_id = '{did}'",
        "UPDATE access_log SET actor = 'someone-else'",
        "DELETE FROM access_log",
        "UPDATE idempotency_keys SET request_digest = 'x'",
        "DELETE FROM idempotency_keys",
        "UPDATE batch_runs SET caller = 'x'",
        "DELETE FROM batch_runs",
        "UPDATE batch_decisions SET decision_id = 'x'",
        "DELETE FROM batch_decisions",
        "UPDATE household_moves SET to_county = '110101'",
        "DELETE FROM household_moves",
    ):
        # through the ledger's own engine ...
        with pytest.raises(Exception, match="insert-only"), ledger.engine.begin() as conn:
            conn.execute(text(stmt))
        # ... and through a plain sqlite3 connection to the file
        raw = sqlite3.connect(db_path, isolation_level=None)
        try:
            with pytest.raises(sqlite3.DatabaseError, match="insert-only"):
                raw.execute(stmt)
        finally:
            raw.close()

    row = ledger.get(did)
    assert row["score"] == pytest.approx(0.42)
    assert ledger.count() == 3
    assert ledger.access_log()[0]["actor"] == "cw-1"
    assert ledger.run_count("run-1") == 1


# --------------------------------------------------------------------------- concurrency
def test_concurrent_writers_from_eight_threads(ledger):
    threads_n, per_thread = 8, 250
    errors: list[BaseException] = []
    ids: list[list[str]] = [[] for _ in range(threads_n)]
    start = threading.Barrier(threads_n)

    def work(t: int) -> None:
        start.wait()
        try:
            for i in range(per_thread):
                ids[t] += ledger.record(
                    [entry(f"hh-{t}-{i}", "2024-06")], caller=f"scorer-{t}", request_id=f"{t}-{i}"
                )
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    began = time.perf_counter()
    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads_n)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    elapsed = time.perf_counter() - began

    assert not errors, errors[:3]
    assert all(not w.is_alive() for w in workers)
    all_ids = [i for chunk in ids for i in chunk]
    assert len(all_ids) == len(set(all_ids)) == threads_n * per_thread
    assert ledger.count() == 2000
    with ledger.engine.connect() as conn:
        per_caller = conn.exec_driver_sql(
            "SELECT caller, COUNT(*) FROM decisions GROUP BY caller"
        ).all()
    assert sorted(n for _, n in per_caller) == [per_thread] * threads_n
    assert elapsed < 60


def test_writable_reports_a_held_write_lock(ledger, db_path):
    assert ledger.writable() is True
    blocker = sqlite3.connect(db_path, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        began = time.perf_counter()
        assert ledger.writable(timeout=0.2) is False
        assert time.perf_counter() - began < 5
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert ledger.writable() is True
    # the probe leaves the pool usable with the normal busy timeout
    ledger.record([entry("hh-1", "2024-06")], caller="s", request_id="r")
    with ledger.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000


# --------------------------------------------------------------------------- look-ups
def _store(ledger, *entries, caller="s"):
    ids = []
    for e in entries:
        ids += ledger.record([e], caller=caller, request_id="r")
    return ids


@pytest.mark.parametrize("path", ["request", "bulk"])
def test_previous_records_picks_latest_strictly_earlier_period(ledger, path, monkeypatch):
    if path == "bulk":  # the VALUES query used beyond a request's keys
        monkeypatch.setattr("riskml.store.ledger._REQUEST_KEYS", 0)

    def e(hid, period, marker):
        out = entry(hid, period)
        out["record"]["marker"] = marker
        return out

    _store(
        ledger,
        e("hh-1", "2023-06", "h1-2023-06"),
        e("hh-1", "2023-12", "h1-2023-12-first"),
        e("hh-1", "2023-12", "h1-2023-12-rescored"),  # same period, stored later: wins
        e("hh-1", "2024-06", "h1-2024-06"),
        e("hh-1", "2024-12", "h1-2024-12"),  # later than some keys: ignored for them
        e("hh-2", "2024-06", "h2-2024-06"),
    )
    keys = [
        ("hh-1", "2024-06"),
        ("hh-1", "2023-12"),
        ("hh-1", "2023-06"),  # nothing earlier
        ("hh-1", "2025-06"),
        ("hh-2", "2024-06"),  # only the same period exists
        ("hh-2", "2024-07"),
        ("hh-3", "2024-06"),  # never seen
        ("hh-1", "2024-06"),  # duplicate key
    ]
    prev = ledger.previous_records(keys)
    assert {k: v["marker"] for k, v in prev.items()} == {
        ("hh-1", "2024-06"): "h1-2023-12-rescored",
        ("hh-1", "2023-12"): "h1-2023-06",
        ("hh-1", "2025-06"): "h1-2024-12",
        ("hh-2", "2024-07"): "h2-2024-06",
    }
    assert prev[("hh-1", "2024-06")]["period"] == "2023-12"
    assert ledger.previous_records([]) == {}


@pytest.mark.parametrize("path,most", [("request", 2), ("bulk", 1)])
def test_previous_records_takes_at_most_two_queries_for_a_thousand_keys(
    ledger, path, most, monkeypatch
):
    if path == "bulk":
        monkeypatch.setattr("riskml.store.ledger._REQUEST_KEYS", 0)
    ledger.record([entry(f"hh-{i}", "2024-01") for i in range(1000)], caller="s", request_id="bulk")
    keys = [(f"hh-{i}", "2024-06") for i in range(1000)]
    statements: list[str] = []

    def count(conn, cursor, statement, params, context, executemany):
        statements.append(statement.lstrip().split(None, 1)[0].upper())

    event.listen(ledger.engine, "before_cursor_execute", count)
    try:
        began = time.perf_counter()
        prev = ledger.previous_records(keys)
        elapsed = time.perf_counter() - began
    finally:
        event.remove(ledger.engine, "before_cursor_execute", count)
    assert len(prev) == 1000
    assert prev[("hh-7", "2024-06")]["household_id"] == "hh-7"
    assert len([s for s in statements if s in ("SELECT", "WITH")]) == most
    assert elapsed < 5


def test_latest_by_household_scope_flags_and_previous(ledger):
    other_county, other_village = "530103", "530103002001"
    ids = _store(
        ledger,
        entry("hh-1", "2024-01", flagged=False, risk_level="green", score=0.1),
        entry("hh-1", "2024-06", score=0.9, risk_level="red"),
        entry("hh-2", "2024-06", flagged=False, risk_level="green", score=0.05),
        entry(
            "hh-3",
            "2024-06",
            county_code=other_county,
            village_code=other_village,
            score=0.6,
        ),
        # hh-4 moved out of COUNTY: its latest decision is elsewhere
        entry("hh-4", "2024-01"),
        entry("hh-4", "2024-06", county_code=other_county, village_code="530103009001"),
    )

    everyone = ledger.latest_by_household()
    assert [r["household_id"] for r in everyone] == ["hh-1", "hh-3", "hh-4", "hh-2"]
    hh1 = everyone[0]
    assert hh1["decision_id"] == ids[1] and hh1["period"] == "2024-06"
    assert hh1["previous_decision_id"] == ids[0]
    assert hh1["previous_period"] == "2024-01"
    assert hh1["previous_created_at"] == ledger.get(ids[0])["created_at"]
    assert hh1["previous_flagged"] is False and hh1["previous_risk_level"] == "green"
    assert hh1["record"]["household_id"] == "hh-1"
    hh2 = next(r for r in everyone if r["household_id"] == "hh-2")
    assert hh2["previous_period"] is None and hh2["previous_created_at"] is None

    by_county = ledger.latest_by_household(county_codes=[COUNTY])
    assert sorted(r["household_id"] for r in by_county) == ["hh-1", "hh-2"]
    by_village = ledger.latest_by_household(village_codes=[other_village])
    assert [r["household_id"] for r in by_village] == ["hh-3"]
    either = ledger.latest_by_household([COUNTY], [other_village], flagged_only=True)
    assert [r["household_id"] for r in either] == ["hh-1", "hh-3"]
    assert ledger.latest_by_household([], []) == []
    assert ledger.latest_by_household(["650101"]) == []

    slim = ledger.latest_by_household(with_json=False)
    assert "record" not in slim[0] and "result" not in slim[0]


def test_household_history_in_period_order(ledger):
    _store(
        ledger,
        entry("hh-1", "2024-06"),
        entry("hh-1", "2023-06"),
        entry("hh-2", "2024-01"),
        entry("hh-1", "2024-06", score=0.7),
    )
    history = ledger.household_history("hh-1")
    assert [(r["period"], r["score"]) for r in history] == [
        ("2023-06", 0.42),
        ("2024-06", 0.42),
        ("2024-06", 0.7),
    ]
    assert history[1]["created_at"] < history[2]["created_at"]
    assert ledger.household_history("nobody") == []


def test_decisions_frame_window_and_expanded_records(ledger):
    _store(ledger, entry("hh-1", "2024-06"), entry("hh-2", "2024-06", score=None))
    time.sleep(0.01)
    cut = datetime.now(UTC)
    time.sleep(0.01)
    _store(ledger, entry("hh-3", "2024-06"))

    frame = ledger.decisions_frame()
    assert len(frame) == 3
    assert list(frame["household_id"]) == ["hh-1", "hh-2", "hh-3"]
    assert str(frame["created_at"].dt.tz) == "UTC"
    assert "record" not in frame.columns
    assert {"household_size", "income_wage", "medical_expense"} <= set(frame.columns)
    assert frame["household_size"].tolist() == [4, 4, 4]
    assert frame["medical_expense"].isna().all()
    assert pd.isna(frame.loc[1, "score"])

    assert list(ledger.decisions_frame(since=cut.isoformat())["household_id"]) == ["hh-3"]
    assert list(ledger.decisions_frame(until=cut)["household_id"]) == ["hh-1", "hh-2"]
    local = cut.astimezone().isoformat()  # any offset is converted to UTC
    assert len(ledger.decisions_frame(since=local)) == 1
    assert len(ledger.decisions_frame(until="2000-01-01")) == 0

    raw = ledger.decisions_frame(expand_records=False)
    assert "record" in raw.columns and "household_size" not in raw.columns
    empty = ledger.decisions_frame(since="2999-01-01")
    assert empty.empty and "decision_id" in empty.columns


def test_access_log_newest_first_with_filters(ledger):
    ledger.log_access("cw-1", "caseworker", "view_household", "hh-1", ["county:530102"])
    ledger.log_access("cw-1", "caseworker", "view_worklist", scope="county:530102")
    ledger.log_access("admin-1", "admin", "read_decision", "hh-2")
    log = ledger.access_log()
    assert [r["action"] for r in log] == ["read_decision", "view_worklist", "view_household"]
    assert log[2]["scope"] == "county:530102" and log[2]["household_id"] == "hh-1"
    assert log[1]["household_id"] is None
    assert datetime.fromisoformat(log[0]["at"]).utcoffset().total_seconds() == 0
    assert len(ledger.access_log(limit=2)) == 2
    assert [r["actor"] for r in ledger.access_log(household_id="hh-2")] == ["admin-1"]
    assert len(ledger.access_log(actor="cw-1")) == 2
    assert ledger.count() == 0  # the access log is not a decision


# --------------------------------------------------------------------------- idempotency keys
def _request(n: int, tag: str = "a"):
    """A request's entries (fresh decision ids) and its body's digest."""
    body = {
        "households": [{"household_id": f"idem-{tag}-{i}", "period": "2024-06"} for i in range(n)]
    }
    entries = [
        entry(f"idem-{tag}-{i}", "2024-06", score=0.1 * i, decision_id=Ledger.new_decision_id())
        for i in range(n)
    ]
    for e in entries:
        e["result"] = {**e["result"], "decision_id": e["decision_id"], "score": e["score"]}
    return entries, request_digest(body)


def test_a_retry_with_the_idempotency_key_stores_nothing_and_gets_the_first_answer(ledger):
    first_entries, digest = _request(3)
    assert ledger.replay(caller="scorer:a", idempotency_key="key-1", request_digest=digest) is None
    first = ledger.record_once(
        first_entries, caller="scorer:a", request_id="req-1", idempotency_key="key-1",
        request_digest=digest,
    )  # fmt: skip
    assert not first.replayed
    assert first.decision_ids == [e["decision_id"] for e in first_entries]
    assert ledger.count() == 3

    retry_entries, same_digest = _request(3)  # decided again: new decision ids
    assert same_digest == digest
    again = ledger.record_once(
        retry_entries, caller="scorer:a", request_id="req-2", idempotency_key="key-1",
        request_digest=digest,
    )  # fmt: skip
    assert again.replayed
    assert ledger.count() == 3, "the retry stored nothing"
    assert again.request_id == "req-1" and again.created_at == first.created_at
    assert again.decision_ids == first.decision_ids
    # the stored results, in the request's order, as first answered
    assert [r["decision_id"] for r in again.results] == first.decision_ids
    assert [r["score"] for r in again.results] == pytest.approx([0.0, 0.1, 0.2])
    assert not any(ledger.get(e["decision_id"]) for e in retry_entries)
    # the same through replay() (a check before scoring)
    looked = ledger.replay(caller="scorer:a", idempotency_key="key-1", request_digest=digest)
    assert looked.replayed and looked.decision_ids == first.decision_ids


def test_the_same_key_with_another_body_is_a_conflict_and_stores_nothing(ledger):
    entries_a, digest_a = _request(2, "a")
    ledger.record_once(
        entries_a, caller="scorer:a", request_id="req-1", idempotency_key="key-1",
        request_digest=digest_a,
    )  # fmt: skip
    entries_b, digest_b = _request(2, "b")
    assert digest_b != digest_a
    with pytest.raises(IdempotencyConflict, match="different request") as info:
        ledger.record_once(
            entries_b, caller="scorer:a", request_id="req-2", idempotency_key="key-1",
            request_digest=digest_b,
        )  # fmt: skip
    assert info.value.request_id == "req-1"
    with pytest.raises(IdempotencyConflict):
        ledger.replay(caller="scorer:a", idempotency_key="key-1", request_digest=digest_b)
    assert ledger.count() == 2
    # keys are per caller: another caller's same key is another request
    other = ledger.record_once(
        entries_b, caller="scorer:b", request_id="req-3", idempotency_key="key-1",
        request_digest=digest_b,
    )  # fmt: skip
    assert not other.replayed and ledger.count() == 4


def test_request_digest_is_canonical():
    a = {"households": [{"x": 1, "y": "因病"}], "explain": "all"}
    b = {"explain": "all", "households": [{"y": "因病", "x": 1}]}
    assert request_digest(a) == request_digest(b)
    assert len(request_digest(a)) == 64
    assert request_digest(a) != request_digest({**a, "explain": "none"})


@pytest.mark.parametrize(
    ("key", "digest"), [("", "0" * 64), ("has space", "0" * 64), ("k" * 256, "0" * 64),
                        ("ok", "not-a-digest")],
)  # fmt: skip
def test_malformed_idempotency_keys_are_refused(ledger, key, digest):
    entries, _ = _request(1)
    with pytest.raises(ValueError, match="idempotency key|request_digest"):
        ledger.record_once(
            entries, caller="s", request_id="r", idempotency_key=key, request_digest=digest
        )
    assert ledger.count() == 0


def test_the_key_is_unique_per_caller_in_the_database(ledger, db_path):
    entries, digest = _request(1)
    ledger.record_once(
        entries, caller="s", request_id="r", idempotency_key="k", request_digest=digest
    )
    raw = sqlite3.connect(db_path, isolation_level=None)
    try:
        with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
            raw.execute(
                "INSERT INTO idempotency_keys (caller, idempotency_key, request_digest, "
                "request_id, created_at, decision_ids) VALUES ('s', 'k', 'd', 'r2', 't', '[]')"
            )
    finally:
        raw.close()


def test_one_key_sent_by_eight_threads_at_once_is_stored_once(ledger):
    threads_n = 8
    start = threading.Barrier(threads_n)
    answers: list = [None] * threads_n
    errors: list[BaseException] = []

    def work(t: int) -> None:
        entries, digest = _request(5)  # each thread decided the request itself
        start.wait()
        try:
            answers[t] = ledger.record_once(
                entries, caller="scorer:a", request_id=f"req-{t}", idempotency_key="same",
                request_digest=digest,
            )  # fmt: skip
        except BaseException as exc:  # asserted below
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads_n)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=60)
    assert not errors, errors[:3]
    assert ledger.count() == 5
    assert sum(not a.replayed for a in answers) == 1
    assert len({tuple(a.decision_ids) for a in answers}) == 1
    assert len({a.request_id for a in answers}) == 1


# --------------------------------------------------------------------------- batch runs
def test_a_batch_run_stores_each_household_and_period_once(ledger):
    assert ledger.begin_run("run-1", caller="batch:test", input_sha256="0" * 64) is True
    assert ledger.begin_run("run-1", caller="batch:test") is False
    first = [entry(f"hh-{i}", "2024-06") for i in range(4)]
    block = ledger.record_run(first, run_id="run-1", caller="batch:test", request_id="b-0")
    assert block.stored == 4 and block.existing == {}
    stored_ids = [ledger.household_history(f"hh-{i}")[0]["decision_id"] for i in range(4)]

    # a rerun: hh-2 and hh-3 stored before, hh-4 and hh-5 new (fresh decision ids)
    rerun = [entry(f"hh-{i}", "2024-06", score=0.9) for i in (2, 3, 4, 5)]
    block = ledger.record_run(rerun, run_id="run-1", caller="batch:test", request_id="b-1")
    assert block.stored == 2
    assert sorted(block.existing) == [0, 1]
    assert [block.existing[i]["decision_id"] for i in (0, 1)] == stored_ids[2:]
    assert block.existing[0]["result"]["score"] == pytest.approx(0.42)  # as stored, not 0.9
    assert ledger.count() == 6 and ledger.run_count("run-1") == 6
    for i in range(6):
        assert len(ledger.household_history(f"hh-{i}")) == 1

    # another run of the same records is another run
    ledger.begin_run("run-2", caller="batch:test")
    block = ledger.record_run(rerun, run_id="run-2", caller="batch:test", request_id="c-0")
    assert block.stored == 4 and ledger.run_count("run-2") == 4


def test_a_batch_block_with_a_repeated_key_stores_nothing(ledger):
    ledger.begin_run("run-1", caller="batch:test")
    with pytest.raises(LedgerError, match="twice"):
        ledger.record_run(
            [entry("hh-1", "2024-06"), entry("hh-1", "2024-06")],
            run_id="run-1", caller="batch:test", request_id="b-0",
        )  # fmt: skip
    assert ledger.count() == 0


def test_batch_keys_are_unique_in_the_database(ledger, db_path):
    ledger.begin_run("run-1", caller="batch:test")
    ledger.record_run([entry("hh-1", "2024-06")], run_id="run-1", caller="b", request_id="b-0")
    (did,) = ledger.record([entry("hh-1", "2024-06")], caller="other", request_id="r")
    raw = sqlite3.connect(db_path, isolation_level=None)
    try:
        with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
            raw.execute(
                "INSERT INTO batch_decisions (run_id, household_id, period, decision_id) "
                f"VALUES ('run-1', 'hh-1', '2024-06', '{did}')"
            )
    finally:
        raw.close()


def test_two_processes_of_one_run_at_once_store_each_key_once(ledger):
    ledger.begin_run("run-1", caller="batch:test")
    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def work(t: int) -> None:
        entries = [entry(f"hh-{i}", "2024-06") for i in range(300)]
        start.wait()
        try:
            for lo in range(0, 300, 50):
                ledger.record_run(
                    entries[lo : lo + 50], run_id="run-1", caller="b", request_id=f"{t}-{lo}"
                )
        except BaseException as exc:  # asserted below
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=60)
    assert not errors, errors[:3]
    assert ledger.count() == 300 == ledger.run_count("run-1")


# --------------------------------------------------------------------------- where households are
def test_a_household_is_where_it_was_stored_last_or_moved_to(ledger):
    assert ledger.locations(["hh-a"]) == {}
    ledger.record([entry("hh-a", "2024-06"), entry("hh-b", "2024-06")], caller="s", request_id="r1")
    assert ledger.locations(["hh-a", "hh-b", "hh-c"]) == {
        "hh-a": (COUNTY, VILLAGE),
        "hh-b": (COUNTY, VILLAGE),
    }
    move = ledger.record_move("hh-a", ("530103", "530103001001"), "relocated", "admin:ops")
    assert (move["from_county"], move["from_village"]) == (COUNTY, VILLAGE)
    assert ledger.locations(["hh-a"]) == {"hh-a": ("530103", "530103001001")}
    # a decision stored after the move (any period) at the new place keeps it there
    later = entry("hh-a", "2023-06", county_code="530103", village_code="530103001001")
    later.update(county_code="530103", village_code="530103001001")
    ledger.record([later], caller="s", request_id="r2")
    assert ledger.locations(["hh-a"]) == {"hh-a": ("530103", "530103001001")}
    assert len(ledger.locations([f"hh-{i}" for i in range(2500)] + ["hh-b"])) == 1  # chunked IN
