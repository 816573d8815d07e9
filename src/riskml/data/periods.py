"""Monitoring periods (``YYYY-MM``) as month numbers, for look-backs and look-aheads."""

from __future__ import annotations

import numpy as np
import pandas as pd


def month_index(periods: pd.Series) -> pd.Series:
    """``YYYY-MM`` as a month count (year × 12 + month − 1)."""
    s = periods.astype(str)
    return s.str.slice(0, 4).astype(np.int64) * 12 + s.str.slice(5, 7).astype(np.int64) - 1


def year_of(periods: pd.Series) -> pd.Series:
    return periods.astype(str).str.slice(0, 4).astype(np.int64)


def shift_period(period: str, months: int) -> str:
    y, m = int(period[:4]), int(period[5:7])
    k = y * 12 + m - 1 + months
    return f"{k // 12:04d}-{k % 12 + 1:02d}"
