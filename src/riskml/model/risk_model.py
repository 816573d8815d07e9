"""The risk model: features → LightGBM → Platt calibration, plus exact TreeSHAP contributions.

``RiskModel`` carries everything needed to score a contract record: the
feature pipeline (``riskml.features``), the reference lines it was trained
with, the booster, the calibration, and the operating thresholds chosen at
training. It saves to and loads from one folder, which is what the MLflow
model wraps, so what was trained is exactly what is served.

Calibration is Platt scaling on the booster's margin: ``logit(p) = a·margin + b``.
Because it is linear in the margin, the TreeSHAP contributions (LightGBM's
``pred_contrib``) scaled by ``a`` add up exactly to the calibrated log-odds,
so every explanation is in the same units as the score it explains.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from riskml.data.json_text import dumps
from riskml.data.reference import ReferenceLines, default_lines
from riskml.model.features import FEATURE_NAMES, build_features, split_previous
from riskml.model.tree_engine import TreeEngine


def _matrix(X: pd.DataFrame | np.ndarray) -> np.ndarray:
    return X.to_numpy(dtype=np.float64) if isinstance(X, pd.DataFrame) else X


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@dataclass
class Thresholds:
    """Score thresholds chosen at training for the configured caseworker capacity."""

    flag: float  # flagged at or above (yellow or red)
    red: float  # red at or above
    flag_capacity: float  # share of households the flag threshold selects (on validation)
    red_capacity: float


@dataclass
class Explanation:
    """Per-row contributions in calibrated log-odds; ``base + contributions.sum(1) == logit(score)``."""

    contributions: np.ndarray  # rows × features
    base: float
    feature_names: tuple[str, ...]


@dataclass
class RiskModel:
    booster: lgb.Booster
    platt_a: float
    platt_b: float
    thresholds: Thresholds
    lines: ReferenceLines
    feature_names: tuple[str, ...] = FEATURE_NAMES
    metadata: dict[str, Any] = field(default_factory=dict)
    # training reference for monitoring (riskml.model.profile.reference_profile); None for old models
    profile: dict[str, Any] | None = None

    # ------------------------------------------------------------------ lines
    def in_force(self, operated: ReferenceLines | None = None) -> RiskModel:
        """This model scoring with the lines in force: its own copy for the years it carries
        (what it was trained with), the operated table (``default_lines``) for the others,
        and the operated table's carry-forward policy. Idempotent."""
        lines = self.lines.extended_by(operated if operated is not None else default_lines())
        return replace(self, lines=lines)

    # ------------------------------------------------------------------ scoring
    def features(self, records: pd.DataFrame, previous: Any = None) -> pd.DataFrame:
        """The model's features; ``previous``: the history in any form ``build_features`` takes
        (lag 1 as a frame, a list of lags, or a frame with ``prev2_``/``prev3_`` columns)."""
        return build_features(records, previous, self.lines, self.feature_names)

    def margin(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        """The booster's raw margin, from the compiled engine (equal to LightGBM's bit for bit)."""
        arr = _matrix(X)
        engine = TreeEngine.for_booster(self.booster)
        return self.margin_lightgbm(arr) if engine is None else engine.margin(arr)

    def margin_lightgbm(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        """The same margin from LightGBM itself: the check of ``margin`` and its fallback."""
        return self.booster.predict(_matrix(X), raw_score=True)

    def calibrate(self, margin: np.ndarray) -> np.ndarray:
        return _sigmoid(self.platt_a * margin + self.platt_b)

    def predict_proba(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Calibrated probability of ``at_risk_next`` from a feature frame."""
        return self.calibrate(self.margin(X))

    def score_records(self, records: pd.DataFrame, previous: Any = None) -> np.ndarray:
        return self.predict_proba(self.features(records, previous))

    def explain(self, X: pd.DataFrame | np.ndarray) -> Explanation:
        """Exact TreeSHAP in calibrated log-odds, from the compiled engine (LightGBM's to rounding)."""
        arr = _matrix(X)
        engine = TreeEngine.for_booster(self.booster)
        if engine is None or len(arr) == 0:
            return self.explain_lightgbm(arr)
        return self._explanation(engine.contrib(arr))

    def explain_lightgbm(self, X: pd.DataFrame | np.ndarray) -> Explanation:
        """The same explanation from LightGBM's ``pred_contrib``: the check of ``explain``."""
        arr = _matrix(X)
        if len(arr) == 0:
            return Explanation(
                np.zeros((0, len(self.feature_names))), self.platt_b, self.feature_names
            )
        return self._explanation(self.booster.predict(arr, pred_contrib=True))

    def _explanation(self, raw: np.ndarray) -> Explanation:
        """TreeSHAP in margin units (features, then the expected value) scaled by Platt's slope."""
        contrib = raw[:, :-1] * self.platt_a
        base = float(raw[0, -1] * self.platt_a + self.platt_b)
        return Explanation(contrib, base, self.feature_names)

    def score_frame(self, df: pd.DataFrame, explain: bool = False) -> pd.DataFrame:
        """Score records that may carry their history (the MLflow model's input): lag 1 as
        ``prev_<field>``, lags 2 and 3 as ``prev2_<field>``, ``prev3_<field>``, and each
        lag's period as ``prev<k>_period`` (``features.lag_columns``). A lag whose period is
        given is used only when the chain rule holds (``history.chain_valid``); lags 2 and 3
        need the periods."""
        records, previous = split_previous(df)
        X = self.features(records, previous)
        m = self.margin(X)
        out = pd.DataFrame(
            {"score": self.calibrate(m), "logit": self.platt_a * m + self.platt_b}, index=df.index
        )
        if explain:
            ex = self.explain(X)
            contrib = pd.DataFrame(
                ex.contributions, columns=[f"contrib_{n}" for n in ex.feature_names], index=df.index
            )
            out = pd.concat([out, contrib], axis=1)
            out["contrib_base"] = ex.base
        return out

    def risk_level(self, score: np.ndarray) -> np.ndarray:
        s = np.asarray(score)
        return np.where(
            s >= self.thresholds.red, "red", np.where(s >= self.thresholds.flag, "yellow", "green")
        )

    # ------------------------------------------------------------------ persistence
    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.booster.save_model(str(folder / "booster.txt"))
        self.lines.table.to_csv(folder / "lines.csv", index=False)
        meta = {
            "format": 1,
            "feature_names": list(self.feature_names),
            "platt": {"a": self.platt_a, "b": self.platt_b},
            "thresholds": self.thresholds.__dict__,
            "metadata": self.metadata,
        }
        (folder / "model.json").write_text(dumps(meta, indent=2))
        if self.profile is not None:
            (folder / "profile.json").write_text(dumps(self.profile))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> RiskModel:
        folder = Path(folder)
        meta = json.loads((folder / "model.json").read_text())
        booster = lgb.Booster(model_file=str(folder / "booster.txt"))
        lines = ReferenceLines(
            pd.read_csv(folder / "lines.csv", dtype={"province_code": str}), source="model"
        )
        profile_file = folder / "profile.json"
        profile = json.loads(profile_file.read_text()) if profile_file.exists() else None
        return cls(
            booster=booster,
            platt_a=float(meta["platt"]["a"]),
            platt_b=float(meta["platt"]["b"]),
            thresholds=Thresholds(**meta["thresholds"]),
            lines=lines,
            feature_names=tuple(meta["feature_names"]),
            metadata=meta.get("metadata", {}),
            profile=profile,
        )


def fit_platt(margin: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Platt scaling: logistic regression of the label on the margin (unpenalised)."""
    from sklearn.linear_model import LogisticRegression

    lr = LogisticRegression(C=1e6, max_iter=1000)
    lr.fit(margin.reshape(-1, 1), y.astype(int))
    return float(lr.coef_[0, 0]), float(lr.intercept_[0])


def fit_booster(
    X_train: pd.DataFrame,
    y_train: np.ndarray,
    X_valid: pd.DataFrame,
    y_valid: np.ndarray,
    params: dict[str, Any],
    num_boost_round: int,
    early_stopping_rounds: int,
    progress: Any = None,
) -> lgb.Booster:
    """LightGBM binary booster with early stopping on the validation period."""
    pos = float(y_train.sum())
    neg = float(len(y_train) - pos)
    # early stopping on AUC: with class weighting the raw probabilities are biased until
    # calibration, so validation log loss would stop training far too early
    p = {"objective": "binary", "metric": ["auc", "binary_logloss"], "verbosity": -1}
    p.update(params)
    monotone = p.pop("monotone", None) or {}
    unknown = sorted(set(monotone) - set(X_train.columns))
    if unknown:
        raise ValueError(f"monotone constraints name unknown feature(s): {unknown}")
    if monotone:
        p["monotone_constraints"] = [int(monotone.get(c, 0)) for c in X_train.columns]
        p.setdefault("monotone_constraints_method", "advanced")
    weighting = p.pop("class_weight", "sqrt_balanced")
    if weighting == "balanced":
        p["scale_pos_weight"] = neg / max(pos, 1.0)
    elif weighting == "sqrt_balanced":
        p["scale_pos_weight"] = float(np.sqrt(neg / max(pos, 1.0)))
    elif weighting not in (None, "none"):
        raise ValueError(f"class_weight must be balanced, sqrt_balanced or none, got {weighting!r}")
    train_set = lgb.Dataset(
        X_train.to_numpy(np.float64), label=y_train, feature_name=list(X_train.columns)
    )
    valid_set = lgb.Dataset(X_valid.to_numpy(np.float64), label=y_valid, reference=train_set)
    callbacks = [lgb.early_stopping(early_stopping_rounds, first_metric_only=True, verbose=False)]
    if progress is not None:
        callbacks.append(progress)
    return lgb.train(
        p,
        train_set,
        num_boost_round=num_boost_round,
        valid_sets=[valid_set],
        valid_names=["valid"],
        callbacks=callbacks,
    )


def choose_thresholds(
    valid_scores: np.ndarray, flag_capacity: float, red_capacity: float
) -> Thresholds:
    """Thresholds that select the configured shares of households on the validation period."""
    if not 0 < red_capacity <= flag_capacity < 1:
        raise ValueError("need 0 < red_capacity <= flag_capacity < 1")
    flag = float(np.quantile(valid_scores, 1.0 - flag_capacity))
    red = float(np.quantile(valid_scores, 1.0 - red_capacity))
    return Thresholds(
        flag=flag, red=max(red, flag), flag_capacity=flag_capacity, red_capacity=red_capacity
    )
