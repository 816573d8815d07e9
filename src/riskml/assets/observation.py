"""The asset-year observation: what the asset-risk model scores, one row per asset and year.

A row is the asset's register record as of the end of ``year`` (the scalar fields of the
asset record contract: ids, category, subtype, values, owner, rights, operator, contract,
caretaker, fund, status) beside that year's figures (income, return rate = income / original
value, months idle, maintenance spent, inspection result, damage) and the income, return rate
and months idle of the two years before (``*_lag1``, ``*_lag2``). Missing stays missing: a
year not observed (the asset's first years), an asset not inspected, an income a public-welfare
asset does not have are nulls, never zeros.

The list fields of the record (funding sources, beneficiary households) are not part of the
observation: the model does not use them and they stay in the register.

The simulated panel (riskml.assets.simulate) adds the label ``adverse_next`` (idle, or the
return rate below the floor, the next year; null where the next year is not observed) and the
oracle ``oracle_p`` (its true probability).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from riskml.assets.world import CATEGORIES, FORMS, MODES, OWNER_TYPES, RIGHTS, STATUSES, SUBTYPES

INSPECTION_RESULTS = ("good", "fair", "poor")
LABEL = "adverse_next"
ORACLE = "oracle_p"


@dataclass(frozen=True)
class Field:
    name: str
    kind: str  # str | int | float | date | choice
    required: bool = False
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    doc: str = ""


F = Field
RECORD_FIELDS: tuple[Field, ...] = (
    F("asset_id", "str", True, doc="the asset's register id"),
    F("project_id", "str", doc="the project that built it"),
    F("build_year", "int", True, minimum=1980, maximum=2100),
    F("category", "choice", True, CATEGORIES),
    F("subtype", "choice", True, SUBTYPES),
    F("form", "choice", True, FORMS),
    F("original_value", "float", True, minimum=0, doc="yuan"),
    F("book_value", "float", minimum=0, doc="yuan, after depreciation"),
    F("county_code", "str", True),
    F("village_code", "str"),
    F("owner_type", "choice", True, OWNER_TYPES),
    F("owner", "str"),
    F("rights_status", "choice", True, RIGHTS),
    F("accepted_date", "date"),
    F("rights_date", "date"),
    F("operator", "str"),
    F("operating_mode", "choice", True, MODES),
    F("contract_start", "date"),
    F("contract_end", "date"),
    F("guaranteed_return_rate", "float", minimum=0, maximum=1),
    F("caretaker", "str"),
    F("maintenance_fund", "float", minimum=0, doc="yuan a year"),
    F("status", "choice", True, STATUSES),
)
YEAR_FIELDS: tuple[Field, ...] = (
    F("year", "int", True, minimum=1980, maximum=2100, doc="the year the figures are of"),
    F("income", "float", doc="yuan earned in the year (null: not an income-generating asset)"),
    F("return_rate", "float", minimum=-1, maximum=10, doc="income / original value"),
    F("months_idle", "int", minimum=0, maximum=12),
    F("maintenance_spent", "float", minimum=0, doc="yuan"),
    F("inspection_result", "choice", choices=INSPECTION_RESULTS, doc="null: not inspected"),
    F("damage", "float", minimum=0, doc="yuan of disaster damage"),
    F("income_lag1", "float"),
    F("income_lag2", "float"),
    F("return_rate_lag1", "float", minimum=-1, maximum=10),
    F("return_rate_lag2", "float", minimum=-1, maximum=10),
    F("months_idle_lag1", "int", minimum=0, maximum=12),
)
OBSERVATION_FIELDS = RECORD_FIELDS + YEAR_FIELDS
FIELD_NAMES = tuple(f.name for f in OBSERVATION_FIELDS)
SIMULATION_FIELDS = (LABEL, ORACLE)


def dates(col: pd.Series) -> pd.Series:
    """A date column as datetimes (ISO strings or datetimes in; unreadable → NaT)."""
    if pd.api.types.is_datetime64_any_dtype(col):
        return col
    codes, uniques = pd.factorize(col, use_na_sentinel=True)
    parsed = pd.to_datetime(pd.Series(uniques, dtype=object), errors="coerce", format="ISO8601")
    values = parsed.to_numpy()
    out = np.full(len(col), np.datetime64("NaT"), dtype="datetime64[ns]")
    ok = codes >= 0
    out[ok] = values[codes[ok]]
    return pd.Series(out, index=col.index)


def problems(frame: pd.DataFrame, limit: int = 20) -> list[str]:
    """What is wrong with an observation frame, each naming the row (index) and the field."""
    out: list[str] = []
    missing = [f.name for f in OBSERVATION_FIELDS if f.required and f.name not in frame.columns]
    if missing:
        return [f"missing column(s): {', '.join(missing)}"]
    for f in OBSERVATION_FIELDS:
        if f.name not in frame.columns:
            continue
        col = frame[f.name]
        null = col.isna().to_numpy()
        bad = np.zeros(len(col), bool)
        what = ""
        if f.required:
            bad |= null
            what = "is required"
        if f.kind == "choice":
            wrong = ~null & ~col.isin(f.choices).to_numpy()
            if wrong.any():
                bad |= wrong
                what = f"must be one of {', '.join(f.choices)}"
        elif f.kind in ("int", "float"):
            num = pd.to_numeric(col, errors="coerce").to_numpy(dtype=float)
            wrong = ~null & np.isnan(num)
            if f.minimum is not None:
                wrong |= ~np.isnan(num) & (num < f.minimum)
            if f.maximum is not None:
                wrong |= ~np.isnan(num) & (num > f.maximum)
            if wrong.any():
                bad |= wrong
                what = f"must be a number in [{f.minimum}, {f.maximum}]"
        elif f.kind == "date":
            wrong = ~null & dates(col).isna().to_numpy()
            if wrong.any():
                bad |= wrong
                what = "must be a date (YYYY-MM-DD)"
        for i in np.flatnonzero(bad)[: max(0, limit - len(out))]:
            out.append(f"row {frame.index[i]}: field {f.name} {what}")
        if len(out) >= limit:
            break
    return out
