"""The training pipeline: panel → labels → features → rolling folds → booster → calibration → evaluation.

Pure steps wired together in ``train``; parameters come from a YAML config
(``training/default.yaml``). Splits are by period only: the latest labelled
period is the test set, the one before it validates (early stopping,
calibration, thresholds), everything earlier trains; that is the registered
model. The same discipline rolled back one period at a time gives the
rolling-origin folds (``riskml.training.folds``; ``evaluation.folds``), each
evaluated against the baselines (``riskml.training.baselines``). No row of a
later period is ever used to fit anything evaluated on an earlier one.

``prepare`` is the one place the panel becomes records, previous periods,
labels and the feature matrix.
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
from riskml.data.history import earlier_from_panel, history_frame
from riskml.data.label import training_labels
from riskml.data.reference import ReferenceLines, add_command, default_lines
from riskml.model.features import build_features, feature_names_for, side_inputs_of
from riskml.model.metrics import Evaluation
from riskml.model.profile import reference_profile
from riskml.model.risk_model import RiskModel, choose_thresholds, fit_platt
from riskml.training.bagging import fit_bagged
from riskml.training.errors import TrainingDataError
from riskml.training.evaluation import FoldResult, evaluate_fold, evaluate_test_period
from riskml.training.folds import Fold, check_no_leakage, rolling_folds

# data.label: the label trained on. income: at_risk_next (the contract's label); confirmed,
# confirmed_visited: confirmed identification from the case loop, in the panel's
# confirmed_next column (riskml.cases.outcomes.confirmed_labels; ``riskml train --ledger``)
LABELS = ("income", "confirmed", "confirmed_visited")
CONFIRMED_LABEL = "confirmed_next"
OBJECTIVES = ("roc_auc", "recall_at_10")
__all__ = ["FoldResult", "TrainingDataError", "evaluate_test_period"]


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
    folds: int = 3
    min_folds: int = 1
    bootstrap_resamples: int = 200
    bootstrap_seed: int = 0
    seed_bagging: int = 1
    tuning: dict[str, Any] = field(default_factory=dict)
    # feature options switched on (``features:``; riskml.model.features.FEATURE_OPTIONS)
    feature_options: tuple[str, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def feature_names(self) -> tuple[str, ...]:
        return feature_names_for(self.feature_options)

    @classmethod
    def from_yaml(cls, path: str | Path) -> TrainConfig:
        raw = yaml.safe_load(Path(path).read_text()) or {}
        return cls.from_dict(raw)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TrainConfig:
        known = {"name", "model", "capacity", "splits", "data", "promotion", "registry",
                 "evaluation", "tuning", "features"}  # fmt: skip
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
        evaluation = raw.get("evaluation", {}) or {}
        tuning = dict(raw.get("tuning", {}) or {})
        if tuning.get("objective", "roc_auc") not in OBJECTIVES:
            raise ValueError(f"training config: tuning.objective must be one of {OBJECTIVES}")
        if not 1 <= int(evaluation.get("min_folds", 1)) <= int(evaluation.get("folds", 3)):
            raise ValueError("training config: need 1 <= evaluation.min_folds <= evaluation.folds")
        options = raw.get("features", {}) or {}
        if not isinstance(options, dict) or any(not isinstance(v, bool) for v in options.values()):
            raise ValueError("training config: features maps option names to true or false")
        feature_options = tuple(name for name, on in options.items() if on)
        feature_names_for(feature_options)  # an unknown option is refused here
        bagging = int(model.get("seed_bagging", 1))
        if bagging < 1:
            raise ValueError("training config: model.seed_bagging must be at least 1")
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
            folds=int(evaluation.get("folds", 3)),
            min_folds=int(evaluation.get("min_folds", 1)),
            bootstrap_resamples=int(evaluation.get("bootstrap_resamples", 200)),
            bootstrap_seed=int(evaluation.get("bootstrap_seed", 0)),
            seed_bagging=bagging,
            tuning=tuning,
            feature_options=feature_options,
            raw=raw,
        )

    def with_params(self, params: dict[str, Any]) -> TrainConfig:
        """This config with other LightGBM parameters (``raw`` follows, so it is logged as used)."""
        import copy

        raw = copy.deepcopy(self.raw)
        raw.setdefault("model", {})["params"] = copy.deepcopy(params)
        out = copy.copy(self)
        out.params, out.raw = copy.deepcopy(params), raw
        return out


@dataclass
class Splits:
    train_periods: list[str]
    valid_period: str
    test_period: str


@dataclass
class Prepared:
    """A panel ready to train on: validated records (sorted by period, household), their
    previous periods, labels (NaN where unknown), the feature matrix, row periods."""

    records: pd.DataFrame
    previous: pd.DataFrame
    labels: np.ndarray
    X: pd.DataFrame
    provisional: list[str]

    @property
    def labelled(self) -> np.ndarray:
        return ~np.isnan(self.labels)

    @property
    def period(self) -> np.ndarray:
        return self.records["period"].to_numpy()

    def labelled_periods(self) -> list[str]:
        return sorted(pd.unique(self.period[self.labelled]).tolist())


@dataclass
class TrainResult:
    model: RiskModel
    splits: Splits
    evaluation: Evaluation
    row_counts: dict[str, int]
    timings: dict[str, float]
    test_frame: pd.DataFrame  # test-period records, label, score (for reports)
    data_hash: str | None = None
    folds: list[FoldResult] = field(default_factory=list)
    tuning: Any = None  # riskml.training.tuning.TuningResult when tuned
    config: TrainConfig | None = None  # the config trained with (the tuned parameters if tuned)

    def fold_table(self) -> pd.DataFrame:
        """One row per fold (oldest first): periods and every fold metric."""
        return pd.DataFrame([f.row() for f in self.folds])


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
    """Validated records, their history, and labels (NaN where unknown).

    The history is ``history.history_frame`` of the records' lags 1-3: lag 1's
    columns as they are (what the rules read), lags 2 and 3 as ``prev2_``/``prev3_``
    columns (what the history features read); it subsets like the records.

    Every record needs a line in force (the same policy as scoring: carried
    forward as provisional within the gap); otherwise TrainingDataError lists
    every missing (province, year) with the command that adds it.
    """
    records = schema.require_valid(panel)
    records = records.sort_values(["period", "household_id"], kind="stable").reset_index(drop=True)
    check_lines(records, lines)
    labels = training_labels(records, lines)
    previous = history_frame(earlier_from_panel(records[list(schema.FIELD_NAMES)]))
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


def prepare(
    panel: pd.DataFrame, cfg: TrainConfig, lines: ReferenceLines, label: str | None = None
) -> Prepared:
    """Records, previous periods, labels (``label``, default ``cfg.label``) and features: the one
    place the panel is turned into what is fitted and evaluated."""
    records, previous, labels = prepare_panel(panel, lines)
    label = label or cfg.label
    if label != "income":
        if CONFIRMED_LABEL not in records.columns:
            raise TrainingDataError(
                f"data.label {label} trains on the panel's {CONFIRMED_LABEL} column "
                "(confirmed identification from the case loop): train with --ledger"
            )
        labels = pd.to_numeric(records[CONFIRMED_LABEL], errors="coerce").astype(float)
    names = cfg.feature_names
    side = list(side_inputs_of(names))
    lacking = [c for c in side if c not in records.columns]
    if lacking:
        raise TrainingDataError(
            f"the feature option(s) {', '.join(cfg.feature_options)} read the panel's "
            f"{', '.join(lacking)} column: train with --asset-events (the asset register's "
            "events, riskml assets events) or add the column"
        )
    X = build_features(records[[*schema.FIELD_NAMES, *side]], previous, lines, names)
    return Prepared(
        records=records,
        previous=previous,
        labels=labels.to_numpy(dtype=float),
        X=X,
        provisional=provisional_lines(records, lines),
    )


def check_positives(data: Prepared, fold: Fold, cfg: TrainConfig) -> None:
    """TrainingDataError naming the split (and the fold) with fewer than min_positives positives."""
    for name, mask in fold.masks(data.period, data.labelled).items():
        pos = int(np.nansum(data.labels[mask]))
        if pos < cfg.min_positives:
            raise TrainingDataError(
                f"too few positives in the {name} split ({fold.name}): "
                f"{pos} (< min_positives {cfg.min_positives}); "
                "use a larger panel or lower data.min_positives in the config"
            )


def fit_model(
    data: Prepared, fold: Fold, cfg: TrainConfig, lines: ReferenceLines, params: dict | None = None
) -> RiskModel:
    """Booster(s) on the fold's train rows with early stopping, Platt calibration and
    thresholds on its validation period."""
    check_no_leakage(fold)
    check_positives(data, fold, cfg)
    m = fold.masks(data.period, data.labelled)
    y = data.labels
    booster = fit_bagged(
        data.X[m["train"]],
        y[m["train"]],
        data.X[m["validation"]],
        y[m["validation"]],
        cfg.params if params is None else params,
        cfg.num_boost_round,
        cfg.early_stopping_rounds,
        bags=cfg.seed_bagging,
    )
    valid_margin = booster.predict(data.X[m["validation"]].to_numpy(np.float64), raw_score=True)
    a, b = fit_platt(valid_margin, y[m["validation"]])
    valid_scores = 1 / (1 + np.exp(-(a * valid_margin + b)))
    thresholds = choose_thresholds(valid_scores, cfg.flag_capacity, cfg.red_capacity)
    metadata = {
        "config_name": cfg.name,
        "label": cfg.label,
        "train_periods": list(fold.train_periods),
        "valid_period": fold.valid_period,
        "test_period": fold.test_period,
        "best_iteration": int(booster.best_iteration or booster.current_iteration()),
        "num_trees": int(booster.num_trees()),
        "seed_bagging": cfg.seed_bagging,
        "valid_base_rate": float(y[m["validation"]].mean()),
        "provisional_lines": data.provisional,
    }
    return RiskModel(
        booster=booster,
        platt_a=a,
        platt_b=b,
        thresholds=thresholds,
        lines=lines,
        metadata=metadata,
        feature_names=tuple(data.X.columns),
    )


def fold_plan(
    data: Prepared,
    splits: Splits,
    cfg: TrainConfig,
    progress: Callable[[str], None] | None = None,
) -> list[Fold]:
    """The last ``evaluation.folds`` rolling folds ending with the final split whose splits all
    have ``data.min_positives`` positives (a fold without them is left out and said;
    TrainingDataError when fewer than ``evaluation.min_folds`` remain)."""
    final = Fold(tuple(splits.train_periods), splits.valid_period, splits.test_period)
    every = rolling_folds(data.labelled_periods(), len(data.labelled_periods()), final)
    usable, dropped = [], []
    for f in reversed(every):
        if len(usable) == cfg.folds:
            break
        try:
            check_positives(data, f, cfg)
            usable.append(f)
        except TrainingDataError as exc:
            if f == final:
                raise
            dropped.append(str(exc))
            if progress is not None:
                progress(f"{f.name} left out: {exc}")
    if len(usable) < cfg.min_folds:
        raise TrainingDataError(
            f"evaluation.min_folds is {cfg.min_folds} but only {len(usable)} rolling fold(s) can "
            "be formed: " + ("; ".join(dropped) or "too few labelled periods")
        )
    return usable[::-1]


def train(
    panel: pd.DataFrame,
    cfg: TrainConfig,
    lines: ReferenceLines | None = None,
    progress: Callable[[str], None] | None = None,
    tune: bool = False,
) -> TrainResult:
    """Fit, calibrate and evaluate on the held-out latest period, and on the rolling folds.

    ``tune``: choose the LightGBM parameters first (``riskml.training.tuning``,
    the config's ``tuning`` budget); the result's ``tuning`` says what was tried.
    """
    say = progress or (lambda _msg: None)
    lines = lines or default_lines()
    t0 = time.perf_counter()
    timings: dict[str, float] = {}

    say("validating and labelling the panel, building features")
    data = prepare(panel, cfg, lines)
    labelled = data.labelled
    if labelled.sum() == 0:
        raise TrainingDataError(
            "the panel has no labels: no household has a record 12 months later and no at_risk_next column"
        )
    records, y_all, X_all = data.records, data.labels, data.X
    splits = choose_splits(records["period"], pd.Series(labelled), cfg)
    if data.provisional:
        say(
            f"{len(data.provisional)} (province, year) use an earlier year's lines as provisional: "
            + ", ".join(data.provisional[:10])
            + (" ..." if len(data.provisional) > 10 else "")
        )
    final = Fold(tuple(splits.train_periods), splits.valid_period, splits.test_period)
    check_positives(data, final, cfg)
    timings["prepare_s"] = time.perf_counter() - t0

    tuning = None
    if tune:
        from riskml.training.tuning import tune as run_tuning

        t = time.perf_counter()
        tuning = run_tuning(data, cfg, lines, splits, progress=say)
        cfg = cfg.with_params(tuning.best_params)
        timings["tune_s"] = time.perf_counter() - t

    say(f"training LightGBM on {int(final.masks(data.period, labelled)['train'].sum()):,} rows")
    t = time.perf_counter()
    model = fit_model(data, final, cfg, lines)
    timings["fit_s"] = time.perf_counter() - t
    m = final.masks(data.period, labelled)
    in_train, in_valid, in_test = m["train"], m["validation"], m["test"]
    # the monitoring reference: feature bins, score histogram, missing rates of the training rows
    model.profile = reference_profile(
        X_all[in_train],
        model.predict_proba(X_all[in_train]),
        records[in_train],
        thresholds=model.thresholds,
    )

    t = time.perf_counter()
    fold_results: list[FoldResult] = []
    for fold in fold_plan(data, splits, cfg, progress=say):
        say(f"rolling fold {fold.name}: train up to {fold.train_periods[-1]}, "
            f"validate {fold.valid_period}")  # fmt: skip
        fold_model = model if fold == final else fit_model(data, fold, cfg, lines)
        fold_results.append(evaluate_fold(fold_model, data, fold, cfg, lines))
    timings["folds_s"] = time.perf_counter() - t

    say("evaluating on the test period")
    t = time.perf_counter()
    test_records = records[in_test].reset_index(drop=True)
    test_prev = data.previous[in_test].reset_index(drop=True)
    y_test = y_all[in_test].astype(int)
    score = model.predict_proba(X_all[in_test])
    evaluation = evaluate_test_period(model, test_records, test_prev, y_test, score, cfg, lines)
    # the baselines of the final split are those of its fold (the last one)
    last = fold_results[-1]
    evaluation.metrics.update(
        {k: v for k, v in last.metrics.items() if k not in evaluation.metrics}
    )
    evaluation.tables["gains"] = last.gains
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
        "folds": len(fold_results),
    }
    return TrainResult(model, splits, evaluation, row_counts, timings, test_frame,
                       folds=fold_results, tuning=tuning, config=cfg)  # fmt: skip
