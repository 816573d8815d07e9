"""The training reference a model carries for monitoring (``profile.json`` in the model folder).

**The reference** (``reference_profile``) is computed at training time on the
training rows and saved with the model:

* per feature, 10 quantile bins of the training values (right-closed; equal
  quantiles collapse, so a 0/1 flag has two bins) plus a bin of its own for
  missing values, and the share of training rows in each bin, overall and per
  province (first two digits of ``county_code``; same bin edges);
* the calibrated score's histogram on the fixed edges ``SCORE_EDGES``;
* the missing-value rate of every contract field;
* the share of rows at or above the model's flag and red thresholds, and the
  flag capacity the thresholds were chosen for.

**Change features** (``CHANGE_FEATURES``: income_change and the d_* columns)
exist only when a previous record does, so they are profiled on rows with a
previous record only (``feature_rows``); ``has_previous`` itself is not binned
but kept as the training's previous-record coverage. **History features**
(``h_*``, lags 1-3) are profiled on rows with the lags they read only
(``_history_rows``: lag-2 features on rows with at least two lags, the
aggregates over the history on rows with all three), so a ledger that holds
fewer periods than training had does not read as drift; ``h_n_lags`` itself
is not binned (like ``has_previous``).

The bin helpers here (``quantile_edges``, ``bin_index``, ``bin_proportions``,
``score_histogram``) are the ones monitoring bins a window with
(``riskml.monitoring``), so a window and its reference share the same bins.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from riskml.data import schema
from riskml.data.json_text import plain

PROFILE_FORMAT = 1
N_BINS = 10
# Fixed score bins: fine where a 7–10% base rate puts most households.
SCORE_EDGES: tuple[float, ...] = (
    0.0, 0.01, 0.02, 0.03, 0.05, 0.075, 0.10, 0.15, 0.20, 0.30, 0.40, 0.50, 0.70, 1.0,
)  # fmt: skip
CHANGE_FEATURES: tuple[str, ...] = (
    "income_change",
    "d_pc_income_to_line",
    "d_medical_pc_to_line",
    "d_employment_intensity",
    "d_household_size",
    "d_labor_count",
)
PREVIOUS_FLAG = "has_previous"
LAGS_FLAG = "h_n_lags"


def _history_rows(name: str) -> int:
    """Lags a history feature needs before it is profiled (see the module docstring)."""
    for k in (1, 2, 3):
        if name.endswith(f"_l{k}"):
            return k
    return 3  # aggregates over the history: compared on full histories


# =========================================================================== bins
def quantile_edges(values: Any, bins: int = N_BINS) -> list[float]:
    """Inner edges of ``bins`` quantile bins of the non-missing values (ties collapse)."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return []
    # inverted_cdf: edges are values that occur, so a 0/1 flag gets the edges [0, 1]
    qs = np.quantile(x, np.linspace(0, 1, bins + 1)[1:-1], method="inverted_cdf")
    return [float(v) for v in np.unique(qs)]


def bin_index(values: Any, edges: list[float]) -> np.ndarray:
    """Bin of each value: ``(-inf, e0], (e0, e1], …, (e_last, inf)``, then missing last."""
    x = np.asarray(values, dtype=float)
    idx = np.searchsorted(np.asarray(edges, dtype=float), x, side="left")
    return np.where(np.isnan(x), len(edges) + 1, idx)


def bin_proportions(values: Any, edges: list[float]) -> np.ndarray:
    """Share of values in each bin of ``bin_index`` (length ``len(edges) + 2``)."""
    idx = bin_index(values, edges)
    counts = np.bincount(idx, minlength=len(edges) + 2).astype(float)
    return counts / counts.sum() if counts.sum() else counts


def score_histogram(scores: Any) -> np.ndarray:
    """Share of scores in each ``SCORE_EDGES`` bin (right-closed, the first also holds 0)."""
    s = np.asarray(scores, dtype=float)
    s = s[np.isfinite(s)]
    edges = np.asarray(SCORE_EDGES[1:-1])
    counts = np.bincount(
        np.searchsorted(edges, s, side="left"), minlength=len(SCORE_EDGES) - 1
    ).astype(float)
    return counts / counts.sum() if counts.sum() else counts


def province(county_codes: Any) -> np.ndarray:
    """Province of each county code: its first two digits."""
    return pd.Series(county_codes).astype(str).str.slice(0, 2).to_numpy()


def feature_rows(features: pd.DataFrame, name: str) -> np.ndarray:
    """Rows a feature is profiled/compared on: change features only where a previous record exists."""
    if name in CHANGE_FEATURES and PREVIOUS_FLAG in features.columns:
        return features[PREVIOUS_FLAG].to_numpy(dtype=float) == 1.0
    if name.startswith("h_") and name != LAGS_FLAG and LAGS_FLAG in features.columns:
        return features[LAGS_FLAG].to_numpy(dtype=float) >= _history_rows(name)
    return np.ones(len(features), dtype=bool)


# =========================================================================== the reference
def reference_profile(
    features: pd.DataFrame,
    scores: np.ndarray,
    records: pd.DataFrame,
    *,
    thresholds: Any = None,
    bins: int = N_BINS,
) -> dict[str, Any]:
    """The training reference a window is compared with (JSON-able; see the module docstring).

    ``features``, ``scores`` and ``records`` are the same rows (the training
    rows); ``thresholds`` (``model.Thresholds`` or a dict) adds the flag rates.
    """
    if not (len(features) == len(scores) == len(records)):
        raise ValueError("features, scores and records must be the same rows")
    scores = np.asarray(scores, dtype=float)
    prov = province(records["county_code"])
    provinces = sorted(pd.unique(prov).tolist())
    feats: dict[str, Any] = {}
    by_province: dict[str, Any] = {
        p: {"n": int((prov == p).sum()), "features": {}} for p in provinces
    }
    for name in features.columns:
        if name in (PREVIOUS_FLAG, LAGS_FLAG):
            continue
        rows = feature_rows(features, name)
        x = features[name].to_numpy(dtype=float)
        edges = quantile_edges(x[rows], bins)
        feats[name] = {
            "edges": edges,
            "proportions": bin_proportions(x[rows], edges).tolist(),
            "n": int(rows.sum()),
            "missing_rate": float(np.isnan(x[rows]).mean()) if rows.any() else float("nan"),
            "mean": float(np.nanmean(x[rows])) if np.isfinite(x[rows]).any() else None,
            "rows": "with_previous"
            if name in CHANGE_FEATURES
            else ("with_history" if name.startswith("h_") else "all"),
        }
        for p in provinces:
            sel = rows & (prov == p)
            by_province[p]["features"][name] = {
                "n": int(sel.sum()),
                "proportions": bin_proportions(x[sel], edges).tolist(),
            }
    missing = {}
    for f in schema.FIELDS:
        if f.name in records.columns:
            missing[f.name] = float(records[f.name].isna().mean())
    has_prev = (
        float(np.nanmean(features[PREVIOUS_FLAG].to_numpy(dtype=float)))
        if PREVIOUS_FLAG in features.columns
        else None
    )
    lines = {}
    if "monitoring_line" in features.columns:
        ml = pd.Series(features["monitoring_line"].to_numpy(dtype=float))
        lines = {str(k): float(v) for k, v in ml.groupby(prov).mean().items()}
    out: dict[str, Any] = {
        "format": PROFILE_FORMAT,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "rows": len(features),
        "periods": sorted(pd.unique(records["period"].astype(str)).tolist())
        if "period" in records.columns
        else [],
        "bins": bins,
        "features": feats,
        "provinces": by_province,
        "change_features": [c for c in CHANGE_FEATURES if c in features.columns],
        "previous_coverage": has_prev,
        "score": {
            "edges": list(SCORE_EDGES),
            "proportions": score_histogram(scores).tolist(),
            "mean": float(np.mean(scores)) if len(scores) else None,
        },
        "missing": missing,
        "monitoring_line_by_province": lines,
    }
    if thresholds is not None:
        t = thresholds if isinstance(thresholds, dict) else thresholds.__dict__
        out["thresholds"] = {k: float(v) for k, v in t.items()}
        out["score"]["flag_rate"] = float(np.mean(scores >= t["flag"])) if len(scores) else None
        out["score"]["red_rate"] = float(np.mean(scores >= t["red"])) if len(scores) else None
        out["score"]["flag_capacity"] = t.get("flag_capacity")
    return plain(out)  # JSON's one NaN policy: null


__all__ = [
    "CHANGE_FEATURES",
    "N_BINS",
    "PREVIOUS_FLAG",
    "PROFILE_FORMAT",
    "SCORE_EDGES",
    "bin_index",
    "bin_proportions",
    "feature_rows",
    "province",
    "quantile_edges",
    "reference_profile",
    "score_histogram",
]
