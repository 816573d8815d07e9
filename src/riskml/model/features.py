"""Model features from household records: one function for training, batch and online scoring.

``build_features(records, previous, lines)`` turns canonical records (see
``schema.coerce_frame``), the same households' previous-period records (aligned
row by row; missing where unknown) and the reference lines into a float frame
with the columns ``FEATURE_NAMES``. Missing inputs stay NaN (LightGBM routes
them); nothing is filled with zero. Identifiers and location codes are not
features: a score must not move when only household_id or village_code change.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from riskml.data.columns import Columns, as_columns
from riskml.data.label import INCOME_FIELDS, net_income_of
from riskml.data.reference import ReferenceLines
from riskml.data.schema import FIELDS

PREV_PREFIX = "prev_"

# Record fields used as they are (counts and flags).
RAW_FEATURES: tuple[str, ...] = (
    "household_size",
    "labor_count",
    "elderly_count",
    "children_count",
    "students_compulsory",
    "students_noncompulsory",
    "disabled_count",
    "chronic_ill_count",
    "head_age",
    "head_female",
    "head_education_years",
    "ethnic_minority",
    "formerly_poor",
    "dibao",
    "tekun",
    "relocated",
    "migrant_workers",
    "medical_insured",
    "housing_safe",
    "water_safe",
    "dropout",
)

# Derived features, in order.
DERIVED_FEATURES: tuple[str, ...] = (
    "pc_income_to_line",  # per-capita net income / monitoring line
    "pc_income_to_dibao",  # per-capita net income / rural dibao line
    "adj_pc_income_to_line",  # (net income - medical - education) per capita / line
    "wage_pc_to_line",
    "business_pc_to_line",
    "transfer_pc_to_line",
    "property_pc_to_line",
    "wage_share",  # wages / gross positive income
    "transfer_share",
    "medical_to_income",  # out-of-pocket medical / net income
    "education_to_income",
    "loss_to_income",
    "medical_pc_to_line",
    "education_pc_to_line",
    "loss_pc_to_line",
    "debt_pc_to_line",
    "dependency_ratio",  # (elderly + children) / household size
    "labor_share",  # labour / household size
    "employment_intensity",  # months employed / (12 × labour)
    "migrant_share",  # migrant workers / labour
    "uninsured_ill",  # chronic illness and not every member insured
    "guarantee_gaps",  # unsafe house + unsafe water + dropout + uninsured
    "monitoring_line",  # the local line itself (price level)
    "has_previous",
    "income_change",  # net income / previous net income - 1
    "d_pc_income_to_line",
    "d_medical_pc_to_line",
    "d_employment_intensity",
    "d_household_size",
    "d_labor_count",
)

FEATURE_NAMES: tuple[str, ...] = RAW_FEATURES + DERIVED_FEATURES

# Ratios to income are capped: with income near zero they explode.
RATIO_CAP = 10.0

_NUMERIC_FIELDS = tuple(f.name for f in FIELDS if f.kind != "str")
_REQUIRED = ("county_code", "period", *_NUMERIC_FIELDS)


def _safe_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        out = a / b
    out[~np.isfinite(out) & ~np.isnan(a) & ~np.isnan(b)] = np.nan
    return out


def _ratio_to_income(spend: np.ndarray, income: np.ndarray) -> np.ndarray:
    """Spending as a share of net income, capped; income ≤ 0 with spending > 0 counts as the cap."""
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(income > 0, spend / income, np.where(spend > 0, RATIO_CAP, 0.0))
    r = np.minimum(r, RATIO_CAP)
    r[np.isnan(spend) | np.isnan(income)] = np.nan
    return r


def _core(c: Columns, line: np.ndarray) -> dict[str, np.ndarray]:
    """Per-period features that also serve as the basis of change features."""
    size = c.floats("household_size")
    labor = c.floats("labor_count")
    net = net_income_of(c.floats)
    pc = net / size
    months = c.floats("months_employed")
    medical = c.floats("medical_expense")
    with np.errstate(divide="ignore", invalid="ignore"):
        intensity = np.where(
            labor > 0, months / (12.0 * labor), np.where(np.isnan(labor), np.nan, 0.0)
        )
    return {
        "net": net,
        "pc_income_to_line": pc / line,
        "medical_pc_to_line": medical / size / line,
        "employment_intensity": np.clip(intensity, 0.0, 1.5),
        "household_size": size,
        "labor_count": labor,
    }


def previous_columns() -> list[str]:
    """Names of the optional previous-period columns a scoring input may carry."""
    return [PREV_PREFIX + name for name in _NUMERIC_FIELDS]


def split_previous(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Split an input with optional ``prev_<field>`` columns into (records, previous)."""
    prev_cols = [c for c in df.columns if c.startswith(PREV_PREFIX)]
    if not prev_cols:
        return df, None
    previous = df[prev_cols].rename(columns=lambda c: c[len(PREV_PREFIX) :])
    return df.drop(columns=prev_cols), previous


def join_previous(records: pd.DataFrame, previous: pd.DataFrame | None) -> pd.DataFrame:
    """Records with their previous period as ``prev_<field>`` columns (the model's input)."""
    out = records.copy()
    for name in _NUMERIC_FIELDS:
        col = PREV_PREFIX + name
        if previous is not None and name in previous.columns:
            out[col] = pd.to_numeric(previous[name].astype("float64"), errors="coerce").to_numpy()
        else:
            out[col] = np.nan
    return out


def local_lines(records: pd.DataFrame | Columns, lines: ReferenceLines) -> pd.DataFrame:
    """Monitoring and dibao lines for each record's province and year."""
    c = as_columns(records)
    mon, dib = lines.line_arrays(c.province(), c.year(), c.month())
    return pd.DataFrame({"monitoring_line": mon, "dibao_line": dib})


def feature_arrays(
    records: pd.DataFrame | Columns,
    previous: pd.DataFrame | Columns | None,
    lines: ReferenceLines,
) -> dict[str, np.ndarray]:
    """Every feature of ``FEATURE_NAMES`` as a float64 array (NaN for missing), by name."""
    c = as_columns(records)
    lacking = [name for name in _REQUIRED if name not in c]
    if lacking:
        raise ValueError(f"records lack field(s) the features need: {', '.join(lacking)}")
    n = len(c)
    line, dibao_line = lines.line_arrays(c.province(), c.year(), c.month())
    out: dict[str, np.ndarray] = {name: c.floats(name) for name in RAW_FEATURES}

    cur = _core(c, line)
    size, labor = cur["household_size"], cur["labor_count"]
    net = cur["net"]
    pc = net / size
    medical = c.floats("medical_expense")
    education = c.floats("education_expense")
    loss = c.floats("disaster_loss")
    parts = {name: c.floats(name) for name in INCOME_FIELDS}
    gross = (
        parts["income_wage"] + np.maximum(parts["income_business"], 0) + parts["income_property"]
    )
    gross = gross + parts["income_transfer"]

    out["pc_income_to_line"] = cur["pc_income_to_line"]
    out["pc_income_to_dibao"] = pc / dibao_line
    out["adj_pc_income_to_line"] = (net - medical - education) / size / line
    out["wage_pc_to_line"] = parts["income_wage"] / size / line
    out["business_pc_to_line"] = parts["income_business"] / size / line
    out["transfer_pc_to_line"] = parts["income_transfer"] / size / line
    out["property_pc_to_line"] = parts["income_property"] / size / line
    out["wage_share"] = _safe_div(parts["income_wage"], gross)
    out["transfer_share"] = _safe_div(parts["income_transfer"], gross)
    out["medical_to_income"] = _ratio_to_income(medical, net)
    out["education_to_income"] = _ratio_to_income(education, net)
    out["loss_to_income"] = _ratio_to_income(loss, net)
    out["medical_pc_to_line"] = cur["medical_pc_to_line"]
    out["education_pc_to_line"] = education / size / line
    out["loss_pc_to_line"] = loss / size / line
    out["debt_pc_to_line"] = c.floats("debt") / size / line
    out["dependency_ratio"] = (c.floats("elderly_count") + c.floats("children_count")) / size
    out["labor_share"] = labor / size
    out["employment_intensity"] = cur["employment_intensity"]
    out["migrant_share"] = np.where(labor > 0, _safe_div(c.floats("migrant_workers"), labor), 0.0)
    out["migrant_share"][np.isnan(labor)] = np.nan
    ill = c.floats("chronic_ill_count")
    insured = c.floats("medical_insured")
    out["uninsured_ill"] = np.where(
        np.isnan(ill) | np.isnan(insured), np.nan, (ill > 0) & (insured == 0)
    )
    gaps = np.stack(
        [
            1 - c.floats("housing_safe"),
            1 - c.floats("water_safe"),
            c.floats("dropout"),
            1 - insured,
        ]
    )
    # counts the known gaps; NaN only when none of the four is known
    known_gaps = ~np.isnan(gaps)
    out["guarantee_gaps"] = np.where(
        known_gaps.any(axis=0), np.where(known_gaps, gaps, 0.0).sum(axis=0), np.nan
    )
    out["monitoring_line"] = line

    p = as_columns(previous)
    if p is None:
        prev_known = np.zeros(n, dtype=bool)
        prev = {k: np.full(n, np.nan) for k in cur}
    else:
        if len(p) != n:
            raise ValueError(f"previous has {len(p)} records for {n} records: they must align")
        prev_known = ~np.isnan(p.floats("household_size"))
        # the previous period's values are compared with today's line: a change in
        # the line alone is not a change in the household
        prev = _core(p, line)
    out["has_previous"] = prev_known.astype("float64")
    prev_net = prev["net"]
    with np.errstate(divide="ignore", invalid="ignore"):
        change = np.where(prev_net > 0, net / prev_net - 1.0, np.nan)
    out["income_change"] = np.clip(change, -5.0, 5.0)
    out["d_pc_income_to_line"] = cur["pc_income_to_line"] - prev["pc_income_to_line"]
    out["d_medical_pc_to_line"] = cur["medical_pc_to_line"] - prev["medical_pc_to_line"]
    out["d_employment_intensity"] = cur["employment_intensity"] - prev["employment_intensity"]
    out["d_household_size"] = size - prev["household_size"]
    out["d_labor_count"] = labor - prev["labor_count"]
    return out


def feature_matrix(
    records: pd.DataFrame | Columns,
    previous: pd.DataFrame | Columns | None,
    lines: ReferenceLines,
    names: Sequence[str] = FEATURE_NAMES,
) -> np.ndarray:
    """The features ``names`` as a C-ordered float64 matrix, one row per record."""
    arrays = feature_arrays(records, previous, lines)
    X = np.empty((len(as_columns(records)), len(names)), dtype=np.float64)
    for j, name in enumerate(names):
        X[:, j] = arrays[name]
    return X


def build_features(
    records: pd.DataFrame | Columns,
    previous: pd.DataFrame | Columns | None,
    lines: ReferenceLines,
) -> pd.DataFrame:
    """The model's feature frame (columns ``FEATURE_NAMES``, float64, NaN for missing).

    Indexed like ``records`` when it is a frame.
    """
    arrays = feature_arrays(records, previous, lines)
    frame = pd.DataFrame(
        {name: np.asarray(arrays[name], dtype="float64") for name in FEATURE_NAMES}
    )
    if isinstance(records, pd.DataFrame):
        frame.index = records.index
    return frame
