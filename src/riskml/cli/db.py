"""The ledger database's schema: ``riskml db upgrade | current | grant``.

``upgrade`` runs the Alembic migrations (``riskml.store.migrations``) up to the newest one, as
the role that owns the schema; the service opens a database that is already there.
``grant`` gives a PostgreSQL role what the service needs and no more: SELECT and INSERT on
the insert-only tables, writes on the two derived tables (docs: README, "In production").
"""

from __future__ import annotations

import typer

from riskml.cli.app import app, fail

db_app = typer.Typer(
    help="The ledger database: migrate its schema, show its revision, grant the service's role.",
    no_args_is_help=True,
)
app.add_typer(db_app, name="db")

LEDGER = typer.Option(
    None,
    "--ledger",
    help="the ledger's SQLAlchemy URL (default: $RISKML_LEDGER_URL or the state folder's)",
)


def _engine(url: str | None):  # noqa: ANN202 (sqlalchemy imported late: a fast --help)
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    from riskml import config
    from riskml.store.engine import make_engine

    url = url or config.ledger_url()
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        fail(f"--ledger is not a database URL: {exc}")
    return make_engine(parsed, 30.0)[0], config.redact_url(url)


@db_app.command("upgrade")
def upgrade(ledger: str | None = LEDGER) -> None:
    """Bring the ledger's database to the newest revision (nothing when it is there)."""
    from sqlalchemy.exc import SQLAlchemyError

    from riskml.store import migrations
    from riskml.store.engine import create_schema
    from riskml.store.entries import LedgerError, describe

    engine, shown = _engine(ledger)
    try:
        with engine.connect() as conn:
            before = migrations.current(conn)
        create_schema(engine.execution_options(riskml_write=True), engine.dialect.name)
    except LedgerError as exc:
        fail(str(exc), 1)
    except SQLAlchemyError as exc:
        fail(f"cannot open {shown}: {describe(exc)}", 1)
    finally:
        engine.dispose()
    after = migrations.head()
    if before == after:
        typer.echo(f"{shown}: at revision {after} (the newest), nothing to do")
    else:
        typer.echo(f"{shown}: upgraded from revision {before or 'none'} to {after}")


@db_app.command("current")
def current(ledger: str | None = LEDGER) -> None:
    """The database's revision and the newest one; exit 1 when the database is behind."""
    from sqlalchemy.exc import SQLAlchemyError

    from riskml.store import migrations
    from riskml.store.entries import describe

    engine, shown = _engine(ledger)
    try:
        with engine.connect() as conn:
            found = migrations.current(conn)
    except SQLAlchemyError as exc:
        fail(f"cannot open {shown}: {describe(exc)}", 1)
    finally:
        engine.dispose()
    head = migrations.head()
    typer.echo(f"{shown}: revision {found or 'none'}, newest {head}")
    if found != head:
        typer.echo("behind: run `riskml db upgrade` as the owner of the database", err=True)
        raise typer.Exit(1)


@db_app.command("grant")
def grant(
    role: str = typer.Option(..., "--role", help="the service's PostgreSQL role (created before)"),
    ledger: str | None = LEDGER,
    sql: bool = typer.Option(False, "--sql", help="print the statements, run nothing"),
) -> None:
    """Let a PostgreSQL role read and insert, and write the derived tables (run as the owner)."""
    from sqlalchemy.exc import SQLAlchemyError

    from riskml.store import migrations
    from riskml.store.entries import describe

    try:
        statements = migrations.grant_statements(role)
    except ValueError as exc:
        fail(f"--role: {exc}")
    if sql:
        typer.echo(";\n".join(statements) + ";")
        return
    engine, shown = _engine(ledger)
    try:
        if engine.dialect.name != "postgresql":
            fail(f"{shown} is not PostgreSQL: roles are PostgreSQL's (SQLite has none)")
        with engine.begin() as conn:
            for stmt in statements:
                conn.exec_driver_sql(stmt)
    except SQLAlchemyError as exc:
        fail(f"granting on {shown} failed: {describe(exc)}", 1)
    finally:
        engine.dispose()
    typer.echo(f"{shown}: {role} may read and insert; update, delete, truncate and drop refused")
