"""Department alert commands: ``riskml alerts import FILE --department D | unmatched | contract``.

``import`` takes a department's file (CSV or Parquet, one alert a row) through the same path as
``POST /alerts`` (``riskml.alerts.intake.take``), scoring the merged records with the batch
engine's model and rules and the ledger's history: exit 0 done, 1 the file refused (every
problem with its row and field, nothing stored), 2 a usage or file error. With ``--records
RECORDS --out DIR`` it takes a monthly push in bulk (``riskml.alerts.bulk.import_push``): merged
onto the records file, re-scored with the batch engine, written to DIR; the same exit codes.
"""

from __future__ import annotations

import getpass
import json
from pathlib import Path

import typer

from riskml.cli.app import INVALID, app, fail, file_errors

alerts_app = typer.Typer(help="Department screening alerts (部门筛查预警).", no_args_is_help=True)


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no user name in this environment
        return "unknown"


@alerts_app.command("import")
def import_alerts(
    file: Path = typer.Argument(..., help="the department's alerts (CSV or Parquet)"),
    department: str = typer.Option(
        ..., "--department", help="the department (riskml alerts contract)"
    ),
    model: str = typer.Option("models:/household-risk@champion", "--model", help="model URI"),
    ledger: str | None = typer.Option(None, "--ledger", help="the ledger's SQLAlchemy URL"),
    leads: bool = typer.Option(
        True, "--leads/--no-leads", help="lead triggered households into the case loop"
    ),
    records: Path | None = typer.Option(
        None,
        "--records",
        help="bulk: the households' latest records (Parquet or CSV, e.g. the last wave); "
        "needs --out",
    ),
    out: Path | None = typer.Option(
        None, "--out", help="bulk: the folder for decisions, alerts, unmatched, provenance"
    ),
    explain: str = typer.Option("flagged", "--explain", help="bulk: flagged, all or none"),
    workers: int | None = typer.Option(
        None, "--workers", help="bulk: worker processes (default: one per CPU from 50,000)"
    ),
) -> None:
    """Merge a department's alerts onto the households' latest records, re-score, store, lead.

    With --records and --out (a monthly push, up to millions of alerts): the bulk path of
    riskml.alerts.bulk, merged onto the records file and re-scored with the batch engine,
    written to files (the ledger and the case store are not written: riskml.alerts.bulk).
    """
    if (records is None) != (out is None):
        fail("--records and --out go together (the bulk path)")
    if records is not None and out is not None:
        _import_bulk(file, department, records, out, model, explain, workers)
        return
    from riskml.alerts.bulk_check import read_alert_frame
    from riskml.alerts.fields import DEPARTMENT_CODES
    from riskml.alerts.intake import AlertsRefused, take
    from riskml.alerts.triggers import TriggerSet
    from riskml.cases.store import CaseStore
    from riskml.policy.rules import RuleSet
    from riskml.scoring import online
    from riskml.scoring.batch import load_model
    from riskml.store.ledger import Ledger, LedgerError

    if department not in DEPARTMENT_CODES:
        fail(f"--department must be one of {', '.join(DEPARTMENT_CODES)}")
    with file_errors():
        read = read_alert_frame(file, department)  # the row-wise validator's problems, by column
    if read.problems.total:
        typer.echo(
            f"refused: {read.problems.total} problem(s) in {file.name}; nothing was stored",
            err=True,
        )
        for p in read.problems:
            typer.echo(f"  row {p.row}: {p.field}: {p.rule}", err=True)
        raise typer.Exit(INVALID)
    risk_model, info = load_model(model)
    ruleset = RuleSet.load()
    led = Ledger(ledger)

    def decide(records):
        refusal = online.record_refusals(records, risk_model)
        if refusal is not None:
            return refusal[1], [], []
        return (None, *online.decide_records(records, led, risk_model, ruleset, info))

    try:
        taken = take(
            read.alerts, ledger=led, decide=decide, triggers=TriggerSet.load(),
            caller=f"cli:{_user()}", cases=CaseStore(led) if leads else None, department=department,
        )  # fmt: skip
    except AlertsRefused as exc:
        typer.echo(f"refused: {exc.message}", err=True)
        for p in exc.problems[:100]:
            typer.echo(f"  row {p['index']}: {p['field']}: {p['problem']}", err=True)
        raise typer.Exit(INVALID) from None
    except LedgerError as exc:
        fail(str(exc))
    typer.echo(
        f"{taken.received:,} alert(s): {taken.stored:,} stored ({taken.matched:,} matched, "
        f"{taken.unmatched:,} unmatched), {taken.already_stored:,} already stored; "
        f"{len(taken.rescored):,} household(s) re-scored, {taken.leads:,} lead(s)"
    )


def _import_bulk(
    file: Path, department: str, records: Path, out: Path, model: str, explain: str,
    workers: int | None,
) -> None:  # fmt: skip
    from riskml.alerts.bulk import BulkRefused, import_push
    from riskml.alerts.fields import DEPARTMENT_CODES
    from riskml.scoring.batch import BatchError, load_model

    if department not in DEPARTMENT_CODES:
        fail(f"--department must be one of {', '.join(DEPARTMENT_CODES)}")
    if explain not in ("flagged", "all", "none"):
        fail("--explain must be flagged, all or none")
    try:
        with file_errors():
            risk_model, info = load_model(model)
            summary = import_push(
                file, department, records, out, model=risk_model, info=info,
                explain=explain, workers=workers,  # type: ignore[arg-type]
            )  # fmt: skip
    except BulkRefused as exc:
        typer.echo(
            f"refused: {exc.problems.total} problem(s) in {exc.problems.invalid_records} "
            f"alert(s) of {file.name}; nothing was written",
            err=True,
        )
        for p in exc.problems:
            typer.echo(f"  row {p.row}: {p.field}: {p.rule}", err=True)
        raise typer.Exit(INVALID) from None
    except BatchError as exc:
        fail(str(exc))
    for line in summary.lines():
        typer.echo(line)


@alerts_app.command("unmatched")
def unmatched_cmd(
    county: list[str] = typer.Option([], "--county", help="6-digit county code (repeatable)"),
    ledger: str | None = typer.Option(None, "--ledger", help="the ledger's SQLAlchemy URL"),
) -> None:
    """Alerts about households riskml has not seen (JSON lines), newest first."""
    from riskml.alerts.intake import unmatched
    from riskml.store.ledger import Ledger

    for row in unmatched(Ledger(ledger), county or None):
        typer.echo(json.dumps(row, ensure_ascii=False, default=str))


@alerts_app.command("contract")
def contract_cmd() -> None:
    """Every department's alert fields and how each maps onto the household record (Markdown)."""
    from riskml.alerts.contract import contract_markdown

    typer.echo(contract_markdown(), nl=False)


app.add_typer(alerts_app, name="alerts")
