"""Social reports (社会参与) through the API on a real ScoringService: a reporter key scoped to
counties reports risks; a report of a household riskml knows becomes a lead of the case loop
(source social_report) merged into the open case as leads are; the others are kept and listed
for their village; a retried request (same report ids, same content, same Idempotency-Key) is
stored once; a malformed or out-of-scope request is refused with nothing stored; a reporter
reads nothing household-level; the description is never logged."""

from __future__ import annotations

import datetime as dt
import logging
import os

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text
from sqlalchemy.exc import DatabaseError

from riskml.alerts.report_contract import (
    MAX_REPORTS,
    report_contract_markdown,
    report_problems,
    today_in_china,
)
from riskml.service import api as web
from riskml.service import state
from riskml.service.access import KeyConfigError, KeyStore, add_key
from riskml.service.core import ScoringService, Settings
from riskml.store.tables import social_reports
from tests.code.test_pages import _json_record

COUNTY = "532328"
VILLAGE = "532328101201"
OTHER_VILLAGE = "532328101202"
OTHER_COUNTY = "530326"
SECRET = "Grandmother Li fell and cannot work; her son's phone is private"


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    path = tmp_path_factory.mktemp("report-keys") / "api_keys.yaml"
    return {
        "path": path,
        "scorer": add_key(path, "platform", "scorer"),
        "admin": add_key(path, "ops", "admin"),
        "ngo": add_key(path, "ngo-red-cross", "reporter", counties=[COUNTY]),
        "firm": add_key(path, "firm-tea", "reporter", counties=[COUNTY]),
        "far": add_key(path, "ngo-far", "reporter", counties=[OTHER_COUNTY]),
        "medical": add_key(path, "yibao", "department", counties=[COUNTY], departments=["medical"]),
        "county": add_key(path, "county-1", "county", counties=[COUNTY]),
        "cw": add_key(path, "cw-1", "caseworker", villages=[VILLAGE]),
        "cw_other": add_key(path, "cw-2", "caseworker", villages=[OTHER_VILLAGE]),
        "township": add_key(path, "town-1", "township", townships=[VILLAGE[:9]]),
    }


@pytest.fixture(scope="module")
def service(registered, keys, sample_panel, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report-service")
    svc = ScoringService(
        Settings(
            tracking_uri=os.environ["MLFLOW_TRACKING_URI"],
            cache_dir=tmp / "model-cache",
            ledger_url=f"sqlite:///{tmp / 'ledger.db'}",
            keys_file=str(keys["path"]),
        )
    )
    base = _json_record(sample_panel[sample_panel["county_code"] == COUNTY].iloc[0])
    for hid in ("rp_hh_1", "rp_hh_2", "rp_hh_3", "rp_hh_4", "rp_hh_5"):
        rec = dict(base, household_id=hid, village_code=VILLAGE, period="2025-06")
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


def _report(**more) -> dict:
    out = {"organisation_kind": "social_organisation", "county_code": COUNTY,
           "risk_types": ["illness"], "observed_on": "2025-09-20", **more}  # fmt: skip
    return {k: v for k, v in out.items() if v is not None}


def _count(service) -> int:
    with service.ledger.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(social_reports)).scalar_one()


def _case(client, keys, hid: str) -> dict:
    r = client.get(f"/households/{hid}/case", headers=_auth(keys["county"]))
    assert r.status_code == 200, r.text
    return r.json()["current"]


# --------------------------------------------------------------------------- matched: leads
def test_a_report_of_a_known_household_becomes_a_lead(client, keys, service):
    report = _report(household_id="rp_hh_1", report_id="ngo-1", risk_types=["illness", "accident"],
                     description=SECRET, reference="case-2025/17")  # fmt: skip
    r = client.post("/reports", json={"reports": [report]}, headers=_auth(keys["ngo"]))
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["received"], out["stored"], out["already_stored"]) == (1, 1, 0)
    assert out["receipts"] == [{"index": 0, "report_id": "ngo-1", "status": "stored"}]
    # a reporter is not told whether riskml knows the household
    assert not {"matched", "unmatched", "leads"} & set(out)
    case = _case(client, keys, "rp_hh_1")
    assert case["status"] == "lead" and case["leads"] == 1
    assert [s["source"] for s in case["sources"]] == ["social_report"]
    assert case["sources"][0]["actor"] == "system:reports"
    assert {"illness", "accident"} <= set(case["proposed_risk_types"])
    events = client.get(f"/cases/{case['case_id']}", headers=_auth(keys["county"])).json()
    lead = events["events"][0]
    assert lead["payload"]["reference"] == "ngo-1" and lead["payload"]["note"] == SECRET
    # another reporter's report of the same household merges into the open case
    r = client.post("/reports", json={"reports": [_report(household_id="rp_hh_1", organisation_kind="enterprise")]},
                    headers=_auth(keys["firm"]))  # fmt: skip
    assert r.status_code == 200, r.text
    case = _case(client, keys, "rp_hh_1")
    assert case["leads"] == 2 and [s["source"] for s in case["sources"]] == ["social_report"] * 2
    # an admin's answer says what was matched
    r = client.post("/reports", json={"reports": [_report(household_id="rp_hh_2", description="x")]},
                    headers=_auth(keys["admin"]))  # fmt: skip
    assert r.status_code == 200, r.text
    assert (r.json()["matched"], r.json()["unmatched"], r.json()["leads"]) == (1, 0, 1)


def test_a_retried_request_is_stored_once_and_leads_once(client, keys, service):
    before = _count(service)
    batch = {"reports": [_report(household_id="rp_hh_3", report_id="ngo-3"),
                         _report(household_id="rp_hh_3", risk_types=["housing"])]}  # fmt: skip
    first = client.post("/reports", json=batch, headers={**_auth(keys["ngo"]), "Idempotency-Key": "k-3"})  # fmt: skip
    assert first.status_code == 200, first.text
    assert first.json()["stored"] == 2 and _count(service) == before + 2
    # the same request with its key: the first answer again, nothing stored
    again = client.post("/reports", json=batch, headers={**_auth(keys["ngo"]), "Idempotency-Key": "k-3"})  # fmt: skip
    assert again.status_code == 200
    assert again.json()["replayed"] is True and again.json()["batch_id"] == first.json()["batch_id"]
    assert again.json()["receipts"] == first.json()["receipts"]
    # the same reports without a key: the same ids (given or derived), already stored
    plain = client.post("/reports", json=batch, headers=_auth(keys["ngo"])).json()
    assert (plain["stored"], plain["already_stored"], plain["replayed"]) == (0, 2, False)
    assert {r["status"] for r in plain["receipts"]} == {"already_stored"}
    assert _count(service) == before + 2
    assert _case(client, keys, "rp_hh_3")["leads"] == 2  # one lead per report, never twice
    # the key again with another request
    other = {"reports": [_report(household_id="rp_hh_3", report_id="ngo-3b")]}
    r = client.post("/reports", json=other, headers={**_auth(keys["ngo"]), "Idempotency-Key": "k-3"})  # fmt: skip
    assert r.status_code == 422 and r.json()["problems"][0]["field"] == "Idempotency-Key"
    assert _count(service) == before + 2
    # report ids are the reporter's own: another reporter may use "ngo-3"
    r = client.post("/reports", json={"reports": [_report(household_id="rp_hh_3", report_id="ngo-3")]},
                    headers=_auth(keys["firm"]))  # fmt: skip
    assert r.json()["stored"] == 1


def test_a_lead_not_made_the_first_time_is_made_by_the_retry(service, client, keys):
    from riskml.alerts.report_intake import take_reports

    report = [_report(household_id="rp_hh_5", report_id="late-1", description="seen")]
    store = state.desk().store
    kw = {"ledger": service.ledger, "reporter": "ngo-red-cross", "caller": "test"}
    first = take_reports(report, cases=None, **kw)  # as if the lead could not be stored
    assert (first.stored, first.matched, first.leads) == (1, 1, 0)
    assert _case(client, keys, "rp_hh_5") is None
    retry = take_reports(report, cases=store, **kw)
    assert (retry.stored, retry.already_stored, retry.leads) == (0, 1, 1)
    assert _case(client, keys, "rp_hh_5")["leads"] == 1
    assert take_reports(report, cases=store, **kw).leads == 0
    assert _case(client, keys, "rp_hh_5")["leads"] == 1


def test_two_requests_of_the_same_reports_at_once_store_them_once(service):
    import threading

    from riskml.alerts.report_intake import take_reports

    reports = [_report(village_code=VILLAGE, description=f"seen {i}", report_id=f"race-{i}")
               for i in range(50)]  # fmt: skip
    before, gate, answers = _count(service), threading.Barrier(2), []

    def push() -> None:
        gate.wait()
        answers.append(take_reports(reports, ledger=service.ledger, reporter="ngo-red-cross", caller="test"))  # fmt: skip

    threads = [threading.Thread(target=push) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted((a.stored, a.already_stored) for a in answers) == [(0, 50), (50, 0)]
    assert _count(service) == before + 50


# --------------------------------------------------------------------------- unmatched
def test_an_unmatched_report_is_kept_and_listed_for_its_village(client, keys, service):
    unseen = _report(village_code=VILLAGE, description=SECRET, report_id="ngo-u1",
                     risk_types=["housing"])  # fmt: skip
    unknown_id = _report(household_id="rp_unknown", village_code=VILLAGE, report_id="ngo-u2")
    r = client.post("/reports", json={"reports": [unseen, unknown_id]}, headers=_auth(keys["ngo"]))
    assert r.status_code == 200 and r.json()["stored"] == 2, r.text
    listed = client.get(f"/reports/unmatched?village_code={VILLAGE}", headers=_auth(keys["cw"]))
    assert listed.status_code == 200, listed.text
    rows = {row["report_id"]: row for row in listed.json()["reports"]}
    assert {"ngo-u1", "ngo-u2"} <= set(rows)
    assert rows["ngo-u1"]["description"] == SECRET and rows["ngo-u1"]["risk_types"] == ["housing"]
    assert (
        rows["ngo-u1"]["reporter"] == "ngo-red-cross"
        and rows["ngo-u2"]["household_id"] == "rp_unknown"
    )
    assert all(row["village_code"] == VILLAGE for row in listed.json()["reports"])
    # the matched reports are not listed; the county, the township and an admin see these
    assert not any(row.get("household_id") == "rp_hh_1" for row in listed.json()["reports"])
    for who in ("county", "township", "admin"):
        seen = client.get("/reports/unmatched", headers=_auth(keys[who])).json()["reports"]
        assert {"ngo-u1", "ngo-u2"} <= {row["report_id"] for row in seen}, who
    # a caseworker of another village sees none of them and may not ask for this one
    other = client.get("/reports/unmatched", headers=_auth(keys["cw_other"])).json()
    assert other["count"] == 0
    r = client.get(f"/reports/unmatched?village_code={VILLAGE}", headers=_auth(keys["cw_other"]))
    assert r.status_code == 403
    r = client.get("/reports/unmatched?village_code=12", headers=_auth(keys["cw"]))
    assert r.status_code == 422 and r.json()["problems"][0]["field"] == "village_code"
    # a reporter, a department and a scorer list nothing
    for who in ("ngo", "medical", "scorer"):
        assert client.get("/reports/unmatched", headers=_auth(keys[who])).status_code == 403


def test_a_known_household_reported_in_another_county_is_not_matched(client, keys, service):
    # rp_hh_4 is registered in COUNTY; a reporter of OTHER_COUNTY names it there
    far = _report(household_id="rp_hh_4", county_code=OTHER_COUNTY, report_id="far-1")
    r = client.post("/reports", json={"reports": [far]}, headers=_auth(keys["admin"]))
    assert r.status_code == 200 and (r.json()["matched"], r.json()["leads"]) == (0, 0), r.text
    assert _case(client, keys, "rp_hh_4") is None  # no lead where the report was not about it


# --------------------------------------------------------------------------- refused
def test_refused_requests_store_nothing(client, keys, service):
    before = _count(service)
    future = (today_in_china() + dt.timedelta(days=2)).isoformat()
    bad = [
        _report(household_id="rp_hh_1"),
        _report(organisation_kind="church", risk_types=["illness", "nope"], observed_on=future,
                village_code="530326001001", description=SECRET, reference="13912345678", phone="x"),
    ]  # fmt: skip
    r = client.post("/reports", json={"reports": bad}, headers=_auth(keys["ngo"]))
    assert r.status_code == 422
    body = r.json()
    fields = {(p["index"], p["field"]) for p in body["problems"]}
    assert {(1, "organisation_kind"), (1, "risk_types"), (1, "observed_on"), (1, "village_code"),
            (1, "reference"), (1, "phone")} <= fields  # fmt: skip
    assert body["problems_total"] == len(body["problems"])
    assert SECRET not in r.text and "13912345678" not in r.text  # no value is echoed
    # without household_id: the village and a description are required
    r = client.post("/reports", json={"reports": [_report()]}, headers=_auth(keys["ngo"]))
    assert {p["field"] for p in r.json()["problems"]} == {"village_code", "description"}
    # outside the key's counties: 403 naming the report
    r = client.post("/reports", json={"reports": [_report(household_id="rp_hh_1"), _report(household_id="rp_hh_1", county_code=OTHER_COUNTY)]},
                    headers=_auth(keys["ngo"]))  # fmt: skip
    assert r.status_code == 403 and [p["index"] for p in r.json()["problems"]] == [1]
    # another role; a malformed body; no reports; too many
    for who in ("scorer", "medical", "county", "cw"):
        r = client.post("/reports", json={"reports": [_report(household_id="rp_hh_1")]}, headers=_auth(keys[who]))  # fmt: skip
        assert r.status_code == 403, who
    assert client.post("/reports", json={"reports": [_report(household_id="rp_hh_1")]}).status_code == 401  # fmt: skip
    for body_ in ({"reports": []}, {"reports": [{}] * (MAX_REPORTS + 1)}, {"reports": "x"}):
        r = client.post("/reports", json=body_, headers=_auth(keys["ngo"]))
        assert r.status_code == 422 and r.json()["problems"][0]["field"] == "reports"
    r = client.post("/reports", json={"reports": [_report(household_id="rp_hh_1")], "x": 1}, headers=_auth(keys["ngo"]))  # fmt: skip
    assert r.status_code == 422 and r.json()["problems"][0]["field"] == "x"
    r = client.post("/reports", content=b"{", headers=_auth(keys["ngo"]))
    assert r.status_code == 422
    r = client.post("/reports", json={"reports": [_report(household_id="rp_hh_1")]},
                    headers={**_auth(keys["ngo"]), "Idempotency-Key": "has space"})  # fmt: skip
    assert r.status_code == 422 and r.json()["problems"][0]["field"] == "Idempotency-Key"
    assert _count(service) == before


def test_the_description_is_never_logged(client, keys, caplog):
    caplog.set_level(logging.DEBUG)
    secret = "Uncle Wang's roof collapsed in the storm, he sleeps at a neighbour's"
    reports = [_report(village_code=VILLAGE, description=secret)]
    assert client.post("/reports", json={"reports": reports}, headers=_auth(keys["ngo"])).status_code == 200  # fmt: skip
    spoilt = [_report(village_code=VILLAGE, description=secret, observed_on="2025-02-30")]
    assert client.post("/reports", json={"reports": spoilt}, headers=_auth(keys["ngo"])).status_code == 422  # fmt: skip
    assert secret not in caplog.text and "Uncle Wang" not in caplog.text


def test_reports_are_insert_only(service):
    assert _count(service) > 0
    for stmt in ("UPDATE social_reports SET description = 'x'", "DELETE FROM social_reports"):
        with pytest.raises(DatabaseError, match="insert-only"), service.ledger.writer.begin() as conn:  # fmt: skip
            conn.execute(text(stmt))


# --------------------------------------------------------------------------- the reporter role
def test_a_reporter_key_is_scoped_to_counties_and_reads_nothing(client, keys):
    for bad in (
        {"id": "r", "hash": "sha256:" + "a" * 64, "role": "reporter"},
        {"id": "r", "hash": "sha256:" + "a" * 64, "role": "reporter", "counties": [COUNTY],
         "villages": [VILLAGE]},
        {"id": "r", "hash": "sha256:" + "a" * 64, "role": "reporter", "counties": [COUNTY],
         "departments": ["medical"]},
    ):  # fmt: skip
        with pytest.raises(KeyConfigError, match="reporter|departments"):
            KeyStore.from_entries([bad])
    store = KeyStore.from_entries([{"id": "r", "hash": "sha256:" + "a" * 64, "role": "reporter", "counties": [COUNTY]}])  # fmt: skip
    principal = store.entries[0].principal()
    assert principal.can_report(COUNTY) and not principal.can_report(OTHER_COUNTY)
    assert not principal.can_read(COUNTY, VILLAGE) and not principal.can_score()
    assert principal.scope_filter() == ([], [])
    # a reporter key reads no case, decision, worklist or alert list
    for path in ("/households/rp_hh_1/case", "/households/rp_hh_1/decisions", "/worklist",
                 "/alerts/unmatched", "/reports/unmatched"):  # fmt: skip
        status = client.get(path, headers=_auth(keys["ngo"])).status_code
        assert status == 403, (path, status)
    r = client.post("/households/rp_hh_1/case/lead", json={"source": "social_report"}, headers=_auth(keys["ngo"]))  # fmt: skip
    assert r.status_code == 403
    r = client.post("/alerts", json={"alerts": [{}]}, headers=_auth(keys["ngo"]))
    assert r.status_code == 403


def test_keys_add_makes_a_reporter_key(tmp_path):
    from typer.testing import CliRunner

    from riskml.cli import app

    path = tmp_path / "keys.yaml"
    run = CliRunner().invoke(app, ["keys", "add", "--id", "ngo-x", "--role", "reporter", "--county", COUNTY, "--file", str(path)])  # fmt: skip
    assert run.exit_code == 0, run.output
    entry = KeyStore.load(path, env=False).entries[0]
    assert (entry.role, entry.counties) == ("reporter", (COUNTY,))
    run = CliRunner().invoke(app, ["keys", "add", "--id", "ngo-y", "--role", "reporter", "--file", str(path)])  # fmt: skip
    assert run.exit_code == 1 and "reporter key is scoped by counties" in run.output


# --------------------------------------------------------------------------- the CLI and the docs
def test_reports_import_from_a_file_takes_the_same_path(service, keys, tmp_path, client):
    from typer.testing import CliRunner

    from riskml.cli import app

    good = tmp_path / "reports.csv"
    good.write_text(
        "report_id,organisation_kind,household_id,county_code,village_code,risk_types,observed_on,description\n"
        "f-1,volunteer,rp_hh_2,532328,,illness;housing,2025-10-02,\n"
        'f-2,enterprise,,532328,532328101201,unstable_employment,2025-10-03,"laid off, two children at school"\n'
    )
    url = service.ledger.url
    run = CliRunner().invoke(app, ["reports", "import", str(good), "--reporter", "firm-tea", "--ledger", url])  # fmt: skip
    assert run.exit_code == 0, run.output
    assert "2 stored (1 matched, 1 unmatched)" in run.output and "1 lead(s)" in run.output
    sources = [s["source"] for s in _case(client, keys, "rp_hh_2")["sources"]]
    assert sources.count("social_report") == 2
    again = CliRunner().invoke(app, ["reports", "import", str(good), "--reporter", "firm-tea", "--ledger", url])  # fmt: skip
    assert again.exit_code == 0 and "2 already stored" in again.output
    assert "0 lead(s)" in again.output  # the lead made the first time is not made again
    listed = CliRunner().invoke(
        app, ["reports", "unmatched", "--village", VILLAGE, "--ledger", url]
    )
    assert listed.exit_code == 0 and '"report_id": "f-2"' in listed.output
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "organisation_kind,county_code,village_code,risk_types,observed_on,description\n"
        "volunteer,532328,532328101201,illness;floods,2025-13-01,seen\n"
    )
    refused = CliRunner().invoke(app, ["reports", "import", str(bad), "--reporter", "firm-tea", "--ledger", url])  # fmt: skip
    assert refused.exit_code == 1
    assert "row 0: risk_types" in refused.output and "row 0: observed_on" in refused.output
    columns = tmp_path / "columns.csv"
    columns.write_text("county_code,phone\n532328,1\n")
    refused = CliRunner().invoke(app, ["reports", "import", str(columns), "--reporter", "firm-tea", "--ledger", url])  # fmt: skip
    assert refused.exit_code == 1
    assert "row -1: organisation_kind" in refused.output and "row -1: phone" in refused.output
    missing = CliRunner().invoke(app, ["reports", "import", str(tmp_path / "none.csv"), "--reporter", "x"])  # fmt: skip
    assert missing.exit_code == 2


def test_a_json_report_file_is_read_as_the_api_body(tmp_path):
    import json

    from riskml.alerts.report_contract import read_report_file

    p = tmp_path / "reports.json"
    p.write_text(json.dumps({"reports": [_report(village_code=VILLAGE, description="seen")]}))
    read = read_report_file(p)
    assert read.ok and read.reports[0]["risk_types"] == ["illness"]
    p.write_text(json.dumps([_report(village_code=VILLAGE)]))
    read = read_report_file(p)
    assert not read.ok and read.problems[0]["field"] == "description" and read.reports == []


def test_the_report_contract_doc_is_current():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text(encoding="utf-8")
    assert report_contract_markdown() in doc, (
        "docs/api.md's report contract is stale: riskml reports contract (paste between the markers)"
    )


def test_the_openapi_schema_refuses_what_the_validator_refuses():
    import jsonschema

    from riskml.service.openapi import openapi_document
    from tests.code.test_openapi import schema_validator

    check = schema_validator(openapi_document(), "SocialReport")
    good = _report(household_id="rp_hh_1")
    assert report_problems([good])[1] == 0 and check.is_valid(good)
    spoilt = [
        _report(),  # no household, no village, no description
        _report(household_id="rp_hh_1", organisation_kind="church"),
        _report(household_id="rp_hh_1", risk_types=[]),
        _report(household_id="rp_hh_1", risk_types=["illness", "illness"]),
        _report(household_id="rp_hh_1", observed_on="2025-9-1"),
        _report(household_id="rp_hh_1", county_code="53232"),
        _report(household_id="rp_hh_1", extra=1),
        _report(village_code=VILLAGE, description="x" * 501),
    ]
    for report in spoilt:
        assert report_problems([report])[1] > 0, report
        assert not check.is_valid(report), report
    assert isinstance(check, jsonschema.Draft202012Validator)
