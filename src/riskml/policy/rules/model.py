"""The rule model: operators and levels, and the Condition, Group, Override and Rule classes."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal

from riskml.data.periods import month_text
from riskml.policy.rules.format import fmt_factor, format_value, template_names
from riskml.policy.rules.values import VALUES, Kind

__all__ = [
    "FLAG_OPS",
    "LEVELS",
    "LEVEL_WEIGHTS",
    "NUMERIC_OPS",
    "OPS",
    "Condition",
    "Group",
    "Override",
    "Rule",
]

# --------------------------------------------------------------------------- vocabulary
OPS: dict[str, str] = {
    "lt": "<",
    "le": "≤",
    "gt": ">",
    "ge": "≥",
    "eq": "=",
    "is_true": "is true",
    "is_false": "is false",
}
NUMERIC_OPS = ("lt", "le", "gt", "ge", "eq")
FLAG_OPS = ("is_true", "is_false")
LEVELS = ("red", "yellow")
LEVEL_WEIGHTS = {"red": 3.0, "yellow": 1.0}


@dataclass(frozen=True)
class Condition:
    """One comparison: ``value op threshold`` (or ``value op threshold_ref × factor``)."""

    value: str
    op: str
    threshold: float | None = None
    threshold_ref: str | None = None
    factor: float = 1.0
    name: str | None = None

    @property
    def kind(self) -> Kind:
        return VALUES[self.value].kind

    @property
    def is_flag(self) -> bool:
        return self.op in FLAG_OPS

    def threshold_text(self) -> str:
        if self.is_flag:
            return ""
        if self.threshold_ref is not None:
            f = "" if self.factor == 1 else f"{fmt_factor(self.factor)} × "
            return f"{f}{self.threshold_ref}"
        return format_value(self.threshold, self.kind, "en")

    def describe(self) -> str:
        if self.is_flag:
            return f"{self.value} {OPS[self.op]}"
        return f"{self.value} {OPS[self.op]} {self.threshold_text()}"

    def inputs(self) -> tuple[str, ...]:
        return (self.value,) + ((self.threshold_ref,) if self.threshold_ref else ())


@dataclass(frozen=True)
class Group:
    """Conditions combined with ``all`` (and) or ``any`` (or); may nest."""

    mode: Literal["all", "any"]
    items: tuple[Condition | Group, ...]

    def leaves(self) -> list[Condition]:
        out: list[Condition] = []
        for it in self.items:
            out.extend(it.leaves() if isinstance(it, Group) else [it])
        return out

    def describe(self) -> str:
        joiner = " and " if self.mode == "all" else " or "
        parts = [f"({i.describe()})" if isinstance(i, Group) else i.describe() for i in self.items]
        return joiner.join(parts)

    def map_leaves(self, fn: Any) -> Group:
        return Group(
            self.mode,
            tuple(i.map_leaves(fn) if isinstance(i, Group) else fn(i) for i in self.items),
        )


@dataclass(frozen=True)
class Override:
    """A provincial change to a rule: a threshold, a factor, or switching it on or off."""

    provinces: tuple[str, ...]
    target: str | None = None  # name of an only_if condition; None = the rule's condition
    threshold: float | None = None
    threshold_ref: str | None = None
    factor: float | None = None
    enabled: bool | None = None
    start: int | None = None  # month index, inclusive
    end: int | None = None

    def applies(self, province: str, month: int) -> bool:
        return province in self.provinces and _in_range(month, self.start, self.end)

    def changes_threshold(self) -> bool:
        return (
            self.threshold is not None or self.threshold_ref is not None or self.factor is not None
        )

    def merge(self, cond: Condition) -> Condition:
        """The condition with this override's threshold (merged with the national default)."""
        if self.threshold is not None:
            return replace(cond, threshold=self.threshold, threshold_ref=None, factor=1.0)
        if self.threshold_ref is not None:
            f = 1.0 if self.factor is None else self.factor
            return replace(cond, threshold=None, threshold_ref=self.threshold_ref, factor=f)
        if self.factor is not None:
            return replace(cond, factor=self.factor)
        return cond

    def describe(self) -> str:
        bits = []
        if self.threshold is not None:
            bits.append(f"threshold {self.threshold:g}")
        if self.threshold_ref is not None:
            bits.append(f"threshold_ref {self.threshold_ref}")
        if self.factor is not None:
            bits.append(f"factor {self.factor:g}")
        if self.enabled is not None:
            bits.append("enabled" if self.enabled else "disabled")
        tgt = f" on {self.target}" if self.target else ""
        when = ""
        if self.start is not None or self.end is not None:
            a = month_text(self.start) if self.start is not None else "…"
            b = month_text(self.end) if self.end is not None else "open"
            when = f" ({a} – {b})"
        return f"province {','.join(self.provinces)}{tgt}{when}: {', '.join(bits)}"


@dataclass(frozen=True)
class Rule:
    """One warning rule as loaded from the file (national defaults plus its overrides)."""

    id: str
    risk_type: str
    level: str
    condition: Condition
    only_if: Group | None
    message_zh: str
    message_en: str
    start: int  # month index of effective.from
    end: int | None  # month index of effective.to (inclusive) or open
    weight: float
    enabled: bool = True
    source: str = ""
    risk_type_by_driver: tuple[tuple[str, str], ...] = ()
    overrides: tuple[Override, ...] = ()
    # set by RuleSet.active(): the overrides that were applied
    applied: tuple[str, ...] = field(default=(), compare=False)

    def leaves(self) -> list[Condition]:
        return [self.condition] + (self.only_if.leaves() if self.only_if else [])

    def inputs(self) -> tuple[str, ...]:
        names: list[str] = []
        for c in self.leaves():
            names.extend(c.inputs())
        for f, _ in self.risk_type_by_driver:
            names.extend([f, f"prev_{f}"])
        names.extend(template_names(self.message_zh) + template_names(self.message_en))
        return tuple(dict.fromkeys(n for n in names if n in VALUES))

    def in_force(self, month: int) -> bool:
        return _in_range(month, self.start, self.end)

    def effective_text(self) -> str:
        end = month_text(self.end) if self.end is not None else "open"
        return f"{month_text(self.start)} – {end}"

    def describe(self) -> str:
        s = self.condition.describe()
        return f"{s}, only if {self.only_if.describe()}" if self.only_if else s


def _in_range(month: int, start: int | None, end: int | None) -> bool:
    return (start is None or month >= start) and (end is None or month <= end)
