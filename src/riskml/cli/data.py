"""Data commands: validate files against the record schema, print the data dictionary."""

from __future__ import annotations

from pathlib import Path

import typer

from riskml.cli.app import app
from riskml.data.io import read_table, write_table


@app.command()
def validate(
    file: Path = typer.Argument(..., help="Parquet or CSV file of household records"),
    rejects: Path | None = typer.Option(None, help="write rejected rows with their reasons here"),
    valid_out: Path | None = typer.Option(None, "--valid-out", help="write the valid rows here"),
    max_report: int = typer.Option(50, help="problems to print at most"),
) -> None:
    """Check every record against the schema; exit 0 when clean, 1 with a report otherwise."""
    from riskml.data import schema

    df = read_table(file)
    problems = schema.validate_frame(df)
    if any(p.row < 0 for p in problems):
        for p in problems:
            typer.echo(f"{file}: {p.field}: {p.rule}", err=True)
        raise typer.Exit(1)
    valid, rej, _ = schema.split_valid(df) if (rejects or valid_out) else (None, None, problems)
    if rejects is not None and rej is not None:
        write_table(rej, rejects)
    if valid_out is not None and valid is not None:
        write_table(valid, valid_out)
    bad_rows = len({p.row for p in problems})
    if not problems:
        typer.echo(f"{file}: {len(df):,} records, all valid")
        return
    typer.echo(f"{file}: {len(df):,} records, {bad_rows:,} invalid, {len(problems):,} problem(s)")
    for p in problems[:max_report]:
        typer.echo(f"  {p}")
    if len(problems) > max_report:
        typer.echo(
            f"  ... and {len(problems) - max_report:,} more"
            + (f" (all in {rejects})" if rejects else "")
        )
    raise typer.Exit(1)


@app.command("schema")
def schema_cmd(
    markdown: bool = typer.Option(
        True, "--markdown/--json", help="markdown data dictionary or JSON schema"
    ),
) -> None:
    """Print the household record contract, docs/contract.md (or the record's JSON schema)."""
    import json

    from riskml.data import schema

    if markdown:
        from riskml.data.contract_doc import contract_markdown

        typer.echo(contract_markdown(), nl=False)
    else:
        typer.echo(
            json.dumps(schema.HouseholdRecord.model_json_schema(), ensure_ascii=False, indent=2)
        )
