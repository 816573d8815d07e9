"""``riskml cases simulate-year``: a year of the case loop, simulated (riskml order vs rules only).

Registered by ``add_commands(app)``: the command joins the ``cases`` group of the application
(created when no module has made one yet). See ``riskml.cases.year`` for what is simulated.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from riskml.cli.app import fail, file_errors

HELP = "The case loop: leads, visits, confirmation, support and risk elimination."


def simulate_year(
    households: int = typer.Option(
        5000, "--households", "-n", min=1, help="households of the sample world to simulate"
    ),
    seed: int = typer.Option(7, "--seed", "-s", help="simulator seed (7: the sample panel's)"),
    year: int = typer.Option(
        2024, "--year", help="the simulated year runs from July of this year to June of the next"
    ),
    capacity: int | None = typer.Option(
        None,
        "--capacity",
        min=1,
        help="home visits per caseworker per week (default: the procedure's capacity.weekly_visits)",
    ),  # fmt: skip
    per_caseworker: int = typer.Option(
        300,
        "--households-per-caseworker",
        min=0,
        help="simulated households per caseworker, whole villages (0: one caseworker per village)",
    ),  # fmt: skip
    office_lag: int = typer.Option(
        1,
        "--office-lag-days",
        min=0,
        help="working days the township and the county take to act (5: the next working week)",
    ),  # fmt: skip
    relead: int = typer.Option(
        90,
        "--relead-after-days",
        min=0,
        help="a household dropped at a visit is a lead again after this many days",
    ),  # fmt: skip
    previous: str = typer.Option(
        "push",
        "--previous",
        help="each push's previous period: push (last month, as riskml.data.history does) or year",
    ),  # fmt: skip
    training: Path | None = typer.Option(
        None, "--config", help="training config (default: training/default.yaml)"
    ),
    out: Path | None = typer.Option(None, "--out", "-o", help="write the report as JSON here"),
    ledger_dir: Path | None = typer.Option(
        None, "--keep-ledger", help="keep the two simulated case ledgers (SQLite) in this folder"
    ),
    alerts: bool = typer.Option(
        False,
        "--alerts/--no-alerts",
        help="departments (medical, emergency) push alerts through the alerts intake; the "
        "alert-quality figures join the report (see riskml.alerts.year)",
    ),  # fmt: skip
    alert_report: Path | None = typer.Option(
        None,
        "--alert-report",
        help="with --alerts: write the alert-quality HTML report of each ordering here "
        "(NAME-riskml.html, NAME-rules_only.html)",
    ),  # fmt: skip
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress lines on stderr"),
) -> None:
    """Simulate a year of monthly pushes and caseworkers with a fixed capacity; print and write the figures.

    Both orderings (riskml: calibrated score over everything the rules or the model flag;
    rules only: the hard rules' flags, red first) run on the same households, pushes, capacity
    and clock, every step through the case store's state machine. The figures: households
    reached before they fell below the line, confirmed cases, overdue steps, eliminations.
    With --alerts, the medical insurance and emergency management departments push alerts
    through the real intake, their leads are visited, and the alert-quality tables follow.
    """
    import time

    from riskml.cases.year import YearSettings, format_report, run_year
    from riskml.training.train import TrainConfig

    if previous not in ("push", "year"):
        fail("--previous must be push or year")
    if alert_report is not None and not alerts:
        fail("--alert-report needs --alerts")
    cfg = None
    if training is not None:
        with file_errors("cannot read the training config"):
            cfg = TrainConfig.from_yaml(training)
    try:
        settings = YearSettings(
            households=households, seed=seed, year=year, capacity=capacity,
            households_per_caseworker=per_caseworker or None, office_lag_days=office_lag,
            relead_after_days=relead, previous=previous,
        )  # fmt: skip
    except ValueError as exc:
        fail(str(exc))
    t0 = time.perf_counter()

    def say(message: str) -> None:
        if not quiet:
            typer.echo(f"[{time.perf_counter() - t0:6.1f} s] {message}", err=True)

    try:
        if alerts:
            from riskml.alerts.year import run_year_with_alerts

            report = run_year_with_alerts(
                settings, ledger_dir=ledger_dir, say=say, train_config=cfg
            )
        else:
            report = run_year(settings, ledger_dir=ledger_dir, say=say, train_config=cfg)
    except ValueError as exc:  # a year the simulator or the lines cannot cover
        fail(str(exc), 1)
    typer.echo(format_report(report))
    if alerts:
        _alert_quality(report, alert_report)
    if out is not None:
        with file_errors("cannot write the report"):
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(
                json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
            )
        typer.echo(f"report written to {out}")


def _alert_quality(report: dict, html: Path | None) -> None:
    """Print each ordering's alert-quality tables (and write their HTML reports)."""
    from riskml.alerts.quality import AlertQuality
    from riskml.monitoring.alert_report import format_quality, write_report

    for ordering, o in report["orderings"].items():
        hook = o["hook"]
        q = AlertQuality.from_dict(hook["alert_quality"])
        pushed = ", ".join(f"{k} {v:,}" for k, v in hook["department_alerts"].items())
        typer.echo(f"\n--- {ordering} order: department alerts ({pushed})")
        typer.echo(format_quality(q))
        if html is not None:
            where = html.with_name(f"{html.stem}-{ordering}{html.suffix or '.html'}")
            with file_errors("cannot write the alert-quality report"):
                write_report(q, where, f"simulated year, {ordering} order")
            typer.echo(f"alert-quality report written to {where}")


def add_commands(app: typer.Typer) -> None:
    """Add ``cases simulate-year`` to ``app`` (joining its ``cases`` group, or making one)."""
    group = next(
        (g.typer_instance for g in app.registered_groups if g.name == "cases" and g.typer_instance),
        None,
    )
    if group is None:
        group = typer.Typer(help=HELP, no_args_is_help=True)
        app.add_typer(group, name="cases")
    group.command("simulate-year")(simulate_year)
