"""Data commands: validate files against the record schema, print the data dictionary."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from riskml.cli.app import INVALID, app, file_errors, read_input

if TYPE_CHECKING:
    import pandas as pd


@app.command()
def validate(
    file: Path = typer.Argument(..., help="Parquet or CSV file of household records"),
    rejects: Path | None = typer.Option(None, help="write rejected rows with their reasons here"),
    valid_out: Path | None = typer.Option(None, "--valid-out", help="write the valid rows here"),
    max_report: int = typer.Option(50, help="problems to print at most"),
) -> None:
    """Check every record against the schema; exit 0 when clean, 1 with a report otherwise.

    A file that cannot be read (missing, unknown type, not Parquet, empty CSV)
    is one line on stderr and exit 2.
    """
    from riskml.data import schema
    from riskml.data.io import table_format, write_table

    with file_errors():
        for out in (rejects, valid_out):
            if out is not None:
                table_format(out)  # an unknown output type is refused before the work
    df = read_input(file)
    problems = schema.validate_frame(df)
    if any(p.row < 0 for p in problems):
        for p in problems:
            typer.echo(f"{file}: {p.field}: {p.rule}", err=True)
        raise typer.Exit(INVALID)
    valid, rej, _ = schema.split_valid(df) if (rejects or valid_out) else (None, None, problems)
    with file_errors("cannot write"):
        if rejects is not None and rej is not None:
            write_table(_as_stored(rej), rejects)
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
    raise typer.Exit(INVALID)


def _as_stored(rejects: pd.DataFrame) -> pd.DataFrame:
    """Rejected rows as they can be written: a column of mixed kinds (numbers and the text
    of a bad CSV cell) is written as text, the way it was read."""
    import pandas as pd

    out = rejects.copy()
    for name in out.columns:
        s = out[name]
        if s.dtype == object and pd.api.types.infer_dtype(s, skipna=True).startswith("mixed"):
            out[name] = s.map(_text)
    return out


def _text(v: object) -> str | None:
    import pandas as pd

    if v is None or isinstance(v, str):
        return v
    if v is pd.NA or (isinstance(v, float) and v != v):
        return None
    return str(v)


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
