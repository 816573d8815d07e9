"""Department alerts through the API on a real ScoringService: merged onto the latest record,
re-scored through the same decision path, stored with the alert, led into the case loop; unknown
households kept and listed; several departments in one month one re-scoring and one lead; a
malformed or out-of-scope push refused with nothing stored."""

from __future__ import annotations

import os

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from riskml.service import api as web
from riskml.service import state
from riskml.service.access import add_key
from riskml.service.core import ScoringService, Settings
from riskml.store.tables import alerts as alerts_table
from riskml.store.tables import decisions as decisions_table
from tests.code.test_pages import _json_record

COUNTY = "532328"
VILLAGE = "532328101201"


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    path = tmp_path_factory.mktemp("alert-keys") / "api_keys.yaml"
    return {
        "path": path,
        "scorer": add_key(path, "platform", "scorer"),
        "admin": add_key(path, "ops", "admin"),
        "medical": add_key(path, "yibao", "department", counties=[COUNTY], departments=["medical"]),
        "two": add_key(
            path, "two-dept", "department", counties=[COUNTY], departments=["medical", "emergency"]
        ),  # fmt: skip
        "county": add_key(path, "county-1", "county", counties=[COUNTY]),
    }


@pytest.fixture(scope="module")
def service(registered, keys, sample_panel, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("alert-service")
    svc = ScoringService(
        Settings(
            tracking_uri=os.environ["MLFLOW_TRACKING_URI"],
            cache_dir=tmp / "model-cache",
            ledger_url=f"sqlite:///{tmp / 'ledger.db'}",
            keys_file=str(keys["path"]),
        )
    )
    base = _json_record(sample_panel[sample_panel["county_code"] == COUNTY].iloc[0])
    for hid in ("al_hh_1", "al_hh_2", "al_hh_3"):
        rec = dict(base, household_id=hid, village_code=VILLAGE, period="2025-06",
                   income_wage=40000.0, medical_expense=500.0, disaster_loss=0.0,
                   formerly_poor=False, housing_safe=True)  # fmt: skip
        assert svc.score({"households": [rec]}, f"Bearer {keys['scorer']}").status == 200
    previous = state.bound()
    web.bind(svc)
    yield svc
    state.bind(previous)


@pytest.fixture(scope="module")
def client(service):
    return TestClient(web.app)


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _medical(hid: str, amount: float, **more) -> dict:
    return {"household_id": hid, "county_code": COUNTY, "period": "2025-09",
            "out_of_pocket": amount, "care": "inpatient", **more}  # fmt: skip


def _count(service, table) -> int:
    with service.ledger.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def test_a_medical_alert_is_merged_rescored_stored_and_led(client, keys, service):
    r = client.post("/alerts", json={"department": "medical", "alerts": [_medical("al_hh_1", 30000.0, alert_id="m-1")]},
                    headers=_auth(keys["medical"]))  # fmt: skip
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["stored"], out["matched"], out["unmatched"], out["leads"]) == (1, 1, 0, 1)
    line = out["rescored"][0]
    # not formerly poor: the inpatient trigger of 20,000 (5,000 is for the formerly poor)
    assert line["period"] == "2025-09" and line["triggers"] == ["medical_inpatient"]
    decision = service.ledger.get(line["decision_id"])
    assert decision["record"]["medical_expense"] == 30000.0  # the department's figure
    assert decision["record"]["income_wage"] == 40000.0  # the rest from the latest record
    assert any(rule["id"].startswith("medical") for rule in decision["result"]["rules"])
    case = client.get("/households/al_hh_1/case", headers=_auth(keys["county"])).json()["current"]
    assert case["status"] == "lead" and case["sources"][0]["source"] == "department_alert"
    assert "illness" in case["proposed_risk_types"]
    # the same alert pushed again is not taken twice
    again = client.post("/alerts", json={"department": "medical", "alerts": [_medical("al_hh_1", 30000.0, alert_id="m-1")]},
                        headers=_auth(keys["medical"])).json()  # fmt: skip
    assert again["stored"] == 0 and again["already_stored"] == 1


def test_two_departments_in_one_month_make_one_rescoring_and_one_lead(client, keys, service):
    decisions_before = _count(service, decisions_table)
    alerts = [
        _medical("al_hh_2", 25000.0, department="medical", alert_id="m-2"),
        {"household_id": "al_hh_2", "county_code": COUNTY, "department": "emergency",
         "event_date": "2025-09-14", "loss": 20000.0, "house_damaged": True, "alert_id": "e-2"},
    ]  # fmt: skip
    out = client.post("/alerts", json={"alerts": alerts}, headers=_auth(keys["two"])).json()
    assert out["stored"] == 2 and len(out["rescored"]) == 1 and out["leads"] == 1
    assert _count(service, decisions_table) == decisions_before + 1
    record = service.ledger.get(out["rescored"][0]["decision_id"])["record"]
    assert record["medical_expense"] == 25000.0 and record["disaster_loss"] == 20000.0
    assert record["housing_safe"] is False
    case = client.get("/households/al_hh_2/case", headers=_auth(keys["county"])).json()
    assert case["current"]["leads"] == 1


def test_an_unknown_household_is_kept_and_listed_for_the_county(client, keys):
    out = client.post("/alerts", json={"department": "medical", "alerts": [_medical("al_unknown", 9000.0)]},
                      headers=_auth(keys["medical"])).json()  # fmt: skip
    assert (out["stored"], out["matched"], out["unmatched"]) == (1, 0, 1)
    listed = client.get("/alerts/unmatched", headers=_auth(keys["county"])).json()
    assert [a["household_id"] for a in listed["alerts"]] == ["al_unknown"]
    assert client.get("/alerts/unmatched", headers=_auth(keys["medical"])).status_code == 403


def test_refused_pushes_store_nothing(client, keys, service):
    before = _count(service, alerts_table)
    bad = [_medical("al_hh_3", 30000.0), _medical("al_hh_3", -5.0, care="dental", alert_id="x")]
    r = client.post(
        "/alerts", json={"department": "medical", "alerts": bad}, headers=_auth(keys["medical"])
    )
    assert r.status_code == 422
    fields = {(p["index"], p["field"]) for p in r.json()["problems"]}
    assert (1, "out_of_pocket") in fields and (1, "care") in fields
    # another county, another department, another role
    other = _medical("al_hh_3", 30000.0, county_code="530326")
    r = client.post(
        "/alerts", json={"department": "medical", "alerts": [other]}, headers=_auth(keys["medical"])
    )
    assert r.status_code == 403 and r.json()["problems"][0]["index"] == 0
    flood = {
        "household_id": "al_hh_3",
        "county_code": COUNTY,
        "event_date": "2025-09-01",
        "loss": 1.0,
    }
    r = client.post(
        "/alerts",
        json={"department": "emergency", "alerts": [flood]},
        headers=_auth(keys["medical"]),
    )
    assert r.status_code == 403
    r = client.post(
        "/alerts", json={"alerts": [_medical("al_hh_3", 1.0)]}, headers=_auth(keys["scorer"])
    )
    assert r.status_code == 403
    r = client.post("/alerts", json={"alerts": []}, headers=_auth(keys["medical"]))
    assert r.status_code == 422 and r.json()["problems"][0]["field"] == "alerts"
    r = client.post("/alerts", content=b"{", headers=_auth(keys["medical"]))
    assert r.status_code == 422
    # below the threshold for a household not formerly poor: stored, re-scored, no trigger
    low = client.post("/alerts", json={"department": "medical", "alerts": [_medical("al_hh_3", 8000.0)]},
                      headers=_auth(keys["medical"])).json()  # fmt: skip
    assert low["rescored"][0]["triggers"] == [] and low["stored"] == 1
    before += 1
    assert _count(service, alerts_table) == before


def test_alerts_import_from_a_file_takes_the_same_path(service, keys, tmp_path):
    from typer.testing import CliRunner

    from riskml.cli import app

    good = tmp_path / "medical.csv"
    good.write_text(
        "alert_id,household_id,county_code,period,out_of_pocket,care\n"
        "f-1,al_hh_3,532328,2025-10,26000,inpatient\n"
        "f-2,al_file_unknown,532328,2025-10,26000,inpatient\n"
    )
    url = service.ledger.url
    run = CliRunner().invoke(app, ["alerts", "import", str(good), "--department", "medical",
                                   "--ledger", url])  # fmt: skip
    assert run.exit_code == 0, run.output
    assert "2 stored (1 matched, 1 unmatched)" in run.output and "1 lead(s)" in run.output
    again = CliRunner().invoke(app, ["alerts", "import", str(good), "--department", "medical",
                                     "--ledger", url])  # fmt: skip
    assert again.exit_code == 0 and "2 already stored" in again.output
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "household_id,county_code,period,out_of_pocket,care\nal_hh_3,532328,2025-10,-1,dental\n"
    )
    refused = CliRunner().invoke(app, ["alerts", "import", str(bad), "--department", "medical",
                                       "--ledger", url])  # fmt: skip
    assert refused.exit_code == 1
    assert "row 0: out_of_pocket" in refused.output and "row 0: care" in refused.output


def test_the_alert_contract_doc_is_current():
    from pathlib import Path

    from riskml.alerts.contract import contract_markdown

    doc = Path(__file__).resolve().parents[2] / "docs" / "alerts.md"
    assert doc.read_text(encoding="utf-8") == contract_markdown(), (
        "docs/alerts.md is stale: riskml alerts contract > docs/alerts.md"
    )
