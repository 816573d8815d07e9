"""The assistance assets' part of the OpenAPI document (``POST /assets/score``), built from
``riskml.assets.observation`` (the asset-year observation schema) and ``riskml.assets.actions``."""

from __future__ import annotations

from typing import Any

from riskml.assets import contract as c
from riskml.assets import observation as ob
from riskml.assets.actions import ACTIONS
from riskml.assets.rules import RULE_IDS

OBJECT: dict[str, Any] = {"type": "object"}
PATTERNS = {"asset_id": "^[A-Za-z0-9_-]{1,64}$", "project_id": "^[A-Za-z0-9_-]{1,64}$",
            "county_code": "^[0-9]{6}$", "village_code": "^[0-9]{12}$"}  # fmt: skip


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _field_schema(f: Any) -> dict[str, Any]:
    if f.kind == "choice":
        out: dict[str, Any] = {"type": "string", "enum": list(f.choices)}
    elif f.kind == "date":
        out = {"type": "string", "format": "date", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"}
    elif f.kind == "str":
        out = {"type": "string", "maxLength": 200}
        if f.name in PATTERNS:
            out["pattern"] = PATTERNS[f.name]
    else:
        out = {"type": "integer" if f.kind == "int" else "number"}
        if f.minimum is not None:
            out["minimum"] = f.minimum
        if f.maximum is not None:
            out["maximum"] = f.maximum
    if not f.required:
        out = {"anyOf": [out, {"type": "null"}]}
    if f.doc:
        out["description"] = f.doc
    return out


def asset_schemas() -> dict[str, Any]:
    from riskml.service.assets_api import MAX_ASSETS

    props = {f.name: _field_schema(f) for f in ob.OBSERVATION_FIELDS}
    props[ob.DISTRIBUTIONS] = {
        "anyOf": [{"type": "array", "maxItems": ob.MAX_DISTRIBUTIONS,
                   "items": _ref("AssetDistribution")}, {"type": "null"}],
        "description": "the asset's income distributions up to the end of year (as the "
        "register's distribution events): checked by the distribution order and banned uses",
    }  # fmt: skip
    item = {"type": "object", "additionalProperties": False, "required": ["use", "amount"],
            "properties": {
                "use": {"type": "string", "pattern": ob.USE_ID.pattern,
                        "description": "a use of the rules file's order or banned list"},
                "amount": {"type": "number", "minimum": 0, "maximum": c.MONEY_MAX,
                           "description": "yuan"},
                "household_id": {"anyOf": [{"type": "string", "pattern": c.ID_PATTERN},
                                           {"type": "null"}],
                                 "description": "the paid household, pseudonymous"}}}  # fmt: skip
    reason = {"type": "object", "properties": {
        "feature": {"type": "string"}, "value": {"type": ["number", "null"]},
        "contribution": {"type": "number"}, "text_zh": {"type": "string"},
        "text_en": {"type": "string"}}}  # fmt: skip
    rule = {"type": "object", "properties": {
        "rule": {"type": "string", "enum": list(RULE_IDS)}, "value": {}, "threshold": {},
        "reason_zh": {"type": "string"}, "reason_en": {"type": "string"}}}  # fmt: skip
    action = {"type": "object", "properties": {
        "action": {"type": "string", "enum": list(ACTIONS)}, "text_zh": {"type": "string"},
        "text_en": {"type": "string"}, "why_zh": {"type": "string"},
        "why_en": {"type": "string"}}}  # fmt: skip
    # fmt: off
    return {
        "AssetObservation": {
            "type": "object", "additionalProperties": False, "properties": props,
            "required": [f.name for f in ob.OBSERVATION_FIELDS if f.required],
            "description": "An asset and year: the register's fields as of the end of the year "
            "and the year's figures (riskml.assets.observation); a village starts with its "
            "county; an asset and year once per request",
        },
        "AssetDistribution": {
            "type": "object", "additionalProperties": False, "required": ["date", "items"],
            "description": "one distribution of income (riskml.assets.events, distribution): "
            "its date (not after the observation's year), the year whose income it pays "
            "(default the observation's) and its items in the order paid; a year's "
            "distributions pay at most that year's income where the observation gives it",
            "properties": {
                "date": {"type": "string", "format": "date",
                         "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"},
                "year": {"anyOf": [{"type": "integer", "minimum": 1980, "maximum": 2100},
                                   {"type": "null"}]},
                "items": {"type": "array", "minItems": 1, "maxItems": ob.MAX_ITEMS,
                          "items": item},
            },
        },
        "AssetScoreRequest": {
            "type": "object", "additionalProperties": False, "required": ["assets"],
            "properties": {"assets": {"type": "array", "minItems": 1, "maxItems": MAX_ASSETS,
                                      "items": _ref("AssetObservation")}},
        },
        "AssetScore": {
            "type": "object", "properties": {
                "asset_id": {"type": "string"}, "year": {"type": "integer"},
                "county_code": {"type": "string"},
                "score": {"type": "number", "minimum": 0, "maximum": 1,
                          "description": "probability of idle or below the return floor next year"},
                "warning": {"type": "boolean", "description": "score at least 0.5"},
                "rules": {"type": "array", "items": rule}, "reasons": {"type": "array", "items": reason},
                "action": action, "model_name": {"type": "string"},
                "model_version": {"type": "string"}, "rules_version": {"type": "string"},
                "score_id": {"type": "string"},
            },
        },
        "AssetScoreResponse": {
            "type": "object", "required": ["results", "request_id"],
            "properties": {"results": {"type": "array", "items": _ref("AssetScore")},
                           "request_id": {"type": "string"}},
        },
    }
    # fmt: on


def asset_paths(op: Any, json_: Any, errors: Any, bearer: list, keyed: tuple) -> dict:
    # fmt: off
    return {
        "/assets/score": {"post": op(
            "score_assets", "assets", "Score 1 to 1,000 asset-year observations: score, asset "
            "rules fired, reasons (zh/en) and a recommended action; each answer stored", bearer,
            {"200": json_(_ref("AssetScoreResponse"), "one result per observation, in order"),
             **errors(400, *keyed, 403, 413, 415, 422)},
            description="Roles: assets (its counties), admin. Validated as strictly as /score "
            "(a 422 names the index and field; a 403 the index of each observation outside the "
            "key's counties); nothing of a refused request is stored. Scored by the champion "
            "of the asset-risk model, loaded when the service starts; without one, 503 (POST "
            "/score and readiness do not depend on it). docs/api.md, 'Assistance assets'.",
            requestBody={"required": True, "content": {"application/json": {"schema": _ref("AssetScoreRequest")}}})},
    }
    # fmt: on


def asset_page_paths(page: Any, html: dict) -> dict[str, Any]:
    """The county pages of the assets (riskml.service.pages.asset_pages)."""
    str_ = {"type": "string"}
    filters = [{"name": n, "in": "query", "required": False, "schema": str_}
               for n in ("status", "category", "subtype", "village")]  # fmt: skip
    refused = {"403": {"description": "not an assets or admin key (an HTML page)"}}
    asset = [{"name": "asset_id", "in": "path", "required": True, "description": "the asset's id",
              "schema": str_}]  # fmt: skip
    csv = {
        "description": "the register (UTF-8 with BOM)",
        "content": {"text/csv": {"schema": str_}},
    }
    # fmt: off
    return {
        "/cw/assets": page("cw_assets", "The register of the key's counties with filters and "
                           "the county summary", html, filters, refused),
        "/cw/assets.csv": page("cw_assets_csv", "The filtered register as CSV", csv, filters,
                               refused),
        "/cw/assets/{asset_id}": page("cw_asset", "An asset: events, returns chart, "
                                      "distributions, the latest score's reasons and action",
                                      html, asset, {**refused, "403": {"description": "not an "
                                      "assets or admin key, or an asset outside the key's "
                                      "counties (an HTML page)"}, "404": {"description": "no "
                                      "such asset (an HTML page)"}}),
    }
    # fmt: on
