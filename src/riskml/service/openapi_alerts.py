"""Department alerts' part of the OpenAPI document, built from ``riskml.alerts.fields``."""

from __future__ import annotations

from typing import Any

from riskml.alerts.fields import ALERT_ID_PATTERN, DEPARTMENT_CODES, DEPARTMENTS
from riskml.alerts.intake import MAX_ALERTS

OBJECT: dict[str, Any] = {"type": "object"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _field_schema(f: Any) -> dict[str, Any]:
    if f.kind == "bool":
        out: dict[str, Any] = {"type": "boolean"}
    elif f.kind == "choice":
        out = {"type": "string", "enum": list(f.choices)}
    else:
        out = {"type": "integer" if f.kind == "int" else "number"}
        if f.minimum is not None:
            out["minimum"] = f.minimum
        if f.maximum is not None:
            out["maximum"] = f.maximum
    out["description"] = f"{f.description} (→ {f.mapping_text()})"
    return out


def alert_schemas() -> dict[str, Any]:
    common = {
        "alert_id": {"type": "string", "pattern": ALERT_ID_PATTERN,
                     "description": "unique within the department (derived from the content when absent)"},
        "household_id": {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"},
        "department": {"type": "string", "enum": list(DEPARTMENT_CODES)},
        "county_code": {"type": "string", "pattern": "^[0-9]{6}$"},
        "period": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$"},
        "event_date": {"type": "string", "format": "date"},
    }  # fmt: skip
    out: dict[str, Any] = {}
    for code, d in DEPARTMENTS.items():
        props = {**common, **{f.name: _field_schema(f) for f in d.fields}}
        required = ["household_id", "county_code", "event_date" if d.event else "period"]
        required += [f.name for f in d.fields if f.required]
        out[f"Alert_{code}"] = {
            "type": "object", "additionalProperties": False, "properties": props,
            "required": required, "description": f"{d.en} ({d.zh})",
        }  # fmt: skip
    out["AlertRequest"] = {
        "type": "object", "additionalProperties": False, "required": ["alerts"],
        "properties": {
            "department": {"type": "string", "enum": list(DEPARTMENT_CODES),
                           "description": "the department of alerts that do not name one"},
            "alerts": {"type": "array", "minItems": 1, "maxItems": MAX_ALERTS,
                       "items": {"anyOf": [_ref(f"Alert_{c}") for c in DEPARTMENT_CODES]}},
        },
    }  # fmt: skip
    return out


def alert_paths(op: Any, json_: Any, errors: Any, bearer: list, keyed: tuple) -> dict:
    # fmt: off
    return {
        "/alerts": {"post": op(
            "push_alerts", "alerts", "A department's alerts: merged onto the households' latest "
            "records, re-scored, stored, and led into the case loop", bearer,
            {"200": json_(OBJECT, "stored, already stored, matched, unmatched, re-scored, leads"),
             "409": json_(_ref("ValidationFailure"), "an alert about a household registered in "
                          "another county; nothing was stored"),
             **errors(*keyed, 403, 413, 422)},
            description="Roles: department (its departments and counties), admin. 1 to "
            f"{MAX_ALERTS:,} alerts; an alert stored before (department, alert_id) is not taken "
            "again. docs/alerts.md has every department's fields and their mapping.",
            requestBody={"required": True, "content": {"application/json": {"schema": _ref("AlertRequest")}}})},
        "/alerts/unmatched": {"get": op(
            "unmatched_alerts", "alerts", "Alerts about households riskml has not seen, for the "
            "county", bearer, {"200": json_(OBJECT, "alerts, count"), **errors(*keyed, 403)},
            description="Roles: county (its counties), admin.")},
    }
    # fmt: on
