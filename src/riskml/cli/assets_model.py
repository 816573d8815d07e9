"""``riskml assets simulate | train | promote``: the simulated asset panel and the asset-risk model.

Registered by ``add_commands(assets_app)`` on the ``assets`` group (riskml.cli.assets).
``simulate`` writes the asset-year panel (Parquet or CSV by the suffix) and, with
``--register``, the register at the end of the last year (JSON lines, the record contract's
fields); ``train`` fits, evaluates against the rules alone and the oracle, prints the figures
and logs and registers the model in MLflow (``asset-risk``: challenger, champion when first);
``promote`` moves ``champion`` through the gate. Exit codes: 0 done, 1 refused (training
data not usable; the gate not passed), 2 a usage or file error.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from riskml.cli.app import INVALID, fail, file_errors, read_input

CONFIG_HELP = "asset training config (default: riskml/assets/train.yaml)"


def _config(path: Path | None):  # noqa: ANN202 (an AssetTrainConfig)
    import yaml

    from riskml.assets.train import AssetTrainConfig

    with file_errors("cannot read the config"):
        try:
            return AssetTrainConfig.from_yaml(path)
        except (ValueError, TypeError, KeyError, AttributeError, yaml.YAMLError) as exc:
            fail(f"{path}: not a valid asset training config ({exc})")


def simulate(
    out: Path = typer.Option(..., "--out", "-o", help="the panel: .parquet or .csv"),
    assets: int | None = typer.Option(
        None, "--assets", "-n", min=1, help="assets (default: the config's)"
    ),
    seed: int | None = typer.Option(None, "--seed", "-s", help="seed (default: the config's)"),
    register: Path | None = typer.Option(
        None, "--register", help="also write the register at the end of the last year (.jsonl)"
    ),
    config: Path | None = typer.Option(None, "--config", help=CONFIG_HELP),
) -> None:
    """Simulate the asset panel: asset-years with the next year's label and its oracle."""
    import time

    from riskml.assets.simulate import SimConfig, register_records
    from riskml.assets.simulate import simulate as run
    from riskml.data.io import write_table

    cfg = _config(config)
    raw = dict(cfg.simulate)
    raw.update({k: v for k, v in (("assets", assets), ("seed", seed)) if v is not None})
    raw["return_floor"] = cfg.floor()
    try:
        sim_cfg = SimConfig.from_dict(raw)
    except (TypeError, ValueError) as exc:
        fail(f"simulate: {exc}")
    t = time.perf_counter()
    sim = run(sim_cfg)
    seconds = time.perf_counter() - t
    with file_errors("cannot write the panel"):
        write_table(sim.panel, out)
    p = sim.panel
    labelled = p["adverse_next"].notna()
    typer.echo(
        f"{len(p):,} asset-years of {p['asset_id'].nunique():,} assets, {p['year'].min()}-{p['year'].max()}, "
        f"in {seconds:.1f} s; label (idle or return below {sim_cfg.return_floor:.1%} next year) "
        f"{p.loc[labelled, 'adverse_next'].mean():.1%} of {int(labelled.sum()):,} labelled -> {out}"
    )
    if register is not None:
        from riskml.data.json_text import dumps

        records = register_records(sim)
        with file_errors("cannot write the register"):
            register.parent.mkdir(parents=True, exist_ok=True)
            register.write_text("".join(dumps(r) + "\n" for r in records), encoding="utf-8")
        typer.echo(f"{len(records):,} asset records -> {register}")


def train(
    data: Path = typer.Option(..., "--data", help="the asset panel (riskml assets simulate)"),
    config: Path | None = typer.Option(None, "--config", help=CONFIG_HELP),
    register: bool = typer.Option(
        True, "--register/--no-register", help="log and register in MLflow"
    ),
    out: Path | None = typer.Option(None, "--out", help="save the model folder here too"),
    metrics_out: Path | None = typer.Option(
        None, "--metrics", help="write the figures as JSON here"
    ),
) -> None:
    """Train the asset-risk model; print its figures against the rules alone and the oracle."""
    from riskml.assets.train import HEADLINE, AssetTrainingError
    from riskml.assets.train import train as fit

    cfg = _config(config)
    panel = read_input(data)
    try:
        result = fit(panel, cfg)
    except AssetTrainingError as exc:
        fail(f"cannot train on {data}: {exc}", INVALID)
    except ValueError as exc:
        fail(f"cannot train on {data}: {exc}", INVALID)
    m = result.evaluation.metrics
    s = result.splits
    typer.echo(
        f"trained on {', '.join(map(str, s.train_years))}; validated on {s.valid_year}; tested on {s.test_year} "
        f"({result.row_counts['test_rows']:,} assets, {result.timings['total']:.1f} s)"
    )
    for k in HEADLINE:
        if k in m:
            typer.echo(f"  {k:32s} {m[k]:.4f}")
    if out is not None:
        with file_errors("cannot save the model"):
            result.model.save(out)
        typer.echo(f"model saved to {out}")
    if metrics_out is not None:
        with file_errors("cannot write the figures"):
            metrics_out.write_text(json.dumps({k: float(v) for k, v in m.items()}, indent=2))
    if register:
        from riskml.assets import model_registry

        reg = model_registry.log_training_run(result, cfg, data_path=data)
        typer.echo(
            f"logged run {reg.run_id}; {cfg.model_name} version {reg.version} ({', '.join(reg.aliases)})"
        )


def promote(
    data: Path = typer.Option(..., "--data", help="a labelled asset panel to compare on"),
    config: Path | None = typer.Option(None, "--config", help=CONFIG_HELP),
    force: bool = typer.Option(False, "--force", help="promote even if the gate fails"),
    reason: str | None = typer.Option(None, "--reason", help="why (needed with --force)"),
) -> None:
    """Move ``champion`` to the challenger of asset-risk if it passes the gate."""
    from riskml.assets import model_registry

    if force and not reason:
        fail("--force needs --reason")
    cfg = _config(config)
    panel = read_input(data)
    try:
        promoted, cmp, message = model_registry.promote(panel, cfg, force=force, reason=reason)
    except Exception as exc:  # unknown model or alias, registry unreachable
        fail(f"cannot promote {cfg.model_name}: {type(exc).__name__}: {str(exc)[:300]}")
    if cmp is not None:
        typer.echo(cmp.table().to_string(index=False))
    typer.echo(message)
    if not promoted and cmp is not None:  # the gate refused it
        raise typer.Exit(INVALID)


def add_commands(assets_app: typer.Typer) -> None:
    """Add ``simulate``, ``train`` and ``promote`` to the ``assets`` group."""
    assets_app.command("simulate")(simulate)
    assets_app.command("train")(train)
    assets_app.command("promote")(promote)
