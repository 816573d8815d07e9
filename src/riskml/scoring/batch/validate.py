"""Pass 2: one chunk's records against the schema, with repeats from anywhere in the input."""

from __future__ import annotations

import numpy as np
import pandas as pd

from riskml.data import schema
from riskml.data.reference import ReferenceLines
from riskml.data.side_inputs import side_problems
from riskml.scoring.batch.errors import BatchError

# the words of a repeated (household_id, period), followed by the first record's row
DUPLICATE_RULE = schema.DUPLICATE_RULE_PREFIX


def validate_chunk(
    df: pd.DataFrame, earlier: np.ndarray, lines: ReferenceLines | None = None
) -> tuple[np.ndarray, list[int], list[str]]:
    """Valid mask, rejected positions and their reasons for one chunk.

    ``earlier`` gives, per row, the input position of the first record with
    the same (household_id, period) anywhere in the input (-1 for none):
    ``schema.validate_frame`` sees only this chunk, so it words the repeats
    with these positions, as it would on the whole file. Reasons are worded as
    ``schema.split_valid``'s. With ``lines``, a record otherwise valid whose
    province and year have no line in force (``ReferenceLines.uncovered``) is
    rejected on its ``period``.
    """
    problems = schema.validate_frame(df, earlier=earlier)
    problems.extend(side_problems(df))
    missing = [p for p in problems if p.row < 0]
    if missing:
        raise BatchError("; ".join(f"{p.field}: {p.rule}" for p in missing))
    n = len(df)
    if lines is not None:
        problems.extend(_line_problems(df, problems, lines))
    reasons: dict[int, list[str]] = {}
    for p in problems:
        reasons.setdefault(p.row, []).append(p.reason)
    valid = np.ones(n, dtype=bool)
    bad = sorted(reasons)
    valid[bad] = False
    return valid, bad, ["; ".join(reasons[i]) for i in bad]


def _line_problems(
    df: pd.DataFrame, problems: list[schema.Problem], lines: ReferenceLines
) -> list[schema.Problem]:
    """A problem on ``period`` for each otherwise valid row without a line in force."""
    bad = {p.row for p in problems}
    rows = np.array([i for i in range(len(df)) if i not in bad], dtype=np.int64)
    if not len(rows):
        return []
    county = df["county_code"].to_numpy(dtype=object)[rows].tolist()
    period = df["period"].to_numpy(dtype=object)[rows].tolist()
    hid = df["household_id"].to_numpy(dtype=object)
    return [
        schema.Problem(
            int(rows[j]), schema.pseudonymous_id(hid[rows[j]]), "period", period[j], rule
        )
        for j, rule in lines.uncovered(county, period).items()
    ]
