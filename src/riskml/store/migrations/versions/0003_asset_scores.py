"""The answers of ``POST /assets/score`` (riskml.service.assets_api): ``asset_scores``, insert-only.

Revision ID: 0003
Revises: 0002

The table, its indexes and its insert-only triggers (SQLite: UPDATE and DELETE refused;
PostgreSQL: UPDATE, DELETE and TRUNCATE refused by the ledger's function of revision 0001),
each created only where it is missing. The definitions are frozen here (not read from
``riskml.store.tables``); ``tests/code/test_postgres.py`` checks the migrated database
equals the tables. ``riskml db grant`` lets the service's role select and insert (the table
is one of ``riskml.store.tables.INSERT_ONLY``).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

SCHEMA = sa.MetaData()
JSON_TYPE = sa.JSON(none_as_null=True).with_variant(
    postgresql.JSONB(none_as_null=True), "postgresql"
)
TABLE = "asset_scores"

sa.Table(
    TABLE,
    SCHEMA,
    sa.Column("score_id", sa.String(length=32), nullable=False),
    sa.Column("request_id", sa.String(length=32), nullable=False),
    sa.Column("asset_id", sa.String(length=64), nullable=False),
    sa.Column("year", sa.Integer(), nullable=False),
    sa.Column("county_code", sa.String(length=6), nullable=False),
    sa.Column("created_at", sa.String(length=32), nullable=False),
    sa.Column("caller", sa.String(), nullable=False),
    sa.Column("model_name", sa.String(length=64), nullable=False),
    sa.Column("model_version", sa.String(length=32), nullable=False),
    sa.Column("rules_version", sa.String(length=32), nullable=False),
    sa.Column("score", sa.Float(), nullable=False),
    sa.Column("flagged", sa.Boolean(), nullable=False),
    sa.Column("action", sa.String(length=32), nullable=False),
    sa.Column("observation", JSON_TYPE, nullable=False),
    sa.Column("result", JSON_TYPE, nullable=False),
    sa.PrimaryKeyConstraint("score_id"),
    sa.Index("ix_asset_scores_asset", "asset_id", "created_at"),
    sa.Index("ix_asset_scores_county", "county_code", "created_at"),
)

SQLITE_TRIGGERS = [
    f"CREATE TRIGGER IF NOT EXISTS {TABLE}_no_{op_.lower()} BEFORE {op_} ON {TABLE} "
    f"BEGIN SELECT RAISE(ABORT, 'riskml ledger: {TABLE} is insert-only ({op_} refused)'); END"
    for op_ in ("UPDATE", "DELETE")
]
PG_TRIGGERS = {
    f"{TABLE}_insert_only": (
        f"CREATE TRIGGER {TABLE}_insert_only BEFORE UPDATE OR DELETE ON {TABLE} "
        "FOR EACH ROW EXECUTE FUNCTION riskml_ledger_insert_only()"
    ),
    f"{TABLE}_no_truncate": (
        f"CREATE TRIGGER {TABLE}_no_truncate BEFORE TRUNCATE ON {TABLE} "
        "FOR EACH STATEMENT EXECUTE FUNCTION riskml_ledger_insert_only()"
    ),
}


def upgrade() -> None:
    conn = op.get_bind()
    SCHEMA.create_all(conn, checkfirst=True)
    for index in SCHEMA.tables[TABLE].indexes:
        index.create(conn, checkfirst=True)
    if conn.dialect.name == "sqlite":
        for stmt in SQLITE_TRIGGERS:
            conn.exec_driver_sql(stmt)
    elif conn.dialect.name == "postgresql":
        existing = set(
            conn.exec_driver_sql("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal").scalars()
        )
        for name, stmt in PG_TRIGGERS.items():
            if name not in existing:
                conn.exec_driver_sql(stmt)


def downgrade() -> None:
    raise NotImplementedError("the asset scores are a record: they are not dropped")
