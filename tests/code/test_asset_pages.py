"""The assets' county pages (/cw/assets) on a real ScoringService: the register of the key's
county with filters and summary, CSV export, an asset's page (events, returns chart,
distributions, latest score), 403 for other roles and for an asset of another county, household
ids only for keys scoped to the asset's county; and the pure views' figures."""

from __future__ import annotations

import csv
import io

import pytest
from fastapi.testclient import TestClient

from riskml.assets.register import AssetStore
from riskml.service import api as web
from riskml.service import state
from riskml.service.access import KeyStore, add_key
from riskml.service.core import ScoringService, Settings
from riskml.service.pages import SESSION_COOKIE, sign_session
from riskml.service.pages.asset_pages import county_summary, register_rows, returns_chart
from riskml.service.pages.session import FAILED
from riskml.store.tables import asset_scores
from tests.code.asset_samples import event, record

COUNTY, OTHER = "530102", "530103"


def seed_assets(ledger) -> None:
    """Three assets (two of COUNTY), incomes, a distribution and a stored score of A-1."""
    store = AssetStore(ledger)
    store.register([
        record(),
        record(asset_id="A-2", status="idle", category="public_welfare", subtype="road",
               beneficiaries=[]),
        record(asset_id="B-1", county_code=OTHER, village_code="530103001001"),
    ], actor="test", date="2021-01-10")  # fmt: skip
    store.append([
        event("income", "2022-12-31", year=2022, amount=60000),
        event("income", "2023-12-31", year=2023, amount=20000),
        event("distribution", "2024-01-20", year=2023, items=[
            {"use": "no_labour_low_income", "amount": 6000, "household_id": "hh-1"},
            {"use": "no_labour_low_income", "amount": 4000, "household_id": "hh-2"},
            {"use": "collective", "amount": 10000}]),
    ], actor="test")  # fmt: skip
    result = {"asset_id": "A-1", "year": 2023, "score": 0.71, "warning": True,
              "rules": [{"rule": "low_return", "value": "2.0%", "threshold": "3%",
                         "reason_zh": "收益率低于底线", "reason_en": "return below the floor"}],
              "reasons": [{"feature": "return_rate", "value": 0.02, "contribution": 0.4,
                           "text_zh": "上年收益率仅 2.0%", "text_en": "last year's return only 2.0%"}],
              "action": {"action": "revive", "text_zh": "盘活", "text_en": "revive",
                         "why_zh": "收益低", "why_en": "low returns"}}  # fmt: skip
    with ledger.writer.begin() as conn:
        conn.execute(asset_scores.insert(), [{
            "score_id": "s1", "request_id": "r1", "asset_id": "A-1", "year": 2023,
            "county_code": COUNTY, "created_at": "2024-02-01T00:00:00+00:00", "caller": "test",
            "model_name": "asset-risk", "model_version": "1", "rules_version": "2026.1",
            "score": 0.71, "flagged": True, "action": "revive", "observation": {}, "result": result,
        }])  # fmt: skip


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    path = tmp_path_factory.mktemp("asset-page-keys") / "api_keys.yaml"
    return {
        "path": path,
        "assets": add_key(path, "ap-kunming", "assets", counties=[COUNTY]),
        "other": add_key(path, "ap-other", "assets", counties=[OTHER]),
        "cw": add_key(path, "ap-cw", "caseworker", counties=[COUNTY]),
        "admin": add_key(path, "ap-admin", "admin"),
    }


@pytest.fixture(scope="module")
def service(keys, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("asset-page-service")
    svc = ScoringService(
        Settings(
            tracking_uri=f"sqlite:///{tmp / 'no-registry.db'}",  # absent: no model, as intended
            cache_dir=tmp / "model-cache",
            ledger_url=f"sqlite:///{tmp / 'ledger.db'}",
            keys_file=str(keys["path"]),
        )
    )
    seed_assets(svc.ledger)
    previous = state.bound()
    web.bind(svc)
    yield svc
    svc.close()
    state.bind(previous)


def _client(keys, who: str) -> TestClient:
    """A client with a session of the key (as the login sets it)."""
    entry = KeyStore.load(keys["path"], env=False).entry_by_id(
        {"assets": "ap-kunming", "other": "ap-other", "cw": "ap-cw", "admin": "ap-admin"}[who]
    )
    client = TestClient(web.app)
    client.cookies.set(SESSION_COOKIE, sign_session(entry.id, entry.hash), path="/cw")
    return client


@pytest.fixture(autouse=True)
def _no_failed_logins():
    FAILED.clear()
    yield


def test_the_register_shows_the_county_s_assets_only_with_summary(service, keys):
    r = _client(keys, "assets").get("/cw/assets")
    assert r.status_code == 200, r.text
    page = r.text
    assert 'data-asset="A-1"' in page and 'data-asset="A-2"' in page
    assert 'data-asset="B-1"' not in page
    assert "资产台账" in page and "经营性" in page and "光伏电站" in page  # Chinese first
    assert 'id="sum-assets">2<' in page and 'id="sum-idle">50.0%<' in page
    # 10,000 to the two beneficiary households of A-1 (of 20,000 distributed): 10,000 per household
    assert 'id="sum-benefit">10,000<' in page


def test_filters_and_the_csv_export(service, keys):
    client = _client(keys, "assets")
    page = client.get("/cw/assets", params={"status": "idle"}).text
    assert 'data-asset="A-2"' in page and 'data-asset="A-1"' not in page
    r = client.get("/cw/assets.csv", params={"category": "operating"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8").lstrip("\ufeff"))))
    assert rows[0][0] == "asset_id" and [x[0] for x in rows[1:]] == ["A-1"]
    assert rows[1][-1] == "0.02"  # 20,000 / 1,000,000 in 2023


def test_the_asset_page_has_history_chart_distributions_and_the_latest_score(service, keys):
    page = _client(keys, "assets").get("/cw/assets/A-1").text
    assert page.count('class="event"') == 4  # register, two incomes, a distribution
    assert page.count('class="bar"') == 2 and "2022: 6.0%" in page
    assert 'data-action="revive"' in page and "上年收益率仅 2.0%" in page
    assert "hh-1" in page  # a key scoped to the asset's county sees the pseudonymous ids
    admin = _client(keys, "admin").get("/cw/assets/A-1?lang=en").text
    assert "hh-1" not in admin and "last year&#39;s return only 2.0%" in admin
    assert 'class="dist"' in admin  # counts and shares still shown


def test_other_roles_and_other_counties_are_refused(service, keys):
    assert _client(keys, "cw").get("/cw/assets").status_code == 403
    r = _client(keys, "other").get("/cw/assets/A-1")
    assert r.status_code == 403 and "A-1" not in r.text.split("<main>")[1].split("</main>")[0].replace("/cw/assets", "")  # fmt: skip
    assert _client(keys, "assets").get("/cw/assets/NOPE").status_code == 404
    r = TestClient(web.app).get("/cw/assets", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/cw/login")


def test_pure_views():
    states = [
        {"asset_id": "x", "category": "operating", "status": "idle", "original_value": 100.0,
         "incomes": {"2023": 2.0}, "beneficiaries": [{"household_id": "h1"}],
         "distributions": [{"year": 2023, "items": [{"use": "a", "amount": 2.0}]}]},
        {"asset_id": "y", "category": "public_welfare", "status": "operating",
         "original_value": 300.0},
    ]  # fmt: skip
    s = county_summary(states)
    assert (s["assets"], s["value"], s["idle_share"], s["return_rate"]) == (2, 400.0, 0.5, 0.02)
    assert s["benefit_per_household"] == 2.0 and s["by_category"][0]["share"] == 0.25
    assert [r["asset_id"] for r in register_rows(states, {"category": "public_welfare"})] == ["y"]
    chart = returns_chart(states[0])
    assert chart is not None and chart["bars"][0]["label"] == "2.0%"
    assert returns_chart(states[1]) is None
