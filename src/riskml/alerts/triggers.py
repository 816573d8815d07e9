"""Department thresholds as versioned rules: which alerts become leads (``triggers.yaml``).

A trigger is one department's threshold: a condition on one field of the alert
(``{field, op, threshold}`` or, for a choice, ``{field, op: eq, value}``), more
conditions that must also hold (``only_if``: alert fields, or ``{record: FIELD,
op: is_true|is_false}`` on the household's record before the alert), the months
it is in force and provincial overrides of its threshold. The file is parsed as
strictly as the warning rules (``riskml.policy.rules``): unknown keys, a key given
twice, a threshold that is not a number, a date not written in quotes are each a
``TriggersFileError`` naming the trigger and the key. Every decision can name
the file it used: ``TriggerSet.version`` is the file's version plus a hash of
its content, like ``RuleSet.version``.

A condition whose value is missing (an optional alert field not given, a
record field unknown or no record at all) does not hold, unless it says
``when_unknown: true`` (the general medical threshold applies to a household
not known to be formerly poor; a dibao recipient not on our record is new).
"""

from __future__ import annotations

import functools
import hashlib
import os
import string
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from riskml import config
from riskml.alerts.fields import ALL_FIELDS, AlertField
from riskml.alerts.trigger_file import (
    CHOICE_ZH,
    Trigger,
    TriggerCondition,
    TriggerOverride,
    TriggersFileError,
    parse_text,
)
from riskml.data.periods import parse_date_month
from riskml.policy.rules import format_value

__all__ = [
    "ENV_FILE",
    "Trigger",
    "TriggerCondition",
    "TriggerOverride",
    "TriggerSet",
    "TriggersFileError",
]

ENV_FILE = "RISKML_ALERT_TRIGGERS_FILE"
_VALUE_KIND = {"money": "money", "int": "count", "bool": "flag"}


# --------------------------------------------------------------------------- the set
@functools.lru_cache(maxsize=256)
def template_names(template: str) -> tuple[str, ...]:
    """The placeholders of a (validated) message template, once each."""
    return tuple(dict.fromkeys(n for _, n, _, _ in string.Formatter().parse(template) if n))


def _shown(v: Any, f: AlertField | None, lang: str) -> str:
    """A value in a message: money and counts as caseworkers read them, choices in words."""
    if f is None or v is None:
        return "缺失" if lang == "zh" else "missing"
    if f.kind == "choice":
        return CHOICE_ZH.get(str(v), str(v)) if lang == "zh" else str(v)
    return format_value(float(v), _VALUE_KIND[f.kind], lang)  # type: ignore[arg-type]


@dataclass(frozen=True)
class TriggerSet:
    """The triggers of one file, with the file's version and a hash of its content."""

    triggers: tuple[Trigger, ...]
    file_version: str
    content_hash: str
    source: str = "<triggers>"
    # (department, province, month) -> the triggers in force, for fired()
    _in_force: dict[tuple[str, str, int], tuple[Trigger, ...]] = field(
        default_factory=dict, compare=False, hash=False, repr=False
    )

    @property
    def version(self) -> str:
        """``<file version>+<first 8 hex of the content's SHA-256>``: which triggers a lead used."""
        return f"{self.file_version}+{self.content_hash[:8]}"

    def get(self, trigger_id: str) -> Trigger:
        for t in self.triggers:
            if t.id == trigger_id:
                return t
        raise KeyError(trigger_id)

    @classmethod
    def load(cls, path: str | Path | None = None) -> TriggerSet:
        """A triggers file: ``path``, else ``$RISKML_ALERT_TRIGGERS_FILE``, else the shipped file."""
        p = Path(path or os.environ.get(ENV_FILE) or config.package_file("alerts/triggers.yaml"))
        if not p.exists():
            raise TriggersFileError("file not found", source=str(p))
        try:
            text = p.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise TriggersFileError(f"not UTF-8 text: {exc}", source=str(p)) from None
        return cls.from_text(text, source=str(p))

    @classmethod
    def from_text(cls, text: str, source: str = "<triggers>") -> TriggerSet:
        """A trigger set from a file's text (strict YAML, strict checks)."""
        version, triggers = parse_text(text, source)
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        return cls(tuple(triggers), version, digest, source)

    def active(self, department: str, province: str, period: Any) -> list[Trigger]:
        """The department's triggers in force in a province (or county code) and month, overrides applied.

        Overrides apply in file order; where several set the same thing, the later wins.
        """
        prov = str(province)[:2]
        month = parse_date_month(period)
        out: list[Trigger] = []
        for t in self.triggers:
            if t.department != department or not t.in_force(month):
                continue
            enabled, cond, applied = t.enabled, t.condition, []
            for ov in t.overrides:
                if not ov.applies(prov, month):
                    continue
                applied.append(ov.describe())
                if ov.enabled is not None:
                    enabled = ov.enabled
                if ov.threshold is not None:
                    cond = replace(cond, threshold=ov.threshold)
            if enabled:
                out.append(replace(t, condition=cond, overrides=(), applied=tuple(applied)))
        return out

    def fired(
        self,
        alert: dict[str, Any],
        record_before: dict[str, Any] | None,
        province: str,
        period: Any,
    ) -> list[dict[str, Any]]:
        """The triggers an alert fires, red first then in file order.

        ``record_before``: the household's record before the alert (None when the
        household is unknown); ``province``: two digits or a county code;
        ``period``: the alert's month. Each is ``{id, department, risk_type, level,
        value, threshold, message_zh, message_en, source, overrides}``.
        """
        dept, prov, month = (
            str(alert.get("department")),
            str(province)[:2],
            parse_date_month(period),
        )
        key = (dept, prov, month)
        if key not in self._in_force:
            self._in_force[key] = tuple(self.active(dept, prov, period))
        out = []
        for t in self._in_force[key]:
            if not t.holds(alert, record_before):
                continue
            f = ALL_FIELDS.get(t.condition.field)
            v = alert.get(t.condition.field)
            messages = {}
            for lang, tmpl in (("zh", t.message_zh), ("en", t.message_en)):
                names = {}
                for n in template_names(tmpl):
                    if n == "value":
                        names[n] = _shown(v, f, lang)
                    elif n == "threshold":
                        names[n] = _shown(t.condition.threshold, f, lang)
                    else:
                        names[n] = _shown(alert.get(n), ALL_FIELDS[n], lang)
                messages[lang] = tmpl.format_map(names)
            out.append(
                {
                    "id": t.id,
                    "department": t.department,
                    "risk_type": t.risk_type,
                    "level": t.level,
                    "value": v,
                    "threshold": t.condition.threshold,
                    "message_zh": messages["zh"],
                    "message_en": messages["en"],
                    "source": t.source,
                    "overrides": list(t.applied),
                }
            )
        out.sort(key=lambda d: d["level"] != "red")
        return out
