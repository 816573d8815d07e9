"""``riskml simulate``: write a simulated household panel (Parquet or CSV)."""

from __future__ import annotations

from pathlib import Path

import typer

from riskml.cli.app import app, fail, file_errors


@app.command()
def simulate(
    households: int = typer.Option(
        20_000, "--households", "-n", min=1, help="households to simulate"
    ),
    years: int = typer.Option(..., "--years", "-y", min=1, help="yearly records per household"),
    seed: int = typer.Option(..., "--seed", "-s", help="random seed (same seed, same panel)"),
    out: Path = typer.Option(..., "--out", "-o", help="output file, .parquet or .csv"),
    start_year: int = typer.Option(
        2019, "--start-year", help="year of the first record (period YYYY-06)"
    ),
    oracle_draws: int = typer.Option(
        64, "--oracle-draws", min=0, help="re-simulations per household for oracle_p (0: no oracle)"
    ),
    lines: Path | None = typer.Option(
        None, "--lines", help="reference lines table (default: riskml/data/tables/lines.csv)"
    ),
    version: int = typer.Option(
        1,
        "--version",
        min=1,
        max=2,
        help="simulator version: 1 (default, kept for comparisons) or 2 (persistent earnings, "
        "unobserved resilience, support after detection, measurement error; adds `detected`)",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bar"),
) -> None:
    """Simulate a rural household panel with its label (at_risk_next) and true risk (oracle_p)."""
    import time

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from riskml.data.io import write_table
    from riskml.data.reference import ReferenceLines
    from riskml.data.simulate import simulate_panel

    if out.suffix.lower() not in (".parquet", ".pq", ".csv"):
        raise typer.BadParameter(
            f"unknown file type {out.suffix!r}; use .parquet or .csv", param_hint="--out"
        )
    with file_errors("cannot read the lines table"):
        try:
            ref = ReferenceLines.load(lines) if lines else None
        except ValueError as exc:  # a table that is not a lines table
            fail(f"cannot use the lines table: {exc}")
    t0 = time.perf_counter()
    with Progress(
        TextColumn("simulating households"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        disable=quiet,
        transient=True,
    ) as bar:
        task = bar.add_task("simulate", total=households)
        panel = simulate_panel(
            households,
            years,
            seed,
            start_year=start_year,
            oracle_draws=oracle_draws,
            lines=ref,
            version=version,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    with file_errors("cannot write"):
        write_table(panel, out)
    labelled = panel["at_risk_next"].notna()
    typer.echo(
        f"{out}: {len(panel):,} records ({panel['household_id'].nunique():,} households × "
        f"{years} years from {start_year}, simulator version {version}), at_risk_next rate "
        f"{panel.loc[labelled, 'at_risk_next'].mean():.1%}, in {time.perf_counter() - t0:.1f} s"
    )
