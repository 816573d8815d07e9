"""Reading and writing tables (Parquet or CSV, chosen by the file's suffix)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from riskml.data.schema import FIELDS

# Identifier columns must stay text (leading zeros, long digit strings).
_TEXT_COLUMNS = {f.name: str for f in FIELDS if f.kind == "str"}


def read_table(path: str | Path) -> pd.DataFrame:
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"no such file: {p}")
    if p.suffix.lower() in (".parquet", ".pq"):
        return pd.read_parquet(p)
    if p.suffix.lower() == ".csv":
        return pd.read_csv(p, dtype=_TEXT_COLUMNS, keep_default_na=True)
    raise ValueError(f"{p}: unknown file type {p.suffix!r}; use .parquet or .csv")


def write_table(df: pd.DataFrame, path: str | Path) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    if p.suffix.lower() in (".parquet", ".pq"):
        df.to_parquet(tmp, index=False)
    elif p.suffix.lower() == ".csv":
        df.to_csv(tmp, index=False)
    else:
        raise ValueError(f"{p}: unknown file type {p.suffix!r}; use .parquet or .csv")
    tmp.replace(p)  # never leave a half-written file under the real name
    return p
