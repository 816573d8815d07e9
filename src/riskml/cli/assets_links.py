"""``riskml assets households | leads | income``: assistance assets linked to their beneficiary households.

Registered by ``add_commands(assets_app)`` on the ``assets`` group (riskml.cli.assets).
``households`` writes each beneficiary household's expected yearly asset income and its share
of the household's net income (``riskml.assets.households.expected_returns``; Parquet or CSV
by the suffix); ``leads`` raises a lead of the case loop (source ``asset_idle``) for each
household that depends materially on an asset that stopped earning, and prints the counts
(``--unknown FILE`` writes the households it could not lead: no income record, or unknown to
the ledger); ``income`` adds the side input ``asset_income_expected`` to household records (the
register as of each record's month) for scoring or training a model with ``features.asset_income``. ``--as-of`` reads the register as its events had made it on that day (default
today: the current register). Exit codes: 0 done, 1 an input refused (the links or rules file,
the records' columns or periods), 2 a usage or file error.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import typer

from riskml.cli.app import INVALID, fail, file_errors, read_input

LEDGER = typer.Option(None, "--ledger", help="the ledger's SQLAlchemy URL")
RECORDS = typer.Option(..., "--records", help="household records: .parquet or .csv")
AS_OF = typer.Option(None, "--as-of", help="the date YYYY-MM-DD (default today)")


def _day(text: str | None) -> dt.date:
    if text is None:
        return dt.datetime.now(dt.UTC).date()
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        fail("--as-of must be a real date YYYY-MM-DD")


def _register(ledger: Any, as_of: str | None, day: dt.date) -> dict[str, dict[str, Any]]:
    from riskml.assets.households import states_as_of
    from riskml.assets.register import AssetStore
    from riskml.store.ledger import LedgerError

    store = AssetStore(ledger)
    try:
        return store.states() if as_of is None else states_as_of(store.events(), day)
    except LedgerError as exc:
        fail(str(exc))


def _ledger(url: str | None) -> Any:
    from riskml.store.ledger import Ledger, LedgerError

    try:
        return Ledger(url)
    except LedgerError as exc:
        fail(str(exc))


def households(
    records: Path = RECORDS,
    out: Path = typer.Option(..., "--out", "-o", help="the table: .parquet or .csv"),
    ledger: str | None = LEDGER,
    as_of: str | None = AS_OF,
) -> None:
    """Expected yearly asset income of each beneficiary household and its share of net income."""
    from riskml.assets.households import LinksError, expected_returns
    from riskml.data.io import write_table

    day = _day(as_of)
    frame = read_input(records)
    store = _ledger(ledger)
    try:
        states = _register(store, as_of, day)
    finally:
        store.close()
    try:
        table = expected_returns(states, frame, day)
    except LinksError as exc:
        fail(str(exc), INVALID)
    with file_errors("cannot write the table"):
        write_table(table, out)
    without = int(table["asset_income_share"].isna().sum())
    typer.echo(
        f"{len(table):,} beneficiary household(s) of {len(states):,} asset(s) on {day}: "
        f"expected asset income {table['asset_income_expected'].sum():,.0f} yuan a year; "
        f"{without:,} without a share (no record or no positive net income) -> {out}"
    )


def leads(
    records: Path = RECORDS,
    ledger: str | None = LEDGER,
    as_of: str | None = AS_OF,
    links: Path | None = typer.Option(
        None, "--links", help="links file (default: riskml/assets/links.yaml)"
    ),
    rules: Path | None = typer.Option(
        None, "--rules", help="asset rules file (default: riskml/assets/rules.yaml)"
    ),
    unknown: Path | None = typer.Option(
        None, "--unknown", help="write the households not led (no record, not in the ledger): .csv"
    ),
) -> None:
    """Raise leads for households that depend on assets gone idle, low, suspended or disposed."""
    import pandas as pd

    from riskml.assets.households import LinksError, load_links, plan_leads, raise_leads
    from riskml.assets.rules import AssetRulesError
    from riskml.assets.rules import load as load_rules
    from riskml.cases.store import CaseStore
    from riskml.data.io import write_table
    from riskml.store.ledger import LedgerError

    day = _day(as_of)
    try:
        config = load_links(links)
        asset_rules = load_rules(rules) if "idle_too_long" in config.triggers else None
    except (LinksError, AssetRulesError) as exc:
        fail(str(exc), INVALID)
    frame = read_input(records)
    store = _ledger(ledger)
    try:
        states = _register(store, as_of, day)
        try:
            plan = plan_leads(states, frame, day, config, asset_rules)
        except LinksError as exc:
            fail(str(exc), INVALID)
        try:
            led = raise_leads(CaseStore(store), plan, config)
        except LedgerError as exc:
            fail(str(exc))
    finally:
        store.close()
    if unknown is not None:
        with file_errors("cannot write the unknown households"):
            write_table(pd.DataFrame(led.unknown, columns=["household_id", "month", "reason"]),
                        unknown)  # fmt: skip
    c = led.counts()
    typer.echo(
        f"asset leads on {day}: {c['opened']} opened, {c['merged']} merged into an open case, "
        f"{c['already']} already open, {c['below_threshold']} below the threshold "
        f"({config.material_share:.0%} of net income), {c['unknown']} unknown household(s), "
        f"{c['refused']} refused"
    )


def income(
    records: Path = typer.Argument(..., help="household records: .parquet or .csv"),
    out: Path = typer.Option(
        ..., "--out", "-o", help="the records with the column: .parquet or .csv"
    ),
    ledger: str | None = LEDGER,
) -> None:
    """Add asset_income_expected to household records, from the asset register as of each
    record's month: the side input of a model trained with features.asset_income."""
    from riskml.assets.households import LinksError, asset_income_column
    from riskml.assets.register import AssetStore
    from riskml.data.io import write_table
    from riskml.data.side_inputs import ASSET_INCOME
    from riskml.store.ledger import LedgerError

    frame = read_input(records)
    for column in ("household_id", "period"):
        if column not in frame.columns:
            fail(f"{records}: column missing: {column}", INVALID)
    store = _ledger(ledger)
    try:
        events = AssetStore(store).events()
    except LedgerError as exc:
        fail(str(exc))
    finally:
        store.close()
    try:
        column = asset_income_column(events, frame)
    except LinksError as exc:
        fail(str(exc), INVALID)
    with file_errors("cannot write the records"):
        write_table(frame.assign(**{ASSET_INCOME: column}), out)
    typer.echo(
        f"{len(frame):,} record(s), {int((column > 0).sum()):,} with asset income "
        f"(total {column.sum():,.0f} yuan a year) -> {out}"
    )


def add_commands(assets_app: typer.Typer) -> None:
    """Add ``households``, ``leads`` and ``income`` to the ``assets`` group."""
    assets_app.command("households")(households)
    assets_app.command("leads")(leads)
    assets_app.command("income")(income)
