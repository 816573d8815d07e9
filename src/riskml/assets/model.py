"""The asset-risk model: observation → features → LightGBM → Platt calibration, with exact TreeSHAP.

``AssetRiskModel`` scores asset-year observations (riskml.assets.observation): the calibrated
probability that the asset is idle or below the return floor the next year. Calibration is
Platt scaling on the booster's margin, so TreeSHAP contributions (LightGBM's ``pred_contrib``,
or the compiled engine of riskml.model.tree_engine, equal to it) scaled by its slope add up to
the calibrated log-odds. ``flag_by_county`` is the inspection list: each county's top share.
It saves to and loads from one folder (what the MLflow model wraps).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from riskml.assets.features import FEATURE_NAMES, build_features
from riskml.data.json_text import dumps
from riskml.model.tree_engine import TreeEngine

FORMAT = 1


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def top_share_by_group(
    score: np.ndarray, group: np.ndarray, share: float, seed: int = 0
) -> np.ndarray:
    """The top ``ceil(share × n_g)`` rows of each group by score (ties in seeded random order)."""
    n = len(score)
    if n == 0:
        return np.zeros(0, bool)
    if not 0 < share <= 1:
        raise ValueError(f"the inspected share must be in (0, 1], got {share}")
    codes, _ = pd.factorize(np.asarray(group, dtype=object))
    tiebreak = np.random.default_rng(seed).random(n)
    order = np.lexsort((tiebreak, -np.asarray(score, float), codes))
    sorted_codes = codes[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_codes)) + 1]
    sizes = np.diff(np.r_[starts, n])
    rank = np.arange(n) - np.repeat(starts, sizes)
    quota = np.ceil(share * sizes - 1e-9).astype(int)
    mask = np.zeros(n, bool)
    mask[order] = rank < np.repeat(quota, sizes)
    return mask


@dataclass
class Explanation:
    """Per-row contributions in calibrated log-odds; ``base + contributions.sum(1) == logit``."""

    contributions: np.ndarray
    base: float
    feature_names: tuple[str, ...]


@dataclass
class AssetRiskModel:
    booster: lgb.Booster
    platt_a: float
    platt_b: float
    return_floor: float
    inspect_share: float  # each county's inspection capacity (share of its assets)
    feature_names: tuple[str, ...] = FEATURE_NAMES
    metadata: dict[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------ scoring
    def features(self, obs: pd.DataFrame) -> pd.DataFrame:
        return build_features(obs)[list(self.feature_names)]

    def _engine(self) -> TreeEngine | None:
        return TreeEngine.for_booster(self.booster)

    def margin(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        arr = X.to_numpy(np.float64) if isinstance(X, pd.DataFrame) else X
        engine = self._engine()
        return self.booster.predict(arr, raw_score=True) if engine is None else engine.margin(arr)

    def calibrate(self, margin: np.ndarray) -> np.ndarray:
        return _sigmoid(self.platt_a * margin + self.platt_b)

    def predict_proba(self, X: pd.DataFrame | np.ndarray) -> np.ndarray:
        return self.calibrate(self.margin(X))

    def score(self, obs: pd.DataFrame) -> np.ndarray:
        """The calibrated probability for each observation."""
        return self.predict_proba(self.features(obs))

    def explain(self, X: pd.DataFrame | np.ndarray) -> Explanation:
        """Exact TreeSHAP in calibrated log-odds (compiled engine, LightGBM's as the fallback)."""
        arr = X.to_numpy(np.float64) if isinstance(X, pd.DataFrame) else np.asarray(X, np.float64)
        if len(arr) == 0:
            return Explanation(
                np.zeros((0, len(self.feature_names))), self.platt_b, self.feature_names
            )
        engine = self._engine()
        raw = (
            engine.contrib(arr)
            if engine is not None
            else self.booster.predict(arr, pred_contrib=True)
        )
        return self.explanation_of(raw)

    def explain_lightgbm(self, X: pd.DataFrame | np.ndarray) -> Explanation:
        """The same from LightGBM's ``pred_contrib`` (the check of ``explain``)."""
        arr = X.to_numpy(np.float64) if isinstance(X, pd.DataFrame) else np.asarray(X, np.float64)
        return self.explanation_of(self.booster.predict(arr, pred_contrib=True))

    def explanation_of(self, raw: np.ndarray) -> Explanation:
        """TreeSHAP in margin units (features, then the expected value) → calibrated log-odds."""
        return Explanation(
            raw[:, :-1] * self.platt_a,
            float(raw[0, -1] * self.platt_a + self.platt_b),
            self.feature_names,
        )

    def flag_by_county(
        self, score: np.ndarray, county: np.ndarray, share: float | None = None
    ) -> np.ndarray:
        """The inspection list: each county's top ``share`` (default: the model's) by score."""
        return top_share_by_group(score, county, self.inspect_share if share is None else share)

    def score_frame(self, obs: pd.DataFrame, explain: bool = False) -> pd.DataFrame:
        """``score``, ``logit`` and ``flagged`` (each county's top share) per observation, with
        ``contrib_<feature>`` and ``contrib_base`` when asked."""
        X = self.features(obs)
        m = self.margin(X)
        logit = self.platt_a * m + self.platt_b
        out = pd.DataFrame({"score": _sigmoid(logit), "logit": logit}, index=obs.index)
        out["flagged"] = self.flag_by_county(out["score"].to_numpy(), obs["county_code"].to_numpy())
        if explain:
            ex = self.explain(X)
            contrib = pd.DataFrame(
                ex.contributions,
                columns=[f"contrib_{n}" for n in ex.feature_names],
                index=obs.index,
            )
            out = pd.concat([out, contrib], axis=1)
            out["contrib_base"] = ex.base
        return out

    # ------------------------------------------------------------------ persistence
    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.booster.save_model(str(folder / "booster.txt"))
        meta = {
            "format": FORMAT,
            "kind": "asset-risk",
            "feature_names": list(self.feature_names),
            "platt": {"a": self.platt_a, "b": self.platt_b},
            "return_floor": self.return_floor,
            "inspect_share": self.inspect_share,
            "metadata": self.metadata,
        }
        (folder / "model.json").write_text(dumps(meta, indent=2))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> AssetRiskModel:
        folder = Path(folder)
        meta = json.loads((folder / "model.json").read_text())
        if meta.get("kind") != "asset-risk":
            raise ValueError(f"{folder}: not an asset-risk model folder")
        return cls(
            booster=lgb.Booster(model_file=str(folder / "booster.txt")),
            platt_a=float(meta["platt"]["a"]),
            platt_b=float(meta["platt"]["b"]),
            return_floor=float(meta["return_floor"]),
            inspect_share=float(meta["inspect_share"]),
            feature_names=tuple(meta["feature_names"]),
            metadata=meta.get("metadata", {}),
        )
