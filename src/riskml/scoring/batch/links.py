"""Previous periods across chunks: the links between valid rows and the records awaiting use.

``link_previous`` finds, for each valid row, the household's latest earlier
valid record within ``MAX_GAP_MONTHS`` (as positions in the input);
``PreviousStore`` keeps the numeric fields of a previous record from the
chunk where it is read until the chunk of the record that needs it;
``collect_forward`` fills it with the previous records that come *after*
their successor in the file (an extra pass, only when there are any).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from riskml.data import schema
from riskml.data.history import MAX_GAP_MONTHS, is_previous_gap
from riskml.scoring.batch.inputs import NUMERIC_FIELDS, iter_batches, numeric_values
from riskml.scoring.batch.keys import Keys


@dataclass
class Links:
    """For each valid row: the position of its previous record (-1: none) and of its successor."""

    previous: np.ndarray  # position or -1 (int32 below 2**31 rows)
    successor: np.ndarray  # position or -1
    forward: np.ndarray  # positions of previous records that come after their successor


def link_previous(keys: Keys, valid: np.ndarray, max_gap: int = MAX_GAP_MONTHS) -> Links:
    """``history.previous_from_panel`` on the valid rows, as positions in the input.

    One stable sort of a composite key (household code, month) over the valid
    rows; about 20 bytes a row while it runs.
    """
    n = keys.n
    index = np.int32 if n < 2**31 - 1 else np.int64
    previous = np.full(n, -1, dtype=index)
    successor = np.full(n, -1, dtype=index)
    rows = np.flatnonzero(valid).astype(index)
    forward = np.zeros(0, dtype=np.int64)
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
        consumer = rows[order[has + 1]]
        producer = rows[order[has]]
        del order, has
        previous[consumer] = producer
        successor[producer] = consumer
        forward = np.sort(producer[producer > consumer]).astype(np.int64)
    return Links(previous, successor, forward)


class PreviousStore:
    """Numeric fields of previous records waiting for their successor, keyed by the successor.

    A growable float64 table with a free list: memory is what is waiting,
    not the file.
    """

    def __init__(self, n: int, width: int):
        self.slot = np.full(n, -1, dtype=np.int32 if n < 2**31 - 1 else np.int64)
        self.values = np.zeros((0, width))
        self.free: list[np.ndarray] = []
        self.width = width
        self.peak = 0
        self.in_use = 0

    def put(self, successors: np.ndarray, values: np.ndarray) -> None:
        k = len(successors)
        if k == 0:
            return
        slots = self._take(k)
        self.values[slots] = values
        self.slot[successors] = slots
        self.in_use += k
        self.peak = max(self.peak, self.in_use)

    def pop(self, positions: np.ndarray) -> np.ndarray:
        """Values for ``positions`` (NaN rows where nothing waits) and free their slots."""
        out = np.full((len(positions), self.width), np.nan)
        if len(positions) == 0:
            return out
        slots = self.slot[positions]
        have = slots >= 0
        if have.any():
            out[have] = self.values[slots[have]]
            self.free.append(slots[have])
            self.slot[positions[have]] = -1
            self.in_use -= int(have.sum())
        return out

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


def collect_forward(
    src: Path,
    columns: list[str],
    chunk_rows: int,
    from_csv: bool,
    valid: np.ndarray,
    links: Links,
    store: PreviousStore,
) -> None:
    """Put previous records that come after their successor in the file into the store."""
    forward = links.forward
    offset = 0
    for batch in iter_batches(src, list(schema.FIELD_NAMES), chunk_rows):
        m = batch.num_rows
        lo, hi = np.searchsorted(forward, [offset, offset + m])
        if hi > lo:
            pos = forward[lo:hi]
            local = pos - offset
            sub = pa.Table.from_batches([batch]).take(pa.array(local, type=pa.int64()))
            store.put(links.successor[pos], numeric_values(sub, from_csv))
        offset += m


def previous_frame(values: np.ndarray) -> pd.DataFrame:
    """Previous-period values (rows aligned with the records) as the frame ``decide`` takes."""
    return pd.DataFrame(values, columns=list(NUMERIC_FIELDS))
