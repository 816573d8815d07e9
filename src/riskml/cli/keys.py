"""API key commands: ``riskml keys add`` and ``riskml keys list``."""

from __future__ import annotations

from pathlib import Path

import typer

from riskml.cli.app import app

keys_app = typer.Typer(
    help="API keys with roles (scorer, caseworker, township, county, department, reporter, admin, metrics, region, assets) and their scopes.",
    no_args_is_help=True,
)

_FILE_HELP = "keys file (default: $RISKML_API_KEYS_FILE, else api_keys.yaml in the state folder)"


@keys_app.command("add")
def add(
    key_id: str = typer.Option(
        ..., "--id", help="a name for the key, shown in logs and the ledger"
    ),
    role: str = typer.Option(
        ...,
        "--role",
        help="scorer, caseworker, township, county, department, reporter, admin, metrics, region or assets",
    ),
    county: list[str] = typer.Option(
        [],
        "--county",
        help="6-digit county code a caseworker or county key may read, a scorer may write, a reporter may report in, an assets key scores and reads the assets of (repeatable; a scorer without any writes every county)",
    ),
    village: list[str] = typer.Option(
        [], "--village", help="12-digit village code a caseworker may read (repeatable)"
    ),
    township: list[str] = typer.Option(
        [],
        "--township",
        help="9-digit township code (the first 9 digits of its villages) of a township or caseworker key (repeatable)",
    ),
    department: list[str] = typer.Option(
        [],
        "--department",
        help="a department whose alerts a department key pushes (repeatable; riskml alerts departments)",
    ),
    area: list[str] = typer.Option(
        [],
        "--area",
        help="a region key's area: 2-digit province, 4-digit prefecture or 6-digit county code (repeatable; riskml regions pages)",
    ),
    file: Path | None = typer.Option(None, "--file", help=_FILE_HELP),
) -> None:
    """Create a key: its hash goes to the keys file, the token is printed once."""
    from riskml.service.access import KeyConfigError, add_key, default_keys_file

    target = file or default_keys_file()
    try:
        token = add_key(
            target,
            key_id,
            role,
            counties=county,
            villages=village,
            townships=township,
            departments=department,
            areas=area,
        )
    except KeyConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(
        f"added key {key_id!r} ({role}) to {target}; the token below is shown only once:",
        err=True,
    )
    typer.echo(token)


@keys_app.command("list")
def list_keys(
    file: Path | None = typer.Option(None, "--file", help=_FILE_HELP),
) -> None:
    """List keys (id, role, scope, source); hashes are shortened, tokens are never stored."""
    from riskml.service.access import KeyConfigError, KeyStore

    try:
        store = KeyStore.load(file)
    except KeyConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    if not len(store):
        typer.echo("no API keys configured", err=True)
        return
    rows = [
        (
            e.id,
            e.role,
            ",".join(e.counties) or "-",
            ",".join(e.townships) or "-",
            ",".join(e.villages) or "-",
            ",".join(e.areas) or "-",
            e.hash[:15] + "…",
            e.source,
        )
        for e in store.entries
    ]
    header = ("id", "role", "counties", "townships", "villages", "areas", "hash", "source")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        typer.echo("  ".join(str(v).ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())


app.add_typer(keys_app, name="keys")
