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

import numpy as np
import pandas as pd
import pyarrow as pa

from riskml import config
from riskml.alerts.fields import ALL_FIELDS, AlertField
from riskml.alerts.trigger_file import (
    CHOICE_ZH,
    FLAG_OPS,
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

    # ----------------------------------------------------------------------- a whole push
    def record_fields(self) -> tuple[str, ...]:
        """The household-record fields the triggers read (``only_if`` on the record)."""
        names = [c.field for t in self.triggers for c in (t.condition, *t.only_if) if c.on_record]
        return tuple(dict.fromkeys(names))

    def fired_frame(self, alerts: pd.DataFrame, before: pd.DataFrame | None) -> pa.ListArray:
        """The ids of the triggers each alert fires, red first then in file order, as ``fired``.

        ``alerts``: typed as ``riskml.alerts.contract.alerts_frame`` types them (the
        province from ``county_code``, the month from ``period``); ``before``: aligned
        with them, the household's record before the alert (the ``record_fields``;
        missing where unknown), or None when no household is known.
        """
        alerts = alerts.reset_index(drop=True)
        n = len(alerts)
        if before is not None:
            before = before.reset_index(drop=True)
        combo = (
            alerts["department"].astype(str)
            + "|"
            + alerts["county_code"].astype(str).str.slice(0, 2)
            + "|"
            + alerts["period"].astype(str)
        )
        codes, combos = pd.factorize(combo)
        rows_out, rank_out, ids_out = [], [], []
        for k, key in enumerate(combos):
            dept, prov, period = str(key).split("|")
            active = self.active(dept, prov, period)
            active = sorted(active, key=lambda t: t.level != "red")  # stable: file order kept
            rows = np.flatnonzero(codes == k)
            for rank, t in enumerate(active):
                hold = np.ones(len(rows), dtype=bool)
                for c in (t.condition, *t.only_if):
                    hold &= _holds_frame(c, alerts, before, rows)
                hit = rows[hold]
                rows_out.append(hit)
                rank_out.append(np.full(len(hit), rank))
                ids_out.append(np.full(len(hit), t.id, dtype=object))
        if not rows_out:
            return pa.ListArray.from_arrays(np.zeros(n + 1, np.int32), pa.array([], pa.string()))
        rows_all, rank_all = np.concatenate(rows_out), np.concatenate(rank_out)
        order = np.lexsort((rank_all, rows_all))
        offsets = np.r_[0, np.cumsum(np.bincount(rows_all, minlength=n))].astype(np.int32)
        values = pa.array(np.concatenate(ids_out)[order], type=pa.string())
        return pa.ListArray.from_arrays(pa.array(offsets), values)


def _holds_frame(
    c: TriggerCondition, alerts: pd.DataFrame, before: pd.DataFrame | None, rows: np.ndarray
) -> np.ndarray:
    """``c.holds`` for the alerts at ``rows`` (a missing value: ``when_unknown``)."""
    source = before if c.on_record else alerts
    if source is None or c.field not in source.columns:
        return np.full(len(rows), c.when_unknown)
    s = source[c.field].iloc[rows]
    missing = np.array(s.isna().to_numpy(), dtype=bool)
    if c.op in FLAG_OPS:
        flags = np.array([bool(v) for v in s.to_numpy(dtype=object, na_value=False)], dtype=bool)
        result = flags == (c.op == "is_true")
    elif c.value is not None:
        result = np.asarray((s.astype(object) == c.value).to_numpy(), dtype=bool)
    else:
        x = pd.to_numeric(s, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        missing = missing | np.isnan(x)
        t = float(c.threshold)  # type: ignore[arg-type]
        with np.errstate(invalid="ignore"):
            result = {"lt": x < t, "le": x <= t, "gt": x > t, "ge": x >= t, "eq": x == t}[c.op]
    return np.where(missing, c.when_unknown, result)
