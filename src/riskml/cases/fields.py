"""The fields of each case action: what a caller may send, and every problem with it, named.

Which fields an action takes (``ALLOWED_FIELDS``), which riskml sets itself (``FACTS``), and
``payload_problems``: each problem as ``{"field", "problem"}``, the field named as the JSON
path (``measures[0].start``). The state machine (``riskml.cases.machine``) calls it first.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from riskml.cases.procedure import Procedure
from riskml.policy.risk_types import RISK_TYPE_CODES

SOURCES = ("warning", "self_report", "cadre_visit", "department_alert", "social_report", "asset_idle")  # fmt: skip
HOUSEHOLD_TYPES = ("unstable_alleviated", "marginal", "sudden_hardship")
VISIT_OUTCOMES = ("propose", "drop", "fast_track")
COPING = ("none", "weak", "some", "strong")
# fields the service sets, never the client
FACTS = ("decision_id", "record_period", "criteria", "notice_text", "merged")
MAX_NOTE = 500
MAX_MEASURES = 20
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@:-]{0,63}$")
_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


def problem(field_: str, problem: str) -> dict[str, str]:
    return {"field": field_, "problem": problem}


def _one_of(payload: dict, key: str, choices: tuple[str, ...], out: list, required: bool = True):
    v = payload.get(key)
    if v is None:
        if required:
            out.append(problem(key, f"required: one of {', '.join(choices)}"))
        return None
    if v not in choices:
        out.append(problem(key, f"must be one of {', '.join(choices)} (got {v!r})"[:200]))
        return None
    return v


def _text(payload: dict, key: str, out: list, required: bool = False, limit: int = MAX_NOTE):
    v = payload.get(key)
    if v is None:
        if required:
            out.append(problem(key, "required text"))
        return None
    if not isinstance(v, str) or len(v) > limit or (required and not v.strip()):
        out.append(problem(key, f"must be text of 1 to {limit} characters"))
        return None
    return v


def _day(payload: dict, key: str, out: list, required: bool = False):
    v = payload.get(key)
    if v is None:
        if required:
            out.append(problem(key, "required date (YYYY-MM-DD)"))
        return None
    try:
        if not isinstance(v, str) or not _DATE.match(v):
            raise ValueError
        date.fromisoformat(v)
    except ValueError:
        out.append(problem(key, "must be a date YYYY-MM-DD"))
        return None
    return v


def _risk_types(payload: dict, key: str, out: list, limit: int, required: bool) -> list[str] | None:
    v = payload.get(key)
    if v is None:
        if required:
            out.append(problem(key, f"required: 1 to {limit} risk types"))
        return None
    if not isinstance(v, list) or not 1 <= len(v) <= limit:
        out.append(problem(key, f"must be a list of 1 to {limit} risk types"))
        return None
    for i, code in enumerate(v):
        if code not in RISK_TYPE_CODES:
            out.append(
                problem(f"{key}[{i}]", f"unknown risk type (one of {', '.join(RISK_TYPE_CODES)})")
            )
    if len(set(map(str, v))) != len(v):
        out.append(problem(key, "a risk type is listed twice"))
    return list(v)


def _measures(payload: dict, out: list) -> list[dict] | None:
    v = payload.get("measures")
    if not isinstance(v, list) or not 1 <= len(v) <= MAX_MEASURES:
        out.append(problem("measures", f"required: a list of 1 to {MAX_MEASURES} measures"))
        return None
    known = {"risk_type", "measure", "department", "start", "end", "kind"}
    for i, m in enumerate(v):
        at = f"measures[{i}]"
        if not isinstance(m, dict):
            out.append(problem(at, "must be an object"))
            continue
        for k in sorted(set(m) - known):
            out.append(problem(f"{at}.{k}", "unknown field"))
        if m.get("risk_type") not in RISK_TYPE_CODES:
            out.append(problem(f"{at}.risk_type", "required: a known risk type"))
        for k, n in (("measure", 200), ("department", 100)):
            if not isinstance(m.get(k), str) or not m[k].strip() or len(m[k]) > n:
                out.append(problem(f"{at}.{k}", f"required text of 1 to {n} characters"))
        sub: list = []
        start = _day(m, "start", sub, required=True)
        end = _day(m, "end", sub, required=True)
        out += [problem(f"{at}.{p['field']}", p["problem"]) for p in sub]
        if start and end and end < start:
            out.append(problem(f"{at}.end", "must not be before start"))
        if m.get("kind") is not None and m["kind"] not in ("jobs", "safety_net", "service"):
            out.append(problem(f"{at}.kind", "must be one of jobs, safety_net, service"))
    return v


def _decision(payload: dict, out: list, choices: tuple[str, ...]) -> str | None:
    return _one_of(payload, "decision", choices, out)


def payload_problems(action: str, payload: Any, procedure: Procedure) -> list[dict[str, str]]:
    """Every problem with an action's fields (the fields a client sends)."""
    if not isinstance(payload, dict):
        return [problem("(body)", "must be a JSON object")]
    out: list[dict[str, str]] = []
    allowed = set(ALLOWED_FIELDS[action])
    for k in sorted(set(payload) - allowed, key=str):
        why = "set by riskml, not by the caller" if k in FACTS else "unknown field"
        out.append(
            problem(str(k)[:64], f"{why} (fields of {action}: {', '.join(sorted(allowed))})")
        )
    _text(payload, "note", out)
    if action == "lead":
        _one_of(payload, "source", SOURCES, out)
        _risk_types(payload, "risk_types", out, procedure.max_risk_types, required=False)
        if payload.get("fast_track") not in (None, True, False):
            out.append(problem("fast_track", "must be true or false"))
        _text(payload, "reference", out, limit=64)
    elif action == "assign":
        v = payload.get("caseworker")
        if not isinstance(v, str) or not _ID.match(v):
            out.append(problem("caseworker", "required: the caseworker's key id"))
    elif action in ("visit", "follow_up"):
        if payload.get("consent") is not True:
            out.append(
                problem("consent", "a home visit needs the household's signed consent (true)")
            )
        if action == "visit":
            _one_of(payload, "outcome", VISIT_OUTCOMES, out)
            _risk_types(payload, "risk_types", out, procedure.max_risk_types, required=False)
        _one_of(payload, "coping_capacity", COPING, out, required=action == "visit")
    elif action == "cross_check":
        _one_of(payload, "result", ("consistent", "inconsistent"), out)
    elif action == "notice":
        _day(payload, "start", out)
    elif action in ("township_review", "elimination_review", "elimination_decide"):
        _decision(payload, out, ("approve", "reject"))
    elif action == "decide":
        d = _decision(payload, out, ("confirm", "reject"))
        if d == "confirm":
            _one_of(payload, "household_type", HOUSEHOLD_TYPES, out)
            _risk_types(payload, "risk_types", out, procedure.max_risk_types, required=True)
        elif d == "reject":
            _text(payload, "note", out, required=True)
    elif action == "plan":
        _measures(payload, out)
    elif action == "deliver":
        i = payload.get("measure")
        if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < MAX_MEASURES:
            out.append(problem("measure", "required: the measure's index in the plan (0-based)"))
        _day(payload, "delivered_on", out, required=True)
        amt = payload.get("amount")
        if amt is not None and (
            isinstance(amt, bool) or not isinstance(amt, (int, float)) or not 0 <= amt <= 1e7
        ):
            out.append(problem("amount", "must be a number of yuan from 0 to 10,000,000"))
    elif action == "rollback":
        _text(payload, "reason", out, required=True)
    return out


ALLOWED_FIELDS: dict[str, tuple[str, ...]] = {
    "lead": ("source", "risk_types", "fast_track", "reference", "note"),
    "assign": ("caseworker", "note"),
    "visit": ("consent", "outcome", "coping_capacity", "risk_types", "note"),
    "cross_check": ("result", "note"),
    "notice": ("start", "note"),
    "township_review": ("decision", "note"),
    "decide": ("decision", "household_type", "risk_types", "note"),
    "plan": ("measures", "note"),
    "deliver": ("measure", "delivered_on", "amount", "note"),
    "follow_up": ("consent", "coping_capacity", "note"),
    "propose_elimination": ("note",),
    "elimination_review": ("decision", "note"),
    "elimination_decide": ("decision", "note"),
    "rollback": ("reason", "note"),
}


def _enum(choices: tuple[str, ...], description: str) -> dict[str, Any]:
    return {"type": "string", "enum": list(choices), "description": description}


_RISK_TYPES_SCHEMA = {
    "type": "array",
    "items": {"type": "string", "enum": list(RISK_TYPE_CODES)},
    "minItems": 1,
    "maxItems": 12,
    "uniqueItems": True,
}
_DAY = {"type": "string", "format": "date", "pattern": _DATE.pattern}
# the JSON Schema of each field a client sends (the contract's document is built from these)
FIELD_SCHEMAS: dict[str, dict[str, Any]] = {
    "note": {"type": "string", "maxLength": MAX_NOTE, "description": "free text (no ID, phone or bank details)"},
    "source": _enum(SOURCES, "how the risk was found"),
    "risk_types": {**_RISK_TYPES_SCHEMA, "description": "1 to max_risk_types (default 5) risk types"},
    "fast_track": {"type": "boolean", "description": "disaster or accident: support before the steps end"},
    "reference": {"type": "string", "maxLength": 64, "description": "the reporting system's reference"},
    "caseworker": {"type": "string", "pattern": _ID.pattern, "description": "the caseworker's key id"},
    "consent": {"type": "boolean", "const": True, "description": "the household's signed consent"},
    "outcome": _enum(VISIT_OUTCOMES, "propose as a monitoring object, drop (no risk), or fast-track"),
    "coping_capacity": _enum(COPING, "the household's capacity to cope"),
    "result": _enum(("consistent", "inconsistent"), "the county's data cross-check"),
    "start": {**_DAY, "description": "the first day of the notice (default today)"},
    "decision": {"type": "string", "description": "approve or reject (decide: confirm or reject)"},
    "household_type": _enum(HOUSEHOLD_TYPES, "the monitored household type (三类户)"),
    "measures": {
        "type": "array", "minItems": 1, "maxItems": MAX_MEASURES,
        "items": {"type": "object", "additionalProperties": False,
                  "required": ["risk_type", "measure", "department", "start", "end"],
                  "properties": {
                      "risk_type": {"type": "string", "enum": list(RISK_TYPE_CODES)},
                      "measure": {"type": "string", "minLength": 1, "maxLength": 200},
                      "department": {"type": "string", "minLength": 1, "maxLength": 100},
                      "start": _DAY, "end": _DAY,
                      "kind": {"type": "string", "enum": ["jobs", "safety_net", "service"]}}},
        "description": "at least one measure for every risk type of the case",
    },
    "measure": {"type": "integer", "minimum": 0, "maximum": MAX_MEASURES - 1, "description": "the measure's index in the plan"},
    "delivered_on": {**_DAY, "description": "the day it was delivered"},
    "amount": {"type": "number", "minimum": 0, "maximum": 1e7, "description": "yuan"},
    "reason": {"type": "string", "minLength": 1, "maxLength": MAX_NOTE, "description": "why the risk is back"},
}  # fmt: skip
REQUIRED: dict[str, tuple[str, ...]] = {
    "lead": ("source",), "assign": ("caseworker",),
    "visit": ("consent", "outcome", "coping_capacity"), "follow_up": ("consent",),
    "cross_check": ("result",), "township_review": ("decision",), "decide": ("decision",),
    "plan": ("measures",), "deliver": ("measure", "delivered_on"),
    "elimination_review": ("decision",), "elimination_decide": ("decision",), "rollback": ("reason",),
}  # fmt: skip
