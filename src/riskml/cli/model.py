"""Model commands: train, evaluate, promote."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from riskml.cli.app import INVALID, app, check_input, fail, file_errors, read_input
from riskml.data.side_inputs import ASSET_INCOME

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
    "oracle_recall_at_10", "naive_all_roc_auc", "logistic_all_roc_auc", "model_fallin_roc_auc",
    "naive_fallin_roc_auc", "gain_vs_naive_fallin_roc_auc", "gain_vs_logistic_fallin_roc_auc",
]  # fmt: skip


def _config(path: Path):  # noqa: ANN202  (a TrainConfig)
    """The training config, or one line and exit 2 when it cannot be read."""
    import yaml

    from riskml.training.train import TrainConfig

    with file_errors("cannot read the config"):
        try:
            return TrainConfig.from_yaml(path)
        except (ValueError, TypeError, KeyError, AttributeError, yaml.YAMLError) as exc:
            fail(f"{path}: not a valid training config ({exc})")


def _model(uri: str):  # noqa: ANN202  (a RiskModel)
    from riskml.training import registry

    try:
        return registry.load_risk_model(uri)
    except Exception as exc:  # unknown name or alias, registry unreachable, missing artifacts
        fail(f"cannot load the model {uri}: {type(exc).__name__}: {str(exc)[:300]}")


def _invalid_records(what: str, data: Path, exc: Exception) -> None:
    """Invalid records in a panel: one line saying how many, the first few, exit 1."""
    problems = getattr(exc, "problems", [])
    typer.echo(
        f"error: {what}: {len(problems):,} problem(s) in the records of {data}; "
        f"`riskml validate {data}` lists them all",
        err=True,
    )
    for p in problems[:5]:
        typer.echo(f"  {p}", err=True)
    raise typer.Exit(INVALID)


def _with_asset_income(panel: Any, ledger_url: str | None) -> Any:
    """The panel with ``asset_income_expected`` from the ledger's asset register, as of each
    record's month (``riskml.assets.households.asset_income_column``)."""
    from riskml.assets.households import LinksError, asset_income_column
    from riskml.assets.register import AssetStore
    from riskml.store.ledger import Ledger, LedgerError

    try:
        with Ledger(ledger_url) as led:
            events = AssetStore(led).events()
        column = asset_income_column(events, panel)
    except (LedgerError, LinksError) as exc:
        fail(f"cannot join the asset register: {exc}", INVALID)
    return panel.assign(**{ASSET_INCOME: column})


@app.command()
def train(
    data: Path = typer.Option(
        ..., help="panel (Parquet or CSV) with contract fields, optionally at_risk_next"
    ),
    config: Path = typer.Option(DEFAULT_CONFIG, help="training config (YAML)"),
    register: bool = typer.Option(
        True, help="register the model as challenger (the first becomes champion)"
    ),
    ledger: str | None = typer.Option(
        None,
        help="with data.label confirmed: the ledger whose case loop gives the labels; with "
        "features.asset_income: the ledger whose asset register gives asset_income_expected",
    ),
    tune: bool = typer.Option(
        False, help="choose the LightGBM parameters with Optuna first (the config's tuning budget)"
    ),
    trials: int | None = typer.Option(None, help="with --tune: trials (default tuning.trials)"),
    write_config: Path | None = typer.Option(
        None, help="with --tune: write the config with the chosen parameters to this YAML"
    ),
) -> None:
    """Train on earlier periods, evaluate on the latest labelled one and on the rolling folds,
    log to MLflow and register."""
    import time

    from riskml.data.schema import SchemaError
    from riskml.training import registry
    from riskml.training.train import TrainingDataError
    from riskml.training.train import train as run_training

    t0 = time.perf_counter()
    if write_config is not None and not tune:
        fail("--write-config needs --tune")
    check_input(data)
    cfg = _config(config)
    if trials is not None:
        if trials < 1:
            fail("--trials must be at least 1")
        cfg.tuning = {**cfg.tuning, "trials": trials}
    with console.status("reading the panel") as status:
        panel = read_input(data)
        if cfg.label != "income":
            from riskml.cases.outcomes import with_confirmed_labels
            from riskml.cases.store import CaseStore
            from riskml.store.ledger import Ledger

            status.update("labelling the panel from the case loop")
            unvisited = "unlabelled" if cfg.label == "confirmed_visited" else "zero"
            with Ledger(ledger) as led:
                panel = with_confirmed_labels(panel, CaseStore(led), unvisited=unvisited)
        if "asset_income" in cfg.feature_options and ASSET_INCOME not in panel.columns:
            status.update("joining the asset register's expected returns")
            panel = _with_asset_income(panel, ledger)
        try:
            result = run_training(panel, cfg, progress=lambda msg: status.update(msg), tune=tune)
        except TrainingDataError as exc:
            fail(f"cannot train: {exc}")
        except SchemaError as exc:
            _invalid_records("cannot train", data, exc)
        if cfg.label != "income":
            from riskml.cases.outcomes import SELECTION_BIAS

            result.model.metadata["label_note"] = SELECTION_BIAS
        status.update("logging to MLflow and registering")
        reg = registry.log_training_run(result, cfg, data_path=data, register=register)
    m = result.evaluation.metrics
    console.print(_metrics_table(f"test period {result.splits.test_period}", m, HEADLINE))
    print_folds(result, cfg)
    if result.tuning is not None:
        tr = result.tuning
        console.print(
            f"tuning: {len(tr.trials)} trial(s) in {tr.seconds:.1f} s, best trial {tr.best_trial}: "
            f"mean {tr.objective} {tr.best_value:.4f} on the folds tested on {', '.join(tr.folds)}"
        )
        if write_config is not None:
            from riskml.training.tuning import write_config as write_tuned

            with file_errors("cannot write the tuned config"):
                write_tuned(write_config, cfg, tr)
            console.print(f"tuned config written to {write_config}")
    console.print(
        f"run {reg.run_id}; model {reg.model_uri}; version {reg.version} {reg.aliases}; "
        f"rows {result.row_counts['train_rows']:,} train / {result.row_counts['test_rows']:,} test; "
        f"{time.perf_counter() - t0:.1f} s end to end"
    )


def print_folds(result, cfg) -> None:  # noqa: ANN001  (a TrainResult, a TrainConfig)
    """The fold table (per fold, mean ± std; overall and fall-in) and the gains over the baselines."""
    from riskml.training.folds import gain_table, scorer_table

    if not result.folds:
        return
    folds = result.fold_table()
    long = scorer_table(folds, cfg.report_capacities)
    periods = folds["test_period"].astype(str).tolist()
    for subset, title in (
        ("all", "all households"),
        ("fallin", "fall-in subset (not below the line)"),
    ):
        part = long[long["subset"] == subset]
        t = Table(title=f"rolling folds, {title}: test period →")
        t.add_column("scorer")
        t.add_column("metric")
        for p in periods:
            t.add_column(p, justify="right")
        t.add_column("mean ± std", justify="right")
        for r in part.to_dict("records"):
            t.add_row(r["scorer"], r["metric"], *(f"{r[p]:.4f}" for p in periods),
                      f"{r['mean']:.4f} ± {r['std']:.4f}")  # fmt: skip
        console.print(t)
    g = gain_table(folds, cfg.report_capacities)
    t = Table(title=f"model gain over the baselines (95% bootstrap interval on {periods[-1]})")
    for col in ("subset", "baseline", "metric", "mean±std", "folds>0", periods[-1]):
        t.add_column(col)
    for r in g.itertuples(index=False):
        t.add_row(r.subset, r.baseline, r.metric, f"{r.mean:+.4f}±{r.std:.4f}",
                  f"{r.folds_positive}/{len(folds)}", r.intervals.split()[-1])  # fmt: skip
    console.print(t)


@app.command()
def evaluate(
    model: str = typer.Option("models:/household-risk@champion", help="model URI"),
    data: Path = typer.Option(..., help="labelled panel"),
    period: str | None = typer.Option(None, help="period to evaluate (default: latest labelled)"),
    config: Path = typer.Option(DEFAULT_CONFIG),
) -> None:
    """Evaluate a registered model on one labelled period of a panel."""
    from riskml.data.schema import SchemaError
    from riskml.training.promotion import evaluate_on_period
    from riskml.training.train import TrainingDataError

    check_input(data)
    cfg = _config(config)
    panel = read_input(data)
    risk_model = _model(model)
    try:
        ev = evaluate_on_period(risk_model, panel, cfg, period=period)
    except SchemaError as exc:
        _invalid_records("cannot evaluate", data, exc)
    except TrainingDataError as exc:
        fail(f"cannot evaluate: {exc}")
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
    from riskml.data.schema import SchemaError
    from riskml.training.promotion import promote_challenger
    from riskml.training.train import TrainingDataError

    if force and not reason:
        fail("--force needs --reason")
    check_input(data)
    cfg = _config(config)
    panel = read_input(data)
    try:
        promoted, cmp, message = promote_challenger(cfg.model_name, panel, cfg, force, reason)
    except SchemaError as exc:
        _invalid_records("cannot promote", data, exc)
    except TrainingDataError as exc:
        fail(f"cannot promote: {exc}")
    if cmp is not None:
        t = Table(title="champion vs challenger (common folds, else the latest labelled period)")
        for col in ("metric", "better", "champion", "challenger", "margin", "ok"):
            t.add_column(col)
        for r in cmp.rows:
            t.add_row(r["metric"], r["better"], f"{r['champion']:.4f}", f"{r['challenger']:.4f}",
                      f"{r['margin']:.3f}", "yes" if r["ok"] else "[red]no[/red]")  # fmt: skip
        console.print(t)
    console.print(message)
    if not promoted and message.startswith("not promoted"):
        raise typer.Exit(1)
