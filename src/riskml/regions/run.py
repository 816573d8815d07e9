"""One call from decisions (and cases, outcomes) to the regional table, local or on Spark."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from riskml.regions.aggregate import prepare, village_partials
from riskml.regions.casework import case_sums
from riskml.regions.inputs import with_outcomes
from riskml.regions.reference import RegionReference
from riskml.regions.table import finish


def regional_table(
    decisions: pa.Table | pd.DataFrame,
    reference: RegionReference | None = None,
    *,
    states: Iterable[dict[str, Any]] | None = None,
    procedure: Any = None,
    outcomes: pd.DataFrame | None = None,
    confidence: float = 0.90,
    now: str | None = None,
) -> pd.DataFrame:
    """The table (``riskml.regions.table.COLUMNS``) on the local engine."""
    if outcomes is not None:
        decisions = with_outcomes(decisions, outcomes)
    villages = village_partials(prepare(decisions))
    return _finish(villages, reference, states, procedure, confidence, now)


def spark_regional_table(
    spark: Any,
    paths: Sequence[str | Path],
    reference: RegionReference | None = None,
    *,
    states: Iterable[dict[str, Any]] | None = None,
    procedure: Any = None,
    confidence: float = 0.90,
    now: str | None = None,
    partitions: int | None = None,
) -> pd.DataFrame:
    """The same table with the household step on Spark (``riskml.regions.spark_job``)."""
    from riskml.regions.spark_job import spark_village_partials

    villages = spark_village_partials(spark, paths, partitions)
    return _finish(villages, reference, states, procedure, confidence, now)


def _finish(
    villages: pd.DataFrame,
    reference: RegionReference | None,
    states: Iterable[dict[str, Any]] | None,
    procedure: Any,
    confidence: float,
    now: str | None,
) -> pd.DataFrame:
    reference = reference or RegionReference.load()
    cases = None
    if states is not None:
        if procedure is None:
            from riskml.cases.procedure import load

            procedure = load()
        cases = case_sums(states, sorted(set(villages["period"])), procedure, now)
    return finish(villages, reference, cases, confidence)
