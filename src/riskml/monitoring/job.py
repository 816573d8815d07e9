"""Model monitoring: drift of a decision-ledger window against the champion's training reference,
flag rates against the previous window, realised performance once outcomes arrive, and alerts.

**The reference** (``reference_profile``) is computed at training time on the
training rows and saved with the model (``profile.json`` in the model folder):

* per feature, 10 quantile bins of the training values (right-closed; equal
  quantiles collapse, so a 0/1 flag has two bins) plus a bin of its own for
  missing values, and the share of training rows in each bin, overall and per
  province (first two digits of ``county_code``; same bin edges);
* the calibrated score's histogram on the fixed edges ``SCORE_EDGES``;
* the missing-value rate of every contract field;
* the share of rows at or above the model's flag and red thresholds, and the
  flag capacity the thresholds were chosen for.

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

**PSI** is ``Σ (a − e) · ln(a / e)`` over the bins, with both shares floored
at ``eps`` (1e-4) so an empty bin does not give infinity (no renormalisation).
Rule of thumb, and the default thresholds overall: below 0.1 stable, 0.1–0.25
a warning, 0.25 and above an alert. With ``n`` window rows and ``k`` bins,
sampling noise alone gives about ``(k − 1)(1/n + 1/n_ref)``: ~0.005 at 3,000
rows, ~0.03 for a province of 400; ``drift.province_min_rows`` keeps smaller
provinces out. A province warns at 0.25 but alerts only at 2.0: in the
simulator a routine local disaster year moves a province's loss features to
PSI 0.3–1.2, while a province-wide severe disaster gives about 10.

**Windows** are half-open ranges of ``created_at`` (UTC). The previous window
has the same length and ends where the window starts, unless given. Within a
window only completed decisions count, and a household-period scored more
than once counts once (its latest decision).

**Outcomes** (``load_outcomes`` / ``OutcomeStore``) live in a table of their own,
``outcomes``, in the ledger's database (the ledger is insert-only and owned by
the service). An outcome says whether the household was at risk at ``period``
(the contract's label measured on the later record); it belongs to the decision
of ``decision_period = period − 12 months``. The table is insert-only with
(household_id, period) unique: loading the same outcome again is skipped,
loading a *different* value for a stored one is refused (the whole file, nothing
stored) because a correction of an observed outcome is a data-governance event,
not a routine load. Each decision (latest per household and period) then is

* ``matched``: its outcome arrived by the due date;
* ``late``: its outcome arrived after the due date — the first day of the
  month after the outcome period plus ``outcomes.grace_days`` (60);
  a late outcome is used in the metrics like a matched one, but earlier
  monitoring runs did not have it;
* ``pending``: no outcome yet and not yet due; ``overdue``: no outcome and past
  due. Pending and overdue decisions are never counted as negatives; they are
  left out of every realised metric.

Realised metrics per decision period: ROC AUC, recall and precision at capacity
(the top ``outcomes.capacity`` share of *all* the period's scored households by
score, overall and each county its own top share; recall and precision over
the decisions with an outcome), ECE and the reliability table. Floors alert on
the latest decision period with at least ``outcomes.min_matched`` outcomes.

**Alerts** carry a level: ``warn`` is reported, ``alert`` makes ``riskml
monitor`` exit with 2 (for cron and CI). Thresholds: ``training/monitoring.yaml``.
"""

from __future__ import annotations

import base64
import io
import json
import math
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from riskml import config
from riskml.data import schema
from riskml.data.history import previous_from_ledger
from riskml.data.label import spend_adjusted_pc_income
from riskml.data.periods import shift_period, year_of
from riskml.model.metrics import (
    auc,
    expected_calibration_error,
    reliability_table,
    selection_metrics,
    top_k_mask,
)

PROFILE_FORMAT = 1
N_BINS = 10
# Fixed score bins: fine where a 7–10% base rate puts most households.
SCORE_EDGES: tuple[float, ...] = (
    0.0, 0.01, 0.02, 0.03, 0.05, 0.075, 0.10, 0.15, 0.20, 0.30, 0.40, 0.50, 0.70, 1.0,
)  # fmt: skip
CHANGE_FEATURES: tuple[str, ...] = (
    "income_change",
    "d_pc_income_to_line",
    "d_medical_pc_to_line",
    "d_employment_intensity",
    "d_household_size",
    "d_labor_count",
)
PREVIOUS_FLAG = "has_previous"
MONITORING_EXPERIMENT = "household-risk-monitoring"
DEFAULT_CONFIG = config.PROJECT_ROOT / "training" / "monitoring.yaml"
HORIZON_MONTHS = 12
LEVELS = ("ok", "warn", "alert")


# =========================================================================== PSI and bins
def psi(expected_props: Any, actual_props: Any, eps: float = 1e-4) -> float:
    """Population stability index ``Σ (a − e) ln(a / e)``, shares floored at ``eps``."""
    e = np.maximum(np.asarray(expected_props, dtype=float), eps)
    a = np.maximum(np.asarray(actual_props, dtype=float), eps)
    if e.shape != a.shape:
        raise ValueError(f"PSI needs the same bins: {e.shape} vs {a.shape}")
    return float(np.sum((a - e) * np.log(a / e)))


def quantile_edges(values: Any, bins: int = N_BINS) -> list[float]:
    """Inner edges of ``bins`` quantile bins of the non-missing values (ties collapse)."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return []
    # inverted_cdf: edges are values that occur, so a 0/1 flag gets the edges [0, 1]
    qs = np.quantile(x, np.linspace(0, 1, bins + 1)[1:-1], method="inverted_cdf")
    return [float(v) for v in np.unique(qs)]


def bin_index(values: Any, edges: list[float]) -> np.ndarray:
    """Bin of each value: ``(-inf, e0], (e0, e1], …, (e_last, inf)``, then missing last."""
    x = np.asarray(values, dtype=float)
    idx = np.searchsorted(np.asarray(edges, dtype=float), x, side="left")
    return np.where(np.isnan(x), len(edges) + 1, idx)


def bin_proportions(values: Any, edges: list[float]) -> np.ndarray:
    """Share of values in each bin of ``bin_index`` (length ``len(edges) + 2``)."""
    idx = bin_index(values, edges)
    counts = np.bincount(idx, minlength=len(edges) + 2).astype(float)
    return counts / counts.sum() if counts.sum() else counts


def score_histogram(scores: Any) -> np.ndarray:
    """Share of scores in each ``SCORE_EDGES`` bin (right-closed, the first also holds 0)."""
    s = np.asarray(scores, dtype=float)
    s = s[np.isfinite(s)]
    edges = np.asarray(SCORE_EDGES[1:-1])
    counts = np.bincount(
        np.searchsorted(edges, s, side="left"), minlength=len(SCORE_EDGES) - 1
    ).astype(float)
    return counts / counts.sum() if counts.sum() else counts


def _province(county_codes: Any) -> np.ndarray:
    return pd.Series(county_codes).astype(str).str.slice(0, 2).to_numpy()


def _feature_rows(features: pd.DataFrame, name: str) -> np.ndarray:
    """Rows a feature is profiled/compared on: change features only where a previous record exists."""
    if name in CHANGE_FEATURES and PREVIOUS_FLAG in features.columns:
        return features[PREVIOUS_FLAG].to_numpy(dtype=float) == 1.0
    return np.ones(len(features), dtype=bool)


# =========================================================================== the reference
def reference_profile(
    features: pd.DataFrame,
    scores: np.ndarray,
    records: pd.DataFrame,
    *,
    thresholds: Any = None,
    bins: int = N_BINS,
) -> dict[str, Any]:
    """The training reference a window is compared with (JSON-able; see the module docstring).

    ``features``, ``scores`` and ``records`` are the same rows (the training
    rows); ``thresholds`` (``model.Thresholds`` or a dict) adds the flag rates.
    """
    if not (len(features) == len(scores) == len(records)):
        raise ValueError("features, scores and records must be the same rows")
    scores = np.asarray(scores, dtype=float)
    province = _province(records["county_code"])
    provinces = sorted(pd.unique(province).tolist())
    feats: dict[str, Any] = {}
    by_province: dict[str, Any] = {
        p: {"n": int((province == p).sum()), "features": {}} for p in provinces
    }
    for name in features.columns:
        if name == PREVIOUS_FLAG:
            continue
        rows = _feature_rows(features, name)
        x = features[name].to_numpy(dtype=float)
        edges = quantile_edges(x[rows], bins)
        feats[name] = {
            "edges": edges,
            "proportions": bin_proportions(x[rows], edges).tolist(),
            "n": int(rows.sum()),
            "missing_rate": float(np.isnan(x[rows]).mean()) if rows.any() else float("nan"),
            "mean": float(np.nanmean(x[rows])) if np.isfinite(x[rows]).any() else None,
            "rows": "with_previous" if name in CHANGE_FEATURES else "all",
        }
        for p in provinces:
            sel = rows & (province == p)
            by_province[p]["features"][name] = {
                "n": int(sel.sum()),
                "proportions": bin_proportions(x[sel], edges).tolist(),
            }
    missing = {}
    for f in schema.FIELDS:
        if f.name in records.columns:
            missing[f.name] = float(records[f.name].isna().mean())
    has_prev = (
        float(np.nanmean(features[PREVIOUS_FLAG].to_numpy(dtype=float)))
        if PREVIOUS_FLAG in features.columns
        else None
    )
    lines = {}
    if "monitoring_line" in features.columns:
        ml = pd.Series(features["monitoring_line"].to_numpy(dtype=float))
        lines = {str(k): float(v) for k, v in ml.groupby(province).mean().items()}
    out: dict[str, Any] = {
        "format": PROFILE_FORMAT,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "rows": len(features),
        "periods": sorted(pd.unique(records["period"].astype(str)).tolist())
        if "period" in records.columns
        else [],
        "bins": bins,
        "features": feats,
        "provinces": by_province,
        "change_features": [c for c in CHANGE_FEATURES if c in features.columns],
        "previous_coverage": has_prev,
        "score": {
            "edges": list(SCORE_EDGES),
            "proportions": score_histogram(scores).tolist(),
            "mean": float(np.mean(scores)) if len(scores) else None,
        },
        "missing": missing,
        "monitoring_line_by_province": lines,
    }
    if thresholds is not None:
        t = thresholds if isinstance(thresholds, dict) else thresholds.__dict__
        out["thresholds"] = {k: float(v) for k, v in t.items()}
        out["score"]["flag_rate"] = float(np.mean(scores >= t["flag"])) if len(scores) else None
        out["score"]["red_rate"] = float(np.mean(scores >= t["red"])) if len(scores) else None
        out["score"]["flag_capacity"] = t.get("flag_capacity")
    return _clean(out)


def _clean(value: Any) -> Any:
    """Plain JSON: NaN and infinities as None, numpy scalars unwrapped."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# =========================================================================== configuration
@dataclass
class MonitorConfig:
    """Alert thresholds (``training/monitoring.yaml``; every key optional)."""

    window_days: int = 30
    min_decisions: int = 200
    psi_warn: float = 0.10
    psi_alert: float = 0.25
    score_psi_warn: float = 0.10
    score_psi_alert: float = 0.25
    province_psi_warn: float = 0.25
    province_psi_alert: float = 2.0
    province_min_rows: int = 300
    exclude_features: tuple[str, ...] = ("monitoring_line",)
    missing_increase_warn: float = 0.02
    missing_increase_alert: float = 0.05
    flag_overall_warn: float = 0.03
    flag_overall_alert: float = 0.05
    flag_rule_warn: float = 0.03
    flag_rule_alert: float = 0.05
    flag_level_warn: float = 0.03
    flag_level_alert: float = 0.05
    flag_county_warn: float = 0.10
    flag_county_alert: float = 0.15
    flag_county_min_rows: int = 200
    flag_min_z: float = 3.0
    model_flag_rate_warn: float = 0.03
    model_flag_rate_alert: float = 0.05
    previous_coverage_warn: float = 0.5
    horizon_months: int = HORIZON_MONTHS
    grace_days: int = 60
    capacity: float = 0.10
    min_matched: int = 500
    min_positives: int = 20
    auc_floor: float = 0.70
    recall_floor: float = 0.30
    precision_floor: float = 0.20
    ece_ceiling: float = 0.05
    county_min_matched: int = 300
    county_auc_floor: float = 0.60
    county_recall_floor: float = 0.20
    raw: dict[str, Any] = field(default_factory=dict)

    _SECTIONS = {
        "window": {"days": "window_days", "min_decisions": "min_decisions"},
        "drift": {
            "psi_warn": "psi_warn",
            "psi_alert": "psi_alert",
            "score_psi_warn": "score_psi_warn",
            "score_psi_alert": "score_psi_alert",
            "province_psi_warn": "province_psi_warn",
            "province_psi_alert": "province_psi_alert",
            "province_min_rows": "province_min_rows",
            "exclude_features": "exclude_features",
        },
        "missing": {
            "increase_warn": "missing_increase_warn",
            "increase_alert": "missing_increase_alert",
        },
        "flag_rates": {
            "overall_warn": "flag_overall_warn",
            "overall_alert": "flag_overall_alert",
            "rule_warn": "flag_rule_warn",
            "rule_alert": "flag_rule_alert",
            "level_warn": "flag_level_warn",
            "level_alert": "flag_level_alert",
            "county_warn": "flag_county_warn",
            "county_alert": "flag_county_alert",
            "county_min_rows": "flag_county_min_rows",
            "min_z": "flag_min_z",
            "model_vs_capacity_warn": "model_flag_rate_warn",
            "model_vs_capacity_alert": "model_flag_rate_alert",
        },
        "previous": {"coverage_warn": "previous_coverage_warn"},
        "outcomes": {
            "horizon_months": "horizon_months",
            "grace_days": "grace_days",
            "capacity": "capacity",
            "min_matched": "min_matched",
            "min_positives": "min_positives",
            "auc_floor": "auc_floor",
            "recall_floor": "recall_floor",
            "precision_floor": "precision_floor",
            "ece_ceiling": "ece_ceiling",
            "county_min_matched": "county_min_matched",
            "county_auc_floor": "county_auc_floor",
            "county_recall_floor": "county_recall_floor",
        },
    }

    def psi_thresholds(self, scope: str) -> tuple[float, float]:
        """(warn, alert) PSI for a scope: "all" or a province code."""
        if scope == "all":
            return self.psi_warn, self.psi_alert
        return self.province_psi_warn, self.province_psi_alert

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> MonitorConfig:
        raw = raw or {}
        cfg = cls(raw=raw)
        unknown = set(raw) - set(cls._SECTIONS)
        if unknown:
            raise ValueError(
                f"monitoring config: unknown section(s) {sorted(unknown)}; known: {sorted(cls._SECTIONS)}"
            )
        for section, keys in cls._SECTIONS.items():
            values = raw.get(section) or {}
            bad = set(values) - set(keys)
            if bad:
                raise ValueError(
                    f"monitoring config [{section}]: unknown key(s) {sorted(bad)}; known: {sorted(keys)}"
                )
            for key, attr in keys.items():
                if key not in values:
                    continue
                default = getattr(cls, attr)
                v = values[key]
                if isinstance(default, tuple):
                    v = tuple(v or ())
                elif isinstance(default, int) and not isinstance(default, bool):
                    v = int(v)
                elif isinstance(default, float):
                    v = float(v)
                setattr(cfg, attr, v)
        if not 0 < cfg.psi_warn <= cfg.psi_alert:
            raise ValueError("monitoring config: need 0 < drift.psi_warn <= drift.psi_alert")
        if not 0 < cfg.capacity < 1:
            raise ValueError("monitoring config: outcomes.capacity must be in (0, 1)")
        return cfg

    @classmethod
    def from_yaml(cls, path: str | Path | None = None) -> MonitorConfig:
        p = Path(path) if path is not None else DEFAULT_CONFIG
        if not p.exists():
            if path is None:
                return cls()
            raise FileNotFoundError(f"monitoring config not found: {p}")
        return cls.from_dict(yaml.safe_load(p.read_text()) or {})


# =========================================================================== windows
def _ts(value: Any) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    return ts.tz_localize(UTC) if ts.tzinfo is None else ts.tz_convert(UTC)


@dataclass
class Window:
    since: pd.Timestamp
    until: pd.Timestamp
    previous_since: pd.Timestamp
    previous_until: pd.Timestamp

    @classmethod
    def make(
        cls,
        since: Any = None,
        until: Any = None,
        window_days: int | None = 30,
        previous_since: Any = None,
        previous_until: Any = None,
    ) -> Window:
        end = _ts(until) if until is not None else pd.Timestamp.now(tz=UTC)
        start = _ts(since) if since is not None else end - timedelta(days=window_days or 30)
        if start >= end:
            raise ValueError(f"the window is empty: since {start} is not before until {end}")
        p_until = _ts(previous_until) if previous_until is not None else start
        p_since = _ts(previous_since) if previous_since is not None else p_until - (end - start)
        return cls(start, end, p_since, p_until)

    def as_dict(self) -> dict[str, str]:
        return {k: v.isoformat() for k, v in asdict(self).items()}


def completed_decisions(frame: pd.DataFrame) -> pd.DataFrame:
    """Completed decisions, one per (household_id, period): the latest by created_at."""
    if frame.empty:
        return frame
    done = frame[frame["status"] == "completed"]
    done = done.sort_values(["created_at", "decision_id"], kind="stable")
    return done.drop_duplicates(["household_id", "period"], keep="last").reset_index(drop=True)


def _records(frame: pd.DataFrame) -> pd.DataFrame:
    return schema.records_to_frame([r or {} for r in frame["record"]])


def previous_for(ledger: Any, records: pd.DataFrame) -> pd.DataFrame | None:
    """The previous-period records the service would have used (``history.previous_from_ledger``)."""
    return previous_from_ledger(ledger, records)


# =========================================================================== drift pieces
def _level(value: float, warn: float, alert: float, higher_is_worse: bool = True) -> str:
    if value is None or not np.isfinite(value):
        return "ok"
    v = value if higher_is_worse else -value
    w, a = (warn, alert) if higher_is_worse else (-warn, -alert)
    return "alert" if v >= a else "warn" if v >= w else "ok"


def feature_drift(
    profile: dict[str, Any], features: pd.DataFrame, county_codes: Any, cfg: MonitorConfig
) -> pd.DataFrame:
    """PSI per feature against the reference, overall (scope "all") and per province."""
    province = _province(county_codes)
    rows = []
    for name, ref in profile["features"].items():
        if name not in features.columns:
            continue
        sel = _feature_rows(features, name)
        x = features[name].to_numpy(dtype=float)
        excluded = name in cfg.exclude_features
        actual = bin_proportions(x[sel], ref["edges"])
        value = psi(ref["proportions"], actual) if sel.any() else float("nan")
        rows.append(
            {
                "feature": name,
                "scope": "all",
                "n_ref": ref["n"],
                "n": int(sel.sum()),
                "psi": value,
                "missing_ref": ref.get("missing_rate"),
                "missing": float(np.isnan(x[sel]).mean()) if sel.any() else float("nan"),
                "excluded": excluded,
            }
        )
        for p, pref in profile.get("provinces", {}).items():
            pr = pref["features"].get(name)
            psel = sel & (province == p)
            if pr is None or not psel.any():
                continue
            rows.append(
                {
                    "feature": name,
                    "scope": p,
                    "n_ref": pr["n"],
                    "n": int(psel.sum()),
                    "psi": psi(pr["proportions"], bin_proportions(x[psel], ref["edges"])),
                    "missing_ref": None,
                    "missing": float(np.isnan(x[psel]).mean()),
                    "excluded": excluded,
                }
            )
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    enough = (out["n"] >= cfg.province_min_rows) & (out["n_ref"] >= cfg.province_min_rows)
    judged = ~out["excluded"] & ((out["scope"] == "all") | enough)
    out["level"] = [
        _level(v, *cfg.psi_thresholds(scope)) if j else "ok"
        for v, j, scope in zip(out["psi"], judged, out["scope"], strict=True)
    ]
    out["judged"] = judged
    return out


def missing_rates(
    profile: dict[str, Any], records: pd.DataFrame, cfg: MonitorConfig
) -> pd.DataFrame:
    rows = []
    for name, ref in profile.get("missing", {}).items():
        if name not in records.columns:
            continue
        rate = float(records[name].isna().mean()) if len(records) else float("nan")
        inc = rate - ref
        rows.append(
            {
                "field": name,
                "training": ref,
                "window": rate,
                "increase": inc,
                "level": _level(inc, cfg.missing_increase_warn, cfg.missing_increase_alert),
            }
        )
    return pd.DataFrame(rows)


def _rules_fired(result: Any) -> list[str]:
    if not isinstance(result, dict):
        return []
    return [str(r.get("id")) for r in result.get("rules") or [] if isinstance(r, dict)]


def _flagged_by(value: Any) -> set[str]:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return set()
    if isinstance(value, (list, tuple)):
        return {str(v) for v in value}
    return {p for p in re.split(r"[,+ ]+", str(value)) if p}


def rate_table(frame: pd.DataFrame) -> dict[tuple[str, str], tuple[int, float]]:
    """(kind, key) → (decisions, rate) for the flag-rate views of one window."""
    n = len(frame)
    out: dict[tuple[str, str], tuple[int, float]] = {}
    if n == 0:
        return out
    flagged = frame["flagged"].astype(bool).to_numpy()
    out[("overall", "flagged")] = (n, float(flagged.mean()))
    by = [_flagged_by(v) for v in frame["flagged_by"]]
    for who in ("model", "rules"):
        out[("flagged_by", who)] = (n, float(np.mean([who in b for b in by])))
    level = frame["risk_level"].astype(str).to_numpy()
    for lv in ("red", "yellow", "green"):
        out[("level", lv)] = (n, float((level == lv).mean()))
    fired = [set(_rules_fired(r)) for r in frame["result"]]
    for rule in sorted(set().union(*fired)) if fired else []:
        out[("rule", rule)] = (n, float(np.mean([rule in f for f in fired])))
    county = frame["county_code"].astype(str).to_numpy()
    for c in sorted(pd.unique(county)):
        sel = county == c
        out[("county", c)] = (int(sel.sum()), float(flagged[sel].mean()))
    return out


def _z(p1: float, n1: int, p0: float, n0: int) -> float:
    if n1 == 0 or n0 == 0:
        return float("nan")
    pooled = (p1 * n1 + p0 * n0) / (n1 + n0)
    var = pooled * (1 - pooled) * (1 / n1 + 1 / n0)
    return float((p1 - p0) / math.sqrt(var)) if var > 0 else 0.0


def flag_rates(current: pd.DataFrame, previous: pd.DataFrame, cfg: MonitorConfig) -> pd.DataFrame:
    """Flag rate overall, by who flagged, by level, by rule and by county, against the previous window."""
    cur, prev = rate_table(current), rate_table(previous)
    thresholds = {
        "overall": (cfg.flag_overall_warn, cfg.flag_overall_alert),
        "flagged_by": (cfg.flag_overall_warn, cfg.flag_overall_alert),
        "level": (cfg.flag_level_warn, cfg.flag_level_alert),
        "rule": (cfg.flag_rule_warn, cfg.flag_rule_alert),
        "county": (cfg.flag_county_warn, cfg.flag_county_alert),
    }
    rows = []
    for kind, key in sorted(
        set(cur) | set(prev), key=lambda k: (list(thresholds).index(k[0]), k[1])
    ):
        n1, p1 = cur.get((kind, key), (len(current), 0.0))
        n0, p0 = prev.get((kind, key), (len(previous), 0.0))
        if kind == "county":
            n1, p1 = cur.get((kind, key), (0, float("nan")))
            n0, p0 = prev.get((kind, key), (0, float("nan")))
        change = p1 - p0 if n1 and n0 else float("nan")
        z = _z(p1, n1, p0, n0) if n1 and n0 else float("nan")
        warn, alert = thresholds[kind]
        level = "ok"
        enough = n1 > 0 and n0 > 0
        if kind == "county":
            enough = n1 >= cfg.flag_county_min_rows and n0 >= cfg.flag_county_min_rows
        if (kind, key) == ("level", "green"):
            enough = False  # the complement of "flagged": judged there, not twice
        if enough and np.isfinite(z) and abs(z) >= cfg.flag_min_z:
            level = _level(abs(change), warn, alert)
        rows.append(
            {
                "kind": kind,
                "key": key,
                "n_previous": n0,
                "rate_previous": p0,
                "n": n1,
                "rate": p1,
                "change": change,
                "z": z,
                "level": level,
            }
        )
    return pd.DataFrame(
        rows,
        columns=["kind", "key", "n_previous", "rate_previous", "n", "rate", "change", "z", "level"],
    )


# =========================================================================== outcomes
def load_outcomes(path: str | Path, lines: Any = None) -> pd.DataFrame:
    """Outcomes from a file: household_id, period (observed), decision_period, at_risk (0/1).

    Three layouts, checked in this order:

    * **full later records** (every contract field): the outcome at the record's
      ``period`` is the contract's label measured on it (spend-adjusted
      per-capita income below that record's monitoring line); rows where an
      input is missing are dropped; any ``at_risk_next`` column is ignored;
    * ``household_id, period, at_risk``: at risk observed at ``period``;
    * ``household_id, period, at_risk_next``: the contract's label of the
      record *at* ``period`` (as in a labelled panel), i.e. observed 12 months
      later.

    Every outcome joins to the decision of ``period − 12 months``.
    """
    from riskml.data.io import read_table

    df = read_table(path)
    return outcomes_from_frame(df, lines)


def outcomes_from_frame(df: pd.DataFrame, lines: Any = None) -> pd.DataFrame:
    """``load_outcomes`` on a frame already read."""
    for col in ("household_id", "period"):
        if col not in df.columns:
            raise ValueError(f"outcomes need a {col!r} column")
    full = all(f.name in df.columns for f in schema.FIELDS)
    hid = df["household_id"].astype(str)
    period = df["period"].astype(str)
    if not period.str.fullmatch(r"(19|20)\d\d-(0[1-9]|1[0-2])").all():
        raise ValueError("outcomes: every period must be YYYY-MM")
    if full:
        from riskml.data.reference import default_lines

        records = schema.require_valid(df[list(schema.FIELD_NAMES)])
        lines = lines or default_lines()
        prov = records["county_code"].astype(str).str.slice(0, 2)
        line = lines.for_frame(prov, year_of(records["period"]))["monitoring_line"].to_numpy(float)
        value = spend_adjusted_pc_income(records).to_numpy(dtype=float)
        at_risk = np.where(np.isnan(value), np.nan, (value < line).astype(float))
        observed = period.to_numpy()
    elif "at_risk" in df.columns and "at_risk_next" in df.columns:
        raise ValueError("outcomes: give at_risk (observed at period) or at_risk_next, not both")
    elif "at_risk" in df.columns:
        at_risk = pd.to_numeric(df["at_risk"], errors="coerce").to_numpy(dtype=float)
        observed = period.to_numpy()
    elif "at_risk_next" in df.columns:
        at_risk = pd.to_numeric(df["at_risk_next"], errors="coerce").to_numpy(dtype=float)
        observed = np.array([shift_period(p, HORIZON_MONTHS) for p in period], dtype=object)
    else:
        raise ValueError(
            "outcomes need at_risk (observed at period), at_risk_next (label of the record at "
            "period) or every contract field of the later record"
        )
    bad = ~np.isnan(at_risk) & ~np.isin(at_risk, (0.0, 1.0))
    if bad.any():
        raise ValueError(f"outcomes: at_risk must be 0 or 1; {int(bad.sum())} row(s) are not")
    out = pd.DataFrame(
        {
            "household_id": hid.to_numpy(),
            "period": observed,
            "decision_period": [shift_period(p, -HORIZON_MONTHS) for p in observed],
            "at_risk": at_risk,
        }
    )
    out = out[~np.isnan(at_risk)].reset_index(drop=True)
    out["at_risk"] = out["at_risk"].astype(int)
    return out


class OutcomeError(ValueError):
    """An outcomes file that cannot be stored (conflicts with stored outcomes, bad rows)."""


class OutcomeStore:
    """The ``outcomes`` table in the ledger's database (insert-only; (household_id, period) unique)."""

    def __init__(self, ledger: Any, create: bool = True):
        """The table on the ledger's engine; ``create`` makes it (and its triggers) if missing."""
        from sqlalchemy import (
            CheckConstraint,
            Column,
            Index,
            Integer,
            MetaData,
            String,
            Table,
            UniqueConstraint,
        )

        self.ledger = ledger
        self.engine = ledger.engine
        self.metadata = MetaData()
        self.table = Table(
            "outcomes",
            self.metadata,
            Column("id", Integer, primary_key=True, autoincrement=True),
            Column("household_id", String(64), nullable=False),
            Column("period", String(7), nullable=False),  # when the outcome was observed
            Column("decision_period", String(7), nullable=False),  # period − 12 months
            Column("at_risk", Integer, nullable=False),
            Column("source", String),
            Column("loaded_at", String(32), nullable=False),  # UTC ISO 8601
            UniqueConstraint("household_id", "period", name="uq_outcomes_household_period"),
            CheckConstraint("at_risk IN (0, 1)", name="ck_outcomes_at_risk"),
        )
        Index("ix_outcomes_decision", self.table.c.household_id, self.table.c.decision_period)
        if create:
            self._create()

    def _create(self) -> None:
        writer = self.engine.execution_options(riskml_write=True)
        with writer.begin() as conn:
            self.metadata.create_all(conn)
            if self.engine.dialect.name == "sqlite":
                for op in ("UPDATE", "DELETE"):
                    conn.exec_driver_sql(
                        f"CREATE TRIGGER IF NOT EXISTS outcomes_no_{op.lower()} BEFORE {op} ON outcomes "
                        f"BEGIN SELECT RAISE(ABORT, 'riskml: outcomes is insert-only ({op} refused)'); END"
                    )
            elif self.engine.dialect.name == "postgresql":
                exists = conn.exec_driver_sql(
                    "SELECT 1 FROM pg_trigger WHERE tgname = 'outcomes_insert_only'"
                ).first()
                if not exists:
                    conn.exec_driver_sql(
                        "CREATE OR REPLACE FUNCTION riskml_outcomes_insert_only() RETURNS trigger "
                        "LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION "
                        "'riskml: outcomes is insert-only'; END $$"
                    )
                    conn.exec_driver_sql(
                        "CREATE TRIGGER outcomes_insert_only BEFORE UPDATE OR DELETE ON outcomes "
                        "FOR EACH ROW EXECUTE FUNCTION riskml_outcomes_insert_only()"
                    )

    def frame(self) -> pd.DataFrame:
        from sqlalchemy import select

        with self.engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(select(self.table))]
        cols = [c.name for c in self.table.columns]
        return pd.DataFrame(rows, columns=cols)

    def add(
        self, outcomes: pd.DataFrame, source: str | None = None, loaded_at: Any = None
    ) -> dict[str, int]:
        """Store new outcomes (all or nothing): counts of stored, already stored and conflicts.

        An outcome identical to a stored one is skipped; one that differs from a
        stored one (or from another row of the same file) refuses the whole call
        with ``OutcomeError`` listing the first conflicts.
        """
        new = outcomes[["household_id", "period", "decision_period", "at_risk"]].copy()
        new["at_risk"] = new["at_risk"].astype(int)
        dup = new.duplicated(["household_id", "period"], keep=False)
        if dup.any():
            clash = new[dup].groupby(["household_id", "period"])["at_risk"].nunique()
            clash = clash[clash > 1]
            if len(clash):
                shown = ", ".join(f"{h}/{p}" for h, p in clash.index[:5])
                raise OutcomeError(
                    f"nothing stored: {len(clash)} household-period(s) appear with different "
                    f"outcomes in the file: {shown}"
                )
            new = new.drop_duplicates(["household_id", "period"])
        stamp = (
            _ts(loaded_at).isoformat(timespec="microseconds")
            if loaded_at is not None
            else (datetime.now(UTC).isoformat(timespec="microseconds"))
        )
        writer = self.engine.execution_options(riskml_write=True)
        with writer.begin() as conn:
            stored = self._stored(conn, new["household_id"].unique().tolist())
            merged = new.merge(
                stored, on=["household_id", "period"], how="left", suffixes=("", "_stored")
            )
            known = merged["at_risk_stored"].notna()
            conflict = known & (merged["at_risk_stored"] != merged["at_risk"])
            if conflict.any():
                c = merged[conflict]
                shown = ", ".join(
                    f"{h}/{p} (stored {int(s)}, file {int(v)})"
                    for h, p, s, v in c[["household_id", "period", "at_risk_stored", "at_risk"]]
                    .head(5)
                    .itertuples(index=False)
                )
                raise OutcomeError(
                    f"nothing stored: {int(conflict.sum())} outcome(s) differ from stored ones "
                    f"(outcomes are insert-only; a correction needs a data-governance decision): {shown}"
                )
            to_add = merged[~known]
            rows = [
                {
                    "household_id": str(r.household_id),
                    "period": str(r.period),
                    "decision_period": str(r.decision_period),
                    "at_risk": int(r.at_risk),
                    "source": source,
                    "loaded_at": stamp,
                }
                for r in to_add.itertuples(index=False)
            ]
            if rows:
                conn.execute(self.table.insert(), rows)
        return {"stored": len(rows), "already_stored": int(known.sum()), "rows": len(outcomes)}

    def _stored(self, conn: Any, households: list[str]) -> pd.DataFrame:
        from sqlalchemy import select

        t = self.table.c
        parts = []
        for start in range(0, len(households), 5000):
            chunk = households[start : start + 5000]
            stmt = select(t.household_id, t.period, t.at_risk.label("at_risk_stored")).where(
                t.household_id.in_(chunk)
            )
            parts += [dict(r._mapping) for r in conn.execute(stmt)]
        return pd.DataFrame(parts, columns=["household_id", "period", "at_risk_stored"])


def due_date(
    decision_period: str, horizon_months: int = HORIZON_MONTHS, grace_days: int = 60
) -> pd.Timestamp:
    """When the outcome of a decision is due: 1st of the month after its outcome period + grace."""
    after = shift_period(decision_period, horizon_months + 1)
    return pd.Timestamp(f"{after}-01", tz=UTC) + timedelta(days=grace_days)


def join_outcomes(
    decisions: pd.DataFrame,
    outcomes: pd.DataFrame,
    as_of: Any = None,
    horizon_months: int = HORIZON_MONTHS,
    grace_days: int = 60,
) -> pd.DataFrame:
    """Decisions (latest per household-period) with their outcome and status.

    ``status``: matched, late (arrived after ``due_date``), pending (no outcome,
    not yet due) or overdue (no outcome, past due), as of ``as_of`` (default now).
    """
    as_of = _ts(as_of) if as_of is not None else pd.Timestamp.now(tz=UTC)
    cols = ["household_id", "period", "county_code", "score", "flagged", "created_at"]
    d = decisions[[c for c in cols if c in decisions.columns]].copy()
    o = outcomes.rename(columns={"period": "outcome_period", "decision_period": "period"})
    o = o[["household_id", "period", "outcome_period", "at_risk", "loaded_at"]]
    j = d.merge(o, on=["household_id", "period"], how="left", validate="1:1")
    due = {p: due_date(p, horizon_months, grace_days) for p in pd.unique(j["period"])}
    j["due"] = pd.to_datetime(j["period"].map(due), utc=True)
    has = j["at_risk"].notna().to_numpy()
    loaded = pd.to_datetime(j["loaded_at"], utc=True, format="ISO8601")
    late = has & (loaded > j["due"]).fillna(False).to_numpy(dtype=bool)
    overdue = ~has & (as_of > j["due"]).to_numpy(dtype=bool)
    j["status"] = np.select(
        [has & ~late, late, overdue], ["matched", "late", "overdue"], default="pending"
    )
    return j


def _county_selection(score: np.ndarray, county: np.ndarray, capacity: float) -> np.ndarray:
    sel = np.zeros(len(score), dtype=bool)
    for c in pd.unique(county):
        idx = np.flatnonzero(county == c)
        sel[idx] = top_k_mask(score[idx], capacity)
    return sel


def _realised(
    y: np.ndarray, p: np.ndarray, sel: np.ndarray, sel_county: np.ndarray
) -> dict[str, float]:
    n = len(y)
    m = selection_metrics(y, sel)
    mc = selection_metrics(y, sel_county)
    return {
        "positives": int(y.sum()),
        "base_rate": float(y.mean()) if n else float("nan"),
        "mean_score": float(p.mean()) if n else float("nan"),
        "roc_auc": auc(y, p) if n else float("nan"),
        "recall_at_capacity": m["recall"],
        "precision_at_capacity": m["precision"],
        "recall_at_capacity_per_county": mc["recall"],
        "precision_at_capacity_per_county": mc["precision"],
        "ece": expected_calibration_error(y, p) if n >= 10 else float("nan"),
    }


def realised_metrics(
    joined: pd.DataFrame, capacity: float = 0.10, bins: int = 10
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, pd.DataFrame]]:
    """Per decision period and per (period, county): counts by status and realised metrics.

    Capacity is the top ``capacity`` share of every scored household of the
    period (outcome or not); recall and precision are over those with an
    outcome (matched or late). Returns (by period, by county, reliability
    table per period).
    """
    per_rows, county_rows, reliability = [], [], {}
    for period, g in joined.groupby("period", sort=True):
        g = g.reset_index(drop=True)
        score = g["score"].to_numpy(dtype=float)
        county = g["county_code"].astype(str).to_numpy()
        sel = top_k_mask(score, capacity)
        sel_c = _county_selection(score, county, capacity)
        known = g["status"].isin(["matched", "late"]).to_numpy()
        counts = g["status"].value_counts()
        y = g.loc[known, "at_risk"].to_numpy(dtype=int)
        p = score[known]
        row = {
            "period": period,
            "decisions": len(g),
            **{s: int(counts.get(s, 0)) for s in ("matched", "late", "pending", "overdue")},
            "with_outcome": int(known.sum()),
        }
        row.update(_realised(y, p, sel[known], sel_c[known]))
        per_rows.append(row)
        if known.sum() >= 10:
            reliability[str(period)] = reliability_table(y, p, bins)
        for c in sorted(pd.unique(county)):
            cm = county == c
            k = known & cm
            yc = g.loc[k, "at_risk"].to_numpy(dtype=int)
            r = {
                "period": period,
                "county_code": c,
                "decisions": int(cm.sum()),
                "with_outcome": int(k.sum()),
            }
            r.update(_realised(yc, score[k], sel[k], sel_c[k]))
            county_rows.append(r)
    return pd.DataFrame(per_rows), pd.DataFrame(county_rows), reliability


# =========================================================================== the monitor
@dataclass
class Alert:
    check: str
    subject: str
    value: float
    threshold: float
    level: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {k: _jsonable(v) for k, v in asdict(self).items()}


@dataclass
class MonitorResult:
    model: dict[str, Any]
    window: dict[str, str]
    counts: dict[str, Any]
    feature_drift: pd.DataFrame
    score: dict[str, Any]
    missing: pd.DataFrame
    flag_rates: pd.DataFrame
    lines: pd.DataFrame
    outcomes: dict[str, Any]
    alerts: list[Alert]
    notes: list[str]
    timeline: pd.DataFrame
    config: MonitorConfig

    @property
    def alerted(self) -> list[Alert]:
        return [a for a in self.alerts if a.level == "alert"]

    @property
    def warnings(self) -> list[Alert]:
        return [a for a in self.alerts if a.level == "warn"]

    @property
    def exit_code(self) -> int:
        return 2 if self.alerted else 0

    @property
    def status(self) -> str:
        return "alert" if self.alerted else "warn" if self.warnings else "ok"

    def top_drift(self, k: int = 10, scope: str = "all") -> pd.DataFrame:
        fd = self.feature_drift
        if fd.empty:
            return fd
        return fd[fd["scope"] == scope].sort_values("psi", ascending=False).head(k)

    def metrics(self) -> dict[str, float]:
        """Flat metrics for MLflow."""
        m: dict[str, float] = {
            "decisions": self.counts.get("decisions", 0),
            "decisions_previous": self.counts.get("decisions_previous", 0),
            "alerts": len(self.alerted),
            "warnings": len(self.warnings),
            "score_psi": self.score.get("psi", float("nan")),
            "model_flag_rate": self.score.get("flag_rate", float("nan")),
            "previous_coverage": self.counts.get("previous_coverage", float("nan")),
        }
        fd = self.feature_drift
        if not fd.empty:
            overall = fd[fd["scope"] == "all"]
            for r in overall.itertuples(index=False):
                m[f"psi_{r.feature}"] = r.psi
            judged = fd[fd["judged"]]
            if len(judged):
                m["psi_max"] = float(judged["psi"].max())
            prov = fd[(fd["scope"] != "all") & fd["judged"]]
            if len(prov):
                m["psi_max_province"] = float(prov["psi"].max())
        fr = self.flag_rates
        if not fr.empty:
            for r in fr[fr["kind"].isin(["overall", "flagged_by", "level"])].itertuples(
                index=False
            ):
                m[f"flag_rate_{r.kind}_{r.key}"] = r.rate
                m[f"flag_rate_change_{r.kind}_{r.key}"] = r.change
        if not self.missing.empty:
            m["missing_increase_max"] = float(self.missing["increase"].max())
        latest = self.outcomes.get("latest")
        if latest:
            for k in ("roc_auc", "recall_at_capacity", "precision_at_capacity", "ece"):
                m[f"realised_{k}"] = latest.get(k, float("nan"))
        for s in ("matched", "late", "pending", "overdue"):
            if s in self.outcomes.get("status_counts", {}):
                m[f"outcomes_{s}"] = self.outcomes["status_counts"][s]
        return {k: float(v) for k, v in m.items() if v is not None and np.isfinite(float(v))}


def _jsonable(v: Any) -> Any:
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _timeline(
    frame: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp, buckets: int = 30
) -> pd.DataFrame:
    """Flag rates in equal time buckets over [start, end) (for the plot)."""
    if frame.empty:
        return pd.DataFrame(columns=["start", "n", "flagged", "model", "rules", "red"])
    t = frame["created_at"]
    width = (end - start) / buckets
    b = ((t - start) / width).astype(int).clip(0, buckets - 1)
    by = [_flagged_by(v) for v in frame["flagged_by"]]
    df = pd.DataFrame(
        {
            "b": b.to_numpy(),
            "flagged": frame["flagged"].astype(bool).to_numpy(),
            "model": [("model" in s) for s in by],
            "rules": [("rules" in s) for s in by],
            "red": (frame["risk_level"].astype(str) == "red").to_numpy(),
        }
    )
    g = df.groupby("b")
    out = g[["flagged", "model", "rules", "red"]].mean()
    out["n"] = g.size()
    out["start"] = [start + width * int(i) for i in out.index]
    return out.reset_index(drop=True)[["start", "n", "flagged", "model", "rules", "red"]]


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
    profile = getattr(model, "profile", None)
    if not profile:
        raise ValueError(
            "the model carries no training reference (profile.json): it was trained before "
            "monitoring existed; retrain it (riskml retrain) to monitor it"
        )
    notes: list[str] = []
    alerts: list[Alert] = []

    def add(check: str, subject: str, value: float, threshold: float, level: str, msg: str) -> None:
        if level in ("warn", "alert"):
            alerts.append(Alert(check, subject, float(value), float(threshold), level, msg))

    everything = ledger.decisions_frame(
        window.previous_since.to_pydatetime(), window.until.to_pydatetime(), expand_records=False
    )
    in_cur = (
        (everything["created_at"] >= window.since).to_numpy()
        if len(everything)
        else np.zeros(0, bool)
    )
    in_prev = (
        (everything["created_at"] < window.previous_until).to_numpy()
        if len(everything)
        else np.zeros(0, bool)
    )
    current = completed_decisions(everything[in_cur]) if len(everything) else everything
    previous = completed_decisions(everything[in_prev]) if len(everything) else everything
    failed = int((everything.loc[in_cur, "status"] == "failed").sum()) if len(everything) else 0
    counts: dict[str, Any] = {
        "decisions": len(current),
        "decisions_previous": len(previous),
        "failed": failed,
        "reference_rows": profile.get("rows"),
        "reference_periods": profile.get("periods"),
    }
    if len(current):
        counts["model_versions"] = current["model_version"].astype(str).value_counts().to_dict()
        counts["periods"] = current["period"].astype(str).value_counts().sort_index().to_dict()

    fd = pd.DataFrame()
    missing = pd.DataFrame()
    lines = pd.DataFrame()
    score: dict[str, Any] = {
        "edges": list(SCORE_EDGES),
        "reference": profile["score"]["proportions"],
        "psi": float("nan"),
    }
    if len(current) < cfg.min_decisions:
        add(
            "window",
            "decisions",
            len(current),
            cfg.min_decisions,
            "warn",
            f"only {len(current)} decision(s) in the window (< {cfg.min_decisions}): drift not judged",
        )
    if len(current):
        records = _records(current)
        prev_records = previous_for(ledger, records)
        X = model.features(records, prev_records)
        scores = model.predict_proba(X)
        stored = current["score"].to_numpy(dtype=float)
        diff = np.abs(scores - stored)
        counts["rescored_max_abs_diff"] = float(np.nanmax(diff)) if len(diff) else 0.0
        counts["rescored_differs"] = int((diff > 1e-6).sum())
        if counts["rescored_differs"]:
            notes.append(
                f"{counts['rescored_differs']} decision(s) scored differently by this model "
                "(another model version, or a previous record stored later): score drift uses this model's scores"
            )
        coverage = float(X[PREVIOUS_FLAG].mean()) if PREVIOUS_FLAG in X.columns else float("nan")
        counts["previous_coverage"] = coverage
        counts["previous_coverage_training"] = profile.get("previous_coverage")
        if np.isfinite(coverage) and coverage < cfg.previous_coverage_warn:
            add(
                "previous_coverage",
                "has_previous",
                coverage,
                cfg.previous_coverage_warn,
                "warn",
                f"only {coverage:.0%} of the window's households have a previous record in the ledger: "
                "the model scores them without change features",
            )
        judge = len(current) >= cfg.min_decisions
        fd = feature_drift(profile, X, records["county_code"], cfg)
        if not judge and not fd.empty:
            fd["level"] = "ok"
        for r in fd[fd["level"] != "ok"].itertuples(index=False) if not fd.empty else []:
            where = "overall" if r.scope == "all" else f"province {r.scope}"
            warn_t, alert_t = cfg.psi_thresholds(r.scope)
            thr = alert_t if r.level == "alert" else warn_t
            add("feature_psi", f"{r.feature} [{where}]", r.psi, thr, r.level,
                f"{r.feature} drifted ({where}): PSI {r.psi:.3f} (n={r.n})")  # fmt: skip
        hist = score_histogram(scores)
        score.update(
            {
                "window": hist.tolist(),
                "psi": psi(profile["score"]["proportions"], hist),
                "mean": float(np.mean(scores)),
                "mean_reference": profile["score"].get("mean"),
                "flag_rate": float(np.mean(scores >= model.thresholds.flag)),
                "red_rate": float(np.mean(scores >= model.thresholds.red)),
                "flag_rate_reference": profile["score"].get("flag_rate"),
                "flag_capacity": profile["score"].get("flag_capacity")
                or model.thresholds.flag_capacity,
            }
        )
        if judge:
            lvl = _level(score["psi"], cfg.score_psi_warn, cfg.score_psi_alert)
            add("score_psi", "score", score["psi"], cfg.score_psi_alert if lvl == "alert" else cfg.score_psi_warn,
                lvl, f"score distribution drifted: PSI {score['psi']:.3f}")  # fmt: skip
            change = score["flag_rate"] - score["flag_capacity"]
            lvl = _level(abs(change), cfg.model_flag_rate_warn, cfg.model_flag_rate_alert)
            add("model_flag_rate", "score >= flag threshold", score["flag_rate"], score["flag_capacity"], lvl,
                f"the model flags {score['flag_rate']:.1%} of households; its threshold was set for "
                f"{score['flag_capacity']:.1%}")  # fmt: skip
        missing = missing_rates(profile, records, cfg)
        if judge:
            for r in missing[missing["level"] != "ok"].itertuples(index=False):
                thr = (
                    cfg.missing_increase_alert if r.level == "alert" else cfg.missing_increase_warn
                )
                add("missing_rate", r.field, r.increase, thr, r.level,
                    f"{r.field} is missing in {r.window:.1%} of records (training {r.training:.1%})")  # fmt: skip
        ref_lines = profile.get("monitoring_line_by_province") or {}
        if "monitoring_line" in X.columns:
            w = (
                pd.Series(X["monitoring_line"].to_numpy(dtype=float))
                .groupby(_province(records["county_code"]))
                .mean()
            )
            lines = pd.DataFrame(
                {
                    "province": w.index.astype(str),
                    "training_mean_line": [ref_lines.get(p, np.nan) for p in w.index],
                    "window_mean_line": w.to_numpy(),
                }
            )
            lines["ratio"] = lines["window_mean_line"] / lines["training_mean_line"]
        if len(previous):
            prev_scores = previous["score"].to_numpy(dtype=float)
            score["previous"] = score_histogram(prev_scores).tolist()

    fr = flag_rates(current, previous, cfg)
    if len(previous) == 0:
        notes.append("no decisions in the previous window: flag rates are not compared")
    for r in fr[fr["level"] != "ok"].itertuples(index=False):
        warn_t, alert_t = {
            "overall": (cfg.flag_overall_warn, cfg.flag_overall_alert),
            "flagged_by": (cfg.flag_overall_warn, cfg.flag_overall_alert),
            "level": (cfg.flag_level_warn, cfg.flag_level_alert),
            "rule": (cfg.flag_rule_warn, cfg.flag_rule_alert),
            "county": (cfg.flag_county_warn, cfg.flag_county_alert),
        }[r.kind]
        add(f"flag_rate_{r.kind}", r.key, r.change, alert_t if r.level == "alert" else warn_t, r.level,
            f"{r.kind} {r.key}: flag rate {r.rate_previous:.1%} → {r.rate:.1%} "
            f"({r.change:+.1%}, z={r.z:.1f}) against the previous window")  # fmt: skip

    outcomes = _outcome_section(ledger, window, cfg, as_of, add)
    timeline = _timeline(
        everything[everything["status"] == "completed"] if len(everything) else everything,
        window.previous_since,
        window.until,
    )
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
        timeline=timeline,
        config=cfg,
    )


def _outcome_section(
    ledger: Any, window: Window, cfg: MonitorConfig, as_of: Any, add: Any
) -> dict[str, Any]:
    """Realised performance on every decision period with outcomes (decisions made before ``until``)."""
    from sqlalchemy import inspect

    if not inspect(ledger.engine).has_table("outcomes"):  # never created by a read
        return {"stored": 0}
    outcomes = OutcomeStore(ledger, create=False).frame()
    if outcomes.empty:
        return {"stored": 0}
    decided = completed_decisions(
        ledger.decisions_frame(None, window.until.to_pydatetime(), expand_records=False)
    )
    if decided.empty:
        return {"stored": len(outcomes)}
    as_of = _ts(as_of) if as_of is not None else window.until
    joined = join_outcomes(decided, outcomes, as_of, cfg.horizon_months, cfg.grace_days)
    matched_keys = set(zip(joined["household_id"], joined["period"], strict=True))
    unmatched = int(
        sum(
            (h, p) not in matched_keys
            for h, p in zip(outcomes["household_id"], outcomes["decision_period"], strict=True)
        )
    )
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
        return section
    latest = evaluable.iloc[-1].to_dict()
    period = latest["period"]
    section["latest"] = latest
    section["latest_period"] = period
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
            add(f"realised_{key}", f"period {period}", v, floor, "alert",
                f"{label} of decisions in {period} is {v:.3f} (floor {floor})")  # fmt: skip
    v = latest.get("ece")
    if v is not None and np.isfinite(v) and v > cfg.ece_ceiling:
        add("realised_ece", f"period {period}", v, cfg.ece_ceiling, "alert",
            f"realised calibration error (ECE) of decisions in {period} is {v:.3f} (ceiling {cfg.ece_ceiling})")  # fmt: skip
    bc = by_county[
        (by_county["period"] == period) & (by_county["with_outcome"] >= cfg.county_min_matched)
    ]
    for r in bc.itertuples(index=False):
        if r.positives < cfg.min_positives:
            continue
        if np.isfinite(r.roc_auc) and r.roc_auc < cfg.county_auc_floor:
            add("realised_county_roc_auc", f"county {r.county_code} {period}", r.roc_auc, cfg.county_auc_floor,
                "alert", f"county {r.county_code}: realised ROC AUC {r.roc_auc:.3f} in {period}")  # fmt: skip
        rc = r.recall_at_capacity_per_county
        if np.isfinite(rc) and rc < cfg.county_recall_floor:
            add("realised_county_recall", f"county {r.county_code} {period}", rc, cfg.county_recall_floor,
                "alert", f"county {r.county_code}: realised recall at capacity {rc:.3f} in {period}")  # fmt: skip
    return section


# =========================================================================== plots and report
def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figures(result: MonitorResult) -> dict[str, Any]:
    """The report's figures (matplotlib): drift per feature, score histograms, flag rates over time, ..."""
    plt = _plt()
    cfg = result.config
    figs: dict[str, Any] = {}
    fd = result.feature_drift
    if not fd.empty:
        overall = fd[fd["scope"] == "all"].sort_values("psi")
        fig, ax = plt.subplots(figsize=(7, max(4, 0.22 * len(overall))))
        colours = [
            "#bbbbbb" if ex else {"ok": "#4c72b0", "warn": "#dd8452", "alert": "#c44e52"}[lv]
            for lv, ex in zip(overall["level"], overall["excluded"], strict=True)
        ]
        ax.barh(overall["feature"], overall["psi"].clip(upper=2.0), color=colours)
        ax.axvline(cfg.psi_warn, color="#dd8452", ls="--", lw=1, label=f"warn {cfg.psi_warn}")
        ax.axvline(cfg.psi_alert, color="#c44e52", ls="--", lw=1, label=f"alert {cfg.psi_alert}")
        ax.set_xlabel("PSI against training (capped at 2; grey: not alerting)")
        ax.set_title("Feature drift, all households")
        ax.legend(loc="lower right")
        fig.tight_layout()
        figs["feature_drift"] = fig

        prov = fd[
            (fd["scope"] != "all")
            & (fd["n"] >= cfg.province_min_rows)
            & (fd["n_ref"] >= cfg.province_min_rows)
        ]
        if not prov.empty:
            top = overall.sort_values("psi", ascending=False)
            top = top[~top["excluded"]]["feature"].head(12).tolist()
            pivot = prov[prov["feature"].isin(top)].pivot_table(
                index="feature", columns="scope", values="psi"
            )
            pivot = pivot.reindex(top)
            fig, ax = plt.subplots(
                figsize=(max(6.0, 2.5 + 0.8 * pivot.shape[1]), 1.2 + 0.35 * len(top))
            )
            im = ax.imshow(
                pivot.to_numpy().clip(0, 1.0), cmap="Reds", vmin=0, vmax=1.0, aspect="auto"
            )
            rows = prov.groupby("scope")["n"].max()
            ax.set_xticks(
                range(pivot.shape[1]), [f"{c}\nn={rows[c]:,}" for c in pivot.columns], fontsize=8
            )
            ax.set_yticks(range(len(top)), top)
            for (i, j), v in np.ndenumerate(pivot.to_numpy()):
                if np.isfinite(v):
                    colour = "white" if v > 0.6 else "black"
                    ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7, color=colour)
            ax.set_xlabel(f"province (those with {cfg.province_min_rows}+ rows)")
            ax.set_title("PSI by province (top features)")
            fig.colorbar(im, ax=ax, shrink=0.8)
            fig.tight_layout()
            figs["feature_drift_by_province"] = fig

    s = result.score
    if s.get("window") is not None:
        fig, ax = plt.subplots(figsize=(7, 4))
        labels = [f"{a:g}–{b:g}" for a, b in zip(SCORE_EDGES[:-1], SCORE_EDGES[1:], strict=True)]
        x = np.arange(len(labels))
        series = [("training", s["reference"]), ("window", s["window"])]
        if s.get("previous") is not None:
            series.append(("previous window (as served)", s["previous"]))
        w = 0.8 / len(series)
        for i, (name, props) in enumerate(series):
            ax.bar(x + (i - (len(series) - 1) / 2) * w, props, width=w, label=name)
        ax.set_xticks(x, labels, rotation=45, ha="right", fontsize=8)
        ax.set_ylabel("share of households")
        ax.set_title(f"Score distribution (PSI {s['psi']:.3f})")
        ax.legend()
        fig.tight_layout()
        figs["score_histogram"] = fig

    tl = result.timeline
    if not tl.empty:
        fig, ax = plt.subplots(figsize=(7, 3.5))
        for col, label in (
            ("flagged", "flagged"),
            ("model", "by the model"),
            ("rules", "by the rules"),
            ("red", "red"),
        ):
            ax.plot(tl["start"], tl[col], "o-", ms=3, label=label)
        ax.axvline(pd.Timestamp(result.window["since"]), color="grey", ls=":", lw=1)
        import matplotlib.dates as mdates

        locator = mdates.AutoDateLocator()
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
        ax.set_ylabel("share of decisions")
        ax.set_title("Flag rates over time (previous window | window)")
        ax.legend(fontsize=8)
        fig.tight_layout()
        figs["flag_rates_over_time"] = fig

    fr = result.flag_rates
    rules = fr[fr["kind"] == "rule"] if not fr.empty else fr
    if not rules.empty:
        fig, ax = plt.subplots(figsize=(7, max(3, 0.3 * len(rules))))
        y = np.arange(len(rules))
        ax.barh(y - 0.2, rules["rate_previous"], height=0.4, label="previous window")
        ax.barh(y + 0.2, rules["rate"], height=0.4, label="window")
        ax.set_yticks(y, rules["key"])
        ax.set_xlabel("share of decisions where the rule fired")
        ax.set_title("Flag rate by rule")
        ax.legend()
        fig.tight_layout()
        figs["flag_rates_by_rule"] = fig

    bp = result.outcomes.get("by_period")
    if isinstance(bp, pd.DataFrame) and not bp.empty and bp["with_outcome"].sum() > 0:
        fig, ax = plt.subplots(figsize=(7, 3.5))
        for col in ("roc_auc", "recall_at_capacity", "precision_at_capacity"):
            ax.plot(bp["period"], bp[col], "o-", label=col)
        ax.axhline(cfg.auc_floor, color="grey", ls=":", lw=1)
        ax.set_ylim(0, 1)
        ax.set_title("Realised performance by decision period")
        ax.legend(fontsize=8)
        fig.tight_layout()
        figs["realised_performance"] = fig
        rel = result.outcomes.get("reliability", {})
        period = result.outcomes.get("latest_period")
        if period and period in rel:
            from riskml.model.metrics import reliability_plot

            figs["realised_reliability"] = reliability_plot(
                rel[period], title=f"Reliability, decisions of {period}"
            )
    return figs


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def render_report(result: MonitorResult, figs: dict[str, Any] | None = None) -> str:
    """The monitoring report as one self-contained HTML page (plots embedded as PNG)."""
    import jinja2

    figs = figs if figs is not None else figures(result)
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(Path(__file__).parent / "templates")),
        autoescape=jinja2.select_autoescape(["html"]),
    )

    def table(df: pd.DataFrame | None, floats: str = "{:.4f}") -> str:
        if df is None or df.empty:
            return "<p><em>none</em></p>"
        return df.to_html(
            index=False, float_format=lambda v: floats.format(v), na_rep="", classes="t", border=0
        )

    fd = result.feature_drift
    top = result.top_drift(15)
    prov = (
        fd[(fd["scope"] != "all") & (fd["level"] != "ok")].sort_values("psi", ascending=False)
        if not fd.empty
        else fd
    )
    fr = result.flag_rates
    fr_view = fr[(fr["kind"] != "county") | (fr["level"] != "ok")] if not fr.empty else fr
    out = result.outcomes
    return env.get_template("monitoring.html").render(
        r=result,
        figs={k: _png(v) for k, v in figs.items()},
        alerts=[a.as_dict() for a in result.alerted + result.warnings],
        top_drift=table(top),
        province_drift=table(prov),
        missing=table(
            result.missing[result.missing["level"] != "ok"]
            if not result.missing.empty
            else result.missing
        ),
        missing_all=table(result.missing),
        flag_rates=table(fr_view),
        lines=table(result.lines, "{:.2f}"),
        outcomes_by_period=table(out.get("by_period")),
        outcomes_latest_county=table(
            out["by_county"][out["by_county"]["period"] == out.get("latest_period")]
            if out.get("latest_period")
            else None
        ),
        counts=json.dumps(
            {k: _jsonable(v) for k, v in result.counts.items()}, indent=1, default=str
        ),
        score={k: v for k, v in result.score.items() if not isinstance(v, list)},
        generated=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def log_to_mlflow(result: MonitorResult, html: str, figs: dict[str, Any] | None = None) -> str:
    """One run in the "household-risk-monitoring" experiment: metrics, report, plots, tables, alerts."""
    from riskml.training import registry

    mlflow = registry.import_mlflow()
    exp_id = registry.ensure_experiment(MONITORING_EXPERIMENT)
    figs = figs if figs is not None else figures(result)
    name = result.model.get("name", "unknown")
    version = str(result.model.get("version", "unknown"))
    run_name = f"monitor-v{version}-{result.window['since'][:10]}-{result.window['until'][:10]}"
    with mlflow.start_run(experiment_id=exp_id, run_name=run_name) as run:
        mlflow.set_tags(
            {
                "riskml.model_name": name,
                "riskml.model_version": version,
                "riskml.model_uri": str(result.model.get("uri", "")),
                "riskml.window_since": result.window["since"],
                "riskml.window_until": result.window["until"],
                "riskml.monitor_status": result.status,
                "riskml.alerts": str(len(result.alerted)),
            }
        )
        mlflow.log_metrics(result.metrics())
        mlflow.log_text(html, "monitoring_report.html")
        for key, fig in figs.items():
            mlflow.log_figure(fig, f"plots/{key}.png")
        mlflow.log_dict([a.as_dict() for a in result.alerts], "alerts.json")
        mlflow.log_dict(result.config.raw or {}, "config/monitoring.yaml")
        for key, df in (
            ("feature_drift", result.feature_drift),
            ("missing", result.missing),
            ("flag_rates", result.flag_rates),
            ("lines", result.lines),
        ):
            if isinstance(df, pd.DataFrame) and not df.empty:
                mlflow.log_text(df.to_csv(index=False), f"tables/{key}.csv")
        for key in ("by_period", "by_county"):
            df = result.outcomes.get(key)
            if isinstance(df, pd.DataFrame) and not df.empty:
                mlflow.log_text(df.to_csv(index=False), f"tables/outcomes_{key}.csv")
        return run.info.run_id


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
        m = re.fullmatch(r"models:/([^/@]+)/(\d+)", uri)
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
    _plt().close("all")
    return result, run_id


__all__ = [
    "Alert",
    "MonitorConfig",
    "MonitorResult",
    "OutcomeError",
    "OutcomeStore",
    "Window",
    "bin_proportions",
    "due_date",
    "feature_drift",
    "flag_rates",
    "join_outcomes",
    "load_outcomes",
    "monitor",
    "psi",
    "quantile_edges",
    "realised_metrics",
    "reference_profile",
    "render_report",
    "run",
]
