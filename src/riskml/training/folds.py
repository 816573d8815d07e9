"""Rolling-origin folds: which periods train, validate and test each fold, and the fold summary.

For the last ``k`` labelled periods ``t`` (up to the test period of the final
split), fold ``t`` trains on the labelled periods before ``t − 1``, validates
(early stopping, calibration, thresholds) on ``t − 1`` and tests on ``t``:
the discipline of the single split of ``riskml.training.train``, repeated with
the origin rolled back one period at a time. No row of a later period fits
anything evaluated on an earlier one. The last fold is the final split itself.

Pure functions of period lists and metric dicts; the fitting is in ``train``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from riskml.training.errors import TrainingDataError

SUMMARY_STATS = ("mean", "std", "min", "max")


@dataclass(frozen=True)
class Fold:
    """One rolling-origin fold: train periods, the validation period, the test period."""

    train_periods: tuple[str, ...]
    valid_period: str
    test_period: str

    @property
    def name(self) -> str:
        return f"fold-{self.test_period}"

    def masks(self, period: np.ndarray, labelled: np.ndarray) -> dict[str, np.ndarray]:
        """Row masks of the fold's train, validation and test rows (labelled rows only)."""
        return {
            "train": np.isin(period, list(self.train_periods)) & labelled,
            "validation": (period == self.valid_period) & labelled,
            "test": (period == self.test_period) & labelled,
        }


def rolling_folds(
    labelled_periods: list[str],
    k: int,
    final: Fold,
    min_folds: int = 1,
) -> list[Fold]:
    """The last ``k`` folds ending with ``final`` (the final split), oldest first.

    Fold ``t`` tests on the labelled period ``t``, validates on the labelled
    period before it and trains on every labelled period before that. Periods
    after the final test period take no part. Fewer folds than ``k`` when the
    panel has too few labelled periods; TrainingDataError when fewer than
    ``min_folds`` can be formed.
    """
    if k < 1:
        raise ValueError(f"evaluation.folds must be at least 1, got {k}")
    periods = sorted(p for p in set(labelled_periods) if p < final.test_period)
    folds = [final]
    for t in reversed(range(2, len(periods))):
        if len(folds) >= k:
            break
        folds.append(Fold(tuple(periods[: t - 1]), periods[t - 1], periods[t]))
    folds.reverse()
    if len(folds) < min_folds:
        raise TrainingDataError(
            f"evaluation.min_folds is {min_folds} but the panel allows {len(folds)} rolling fold(s): "
            f"a fold needs a labelled test period with a validation period and at least one train "
            f"period before it; labelled periods up to {final.test_period}: "
            f"{periods + [final.test_period]}"
        )
    return folds


def check_no_leakage(fold: Fold) -> None:
    """ValueError unless every train period < validation period < test period."""
    if not fold.train_periods or max(fold.train_periods) >= fold.valid_period:
        raise ValueError(f"{fold.name}: a train period is not before {fold.valid_period}")
    if fold.valid_period >= fold.test_period:
        raise ValueError(f"{fold.name}: validation {fold.valid_period} is not before the test")


def summarise(per_fold: pd.DataFrame) -> pd.DataFrame:
    """Mean, std (ddof 1; 0 with one fold), min and max of every numeric column over the folds."""
    numeric = per_fold.select_dtypes("number")
    out = pd.DataFrame(
        {
            "mean": numeric.mean(),
            "std": numeric.std(ddof=1).fillna(0.0) if len(numeric) > 1 else numeric.mean() * 0.0,
            "min": numeric.min(),
            "max": numeric.max(),
        }
    )
    out.index.name = "metric"
    return out


def summary_metrics(per_fold: pd.DataFrame) -> dict[str, float]:
    """The fold summary as flat metrics: ``folds_<stat>_<metric>`` (for MLflow)."""
    s = summarise(per_fold)
    return {
        f"folds_{stat}_{metric}": float(s.loc[metric, stat])
        for metric in s.index
        for stat in SUMMARY_STATS
    }


def common_means(
    champion: pd.DataFrame, challenger: pd.DataFrame, metrics: list[str]
) -> tuple[list[str], dict[str, float], dict[str, float]]:
    """The test periods both fold tables have, and each table's mean of ``metrics`` over them."""
    common = sorted(set(champion["test_period"]) & set(challenger["test_period"]))

    def means(t: pd.DataFrame) -> dict[str, float]:
        rows = t[t["test_period"].isin(common)]
        return {m: float(rows[m].mean()) if m in rows else float("nan") for m in metrics}

    return common, means(champion), means(challenger)


SCORERS = ("model", "oracle", "naive", "logistic", "rules")


def scorer_table(
    per_fold: pd.DataFrame, capacities: tuple[float, ...] = (0.05, 0.10)
) -> pd.DataFrame:
    """The fold table in long form: one row per subset, scorer and metric (AUC, recall at each
    capacity), a column per fold's test period, then mean and std over the folds."""
    metrics = ["roc_auc"] + [f"recall_at_{round(c * 100)}" for c in capacities]
    periods = per_fold["test_period"].astype(str).tolist()
    rows = []
    for subset in ("all", "fallin"):
        for scorer in SCORERS:
            for m in metrics:
                col = f"{scorer}_{subset}_{m}"
                if col not in per_fold:
                    continue
                v = per_fold[col].to_numpy(dtype=float)
                std = float(np.std(v, ddof=1)) if len(v) > 1 else 0.0
                rows.append({"subset": subset, "scorer": scorer, "metric": m,
                             **dict(zip(periods, v.tolist(), strict=True)),
                             "mean": float(np.mean(v)), "std": std})  # fmt: skip
    return pd.DataFrame(rows)


def gain_table(
    per_fold: pd.DataFrame, capacities: tuple[float, ...] = (0.05, 0.10)
) -> pd.DataFrame:
    """The model's gain over each baseline: mean and std over the folds, and each fold's
    bootstrap interval as ``lo..hi``."""
    metrics = ["roc_auc"] + [f"recall_at_{round(c * 100)}" for c in capacities]
    rows = []
    for subset in ("all", "fallin"):
        for b in ("naive", "logistic", "rules"):
            for m in metrics:
                key = f"gain_vs_{b}_{subset}_{m}"
                if key not in per_fold:
                    continue
                v = per_fold[key].to_numpy(dtype=float)
                intervals = [
                    f"{lo:+.3f}..{hi:+.3f}"
                    for lo, hi in zip(per_fold[f"{key}_lo"], per_fold[f"{key}_hi"], strict=True)
                ]
                rows.append({"subset": subset, "baseline": b, "metric": m,
                             "mean": float(np.mean(v)),
                             "std": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0,
                             "folds_positive": int((v > 0).sum()), "intervals": " ".join(intervals)})  # fmt: skip
    return pd.DataFrame(rows)
