"""The case pages (/cw/cases) through FastAPI's TestClient on a real ScoringService: township and
county keys log in, the capacity-aware list, the whole loop by form posts (lead, visit, cross-check,
notice, township review, county decision, plan, delivery, six monthly records, elimination and its
reviews, rollback), refusals shown next to their fields (Chinese first), scope, stale forms, other
sites' posts, and how forms map to JSON.

The service's procedure file is overridden (``RISKML_CASE_PROCEDURE_FILE``): the notice runs
0 days and elimination needs 0 months monitored, so the loop runs in one test; the refusal of an
early township approval is checked on the shipped procedure in test_case_api.py.
"""

from __future__ import annotations

import os
import re

import pytest
import yaml
from fastapi.testclient import TestClient

from riskml.service import api as web
from riskml.service import state
from riskml.service.access import add_key
from riskml.service.core import ScoringService, Settings
from riskml.service.pages.case_forms import Form, body_of, shown_field
from riskml.service.pages.case_words import problem_text
from riskml.service.pages.session import FAILED
from tests.code.test_pages import _json_record

COUNTY = "532328"
TOWNSHIP = "532328101"
VILLAGE = "532328101201"
OTHER_VILLAGE = "530326101201"
HH = "cp_hh_1"
FINE = "cp_hh_2"
OUT = "cp_hh_out"


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    path = tmp_path_factory.mktemp("case-page-keys") / "api_keys.yaml"
    return {
        "path": path,
        "scorer": add_key(path, "cp-platform", "scorer"),
        "cw": add_key(path, "cp-grid-1", "caseworker", villages=[VILLAGE]),
        "township": add_key(path, "cp-town-1", "township", townships=[TOWNSHIP]),
        "county": add_key(path, "cp-county-1", "county", counties=[COUNTY]),
    }


@pytest.fixture(scope="module")
def base_record(sample_panel):
    return _json_record(sample_panel[sample_panel["county_code"] == COUNTY].iloc[0])


@pytest.fixture(scope="module")
def service(registered, keys, base_record, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("case-page-service")
    procedure = tmp / "procedure.yaml"
    procedure.write_text(yaml.safe_dump(
        {"deadlines_days": {"notice_min": 0}, "elimination": {"months_monitored": 0}}
    ))  # fmt: skip
    before = os.environ.get("RISKML_CASE_PROCEDURE_FILE")
    os.environ["RISKML_CASE_PROCEDURE_FILE"] = str(procedure)
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
    assert state.desk().procedure.days("notice_min") == 0  # the desk of this service
    for hid, village, wage in ((HH, VILLAGE, 500.0), (FINE, VILLAGE, 80000.0),
                               (OUT, OTHER_VILLAGE, 500.0)):  # fmt: skip
        rec = dict(base_record, household_id=hid, village_code=village, period="2025-06",
                   county_code=village[:6], income_wage=wage,
                   medical_expense=60000.0 if wage < 1000 else 0.0)  # fmt: skip
        reply = svc.score({"households": [rec]}, f"Bearer {keys['scorer']}")
        assert reply.status == 200, reply.body
        assert reply.body["results"][0]["flagged"] is (wage < 1000)
    yield svc
    state.bind(previous)
    if before is None:
        os.environ.pop("RISKML_CASE_PROCEDURE_FILE", None)
    else:
        os.environ["RISKML_CASE_PROCEDURE_FILE"] = before


@pytest.fixture(autouse=True)
def _no_failed_logins_yet():
    FAILED.clear()
    yield
    FAILED.clear()


def _login(token: str) -> TestClient:
    client = TestClient(web.app)
    r = client.post("/cw/login", data={"key": token, "next": "/cw/cases"}, follow_redirects=False)
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/cw/cases"
    return client


@pytest.fixture(scope="module")
def clients(service, keys):
    return {who: _login(keys[who]) for who in ("cw", "township", "county")}


def _hidden(html: str, action: str) -> dict[str, str]:
    """The hidden fields (idem, case_id) of the page's form of an action."""
    form = re.search(rf'<form[^>]*id="form-{action}".*?</form>', html, re.S)
    assert form, f"no {action} form on the page"
    return dict(re.findall(r'<input type="hidden" name="(idem|case_id)" value="([^"]*)"', form[0]))


def _post(client, action: str, fields: dict, hid: str = HH):
    page = client.get(f"/cw/cases/{hid}")
    assert page.status_code == 200, page.text
    data = {**_hidden(page.text, action), **fields}
    return client.post(f"/cw/cases/{hid}/{action}", data=data, follow_redirects=False)


def _saved(r, hid: str = HH, action: str | None = None) -> None:
    assert r.status_code == 303, r.text[-3000:]
    assert r.headers["location"].startswith(f"/cw/cases/{hid}?done=")


def _status(client, hid: str = HH) -> str:
    return re.search(r'id="status" data-status="([a-z_]+)"', client.get(f"/cw/cases/{hid}").text)[1]


VISIT = {
    "record.period": "2025-07", "record.household_size": "4", "record.labor_count": "2",
    "record.income_wage": "600", "record.income_business": "0", "record.income_property": "0",
    "record.income_transfer": "1200", "record.medical_expense": "30000",
    "record.education_expense": "0", "coping_capacity": "weak", "outcome": "propose",
    "risk_types": ["low_income", "illness"],
    **{f"record.{f}.shown": "1" for f in ("medical_insured", "housing_safe", "water_safe", "dropout")},
    "record.medical_insured": "1", "record.housing_safe": "1", "record.water_safe": "1",
}  # fmt: skip


def test_township_and_county_keys_log_in_and_see_their_lists(clients):
    for who, word in (("township", "个案工作台"), ("county", "个案工作台"), ("cw", "本周可完成")):
        r = clients[who].get("/cw/cases")
        assert r.status_code == 200, (who, r.text[-2000:])
        assert word in r.text and r.headers["cache-control"] == "no-store"
    # the caseworker's list: the low-income warning is a new lead that fits this week
    html = clients["cw"].get("/cw/cases").text
    fits = html[html.find('id="fits"') : html.find('id="steps"')]
    assert f'data-household="{HH}"' in fits and OUT not in html, fits
    assert "本周走访能力 20 户" in html
    assert "明年预计返贫" in html and f'data-village="{VILLAGE}"' in html
    en = clients["cw"].get("/cw/cases?lang=en").text
    assert "What fits this week" in en and "90% interval" in en
    assert "本周可完成" in clients["cw"].get("/cw/cases?lang=zh").text  # back to Chinese


def test_the_whole_loop_by_forms(clients, service, keys):
    cw, tw, co = clients["cw"], clients["township"], clients["county"]
    # no case yet: the caseworker records a lead from the warning
    page = cw.get(f"/cw/cases/{HH}").text
    assert "该户尚无个案" in page and 'id="form-lead"' in page
    _saved(_post(cw, "lead", {"source": "warning"}))
    assert _status(cw) == "lead"
    # a visit without consent is refused, the problem next to the consent box, Chinese first
    r = _post(cw, "visit", VISIT)
    assert r.status_code == 422
    err = re.search(r'<p class="field-error" role="alert" data-field="consent">([^<]+)</p>', r.text)
    assert err and err[1].startswith("须经农户签字同意")
    assert 'value="30000"' in r.text  # the posted values are kept
    # a wrong number is refused before the loop sees it
    r = _post(cw, "visit", {**VISIT, "consent": "1", "record.household_size": "四"})
    assert r.status_code == 422 and 'data-field="record.household_size"' in r.text
    before = len(service.ledger.household_history(HH))
    _saved(_post(cw, "visit", {**VISIT, "consent": "1"}))
    history = service.ledger.household_history(HH)
    assert len(history) == before + 1 and history[-1]["period"] == "2025-07"
    assert history[-1]["record"]["medical_expense"] == 30000.0
    assert history[-1]["record"]["dropout"] is False  # an unchecked box is false
    assert _status(cw) == "visited"
    # the caseworker may not cross-check: no such form for the role
    assert 'id="form-cross_check"' not in cw.get(f"/cw/cases/{HH}").text
    _saved(_post(co, "cross_check", {"result": "consistent"}))
    page = cw.get(f"/cw/cases/{HH}").text
    notice = re.search(r'id="notice-text">([^<]+)<', page)[1]
    assert "公示" in notice and "因病" not in notice and HH not in notice  # redacted
    _saved(_post(cw, "notice", {}))
    _saved(_post(tw, "township_review", {"decision": "approve"}))
    # the county confirms: the type is required, named next to its field
    r = _post(co, "decide", {"decision": "confirm", "risk_types": ["low_income", "illness"]})
    assert r.status_code == 422 and 'data-field="household_type"' in r.text
    _saved(_post(co, "decide", {"decision": "confirm", "household_type": "marginal",
                                "risk_types": ["low_income", "illness"]}))  # fmt: skip
    assert _status(cw) == "monitored"
    # the plan form is pre-filled with the suggestion: one measure per risk type at least
    page = cw.get(f"/cw/cases/{HH}").text
    suggested = dict(
        re.findall(r'name="(measures\[\d+\]\.(?:measure|risk_type))" value="([^"]*)"', page)
    )
    assert suggested.get("measures[0].measure")
    rows = {}
    for name, value in re.findall(r'name="(measures\[\d+\]\.[a-z_]+)" value="([^"]*)"', page):
        rows[name] = value
    for sel in re.findall(
        r'<select name="(measures\[\d+\]\.risk_type)">(.*?)</select>', page, re.S
    ):
        chosen = re.search(r'value="([a-z_]+)" selected', sel[1])
        rows[sel[0]] = chosen[1] if chosen else ""
    # drop the illness rows: the plan is refused, the problem shown beside the measures
    without = {k: ("" if k.endswith(".measure") and rows[k.replace(".measure", ".risk_type")] == "illness" else v)
               for k, v in rows.items()}  # fmt: skip
    r = _post(cw, "plan", without)
    assert r.status_code == 422 and "illness" in r.text and 'data-field="measures"' in r.text
    _saved(_post(cw, "plan", rows))
    _saved(_post(cw, "deliver", {"measure": "0", "delivered_on": "2025-08-01", "amount": "500"}))
    # six monthly records above the line, scored like any record
    top = service.ledger.household_history(HH)[-1]["record"]
    for month in ("2025-08", "2025-09", "2025-10", "2025-11", "2025-12", "2026-01"):
        rec = dict(top, period=month, income_wage=60000.0, medical_expense=500.0)
        assert service.score({"households": [rec]}, f"Bearer {keys['scorer']}").status == 200
    page = cw.get(f"/cw/cases/{HH}").text
    criteria = re.findall(r'<li class="(met|unmet)" data-met', page)
    assert criteria and set(criteria) == {"met"}, page[page.find("criteria-") :][:3000]
    assert "人均纯收入连续6个月高于监测线" in page
    _saved(_post(cw, "propose_elimination", {}))
    _saved(_post(tw, "elimination_review", {"decision": "approve"}))
    _saved(_post(co, "elimination_decide", {"decision": "approve"}))
    assert _status(cw) == "eliminated"
    page = cw.get(f"/cw/cases/{HH}").text
    assert "风险已消除" in page and page.count("<li><strong>") >= 11  # the history
    # rollback (county) needs a reason
    r = _post(co, "rollback", {})
    assert r.status_code == 422 and 'data-field="reason"' in r.text
    _saved(_post(co, "rollback", {"reason": "家庭成员再次患病"}))
    assert _status(cw) == "monitored"
    # the events are in the case store, each naming its actor
    events = state.desk().store.events(state.desk().store.current(HH)["case_id"])
    actors = {e["actor"] for e in events}
    assert {"caseworker:cp-grid-1", "township:cp-town-1", "county:cp-county-1"} <= actors


def test_scope_stale_forms_and_other_sites(clients, service):
    cw = clients["cw"]
    r = cw.get(f"/cw/cases/{OUT}")
    assert r.status_code == 403 and "不在您的密钥权限范围内" in r.text
    r = cw.post(f"/cw/cases/{OUT}/lead", data={"source": "warning"}, follow_redirects=False)
    assert r.status_code == 403
    assert cw.get("/cw/cases/nosuch_household").status_code == 403  # the same answer
    # a post from another site is refused, whatever it carries
    r = cw.post(f"/cw/cases/{FINE}/lead", data={"source": "warning"},
                headers={"Origin": "https://evil.example"}, follow_redirects=False)  # fmt: skip
    assert r.status_code == 403
    r = cw.post(f"/cw/cases/{FINE}/lead", data={"source": "warning"},
                headers={"Sec-Fetch-Site": "cross-site"}, follow_redirects=False)  # fmt: skip
    assert r.status_code == 403 and state.desk().store.current(FINE) is None
    # a form from a page gone stale (another case id) is refused, not applied
    _saved(_post(cw, "lead", {"source": "self_report"}, hid=FINE), hid=FINE)
    r = cw.post(f"/cw/cases/{FINE}/visit", data={**VISIT, "consent": "1", "case_id": "0" * 32},
                follow_redirects=False)  # fmt: skip
    assert r.status_code == 409 and "case_id" in r.text
    # a double tap (the same form's key) stores one event
    page = cw.get(f"/cw/cases/{FINE}").text
    data = {**_hidden(page, "visit"), **VISIT, "consent": "1", "outcome": "drop"}
    first = cw.post(f"/cw/cases/{FINE}/visit", data=data, follow_redirects=False)
    second = cw.post(f"/cw/cases/{FINE}/visit", data=data, follow_redirects=False)
    assert first.status_code == second.status_code == 303
    case = state.desk().store.current(FINE)
    assert case["status"] == "dropped" and case["events"] == 2
    # not logged in: to the login page; the access log has the views
    anon = TestClient(web.app)
    r = anon.get(f"/cw/cases/{HH}", follow_redirects=False)
    assert r.status_code == 303 and "/cw/login" in r.headers["location"]
    actions = {(x["action"], x["household_id"]) for x in service.ledger.access_log(200)}
    assert ("view_cases", None) in actions and ("view_case", HH) in actions
    assert ("denied_case", OUT) in actions


def test_forms_map_to_json():
    body, problems, _ = body_of("visit", Form([
        ("record.period", "2025-07"), ("record.household_size", "3"), ("record.income_wage", "1,200.5"),
        ("record.income_business", ""), ("record.dropout.shown", "1"), ("record.water_safe.shown", "1"),
        ("record.water_safe", "1"), ("consent", "1"), ("outcome", "fast_track"),
        ("coping_capacity", "none"), ("risk_types", "disaster"), ("risk_types", "housing"), ("note", ""),
    ]))  # fmt: skip
    assert problems == []
    assert body == {
        "consent": True, "outcome": "fast_track", "coping_capacity": "none",
        "risk_types": ["disaster", "housing"],
        "record": {"period": "2025-07", "household_size": 3, "income_wage": 1200.5,
                   "dropout": False, "water_safe": True},
    }  # fmt: skip
    body, problems, _ = body_of(
        "visit", Form([("record.labor_count", "1.5"), ("record.period", "7月")])
    )
    assert {p["field"] for p in problems} == {"record.labor_count", "record.period"}
    assert body["consent"] is False
    body, _, rows = body_of("plan", Form([
        ("measures[0].risk_type", "illness"), ("measures[0].measure", "医疗救助"),
        ("measures[1].risk_type", "illness"), ("measures[1].measure", ""),
        ("measures[2].risk_type", "low_income"), ("measures[2].measure", "公益性岗位"),
        ("measures[2].department", "人社局"), ("measures[2].kind", ""),
    ]))  # fmt: skip
    assert [m["measure"] for m in body["measures"]] == ["医疗救助", "公益性岗位"] and rows == [0, 2]
    assert "kind" not in body["measures"][1]
    assert shown_field("measures[1].start", rows) == "measures[2].start"
    body, _, _ = body_of("decide", Form([("decision", "reject"), ("household_type", "marginal"),
                                         ("risk_types", "illness"), ("note", "收入达标")]))  # fmt: skip
    assert body == {"decision": "reject", "note": "收入达标"}
    body, problems, _ = body_of("deliver", Form([("measure", "1"), ("delivered_on", "2025-08-01"),
                                                 ("amount", "x")]))  # fmt: skip
    assert body == {"measure": 1, "delivered_on": "2025-08-01"} and problems[0]["field"] == "amount"
    assert problem_text("consent", "needs consent", "zh").startswith("须经农户签字同意")
    assert problem_text("record.household_size", "at least 1", "en").endswith("at least 1")


def test_the_list_shows_unmatched_social_reports_of_the_keys_villages_only(clients, service):
    from riskml.alerts.report_intake import take_reports

    def report(village: str, text: str) -> dict:
        return {"organisation_kind": "volunteer", "county_code": village[:6],
                "village_code": village, "description": text, "risk_types": ["illness"],
                "observed_on": "2025-06-01"}  # fmt: skip

    got = take_reports([report(VILLAGE, "村东头一户老人重病无人照料"),
                        report(OTHER_VILLAGE, "另一县的报告")],
                       ledger=service.ledger, reporter="cp-ngo", caller="reporter:cp-ngo")  # fmt: skip
    assert (got.stored, got.unmatched) == (2, 2)
    html = clients["cw"].get("/cw/cases").text
    section = html[html.find('id="reports"') : html.find('id="expected"')]
    assert "村东头一户老人重病无人照料" in section and "因病" in section
    assert "另一县的报告" not in html
    county = clients["county"].get("/cw/cases").text
    assert "村东头一户老人重病无人照料" in county
    en = clients["cw"].get("/cw/cases?lang=en").text
    assert "Social reports not matched" in en
