"""The decision ledger's tables, indexes, insert-only triggers and prepared queries (SQLAlchemy Core)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    bindparam,
    select,
)
from sqlalchemy.dialects.postgresql import JSONB

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

# A scoring request sent with an idempotency key: the key, per caller, is stored once, in the
# transaction of the request's decisions; a retry with the key gets those decisions again.
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("caller", String, nullable=False),
    Column("idempotency_key", String(255), nullable=False),
    Column("request_digest", String(64), nullable=False),  # sha256 hex of the request body
    Column("request_id", String, nullable=False),
    Column("created_at", String(32), nullable=False),
    Column("decision_ids", _json(), nullable=False),  # the request's decisions, in order
    PrimaryKeyConstraint("caller", "idempotency_key", name="pk_idempotency_keys"),
)

# A batch run (``riskml score --ledger``): its id is derived from the input and the model,
# so a rerun after a crash is the same run; each (run, household_id, period) is stored once.
batch_runs = Table(
    "batch_runs",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("created_at", String(32), nullable=False),  # the first attempt
    Column("caller", String, nullable=False),
    Column("input_sha256", String(64)),
    Column("model_name", String),
    Column("model_version", String),
    Column("rules_version", String),
    Column("explain", String(16)),
)
batch_decisions = Table(
    "batch_decisions",
    metadata,
    Column("run_id", String(64), ForeignKey("batch_runs.run_id"), nullable=False),
    Column("household_id", String(64), nullable=False),
    Column("period", String(7), nullable=False),
    Column(
        "decision_id",
        String(32),
        ForeignKey("decisions.decision_id"),
        nullable=False,
        unique=True,
    ),
    PrimaryKeyConstraint("run_id", "household_id", "period", name="pk_batch_decisions"),
)

# A household moved to another county or village: an admin's explicit act. Scoring a record of
# a household somewhere else than where it is registered is refused (riskml.store.moves).
household_moves = Table(
    "household_moves",
    metadata,
    Column("move_id", String(32), primary_key=True),
    Column("created_at", String(32), nullable=False),
    Column("caller", String, nullable=False),
    Column("household_id", String(64), nullable=False),
    Column("from_county", String(6)),
    Column("from_village", String(12)),
    Column("to_county", String(6), nullable=False),
    Column("to_village", String(12), nullable=False),
    Column("reason", String(500), nullable=False),
)
Index("ix_household_moves_household", household_moves.c.household_id)

# The case loop (riskml.cases): every action on a case is one event, in one transaction with
# what it stores beside it (a visit's decision). A household's events are numbered 1, 2, ...
# across its cases: two actions on one household at once cannot both take the same number,
# so the second one re-reads the case and is checked again. ``state`` is the case after the
# event (what ``riskml.cases.machine.apply`` gives); the latest event of a household is its
# current case. ``request_key`` (caller + Idempotency-Key) makes a retried action one event.
case_events = Table(
    "case_events",
    metadata,
    Column("household_id", String(64), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("event_id", String(32), nullable=False, unique=True),
    Column("case_id", String(32), nullable=False),
    Column("created_at", String(32), nullable=False),
    Column("actor", String, nullable=False),  # role:key id
    Column("county_code", String(6), nullable=False),
    Column("village_code", String(12), nullable=False),
    Column("action", String(32), nullable=False),
    Column("status", String(32), nullable=False),  # the case's status after the event
    Column("payload", _json(), nullable=False),
    Column("state", _json(), nullable=False),
    Column("request_key", String(400), unique=True),
    PrimaryKeyConstraint("household_id", "seq", name="pk_case_events"),
)
Index("ix_case_events_case", case_events.c.case_id, case_events.c.seq)
Index(
    "ix_case_events_county",
    case_events.c.county_code,
    case_events.c.household_id,
    case_events.c.seq,
)
Index("ix_case_events_created_at", case_events.c.created_at)
Index("ix_case_events_village", case_events.c.village_code, case_events.c.household_id)

# Each household's current case (riskml.cases.current): a projection of case_events, written in
# the same transaction as each event (kept only when its event is the household's newest), so a
# county's worklist reads one row per household in scope, not its events. Derived, never the
# record: `riskml cases rebuild` rewrites it from the events and reports any difference.
case_current = Table(
    "case_current",
    metadata,
    Column("household_id", String(64), primary_key=True),
    Column("seq", Integer, nullable=False),  # the household's latest event
    Column("case_id", String(32), nullable=False),
    Column("county_code", String(6), nullable=False),
    Column("township_code", String(9), nullable=False),
    Column("village_code", String(12), nullable=False),
    Column("status", String(32), nullable=False),
    # the rest of what a worklist reads of the state (cases.current.SUMMARY): plain columns,
    # nothing to decode (a county reads some ten thousand rows)
    Column("assignee", String),
    Column("opened_at", String(32)),
    Column("assigned_at", String(32)),
    Column("visited_at", String(32)),
    Column("checked_at", String(32)),
    Column("notice_at", String(32)),
    Column("decided_at", String(32)),
    Column("last_visit_at", String(32)),
    Column("proposed_at", String(32)),
    Column("elimination_township_at", String(32)),
    Column("eliminated_at", String(32)),
    Column("plan", Boolean, nullable=False),  # whether the case has a support plan
)
Index("ix_case_current_county", case_current.c.county_code, case_current.c.status)
Index("ix_case_current_township", case_current.c.township_code)
Index("ix_case_current_village", case_current.c.village_code)

# Each household's latest decision (by DECISION_ORDER), the columns a worklist reads: kept by a
# trigger on every insert into decisions (riskml.store.latest), so any writer keeps it; derived,
# rebuildable from decisions.
latest_decisions = Table(
    "latest_decisions",
    metadata,
    Column("household_id", String(64), primary_key=True),
    Column("decision_id", String(32), nullable=False),
    Column("period", String(7), nullable=False),
    Column("created_at", String(32), nullable=False),
    Column("county_code", String(6), nullable=False),
    Column("township_code", String(9), nullable=False),
    Column("village_code", String(12), nullable=False),
    Column("score", Float),
    Column("risk_level", String(16)),
    Column("flagged", Boolean, nullable=False),
    Column("flagged_by", String),
)
Index("ix_latest_decisions_county", latest_decisions.c.county_code)
Index("ix_latest_decisions_township", latest_decisions.c.township_code)
Index("ix_latest_decisions_village", latest_decisions.c.village_code)

# A department's alert (riskml.alerts): stored once per (department, alert_id), with the
# decision its merged record got (None for an unknown household: kept, unmatched, listed for
# the county), the department triggers that fired and the record fields it set (provenance).
alerts = Table(
    "alerts",
    metadata,
    Column("department", String(32), nullable=False),
    Column("alert_id", String(64), nullable=False),
    Column("received_at", String(32), nullable=False),
    Column("caller", String, nullable=False),
    Column("batch_id", String(32), nullable=False),
    Column("household_id", String(64), nullable=False),
    Column("county_code", String(6), nullable=False),
    Column("period", String(7), nullable=False),
    Column("fields", _json(), nullable=False),
    Column("matched", Boolean, nullable=False),
    Column("decision_id", String(32), ForeignKey("decisions.decision_id")),
    Column("triggers", _json()),
    Column("provenance", _json()),
    PrimaryKeyConstraint("department", "alert_id", name="pk_alerts"),
)
Index("ix_alerts_household", alerts.c.household_id, alerts.c.period)
Index("ix_alerts_county", alerts.c.county_code, alerts.c.matched)

# A registered reporter's risk report (社会参与, riskml.alerts.report_intake): stored once per
# (reporter, report_id); matched (a household riskml knows) reports become leads of the case
# loop, the others are listed for their village. ``request_key`` and ``request_digest``: the
# Idempotency-Key of the request that stored it and the digest of that request's reports.
social_reports = Table(
    "social_reports",
    metadata,
    Column("reporter", String(64), nullable=False),  # the reporter's key id (or --reporter)
    Column("report_id", String(64), nullable=False),
    Column("received_at", String(32), nullable=False),
    Column("caller", String, nullable=False),
    Column("batch_id", String(32), nullable=False),
    Column("organisation_kind", String(32), nullable=False),
    Column("household_id", String(64)),
    Column("county_code", String(6), nullable=False),
    Column("village_code", String(12)),
    Column("risk_types", _json(), nullable=False),
    Column("observed_on", String(10), nullable=False),
    Column("description", String(500)),
    Column("reference", String(64)),
    Column("matched", Boolean, nullable=False),
    Column("request_key", String(255)),
    Column("request_digest", String(64)),
    PrimaryKeyConstraint("reporter", "report_id", name="pk_social_reports"),
)
Index("ix_social_reports_county", social_reports.c.county_code, social_reports.c.matched)
Index("ix_social_reports_village", social_reports.c.village_code, social_reports.c.matched)
Index("ix_social_reports_household", social_reports.c.household_id)
Index("ix_social_reports_request", social_reports.c.reporter, social_reports.c.request_key)

# The assistance-asset register (riskml.assets): every step of an asset's life is one event,
# numbered 1, 2, ... per asset (two writers at once cannot take the same number). The first
# event (``register``) carries the asset record; ``state`` is the asset after the event
# (``riskml.assets.events.apply``), so the current register is each asset's latest row,
# checked against a replay of the events by ``riskml.assets.register.rebuild_check``.
asset_events = Table(
    "asset_events",
    metadata,
    Column("asset_id", String(64), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("event_id", String(32), nullable=False, unique=True),
    Column("event", String(32), nullable=False),
    Column("event_date", String(10), nullable=False),  # YYYY-MM-DD, the event's own date
    Column("created_at", String(32), nullable=False),  # when it was stored (UTC)
    Column("actor", String, nullable=False),
    Column("county_code", String(6), nullable=False),
    Column("village_code", String(12), nullable=False),
    Column("status", String(16), nullable=False),  # the asset's status after the event
    Column("payload", _json(), nullable=False),
    Column("state", _json(), nullable=False),
    PrimaryKeyConstraint("asset_id", "seq", name="pk_asset_events"),
)
Index("ix_asset_events_county", asset_events.c.county_code, asset_events.c.asset_id)
Index("ix_asset_events_created_at", asset_events.c.created_at)

# The answers of POST /assets/score (riskml.service.assets_api): one row per asset-year
# observation answered, stored in the request that answered it (a refused request stores
# nothing). ``result`` is the answer (score, flagged, rules fired, reasons, action) and
# ``observation`` what was scored.
asset_scores = Table(
    "asset_scores",
    metadata,
    Column("score_id", String(32), primary_key=True),
    Column("request_id", String(32), nullable=False),
    Column("asset_id", String(64), nullable=False),
    Column("year", Integer, nullable=False),
    Column("county_code", String(6), nullable=False),
    Column("created_at", String(32), nullable=False),
    Column("caller", String, nullable=False),
    Column("model_name", String(64), nullable=False),
    Column("model_version", String(32), nullable=False),
    Column("rules_version", String(32), nullable=False),
    Column("score", Float, nullable=False),
    Column("flagged", Boolean, nullable=False),
    Column("action", String(32), nullable=False),
    Column("observation", _json(), nullable=False),
    Column("result", _json(), nullable=False),
)
Index("ix_asset_scores_asset", asset_scores.c.asset_id, asset_scores.c.created_at)
Index("ix_asset_scores_county", asset_scores.c.county_code, asset_scores.c.created_at)

# every table of the ledger is insert-only
INSERT_ONLY = (
    "decisions", "access_log", "idempotency_keys", "batch_runs", "batch_decisions",
    "household_moves", "case_events", "alerts", "social_reports", "asset_events",
    "asset_scores",
)  # fmt: skip

DECISION_COLUMNS: tuple[str, ...] = tuple(c.name for c in decisions.columns)
ACCESS_COLUMNS: tuple[str, ...] = tuple(c.name for c in access_log_table.columns)
JSON_COLUMNS = ("record", "result", "contributions", "errors")

# The one order of a household's decisions: "latest" is the largest (period, created_at,
# decision_id). Every latest-decision look-up (worklist, previous period, history,
# monitoring's one decision per household and period) sorts by it.
DECISION_ORDER = ("period", "created_at", "decision_id")
LATEST_FIRST = tuple(decisions.c[name].desc() for name in DECISION_ORDER)
PREVIOUS_COLUMNS = ("decision_id", "period", "created_at", "risk_level", "score", "flagged")

# a request's previous records: the households' earlier decisions (keys only), then the
# chosen records; "latest" by DECISION_ORDER
HISTORY_KEYS = select(
    decisions.c.decision_id, decisions.c.household_id, decisions.c.period, decisions.c.created_at
).where(
    decisions.c.household_id.in_(bindparam("ids", expanding=True)),
    decisions.c.period < bindparam("before"),
)
RECORDS_BY_ID = select(decisions.c.decision_id, decisions.c.record).where(
    decisions.c.decision_id.in_(bindparam("ids", expanding=True))
)

SQLITE_TRIGGERS = [
    f"CREATE TRIGGER IF NOT EXISTS {table}_no_{op.lower()} BEFORE {op} ON {table} "
    f"BEGIN SELECT RAISE(ABORT, 'riskml ledger: {table} is insert-only ({op} refused)'); END"
    for table in INSERT_ONLY
    for op in ("UPDATE", "DELETE")
]
PG_FUNCTION = (
    "CREATE OR REPLACE FUNCTION riskml_ledger_insert_only() RETURNS trigger "
    "LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION USING MESSAGE = "
    "'riskml ledger: ' || TG_TABLE_NAME || ' is insert-only (' || TG_OP || ' refused)'; "
    "END $$"
)
# trigger name -> statement; created only when missing (no table lock on every start)
PG_TRIGGERS = {
    name: stmt
    for table in INSERT_ONLY
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
PG_CREATE_LOCK = 7_305_914_202
