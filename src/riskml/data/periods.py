"""Monitoring periods (``YYYY-MM``) as month numbers, for look-backs and look-aheads.

The one home of month parsing: records' periods (``parse_period``, strict
``YYYY-MM``), dates in configuration (``parse_date_month``, ``YYYY-MM`` or
``YYYY-MM-DD``), and whole columns (``month_index``). Digits are ASCII only.
"""

from __future__ import annotations

import datetime as _dt
import re
from typing import Any

import numpy as np
import pandas as pd

PERIOD_RE = re.compile(r"[0-9]{4}-[0-9]{2}")
DATE_RE = re.compile(r"([0-9]{4})-([0-9]{2})(?:-([0-9]{2}))?")


def parse_period(value: Any) -> int:
    """A period ``YYYY-MM`` as a month count (year × 12 + month − 1); ValueError naming the value."""
    text = value if isinstance(value, str) else str(value)
    if not PERIOD_RE.fullmatch(text) or not 1 <= int(text[5:7]) <= 12:
        raise ValueError(f"period must be written YYYY-MM, got {value!r}")
    return int(text[:4]) * 12 + int(text[5:7]) - 1


def period_or(value: Any, default: int) -> int:
    """``parse_period`` for a value that may be anything (a bad or missing period gives ``default``)."""
    if not isinstance(value, str):
        return default
    try:
        return parse_period(value)
    except ValueError:
        return default


def parse_date_month(value: Any) -> int:
    """``YYYY-MM`` or ``YYYY-MM-DD`` (string or date) as a month count; only the month counts."""
    if isinstance(value, _dt.datetime | _dt.date):
        return value.year * 12 + value.month - 1
    if not isinstance(value, str):
        raise ValueError(f"must be a date written YYYY-MM or YYYY-MM-DD, got {value!r}")
    m = DATE_RE.fullmatch(value.strip())
    if not m:
        raise ValueError(f"must be a date written YYYY-MM or YYYY-MM-DD, got {value!r}")
    y, mo, d = int(m.group(1)), int(m.group(2)), m.group(3)
    try:
        _dt.date(y, mo, int(d) if d else 1)
    except ValueError:
        raise ValueError(f"is not a real date: {value!r}") from None
    return y * 12 + mo - 1


def month_text(month: int) -> str:
    """A month count as ``YYYY-MM``."""
    return f"{month // 12:04d}-{month % 12 + 1:02d}"


def month_index(periods: pd.Series) -> pd.Series:
    """``YYYY-MM`` as a month count (year × 12 + month − 1), for a column of valid periods."""
    s = periods.astype(str)
    return s.str.slice(0, 4).astype(np.int64) * 12 + s.str.slice(5, 7).astype(np.int64) - 1


def year_of(periods: pd.Series) -> pd.Series:
    return periods.astype(str).str.slice(0, 4).astype(np.int64)


def shift_period(period: str, months: int) -> str:
    return month_text(parse_period(period) + months)
