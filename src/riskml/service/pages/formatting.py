"""Values as the pages show them: China time, percentages, record facts, rule values."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from riskml.service import state
from riskml.service.pages.words import words

CHINA_TZ = timezone(timedelta(hours=8))  # no daylight saving


def china_time(iso: str | None, with_time: bool = True) -> str:
    """A stored UTC timestamp as China time (``2026-11-03 14:05``), or "—"."""
    if not iso:
        return "—"
    try:
        dt = datetime.fromisoformat(str(iso))
    except ValueError:
        return str(iso)[:16]
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    local = dt.astimezone(CHINA_TZ)
    return local.strftime("%Y-%m-%d %H:%M" if with_time else "%Y-%m-%d")


def pct(p: float | None, decimals: int = 0) -> str:
    if p is None or not math.isfinite(p):
        return "—"
    return f"{p * 100:.{decimals}f}%"


def fact_value(value: Any, kind: str, lang: str) -> str:
    w = words(lang)
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return w["unknown"]
    if kind == "flag":
        return w["yes"] if value else w["no"]
    if kind == "yuan":
        return f"{value:,.0f} {w['yuan']}"
    if kind == "persons":
        return f"{value:.0f} {w['persons']}".strip()
    return f"{value:.0f}" if isinstance(value, (int, float)) else str(value)


def rule_value(value: Any, rule_id: str, lang: str) -> str:
    """A rule's measured value or threshold as caseworkers read it (percent, yuan, yes/no)."""
    if value is None:
        return "—"
    kind = _rule_kind(rule_id)
    if kind == "flag":
        return words(lang)["yes" if value >= 0.5 else "no"]
    if kind == "share":
        return f"{value * 100:.0f}%"
    if kind == "money":
        return f"{value:,.0f} {words(lang)['yuan']}"
    if float(value).is_integer():
        return f"{value:,.0f}"
    return f"{value:,.2f}"


def _rule_kind(rule_id: str) -> str | None:
    from riskml.policy.rules import VALUES

    try:
        rule = state.current().ruleset.get(rule_id)
    except (KeyError, RuntimeError):
        return None
    spec = VALUES.get(rule.condition.value)
    return spec.kind if spec else None
