"""Geometry of the inline SVG charts: the score over time and the contribution waterfall."""

from __future__ import annotations

import math
from typing import Any

from riskml.service.pages.formatting import pct
from riskml.service.pages.words import feature_label, words


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def score_chart(
    points: list[dict[str, Any]], thresholds: tuple[float, float] | None
) -> dict[str, Any]:
    """Geometry of the score-over-time line chart (viewBox 360 × 200): one point per period."""
    width, height = 360, 200
    left, right, top, bottom = 40, 14, 14, 34
    pw, ph = width - left - right, height - top - bottom
    n = len(points)

    def x(i: int) -> float:
        return left + (pw * i / (n - 1) if n > 1 else pw / 2)

    def y(s: float) -> float:
        return top + ph * (1 - min(max(s, 0.0), 1.0))

    bands = []
    if thresholds:
        flag, red = thresholds
        for lo, hi, level in ((red, 1.0, "red"), (flag, red, "yellow"), (0.0, flag, "green")):
            if hi > lo:
                bands.append({"x": left, "y": y(hi), "w": pw, "h": y(lo) - y(hi), "level": level})
    grid = [{"y": y(g), "label": pct(g)} for g in (0.0, 0.25, 0.5, 0.75, 1.0)]
    step = max(1, math.ceil(n / 6))  # at most about 6 period labels
    dots = []
    for i, p in enumerate(points):
        dots.append(
            {
                "cx": round(x(i), 1),
                "cy": round(y(p["score"]), 1),
                "level": p["level"],
                "label": pct(p["score"]),
                "period": p["period"],
                "show_period": i % step == 0 or i == n - 1,
                "anchor": "end" if n > 1 and i == n - 1 else "middle",
                "label_y": round(y(p["score"]) - 8 if p["score"] < 0.85 else y(p["score"]) + 16, 1),
            }
        )
    return {
        "width": width,
        "height": height,
        "left": left,
        "right": width - right,
        "bottom": top + ph,
        "bands": bands,
        "grid": grid,
        "line": " ".join(f"{d['cx']},{d['cy']}" for d in dots),
        "dots": dots,
    }


def waterfall(contributions: dict[str, Any] | None, lang: str, k: int = 8) -> dict[str, Any] | None:
    """Geometry of the contribution waterfall (viewBox 360 wide), from the base rate to this household.

    Bars are in calibrated log-odds (they add up exactly); the axis and the
    labels at both ends are probabilities. The ``k`` largest contributions get
    a bar each, the rest one bar together.
    """
    if not contributions or not contributions.get("values"):
        return None
    base = float(contributions["base"])
    values = {f: float(v) for f, v in contributions["values"].items() if v is not None}
    ranked = sorted(values.items(), key=lambda kv: (-abs(kv[1]), kv[0]))
    top = [(f, v) for f, v in ranked[:k] if v != 0.0]
    rest = ranked[len(top) :]
    steps = [(feature_label(f, lang), v, f) for f, v in top]
    rest_sum = sum(v for _, v in rest)
    if rest and abs(rest_sum) > 1e-9:
        steps.append((words(lang)["others"].format(n=len(rest)), rest_sum, None))
    end = base + sum(values.values())

    width, row_h, top_pad = 360, 26, 6
    label_w, x0, x1 = 138, 146, 346
    path = [base]
    for _, v, _ in steps:
        path.append(path[-1] + v)
    lo, hi = min(path), max(path)
    span = max(hi - lo, 1.0)
    lo, hi = lo - 0.08 * span, hi + 0.08 * span

    def x(logit: float) -> float:
        return round(x0 + (x1 - x0) * (logit - lo) / (hi - lo), 1)

    rows = []
    y = top_pad
    rows.append({"kind": "base", "y": y, "label": words(lang)["base"], "x": x(base),
                 "value": pct(_sigmoid(base))})  # fmt: skip
    y += row_h
    start = base
    for label, v, feature in steps:
        a, b = x(start), x(start + v)
        rows.append(
            {
                "kind": "up" if v > 0 else "down",
                "y": y,
                "label": label,
                "x": min(a, b),
                "w": max(abs(b - a), 1.5),
                "from_x": a,
                "to_x": b,
                "title": f"{label}: {words(lang)['up' if v > 0 else 'down']}",
                "feature": feature,
            }
        )
        start += v
        y += row_h
    rows.append({"kind": "final", "y": y, "label": words(lang)["final"], "x": x(end),
                 "value": pct(_sigmoid(end))})  # fmt: skip
    height = y + row_h + 22
    ticks, last_x = [], -100.0
    for p in (0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99):
        lp = _logit(p)
        if lo <= lp <= hi and x(lp) - last_x >= 34:
            ticks.append({"x": x(lp), "label": pct(p, 1 if p < 0.01 else 0)})
            last_x = x(lp)
    up = [label_ for label_, v, f in steps if v > 0 and f][:3]
    down = [label_ for label_, v, f in steps if v < 0 and f][:3]
    return {
        "width": width,
        "height": height,
        "label_x": label_w,
        "x0": x0,
        "x1": x1,
        "row_h": row_h,
        "bar_h": row_h - 10,
        "rows": rows,
        "axis_y": y + row_h - 4,
        "ticks": ticks,
        "base_p": pct(_sigmoid(base)),
        "end_p": pct(_sigmoid(end)),
        "up": up,
        "down": down,
    }
