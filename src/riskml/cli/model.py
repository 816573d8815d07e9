"""Model commands: train, evaluate, promote."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from riskml.cli.app import app
from riskml.data.io import read_table

console = Console()
DEFAULT_CONFIG = Path("training/default.yaml")


def _metrics_table(title: str, metrics: dict[str, float], keys: list[str]) -> Table:
    t = Table(title=title)
    t.add_column("metric")
    t.add_column("value", justify="right")
    for k in keys:
        if k in metrics:
            t.add_row(k, f"{metrics[k]:.4f}")
    return t


HEADLINE = [
    "test_roc_auc", "test_pr_auc", "test_log_loss", "test_brier", "test_ece", "test_base_rate",
    "model_recall_at_5", "model_recall_at_10", "model_precision_at_10", "model_exclusion_error_at_10",
    "model_inclusion_error_at_10", "model_recall_at_10_per_county", "rules_roc_auc", "rules_recall_at_5",
    "rules_recall_at_10", "gain_recall_at_10", "rules_only_recall", "rules_only_precision",
    "rules_only_selected_share", "rules_or_model_recall", "oracle_roc_auc", "oracle_gap_roc_auc",
    "oracle_recall_at_10",
]  # fmt: skip


@app.command()
def train(
    data: Path = typer.Option(
        ..., help="panel (Parquet or CSV) with contract fields, optionally at_risk_next"
    ),
    config: Path = typer.Option(DEFAULT_CONFIG, help="training config (YAML)"),
    register: bool = typer.Option(
        True, help="register the model as challenger (the first becomes champion)"
    ),
) -> None:
    """Train on earlier periods, evaluate on the latest labelled one, log to MLflow and register."""
    import time

    from riskml.training import registry
    from riskml.training.train import TrainConfig, TrainingDataError
    from riskml.training.train import train as run_training

    t0 = time.perf_counter()
    cfg = TrainConfig.from_yaml(config)
    with console.status("reading the panel") as status:
        panel = read_table(data)
        try:
            result = run_training(panel, cfg, progress=lambda msg: status.update(msg))
        except TrainingDataError as exc:
            console.print(f"[red]cannot train:[/red] {exc}")
            raise typer.Exit(2) from exc
        status.update("logging to MLflow and registering")
        reg = registry.log_training_run(result, cfg, data_path=data, register=register)
    m = result.evaluation.metrics
    console.print(_metrics_table(f"test period {result.splits.test_period}", m, HEADLINE))
    console.print(
        f"run {reg.run_id}; model {reg.model_uri}; version {reg.version} {reg.aliases}; "
        f"rows {result.row_counts['train_rows']:,} train / {result.row_counts['test_rows']:,} test; "
        f"{time.perf_counter() - t0:.1f} s end to end"
    )


@app.command()
def evaluate(
    model: str = typer.Option("models:/household-risk@champion", help="model URI"),
    data: Path = typer.Option(..., help="labelled panel"),
    period: str | None = typer.Option(None, help="period to evaluate (default: latest labelled)"),
    config: Path = typer.Option(DEFAULT_CONFIG),
) -> None:
    """Evaluate a registered model on one labelled period of a panel."""
    from riskml.training import registry
    from riskml.training.promotion import evaluate_on_period
    from riskml.training.train import TrainConfig

    cfg = TrainConfig.from_yaml(config)
    risk_model = registry.load_risk_model(model)
    ev = evaluate_on_period(risk_model, read_table(data), cfg, period=period)
    trained_until = risk_model.metadata.get("valid_period")
    if trained_until and ev.period <= trained_until:
        console.print(
            f"[yellow]warning:[/yellow] period {ev.period} is not after the model's validation period "
            f"{trained_until}: these figures are not held out"
        )
    console.print(_metrics_table(f"{model} on {ev.period}", ev.metrics, HEADLINE))


@app.command()
def promote(
    data: Path = typer.Option(
        ..., help="labelled panel; both models are evaluated on its latest labelled period"
    ),
    config: Path = typer.Option(DEFAULT_CONFIG),
    force: bool = typer.Option(False, help="promote even if the gate fails (needs --reason)"),
    reason: str | None = typer.Option(None, help="why the gate is overridden (recorded as a tag)"),
) -> None:
    """Move `champion` to the challenger if it is not worse beyond the configured margins."""
    from riskml.training.promotion import promote_challenger
    from riskml.training.train import TrainConfig

    cfg = TrainConfig.from_yaml(config)
    if force and not reason:
        console.print("[red]--force needs --reason[/red]")
        raise typer.Exit(2)
    promoted, cmp, message = promote_challenger(
        cfg.model_name, read_table(data), cfg, force, reason
    )
    if cmp is not None:
        t = Table(title="champion vs challenger on the latest labelled period")
        for col in ("metric", "better", "champion", "challenger", "margin", "ok"):
            t.add_column(col)
        for r in cmp.rows:
            t.add_row(r["metric"], r["better"], f"{r['champion']:.4f}", f"{r['challenger']:.4f}",
                      f"{r['margin']:.3f}", "yes" if r["ok"] else "[red]no[/red]")  # fmt: skip
        console.print(t)
    console.print(message)
    if cmp is not None and not promoted:
        raise typer.Exit(1)
