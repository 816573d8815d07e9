"""Seed bagging: several boosters trained with different seeds, averaged into one booster.

``model.seed_bagging: n`` trains ``n`` LightGBM boosters on the same rows with
seeds ``seed, seed + 1, ...`` (each with its own early stopping on the
validation period) and averages their margins before calibration. The average
is itself a LightGBM model: every tree of every booster with its leaf (and
internal) values divided by ``n``, concatenated into one model text. So the
``RiskModel`` still holds one booster, and the compiled engine, TreeSHAP,
saving and the MLflow model need nothing new: the margin of the merged booster
is the mean of the ``n`` margins, and its contributions are the mean
contributions.
"""

from __future__ import annotations

import re
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from riskml.model.risk_model import fit_booster

_SCALED = ("leaf_value=", "internal_value=")


def fit_bagged(
    X_train: pd.DataFrame,
    y_train: np.ndarray,
    X_valid: pd.DataFrame,
    y_valid: np.ndarray,
    params: dict[str, Any],
    num_boost_round: int,
    early_stopping_rounds: int,
    bags: int = 1,
) -> lgb.Booster:
    """``fit_booster`` once (``bags`` 1), or ``bags`` times with consecutive seeds, averaged."""
    fit = [X_train, y_train, X_valid, y_valid]
    if bags <= 1:
        return fit_booster(*fit, params, num_boost_round, early_stopping_rounds)
    seed = int(params.get("seed", 0))
    boosters = [
        fit_booster(*fit, {**params, "seed": seed + i}, num_boost_round, early_stopping_rounds)
        for i in range(bags)
    ]
    return average_boosters(boosters)


def average_boosters(boosters: list[lgb.Booster]) -> lgb.Booster:
    """One booster whose raw margin is the mean of the boosters' margins (at their best iteration)."""
    n = len(boosters)
    texts = [b.model_to_string(num_iteration=b.best_iteration or -1) for b in boosters]
    head = texts[0].split("\nTree=", 1)[0]
    head = "\n".join(line for line in head.split("\n") if not line.startswith("tree_sizes="))
    tail = "end of trees" + texts[0].split("end of trees", 1)[1]
    trees: list[str] = []
    for text in texts:
        body = text.split("\nTree=", 1)[1].split("end of trees", 1)[0]
        for block in re.split(r"\nTree=", "\n" + "Tree=" + body)[1:]:
            lines = block.strip("\n").split("\n")[1:]  # drop the old tree number
            trees.append("\n".join(_scaled(line, n) for line in lines))
    out = [head.rstrip("\n"), ""]
    for i, tree in enumerate(trees):
        out += [f"Tree={i}", tree, "", ""]
    merged = lgb.Booster(model_str="\n".join(out) + tail)
    return merged


def _scaled(line: str, n: int) -> str:
    for key in _SCALED:
        if line.startswith(key):
            values = [float(v) / n for v in line[len(key) :].split()]
            return key + " ".join(repr(v) for v in values)
    return line
