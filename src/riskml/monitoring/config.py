"""The monitor's alert thresholds: ``MonitorConfig``, read from ``training/monitoring.yaml``.

Every key of the YAML is optional; an unknown section or key is refused. The
sections (``window``, ``drift``, ``missing``, ``flag_rates``, ``previous``,
``outcomes``) map onto the flat attributes of ``MonitorConfig``
(``MonitorConfig._SECTIONS``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from riskml import config

DEFAULT_CONFIG = config.PROJECT_ROOT / "training" / "monitoring.yaml"
HORIZON_MONTHS = 12


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

    def flag_rate_thresholds(self) -> dict[str, tuple[float, float]]:
        """(warn, alert) change of flag rate per kind of flag-rate view, in the order they are listed."""
        return {
            "overall": (self.flag_overall_warn, self.flag_overall_alert),
            "flagged_by": (self.flag_overall_warn, self.flag_overall_alert),
            "level": (self.flag_level_warn, self.flag_level_alert),
            "rule": (self.flag_rule_warn, self.flag_rule_alert),
            "county": (self.flag_county_warn, self.flag_county_alert),
        }

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


__all__ = ["DEFAULT_CONFIG", "HORIZON_MONTHS", "MonitorConfig"]
