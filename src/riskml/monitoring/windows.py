"""Monitoring windows and the decisions in them.

**Windows** are half-open ranges of ``created_at`` (UTC). The previous window
has the same length and ends where the window starts, unless given. Within a
window only completed decisions count, and a household-period scored more
than once counts once (its latest decision).

The previous-period record of a window's decision is looked up exactly as the
service does it (``previous_for``: ``history.earlier_from_ledger``, lags 1-3).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, timedelta
from typing import Any

import numpy as np
import pandas as pd

from riskml.data import schema
from riskml.data.history import earlier_from_ledger
from riskml.store.tables import DECISION_ORDER


def utc_timestamp(value: Any) -> pd.Timestamp:
    """``value`` as a UTC timestamp (a naive one is taken as UTC)."""
    ts = pd.Timestamp(value)
    return ts.tz_localize(UTC) if ts.tzinfo is None else ts.tz_convert(UTC)


@dataclass
class Window:
    since: pd.Timestamp
    until: pd.Timestamp
    previous_since: pd.Timestamp
    previous_until: pd.Timestamp

    @classmethod
    def make(
        cls,
        since: Any = None,
        until: Any = None,
        window_days: int | None = 30,
        previous_since: Any = None,
        previous_until: Any = None,
    ) -> Window:
        end = utc_timestamp(until) if until is not None else pd.Timestamp.now(tz=UTC)
        start = (
            utc_timestamp(since) if since is not None else end - timedelta(days=window_days or 30)
        )
        if start >= end:
            raise ValueError(f"the window is empty: since {start} is not before until {end}")
        p_until = utc_timestamp(previous_until) if previous_until is not None else start
        p_since = (
            utc_timestamp(previous_since) if previous_since is not None else p_until - (end - start)
        )
        return cls(start, end, p_since, p_until)

    def as_dict(self) -> dict[str, str]:
        return {k: v.isoformat() for k, v in asdict(self).items()}


def completed_decisions(frame: pd.DataFrame) -> pd.DataFrame:
    """Completed decisions, one per (household_id, period): the latest in the ledger's order."""
    if frame.empty:
        return frame
    done = frame[frame["status"] == "completed"]
    done = done.sort_values(list(DECISION_ORDER), kind="stable")
    return done.drop_duplicates(["household_id", "period"], keep="last").reset_index(drop=True)


@dataclass
class WindowDecisions:
    """The ledger rows of a window and its previous window.

    ``everything``: every decision from the previous window's start to the
    window's end (any status); ``current`` and ``previous``: the completed ones
    of each window (``completed_decisions``); ``failed``: failed decisions in
    the window.
    """

    everything: pd.DataFrame
    current: pd.DataFrame
    previous: pd.DataFrame
    failed: int


def window_decisions(ledger: Any, window: Window) -> WindowDecisions:
    """Read the decisions of ``window`` and its previous window from the ledger."""
    everything = ledger.decisions_frame(
        window.previous_since.to_pydatetime(), window.until.to_pydatetime(), expand_records=False
    )
    in_cur = (
        (everything["created_at"] >= window.since).to_numpy()
        if len(everything)
        else np.zeros(0, bool)
    )
    in_prev = (
        (everything["created_at"] < window.previous_until).to_numpy()
        if len(everything)
        else np.zeros(0, bool)
    )
    current = completed_decisions(everything[in_cur]) if len(everything) else everything
    previous = completed_decisions(everything[in_prev]) if len(everything) else everything
    failed = int((everything.loc[in_cur, "status"] == "failed").sum()) if len(everything) else 0
    return WindowDecisions(everything, current, previous, failed)


def decision_records(frame: pd.DataFrame) -> pd.DataFrame:
    """The contract records of ledger decisions (as received), as a frame."""
    return schema.records_to_frame([r or {} for r in frame["record"]])


def previous_for(ledger: Any, records: pd.DataFrame) -> list | None:
    """Lags 1-3 as the service would have used them (``history.earlier_from_ledger``)."""
    return earlier_from_ledger(ledger, records)


__all__ = [
    "Window",
    "WindowDecisions",
    "completed_decisions",
    "decision_records",
    "previous_for",
    "utc_timestamp",
    "window_decisions",
]
