"""Training the asset-risk model: panel → temporal split → LightGBM → Platt → held-out evaluation.

Splits are by year only: the latest labelled year ``t`` tests, ``t - 1`` validates (early
stopping and calibration), every year up to ``t - 2`` trains. The held-out year is evaluated
for the model, for the rules alone (riskml.assets.baseline: the number of asset rules fired)
and, on a simulated panel, for the oracle, overall and at each county's inspection capacity
(each county inspects its own top share). Parameters come from riskml/assets/train.yaml.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from riskml import config
from riskml.assets import baseline
from riskml.assets.features import FEATURE_NAMES, MONOTONE
from riskml.assets.model import AssetRiskModel, top_share_by_group
from riskml.assets.observation import LABEL, ORACLE
from riskml.model.metrics import Evaluation, auc, evaluate_scores, selection_metrics
from riskml.model.risk_model import fit_booster, fit_platt

DEFAULT_CONFIG = "assets/train.yaml"
GROUP_COLUMNS = ("category", "subtype", "operating_mode")


class AssetTrainingError(ValueError):
    """The panel cannot be trained on (no labels, too few years or positives)."""


@dataclass
class AssetTrainConfig:
    name: str = "asset-default"
    return_floor: float | None = None  # None: the rules file's floor
    simulate: dict[str, Any] = field(default_factory=dict)
    test_year: int | None = None
    min_positives: int = 30
    params: dict[str, Any] = field(default_factory=dict)
    num_boost_round: int = 600
    early_stopping_rounds: int = 40
    inspect: float = 0.10
    report_capacities: tuple[float, ...] = (0.05, 0.10, 0.20)
    promotion: dict[str, float] = field(default_factory=dict)
    model_name: str = "asset-risk"
    experiment: str = "asset-risk"
    raw: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_yaml(cls, path: str | Path | None = None) -> AssetTrainConfig:
        p = Path(path) if path else config.package_file(DEFAULT_CONFIG)
        return cls.from_dict(yaml.safe_load(p.read_text(encoding="utf-8")) or {})

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> AssetTrainConfig:
        known = {
            "name",
            "label",
            "simulate",
            "splits",
            "model",
            "capacity",
            "promotion",
            "registry",
        }
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ValueError(
                f"asset training config: unknown section(s) {unknown}; known: {sorted(known)}"
            )
        label, splits = raw.get("label") or {}, raw.get("splits") or {}
        model, cap = raw.get("model") or {}, raw.get("capacity") or {}
        reg = raw.get("registry") or {}
        floor = label.get("return_floor")
        cfg = cls(
            name=str(raw.get("name", "asset-default")),
            return_floor=None if floor is None else float(floor),
            simulate=dict(raw.get("simulate") or {}),
            test_year=None if splits.get("test_year") is None else int(splits["test_year"]),
            min_positives=int(splits.get("min_positives", 30)),
            params={"monotone": dict(MONOTONE), **dict(model.get("params") or {})},
            num_boost_round=int(model.get("num_boost_round", 600)),
            early_stopping_rounds=int(model.get("early_stopping_rounds", 40)),
            inspect=float(cap.get("inspect", 0.10)),
            report_capacities=tuple(float(c) for c in cap.get("report", (0.05, 0.10, 0.20))),
            promotion=dict(raw.get("promotion") or {}),
            model_name=str(reg.get("model_name", "asset-risk")),
            experiment=str(reg.get("experiment", "asset-risk")),
            raw=raw,
        )
        if not 0 < cfg.inspect < 1:
            raise ValueError("asset training config: capacity.inspect must be in (0, 1)")
        if cfg.return_floor is not None and not 0 <= cfg.return_floor < 1:
            raise ValueError("asset training config: label.return_floor must be in [0, 1)")
        return cfg

    def floor(self) -> float:
        """The return floor of the label: the config's, else the rules file's default."""
        return baseline.return_floor() if self.return_floor is None else self.return_floor


@dataclass
class Splits:
    train_years: list[int]
    valid_year: int
    test_year: int


@dataclass
class AssetTrainResult:
    model: AssetRiskModel
    splits: Splits
    evaluation: Evaluation
    row_counts: dict[str, int]
    timings: dict[str, float]
    test_frame: pd.DataFrame  # the test year's observations with label, score, rules, oracle


def choose_splits(panel: pd.DataFrame, cfg: AssetTrainConfig) -> Splits:
    labelled = panel[LABEL].notna().to_numpy()
    years = sorted(int(y) for y in np.unique(panel["year"].to_numpy()[labelled]))
    if len(years) < 3:
        raise AssetTrainingError(f"need at least 3 labelled years, got {years}")
    test = cfg.test_year if cfg.test_year is not None else years[-1]
    if test not in years or test - 1 not in years or not any(y <= test - 2 for y in years):
        raise AssetTrainingError(
            f"test year {test} needs the years {test - 1} and before labelled; labelled: {years}"
        )
    return Splits([y for y in years if y <= test - 2], test - 1, test)


def _labels(frame: pd.DataFrame) -> np.ndarray:
    return frame[LABEL].to_numpy(dtype=float).astype(int)


def capacity_metrics(
    y: np.ndarray, scores: dict[str, np.ndarray], county: np.ndarray, shares: tuple[float, ...]
) -> dict[str, float]:
    """Recall and precision when each county inspects its own top share, per scorer."""
    out: dict[str, float] = {}
    for share in shares:
        tag = f"at_{round(share * 100)}_county"
        for name, s in scores.items():
            m = selection_metrics(y, top_share_by_group(s, county, share))
            out[f"{name}_recall_{tag}"] = m["recall"]
            out[f"{name}_precision_{tag}"] = m["precision"]
        if "rules" in scores:
            out[f"gain_recall_{tag}"] = out[f"model_recall_{tag}"] - out[f"rules_recall_{tag}"]
    return out


def evaluate_year(
    model: AssetRiskModel, frame: pd.DataFrame, cfg: AssetTrainConfig, rules=None
) -> tuple[Evaluation, pd.DataFrame]:
    """Every figure of one labelled year: the model, the rules alone and (simulated) the oracle."""
    frame = frame[frame[LABEL].notna()].reset_index(drop=True)
    if frame.empty:
        raise AssetTrainingError("no labelled observations to evaluate on")
    y = _labels(frame)
    score = model.score(frame)
    rules_score = baseline.rules_score(frame, rules)
    oracle = frame[ORACLE].to_numpy(float) if ORACLE in frame.columns else None
    if oracle is not None and np.isnan(oracle).any():
        oracle = None
    county = frame["county_code"].to_numpy(dtype=object)
    caps = tuple(sorted(set(cfg.report_capacities) | {cfg.inspect}))
    ev = evaluate_scores(
        y, score, period=str(int(frame["year"].iloc[0])), county=county,
        groups=frame[list(GROUP_COLUMNS)], capacities=caps, rules_flagged=rules_score > 0,
        rules_severity=rules_score, oracle=oracle,
    )  # fmt: skip
    scorers = {"model": score, "rules": rules_score}
    if oracle is not None:
        scorers["oracle"] = oracle
    ev.metrics.update(capacity_metrics(y, scorers, county, caps))
    ev.metrics["rules_roc_auc"] = auc(y, rules_score)
    out = frame.assign(score=score, rules_score=rules_score)
    return ev, out


def train(panel: pd.DataFrame, cfg: AssetTrainConfig, rules=None) -> AssetTrainResult:
    """Fit, calibrate and evaluate the asset-risk model on ``panel`` (asset-year observations)."""
    t0 = time.perf_counter()
    if LABEL not in panel.columns:
        raise AssetTrainingError(f"the panel has no label column {LABEL!r}")
    splits = choose_splits(panel, cfg)
    labelled = panel[panel[LABEL].notna()]
    year = labelled["year"].to_numpy()
    parts = {
        "train": labelled[year <= splits.valid_year - 1],
        "valid": labelled[year == splits.valid_year],
        "test": labelled[year == splits.test_year],
    }
    for name, part in parts.items():
        pos = int(part[LABEL].sum())
        if pos < cfg.min_positives or len(part) - pos < cfg.min_positives:
            raise AssetTrainingError(
                f"{name} split has {pos} positive and {len(part) - pos} negative label(s); "
                f"need {cfg.min_positives} of each (splits.min_positives)"
            )
    floor = cfg.floor()
    proto = AssetRiskModel(None, 1.0, 0.0, floor, cfg.inspect)  # type: ignore[arg-type]
    X_train, X_valid = proto.features(parts["train"]), proto.features(parts["valid"])
    y_train, y_valid = _labels(parts["train"]), _labels(parts["valid"])
    t1 = time.perf_counter()
    booster = fit_booster(
        X_train,
        y_train,
        X_valid,
        y_valid,
        cfg.params,
        cfg.num_boost_round,
        cfg.early_stopping_rounds,
    )
    t2 = time.perf_counter()
    a, b = fit_platt(booster.predict(X_valid.to_numpy(np.float64), raw_score=True), y_valid)
    model = AssetRiskModel(
        booster=booster,
        platt_a=a,
        platt_b=b,
        return_floor=floor,
        inspect_share=cfg.inspect,
        feature_names=FEATURE_NAMES,
        metadata={
            "config": cfg.name,
            "label": f"idle or return rate below {floor:g} the next year",
            "best_iteration": int(booster.best_iteration or booster.current_iteration()),
            "train_years": splits.train_years,
            "valid_year": splits.valid_year,
            "test_year": splits.test_year,
        },
    )
    evaluation, test_frame = evaluate_year(model, parts["test"], cfg, rules)
    t3 = time.perf_counter()
    counts = {
        "assets": int(panel["asset_id"].nunique()),
        "rows": len(panel),
        "labelled_rows": len(labelled),
        **{f"{k}_rows": len(v) for k, v in parts.items()},
        **{f"{k}_positives": int(v[LABEL].sum()) for k, v in parts.items()},
    }
    timings = {"prepare": t1 - t0, "fit": t2 - t1, "evaluate": t3 - t2, "total": t3 - t0}
    return AssetTrainResult(model, splits, evaluation, counts, timings, test_frame)


HEADLINE = (
    "test_roc_auc", "rules_roc_auc", "oracle_roc_auc", "oracle_gap_roc_auc", "test_ece",
    "test_brier", "test_base_rate", "model_recall_at_10_county", "rules_recall_at_10_county",
    "oracle_recall_at_10_county", "model_precision_at_10_county", "rules_precision_at_10_county",
    "gain_recall_at_10_county", "rules_only_selected_share", "rules_only_recall",
    "rules_only_precision",
)  # fmt: skip
