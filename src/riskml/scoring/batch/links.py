"""Earlier records across chunks: the lag links between valid rows and the records awaiting use.

``link_previous`` finds, for each valid row, its lags 1..``HISTORY_LAGS`` (the
household's chain of previous periods, ``history.chain_positions``) as
positions in the input, and for each row the last row that uses it;
``PreviousStore`` keeps the numeric fields (and the month) of a record from the
chunk where it is read until the chunk of its last user; ``collect_forward``
fills it with the records that come *after* a row that uses them (an extra
pass, only when there are any).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from riskml.data import schema
from riskml.data.history import (
    HISTORY_LAGS,
    HISTORY_MONTHS,
    MAX_GAP_MONTHS,
    chain_positions,
    is_previous_gap,
    month_periods,
    period_months,
)
from riskml.scoring.batch.inputs import NUMERIC_FIELDS, iter_batches, numeric_values
from riskml.scoring.batch.keys import Keys

STORED_WIDTH = len(NUMERIC_FIELDS) + 1  # the numeric fields and the month


@dataclass
class Links:
    """For each valid row: the positions of its lags (-1: none) and of its last user."""

    lags: list[np.ndarray]  # per lag: position or -1 (int32 below 2**31 rows)
    last_use: np.ndarray  # the last row that uses this one as a lag, or -1
    forward: np.ndarray  # positions of records used by a row that comes before them

    @property
    def previous(self) -> np.ndarray:
        """Lag 1: the previous period's position, or -1."""
        return self.lags[0]


def link_previous(
    keys: Keys,
    valid: np.ndarray,
    max_gap: int = MAX_GAP_MONTHS,
    lags: int = HISTORY_LAGS,
    history_months: int = HISTORY_MONTHS,
) -> Links:
    """``history.earlier_from_panel`` on the valid rows, as positions in the input.

    One stable sort of a composite key (household code, month) over the valid
    rows; about 20 bytes a row while it runs.
    """
    n = keys.n
    index = np.int32 if n < 2**31 - 1 else np.int64
    previous = np.full(n, -1, dtype=index)
    rows = np.flatnonzero(valid).astype(index)
    if len(rows) > 1:
        month = keys.month[rows].astype(np.int64)
        low = int(month.min())
        bits = max(1, int(month.max() - low).bit_length())
        key = keys.household[rows].astype(np.int64)
        key <<= bits
        key |= month - low
        del month
        order = np.argsort(key, kind="stable").astype(index)
        key = key[order]  # sorted: households together, months rising
        gap = np.diff(key)  # the month gap where two neighbours are the same household
        key >>= bits
        same = key[1:] == key[:-1]
        del key
        has = np.flatnonzero(same & is_previous_gap(gap, max_gap))  # the one rule
        del same, gap
        previous[rows[order[has + 1]]] = rows[order[has]]
        del order, has
    chain = chain_positions(previous, keys.month, lags, history_months)
    del previous
    last_use = np.full(n, -1, dtype=index)
    forward: list[np.ndarray] = []
    for lag in chain:
        users = np.flatnonzero(lag >= 0).astype(index)
        used = lag[users]
        np.maximum.at(last_use, used, users)
        forward.append(used[used > users])
    ahead = np.unique(np.concatenate(forward)).astype(np.int64) if forward else np.zeros(0, int)
    return Links(chain, last_use, ahead)


class PreviousStore:
    """Numeric fields and month of records waiting for their users, keyed by their position.

    A growable float64 table with a free list: memory is what is waiting,
    not the file.
    """

    def __init__(self, n: int, width: int = STORED_WIDTH):
        self.slot = np.full(n, -1, dtype=np.int32 if n < 2**31 - 1 else np.int64)
        self.values = np.zeros((0, width))
        self.free: list[np.ndarray] = []
        self.width = width
        self.peak = 0
        self.in_use = 0

    def put(self, positions: np.ndarray, values: np.ndarray) -> None:
        """Keep ``values`` (rows) under ``positions``; positions kept already are left as they are."""
        new = self.slot[positions] < 0
        if not new.all():
            positions, values = positions[new], values[new]
        k = len(positions)
        if k == 0:
            return
        slots = self._take(k)
        self.values[slots] = values
        self.slot[positions] = slots
        self.in_use += k
        self.peak = max(self.peak, self.in_use)

    def get(self, positions: np.ndarray) -> np.ndarray:
        """Values kept for ``positions`` (NaN rows for -1 or nothing kept)."""
        out = np.full((len(positions), self.width), np.nan)
        if len(positions) == 0:
            return out
        slots = np.where(positions >= 0, self.slot[np.maximum(positions, 0)], -1)
        have = slots >= 0
        if have.any():
            out[have] = self.values[slots[have]]
        return out

    def release(self, positions: np.ndarray) -> None:
        """Free the slots of ``positions`` (those kept; repeats allowed)."""
        positions = np.unique(positions)
        slots = self.slot[positions]
        have = slots >= 0
        if have.any():
            self.free.append(slots[have])
            self.slot[positions[have]] = -1
            self.in_use -= int(have.sum())

    def _take(self, k: int) -> np.ndarray:
        got: list[np.ndarray] = []
        need = k
        while need and self.free:
            f = self.free.pop()
            got.append(f[:need])
            if len(f) > need:
                self.free.append(f[need:])
            need -= min(need, len(f))
        if need:
            start = len(self.values)
            grow = max(need, start)  # double
            self.values = np.vstack([self.values, np.zeros((grow, self.width))])
            got.append(np.arange(start, start + need))
            if grow > need:
                self.free.append(np.arange(start + need, start + grow))
        return np.concatenate(got)


def stored_values(batch: pa.RecordBatch | pa.Table, from_csv: bool) -> np.ndarray:
    """A chunk's rows as the store keeps them: ``numeric_values`` and the month (float)."""
    period = batch.column(batch.schema.get_field_index("period"))
    months = period_months(np.asarray(period.to_pylist(), dtype=object))
    return np.column_stack([numeric_values(batch, from_csv), months])


def collect_forward(
    src: Path,
    columns: list[str],
    chunk_rows: int,
    from_csv: bool,
    links: Links,
    store: PreviousStore,
) -> None:
    """Put records that come after a row that uses them into the store."""
    forward = links.forward
    offset = 0
    for batch in iter_batches(src, list(schema.FIELD_NAMES), chunk_rows):
        m = batch.num_rows
        lo, hi = np.searchsorted(forward, [offset, offset + m])
        if hi > lo:
            pos = forward[lo:hi]
            local = pos - offset
            sub = pa.Table.from_batches([batch]).take(pa.array(local, type=pa.int64()))
            store.put(pos, stored_values(sub, from_csv))
        offset += m


def previous_frame(values: np.ndarray) -> pd.DataFrame:
    """Stored values of one lag (rows aligned with the records) as the frame ``decide`` takes:
    the numeric fields, and ``period`` when the values carry the month (``STORED_WIDTH``)."""
    frame = pd.DataFrame(values[:, : len(NUMERIC_FIELDS)], columns=list(NUMERIC_FIELDS))
    if values.shape[1] > len(NUMERIC_FIELDS):
        frame["period"] = month_periods(values[:, len(NUMERIC_FIELDS)])
    return frame


def lag_frames(history: np.ndarray) -> list[pd.DataFrame]:
    """A chunk's lags (lags × rows × ``STORED_WIDTH``) as one frame per lag."""
    return [previous_frame(history[k]) for k in range(history.shape[0])]
