"""Policy-rule commands: validate a rules file, show the rules in force for a province and date."""

from __future__ import annotations

from pathlib import Path

import typer

from riskml.cli.app import app, fail

rules_app = typer.Typer(
    help="Policy warning rules (riskml/policy/rules/default.yaml): check a file, explain what is in force.",
    no_args_is_help=True,
)


@rules_app.command("check")
def check(
    file: Path = typer.Argument(
        None, help="rules file to validate (default: riskml/policy/rules/default.yaml)"
    ),
) -> None:
    """Validate a rules file; exit 0 when it can be used, 1 with the error (rule and key) otherwise.

    A file that does not exist is exit 2.
    """
    from riskml import config
    from riskml.policy.rules import RuleSet, RulesFileError

    path = file if file is not None else config.POLICY_RULES
    if not Path(path).is_file():
        fail(f"no such file: {path}")
    try:
        rs = RuleSet.load(path)
    except RulesFileError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    n_ov = sum(len(r.overrides) for r in rs.rules)
    typer.echo(
        f"{path}: OK, version {rs.version}, {len(rs.rules)} rules "
        f"({sum(r.level == 'red' for r in rs.rules)} red), {n_ov} provincial override(s)"
    )
    for r in rs.rules:
        typer.echo(f"  {r.id:<20} {r.level:<6} {r.risk_type:<20} {r.describe()}")


@rules_app.command("explain")
def explain(
    province: str = typer.Option(..., "--province", "-p", help="two-digit province code, e.g. 53"),
    date: str = typer.Option(..., "--date", "-d", help="month (YYYY-MM) or day (YYYY-MM-DD)"),
    file: Path | None = typer.Option(
        None, "--file", "-f", help="rules file (default: the project's)"
    ),
    lines_file: Path | None = typer.Option(
        None, "--lines", help="reference lines table to resolve line-based thresholds"
    ),
) -> None:
    """Print the rules in force for a province on a date, with its overrides applied."""
    from rich.console import Console
    from rich.table import Table

    from riskml.data.periods import parse_date_month
    from riskml.data.reference import MissingReferenceError, ReferenceLines
    from riskml.data.regions import PROVINCES
    from riskml.policy.risk_types import RISK_TYPES
    from riskml.policy.rules import RuleSet, RulesFileError, format_value

    code = province.strip()[:2]
    if code not in PROVINCES:
        typer.echo(f"error: unknown province code {province!r}; use two digits, e.g. 53", err=True)
        raise typer.Exit(2)
    try:
        month = parse_date_month(date)
    except ValueError as exc:
        typer.echo(f"error: --date {exc}", err=True)
        raise typer.Exit(2) from None
    if file is not None and not file.is_file():
        fail(f"no such file: {file}")
    try:
        rs = RuleSet.load(file)
    except RulesFileError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None

    year = month // 12
    line_values: dict[str, float] = {}
    try:
        lines = ReferenceLines.load(lines_file) if lines_file else None
        if lines is None:
            from riskml.data.reference import default_lines

            lines = default_lines()
        got = lines.lookup(code, year)
        line_values = {"monitoring_line": got.monitoring, "dibao_line": got.dibao}
    except (FileNotFoundError, MissingReferenceError, ValueError):
        line_values = {}

    active = rs.active(code, date)
    zh, en = PROVINCES[code]
    table = Table(
        title=f"Rules in force: {code} {zh} {en}, {year:04d}-{month % 12 + 1:02d} "
        f"(rules {rs.version}, {len(active)} of {len(rs.rules)})",
        show_lines=True,
    )
    for col in ("id", "level", "risk type", "condition", "threshold", "effective", "override"):
        table.add_column(col, overflow="fold")
    for r in active:
        c = r.condition
        if c.is_flag:
            thr = "—"
        elif c.threshold_ref is None:
            thr = c.threshold_text()
        elif c.threshold_ref in line_values:
            resolved = line_values[c.threshold_ref] * c.factor
            thr = f"{c.threshold_text()} = {format_value(resolved, c.kind, 'en')}"
        else:
            thr = c.threshold_text()
        rt = RISK_TYPES[r.risk_type]
        rt_text = f"{rt.zh} {rt.en}"
        if r.risk_type_by_driver:
            rt_text += (
                " (or by the largest fall: "
                + ", ".join(f"{f}→{t}" for f, t in r.risk_type_by_driver)
                + ")"
            )
        level = "[red]red[/red]" if r.level == "red" else "[yellow]yellow[/yellow]"
        table.add_row(
            r.id,
            level,
            rt_text,
            r.describe(),
            thr,
            r.effective_text(),
            "; ".join(r.applied) or "national default",
        )
    console = Console()
    console.print(table)
    if not line_values:
        console.print(
            f"(no reference lines found for province {code} year {year}: "
            "line-based thresholds are shown as formulas)"
        )


app.add_typer(rules_app, name="rules")
