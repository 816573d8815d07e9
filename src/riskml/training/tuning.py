"""Tuning: Optuna over the LightGBM parameters and the class weighting, on the rolling folds.

``tune`` runs a seeded TPE search within the config's budget (``tuning.trials``,
``tuning.timeout_s``). A trial fits one model per fold with the trial's
parameters (early stopping and calibration on the fold's validation period, as
in training) and scores it on the fold's test period; its value is the mean
over the folds of ``tuning.objective`` (``roc_auc`` or ``recall_at_10``). The
first trial is the config's own parameters, so the choice is never worse than
them on the objective.

With ``tuning.hold_out_latest`` (default true) the tuning folds end one
labelled period before the final test period: the period the registered model
is tested on takes no part in choosing its parameters. (The earlier rolling
folds of the training run do overlap the tuning folds; their figures after
tuning are optimistic, the final test period's are not.)

``tuned_config`` / ``write_config``: the training config with the chosen
parameters, as a YAML a user can commit and train with.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from riskml.data.reference import ReferenceLines
from riskml.model.metrics import at_capacity, auc
from riskml.training.errors import TrainingDataError
from riskml.training.folds import Fold
from riskml.training.train import Prepared, Splits, TrainConfig, fit_model, fold_plan

CLASS_WEIGHTS = ("none", "sqrt_balanced", "balanced")
# name: (kind, low, high, log)
SPACE: dict[str, tuple[str, float, float, bool]] = {
    "learning_rate": ("float", 0.01, 0.2, True),
    "num_leaves": ("int", 7, 127, True),
    "max_depth": ("int", 3, 8, False),  # shallow trees keep TreeSHAP explanations cheap
    "min_data_in_leaf": ("int", 10, 1000, True),
    "feature_fraction": ("float", 0.5, 1.0, False),
    "lambda_l2": ("float", 1e-3, 30.0, True),
}


@dataclass
class Trial:
    """One trial: the parameters it tried, its objective (mean over folds) and per fold."""

    number: int
    params: dict[str, Any]
    value: float
    per_fold: dict[str, float]
    seconds: float


@dataclass
class TuningResult:
    objective: str
    folds: list[str]  # test periods of the tuning folds
    trials: list[Trial] = field(default_factory=list)
    best_params: dict[str, Any] = field(default_factory=dict)  # the full LightGBM parameters
    best_value: float = float("nan")
    best_trial: int = -1
    seconds: float = 0.0

    def table(self) -> pd.DataFrame:
        """One row per trial: number, objective, seconds, parameters, objective per fold."""
        rows = [
            {
                "trial": t.number,
                "objective": t.value,
                "seconds": t.seconds,
                **t.params,
                **{f"fold_{p}": v for p, v in t.per_fold.items()},
            }  # fmt: skip
            for t in self.trials
        ]
        return pd.DataFrame(rows)


def sample_params(trial: Any) -> dict[str, Any]:
    """The parameters of one Optuna trial over ``SPACE`` and the class weighting."""
    out: dict[str, Any] = {}
    for name, (kind, low, high, log) in SPACE.items():
        if kind == "int":
            out[name] = trial.suggest_int(name, int(low), int(high), log=log)
        else:
            out[name] = trial.suggest_float(name, low, high, log=log)
    out["class_weight"] = trial.suggest_categorical("class_weight", CLASS_WEIGHTS)
    return out


def start_point(params: dict[str, Any]) -> dict[str, Any]:
    """The config's own values of the searched parameters (within the search ranges)."""
    out: dict[str, Any] = {}
    for name, (kind, low, high, _log) in SPACE.items():
        if name in params:
            v = min(max(float(params[name]), low), high)
            out[name] = int(round(v)) if kind == "int" else v
    weight = params.get("class_weight", "sqrt_balanced")
    out["class_weight"] = "none" if weight is None else str(weight)
    return out


def tuning_folds(data: Prepared, splits: Splits, cfg: TrainConfig) -> list[Fold]:
    """The folds a trial is scored on (see the module docstring on ``hold_out_latest``)."""
    if not bool(cfg.tuning.get("hold_out_latest", True)):
        return fold_plan(data, splits, cfg)
    earlier = [p for p in data.labelled_periods() if p < splits.test_period]
    if len(earlier) < 3:
        raise TrainingDataError(
            "tuning with hold_out_latest needs 3 labelled periods before the test period "
            f"{splits.test_period}; the panel has {earlier}: set tuning.hold_out_latest: false "
            "or use a longer panel"
        )
    shifted = Splits(earlier[:-2], earlier[-2], earlier[-1])
    return fold_plan(data, shifted, cfg)


def fold_objective(y: np.ndarray, score: np.ndarray, objective: str) -> float:
    if objective == "roc_auc":
        return auc(y, score)
    return at_capacity(y, score, 0.10)["recall"]


def tune(
    data: Prepared,
    cfg: TrainConfig,
    lines: ReferenceLines,
    splits: Splits,
    progress: Callable[[str], None] | None = None,
    trials: int | None = None,
) -> TuningResult:
    """The seeded TPE search within the config's budget; the best trial's full parameters."""
    import optuna

    say = progress or (lambda _m: None)
    n_trials = int(cfg.tuning.get("trials", 20) if trials is None else trials)
    if n_trials < 1:
        raise ValueError("tuning needs at least one trial (tuning.trials)")
    timeout = cfg.tuning.get("timeout_s")
    objective = str(cfg.tuning.get("objective", "roc_auc"))
    folds = tuning_folds(data, splits, cfg)
    result = TuningResult(objective=objective, folds=[f.test_period for f in folds])
    t0 = time.perf_counter()

    def run(trial: Any) -> float:
        t = time.perf_counter()
        sampled = sample_params(trial)
        params = {**cfg.params, **sampled}
        per_fold: dict[str, float] = {}
        for fold in folds:
            model = fit_model(data, fold, cfg, lines, params=params)
            test = fold.masks(data.period, data.labelled)["test"]
            score = model.predict_proba(data.X[test])
            per_fold[fold.test_period] = fold_objective(
                data.labels[test].astype(int), score, objective
            )
        value = float(np.mean(list(per_fold.values())))
        result.trials.append(Trial(trial.number, sampled, value, per_fold, time.perf_counter() - t))
        say(f"tuning trial {trial.number + 1}/{n_trials}: {objective} {value:.4f}")
        return value

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=int(cfg.tuning.get("seed", 0)))
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.enqueue_trial(start_point(cfg.params))
    study.optimize(run, n_trials=n_trials, timeout=None if timeout is None else float(timeout))
    best = study.best_trial
    result.best_trial = best.number
    result.best_value = float(best.value)
    result.best_params = {**cfg.params, **best.params}
    result.seconds = time.perf_counter() - t0
    return result


def tuned_config(cfg: TrainConfig, result: TuningResult) -> dict[str, Any]:
    """The config's sections with the chosen LightGBM parameters (tuning itself switched off)."""
    raw = copy.deepcopy(cfg.raw)
    raw["name"] = f"{cfg.name}-tuned"
    raw.setdefault("model", {})["params"] = copy.deepcopy(result.best_params)
    return raw


def write_config(path: str | Path, cfg: TrainConfig, result: TuningResult) -> Path:
    """Write the tuned config as YAML (a header says how it was chosen); it loads as a TrainConfig."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = (
        f"# Tuned by `riskml train --tune` from config {cfg.name!r}: {len(result.trials)} trial(s), "
        f"best trial {result.best_trial},\n# mean {result.objective} {result.best_value:.4f} over "
        f"the tuning folds tested on {', '.join(result.folds)}.\n"
    )
    text = yaml.safe_dump(tuned_config(cfg, result), sort_keys=False, default_flow_style=False)
    path.write_text(header + text)
    TrainConfig.from_yaml(path)  # what is written must load
    return path
