"""The ledger's database by Alembic migrations, on SQLite and a real PostgreSQL server
(``tests.code.postgres``): the migrated schema is the code's tables, a database made before the
migrations is brought up in place, ``riskml db upgrade | current | grant``, and the service's
PostgreSQL role can read and insert but never update, delete, truncate or drop."""

from __future__ import annotations

import secrets
import threading

import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy import text
from typer.testing import CliRunner

from riskml.cases.store import CaseStore
from riskml.cli import app
from riskml.store import latest, migrations, tables
from riskml.store.entries import LedgerError
from riskml.store.ledger import Ledger
from riskml.store.outcomes import OutcomeStore, outcomes_table
from tests.code.test_case_machine import PROC, _walk
from tests.code.test_ledger import entry

SERVICE_PW = "service-pw-1"


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request, tmp_path):
    """A database with no schema: a new SQLite file, then an empty PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    return request.getfixturevalue("pg_empty_url")


def _database(url: str) -> str:
    return sa.engine.make_url(url).database


def _code_schema() -> sa.MetaData:
    """Every table the code reads and writes: ``riskml.store.tables`` and ``outcomes``."""
    meta = sa.MetaData()
    for table in tables.metadata.sorted_tables:
        table.to_metadata(meta)
    outcomes_table(meta)
    return meta


def test_the_migrated_schema_is_the_code_s_tables(empty_url):
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    ledger = Ledger(empty_url)
    with ledger.engine.connect() as conn:
        assert migrations.current(conn) == migrations.head()
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, _code_schema())
    ledger.close()
    # a table, column, index or type changed in the code without a migration shows up here
    assert [
        d for d in diff if not (d[0] == "remove_table" and d[1].name == "alembic_version")
    ] == []


def _old_ledger(url: str) -> None:
    """A ledger as riskml made it before the migrations: ``create_all`` of the tables it had
    (no ``social_reports``, ``latest_decisions`` nor ``outcomes``; ``case_current`` with its
    JSON ``summary``), its triggers, decisions."""
    old = [
        t
        for t in tables.metadata.sorted_tables
        if t.name not in ("social_reports", "latest_decisions", "case_current")
    ]
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        tables.metadata.create_all(conn, tables=old)
        conn.exec_driver_sql(
            "CREATE TABLE case_current (household_id VARCHAR(64) PRIMARY KEY, seq INTEGER NOT NULL, "
            "case_id VARCHAR(32) NOT NULL, county_code VARCHAR(6) NOT NULL, township_code "
            "VARCHAR(9) NOT NULL, village_code VARCHAR(12) NOT NULL, status VARCHAR(32) NOT NULL, "
            "summary TEXT NOT NULL)"
        )
        if engine.dialect.name == "sqlite":
            for stmt in tables.SQLITE_TRIGGERS:
                if " social_reports " not in stmt:
                    conn.exec_driver_sql(stmt)
        else:
            conn.exec_driver_sql(tables.PG_FUNCTION)
            for name, stmt in tables.PG_TRIGGERS.items():
                if not name.startswith("social_reports"):
                    conn.exec_driver_sql(stmt)
        rows = [
            {**entry(h, p), "decision_id": f"d-{h}-{p}", "request_id": "r", "caller": "s",
             "created_at": f"{p}-02T00:00:00.000000+00:00", "status": "completed", "errors": None}
            for h, p in (("hh-1", "2024-05"), ("hh-1", "2024-06"), ("hh-2", "2024-04"))
        ]  # fmt: skip
        conn.execute(tables.decisions.insert(), rows)
    engine.dispose()


def test_a_ledger_made_before_the_migrations_is_brought_up_in_place(empty_url):
    _old_ledger(empty_url)
    ledger = Ledger(empty_url)
    inspector = sa.inspect(ledger.engine)
    assert {"social_reports", "latest_decisions", "outcomes", "alembic_version"} <= set(
        inspector.get_table_names()
    )
    with ledger.engine.connect() as conn:
        assert migrations.current(conn) == migrations.head()
    assert ledger.count() == 3  # nothing lost
    # the derived case_current of the earlier layout is made anew (refilled from the events)
    assert {c["name"] for c in inspector.get_columns("case_current")} == set(
        tables.case_current.columns.keys()
    )
    kept = {r["household_id"]: r["decision_id"] for r in latest.latest_scores(ledger.engine)}
    assert kept == {"hh-1": "d-hh-1-2024-06", "hh-2": "d-hh-2-2024-04"}
    assert latest.check(ledger.engine) == 0
    # the new tables are insert-only, the old triggers are there once
    report = {"reporter": "r1", "report_id": "1", "received_at": "2024-06-01", "caller": "c",
              "batch_id": "b", "organisation_kind": "ngo", "county_code": "530102",
              "risk_types": ["medical"], "observed_on": "2024-05-30", "matched": False}  # fmt: skip
    with ledger.writer.begin() as conn:
        conn.execute(tables.social_reports.insert(), [report])
    with pytest.raises(Exception, match="insert-only"), ledger.writer.begin() as conn:
        conn.execute(text("DELETE FROM social_reports"))
    with pytest.raises(Exception, match="insert-only"), ledger.writer.begin() as conn:
        conn.execute(text("UPDATE decisions SET score = 0"))
    if ledger.dialect == "postgresql":
        with ledger.engine.connect() as conn:
            names = conn.exec_driver_sql(
                "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal"
            ).scalars().all()  # fmt: skip
        assert len(names) == len(set(names)) == 2 * len(migrations.INSERT_ONLY_TABLES) + 1
    ledger.close()


def test_db_upgrade_and_current(empty_url):
    runner = CliRunner()
    behind = runner.invoke(app, ["db", "current", "--ledger", empty_url])
    assert behind.exit_code == 1 and "revision none, newest" in behind.output
    up = runner.invoke(app, ["db", "upgrade", "--ledger", empty_url])
    assert up.exit_code == 0, up.output
    assert f"upgraded from revision none to {migrations.head()}" in up.output
    again = runner.invoke(app, ["db", "upgrade", "--ledger", empty_url])
    assert again.exit_code == 0 and "nothing to do" in again.output
    now = runner.invoke(app, ["db", "current", "--ledger", empty_url])
    assert now.exit_code == 0 and f"revision {migrations.head()}" in now.output
    with Ledger(empty_url) as ledger:  # a ledger opens it as it is
        assert ledger.count() == 0


def test_ledgers_opening_a_new_postgresql_database_at_once_migrate_it_once(pg_empty_url):
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def open_one() -> None:
        start.wait()
        try:
            Ledger(pg_empty_url).close()
        except BaseException as exc:  # asserted below
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors[:2]
    with Ledger(pg_empty_url) as ledger, ledger.engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalars().all() == [
            migrations.head()
        ]


def _service(pg_server, url: str) -> tuple[str, str]:
    """A new service role (roles are the cluster's: one per test) that may log in: its name and
    its URL for the database of ``url``."""
    role = f"riskml_service_{secrets.token_hex(4)}"
    pg_server.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{SERVICE_PW}'")
    return role, pg_server.url(_database(url), role=role, password=SERVICE_PW)


def test_the_service_role_inserts_and_reads_but_never_updates_deletes_truncates_or_drops(
    pg_server, pg_url
):
    role, service_url = _service(pg_server, pg_url)
    granted = CliRunner().invoke(app, ["db", "grant", "--role", role, "--ledger", pg_url])
    assert granted.exit_code == 0, granted.output

    # the service's whole write path, as that role
    ledger = Ledger(service_url)
    (did,) = ledger.record([entry("hh-1", "2024-06")], caller="s", request_id="r")
    ledger.record_once([entry("hh-2", "2024-06")], caller="s", request_id="r2",
                       idempotency_key="k-1", request_digest="a" * 64)  # fmt: skip
    ledger.begin_run("run-1", caller="batch:test")
    ledger.record_run([entry("hh-3", "2024-06")], run_id="run-1", caller="s", request_id="r3")
    ledger.log_access("cw-1", "caseworker", "view_household", "hh-1", "county:530102")
    ledger.record_move("hh-1", ("530103", "530103001001"), "relocated", "admin:ops")
    store = CaseStore(ledger, PROC)
    _walk(store, "hh_c", "plan")
    outcomes = pd.DataFrame({"household_id": ["hh-1"], "period": ["2025-06"],
                             "decision_period": ["2024-06"], "at_risk": [1]})  # fmt: skip
    assert OutcomeStore(ledger).add(outcomes)["stored"] == 1
    with ledger.writer.begin() as conn:  # the derived rows: rebuilt by the service
        conn.execute(text("DELETE FROM case_current"))
    assert store.rebuild(repair=True).current_repaired == 1
    assert ledger.get(did)["household_id"] == "hh-1"
    stored = ledger.count()
    assert stored == 3 + len(ledger.household_history("hh_c"))  # a visit stores a decision

    refused = []
    schema = _code_schema()
    for table in migrations.INSERT_ONLY_TABLES:
        col = next(iter(schema.tables[table].columns)).name
        for stmt in (f"UPDATE {table} SET {col} = {col}", f"DELETE FROM {table}",
                     f"TRUNCATE {table}", f"DROP TABLE {table}"):  # fmt: skip
            with pytest.raises(sa.exc.ProgrammingError) as caught, ledger.writer.begin() as conn:
                conn.execute(text(stmt))
            message = str(caught.value.orig)
            assert "permission denied" in message or "must be owner" in message, message
            refused.append(stmt)
        with ledger.engine.connect() as conn:
            can = {
                p: conn.execute(text("SELECT has_table_privilege(:r, :t, :p)"),
                                {"r": role, "t": table, "p": p}).scalar()
                for p in ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")
            }  # fmt: skip
        assert can == {"SELECT": True, "INSERT": True, "UPDATE": False, "DELETE": False,
                       "TRUNCATE": False, "REFERENCES": False, "TRIGGER": False}, table  # fmt: skip
    assert len(refused) == 4 * len(migrations.INSERT_ONLY_TABLES)
    with (
        pytest.raises(sa.exc.ProgrammingError, match="permission denied"),
        ledger.writer.begin() as conn,
    ):
        conn.execute(text("CREATE TABLE sneaky (x int)"))
    ledger.close()

    # the owner is refused UPDATE, DELETE and TRUNCATE by the triggers
    owner = Ledger(pg_url)
    for stmt in ("UPDATE decisions SET score = 0", "DELETE FROM case_events",
                 "TRUNCATE access_log", "DELETE FROM outcomes", "TRUNCATE outcomes"):  # fmt: skip
        with pytest.raises(sa.exc.DatabaseError, match="insert-only"), owner.writer.begin() as c:
            c.execute(text(stmt))
    assert owner.count() == stored
    owner.close()


def test_a_role_that_may_not_change_the_schema_is_told_to_run_db_upgrade(pg_server, pg_empty_url):
    _, service_url = _service(pg_server, pg_empty_url)
    with pytest.raises(LedgerError, match=r"revision none.*`riskml db upgrade` as the owner"):
        Ledger(service_url)


def test_grant_refuses_a_bad_role_name_and_sqlite(tmp_path):
    runner = CliRunner()
    bad = runner.invoke(app, ["db", "grant", "--role", "x; DROP TABLE decisions", "--sql"])
    assert bad.exit_code == 2 and "--role" in bad.output
    lite = runner.invoke(app, ["db", "grant", "--role", "svc", "--ledger",
                               f"sqlite:///{tmp_path / 'l.db'}"])  # fmt: skip
    assert lite.exit_code == 2 and "not PostgreSQL" in lite.output
    shown = runner.invoke(app, ["db", "grant", "--role", "svc", "--sql"])
    assert shown.exit_code == 0
    assert "GRANT SELECT, INSERT ON decisions," in shown.output
