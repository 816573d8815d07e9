"""Where the decisions come from: batch-scoring output files, or the ledger; outcomes joined.

A batch output (``riskml score FILE --out DIR``: Parquet, ``OUTPUT_SCHEMA``) has one row
per household and period. From the ledger the latest completed decision of each household
and period counts (``DECISION_ORDER``). Outcomes (``household_id``, ``decision_period``,
``at_risk``: ``OutcomeStore.frame()`` or ``riskml.monitoring.outcomes.load_outcomes``)
join on household and period; households without one keep ``at_risk`` empty.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds

from riskml.regions.aggregate import REQUIRED

COLUMNS = ("household_id", *REQUIRED, "risk_types")


def read_decisions(
    paths: Sequence[str | Path], *, with_ids: bool = False, with_risk_types: bool = True
) -> pa.Table:
    """Batch outputs (Parquet files or directories of them), one table of the columns the
    aggregation reads (``household_id`` only ``with_ids``: to join outcomes)."""
    dataset = ds.dataset([str(p) for p in paths], format="parquet")
    names = set(dataset.schema.names)
    skip = {"household_id"} if not with_ids else set()
    if not with_risk_types:
        skip.add("risk_types")
    cols = [c for c in COLUMNS if c in names and c not in skip]
    return dataset.to_table(columns=cols)


def ledger_decisions(ledger: object) -> pd.DataFrame:
    """The latest completed decision of each household and period in the ledger."""
    from sqlalchemy import select

    from riskml.store.tables import DECISION_ORDER, decisions

    d = decisions.c
    cols = ["household_id", "period", "county_code", "village_code", "score", "flagged",
            "flagged_by", "created_at", "decision_id"]  # fmt: skip
    stmt = select(*[d[c] for c in cols]).where(d.status == "completed")
    with ledger.engine.connect() as conn:  # type: ignore[attr-defined]
        frame = pd.DataFrame(conn.execute(stmt).all(), columns=cols)
    frame = frame.sort_values(list(DECISION_ORDER)).drop_duplicates(
        ["household_id", "period"], keep="last"
    )
    return frame.drop(columns=["created_at", "decision_id"]).reset_index(drop=True)


def with_outcomes(decisions: pa.Table | pd.DataFrame, outcomes: pd.DataFrame) -> pa.Table:
    """``decisions`` with ``at_risk`` (0/1, null without an outcome) by household and period."""
    table = decisions if isinstance(decisions, pa.Table) else pa.Table.from_pandas(decisions, preserve_index=False)  # fmt: skip
    o = outcomes[["household_id", "decision_period", "at_risk"]].rename(columns={"decision_period": "period"})  # fmt: skip
    o = o.drop_duplicates(["household_id", "period"], keep="last")
    right = pa.table(
        {
            "household_id": pa.array(o["household_id"].astype(str).tolist(), pa.string()),
            "period": pa.array(o["period"].astype(str).tolist(), pa.string()),
            "at_risk": pa.array(o["at_risk"].to_numpy(dtype=float)),
        }
    )
    table = table.drop_columns([c for c in ("at_risk",) if c in table.column_names])
    keys = table.select(["household_id", "period"]).cast(pa.schema([("household_id", pa.string()), ("period", pa.string())]))  # fmt: skip
    keys = keys.append_column("row", pa.array(np.arange(table.num_rows), pa.int64()))
    joined = keys.join(right, keys=["household_id", "period"], join_type="left outer").sort_by("row")  # fmt: skip
    return table.append_column("at_risk", joined.column("at_risk"))
