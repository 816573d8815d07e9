"""End to end in a real headless Chromium: log in, worklist, a red household, 403 outside the scope.

Runs Debian's chromium (``make browser`` installs it with a CJK font) through
Playwright for Python against a real ``bentoml serve`` on loopback. Screenshots
go to tests/artifacts (not committed): worklist.png, household.png,
worklist-phone.png, household-phone.png, visit-sheet.png.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest

from riskml.service.access import add_key
from tests.code.service_harness import start_server
from tests.code.test_pages import _json_record, _red
from tests.conftest import ARTIFACTS

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic",
]  # fmt: skip
COUNTY = "532328"
OTHER_COUNTY = "530326"
RED_IN_SCOPE = "cw_browser_red"
RED_OUT_OF_SCOPE = "cw_browser_out"


def _require_browser() -> None:
    """Fail (never skip) when the browser or the CJK font is missing."""
    if not (os.path.exists(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(
            f"{CHROMIUM} is missing: run `make browser` (Debian chromium + fonts-wqy-microhei)"
        )
    fc_list = shutil.which("fc-list")
    fonts = (
        subprocess.run([fc_list, ":lang=zh"], capture_output=True, text=True).stdout
        if fc_list
        else ""
    )
    if not fonts.strip():
        pytest.fail("no Chinese font installed (pages would show boxes): run `make browser`")


@pytest.fixture(scope="module")
def keys(session_dir):
    path = session_dir / "browser_api_keys.yaml"
    if path.exists():
        path.unlink()
    return {
        "path": path,
        "scorer": add_key(path, "browser-scorer", "scorer"),
        "caseworker": add_key(path, "browser-cw", "caseworker", counties=[COUNTY]),
    }


@pytest.fixture(scope="module")
def server_env(session_dir, keys, registered):
    return {
        "RISKML_API_KEYS_FILE": str(keys["path"]),
        "RISKML_LEDGER_URL": f"sqlite:///{session_dir / 'browser-ledger.db'}",
        "RISKML_MODEL_CACHE": str(session_dir / "browser-model-cache"),
    }


@pytest.fixture(scope="module")
def server(server_env, keys, sample_panel, trained):
    """The real service, with 7 periods of two counties and one red household on each side of the scope."""
    srv = start_server(server_env, ARTIFACTS / "browser-service.log")
    try:
        deadline = time.time() + 60
        while time.time() < deadline and srv.request("GET", "/readyz")[0] != 200:
            time.sleep(0.3)
        panel = sample_panel[sample_panel["county_code"].isin([COUNTY, OTHER_COUNTY])]
        for _, frame in panel.sort_values(["period", "household_id"]).groupby("period", sort=True):
            records = [_json_record(r) for _, r in frame.iterrows()]
            status, body = srv.request("POST", "/score", {"households": records}, keys["scorer"])
            assert status == 200, body
        top = _json_record(trained.test_frame.sort_values("score", ascending=False).iloc[0])
        for hid, county in ((RED_IN_SCOPE, COUNTY), (RED_OUT_OF_SCOPE, OTHER_COUNTY)):
            for rec in _red(top, hid, county, f"{county}101201"):
                status, body = srv.request("POST", "/score", {"households": [rec]}, keys["scorer"])
                assert status == 200, body
        assert body["results"][0]["risk_level"] == "red"
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


def _log_in(page, server, token: str) -> None:
    page.goto(f"{server.url}/cw/worklist")
    assert "/cw/login" in page.url  # no session yet: sent to the login page
    page.fill("#key", token)
    page.click("button[type=submit]")
    page.wait_for_url(f"{server.url}/cw/worklist")


def test_caseworker_journey_in_chromium(server, browser, keys, server_env):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    page = context.new_page()
    try:
        _log_in(page, server, keys["caseworker"])

        # the session cookie: HttpOnly, SameSite=Strict, invisible to scripts, holds no key
        (cookie,) = [c for c in context.cookies() if c["name"] == "riskml_cw"]
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        assert keys["caseworker"] not in cookie["value"]
        assert "riskml_cw" not in page.evaluate("document.cookie")

        # the worklist: in-scope households only, red first, with colours and the visit rhythm
        rows = page.locator("table.worklist tbody tr")
        assert rows.count() > 3
        levels = [rows.nth(i).get_attribute("data-level") for i in range(rows.count())]
        assert levels[0] == "red"
        assert levels == sorted(levels, key=["red", "yellow", "green"].index)
        assert RED_OUT_OF_SCOPE not in page.content()
        assert page.locator(".badge.lv-red").first.is_visible()
        assert "每周走访" in page.inner_text("table.worklist")
        red_bg = page.eval_on_selector(".badge.lv-red", "e => getComputedStyle(e).backgroundColor")
        assert red_bg == "rgb(198, 40, 40)"
        page.screenshot(path=str(ARTIFACTS / "worklist.png"), full_page=True)

        # open a red household
        page.click(f'tr[data-level="red"] a.hh-link >> text="{RED_IN_SCOPE}"')
        page.wait_for_url(f"{server.url}/cw/households/{RED_IN_SCOPE}")
        reasons = page.locator("#reasons ol.reasons li")
        assert reasons.count() >= 1
        assert all(reasons.nth(i).inner_text().strip() for i in range(reasons.count()))
        assert page.locator("#rules ul.rules li").count() >= 1
        for chart, mark in (("svg.score-chart", "circle.pt"), ("svg.waterfall", "rect.wf-bar")):
            box = page.locator(chart).bounding_box()
            assert box and box["width"] > 200 and box["height"] > 100, chart
            assert page.locator(f"{chart} {mark}").count() >= 1, chart
        assert page.locator("svg.score-chart circle.pt").count() == 3  # three stored periods
        assert page.locator("svg.waterfall rect.wf-up").count() >= 1
        assert "推高风险" in page.inner_text("#contributions")
        page.screenshot(path=str(ARTIFACTS / "household.png"), full_page=True)

        # the printable visit sheet (print media)
        page.click("text=打印走访单")
        page.wait_for_url(f"{server.url}/cw/households/{RED_IN_SCOPE}/sheet")
        page.emulate_media(media="print")
        assert not page.locator(".top").is_visible()  # navigation hidden on paper
        assert "户主签字" in page.inner_text(".sheet")
        page.screenshot(path=str(ARTIFACTS / "visit-sheet.png"), full_page=True)
        page.emulate_media(media="screen")

        # a household outside the key's scope
        response = page.goto(f"{server.url}/cw/households/{RED_OUT_OF_SCOPE}")
        assert response.status == 403
        assert "不在您的密钥权限范围内" in page.inner_text("main")
        assert response.headers["cache-control"] == "no-store"

        # English switch
        page.goto(f"{server.url}/cw/worklist?lang=en")
        assert "Worklist" in page.inner_text("h1")
        page.goto(f"{server.url}/cw/worklist?lang=zh")

        # a phone: same session, no horizontal scrolling, big tap targets
        phone = browser.new_context(
            viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True,
            has_touch=True, locale="zh-CN", storage_state=context.storage_state(),
        )  # fmt: skip
        try:
            mobile = phone.new_page()
            mobile.goto(f"{server.url}/cw/worklist")
            assert mobile.evaluate("document.documentElement.scrollWidth") <= 390
            link = mobile.locator("a.hh-link").first.bounding_box()
            assert link and link["height"] >= 40
            mobile.screenshot(path=str(ARTIFACTS / "worklist-phone.png"), full_page=False)
            mobile.goto(f"{server.url}/cw/households/{RED_IN_SCOPE}")
            assert mobile.evaluate("document.documentElement.scrollWidth") <= 390
            mobile.screenshot(path=str(ARTIFACTS / "household-phone.png"), full_page=True)
        finally:
            phone.close()
    finally:
        context.close()

    # every page view is in the ledger's access log
    from riskml.store.ledger import Ledger

    ledger = Ledger(server_env["RISKML_LEDGER_URL"])
    log = ledger.access_log(50, actor="browser-cw")
    actions = {(r["action"], r["household_id"]) for r in log}
    assert ("view_worklist", None) in actions
    assert ("view_household", RED_IN_SCOPE) in actions
    assert ("view_visit_sheet", RED_IN_SCOPE) in actions
    assert ("denied_household", RED_OUT_OF_SCOPE) in actions
    ledger.close()
