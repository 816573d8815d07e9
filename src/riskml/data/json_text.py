"""JSON text of records, results and reports: the one encoder, with one NaN policy.

Every JSON riskml writes (the ledger's columns, batch output columns, reports,
model metadata, problem lists) goes through ``plain`` / ``dumps``: numpy scalars
are unwrapped, NaN, infinities, ``pd.NA`` and ``NaT`` become ``null`` (JSON has
no NaN), dates become ISO strings, pydantic models their JSON dump; anything
else is a TypeError naming its type.
"""

from __future__ import annotations

import json
import math
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["JsonText", "dumps", "encode", "plain"]


def plain(value: Any) -> Any:
    """JSON-safe plain Python: numpy scalars unwrapped, NaN/inf and pd.NA to None."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain(v) for v in value]
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return plain(float(value))
    if isinstance(value, np.ndarray):
        return [plain(v) for v in value.tolist()]
    if value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if hasattr(value, "model_dump"):  # a pydantic model
        return plain(value.model_dump(mode="json"))
    raise TypeError(f"a value of type {type(value).__name__} cannot be stored as JSON")


def dumps(value: Any, *, indent: int | None = None) -> str:
    """``value`` as JSON text (UTF-8 kept, compact unless ``indent``), through ``plain``."""
    separators = (",", ":") if indent is None else (",", ": ")
    return json.dumps(
        plain(value), ensure_ascii=False, allow_nan=False, separators=separators, indent=indent
    )


class JsonText(str):
    """A value already encoded as JSON (``encode``); a database serializer passes it through."""


def encode(value: Any) -> JsonText | None:
    """``value`` as JSON text, exactly as ``dumps`` writes it (None stays None), fast.

    The C encoder takes plain values directly, which a request's records and
    results are; only values it refuses (NaN, numpy arrays, odd keys) take the
    slow path through ``plain``.
    """
    if value is None:
        return None
    try:
        return JsonText(
            json.dumps(
                value,
                ensure_ascii=False,
                allow_nan=False,
                separators=(",", ":"),
                default=plain,  # numpy scalars, pd.NA, dates; TypeError otherwise
            )
        )
    except (ValueError, TypeError):
        return JsonText(dumps(value))


def serialize(value: Any) -> str:
    """A database engine's JSON serializer: ``JsonText`` as it is, anything else through ``dumps``."""
    return str(value) if isinstance(value, JsonText) else dumps(value)
