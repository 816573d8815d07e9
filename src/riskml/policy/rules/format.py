"""Formatting for people: numbers as caseworkers read them and rule messages.

Message templates hold ``{value}``, ``{threshold}``, ``{factor}`` and
field/derived value names; :func:`render_message` fills them in.
"""

from __future__ import annotations

import functools
import math
import string
from collections.abc import Callable

from riskml.policy.rules.values import VALUES, Kind

__all__ = [
    "TEMPLATE_EXTRAS",
    "fmt_factor",
    "format_value",
    "render_message",
    "template_fields",
    "template_names",
]

TEMPLATE_EXTRAS = ("value", "threshold", "factor")


def fmt_factor(f: float) -> str:
    return "" if f is None or not math.isfinite(f) else f"{f:g}"


def format_value(v: float | None, kind: Kind, lang: str, extra: int = 0) -> str:
    """Numbers as caseworkers read them: whole yuan with separators, shares as percent.

    ``extra`` adds decimals (used when a value would otherwise print the same as
    its threshold, e.g. 5,999.6 against 6,000).
    """
    if v is None or math.isnan(v):
        return "缺失" if lang == "zh" else "missing"
    if kind == "flag":
        yes = v >= 0.5
        return ("是" if yes else "否") if lang == "zh" else ("yes" if yes else "no")
    if math.isinf(v):
        if kind == "share" and v > 0:
            return "纯收入≤0" if lang == "zh" else "income ≤ 0"
        return "∞" if v > 0 else "-∞"
    suffix = ""
    if kind == "share":
        v, suffix = v * 100, "%"
        decimals = (0 if abs(v - round(v)) < 1e-9 else 1) + extra
    elif kind in ("money", "count"):
        decimals = extra
    else:
        decimals = (0 if abs(v - round(v)) < 1e-9 else 1) + extra
    if round(v, decimals) == 0:
        v = 0.0  # never "-0"
    return f"{v:,.{decimals}f}{suffix}"


def template_names(template: str) -> list[str]:
    return [f for _, f, _, _ in string.Formatter().parse(template) if f]


@functools.lru_cache(maxsize=1024)
def template_fields(template: str) -> tuple[str, ...]:
    """Placeholders of a validated template other than value/threshold/factor (cached)."""
    return tuple(n for n in dict.fromkeys(template_names(template)) if n not in TEMPLATE_EXTRAS)


def render_message(
    tmpl: str,
    lang: str,
    kind: Kind,
    v: float,
    t: float,
    f: float,
    field_value: Callable[[str], tuple[float, bool]],
) -> str:
    """A rule's message in ``lang`` with its value, threshold and factor filled in.

    ``kind`` is the kind of the rule's measured condition; ``field_value(name)``
    gives (value, known) of any other placeholder of the template.
    """
    vs, ts = format_value(v, kind, lang), format_value(t, kind, lang)
    if vs == ts and v != t and math.isfinite(v):  # 5,999.6 vs 6,000: show digits that differ
        for extra in (1, 2, 3):
            vs, ts = format_value(v, kind, lang, extra), format_value(t, kind, lang, extra)
            if vs != ts:
                break
    values: dict[str, str] = {"value": vs, "threshold": ts, "factor": fmt_factor(f)}
    for name in template_fields(tmpl):
        if name not in values:
            x, known = field_value(name)
            values[name] = (
                format_value(x, VALUES[name].kind, lang)
                if known
                else ("缺失" if lang == "zh" else "missing")
            )
    return tmpl.format_map(values)
