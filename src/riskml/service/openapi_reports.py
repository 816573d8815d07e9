"""Social reports' part of the OpenAPI document, built from ``riskml.alerts.report_contract``."""

from __future__ import annotations

from typing import Any

from riskml.alerts.report_contract import (
    MAX_DESCRIPTION,
    MAX_REPORTS,
    ORGANISATION_KINDS,
    REPORT_FIELDS,
    ReportField,
)
from riskml.policy.risk_types import RISK_TYPE_CODES

OBJECT: dict[str, Any] = {"type": "object"}
STR: dict[str, Any] = {"type": "string"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _field_schema(f: ReportField) -> dict[str, Any]:
    if f.kind == "choice":
        out: dict[str, Any] = {"type": "string", "enum": list(ORGANISATION_KINDS)}
    elif f.kind == "risk_types":
        out = {"type": "array", "minItems": 1, "maxItems": f.limit, "uniqueItems": True,
               "items": {"type": "string", "enum": list(RISK_TYPE_CODES)}}  # fmt: skip
    elif f.kind == "date":
        out = {"type": "string", "format": "date", "pattern": f.pattern}
    elif f.kind == "text":
        out = {"type": "string", "minLength": 1, "maxLength": MAX_DESCRIPTION}
    else:
        out = {"type": "string", "pattern": f.pattern}
    out["description"] = f"{f.description} ({f.rule_text()})"
    return out


def report_schemas() -> dict[str, Any]:
    required = [f.name for f in REPORT_FIELDS if f.need == "yes"]
    without = [f.name for f in REPORT_FIELDS if f.need == "without_household"]
    receipt = {
        "type": "object", "additionalProperties": False,
        "required": ["index", "report_id", "status"],
        "properties": {"index": {"type": "integer", "minimum": 0}, "report_id": STR,
                       "status": {"type": "string", "enum": ["stored", "already_stored"]}},
    }  # fmt: skip
    count = {"type": "integer", "minimum": 0}
    return {
        "SocialReport": {
            "type": "object", "additionalProperties": False, "required": required,
            "properties": {f.name: _field_schema(f) for f in REPORT_FIELDS},
            # without household_id, the village and the description are required
            "anyOf": [{"required": ["household_id"]}, {"required": without}],
            "description": "A risk seen by a registered social organisation, enterprise or "
            "volunteer (社会参与)",
        },
        "ReportRequest": {
            "type": "object", "additionalProperties": False, "required": ["reports"],
            "properties": {"reports": {"type": "array", "minItems": 1, "maxItems": MAX_REPORTS,
                                       "items": _ref("SocialReport")}},
        },
        "ReportsReceived": {
            "type": "object", "additionalProperties": False,
            "required": ["batch_id", "received", "stored", "already_stored", "replayed", "receipts"],
            "properties": {
                "batch_id": STR, "received": count, "stored": count, "already_stored": count,
                "replayed": {"type": "boolean", "description": "a retry with the request's "
                             "Idempotency-Key: nothing stored now, the first answer's receipts"},
                "receipts": {"type": "array", "items": receipt},
                "matched": {**count, "description": "not answered to a reporter"},
                "unmatched": {**count, "description": "not answered to a reporter"},
                "leads": {**count, "description": "not answered to a reporter"},
            },
        },
    }  # fmt: skip


def report_paths(op: Any, json_: Any, errors: Any, bearer: list, keyed: tuple) -> dict:
    # fmt: off
    return {
        "/reports": {"post": op(
            "push_reports", "reports", "A registered reporter's risk reports (社会参与): stored "
            "once; a report of a household riskml knows becomes a lead of the case loop (source "
            "social_report), the others are listed for their village", bearer,
            {"200": json_(_ref("ReportsReceived"), "received, stored, already stored, receipts"),
             **errors(*keyed, 403, 413, 422)},
            description="Roles: reporter (its counties), admin. 1 to "
            f"{MAX_REPORTS:,} reports; a report stored before (the reporter and report_id) is "
            "not stored again, and an Idempotency-Key makes a retried request get the first "
            "answer. A reporter's answer never says whether riskml knows a household. The "
            "fields are in docs/api.md (Social reports).",
            parameters=[{"name": "Idempotency-Key", "in": "header", "required": False,
                         "schema": {"type": "string", "pattern": "^[\\x21-\\x7e]{1,255}$"}}],
            requestBody={"required": True, "content": {"application/json": {"schema": _ref("ReportRequest")}}})},
        "/reports/unmatched": {"get": op(
            "unmatched_reports", "reports", "Reports riskml could not match to a household it "
            "knows, for the village", bearer,
            {"200": json_(OBJECT, "reports, count"), **errors(*keyed, 403, 422)},
            description="Roles: caseworker, township, county (their villages), admin.",
            parameters=[{"name": "village_code", "in": "query", "required": False,
                         "schema": {"type": "string", "pattern": "^[0-9]{12}$"},
                         "description": "one village (in the key's scope)"}])},
    }
    # fmt: on
