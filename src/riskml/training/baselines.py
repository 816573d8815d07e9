"""The baselines every evaluation reports beside the model, and the model's gain over them.

* **naive**: the per-capita income relative to the monitoring line, reversed
  (lower income per head against the line = higher risk; feature
  ``pc_income_to_line``); nothing is fitted;
* **rules**: the policy rules alone (their severity, ``policy.rules.rules_baseline``);
* **logistic**: an L2-regularised logistic regression on the main ratios and their
  missing indicators, winsorised, imputed and standardised with figures of the
  fold's train rows only (``LogisticBaseline.fit``).

The **fall-in subset** is the households not below the line by per-capita income
at scoring time (``pc_income_to_line >= 1``): those prevention is about.
Metrics are named ``<scorer>_<subset>_<metric>`` (subsets ``all`` and ``fallin``;
metrics ``roc_auc`` and ``recall_at_<capacity %>``; recall within the subset at
that share of the subset), gains ``gain_vs_<baseline>_<subset>_<metric>`` with
their bootstrap bounds ``..._lo`` and ``..._hi``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from riskml.model.metrics import at_capacity, auc, bootstrap_gains

LOGISTIC_FEATURES = (
    "pc_income_to_line",
    "pc_income_to_dibao",
    "adj_pc_income_to_line",
    "medical_to_income",
    "education_to_income",
    "loss_to_income",
    "dependency_ratio",
    "labor_share",
    "employment_intensity",
)
BASELINES = ("naive", "logistic", "rules")
SUBSETS = ("all", "fallin")
NAIVE_FEATURE = "pc_income_to_line"


def naive_score(X: pd.DataFrame) -> np.ndarray:
    """Minus per-capita income relative to the line; missing income at the median (no signal)."""
    s = -X[NAIVE_FEATURE].to_numpy(dtype=float)
    if np.isnan(s).all():
        return np.zeros(len(s))
    return np.where(np.isnan(s), np.nanmedian(s), s)


def fall_in_mask(X: pd.DataFrame) -> np.ndarray:
    """Records not below the line by per-capita income at scoring time (missing income: not in)."""
    v = X[NAIVE_FEATURE].to_numpy(dtype=float)
    return np.greater_equal(v, 1.0, where=~np.isnan(v), out=np.zeros(len(v), dtype=bool))


@dataclass
class LogisticBaseline:
    """Winsorise (train 1st/99th percentiles), impute (train median) + missing indicators,
    standardise (train mean and sd), then an L2 logistic regression."""

    features: tuple[str, ...]
    low: np.ndarray
    high: np.ndarray
    median: np.ndarray
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    train_rows: int

    @classmethod
    def fit(
        cls,
        X_train: pd.DataFrame,
        y_train: np.ndarray,
        features: tuple[str, ...] = LOGISTIC_FEATURES,
        C: float = 1.0,
    ) -> LogisticBaseline:
        from sklearn.linear_model import LogisticRegression

        raw = _finite(X_train[list(features)])
        with warnings.catch_warnings():  # a feature missing on every train row: all NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            low = np.nan_to_num(np.nanquantile(raw, 0.01, axis=0))
            high = np.nan_to_num(np.nanquantile(raw, 0.99, axis=0))
            clipped = np.clip(raw, low, high)
            median = np.nan_to_num(np.nanmedian(clipped, axis=0))
        design = _design(clipped, np.isnan(raw), median)
        mean = design.mean(axis=0)
        scale = design.std(axis=0)
        scale = np.where(scale > 0, scale, 1.0)
        lr = LogisticRegression(C=C, max_iter=1000)
        lr.fit((design - mean) / scale, np.asarray(y_train, dtype=int))
        return cls(features, low, high, median, mean, scale, lr.coef_[0], float(lr.intercept_[0]),
                   len(raw))  # fmt: skip

    def score(self, X: pd.DataFrame) -> np.ndarray:
        """The baseline's probability of the label."""
        raw = _finite(X[list(self.features)])
        clipped = np.clip(raw, self.low, self.high)
        design = (_design(clipped, np.isnan(raw), self.median) - self.mean) / self.scale
        return 1.0 / (1.0 + np.exp(-(design @ self.coef + self.intercept)))


def _finite(X: pd.DataFrame) -> np.ndarray:
    """The features as floats, infinite values as missing."""
    raw = X.to_numpy(dtype=float, copy=True)
    raw[~np.isfinite(raw)] = np.nan
    return raw


def _design(clipped: np.ndarray, missing: np.ndarray, median: np.ndarray) -> np.ndarray:
    """Imputed values, then one missing indicator per feature."""
    return np.hstack([np.where(missing, median, clipped), missing.astype(float)])


def scorer_metrics(
    y: np.ndarray,
    scorers: dict[str, np.ndarray],
    subsets: dict[str, np.ndarray],
    capacities: tuple[float, ...],
) -> dict[str, float]:
    """``<scorer>_<subset>_roc_auc`` and ``..._recall_at_<c>`` for every scorer and subset."""
    y = np.asarray(y, dtype=int)
    out: dict[str, float] = {}
    for sub, mask in subsets.items():
        out[f"rows_{sub}"] = float(mask.sum())
        out[f"positives_{sub}"] = float(y[mask].sum())
        for name, s in scorers.items():
            s_sub = np.asarray(s, dtype=float)[mask]
            out[f"{name}_{sub}_roc_auc"] = auc(y[mask], s_sub)
            for cap in capacities:
                rec = at_capacity(y[mask], s_sub, cap)["recall"] if mask.any() else float("nan")
                out[f"{name}_{sub}_recall_at_{round(cap * 100)}"] = rec
    return out


def gains(
    y: np.ndarray,
    scorers: dict[str, np.ndarray],
    subsets: dict[str, np.ndarray],
    capacities: tuple[float, ...],
    resamples: int = 200,
    seed: int = 0,
) -> pd.DataFrame:
    """The model's gain over each baseline per subset, with bootstrap intervals (one row each)."""
    y = np.asarray(y, dtype=int)
    tables = []
    baselines = {b: scorers[b] for b in BASELINES if b in scorers}
    for sub, mask in subsets.items():
        t = bootstrap_gains(
            y[mask],
            np.asarray(scorers["model"])[mask],
            {b: np.asarray(s)[mask] for b, s in baselines.items()},
            capacities,
            resamples=resamples,
            seed=seed,
        )
        t.insert(0, "subset", sub)
        tables.append(t)
    return pd.concat(tables, ignore_index=True)


def gain_metrics(table: pd.DataFrame) -> dict[str, float]:
    """The gain table as flat metrics: ``gain_vs_<baseline>_<subset>_<metric>`` (+ ``_lo``, ``_hi``)."""
    out: dict[str, float] = {}
    for r in table.itertuples(index=False):
        key = f"gain_vs_{r.baseline}_{r.subset}_{r.metric}"
        out[key], out[f"{key}_lo"], out[f"{key}_hi"] = r.gain, r.lo, r.hi
    return out
