"""``riskml regions``: decisions added up by village, township, county, prefecture and province;
``riskml allocate``: a support budget split across the table's counties.

Input: batch-scoring outputs (``riskml score FILE --out DIR``; one or several periods) or,
with ``--from-ledger``, the ledger's latest decision per household and period. The case
loop's counts come from the ledger's case store when a ledger is given (``--no-cases`` leaves
them out), outcomes
from ``--outcomes FILE`` or the ledger's outcomes table. Output: Parquet or CSV (by the
suffix of ``--out``); a summary per level on stdout (counts only, no household ids).

``riskml allocate TABLE --budget YUAN``: from the county rows of that table, the allocation of
``riskml.regions.allocate`` (weights in ``allocation.yaml`` or ``--config``; costs per measure
type there or ``--costs``; idle assets revived from ``--assets``): a CSV, a chart (PNG) and a
page (Markdown) explaining the formula, and the households reached against an equal split.
"""

from __future__ import annotations

from pathlib import Path

import typer

from riskml.cli.app import INVALID, app, fail, file_errors


@app.command("regions")
def regions(
    inputs: list[Path] = typer.Argument(None, help="batch outputs (Parquet files or folders)"),
    out: Path = typer.Option(..., "--out", help="the table: .parquet or .csv"),
    from_ledger: bool = typer.Option(False, "--from-ledger", help="decisions from the ledger"),
    ledger: str | None = typer.Option(None, "--ledger", help="the ledger's SQLAlchemy URL"),
    cases: bool = typer.Option(
        True, "--cases/--no-cases", help="case counts from the ledger (when one is given)"
    ),
    outcomes: Path | None = typer.Option(None, "--outcomes", help="an outcomes file"),
    ledger_outcomes: bool = typer.Option(
        False, "--ledger-outcomes", help="outcomes from the ledger's outcomes table"
    ),
    key_counties: Path | None = typer.Option(
        None, "--key-counties", help="national key counties CSV"
    ),
    provincial: Path | None = typer.Option(
        None, "--provincial-key-counties", help="provincial key counties CSV"
    ),
    pairing: Path | None = typer.Option(None, "--pairing", help="East-West pairs CSV"),
    confidence: float = typer.Option(0.90, "--confidence", min=0.5, max=0.999),
    engine: str = typer.Option("local", "--engine", help="local or spark"),
    master: str | None = typer.Option(None, "--master", help="Spark master (default local[*])"),
) -> None:
    """Households scored and flagged, expected households falling below the line (90% interval),
    monitored households and cases, per area and period, with changes and calibration checks."""
    from riskml.regions.aggregate import RegionInputError
    from riskml.regions.reference import ReferenceFileError, RegionReference

    if out.suffix not in (".parquet", ".csv"):
        fail("--out must end in .parquet or .csv")
    if engine not in ("local", "spark"):
        fail("--engine must be local or spark")
    if bool(inputs) == from_ledger:
        fail("give batch output files or --from-ledger (one of them)")
    if engine == "spark" and (from_ledger or outcomes or ledger_outcomes):
        fail("--engine spark reads batch output files only, without outcomes")
    with file_errors("reading a reference file"):
        try:
            reference = RegionReference.load(key_counties, provincial, pairing)
        except ReferenceFileError as exc:
            fail(str(exc), INVALID)
    states = procedure = led = None
    if ledger or from_ledger or ledger_outcomes:
        from riskml.store.ledger import Ledger, LedgerError

        try:
            led = Ledger(ledger)
        except LedgerError as exc:
            fail(str(exc))
    if cases and led is not None:
        from riskml.cases.store import CaseStore

        store = CaseStore(led)
        states, procedure = store.current_cases(), store.procedure
    outcome_frame = None
    if outcomes is not None:
        from riskml.monitoring.outcomes import load_outcomes

        with file_errors("reading outcomes"):
            try:
                outcome_frame = load_outcomes(outcomes)
            except ValueError as exc:
                fail(str(exc), INVALID)
    elif ledger_outcomes and led is not None:
        from riskml.store.outcomes import OutcomeStore

        outcome_frame = OutcomeStore(led).frame()
    try:
        if engine == "spark":
            from riskml.regions.run import spark_regional_table
            from riskml.scoring.spark import spark_session

            table = spark_regional_table(
                spark_session(master), inputs, reference, states=states, procedure=procedure,
                confidence=confidence,
            )  # fmt: skip
        else:
            from riskml.regions.inputs import ledger_decisions, read_decisions
            from riskml.regions.run import regional_table

            with file_errors("reading decisions"):
                decisions = (
                    ledger_decisions(led)
                    if from_ledger
                    else read_decisions(inputs, with_ids=outcome_frame is not None)
                )
            table = regional_table(
                decisions, reference, states=states, procedure=procedure,
                outcomes=outcome_frame, confidence=confidence,
            )  # fmt: skip
    except RegionInputError as exc:
        fail(str(exc), INVALID)
    with file_errors("writing the table"):
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.suffix == ".csv":
            table.to_csv(out, index=False)
        else:
            table.to_parquet(out, index=False)
    periods = sorted(table["period"].unique())
    typer.echo(f"periods: {', '.join(periods)}")
    for level, rows in table.groupby("level", sort=False):
        latest = rows[rows["period"] == periods[-1]]
        typer.echo(
            f"{level:<11} {rows['code'].nunique():>7} areas  latest period: "
            f"{int(latest['households'].sum()):>10} households, "
            f"{latest['expected'].sum():>10.1f} expected below the line"
        )
    typer.echo(f"wrote {len(table)} rows to {out}")


def _read_table(path: Path):  # a pandas DataFrame
    """The regional table (``riskml regions --out``), codes kept as text; errors as ``fail``."""
    import pandas as pd
    import pyarrow as pa

    if path.suffix not in (".csv", ".parquet"):
        fail("the regional table must be .csv or .parquet (riskml regions --out)")
    with file_errors("reading the regional table"):
        try:
            if path.suffix == ".csv":
                return pd.read_csv(path, dtype={"code": str, "parent_code": str, "period": str})
            return pd.read_parquet(path)
        except (ValueError, pa.ArrowException) as exc:
            fail(f"reading the regional table: {exc}")


@app.command("allocate")
def allocate(
    table: Path = typer.Argument(
        ..., help="the regional table (riskml regions --out: .csv or .parquet)"
    ),
    budget: float = typer.Option(..., "--budget", help="the budget in whole yuan"),
    out: Path = typer.Option(..., "--out", help="the allocation per county (.csv)"),
    chart: Path | None = typer.Option(
        None, "--chart", help="the chart (.png; default: beside --out)"
    ),
    page: Path | None = typer.Option(
        None, "--page", help="the page explaining the formula (.md; default: beside --out)"
    ),
    config: Path | None = typer.Option(
        None, "--config", help="weights and costs (default: the shipped allocation.yaml)"
    ),
    costs: Path | None = typer.Option(
        None, "--costs", help="costs per measure type: CSV risk_type,cost_yuan or YAML"
    ),
    assets: Path | None = typer.Option(
        None, "--assets", help="CSV county_code,assets_revived,assets_idle"
    ),
    period: str | None = typer.Option(
        None, "--period", help="the period to allocate for (default: the latest)"
    ),
    province: str | None = typer.Option(
        None, "--province", help="only this province's counties (2 digits)"
    ),
    top: int = typer.Option(20, "--top", min=1, help="counties in the chart and the page's table"),
) -> None:
    """Split a support budget across counties by expected households at risk, their risk-type mix,
    key-county weights and performance; compare with an equal-per-household split."""
    import riskml.regions.allocate as alloc
    from riskml.regions.allocation_text import chart as draw
    from riskml.regions.allocation_text import page_markdown

    if out.suffix != ".csv":
        fail("--out must end in .csv")
    chart = chart or out.with_suffix(".png")
    page = page or out.with_suffix(".md")
    if chart.suffix != ".png":
        fail("--chart must end in .png")
    frame = _read_table(table)
    try:
        with file_errors("reading the settings"):
            settings = alloc.load_config(config)
            if costs is not None:
                settings = settings.with_costs(alloc.load_costs(costs))
            asset_frame = alloc.load_assets(assets) if assets is not None else None
        result = alloc.allocate(
            frame, budget, settings, assets=asset_frame, period=period, province=province
        )
    except alloc.AllocationError as exc:
        fail(str(exc), INVALID)
    with file_errors("writing the allocation"):
        out.parent.mkdir(parents=True, exist_ok=True)
        result.counties.to_csv(out, index=False)
        chart.parent.mkdir(parents=True, exist_ok=True)
        fig = draw(result, top)
        fig.savefig(chart, dpi=120)
        import matplotlib.pyplot as plt  # after draw chose the Agg backend

        plt.close(fig)
        page.parent.mkdir(parents=True, exist_ok=True)
        rel = chart.name if chart.parent.resolve() == page.parent.resolve() else str(chart)
        page.write_text(page_markdown(result, rel, top), encoding="utf-8")
    s = result.summary
    typer.echo(
        f"period {s['period']}: {s['counties']} counties, {s['households']:,} households, "
        f"{s['expected']:,.1f} expected below the line, need {s['need']:,.0f} yuan"
    )
    typer.echo(
        f"budget {s['budget']:,} yuan: households reached {s['reached_allocation']:,.1f} "
        f"(allocation) vs {s['reached_equal_split']:,.1f} (equal split per household)"
    )
    typer.echo(
        f"least-covered county's share of its need: {s['need_covered_min_allocation']:.0%} "
        f"(allocation) vs {s['need_covered_min_equal_split']:.0%} (equal split); money beyond "
        f"need {s['beyond_need_allocation']:,.0f} vs {s['beyond_need_equal_split']:,.0f} yuan"
    )
    typer.echo(f"wrote {out}, {chart}, {page}")
