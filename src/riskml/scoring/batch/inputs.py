"""Reading the input: file formats and columns, Arrow batches of ``chunk_rows`` rows, typed frames.

Parquet is read as stored; CSV as text, typed per chunk like ``pandas.read_csv``
(``typed_frame``). ``numeric_values`` takes the numeric fields of a chunk of
valid records as float64, the form in which previous-period records wait.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from riskml.data import schema
from riskml.scoring.batch.errors import BatchError

DEFAULT_CHUNK_ROWS = 50_000
NUMERIC_FIELDS: tuple[str, ...] = tuple(f.name for f in schema.FIELDS if f.kind != "str")


def input_format(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix in (".parquet", ".pq"):
        return "parquet"
    if suffix == ".csv":
        return "csv"
    raise BatchError(f"{path}: unknown file type {suffix!r}; use .parquet or .csv")


def _csv_columns(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8") as fh:
        header = next(csv.reader(fh), None)
    if not header:
        raise BatchError(f"{path}: empty CSV file (no header line)")
    return header


def input_columns(path: str | Path) -> list[str]:
    p = Path(path)
    if input_format(p) == "parquet":
        return list(pq.ParquetFile(p).schema_arrow.names)
    return _csv_columns(p)


def iter_batches(
    path: str | Path, columns: list[str] | None, chunk_rows: int
) -> Iterator[pa.RecordBatch]:
    """The input in batches of exactly ``chunk_rows`` rows (the last one shorter).

    CSV is read as text (every column a string, empty cells missing) and typed
    per chunk by ``typed_frame``, the same way whatever the chunk size.
    """
    p = Path(path)
    if input_format(p) == "parquet":
        source: Iterator[pa.RecordBatch] = pq.ParquetFile(p).iter_batches(
            batch_size=chunk_rows, columns=columns
        )
    else:
        names = _csv_columns(p)
        reader = pacsv.open_csv(
            p,
            read_options=pacsv.ReadOptions(block_size=1 << 22),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.string()),
                strings_can_be_null=True,
                include_columns=columns or [],
            ),
        )
        source = iter(reader)
    pending: list[pa.RecordBatch] = []
    size = 0
    for batch in source:
        if batch.num_rows == 0:
            continue
        if not pending and batch.num_rows == chunk_rows:
            yield batch
            continue
        pending.append(batch)
        size += batch.num_rows
        if size < chunk_rows:
            continue
        table = pa.Table.from_batches(pending)
        start = 0
        while size - start >= chunk_rows:
            yield _one_batch(table.slice(start, chunk_rows))
            start += chunk_rows
        rest = table.slice(start)
        pending, size = rest.to_batches(), rest.num_rows
    if size:
        yield _one_batch(pa.Table.from_batches(pending))


def _one_batch(table: pa.Table) -> pa.RecordBatch:
    return table.combine_chunks().to_batches()[0]


def _true_false(s: pd.Series) -> pd.Series:
    """Text booleans as read_csv reads them (true/false in any case), numbers as numbers."""
    low = s.str.lower()
    out = pd.Series(np.full(len(s), None, dtype=object), index=s.index)
    out[low == "true"] = True
    out[low == "false"] = False
    rest = s.notna() & low.ne("true") & low.ne("false")
    if rest.any():
        out[rest] = _numbers(s[rest]).to_numpy(dtype=object)
    return out


def _numbers(s: pd.Series) -> pd.Series:
    """Text to numbers; a cell that is not a number stays text (the validator names it)."""
    values = pd.to_numeric(s, errors="coerce")
    bad = s.notna() & values.isna()
    if not bad.any():
        return values.astype("float64")
    out = values.astype(object)
    out[bad] = s[bad]
    return out


def typed_frame(batch: pa.RecordBatch | pa.Table, from_csv: bool) -> pd.DataFrame:
    """A chunk as pandas: Parquet as stored; CSV text converted field by field like read_csv."""
    df = batch.to_pandas()
    if not from_csv:
        return df
    for f in schema.FIELDS:
        if f.name not in df.columns or f.kind == "str":
            continue
        s = df[f.name].astype(object).where(df[f.name].notna(), None)
        df[f.name] = _true_false(s.astype("string")) if f.kind == "bool" else _numbers(s)
    return df


def numeric_matrix(records: pd.DataFrame) -> np.ndarray:
    """The numeric fields of canonical records as float64 (booleans 0/1, NaN for missing)."""
    cols = [
        records[name].astype("float64").to_numpy(dtype=np.float64, na_value=np.nan)
        if isinstance(records[name].dtype, pd.BooleanDtype)
        else pd.to_numeric(records[name], errors="coerce").to_numpy(
            dtype=np.float64, na_value=np.nan
        )
        for name in NUMERIC_FIELDS
    ]
    return np.column_stack(cols) if cols else np.zeros((len(records), 0))


def numeric_values(batch: pa.RecordBatch | pa.Table, from_csv: bool) -> np.ndarray:
    """``numeric_matrix`` of a chunk of valid records, straight from Arrow for Parquet input."""
    if from_csv:
        frame = typed_frame(batch, True)[list(schema.FIELD_NAMES)]
        return numeric_matrix(schema.coerce_frame(frame))
    cols = [
        np.asarray(pc.cast(batch.column(name), pa.float64()).to_numpy(zero_copy_only=False))
        for name in NUMERIC_FIELDS
    ]
    return np.column_stack(cols) if cols else np.zeros((batch.num_rows, 0))
