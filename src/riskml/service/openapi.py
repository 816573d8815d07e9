"""The service's OpenAPI 3.1 document: the contract a client is generated from.

Written from the modules that implement it, never by hand: the household record is
``riskml.data.schema.HouseholdRecord.model_json_schema()`` (the model the request
validator uses), the limits come from ``riskml.service.core``, the enumerations from
the policy, scoring and reference modules, and every route lists every status code it
answers. The service serves it at ``GET /docs.json`` and ``GET /openapi.json`` (no
key: it is the public contract); ``docs/openapi.json`` is this document, regenerated
with

    python -m riskml.service.openapi > docs/openapi.json

and a test checks that the file equals what this module generates.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from typing import Any

from riskml import __version__
from riskml.data import schema
from riskml.data.reference import BASES
from riskml.data.regions import PROVINCES
from riskml.policy.risk_types import RISK_TYPES
from riskml.policy.rules.model import LEVELS as RULE_LEVELS
from riskml.scoring.decide import MONITORING_TYPES
from riskml.service.core import EXPLAIN_MODES, MAX_PROBLEMS, MAX_RECORDS
from riskml.service.openapi_alerts import alert_paths, alert_schemas
from riskml.service.openapi_assets import asset_page_paths, asset_paths, asset_schemas
from riskml.service.openapi_cases import case_paths, case_schemas
from riskml.service.openapi_regions import region_page_paths
from riskml.service.openapi_reports import report_paths, report_schemas
from riskml.store.entries import RISK_LEVELS

SESSION_COOKIE = "riskml_cw"  # riskml.service.pages.session.SESSION_COOKIE (a test checks)
HEX32 = "^[0-9a-f]{32}$"

# A made-up household (from no panel) that passes every rule of the record.
# fmt: off
EXAMPLE_RECORD: dict[str, Any] = {
    "household_id": "hh_example_0001", "period": "2025-06", "county_code": "532328",
    "village_code": "532328101201", "household_size": 4, "labor_count": 2, "elderly_count": 1,
    "children_count": 1, "students_compulsory": 1, "students_noncompulsory": 0,
    "disabled_count": 0, "chronic_ill_count": 1, "head_age": 52, "head_female": False,
    "head_education_years": 6, "ethnic_minority": True, "formerly_poor": True, "dibao": False,
    "tekun": False, "relocated": False, "income_wage": 24000.0, "income_business": 3500.0,
    "income_property": 0.0, "income_transfer": 2100.0, "migrant_workers": 1,
    "months_employed": 14.0, "medical_expense": 6800.0, "education_expense": 1200.0,
    "disaster_loss": 0.0, "debt": 15000.0, "medical_insured": True, "housing_safe": True,
    "water_safe": True, "dropout": False,
}
# fmt: on

STR: dict[str, Any] = {"type": "string"}
STRINGS: dict[str, Any] = {"type": "array", "items": STR}
OBJECT: dict[str, Any] = {"type": "object"}
BEARER = [{"bearer": []}]
SESSION = [{"session": []}]
OPEN: list[dict[str, list[str]]] = []


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _null(typ: str, **more: Any) -> dict[str, Any]:
    return {"type": [typ, "null"], **more}


def _closed(properties: dict[str, Any], required: list[str] | None = None, **more: Any) -> dict:
    """An object with exactly these keys (all required unless ``required`` says otherwise)."""
    req = list(properties) if required is None else required
    return {"type": "object", "properties": properties, "required": req,
            "additionalProperties": False, **more}  # fmt: skip


def _array(items: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {"type": "array", "items": items, **more}


# --------------------------------------------------------------------------- the record
def cross_field_rules() -> list[str]:
    """The record's rules between fields and between records, which JSON Schema cannot state."""
    rules = []
    for f in schema.FIELDS:
        if f.max_field:
            factor = "" if f.max_factor == 1 else f"{f.max_factor:g} × "
            rules.append(f"{f.name} ≤ {factor}{f.max_field}")
    return [
        *rules,
        "village_code starts with county_code",
        "the first two digits of county_code are a province code (GB/T 2260)",
        "period has a reference line in force for the record's province: the line of its "
        "year, or the latest earlier year's line carried forward as 'provisional' for at "
        "most carry_forward_months (GET /model, reference_lines)",
        "(household_id, period) appears at most once in a request",
    ]


def record_schema() -> dict[str, Any]:
    """The household record as validation defines it, with what JSON Schema can add of the rest."""
    out = copy.deepcopy(schema.HouseholdRecord.model_json_schema())
    provinces = "|".join(sorted(PROVINCES))
    # the province rule stated as a pattern (the validator checks the same codes)
    out["properties"]["county_code"]["pattern"] = f"^({provinces})[0-9]{{4}}$"
    rules = cross_field_rules()
    out["description"] = (
        "One household at one period, exactly the contract's record (docs/contract.md): "
        "every field is present (a nullable one may be null), no other key, no coercion "
        "(a number sent as a string is refused). A record that breaks any rule is refused "
        "with 422 naming its index and field. Rules between fields and records:\n"
        + "\n".join(f"- {r}" for r in rules)
    )
    out["x-riskml-rules"] = rules
    out["examples"] = [EXAMPLE_RECORD]
    return out


# --------------------------------------------------------------------------- schemas
def component_schemas() -> dict[str, Any]:
    risk_type = {"type": "string", "enum": list(RISK_TYPES)}
    hex32 = {"type": "string", "pattern": HEX32}
    problems = _array(_ref("Problem"), maxItems=MAX_PROBLEMS)
    # fmt: off
    return {
        "HouseholdRecord": record_schema(),
        "ScoreRequest": _closed({
            "households": _array(
                _ref("HouseholdRecord"), minItems=1, maxItems=MAX_RECORDS,
                description=f"1 to {MAX_RECORDS:,} records, each answered in order"),
            "explain": {"type": "string", "enum": list(EXPLAIN_MODES), "default": "flagged",
                        "description": "whose reasons to compute: the flagged households "
                                       "(default), all, or none"},
        }, required=["households"]),
        "FiredRule": _closed({
            "id": STR, "risk_type": risk_type,
            "level": {"type": "string", "enum": list(RULE_LEVELS)},
            "message_zh": STR, "message_en": STR,
            "value": _null("number", description="the measured value (null: undefined)"),
            "threshold": _null("number"),
        }),
        "Reason": _closed({
            "feature": STR, "value": _null("number"),
            "contribution": {"type": "number", "description": "log-odds it adds to the risk"},
            "risk_type": risk_type, "text_zh": STR, "text_en": STR,
        }),
        "Measure": _closed({
            "risk_type": risk_type, "risk_type_zh": STR, "risk_type_en": STR,
            "measures_zh": STRINGS, "measures_en": STRINGS,
        }),
        "ScoreResult": _closed({
            "household_id": {"type": "string", "description": "as sent"},
            "period": {"type": "string", "description": "as sent"},
            "score": {"type": "number", "minimum": 0, "maximum": 1, "description":
                      "calibrated probability of being below the line 12 months later"},
            "risk_level": {"type": "string", "enum": list(RISK_LEVELS)},
            "flagged": {"type": "boolean", "description": "a rule fired or the score reached "
                                                          "the model's operating threshold"},
            "flagged_by": _array({"type": "string", "enum": ["rules", "model"]},
                                 uniqueItems=True),
            "rules": _array(_ref("FiredRule")),
            "risk_types": _array(risk_type),
            "reasons": _array(_ref("Reason")),
            "measures": _array(_ref("Measure")),
            "monitoring_type": {"enum": [*MONITORING_TYPES.values(), None]},
            "model_name": STR, "model_version": STR, "rules_version": STR,
            "line_year": {"type": "integer",
                          "description": "the year of the reference lines this decision used"},
            "line_basis": {"type": "string", "enum": list(BASES),
                           "description": "that line's basis ('provisional': carried forward)"},
            "decision_id": {**hex32, "description": "this decision's key in the ledger"},
        }),
        "ScoreResponse": _closed({
            "results": _array(_ref("ScoreResult"), minItems=1, maxItems=MAX_RECORDS),
            "request_id": hex32,
        }),
        "Problem": _closed({
            "index": _null("integer", minimum=0,
                           description="the record's index; null: the envelope"),
            "household_id": _null("string", description="given only when it is a "
                                                        "well-formed pseudonymous id"),
            "field": STR, "problem": STR,
        }),
        "Error": _closed({"error": STR, "problems": problems,
                          "problems_total": {"type": "integer", "minimum": 0}},
                         required=["error"]),
        "ValidationFailure": _closed({
            "error": STR, "problems": {**problems, "minItems": 1},
            "problems_total": {"type": "integer", "minimum": 1},
        }, description=f"every problem found (the first {MAX_PROBLEMS} listed, all counted); "
                       "nothing of the request was scored or stored"),
        "BadBody": {"type": "object", "description": "BentoML's answer to a body it cannot read",
                    "properties": {"error": STR, "detail": {"type": "array"}},
                    "required": ["error"]},
        "Decision": {
            "type": "object",
            "description": "one stored decision: the record as received and its result",
            "properties": {
                "decision_id": hex32, "request_id": STR,
                "created_at": {"type": "string", "description": "UTC, ISO 8601"},
                "caller": {"type": "string", "description": "role:key id, never a key"},
                "household_id": STR, "period": STR, "county_code": STR, "village_code": STR,
                "model_name": _null("string"), "model_version": _null("string"),
                "rules_version": _null("string"), "score": _null("number"),
                "risk_level": _null("string"), "flagged": {"type": "boolean"},
                "flagged_by": _null("string", description="rules, model or rules+model"),
                "record": OBJECT, "result": _null("object"), "contributions": _null("object"),
                "status": {"type": "string", "enum": ["completed", "failed"]}, "errors": {},
            },
            "required": ["decision_id", "household_id", "period", "county_code",
                         "village_code", "flagged", "record", "status"],
        },
        "HouseholdDecisions": _closed({
            "household_id": STR, "decisions": _array(_ref("Decision"), minItems=1),
        }),
        "ModelInfo": {
            "type": "object",
            "properties": {
                "name": STR, "version": STR, "alias": STR, "run_id": _null("string"),
                "source": {"type": "string", "enum": ["registry", "cache"]},
                "loaded_at": STR, "trained": OBJECT, "metrics": OBJECT, "thresholds": OBJECT,
                "rules_version": STR, "reference_lines": OBJECT, "features": STRINGS,
            },
            "required": ["name", "version", "alias", "source", "thresholds", "rules_version"],
        },
        "Reloaded": _closed({
            "previous_version": _null("string"), "version": _null("string"),
            "by": {"type": "string", "description": "the admin key's id"},
        }),
        "Readiness": _closed({
            "ready": {"type": "boolean"}, "ledger_writable": {"type": "boolean"},
            "model": _null("object"), "reason": STR, "warning": STR,
            "assets": {"type": "object", "description": "the asset-risk model: its name, "
                       "version, alias and source (registry or cache), a warning when cached, "
                       "or why there is none; readiness does not depend on it"},
            "worker": {"type": "integer", "description": "the answering worker's process id"},
        }, required=["ready"]),
        "Alive": _closed({"alive": {"const": True}}),
    }
    # fmt: on


# --------------------------------------------------------------------------- responses
WHEN = {
    400: "the body is not UTF-8 text, or is a form (BentoML's answer)",
    401: "no key, or an unknown key",
    403: "the key's role may not do this, or the household is outside its scope",
    404: "no such decision or household",
    415: "the body is not sent as JSON (Content-Type: application/json, or none)",
    413: "the body is over the service's limit (RISKML_MAX_BODY_BYTES, 10 MiB by default); "
    "nothing was scored or stored",
    422: "a malformed envelope or record, a duplicate (household_id, period), or a period "
    "without a reference line in force",
    409: "a record of a household registered at another county or village (moving it is an "
    "admin's act: POST /admin/households/{household_id}/move); nothing was scored",
    429: "the service's concurrency cap is reached; retry later",
    503: "no model loaded, the ledger unavailable, or the service starting",
    504: "not answered within the service's timeout (60 s)",
}
KEYED = (401, 429, 503)  # every route behind the key guard


def _json(schema_: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema_}}}


def _text(media: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {media: {"schema": STR}}}


def _errors(*codes: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for code in codes:
        schema_ = {400: _ref("BadBody"), 422: _ref("ValidationFailure")}.get(code, _ref("Error"))
        out[str(code)] = _json(schema_, WHEN[code])
    if "401" in out:
        bearer = {"required": True, "schema": {"type": "string", "const": "Bearer"}}
        out["401"]["headers"] = {"WWW-Authenticate": bearer}
    return out


def _op(op_id: str, tag: str, summary: str, security: list, responses: dict, **more) -> dict:
    return {"operationId": op_id, "summary": summary, "tags": [tag], "security": security,
            "responses": dict(sorted(responses.items())), **more}  # fmt: skip


def _in_path(name: str, description: str, example: str | None = None) -> dict[str, Any]:
    out = {"name": name, "in": "path", "required": True, "description": description,
           "schema": STR}  # fmt: skip
    if example is not None:
        out["example"] = example
    return out


def _in_query(name: str, **schema_: Any) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema_ or STR}


def _score_examples() -> tuple[dict[str, Any], dict[str, Any]]:
    """A request with the example record, and the 422 the validator answers to a spoilt copy."""
    bad = dict(EXAMPLE_RECORD, income_wage=-5.0, head_age=140)
    problems = [
        {"index": p.row, "household_id": p.household_id, "field": p.field, "problem": p.rule}
        for p in schema.record_problems([bad])
    ]
    request = {"households": [EXAMPLE_RECORD], "explain": "flagged"}
    refused = {
        "error": f"{len(problems)} problem(s) in 1 record(s); nothing was scored",
        "problems": problems,
        "problems_total": len(problems),
    }
    return (
        {"one_record": {"summary": "one household, reasons if flagged", "value": request}},
        {"out_of_range": {"summary": "a record out of range", "value": refused}},
    )


def _score() -> dict[str, Any]:
    request, refused = _score_examples()
    ok = _json(
        _ref("ScoreResponse"),
        "one result per record, in order; every result is in the decision ledger (under its "
        "decision_id) before the answer is sent",
    )
    op = _op(
        "score", "scoring", "Score 1 to 1,000 household records", BEARER,
        {"200": ok, **_errors(400, *KEYED, 403, 409, 413, 415, 422, 504)},
        description="Rules beside the calibrated score: decision, risk types, reasons (zh/en), "
        "measures and monitoring type per household. Roles: scorer, admin. A refused request "
        "scores and stores nothing.",
        requestBody={"required": True, "content": {"application/json": {
            "schema": _ref("ScoreRequest"), "examples": request}}},
        parameters=[{
            "name": "Idempotency-Key", "in": "header", "required": False,
            "description": "a retry with the same key and body (same caller) is answered with "
            "the decisions stored the first time, and stores nothing; the same key with another "
            "body is a 422 on Idempotency-Key",
            "schema": {"type": "string", "pattern": "^[!-~]{1,255}$"},
        }],
    )  # fmt: skip
    op["responses"]["422"]["content"]["application/json"]["examples"] = refused
    op["responses"]["200"]["headers"] = {
        "Idempotent-Replayed": {
            "description": "true when the answer is a stored one (a retry with the same key)",
            "schema": {"type": "string", "const": "true"},
        }
    }
    # where a client reads what it just scored
    op["responses"]["200"]["links"] = {
        "first_decision": {
            "operationId": "get_decision",
            "parameters": {"decision_id": "$response.body#/results/0/decision_id"},
        },
        "first_household": {
            "operationId": "household_decisions",
            "parameters": {"household_id": "$response.body#/results/0/household_id"},
        },
    }
    return op


def _code(name: str) -> dict[str, Any]:
    field_ = next(f for f in schema.FIELDS if f.name == name)
    return {"type": "string", "pattern": field_.pattern}


MOVE = {
    "type": "object", "additionalProperties": False,
    "required": ["county_code", "village_code", "reason"],
    "properties": {
        "county_code": _code("county_code"), "village_code": _code("village_code"),
        "reason": {"type": "string", "minLength": 1, "maxLength": 500, "pattern": "\\S"},
    },
    "x-riskml-rules": ["village_code starts with county_code", "county_code's first two digits are a province"],
}  # fmt: skip
MOVED = {
    "type": "object",
    "required": ["household_id", "to_county", "to_village", "reason", "created_at"],
    "properties": {
        "household_id": STR, "from_county": {"type": ["string", "null"]},
        "from_village": {"type": ["string", "null"]}, "to_county": STR, "to_village": STR,
        "reason": STR, "created_at": STR,
    },
}  # fmt: skip


def _api_paths() -> dict[str, Any]:
    probe = "No key; exempt from the concurrency cap."
    readiness = _ref("Readiness")
    doc = _op("openapi", "contract", "This document (OpenAPI 3.1)", OPEN,
              {"200": _json(OBJECT, "the OpenAPI document")},
              description="No key: the public contract.")  # fmt: skip
    # fmt: off
    return {
        "/score": {"post": _score()},
        "/model": {"get": _op(
            "model_info", "model", "The model in service: version, alias, trained periods, "
            "metrics, thresholds, rules version and reference lines", BEARER,
            {"200": _json(_ref("ModelInfo"), "the model in service"), **_errors(*KEYED)},
            description="Any valid key.")},
        "/decisions/{decision_id}": {"get": _op(
            "get_decision", "decisions", "One stored decision", BEARER,
            {"200": _json(_ref("Decision"), "the decision"), **_errors(*KEYED, 403, 404)},
            description="Roles: caseworker (in scope), admin. Every read is in the access log.",
            parameters=[_in_path("decision_id", "a result's decision_id (32 hex digits)")])},
        "/households/{household_id}/decisions": {"get": _op(
            "household_decisions", "decisions", "A household's stored decisions, oldest first",
            BEARER, {"200": _json(_ref("HouseholdDecisions"), "the household's decisions"),
                     **_errors(*KEYED, 403, 404)},
            description="Roles: caseworker (in scope of the latest decision), admin.",
            parameters=[_in_path("household_id", "the pseudonymous household id",
                                 EXAMPLE_RECORD["household_id"])])},
        "/admin/reload": {"post": _op(
            "admin_reload", "admin", "Switch to the alias's current model version without "
            "dropping requests", BEARER,
            {"200": _json(_ref("Reloaded"), "reloaded"), **_errors(*KEYED, 403, 413)},
            description="Role: admin. No body. 503: the reload failed; the previous version "
            "still serves.")},
        "/admin/households/{household_id}/move": {"post": _op(
            "move_household", "admin", "Move a household to another county and village",
            BEARER, {"200": _json(MOVED, "moved; kept in the ledger (insert-only)"),
                     **_errors(*KEYED, 403, 404, 413, 422)},
            description="Role: admin. A scorer's record of a household at another place than "
            "where it is registered is refused (409) until an admin moves it; its history and "
            "its caseworkers' view move with it. 404: no such household.",
            parameters=[_in_path("household_id", "the pseudonymous household id")],
            requestBody={"required": True, "content": {"application/json": {"schema": MOVE}}},
        )},
        "/healthz": {"get": _op("healthz", "probes", "Alive", OPEN,
                                {"200": _json(_ref("Alive"), "the process answers")},
                                description=probe)},
        "/livez": {"get": _op("livez", "probes", "Alive (BentoML's liveness probe)", OPEN,
                              {"200": _text("text/plain", "the process answers")},
                              description=probe)},
        "/readyz": {"get": _op(
            "readyz", "probes", "Ready: a model loaded and the ledger writable", [{}, *BEARER],
            {"200": _json(readiness, "ready (with an admin key: a warning when serving the "
                          "cached copy)"),
             "503": _json(readiness, "not ready (with an admin key: why)")},
            description="No key needed; exempt from the concurrency cap. Without an admin key "
            "the answer is only `ready`; with one, also the model, the ledger and the reasons.")},
        "/metrics": {"get": _op(
            "metrics", "probes", "Prometheus metrics", BEARER,
            {"200": _text("text/plain", "Prometheus text format"), **_errors(401, 403, 503)},
            description="Roles: admin, metrics; exempt from the concurrency cap. Series are "
            "labelled by route template (`/households/{household_id}/decisions`; `unmatched` "
            "for a path the service does not serve) and status, never by path.")},
        "/docs.json": {"get": {**doc, "operationId": "openapi_docs"}},
        "/openapi.json": {"get": doc},
        # BentoML's own pages
        "/": {"get": _op("index", "bentoml", "BentoML's index page (renders this document)",
                         BEARER, {"200": _text("text/html", "the page"), **_errors(*KEYED)})},
        "/schema.json": {"get": _op(
            "bentoml_schema", "bentoml", "BentoML's service schema, for BentoML's clients",
            BEARER, {"200": _json(OBJECT, "the schema"), **_errors(*KEYED)})},
        "/static_content/{path}": {"get": _op(
            "bentoml_static", "bentoml", "The index page's assets", BEARER,
            {"200": {"description": "the asset"}, "404": {"description": "no such asset"},
             **_errors(*KEYED)}, parameters=[_in_path("path", "an asset's file name")])},
    }
    # fmt: on


def _page_paths() -> dict[str, Any]:
    """The caseworkers' HTML pages: a session cookie from ``POST /cw/login``, not a bearer key."""
    tag = "caseworker pages"
    html = _text("text/html", "the page")
    busy = _errors(429)
    unavailable = {"description": "the ledger is unavailable (an HTML page)"}
    lang = _in_query("lang", type="string", enum=["zh", "en"])
    filters = [_in_query(n) for n in ("village", "level", "risk_type", "show")]
    household = [_in_path("household_id", "the pseudonymous household id")]
    forbidden = {"403": {"description": "outside the key's scope, or unknown (the same answer)"}}
    to_worklist = {"303": {"description": "to /cw/worklist"}, **busy}
    login_form = {"application/x-www-form-urlencoded": {"schema": {
        "type": "object", "properties": {"key": STR, "next": STR}, "required": ["key"]}}}  # fmt: skip

    def page(op_id: str, summary: str, ok: dict, params: list, more: dict | None = None) -> dict:
        responses = {"200": ok, "303": {"description": "no session: to /cw/login"},
                     "503": unavailable, **busy, **(more or {})}  # fmt: skip
        return {"get": _op(op_id, tag, summary, SESSION, responses, parameters=[*params, lang])}

    # fmt: off
    return {
        "/cw": {"get": _op("cw_home", tag, "To the worklist", OPEN, to_worklist)},
        "/cw/": {"get": _op("cw_home_slash", tag, "To the worklist", OPEN, to_worklist)},
        "/cw/login": {
            "get": _op("cw_login_form", tag, "The login form (a caseworker, township, county, region or admin key, once)",
                       OPEN, {"200": html, "303": {"description": "already logged in"}, **busy},
                       parameters=[_in_query("next"), lang]),
            "post": _op("cw_login", tag, "Log in: sets the session cookie", OPEN, {
                "303": {"description": "logged in: to `next` or the worklist"},
                "401": {"description": "unknown key (the form again)"},
                "403": {"description": "a scorer key may not log in"},
                "503": unavailable, **_errors(413, 429),
            }, requestBody={"required": True, "content": login_form}),
        },
        "/cw/logout": {"post": _op("cw_logout", tag, "Log out", OPEN,
                                   {"303": {"description": "to /cw/login"}, **_errors(413, 429)})},
        "/cw/static/{name}": {"get": _op(
            "cw_static", tag, "The pages' stylesheet and script", OPEN,
            {"200": {"description": "the file"}, "404": _text("text/plain", "no such file"),
             **busy}, parameters=[_in_path("name", "style.css, print.js or region.css")])},
        "/cw/worklist": page("cw_worklist", "The worklist of the key's villages", html, filters),
        "/cw/worklist.csv": page("cw_worklist_csv", "The worklist as CSV (UTF-8 with BOM)",
                                 _text("text/csv", "the worklist"), filters),
        "/cw/households/{household_id}": page(
            "cw_household", "A household's explanation page", html, household, forbidden),
        "/cw/households/{household_id}/sheet": page(
            "cw_household_sheet", "A household's printable visit sheet", html, household,
            forbidden),
        "/cw/cases": page("cw_cases", "The role's capacity-aware case list (due first, then new "
                          "leads by expected benefit, cut at the week's capacity)", html, []),
        "/cw/cases/{household_id}": page(
            "cw_case", "A household's case: status, next step and deadline, history, the forms "
            "of the actions allowed now", html, household, forbidden),
        "/cw/cases/{household_id}/{action}": {"post": _op(
            "cw_case_action", tag, "A case action from its form (URL-encoded)", SESSION, {
                "303": {"description": "saved: to the case page; or no session: to /cw/login"},
                "400": {"description": "not a form, or no such action (an HTML page)"},
                "403": {"description": "another site's post, a role that may not act, or a "
                        "household outside the key's scope (an HTML page)"},
                "409": {"description": "the case's status does not allow it (the case page "
                        "with the problem)"},
                "422": {"description": "a field is missing or wrong (the case page with each "
                        "problem beside its field)"},
                "503": unavailable, **_errors(413, 429)},
            parameters=[*household, _in_path("action", "a case action (docs/cases.md)"), lang],
            requestBody={"required": True, "content": {"application/x-www-form-urlencoded": {
                "schema": OBJECT}}})},
        **region_page_paths(page, html),
        **asset_page_paths(page, html),
    }
    # fmt: on


# --------------------------------------------------------------------------- the document
@cache
def _document_text() -> str:
    doc = {
        "openapi": "3.1.0",
        "info": {
            "title": "riskml household risk scoring API",
            "version": __version__,
            "summary": "Which rural households are about to fall (back) into poverty",
            "description": (
                "Monitoring systems score household records (POST /score); caseworkers and "
                "administrators read the stored decisions. The record is docs/contract.md; "
                "docs/api.md explains the routes and errors. Every error is JSON with an "
                f"`error` sentence; a 422 lists `problems` (the first {MAX_PROBLEMS}) and "
                "counts them all (`problems_total`). Nothing of a refused request is scored or "
                "stored."
            ),
        },
        "tags": [
            {"name": name}
            for name in ("scoring", "decisions", "cases", "alerts", "reports", "assets", "model",
                         "admin", "probes", "contract", "caseworker pages", "bentoml")
        ],  # fmt: skip
        "paths": {
            **_api_paths(),
            **case_paths(_op, _json, _errors, _in_path, BEARER, KEYED),
            **alert_paths(_op, _json, _errors, BEARER, KEYED),
            **asset_paths(_op, _json, _errors, BEARER, KEYED),
            **report_paths(_op, _json, _errors, BEARER, KEYED),
            **_page_paths(),
        },
        "components": {
            "schemas": {**component_schemas(), **case_schemas(), **alert_schemas(),
                        **report_schemas(), **asset_schemas()},
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "an API key "
                           "from `riskml keys add` (roles scorer, caseworker, township, county, "
                           "department, reporter, admin, metrics)"},
                "session": {"type": "apiKey", "in": "cookie", "name": SESSION_COOKIE,
                            "description": "the caseworker pages' signed session cookie"},
            },
        },
    }  # fmt: skip
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def openapi_text() -> str:
    """The document as ``docs/openapi.json`` holds it (UTF-8 JSON, indented, a final newline)."""
    return _document_text()


def openapi_document() -> dict[str, Any]:
    """The service's OpenAPI 3.1 document (a fresh copy)."""
    return json.loads(_document_text())


if __name__ == "__main__":
    import sys

    sys.stdout.write(openapi_text())
