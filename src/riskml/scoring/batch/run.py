"""``score_file``: one batch run, step by step (the passes are described in the package docstring).

The steps, in order: check the options and the input; read the keys (pass 1);
start the workers; validate and write the rejects (pass 2); link the previous
periods and collect those that come after their successor; score in input
order, writing the output and recording the decisions in the ledger (pass 3);
move the files into place and clean up.
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from riskml.data import schema
from riskml.data.side_inputs import SIDE_NAMES
from riskml.model.features import side_inputs_of
from riskml.model.risk_model import RiskModel
from riskml.policy.rules import RuleSet
from riskml.scoring.batch.errors import BatchError
from riskml.scoring.batch.inputs import (
    DEFAULT_CHUNK_ROWS,
    input_columns,
    input_format,
    iter_batches,
)
from riskml.scoring.batch.keys import Keys, scan_keys
from riskml.scoring.batch.links import (
    Links,
    PreviousStore,
    collect_forward,
    link_previous,
    stored_values,
)
from riskml.scoring.batch.memory import libc, release_arrow_memory
from riskml.scoring.batch.output import (
    OUTPUT_SCHEMA,
    decisions_table,
    default_rejects_path,
    rejects_schema,
    tmp_path,
    writer_for,
)
from riskml.scoring.batch.scorer import Scorer
from riskml.scoring.batch.summary import BatchSummary
from riskml.scoring.batch.workers import Runner, score_task, validate_task
from riskml.scoring.decide import ExplainMode, ModelInfo

LEDGER_ROWS = 25_000  # decisions per ledger transaction
AUTO_WORKERS_ROWS = 50_000  # workers=None: worker processes from this many input rows
EXPLAIN_MODES = ("flagged", "all", "none")

ProgressFn = Callable[[str, int, int], None]  # (stage, rows done, rows in total)


def default_caller() -> str:
    """``batch:<user>`` (the operating-system user), or ``batch:cli``."""
    try:
        user = getpass.getuser()
    except Exception:
        user = ""
    user = "".join(ch for ch in user if ch.isalnum() or ch in "-_.") or "cli"
    return f"batch:{user}"


def default_workers() -> int:
    """Worker processes by default: one per CPU (at most 8); none (in-process) on one CPU."""
    cpus = os.cpu_count() or 1
    return 0 if cpus < 2 else min(cpus, 8)


def score_file(
    input_path: str | Path,
    out: str | Path,
    *,
    model: RiskModel,
    info: ModelInfo,
    ruleset: RuleSet | None = None,
    explain: ExplainMode = "flagged",
    rejects: str | Path | None = None,
    ledger_url: str | None = None,
    caller: str | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    workers: int | None = 0,
    progress: ProgressFn | None = None,
    run_id: str | None = None,
) -> BatchSummary:
    """Score a Parquet or CSV file of household records into a Parquet file of decisions.

    See the package docstring (``riskml.scoring.batch``). ``rejects`` (Parquet,
    or CSV by suffix) defaults to ``<out>.rejects.parquet`` beside the output and
    is always written (empty when every row is valid). ``ledger_url`` records
    every decision in the decision ledger with ``caller`` (default
    ``batch:<user>``) under a run id: ``run_id``, by default ``derive_run_id``
    (the input's bytes, the model, the rules, the explanation mode). A rerun of
    a run that crashed is the same run and stores each (household_id, period)
    once: it decides every record again, stores those the ledger lacks and
    writes, for the others, the decision the ledger holds (its id and result).
    A new run of the same file needs another ``run_id``. ``workers``: 0 decides
    in this process; N > 0 in N worker
    processes (started with spawn: a script calling this must do so under
    ``if __name__ == "__main__":``); None picks ``default_workers()`` for inputs
    of ``AUTO_WORKERS_ROWS`` rows or more and 0 below (starting workers costs
    seconds).
    """
    t_start = time.perf_counter()
    libc()
    _check_options(explain, chunk_rows)
    model = model.in_force()  # its own lines, the operated table for the years it lacks
    src = _existing_file(input_path)
    from_csv = input_format(src) == "csv"
    out_path = Path(out)
    rejects_path = Path(rejects) if rejects is not None else default_rejects_path(out_path)
    ruleset = ruleset if ruleset is not None else RuleSet.load()
    source = _Input(src, _checked_columns(src, model), from_csv, chunk_rows)
    summary = BatchSummary(
        output=str(out_path),
        rejects=str(rejects_path),
        workers=workers or 0,
        chunk_rows=chunk_rows,
        explain=explain,
        model_name=info.name,
        model_version=info.version,
        rules_version=ruleset.version,
    )
    report = progress or (lambda stage, done, total: None)
    ledger = _open_ledger(ledger_url)
    log = _DecisionLog(ledger, caller or default_caller(), run_id)
    if ledger is not None:
        try:
            log.begin(src, info, ruleset.version, explain)
        except BaseException:
            ledger.close()
            raise
        summary.timings["ledger_already_stored"] = 0.0  # a count: stored by an earlier attempt

    tmpdir = Path(tempfile.mkdtemp(prefix="riskml-batch-"))
    out_path.parent.mkdir(parents=True, exist_ok=True)
    rejects_path.parent.mkdir(parents=True, exist_ok=True)
    out_tmp, rejects_tmp = tmp_path(out_path), tmp_path(rejects_path)
    runner = None
    try:
        model_dir = tmpdir / "model"
        initargs = _worker_initargs(model_dir, ruleset, info, explain, ledger is not None)
        keys = _read_keys(source, summary, report)
        summary.workers = workers = _worker_count(workers, keys.n)
        scorer = Scorer(model, ruleset, info, explain, ledger is not None)
        runner = _start_runner(workers, initargs, scorer, model_dir)
        rejects_csv = rejects_path.suffix.lower() == ".csv"
        valid = _validate(source, keys, runner, rejects_tmp, rejects_csv, summary, report)

        # lag links (previous periods and the chain behind them) among the valid rows
        t = time.perf_counter()
        links = link_previous(keys, valid)
        del keys  # not needed any more: free them before previous records wait in the store
        store = _previous_store(source, valid, links, summary)
        summary.timings["links"] = time.perf_counter() - t

        _score(source, valid, links, store, runner, out_tmp, log, summary, report)
        out_tmp.replace(out_path)
        rejects_tmp.replace(rejects_path)
    finally:
        _clean_up(runner, (out_tmp, rejects_tmp), tmpdir, ledger)
    summary.seconds = time.perf_counter() - t_start
    summary.rows_per_s = summary.rows_read / summary.seconds if summary.seconds > 0 else 0.0
    return summary


# --------------------------------------------------------------------------- before the passes
@dataclass
class _Input:
    """The input file of a run: where, its columns, its format, the chunk size."""

    src: Path
    columns: list[str]
    from_csv: bool
    chunk_rows: int


def _check_options(explain: str, chunk_rows: int) -> None:
    if explain not in EXPLAIN_MODES:
        raise ValueError(f"explain must be one of {EXPLAIN_MODES}, got {explain!r}")
    if chunk_rows < 1:
        raise ValueError("chunk_rows must be at least 1")


def _existing_file(input_path: str | Path) -> Path:
    src = Path(input_path)
    if not src.exists():
        raise BatchError(f"no such file: {src}")
    return src


def _checked_columns(src: Path, model: RiskModel) -> list[str]:
    """The input's columns, every field of the schema and every side input the model's
    features read among them."""
    columns = input_columns(src)
    lacking = [name for name in schema.FIELD_NAMES if name not in columns]
    if lacking:
        raise BatchError(f"{src}: column(s) missing from the file: {', '.join(lacking)}")
    side = [c for c in side_inputs_of(model.feature_names) if c not in columns]
    if side:
        raise BatchError(
            f"{src}: the model's features read the side input(s) {', '.join(side)}, which "
            "the file lacks: add them with `riskml assets income RECORDS --out FILE`"
        )
    return columns


def _open_ledger(ledger_url: str | None) -> Any:
    if not ledger_url:
        return None
    from riskml.store.ledger import Ledger

    return Ledger(ledger_url)


def _ruleset_text(ruleset: RuleSet) -> str:
    """The rules file's text (the version hashes it: the same text gives the same version)."""
    path = Path(ruleset.source)
    if path.exists():
        text = path.read_text(encoding="utf-8")
        if RuleSet.from_text(text, ruleset.source).version == ruleset.version:
            return text
    raise BatchError(
        f"cannot read the rules file {ruleset.source!r} back with version {ruleset.version}"
    )


def _worker_initargs(
    model_dir: Path, ruleset: RuleSet, info: ModelInfo, explain: str, with_ledger: bool
) -> tuple[Any, ...]:
    """``init_worker``'s arguments (numba threads 0; set when the workers start)."""
    return (
        str(model_dir),
        _ruleset_text(ruleset),
        ruleset.source,
        (info.name, info.version),
        explain,
        with_ledger,
        0,
    )


# --------------------------------------------------------------------------- pass 1: keys
def _read_keys(source: _Input, summary: BatchSummary, report: ProgressFn) -> Keys:
    t = time.perf_counter()
    report("keys", 0, 0)
    keys = scan_keys(source.src, source.chunk_rows)
    n = keys.n
    summary.rows_read = n
    summary.timings["keys"] = time.perf_counter() - t
    report("keys", n, n)
    return keys


def _worker_count(workers: int | None, n: int) -> int:
    if workers is None:
        workers = default_workers() if n >= AUTO_WORKERS_ROWS else 0
    return workers


def _start_runner(
    workers: int, initargs: tuple[Any, ...], scorer: Scorer, model_dir: Path
) -> Runner:
    """The runner; with workers, the model saved for them first."""
    if workers > 0:
        scorer.model.save(model_dir)
        initargs = (*initargs[:-1], 1 if workers > 1 else 0)
    return Runner(workers, initargs, scorer)


# --------------------------------------------------------------------------- pass 2: validation
def _validate(
    source: _Input,
    keys: Keys,
    runner: Runner,
    rejects_tmp: Path,
    rejects_csv: bool,
    summary: BatchSummary,
    report: ProgressFn,
) -> np.ndarray:
    """Validity of every input row; rejects written as they are found."""
    t = time.perf_counter()
    n = keys.n
    valid = np.zeros(n, dtype=bool)
    rej_schema = rejects_schema(source.src, source.columns)
    rej_writer = writer_for(rejects_tmp, rej_schema, rejects_csv)
    done = 0
    report("validate", 0, n)
    offset = 0
    for mask, rej in runner.map(validate_task, _validate_args(source, keys.earlier)):
        m = len(mask)
        valid[offset : offset + m] = mask
        if rej is not None:
            rej = rej.set_column(0, "row", pc.add(rej["row"], pa.scalar(offset, pa.int64())))
            rej_writer.write_table(rej.replace_schema_metadata(None).cast(rej_schema))
        offset += m
        done += m
        report("validate", done, n)
    rej_writer.close()
    release_arrow_memory()
    summary.valid = int(valid.sum())
    summary.rejected = n - summary.valid
    summary.timings["validate"] = time.perf_counter() - t
    return valid


def _validate_args(source: _Input, earlier: np.ndarray) -> Iterator[tuple[Any, ...]]:
    offset = 0
    for batch in iter_batches(source.src, source.columns, source.chunk_rows):
        m = batch.num_rows
        yield batch, earlier[offset : offset + m], source.from_csv
        offset += m


# --------------------------------------------------------------------------- previous periods
def _previous_store(
    source: _Input, valid: np.ndarray, links: Links, summary: BatchSummary
) -> PreviousStore:
    """The store of awaited earlier records, holding those that come after a row using them."""
    store = PreviousStore(len(valid))
    summary.with_previous = int((links.previous >= 0).sum())
    if len(links.forward):
        collect_forward(
            source.src, source.columns, source.chunk_rows, source.from_csv, links, store
        )
    return store


# --------------------------------------------------------------------------- pass 3: scoring
def file_sha256(path: Path) -> str:
    """sha256 (hex) of a file's bytes, read in blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def derive_run_id(input_sha256: str, info: ModelInfo, rules_version: str, explain: str) -> str:
    """A batch run's id: the same input, model, rules and explanation mode make the same run."""
    text = "\n".join(
        ("riskml batch run 1", input_sha256, info.name, info.version, rules_version, explain)
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


class _DecisionLog:
    """Decisions into the ledger (if any) under the run id, one transaction per ``LEDGER_ROWS``.

    A key (household_id, period) the run stored before (a rerun after a crash) is
    not stored again: ``record`` gives back its stored decision by position.
    """

    def __init__(self, ledger: Any, caller: str, run_id: str | None):
        self.ledger = ledger
        self.caller = caller
        self.run_id = run_id or ""
        self.attempt = uuid.uuid4().hex[:8]  # this invocation: request ids differ between reruns
        self.transactions = 0
        self.already_stored = 0

    def begin(self, src: Path, info: ModelInfo, rules_version: str, explain: str) -> None:
        digest = file_sha256(src)
        self.run_id = self.run_id or derive_run_id(digest, info, rules_version, explain)
        try:
            self.ledger.begin_run(
                self.run_id,
                caller=self.caller,
                input_sha256=digest,
                model_name=info.name,
                model_version=info.version,
                rules_version=rules_version,
                explain=explain,
            )
        except Exception as exc:
            raise BatchError(f"cannot begin run {self.run_id} in the ledger: {exc}") from exc

    def record(self, entries: list[dict[str, Any]], summary: BatchSummary) -> dict[int, dict]:
        """Store a chunk's entries; the decisions stored before, by position in ``entries``."""
        existing: dict[int, dict] = {}
        for start in range(0, len(entries), LEDGER_ROWS):
            block = entries[start : start + LEDGER_ROWS]
            try:
                stored = self.ledger.record_run(
                    block,
                    run_id=self.run_id,
                    caller=self.caller,
                    request_id=f"batch-{self.run_id[:16]}-{self.attempt}-{self.transactions:06d}",
                )
            except Exception as exc:
                raise BatchError(
                    f"ledger write failed after {summary.ledger_rows:,} decisions were "
                    f"recorded (run {self.run_id}; run it again to resume): {exc}"
                ) from exc
            existing.update({start + i: d for i, d in stored.existing.items()})
            summary.ledger_rows += len(block)
            self.already_stored += len(stored.existing)
            summary.timings["ledger_already_stored"] = float(self.already_stored)
            self.transactions += 1
        return existing


def _with_stored(
    table: pa.Table, entries: list[dict[str, Any]], existing: dict[int, dict]
) -> pa.Table:
    """The chunk's output rows, those the ledger held already as stored (id and result)."""
    idx = sorted(existing)
    results = [existing[i]["result"] for i in idx]
    if any(r is None for r in results):
        raise BatchError("a decision stored by an earlier attempt of the run has no result")
    places = pd.DataFrame(
        {
            "county_code": [entries[i]["county_code"] for i in idx],
            "village_code": [entries[i]["village_code"] for i in idx],
        }
    )
    stored = decisions_table(results, places)
    take = np.arange(table.num_rows)
    take[idx] = table.num_rows + np.arange(len(idx))
    return pa.concat_tables([table, stored]).take(pa.array(take))


def _score(
    source: _Input,
    valid: np.ndarray,
    links: Links,
    store: PreviousStore,
    runner: Runner,
    out_tmp: Path,
    log: _DecisionLog,
    summary: BatchSummary,
    report: ProgressFn,
) -> None:
    """Decide the valid records in input order: output written, decisions in the ledger."""
    t = time.perf_counter()
    writer = pq.ParquetWriter(out_tmp, OUTPUT_SCHEMA)
    # chunks without valid rows yield None: keep them out of the workers
    chunks = (a for a in _score_args(source, valid, links, store) if a is not None)
    report("score", 0, summary.valid)
    done_rows = 0
    for table, entries, red in runner.map(score_task, chunks):
        if log.ledger is not None and entries:
            existing = log.record(entries, summary)
            if existing:  # a rerun: the ledger's decisions for what it holds already
                table = _with_stored(table, entries, existing)
                red = int(pc.sum(pc.equal(table["risk_level"], "red")).as_py() or 0)
        writer.write_table(table)
        summary.flagged += int(pc.sum(table["flagged"]).as_py() or 0)
        summary.red += red
        done_rows += table.num_rows
        del table, entries
        release_arrow_memory()
        report("score", done_rows, summary.valid)
    writer.close()
    summary.timings["score"] = time.perf_counter() - t
    summary.timings["peak_previous_waiting"] = float(store.peak)


def _score_args(
    source: _Input, valid: np.ndarray, links: Links, store: PreviousStore
) -> Iterator[tuple[Any, ...] | None]:
    """Each chunk's valid records and their lags' values (lags × rows × fields; None: no
    lag), or None for a chunk without valid rows."""
    offset = 0
    names = [*schema.FIELD_NAMES, *(c for c in SIDE_NAMES if c in source.columns)]
    for batch in iter_batches(source.src, names, source.chunk_rows):
        m = batch.num_rows
        ok = valid[offset : offset + m]
        pos = offset + np.flatnonzero(ok)
        start, offset = offset, offset + m
        if len(pos) == 0:
            yield None
            continue
        sub = batch.filter(pa.array(ok)) if not ok.all() else batch
        # this chunk's records that a row of this chunk or a later one uses wait in the store
        wait = links.last_use[pos] >= start
        if wait.any():
            store.put(pos[wait], stored_values(sub, source.from_csv)[wait])
        used = [lag[pos] for lag in links.lags]
        history = None
        if (used[0] >= 0).any():
            history = np.stack([store.get(u) for u in used])
            # records whose last user is in this chunk are not needed any more
            done = np.concatenate([u[u >= 0] for u in used])
            store.release(done[links.last_use[done] < offset])
        yield sub, history, source.from_csv


# --------------------------------------------------------------------------- after the passes
def _clean_up(
    runner: Runner | None, tmp_files: tuple[Path, ...], tmpdir: Path, ledger: Any
) -> None:
    """Stop the workers, remove what is left of the temporary files, close the ledger."""
    if runner is not None:
        runner.close()
    for p in tmp_files:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
    shutil.rmtree(tmpdir, ignore_errors=True)
    if ledger is not None:
        ledger.close()
