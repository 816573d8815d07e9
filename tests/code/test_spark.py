"""Code test: the Spark engine (local mode) gives the local engine's decisions, row for row."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from riskml.data import schema
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


# --------------------------------------------------------------------------- messy input
def _messy(sample_panel: pd.DataFrame) -> pd.DataFrame:
    """The sample panel with a missing value in every column (in some rows), malformed text in
    the text fields, numbers out of range and repeated keys (one of an invalid row)."""
    df = sample_panel.copy()
    n = len(df)
    rng = np.random.default_rng(20)
    for col in df.columns:
        kind = df[col].dtype.kind
        if kind in "iu":
            df[col] = df[col].astype("Int64")
        elif kind == "b":
            df[col] = df[col].astype("boolean")
        else:
            df[col] = df[col].astype(object)
        df.loc[rng.choice(n, size=40, replace=False), col] = None
    odd = {
        "household_id": ["", " H0000001", "H/1", "户主", "x" * 65, "H 1"],
        "period": ["2022-13", "2022-6", "", "2022-06 ", "１９９９-01", "1899-01"],
        "county_code": ["12345", "abcdef", "990000", "1301O1", " 130101"],
        "village_code": ["1234", "130101ABCDEF", "999999999999", ""],
    }
    picked = rng.choice(n, size=sum(len(v) for v in odd.values()), replace=False)
    at = 0
    for col, values in odd.items():
        for v in values:
            df.loc[picked[at], col] = v
            at += 1
    df.loc[5, "head_age"] = 3
    df.loc[6, "income_wage"] = -1.0
    df.loc[8, "income_business"] = float("inf")
    df.loc[9, "household_size"] = 0
    df.loc[11, "labor_count"] = 25
    # repeats: of a valid row, three of one key, of the invalid row 5
    return pd.concat([df, df.iloc[[10, 20, 20, 5]]], ignore_index=True)


def _as_text(df: pd.DataFrame) -> pd.DataFrame:
    """Every column as text (numbers and flags written out), missing values kept missing."""
    out = pd.DataFrame(index=df.index)
    for col in df.columns:
        values = df[col].astype(object)
        out[col] = [None if pd.isna(v) else str(v) for v in values]
    return out


def _missing(v) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and v != v)


def _rows_equal(a: pd.DataFrame, b: pd.DataFrame, columns: list[str]) -> None:
    """Equal column by column, value by value (missing as None, whatever the dtype)."""
    for col in columns:
        left = [None if _missing(v) else v for v in _plain(a[col])]
        right = [None if _missing(v) else v for v in _plain(b[col])]
        assert left == right, f"column {col} differs"


def _both_engines(src_local, src_spark, spark, registered, tmp_path, name):
    from riskml.scoring.spark import score_spark

    uri = "models:/household-risk@champion"
    model, info = batch.load_model(uri)
    local = batch.score_file(src_local, tmp_path / f"{name}.local.parquet", model=model,
                             info=info, ruleset=RuleSet.load(),
                             rejects=tmp_path / f"{name}.local.rejects.parquet",
                             chunk_rows=700)  # fmt: skip
    on_spark = score_spark(src_spark, tmp_path / f"{name}.spark", model_uri=uri,
                           rejects=tmp_path / f"{name}.spark.rejects", spark=spark,
                           batch_rows=BATCH_ROWS)  # fmt: skip
    assert (on_spark.rows_read, on_spark.valid, on_spark.rejected, on_spark.flagged,
            on_spark.red, on_spark.with_previous) == (
        local.rows_read, local.valid, local.rejected, local.flagged, local.red,
        local.with_previous)  # fmt: skip
    a = pd.read_parquet(tmp_path / f"{name}.local.parquet").sort_values(KEY, ignore_index=True)
    b = pd.read_parquet(tmp_path / f"{name}.spark").sort_values(KEY, ignore_index=True)
    assert len(a) == len(b) == local.valid
    _rows_equal(a, b, COMPARED)
    ra = pd.read_parquet(tmp_path / f"{name}.local.rejects.parquet")
    rb = pd.read_parquet(tmp_path / f"{name}.spark.rejects")
    ra, rb = ra.sort_values("row", ignore_index=True), rb.sort_values("row", ignore_index=True)
    assert list(ra.columns) == list(rb.columns)
    assert len(ra) == len(rb) == local.rejected
    _rows_equal(ra, rb, list(ra.columns))  # the same rows, values and reasons
    return local, a, ra


BATCH_ROWS = 500  # records per Arrow batch handed to the pass


@pytest.fixture(scope="module")
def small_batches_session():
    """local[2] with 4 shuffle partitions (~3,500 records each, 7 Arrow batches) and input
    splits of 64 kB (several per file); one for the tests below (those above start and stop
    their own)."""
    from riskml.scoring.spark import spark_session

    spark = spark_session("local[2]", batch_rows=BATCH_ROWS)
    spark.conf.set("spark.sql.shuffle.partitions", "4")
    spark.conf.set("spark.sql.files.maxPartitionBytes", str(64 * 1024))
    spark.conf.set("spark.sql.adaptive.enabled", "false")  # keep the 4 partitions
    try:
        yield spark
    finally:
        spark.stop()


@pytest.mark.parametrize("writer", ["tasks", "spark"])
def test_spark_equals_local_on_missing_values_and_malformed_text_in_every_column(
    sample_panel, registered, small_batches_session, tmp_path, monkeypatch, writer
):
    """Every column has missing values, the text fields malformed values; several input splits
    and shuffle partitions, each holding several Arrow batches: decisions and rejects (rows,
    values, reasons) equal to the local engine's, whether the tasks write the files (a local
    folder) or Spark does (any other filesystem)."""
    from pyspark.sql import functions as F

    from riskml.scoring import spark as spark_engine

    if writer == "spark":
        monkeypatch.setattr(spark_engine, "_tasks_write", lambda *paths: False)
    spark = small_batches_session
    (tmp_path / "messy.spark").mkdir()
    (tmp_path / "messy.spark" / "part-00099.parquet").write_text("an earlier run's file")
    df = _messy(sample_panel)
    src = tmp_path / "messy.parquet"
    df.to_parquet(src, index=False, row_group_size=1000)
    raw = spark.read.parquet(str(src))
    assert raw.rdd.getNumPartitions() > 1
    sizes = raw.repartition("household_id").groupBy(F.spark_partition_id()).count().collect()
    assert len(sizes) == 4 and min(r["count"] for r in sizes) > 4 * BATCH_ROWS

    local, decisions, rejects = _both_engines(src, src, spark, registered, tmp_path, "messy")
    written = sorted(p.name for p in (tmp_path / "messy.spark").iterdir())
    assert "_SUCCESS" in written and "_temporary" not in written  # replaced, committed
    assert (
        "part-00099.parquet" not in written
        and not (tmp_path / "messy.spark.rejects" / "_temporary").exists()
    )
    assert local.valid > 0.8 * len(df) and local.with_previous > 0.5 * local.valid
    for f in schema.FIELDS:  # missing values of every nullable field reached the decisions
        if f.nullable:
            scored = pd.read_parquet(src, columns=[f.name, *KEY]).merge(decisions[KEY], on=KEY)
            assert scored[f.name].isna().any(), f.name
    reasons = " ".join(rejects["reasons"])
    patterns = [schema.FIELD_BY_NAME[c].pattern_rule() for c in ("household_id", "period")]
    for rule in (schema.MISSING_RULE, *patterns, schema.VILLAGE_RULE, schema.PROVINCE_RULE,
                 schema.FINITE_RULE, schema.DUPLICATE_RULE_PREFIX):  # fmt: skip
        assert rule in reasons, rule
    n = len(df)
    assert rejects["row"].iloc[-4:].tolist() == [n - 4, n - 3, n - 2, n - 1]  # the repeats
    assert rejects["reasons"].iloc[-3] == rejects["reasons"].iloc[-2]  # both name row 20


def test_spark_equals_local_on_text_columns_from_a_folder_of_files(
    sample_panel, registered, small_batches_session, tmp_path
):
    """Every column stored as text (numbers as strings, as a CSV converted without types), with
    missing values; Spark reads it as a folder of three files (rows numbered across them)."""
    text = _as_text(_messy(sample_panel))
    src = tmp_path / "text.parquet"
    text.to_parquet(src, index=False)
    folder = tmp_path / "text-parts"
    folder.mkdir()
    for k, part in enumerate(np.array_split(np.arange(len(text)), 3)):
        text.iloc[part].to_parquet(folder / f"part-{k}.parquet", index=False)
    local, _, rejects = _both_engines(src, folder, small_batches_session, registered, tmp_path,
                                      "text")  # fmt: skip
    # text where a number belongs: only a record whose every number and flag is missing
    # could pass, and household_size is required
    assert local.valid == 0 and rejects["row"].tolist() == list(range(len(text)))
    assert schema.NUMBER_RULE in rejects["reasons"].iloc[0]
