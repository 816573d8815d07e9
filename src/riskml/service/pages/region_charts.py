"""Geometry of the regional pages' inline SVG charts: sparklines, risk-type bars, mix strips.

Pure functions of the numbers ``riskml.regions.view`` picks; the templates draw the shapes
(no JavaScript, no inline style: the pages' CSP allows neither).
"""

from __future__ import annotations

from typing import Any

from riskml.policy.risk_types import RISK_TYPE_CODES
from riskml.service.pages.words import risk_type_name


def _num(x: float) -> str:
    return f"{x:.1f}"


def sparkline(series: list[dict[str, Any]], width: int = 120, height: int = 32) -> dict[str, Any] | None:  # fmt: skip
    """The expected count over the periods as a line in its 90% band (None without 2 points).

    ``series``: ``riskml.regions.view.trends`` of one area (``expected``, ``low``, ``high``
    per period; None where the area had no row)."""
    points = [(i, s) for i, s in enumerate(series) if s["expected"] is not None]
    if len(points) < 2:
        return None
    pad = 3
    top = max(max(float(s["high"] or 0), float(s["expected"])) for _, s in points) or 1.0
    n = len(series)

    def x(i: int) -> float:
        return pad + (width - 2 * pad) * i / max(n - 1, 1)

    def y(v: float) -> float:
        return pad + (height - 2 * pad) * (1 - float(v) / top)

    line = " ".join(f"{_num(x(i))},{_num(y(s['expected']))}" for i, s in points)
    upper = [f"{_num(x(i))},{_num(y(s['high'] or 0))}" for i, s in points]
    lower = [f"{_num(x(i))},{_num(y(s['low'] or 0))}" for i, s in reversed(points)]
    last_i, last = points[-1]
    first = points[0][1]
    rising = float(last["expected"]) > float(first["expected"])
    title = " → ".join(f"{s['period']}: {float(s['expected']):.1f}" for _, s in points)
    return {
        "width": width,
        "height": height,
        "line": line,
        "band": " ".join(upper + lower),
        "cx": _num(x(last_i)),
        "cy": _num(y(last["expected"])),
        "trend": "up" if rising else "flat",
        "title": title,
    }


def risk_bars(mix: list[dict[str, Any]], lang: str, words: dict[str, str]) -> dict[str, Any] | None:  # fmt: skip
    """Horizontal bars per risk type with any household: flagged (dark) over monitored (light).

    ``mix``: ``riskml.regions.view.risk_mix``. None when every count is 0."""
    rows = [m for m in mix if m["flagged"] or m["monitored"]]
    if not rows:
        return None
    rows.sort(key=lambda m: (-m["flagged"], -m["monitored"], RISK_TYPE_CODES.index(m["risk_type"])))  # fmt: skip
    width, label_w, value_w, row_h = 340, 92, 40, 26
    bar_w = width - label_w - value_w
    top = max(max(m["flagged"], m["monitored"]) for m in rows)
    out = []
    for j, m in enumerate(rows):
        y = 4 + j * row_h
        name = risk_type_name(m["risk_type"], lang)
        out.append(
            {
                "y": y,
                "label": name,
                "label_y": y + 15,
                "flagged_w": _num(max(bar_w * m["flagged"] / top, 1.0 if m["flagged"] else 0.0)),
                "monitored_w": _num(
                    max(bar_w * m["monitored"] / top, 1.0 if m["monitored"] else 0.0)
                ),
                "flagged": m["flagged"],
                "monitored": m["monitored"],
                "flagged_y": y + 2,
                "monitored_y": y + 12,
                "value_x": width - value_w + 4,
                "title": f"{name}: {words['bar_flagged']} {m['flagged']}, {words['bar_monitored']} {m['monitored']}",  # fmt: skip
                "risk_type": m["risk_type"],
            }
        )
    return {"width": width, "height": 8 + len(rows) * row_h, "x0": label_w, "rows": out}


def mix_strip(mix: list[dict[str, Any]], lang: str, width: int = 100, height: int = 12) -> dict[str, Any] | None:  # fmt: skip
    """One stacked strip of the flagged households' risk types (a segment per type, coloured
    by its place in ``RISK_TYPE_CODES``); None when nobody is flagged."""
    total = sum(m["flagged"] for m in mix)
    if not total:
        return None
    x = 0.0
    segments = []
    for m in mix:
        if not m["flagged"]:
            continue
        w = width * m["flagged"] / total
        segments.append(
            {
                "x": _num(x),
                "w": _num(w),
                "cls": f"rt-{RISK_TYPE_CODES.index(m['risk_type'])}",
                "title": f"{risk_type_name(m['risk_type'], lang)} {m['flagged']}",
            }
        )
        x += w
    return {"width": width, "height": height, "segments": segments}
