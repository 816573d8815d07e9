"""What a run writes: the decisions (``OUTPUT_SCHEMA``), ledger entries, the rejects, the files.

Output rows are flat: the nested parts of a decision (``rules``, ``reasons``,
``measures``) are JSON text, ``risk_types`` a list. The rejects file holds the
input's columns plus ``row`` (0-based position in the whole input) and
``reasons``. Files are written under a temporary name beside their target.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from riskml.data.json_text import encode
from riskml.scoring.batch.inputs import input_format

OUTPUT_SCHEMA = pa.schema(
    [
        ("household_id", pa.string()),
        ("period", pa.string()),
        ("county_code", pa.string()),
        ("village_code", pa.string()),
        ("score", pa.float64()),
        ("risk_level", pa.string()),
        ("flagged", pa.bool_()),
        ("flagged_by", pa.string()),  # "rules", "model", "rules+model"; null when not flagged
        ("rules", pa.string()),  # JSON list of the fired rules
        ("risk_types", pa.list_(pa.string())),
        ("reasons", pa.string()),  # JSON list
        ("measures", pa.string()),  # JSON list
        ("monitoring_type", pa.string()),
        ("model_name", pa.string()),
        ("model_version", pa.string()),
        ("rules_version", pa.string()),
        (
            "line_year",
            pa.int32(),
        ),  # the year of the reference lines used (earlier when carried forward)
        ("line_basis", pa.string()),  # published, announced, estimate or provisional
        ("decision_id", pa.string()),
    ]
)
OUTPUT_COLUMNS: tuple[str, ...] = tuple(OUTPUT_SCHEMA.names)


def _json_list(value: list[Any]) -> str:
    return encode(value) if value else "[]"


def decisions_table(results: list[dict[str, Any]], records: pd.DataFrame) -> pa.Table:
    """decide()'s result dicts as flat output rows (``OUTPUT_SCHEMA``), in the same order."""
    cols: dict[str, list[Any]] = {name: [] for name in OUTPUT_COLUMNS}
    for r in results:
        cols["household_id"].append(r["household_id"])
        cols["period"].append(r["period"])
        cols["score"].append(r["score"])
        cols["risk_level"].append(r["risk_level"])
        cols["flagged"].append(r["flagged"])
        cols["flagged_by"].append("+".join(r["flagged_by"]) or None)
        cols["rules"].append(_json_list(r["rules"]))
        cols["risk_types"].append(r["risk_types"])
        cols["reasons"].append(_json_list(r["reasons"]))
        cols["measures"].append(_json_list(r["measures"]))
        cols["monitoring_type"].append(r["monitoring_type"])
        cols["model_name"].append(r["model_name"])
        cols["model_version"].append(r["model_version"])
        cols["rules_version"].append(r["rules_version"])
        cols["line_year"].append(r["line_year"])
        cols["line_basis"].append(r["line_basis"])
        cols["decision_id"].append(r["decision_id"])
    cols["county_code"] = records["county_code"].astype(str).tolist()
    cols["village_code"] = records["village_code"].astype(str).tolist()
    return pa.Table.from_pydict(cols, schema=OUTPUT_SCHEMA)


def ledger_entries(results: list[dict[str, Any]], records: pd.DataFrame) -> list[dict[str, Any]]:
    """Ledger entries for decisions, built as the service builds them (``serving.py``)."""
    from riskml.scoring.decide import ledger_entry, records_as_dicts

    recs = records_as_dicts(records.reset_index(drop=True), np.arange(len(records)))
    return [ledger_entry(rec, res) for rec, res in zip(recs, results, strict=True)]


def rejects_schema(src: Path, columns: list[str]) -> pa.Schema:
    if input_format(src) == "parquet":
        base = pq.ParquetFile(src).schema_arrow
        fields = [base.field(name).remove_metadata() for name in columns]
    else:
        fields = [pa.field(name, pa.string()) for name in columns]
    fields = [f for f in fields if f.name not in ("row", "reasons")]
    return pa.schema([pa.field("row", pa.int64()), *fields, pa.field("reasons", pa.string())])


def writer_for(path: Path, schema_: pa.Schema, csv_format: bool) -> Any:
    if csv_format:
        return pacsv.CSVWriter(path, schema_)
    return pq.ParquetWriter(path, schema_)


def tmp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")


def default_rejects_path(out: str | Path) -> Path:
    p = Path(out)
    return p.with_name(p.stem + ".rejects.parquet")
