"""Reference-line commands: ``riskml lines list | add | import | check``.

The operated table (``riskml.data.operated_lines``) lives in the state folder over
the shipped defaults; every entry is a new row (history kept), and a running
service picks it up without a restart.
"""

from __future__ import annotations

import getpass
from datetime import date
from pathlib import Path

import typer

from riskml.cli.app import app

lines_app = typer.Typer(
    help="Monitoring and dibao lines by province and year: the operated table over the shipped one.",
    no_args_is_help=True,
)


def _who(by: str | None) -> str:
    if by:
        return by
    try:
        return getpass.getuser()
    except Exception:  # no user name in this environment
        return "unknown"


def _fail(message: str, code: int = 1) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _table(rows: list[tuple[object, ...]], header: tuple[str, ...]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        typer.echo("  ".join(str(v).ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())


@lines_app.command("list")
def list_lines(
    province: str | None = typer.Option(None, "--province", help="two-digit province code"),
    year: int | None = typer.Option(None, "--year"),
    history: bool = typer.Option(False, "--history", help="every row ever entered, oldest first"),
) -> None:
    """The lines in force per province and year (or the operated table's history)."""
    from riskml.data import operated_lines
    from riskml.data.reference import default_lines

    if history:
        h = operated_lines.history()
        if province:
            h = h[h["province_code"] == province]
        if year:
            h = h[h["year"] == str(year)]
        if h.empty:
            typer.echo(f"no lines entered in {operated_lines.operated_file()}", err=True)
            return
        _table(
            [tuple(r) for r in h[list(operated_lines.OPERATED_COLUMNS)].itertuples(index=False)],
            operated_lines.OPERATED_COLUMNS,
        )
        return
    try:
        lines = default_lines()
    except (OSError, ValueError) as exc:
        _fail(str(exc))
    entered = {
        (r.province_code, int(r.year)) for r in operated_lines.in_force().itertuples(index=False)
    }
    rows = []
    for (p, y), (mon, dib, basis) in sorted(lines.pairs().items()):
        if (province and p != province) or (year and y != year):
            continue
        rows.append(
            (
                p,
                y,
                f"{mon:,.0f}",
                f"{dib:,.0f}",
                basis,
                "operated" if (p, y) in entered else "shipped",
            )
        )
    if not rows:
        typer.echo("no lines match", err=True)
        return
    _table(rows, ("province", "year", "monitoring", "dibao", "basis", "from"))


@lines_app.command("add")
def add(
    province: str = typer.Option(..., "--province", help="two-digit province code (GB/T 2260)"),
    year: int = typer.Option(..., "--year"),
    monitoring: float | None = typer.Option(None, "--monitoring", help="yuan per person per year"),
    dibao: float | None = typer.Option(None, "--dibao", help="yuan per person per year"),
    basis: str = typer.Option(..., "--basis", help="published, announced, estimate or provisional"),
    source: str = typer.Option(
        ..., "--source", help="where the line comes from (a notice, a document)"
    ),
    by: str | None = typer.Option(None, "--by", help="who enters it (default: the user name)"),
) -> None:
    """Enter a province's monitoring and/or dibao line for a year (a new row; history is kept)."""
    import pandas as pd

    from riskml.data import operated_lines

    if monitoring is None and dibao is None:
        _fail("give --monitoring, --dibao or both", 2)
    rows = [
        {"province_code": province, "year": year, "line": line, "yuan_per_person_year": value,
         "basis": basis, "source": source}
        for line, value in (("monitoring", monitoring), ("dibao", dibao))
        if value is not None
    ]  # fmt: skip
    try:
        new = operated_lines.add_rows(pd.DataFrame(rows), _who(by), label="line")
    except operated_lines.LinesError as exc:
        _fail("; ".join(exc.problems))
    except (OSError, ValueError) as exc:
        _fail(str(exc))
    for r in new.itertuples(index=False):
        typer.echo(
            f"entered {r.line} line {float(r.yuan_per_person_year):,.0f} for province "
            f"{r.province_code} year {r.year} ({r.basis}) in {operated_lines.operated_file()}"
        )


@lines_app.command("import")
def import_file(
    file: Path = typer.Argument(
        ..., help="CSV with province_code, year, line, yuan_per_person_year, basis, source"
    ),
    by: str | None = typer.Option(None, "--by", help="who enters it (default: the user name)"),
) -> None:
    """Enter every line of a CSV file, all or none (rows named by their line in the file)."""
    import pandas as pd

    from riskml.data import operated_lines

    if not file.exists():
        _fail(f"no such file: {file}", 2)
    try:
        rows = pd.read_csv(file, dtype=str, keep_default_na=False)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        _fail(f"{file}: cannot read it as CSV ({type(exc).__name__}: {exc})", 2)
    if rows.empty:
        _fail(f"{file}: no rows", 2)
    try:
        new = operated_lines.add_rows(rows, _who(by), label=f"{file.name} row")
    except operated_lines.LinesError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"entered {len(new)} line(s) from {file} in {operated_lines.operated_file()}")


@lines_app.command("check")
def check(
    year: int | None = typer.Option(
        None, "--year", help="the year that must be covered (default: this year)"
    ),
) -> None:
    """Check the lines in force: complete pairs, dibao below monitoring, and this year covered.

    Exit 1 when a province has no line in force for the year (not even carried forward)
    or an entered pair has its dibao line at or above the monitoring line.
    """
    from riskml.data import operated_lines
    from riskml.data.regions import PROVINCES

    try:
        lines = operated_lines.effective_lines()
    except (OSError, ValueError) as exc:
        _fail(str(exc))
    target = year or date.today().year
    entered = {
        (r.province_code, int(r.year)) for r in operated_lines.in_force().itertuples(index=False)
    }
    errors, notes = [], []
    pairs = lines.pairs()
    shipped_high = []
    for (p, y), (mon, dib, _basis) in sorted(pairs.items()):
        if dib >= mon and (p, y) in entered:
            errors.append(
                f"province {p} year {y}: dibao line {dib:,.0f} ≥ monitoring line {mon:,.0f}"
            )
        elif dib >= mon:
            shipped_high.append(f"{p}/{y}")
    if shipped_high:
        notes.append(
            f"{len(shipped_high)} shipped pair(s) have the dibao line at or above the monitoring "
            f"line (the national 6,000 line in rich provinces, before 2022): {', '.join(shipped_high)}"
        )
    incomplete = {
        (p, int(y)) for p, y in zip(lines.table["province_code"], lines.table["year"], strict=True)
    } - set(pairs)
    for p, y in sorted(incomplete):
        errors.append(f"province {p} year {y}: only one of the two lines is entered")
    carried, missing = [], []
    for p in sorted(PROVINCES):
        try:
            got = lines.lookup(p, target)
        except LookupError:
            missing.append(p)
            continue
        if got.basis == "provisional":
            carried.append(p)
    if carried:
        notes.append(
            f"{target}: {len(carried)} province(s) use the {target - 1} lines carried forward as "
            f"provisional: {', '.join(carried)}"
        )
    if missing:
        errors.append(
            f"{target}: {len(missing)} province(s) have no line in force, not even carried "
            f"forward: {', '.join(missing)} (riskml lines add --province P --year {target} ...)"
        )
    typer.echo(
        f"lines in force: {len(pairs)} (province, year) pairs, years {lines.years[0]}–{lines.years[-1]}, "
        f"{len(entered)} entered by operators; carry-forward {lines.carry_forward_months} months"
        if pairs
        else "no lines in force"
    )
    for n in notes:
        typer.echo(f"note: {n}")
    for e in errors:
        typer.echo(f"error: {e}")
    if errors:
        raise typer.Exit(1)


app.add_typer(lines_app, name="lines")
