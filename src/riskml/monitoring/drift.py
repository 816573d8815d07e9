"""Drift of a window against the training reference: PSI per feature, missing rates, local lines.

**PSI** is ``Σ (a − e) · ln(a / e)`` over the bins, with both shares floored
at ``eps`` (1e-4) so an empty bin does not give infinity (no renormalisation).
Rule of thumb, and the default thresholds overall: below 0.1 stable, 0.1–0.25
a warning, 0.25 and above an alert. With ``n`` window rows and ``k`` bins,
sampling noise alone gives about ``(k − 1)(1/n + 1/n_ref)``: ~0.005 at 3,000
rows, ~0.03 for a province of 400; ``drift.province_min_rows`` keeps smaller
provinces out. A province warns at 0.25 but alerts only at 2.0: in the
simulator a routine local disaster year moves a province's loss features to
PSI 0.3–1.2, while a province-wide severe disaster gives about 10.

A window is binned on the reference's own edges (``riskml.model.profile``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from riskml.model.profile import bin_proportions, feature_rows, province
from riskml.monitoring.config import MonitorConfig
from riskml.monitoring.result import alert_level


def psi(expected_props: Any, actual_props: Any, eps: float = 1e-4) -> float:
    """Population stability index ``Σ (a − e) ln(a / e)``, shares floored at ``eps``."""
    e = np.maximum(np.asarray(expected_props, dtype=float), eps)
    a = np.maximum(np.asarray(actual_props, dtype=float), eps)
    if e.shape != a.shape:
        raise ValueError(f"PSI needs the same bins: {e.shape} vs {a.shape}")
    return float(np.sum((a - e) * np.log(a / e)))


def feature_drift(
    profile: dict[str, Any], features: pd.DataFrame, county_codes: Any, cfg: MonitorConfig
) -> pd.DataFrame:
    """PSI per feature against the reference, overall (scope "all") and per province."""
    prov = province(county_codes)
    rows = []
    for name, ref in profile["features"].items():
        if name not in features.columns:
            continue
        sel = feature_rows(features, name)
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
            psel = sel & (prov == p)
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
        alert_level(v, *cfg.psi_thresholds(scope)) if j else "ok"
        for v, j, scope in zip(out["psi"], judged, out["scope"], strict=True)
    ]
    out["judged"] = judged
    return out


def missing_rates(
    profile: dict[str, Any], records: pd.DataFrame, cfg: MonitorConfig
) -> pd.DataFrame:
    """Missing rate of each contract field in the window against training, and its level."""
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
                "level": alert_level(inc, cfg.missing_increase_warn, cfg.missing_increase_alert),
            }
        )
    return pd.DataFrame(rows)


def lines_by_province(
    profile: dict[str, Any], features: pd.DataFrame, county_codes: Any
) -> pd.DataFrame:
    """Mean monitoring line per province in the window against training (empty without the feature)."""
    ref_lines = profile.get("monitoring_line_by_province") or {}
    if "monitoring_line" not in features.columns:
        return pd.DataFrame()
    w = (
        pd.Series(features["monitoring_line"].to_numpy(dtype=float))
        .groupby(province(county_codes))
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
    return lines


__all__ = ["feature_drift", "lines_by_province", "missing_rates", "psi"]
