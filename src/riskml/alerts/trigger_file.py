"""The department triggers file: its model (conditions, overrides, triggers) and strict parsing.

``riskml.alerts.triggers`` loads a file into a ``TriggerSet``; this module parses
the text into ``Trigger`` objects (``parse_text``) and raises ``TriggersFileError``
naming the trigger and the key for any mistake. The format is described in
``riskml.alerts.triggers``.
"""

from __future__ import annotations

import math
import string
from dataclasses import dataclass, field
from typing import Any

import yaml

from riskml.alerts.fields import ALL_FIELDS, DEPARTMENTS, AlertField
from riskml.data.periods import month_text, parse_date_month
from riskml.data.regions import PROVINCES
from riskml.data.schema import FIELD_BY_NAME
from riskml.data.validation import number_value
from riskml.policy.risk_types import RISK_TYPES
from riskml.policy.rules import LEVELS, OPS

__all__ = [
    "CHOICE_ZH",
    "FLAG_OPS",
    "Trigger",
    "TriggerCondition",
    "TriggerOverride",
    "TriggersFileError",
    "parse_text",
]

NUMERIC_OPS = ("lt", "le", "gt", "ge", "eq")
FLAG_OPS = ("is_true", "is_false")
CHOICE_ZH = {"inpatient": "住院", "outpatient": "门诊", "injured": "受伤", "dead": "死亡"}
_VALUE_KIND = {"money": "money", "int": "count", "bool": "flag"}


class TriggersFileError(ValueError):
    """A triggers file that cannot be used; the message names the trigger and the key."""

    def __init__(
        self,
        message: str,
        *,
        source: str = "<triggers>",
        trigger_id: str | None = None,
        key: str | None = None,
    ):
        self.source, self.trigger_id, self.key, self.detail = source, trigger_id, key, message
        where = [f"trigger {trigger_id!r}"] if trigger_id is not None else []
        where += [f"key {key!r}"] if key is not None else []
        super().__init__(f"{source}: " + (", ".join(where) + ": " if where else "") + message)


# --------------------------------------------------------------------------- the model
@dataclass(frozen=True)
class TriggerCondition:
    """One comparison on an alert field (or, with ``on_record``, on the record before the alert)."""

    field: str
    op: str
    threshold: float | None = None
    value: str | None = None  # eq on a choice
    on_record: bool = False
    when_unknown: bool = False

    @property
    def is_numeric(self) -> bool:
        return self.threshold is not None

    def holds(self, alert: dict[str, Any], record: dict[str, Any] | None) -> bool:
        """Whether the condition holds (a missing value: ``when_unknown``)."""
        source = record if self.on_record else alert
        v = None if source is None else source.get(self.field)
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return self.when_unknown
        if self.op in FLAG_OPS:
            return bool(v) is (self.op == "is_true")
        if self.value is not None:
            return v == self.value
        x = number_value(v)
        if x is None or math.isnan(x):
            return self.when_unknown
        t = float(self.threshold)  # type: ignore[arg-type]
        return {"lt": x < t, "le": x <= t, "gt": x > t, "ge": x >= t, "eq": x == t}[self.op]

    def describe(self) -> str:
        where = "record." if self.on_record else ""
        tail = ""
        if self.threshold is not None:
            tail = f" {self.threshold:g}"
        elif self.value is not None:
            tail = f" {self.value}"
        op = OPS[self.op]
        return f"{where}{self.field} {op}{tail}" + (" (or unknown)" if self.when_unknown else "")


@dataclass(frozen=True)
class TriggerOverride:
    """A provincial change to a trigger: its threshold, or switching it on or off, for some months."""

    provinces: tuple[str, ...]
    threshold: float | None = None
    enabled: bool | None = None
    start: int | None = None
    end: int | None = None
    source: str = ""

    def applies(self, province: str, month: int) -> bool:
        in_range = (self.start is None or month >= self.start) and (
            self.end is None or month <= self.end
        )
        return province in self.provinces and in_range

    def describe(self) -> str:
        bits = [f"threshold {self.threshold:g}"] if self.threshold is not None else []
        if self.enabled is not None:
            bits.append("enabled" if self.enabled else "disabled")
        when = ""
        if self.start is not None or self.end is not None:
            a = month_text(self.start) if self.start is not None else "…"
            b = month_text(self.end) if self.end is not None else "open"
            when = f" ({a} – {b})"
        return f"province {','.join(self.provinces)}{when}: {', '.join(bits)}"


@dataclass(frozen=True)
class Trigger:
    """One department threshold as loaded (national default plus its provincial overrides)."""

    id: str
    department: str
    risk_type: str
    level: str
    condition: TriggerCondition
    only_if: tuple[TriggerCondition, ...]
    message_zh: str
    message_en: str
    start: int
    end: int | None
    source: str = ""
    enabled: bool = True
    overrides: tuple[TriggerOverride, ...] = ()
    applied: tuple[str, ...] = field(default=(), compare=False)  # set by TriggerSet.active

    def in_force(self, month: int) -> bool:
        return month >= self.start and (self.end is None or month <= self.end)

    def holds(self, alert: dict[str, Any], record: dict[str, Any] | None) -> bool:
        """The condition and every ``only_if`` condition hold."""
        return self.condition.holds(alert, record) and all(
            c.holds(alert, record) for c in self.only_if
        )

    def describe(self) -> str:
        s = self.condition.describe()
        return s + (
            ", only if " + " and ".join(c.describe() for c in self.only_if) if self.only_if else ""
        )


# --------------------------------------------------------------------------- parsing
class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping."""


def _mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)

TRIGGER_KEYS = (
    "id", "department", "risk_type", "level", "condition", "only_if", "effective", "source",
    "message_zh", "message_en", "overrides", "enabled",
)  # fmt: skip
REQUIRED = (
    "id",
    "department",
    "risk_type",
    "level",
    "condition",
    "effective",
    "message_zh",
    "message_en",
)
COND_KEYS = ("field", "op", "threshold", "value")
RECORD_KEYS = ("record", "op", "when_unknown")
OVERRIDE_KEYS = ("provinces", "threshold", "enabled", "effective", "source")


class _Parser:
    def __init__(self, source: str):
        self.source = source
        self.tid: str | None = None

    def error(self, key: str | None, message: str) -> TriggersFileError:
        return TriggersFileError(message, source=self.source, trigger_id=self.tid, key=key)

    def parse(self, data: Any) -> tuple[str, list[Trigger]]:
        if not isinstance(data, dict):
            raise self.error(None, "the file must be a mapping with 'version' and 'triggers'")
        for k in data:
            if k not in ("version", "description", "triggers"):
                raise self.error(
                    str(k), "unknown top-level key; use version, description, triggers"
                )
        version = data.get("version")
        if not isinstance(version, str) or not version.strip():
            raise self.error("version", f"must be a version string in quotes, got {version!r}")
        raw = data.get("triggers")
        if not isinstance(raw, list) or not raw:
            raise self.error("triggers", "must be a non-empty list of triggers")
        out: list[Trigger] = []
        seen: set[str] = set()
        for i, item in enumerate(raw):
            self.tid = f"#{i + 1}"
            t = self.trigger(item)
            if t.id in seen:
                raise self.error("id", f"duplicate trigger id {t.id!r}")
            seen.add(t.id)
            out.append(t)
        self.tid = None
        return version, out

    def trigger(self, raw: Any) -> Trigger:
        if not isinstance(raw, dict):
            raise self.error(None, f"each trigger must be a mapping, got {raw!r}")
        tid = raw.get("id")
        if isinstance(tid, str) and tid.isidentifier() and tid == tid.lower() and len(tid) <= 64:
            self.tid = tid
        elif "id" in raw:
            raise self.error("id", f"must be lower-case letters, digits and _, got {tid!r}")
        for k in raw:
            if k not in TRIGGER_KEYS:
                raise self.error(
                    str(k), f"unknown key; a trigger may have {', '.join(TRIGGER_KEYS)}"
                )
        for k in REQUIRED:
            if raw.get(k) is None:
                raise self.error(k, "missing")
        dept = raw["department"]
        if dept not in DEPARTMENTS:
            raise self.error(
                "department",
                f"unknown department {dept!r}; use one of {', '.join(sorted(DEPARTMENTS))}",
            )
        if raw["risk_type"] not in RISK_TYPES:
            raise self.error(
                "risk_type",
                f"unknown risk type {raw['risk_type']!r}; use one of {', '.join(RISK_TYPES)}",
            )
        if raw["level"] not in LEVELS:
            raise self.error("level", f"must be red or yellow, got {raw['level']!r}")
        enabled = raw.get("enabled", True)
        if not isinstance(enabled, bool):
            raise self.error("enabled", f"must be true or false, got {enabled!r}")
        source = self.text(raw.get("source", ""), "source")
        cond = self.condition(raw["condition"], "condition", dept, allow_record=False)
        only_if_raw = raw.get("only_if") or []
        if not isinstance(only_if_raw, list):
            raise self.error("only_if", "must be a list of conditions (all must hold)")
        only_if = tuple(
            self.condition(c, f"only_if[{j}]", dept, allow_record=True)
            for j, c in enumerate(only_if_raw)
        )
        start, end = self.effective(raw["effective"], "effective", require_from=True)
        for key in ("message_zh", "message_en"):
            self.template(raw[key], key, cond, dept)
        overrides_raw = raw.get("overrides") or []
        if not isinstance(overrides_raw, list):
            raise self.error("overrides", "must be a list of provincial overrides")
        overrides = tuple(
            self.override(o, f"overrides[{j}]", cond) for j, o in enumerate(overrides_raw)
        )
        return Trigger(
            id=self.tid or "", department=dept, risk_type=raw["risk_type"], level=raw["level"],
            condition=cond, only_if=only_if, message_zh=raw["message_zh"], message_en=raw["message_en"],
            start=start, end=end, source=source, enabled=enabled, overrides=overrides,
        )  # fmt: skip

    def text(self, v: Any, key: str) -> str:
        if not isinstance(v, str):
            raise self.error(key, "must be text")
        return v.strip()

    def number(self, v: Any, key: str) -> float:
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise self.error(key, f"must be a finite number, got {v!r}")
        return float(v)

    def condition(self, raw: Any, key: str, dept: str, allow_record: bool) -> TriggerCondition:
        if not isinstance(raw, dict):
            raise self.error(key, f"must be a mapping {{field, op, threshold|value}}, got {raw!r}")
        if "record" in raw and allow_record:
            return self.record_condition(raw, key)
        for k in raw:
            if k not in COND_KEYS:
                hint = (
                    " (a condition on the record is {record, op} and only in only_if)"
                    if k in RECORD_KEYS
                    else ""
                )
                raise self.error(f"{key}.{k}", f"unknown key; use {', '.join(COND_KEYS)}{hint}")
        name, op = raw.get("field"), raw.get("op")
        d = DEPARTMENTS[dept]
        if name not in d.field_names:
            raise self.error(
                f"{key}.field",
                f"unknown field {name!r} of {dept}; use one of {', '.join(d.field_names)}",
            )
        f: AlertField = ALL_FIELDS[name]
        if op not in OPS:
            raise self.error(f"{key}.op", f"unknown operator {op!r}; use one of {', '.join(OPS)}")
        if f.kind == "bool":
            if op not in FLAG_OPS:
                raise self.error(f"{key}.op", f"{name} is true/false: use is_true or is_false")
            for k in ("threshold", "value"):
                if k in raw:
                    raise self.error(f"{key}.{k}", f"not used with {op}")
            return TriggerCondition(name, op)
        if f.kind == "choice":
            if op != "eq":
                raise self.error(f"{key}.op", f"{name} is a choice: use eq with a value")
            if "threshold" in raw:
                raise self.error(
                    f"{key}.threshold", f"{name} is a choice: give value, not threshold"
                )
            if raw.get("value") not in f.choices:
                raise self.error(
                    f"{key}.value",
                    f"must be one of {', '.join(f.choices)}, got {raw.get('value')!r}",
                )
            return TriggerCondition(name, op, value=raw["value"])
        if op in FLAG_OPS:
            raise self.error(f"{key}.op", f"{name} is a number: use lt, le, gt, ge or eq")
        if "value" in raw:
            raise self.error(f"{key}.value", f"{name} is a number: give threshold")
        if "threshold" not in raw:
            raise self.error(f"{key}.threshold", f"missing threshold for {op}")
        return TriggerCondition(
            name, op, threshold=self.number(raw["threshold"], f"{key}.threshold")
        )

    def record_condition(self, raw: dict[str, Any], key: str) -> TriggerCondition:
        for k in raw:
            if k not in RECORD_KEYS:
                raise self.error(
                    f"{key}.{k}",
                    f"unknown key; a condition on the record has {', '.join(RECORD_KEYS)}",
                )
        name, op = raw.get("record"), raw.get("op")
        f = FIELD_BY_NAME.get(name) if isinstance(name, str) else None
        if f is None or f.kind != "bool":
            flags = ", ".join(x.name for x in FIELD_BY_NAME.values() if x.kind == "bool")
            raise self.error(
                f"{key}.record",
                f"must be a true/false field of the household record ({flags}), got {name!r}",
            )
        if op not in FLAG_OPS:
            raise self.error(f"{key}.op", f"must be is_true or is_false, got {op!r}")
        unknown = raw.get("when_unknown", False)
        if not isinstance(unknown, bool):
            raise self.error(f"{key}.when_unknown", f"must be true or false, got {unknown!r}")
        return TriggerCondition(name, op, on_record=True, when_unknown=unknown)

    def effective(self, raw: Any, key: str, require_from: bool) -> tuple[int, int | None]:
        if not isinstance(raw, dict):
            raise self.error(key, 'must be a mapping {from: "YYYY-MM", to: "YYYY-MM"}')
        for k in raw:
            if k not in ("from", "to"):
                raise self.error(f"{key}.{k}", "unknown key; use from and to")
        if require_from and raw.get("from") is None:
            raise self.error(f"{key}.from", "missing: the month the trigger takes effect")
        out: list[int | None] = []
        for k in ("from", "to"):
            v = raw.get(k)
            if v is None:
                out.append(None)
                continue
            if not isinstance(v, str):
                raise self.error(
                    f"{key}.{k}", f'write the date in quotes, e.g. "2021-01" (got {v!r})'
                )
            try:
                out.append(parse_date_month(v))
            except ValueError as exc:
                raise self.error(f"{key}.{k}", f"bad date: {exc}") from None
        start, end = out
        if start is not None and end is not None and end < start:
            raise self.error(f"{key}.to", "is before from")
        return start, end  # type: ignore[return-value]

    def template(self, tmpl: Any, key: str, cond: TriggerCondition, dept: str) -> None:
        if not isinstance(tmpl, str) or not tmpl.strip():
            raise self.error(key, "must be a non-empty text")
        allowed = {"value", "threshold", *DEPARTMENTS[dept].field_names}
        try:
            parts = list(string.Formatter().parse(tmpl))
        except ValueError as exc:
            raise self.error(key, f"bad placeholder braces: {exc}") from None
        used = set()
        for _, name, spec, conv in parts:
            if name is None:
                continue
            if name not in allowed:
                raise self.error(
                    key,
                    f"unknown placeholder {{{name}}}; use {{value}}, {{threshold}} or a field of {dept}",
                )
            if spec or conv:
                raise self.error(
                    key, f"placeholder {{{name}}} must be plain: numbers are formatted for you"
                )
            used.add(name)
        if cond.is_numeric and not {"value", "threshold"} <= used:
            raise self.error(
                key, "must show the measured value and the threshold: add {value} and {threshold}"
            )
        if not cond.is_numeric and "threshold" in used:
            raise self.error(key, "{threshold} is only defined for a condition with a threshold")

    def override(self, raw: Any, key: str, cond: TriggerCondition) -> TriggerOverride:
        if not isinstance(raw, dict):
            raise self.error(key, "must be a mapping with provinces and what it changes")
        for k in raw:
            if k not in OVERRIDE_KEYS:
                raise self.error(f"{key}.{k}", f"unknown key; use {', '.join(OVERRIDE_KEYS)}")
        provs = raw.get("provinces")
        if not isinstance(provs, list) or not provs:
            raise self.error(
                f"{key}.provinces",
                'missing: a list of two-digit province codes in quotes, e.g. ["53"]',
            )
        for p in provs:
            if not isinstance(p, str) or p not in PROVINCES:
                raise self.error(
                    f"{key}.provinces",
                    f'unknown province code {p!r}; use two digits in quotes, e.g. "53"',
                )
        threshold = None
        if raw.get("threshold") is not None:
            if not cond.is_numeric:
                raise self.error(f"{key}.threshold", f"{cond.field} {cond.op} has no threshold")
            threshold = self.number(raw["threshold"], f"{key}.threshold")
        enabled = raw.get("enabled")
        if enabled is not None and not isinstance(enabled, bool):
            raise self.error(f"{key}.enabled", f"must be true or false, got {enabled!r}")
        if threshold is None and enabled is None:
            raise self.error(key, "changes nothing: give threshold or enabled")
        start = end = None
        if raw.get("effective") is not None:
            start, end = self.effective(raw["effective"], f"{key}.effective", require_from=False)
        source = self.text(raw.get("source", ""), f"{key}.source")
        return TriggerOverride(tuple(provs), threshold, enabled, start, end, source)


def parse_text(text: str, source: str = "<triggers>") -> tuple[str, list[Trigger]]:
    """The file version and the triggers of a triggers file's text (strict YAML, strict checks)."""
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise TriggersFileError(f"not valid YAML: {exc}", source=source) from None
    return _Parser(source).parse(data)
