"""The OpenAPI document is the contract: valid OpenAPI 3.1, written from the schema module,
the same file as docs/openapi.json, served by the live service, and true of it (every route
it answers is in the document, every documented route answers one of its documented codes,
the example scores).
"""

from __future__ import annotations

import copy
import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from riskml.data import schema
from riskml.service.openapi import EXAMPLE_RECORD, openapi_document, openapi_text
from tests.code.service_harness import Server, start_server
from tests.conftest import ARTIFACTS

ROOT = Path(__file__).resolve().parents[2]
DOC_FILE = ROOT / "docs" / "openapi.json"
METHODS = ("get", "put", "post", "delete", "patch", "head", "options")
# BentoML's own routes on the service's Starlette app (besides the /score API and the FastAPI
# app mounted at /): its probes, index page, assets and service schema (its /metrics is off)
BENTOML_ROUTES = {
    "/": "get", "/docs.json": "get", "/schema.json": "get", "/livez": "get", "/healthz": "get",
    "/readyz": "get", "/static_content/{path}": "get",
}  # fmt: skip


# --------------------------------------------------------------------------- helpers
def schema_validator(doc: dict[str, Any], name: str) -> jsonschema.Draft202012Validator:
    """A JSON Schema validator for one of the document's component schemas, $refs resolved."""
    registry = Registry().with_resource(
        "urn:riskml:openapi", Resource.from_contents(doc, default_specification=DRAFT202012)
    )
    return jsonschema.Draft202012Validator(
        {"$ref": f"urn:riskml:openapi#/components/schemas/{name}"}, registry=registry
    )


def response_schema(doc: dict, path: str, method: str, status: int) -> dict[str, Any] | None:
    resp = doc["paths"][path][method]["responses"][str(status)]
    return resp.get("content", {}).get("application/json", {}).get("schema")


def check_against(doc: dict, schema_: dict[str, Any], body: Any) -> None:
    """Raise if ``body`` does not satisfy ``schema_`` (a $ref into the document, or inline)."""
    if "$ref" in schema_:
        schema_validator(doc, schema_["$ref"].rsplit("/", 1)[1]).validate(body)
    else:
        jsonschema.Draft202012Validator(schema_).validate(body)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def call(
    server: Server,
    method: str,
    path: str,
    token: str | None = None,
    body: bytes | None = None,
    content_type: str = "application/json",
) -> tuple[int, dict[str, str], bytes]:
    """One request, redirects not followed: status, headers (lower-case names), body."""
    req = urllib.request.Request(server.url + path, data=body, method=method.upper())
    if body is not None:
        req.add_header("Content-Type", content_type)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(req, timeout=60) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, {k.lower(): v for k, v in err.headers.items()}, err.read()


def start_live_service(session_dir: Path, name: str, **env: str) -> tuple[Server, dict, dict]:
    """A real service with its own keys file, ledger and model cache: (server, keys, env)."""
    from riskml.service.access import add_key

    keys_path = session_dir / f"{name}-keys.yaml"
    keys_path.unlink(missing_ok=True)
    keys = {
        "scorer": add_key(keys_path, f"{name}-scorer", "scorer"),
        "admin": add_key(keys_path, f"{name}-admin", "admin"),
        "caseworker": add_key(keys_path, f"{name}-cw", "caseworker", counties=["532328"]),
    }
    server_env = {
        "RISKML_API_KEYS_FILE": str(keys_path),
        "RISKML_LEDGER_URL": f"sqlite:///{session_dir / f'{name}-ledger.db'}",
        "RISKML_MODEL_CACHE": str(session_dir / f"{name}-model-cache"),
        **env,
    }
    srv = start_server(server_env, ARTIFACTS / f"service-{name}.log")
    deadline = time.time() + 60
    while time.time() < deadline and srv.request("GET", "/readyz")[0] != 200:
        time.sleep(0.3)
    return srv, keys, server_env


def _operations(doc: dict) -> list[tuple[str, str]]:
    return [(p, m) for p, item in doc["paths"].items() for m in item if m in METHODS]


# --------------------------------------------------------------------------- the document
@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    return openapi_document()


def test_docs_openapi_json_is_the_generated_document():
    assert DOC_FILE.read_text(encoding="utf-8") == openapi_text(), (
        "docs/openapi.json is stale: python -m riskml.service.openapi > docs/openapi.json"
    )


def test_the_document_is_valid_openapi_3_1(doc):
    from schemathesis.specs.openapi.definitions import OPENAPI_31_VALIDATOR

    assert doc["openapi"].startswith("3.1")
    errors = [
        f"{list(e.instance_path)}: {e.message}" for e in OPENAPI_31_VALIDATOR.iter_errors(doc)
    ]
    assert not errors, errors
    broken = copy.deepcopy(doc)
    broken["paths"]["/score"]["post"]["responses"] = "none"
    assert list(OPENAPI_31_VALIDATOR.iter_errors(broken)), "the validator checks nothing"
    for name, component in doc["components"]["schemas"].items():
        jsonschema.Draft202012Validator.check_schema(component)  # each a valid JSON Schema
        schema_validator(doc, name)  # and its $refs resolve
    ids = [doc["paths"][p][m]["operationId"] for p, m in _operations(doc)]
    assert len(ids) == len(set(ids))
    text = json.dumps(doc)
    for ref in {part.split('"')[0] for part in text.split('"$ref": "#/components/schemas/')[1:]}:
        assert ref in doc["components"]["schemas"], ref
    schemes = set(doc["components"]["securitySchemes"])
    for path, method in _operations(doc):
        op = doc["paths"][path][method]
        assert op["responses"], (path, method)
        assert {name for req in op["security"] for name in req} <= schemes


def test_the_record_is_the_validators_record(doc):
    from riskml.data.regions import PROVINCES

    record = doc["components"]["schemas"]["HouseholdRecord"]
    source = schema.HouseholdRecord.model_json_schema()
    assert record["required"] == list(schema.FIELD_NAMES) == source["required"]
    assert record["additionalProperties"] is False
    for name in schema.FIELD_NAMES:
        if name != "county_code":  # the province rule is added to its pattern
            assert record["properties"][name] == source["properties"][name], name
    county = record["properties"]["county_code"]["pattern"]
    assert all(f"|{p}|" in f"|{county[2:-10]}|" for p in PROVINCES)
    assert len(record["x-riskml-rules"]) >= 8  # the rules between fields, stated in words


def test_the_example_record_is_valid_by_both(doc):
    assert list(EXAMPLE_RECORD) == list(schema.FIELD_NAMES)
    assert schema.record_problems([EXAMPLE_RECORD]) == []
    schema_validator(doc, "HouseholdRecord").validate(EXAMPLE_RECORD)
    request = doc["paths"]["/score"]["post"]["requestBody"]["content"]["application/json"]
    for example in request["examples"].values():
        schema_validator(doc, "ScoreRequest").validate(example["value"])
    refused = doc["paths"]["/score"]["post"]["responses"]["422"]["content"]["application/json"]
    for example in refused["examples"].values():
        schema_validator(doc, "ValidationFailure").validate(example["value"])


def _spoilt(field: schema.Field) -> list[Any]:
    """Values the record's rules refuse for ``field``, whatever the other fields."""
    wrong_type = {"str": 12, "int": "3", "float": "3.5", "bool": "yes"}[field.kind]
    values = [wrong_type, {"x": 1}]
    if not field.nullable:
        values.append(None)
    if field.kind == "int":
        values.append(2.5)
    if field.minimum is not None:
        values.append(field.minimum - 1)
    if field.maximum is not None:
        values.append(field.maximum + 1)
    if field.pattern:
        values += ["", "2０24-06" if field.name == "period" else "x y"]
    return values


def test_the_document_refuses_what_the_validator_refuses(doc):
    """Field by field, a value the validator refuses breaks the document's record schema too,
    and the document's schema accepts the record the validator accepts."""
    check = schema_validator(doc, "HouseholdRecord")
    tried = 0
    for field in schema.FIELDS:
        for value in _spoilt(field):
            record = dict(EXAMPLE_RECORD, **{field.name: value})
            problems = schema.record_problems([record])
            assert any(p.field == field.name for p in problems), (field.name, value)
            assert not check.is_valid(record), (field.name, value)
            tried += 1
    unknown = {**EXAMPLE_RECORD, "name": "Zhang San"}
    assert schema.record_problems([unknown]) and not check.is_valid(unknown)
    missing = {k: v for k, v in EXAMPLE_RECORD.items() if k != "income_wage"}
    assert schema.record_problems([missing]) and not check.is_valid(missing)
    other_province = dict(EXAMPLE_RECORD, county_code="990101", village_code="990101001001")
    assert schema.record_problems([other_province]) and not check.is_valid(other_province)
    assert tried > 100


def test_the_result_schema_is_what_decide_answers(doc, trained):
    """Results of flagged and green households, explained or not, satisfy ScoreResult exactly."""
    from riskml.policy.rules import default_ruleset
    from riskml.scoring.decide import ModelInfo, decide

    frame = trained.test_frame.sort_values("score")
    records = schema.to_json_records(frame.head(40)) + schema.to_json_records(frame.tail(40))
    check = schema_validator(doc, "ScoreResult")
    info = ModelInfo("household-risk", "7")
    seen = set()
    for explain in ("flagged", "all", "none"):
        results = decide(
            schema.records_to_frame(records), None, trained.model, default_ruleset(), info,
            explain=explain,
        )  # fmt: skip
        for r in results:
            r.pop("contributions", None)  # kept in the ledger, not answered
            check.validate(r)
            seen.add((r["flagged"], bool(r["reasons"]), bool(r["rules"])))
    assert (True, True, True) in seen and (False, False, False) in seen
    result = doc["components"]["schemas"]["ScoreResult"]
    assert {"line_year", "line_basis"} <= set(result["required"])
    assert result["properties"]["line_basis"]["enum"] == [
        "published", "announced", "estimate", "provisional",
    ]  # fmt: skip


def test_every_route_lists_the_codes_it_answers(doc):
    for path, method in _operations(doc):
        codes = set(doc["paths"][path][method]["responses"])
        if doc["paths"][path][method]["security"] == [{"bearer": []}]:
            assert {"401", "503"} <= codes, (path, method)
        if path not in ("/healthz", "/livez", "/readyz", "/metrics", "/docs.json", "/openapi.json"):
            assert "429" in codes, (path, method)  # the concurrency cap
        if method == "post":
            assert "413" in codes, (path, method)
    score = set(doc["paths"]["/score"]["post"]["responses"])
    assert {"200", "400", "401", "403", "413", "422", "429", "503"} <= score
    for path in ("/decisions/{decision_id}", "/households/{household_id}/decisions"):
        assert {"200", "401", "403", "404", "429", "503"} <= set(
            doc["paths"][path]["get"]["responses"]
        )
    assert {"200", "401", "403", "503"} <= set(doc["paths"]["/admin/reload"]["post"]["responses"])


def test_the_session_cookie_is_the_pages_cookie(doc):
    from riskml.service.pages.session import SESSION_COOKIE

    assert doc["components"]["securitySchemes"]["session"]["name"] == SESSION_COOKIE


# --------------------------------------------------------------------------- the live service
@pytest.fixture(scope="module")
def live(session_dir, registered):
    srv, keys, env = start_live_service(session_dir, "openapi")
    yield srv, keys, env
    srv.stop()


def _app_routes() -> dict[str, set[str]]:
    """Every (path, methods) the service's app answers: BentoML's, its /score API, the FastAPI app."""
    from fastapi.routing import APIRoute

    from riskml.service import api
    from riskml.service.bento import HouseholdRisk

    api.mount_pages()
    routes: dict[str, set[str]] = {p: {m} for p, m in BENTOML_ROUTES.items()}
    routes["/openapi.json"] = {"get"}
    for method in HouseholdRisk.apis.values():
        routes.setdefault(method.route, set()).add("post")
    pending = list(api.app.routes)
    while pending:
        route = pending.pop()
        if isinstance(route, APIRoute):
            routes.setdefault(route.path, set()).update(m.lower() for m in route.methods)
        elif hasattr(route, "original_router"):  # an included router (the pages)
            pending += route.original_router.routes
        else:
            raise AssertionError(f"a route of an unknown kind: {route!r}")
    return routes


@pytest.mark.slow
def test_the_service_serves_the_document_without_a_key(live, doc):
    srv, _, _ = live
    for path in ("/docs.json", "/openapi.json"):
        status, headers, body = call(srv, "GET", path)
        assert status == 200 and headers["content-type"].startswith("application/json")
        assert json.loads(body) == doc


@pytest.mark.slow
def test_every_route_the_service_answers_is_in_the_document(live, doc):
    srv, keys, _ = live
    routes = _app_routes()
    documented = {p: {m for m in item if m in METHODS} for p, item in doc["paths"].items()}
    assert routes == documented
    # BentoML's routes are there on the live service (a path it does not know is a 404)
    for path in BENTOML_ROUTES:
        concrete = path.replace("{path}", "index.css")
        assert call(srv, "GET", concrete, keys["admin"])[0] == 200, path
    status, headers, body = call(srv, "GET", "/no-such-route", keys["admin"])
    assert status == 404 and json.loads(body) == {"error": "no such route"}


def _request_for(
    doc, path: str, method: str, keys: dict
) -> tuple[str, str | None, bytes | None, str]:
    op = doc["paths"][path][method]
    concrete = path
    for param in op.get("parameters", []):
        if param["in"] == "path":
            concrete = concrete.replace(
                "{" + param["name"] + "}", "style.css" if param["name"] == "name" else "x0"
            )
    token = keys["admin"] if op["security"] == [{"bearer": []}] else None
    body, ctype = None, "application/json"
    if path == "/score":
        body = json.dumps({"households": [EXAMPLE_RECORD]}).encode()
    elif path == "/cw/login":
        body, ctype = b"key=rk_not_a_key&next=/cw/worklist", "application/x-www-form-urlencoded"
    elif method == "post":
        body = b""
    return concrete, token, body, ctype


@pytest.mark.slow
def test_every_documented_operation_answers_a_documented_code(live, doc):
    srv, keys, _ = live
    for path, method in _operations(doc):
        concrete, token, body, ctype = _request_for(doc, path, method, keys)
        status, headers, raw = call(srv, method, concrete, token, body, ctype)
        responses = doc["paths"][path][method]["responses"]
        assert str(status) in responses, (path, method, status, raw[:200])
        schema_ = response_schema(doc, path, method, status)
        if schema_ is not None:
            assert headers["content-type"].startswith("application/json"), (path, status)
            check_against(doc, schema_, json.loads(raw))
        if token:  # and without its key: 401, as documented
            status, headers, raw = call(srv, method, concrete, None, body, ctype)
            assert status == 401 and headers.get("www-authenticate") == "Bearer", path
            check_against(doc, response_schema(doc, path, method, 401), json.loads(raw))


@pytest.mark.slow
def test_the_example_scores_as_the_document_says(live, doc):
    srv, keys, env = live
    from riskml.store.ledger import Ledger

    ledger = Ledger(env["RISKML_LEDGER_URL"])
    request = doc["paths"]["/score"]["post"]["requestBody"]["content"]["application/json"]
    before = ledger.count()
    for example in request["examples"].values():
        status, _, raw = call(
            srv, "POST", "/score", keys["scorer"], json.dumps(example["value"]).encode()
        )
        assert status == 200, raw[:500]
        body = json.loads(raw)
        schema_validator(doc, "ScoreResponse").validate(body)
        assert [r["household_id"] for r in body["results"]] == ["hh_example_0001"]
    assert ledger.count() == before + len(request["examples"])
    refused = doc["paths"]["/score"]["post"]["responses"]["422"]["content"]["application/json"]
    spoilt = dict(EXAMPLE_RECORD, income_wage=-5.0, head_age=140)
    status, _, raw = call(
        srv, "POST", "/score", keys["scorer"], json.dumps({"households": [spoilt]}).encode()
    )
    assert status == 422
    body = json.loads(raw)
    schema_validator(doc, "ValidationFailure").validate(body)
    (example,) = refused["examples"].values()
    assert body["problems"] == example["value"]["problems"]
    assert ledger.count() == before + len(request["examples"])


@pytest.mark.slow
def test_a_body_over_the_default_limit_is_413(live, doc):
    from riskml.service.middleware import DEFAULT_MAX_BODY_BYTES

    srv, keys, env = live
    from riskml.store.ledger import Ledger

    ledger = Ledger(env["RISKML_LEDGER_URL"])
    before = ledger.count()
    body = json.dumps({"households": [EXAMPLE_RECORD]}).encode()
    padded = body[:-1] + b" " * (DEFAULT_MAX_BODY_BYTES + 1 - len(body)) + b"}"
    assert len(padded) == DEFAULT_MAX_BODY_BYTES + 1
    status, headers, raw = call(srv, "POST", "/score", keys["scorer"], padded)
    assert status == 413 and headers["content-type"].startswith("application/json")
    check_against(doc, response_schema(doc, "/score", "post", 413), json.loads(raw))
    exact = body[:-1] + b" " * (DEFAULT_MAX_BODY_BYTES - len(body)) + b"}"
    assert call(srv, "POST", "/score", keys["scorer"], exact)[0] == 200
    assert ledger.count() == before + 1
