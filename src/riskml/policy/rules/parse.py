"""Loading a rules file: strict YAML, strict validation into Rule objects.

Any mistake raises :class:`RulesFileError` naming the rule and the key.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import yaml

from riskml.data.periods import parse_date_month
from riskml.data.regions import PROVINCES
from riskml.policy.risk_types import RISK_TYPES
from riskml.policy.rules.format import TEMPLATE_EXTRAS
from riskml.policy.rules.model import (
    FLAG_OPS,
    LEVEL_WEIGHTS,
    LEVELS,
    OPS,
    Condition,
    Group,
    Override,
    Rule,
)
from riskml.policy.rules.values import VALUES

__all__ = ["MAX_SHARE_THRESHOLD", "RulesFileError", "parse_text"]

MAX_SHARE_THRESHOLD = 5.0  # shares are fractions: 0.5 means 50 %; 20 surely meant 20 %
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

        extras = set(TEMPLATE_EXTRAS) | set(VALUES)
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


def parse_text(text: str, source: str = "<rules>") -> tuple[str, list[Rule]]:
    """The file version and the rules of a rules file's text (strict YAML, strict checks)."""
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise RulesFileError(f"not valid YAML: {exc}", source=source) from None
    return _Parser(source).parse(data)
