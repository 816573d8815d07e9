"""Records as one NumPy array per field: what features, rules and decisions compute on.

A frame is the natural container for a panel, but pandas costs tens of
microseconds per column operation whatever the number of rows: for the
service's one-record request that was most of the time spent deciding.
``Columns`` holds the same records as plain arrays (numbers, counts and flags
as float64 with NaN for missing; text as object arrays with None for missing),
built once per request from the validated JSON records or once per batch
from a canonical frame, so training, batch and the service share one
implementation of the features and the rules at any size.

Derived keys every consumer needs (province, year and month of each record)
are computed once per ``Columns`` and cached on it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from riskml.data.periods import parse_period
from riskml.data.schema import FIELDS
from riskml.data.side_inputs import SIDE_FIELDS

TEXT_FIELDS = frozenset(f.name for f in FIELDS if f.kind == "str")


class Columns:
    """Records as arrays by field name (see the module docstring).

    ``records`` keeps the source dicts when the columns were built from JSON
    records, so a decision can quote the values exactly as received.
    """

    __slots__ = ("_arrays", "n", "records", "_cache")

    def __init__(
        self,
        arrays: Mapping[str, np.ndarray],
        n: int,
        records: Sequence[Mapping[str, Any]] | None = None,
    ):
        self._arrays = dict(arrays)
        self.n = n
        self.records = records
        self._cache: dict[str, np.ndarray] = {}

    # ------------------------------------------------------------------ building
    @classmethod
    def from_records(
        cls,
        records: Sequence[Mapping[str, Any] | None],
        names: Sequence[str] | None = None,
        *,
        validated: bool = False,
    ) -> Columns:
        """Records as dicts of JSON values (None, or a missing key, for missing; None for no record).

        Numeric fields are checked to hold numbers (never text), unless ``validated``:
        records that passed ``schema.record_problems`` are not checked twice.
        """
        fields = names if names is not None else [f.name for f in FIELDS]
        rows = [r if r is not None else {} for r in records]
        arrays: dict[str, np.ndarray] = {}
        for name in fields:
            values = [r.get(name) for r in rows]
            if name in TEXT_FIELDS:
                arr = np.empty(len(values), dtype=object)
                arr[:] = values
            else:
                try:
                    if not validated and any(isinstance(v, str | bytes) for v in values):
                        raise TypeError  # NumPy would read "12" as 12.0: never coerce text
                    arr = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
                except (TypeError, ValueError):
                    raise ValueError(_not_a_number(values, name)) from None
            arrays[name] = arr
        keep = records if all(r is not None for r in records) else None
        return cls(arrays, len(rows), keep)

    @classmethod
    def from_frame(cls, df: pd.DataFrame) -> Columns:
        """The record fields and side inputs a frame holds (other columns are left out)."""
        arrays: dict[str, np.ndarray] = {}
        for f in (*FIELDS, *SIDE_FIELDS):
            if f.name not in df.columns:
                continue
            s = df[f.name]
            if f.kind == "str":
                arrays[f.name] = s.to_numpy(dtype=object, na_value=None)
            else:
                arrays[f.name] = _as_float(s)
        return cls(arrays, len(df))

    # ------------------------------------------------------------------ access
    def __getitem__(self, name: str) -> np.ndarray:
        return self._arrays[name]

    def __contains__(self, name: object) -> bool:
        return name in self._arrays

    def __len__(self) -> int:
        return self.n

    def with_array(self, name: str, values: np.ndarray) -> Columns:
        """These columns and one more (a side input joined onto the records), as new Columns."""
        if len(values) != self.n:
            raise ValueError(f"{name}: {len(values)} values for {self.n} records")
        return Columns({**self._arrays, name: values}, self.n, self.records)

    @property
    def names(self) -> list[str]:
        return list(self._arrays)

    def floats(self, name: str) -> np.ndarray:
        """A numeric field (NaN where missing); all NaN when the records lack the field."""
        arr = self._arrays.get(name)
        return np.full(self.n, np.nan) if arr is None else arr

    # ------------------------------------------------------------------ derived keys
    def province(self) -> np.ndarray:
        """Province code (the first two digits of county_code) as int64, per record."""
        if "province" not in self._cache:
            self._cache["province"] = _per_unique(
                self._arrays["county_code"], "county_code", lambda u: int(str(u)[:2])
            )
        return self._cache["province"]

    def month(self) -> np.ndarray:
        """``period`` as a month count (year × 12 + month − 1), int64, per record."""
        if "month" not in self._cache:
            self._cache["month"] = _per_unique(self._arrays["period"], "period", parse_period)
        return self._cache["month"]

    def year(self) -> np.ndarray:
        return self.month() // 12


def as_columns(data: pd.DataFrame | Columns | None) -> Columns | None:
    """``data`` as Columns (converted once when it is a frame)."""
    if data is None or isinstance(data, Columns):
        return data
    return Columns.from_frame(data)


def _not_a_number(values: list[Any], name: str) -> str:
    for i, v in enumerate(values):
        try:
            if isinstance(v, str | bytes):
                raise TypeError
            float(np.nan if v is None else v)
        except (TypeError, ValueError):
            return f"record {i}: field {name}: must be a number or null, got {type(v).__name__}"
    return f"field {name}: must hold numbers or null"  # pragma: no cover


def _as_float(s: pd.Series) -> np.ndarray:
    arr = s.array
    if isinstance(arr, np.ndarray) and arr.dtype == np.float64:
        return arr
    try:
        return arr.to_numpy(dtype="float64", na_value=np.nan)
    except (TypeError, ValueError, AttributeError):
        return pd.to_numeric(s, errors="coerce").astype("float64").to_numpy(na_value=np.nan)


def _per_unique(values: np.ndarray, name: str, fn: Any) -> np.ndarray:
    """``fn`` of each distinct value, spread back to every record (int64)."""
    n = len(values)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if n <= 8:  # a request: no hashing machinery
        if any(v is None for v in values):
            raise ValueError(f"{name} is missing in some records")
        return np.array([fn(v) for v in values], dtype=np.int64)
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    if (codes < 0).any():
        raise ValueError(f"{name} is missing in some records")
    mapped = np.array([fn(u) for u in uniques], dtype=np.int64)
    return mapped[codes]
