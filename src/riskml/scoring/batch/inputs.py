"""Reading the input: file formats and columns, Arrow batches of ``chunk_rows`` rows, typed frames.

Parquet is read as stored; CSV as text, typed per chunk by ``riskml.data.io``
(``typed_frame``), exactly as ``read_table`` types a whole file (the same
reader options, the same conversion). ``numeric_values`` takes the numeric
fields of a chunk of valid records as float64, the form in which
previous-period records wait. Every failure to read the input is a
``BatchError`` with a one-line message.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from riskml.data import io, schema
from riskml.scoring.batch.errors import BatchError

DEFAULT_CHUNK_ROWS = 50_000
NUMERIC_FIELDS: tuple[str, ...] = tuple(f.name for f in schema.FIELDS if f.kind != "str")


def input_format(path: str | Path) -> str:
    try:
        return io.table_format(path)
    except io.TableReadError as exc:
        raise BatchError(str(exc)) from None


def _csv_columns(path: Path) -> list[str]:
    try:
        return io.csv_header(path)
    except io.TableReadError as exc:
        raise BatchError(str(exc)) from None


def input_columns(path: str | Path) -> list[str]:
    p = Path(path)
    if input_format(p) == "parquet":
        try:
            return list(pq.ParquetFile(p).schema_arrow.names)
        except (pa.ArrowException, OSError) as exc:
            raise BatchError(f"{p}: not a readable Parquet file ({io.short_reason(exc)})") from None
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

        def open_source() -> Iterator[pa.RecordBatch]:
            return pq.ParquetFile(p).iter_batches(batch_size=chunk_rows, columns=columns)

        source = _guarded(p, open_source, "not a readable Parquet file")
    else:
        names = _csv_columns(p)

        def open_source() -> Iterator[pa.RecordBatch]:
            return pacsv.open_csv(
                p,
                read_options=io.csv_read_options(),
                convert_options=io.csv_convert_options(names, columns),
            )

        source = _guarded(p, open_source, "cannot read the CSV file")
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


def _guarded(
    path: Path, open_source: Callable[[], Iterator[pa.RecordBatch]], what: str
) -> Iterator[pa.RecordBatch]:
    """A reader's batches; failing to open or read it (anywhere in the file) is a BatchError."""
    try:
        reader = open_source()
        while True:
            try:
                batch = next(reader)
            except StopIteration:
                return
            yield batch
    except (pa.ArrowException, OSError) as exc:
        raise BatchError(f"{path}: {what} ({io.short_reason(exc)})") from None


def typed_frame(batch: pa.RecordBatch | pa.Table, from_csv: bool) -> pd.DataFrame:
    """A chunk as pandas: Parquet as stored; CSV text typed as ``io.read_table`` types it."""
    return io.csv_frame(batch) if from_csv else batch.to_pandas()


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
