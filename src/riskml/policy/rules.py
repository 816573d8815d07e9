"""Policy rules: the mechanism's hard warning thresholds, as versioned configuration.

The rules stand beside the model and are never replaced by it. They live in a
YAML file (``data/policy/rules.yaml`` by default; the format is described in
``data/policy/README.md``) that a policy officer can change without touching
code. The file is validated strictly on load: any mistake raises
:class:`RulesFileError` naming the rule and the key.

Each rule has one measured **condition** (a value compared with a threshold:
the value and threshold it reports and its messages show) and optional
**only_if** conditions that must also hold (``all``/``any`` lists). Thresholds
are numbers or a reference value times a factor (``threshold_ref:
dibao_line, factor: 1.5``), and may be overridden by province and date.

Missing is never zero. A condition whose inputs are missing is *unknown*;
conditions combine in three-valued logic (``all`` is false as soon as one
part is known false, ``any`` true as soon as one part is known true). A rule
whose outcome stays unknown does not fire and is listed as not evaluated.

Shares (``medical_share``, ``education_share``, ``loss_share``,
``rigid_share``) are spending divided by household net income. When net
income is zero or negative, any positive spending is above every share: the
share is +inf (it fires any ``gt``/``ge`` share rule), the messages show it as
"income ≤ 0" and the reported value is ``None``. Zero spending is a share of 0.

``income_drop`` is (previous net income − net income) / previous net income,
known only when both are known and the previous net income is positive.

Severity (for ranking, and the rules-only baseline): the sum over fired rules
of ``weight × (1 + excess)``, where ``weight`` is the rule's weight (default 3
for red, 1 for yellow) and ``excess`` is how far the value is past the
threshold relative to the threshold, ``|value − threshold| / |threshold|``,
capped to [0, 1] (flag conditions and ``eq`` have excess 0). A red rule thus
adds 3 to 6, a yellow rule 1 to 2; a household with nothing fired has 0.
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import yaml

from riskml import config
from riskml.data.columns import Columns, as_columns
from riskml.data.label import INCOME_FIELDS
from riskml.data.periods import month_text, parse_date_month
from riskml.data.reference import ReferenceLines, default_lines
from riskml.data.regions import PROVINCES
from riskml.data.schema import FIELD_NAMES, FIELDS, records_to_frame
from riskml.policy.risk_types import RISK_TYPE_CODES, RISK_TYPES

__all__ = [
    "LEVELS",
    "LEVEL_WEIGHTS",
    "OPS",
    "VALUES",
    "Condition",
    "Group",
    "Override",
    "Rule",
    "RuleResults",
    "RuleSet",
    "RulesFileError",
    "default_ruleset",
    "evaluate",
    "evaluate_record",
    "previous_frame",
    "rules_baseline",
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
MAX_SHARE_THRESHOLD = 5.0  # shares are fractions: 0.5 means 50 %; 20 surely meant 20 %

Kind = Literal["money", "share", "count", "number", "flag"]


@dataclass(frozen=True)
class ValueSpec:
    """A value a condition may test: a record field or a derived value."""

    name: str
    kind: Kind
    description: str
    derived: bool


def _field_kind(f: Any) -> Kind:
    if f.kind == "bool":
        return "flag"
    if f.kind == "int":
        return "count"
    return "money" if f.unit and "yuan" in f.unit else "number"


_DERIVED: tuple[tuple[str, Kind, str], ...] = (
    ("net_income", "money", "household net income: the four income fields summed"),
    ("pc_net_income", "money", "per-capita net income: net_income / household_size"),
    ("monitoring_line", "money", "monitoring line of the province and year of period"),
    ("dibao_line", "money", "rural dibao line of the province and year of period"),
    ("medical_share", "share", "medical_expense / net_income"),
    ("education_share", "share", "education_expense / net_income"),
    ("loss_share", "share", "disaster_loss / net_income"),
    ("rigid_share", "share", "(medical_expense + education_expense) / net_income"),
    (
        "pc_net_income_after_rigid",
        "money",
        "(net_income − medical_expense − education_expense) / household_size",
    ),
    (
        "prev_net_income",
        "money",
        "net income of the previous period (latest earlier record within 12 months)",
    ),
    ("prev_pc_net_income", "money", "per-capita net income of the previous period"),
    ("income_drop", "share", "(prev_net_income − net_income) / prev_net_income"),
    ("pc_income_drop", "share", "(prev_pc_net_income − pc_net_income) / prev_pc_net_income"),
)

_RECORD_VALUES = [f for f in FIELDS if f.kind != "str"]
VALUES: dict[str, ValueSpec] = {
    **{name: ValueSpec(name, kind, desc, True) for name, kind, desc in _DERIVED},
    **{f.name: ValueSpec(f.name, _field_kind(f), f.description, False) for f in _RECORD_VALUES},
    **{
        f"prev_{f.name}": ValueSpec(
            f"prev_{f.name}", _field_kind(f), f"{f.name} of the previous period", True
        )
        for f in _RECORD_VALUES
    },
}

_TEMPLATE_EXTRAS = ("value", "threshold", "factor")
_ID_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


# --------------------------------------------------------------------------- errors
class RulesFileError(ValueError):
    """A rules file that cannot be used; the message names the rule and the key."""

    def __init__(
        self,
        message: str,
        *,
        source: str = "<rules>",
        rule_id: str | None = None,
        key: str | None = None,
    ):
        self.source = source
        self.rule_id = rule_id
        self.key = key
        self.detail = message
        where = []
        if rule_id is not None:
            where.append(f"rule {rule_id!r}")
        if key is not None:
            where.append(f"key {key!r}")
        prefix = f"{source}: " + (", ".join(where) + ": " if where else "")
        super().__init__(prefix + message)


# --------------------------------------------------------------------------- model
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
            f = "" if self.factor == 1 else f"{_fmt_factor(self.factor)} × "
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
        names.extend(_template_names(self.message_zh) + _template_names(self.message_en))
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


# --------------------------------------------------------------------------- loading
class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (a silent overwrite otherwise)."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _template_names(template: str) -> list[str]:
    return [f for _, f, _, _ in string.Formatter().parse(template) if f]


@functools.lru_cache(maxsize=1024)
def _template_fields(template: str) -> tuple[str, ...]:
    """Placeholders of a validated template other than value/threshold/factor (cached)."""
    return tuple(n for n in dict.fromkeys(_template_names(template)) if n not in _TEMPLATE_EXTRAS)


class _Parser:
    """Strict validation of the parsed YAML into Rule objects."""

    RULE_KEYS = {
        "id",
        "risk_type",
        "level",
        "condition",
        "only_if",
        "message_zh",
        "message_en",
        "effective",
        "weight",
        "enabled",
        "source",
        "risk_type_by_driver",
        "overrides",
    }
    REQUIRED = ("id", "risk_type", "level", "condition", "message_zh", "message_en", "effective")
    COND_KEYS = {"value", "op", "threshold", "threshold_ref", "factor", "name"}
    OVERRIDE_KEYS = {
        "province",
        "target",
        "threshold",
        "threshold_ref",
        "factor",
        "enabled",
        "effective",
    }

    def __init__(self, source: str):
        self.source = source
        self.rule_id: str | None = None

    def error(self, key: str | None, message: str) -> RulesFileError:
        return RulesFileError(message, source=self.source, rule_id=self.rule_id, key=key)

    # ---------------------------------------------------------------- top level
    def parse(self, data: Any) -> tuple[str, list[Rule]]:
        if not isinstance(data, dict):
            raise self.error(None, "the file must be a mapping with 'version' and 'rules'")
        unknown = sorted(set(map(str, data)) - {"version", "rules", "description"})
        if unknown:
            raise self.error(unknown[0], "unknown top-level key; use version, rules, description")
        if "version" not in data or data["version"] in (None, ""):
            raise self.error("version", "missing: the file needs a version string")
        version = data["version"]
        if not isinstance(version, str | int | float) or isinstance(version, bool):
            raise self.error("version", f"must be a string, got {version!r}")
        rules_raw = data.get("rules")
        if not isinstance(rules_raw, list) or not rules_raw:
            raise self.error("rules", "must be a non-empty list of rules")
        rules: list[Rule] = []
        seen: set[str] = set()
        for i, raw in enumerate(rules_raw):
            self.rule_id = f"#{i + 1}"
            rule = self.rule(raw)
            if rule.id in seen:
                raise self.error("id", f"duplicate rule id {rule.id!r}")
            seen.add(rule.id)
            rules.append(rule)
        self.rule_id = None
        return str(version), rules

    # ---------------------------------------------------------------- one rule
    def rule(self, raw: Any) -> Rule:
        if not isinstance(raw, dict):
            raise self.error(None, f"each rule must be a mapping, got {raw!r}")
        rid = raw.get("id")
        if isinstance(rid, str) and _ID_RE.fullmatch(rid):
            self.rule_id = rid
        elif "id" in raw:
            raise self.error(
                "id", f"must be lower-case letters, digits and _ (start with a letter), got {rid!r}"
            )
        for key in raw:
            if key not in self.RULE_KEYS:
                raise self.error(
                    str(key), f"unknown key; a rule may have {', '.join(sorted(self.RULE_KEYS))}"
                )
        for key in self.REQUIRED:
            if key not in raw or raw[key] is None:
                raise self.error(key, "missing")
        risk_type = raw["risk_type"]
        if risk_type not in RISK_TYPES:
            raise self.error(
                "risk_type", f"unknown risk type {risk_type!r}; use one of {', '.join(RISK_TYPES)}"
            )
        level = raw["level"]
        if level not in LEVELS:
            raise self.error("level", f"must be red or yellow, got {level!r}")
        weight = LEVEL_WEIGHTS[level]
        if "weight" in raw:
            weight = self.number(raw["weight"], "weight")
            if weight <= 0:
                raise self.error("weight", f"must be positive, got {weight:g}")
        enabled = raw.get("enabled", True)
        if not isinstance(enabled, bool):
            raise self.error("enabled", f"must be true or false, got {enabled!r}")
        source = raw.get("source", "")
        if not isinstance(source, str):
            raise self.error("source", "must be text")

        cond = self.condition(raw["condition"], "condition", allow_name=False)
        only_if = self.group(raw["only_if"], "only_if") if raw.get("only_if") is not None else None
        names = [c.name for c in (only_if.leaves() if only_if else []) if c.name]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise self.error("only_if", f"condition name {sorted(dup)[0]!r} is used twice")
        start, end = self.effective(raw["effective"], "effective", require_from=True)
        assert start is not None

        extras = set(_TEMPLATE_EXTRAS) | set(VALUES)
        for key in ("message_zh", "message_en"):
            self.template(raw[key], key, cond, extras)

        drivers: list[tuple[str, str]] = []
        if raw.get("risk_type_by_driver") is not None:
            spec = raw["risk_type_by_driver"]
            if not isinstance(spec, dict) or not spec:
                raise self.error(
                    "risk_type_by_driver",
                    "must map income fields to risk types, e.g. {income_wage: unstable_employment}",
                )
            for f, rt in spec.items():
                key = f"risk_type_by_driver.{f}"
                if f not in VALUES or VALUES[f].derived or VALUES[f].kind in ("flag",):
                    raise self.error(key, f"unknown field {f!r}; use a numeric record field")
                if rt not in RISK_TYPES:
                    raise self.error(key, f"unknown risk type {rt!r}")
                drivers.append((str(f), str(rt)))

        overrides: list[Override] = []
        if raw.get("overrides") is not None:
            if not isinstance(raw["overrides"], list):
                raise self.error("overrides", "must be a list of provincial overrides")
            named = {c.name: c for c in (only_if.leaves() if only_if else []) if c.name}
            for j, ov in enumerate(raw["overrides"]):
                overrides.append(self.override(ov, f"overrides[{j}]", cond, named))

        return Rule(
            id=self.rule_id or "",
            risk_type=risk_type,
            level=level,
            condition=cond,
            only_if=only_if,
            message_zh=raw["message_zh"],
            message_en=raw["message_en"],
            start=start,
            end=end,
            weight=weight,
            enabled=enabled,
            source=source.strip(),
            risk_type_by_driver=tuple(drivers),
            overrides=tuple(overrides),
        )

    # ---------------------------------------------------------------- pieces
    def number(self, v: Any, key: str) -> float:
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise self.error(key, f"must be a number, got {v!r}")
        if not math.isfinite(v):
            raise self.error(key, f"must be a finite number, got {v!r}")
        return float(v)

    def value_name(self, v: Any, key: str) -> str:
        if not isinstance(v, str) or v not in VALUES:
            derived = ", ".join(n for n, s in VALUES.items() if s.derived and "prev_" not in n)
            raise self.error(
                key,
                f"unknown field {v!r}; use a record field (see riskml schema), prev_<field>, "
                f"or a derived value: {derived}",
            )
        return v

    def condition(self, raw: Any, key: str, allow_name: bool = True) -> Condition:
        if not isinstance(raw, dict):
            raise self.error(key, f"must be a mapping with value and op, got {raw!r}")
        for k in raw:
            if k not in self.COND_KEYS or (k == "name" and not allow_name):
                allowed = sorted(self.COND_KEYS - ({"name"} if not allow_name else set()))
                raise self.error(f"{key}.{k}", f"unknown key; use {', '.join(allowed)}")
        if "value" not in raw:
            raise self.error(f"{key}.value", "missing")
        if "op" not in raw:
            raise self.error(f"{key}.op", "missing")
        value = self.value_name(raw["value"], f"{key}.value")
        op = raw["op"]
        if op not in OPS:
            raise self.error(f"{key}.op", f"unknown operator {op!r}; use one of {', '.join(OPS)}")
        kind = VALUES[value].kind
        name = raw.get("name")
        if name is not None and not (isinstance(name, str) and _ID_RE.fullmatch(name)):
            raise self.error(f"{key}.name", f"must be a lower-case identifier, got {name!r}")
        if op in FLAG_OPS:
            if kind != "flag":
                raise self.error(
                    f"{key}.op",
                    f"{op} needs a true/false field; {value} is a number (use lt, gt, …)",
                )
            for k in ("threshold", "threshold_ref", "factor"):
                if k in raw:
                    raise self.error(f"{key}.{k}", f"not used with {op}")
            return Condition(value, op, name=name)
        if kind == "flag":
            raise self.error(
                f"{key}.op", f"{op} needs a number; {value} is true/false (use is_true or is_false)"
            )
        cond = self.threshold_spec(raw, key, Condition(value, op, name=name))
        return cond

    def threshold_spec(self, raw: Mapping[str, Any], key: str, cond: Condition) -> Condition:
        has_t = raw.get("threshold") is not None
        has_r = raw.get("threshold_ref") is not None
        if has_t and has_r:
            raise self.error(f"{key}.threshold", "give threshold or threshold_ref, not both")
        if not has_t and not has_r:
            raise self.error(
                f"{key}.threshold", f"missing threshold (or threshold_ref) for {cond.op}"
            )
        if has_t:
            if "factor" in raw:
                raise self.error(f"{key}.factor", "factor is only used with threshold_ref")
            t = self.number(raw["threshold"], f"{key}.threshold")
            self.check_share(cond, t, f"{key}.threshold")
            return replace(cond, threshold=t, threshold_ref=None, factor=1.0)
        ref = self.value_name(raw["threshold_ref"], f"{key}.threshold_ref")
        self.check_ref(cond, ref, f"{key}.threshold_ref")
        factor = self.number(raw.get("factor", 1.0), f"{key}.factor")
        if factor <= 0:
            raise self.error(f"{key}.factor", f"must be positive, got {factor:g}")
        return replace(cond, threshold=None, threshold_ref=ref, factor=factor)

    def check_share(self, cond: Condition, t: float, key: str) -> None:
        if cond.kind == "share" and not (0 <= t <= MAX_SHARE_THRESHOLD):
            raise self.error(
                key,
                f"{cond.value} is a share written as a fraction (0.5 = 50%); "
                f"got {t:g}, expected 0 to {MAX_SHARE_THRESHOLD:g}",
            )

    def check_ref(self, cond: Condition, ref: str, key: str) -> None:
        rk, vk = VALUES[ref].kind, cond.kind
        if rk == "flag":
            raise self.error(key, f"{ref} is true/false, not a number")
        if rk != vk and {rk, vk} != {"count", "number"}:
            raise self.error(key, f"{cond.value} ({vk}) cannot be compared with {ref} ({rk})")

    def group(self, raw: Any, key: str) -> Group:
        if isinstance(raw, list):
            raw = {"all": raw}
        if not isinstance(raw, dict):
            raise self.error(key, "must be a condition, a list, or {all: [...]} / {any: [...]}")
        if set(raw) & {"all", "any"}:
            if len(raw) != 1:
                raise self.error(key, "a group has exactly one key: all or any")
            mode = next(iter(raw))
            items = raw[mode]
            if not isinstance(items, list) or not items:
                raise self.error(f"{key}.{mode}", "must be a non-empty list of conditions")
            parsed: list[Condition | Group] = []
            for j, it in enumerate(items):
                sub = f"{key}.{mode}[{j}]"
                if isinstance(it, dict) and set(it) & {"all", "any"}:
                    parsed.append(self.group(it, sub))
                else:
                    parsed.append(self.condition(it, sub))
            return Group(mode, tuple(parsed))
        return Group("all", (self.condition(raw, key),))

    def effective(self, raw: Any, key: str, require_from: bool) -> tuple[int | None, int | None]:
        if not isinstance(raw, dict):
            raise self.error(key, "must be a mapping {from: YYYY-MM, to: YYYY-MM}")
        for k in raw:
            if k not in ("from", "to"):
                raise self.error(f"{key}.{k}", "unknown key; use from and to")
        if require_from and raw.get("from") is None:
            raise self.error(f"{key}.from", "missing: the month the rule takes effect")
        out: list[int | None] = []
        for k in ("from", "to"):
            v = raw.get(k)
            if v is None:
                out.append(None)
                continue
            try:
                out.append(parse_date_month(v))
            except ValueError as exc:
                raise self.error(f"{key}.{k}", f"bad date: {exc}") from None
        start, end = out
        if start is not None and end is not None and end < start:
            raise self.error(f"{key}.to", "is before from")
        return start, end

    def template(self, tmpl: Any, key: str, cond: Condition, allowed: set[str]) -> None:
        if not isinstance(tmpl, str) or not tmpl.strip():
            raise self.error(key, "must be a non-empty text")
        try:
            parts = list(string.Formatter().parse(tmpl))
        except ValueError as exc:
            raise self.error(key, f"bad placeholder braces: {exc}") from None
        used = set()
        for _, fname, spec, conv in parts:
            if fname is None:
                continue
            if fname == "" or fname not in allowed:
                raise self.error(
                    key,
                    f"unknown placeholder {{{fname}}}; use {{value}}, {{threshold}}, {{factor}} "
                    "or a field/derived value name",
                )
            if spec or conv:
                raise self.error(
                    key, f"placeholder {{{fname}}} must be plain: numbers are formatted for you"
                )
            used.add(fname)
        if not cond.is_flag:
            for need in ("value", "threshold"):
                if need not in used:
                    raise self.error(
                        key, f"must show the measured value and the threshold: add {{{need}}}"
                    )
        if "factor" in used and cond.threshold_ref is None:
            raise self.error(key, "{factor} is only defined for a threshold_ref condition")

    def override(
        self, raw: Any, key: str, cond: Condition, named: dict[str, Condition]
    ) -> Override:
        if not isinstance(raw, dict):
            raise self.error(key, "must be a mapping with province and what it changes")
        for k in raw:
            if k not in self.OVERRIDE_KEYS:
                raise self.error(
                    f"{key}.{k}", f"unknown key; use {', '.join(sorted(self.OVERRIDE_KEYS))}"
                )
        prov = raw.get("province")
        provs = prov if isinstance(prov, list) else [prov]
        if prov is None or not provs:
            raise self.error(f"{key}.province", "missing: the two-digit province code")
        codes: list[str] = []
        for p in provs:
            code = f"{p:02d}" if isinstance(p, int) and not isinstance(p, bool) else p
            if not isinstance(code, str) or code not in PROVINCES:
                raise self.error(
                    f"{key}.province", f"unknown province code {p!r}; use two digits, e.g. '53'"
                )
            codes.append(code)
        target = raw.get("target")
        base = cond
        if target is not None:
            if target not in named:
                raise self.error(
                    f"{key}.target",
                    f"no only_if condition named {target!r} in this rule"
                    + (f"; names: {', '.join(named)}" if named else ""),
                )
            base = named[target]
        enabled = raw.get("enabled")
        if enabled is not None and not isinstance(enabled, bool):
            raise self.error(f"{key}.enabled", f"must be true or false, got {enabled!r}")
        threshold = threshold_ref = factor = None
        if any(raw.get(k) is not None for k in ("threshold", "threshold_ref", "factor")):
            if base.is_flag:
                raise self.error(f"{key}.threshold", f"{base.value} {base.op} has no threshold")
            if raw.get("threshold") is not None and raw.get("threshold_ref") is not None:
                raise self.error(f"{key}.threshold", "give threshold or threshold_ref, not both")
            if raw.get("threshold") is not None:
                if raw.get("factor") is not None:
                    raise self.error(f"{key}.factor", "factor is only used with threshold_ref")
                threshold = self.number(raw["threshold"], f"{key}.threshold")
                self.check_share(base, threshold, f"{key}.threshold")
            elif raw.get("threshold_ref") is not None:
                threshold_ref = self.value_name(raw["threshold_ref"], f"{key}.threshold_ref")
                self.check_ref(base, threshold_ref, f"{key}.threshold_ref")
            if raw.get("factor") is not None:
                factor = self.number(raw["factor"], f"{key}.factor")
                if factor <= 0:
                    raise self.error(f"{key}.factor", f"must be positive, got {factor:g}")
                if threshold_ref is None and base.threshold_ref is None:
                    raise self.error(
                        f"{key}.factor", "the condition has a fixed threshold: set threshold"
                    )
        elif enabled is None:
            raise self.error(
                key, "changes nothing: give threshold, threshold_ref, factor or enabled"
            )
        start = end = None
        if raw.get("effective") is not None:
            start, end = self.effective(raw["effective"], f"{key}.effective", require_from=False)
        return Override(
            provinces=tuple(codes),
            target=target,
            threshold=threshold,
            threshold_ref=threshold_ref,
            factor=factor,
            enabled=enabled,
            start=start,
            end=end,
        )


# --------------------------------------------------------------------------- rule set
@dataclass(frozen=True)
class RuleSet:
    """The rules of one file, with the file's version and a hash of its content."""

    rules: tuple[Rule, ...]
    file_version: str
    content_hash: str
    source: str = "<rules>"

    @property
    def version(self) -> str:
        """``<file version>+<first 8 hex of the content's SHA-256>``: which rules a decision used."""
        return f"{self.file_version}+{self.content_hash[:8]}"

    @property
    def rule_ids(self) -> tuple[str, ...]:
        return tuple(r.id for r in self.rules)

    def get(self, rule_id: str) -> Rule:
        for r in self.rules:
            if r.id == rule_id:
                return r
        raise KeyError(rule_id)

    @classmethod
    def load(cls, path: str | Path | None = None) -> RuleSet:
        p = Path(path) if path is not None else config.POLICY_RULES
        if not p.exists():
            raise RulesFileError("file not found", source=str(p))
        try:
            text = p.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise RulesFileError(f"not UTF-8 text: {exc}", source=str(p)) from None
        return cls.from_text(text, source=str(p))

    @classmethod
    def from_text(cls, text: str, source: str = "<rules>") -> RuleSet:
        try:
            data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass
        except yaml.YAMLError as exc:
            raise RulesFileError(f"not valid YAML: {exc}", source=source) from None
        version, rules = _Parser(source).parse(data)
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        return cls(tuple(rules), version, digest, source)

    def active(self, province_code: str, on_date: Any) -> list[Rule]:
        """The rules in force for a province on a date, with its overrides applied.

        ``province_code`` is two digits (a six-digit county code is accepted);
        ``on_date`` is ``YYYY-MM``, ``YYYY-MM-DD`` or a date; only the month counts.
        Overrides apply in file order, each merged with the national default;
        where several set the same thing, the later one wins.
        """
        prov = str(province_code)[:2]
        month = parse_date_month(on_date)
        out: list[Rule] = []
        for r in self.rules:
            if not r.in_force(month):
                continue
            enabled = r.enabled
            cond, only_if = r.condition, r.only_if
            applied: list[str] = []
            for ov in r.overrides:
                if not ov.applies(prov, month):
                    continue
                applied.append(ov.describe())
                if ov.enabled is not None:
                    enabled = ov.enabled
                if not ov.changes_threshold():
                    continue
                if ov.target is None:
                    cond = ov.merge(r.condition)
                elif only_if is not None:
                    base = {c.name: c for c in r.only_if.leaves()}[ov.target]  # type: ignore[union-attr]
                    merged = ov.merge(base)
                    only_if = only_if.map_leaves(
                        lambda c, t=ov.target, m=merged: m if c.name == t else c
                    )
            if enabled:
                out.append(
                    replace(
                        r, condition=cond, only_if=only_if, overrides=(), applied=tuple(applied)
                    )
                )
        return out


_DEFAULT_RULESET: RuleSet | None = None


def default_ruleset() -> RuleSet:
    """The project's rules file, loaded once per process."""
    global _DEFAULT_RULESET
    if _DEFAULT_RULESET is None:
        _DEFAULT_RULESET = RuleSet.load()
    return _DEFAULT_RULESET


# --------------------------------------------------------------------------- values
class _Context:
    """Values of one batch as float arrays with a 'known' mask, computed on demand and cached."""

    def __init__(
        self,
        df: Columns,
        previous: Columns | None,
        lines: ReferenceLines,
        on: Any,
    ):
        self.df = df
        self.previous = previous
        self.n = len(df)
        self._cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.province = df.province()
        period_month = df.month()
        self.year = period_month // 12
        if on is None:
            self.month = period_month
        else:
            self.month = np.full(self.n, parse_date_month(on), dtype=np.int64)
        self._lines = lines

    def _line_arrays(self) -> None:
        mon, dib = self._lines.line_arrays(self.province, self.year)
        for col, v in (("monitoring_line", mon), ("dibao_line", dib)):
            self._cache[col] = (v, ~np.isnan(v))

    def _column(self, frame: Columns | None, name: str) -> tuple[np.ndarray, np.ndarray]:
        if frame is None or name not in frame:
            return np.full(self.n, np.nan), np.zeros(self.n, dtype=bool)
        v = frame[name]
        return v, ~np.isnan(v)

    def get(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        hit = self._cache.get(name)
        if hit is not None:
            return hit
        out = self._compute(name)
        self._cache[name] = out
        return out

    def _compute(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        if name in ("monitoring_line", "dibao_line"):
            self._line_arrays()
            return self._cache[name]
        if name in FIELD_NAMES and not VALUES[name].derived:
            return self._column(self.df, name)
        if name.startswith("prev_") and name[5:] in FIELD_NAMES:
            return self._column(self.previous, name[5:])
        if name == "net_income":
            return _known(sum(self.get(c)[0] for c in INCOME_FIELDS))
        if name == "pc_net_income":
            return _known(self.get("net_income")[0] / self.get("household_size")[0])
        if name == "prev_net_income":
            return _known(sum(self.get(f"prev_{c}")[0] for c in INCOME_FIELDS))
        if name == "prev_pc_net_income":
            return _known(self.get("prev_net_income")[0] / self.get("prev_household_size")[0])
        if name == "medical_share":
            return _share(self.get("medical_expense")[0], self.get("net_income")[0])
        if name == "education_share":
            return _share(self.get("education_expense")[0], self.get("net_income")[0])
        if name == "loss_share":
            return _share(self.get("disaster_loss")[0], self.get("net_income")[0])
        if name == "rigid_share":
            rigid = self.get("medical_expense")[0] + self.get("education_expense")[0]
            return _share(rigid, self.get("net_income")[0])
        if name == "pc_net_income_after_rigid":
            net = self.get("net_income")[0]
            rigid = self.get("medical_expense")[0] + self.get("education_expense")[0]
            return _known((net - rigid) / self.get("household_size")[0])
        if name == "income_drop":
            return _drop(self.get("net_income")[0], self.get("prev_net_income")[0])
        if name == "pc_income_drop":
            return _drop(self.get("pc_net_income")[0], self.get("prev_pc_net_income")[0])
        raise KeyError(f"no value named {name!r}")  # pragma: no cover (validated on load)


def _known(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    v = np.asarray(v, dtype=np.float64)
    return v, ~np.isnan(v)


def _share(spend: np.ndarray, net: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """spend / net; +inf when net ≤ 0 and spend > 0; 0 when spend is 0; NaN when either is missing."""
    known = ~np.isnan(spend) & ~np.isnan(net)
    out = np.full(spend.shape, np.nan)
    pos = known & (net > 0)
    np.divide(spend, net, out=out, where=pos)
    nonpos = known & ~pos
    out[nonpos & (spend > 0)] = np.inf
    out[nonpos & (spend <= 0)] = 0.0
    return out, known


def _drop(now: np.ndarray, prev: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(prev − now) / prev, known only when both are known and prev > 0."""
    known = ~np.isnan(now) & ~np.isnan(prev) & (prev > 0)
    out = np.full(now.shape, np.nan)
    np.divide(prev - now, prev, out=out, where=known)
    return out, known


# --------------------------------------------------------------------------- evaluation
def _compare(op: str, v: np.ndarray, t: np.ndarray | float) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        if op == "lt":
            return v < t
        if op == "le":
            return v <= t
        if op == "gt":
            return v > t
        if op == "ge":
            return v >= t
        return v == t


def _threshold_array(
    ctx: _Context, cond: Condition, n: int
) -> tuple[np.ndarray | float, np.ndarray | float]:
    """(threshold, factor): scalars for a fixed threshold, arrays for a reference."""
    if cond.threshold_ref is None:
        return float(cond.threshold), np.nan  # type: ignore[arg-type]
    ref = ctx.get(cond.threshold_ref)[0]
    return ref * cond.factor, cond.factor


def _eval_leaf(
    ctx: _Context, rule: Rule, cond: Condition, target: str | None, masks: list[np.ndarray | None]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | float, np.ndarray | float]:
    """(true, known, value, threshold, factor) of one condition with the rule's overrides."""
    v, vk = ctx.get(cond.value)
    n = ctx.n
    if cond.is_flag:
        want = 1.0 if cond.op == "is_true" else 0.0
        return (vk & (v == want)), vk, v, want, np.nan
    thr, fac = _threshold_array(ctx, cond, n)
    for ov, mask in zip(rule.overrides, masks, strict=True):
        if ov.target != target or not ov.changes_threshold() or mask is None:
            continue
        t2, f2 = _threshold_array(ctx, ov.merge(cond), n)
        thr = np.where(mask, t2, thr)
        fac = np.where(mask, f2, fac)
    if isinstance(thr, np.ndarray):
        tk = ~np.isnan(thr)
        known = vk & tk
    else:
        known = vk
    true = known & _compare(cond.op, v, thr)
    return true, known, v, thr, fac


def _eval_group(
    ctx: _Context, rule: Rule, group: Group, masks: list[np.ndarray | None]
) -> tuple[np.ndarray, np.ndarray]:
    """Three-valued all/any: (true, known)."""
    trues, falses = [], []
    for it in group.items:
        if isinstance(it, Group):
            t, k = _eval_group(ctx, rule, it, masks)
        else:
            t, k = _eval_leaf(ctx, rule, it, it.name, masks)[:2]
        trues.append(t)
        falses.append(k & ~t)
    if group.mode == "all":
        true = np.logical_and.reduce(trues)
        false = np.logical_or.reduce(falses)
    else:
        true = np.logical_or.reduce(trues)
        false = np.logical_and.reduce(falses)
    return true, true | false


def _excess(op: str, v: np.ndarray, t: np.ndarray | float) -> np.ndarray:
    """How far past the threshold, relative to it, in [0, 1]."""
    if op not in ("lt", "le", "gt", "ge"):
        return np.zeros(v.shape)
    diff = (t - v) if op in ("lt", "le") else (v - t)
    scale = np.abs(np.broadcast_to(t, v.shape)).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(scale > 0, diff / np.where(scale > 0, scale, 1.0), np.where(diff > 0, 1, 0))
    out = np.nan_to_num(out, nan=0.0, posinf=1.0, neginf=0.0)
    return np.clip(out, 0.0, 1.0)


_RT_INDEX = {c: i for i, c in enumerate(RISK_TYPE_CODES)}


class RuleResults:
    """Rules evaluated over a batch of records: arrays for all rows, details per row on demand.

    Arrays are rows × rules in the order of ``rule_ids``: ``fired_matrix``,
    ``evaluated_matrix`` (outcome decided), ``active_matrix`` (rule in force
    for the row's province and date), ``values``/``thresholds`` (the rule's
    measured condition; NaN when missing; +inf for a share with income ≤ 0),
    ``contributions`` (severity per rule). ``flagged`` and ``severity`` are per row.
    """

    def __init__(
        self,
        index: pd.Index,
        rules: tuple[Rule, ...],
        version: str,
        fired: np.ndarray,
        evaluated: np.ndarray,
        active: np.ndarray,
        values: np.ndarray,
        thresholds: np.ndarray,
        contributions: np.ndarray,
        risk_type_idx: list[int | np.ndarray],
        factors: list[np.ndarray | float],
        ctx: _Context,
    ):
        self.index = index
        self.rules = rules
        self.rule_ids: tuple[str, ...] = tuple(r.id for r in rules)
        self.ruleset_version = version
        self.fired_matrix = fired
        self.evaluated_matrix = evaluated
        self.active_matrix = active
        self.values = values
        self.thresholds = thresholds
        self.contributions = contributions
        self.flagged: np.ndarray = fired.any(axis=1) if fired.size else np.zeros(len(index), bool)
        self.severity: np.ndarray = (
            contributions.sum(axis=1) if contributions.size else np.zeros(len(index))
        )
        self._rt = risk_type_idx
        self._factors = factors
        self._ctx = ctx

    def __len__(self) -> int:
        return len(self.index)

    # ------------------------------------------------------------ per row
    def _risk_type(self, i: int, j: int) -> str:
        rt = self._rt[j]
        return RISK_TYPE_CODES[int(rt if isinstance(rt, int) else rt[i])]

    def _order(self, i: int) -> list[int]:
        idx = np.flatnonzero(self.fired_matrix[i])
        return sorted(
            idx.tolist(),
            key=lambda j: (self.rules[j].level != "red", -self.contributions[i, j], j),
        )

    def for_row(self, i: int) -> list[dict[str, Any]]:
        """Fired rules of row ``i`` (position), red first then by severity.

        Each: id, risk_type, level, message_zh, message_en, value, threshold.
        ``value`` is None when a share is undefined (income ≤ 0, shown so in the
        messages); for flag conditions value is 1.0/0.0 and threshold the flag
        value that fires.
        """
        out = []
        for j in self._order(i):
            r = self.rules[j]
            v = float(self.values[i, j])
            t = float(self.thresholds[i, j])
            fac = self._factors[j]
            f = float(fac if isinstance(fac, float) else fac[i])
            out.append(
                {
                    "id": r.id,
                    "risk_type": self._risk_type(i, j),
                    "level": r.level,
                    "message_zh": self._render(r.message_zh, "zh", r, i, v, t, f),
                    "message_en": self._render(r.message_en, "en", r, i, v, t, f),
                    "value": v if math.isfinite(v) else None,
                    "threshold": t if math.isfinite(t) else None,
                }
            )
        return out

    def _render(self, tmpl: str, lang: str, r: Rule, i: int, v: float, t: float, f: float) -> str:
        kind = r.condition.kind
        vs, ts = format_value(v, kind, lang), format_value(t, kind, lang)
        if vs == ts and v != t and math.isfinite(v):  # 5,999.6 vs 6,000: show digits that differ
            for extra in (1, 2, 3):
                vs, ts = format_value(v, kind, lang, extra), format_value(t, kind, lang, extra)
                if vs != ts:
                    break
        values: dict[str, str] = {"value": vs, "threshold": ts, "factor": _fmt_factor(f)}
        for name in _template_fields(tmpl):
            if name not in values:
                arr, known = self._ctx.get(name)
                values[name] = (
                    format_value(float(arr[i]), VALUES[name].kind, lang)
                    if known[i]
                    else ("缺失" if lang == "zh" else "missing")
                )
        return tmpl.format_map(values)

    def not_evaluated(self, i: int) -> list[str]:
        """Ids of rules in force for row ``i`` whose outcome is unknown for missing inputs."""
        mask = self.active_matrix[i] & ~self.evaluated_matrix[i]
        return [self.rule_ids[j] for j in np.flatnonzero(mask)]

    def missing_inputs(self, i: int) -> dict[str, list[str]]:
        """For each not-evaluated rule of row ``i``, the inputs that are missing."""
        out: dict[str, list[str]] = {}
        for rid in self.not_evaluated(i):
            r = self.rules[self.rule_ids.index(rid)]
            missing: list[str] = []
            for name in dict.fromkeys(c for leaf in r.leaves() for c in leaf.inputs()):
                if self._ctx.get(name)[1][i]:
                    continue
                base = [b for b in _base_inputs(name) if not self._ctx.get(b)[1][i]]
                # a derived value can be unknown with all inputs present (income_drop
                # when the previous net income is ≤ 0): name the value itself then
                missing.extend(base or [name])
            out[rid] = list(dict.fromkeys(missing))
        return out

    def risk_types(self, i: int) -> list[str]:
        """Risk types of the fired rules, red first then by severity, without repeats."""
        return list(dict.fromkeys(self._risk_type(i, j) for j in self._order(i)))

    # ------------------------------------------------------------ frames
    def fired_frame(self) -> pd.DataFrame:
        """Rows × rules booleans, indexed like the input."""
        return pd.DataFrame(self.fired_matrix, index=self.index, columns=list(self.rule_ids))

    def summary(self) -> pd.DataFrame:
        """Per rule: records in force, evaluated, not evaluated, fired, and the fired share."""
        active = self.active_matrix.sum(axis=0)
        evald = (self.active_matrix & self.evaluated_matrix).sum(axis=0)
        fired = self.fired_matrix.sum(axis=0)
        return pd.DataFrame(
            {
                "rule": list(self.rule_ids),
                "level": [r.level for r in self.rules],
                "in_force": active,
                "evaluated": evald,
                "not_evaluated": active - evald,
                "fired": fired,
                "fired_share": np.divide(fired, evald, out=np.zeros(len(fired)), where=evald > 0),
            }
        )


def evaluate(
    df: pd.DataFrame | Columns,
    ruleset: RuleSet | None = None,
    lines: ReferenceLines | None = None,
    previous: pd.DataFrame | Columns | None = None,
    on: Any = None,
) -> RuleResults:
    """Evaluate every rule over a frame of canonical records (``schema.coerce_frame`` output).

    ``previous`` is the previous-period record of each row (same index as
    ``df``; NA rows where unknown), e.g. from :func:`riskml.history.previous_from_panel`; it
    may hold only some columns (the income fields are what ``income_drop``
    needs). ``on`` (``YYYY-MM`` or a date) fixes the date for effective
    ranges; by default each record's own ``period`` is used. Lines come from
    the province and year of each record's ``period``. Vectorised: no
    per-row Python work. ``df`` and ``previous`` may also be ``Columns``
    (the service's request path).
    """
    ruleset = ruleset if ruleset is not None else default_ruleset()
    lines = lines if lines is not None else default_lines()
    rules = ruleset.rules
    needed = {"county_code", "period"}
    for r in rules:
        for name in r.inputs():
            if name in FIELD_NAMES:
                needed.add(name)
            else:
                needed.update(b for b in _base_inputs(name) if b in FIELD_NAMES)
    columns = as_columns(df)
    lacking = sorted(c for c in needed if c not in columns)
    if lacking:
        raise ValueError(f"records lack column(s) the rules need: {', '.join(lacking)}")
    index = df.index if isinstance(df, pd.DataFrame) else pd.RangeIndex(len(columns))
    if previous is not None and (
        len(previous) != len(columns)
        or (isinstance(previous, pd.DataFrame) and not previous.index.equals(index))
    ):
        raise ValueError("previous must be aligned with the records: same length and index")

    ctx = _Context(columns, as_columns(previous), lines, on)
    n, nr = len(columns), len(rules)
    fired = np.zeros((n, nr), dtype=bool, order="F")
    evaluated = np.zeros((n, nr), dtype=bool, order="F")
    active = np.zeros((n, nr), dtype=bool, order="F")
    values = np.full((n, nr), np.nan, order="F")
    thresholds = np.full((n, nr), np.nan, order="F")
    contrib = np.zeros((n, nr), order="F")
    rts: list[int | np.ndarray] = []
    factors: list[np.ndarray | float] = []

    for j, r in enumerate(rules):
        in_force = (ctx.month >= r.start) & (
            ctx.month <= r.end if r.end is not None else np.ones(n, dtype=bool)
        )
        on_ = np.full(n, r.enabled) & in_force
        masks: list[np.ndarray | None] = []
        for ov in r.overrides:
            m = np.isin(ctx.province, [int(p) for p in ov.provinces])
            if ov.start is not None:
                m &= ctx.month >= ov.start
            if ov.end is not None:
                m &= ctx.month <= ov.end
            m = m if m.any() else None
            masks.append(m)
            if m is not None and ov.enabled is not None:
                on_ = np.where(m & in_force, ov.enabled, on_)
        c_true, c_known, v, thr, fac = _eval_leaf(ctx, r, r.condition, None, masks)
        if r.only_if is not None:
            w_true, w_known = _eval_group(ctx, r, r.only_if, masks)
            fire = c_true & w_true
            decided = (c_known & w_known) | (c_known & ~c_true) | (w_known & ~w_true)
        else:
            fire, decided = c_true, c_known
        fire &= on_
        fired[:, j] = fire
        evaluated[:, j] = decided
        active[:, j] = on_
        values[:, j] = v
        thresholds[:, j] = thr
        if fire.any():
            contrib[:, j] = np.where(fire, r.weight * (1.0 + _excess(r.condition.op, v, thr)), 0)
        factors.append(float(fac) if np.isscalar(fac) else np.asarray(fac, dtype=np.float64))
        rts.append(_risk_type_index(ctx, r))

    return RuleResults(
        index,
        rules,
        ruleset.version,
        fired,
        evaluated,
        active,
        values,
        thresholds,
        contrib,
        rts,
        factors,
        ctx,
    )


_DEPS: dict[str, tuple[str, ...]] = {
    "net_income": INCOME_FIELDS,
    "pc_net_income": ("net_income", "household_size"),
    "prev_net_income": tuple(f"prev_{c}" for c in INCOME_FIELDS),
    "prev_pc_net_income": ("prev_net_income", "prev_household_size"),
    "medical_share": ("medical_expense", "net_income"),
    "education_share": ("education_expense", "net_income"),
    "loss_share": ("disaster_loss", "net_income"),
    "rigid_share": ("medical_expense", "education_expense", "net_income"),
    "pc_net_income_after_rigid": (
        "net_income",
        "medical_expense",
        "education_expense",
        "household_size",
    ),
    "income_drop": ("net_income", "prev_net_income"),
    "pc_income_drop": ("pc_net_income", "prev_pc_net_income"),
}


def _base_inputs(name: str) -> list[str]:
    """The record fields (or prev_<field>) a value is computed from; itself for a field or line."""
    if name not in _DEPS:
        return [name]
    out: list[str] = []
    for d in _DEPS[name]:
        out.extend(_base_inputs(d))
    return list(dict.fromkeys(out))


def _risk_type_index(ctx: _Context, r: Rule) -> int | np.ndarray:
    """The rule's risk type, or per row the type of the largest driver (biggest fall)."""
    base = _RT_INDEX[r.risk_type]
    if not r.risk_type_by_driver:
        return base
    drops = []
    for f, _ in r.risk_type_by_driver:
        now, prev = ctx.get(f)[0], ctx.get(f"prev_{f}")[0]
        d = prev - now
        drops.append(np.where(np.isnan(d), -np.inf, d))
    stacked = np.vstack(drops)
    best = stacked.argmax(axis=0)
    codes = np.array([_RT_INDEX[rt] for _, rt in r.risk_type_by_driver], dtype=np.int16)
    return np.where(stacked.max(axis=0) > 0, codes[best], base).astype(np.int16)


# --------------------------------------------------------------------------- single record
def previous_frame(
    records: Iterable[Mapping[str, Any] | None], index: pd.Index | None = None
) -> pd.DataFrame:
    """Previous-period records (dicts, None where unknown) as a frame aligned to ``index``.

    For the service: the history it holds for each household. Fields a dict
    leaves out are missing.
    """
    rows = [dict(r) if r is not None else {} for r in records]
    frame = records_to_frame(rows) if rows else records_to_frame([]).iloc[:0]
    if index is not None:
        frame.index = index
    return frame


def evaluate_record(
    record: Mapping[str, Any],
    ruleset: RuleSet | None = None,
    lines: ReferenceLines | None = None,
    previous: Mapping[str, Any] | None = None,
    on: Any = None,
) -> list[dict[str, Any]]:
    """The fired rules of one record (same dicts as ``RuleResults.for_row``).

    Built on :func:`evaluate` over one record's columns, so single and batch agree.
    """
    records = Columns.from_records([dict(record)])
    prev = Columns.from_records([dict(previous)]) if previous is not None else None
    return evaluate(records, ruleset, lines, prev, on).for_row(0)


# --------------------------------------------------------------------------- baseline
def rules_baseline(results: RuleResults) -> tuple[np.ndarray, np.ndarray]:
    """What rules alone achieve: (flagged as bool, severity as float) per record.

    ``severity`` ranks records for a visit capacity (top k); see the module
    docstring for its definition. Zero for records no rule flags.
    """
    return results.flagged.copy(), results.severity.astype(np.float64, copy=True)


# --------------------------------------------------------------------------- formatting
def _fmt_factor(f: float) -> str:
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
