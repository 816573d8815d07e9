"""Worker processes: their set-up, the validation and scoring tasks, and the runner.

Workers are started with spawn, so ``init_worker``, ``validate_task`` and
``score_task`` are module-level functions (pickled by module path). With
``workers=0`` the runner calls the same tasks in this process, with the
caller's model as it is.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from riskml.data import schema
from riskml.model.risk_model import RiskModel
from riskml.policy.rules import RuleSet
from riskml.scoring.batch.errors import BatchError
from riskml.scoring.batch.inputs import typed_frame
from riskml.scoring.batch.links import lag_frames
from riskml.scoring.batch.memory import libc, release_arrow_memory
from riskml.scoring.batch.scorer import Scorer
from riskml.scoring.batch.validate import validate_chunk
from riskml.scoring.decide import ModelInfo

_STATE: dict[str, Any] = {}


def init_worker(
    model_dir: str,
    rules_text: str,
    rules_source: str,
    info: tuple[str, str],
    explain: str,
    with_ledger: bool,
    numba_threads: int,
) -> None:
    libc()
    if numba_threads:
        with contextlib.suppress(Exception):
            import numba

            numba.set_num_threads(numba_threads)
    model = RiskModel.load(model_dir)
    from riskml.model.tree_engine import TreeEngine

    TreeEngine.for_booster(model.booster)  # compile and check once, before the first chunk
    _STATE["scorer"] = Scorer(
        model,
        RuleSet.from_text(rules_text, source=rules_source),
        ModelInfo(*info),
        explain,  # type: ignore[arg-type]
        with_ledger,
    )


def validate_task(
    batch: pa.RecordBatch, earlier: np.ndarray, from_csv: bool
) -> tuple[np.ndarray, pa.Table | None]:
    """Valid mask and the rejected rows (input columns + ``row`` local + ``reasons``)."""
    df = typed_frame(batch, from_csv)
    valid, bad, reasons = validate_chunk(df, earlier, _STATE["scorer"].model.lines)
    del df
    if not bad:
        release_arrow_memory()
        return valid, None
    rej = pa.Table.from_batches([batch]).take(pa.array(bad, type=pa.int64()))
    rej = rej.add_column(0, "row", pa.array(bad, type=pa.int64()))
    rej = rej.append_column("reasons", pa.array(reasons, type=pa.string()))
    release_arrow_memory()
    return valid, rej


def score_task(
    batch: pa.RecordBatch, history: np.ndarray | None, from_csv: bool
) -> tuple[pa.Table, list[dict[str, Any]] | None, int]:
    """Decisions of a chunk's valid records; ``history``: their lags' stored values
    (lags × rows × ``links.STORED_WIDTH``) or None."""
    scorer: Scorer = _STATE["scorer"]
    # the record fields and the side inputs the run reads (``_score_args``)
    records = schema.coerce_frame(typed_frame(batch, from_csv))
    prev = lag_frames(history) if history is not None else None
    table, entries = scorer.score(records, prev)
    red = int(pc.sum(pc.equal(table["risk_level"], "red")).as_py() or 0)
    release_arrow_memory()
    return table, entries, red


class Runner:
    """Runs tasks in worker processes (in input order, a few chunks ahead) or in this process."""

    def __init__(self, workers: int, initargs: tuple[Any, ...], scorer: Scorer):
        self.workers = workers
        self.pool: ProcessPoolExecutor | None = None
        if workers > 0:
            import multiprocessing as mp

            self.pool = ProcessPoolExecutor(
                max_workers=workers,
                mp_context=mp.get_context("spawn"),
                initializer=init_worker,
                initargs=initargs,
            )
        else:
            _STATE["scorer"] = scorer  # in this process: the model as it is, no copy

    def map(self, fn: Callable[..., Any], args: Iterator[tuple[Any, ...]]) -> Iterator[Any]:
        """fn(*a) for each a, results in order; at most workers + 1 tasks in flight."""
        if self.pool is None:
            for a in args:
                yield fn(*a)
            return
        pending: deque[Future[Any]] = deque()
        try:
            for a in args:
                pending.append(self.pool.submit(fn, *a))
                if len(pending) > self.workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        except BrokenProcessPool as exc:
            raise BatchError(
                "the worker processes stopped or could not start (a script that scores with "
                "workers must call it under `if __name__ == '__main__':`; workers=0 runs in "
                f"this process): {exc}"
            ) from exc

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
