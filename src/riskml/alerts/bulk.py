"""A department's monthly push in bulk: validated, triggered, merged and re-scored with the batch engine.

``import_push`` is ``riskml alerts import FILE --department D --records RECORDS --out DIR``:
the path of a push too large for one request (a province's million medical alerts a month).

1. the alert file is validated column by column (``bulk_check.frame_problems``: the same
   problems, naming row and field, as the row-wise validator of ``POST /alerts``); any
   problem refuses the whole file (``BulkRefused``) and nothing is written;
2. the household records (the last wave's Parquet or CSV, the input of the last screening;
   several waves are fine) are read and validated as the batch engine validates its input
   (``scan_keys`` then ``validate_chunk``: a repeated (household_id, period) and a record
   without a line in force are rejected); only valid records are merged onto, as only valid
   records are in the ledger the service reads;
3. the department triggers are evaluated on each alert with the household's record before
   it (``TriggerSet.fired_frame``, equal to ``fired``);
4. the alerts of one household and month are merged onto its latest record at or before the
   month (``merge_frame``, with provenance); alerts of unknown households, or of households
   with no record yet, are unmatched and written, never dropped;
5. the merged records are validated (``validate_chunk``) and decided with the batch engine's
   task and workers (``score_task``: ``decide`` with the same model, rules and explanation
   mode), each with its previous period: the household's latest valid record before the month
   within 12 months, the record the ledger would give the service;
6. written to ``DIR``: ``decisions.parquet`` (the batch output's columns, plus ``alert_ids``,
   ``alert_count``, ``triggers`` and ``lead``), ``alerts.parquet`` (every alert with
   ``matched``, ``decision_id``, ``risk_level``, ``flagged``, ``triggers`` and ``reason``),
   ``unmatched.parquet``, ``records.parquet`` (the merged records), ``provenance.parquet``
   and ``rejects.parquet`` (records of the records file that were not valid).

``lead`` marks the household and month a lead is due for (a trigger fired or the merged
record is flagged), as ``intake.take`` leads them. The bulk path does not (yet) write the
ledger or the case store, and leads no case: that is still to build (not measured at a
million alerts); ``riskml alerts import`` without ``--records`` stores and leads (at most
``intake.MAX_ALERTS`` alerts).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from riskml.alerts.bulk_check import read_alert_frame
from riskml.alerts.merge import RecordKeys, merge_frame_groups, month_codes
from riskml.alerts.triggers import TriggerSet
from riskml.data import schema
from riskml.data.history import is_previous_gap, period_months
from riskml.data.schema import Problems
from riskml.model.risk_model import RiskModel
from riskml.policy.rules import RuleSet
from riskml.scoring.batch import (
    AUTO_WORKERS_ROWS,
    OUTPUT_SCHEMA,
    BatchError,
    Scorer,
    default_workers,
    input_columns,
    input_format,
    iter_batches,
    numeric_matrix,
    scan_keys,
    typed_frame,
)
from riskml.scoring.batch.workers import Runner, score_task, validate_task
from riskml.scoring.decide import ExplainMode, ModelInfo

__all__ = ["BulkRefused", "BulkSummary", "import_push"]

CHUNK_ROWS = 50_000
EXTRA_DECISION_FIELDS = [
    pa.field("alert_ids", pa.string()),
    pa.field("alert_count", pa.int64()),
    pa.field("triggers", pa.list_(pa.string())),
    pa.field("lead", pa.bool_()),
]
DECISIONS_SCHEMA = pa.schema([*OUTPUT_SCHEMA, *EXTRA_DECISION_FIELDS])
NOT_SCORED = "merged record not valid: "


class BulkRefused(Exception):
    """The alert file refused whole: its problems name row and field; nothing was written."""

    def __init__(self, problems: Problems, rows: int):
        super().__init__(f"{problems.total} problem(s) in {problems.invalid_records} alert(s)")
        self.problems, self.rows = problems, rows


@dataclass
class BulkSummary:
    """What a bulk push did: counts, the files written and the time of each step (seconds)."""

    out: str
    alerts: int = 0
    matched: int = 0
    unmatched: int = 0
    triggered: int = 0  # alerts that fired a department trigger
    households: int = 0  # merged (household, month) records
    scored: int = 0
    not_scored: int = 0  # merged records refused by validation (their alerts say why)
    flagged: int = 0
    red: int = 0
    leads: int = 0  # households and months due for a lead
    records_read: int = 0
    records_rejected: int = 0
    workers: int = 0
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)

    def lines(self) -> list[str]:
        return [
            f"{self.alerts:,} alert(s): {self.matched:,} matched, {self.unmatched:,} unmatched, "
            f"{self.triggered:,} fired a department trigger",
            f"{self.households:,} household(s) merged: {self.scored:,} re-scored "
            f"({self.flagged:,} flagged, {self.red:,} red), {self.not_scored:,} not scored; "
            f"{self.leads:,} due for a lead",
            f"records: {self.records_read:,} read, {self.records_rejected:,} rejected; "
            f"{self.seconds:.1f} s; written to {self.out}",
        ]


def _rules_text(ruleset: RuleSet) -> str:
    text = Path(ruleset.source).read_text(encoding="utf-8")
    if RuleSet.from_text(text, ruleset.source).version != ruleset.version:
        raise BatchError(f"the rules file {ruleset.source} changed while it was read")
    return text


def _runner(model: RiskModel, scorer: Scorer, ruleset: RuleSet, info: ModelInfo, workers: int,
            explain: str, tmpdir: Path) -> Runner:  # fmt: skip
    """The batch engine's runner (workers load the model saved for them, as ``score_file``'s)."""
    numba = 1 if workers > 1 else 0
    initargs = (str(tmpdir / "model"), _rules_text(ruleset), ruleset.source,
                (info.name, info.version), explain, False, numba)  # fmt: skip
    if workers > 0:
        model.save(tmpdir / "model")
    return Runner(workers, initargs, scorer)


def _batches(frame: pd.DataFrame, rows: int) -> Iterator[pa.RecordBatch]:
    table = pa.Table.from_pandas(frame, preserve_index=False)
    for start in range(0, table.num_rows, rows):
        yield table.slice(start, rows).combine_chunks().to_batches()[0]


def _records(path: Path, runner: Runner, out: Path, summary: BulkSummary) -> pd.DataFrame:
    """The valid records of the records file (canonical dtypes); rejects written to ``out``.

    Validated as the batch engine's pass 2 validates (``validate_task``: ``validate_chunk``
    with the repeats of ``scan_keys`` and the lines in force), by its workers while this
    process types the same chunks.
    """
    if not path.exists():
        raise BatchError(f"no such file: {path}")
    lacking = [n for n in schema.FIELD_NAMES if n not in input_columns(path)]
    if lacking:
        raise BatchError(f"{path}: column(s) missing from the file: {', '.join(lacking)}")
    from_csv = input_format(path) == "csv"
    keys = scan_keys(path, CHUNK_ROWS)
    frames: list[pd.DataFrame] = []
    starts: list[int] = []

    def args() -> Iterator[tuple[Any, ...]]:
        offset = 0
        for batch in iter_batches(path, list(schema.FIELD_NAMES), CHUNK_ROWS):
            frames.append(typed_frame(batch, from_csv))  # before the task: workers=0 runs it now
            starts.append(offset)
            yield batch, keys.earlier[offset : offset + batch.num_rows], from_csv
            offset += batch.num_rows

    kept, rejects = [], []
    for k, (valid, rej) in enumerate(runner.map(validate_task, args())):
        if rej is not None:
            rejects.append(pa.table({
                "row": pc.add(rej["row"], starts[k]),
                "household_id": pc.cast(rej["household_id"], pa.string()),
                "period": pc.cast(rej["period"], pa.string()), "reasons": rej["reasons"],
            }))  # fmt: skip
        kept.append(frames[k] if rej is None else frames[k][valid])
        frames[k] = None  # type: ignore[call-overload]
    summary.records_read = keys.n
    rej_table = (
        pa.concat_tables(rejects)
        if rejects
        else pa.table({"row": pa.array([], pa.int64()), "household_id": pa.array([], pa.string()),
                       "period": pa.array([], pa.string()), "reasons": pa.array([], pa.string())})
    )  # fmt: skip
    pq.write_table(rej_table, out / "rejects.parquet")
    summary.records_rejected = rej_table.num_rows
    records = pd.concat(kept, ignore_index=True) if kept else pd.DataFrame()
    return schema.coerce_frame(records[list(schema.FIELD_NAMES)])


def _warm(_: int) -> None:
    """Nothing: submitted once per worker so that they start (load the model) meanwhile."""


def import_push(
    alerts_path: str | Path,
    department: str,
    records_path: str | Path,
    out: str | Path,
    *,
    model: RiskModel,
    info: ModelInfo,
    ruleset: RuleSet | None = None,
    triggers: TriggerSet | None = None,
    explain: ExplainMode = "flagged",
    workers: int | None = None,
) -> BulkSummary:
    """Take in a department's push in bulk (the module docstring); BulkRefused when the file is refused."""
    t0 = time.perf_counter()
    timings: dict[str, float] = {}

    cpu = [time.process_time()]

    def step(name: str, since: float) -> float:
        now, now_cpu = time.perf_counter(), time.process_time()
        timings[name] = now - since
        timings[f"{name}_cpu"] = now_cpu - cpu[0]  # this process only (not its workers)
        cpu[0] = now_cpu
        return now

    read = read_alert_frame(alerts_path, department, limit=100)
    if read.problems.total:
        raise BulkRefused(read.problems, read.rows)
    alerts = read.frame
    t = step("alerts", t0)
    ruleset = ruleset if ruleset is not None else RuleSet.load()
    triggers = triggers if triggers is not None else TriggerSet.load()
    model = model.in_force()  # its own lines, the operated table for the years it lacks
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = BulkSummary(out=str(out_dir), alerts=len(alerts), timings=timings)
    n_workers = workers if workers is not None else (
        default_workers() if len(alerts) >= AUTO_WORKERS_ROWS else 0)  # fmt: skip
    summary.workers = n_workers
    scorer = Scorer(model, ruleset, info, explain, False)
    tmpdir = Path(tempfile.mkdtemp(prefix="riskml-alerts-"))
    runner = _runner(model, scorer, ruleset, info, n_workers, explain, tmpdir)
    try:
        if runner.pool is not None:  # the workers start while the alerts' records are read
            for k in range(n_workers):
                runner.pool.submit(_warm, k)
        t = step("workers", t)
        records = _records(Path(records_path), runner, out_dir, summary)
        t = step("records", t)
        # ---- triggers, on the record before each alert
        keys = RecordKeys.of(records)
        hcode, months = keys.codes(alerts["household_id"]), month_codes(alerts["period"])
        asof = keys.positions(hcode, months, strict=False)
        names = [n for n in triggers.record_fields() if n in records.columns]
        before = records[names].take(np.clip(asof, 0, None)).reset_index(drop=True)
        for n in names:
            before.loc[asof < 0, n] = pd.NA
        fired = triggers.fired_frame(alerts, before if len(records) else None)
        summary.triggered = int(pc.sum(pc.greater(pc.list_value_length(fired), 0)).as_py() or 0)
        t = step("triggers", t)
        # ---- merge
        merged, provenance, unmatched, group = merge_frame_groups(records, alerts, keys)
        summary.households, summary.unmatched = len(merged), len(unmatched)
        summary.matched = len(alerts) - len(unmatched)
        t = step("merge", t)
        # ---- previous periods: the latest valid record before the month, within 12 months
        merged_months = month_codes(merged["period"])
        prev = keys.positions(keys.codes(merged["household_id"]), merged_months, strict=True)
        record_months = month_codes(records["period"])
        gap = (
            merged_months - record_months[np.clip(prev, 0, None)] if len(records) else merged_months
        )
        prev = np.where((prev >= 0) & is_previous_gap(gap), prev, -1)
        t = step("previous", t)
        decided = _score(merged, records, prev, group, fired, runner, out_dir, summary)
        t = step("score", t)
    finally:
        runner.close()
        shutil.rmtree(tmpdir, ignore_errors=True)
    _write_alerts(alerts, fired, group, decided, unmatched, out_dir)
    merged.to_parquet(out_dir / "records.parquet", index=False)
    provenance.to_parquet(out_dir / "provenance.parquet", index=False)
    step("write", t)
    summary.seconds = time.perf_counter() - t0
    return summary


def check_and_score_task(
    batch: pa.RecordBatch, history: np.ndarray
) -> tuple[np.ndarray, tuple[np.ndarray, list[str]] | None, pa.Table, int]:
    """Merged records validated as the batch engine's pass 2 (``validate_task``; one record
    per household and month, so no repeats), then its decisions of the valid ones
    (``score_task``): valid mask, (rejected rows, reasons) or None, decisions, reds."""
    valid, rej = validate_task(batch, np.full(batch.num_rows, -1, np.int64), False)
    bad = None
    if rej is not None:
        bad = (rej["row"].to_numpy(), rej["reasons"].to_pylist())
        batch, history = batch.filter(pa.array(valid)), history[:, valid]
    table, _, red = score_task(batch, history, False)
    return valid, bad, table, red


def _score(merged, records, prev, group, fired, runner, out_dir, summary) -> dict[str, np.ndarray]:
    """Validate and decide the merged records in chunks (workers); decisions written as they come."""
    n = len(merged)
    fields = merged[list(schema.FIELD_NAMES)]
    group_triggers = _group_triggers(group, fired, n)
    decided = {
        "decision_id": np.full(n, None, dtype=object),
        "risk_level": np.full(n, None, dtype=object),
        "flagged": np.zeros(n, dtype=bool),
        "reason": np.full(n, None, dtype=object),
    }
    # each record's numeric fields and its month, as the batch engine stores a lag
    numeric = np.column_stack(
        [numeric_matrix(records), period_months(records["period"].to_numpy(dtype=object))]
    )

    def args() -> Iterator[tuple[Any, ...]]:
        for k, batch in enumerate(_batches(fields, CHUNK_ROWS)):
            p = prev[k * CHUNK_ROWS : k * CHUNK_ROWS + batch.num_rows]
            previous = np.full((len(p), numeric.shape[1]), np.nan)
            previous[p >= 0] = numeric[p[p >= 0]]
            # lag 1 only (lags x rows x fields): the alerts' merge knows one previous period
            yield batch, previous[None]

    writer = pq.ParquetWriter(out_dir / "decisions.parquet", DECISIONS_SCHEMA)
    alert_ids, alert_count = merged["alert_ids"].to_numpy(), merged["alert_count"].to_numpy()
    try:
        for k, (ok, bad, table, red) in enumerate(runner.map(check_and_score_task, args())):
            if bad is not None:
                for r, why in zip(bad[0].tolist(), bad[1], strict=True):
                    decided["reason"][k * CHUNK_ROWS + r] = NOT_SCORED + why
            pos = k * CHUNK_ROWS + np.flatnonzero(ok)
            triggers = group_triggers.take(pa.array(pos))
            flags = np.asarray(table["flagged"].to_numpy(zero_copy_only=False), dtype=bool)
            lead = flags | (pc.list_value_length(triggers).to_numpy(zero_copy_only=False) > 0)
            table = (
                table.append_column("alert_ids", pa.array(alert_ids[pos], pa.string()))
                .append_column("alert_count", pa.array(alert_count[pos], pa.int64()))
                .append_column("triggers", triggers)
                .append_column("lead", pa.array(lead))
            )
            writer.write_table(table.cast(DECISIONS_SCHEMA))
            decided["decision_id"][pos] = table["decision_id"].to_numpy(zero_copy_only=False)
            decided["risk_level"][pos] = table["risk_level"].to_numpy(zero_copy_only=False)
            decided["flagged"][pos] = flags
            summary.scored += len(pos)
            summary.flagged += int(flags.sum())
            summary.red += red
            summary.leads += int(lead.sum())
    finally:
        writer.close()
    summary.not_scored = n - summary.scored
    return decided


def _group_triggers(group: np.ndarray, fired: pa.ListArray, n: int) -> pa.ListArray:
    """The triggers of each merged record: its alerts' (in alert order), once each."""
    counts = pc.list_value_length(fired).to_numpy(zero_copy_only=False)
    owner = np.repeat(group, counts)
    ids = pc.list_flatten(fired).to_numpy(zero_copy_only=False)
    keep = owner >= 0
    owner, ids = owner[keep], ids[keep]
    codes, names = pd.factorize(ids)
    order = np.argsort(owner, kind="stable")  # alert order kept within a merged record
    owner, codes = owner[order], codes[order]
    _, first = np.unique(owner * max(len(names), 1) + codes, return_index=True)
    first = np.sort(first)  # the first time a record meets a trigger, in that order
    owner, codes = owner[first], codes[first]
    offsets = np.r_[0, np.cumsum(np.bincount(owner, minlength=n))].astype(np.int32)
    values = pa.array(np.asarray(names, dtype=object)[codes], pa.string())
    return pa.ListArray.from_arrays(pa.array(offsets), values)


def _write_alerts(alerts, fired, group, decided, unmatched, out_dir: Path) -> None:
    """alerts.parquet (every alert, its decision and triggers) and unmatched.parquet."""
    table = pa.Table.from_pandas(alerts, preserve_index=False)
    has = group >= 0
    g = np.clip(group, 0, None)

    def of_group(name: str, missing: Any) -> np.ndarray:
        values = decided[name][g] if len(decided[name]) else np.full(len(g), missing, object)
        return np.where(has, values, missing)

    reason = of_group("reason", None)
    reason[~has] = unmatched["reason"].to_numpy(dtype=object)  # merge_frame keeps their order
    table = (
        table.append_column("matched", pa.array(has))
        .append_column("decision_id", pa.array(of_group("decision_id", None), pa.string()))
        .append_column("risk_level", pa.array(of_group("risk_level", None), pa.string()))
        .append_column(
            "flagged", pa.array(np.where(has, of_group("flagged", False), None), pa.bool_())
        )
        .append_column("triggers", fired)
        .append_column("reason", pa.array(reason, pa.string()))
    )
    pq.write_table(table, out_dir / "alerts.parquet")
    pq.write_table(table.filter(pa.array(~has)), out_dir / "unmatched.parquet")
