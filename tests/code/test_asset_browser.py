"""The assets' county pages in a real headless Chromium against a real ``bentoml serve`` on
loopback (no model: the pages read the ledger): an admin logs in, opens the register (Chinese
first), filters it by status, exports it as CSV, opens an asset's page (events, returns chart,
distributions, the latest score's action) and switches it to English.

Screenshots in tests/artifacts (not committed): assets-register-phone.png, assets-page-phone.png.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from riskml.service.access import add_key
from riskml.store.ledger import Ledger
from tests.code.service_harness import start_server
from tests.code.test_asset_pages import seed_assets
from tests.code.test_browser import CHROMIUM, CHROMIUM_ARGS, _require_browser
from tests.conftest import ARTIFACTS

pytestmark = pytest.mark.slow

PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def keys(session_dir):
    path = session_dir / "asset_browser_keys.yaml"
    path.unlink(missing_ok=True)
    return {"path": path, "admin": add_key(path, "ab-admin", "admin")}


@pytest.fixture(scope="module")
def server(session_dir, keys):
    db = session_dir / "asset-browser-ledger.db"
    db.unlink(missing_ok=True)
    ledger = Ledger(f"sqlite:///{db}")
    seed_assets(ledger)
    ledger.close()
    env = {
        "RISKML_API_KEYS_FILE": str(keys["path"]),
        "RISKML_LEDGER_URL": f"sqlite:///{db}",
        "RISKML_MODEL_CACHE": str(session_dir / "asset-browser-model-cache"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{session_dir / 'asset-browser-no-registry.db'}",
    }
    srv = start_server(env, ARTIFACTS / "asset-browser-service.log")
    try:
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


def test_the_register_and_an_asset_page(server, browser, keys):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True,
                                  has_touch=True, locale="zh-CN", accept_downloads=True)  # fmt: skip
    page = context.new_page()
    try:
        page.goto(f"{server.url}/cw/assets")
        assert "/cw/login" in page.url
        page.fill("#key", keys["admin"])
        page.click("main button[type=submit]")
        page.wait_for_url(f"{server.url}/cw/assets")
        assert page.inner_text("h1") == "资产台账"
        rows = page.locator("#register tbody tr[data-asset]")
        assert [rows.nth(i).get_attribute("data-asset") for i in range(rows.count())] == ["A-1", "A-2", "B-1"]  # fmt: skip
        assert page.inner_text("#sum-assets") == "3"
        page.screenshot(path=str(ARTIFACTS / "assets-register-phone.png"), full_page=True)

        page.select_option("#f-status", "idle")
        page.click("#apply")
        page.wait_for_url("**/cw/assets?*status=idle*")
        assert page.locator("#register tbody tr[data-asset]").count() == 1
        with page.expect_download() as got:
            page.click("#export")
        text = Path(got.value.path()).read_text(encoding="utf-8-sig")
        assert [line.split(",")[0] for line in text.splitlines()] == ["asset_id", "A-2"]

        page.goto(f"{server.url}/cw/assets")
        page.click('tr[data-asset="A-1"] a.asset-link')
        page.wait_for_url(f"{server.url}/cw/assets/A-1")
        assert page.get_attribute("#action", "data-action") == "revive"
        assert page.locator("#returns svg rect.bar").count() == 2
        assert page.locator("#history tr.event").count() == 4
        assert page.locator("#distributions tr.dist").count() == 1
        assert "hh-1" not in page.content()  # an admin is not scoped to the county: counts only
        page.screenshot(path=str(ARTIFACTS / "assets-page-phone.png"), full_page=True)
        page.click("#lang-switch")
        page.wait_for_url("**/cw/assets/A-1?lang=en")
        assert "Latest score" in page.inner_text("#latest-score")
    finally:
        context.close()
