"""The training pipeline: panel → labels → time split → booster → calibration → held-out evaluation.

Pure steps wired together in ``train``; parameters come from a YAML config
(``training/default.yaml``). Splits are by period only: the latest labelled
period is the test set, the one before it validates (early stopping,
calibration, thresholds), everything earlier trains. No row of a later period
is ever used to fit anything evaluated on an earlier one.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from riskml.data import schema
from riskml.data.columns import Columns
from riskml.data.history import previous_from_panel
from riskml.data.label import training_labels
from riskml.data.reference import ReferenceLines, add_command, default_lines
from riskml.model.features import FEATURE_NAMES, build_features
from riskml.model.metrics import Evaluation, evaluate_scores
from riskml.model.profile import reference_profile
from riskml.model.risk_model import RiskModel, choose_thresholds, fit_booster, fit_platt

# data.label: the label trained on. income: at_risk_next (the contract's label); confirmed,
# confirmed_visited: confirmed identification from the case loop, in the panel's
# confirmed_next column (riskml.cases.outcomes.confirmed_labels; ``riskml train --ledger``)
LABELS = ("income", "confirmed", "confirmed_visited")
CONFIRMED_LABEL = "confirmed_next"


class TrainingDataError(ValueError):
    """The panel cannot be trained on (no labels, too few positives, too few periods)."""


@dataclass
class TrainConfig:
    name: str = "default"
    params: dict[str, Any] = field(default_factory=dict)
    num_boost_round: int = 600
    early_stopping_rounds: int = 40
    flag_capacity: float = 0.10
    red_capacity: float = 0.03
    report_capacities: tuple[float, ...] = (0.05, 0.10)
    test_period: str | None = None
    valid_period: str | None = None
    min_positives: int = 30
    label: str = "income"
    promotion: dict[str, float] = field(default_factory=dict)
    model_name: str = "household-risk"
    raw: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_yaml(cls, path: str | Path) -> TrainConfig:
        raw = yaml.safe_load(Path(path).read_text()) or {}
        return cls.from_dict(raw)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TrainConfig:
        known = {"name", "model", "capacity", "splits", "data", "promotion", "registry"}
        unknown = set(raw) - known
        if unknown:
            raise ValueError(
                f"training config: unknown section(s) {sorted(unknown)}; known: {sorted(known)}"
            )
        model = raw.get("model", {})
        cap = raw.get("capacity", {})
        splits = raw.get("splits", {})
        label = str(raw.get("data", {}).get("label", "income"))
        if label not in LABELS:
            raise ValueError(f"training config: data.label must be one of {', '.join(LABELS)}")
        return cls(
            name=raw.get("name", "default"),
            params=dict(model.get("params", {})),
            num_boost_round=int(model.get("num_boost_round", 600)),
            early_stopping_rounds=int(model.get("early_stopping_rounds", 40)),
            flag_capacity=float(cap.get("flag", 0.10)),
            red_capacity=float(cap.get("red", 0.03)),
            report_capacities=tuple(float(c) for c in cap.get("report", (0.05, 0.10))),
            test_period=splits.get("test_period"),
            valid_period=splits.get("valid_period"),
            min_positives=int(raw.get("data", {}).get("min_positives", 30)),
            label=label,
            promotion=dict(raw.get("promotion", {})),
            model_name=raw.get("registry", {}).get("model_name", "household-risk"),
            raw=raw,
        )


@dataclass
class Splits:
    train_periods: list[str]
    valid_period: str
    test_period: str


@dataclass
class TrainResult:
    model: RiskModel
    splits: Splits
    evaluation: Evaluation
    row_counts: dict[str, int]
    timings: dict[str, float]
    test_frame: pd.DataFrame  # test-period records, label, score (for reports)
    data_hash: str | None = None


def file_hash(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def choose_splits(periods: pd.Series, labelled: pd.Series, cfg: TrainConfig) -> Splits:
    """Latest labelled period = test, the one before = validation, all earlier = train."""
    labelled_periods = sorted(periods[labelled].unique().tolist())
    if len(labelled_periods) < 3:
        raise TrainingDataError(
            f"need at least 3 labelled periods (train, validation, test); the panel has {len(labelled_periods)}: "
            f"{labelled_periods}"
        )
    test = cfg.test_period or labelled_periods[-1]
    if test not in labelled_periods:
        raise TrainingDataError(
            f"test period {test} has no labelled rows; labelled: {labelled_periods}"
        )
    earlier = [p for p in labelled_periods if p < test]
    valid = cfg.valid_period or (earlier[-1] if earlier else None)
    if valid is None or valid not in earlier:
        raise TrainingDataError(
            f"validation period must be a labelled period before {test}; got {valid}"
        )
    train = [p for p in earlier if p < valid]
    if not train:
        raise TrainingDataError(
            f"no labelled period before the validation period {valid} to train on"
        )
    return Splits(train_periods=train, valid_period=valid, test_period=test)


def prepare_panel(
    panel: pd.DataFrame, lines: ReferenceLines
) -> tuple[pd.DataFrame, pd.DataFrame, pd.Series]:
    """Validated records, their previous periods, and labels (NaN where unknown).

    Every record needs a line in force (the same policy as scoring: carried
    forward as provisional within the gap); otherwise TrainingDataError lists
    every missing (province, year) with the command that adds it.
    """
    records = schema.require_valid(panel)
    records = records.sort_values(["period", "household_id"], kind="stable").reset_index(drop=True)
    check_lines(records, lines)
    labels = training_labels(records, lines)
    previous = previous_from_panel(records[list(schema.FIELD_NAMES)])
    return records, previous, labels


def _line_keys(records: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    c = Columns.from_frame(records[["county_code", "period"]])
    return c.province(), c.month()


def check_lines(records: pd.DataFrame, lines: ReferenceLines) -> None:
    """TrainingDataError listing every (province, year) of the records without a line in force."""
    provinces, months = _line_keys(records)
    missing = lines.uncovered_pairs(provinces, months)
    if missing:
        listed = "\n".join(f"  {add_command(p, y)}" for p, y in missing)
        raise TrainingDataError(
            f"{len(missing)} (province, year) of the panel without a reference line in force "
            f"({lines.source}; carried forward at most {lines.carry_forward_months} months); "
            f"add them with:\n{listed}"
        )


def provisional_lines(records: pd.DataFrame, lines: ReferenceLines) -> list[str]:
    """ "province/year <- line year" for every pair of the records whose line is carried forward."""
    provinces, months = _line_keys(records)
    used = lines.resolve(provinces, months)
    rows = np.flatnonzero(np.array([b == "provisional" for b in used.basis], dtype=bool))
    return sorted(
        {
            f"{int(provinces[i]):02d}/{int(months[i]) // 12} <- {int(used.line_year[i])}"
            for i in rows
        }
    )


def train(
    panel: pd.DataFrame,
    cfg: TrainConfig,
    lines: ReferenceLines | None = None,
    progress: Callable[[str], None] | None = None,
) -> TrainResult:
    """Fit, calibrate and evaluate on the held-out latest period."""
    say = progress or (lambda _msg: None)
    lines = lines or default_lines()
    t0 = time.perf_counter()
    timings: dict[str, float] = {}

    say("validating and labelling the panel")
    records, previous, labels = prepare_panel(panel, lines)
    if cfg.label != "income":
        if CONFIRMED_LABEL not in records.columns:
            raise TrainingDataError(
                f"data.label {cfg.label} trains on the panel's {CONFIRMED_LABEL} column "
                "(confirmed identification from the case loop): train with --ledger"
            )
        labels = pd.to_numeric(records[CONFIRMED_LABEL], errors="coerce").astype(float)
    labelled = labels.notna()
    if labelled.sum() == 0:
        raise TrainingDataError(
            "the panel has no labels: no household has a record 12 months later and no at_risk_next column"
        )
    splits = choose_splits(records["period"], labelled, cfg)
    provisional = provisional_lines(records, lines)
    if provisional:
        say(
            f"{len(provisional)} (province, year) use an earlier year's lines as provisional: "
            + ", ".join(provisional[:10])
            + (" ..." if len(provisional) > 10 else "")
        )
    timings["prepare_s"] = time.perf_counter() - t0

    say("building features")
    t = time.perf_counter()
    X_all = build_features(records[list(schema.FIELD_NAMES)], previous, lines)[list(FEATURE_NAMES)]
    timings["features_s"] = time.perf_counter() - t
    y_all = labels.to_numpy()
    period = records["period"].to_numpy()
    in_train = np.isin(period, splits.train_periods) & labelled.to_numpy()
    in_valid = (period == splits.valid_period) & labelled.to_numpy()
    in_test = (period == splits.test_period) & labelled.to_numpy()
    for name, mask in (("train", in_train), ("validation", in_valid), ("test", in_test)):
        pos = int(y_all[mask].sum())
        if pos < cfg.min_positives:
            raise TrainingDataError(
                f"too few positives in the {name} split: {pos} (< min_positives {cfg.min_positives}); "
                "use a larger panel or lower data.min_positives in the config"
            )

    say(f"training LightGBM on {int(in_train.sum()):,} rows")
    t = time.perf_counter()
    booster = fit_booster(
        X_all[in_train],
        y_all[in_train],
        X_all[in_valid],
        y_all[in_valid],
        cfg.params,
        cfg.num_boost_round,
        cfg.early_stopping_rounds,
    )
    timings["fit_s"] = time.perf_counter() - t

    say("calibrating on the validation period")
    valid_margin = booster.predict(X_all[in_valid].to_numpy(np.float64), raw_score=True)
    a, b = fit_platt(valid_margin, y_all[in_valid])
    valid_scores = 1 / (1 + np.exp(-(a * valid_margin + b)))
    thresholds = choose_thresholds(valid_scores, cfg.flag_capacity, cfg.red_capacity)
    metadata = {
        "config_name": cfg.name,
        "label": cfg.label,
        "train_periods": splits.train_periods,
        "valid_period": splits.valid_period,
        "test_period": splits.test_period,
        "best_iteration": int(booster.best_iteration or booster.current_iteration()),
        "num_trees": int(booster.num_trees()),
        "valid_base_rate": float(y_all[in_valid].mean()),
        "provisional_lines": provisional,
    }
    model = RiskModel(
        booster=booster, platt_a=a, platt_b=b, thresholds=thresholds, lines=lines, metadata=metadata
    )
    # the monitoring reference: feature bins, score histogram, missing rates of the training rows
    model.profile = reference_profile(
        X_all[in_train],
        model.predict_proba(X_all[in_train]),
        records[in_train],
        thresholds=thresholds,
    )

    say("evaluating on the test period")
    t = time.perf_counter()
    test_records = records[in_test].reset_index(drop=True)
    test_prev = previous[in_test].reset_index(drop=True)
    y_test = y_all[in_test].astype(int)
    score = model.predict_proba(X_all[in_test])
    evaluation = evaluate_test_period(model, test_records, test_prev, y_test, score, cfg, lines)
    timings["evaluate_s"] = time.perf_counter() - t
    timings["total_s"] = time.perf_counter() - t0

    test_frame = test_records.copy()
    test_frame["at_risk_next"] = y_test
    test_frame["score"] = score
    row_counts = {
        "rows": len(records),
        "labelled_rows": int(labelled.sum()),
        "train_rows": int(in_train.sum()),
        "valid_rows": int(in_valid.sum()),
        "test_rows": int(in_test.sum()),
        "train_positives": int(y_all[in_train].sum()),
        "test_positives": int(y_test.sum()),
        "households": int(records["household_id"].nunique()),
    }
    return TrainResult(model, splits, evaluation, row_counts, timings, test_frame)


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
    from riskml.policy import rules as policy_rules

    ruleset = policy_rules.RuleSet.load()
    rr = policy_rules.evaluate(records[list(schema.FIELD_NAMES)], ruleset, lines, previous=previous)
    flagged, severity = policy_rules.rules_baseline(rr)
    groups = pd.DataFrame(
        {
            "province": records["county_code"].astype(str).str.slice(0, 2).to_numpy(),
            "formerly_poor": records["formerly_poor"].to_numpy(),
            "head_female": records["head_female"].to_numpy(),
            "ethnic_minority": records["ethnic_minority"].to_numpy(),
        }
    )
    oracle = records["oracle_p"].to_numpy(dtype=float) if "oracle_p" in records.columns else None
    if oracle is not None and np.isnan(oracle).any():
        oracle = None
    return evaluate_scores(
        y,
        score,
        period=str(records["period"].iloc[0]) if len(records) else "",
        county=records["county_code"].astype(str).to_numpy(),
        groups=groups,
        capacities=cfg.report_capacities,
        rules_flagged=np.asarray(flagged, dtype=bool),
        rules_severity=np.asarray(severity, dtype=float),
        model_flagged=score >= model.thresholds.flag,
        oracle=oracle,
    )
