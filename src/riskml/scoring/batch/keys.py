"""Pass 1: the keys (``household_id``, ``period``) of every input row, and global duplicates.

Household codes and months feed the previous-period links (``links``); the
duplicates mark a later record of a (household_id, period) seen anywhere
earlier in the file, whatever the chunk size.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from riskml.data.periods import period_or
from riskml.scoring.batch.inputs import iter_batches
from riskml.scoring.batch.memory import release_arrow_memory


@dataclass
class Keys:
    """Household codes, months and global duplicates of every input row (by position)."""

    n: int
    household: np.ndarray  # int32 code per row; -1 where missing
    month: np.ndarray  # int32 year*12 + month - 1; -1 where period is missing or malformed
    earlier: np.ndarray  # int64: the first row with the same (household_id, period); -1 for none

    @property
    def duplicate(self) -> np.ndarray:
        """True for a later record of a (household_id, period) seen before."""
        return self.earlier >= 0


def scan_keys(path: str | Path, chunk_rows: int) -> Keys:
    """Read ``household_id`` and ``period`` chunk by chunk: codes, months, global duplicates.

    Each chunk is dictionary-encoded as it is read and the dictionaries are
    unified at the end, so only the distinct ids are kept as text (4 bytes
    a row for the codes).
    """
    hids: list[pa.DictionaryArray] = []
    periods: list[pa.DictionaryArray] = []
    for batch in iter_batches(path, ["household_id", "period"], chunk_rows):
        hids.append(pc.dictionary_encode(as_string(batch.column(0))))
        periods.append(pc.dictionary_encode(as_string(batch.column(1))))
    n = sum(len(a) for a in hids)
    if n == 0:
        empty = np.zeros(0, dtype=np.int32)
        return Keys(0, empty, empty, np.zeros(0, dtype=np.int64))
    hid_codes, _ = _unified_codes(hids, with_dictionary=False)
    del hids
    period_codes, uniques = _unified_codes(periods)
    del periods
    month_of = np.array([period_or(p, -1) for p in uniques] + [-1], dtype=np.int32)
    month = month_of[period_codes]  # -1 (missing) indexes the trailing -1
    earlier = _first_of_repeats(hid_codes, period_codes)
    release_arrow_memory()
    return Keys(n, hid_codes, month, earlier)


def _first_of_repeats(hid_codes: np.ndarray, period_codes: np.ndarray) -> np.ndarray:
    """For a row whose (household, period) appeared in an earlier row (both present), that
    first row; -1 for every other row."""
    n = len(hid_codes)
    bits = max(1, int(period_codes.max(initial=0) + 1).bit_length())
    key = hid_codes.astype(np.int64)
    key <<= bits
    key |= period_codes.astype(np.int64) + 1
    incomplete = np.flatnonzero((hid_codes < 0) | (period_codes < 0))
    key[incomplete] = -1 - np.arange(len(incomplete))  # never equal to another key
    del incomplete
    order = np.argsort(key, kind="stable")  # equal keys keep their row order
    key = key[order]
    repeat = np.zeros(n, dtype=bool)
    repeat[1:] = key[1:] == key[:-1]
    del key
    # the first row of each run of equal keys, spread over the run
    start = np.where(repeat, 0, np.arange(n))
    np.maximum.accumulate(start, out=start)
    earlier = np.full(n, -1, dtype=np.int64)
    earlier[order[repeat]] = order[start[repeat]]
    return earlier


def _unified_codes(
    chunks: list[pa.DictionaryArray], with_dictionary: bool = True
) -> tuple[np.ndarray, list[Any]]:
    """One code per row (int32, -1 for missing) over chunks' dictionaries, and the dictionary."""
    unified = pa.chunked_array(chunks).unify_dictionaries()
    codes = np.empty(sum(len(c) for c in chunks), dtype=np.int32)
    at = 0
    for chunk in unified.chunks:
        m = len(chunk)
        codes[at : at + m] = chunk.indices.fill_null(-1).to_numpy(zero_copy_only=False)
        at += m
    dictionary = (
        unified.chunks[0].dictionary.to_pylist() if with_dictionary and unified.num_chunks else []
    )
    return codes, dictionary


def as_string(a: pa.Array | pa.ChunkedArray) -> pa.Array:
    """A key column as one string array: text as it is, anything else (e.g. numbers, which the
    validator rejects) as text marked with a leading NUL, so it never equals a real key."""
    if isinstance(a, pa.ChunkedArray):
        a = a.combine_chunks()
    if pa.types.is_string(a.type):
        return a
    if pa.types.is_large_string(a.type) or pa.types.is_dictionary(a.type):
        return a.cast(pa.string())
    # not text (e.g. numbers): the validator rejects these rows; keep them apart
    return pa.array([None if v is None else f"\x00{v}" for v in a.to_pylist()], type=pa.string())
