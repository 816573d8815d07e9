"""Code test: the Spark engine (local mode) gives the local engine's decisions, row for row."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from riskml.policy.rules import RuleSet
from riskml.scoring import batch

pytestmark = pytest.mark.slow

KEY = ["household_id", "period"]
COMPARED = [c for c in batch.OUTPUT_COLUMNS if c != "decision_id"]  # decision ids are random


def _plain(values: pd.Series) -> list:
    return [v.tolist() if isinstance(v, np.ndarray) else v for v in values.tolist()]


@pytest.fixture(scope="module")
def spark_input(sample_panel, tmp_path_factory):
    """~2,000 records of the sample panel with bad rows and a repeated key, in two row groups."""
    keep = sample_panel["household_id"].drop_duplicates().iloc[:300]
    df = sample_panel[sample_panel["household_id"].isin(keep)].reset_index(drop=True)
    df.loc[7, "income_wage"] = -1.0
    df.loc[300, "head_age"] = 3
    df.loc[1200, "period"] = "2022-13"
    df = pd.concat([df, df.iloc[[10]]], ignore_index=True)  # a later repeat of row 10's key
    path = tmp_path_factory.mktemp("spark") / "panel.parquet"
    df.to_parquet(path, index=False, row_group_size=1000)
    return path, df


def test_spark_local_mode_equals_the_local_engine(spark_input, registered, tmp_path):
    from riskml.scoring.spark import score_spark

    src, df = spark_input
    uri = "models:/household-risk@champion"
    model, info = batch.load_model(uri)
    local = batch.score_file(
        src,
        tmp_path / "local.parquet",
        model=model,
        info=info,
        ruleset=RuleSet.load(),
        rejects=tmp_path / "local.rejects.parquet",
        chunk_rows=500,
    )
    on_spark = score_spark(
        src,
        tmp_path / "spark",
        model_uri=uri,
        rejects=tmp_path / "spark.rejects",
        master="local[2]",
        batch_rows=400,
    )
    assert (on_spark.rows_read, on_spark.valid, on_spark.rejected) == (
        local.rows_read,
        local.valid,
        local.rejected,
    )
    assert (on_spark.flagged, on_spark.red) == (local.flagged, local.red)
    assert on_spark.rejected == 4 and on_spark.with_previous == local.with_previous
    assert (on_spark.model_name, on_spark.model_version) == (info.name, info.version)
    assert on_spark.rules_version == local.rules_version

    a = pd.read_parquet(tmp_path / "local.parquet").sort_values(KEY).reset_index(drop=True)
    b = pd.read_parquet(tmp_path / "spark").sort_values(KEY).reset_index(drop=True)
    assert len(a) == len(b) == local.valid
    for col in COMPARED:
        assert _plain(a[col]) == _plain(b[col]), f"column {col} differs"
    assert b["decision_id"].str.fullmatch(r"[0-9a-f]{32}").all()
    assert any("income_drop" in r for r in b["rules"])  # previous periods reached the rules
    assert json.loads(b.loc[b["flagged"], "reasons"].iloc[0])

    ra = pd.read_parquet(tmp_path / "local.rejects.parquet").sort_values("row")
    rb = pd.read_parquet(tmp_path / "spark.rejects").sort_values("row")
    assert ra["row"].tolist() == rb["row"].tolist() == [7, 300, 1200, len(df) - 1]
    assert ra["reasons"].tolist() == rb["reasons"].tolist()


def test_spark_takes_arrow_batches_larger_than_a_decide_block(sample_panel, registered, tmp_path):
    """A partition whose Arrow batch holds more rows than one decide() block (DECIDE_ROWS):
    the scored table has several chunks per column, which pyspark's Arrow writer refused
    (``Cannot convert pyarrow.lib.ChunkedArray to pyarrow.lib.Array``) before."""
    from riskml.scoring.batch.scorer import DECIDE_ROWS
    from riskml.scoring.spark import DEFAULT_BATCH_ROWS, score_spark

    assert len(sample_panel) > DECIDE_ROWS and DEFAULT_BATCH_ROWS > DECIDE_ROWS
    src = tmp_path / "one-group.parquet"
    sample_panel.to_parquet(src, index=False, row_group_size=len(sample_panel))
    uri = "models:/household-risk@champion"
    model, info = batch.load_model(uri)
    local = batch.score_file(src, tmp_path / "local.parquet", model=model, info=info,
                             ruleset=RuleSet.load())  # fmt: skip
    on_spark = score_spark(src, tmp_path / "spark", model_uri=uri, master="local[1]")
    assert on_spark.valid == local.valid == len(sample_panel)
    a = pd.read_parquet(tmp_path / "local.parquet").sort_values(KEY).reset_index(drop=True)
    b = pd.read_parquet(tmp_path / "spark").sort_values(KEY).reset_index(drop=True)
    for col in COMPARED:
        assert _plain(a[col]) == _plain(b[col]), f"column {col} differs"
