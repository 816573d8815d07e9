"""The case loop's part of the OpenAPI document, built from ``riskml.cases.fields``.

One request schema per action (its fields, the required ones, nothing else allowed), the
routes of ``riskml.service.api`` that take and read cases, and the answers they give.
"""

from __future__ import annotations

from typing import Any

from riskml.cases.fields import ALLOWED_FIELDS, FIELD_SCHEMAS, REQUIRED
from riskml.cases.machine import ACTIONS, ROLE_ACTIONS, STATUSES
from riskml.data import schema

OBJECT: dict[str, Any] = {"type": "object"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _who(action: str) -> str:
    roles = [r for r in ("caseworker", "township", "county", "admin") if action in ROLE_ACTIONS[r]]
    return ", ".join(roles)


def action_schema(action: str) -> dict[str, Any]:
    props = {name: FIELD_SCHEMAS[name] for name in ALLOWED_FIELDS[action]}
    if action in ("visit", "follow_up"):
        props["record"] = {
            "type": "object",
            "description": "the household record fields the visit collected (names of the "
            "record contract); the rest come from the household's latest record; validated "
            "like any record and scored",
            "propertyNames": {"enum": list(schema.FIELD_NAMES)},
        }
    if action == "lead":
        props["county_code"] = {"type": "string", "pattern": "^[0-9]{6}$",
                                "description": "a household riskml has not seen: its county"}  # fmt: skip
        props["village_code"] = {"type": "string", "pattern": "^[0-9]{12}$",
                                 "description": "a household riskml has not seen: its village"}  # fmt: skip
    required = list(REQUIRED.get(action, ()))
    if action in ("visit", "follow_up"):
        required.append("record")
    return {
        "type": "object",
        "additionalProperties": False,
        "properties": props,
        "required": required,
        "description": f"{action}: taken by {_who(action)}",
    }


def case_schemas() -> dict[str, Any]:
    out: dict[str, Any] = {f"CaseAction_{a}": action_schema(a) for a in ACTIONS}
    out["Case"] = {
        "type": "object",
        "description": "a case's state, rebuilt from its events, with its next step and clock",
        "properties": {
            "case_id": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
            "household_id": {"type": "string"},
            "status": {"type": "string", "enum": list(STATUSES)},
            "next_step": {"type": ["object", "null"]},
            "clock": {"type": ["string", "null"], "enum": ["overdue", "due_soon", "on_time", None]},
            "open": {"type": "boolean"},
        },
        "required": ["case_id", "household_id", "status", "next_step", "clock", "open"],
    }
    out["CaseActed"] = {
        "type": "object",
        "properties": {"case": _ref("Case"), "event": OBJECT},
        "required": ["case", "event"],
    }
    return out


def case_paths(op: Any, json_: Any, errors: Any, in_path: Any, bearer: list, keyed: tuple) -> dict:
    """The case routes, with the document's own helpers (``riskml.service.openapi``)."""
    hid = in_path("household_id", "the pseudonymous household id")
    actions = {
        "oneOf": [_ref(f"CaseAction_{a}") for a in ACTIONS],
        "description": "the body of the action named in the path",
    }
    # fmt: off
    return {
        "/households/{household_id}/case/{action}": {"post": op(
            "case_action", "cases", "One action of the case loop on the household's current case",
            bearer, {"200": json_(_ref("CaseActed"), "the action is stored; the case after it"),
                     "201": json_(_ref("CaseActed"), "a lead: a new case, or merged into the open one"),
                     "409": json_(_ref("ValidationFailure"), "the case's status does not allow it "
                                  "(the problem names the status and what is allowed now)"),
                     **errors(*keyed, 403, 404, 413, 422)},
            description="Actions: " + ", ".join(f"{a} ({_who(a)})" for a in ACTIONS) + ". "
            "An Idempotency-Key header makes a retry the same event. A visit's record is scored "
            "and stored in the decision ledger in the same transaction. 404: unknown household "
            "or out of the key's scope (one answer), or no such action.",
            parameters=[hid, in_path("action", "one of " + ", ".join(ACTIONS)),
                        {"name": "case_id", "in": "query", "required": False,
                         "schema": {"type": "string"},
                         "description": "refuse (409) unless this is the household's current case"},
                        {"name": "Idempotency-Key", "in": "header", "required": False,
                         "schema": {"type": "string", "pattern": "^[\\x21-\\x7e]{1,255}$"}}],
            requestBody={"required": True, "content": {"application/json": {"schema": actions}}})},
        "/households/{household_id}/case": {"get": op(
            "household_case", "cases", "The household's current case and its earlier cases",
            bearer, {"200": json_(OBJECT, "current case (or null) and the ids of every case"),
                     **errors(*keyed, 403, 404)},
            parameters=[hid])},
        "/households/{household_id}/case/aids": {"get": op(
            "household_case_aids", "cases", "Suggested support plan, the redacted public notice "
            "and the elimination criteria with their evidence, now", bearer,
            {"200": json_(OBJECT, "suggested_plan, notice, elimination"),
             **errors(*keyed, 403, 404)}, parameters=[hid])},
        "/cases/{case_id}": {"get": op(
            "get_case", "cases", "One case: its state and every event", bearer,
            {"200": json_(OBJECT, "case and events"), **errors(*keyed, 403, 404)},
            parameters=[in_path("case_id", "32 hex digits")])},
        "/worklist": {"get": op(
            "case_worklist", "cases", "The key's capacity-aware worklist: visits due by "
            "deadline, then new leads by expected benefit, cut at the week's capacity",
            bearer, {"200": json_(OBJECT, "fits, beyond, steps, counts, expected per village"),
                     **errors(*keyed, 403)})},
    }
    # fmt: on
