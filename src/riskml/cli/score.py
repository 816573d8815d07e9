"""``riskml score``: batch scoring of a Parquet or CSV file, on this machine or on Spark."""

from __future__ import annotations

import json
import os
import time
from contextlib import nullcontext
from pathlib import Path

import typer

from riskml.cli.app import app, fail

DEFAULT_MODEL = "models:/household-risk@champion"


def _progress_columns() -> list:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class RowsPerSecond(ProgressColumn):
        """Rows per second since the task started."""

        def render(self, task) -> Text:  # type: ignore[no-untyped-def]
            elapsed = task.elapsed or 0.0
            rate = task.completed / elapsed if elapsed > 0 else 0.0
            return Text(f"{rate:,.0f} rows/s", style="progress.data.speed")

    return [
        TextColumn("[progress.description]{task.description:<10}"),
        BarColumn(),
        MofNCompleteColumn(),
        RowsPerSecond(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    ]


@app.command()
def score(
    input_file: Path = typer.Argument(..., help="household records, Parquet or CSV"),
    out: Path = typer.Option(..., "--out", "-o", help="decisions, Parquet"),
    model: str = typer.Option(
        DEFAULT_MODEL, help="model URI (models:/name@alias, models:/name/version, runs:/...)"
    ),
    explain: str = typer.Option(
        "flagged", help="reasons for: flagged (default) | all | none (scores and rules only)"
    ),
    ledger: str | None = typer.Option(
        None, help="record every decision in this decision ledger (SQLAlchemy URL)"
    ),
    rejects: Path | None = typer.Option(
        None, help="invalid rows with their reasons (default: <out>.rejects.parquet)"
    ),
    engine: str = typer.Option("local", help="local (this machine, streaming) | spark"),
    master: str | None = typer.Option(
        None, help="Spark master URL (default local[*]); only with --engine spark"
    ),
    chunk_rows: int = typer.Option(
        50_000, "--chunk-rows", min=1, help="rows per chunk (local) or per Arrow batch (Spark)"
    ),
    workers: int | None = typer.Option(
        None, min=0, help="worker processes (local; default one per CPU from 50,000 rows, 0: none)"
    ),
    rules: Path | None = typer.Option(
        None,
        help="policy rules file (default $RISKML_RULES_FILE or riskml/policy/rules/default.yaml)",
    ),
    caller: str | None = typer.Option(
        None, help="caller recorded in the ledger (default batch:<user>)"
    ),
    run_id: str | None = typer.Option(
        None,
        "--run-id",
        help="with --ledger: the run's id (default: from the input's bytes, model, rules and "
        "explain mode, so a rerun after a crash resumes); give a new one to store a new run",
    ),
    summary_json: Path | None = typer.Option(
        None, "--summary-json", help="also write the run summary here (JSON)"
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar"),
) -> None:
    """Score every record of a file: rules, calibrated score, decision, reasons, measures.

    The same decisions as the online service (same library code); invalid rows go to the
    rejects file with their reasons, and the run reports how many.
    """
    from rich.console import Console

    from riskml.policy.rules import RulesFileError
    from riskml.scoring import batch

    console = Console(stderr=True)
    if explain not in batch.EXPLAIN_MODES:
        raise typer.BadParameter("use flagged, all or none", param_hint="--explain")
    if engine not in ("local", "spark"):
        raise typer.BadParameter("use local or spark", param_hint="--engine")
    if master and engine != "spark":
        raise typer.BadParameter("--master needs --engine spark", param_hint="--master")
    rules_file = rules or (
        Path(os.environ["RISKML_RULES_FILE"]) if os.environ.get("RISKML_RULES_FILE") else None
    )
    try:
        _check_input(input_file, engine)  # before the model is loaded: a bad path fails at once
        if engine == "spark":
            summary = _run_spark(input_file, out, model, explain, ledger, rejects, master,
                                 chunk_rows, rules_file, console, quiet)  # fmt: skip
        else:
            summary = _run_local(input_file, out, model, explain, ledger, rejects, chunk_rows,
                                 workers, rules_file, caller, console, quiet, run_id)  # fmt: skip
    except batch.BatchError as exc:
        fail(f"cannot score: {exc}")
    except RulesFileError as exc:
        fail(f"cannot score: {exc}")
    for line in batch.summary_lines(summary):
        typer.echo(line)
    if summary_json is not None:
        summary_json.parent.mkdir(parents=True, exist_ok=True)
        summary_json.write_text(json.dumps(summary.as_dict(), indent=2))


def _check_input(input_file: Path, engine: str) -> None:
    """The input exists, has a known type and can be read (its columns): else BatchError."""
    from riskml.scoring import batch

    if not input_file.exists():
        raise batch.BatchError(f"no such file: {input_file}")
    if engine == "spark" and input_file.is_dir():
        return
    batch.input_columns(input_file)


def _run_local(input_file, out, model_uri, explain, ledger, rejects, chunk_rows, workers,
               rules_file, caller, console, quiet, run_id=None):  # fmt: skip  # noqa: ANN001, ANN202
    from rich.progress import Progress

    from riskml.policy.rules import RuleSet
    from riskml.scoring import batch

    t0 = time.perf_counter()
    with console.status("loading the model", spinner="dots") if not quiet else nullcontext():
        try:
            risk_model, info = batch.load_model(model_uri)
        except Exception as exc:
            raise batch.BatchError(f"cannot load the model {model_uri}: {exc}") from exc
    ruleset = RuleSet.load(rules_file)
    with Progress(*_progress_columns(), console=console, disable=quiet, transient=False) as bar:
        tasks: dict[str, int] = {}
        labels = {"keys": "keys", "validate": "validating", "score": "scoring"}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(labels.get(stage, stage), total=total or None)
            bar.update(tasks[stage], completed=done, total=total or None)

        summary = batch.score_file(
            input_file,
            out,
            model=risk_model,
            info=info,
            ruleset=ruleset,
            explain=explain,
            rejects=rejects,
            ledger_url=ledger,
            caller=caller,
            chunk_rows=chunk_rows,
            workers=workers,
            progress=progress,
            run_id=run_id,
        )
    summary.timings["total_with_model_load"] = time.perf_counter() - t0
    return summary


def _run_spark(input_file, out, model_uri, explain, ledger, rejects, master, chunk_rows,
               rules_file, console, quiet):  # fmt: skip  # noqa: ANN001, ANN202
    from riskml.scoring import batch

    if ledger:
        raise batch.BatchError(
            "--ledger is for the local engine; on Spark, load the decisions Parquet into the "
            "ledger's database with your cluster's tools"
        )
    if not Path(input_file).is_dir() and batch.input_format(input_file) != "parquet":
        raise batch.BatchError("the Spark engine reads Parquet (a file or a folder of files)")
    from riskml.scoring.spark import score_spark

    with console.status("scoring on Spark", spinner="dots") if not quiet else nullcontext():
        return score_spark(
            input_file,
            out,
            model_uri=model_uri,
            explain=explain,
            rejects=rejects,
            rules_file=rules_file,
            master=master,
            batch_rows=min(chunk_rows, 100_000),
        )
