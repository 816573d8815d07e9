"""Batch scoring on Apache Spark: the same decisions as ``riskml.batch``, where the data lives.

``score_spark`` reads Parquet, validates every record with the schema's
validator (``batch.validate_chunk``, the local engine's code) inside
``mapInPandas``, writes the rejects (the input's columns plus ``row`` and
``reasons``), finds each valid record's previous period with a window
function (per household ordered by month: the latest earlier valid record
within 12 months, as ``history.previous_from_panel``), and decides the valid
records with ``mapInPandas`` calling ``batch.Scorer`` (``decisions.decide``,
the service's code) with the model loaded once per Python worker. Output:
Parquet with ``batch.OUTPUT_SCHEMA``'s columns, equal to the local engine's
row for row (decision ids aside: they are random, as online).

The model: a ``models:/name@alias`` URI is resolved to its version on the
driver, and every executor loads that version (``registry.load_risk_model``),
so a run uses one model even if the alias moves. The executors need the
tracking URI (``spark.executorEnv.MLFLOW_TRACKING_URI`` is set from the
driver's) and the artifact store. The rules file is read on the driver and its
text shipped to the executors: the same rules and version everywhere.

Row positions (``row`` in the rejects, ``input row`` order) come from
Parquet's ``_metadata.row_index``; for a folder of files, files count in
path order.

Local mode (``local[*]``, the default) binds to loopback and pins the worker
Python to this interpreter; any other master is used as given (see the
README for spark-submit on YARN or Kubernetes).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd

from riskml import config
from riskml.data import schema
from riskml.data.history import is_previous_gap
from riskml.data.reference import ReferenceLines
from riskml.policy.rules import RuleSet
from riskml.scoring.batch import (
    OUTPUT_COLUMNS,
    BatchError,
    BatchSummary,
    Scorer,
    load_model,
    previous_frame,
    resolve_model_uri,
    validate_chunk,
)
from riskml.scoring.decide import ModelInfo

NUMERIC_FIELDS: tuple[str, ...] = tuple(f.name for f in schema.FIELDS if f.kind != "str")
PREV = "prev_"
DEFAULT_MASTER = "local[*]"
DEFAULT_BATCH_ROWS = 20_000  # records per Arrow batch handed to mapInPandas


# --------------------------------------------------------------------------- session
def spark_session(master: str | None = None, batch_rows: int = DEFAULT_BATCH_ROWS) -> Any:
    """A SparkSession for scoring (``local[*]`` by default, bound to loopback, no UI).

    Call before anything else starts Spark in this process: settings of an
    existing session cannot change.
    """
    submitted = master is None and "PYSPARK_GATEWAY_PORT" in os.environ  # under spark-submit
    master = master or DEFAULT_MASTER
    local = master.startswith("local") and not submitted
    if local:
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        os.environ["PYSPARK_PYTHON"] = sys.executable
        os.environ["PYSPARK_DRIVER_PYTHON"] = sys.executable
    from pyspark.sql import SparkSession

    builder = SparkSession.builder if submitted else SparkSession.builder.master(master)
    builder = (
        builder.appName("riskml-score")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", str(batch_rows))
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.executorEnv.MLFLOW_TRACKING_URI", config.tracking_uri())
        .config("spark.executorEnv.MLFLOW_DISABLE_TELEMETRY", "true")
    )
    if os.environ.get("RISKML_ARTIFACT_ROOT"):
        builder = builder.config(
            "spark.executorEnv.RISKML_ARTIFACT_ROOT", os.environ["RISKML_ARTIFACT_ROOT"]
        )
    if local:
        builder = (
            builder.config("spark.driver.host", "127.0.0.1")
            .config("spark.driver.bindAddress", "127.0.0.1")
            .config("spark.sql.shuffle.partitions", "8")
        )
    return builder.getOrCreate()


# --------------------------------------------------------------------------- executor side
_SCORERS: dict[tuple[str, tuple[str, str], tuple[str, str], str, str], Scorer] = {}


def _scorer(
    model_uri: str,
    info: tuple[str, str],
    rules: tuple[str, str],
    explain: str,
    lines: ReferenceLines,
) -> Scorer:
    """The scorer of this Python worker (the model is loaded once per worker process).

    ``lines`` are the driver's lines in force (the executors may not see the
    operated table's file).
    """
    key = (model_uri, info, rules, explain, lines.digest)
    scorer = _SCORERS.get(key)
    if scorer is None:
        model, _ = load_model(model_uri)
        model = model.in_force(lines)
        ruleset = RuleSet.from_text(rules[0], source=rules[1])
        scorer = Scorer(model, ruleset, ModelInfo(*info), explain)  # type: ignore[arg-type]
        _SCORERS[key] = scorer
    return scorer


def _validate_batches(columns: list[str], lines: ReferenceLines) -> Any:
    def run(batches: Any) -> Any:
        for pdf in batches:
            pdf = pdf.reset_index(drop=True)
            valid, bad, reasons = validate_chunk(
                pdf[columns], pdf["_earlier"].to_numpy(dtype="int64", na_value=-1), lines
            )
            out = pdf.drop(columns=["_earlier"])
            out["_valid"] = valid
            text = pd.Series([None] * len(pdf), dtype=object)
            text.iloc[bad] = reasons
            out["_reasons"] = text
            yield out

    return run


def _score_batches(
    model_uri: str,
    info: tuple[str, str],
    rules: tuple[str, str],
    explain: str,
    lines: ReferenceLines,
) -> Any:
    prev_cols = [PREV + name for name in NUMERIC_FIELDS]

    def run(batches: Any) -> Any:
        scorer = _scorer(model_uri, info, rules, explain, lines)
        for pdf in batches:
            pdf = pdf.reset_index(drop=True)
            records = schema.coerce_frame(pdf[list(schema.FIELD_NAMES)])
            previous = previous_frame(
                pdf[prev_cols].to_numpy(dtype="float64", na_value=float("nan"))
            )
            table, _ = scorer.score(records, previous)
            # one chunk per column: pyspark builds its Arrow batch with RecordBatch.from_arrays,
            # which takes no ChunkedArray (decide blocks of DECIDE_ROWS make several chunks)
            yield table.combine_chunks().to_pandas()

    return run


# --------------------------------------------------------------------------- the run
def _output_struct() -> Any:
    from pyspark.sql import types as T

    strings = {
        "household_id", "period", "county_code", "village_code", "risk_level", "flagged_by",
        "rules", "reasons", "measures", "monitoring_type", "model_name", "model_version",
        "rules_version", "decision_id", "line_basis",
    }  # fmt: skip
    fields = []
    for name in OUTPUT_COLUMNS:
        if name in strings:
            typ: Any = T.StringType()
        elif name == "score":
            typ = T.DoubleType()
        elif name == "line_year":
            typ = T.IntegerType()
        elif name == "flagged":
            typ = T.BooleanType()
        elif name == "risk_types":
            typ = T.ArrayType(T.StringType())
        else:  # pragma: no cover - every output column is listed above
            raise AssertionError(name)
        fields.append(T.StructField(name, typ, True))
    return T.StructType(fields)


def _with_positions(df: Any) -> Any:
    """The input with ``_row``: position in the input (file order; files in path order)."""
    from pyspark.sql import functions as F

    df = df.select(
        "*",
        F.col("_metadata.file_path").alias("_file"),
        F.col("_metadata.row_index").alias("_row_in_file"),
    )
    counts = sorted((r["_file"], r["count"]) for r in df.groupBy("_file").count().collect())
    if len(counts) <= 1:
        return df.withColumn("_row", F.col("_row_in_file")).drop("_file", "_row_in_file")
    offsets, total = [], 0
    for path, count in counts:
        offsets.append((path, total))
        total += count
    spark = df.sparkSession
    off = spark.createDataFrame(offsets, "_file string, _offset long")
    return (
        df.join(F.broadcast(off), "_file")
        .withColumn("_row", F.col("_offset") + F.col("_row_in_file"))
        .drop("_file", "_row_in_file", "_offset")
    )


def score_spark(
    input_path: str | Path,
    out: str | Path,
    *,
    model_uri: str,
    explain: str = "flagged",
    rejects: str | Path | None = None,
    rules_file: str | Path | None = None,
    master: str | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    spark: Any = None,
) -> BatchSummary:
    """Score Parquet records on Spark; write decisions and rejects as Parquet folders.

    ``spark`` reuses a session (tests); otherwise one is started with
    ``spark_session(master)`` and stopped at the end.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    t0 = time.perf_counter()
    if explain not in ("flagged", "all", "none"):
        raise ValueError(f"explain must be flagged, all or none, got {explain!r}")
    ruleset = RuleSet.load(rules_file)
    rules_text = Path(ruleset.source).read_text(encoding="utf-8")
    if RuleSet.from_text(rules_text, ruleset.source).version != ruleset.version:
        raise BatchError(f"the rules file {ruleset.source} changed while it was read")
    name, version = resolve_model_uri(model_uri)
    target = f"models:/{name}/{version}" if model_uri.startswith("models:/") else model_uri
    # fail early, on the driver, if the model cannot be loaded; its lines in force go to the executors
    lines = load_model(target)[0].in_force().lines
    info = (name, version)
    rules = (rules_text, ruleset.source)
    out_path = str(out)
    rejects_path = str(rejects) if rejects is not None else str(Path(out_path)) + ".rejects"

    own_session = spark is None
    if own_session:
        spark = spark_session(master, batch_rows)
    try:
        raw = spark.read.parquet(str(input_path))
        lacking = [c for c in schema.FIELD_NAMES if c not in raw.columns]
        if lacking:
            raise BatchError(f"{input_path}: column(s) missing: {', '.join(lacking)}")
        columns = [c for c in raw.columns if c not in ("row", "reasons")]
        df = _with_positions(raw.select(*columns))

        # duplicates anywhere in the input: the later (household_id, period) is rejected,
        # naming the first row with it (-1: not a repeat)
        by_key = Window.partitionBy("household_id", "period").orderBy("_row")
        repeat = (
            (F.row_number().over(by_key) > 1)
            & F.col("household_id").isNotNull()
            & F.col("period").isNotNull()
        )
        df = df.withColumn(
            "_earlier", F.when(repeat, F.first("_row").over(by_key)).otherwise(F.lit(-1))
        )
        checked_schema = (
            df.drop("_earlier").schema.add("_valid", "boolean").add("_reasons", "string")
        )
        checked = df.mapInPandas(_validate_batches(columns, lines), checked_schema).persist()

        rejected = checked.filter(~F.col("_valid")).select(
            F.col("_row").alias("row"), *columns, F.col("_reasons").alias("reasons")
        )
        rejected.write.mode("overwrite").parquet(rejects_path)

        # previous period: the latest earlier valid record within MAX_GAP_MONTHS
        valid = checked.filter(F.col("_valid")).drop("_valid", "_reasons")
        month = F.substring("period", 1, 4).cast("int") * 12 + F.substring("period", 6, 2).cast(
            "int"
        )
        valid = valid.withColumn("_month", month)
        by_household = Window.partitionBy("household_id").orderBy("_month")
        gap = F.col("_month") - F.lag("_month").over(by_household)
        has_prev = gap.isNotNull() & is_previous_gap(gap)  # the one rule, on Spark columns
        prev_cols = [
            F.when(has_prev, F.lag(F.col(c).cast("double")).over(by_household)).alias(PREV + c)
            for c in NUMERIC_FIELDS
        ]
        scored_input = valid.select(*schema.FIELD_NAMES, *prev_cols)
        scored = scored_input.mapInPandas(
            _score_batches(target, info, rules, explain, lines), _output_struct()
        )
        scored.write.mode("overwrite").parquet(out_path)

        result = spark.read.parquet(out_path)
        counts = result.agg(
            F.count(F.lit(1)).alias("valid"),
            F.sum(F.col("flagged").cast("int")).alias("flagged"),
            F.sum((F.col("risk_level") == "red").cast("int")).alias("red"),
        ).collect()[0]
        rows = checked.count()
        n_rejected = spark.read.parquet(rejects_path).count()
        with_prev = scored_input.filter(F.col(PREV + "household_size").isNotNull()).count()
        checked.unpersist()
    finally:
        if own_session:
            spark.stop()
    seconds = time.perf_counter() - t0
    return BatchSummary(
        rows_read=int(rows),
        valid=int(counts["valid"] or 0),
        rejected=int(n_rejected),
        flagged=int(counts["flagged"] or 0),
        red=int(counts["red"] or 0),
        seconds=seconds,
        rows_per_s=rows / seconds if seconds > 0 else 0.0,
        output=out_path,
        rejects=rejects_path,
        engine=f"spark ({master or DEFAULT_MASTER})" if own_session else "spark",
        workers=0,
        chunk_rows=batch_rows,
        explain=explain,
        model_name=name,
        model_version=version,
        rules_version=ruleset.version,
        with_previous=int(with_prev),
    )


# --------------------------------------------------------------------------- spark-submit
def main(argv: list[str] | None = None) -> int:
    """Driver for spark-submit: ``spark-submit ... spark_engine.py INPUT --out OUT [...]``.

    The master is spark-submit's (``--master yarn``, ``k8s://...``); see the README.
    """
    import argparse

    from riskml.scoring.batch import summary_lines

    ap = argparse.ArgumentParser(prog="riskml-spark-score", description=main.__doc__)
    ap.add_argument("input", help="Parquet file or folder of Parquet files")
    ap.add_argument("--out", required=True, help="decisions (a Parquet folder)")
    ap.add_argument("--model", default="models:/household-risk@champion")
    ap.add_argument("--explain", default="flagged", choices=["flagged", "all", "none"])
    ap.add_argument("--rejects", default=None, help="default: <out>.rejects")
    ap.add_argument("--rules", default=None, help="rules file (read on the driver)")
    ap.add_argument("--batch-rows", type=int, default=DEFAULT_BATCH_ROWS)
    args = ap.parse_args(argv)
    summary = score_spark(
        args.input,
        args.out,
        model_uri=args.model,
        explain=args.explain,
        rejects=args.rejects,
        rules_file=args.rules,
        batch_rows=args.batch_rows,
    )
    for line in summary_lines(summary):
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
