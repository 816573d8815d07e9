"""The ledger's schema as riskml 0.1 made it: every table, index and trigger.

Revision ID: 0001
Revises: (none)

Written to also bring up to this revision a database made before the migrations (by
``metadata.create_all`` at the start of an earlier riskml: no ``alembic_version`` table):
every table, index and trigger is created only where it is missing, and a ledger with
decisions but no ``latest_decisions`` rows gets them. The definitions are frozen here (not
read from ``riskml.store.tables``): a later change of the tables is a later revision, and
``tests/code/test_postgres.py`` checks that the migrated database equals the tables.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SCHEMA = sa.MetaData()
JSON_TYPE = sa.JSON(none_as_null=True).with_variant(
    postgresql.JSONB(none_as_null=True), "postgresql"
)

sa.Table(
    "access_log",
    SCHEMA,
    sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
    sa.Column("at", sa.String(length=32), nullable=False),
    sa.Column("actor", sa.String(), nullable=False),
    sa.Column("role", sa.String(), nullable=False),
    sa.Column("action", sa.String(), nullable=False),
    sa.Column("household_id", sa.String(length=64), nullable=True),
    sa.Column("scope", sa.String(), nullable=True),
    sa.PrimaryKeyConstraint("id"),
    sa.Index("ix_access_log_at", "at"),
    sa.Index("ix_access_log_household", "household_id"),
)
sa.Table(
    "batch_runs",
    SCHEMA,
    sa.Column("run_id", sa.String(length=64), nullable=False),
    sa.Column("created_at", sa.String(length=32), nullable=False),
    sa.Column("caller", sa.String(), nullable=False),
    sa.Column("input_sha256", sa.String(length=64), nullable=True),
    sa.Column("model_name", sa.String(), nullable=True),
    sa.Column("model_version", sa.String(), nullable=True),
    sa.Column("rules_version", sa.String(), nullable=True),
    sa.Column("explain", sa.String(length=16), nullable=True),
    sa.PrimaryKeyConstraint("run_id"),
)
sa.Table(
    "case_current",
    SCHEMA,
    sa.Column("household_id", sa.String(length=64), nullable=False),
    sa.Column("seq", sa.Integer(), nullable=False),
    sa.Column("case_id", sa.String(length=32), nullable=False),
    sa.Column("county_code", sa.String(length=6), nullable=False),
    sa.Column("township_code", sa.String(length=9), nullable=False),
    sa.Column("village_code", sa.String(length=12), nullable=False),
    sa.Column("status", sa.String(length=32), nullable=False),
    sa.Column("assignee", sa.String(), nullable=True),
    sa.Column("opened_at", sa.String(length=32), nullable=True),
    sa.Column("assigned_at", sa.String(length=32), nullable=True),
    sa.Column("visited_at", sa.String(length=32), nullable=True),
    sa.Column("checked_at", sa.String(length=32), nullable=True),
    sa.Column("notice_at", sa.String(length=32), nullable=True),
    sa.Column("decided_at", sa.String(length=32), nullable=True),
    sa.Column("last_visit_at", sa.String(length=32), nullable=True),
    sa.Column("proposed_at", sa.String(length=32), nullable=True),
    sa.Column("elimination_township_at", sa.String(length=32), nullable=True),
    sa.Column("eliminated_at", sa.String(length=32), nullable=True),
    sa.Column("plan", sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint("household_id"),
    sa.Index("ix_case_current_county", "county_code", "status"),
    sa.Index("ix_case_current_township", "township_code"),
    sa.Index("ix_case_current_village", "village_code"),
)
sa.Table(
    "case_events",
    SCHEMA,
    sa.Column("household_id", sa.String(length=64), nullable=False),
    sa.Column("seq", sa.Integer(), nullable=False),
    sa.Column("event_id", sa.String(length=32), nullable=False),
    sa.Column("case_id", sa.String(length=32), nullable=False),
    sa.Column("created_at", sa.String(length=32), nullable=False),
    sa.Column("actor", sa.String(), nullable=False),
    sa.Column("county_code", sa.String(length=6), nullable=False),
    sa.Column("village_code", sa.String(length=12), nullable=False),
    sa.Column("action", sa.String(length=32), nullable=False),
    sa.Column("status", sa.String(length=32), nullable=False),
    sa.Column("payload", JSON_TYPE, nullable=False),
    sa.Column("state", JSON_TYPE, nullable=False),
    sa.Column("request_key", sa.String(length=400), nullable=True),
    sa.PrimaryKeyConstraint("household_id", "seq", name="pk_case_events"),
    sa.UniqueConstraint("event_id"),
    sa.UniqueConstraint("request_key"),
    sa.Index("ix_case_events_case", "case_id", "seq"),
    sa.Index("ix_case_events_county", "county_code", "household_id", "seq"),
    sa.Index("ix_case_events_created_at", "created_at"),
    sa.Index("ix_case_events_village", "village_code", "household_id"),
)
sa.Table(
    "decisions",
    SCHEMA,
    sa.Column("decision_id", sa.String(length=32), nullable=False),
    sa.Column("request_id", sa.String(), nullable=False),
    sa.Column("created_at", sa.String(length=32), nullable=False),
    sa.Column("caller", sa.String(), nullable=False),
    sa.Column("household_id", sa.String(length=64), nullable=False),
    sa.Column("period", sa.String(length=7), nullable=False),
    sa.Column("county_code", sa.String(length=6), nullable=False),
    sa.Column("village_code", sa.String(length=12), nullable=False),
    sa.Column("model_name", sa.String(), nullable=True),
    sa.Column("model_version", sa.String(), nullable=True),
    sa.Column("rules_version", sa.String(), nullable=True),
    sa.Column("score", sa.Float(), nullable=True),
    sa.Column("risk_level", sa.String(length=16), nullable=True),
    sa.Column("flagged", sa.Boolean(), nullable=False),
    sa.Column("flagged_by", sa.String(), nullable=True),
    sa.Column("record", JSON_TYPE, nullable=False),
    sa.Column("result", JSON_TYPE, nullable=True),
    sa.Column("contributions", JSON_TYPE, nullable=True),
    sa.Column("status", sa.String(length=16), nullable=False),
    sa.Column("errors", JSON_TYPE, nullable=True),
    sa.CheckConstraint("status IN ('completed', 'failed')", name="ck_decisions_status"),
    sa.PrimaryKeyConstraint("decision_id"),
    sa.Index("ix_decisions_county", "county_code"),
    sa.Index("ix_decisions_created_at", "created_at"),
    sa.Index("ix_decisions_household_period", "household_id", "period"),
    sa.Index("ix_decisions_village", "village_code"),
)
sa.Table(
    "household_moves",
    SCHEMA,
    sa.Column("move_id", sa.String(length=32), nullable=False),
    sa.Column("created_at", sa.String(length=32), nullable=False),
    sa.Column("caller", sa.String(), nullable=False),
    sa.Column("household_id", sa.String(length=64), nullable=False),
    sa.Column("from_county", sa.String(length=6), nullable=True),
    sa.Column("from_village", sa.String(length=12), nullable=True),
    sa.Column("to_county", sa.String(length=6), nullable=False),
    sa.Column("to_village", sa.String(length=12), nullable=False),
    sa.Column("reason", sa.String(length=500), nullable=False),
    sa.PrimaryKeyConstraint("move_id"),
    sa.Index("ix_household_moves_household", "household_id"),
)
sa.Table(
    "idempotency_keys",
    SCHEMA,
    sa.Column("caller", sa.String(), nullable=False),
    sa.Column("idempotency_key", sa.String(length=255), nullable=False),
    sa.Column("request_digest", sa.String(length=64), nullable=False),
    sa.Column("request_id", sa.String(), nullable=False),
    sa.Column("created_at", sa.String(length=32), nullable=False),
    sa.Column("decision_ids", JSON_TYPE, nullable=False),
    sa.PrimaryKeyConstraint("caller", "idempotency_key", name="pk_idempotency_keys"),
)
sa.Table(
    "latest_decisions",
    SCHEMA,
    sa.Column("household_id", sa.String(length=64), nullable=False),
    sa.Column("decision_id", sa.String(length=32), nullable=False),
    sa.Column("period", sa.String(length=7), nullable=False),
    sa.Column("created_at", sa.String(length=32), nullable=False),
    sa.Column("county_code", sa.String(length=6), nullable=False),
    sa.Column("township_code", sa.String(length=9), nullable=False),
    sa.Column("village_code", sa.String(length=12), nullable=False),
    sa.Column("score", sa.Float(), nullable=True),
    sa.Column("risk_level", sa.String(length=16), nullable=True),
    sa.Column("flagged", sa.Boolean(), nullable=False),
    sa.Column("flagged_by", sa.String(), nullable=True),
    sa.PrimaryKeyConstraint("household_id"),
    sa.Index("ix_latest_decisions_county", "county_code"),
    sa.Index("ix_latest_decisions_township", "township_code"),
    sa.Index("ix_latest_decisions_village", "village_code"),
)
sa.Table(
    "social_reports",
    SCHEMA,
    sa.Column("reporter", sa.String(length=64), nullable=False),
    sa.Column("report_id", sa.String(length=64), nullable=False),
    sa.Column("received_at", sa.String(length=32), nullable=False),
    sa.Column("caller", sa.String(), nullable=False),
    sa.Column("batch_id", sa.String(length=32), nullable=False),
    sa.Column("organisation_kind", sa.String(length=32), nullable=False),
    sa.Column("household_id", sa.String(length=64), nullable=True),
    sa.Column("county_code", sa.String(length=6), nullable=False),
    sa.Column("village_code", sa.String(length=12), nullable=True),
    sa.Column("risk_types", JSON_TYPE, nullable=False),
    sa.Column("observed_on", sa.String(length=10), nullable=False),
    sa.Column("description", sa.String(length=500), nullable=True),
    sa.Column("reference", sa.String(length=64), nullable=True),
    sa.Column("matched", sa.Boolean(), nullable=False),
    sa.Column("request_key", sa.String(length=255), nullable=True),
    sa.Column("request_digest", sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint("reporter", "report_id", name="pk_social_reports"),
    sa.Index("ix_social_reports_county", "county_code", "matched"),
    sa.Index("ix_social_reports_household", "household_id"),
    sa.Index("ix_social_reports_request", "reporter", "request_key"),
    sa.Index("ix_social_reports_village", "village_code", "matched"),
)
sa.Table(
    "alerts",
    SCHEMA,
    sa.Column("department", sa.String(length=32), nullable=False),
    sa.Column("alert_id", sa.String(length=64), nullable=False),
    sa.Column("received_at", sa.String(length=32), nullable=False),
    sa.Column("caller", sa.String(), nullable=False),
    sa.Column("batch_id", sa.String(length=32), nullable=False),
    sa.Column("household_id", sa.String(length=64), nullable=False),
    sa.Column("county_code", sa.String(length=6), nullable=False),
    sa.Column("period", sa.String(length=7), nullable=False),
    sa.Column("fields", JSON_TYPE, nullable=False),
    sa.Column("matched", sa.Boolean(), nullable=False),
    sa.Column("decision_id", sa.String(length=32), nullable=True),
    sa.Column("triggers", JSON_TYPE, nullable=True),
    sa.Column("provenance", JSON_TYPE, nullable=True),
    sa.ForeignKeyConstraint(
        ["decision_id"],
        ["decisions.decision_id"],
    ),
    sa.PrimaryKeyConstraint("department", "alert_id", name="pk_alerts"),
    sa.Index("ix_alerts_county", "county_code", "matched"),
    sa.Index("ix_alerts_household", "household_id", "period"),
)
sa.Table(
    "batch_decisions",
    SCHEMA,
    sa.Column("run_id", sa.String(length=64), nullable=False),
    sa.Column("household_id", sa.String(length=64), nullable=False),
    sa.Column("period", sa.String(length=7), nullable=False),
    sa.Column("decision_id", sa.String(length=32), nullable=False),
    sa.ForeignKeyConstraint(
        ["decision_id"],
        ["decisions.decision_id"],
    ),
    sa.ForeignKeyConstraint(
        ["run_id"],
        ["batch_runs.run_id"],
    ),
    sa.PrimaryKeyConstraint("run_id", "household_id", "period", name="pk_batch_decisions"),
    sa.UniqueConstraint("decision_id"),
)
sa.Table(
    "outcomes",
    SCHEMA,
    sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
    sa.Column("household_id", sa.String(length=64), nullable=False),
    sa.Column("period", sa.String(length=7), nullable=False),
    sa.Column("decision_period", sa.String(length=7), nullable=False),
    sa.Column("at_risk", sa.Integer(), nullable=False),
    sa.Column("source", sa.String(), nullable=True),
    sa.Column("loaded_at", sa.String(length=32), nullable=False),
    sa.PrimaryKeyConstraint("id"),
    sa.UniqueConstraint("household_id", "period", name="uq_outcomes_household_period"),
    sa.CheckConstraint("at_risk IN (0, 1)", name="ck_outcomes_at_risk"),
    sa.Index("ix_outcomes_decision", "household_id", "decision_period"),
)

INSERT_ONLY = (
    "decisions", "access_log", "idempotency_keys", "batch_runs", "batch_decisions",
    "household_moves", "case_events", "alerts", "social_reports",
)  # fmt: skip
LEDGER_MESSAGE = "'riskml ledger: ' || TG_TABLE_NAME || ' is insert-only (' || TG_OP || ' refused)'"
SQLITE_TRIGGERS = [
    f"CREATE TRIGGER IF NOT EXISTS {table}_no_{op_.lower()} BEFORE {op_} ON {table} "
    f"BEGIN SELECT RAISE(ABORT, 'riskml ledger: {table} is insert-only ({op_} refused)'); END"
    for table in INSERT_ONLY
    for op_ in ("UPDATE", "DELETE")
] + [
    f"CREATE TRIGGER IF NOT EXISTS outcomes_no_{op_.lower()} BEFORE {op_} ON outcomes "
    f"BEGIN SELECT RAISE(ABORT, 'riskml: outcomes is insert-only ({op_} refused)'); END"
    for op_ in ("UPDATE", "DELETE")
]
PG_FUNCTIONS = [
    "CREATE OR REPLACE FUNCTION riskml_ledger_insert_only() RETURNS trigger "
    f"LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION USING MESSAGE = {LEDGER_MESSAGE}; END $$",
    "CREATE OR REPLACE FUNCTION riskml_outcomes_insert_only() RETURNS trigger "
    "LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'riskml: outcomes is insert-only'; END $$",
]
# trigger name -> statement (a database from before the migrations may have some)
PG_TRIGGERS = {
    name: stmt
    for table, function in [(t, "riskml_ledger_insert_only") for t in INSERT_ONLY]
    + [("outcomes", "riskml_outcomes_insert_only")]
    for name, stmt in (
        (
            f"{table}_insert_only",
            f"CREATE TRIGGER {table}_insert_only BEFORE UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION {function}()",
        ),
        (
            f"{table}_no_truncate",
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {function}()",
        ),
    )
}

# latest_decisions: each household's latest decision by (period, created_at, decision_id),
# kept by a trigger on every insert into decisions (riskml.store.latest)
LATEST = (
    "household_id", "decision_id", "period", "created_at", "county_code", "township_code",
    "village_code", "score", "risk_level", "flagged", "flagged_by",
)  # fmt: skip
ORDER = ("period", "created_at", "decision_id")
_FROM_NEW = ", ".join(
    "substr(NEW.village_code, 1, 9)" if c == "township_code" else f"NEW.{c}" for c in LATEST
)
_SET = ", ".join(f"{c} = excluded.{c}" for c in LATEST if c != "household_id")
_LATER = (
    f"({', '.join(f'excluded.{c}' for c in ORDER)}) > "
    f"({', '.join(f'latest_decisions.{c}' for c in ORDER)})"
)
_UPSERT = (
    f"INSERT INTO latest_decisions ({', '.join(LATEST)}) VALUES ({_FROM_NEW}) "
    f"ON CONFLICT (household_id) DO UPDATE SET {_SET} WHERE {_LATER}"
)
LATEST_SQLITE = (
    "CREATE TRIGGER IF NOT EXISTS decisions_keep_latest AFTER INSERT ON decisions "
    f"BEGIN {_UPSERT}; END"
)
LATEST_PG = [
    "CREATE OR REPLACE FUNCTION riskml_keep_latest_decision() RETURNS trigger "
    f"LANGUAGE plpgsql AS $$ BEGIN {_UPSERT}; RETURN NULL; END $$",
    "CREATE TRIGGER decisions_keep_latest AFTER INSERT ON decisions "
    "FOR EACH ROW EXECUTE FUNCTION riskml_keep_latest_decision()",
]


def _fill_latest(conn: sa.Connection) -> None:
    """The rows of a ledger that had decisions before latest_decisions."""
    if conn.exec_driver_sql("SELECT 1 FROM latest_decisions LIMIT 1").first() is not None:
        return
    if conn.exec_driver_sql("SELECT 1 FROM decisions LIMIT 1").first() is None:
        return
    cols = ", ".join(
        "substr(village_code, 1, 9) AS township_code" if c == "township_code" else c for c in LATEST
    )
    order = ", ".join(f"{c} DESC" for c in ORDER)
    conn.exec_driver_sql(
        f"INSERT INTO latest_decisions ({', '.join(LATEST)}) SELECT {', '.join(LATEST)} FROM "
        f"(SELECT {cols}, row_number() OVER (PARTITION BY household_id ORDER BY {order}) AS rn "
        "FROM decisions) AS ranked WHERE rn = 1"
    )


# derived tables (rebuilt from the record when empty: riskml.store.latest, riskml.cases.store)
DERIVED = ("case_current", "latest_decisions")


def _drop_outdated_derived(conn: sa.Connection) -> None:
    """A derived table of an earlier layout (case_current with its JSON ``summary``) is
    dropped, to be made anew and refilled from the record; the record is never dropped."""
    inspector = sa.inspect(conn)
    for name in DERIVED:
        if inspector.has_table(name):
            found = {c["name"] for c in inspector.get_columns(name)}
            if found != set(SCHEMA.tables[name].columns.keys()):
                SCHEMA.tables[name].drop(conn)


def upgrade() -> None:
    conn = op.get_bind()
    dialect = conn.dialect.name
    _drop_outdated_derived(conn)
    SCHEMA.create_all(conn, checkfirst=True)
    for table in SCHEMA.sorted_tables:  # a table made before one of its indexes
        for index in table.indexes:
            index.create(conn, checkfirst=True)
    if dialect == "sqlite":
        for stmt in [*SQLITE_TRIGGERS, LATEST_SQLITE]:
            conn.exec_driver_sql(stmt)
    elif dialect == "postgresql":
        existing = set(
            conn.exec_driver_sql("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal").scalars()
        )
        for stmt in PG_FUNCTIONS:
            conn.exec_driver_sql(stmt)
        for name, stmt in PG_TRIGGERS.items():
            if name not in existing:
                conn.exec_driver_sql(stmt)
        if "decisions_keep_latest" not in existing:
            for stmt in LATEST_PG:
                conn.exec_driver_sql(stmt)
    if dialect in ("sqlite", "postgresql"):  # ON CONFLICT upserts: the two dialects served
        _fill_latest(conn)


def downgrade() -> None:
    raise NotImplementedError(
        "the ledger's first revision is not undone (it would drop the ledger)"
    )
