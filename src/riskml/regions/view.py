"""What the regional pages read: the table from the ledger now, and one area's slice of it.

``ledger_table`` runs ``riskml.regions.run.regional_table`` on the ledger's latest completed
decision of each household and period (with the risk types its result named) and on the case
store's current cases, so the pages show the loop as it stands. The other functions are pure:
they take that table (``riskml.regions.table.COLUMNS``) and pick what a page about one area
shows: its row, its child areas' rows, the trends of the expected count over the periods, the
risk-type mix and the monthly brief (the figures, the top risk types, what changed against the
previous period). Nothing here holds a household id: the table has counts only.

Area codes are the table's: a province ``53``, a prefecture ``532300``, a county ``532328``, a
township ``532328101``, a village ``532328101201``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from riskml.policy.risk_types import RISK_TYPE_CODES
from riskml.regions.reference import DIGITS, LEVELS, RegionReference
from riskml.regions.table import COLUMNS

CHILD = dict(zip(LEVELS[:-1], LEVELS[1:], strict=True))  # province -> prefecture -> ...
TOP_RISK_TYPES = 3
TOP_CHANGES = 3


def area_level(code: str) -> str | None:
    """The level of an area code as the table writes it (None when it names no area)."""
    if not code.isascii() or not code.isdigit():
        return None
    if len(code) == 2:
        return "province"
    if len(code) == 6:
        if code.endswith("0000"):
            return None
        return "prefecture" if code.endswith("00") else "county"
    return {9: "township", 12: "village"}.get(len(code))


def url_code(area: str) -> str:
    """A key's area (2, 4 or 6 digits) as the table codes it: a prefecture ``5323`` -> ``532300``."""
    return area + "00" if len(area) == 4 else area


def ancestors(code: str) -> list[tuple[str, str]]:
    """(level, code) of the areas above ``code``, the province first."""
    level = area_level(code)
    if level is None:
        return []
    out = []
    for lv in LEVELS[: LEVELS.index(level)]:
        digits = code[: DIGITS[lv]]
        out.append((lv, digits + "00" if lv == "prefecture" else digits))
    return out


# --------------------------------------------------------------------------- from the ledger
def ledger_decisions_with_risk_types(ledger: Any) -> pa.Table:
    """The latest completed decision of each household and period (as ``riskml.regions.inputs
    .ledger_decisions``) with the risk types of its result, in the aggregation's columns."""
    from sqlalchemy import select

    from riskml.store.tables import DECISION_ORDER, decisions

    d = decisions.c
    cols = ["household_id", "period", "county_code", "village_code", "score", "flagged",
            "flagged_by", "created_at", "decision_id", "result"]  # fmt: skip
    stmt = select(*[d[c] for c in cols]).where(d.status == "completed")
    with ledger.engine.connect() as conn:
        frame = pd.DataFrame(conn.execute(stmt).all(), columns=cols)
    frame = frame.sort_values(list(DECISION_ORDER)).drop_duplicates(
        ["household_id", "period"], keep="last"
    )
    types = [
        [str(t) for t in ((r or {}).get("risk_types") or [])] if isinstance(r, dict) else []
        for r in frame["result"]
    ]
    score = pd.to_numeric(frame["score"], errors="coerce").to_numpy(dtype=float)
    return pa.table(
        {
            "period": pa.array(frame["period"].astype(str).tolist(), pa.string()),
            "county_code": pa.array(frame["county_code"].astype(str).tolist(), pa.string()),
            "village_code": pa.array(frame["village_code"].astype(str).tolist(), pa.string()),
            "score": pa.array(score, pa.float64(), mask=np.isnan(score)),
            "flagged": pa.array(frame["flagged"].astype(bool).tolist(), pa.bool_()),
            "flagged_by": pa.array(
                [b if isinstance(b, str) else None for b in frame["flagged_by"]], pa.string()
            ),
            "risk_types": pa.array(types, pa.list_(pa.string())),
        }
    )


def ledger_table(
    ledger: Any,
    states: list[dict[str, Any]] | None = None,
    procedure: Any = None,
    reference: RegionReference | None = None,
    now: str | None = None,
) -> pd.DataFrame:
    """The regional table of every area and period from the ledger's decisions and, when
    given, the case store's current states (``CaseStore.current_cases()``) and procedure;
    an empty table (``COLUMNS``) when the ledger holds no completed decision."""
    from riskml.regions.run import regional_table

    decisions = ledger_decisions_with_risk_types(ledger)
    if decisions.num_rows == 0:
        return pd.DataFrame(columns=list(COLUMNS))
    return regional_table(decisions, reference, states=states, procedure=procedure, now=now)


# --------------------------------------------------------------------------- one area
def periods(table: pd.DataFrame) -> list[str]:
    return sorted(set(table["period"])) if len(table) else []


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{k: _plain(v) for k, v in r.items()} for r in frame.to_dict("records")]


def _plain(value: Any) -> Any:
    """pandas' missing values as None, numpy scalars as Python numbers."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    return value.item() if hasattr(value, "item") else value


def area_row(table: pd.DataFrame, code: str, period: str) -> dict[str, Any] | None:
    """The table's row of an area in a period (None when the area has none)."""
    level = area_level(code)
    rows = table[(table["level"] == level) & (table["code"] == code) & (table["period"] == period)]
    return _records(rows)[0] if len(rows) else None


def child_rows(table: pd.DataFrame, code: str | None, period: str) -> list[dict[str, Any]]:
    """The rows of the areas one level below ``code`` in a period, most expected first (ties
    by code); ``code`` None: the provinces. Provinces and prefectures get ``key_counties``
    (national) and ``provincial_key_counties``: how many such counties have a row there."""
    if code is None:
        level, rows = "province", table[table["level"] == "province"]
    else:
        level = CHILD.get(area_level(code) or "", "")
        rows = table[(table["level"] == level) & (table["parent_code"] == code)]
    rows = rows[rows["period"] == period].sort_values(["expected", "code"], ascending=[False, True])
    out = _records(rows)
    if level in ("province", "prefecture"):
        counties = table[(table["level"] == "county") & (table["period"] == period)]
        prefix = DIGITS[level]
        for r in out:
            inside = counties[counties["code"].str.slice(0, prefix) == r["code"][:prefix]]
            r["key_counties"] = int(inside["key_national"].fillna(False).astype(bool).sum())
            r["provincial_key_counties"] = int(
                inside["key_provincial"].fillna(False).astype(bool).sum()
            )
    return out


def trends(table: pd.DataFrame, codes: list[str], level: str) -> dict[str, list[dict[str, Any]]]:
    """Per area code: its expected count with the interval in every period of the table
    (``expected`` None where the area has no row in that period)."""
    every = periods(table)
    rows = table[(table["level"] == level) & table["code"].isin(codes)]
    found = {(r["code"], r["period"]): r for r in _records(rows)}
    out: dict[str, list[dict[str, Any]]] = {}
    for c in codes:
        series = []
        for p in every:
            r = found.get((c, p))
            series.append(
                {
                    "period": p,
                    "expected": r["expected"] if r else None,
                    "low": r["expected_low"] if r else None,
                    "high": r["expected_high"] if r else None,
                }
            )
        out[c] = series
    return out


def risk_mix(row: dict[str, Any]) -> list[dict[str, Any]]:
    """Per risk type: flagged households of the decisions and monitored households of the
    case loop (the order of ``RISK_TYPE_CODES``)."""
    return [
        {
            "risk_type": code,
            "flagged": int(row.get(f"flagged_{code}") or 0),
            "monitored": int(row.get(f"monitored_rt_{code}") or 0),
        }
        for code in RISK_TYPE_CODES
    ]


def top_risk_types(row: dict[str, Any], k: int = TOP_RISK_TYPES) -> list[dict[str, Any]]:
    """The ``k`` risk types with most flagged and monitored households (none when all are 0)."""
    mix = [m for m in risk_mix(row) if m["flagged"] or m["monitored"]]
    mix.sort(key=lambda m: (-(m["flagged"] + m["monitored"]), RISK_TYPE_CODES.index(m["risk_type"])))  # fmt: skip
    return mix[:k]


def previous_period(table: pd.DataFrame, period: str) -> str | None:
    every = periods(table)
    i = every.index(period) if period in every else -1
    return every[i - 1] if i > 0 else None


def brief(table: pd.DataFrame, code: str, period: str) -> dict[str, Any] | None:
    """The monthly brief of an area: its row in ``period`` and in the previous period of the
    table, the top risk types, the risk types that changed most, and the child areas whose
    expected count rose most (None when the area has no row in ``period``)."""
    row = area_row(table, code, period)
    if row is None:
        return None
    before = previous_period(table, period)
    prev = area_row(table, code, before) if before else None
    now_mix = {m["risk_type"]: m for m in risk_mix(row)}
    prev_mix = {m["risk_type"]: m for m in risk_mix(prev)} if prev else {}
    type_changes = []
    if prev:
        for c in RISK_TYPE_CODES:
            delta = now_mix[c]["flagged"] - prev_mix[c]["flagged"]
            if delta:
                type_changes.append({"risk_type": c, "change": delta})
        type_changes.sort(key=lambda m: (-abs(m["change"]), RISK_TYPE_CODES.index(m["risk_type"])))
    children = child_rows(table, code, period) if area_level(code) in CHILD else []
    rising = [
        r for r in children if r.get("expected_change") is not None and r["expected_change"] > 0
    ]
    rising.sort(key=lambda r: (-r["expected_change"], r["code"]))
    return {
        "row": row,
        "previous_period": before,
        "previous": prev,
        "top_risk_types": top_risk_types(row),
        "risk_type_changes": type_changes[:TOP_CHANGES],
        "rising": rising[:TOP_CHANGES],
        "children": len(children),
    }
