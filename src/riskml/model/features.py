"""Model features from household records: one function for training, batch and online scoring.

``build_features(records, previous, lines)`` turns canonical records (see
``schema.coerce_frame``), the same households' earlier records (aligned row by
row; missing where unknown) and the reference lines into a float frame with the
columns ``FEATURE_NAMES``. Missing inputs stay NaN (LightGBM routes them);
nothing is filled with zero. Identifiers and location codes are not features: a
score must not move when only household_id or village_code change.

``previous`` is the history (``riskml.data.history``): None; one frame or
``Columns`` (lag 1, the previous period); a list of them (lags 1, 2, 3, as
``history.earlier_from_panel`` and ``earlier_from_ledger`` give); or a frame
carrying the deeper lags as ``prev2_<field>``/``prev3_<field>`` columns
(``history.history_frame``, ``split_previous``). A lag whose period is known
is used only when the chain rule holds (``history.chain_valid``); a lag 2 or 3
needs the periods along its chain.

History features (``HISTORY_FEATURES``, prefixed ``h_``), over the record
("current") and its valid lags: a lag's per-capita income is compared with
*today's* monitoring line (and 1.5 × today's dibao line), as
``d_pc_income_to_line`` does, so a change in the lines alone is not a change in
the household; ``h_pc_income_to_line_mean``/``_min`` are over the lags,
``_trend`` (slope per year, least squares) and ``_volatility`` (standard
deviation) over the current record and the lags (at least two points);
``h_months_since_*`` count months back from the record to the latest of the
current record and the lags with a disaster loss > 0, a medical shock (medical
spending > 20% of net income) or an income drop (net income below 70% of the
record before it in the chain), NaN when none is found; ``h_n_lags`` (0-3)
tells "no history" from "history, none found". Every other history feature is
NaN without history.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from riskml.data.columns import Columns, as_columns
from riskml.data.history import (
    HISTORY_LAGS,
    HISTORY_MONTHS,
    MAX_GAP_MONTHS,
    chain_valid,
    lag_prefix,
    period_months,
)
from riskml.data.label import INCOME_FIELDS, net_income_of
from riskml.data.reference import ReferenceLines
from riskml.data.schema import FIELDS
from riskml.data.side_inputs import ASSET_INCOME

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

# History features (lags 1-3 of the chain; see the module docstring), in order.
HISTORY_FEATURES: tuple[str, ...] = (
    "h_n_lags",  # valid lags known (0-3)
    "h_pc_income_to_line_l1",  # lag's per-capita net income / today's line
    "h_pc_income_to_line_l2",
    "h_pc_income_to_line_l3",
    "h_pc_income_to_line_mean",  # over the lags
    "h_pc_income_to_line_min",
    "h_pc_income_trend",  # per year, over current + lags
    "h_pc_income_volatility",  # std over current + lags
    "h_lags_below_line",  # lags below today's line
    "h_lags_below_1_5_dibao",  # lags below 1.5 × today's dibao line
    "h_medical_to_income_l1",
    "h_medical_to_income_l2",
    "h_education_to_income_l1",
    "h_education_to_income_l2",
    "h_employment_intensity_l1",
    "h_employment_intensity_l2",
    "h_migrant_share_l1",
    "h_migrant_share_l2",
    "h_months_since_disaster",  # months back to the latest disaster loss > 0
    "h_months_since_medical_shock",  # ... medical spending > 20% of net income
    "h_months_since_income_drop",  # ... net income < 70% of the record before
    "h_d_household_size_l2",  # household size now - at lag 2
    "h_d_household_size_l3",
    "h_d_labor_count_l2",
    "h_d_labor_count_l3",
)

FEATURE_NAMES: tuple[str, ...] = RAW_FEATURES + DERIVED_FEATURES + HISTORY_FEATURES

# Feature options (``features:`` in the training config): used only by a model trained with
# them. Assistance-asset income (side input ``asset_income_expected``, see
# ``riskml.data.side_inputs``): its share of the record's net income, and per capita / line.
ASSET_FEATURES: tuple[str, ...] = (
    "asset_income_share",  # expected asset income / net income
    "asset_pc_to_line",  # expected asset income per capita / monitoring line
)
FEATURE_OPTIONS: dict[str, tuple[str, ...]] = {"asset_income": ASSET_FEATURES}
ALL_FEATURE_NAMES: tuple[str, ...] = FEATURE_NAMES + ASSET_FEATURES


def feature_names_for(options: Sequence[str] = ()) -> tuple[str, ...]:
    """The default features plus those of each option named (``FEATURE_OPTIONS``), in order."""
    unknown = [o for o in options if o not in FEATURE_OPTIONS]
    if unknown:
        raise ValueError(f"unknown feature option(s) {unknown}; known: {sorted(FEATURE_OPTIONS)}")
    extra = tuple(n for o in FEATURE_OPTIONS if o in options for n in FEATURE_OPTIONS[o])
    return FEATURE_NAMES + extra


def side_inputs_of(names: Sequence[str]) -> tuple[str, ...]:
    """The side inputs (``riskml.data.side_inputs``) the features ``names`` read."""
    return (ASSET_INCOME,) if any(n in ASSET_FEATURES for n in names) else ()


MEDICAL_SHOCK_SHARE = 0.2  # medical spending above this share of net income is a shock
INCOME_DROP = 0.3  # net income below (1 - this) × the record before it is a drop

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


class _Lag:
    """One lag of the records: its fields (NaN where the lag is not valid), validity, months back."""

    def __init__(self, cols: Columns, valid: np.ndarray, back: np.ndarray):
        self.cols = cols
        self.valid = valid
        self.back = np.where(valid, back, np.nan)
        self._floats: dict[str, np.ndarray] = {}
        self._core: dict[str, np.ndarray] | None = None

    def floats(self, name: str) -> np.ndarray:
        v = self._floats.get(name)
        if v is None:
            v = self._floats[name] = np.where(self.valid, self.cols.floats(name), np.nan)
        return v

    def core(self, line: np.ndarray) -> dict[str, np.ndarray]:
        """``_core`` of the lag against ``line`` (today's: a change in the line alone is not a
        change in the household); computed once (one ``line`` per ``feature_arrays`` call)."""
        if self._core is None:
            self._core = _core(self, line)  # type: ignore[arg-type]
        return self._core


def _lag_columns(previous: object) -> list[Columns | None]:
    """The lags in ``previous`` (see the module docstring) as Columns, lag 1 first."""
    if previous is None:
        return []
    if isinstance(previous, list | tuple):
        return [as_columns(p) for p in previous[:HISTORY_LAGS]]
    if isinstance(previous, Columns):
        return [previous]
    if not isinstance(previous, pd.DataFrame):
        raise TypeError(f"previous must be a frame, Columns or a list of them, got {previous!r}")
    deeper = [lag_prefix(k) for k in range(2, HISTORY_LAGS + 1)]
    own = [c for c in previous.columns if not any(str(c).startswith(d) for d in deeper)]
    lags: list[Columns | None] = [Columns.from_frame(previous[own])]
    for prefix in deeper:
        cols = [c for c in previous.columns if str(c).startswith(prefix)]
        if not cols:
            break
        frame = previous[cols].rename(columns=lambda c, p=prefix: c[len(p) :])
        lags.append(Columns.from_frame(frame))
    return lags


def _valid_lags(c: Columns, previous: object, n: int) -> list[_Lag | None]:
    """``HISTORY_LAGS`` lags (None: not given), each masked by the chain rule."""
    raw = _lag_columns(previous)
    for k, lag in enumerate(raw, start=1):
        if lag is not None and len(lag) != n:
            raise ValueError(f"lag {k} has {len(lag)} records for {n} records: they must align")
    raw = raw + [None] * (HISTORY_LAGS - len(raw))
    months = c.month().astype(np.float64)
    nan = np.full(n, np.nan)
    lag_months = [
        period_months(lag["period"]) if lag is not None and "period" in lag else nan for lag in raw
    ]
    present = [
        ~np.isnan(lag.floats("household_size")) if lag is not None else np.zeros(n, bool)
        for lag in raw
    ]
    valid = chain_valid(months, lag_months, present, MAX_GAP_MONTHS, HISTORY_MONTHS)
    # a lag no row may use is no lag (its features are all missing either way)
    return [
        _Lag(lag, ok, months - m) if lag is not None and ok.any() else None
        for lag, ok, m in zip(raw, valid, lag_months, strict=True)
    ]


def _points(values: list[np.ndarray]) -> np.ndarray:
    return np.column_stack(values) if values else np.zeros((0, 0))


def _latest_event(back: np.ndarray, event: np.ndarray) -> np.ndarray:
    """Per row, the smallest months-back among points where ``event`` holds (NaN: none)."""
    hit = np.where(event & ~np.isnan(back), back, np.inf)
    first = hit.min(axis=1)
    return np.where(np.isfinite(first), first, np.nan)


def _history_features(
    c: Columns,
    out: dict[str, np.ndarray],
    cur: dict[str, np.ndarray],
    lags: list[_Lag | None],
    line: np.ndarray,
    dibao_line: np.ndarray,
) -> dict[str, np.ndarray]:
    """``HISTORY_FEATURES`` (see the module docstring)."""
    n = len(line)
    nan = np.full(n, np.nan)
    valid = [lag.valid if lag is not None else np.zeros(n, bool) for lag in lags]
    cores = [lag.core(line) if lag is not None else None for lag in lags]
    h: dict[str, np.ndarray] = {}
    h["h_n_lags"] = np.sum(valid, axis=0).astype(np.float64)

    pc = [k["pc_income_to_line"] if k is not None else nan for k in cores]
    for i, v in enumerate(pc, start=1):
        h[f"h_pc_income_to_line_l{i}"] = v
    lag_pc = _points(pc)
    known = ~np.isnan(lag_pc)
    count = known.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        h["h_pc_income_to_line_mean"] = np.where(
            count > 0, np.where(known, lag_pc, 0.0).sum(axis=1) / count, np.nan
        )
    h["h_pc_income_to_line_min"] = np.where(
        count > 0, np.where(known, lag_pc, np.inf).min(axis=1), np.nan
    )
    # current + lags: trend (per year) and volatility
    y = _points([cur["pc_income_to_line"], *pc])
    back = _points([np.zeros(n), *[lag.back if lag is not None else nan for lag in lags]])
    t = -back / 12.0
    w = (~np.isnan(y) & ~np.isnan(t)).astype(np.float64)
    m = w.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        t_mean = np.where(w > 0, t, 0.0).sum(axis=1) / m
        y_mean = np.where(w > 0, y, 0.0).sum(axis=1) / m
        dt = np.where(w > 0, t - t_mean[:, None], 0.0)
        dy = np.where(w > 0, y - y_mean[:, None], 0.0)
        sxx = (dt * dt).sum(axis=1)
        h["h_pc_income_trend"] = np.where((m >= 2) & (sxx > 0), (dt * dy).sum(axis=1) / sxx, np.nan)
    yk = ~np.isnan(y)
    ym = yk.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mu = np.where(yk, y, 0.0).sum(axis=1) / ym
        var = np.where(yk, (y - mu[:, None]) ** 2, 0.0).sum(axis=1) / ym
    h["h_pc_income_volatility"] = np.where(ym >= 2, np.sqrt(var), np.nan)
    # lags below today's line and below 1.5 × today's dibao line
    dibao_ratio = line / dibao_line  # pc/line × line/dibao = pc/dibao
    h["h_lags_below_line"] = np.where(count > 0, (known & (lag_pc < 1.0)).sum(axis=1), np.nan)
    below_dibao = known & (lag_pc * dibao_ratio[:, None] < 1.5)
    h["h_lags_below_1_5_dibao"] = np.where(count > 0, below_dibao.sum(axis=1), np.nan)

    # spending shares, work and migration at lags 1-2
    for i, lag in enumerate(lags[:2], start=1):
        if lag is None:
            for name in ("medical_to_income", "education_to_income"):
                h[f"h_{name}_l{i}"] = nan
            h[f"h_employment_intensity_l{i}"] = nan
            h[f"h_migrant_share_l{i}"] = nan
            continue
        lag_net = cores[i - 1]["net"]  # type: ignore[index]
        h[f"h_medical_to_income_l{i}"] = _ratio_to_income(lag.floats("medical_expense"), lag_net)
        h[f"h_education_to_income_l{i}"] = _ratio_to_income(
            lag.floats("education_expense"), lag_net
        )
        h[f"h_employment_intensity_l{i}"] = cores[i - 1]["employment_intensity"]  # type: ignore[index]
        lag_labor = lag.floats("labor_count")
        share = np.where(lag_labor > 0, _safe_div(lag.floats("migrant_workers"), lag_labor), 0.0)
        share[np.isnan(lag_labor)] = np.nan
        h[f"h_migrant_share_l{i}"] = share

    # months back to the latest event among current + lags
    loss = _points(
        [c.floats("disaster_loss"), *[lag.floats("disaster_loss") if lag else nan for lag in lags]]
    )
    h["h_months_since_disaster"] = _latest_event(back, loss > 0)
    net = _points([cur["net"], *[k["net"] if k is not None else nan for k in cores]])
    medical = _points(
        [
            c.floats("medical_expense"),
            *[lag.floats("medical_expense") if lag else nan for lag in lags],
        ]
    )
    shock = _ratio_to_income(medical.ravel(), net.ravel()).reshape(net.shape)
    with np.errstate(invalid="ignore"):
        h["h_months_since_medical_shock"] = _latest_event(back, shock > MEDICAL_SHOCK_SHARE)
        drop = np.zeros_like(net, dtype=bool)
        drop[:, :-1] = (net[:, 1:] > 0) & (net[:, :-1] < (1.0 - INCOME_DROP) * net[:, 1:])
    h["h_months_since_income_drop"] = _latest_event(back, drop)

    # household size and labour: now against lags 2 and 3
    for i in (2, 3):
        k = cores[i - 1]
        h[f"h_d_household_size_l{i}"] = cur["household_size"] - (k["household_size"] if k else nan)
        h[f"h_d_labor_count_l{i}"] = cur["labor_count"] - (k["labor_count"] if k else nan)
    return {name: np.asarray(h[name], dtype=np.float64) for name in HISTORY_FEATURES}


def previous_columns() -> list[str]:
    """Names of the optional previous-period columns a scoring input may carry (lag 1's numbers)."""
    return [PREV_PREFIX + name for name in _NUMERIC_FIELDS]


def lag_columns(lags: int = HISTORY_LAGS) -> list[tuple[str, str]]:
    """Every optional history column of a scoring input, as (name, kind "str" or "double"):
    ``prev_period``, ``prev_<field>``, ``prev2_period``, ..., for lags 1..``lags``."""
    out: list[tuple[str, str]] = []
    for k in range(1, lags + 1):
        prefix = lag_prefix(k)
        out.append((prefix + "period", "str"))
        out.extend((prefix + name, "double") for name in _NUMERIC_FIELDS)
    return out


def _is_lag_column(name: str) -> bool:
    return any(str(name).startswith(lag_prefix(k)) for k in range(1, HISTORY_LAGS + 1))


def split_previous(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Split an input with optional ``prev_<field>``, ``prev2_<field>``, ``prev3_<field>``
    columns into (records, previous): lag 1's columns without their prefix, the deeper
    lags' as they are (the form ``history.history_frame`` gives)."""
    lag_cols = [c for c in df.columns if _is_lag_column(c)]
    if not lag_cols:
        return df, None
    previous = df[lag_cols].rename(
        columns=lambda c: c[len(PREV_PREFIX) :] if str(c).startswith(PREV_PREFIX) else c
    )
    return df.drop(columns=lag_cols), previous


def join_previous(records: pd.DataFrame, previous: object) -> pd.DataFrame:
    """Records with their history as ``prev_<field>`` (and, for deeper lags given,
    ``prev2_<field>``, ``prev3_<field>`` and every lag's ``prev<k>_period``): the model's input.

    ``previous``: one frame (lag 1; its numbers only, as before) or a list of lag frames.
    """
    out = records.copy()
    lags = previous if isinstance(previous, list | tuple) else [previous]
    for k, lag in enumerate(lags, start=1):
        prefix = lag_prefix(k)
        if len(lags) > 1:
            period = lag["period"] if lag is not None and "period" in lag.columns else None
            out[prefix + "period"] = (
                np.asarray(period, dtype=object) if period is not None else None
            )
        for name in _NUMERIC_FIELDS:
            col = prefix + name
            if lag is not None and name in lag.columns:
                out[col] = pd.to_numeric(lag[name].astype("float64"), errors="coerce").to_numpy()
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
    """Every feature of ``ALL_FEATURE_NAMES`` as a float64 array (NaN for missing), by name."""
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

    lags = _valid_lags(c, previous, n)
    first = lags[0]
    prev = first.core(line) if first is not None else {k: np.full(n, np.nan) for k in cur}
    out["has_previous"] = (first.valid if first is not None else np.zeros(n, bool)).astype(float)
    prev_net = prev["net"]
    with np.errstate(divide="ignore", invalid="ignore"):
        change = np.where(prev_net > 0, net / prev_net - 1.0, np.nan)
    out["income_change"] = np.clip(change, -5.0, 5.0)
    out["d_pc_income_to_line"] = cur["pc_income_to_line"] - prev["pc_income_to_line"]
    out["d_medical_pc_to_line"] = cur["medical_pc_to_line"] - prev["medical_pc_to_line"]
    out["d_employment_intensity"] = cur["employment_intensity"] - prev["employment_intensity"]
    out["d_household_size"] = size - prev["household_size"]
    out["d_labor_count"] = labor - prev["labor_count"]
    out.update(_history_features(c, out, cur, lags, line, dibao_line))
    asset = c.floats(ASSET_INCOME)
    out["asset_income_share"] = _ratio_to_income(asset, net)
    out["asset_pc_to_line"] = asset / size / line
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
    names: Sequence[str] = FEATURE_NAMES,
) -> pd.DataFrame:
    """The model's feature frame (columns ``names``, float64, NaN for missing).

    Indexed like ``records`` when it is a frame.
    """
    arrays = feature_arrays(records, previous, lines)
    frame = pd.DataFrame({name: np.asarray(arrays[name], dtype="float64") for name in names})
    if isinstance(records, pd.DataFrame):
        frame.index = records.index
    return frame
