"""Asset files: CSV, JSON lines and Parquet in, CSV and Parquet out (by the file's suffix).

A CSV is text: number fields are typed as in ``riskml.data.io`` (a cell that is not a number
stays text, so the validator names that row), and a list field (``funding``,
``beneficiaries``, an event's ``items``) is JSON text in its cell. JSON lines (``.jsonl``)
carry one JSON object per line, lists as lists. Parquet is read as stored (a list field as
a list column or as JSON text). ``read_records`` gives records (dicts) and the file's own
problems (a missing column, row -1); extra columns of a table are left out, as the household
files' validator allows them. Every failure to read is a ``TableReadError`` naming the file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from riskml.assets.contract import FIELD_BY_NAME, FIELD_NAMES, LIST_FIELDS
from riskml.assets.validation import AssetProblem, frame_records
from riskml.data.io import CSV_NULL_VALUES, TableReadError, csv_numbers, existing, short_reason
from riskml.data.json_text import dumps

SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
COLUMN_ABSENT_RULE = "column is missing from the file"


def file_format(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIXES:
        raise TableReadError(f"{path}: unknown file type {suffix!r}; use .csv, .jsonl or .parquet")
    return SUFFIXES[suffix]


def _json_cell(v: Any) -> Any:
    """A list field's cell: JSON text parsed (text that is not JSON stays, the validator names it)."""
    if isinstance(v, str):
        try:
            return json.loads(v)
        except ValueError:
            return v
    return v


def read_frame(path: str | Path) -> pd.DataFrame:
    """A CSV or Parquet file as a frame (CSV cells as text, the null cells missing)."""
    p = existing(path)
    kind = file_format(p)
    try:
        if kind == "parquet":
            return pd.read_parquet(p)
        return pd.read_csv(
            p, dtype=str, keep_default_na=False, na_values=list(CSV_NULL_VALUES),
            encoding="utf-8-sig",
        )  # fmt: skip
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise TableReadError(f"{p}: cannot read the file ({short_reason(exc)})") from None


def read_json_lines(path: str | Path) -> list[Any]:
    """One JSON value per non-empty line; TableReadError naming the line that is not JSON."""
    p = existing(path)
    out = []
    try:
        with p.open(encoding="utf-8-sig") as fh:
            for n, line in enumerate(fh, start=1):
                if line.strip():
                    try:
                        out.append(json.loads(line))
                    except ValueError:
                        raise TableReadError(f"{p}: line {n} is not JSON") from None
    except UnicodeDecodeError:
        raise TableReadError(f"{p}: not a UTF-8 file") from None
    return out


def typed_frame(df: pd.DataFrame, numbers: tuple[str, ...], lists: tuple[str, ...]) -> pd.DataFrame:
    """A CSV's text cells typed: ``numbers`` as numbers, ``lists`` parsed from JSON text."""
    out = df.copy()
    for name in numbers:
        if name in out.columns and not pd.api.types.is_numeric_dtype(out[name].dtype):
            out[name] = csv_numbers(out[name].astype(object))
    for name in lists:
        if name in out.columns:
            out[name] = out[name].astype(object).map(_json_cell)
    return out


NUMBER_FIELDS = tuple(n for n in FIELD_NAMES if FIELD_BY_NAME[n].kind in ("int", "float"))


def read_records(path: str | Path) -> tuple[list[Any], list[AssetProblem]]:
    """An asset file's records and its own problems (a contract column missing from a table)."""
    if file_format(path) == "jsonl":
        return read_json_lines(path), []
    df = read_frame(path)
    absent = [n for n in FIELD_NAMES if n not in df.columns]
    if absent:
        return [], [AssetProblem(-1, None, n, None, COLUMN_ABSENT_RULE) for n in absent]
    return frame_records(typed_frame(df, NUMBER_FIELDS, LIST_FIELDS)), []


def write_table(df: pd.DataFrame, path: str | Path) -> Path:
    """A frame as CSV or Parquet (by the suffix); list and dict cells as JSON text."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise TableReadError(f"{p}: unknown output type {suffix!r}; use .csv or .parquet")
    out = df.copy()
    for name in out.columns:
        if out[name].dtype == object and out[name].map(lambda v: isinstance(v, (list, dict))).any():
            out[name] = out[name].map(lambda v: dumps(v) if isinstance(v, (list, dict)) else v)
    p.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".csv":
        out.to_csv(p, index=False)
    else:
        out.to_parquet(p, index=False)
    return p


__all__ = [
    "NUMBER_FIELDS", "SUFFIXES", "file_format", "read_frame", "read_json_lines", "read_records",
    "typed_frame", "write_table",
]  # fmt: skip
