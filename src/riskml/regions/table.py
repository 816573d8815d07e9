"""The regional table: one row per area and period, every level, from the summed partials.

Columns (``COLUMNS``): the area (``level``, ``code``, names, ``parent_code``), the
decisions (households, scored, flagged by rules and by the model, flagged households by
risk type), the expected number falling below the line next year with its interval
(``expected_low``/``expected_high``, ``interval``: exact or normal), key-county marks and
East-West supporters, the case loop's counts (``riskml.regions.casework``), the
calibration check once outcomes arrived (``realised`` against ``expected_outcome`` over the
households with an outcome, its interval and whether it holds the realised count), and
changes against the previous period of the table (``<column>_change``; empty where the
area had no row in that period).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from riskml.regions.aggregate import DISTS, RISK_TYPE_COLUMNS, rollup
from riskml.regions.casework import CASE_SUMS, CURRENT_ONLY
from riskml.regions.interval import intervals
from riskml.regions.reference import DIGITS, LEVELS, PARENT, RegionReference

CHANGED = ("households", "flagged", "expected", "monitored", "confirmed", "eliminated")
COLUMNS = (
    "level", "code", "name_zh", "name_en", "parent_code", "period",
    "households", "scored", "flagged", "flagged_rules", "flagged_model",
    "expected", "expected_low", "expected_high", "interval", "level_of_interval",
    *RISK_TYPE_COLUMNS, "key_national", "key_provincial", "supported_by",
    *(c for c in CASE_SUMS if c != "confirm_days"), "days_to_confirm",
    "with_outcome", "realised", "expected_outcome", "outcome_low", "outcome_high",
    "realised_in_interval",
    *(f"{c}_change" for c in CHANGED),
)  # fmt: skip


def _code_text(level: str, codes: np.ndarray) -> pd.Series:
    digits = DIGITS[level]
    text = pd.Series(codes.astype(np.int64)).astype(str).str.zfill(digits)
    return text + "00" if level == "prefecture" else text


def _one_level(level: str, f: pd.DataFrame, ref: RegionReference, conf: float) -> pd.DataFrame:
    codes = _code_text(level, f["code"].to_numpy())
    out = pd.DataFrame({"level": level, "code": codes.to_numpy(), "period": f["period"].to_numpy()})
    names = [ref.name(level, c) for c in out["code"]]
    out["name_zh"] = [n[0] for n in names]
    out["name_en"] = [n[1] for n in names]
    parent = PARENT[level]
    out["parent_code"] = (
        [c[: DIGITS[parent]] + ("00" if parent == "prefecture" else "") for c in out["code"]]
        if parent
        else ""
    )
    for col in f.columns:
        if col not in ("period", "code", *DISTS):
            out[col] = f[col].to_numpy()
    dist = f["dist"].tolist() if "dist" in f else [None] * len(f)
    low, high, method = intervals(f["scored"].to_numpy(), f["expected"].to_numpy(), f["variance"].to_numpy(), dist, conf)  # fmt: skip
    out["expected_low"], out["expected_high"], out["interval"] = low, high, method
    out["level_of_interval"] = conf
    d_o = f["dist_outcome"].tolist() if "dist_outcome" in f else [None] * len(f)
    lo, ho, _ = intervals(f["with_outcome"].to_numpy(), f["expected_outcome"].to_numpy(), f["variance_outcome"].to_numpy(), d_o, conf)  # fmt: skip
    has = f["with_outcome"].to_numpy() > 0
    out["outcome_low"] = pd.Series(lo, dtype="Int64").where(has)
    out["outcome_high"] = pd.Series(ho, dtype="Int64").where(has)
    realised = out["realised"].to_numpy()
    out["realised_in_interval"] = pd.Series(
        (realised >= lo) & (realised <= ho), dtype="boolean"
    ).where(has)
    if level in ("county", "township", "village"):
        county = out["code"].str.slice(0, 6)
        out["key_national"] = county.isin(ref.national_key.keys()).to_numpy()
        out["key_provincial"] = county.isin(ref.provincial_key.keys()).to_numpy()
    else:
        out["key_national"] = pd.array([pd.NA] * len(out), dtype="boolean")
        out["key_provincial"] = pd.array([pd.NA] * len(out), dtype="boolean")
    out["supported_by"] = (
        [" ".join(ref.supported_by(c)) for c in out["code"]] if level == "province" else ""
    )
    return out


def _changes(table: pd.DataFrame) -> pd.DataFrame:
    periods = sorted(table["period"].unique())
    previous = dict(zip(periods[1:], periods[:-1], strict=True))
    prev = table[["level", "code", "period", *CHANGED]].copy()
    prev["period"] = prev["period"].map({v: k for k, v in previous.items()})
    prev = prev.dropna(subset=["period"])
    merged = table[["level", "code", "period"]].merge(
        prev, on=["level", "code", "period"], how="left", suffixes=("", "_prev")
    )
    for col in CHANGED:
        table[f"{col}_change"] = table[col].to_numpy(dtype=float) - merged[col].to_numpy(dtype=float)  # fmt: skip
    return table


def _dist_or_empty(d: object, n: float) -> object:
    missing = d is None or (np.isscalar(d) and pd.isna(d))
    return np.ones(1) if missing and n == 0 else (None if missing else d)


def finish(
    villages: pd.DataFrame,
    reference: RegionReference,
    cases: pd.DataFrame | None = None,
    confidence: float = 0.90,
) -> pd.DataFrame:
    """The table (``COLUMNS``) from the villages' partials and, optionally, the case counts
    per (period, village code) of ``casework.case_sums`` for the same periods."""
    v = villages
    if cases is not None and len(cases):
        cases = cases[cases["period"].isin(set(v["period"]))]
        v = v.merge(cases, on=["period", "code"], how="outer")
    for col, count in zip(DISTS, ("scored", "with_outcome"), strict=True):
        # an area with cases but no decision in a period: nothing scored, a count of 0
        n = v[count].fillna(0).to_numpy()
        v[col] = pd.Series(
            [_dist_or_empty(d, k) for d, k in zip(v[col], n, strict=True)], dtype=object
        )
    for col in v.columns:
        if col in DISTS:
            continue
        elif col not in ("period", "code"):
            v[col] = v[col].fillna(0)
    for col in CASE_SUMS:
        if col not in v:
            v[col] = 0
    levels = rollup(v)
    table = pd.concat([_one_level(lv, levels[lv], reference, confidence) for lv in LEVELS], ignore_index=True)  # fmt: skip
    confirmed = table["confirmed"].to_numpy(dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        table["days_to_confirm"] = np.where(confirmed > 0, table["confirm_days"] / confirmed, np.nan)  # fmt: skip
    latest = table["period"].max()
    for col in CURRENT_ONLY:
        table[col] = table[col].astype("Int64").where(table["period"] == latest)
    table = _changes(table)
    for col in table.columns:
        if col.startswith(("households", "scored", "flagged", "monitored", "confirmed",
                           "eliminated", "with_outcome", "realised")) and not col.endswith("_change") and col != "realised_in_interval":  # fmt: skip
            table[col] = table[col].astype(np.int64)
    order = {lv: i for i, lv in enumerate(LEVELS)}
    table = table.sort_values(["level", "code", "period"], key=lambda s: s.map(order) if s.name == "level" else s)  # fmt: skip
    return table[list(COLUMNS)].reset_index(drop=True)
