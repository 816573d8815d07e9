"""Evaluation of a fitted model on a test period: the model, the oracle and the baselines.

``evaluate_test_period`` is the full report of one period (discrimination,
calibration, capacity, groups; ``riskml.model.metrics``); ``evaluate_fold`` is
what every rolling fold records: the model's metrics and the baselines'
(``riskml.training.baselines``), overall and on the fall-in subset, with the
model's gains and their bootstrap intervals.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from riskml.data import schema
from riskml.data.reference import ReferenceLines
from riskml.model.metrics import Evaluation, at_capacity, binary_metrics, evaluate_scores
from riskml.model.risk_model import RiskModel
from riskml.training import baselines
from riskml.training.folds import Fold

if TYPE_CHECKING:
    from riskml.training.train import Prepared, TrainConfig


@dataclass
class FoldResult:
    """One fold evaluated: its periods, flat metrics (model and baselines), the gain table."""

    fold: Fold
    metrics: dict[str, float]
    gains: pd.DataFrame
    best_iteration: int

    def row(self) -> dict[str, Any]:
        f = self.fold
        return {
            "fold": f.name,
            "train_periods": ",".join(f.train_periods),
            "valid_period": f.valid_period,
            "test_period": f.test_period,
            "best_iteration": self.best_iteration,
            **self.metrics,
        }


def rules_scores(
    records: pd.DataFrame, previous: pd.DataFrame, lines: ReferenceLines
) -> tuple[np.ndarray, np.ndarray]:
    """The rules alone on these records: (flagged, severity)."""
    from riskml.policy import rules as policy_rules

    ruleset = policy_rules.RuleSet.load()
    rr = policy_rules.evaluate(records[list(schema.FIELD_NAMES)], ruleset, lines, previous=previous)
    flagged, severity = policy_rules.rules_baseline(rr)
    return np.asarray(flagged, dtype=bool), np.asarray(severity, dtype=float)


def oracle_of(records: pd.DataFrame) -> np.ndarray | None:
    """The panel's oracle probability (simulated panels), None when absent or incomplete."""
    if "oracle_p" not in records.columns:
        return None
    oracle = records["oracle_p"].to_numpy(dtype=float)
    return None if np.isnan(oracle).any() else oracle


def baseline_evaluation(
    data: Prepared,
    train_mask: np.ndarray,
    test_mask: np.ndarray,
    score: np.ndarray,
    rules_severity: np.ndarray,
    cfg: TrainConfig,
    intervals: bool = True,
) -> tuple[dict[str, float], pd.DataFrame]:
    """Model, oracle and the baselines on the test rows, overall and on the fall-in subset, and
    the model's gains with bootstrap intervals; the logistic baseline fits ``train_mask`` rows."""
    X_test = data.X[test_mask]
    y = data.labels[test_mask].astype(int)
    logistic = baselines.LogisticBaseline.fit(data.X[train_mask], data.labels[train_mask])
    scorers = {
        "model": score,
        "naive": baselines.naive_score(X_test),
        "logistic": logistic.score(X_test),
        "rules": rules_severity,
    }
    oracle = oracle_of(data.records[test_mask])
    if oracle is not None:
        scorers["oracle"] = oracle
    subsets = {"all": np.ones(len(y), dtype=bool), "fallin": baselines.fall_in_mask(X_test)}
    caps = cfg.report_capacities
    metrics = baselines.scorer_metrics(y, scorers, subsets, caps)
    resamples = cfg.bootstrap_resamples if intervals else 0
    table = baselines.gains(y, scorers, subsets, caps, resamples, cfg.bootstrap_seed)
    metrics.update(baselines.gain_metrics(table))
    metrics["logistic_train_rows"] = float(logistic.train_rows)
    return metrics, table


def evaluate_fold(
    model: RiskModel,
    data: Prepared,
    fold: Fold,
    cfg: TrainConfig,
    lines: ReferenceLines,
    intervals: bool = True,
) -> FoldResult:
    """A fold's model on its test period, beside the baselines (the logistic fitted on the fold's
    train rows only)."""
    m = fold.masks(data.period, data.labelled)
    test = m["test"]
    y = data.labels[test].astype(int)
    score = model.predict_proba(data.X.loc[test, list(model.feature_names)])
    _, severity = rules_scores(
        data.records[test].reset_index(drop=True), data.previous[test].reset_index(drop=True), lines
    )
    metrics = {f"test_{k}": v for k, v in binary_metrics(y, score).items()}
    for cap in cfg.report_capacities:
        metrics[f"model_recall_at_{round(cap * 100)}"] = at_capacity(y, score, cap)["recall"]
    extra, table = baseline_evaluation(data, m["train"], test, score, severity, cfg, intervals)
    metrics.update(extra)
    return FoldResult(fold, metrics, table, int(model.metadata.get("best_iteration", 0)))


def evaluate_test_period(
    model: RiskModel,
    records: pd.DataFrame,
    previous: pd.DataFrame,
    y: np.ndarray,
    score: np.ndarray,
    cfg: TrainConfig,
    lines: ReferenceLines,
) -> Evaluation:
    """Model against the rules-only baseline (and the oracle, when the panel has one) on one period."""
    flagged, severity = rules_scores(records, previous, lines)
    groups = pd.DataFrame(
        {
            "province": records["county_code"].astype(str).str.slice(0, 2).to_numpy(),
            "formerly_poor": records["formerly_poor"].to_numpy(),
            "head_female": records["head_female"].to_numpy(),
            "ethnic_minority": records["ethnic_minority"].to_numpy(),
        }
    )
    return evaluate_scores(
        y,
        score,
        period=str(records["period"].iloc[0]) if len(records) else "",
        county=records["county_code"].astype(str).to_numpy(),
        groups=groups,
        capacities=cfg.report_capacities,
        rules_flagged=flagged,
        rules_severity=severity,
        model_flagged=score >= model.thresholds.flag,
        oracle=oracle_of(records),
    )
