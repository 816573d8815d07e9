"""Champion/challenger: compare both on the same rolling folds, move the alias if not worse.

The gate reads the fold tables both training runs logged (``evaluation/folds.csv``)
and compares their means over the folds they share (the same test periods);
when they share none (a champion trained before folds, or on other periods) both
registered models are evaluated on the latest labelled period of the data, as
before. Whatever the champion, a challenger whose mean gain in ROC AUC over the
naive income-to-line score on the fall-in subset is not above
``promotion.min_gain_vs_naive_fallin`` (default 0) fails.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from riskml.data import schema
from riskml.data.reference import ReferenceLines, default_lines
from riskml.model.metrics import Evaluation
from riskml.model.risk_model import RiskModel
from riskml.training.evaluation import baseline_evaluation, evaluate_test_period, rules_scores
from riskml.training.folds import common_means
from riskml.training.train import TrainConfig, TrainingDataError, prepare

# (metric, direction, config key of the allowed margin, default margin)
GATES = (
    ("model_recall_at_10", "higher", "max_drop_recall_at_10", 0.01),
    ("test_roc_auc", "higher", "max_drop_roc_auc", 0.005),
    ("test_ece", "lower", "max_rise_ece", 0.01),
)
NAIVE_GATE = "gain_vs_naive_fallin_roc_auc"


def evaluate_on_period(
    model: RiskModel,
    panel: pd.DataFrame,
    cfg: TrainConfig,
    lines: ReferenceLines | None = None,
    period: str | None = None,
) -> Evaluation:
    """Evaluate a model on one labelled period of a panel (default: the latest labelled), beside
    the baselines (the logistic one fitted on the labelled periods before the period's previous)."""
    lines = lines or default_lines()
    data = prepare(panel, cfg, lines, label="income")
    labelled = data.labelled
    periods = data.labelled_periods()
    if not periods:
        raise TrainingDataError("the panel has no labelled rows to evaluate on")
    period = period or periods[-1]
    mask = labelled & (data.period == period)
    if not mask.any():
        raise TrainingDataError(f"no labelled rows in period {period}; labelled periods: {periods}")
    rec = data.records[mask].reset_index(drop=True)
    prev = data.previous[mask].reset_index(drop=True)
    y = data.labels[mask].astype(int)
    names = list(model.feature_names)
    if set(names) <= set(data.X.columns):
        score = model.predict_proba(data.X.loc[mask, names])
    else:  # a model of other features: its own pipeline
        score = model.score_records(rec[list(schema.FIELD_NAMES)], prev)
    ev = evaluate_test_period(model, rec, prev, y, score, cfg, lines)
    before = [p for p in periods if p < period]
    train_mask = labelled & np.isin(data.period, before[:-1])
    if train_mask.any():
        _, severity = rules_scores(rec, prev, lines)
        extra, gains = baseline_evaluation(data, train_mask, mask, score, severity, cfg)
        ev.metrics.update({k: v for k, v in extra.items() if k not in ev.metrics})
        ev.tables["gains"] = gains
    return ev


@dataclass
class Comparison:
    rows: list[dict] = field(default_factory=list)
    passed: bool = True

    def table(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows)


def compare(
    champion: dict[str, float], challenger: dict[str, float], margins: dict[str, float]
) -> Comparison:
    """Is the challenger not worse than the champion beyond the allowed margins, on every gate?"""
    cmp = Comparison()
    for metric, direction, key, default in GATES:
        margin = float(margins.get(key, default))
        a, b = champion.get(metric, np.nan), challenger.get(metric, np.nan)
        ok = bool(b >= a - margin) if direction == "higher" else bool(b <= a + margin)
        if np.isnan(a) or np.isnan(b):
            ok = False
        cmp.rows.append(
            {
                "metric": metric,
                "better": direction,
                "champion": a,
                "challenger": b,
                "margin": margin,
                "ok": ok,
            }
        )
        cmp.passed &= ok
    return cmp


def naive_row(challenger_folds: pd.DataFrame | None, margins: dict[str, float]) -> dict | None:
    """The naive-score rule on the challenger's folds: mean fall-in AUC gain over naive > margin."""
    if challenger_folds is None or NAIVE_GATE not in challenger_folds:
        return None
    margin = float(margins.get("min_gain_vs_naive_fallin", 0.0))
    gain = float(challenger_folds[NAIVE_GATE].mean())
    return {"metric": NAIVE_GATE, "better": "higher", "champion": float("nan"),
            "challenger": gain, "margin": margin, "ok": bool(gain > margin)}  # fmt: skip


def compare_folds(
    champion: pd.DataFrame, challenger: pd.DataFrame, margins: dict[str, float]
) -> tuple[Comparison, list[str]]:
    """``compare`` on the means over the folds both tables share (and those test periods)."""
    common, a, b = common_means(champion, challenger, [m for m, *_ in GATES])
    return compare(a, b, margins), common


def promote_challenger(
    name: str,
    data: pd.DataFrame,
    cfg: TrainConfig,
    force: bool = False,
    reason: str | None = None,
    lines: ReferenceLines | None = None,
) -> tuple[bool, Comparison | None, str]:
    """The promotion gate: move ``champion`` to the challenger if it is not worse (or if forced).

    Champion and challenger are compared on the means over the rolling folds both
    training runs share (``compare_folds``), else both are evaluated on the latest
    labelled period of ``data``; margins from ``cfg.promotion``. The challenger must
    also beat the naive score on the fall-in subset (``naive_row``). Returns
    (promoted, comparison or None when nothing was compared, message). With no
    champion the challenger becomes champion if it passes the naive rule; when both
    aliases point at the same version nothing happens. ``force`` needs a ``reason``,
    recorded on the version as its promotion note.
    """
    from riskml.training import registry

    if force and not reason:
        raise ValueError("forcing a promotion needs a reason")
    chall = registry.resolve_alias(name, registry.CHALLENGER)
    chall_folds = registry.fold_table_of(chall["run_id"])
    naive = naive_row(chall_folds, cfg.promotion)
    naive_msg = ""
    if naive is not None and not naive["ok"]:
        naive_msg = (
            f"challenger v{chall['version']} does not beat the naive income-to-line score on the "
            f"fall-in subset: mean ROC AUC gain {naive['challenger']:+.4f} over {len(chall_folds)} "
            f"fold(s) (needs > {naive['margin']:.4f})"
        )
    try:
        champ = registry.resolve_alias(name, registry.CHAMPION)
    except Exception:
        if naive_msg and not force:
            return False, None, f"not promoted: {naive_msg}; no champion yet"
        registry.set_champion(name, chall["version"], "no champion: challenger promoted")
        return True, None, f"no champion yet: version {chall['version']} is now champion"
    if champ["version"] == chall["version"]:
        return (
            False,
            None,
            f"challenger and champion are the same version ({chall['version']}): nothing to do",
        )
    champ_folds = registry.fold_table_of(champ["run_id"])
    cmp: Comparison | None = None
    if champ_folds is not None and chall_folds is not None:
        cmp, common = compare_folds(champ_folds, chall_folds, cfg.promotion)
        on = (
            f"v{champ['version']} on the mean of {len(common)} common fold(s) ({', '.join(common)})"
        )
        if not common:
            cmp = None
    if cmp is None:
        lines = lines or default_lines()
        ev_champ = evaluate_on_period(
            registry.load_risk_model(registry.model_uri(name, registry.CHAMPION)), data, cfg, lines
        )
        ev_chall = evaluate_on_period(
            registry.load_risk_model(registry.model_uri(name, registry.CHALLENGER)),
            data,
            cfg,
            lines,
        )
        cmp = compare(ev_champ.metrics, ev_chall.metrics, cfg.promotion)
        on = f"v{champ['version']} on {ev_chall.period}"
    if naive is not None:
        cmp.rows.append(naive)
        cmp.passed &= naive["ok"]
    if cmp.passed:
        registry.set_champion(name, chall["version"], f"passed the gate against {on}")
        return (
            True,
            cmp,
            f"promoted version {chall['version']} to champion (passed the gate against {on})",
        )
    if force:
        registry.set_champion(name, chall["version"], f"forced: {reason}")
        return True, cmp, f"forced version {chall['version']} to champion: {reason}"
    failed = ", ".join(r["metric"] for r in cmp.rows if not r["ok"])
    why = f"; {naive_msg}" if naive_msg else ""
    return (
        False,
        cmp,
        f"not promoted: challenger v{chall['version']} fails the gate against champion {on} on "
        f"{failed}{why}; champion stays version {champ['version']}",
    )
