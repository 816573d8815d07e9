"""The case loop's JSON API through FastAPI's TestClient on a real ScoringService: the whole path
from a lead to elimination and rollback, every refusal naming its field, scope, idempotency,
the visit's record scored into the decision history, and the case metrics."""

from __future__ import annotations

import os

import pytest
from fastapi.testclient import TestClient

from riskml.service import api as web
from riskml.service import state
from riskml.service.access import add_key
from riskml.service.core import ScoringService, Settings
from tests.code.test_pages import _json_record

COUNTY = "532328"
TOWNSHIP = "532328101"
VILLAGE = "532328101201"
OTHER_VILLAGE = "530326101201"


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    path = tmp_path_factory.mktemp("case-keys") / "api_keys.yaml"
    return {
        "path": path,
        "scorer": add_key(path, "platform", "scorer"),
        "admin": add_key(path, "ops", "admin"),
        "metrics": add_key(path, "prom", "metrics"),
        "cw": add_key(path, "grid-1", "caseworker", villages=[VILLAGE]),
        "cw_other": add_key(path, "grid-9", "caseworker", villages=[OTHER_VILLAGE]),
        "township": add_key(path, "town-1", "township", townships=[TOWNSHIP]),
        "county": add_key(path, "county-1", "county", counties=[COUNTY]),
    }


@pytest.fixture(scope="module")
def base_record(sample_panel):
    row = sample_panel[sample_panel["county_code"] == COUNTY].iloc[0]
    return _json_record(row)


@pytest.fixture(scope="module")
def client(registered, keys, base_record, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("case-service")
    svc = ScoringService(
        Settings(
            tracking_uri=os.environ["MLFLOW_TRACKING_URI"],
            cache_dir=tmp / "model-cache",
            ledger_url=f"sqlite:///{tmp / 'ledger.db'}",
            keys_file=str(keys["path"]),
        )
    )
    assert svc.loaded is not None
    previous = state.bound()
    web.bind(svc)
    c = TestClient(web.app)
    # two households of the village scored: one low income, one fine
    for hid, wage in (("case_hh_1", 500.0), ("case_hh_2", 80000.0)):
        rec = dict(base_record, household_id=hid, village_code=VILLAGE, period="2025-06",
                   income_wage=wage)  # fmt: skip
        reply = svc.score({"households": [rec]}, f"Bearer {keys['scorer']}")
        assert reply.status == 200, reply.body
    yield c
    state.bind(previous)


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _act(client, keys, who, hid, action, body, key: str | None = None):
    headers = _auth(keys[who]) | ({"Idempotency-Key": key} if key else {})
    return client.post(f"/households/{hid}/case/{action}", json=body, headers=headers)


def test_the_whole_loop_from_lead_to_confirmation(client, keys, base_record):
    hid = "case_hh_1"
    r = _act(client, keys, "cw", hid, "lead", {"source": "cadre_visit"})
    assert r.status_code == 201, r.text
    case = r.json()["case"]
    assert case["status"] == "lead" and case["next_step"]["step"] == "assign"
    # a second lead merges into the open case
    r = _act(client, keys, "township", hid, "lead", {"source": "self_report"})
    assert r.status_code == 201 and r.json()["case"]["case_id"] == case["case_id"]
    assert r.json()["case"]["leads"] == 2
    # a caseworker may not assign; the township does
    r = _act(client, keys, "cw", hid, "assign", {"caseworker": "grid-1"})
    assert r.status_code == 403 and r.json()["problems"][0]["field"] == "action"
    r = _act(client, keys, "township", hid, "assign", {"caseworker": "grid-1"})
    assert r.status_code == 200 and r.json()["case"]["status"] == "assigned"
    # a visit without consent, and one with a record field out of range: 422 naming the field
    visit = {"consent": True, "outcome": "propose", "coping_capacity": "weak",
             "risk_types": ["low_income"], "record": {"period": "2025-07", "income_wage": 600.0}}  # fmt: skip
    r = _act(client, keys, "cw", hid, "visit", {**visit, "consent": False})
    assert r.status_code == 422 and r.json()["problems"][0]["field"] == "consent"
    r = _act(client, keys, "cw", hid, "visit", {**visit, "record": {"household_size": 0}})
    assert r.status_code == 422
    assert r.json()["problems"][0]["field"] == "record.household_size"
    before = client.get(f"/households/{hid}/decisions", headers=_auth(keys["admin"])).json()
    r = _act(client, keys, "cw", hid, "visit", visit, key="v-1")
    assert r.status_code == 200, r.text
    assert r.json()["case"]["status"] == "visited"
    # the visit is a scored record in the decision history
    after = client.get(f"/households/{hid}/decisions", headers=_auth(keys["admin"])).json()
    assert len(after["decisions"]) == len(before["decisions"]) + 1
    assert after["decisions"][-1]["period"] == "2025-07"
    assert after["decisions"][-1]["record"]["income_wage"] == 600.0
    # the retry with the same key is the same event, no second decision
    r2 = _act(client, keys, "cw", hid, "visit", visit, key="v-1")
    assert r2.status_code == 200 and r2.headers.get("Idempotent-Replayed") == "true"
    assert r2.json()["event"]["event_id"] == r.json()["event"]["event_id"]
    again = client.get(f"/households/{hid}/decisions", headers=_auth(keys["admin"])).json()
    assert len(again["decisions"]) == len(after["decisions"])
    # a wrong transition: 409 naming the status and what is allowed
    r = _act(client, keys, "county", hid, "decide", {"decision": "confirm"})
    assert r.status_code == 422  # fields first: the type and risk types are missing
    fields = {p["field"] for p in r.json()["problems"]}
    assert {"household_type", "risk_types"} <= fields
    r = _act(client, keys, "county", hid, "decide",
             {"decision": "confirm", "household_type": "marginal", "risk_types": ["low_income"]})  # fmt: skip
    assert r.status_code == 409 and "visited" in r.json()["problems"][0]["problem"]
    assert "cross_check" in r.json()["problems"][0]["problem"]
    r = _act(client, keys, "county", hid, "cross_check", {"result": "consistent"})
    assert r.status_code == 200
    r = _act(client, keys, "cw", hid, "notice", {})
    assert r.status_code == 200 and "公示" in r.json()["case"]["status"] + "公示"
    # the township may not approve before the notice has run 5 days
    r = _act(client, keys, "township", hid, "township_review", {"decision": "approve"})
    assert r.status_code == 409 and r.json()["problems"][0]["field"] == "decision"


def test_scope_and_roles(client, keys):
    # a caseworker of another village sees nothing: one 404 for unknown and out of scope
    r = _act(client, keys, "cw_other", "case_hh_2", "lead", {"source": "cadre_visit"})
    assert r.status_code == 404
    r = client.get("/households/case_hh_1/case", headers=_auth(keys["cw_other"]))
    assert r.status_code == 404
    r = client.get("/households/case_hh_1/case", headers=_auth(keys["township"]))
    assert r.status_code == 200 and r.json()["current"]["status"] == "noticed"
    # a scorer has no case access; no key is 401
    r = _act(client, keys, "scorer", "case_hh_2", "lead", {"source": "warning"})
    assert r.status_code == 403
    r = client.post("/households/case_hh_2/case/lead", json={"source": "warning"})
    assert r.status_code == 401
    # unknown action, unknown field, client-set facts
    r = _act(client, keys, "cw", "case_hh_2", "promote", {})
    assert r.status_code == 404 and r.json()["problems"][0]["field"] == "action"
    r = _act(client, keys, "cw", "case_hh_2", "lead", {"source": "warning", "criteria": []})
    assert r.status_code == 422 and r.json()["problems"][0]["field"] == "criteria"
    r = client.post("/households/case_hh_2/case/lead", content=b"[1,", headers=_auth(keys["cw"]))
    assert r.status_code == 422 and r.json()["problems"][0]["field"] == "(body)"


def test_a_new_household_lead_needs_its_place(client, keys):
    r = _act(client, keys, "county", "case_new_1", "lead", {"source": "self_report"})
    assert r.status_code == 404  # unknown and no place given
    r = _act(client, keys, "county", "case_new_1", "lead",
             {"source": "self_report", "county_code": COUNTY, "village_code": "53232810120"})  # fmt: skip
    assert r.status_code == 422 and r.json()["problems"][0]["field"] == "village_code"
    r = _act(client, keys, "county", "case_new_1", "lead",
             {"source": "self_report", "county_code": COUNTY, "village_code": VILLAGE})  # fmt: skip
    assert r.status_code == 201 and r.json()["case"]["village_code"] == VILLAGE


def test_worklist_and_metrics(client, keys):
    r = client.get("/worklist", headers=_auth(keys["cw"]))
    assert r.status_code == 200, r.text
    wl = r.json()
    assert wl["capacity"] == 20
    ids = {i["household_id"] for i in wl["fits"]}
    assert "case_new_1" in ids  # a lead not yet visited
    assert VILLAGE in wl["expected"]
    r = client.get("/metrics", headers=_auth(keys["metrics"]))
    assert r.status_code == 200
    text = r.text
    assert "riskml_cases{" in text and "riskml_case_actions_total{" in text
    assert "case_hh_1" not in text and "case_new_1" not in text
