"""The assistance-asset register: ``riskml assets validate | import | events | register | check |
rebuild | contract``.

``validate`` checks an asset file (CSV, JSON lines or Parquet) against the contract;
``import`` validates it and stores one ``register`` event per asset in the ledger (nothing
stored when any record is refused); ``events`` appends lifecycle events from a file (stored
whole or not at all); ``register`` writes the current register (CSV or Parquet); ``check``
runs the asset rules over it; ``rebuild`` replays the events against the stored register;
``contract`` prints docs/assets.md. Exit codes as every
command's: 0 done, 1 the input refused (every problem with its row and field), 2 a usage or
file error. ``assets_app`` is the sub-app other asset commands join.
"""

from __future__ import annotations

import datetime as dt
import getpass
from pathlib import Path
from typing import Any

import typer

from riskml.cli.app import INVALID, app, fail, file_errors

assets_app = typer.Typer(help="Assistance assets (帮扶资产): register, events, rules.",
                         no_args_is_help=True)  # fmt: skip
app.add_typer(assets_app, name="assets")

LEDGER = typer.Option(None, "--ledger", help="the ledger's SQLAlchemy URL")
_SHOWN = 50  # problems printed


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no user name in this environment
        return "cli:unknown"


def _records(file: Path) -> tuple[list[Any], list[Any]]:
    from riskml.assets.io import read_records
    from riskml.assets.validation import record_problems

    with file_errors():
        records, problems = read_records(file)
    return records, problems or record_problems(records)


def _print_problems(problems: list[Any], total_records: int) -> None:
    bad = len({p.row for p in problems})
    typer.echo(f"{len(problems)} problem(s) in {bad} of {total_records} record(s):", err=True)
    for p in problems[:_SHOWN]:
        typer.echo(f"  - {p}", err=True)
    if len(problems) > _SHOWN:
        typer.echo(f"  ... and {len(problems) - _SHOWN} more", err=True)


def _store(ledger: str | None) -> Any:
    from riskml.assets.register import AssetStore
    from riskml.store.ledger import Ledger, LedgerError

    try:
        return AssetStore(Ledger(ledger))
    except LedgerError as exc:
        fail(str(exc))


@assets_app.command("validate")
def validate(file: Path = typer.Argument(..., help="assets: .csv, .jsonl or .parquet")) -> None:
    """Check an asset file against the contract (docs/assets.md)."""
    records, problems = _records(file)
    if problems:
        _print_problems(problems, len(records))
        raise typer.Exit(INVALID)
    typer.echo(f"{len(records)} asset record(s), all valid")


@assets_app.command("import")
def import_assets(
    file: Path = typer.Argument(..., help="assets: .csv, .jsonl or .parquet"),
    ledger: str | None = LEDGER,
    date: str | None = typer.Option(None, "--date", help="registration date (default today)"),
) -> None:
    """Validate an asset file and register every asset (nothing stored when any is refused)."""
    from riskml.assets.register import EventsRefused
    from riskml.assets.validation import parse_date

    if date is not None and parse_date(date) is None:
        fail("--date must be a real date YYYY-MM-DD")
    records, problems = _records(file)
    if problems:
        _print_problems(problems, len(records))
        typer.echo("nothing stored", err=True)
        raise typer.Exit(INVALID)
    store = _store(ledger)
    try:
        rows = store.register(records, actor=_actor(), date=date)
    except EventsRefused as exc:
        fail(str(exc), INVALID)
    finally:
        store.ledger.close()
    typer.echo(f"{len(rows)} asset(s) registered")


def _read_events(file: Path) -> list[Any]:
    from riskml.assets.io import file_format, read_frame, read_json_lines, typed_frame

    with file_errors():
        if file_format(file) == "jsonl":
            return read_json_lines(file)
        df = typed_frame(read_frame(file), (), ("payload",))
    missing = [c for c in ("asset_id", "event", "date") if c not in df.columns]
    if missing:
        fail(f"{file}: column(s) missing: {', '.join(missing)}", INVALID)
    if "payload" not in df.columns:
        df["payload"] = None
    df = df.astype(object).where(df.notna(), None)
    return df[["asset_id", "event", "date", "payload"]].to_dict("records")


@assets_app.command("events")
def events(
    file: Path = typer.Argument(
        ..., help="events {asset_id, event, date, payload}: .jsonl or .csv"
    ),
    ledger: str | None = LEDGER,
) -> None:
    """Append lifecycle events (stored whole, or nothing when any is refused)."""
    from riskml.assets.register import EventsRefused

    batch = _read_events(file)
    store = _store(ledger)
    try:
        rows = store.append(batch, actor=_actor())
    except EventsRefused as exc:
        fail(str(exc), INVALID)
    finally:
        store.ledger.close()
    typer.echo(f"{len(rows)} event(s) stored")


@assets_app.command("register")
def register(
    ledger: str | None = LEDGER,
    out: Path = typer.Option(..., "--out", help="the register: .csv or .parquet"),
    county: str | None = typer.Option(None, "--county", help="one county's assets"),
) -> None:
    """Write the current register (each asset's state after its events)."""
    from riskml.assets.io import write_table
    from riskml.assets.register import register_frame

    if out.suffix.lower() not in (".csv", ".parquet"):
        fail("--out must end in .csv or .parquet")
    store = _store(ledger)
    try:
        frame = register_frame(store.states(county))
    finally:
        store.ledger.close()
    with file_errors("writing the register"):
        write_table(frame, out)
    typer.echo(f"{len(frame)} asset(s) written to {out}")


@assets_app.command("check")
def check(
    ledger: str | None = LEDGER,
    as_of: str | None = typer.Option(None, "--as-of", help="the date checked (default today)"),
    rules_file: Path | None = typer.Option(None, "--rules", help="an asset rules file"),
    out: Path | None = typer.Option(None, "--out", help="the rules fired: .csv or .parquet"),
) -> None:
    """Run the asset rules over the current register: one line per rule fired."""
    from riskml.assets import rules
    from riskml.assets.io import write_table
    from riskml.assets.register import register_frame
    from riskml.assets.validation import parse_date

    when = parse_date(as_of) if as_of else dt.datetime.now(dt.UTC).date()
    if when is None:
        fail("--as-of must be a real date YYYY-MM-DD")
    try:
        ruleset = rules.load(rules_file)
    except rules.AssetRulesError as exc:
        fail(str(exc), INVALID)
    store = _store(ledger)
    try:
        frame = register_frame(store.states())
    finally:
        store.ledger.close()
    fired = rules.evaluate(frame, ruleset, when)
    for r in fired.to_dict("records"):
        typer.echo(f"{r['asset_id']}\t{r['rule']}\t{r['reason_zh']}\t{r['reason_en']}")
    if out is not None:
        with file_errors("writing the rules fired"):
            write_table(fired, out)
    assets = fired["asset_id"].nunique() if len(fired) else 0
    typer.echo(f"{len(fired)} rule(s) fired on {assets} of {len(frame)} asset(s) at "
               f"{when.isoformat()} (rules {ruleset.version})", err=True)  # fmt: skip


@assets_app.command("rebuild")
def rebuild(ledger: str | None = LEDGER) -> None:
    """Replay every asset event and compare with the stored register; exit 1 on a difference."""
    store = _store(ledger)
    try:
        done = store.rebuild_check()
    finally:
        store.ledger.close()
    typer.echo(f"{done.assets} asset(s), {done.events} event(s) replayed in {done.seconds:.2f} s")
    if done.mismatched:
        typer.echo(f"{len(done.mismatched)} asset(s) differ from the replay: "
                   + ", ".join(done.mismatched[:20]), err=True)  # fmt: skip
        raise typer.Exit(INVALID)


@assets_app.command("contract")
def contract() -> None:
    """Print the asset record's contract (docs/assets.md)."""
    from riskml.assets.doc import assets_markdown

    typer.echo(assets_markdown(), nl=False)


__all__ = ["assets_app"]
