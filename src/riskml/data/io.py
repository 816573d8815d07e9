"""Reading and writing tables (Parquet or CSV, chosen by the file's suffix).

Parquet is read as stored: its columns have types, and the validator judges
them. CSV is text: it is read by Arrow's CSV reader with every column as text
(cells in ``CSV_NULL_VALUES`` missing), and the record's fields are then typed
by ``type_csv_fields``: a number field's text becomes a number, a flag's
``true``/``false`` (any case) or ``0``/``1`` a flag, and a cell that is
neither stays text, so the validator rejects that row only. ``read_table``
and the batch engine (``riskml.scoring.batch.inputs``, which reads in chunks)
use these same options and the same typing.

Every failure to read is a ``TableReadError`` with a one-line message naming
the file (``NoSuchTableError``, also a FileNotFoundError, when it is missing).
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from riskml.data.schema import FIELD_BY_NAME, FIELDS

# Arrow's default missing-value cells (pandas' too, but for 'None' and '<NA>')
CSV_NULL_VALUES = (
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
    "N/A", "NA", "NULL", "NaN", "n/a", "nan", "null",
)  # fmt: skip
CSV_BLOCK_BYTES = 1 << 22
_SUFFIXES = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}


class TableReadError(ValueError):
    """A table that cannot be read; the message is one line naming the file."""


class NoSuchTableError(TableReadError, FileNotFoundError):
    """The table's file does not exist."""


def table_format(path: str | Path) -> str:
    """``parquet`` or ``csv``, by the suffix; TableReadError for any other."""
    suffix = Path(path).suffix.lower()
    if suffix not in _SUFFIXES:
        raise TableReadError(f"{path}: unknown file type {suffix!r}; use .parquet or .csv")
    return _SUFFIXES[suffix]


def existing(path: str | Path) -> Path:
    p = Path(path)
    if not p.exists():
        raise NoSuchTableError(f"no such file: {p}")
    return p


def short_reason(exc: BaseException) -> str:
    """A reader's error in one line, without the row text a CSV parse error quotes."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    m = re.match(r"(CSV parse error: Expected \d+ columns, got \d+)", text)
    if m:
        return m.group(1)
    return text if len(text) <= 200 else text[:200] + "…"


# --------------------------------------------------------------------------- CSV
def csv_header(path: str | Path) -> list[str]:
    """The column names of a CSV file (its first line)."""
    p = existing(path)
    try:
        with p.open(newline="", encoding="utf-8-sig") as fh:
            header = next(csv.reader(fh), None)
    except UnicodeDecodeError:
        raise TableReadError(f"{p}: not a UTF-8 CSV file") from None
    except (OSError, csv.Error) as exc:
        raise TableReadError(f"{p}: cannot read the CSV file ({short_reason(exc)})") from None
    if not header:
        raise TableReadError(f"{p}: empty CSV file (no header line)")
    return header


def csv_read_options() -> pacsv.ReadOptions:
    return pacsv.ReadOptions(block_size=CSV_BLOCK_BYTES)


def csv_convert_options(
    names: list[str], include_columns: list[str] | None = None
) -> pacsv.ConvertOptions:
    """Every column as text, the null cells missing (``include_columns``: only these)."""
    return pacsv.ConvertOptions(
        column_types=dict.fromkeys(names, pa.string()),
        null_values=list(CSV_NULL_VALUES),
        strings_can_be_null=True,
        include_columns=include_columns or [],
    )


def csv_numbers(s: pd.Series) -> pd.Series:
    """Text to numbers (float64); a cell that is not a number stays text (the validator names it)."""
    text = s.astype(object).where(s.notna(), None)
    values = pd.to_numeric(text, errors="coerce")
    bad = text.notna() & values.isna()
    if not bad.any():
        return values.astype("float64")
    out = values.astype("float64").astype(object)
    out[bad] = text[bad]
    return out


def csv_flags(s: pd.Series) -> pd.Series:
    """Text flags: true/false in any case and the numbers 0/1; other numbers as numbers, else text."""
    text = s.astype(object).where(s.notna(), None)
    low = text.str.lower()
    out = pd.Series(np.full(len(text), None, dtype=object), index=text.index)
    out[low == "true"] = True
    out[low == "false"] = False
    rest = text.notna() & low.ne("true") & low.ne("false")
    if rest.any():
        numbers = csv_numbers(text[rest])
        out[rest] = [
            bool(v) if isinstance(v, float) and v in (0.0, 1.0) else v for v in numbers.tolist()
        ]
    return out


def type_csv_fields(df: pd.DataFrame) -> pd.DataFrame:
    """A frame of CSV text with the record's number and flag fields typed (in place, and returned)."""
    for f in FIELDS:
        if f.name not in df.columns or f.kind == "str":
            continue
        df[f.name] = csv_flags(df[f.name]) if f.kind == "bool" else csv_numbers(df[f.name])
    return df


def csv_frame(data: pa.Table | pa.RecordBatch, infer_others: bool = False) -> pd.DataFrame:
    """CSV text as Arrow read it (``csv_convert_options``), as a frame with the record's fields typed.

    The same result as ``type_csv_fields`` on the text, faster: a column whose
    every cell Arrow parses as a number (no NaN) or as true/false is converted
    in Arrow; any other goes through ``csv_numbers`` / ``csv_flags``.
    ``infer_others``: columns outside the record are typed too (flags, numbers
    or text, as pandas would), else they stay text.
    """
    names = list(data.schema.names)
    columns = list(data.columns)
    slow: list[str] = []
    for k, name in enumerate(names):
        f = FIELD_BY_NAME.get(name)
        if f is not None and f.kind == "str":
            continue
        if f is None and not infer_others:
            continue
        kind = f.kind if f is not None else None
        fast = _arrow_flags(columns[k]) if kind in ("bool", None) else None
        if fast is None and kind != "bool":
            fast = _arrow_numbers(columns[k])
        if fast is None:
            slow.append(name)
        else:
            columns[k] = fast
    df = pa.Table.from_arrays(columns, names=names).to_pandas()
    for name in slow:
        f = FIELD_BY_NAME.get(name)
        if f is None:
            df[name] = _inferred(df[name])
        else:
            df[name] = csv_flags(df[name]) if f.kind == "bool" else csv_numbers(df[name])
    return df


def _arrow_numbers(col: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray | None:
    """The column as float64 when Arrow parses every cell and none is NaN (else None)."""
    try:
        out = pc.cast(col, pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    return None if pc.any(pc.is_nan(out)).as_py() else out


def _arrow_flags(col: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray | None:
    """The column as booleans when every cell is true or false in any case (else None)."""
    if col.null_count == len(col):
        return None
    low = pc.utf8_lower(col)
    is_true = pc.equal(low, "true")
    if not pc.all(pc.or_(is_true, pc.equal(low, "false"))).as_py():
        return None
    return is_true


def _inferred(s: pd.Series) -> pd.Series:
    """A column outside the record (a label, scores) typed as pandas would: flags, numbers or text."""
    text = s.astype(object).where(s.notna(), None)
    present = text.notna()
    if not present.any():
        return pd.Series(np.full(len(s), np.nan), index=s.index)
    low = text[present].str.lower()
    if low.isin(["true", "false"]).all():
        out = pd.Series(np.full(len(s), np.nan, dtype=object), index=s.index)
        out[present] = (low == "true").to_numpy()
        return out.astype(bool) if present.all() else out
    values = pd.to_numeric(text, errors="coerce")
    if values[present].notna().all():
        return values
    return s


def read_csv_table(path: str | Path) -> pd.DataFrame:
    """A whole CSV file: the record's fields typed as ``csv_frame`` types them, other columns inferred."""
    p = existing(path)
    names = csv_header(p)
    try:
        table = pacsv.read_csv(
            p, read_options=csv_read_options(), convert_options=csv_convert_options(names)
        )
    except (pa.ArrowException, OSError) as exc:
        raise TableReadError(f"{p}: cannot read the CSV file ({short_reason(exc)})") from None
    return csv_frame(table, infer_others=True)


# --------------------------------------------------------------------------- tables
def read_table(path: str | Path) -> pd.DataFrame:
    """A Parquet or CSV file as a frame (see the module docstring); TableReadError if it cannot."""
    p = existing(path)
    if table_format(p) == "csv":
        return read_csv_table(p)
    try:
        return pd.read_parquet(p)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise TableReadError(f"{p}: not a readable Parquet file ({short_reason(exc)})") from None


def write_table(df: pd.DataFrame, path: str | Path) -> Path:
    p = Path(path)
    kind = table_format(p)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    if kind == "parquet":
        df.to_parquet(tmp, index=False)
    else:
        df.to_csv(tmp, index=False)
    tmp.replace(p)  # never leave a half-written file under the real name
    return p
