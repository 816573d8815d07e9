"""The regional aggregation on Spark: the same ``prepare`` and ``village_partials``, per partition.

Spark reads the batch outputs, repartitions by village (every row of a village in one
partition) and runs ``village_partials(prepare(rows))`` once per partition
(``mapInPandas``); the villages' partials (a few per village and period) come back to the
driver, where ``finish`` rolls them up as the local engine does. Results equal the local
engine's: the integers exactly, the sums up to the order of floating-point additions.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from riskml.regions.aggregate import DISTS, INTEGER_SUMS, SUMS, prepare, village_partials
from riskml.regions.inputs import COLUMNS


def partials_schema() -> str:
    ints = ", ".join(f"{c} long" for c in INTEGER_SUMS)
    floats = ", ".join(f"{c} double" for c in SUMS if c not in INTEGER_SUMS)
    dists = ", ".join(f"{c} array<double>" for c in DISTS)
    return f"period string, code long, {ints}, {floats}, {dists}"


def _partition(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    frames = [b for b in batches if len(b)]
    if not frames:
        return
    rows = pd.concat(frames, ignore_index=True)
    if "risk_types" in rows:
        rows["risk_types"] = [list(v) if v is not None else [] for v in rows["risk_types"]]
    out = village_partials(prepare(rows))
    for col in DISTS:
        out[col] = [None if d is None else [float(x) for x in d] for d in out[col]]
    yield out[["period", "code", *SUMS, *DISTS]]


def spark_village_partials(
    spark: Any, paths: Sequence[str | Path], partitions: int | None = None
) -> pd.DataFrame:
    """The villages' partials of the batch outputs at ``paths``, computed on ``spark``."""
    df = spark.read.parquet(*[str(p) for p in paths])
    df = df.select(*[c for c in COLUMNS if c in df.columns and c != "household_id"])
    n = partitions or max(1, spark.sparkContext.defaultParallelism)
    parts = df.repartition(n, "village_code").mapInPandas(_partition, partials_schema())
    frame = parts.toPandas()
    for col in DISTS:
        frame[col] = [None if d is None else list(d) for d in frame[col]]
    return frame
