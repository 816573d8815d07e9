"""JSON records checked and decided with the ledger's history: the path of ``/score``, of a case
visit's record and of a department alert's merged record (service and ``riskml alerts import``).

``record_refusals`` gives every problem of the records (the schema's, then a line in force),
as ``{index, household_id, field, problem}``; ``decide_records`` decides records that have
none, each with its history from the ledger (``history.earlier_from_ledger``: its
lags 1-3, a few queries for all keys), and gives the results and the ledger
entries (nothing is stored here).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from riskml.data import schema
from riskml.data.columns import Columns
from riskml.data.history import earlier_from_ledger
from riskml.scoring.decide import ModelInfo, decide, ledger_entry

MAX_PROBLEMS = 100


def _problem(index: int | None, field_: str, problem: str, household_id: Any = None) -> dict:
    return {"index": index, "household_id": household_id, "field": field_, "problem": problem}


def record_refusals(households: list[Any], model: Any) -> tuple[str, list[dict], int] | None:
    """(message, the first problems, their total) for records that may not be decided, else None."""
    problems = schema.record_problems(households, limit=MAX_PROBLEMS)
    if problems.total:
        return (
            f"{problems.total} problem(s) in {problems.invalid_records} record(s); nothing was scored",
            [_problem(p.row, p.field, p.rule, p.household_id) for p in problems],
            problems.total,
        )
    uncovered = model.lines.uncovered(
        [r["county_code"] for r in households], [r["period"] for r in households]
    )
    if uncovered:
        found = [
            _problem(i, "period", rule, schema.pseudonymous_id(households[i]["household_id"]))
            for i, rule in uncovered.items()
        ]
        return (
            f"{len(uncovered)} record(s) without a reference line in force; nothing was scored",
            found,
            len(found),
        )
    return None


def decide_records(
    households: list[dict[str, Any]],
    ledger: Any,
    model: Any,
    ruleset: Any,
    info: ModelInfo,
    explain: str = "flagged",
    side: Mapping[str, Callable[[list[str]], np.ndarray]] | None = None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(results, ledger entries) of strictly validated JSON records (``record_refusals`` None).

    ``side``: for each side input the model's features read (``riskml.data.side_inputs``),
    a look-up from the records' household ids to its values (NaN where unknown).
    """
    # strictly validated once: the JSON values are the record (no coercion happened)
    records = Columns.from_records(households, validated=True)
    for name, look_up in (side or {}).items():
        ids = [str(r["household_id"]) for r in households]
        records = records.with_array(name, np.asarray(look_up(ids), dtype=np.float64))
    previous = earlier_from_ledger(ledger, records)
    results = decide(records, previous, model, ruleset, info, explain=explain)
    entries = [ledger_entry(rec, res) for rec, res in zip(households, results, strict=True)]
    return results, entries
