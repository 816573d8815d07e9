"""Flag rates of a window against the previous window, and over time.

Views (``rate_table``): overall, by who flagged (model, rules), by risk level,
by rule and by county. A change is judged only when it is both large (the
``flag_rates`` thresholds of ``MonitorConfig``) and beyond noise (two-proportion
z-test, ``|z| >= flag_rates.min_z``); counties need ``county_min_rows``
decisions in both windows.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import pandas as pd

from riskml.monitoring.config import MonitorConfig
from riskml.monitoring.result import alert_level


def rules_fired(result: Any) -> list[str]:
    """Ids of the rules that fired in a decision's stored result."""
    if not isinstance(result, dict):
        return []
    return [str(r.get("id")) for r in result.get("rules") or [] if isinstance(r, dict)]


def flagged_by(value: Any) -> set[str]:
    """Who flagged a decision ("model", "rules"), from its stored ``flagged_by``."""
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
    by = [flagged_by(v) for v in frame["flagged_by"]]
    for who in ("model", "rules"):
        out[("flagged_by", who)] = (n, float(np.mean([who in b for b in by])))
    level = frame["risk_level"].astype(str).to_numpy()
    for lv in ("red", "yellow", "green"):
        out[("level", lv)] = (n, float((level == lv).mean()))
    fired = [set(rules_fired(r)) for r in frame["result"]]
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
    thresholds = cfg.flag_rate_thresholds()
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
            level = alert_level(abs(change), warn, alert)
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


def timeline(
    frame: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp, buckets: int = 30
) -> pd.DataFrame:
    """Flag rates in equal time buckets over [start, end) (for the plot)."""
    if frame.empty:
        return pd.DataFrame(columns=["start", "n", "flagged", "model", "rules", "red"])
    t = frame["created_at"]
    width = (end - start) / buckets
    b = ((t - start) / width).astype(int).clip(0, buckets - 1)
    by = [flagged_by(v) for v in frame["flagged_by"]]
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


__all__ = ["flag_rates", "flagged_by", "rate_table", "rules_fired", "timeline"]
