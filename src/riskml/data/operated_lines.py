"""The operated reference lines: what operators add over the shipped table, kept as history.

A CSV file in the state folder (``$RISKML_OPERATED_LINES_FILE`` or
``<state>/reference-lines.csv``) with the shipped table's columns plus
``entered_at`` (UTC) and ``entered_by``. Rows are only ever appended: a corrected
line is a new row, and for each (province, year, line) the latest entered row is
the one in force, over the shipped row. ``riskml lines`` is its command line.
"""

from __future__ import annotations

import fcntl
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from riskml import config
from riskml.data.reference import BASES, COLUMNS, LINE_KINDS, ReferenceLines
from riskml.data.regions import PROVINCES

OPERATED_COLUMNS = (*COLUMNS, "entered_at", "entered_by")
REQUIRED_COLUMNS = ("province_code", "year", "line", "yuan_per_person_year", "basis", "source")
YEARS = (2000, 2100)
MAX_YUAN = 1_000_000.0  # per person per year: far above any line, far below a typo's reach


class LinesError(ValueError):
    """Rows an operator entered that cannot go into the table; names every row and field."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        shown = "\n".join(f"  - {p}" for p in problems[:50])
        more = f"\n  ... and {len(problems) - 50} more" if len(problems) > 50 else ""
        super().__init__(f"{len(problems)} problem(s) in the lines entered:\n{shown}{more}")


def operated_file() -> Path:
    return Path(
        os.environ.get("RISKML_OPERATED_LINES_FILE") or config.STATE_DIR / "reference-lines.csv"
    )


def history(path: Path | None = None) -> pd.DataFrame:
    """Every row ever entered, oldest first (empty when nothing was entered)."""
    p = path or operated_file()
    if not p.exists():
        return pd.DataFrame({c: pd.Series(dtype=object) for c in OPERATED_COLUMNS})
    frame = pd.read_csv(p, dtype=str, keep_default_na=False)
    missing = [c for c in OPERATED_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"operated lines file {p} lacks column(s): {', '.join(missing)}")
    return frame[list(OPERATED_COLUMNS)]


def in_force(path: Path | None = None) -> pd.DataFrame:
    """The latest entered row of each (province, year, line)."""
    h = history(path)
    if h.empty:
        return h
    return h.drop_duplicates(["province_code", "year", "line"], keep="last").reset_index(drop=True)


def effective_lines(
    path: Path | None = None, shipped: ReferenceLines | None = None
) -> ReferenceLines:
    """The shipped table with the operated rows in force laid over it."""
    shipped = shipped or ReferenceLines.load()
    p = path or operated_file()
    ops = in_force(p)
    if ops.empty:
        return shipped
    ops = ops.assign(
        year=ops["year"].astype(int), yuan_per_person_year=ops["yuan_per_person_year"].astype(float)
    )
    over = set(zip(ops["province_code"], ops["year"], ops["line"], strict=True))
    base = shipped.table
    keep = [
        (p_, y, ln) not in over
        for p_, y, ln in zip(base["province_code"], base["year"], base["line"], strict=True)
    ]
    table = pd.concat([base[keep], ops[list(COLUMNS)]], ignore_index=True)
    return ReferenceLines(table, source=f"{shipped.source} + {p}")


# --------------------------------------------------------------------------- validation
def _text(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return str(v).strip()


def entry_problems(rows: pd.DataFrame, current: ReferenceLines, label: str = "row") -> list[str]:
    """Every problem of rows to be entered, each naming its row (1-based) and field."""
    problems: list[str] = []
    missing = [c for c in REQUIRED_COLUMNS if c not in rows.columns]
    if missing:
        return [f"column(s) missing: {', '.join(missing)} (need {', '.join(REQUIRED_COLUMNS)})"]
    seen: dict[tuple[str, int, str], int] = {}
    values: dict[tuple[str, int], dict[str, tuple[float, int]]] = {}
    for i, rec in enumerate(rows.to_dict("records"), start=1):
        where = f"{label} {i}"
        code = _text(rec["province_code"])
        if not (len(code) == 2 and code.isascii() and code.isdigit()):
            problems.append(f"{where}, field 'province_code': must be two digits (got {code!r})")
            code = ""
        elif code not in PROVINCES:
            problems.append(
                f"{where}, field 'province_code': unknown province {code!r} (GB/T 2260)"
            )
            code = ""
        year_text = _text(rec["year"])
        year = int(year_text) if year_text.isascii() and year_text.isdigit() else None
        if year is None or not YEARS[0] <= year <= YEARS[1]:
            problems.append(
                f"{where}, field 'year': must be a year from {YEARS[0]} to {YEARS[1]} (got {year_text!r})"
            )
            year = None
        line = _text(rec["line"])
        if line not in LINE_KINDS:
            problems.append(
                f"{where}, field 'line': must be one of {', '.join(LINE_KINDS)} (got {line!r})"
            )
            line = ""
        raw = _text(rec["yuan_per_person_year"])
        try:
            value = float(raw) if raw.isascii() else math.nan
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and 0 < value <= MAX_YUAN):
            problems.append(
                f"{where}, field 'yuan_per_person_year': must be a positive number of yuan "
                f"up to {MAX_YUAN:,.0f} (got {raw!r})"
            )
            value = math.nan
        basis = _text(rec["basis"])
        if basis not in BASES:
            problems.append(
                f"{where}, field 'basis': must be one of {', '.join(BASES)} (got {basis!r})"
            )
        if not _text(rec["source"]):
            problems.append(
                f"{where}, field 'source': say where the line comes from (a document, a notice)"
            )
        if code and year is not None and line:
            key = (code, year, line)
            if key in seen:
                problems.append(
                    f"{where}: the {line} line for province {code} year {year} is also in {label} {seen[key]}"
                )
            seen[key] = i
            if not math.isnan(value):
                values.setdefault((code, year), {})[line] = (value, i)
    pairs = current.pairs()
    for (code, year), got in values.items():
        known = pairs.get((code, year))
        mon = got.get("monitoring", (known[0], 0) if known else None)
        dib = got.get("dibao", (known[1], 0) if known else None)
        if mon is not None and dib is not None and dib[0] >= mon[0]:
            at = max(mon[1], dib[1])
            problems.append(
                f"{label} {at}: the dibao line ({dib[0]:,.0f}) must be below the monitoring line "
                f"({mon[0]:,.0f}) for province {code} year {year}"
            )
    return problems


def _normalise(rows: pd.DataFrame, who: str, now: str) -> pd.DataFrame:
    out = pd.DataFrame(
        {
            "province_code": [_text(v) for v in rows["province_code"]],
            "province": [PROVINCES[_text(v)][1] for v in rows["province_code"]],
            "year": [str(int(_text(v))) for v in rows["year"]],
            "line": [_text(v) for v in rows["line"]],
            "yuan_per_person_year": [f"{float(_text(v)):g}" for v in rows["yuan_per_person_year"]],
            "basis": [_text(v) for v in rows["basis"]],
            "source": [_text(v) for v in rows["source"]],
            "entered_at": now,
            "entered_by": who,
        }
    )
    return out[list(OPERATED_COLUMNS)]


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def add_rows(
    rows: pd.DataFrame, who: str, path: Path | None = None, label: str = "row"
) -> pd.DataFrame:
    """Validate rows and append them to the operated table, all or none; the rows as entered."""
    p = path or operated_file()
    who = who.strip() or "unknown"
    with _locked(p):
        current = effective_lines(p)
        problems = entry_problems(rows, current, label)
        if problems:
            raise LinesError(problems)
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        new = _normalise(rows, who, now)
        table = pd.concat([history(p), new], ignore_index=True)
        tmp = p.with_name(p.name + ".tmp")
        table.to_csv(tmp, index=False)
        os.replace(tmp, p)  # whole or not at all
    return new
