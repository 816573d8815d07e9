"""Social report commands (社会参与): ``riskml reports import FILE --reporter ID | unmatched | contract``.

``import`` takes a reporter's file (CSV, Parquet or JSON, one report a row; a CSV's risk_types
cell holds codes separated by ';') through the same path as ``POST /reports``
(``riskml.alerts.report_intake.take_reports``): exit 0 done, 1 the file refused (every problem
with its row and field, nothing stored), 2 a usage or file error.
"""

from __future__ import annotations

import getpass
import json
import re
from pathlib import Path

import typer

from riskml.cli.app import INVALID, app, fail, file_errors

reports_app = typer.Typer(
    help="Risk reports of registered social organisations, enterprises and volunteers (社会参与).",
    no_args_is_help=True,
)
_REPORTER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")  # as a key's id


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user name in this environment
        return "unknown"


@reports_app.command("import")
def import_reports(
    file: Path = typer.Argument(..., help="the reports (CSV, Parquet or JSON)"),
    reporter: str = typer.Option(
        ..., "--reporter", help="whose reports: the reporter's key id (report ids are its own)"
    ),
    ledger: str | None = typer.Option(None, "--ledger", help="the ledger's SQLAlchemy URL"),
    leads: bool = typer.Option(
        True, "--leads/--no-leads", help="lead matched reports into the case loop"
    ),
) -> None:
    """Store a reporter's reports; those of households riskml knows become leads."""
    from riskml.alerts.report_contract import read_report_file
    from riskml.alerts.report_intake import ReportsRefused, take_reports
    from riskml.cases.store import CaseStore
    from riskml.store.ledger import Ledger, LedgerError

    if not _REPORTER.match(reporter):
        fail("--reporter must be 1-64 characters of A-Z a-z 0-9 _ . @ - (a key's id)")
    with file_errors():
        read = read_report_file(file)
    if read.total:
        typer.echo(f"refused: {read.total} problem(s) in {file.name}; nothing was stored", err=True)
        for p in read.problems:
            typer.echo(f"  row {p['index']}: {p['field']}: {p['problem']}", err=True)
        raise typer.Exit(INVALID)
    led = Ledger(ledger)
    try:
        received = take_reports(
            read.reports, ledger=led, reporter=reporter, caller=f"cli:{_user()}",
            cases=CaseStore(led) if leads else None,
        )  # fmt: skip
    except ReportsRefused as exc:
        typer.echo(f"refused: {exc.message}", err=True)
        for p in exc.problems[:100]:
            typer.echo(f"  row {p['index']}: {p['field']}: {p['problem']}", err=True)
        raise typer.Exit(INVALID) from None
    except LedgerError as exc:
        fail(str(exc))
    typer.echo(
        f"{received.received:,} report(s): {received.stored:,} stored ({received.matched:,} "
        f"matched, {received.unmatched:,} unmatched), {received.already_stored:,} already "
        f"stored; {received.leads:,} lead(s)"
    )


@reports_app.command("unmatched")
def unmatched_cmd(
    county: list[str] = typer.Option([], "--county", help="6-digit county code (repeatable)"),
    village: str | None = typer.Option(None, "--village", help="one 12-digit village code"),
    ledger: str | None = typer.Option(None, "--ledger", help="the ledger's SQLAlchemy URL"),
) -> None:
    """Reports riskml could not match to a household it knows (JSON lines), newest first."""
    from riskml.alerts.report_intake import unmatched
    from riskml.store.ledger import Ledger, LedgerError

    if village is not None and not re.fullmatch(r"[0-9]{12}", village):
        fail("--village must be a 12-digit village code")
    try:
        rows = unmatched(Ledger(ledger), county or None, village_code=village)
    except LedgerError as exc:
        fail(str(exc))
    for row in rows:
        typer.echo(json.dumps(row, ensure_ascii=False, default=str))


@reports_app.command("contract")
def contract_cmd() -> None:
    """The report's fields and rules (the Markdown block of docs/api.md)."""
    from riskml.alerts.report_contract import report_contract_markdown

    typer.echo(report_contract_markdown(), nl=False)


app.add_typer(reports_app, name="reports")
