"""What a monitoring run finds: alert levels, ``Alert``, and ``MonitorResult``.

**Alerts** carry a level: ``warn`` is reported, ``alert`` makes ``riskml
monitor`` exit with 2 (for cron and CI). ``alert_level`` turns a measured value
and its (warn, alert) thresholds into a level.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from riskml.data.json_text import plain
from riskml.monitoring.config import MonitorConfig

LEVELS = ("ok", "warn", "alert")


def alert_level(value: float, warn: float, alert: float, higher_is_worse: bool = True) -> str:
    """The level ``value`` reaches: "alert" at ``alert`` or beyond, "warn" at ``warn``, else "ok"."""
    if value is None or not np.isfinite(value):
        return "ok"
    v = value if higher_is_worse else -value
    w, a = (warn, alert) if higher_is_worse else (-warn, -alert)
    return "alert" if v >= a else "warn" if v >= w else "ok"


@dataclass
class Alert:
    check: str
    subject: str
    value: float
    threshold: float
    level: str
    message: str

    def as_dict(self) -> dict[str, Any]:
        return plain(asdict(self))


class Alerts(list):
    """Alerts in the order a check raises them; ``add`` keeps only the warn and alert levels."""

    def add(
        self, check: str, subject: str, value: float, threshold: float, level: str, msg: str
    ) -> None:
        if level in ("warn", "alert"):
            self.append(Alert(check, subject, float(value), float(threshold), level, msg))


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


__all__ = ["LEVELS", "Alert", "Alerts", "MonitorResult", "alert_level"]
