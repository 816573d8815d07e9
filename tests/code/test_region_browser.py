"""The regional pages in a real headless Chromium: a province official on a phone opens
/cw/regions, drills down province → prefecture → county → township → village, exports the
county's table as CSV (equal to the page's) and prints the county's monthly brief (one page).

Runs Debian's chromium (``make browser``) through Playwright against a real ``bentoml serve``
on loopback, without a model (the pages read the ledger and the case store only): the
decisions of test_region_pages are written to the server's ledger before it starts.

Screenshots in tests/artifacts (not committed): regions-province-phone.png,
regions-county-phone.png, regions-village-phone.png, regions-brief.png,
regions-county-desktop.png.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest

from riskml.cases.machine import Actor
from riskml.cases.procedure import load as load_procedure
from riskml.cases.store import CaseStore
from riskml.service.access import add_key
from riskml.store.ledger import Ledger
from tests.code.service_harness import start_server
from tests.code.test_browser import CHROMIUM, CHROMIUM_ARGS, _require_browser
from tests.code.test_region_pages import HID, _decisions
from tests.conftest import ARTIFACTS

pytestmark = pytest.mark.slow

PHONE = {"width": 390, "height": 844}


@pytest.fixture(scope="module")
def keys(session_dir):
    path = session_dir / "region_browser_keys.yaml"
    if path.exists():
        path.unlink()
    return {"path": path, "province": add_key(path, "rb-yunnan", "region", areas=["53"])}


@pytest.fixture(scope="module")
def server(session_dir, keys):
    url = f"sqlite:///{session_dir / 'region-browser-ledger.db'}"
    (session_dir / "region-browser-ledger.db").unlink(missing_ok=True)
    ledger = Ledger(url)
    ledger.record(_decisions(), caller="test", request_id="rb-1")
    CaseStore(ledger, load_procedure()).act(
        Actor("rb-town", "township", townships=frozenset({"532328101"})), f"{HID}1", "lead",
        {"source": "self_report"}, where=("532328", "532328101201"),
    )  # fmt: skip
    ledger.close()
    env = {
        "RISKML_API_KEYS_FILE": str(keys["path"]),
        "RISKML_LEDGER_URL": url,
        "RISKML_MODEL_CACHE": str(session_dir / "region-browser-model-cache"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{session_dir / 'region-browser-no-registry.db'}",
    }
    srv = start_server(env, ARTIFACTS / "region-browser-service.log")
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


def _fits(page) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


def _drill(page, server, code: str) -> None:
    page.click(f'tr[data-code="{code}"] a.area-link')
    page.wait_for_url(f"{server.url}/cw/regions/{code}?period=2025-12")
    assert page.get_attribute("#area", "data-code") == code
    _fits(page)


def test_a_province_official_drills_down_exports_and_prints(server, browser, keys):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True,
                                  has_touch=True, locale="zh-CN", accept_downloads=True)  # fmt: skip
    page = context.new_page()
    try:
        page.goto(f"{server.url}/cw/regions")
        assert "/cw/login" in page.url
        page.fill("#key", keys["province"])
        page.click("main button[type=submit]")
        page.wait_for_url(f"{server.url}/cw/regions/53")
        assert "云南 (53)" in page.inner_text("#area")
        rows = page.locator("table.region-table tbody tr")
        assert [rows.nth(i).get_attribute("data-code") for i in range(rows.count())] == ["532300", "530300"]  # fmt: skip
        assert page.locator("svg.spark").count() == 2  # a trend per prefecture
        assert page.locator("#risk-types svg.rt-bars rect.bar-flagged").count() >= 3
        _fits(page)
        link = page.locator("a.area-link").first.bounding_box()
        assert link and link["height"] >= 40  # a finger's target
        page.screenshot(path=str(ARTIFACTS / "regions-province-phone.png"), full_page=True)

        # the key county marked in its prefecture
        page.goto(f"{server.url}/cw/regions/530300")
        key_row = page.locator('tr[data-code="530326"]')
        assert "国家重点帮扶县" in key_row.inner_text()
        border = key_row.evaluate("e => getComputedStyle(e).borderLeftColor")
        assert border == "rgb(198, 40, 40)"
        page.goto(f"{server.url}/cw/regions/53")

        # drill down to a village: prefecture, county, township, village
        for code in ("532300", "532328"):
            _drill(page, server, code)
        page.screenshot(path=str(ARTIFACTS / "regions-county-phone.png"), full_page=True)
        shown = [
            [td.inner_text().strip() for td in row.locator("td[data-key]").all()]
            for row in page.locator("table.region-table tbody tr").all()
        ]
        with page.expect_download() as got:
            page.click("#export")
        text = Path(got.value.path()).read_text(encoding="utf-8-sig")
        exported = list(csv.reader(io.StringIO(text)))
        assert exported[1:] == shown and len(shown) == 2
        assert HID not in text
        for code in ("532328101", "532328101201"):
            _drill(page, server, code)
        assert page.locator("#figures").is_visible() and page.locator("#children").count() == 0
        assert HID not in page.content()
        page.screenshot(path=str(ARTIFACTS / "regions-village-phone.png"), full_page=True)

        # the county's monthly brief: print media hides the navigation; one A4 page
        page.goto(f"{server.url}/cw/regions/532328")
        page.click("#brief-link")
        page.wait_for_url(f"{server.url}/cw/regions/532328/brief?period=2025-12")
        assert "月度简报" in page.inner_text("h1") and "因病" in page.inner_text("#brief-top")
        page.emulate_media(media="print")
        assert not page.locator(".top").is_visible()
        assert not page.locator("#print-button").is_visible()
        page.screenshot(path=str(ARTIFACTS / "regions-brief.png"), full_page=True)
        pdf = page.pdf(format="A4", print_background=True)
        assert _pages(pdf) == 1
        page.emulate_media(media="screen")
    finally:
        context.close()

    # a desktop screen: the same county as a table
    wide = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    try:
        desk = wide.new_page()
        desk.goto(f"{server.url}/cw/login")
        desk.fill("#key", keys["province"])
        desk.click("main button[type=submit]")
        desk.wait_for_url(f"{server.url}/cw/regions/53")
        desk.goto(f"{server.url}/cw/regions/532328")
        assert desk.locator("table.region-table thead").is_visible()
        desk.screenshot(path=str(ARTIFACTS / "regions-county-desktop.png"), full_page=True)
    finally:
        wide.close()


def _pages(pdf: bytes) -> int:
    """The page count of a PDF Chromium printed (its page tree's /Count)."""
    counts = [int(n) for n in re.findall(rb"/Type\s*/Pages\b[^>]*?/Count\s+(\d+)", pdf, re.S)]
    counts += [int(n) for n in re.findall(rb"/Count\s+(\d+)[^>]*?/Type\s*/Pages\b", pdf, re.S)]
    assert counts, "no page tree in the PDF"
    return max(counts)
