"""The values of one batch of records as float arrays with a 'known' mask (missing is never zero).

Shares are +inf when net income is ≤ 0 and spending is positive; drops are
known only when the previous value is known and positive.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from riskml.data.columns import Columns
from riskml.data.label import net_income_of
from riskml.data.periods import parse_date_month
from riskml.data.reference import ReferenceLines
from riskml.data.schema import FIELD_NAMES
from riskml.policy.rules.values import VALUES

__all__ = ["Context"]


class Context:
    """Values of one batch as float arrays with a 'known' mask, computed on demand and cached."""

    def __init__(
        self,
        df: Columns,
        previous: Columns | None,
        lines: ReferenceLines,
        on: Any,
    ):
        self.df = df
        self.previous = previous
        self.n = len(df)
        self._cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.province = df.province()
        period_month = df.month()
        self._period_month = period_month
        self.year = period_month // 12
        if on is None:
            self.month = period_month
        else:
            self.month = np.full(self.n, parse_date_month(on), dtype=np.int64)
        self._lines = lines

    def _line_arrays(self) -> None:
        mon, dib = self._lines.line_arrays(self.province, self.year, self._period_month)
        for col, v in (("monitoring_line", mon), ("dibao_line", dib)):
            self._cache[col] = (v, ~np.isnan(v))

    def _column(self, frame: Columns | None, name: str) -> tuple[np.ndarray, np.ndarray]:
        if frame is None or name not in frame:
            return np.full(self.n, np.nan), np.zeros(self.n, dtype=bool)
        v = frame[name]
        return v, ~np.isnan(v)

    def get(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        hit = self._cache.get(name)
        if hit is not None:
            return hit
        out = self._compute(name)
        self._cache[name] = out
        return out

    def _compute(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        if name in ("monitoring_line", "dibao_line"):
            self._line_arrays()
            return self._cache[name]
        if name in FIELD_NAMES and not VALUES[name].derived:
            return self._column(self.df, name)
        if name.startswith("prev_") and name[5:] in FIELD_NAMES:
            return self._column(self.previous, name[5:])
        if name == "net_income":
            return _known(net_income_of(lambda c: self.get(c)[0]))
        if name == "pc_net_income":
            return _known(self.get("net_income")[0] / self.get("household_size")[0])
        if name == "prev_net_income":
            return _known(net_income_of(lambda c: self.get(c)[0], prefix="prev_"))
        if name == "prev_pc_net_income":
            return _known(self.get("prev_net_income")[0] / self.get("prev_household_size")[0])
        if name == "medical_share":
            return _share(self.get("medical_expense")[0], self.get("net_income")[0])
        if name == "education_share":
            return _share(self.get("education_expense")[0], self.get("net_income")[0])
        if name == "loss_share":
            return _share(self.get("disaster_loss")[0], self.get("net_income")[0])
        if name == "rigid_share":
            rigid = self.get("medical_expense")[0] + self.get("education_expense")[0]
            return _share(rigid, self.get("net_income")[0])
        if name == "pc_net_income_after_rigid":
            net = self.get("net_income")[0]
            rigid = self.get("medical_expense")[0] + self.get("education_expense")[0]
            return _known((net - rigid) / self.get("household_size")[0])
        if name == "income_drop":
            return _drop(self.get("net_income")[0], self.get("prev_net_income")[0])
        if name == "pc_income_drop":
            return _drop(self.get("pc_net_income")[0], self.get("prev_pc_net_income")[0])
        raise KeyError(f"no value named {name!r}")  # pragma: no cover (validated on load)


def _known(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    v = np.asarray(v, dtype=np.float64)
    return v, ~np.isnan(v)


def _share(spend: np.ndarray, net: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """spend / net; +inf when net ≤ 0 and spend > 0; 0 when spend is 0; NaN when either is missing."""
    known = ~np.isnan(spend) & ~np.isnan(net)
    out = np.full(spend.shape, np.nan)
    pos = known & (net > 0)
    np.divide(spend, net, out=out, where=pos)
    nonpos = known & ~pos
    out[nonpos & (spend > 0)] = np.inf
    out[nonpos & (spend <= 0)] = 0.0
    return out, known


def _drop(now: np.ndarray, prev: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(prev − now) / prev, known only when both are known and prev > 0."""
    known = ~np.isnan(now) & ~np.isnan(prev) & (prev > 0)
    out = np.full(now.shape, np.nan)
    np.divide(prev - now, prev, out=out, where=known)
    return out, known
