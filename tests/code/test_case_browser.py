"""The case loop end to end in a real headless Chromium on a phone: visit, notice, approvals,
confirmation, plan, delivery, six monthly records, elimination; an overdue case on the list.

Runs Debian's chromium (``make browser``) through Playwright against a real ``bentoml serve``
on loopback, with a phone viewport (390 x 844), three people in three browser sessions: a
caseworker (village key), a township reviewer and a county approver.

The procedure is overridden for the server under test (``RISKML_CASE_PROCEDURE_FILE``):
``deadlines_days: {notice_min: 0, assign: 1}`` so the township may approve at once (the shipped
5-day notice is refused in test_case_api.py), and ``elimination: {months_monitored: 0}`` so the
elimination does not need six real months of monitoring; the six months *above the line* are
real: six monthly records scored through ``POST /score`` with a scorer key. The overdue case
is a lead opened through ``riskml.cases.store.CaseStore`` on the server's ledger three days
before the server starts (the API cannot back-date), past its 1-day assignment deadline.

Screenshots in tests/artifacts (not committed): case-list.png, case-visit.png,
case-visit-refused.png, case-notice.png, case-decide.png, case-plan.png,
case-elimination.png, case-eliminated.png, case-list-township.png.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
import yaml

from riskml.cases.machine import Actor, iso
from riskml.cases.procedure import load as load_procedure
from riskml.cases.store import CaseStore
from riskml.service.access import add_key
from riskml.store.ledger import Ledger
from tests.code.service_harness import start_server
from tests.code.test_browser import CHROMIUM, CHROMIUM_ARGS, _require_browser
from tests.code.test_pages import _json_record
from tests.conftest import ARTIFACTS

pytestmark = pytest.mark.slow

COUNTY = "532328"
TOWNSHIP = "532328101"
VILLAGE = "532328101201"
HH = "cb_hh_1"
OVERDUE = "cb_overdue_1"
MONTHS = ("2025-08", "2025-09", "2025-10", "2025-11", "2025-12", "2026-01")
PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def keys(session_dir):
    path = session_dir / "case_browser_keys.yaml"
    if path.exists():
        path.unlink()
    return {
        "path": path,
        "scorer": add_key(path, "cb-scorer", "scorer"),
        "cw": add_key(path, "cb-grid-1", "caseworker", villages=[VILLAGE]),
        "township": add_key(path, "cb-town-1", "township", townships=[TOWNSHIP]),
        "county": add_key(path, "cb-county-1", "county", counties=[COUNTY]),
    }


@pytest.fixture(scope="module")
def server_env(session_dir, keys, registered):
    procedure = session_dir / "case_browser_procedure.yaml"
    procedure.write_text(yaml.safe_dump({
        "deadlines_days": {"notice_min": 0, "assign": 1},
        "elimination": {"months_monitored": 0},
    }))  # fmt: skip
    ledger = session_dir / "case-browser-ledger.db"
    if ledger.exists():
        ledger.unlink()
    return {
        "RISKML_API_KEYS_FILE": str(keys["path"]),
        "RISKML_LEDGER_URL": f"sqlite:///{ledger}",
        "RISKML_MODEL_CACHE": str(session_dir / "case-browser-model-cache"),
        "RISKML_CASE_PROCEDURE_FILE": str(procedure),
    }


@pytest.fixture(scope="module")
def base_record(sample_panel):
    return _json_record(sample_panel[sample_panel["county_code"] == COUNTY].iloc[0])


@pytest.fixture(scope="module")
def server(server_env, keys, base_record):
    """The real service; before it starts, a lead opened three days ago (overdue: assign in 1 day)."""
    ledger = Ledger(server_env["RISKML_LEDGER_URL"])
    store = CaseStore(ledger, load_procedure(server_env["RISKML_CASE_PROCEDURE_FILE"]))
    opened = iso(datetime.now(UTC) - timedelta(days=3))
    store.act(Actor("cb-town-1", "township", townships=frozenset({TOWNSHIP})), OVERDUE, "lead",
              {"source": "self_report"}, where=(COUNTY, VILLAGE), at=opened)  # fmt: skip
    ledger.close()
    srv = start_server(server_env, ARTIFACTS / "case-browser-service.log")
    try:
        deadline = time.time() + 60
        while time.time() < deadline and srv.request("GET", "/readyz")[0] != 200:
            time.sleep(0.3)
        rec = dict(base_record, household_id=HH, village_code=VILLAGE, period="2025-06",
                   income_wage=500.0, medical_expense=60000.0)  # fmt: skip
        status, body = srv.request("POST", "/score", {"households": [rec]}, keys["scorer"])
        assert status == 200 and body["results"][0]["flagged"], body
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def browser():
    _require_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


def _person(browser, server, token: str):
    """A phone's browser session logged in with a key (sent on to the case list)."""
    context = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True,
                                  has_touch=True, locale="zh-CN")  # fmt: skip
    page = context.new_page()
    page.goto(f"{server.url}/cw/cases")
    assert "/cw/login" in page.url
    page.fill("#key", token)
    page.click("main button[type=submit]")
    page.wait_for_url(f"{server.url}/cw/cases")
    return context, page


def _open(page, server, hid: str = HH) -> None:
    page.goto(f"{server.url}/cw/cases/{hid}")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


def _submit(page, action: str, button: str = "button[type=submit]") -> None:
    page.click(f"#form-{action} {button}")
    page.wait_for_load_state()
    assert page.url.endswith(f"/cw/cases/{HH}?done={action}"), (page.url, page.inner_text("main"))
    assert page.locator("#done").is_visible()


def _status(page) -> str:
    return page.get_attribute("#status", "data-status")


def test_the_case_loop_in_chromium_on_a_phone(server, browser, keys):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    people = {who: _person(browser, server, keys[who]) for who in ("cw", "township", "county")}
    cw, tw, co = (people[w][1] for w in ("cw", "township", "county"))
    try:
        # the caseworker's list: the overdue lead marked, the warning among the new leads
        overdue = cw.locator(f'li.case-item[data-household="{OVERDUE}"]')
        assert overdue.get_attribute("data-clock") == "overdue"
        assert overdue.locator(".mark.clock-overdue").inner_text() == "已逾期"
        red = cw.eval_on_selector(".mark.clock-overdue", "e => getComputedStyle(e).backgroundColor")
        assert red == "rgb(198, 40, 40)"
        assert cw.locator(f'#fits li[data-household="{HH}"]').count() == 1
        assert "本周走访能力" in cw.inner_text("#fits") and cw.locator("#expected li").count() >= 1
        assert cw.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        cw.screenshot(path=str(ARTIFACTS / "case-list.png"), full_page=True)

        # the warning becomes a case; the home visit, first without consent (refused, marked)
        cw.click(f'#fits li[data-household="{HH}"] a.hh-link')
        cw.wait_for_url(f"**/cw/cases/{HH}")
        cw.select_option("#form-lead select[name=source]", "warning")
        _submit(cw, "lead")
        form = "#form-visit"
        for name, value in (("record.period", "2025-07"), ("record.household_size", "4"),
                            ("record.labor_count", "2"), ("record.income_wage", "600"),
                            ("record.income_business", "0"), ("record.income_property", "0"),
                            ("record.income_transfer", "1200"), ("record.medical_expense", "30000"),
                            ("record.education_expense", "0")):  # fmt: skip
            cw.fill(f'{form} input[name="{name}"]', value)
        for name in ("record.medical_insured", "record.housing_safe", "record.water_safe"):
            cw.check(f'{form} input[name="{name}"]')
        cw.uncheck(f'{form} input[name="record.dropout"]')
        cw.select_option(f"{form} select[name=coping_capacity]", "weak")
        cw.check(f"{form} input[name=outcome][value=propose]")
        for code in ("low_income", "illness"):
            cw.check(f'{form} input[name=risk_types][value="{code}"]')
        cw.screenshot(path=str(ARTIFACTS / "case-visit.png"), full_page=True)
        cw.click(f"{form} button[type=submit]")
        error = cw.locator('#form-visit .field-error[data-field="consent"]')
        assert error.is_visible() and error.inner_text().startswith("须经农户签字同意")
        assert cw.input_value(f'{form} input[name="record.medical_expense"]') == "30000"
        cw.screenshot(path=str(ARTIFACTS / "case-visit-refused.png"), full_page=True)
        cw.check(f"{form} #consent")
        for code in ("low_income", "illness"):  # the refused form keeps what was posted
            assert cw.is_checked(f'{form} input[name=risk_types][value="{code}"]')
        _submit(cw, "visit")
        assert _status(cw) == "visited"

        # the county cross-checks; the caseworker posts the redacted notice; the township approves
        _open(co, server)
        co.select_option("#form-cross_check select[name=result]", "consistent")
        _submit(co, "cross_check")
        _open(cw, server)
        notice = cw.inner_text("#notice-text")
        assert "公示" in notice and HH not in notice and "因病" not in notice
        cw.screenshot(path=str(ARTIFACTS / "case-notice.png"), full_page=True)
        _submit(cw, "notice")
        _open(tw, server)
        _submit(tw, "township_review", "button[value=approve]")
        assert _status(tw) == "township_approved"

        # the county confirms with the type and the risk types
        _open(co, server)
        co.select_option("#form-decide select[name=household_type]", "marginal")
        assert co.is_checked('#form-decide input[name=risk_types][value="illness"]')
        co.screenshot(path=str(ARTIFACTS / "case-decide.png"), full_page=True)
        _submit(co, "decide", "button[value=confirm]")
        assert _status(co) == "monitored"

        # the plan, pre-filled from the suggestion, saved; one measure delivered
        _open(cw, server)
        first = cw.input_value('#form-plan input[name="measures[0].measure"]')
        assert first
        cw.screenshot(path=str(ARTIFACTS / "case-plan.png"), full_page=True)
        _submit(cw, "plan")
        assert first in cw.inner_text("#plan-now")
        cw.select_option("#form-deliver select[name=measure]", "0")
        cw.fill("#form-deliver input[name=amount]", "800")
        _submit(cw, "deliver")
        assert "已落实" in cw.inner_text("#plan-now")

        # six monthly records above the line (the county platform's pushes)
        status, body = server.request("GET", f"/households/{HH}/decisions", token=keys["county"])
        assert status == 200, body
        latest = body["decisions"][-1]["record"]
        for month in MONTHS:
            rec = dict(latest, period=month, income_wage=60000.0, medical_expense=500.0)
            status, body = server.request("POST", "/score", {"households": [rec]}, keys["scorer"])
            assert status == 200, body

        # the elimination, with the evidence per criterion, proposed and approved twice
        _open(cw, server)
        criteria = cw.locator("#criteria-propose_elimination li")
        assert criteria.count() == 6
        assert all(criteria.nth(i).get_attribute("data-met") == "true" for i in range(6))
        assert "连续6个月高于监测线" in cw.inner_text("#criteria-propose_elimination")
        cw.screenshot(path=str(ARTIFACTS / "case-elimination.png"), full_page=True)
        _submit(cw, "propose_elimination")
        _open(tw, server)
        _submit(tw, "elimination_review", "button[value=approve]")
        _open(co, server)
        _submit(co, "elimination_decide", "button[value=approve]")
        assert _status(co) == "eliminated" and "风险已消除" in co.inner_text("#status")
        assert co.locator("#history li").count() >= 11
        co.screenshot(path=str(ARTIFACTS / "case-eliminated.png"), full_page=True)

        # the township's list: the overdue lead waits for its assignment there too
        tw.goto(f"{server.url}/cw/cases")
        step = tw.locator(f'#steps li[data-household="{OVERDUE}"]')
        assert step.get_attribute("data-clock") == "overdue"
        assert tw.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        tw.screenshot(path=str(ARTIFACTS / "case-list-township.png"), full_page=True)
    finally:
        for context, _ in people.values():
            context.close()

    # every event names its actor; the case pages' views are in the access log
    status, body = server.request("GET", f"/households/{HH}/case", token=keys["county"])
    assert status == 200 and body["current"]["status"] == "eliminated"
    status, body = server.request(
        "GET", f"/cases/{body['current']['case_id']}", token=keys["county"]
    )
    actors = {e["actor"] for e in body["events"]}
    assert {"caseworker:cb-grid-1", "township:cb-town-1", "county:cb-county-1"} <= actors
