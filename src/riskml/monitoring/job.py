"""The monitoring job: drift of a decision-ledger window against the champion's training reference,
flag rates against the previous window, realised performance once outcomes arrive, and alerts.

``monitor`` runs the checks in order (each a function below, returning what it
measured and the alerts it raised); ``run`` is the ``riskml monitor`` job
around it (model from the registry, HTML report, MLflow run). The pieces:
the reference (``riskml.model.profile``), thresholds (``config``), windows
(``windows``), PSI (``drift``), flag rates (``rates``), outcomes
(``outcomes``), alerts and the result (``result``), the report (``report``).

**Features of a window are rebuilt from the ledger** with the model's own
pipeline (``RiskModel.features``). The ledger stores each record as received,
not the previous-period record the service used, so the previous period is
looked up exactly as the service does it: the household's latest earlier
decision in the ledger (``Ledger.previous_records``) if it is at most 12 months
earlier (``history.within_gap``). Rebuilt this way the features, and so the
scores, are the ones the service computed (``rescored_max_abs_diff`` in the
result checks it).

**Change features** (``CHANGE_FEATURES``: income_change and the d_* columns)
exist only when a previous record does. Training always has a first panel
period without one, and a service's ledger fills up over time, so their
marginal distribution drifts for reasons that are not the households'. They
are therefore profiled and compared *on rows with a previous record only*;
``has_previous`` itself is not compared by PSI but reported as the window's
previous-record coverage (a warning below ``previous.coverage_warn``: the model
is then scoring without its change features). ``monitoring_line`` is the
local line itself: it moves every year by policy, so by default it is shown
but never alerts (``drift.exclude_features``); the window's lines against
training are listed per province instead.

Floors on realised metrics alert on the latest decision period with at least
``outcomes.min_matched`` outcomes. **Alerts** carry a level: ``warn`` is
reported, ``alert`` makes ``riskml monitor`` exit with 2 (for cron and CI).
Thresholds: ``training/monitoring.yaml``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from riskml import config
from riskml.model.profile import PREVIOUS_FLAG, SCORE_EDGES, score_histogram
from riskml.monitoring.config import MonitorConfig
from riskml.monitoring.drift import feature_drift, lines_by_province, missing_rates, psi
from riskml.monitoring.outcomes import join_outcomes, realised_metrics, unmatched_outcomes
from riskml.monitoring.rates import flag_rates, timeline
from riskml.monitoring.report import figures, log_to_mlflow, pyplot, render_report
from riskml.monitoring.result import Alert, Alerts, MonitorResult, alert_level
from riskml.monitoring.windows import (
    Window,
    WindowDecisions,
    completed_decisions,
    decision_records,
    previous_for,
    utc_timestamp,
    window_decisions,
)
from riskml.store.outcomes import OutcomeStore


# =========================================================================== the checks
def window_counts(decisions: WindowDecisions, profile: dict[str, Any]) -> dict[str, Any]:
    """Decisions in the window and the previous one, failures, and what the reference holds."""
    current = decisions.current
    counts: dict[str, Any] = {
        "decisions": len(current),
        "decisions_previous": len(decisions.previous),
        "failed": decisions.failed,
        "reference_rows": profile.get("rows"),
        "reference_periods": profile.get("periods"),
    }
    if len(current):
        counts["model_versions"] = current["model_version"].astype(str).value_counts().to_dict()
        counts["periods"] = current["period"].astype(str).value_counts().sort_index().to_dict()
    return counts


def check_window_size(decisions: int, cfg: MonitorConfig) -> Alerts:
    """A warning when the window has too few decisions for drift to be judged."""
    alerts = Alerts()
    if decisions < cfg.min_decisions:
        alerts.add(
            "window",
            "decisions",
            decisions,
            cfg.min_decisions,
            "warn",
            f"only {decisions} decision(s) in the window (< {cfg.min_decisions}): drift not judged",
        )
    return alerts


def check_rescoring(scores: np.ndarray, current: pd.DataFrame) -> tuple[dict[str, Any], list[str]]:
    """How far this model's scores of the window are from the stored (served) ones; a note if any differ."""
    stored = current["score"].to_numpy(dtype=float)
    diff = np.abs(scores - stored)
    counts: dict[str, Any] = {
        "rescored_max_abs_diff": float(np.nanmax(diff)) if len(diff) else 0.0,
        "rescored_differs": int((diff > 1e-6).sum()),
    }
    notes = []
    if counts["rescored_differs"]:
        notes.append(
            f"{counts['rescored_differs']} decision(s) scored differently by this model "
            "(another model version, or a previous record stored later): score drift uses this model's scores"
        )
    return counts, notes


def check_previous_coverage(
    X: pd.DataFrame, profile: dict[str, Any], cfg: MonitorConfig
) -> tuple[dict[str, Any], Alerts]:
    """Share of the window's households with a previous record (the change features need one)."""
    alerts = Alerts()
    coverage = float(X[PREVIOUS_FLAG].mean()) if PREVIOUS_FLAG in X.columns else float("nan")
    counts = {
        "previous_coverage": coverage,
        "previous_coverage_training": profile.get("previous_coverage"),
    }
    if np.isfinite(coverage) and coverage < cfg.previous_coverage_warn:
        alerts.add(
            "previous_coverage",
            "has_previous",
            coverage,
            cfg.previous_coverage_warn,
            "warn",
            f"only {coverage:.0%} of the window's households have a previous record in the ledger: "
            "the model scores them without change features",
        )
    return counts, alerts


def check_feature_drift(
    profile: dict[str, Any],
    X: pd.DataFrame,
    county_codes: Any,
    cfg: MonitorConfig,
    judge: bool,
) -> tuple[pd.DataFrame, Alerts]:
    """PSI per feature, overall and per province; alerts only when the window is judged."""
    alerts = Alerts()
    fd = feature_drift(profile, X, county_codes, cfg)
    if not judge and not fd.empty:
        fd["level"] = "ok"
    for r in fd[fd["level"] != "ok"].itertuples(index=False) if not fd.empty else []:
        where = "overall" if r.scope == "all" else f"province {r.scope}"
        warn_t, alert_t = cfg.psi_thresholds(r.scope)
        thr = alert_t if r.level == "alert" else warn_t
        alerts.add("feature_psi", f"{r.feature} [{where}]", r.psi, thr, r.level,
                   f"{r.feature} drifted ({where}): PSI {r.psi:.3f} (n={r.n})")  # fmt: skip
    return fd, alerts


def check_score(
    profile: dict[str, Any], scores: np.ndarray, thresholds: Any, cfg: MonitorConfig, judge: bool
) -> tuple[dict[str, Any], Alerts]:
    """The score histogram against training, and the model's flag rate against its capacity."""
    alerts = Alerts()
    hist = score_histogram(scores)
    score = {
        "window": hist.tolist(),
        "psi": psi(profile["score"]["proportions"], hist),
        "mean": float(np.mean(scores)),
        "mean_reference": profile["score"].get("mean"),
        "flag_rate": float(np.mean(scores >= thresholds.flag)),
        "red_rate": float(np.mean(scores >= thresholds.red)),
        "flag_rate_reference": profile["score"].get("flag_rate"),
        "flag_capacity": profile["score"].get("flag_capacity") or thresholds.flag_capacity,
    }
    if judge:
        lvl = alert_level(score["psi"], cfg.score_psi_warn, cfg.score_psi_alert)
        alerts.add("score_psi", "score", score["psi"], cfg.score_psi_alert if lvl == "alert" else cfg.score_psi_warn,
                   lvl, f"score distribution drifted: PSI {score['psi']:.3f}")  # fmt: skip
        change = score["flag_rate"] - score["flag_capacity"]
        lvl = alert_level(abs(change), cfg.model_flag_rate_warn, cfg.model_flag_rate_alert)
        alerts.add("model_flag_rate", "score >= flag threshold", score["flag_rate"], score["flag_capacity"], lvl,
                   f"the model flags {score['flag_rate']:.1%} of households; its threshold was set for "
                   f"{score['flag_capacity']:.1%}")  # fmt: skip
    return score, alerts


def check_missing(
    profile: dict[str, Any], records: pd.DataFrame, cfg: MonitorConfig, judge: bool
) -> tuple[pd.DataFrame, Alerts]:
    """Missing rate of each contract field against training; alerts only when judged."""
    alerts = Alerts()
    missing = missing_rates(profile, records, cfg)
    if judge:
        for r in missing[missing["level"] != "ok"].itertuples(index=False):
            thr = cfg.missing_increase_alert if r.level == "alert" else cfg.missing_increase_warn
            alerts.add("missing_rate", r.field, r.increase, thr, r.level,
                       f"{r.field} is missing in {r.window:.1%} of records (training {r.training:.1%})")  # fmt: skip
    return missing, alerts


def check_flag_rates(
    current: pd.DataFrame, previous: pd.DataFrame, cfg: MonitorConfig
) -> tuple[pd.DataFrame, list[str], Alerts]:
    """Flag rates against the previous window (a note when there is none)."""
    alerts = Alerts()
    notes = []
    fr = flag_rates(current, previous, cfg)
    if len(previous) == 0:
        notes.append("no decisions in the previous window: flag rates are not compared")
    thresholds = cfg.flag_rate_thresholds()
    for r in fr[fr["level"] != "ok"].itertuples(index=False):
        warn_t, alert_t = thresholds[r.kind]
        alerts.add(f"flag_rate_{r.kind}", r.key, r.change, alert_t if r.level == "alert" else warn_t, r.level,
                   f"{r.kind} {r.key}: flag rate {r.rate_previous:.1%} → {r.rate:.1%} "
                   f"({r.change:+.1%}, z={r.z:.1f}) against the previous window")  # fmt: skip
    return fr, notes, alerts


def check_outcomes(
    ledger: Any, window: Window, cfg: MonitorConfig, as_of: Any
) -> tuple[dict[str, Any], Alerts]:
    """Realised performance on every decision period with outcomes (decisions made before ``until``)."""
    alerts = Alerts()
    if not OutcomeStore.exists(ledger):  # never created by a read
        return {"stored": 0}, alerts
    outcomes = OutcomeStore(ledger, create=False).frame()
    if outcomes.empty:
        return {"stored": 0}, alerts
    decided = completed_decisions(
        ledger.decisions_frame(None, window.until.to_pydatetime(), expand_records=False)
    )
    if decided.empty:
        return {"stored": len(outcomes)}, alerts
    as_of = utc_timestamp(as_of) if as_of is not None else window.until
    joined = join_outcomes(decided, outcomes, as_of, cfg.horizon_months, cfg.grace_days)
    unmatched = unmatched_outcomes(joined, outcomes)
    by_period, by_county, reliability = realised_metrics(joined, cfg.capacity)
    evaluable = by_period[
        (by_period["with_outcome"] >= cfg.min_matched)
        & (by_period["positives"] >= cfg.min_positives)
    ]
    section: dict[str, Any] = {
        "stored": len(outcomes),
        "unmatched_outcomes": unmatched,
        "status_counts": joined["status"].value_counts().to_dict(),
        "by_period": by_period,
        "by_county": by_county,
        "reliability": reliability,
    }
    if evaluable.empty:
        return section, alerts
    latest = evaluable.iloc[-1].to_dict()
    section["latest"] = latest
    section["latest_period"] = latest["period"]
    alerts += check_realised_floors(latest, by_county, cfg)
    return section, alerts


def check_realised_floors(
    latest: dict[str, Any], by_county: pd.DataFrame, cfg: MonitorConfig
) -> Alerts:
    """Alerts on the latest evaluable decision period: overall floors, the ECE ceiling, county floors."""
    alerts = Alerts()
    period = latest["period"]
    for key, floor, label in (
        ("roc_auc", cfg.auc_floor, "realised ROC AUC"),
        ("recall_at_capacity", cfg.recall_floor, f"realised recall at {cfg.capacity:.0%} capacity"),
        (
            "precision_at_capacity",
            cfg.precision_floor,
            f"realised precision at {cfg.capacity:.0%} capacity",
        ),
    ):
        v = latest.get(key)
        if v is not None and np.isfinite(v) and v < floor:
            alerts.add(f"realised_{key}", f"period {period}", v, floor, "alert",
                       f"{label} of decisions in {period} is {v:.3f} (floor {floor})")  # fmt: skip
    v = latest.get("ece")
    if v is not None and np.isfinite(v) and v > cfg.ece_ceiling:
        alerts.add("realised_ece", f"period {period}", v, cfg.ece_ceiling, "alert",
                   f"realised calibration error (ECE) of decisions in {period} is {v:.3f} (ceiling {cfg.ece_ceiling})")  # fmt: skip
    bc = by_county[
        (by_county["period"] == period) & (by_county["with_outcome"] >= cfg.county_min_matched)
    ]
    for r in bc.itertuples(index=False):
        if r.positives < cfg.min_positives:
            continue
        if np.isfinite(r.roc_auc) and r.roc_auc < cfg.county_auc_floor:
            alerts.add("realised_county_roc_auc", f"county {r.county_code} {period}", r.roc_auc, cfg.county_auc_floor,
                       "alert", f"county {r.county_code}: realised ROC AUC {r.roc_auc:.3f} in {period}")  # fmt: skip
        rc = r.recall_at_capacity_per_county
        if np.isfinite(rc) and rc < cfg.county_recall_floor:
            alerts.add("realised_county_recall", f"county {r.county_code} {period}", rc, cfg.county_recall_floor,
                       "alert", f"county {r.county_code}: realised recall at capacity {rc:.3f} in {period}")  # fmt: skip
    return alerts


# =========================================================================== the monitor
def _training_reference(model: Any) -> dict[str, Any]:
    profile = getattr(model, "profile", None)
    if not profile:
        raise ValueError(
            "the model carries no training reference (profile.json): it was trained before "
            "monitoring existed; retrain it (riskml retrain) to monitor it"
        )
    return profile


def monitor(
    ledger: Any,
    model: Any,
    *,
    window: Window,
    cfg: MonitorConfig | None = None,
    model_info: dict[str, Any] | None = None,
    as_of: Any = None,
) -> MonitorResult:
    """Everything the monitor measures for one window (no files, no MLflow)."""
    from riskml.store.ledger import Ledger

    cfg = cfg or MonitorConfig()
    if isinstance(ledger, str) or ledger is None:
        ledger = Ledger(ledger)
    profile = _training_reference(model)
    decisions = window_decisions(ledger, window)
    current, previous = decisions.current, decisions.previous
    notes: list[str] = []
    alerts: list[Alert] = []
    counts = window_counts(decisions, profile)
    fd, missing, lines = pd.DataFrame(), pd.DataFrame(), pd.DataFrame()
    score: dict[str, Any] = {
        "edges": list(SCORE_EDGES),
        "reference": profile["score"]["proportions"],
        "psi": float("nan"),
    }
    alerts += check_window_size(len(current), cfg)
    if len(current):
        # the window rescored with this model, features rebuilt as the service built them
        records = decision_records(current)
        X = model.features(records, previous_for(ledger, records))
        scores = model.predict_proba(X)
        rescored, rescored_notes = check_rescoring(scores, current)
        counts.update(rescored)
        notes += rescored_notes
        coverage, found = check_previous_coverage(X, profile, cfg)
        counts.update(coverage)
        alerts += found
        judge = len(current) >= cfg.min_decisions
        fd, found = check_feature_drift(profile, X, records["county_code"], cfg, judge)
        alerts += found
        score_drift, found = check_score(profile, scores, model.thresholds, cfg, judge)
        score.update(score_drift)
        alerts += found
        missing, found = check_missing(profile, records, cfg, judge)
        alerts += found
        lines = lines_by_province(profile, X, records["county_code"])
        if len(previous):
            score["previous"] = score_histogram(previous["score"].to_numpy(dtype=float)).tolist()
    fr, rate_notes, found = check_flag_rates(current, previous, cfg)
    notes += rate_notes
    alerts += found
    outcomes, found = check_outcomes(ledger, window, cfg, as_of)
    alerts += found
    everything = decisions.everything
    return MonitorResult(
        model=model_info or {},
        window=window.as_dict(),
        counts=counts,
        feature_drift=fd,
        score=score,
        missing=missing,
        flag_rates=fr,
        lines=lines,
        outcomes=outcomes,
        alerts=alerts,
        notes=notes,
        timeline=timeline(
            everything[everything["status"] == "completed"] if len(everything) else everything,
            window.previous_since,
            window.until,
        ),
        config=cfg,
    )


# =========================================================================== the job
def model_reference(uri: str) -> tuple[Any, dict[str, Any]]:
    """Load the model behind a URI and describe it (name, version, uri) for tags."""
    from riskml.training import registry

    model = registry.load_risk_model(uri)
    info: dict[str, Any] = {"uri": uri, "name": None, "version": None}
    m = re.fullmatch(r"models:/([^/@]+)@(.+)", uri)
    if m:
        resolved = registry.resolve_alias(m.group(1), m.group(2))
        info.update(
            name=m.group(1),
            version=resolved["version"],
            alias=m.group(2),
            run_id=resolved["run_id"],
        )
    else:
        m = re.fullmatch(r"models:/([^/@]+)/([0-9]+)", uri)
        if m:
            info.update(name=m.group(1), version=m.group(2))
    if getattr(model, "profile", None) is None:
        # a model loaded through an older RiskModel class: read profile.json from its files
        model.profile = _profile_from_artifacts(uri)
    return model, info


def _profile_from_artifacts(uri: str) -> dict[str, Any] | None:
    from riskml.training import registry

    mlflow = registry.import_mlflow()
    try:
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=f"{uri.rstrip('/')}/artifacts/risk_model/profile.json"
        )
        return json.loads(Path(local).read_text())
    except Exception:
        return None


def run(
    ledger_url: str | None = None,
    model_uri: str | None = None,
    *,
    since: Any = None,
    until: Any = None,
    window_days: int | None = None,
    previous_since: Any = None,
    config_path: str | Path | None = None,
    report: str | Path | None = None,
    log_mlflow: bool = True,
    model: Any = None,
    model_info: dict[str, Any] | None = None,
    as_of: Any = None,
) -> tuple[MonitorResult, str | None]:
    """The ``riskml monitor`` job: measure, write the HTML report, log the MLflow run; (result, run id)."""
    from riskml.store.ledger import Ledger
    from riskml.training import registry

    cfg = MonitorConfig.from_yaml(config_path)
    if model is None:
        model_uri = model_uri or registry.model_uri(config.REGISTERED_MODEL_NAME, registry.CHAMPION)
        model, model_info = model_reference(model_uri)
    window = Window.make(since, until, window_days or cfg.window_days, previous_since)
    ledger = Ledger(ledger_url)
    try:
        result = monitor(ledger, model, window=window, cfg=cfg, model_info=model_info, as_of=as_of)
    finally:
        ledger.close()
    figs = figures(result)
    html = render_report(result, figs)
    if report is not None:
        p = Path(report)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(html, encoding="utf-8")
    run_id = log_to_mlflow(result, html, figs) if log_mlflow else None
    pyplot().close("all")
    return result, run_id


__all__ = [
    "check_feature_drift",
    "check_flag_rates",
    "check_missing",
    "check_outcomes",
    "check_previous_coverage",
    "check_realised_floors",
    "check_rescoring",
    "check_score",
    "check_window_size",
    "model_reference",
    "monitor",
    "run",
    "window_counts",
]
