"""Monitoring commands: monitor (drift, flag rates, realised performance, alert quality),
alert-quality, outcomes, retrain.

Exit codes: ``monitor`` 0 when nothing alerted, 2 when something did, 1 on an
error (the alert-quality section never changes it); ``alert-quality`` 0, 1 on an error; ``outcomes`` 0, or 1 when the file is refused; ``retrain`` 0 when the
challenger was promoted or the champion kept, 1 on an error.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from riskml.cli.app import app

console = Console()
DEFAULT_TRAINING_CONFIG = Path("training/default.yaml")
DEFAULT_MONITORING_CONFIG = Path("training/monitoring.yaml")


def _fmt(v: object, spec: str = ".4f") -> str:
    try:
        f = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(v)
    return "" if f != f else format(f, spec)


@app.command()
def monitor(
    ledger: str | None = typer.Option(
        None,
        help="decision ledger (SQLAlchemy URL; default $RISKML_LEDGER_URL or the state folder)",
    ),
    model: str = typer.Option(
        "models:/household-risk@champion", help="model whose training reference is the baseline"
    ),
    since: str | None = typer.Option(None, help="window start (ISO; default until - window days)"),
    until: str | None = typer.Option(None, help="window end, exclusive (ISO; default now)"),
    window_days: int | None = typer.Option(
        None, help="window length in days (default: window.days in the config)"
    ),
    previous_since: str | None = typer.Option(
        None, help="start of the comparison window (default: same length before the window)"
    ),
    config: Path = typer.Option(DEFAULT_MONITORING_CONFIG, help="alert thresholds (YAML)"),
    report: Path | None = typer.Option(None, help="write the HTML report here"),
    mlflow: bool = typer.Option(
        True, "--mlflow/--no-mlflow", help="log a monitoring run to MLflow"
    ),
    as_of: str | None = typer.Option(
        None, help="date for outcome due dates (default: the window's end)"
    ),
    json_out: Path | None = typer.Option(
        None, "--json", help="write the alerts and headline figures as JSON"
    ),
    alert_quality: bool = typer.Option(
        True,
        "--alert-quality/--no-alert-quality",
        help="also show the department alerts' quality (every stored alert; see alert-quality)",
    ),  # fmt: skip
    alert_report: Path | None = typer.Option(None, help="write the alert-quality HTML report here"),
) -> None:
    """Drift of a ledger window against the model's training reference; exit 2 when something alerts."""
    from riskml import monitoring

    try:
        result, run_id = monitoring.run(
            ledger,
            model,
            since=since,
            until=until,
            window_days=window_days,
            previous_since=previous_since,
            config_path=config if config.exists() or config != DEFAULT_MONITORING_CONFIG else None,
            report=report,
            log_mlflow=mlflow,
            as_of=as_of,
        )
    except Exception as exc:  # a monitoring job reports and fails with 1, never with 2
        console.print(f"[red]monitor failed:[/red] {type(exc).__name__}: {exc}")
        raise typer.Exit(1) from exc

    w = result.window
    c = result.counts
    console.print(
        f"model {result.model.get('name')} v{result.model.get('version')}; window {w['since']} … {w['until']}: "
        f"{c.get('decisions', 0):,} decisions ({c.get('decisions_previous', 0):,} in the previous window)"
    )
    top = result.top_drift(8)
    if not top.empty:
        t = Table(title="largest feature drift (PSI against training)")
        for col in ("feature", "n", "psi", "level"):
            t.add_column(col)
        for r in top.itertuples(index=False):
            lvl = "excluded" if r.excluded else r.level
            t.add_row(r.feature, f"{r.n:,}", _fmt(r.psi, ".3f"), lvl)
        console.print(t)
    s = result.score
    console.print(
        f"score PSI {_fmt(s.get('psi'), '.3f')}; model flag rate {_fmt(s.get('flag_rate'), '.3f')} "
        f"(set for {_fmt(s.get('flag_capacity'), '.3f')}); previous-record coverage "
        f"{_fmt(c.get('previous_coverage'), '.2f')}"
    )
    fr = result.flag_rates
    if not fr.empty:
        t = Table(title="flag rates against the previous window")
        for col in ("kind", "key", "previous", "window", "change", "z", "level"):
            t.add_column(col)
        shown = fr[fr["kind"].isin(["overall", "flagged_by", "level"]) | (fr["level"] != "ok")]
        for r in shown.itertuples(index=False):
            t.add_row(r.kind, r.key, _fmt(r.rate_previous, ".3f"), _fmt(r.rate, ".3f"),
                      _fmt(r.change, "+.3f"), _fmt(r.z, ".1f"), r.level)  # fmt: skip
        console.print(t)
    latest = result.outcomes.get("latest")
    if latest:
        console.print(
            f"realised, decisions of {latest['period']}: AUC {_fmt(latest['roc_auc'], '.3f')}, "
            f"recall@cap {_fmt(latest['recall_at_capacity'], '.3f')}, "
            f"precision@cap {_fmt(latest['precision_at_capacity'], '.3f')}, ECE {_fmt(latest['ece'], '.3f')} "
            f"({latest['with_outcome']:,} with outcome, {latest['pending'] + latest['overdue']:,} pending)"
        )
    elif result.outcomes.get("status_counts"):
        console.print(f"outcomes: {result.outcomes['status_counts']} (too few to judge)")
    for note in result.notes:
        console.print(f"[dim]note: {note}[/dim]")
    if result.alerts:
        t = Table(title=f"{len(result.alerted)} alert(s), {len(result.warnings)} warning(s)")
        for col in ("level", "check", "subject", "value", "threshold"):
            t.add_column(col)
        ordered = result.alerted + result.warnings
        for a in ordered[:40]:
            colour = "red" if a.level == "alert" else "yellow"
            t.add_row(
                f"[{colour}]{a.level}[/{colour}]",
                a.check,
                a.subject,
                _fmt(a.value),
                _fmt(a.threshold),
            )
        console.print(t)
        if len(ordered) > 40:
            console.print(f"… and {len(ordered) - 40} more (see the report)")
    if report is not None:
        console.print(f"report: {report}")
    if alert_quality or alert_report is not None:
        alert_quality_section(ledger, alert_report)
    if run_id:
        console.print(f"MLflow run {run_id} (experiment {monitoring.MONITORING_EXPERIMENT})")
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(
            json.dumps(
                {
                    "status": result.status,
                    "exit_code": result.exit_code,
                    "model": result.model,
                    "window": result.window,
                    "metrics": result.metrics(),
                    "alerts": [a.as_dict() for a in result.alerts],
                    "mlflow_run_id": run_id,
                },
                indent=2,
                default=str,
            )
        )
    console.print(f"status: {result.status.upper()}" + (" (exit 2)" if result.exit_code else ""))
    raise typer.Exit(result.exit_code)


def _quality(ledger: str | None, **kwargs: object):
    from riskml.alerts import quality
    from riskml.alerts.triggers import TriggerSet
    from riskml.store.ledger import Ledger

    triggers = kwargs.pop("triggers", None)
    with Ledger(ledger) as led:
        return quality.load(led, TriggerSet.load(triggers), **kwargs)  # type: ignore[arg-type]


def alert_quality_section(ledger: str | None, html: Path | None) -> None:
    """``monitor``'s alert-quality section: the tables when the ledger holds alerts."""
    from riskml.monitoring.alert_report import format_quality, write_report

    try:
        q = _quality(ledger)
        if q.counts["alerts"] == 0:
            console.print("[dim]alert quality: no department alerts in the ledger[/dim]")
            return
        typer.echo(format_quality(q, what_if=False))
        if html is not None:
            console.print(f"alert-quality report: {write_report(q, html)}")
    except Exception as exc:  # the drift verdict stands; the section says why it is missing
        console.print(f"[red]alert quality failed:[/red] {type(exc).__name__}: {exc}")


@app.command("alert-quality")
def alert_quality_cmd(
    ledger: str | None = typer.Option(
        None, help="the ledger (SQLAlchemy URL; default $RISKML_LEDGER_URL or the state folder)"
    ),
    period_from: str | None = typer.Option(None, "--from", help="first alert month (YYYY-MM)"),
    period_to: str | None = typer.Option(None, "--to", help="last alert month (YYYY-MM)"),
    window_days: int = typer.Option(
        120, min=0, help="what-if: confirmed within this many days after the alert's month"
    ),
    factors: str = typer.Option(
        "0.5,0.75,1,1.25,1.5,2", help="what-if: factors of each numeric threshold"
    ),
    triggers: Path | None = typer.Option(
        None, help="triggers file (default $RISKML_ALERT_TRIGGERS_FILE or the shipped one)"
    ),
    report: Path | None = typer.Option(None, help="write the HTML report (with plots) here"),
    json_out: Path | None = typer.Option(None, "--json", help="write the tables as JSON here"),
) -> None:
    """Department alerts judged by the case loop: confirmed after the visit per department and
    threshold, cases each source found first, and what other thresholds would have changed."""
    from riskml.monitoring.alert_report import format_quality, write_report

    month = r"^[0-9]{4}-(0[1-9]|1[0-2])$"
    for name, v in (("--from", period_from), ("--to", period_to)):
        if v is not None and not re.match(month, v):
            console.print(f"[red]{name} must be a month YYYY-MM[/red]")
            raise typer.Exit(1)
    try:
        grid = tuple(float(f) for f in factors.split(",") if f.strip())
        if not grid or any(not f > 0 for f in grid):
            raise ValueError
    except ValueError:
        console.print("[red]--factors must be positive numbers separated by commas[/red]")
        raise typer.Exit(1) from None
    try:
        q = _quality(ledger, triggers=triggers, period_from=period_from, period_to=period_to,
                     factors=grid, window_days=window_days)  # fmt: skip
    except Exception as exc:
        console.print(f"[red]alert quality failed:[/red] {type(exc).__name__}: {exc}")
        raise typer.Exit(1) from exc
    typer.echo(format_quality(q))
    if report is not None:
        console.print(f"report: {write_report(q, report)}")
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(q.as_dict(), indent=2, ensure_ascii=False, default=str))


@app.command()
def outcomes(
    file: Path | None = typer.Argument(
        None, help="outcomes (Parquet or CSV): see riskml.monitoring.load_outcomes"
    ),
    ledger: str | None = typer.Option(
        None, help="the ledger's SQLAlchemy URL (outcomes go beside it)"
    ),
    from_cases: bool = typer.Option(
        False,
        "--from-cases",
        help="take the outcomes from the case loop's decisions in the ledger (confirmed or "
        "rolled back 1; rejected, dropped or eliminated 0): see riskml.cases.outcomes",
    ),
    as_of: str | None = typer.Option(
        None, help="with --from-cases: only months before this date's month (default: now)"
    ),
) -> None:
    """Store observed outcomes beside the ledger; they join the decisions made 12 months earlier."""
    from riskml import monitoring
    from riskml.store.ledger import Ledger

    if (file is None) == (not from_cases):
        console.print("[red]outcomes:[/red] give an outcomes file or --from-cases (one of them)")
        raise typer.Exit(1)
    try:
        with Ledger(ledger) as led:
            if from_cases:
                from riskml.cases.outcomes import SOURCE, outcomes_from_cases
                from riskml.cases.store import CaseStore

                frame, source = outcomes_from_cases(CaseStore(led), as_of=as_of), SOURCE
            else:
                frame, source = monitoring.load_outcomes(file), file.name
            counts = monitoring.OutcomeStore(led).add(frame, source=source)
    except (monitoring.OutcomeError, ValueError, FileNotFoundError) as exc:
        console.print(f"[red]outcomes refused:[/red] {exc}")
        raise typer.Exit(1) from exc
    console.print(
        f"{len(frame):,} outcome(s) read from {source}: {counts['stored']:,} stored, "
        f"{counts['already_stored']:,} already stored"
    )
    if from_cases and len(frame):
        kinds = frame["outcome"].value_counts().sort_index()
        console.print(", ".join(f"{k} {n:,}" for k, n in kinds.items()))


@app.command()
def retrain(
    config: Path = typer.Option(DEFAULT_TRAINING_CONFIG, help="training config (YAML)"),
    data: Path = typer.Option(..., help="labelled panel (Parquet or CSV)"),
    force: bool = typer.Option(False, help="promote even if the gate fails (needs --reason)"),
    reason: str | None = typer.Option(None, help="why the gate is overridden (recorded as a tag)"),
    summary: Path | None = typer.Option(None, help="also write the summary as JSON here"),
) -> None:
    """Train → log and register the challenger → promotion gate, in one scheduled job."""
    from riskml.training.retrain import RetrainStep
    from riskml.training.retrain import retrain as run_retrain

    if force and not reason:
        console.print("[red]--force needs --reason[/red]")
        raise typer.Exit(1)
    t0 = time.perf_counter()
    steps: list[RetrainStep] = []
    try:
        done = run_retrain(config, data, force=force, reason=reason, steps=steps)
    except Exception as exc:
        for step in steps:
            console.print(f"{step.name}: {step.result} ({step.seconds:.1f} s)")
        console.print(f"[red]retrain failed:[/red] {type(exc).__name__}: {exc}")
        raise typer.Exit(1) from exc

    table = Table(title=f"retrain with {config.name} on {data.name}")
    for col in ("step", "result", "seconds"):
        table.add_column(col)
    for step in done.steps:
        table.add_row(step.name, step.result, f"{step.seconds:.1f}")
    console.print(table)
    cmp = done.comparison
    if cmp is not None:
        g = Table(title="promotion gate: champion vs challenger")
        for col in ("metric", "better", "champion", "challenger", "margin", "ok"):
            g.add_column(col)
        for r in cmp.rows:
            g.add_row(r["metric"], r["better"], _fmt(r["champion"]), _fmt(r["challenger"]),
                      _fmt(r["margin"], ".3f"), "yes" if r["ok"] else "[red]no[/red]")  # fmt: skip
        console.print(g)
    console.print(
        f"{done.outcome}: champion is version {done.champion_version}; challenger version "
        f"{done.challenger_version}; {time.perf_counter() - t0:.1f} s end to end"
    )
    if summary is not None:
        summary.parent.mkdir(parents=True, exist_ok=True)
        summary.write_text(
            json.dumps(done.summary(time.perf_counter() - t0), indent=2, default=str)
        )
