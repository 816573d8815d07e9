"""Pass 2: one chunk's records against the schema, with repeats from anywhere in the input."""

from __future__ import annotations

import numpy as np
import pandas as pd

from riskml.data import schema
from riskml.scoring.batch.errors import BatchError

# schema.validate_frame's rule for a repeated (household_id, period); a test checks it is the same
DUPLICATE_RULE = "duplicate record: this household already has a record for this period"


def validate_chunk(
    df: pd.DataFrame, duplicate: np.ndarray
) -> tuple[np.ndarray, list[int], list[str]]:
    """Valid mask, rejected positions and their reasons for one chunk.

    ``duplicate`` marks rows that repeat a (household_id, period) seen earlier
    anywhere in the input: ``schema.validate_frame`` sees only this chunk, so
    repeats across chunks are added here with the same rule, in the order the
    validator reports problems. Reasons are worded as ``schema.split_valid``'s.
    """
    problems = schema.validate_frame(df)
    missing = [p for p in problems if p.row < 0]
    if missing:
        raise BatchError("; ".join(f"{p.field}: {p.rule}" for p in missing))
    n = len(df)
    within = (
        df.duplicated(subset=list(schema.KEY), keep="first")
        & df["household_id"].notna()
        & df["period"].notna()
    ).to_numpy()
    extra = np.flatnonzero(np.asarray(duplicate, dtype=bool) & ~within)
    if len(extra):
        hid = df["household_id"].to_numpy(dtype=object)
        period = df["period"].to_numpy(dtype=object)
        for i in extra:
            h = schema.pseudonymous_id(hid[i])
            problems.append(schema.Problem(int(i), h, "period", period[i], DUPLICATE_RULE))
        order = {name: k for k, name in enumerate(schema.FIELD_NAMES)}
        problems.sort(key=lambda p: (p.row, order.get(p.field, 99)))
    reasons: dict[int, list[str]] = {}
    for p in problems:
        reasons.setdefault(p.row, []).append(p.reason)
    valid = np.ones(n, dtype=bool)
    bad = sorted(reasons)
    valid[bad] = False
    return valid, bad, ["; ".join(reasons[i]) for i in bad]
