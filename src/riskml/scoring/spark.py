"""Batch scoring on Apache Spark: the same decisions as ``riskml.batch``, where the data lives.

``score_spark`` reads Parquet, numbers every row (its position in the input,
from Parquet's ``_metadata.row_index``; for a folder of files, files count in
path order), shuffles the rows by ``household_id`` and sorts each partition by
(household_id, period, row), then decides them in one pass of ``mapInArrow``
over blocks of whole households (a household cut by an Arrow batch waits for
the next one):

- repeats: a later record of a (household_id, period) is rejected, naming the
  first row with it, as anywhere in the local engine's input;
- validation: ``batch.validate_chunk``, the local engine's code (the schema's
  validator and the lines in force);
- history: each record's lags (the household's chain of earlier valid
  records, ``history.earlier_positions`` on the block, as
  ``history.earlier_from_panel``: a block holds whole households);
- decisions: ``batch.Scorer`` (``decisions.decide``, the service's code), the
  model loaded once per Python worker.

Each task writes its decisions (Parquet, ``batch.OUTPUT_SCHEMA``: equal to the local
engine's row for row, decision ids aside, as they are random as online; rows come by
household, not in input order) and its rejects (the input's columns plus ``row`` and
``reasons``) with pyarrow, as the local engine writes them, into ``_temporary`` in each
output folder, and returns one manifest row (its files and counts); the driver moves the
files of the tasks that succeeded into place (``part-00000.parquet``, ...), removes
``_temporary`` (files of failed attempts) and writes ``_SUCCESS``. The decisions never pass
through the JVM. That needs folders the executors share (local mode, a shared mount); for
any other filesystem (``hdfs://``, ``s3a://``, ...) the pass's rows go back to Spark, are
kept while Spark writes the decisions and the rejects, and counted. Either way the input
is read once and decided once.

The model: a ``models:/name@alias`` URI is resolved to its version on the
driver, and every executor loads that version (``registry.load_risk_model``),
so a run uses one model even if the alias moves. The executors need the
tracking URI (``spark.executorEnv.MLFLOW_TRACKING_URI`` is set from the
driver's) and the artifact store. The rules file is read on the driver and its
text shipped to the executors: the same rules and version everywhere.

The session: ``spark_session`` (``riskml.scoring.spark_session``): local mode
(``local[*]``, the default) binds to loopback and pins the worker Python to this
interpreter; any other master is used as given (see the README for spark-submit on
YARN or Kubernetes).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from riskml.data import schema
from riskml.data.history import earlier_positions
from riskml.data.reference import ReferenceLines
from riskml.model.features import side_inputs_of
from riskml.policy.rules import RuleSet
from riskml.scoring.batch import (
    OUTPUT_SCHEMA,
    BatchError,
    BatchSummary,
    Scorer,
    load_model,
    resolve_model_uri,
    validate_chunk,
)
from riskml.scoring.batch.keys import as_string as key_text
from riskml.scoring.batch.links import lag_frames, stored_values
from riskml.scoring.decide import ModelInfo
from riskml.scoring.spark_session import DEFAULT_BATCH_ROWS, DEFAULT_MASTER, spark_session

ROW = "_row"  # a record's position in the input
HAS_PREV = "_has_previous"  # Spark writing: a decision had a previous period
REJECT = "_reject"  # Spark writing: a reject's columns (null in a decision row)
TEMPORARY = "_temporary"  # the tasks' files, in each output folder until the job succeeds
MANIFEST = pa.schema(
    [("decisions", pa.string()), ("rejects", pa.string()), ("rows", pa.int64()),
     ("valid", pa.int64()), ("flagged", pa.int64()), ("red", pa.int64()),
     ("with_previous", pa.int64())]
)  # fmt: skip  # one row per task: its files' names and counts
MANIFEST_DDL = ", ".join(f"{f.name} {'string' if f.type == pa.string() else 'long'}"
                         for f in MANIFEST)  # fmt: skip


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
    operated table's file). The compiled tree engine uses the task's cores
    (``spark.task.cpus``, 1 by default): the executor runs that many tasks side by side.
    """
    key = (model_uri, info, rules, explain, lines.digest)
    scorer = _SCORERS.get(key)
    if scorer is None:
        _task_threads()
        model, _ = load_model(model_uri)
        model = model.in_force(lines)
        ruleset = RuleSet.from_text(rules[0], source=rules[1])
        scorer = Scorer(model, ruleset, ModelInfo(*info), explain)  # type: ignore[arg-type]
        _SCORERS[key] = scorer
    return scorer


def _task_threads() -> None:
    with contextlib.suppress(Exception):
        import numba
        from pyspark import TaskContext

        ctx = TaskContext.get()
        numba.set_num_threads(max(1, min(ctx.cpus() if ctx else 1, numba.config.NUMBA_NUM_THREADS)))


def _whole_households(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.Table]:
    """A sorted partition's batches as blocks of whole households (ties held for the next)."""
    pending: pa.Table | None = None
    for batch in batches:
        if batch.num_rows == 0:
            continue
        table = pa.Table.from_batches([batch])
        if pending is not None:
            table = pa.concat_tables([pending, table])
        hid = key_text(table.column("household_id"))
        last = hid[len(hid) - 1]
        if last.is_valid:
            same = pc.equal(hid, last).fill_null(False).to_numpy(zero_copy_only=False)
            other = np.flatnonzero(~same)
            cut = int(other[-1]) + 1 if len(other) else 0
        else:
            cut = table.num_rows  # missing ids: never a household, no need to wait
        if cut:
            yield table.slice(0, cut).combine_chunks()
        pending = table.slice(cut) if cut < table.num_rows else None
    if pending is not None:
        yield pending.combine_chunks()


_NULLABLE = {
    pa.int8(): pd.Int8Dtype(), pa.int16(): pd.Int16Dtype(), pa.int32(): pd.Int32Dtype(),
    pa.int64(): pd.Int64Dtype(), pa.bool_(): pd.BooleanDtype(),
}  # fmt: skip


def _frame(table: pa.Table) -> pd.DataFrame:
    """A block as pandas, integers and flags as nullable dtypes whether or not values are missing.

    What the local engine gets from a Parquet file written from pandas (its metadata keeps
    these dtypes); without them, a whole number of an integer column would be quoted in a
    reason as ``3`` or ``3.0`` depending on missing values elsewhere in the batch.
    """
    return table.to_pandas(types_mapper=_NULLABLE.get)


def _first_rows(block: pa.Table, rows: np.ndarray) -> np.ndarray:
    """Per row, the first row with its (household_id, period) when it is a repeat, else -1.

    The block is sorted by (household_id, period, row): repeats are neighbours.
    """
    n = block.num_rows
    same = np.zeros(n, dtype=bool)
    if n > 1:
        hid = key_text(block.column("household_id"))
        period = key_text(block.column("period"))
        eq = pc.and_(
            pc.equal(hid.slice(1), hid.slice(0, n - 1)),
            pc.equal(period.slice(1), period.slice(0, n - 1)),
        )
        same[1:] = eq.fill_null(False).to_numpy(zero_copy_only=False)
    start = np.where(same, 0, np.arange(n))
    np.maximum.accumulate(start, out=start)
    return np.where(same, rows[start], -1)


def lag_rows(valid: pa.Table) -> list[np.ndarray]:
    """For each valid record of a block (whole households), the positions of its lags in
    the block (-1: none): ``history.earlier_positions``, the panel's rule."""
    if valid.num_rows == 0:
        return []
    hid = key_text(valid.column("household_id")).to_numpy(zero_copy_only=False)
    period = valid.column("period").cast(pa.string())
    year = pc.cast(pc.utf8_slice_codeunits(period, 0, 4), pa.int64())
    month = pc.cast(pc.utf8_slice_codeunits(period, 5, 7), pa.int64())
    months = (year.to_numpy() * 12 + month.to_numpy() - 1).astype(np.int64)
    return earlier_positions(hid.astype(str), months)


def _decide_block(
    block: pa.Table, columns: list[str], lines: ReferenceLines, scorer: tuple[Any, ...]
) -> tuple[pa.Table | None, pa.Table | None, np.ndarray]:
    """One block of whole households: its rejects (``row``, the input's columns, ``reasons``),
    its decisions (``OUTPUT_SCHEMA``) and, per decision, whether it had a previous period."""
    rows = block.column(ROW).to_numpy()
    inputs = block.select(columns)
    valid, bad, reasons = validate_chunk(_frame(inputs), _first_rows(block, rows), lines)
    rejected = None
    if bad:
        rejected = inputs.take(pa.array(bad, type=pa.int64()))
        rejected = rejected.add_column(0, "row", pa.array(rows[bad], type=pa.int64()))
        rejected = rejected.append_column("reasons", pa.array(reasons, pa.string()))
    take = np.flatnonzero(valid)
    if not len(take):
        return rejected, None, np.zeros(0, dtype=bool)
    sub = block.select(list(schema.FIELD_NAMES)).take(pa.array(take))
    lags = lag_rows(sub)
    has = lags[0] >= 0
    previous = None
    if has.any():
        values = stored_values(sub, False)
        blank = np.full((1, values.shape[1]), np.nan)
        padded = np.vstack([values, blank])  # -1 takes the missing row
        previous = lag_frames(np.stack([padded[lag] for lag in lags]))
    table, _ = _scorer(*scorer).score(schema.coerce_frame(_frame(sub)), previous)
    return rejected, table, has


def _decide_partitions(
    columns: list[str], lines: ReferenceLines, scorer: tuple[Any, ...], places: tuple | None
) -> Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]]:
    """The pass over a sorted partition. With ``places`` (the two output folders) the task
    writes its decisions and rejects to a file each in their ``_temporary`` folders and
    returns one manifest row (``MANIFEST``); without, they come out as rows of ``_union``."""

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        files = (_PartFile(places[0]), _PartFile(places[1])) if places else None
        counts = dict.fromkeys(MANIFEST.names[2:], 0)
        try:
            for block in _whole_households(batches):
                rejected, decided, has = _decide_block(block, columns, lines, scorer)
                counts["rows"] += block.num_rows
                if decided is not None:
                    counts["valid"] += decided.num_rows
                    counts["flagged"] += int(pc.sum(decided["flagged"]).as_py() or 0)
                    red = pc.sum(pc.equal(decided["risk_level"], "red")).as_py()
                    counts["red"] += int(red or 0)
                    counts["with_previous"] += int(has.sum())
                if files is None:
                    yield from _union_batches(rejected, decided, has, block.select(columns).schema)
                    continue
                for part, table in zip(files, (decided, rejected), strict=True):
                    if table is not None:
                        part.write(table)
        finally:
            for part in files or ():
                part.close()
        if files is not None:
            names = {"decisions": [files[0].name], "rejects": [files[1].name]}
            yield pa.RecordBatch.from_pydict(names | {k: [v] for k, v in counts.items()},
                                             schema=MANIFEST)  # fmt: skip

    return run


class _PartFile:
    """One task's Parquet file in ``<folder>/_temporary`` (opened at the first rows written);
    its name carries the partition and the attempt, so a retried task writes another file."""

    def __init__(self, folder: str):
        self.folder = folder
        self.name: str | None = None
        self.writer: Any = None

    def write(self, table: pa.Table) -> None:
        if self.writer is None:
            import pyarrow.parquet as pq
            from pyspark import TaskContext

            ctx = TaskContext.get()
            part, attempt = (ctx.partitionId(), ctx.attemptNumber()) if ctx else (0, 0)
            self.name = f"part-{part:05d}-{attempt}-{uuid.uuid4().hex[:8]}.parquet"
            self.writer = pq.ParquetWriter(os.path.join(self.folder, TEMPORARY, self.name),
                                           table.schema)  # fmt: skip
        self.writer.write_table(table.cast(self.writer.schema))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _union_batches(
    rejected: pa.Table | None, decided: pa.Table | None, has: np.ndarray, inputs: pa.Schema
) -> Iterator[pa.RecordBatch]:
    """A block's rejects and decisions as rows of ``_union`` (one array per column: pyspark's
    RecordBatch.from_arrays takes no ChunkedArray)."""
    reject = pa.struct([pa.field("row", pa.int64()), *inputs, pa.field("reasons", pa.string())])
    names = [*OUTPUT_SCHEMA.names, HAS_PREV, REJECT]
    if rejected is not None:
        k = rejected.num_rows
        struct = pa.StructArray.from_arrays([c.combine_chunks() for c in rejected.columns],
                                            fields=list(reject))  # fmt: skip
        arrays = [*(pa.nulls(k, f.type) for f in OUTPUT_SCHEMA), pa.array(np.zeros(k, bool))]
        yield pa.RecordBatch.from_arrays([*arrays, struct], names=names)
    if decided is not None:
        arrays = [c.combine_chunks() for c in decided.columns]
        arrays += [pa.array(has), pa.nulls(decided.num_rows, reject)]
        yield pa.RecordBatch.from_arrays(arrays, names=names)


def _union(inputs: Any) -> Any:
    """The pass's rows when Spark writes: a decision's columns and ``HAS_PREV``, or a reject
    in the one struct column ``REJECT`` (``row``, the input's columns, ``reasons``)."""
    from pyspark.sql import types as T
    from pyspark.sql.pandas.types import from_arrow_schema

    reject = T.StructType([T.StructField("row", T.LongType()), *inputs.fields,
                           T.StructField("reasons", T.StringType())])  # fmt: skip
    return from_arrow_schema(OUTPUT_SCHEMA).add(HAS_PREV, T.BooleanType()).add(REJECT, reject)


def _tasks_write(*paths: str) -> bool:
    """Whether the tasks write the files (a local or shared folder), or Spark (any other
    filesystem: ``hdfs://``, ``s3a://``, ...)."""
    return all(urlparse(p).scheme in ("", "file") for p in paths)


# --------------------------------------------------------------------------- the run
def _with_positions(df: Any, one_file: bool) -> Any:
    """The input with ``_row``: position in the input (file order; files in path order).

    ``one_file``: the input is one local file (no pass to count the rows of each file).
    """
    from pyspark.sql import functions as F

    if one_file:
        return df.select("*", F.col("_metadata.row_index").alias(ROW))
    df = df.select(
        "*",
        F.col("_metadata.file_path").alias("_file"),
        F.col("_metadata.row_index").alias("_row_in_file"),
    )
    counts = sorted((r["_file"], r["count"]) for r in df.groupBy("_file").count().collect())
    if len(counts) <= 1:
        return df.withColumn(ROW, F.col("_row_in_file")).drop("_file", "_row_in_file")
    offsets, total = [], 0
    for path, count in counts:
        offsets.append((path, total))
        total += count
    spark = df.sparkSession
    off = spark.createDataFrame(offsets, "_file string, _offset long")
    return (
        df.join(F.broadcast(off), "_file")
        .withColumn(ROW, F.col("_offset") + F.col("_row_in_file"))
        .drop("_file", "_row_in_file", "_offset")
    )


def _local_folder(path: str) -> str:
    return os.path.abspath(urlparse(path).path if path.startswith("file:") else path)


def _tasks_pass(ordered: Any, run: Any, places: tuple[str, str], rejects_schema: pa.Schema) -> list:
    """The pass with the tasks writing: folders emptied (what was there replaced, as Spark's
    overwrite), the manifest collected, the files of the tasks that succeeded moved into
    place (``part-00000.parquet``, ...; one without rows if none), ``_temporary`` (files of
    failed attempts) removed, ``_SUCCESS`` written."""
    import pyarrow.parquet as pq

    for folder in places:
        if os.path.isdir(folder):
            shutil.rmtree(folder)
        elif os.path.exists(folder):
            os.remove(folder)
        os.makedirs(os.path.join(folder, TEMPORARY))
    try:
        manifest = ordered.mapInArrow(run, MANIFEST_DDL).collect()
        for folder, key, empty in zip(places, ("decisions", "rejects"),
                                      (OUTPUT_SCHEMA, rejects_schema), strict=True):  # fmt: skip
            names = sorted(m[key] for m in manifest if m[key])
            for k, name in enumerate(names):
                os.replace(os.path.join(folder, TEMPORARY, name),
                           os.path.join(folder, f"part-{k:05d}.parquet"))  # fmt: skip
            if not names:
                pq.write_table(empty.empty_table(), os.path.join(folder, "part-00000.parquet"))
            Path(folder, "_SUCCESS").touch()
    finally:
        for folder in places:
            shutil.rmtree(os.path.join(folder, TEMPORARY), ignore_errors=True)
    return manifest


def _spark_pass(ordered: Any, run: Any, inputs: Any, out: str, rejects: str) -> list:
    """The pass with Spark writing: its rows kept (memory, then disk) while the decisions and
    the rejects are written and counted."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    passed = ordered.mapInArrow(run, _union(inputs)).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        decision = F.col(REJECT).isNull()
        passed.filter(decision).select(*OUTPUT_SCHEMA.names).write.mode("overwrite").parquet(out)
        passed.filter(~decision).select(f"{REJECT}.*").write.mode("overwrite").parquet(rejects)
        return passed.agg(
            F.count(F.lit(1)).alias("rows"),
            F.sum(decision.cast("int")).alias("valid"),
            F.sum((decision & F.col("flagged")).cast("int")).alias("flagged"),
            F.sum((decision & (F.col("risk_level") == "red")).cast("int")).alias("red"),
            F.sum((decision & F.col(HAS_PREV)).cast("int")).alias("with_previous"),
        ).collect()
    finally:
        passed.unpersist()


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
    ``spark_session(master)`` and stopped at the end. ``timings`` in the
    summary: ``prepare`` (rules and model on the driver), ``session`` (starting
    Spark), ``run`` (the job and the files' commit), ``stop``.
    """
    from pyspark.sql.pandas.types import to_arrow_schema

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
    loaded_model = load_model(target)[0]
    if side_inputs_of(loaded_model.feature_names):
        raise BatchError(
            "the Spark engine does not carry side inputs yet; this model's features read "
            f"{', '.join(side_inputs_of(loaded_model.feature_names))}: use --engine local"
        )
    lines = loaded_model.in_force().lines
    scorer = (target, (name, version), (rules_text, ruleset.source), explain, lines)
    out_path = str(out)
    rejects_path = str(rejects) if rejects is not None else str(Path(out_path)) + ".rejects"
    timings: dict[str, float] = {"prepare": time.perf_counter() - t0}

    own_session = spark is None
    if own_session:
        t = time.perf_counter()
        spark = spark_session(master, batch_rows)
        timings["session"] = time.perf_counter() - t
    t_run = time.perf_counter()
    try:
        raw = spark.read.parquet(str(input_path))
        lacking = [c for c in schema.FIELD_NAMES if c not in raw.columns]
        if lacking:
            raise BatchError(f"{input_path}: column(s) missing: {', '.join(lacking)}")
        columns = [c for c in raw.columns if c not in ("row", "reasons")]
        inputs = raw.select(*columns).schema
        df = _with_positions(raw.select(*columns), Path(input_path).is_file())
        ordered = df.repartition("household_id").sortWithinPartitions("household_id", "period", ROW)
        if _tasks_write(out_path, rejects_path):
            places = (_local_folder(out_path), _local_folder(rejects_path))
            run = _decide_partitions(columns, lines, scorer, places)
            rejects_schema = pa.schema([pa.field("row", pa.int64()), *to_arrow_schema(inputs),
                                        pa.field("reasons", pa.string())])  # fmt: skip
            manifest = _tasks_pass(ordered, run, places, rejects_schema)
        else:
            run = _decide_partitions(columns, lines, scorer, None)
            manifest = _spark_pass(ordered, run, inputs, out_path, rejects_path)
    finally:
        timings["run"] = time.perf_counter() - t_run
        if own_session:
            t = time.perf_counter()
            spark.stop()
            timings["stop"] = time.perf_counter() - t
    seconds = time.perf_counter() - t0
    total = {k: sum(int(m[k] or 0) for m in manifest) for k in MANIFEST.names[2:]}
    return BatchSummary(
        rows_read=total["rows"],
        valid=total["valid"],
        rejected=total["rows"] - total["valid"],
        flagged=total["flagged"],
        red=total["red"],
        seconds=seconds,
        rows_per_s=total["rows"] / seconds if seconds > 0 else 0.0,
        output=out_path,
        rejects=rejects_path,
        engine=f"spark ({master or DEFAULT_MASTER})" if own_session else "spark",
        workers=0,
        chunk_rows=batch_rows,
        explain=explain,
        model_name=name,
        model_version=version,
        rules_version=ruleset.version,
        with_previous=total["with_previous"],
        timings=timings,
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
