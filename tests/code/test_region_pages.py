"""The regional pages (/cw/regions) through FastAPI's TestClient on a real ScoringService (no
model: the pages read the ledger and the case store only): region keys and their scopes, the
drill-down from a province to its villages (counts only), the CSV equal to the page's table,
the monthly brief, the 403s and the region key's entry in the keys file and CLI.

Decisions are written straight to the service's ledger (two periods, villages in three
counties: Yuanmou 532328 with two townships, Huize 530326, a national key county, and Tongjiang
511921 in Sichuan, a provincial key county); one case is a lead opened through the case store.
"""

from __future__ import annotations

import csv
import html as html_lib
import io
import re

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from riskml.cases.machine import Actor
from riskml.cli import app as cli_app
from riskml.service import api as web
from riskml.service import state
from riskml.service.access import KeyConfigError, KeyStore, add_key, hash_token
from riskml.service.areas import area_prefix
from riskml.service.core import ScoringService, Settings
from riskml.service.pages.region_pages import TABLES
from riskml.service.pages.session import FAILED

VILLAGES = {
    "532328101201": 4, "532328101202": 3, "532328102201": 3,  # Yuanmou, two townships
    "530326101201": 3,  # Huize (national key county)
    "511921101201": 2,  # Tongjiang, Sichuan (provincial key county)
}  # fmt: skip
HID = "rp_hh_"  # every household id starts with it: no page may show one


def _entry(hid: str, period: str, village: str, score: float, types: list[str]) -> dict:
    flagged = score >= 0.3
    return {
        "household_id": hid, "period": period, "county_code": village[:6], "village_code": village,
        "model_name": "m", "model_version": "1", "rules_version": "r", "score": score,
        "risk_level": "red" if flagged else "green", "flagged": flagged,
        "flagged_by": "rules+model" if score >= 0.5 else ("model" if flagged else None),
        "record": {}, "result": {"risk_types": types if flagged else []},
    }  # fmt: skip


def _decisions() -> list[dict]:
    out = []
    n = 0
    for village, count in VILLAGES.items():
        for i in range(count):
            n += 1
            for period, bump in (("2025-06", 0.0), ("2025-12", 0.2 if village.startswith("532328101") else 0.0)):  # fmt: skip
                score = round(min(0.95, 0.1 + 0.1 * (i % 4) + bump), 3)
                types = ["illness"] if i % 2 else ["low_income", "housing"]
                out.append(_entry(f"{HID}{n}", period, village, score, types))
    return out


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    path = tmp_path_factory.mktemp("region-page-keys") / "api_keys.yaml"
    return {
        "path": path,
        "province": add_key(path, "rp-yunnan", "region", areas=["53"]),
        "prefecture": add_key(path, "rp-chuxiong", "region", areas=["5323"]),
        "county": add_key(path, "rp-yuanmou", "region", areas=["532328"]),
        "two": add_key(path, "rp-two", "region", areas=["532328", "51"]),
        "cw": add_key(path, "rp-grid-1", "caseworker", villages=["532328101201"]),
        "admin": add_key(path, "rp-admin", "admin"),
    }


@pytest.fixture(scope="module")
def service(keys, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("region-page-service")
    svc = ScoringService(
        Settings(
            tracking_uri=f"sqlite:///{tmp / 'no-registry.db'}",  # absent: no model, as intended
            cache_dir=tmp / "model-cache",
            ledger_url=f"sqlite:///{tmp / 'ledger.db'}",
            keys_file=str(keys["path"]),
        )
    )
    svc.ledger.record(_decisions(), caller="test", request_id="rp-1")
    previous = state.bound()
    web.bind(svc)
    state.desk().store.act(
        Actor("rp-town", "township", townships=frozenset({"532328101"})), f"{HID}1", "lead",
        {"source": "self_report"}, where=("532328", "532328101201"),
    )  # fmt: skip
    TABLES.clear()
    yield svc
    TABLES.clear()
    svc.close()
    state.bind(previous)


@pytest.fixture(autouse=True)
def _no_failed_logins_yet():
    FAILED.clear()
    yield
    FAILED.clear()


def _login(token: str, next_url: str = "/cw/regions") -> tuple[TestClient, str]:
    client = TestClient(web.app)
    r = client.post("/cw/login", data={"key": token, "next": next_url}, follow_redirects=False)
    assert r.status_code == 303, r.text
    return client, r.headers["location"]


@pytest.fixture(scope="module")
def clients(service, keys):
    return {who: _login(keys[who])[0] for who in ("province", "prefecture", "county", "two", "cw", "admin")}  # fmt: skip


def _rows(page: str) -> list[dict[str, str]]:
    """The child table's rows: {column key: cell text} (+ ``_code``, ``_class``)."""
    out = []
    for attrs, body in re.findall(r"<tr (data-code=[^>]*)>(.*?)</tr>", page, re.S):
        cells = {
            k: html_lib.unescape(re.sub(r"<[^>]+>", "", v)).strip()
            for k, v in re.findall(r'data-key="([a-z_]+)">(.*?)</td>', body, re.S)
        }
        cells["_code"] = re.search(r'data-code="([0-9]+)"', attrs)[1]
        cells["_class"] = "key-row" if "key-row" in attrs else ""
        out.append(cells)
    return out


def _csv_rows(body: bytes) -> tuple[list[str], list[list[str]]]:
    text = body.decode("utf-8")
    assert text.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(text[1:])))
    return rows[0], rows[1:]


def test_a_county_key_sees_its_county_only(clients):
    c = clients["county"]
    r = c.get("/cw/regions", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/cw/regions/532328"
    page = c.get("/cw/regions/532328")
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    assert "元谋县" in page.text and "下辖乡镇" in page.text
    assert [row["_code"] for row in _rows(page.text)] == ["532328101", "532328102"]
    # the areas above named in the breadcrumb, not linked (the key may not open them)
    crumbs = page.text[page.text.find('class="crumbs') : page.text.find('id="area"')]
    assert "楚雄彝族自治州" in crumbs and "/cw/regions/532300" not in crumbs
    assert "/cw/regions/532300" in clients["province"].get("/cw/regions/532328").text
    for inside in ("532328101", "532328101201"):
        assert c.get(f"/cw/regions/{inside}").status_code == 200
    for outside in ("530326", "53", "532300", "511921101201", "530326101201"):
        r = c.get(f"/cw/regions/{outside}")
        assert r.status_code == 403, outside
        assert "无权查看该地区" in r.text and 'id="refused"' in r.text
        assert "会泽" not in r.text  # nothing of the refused area
    for url in ("/cw/regions/530326.csv", "/cw/regions/530326/brief", "/cw/regions/53.csv"):
        assert c.get(url).status_code == 403, url


def test_a_province_key_drills_down_to_villages_counts_only(clients):
    c = clients["province"]
    assert c.get("/cw/regions", follow_redirects=False).headers["location"] == "/cw/regions/53"
    pages = {}
    for code, children in (
        ("53", ["532300", "530300"]),  # most expected first
        ("532300", ["532328"]),
        ("532328", ["532328101", "532328102"]),
        ("532328101", ["532328101201", "532328101202"]),
    ):
        page = c.get(f"/cw/regions/{code}?period=2025-12")
        assert page.status_code == 200, (code, page.text[-1500:])
        rows = _rows(page.text)
        assert [r["_code"] for r in rows] == children, code
        assert f'href="/cw/regions/{children[0]}?period=2025-12"' in page.text  # the drill-down
        pages[code] = page.text
    # the counts add up: the county's households are its townships'
    county = _rows(pages["532300"])[0]
    townships = _rows(pages["532328"])
    assert int(county["households"]) == sum(int(r["households"]) for r in townships) == 10
    # a village: its figures and risk types, no table below it
    village = c.get("/cw/regions/532328101201?period=2025-12").text
    assert 'id="figures"' in village and 'id="children"' not in village
    assert "监测农户" in village and 'data-risk-type="illness"' in village
    # the key county marked; the sparklines and the risk-type strips drawn
    qujing = _rows(c.get("/cw/regions/530300").text)
    assert qujing[0]["_code"] == "530326" and qujing[0]["_class"] == "key-row"
    assert "国家重点帮扶县" in qujing[0]["key"]
    assert "国家重点帮扶县 1 个" in _rows(pages["53"])[1]["key"]
    assert pages["532328"].count('class="spark ') == 2 and 'class="strip"' in pages["532328"]
    # never a household: no id on any page, CSV or brief
    for text in [*pages.values(), village, c.get("/cw/regions/532328.csv").text,
                 c.get("/cw/regions/532328/brief").text]:  # fmt: skip
        assert HID not in text
    assert c.get("/cw/regions/51").status_code == 403
    assert c.get("/cw/regions/511921").status_code == 403


def test_the_expected_counts_and_changes_on_the_page(clients, service):
    """The township row's figures against sums computed directly from the decisions."""
    rows = {r["_code"]: r for r in _rows(clients["county"].get("/cw/regions/532328").text)}
    dec = [d for d in _decisions() if d["village_code"].startswith("532328101")]
    now = [d for d in dec if d["period"] == "2025-12"]
    before = [d for d in dec if d["period"] == "2025-06"]
    t = rows["532328101"]
    assert t["households"] == str(len(now)) == "7"
    assert t["flagged"] == str(sum(d["flagged"] for d in now))
    assert t["flagged_rules"] == str(sum(d["flagged_by"] == "rules+model" for d in now))
    assert t["expected"] == f"{sum(d['score'] for d in now):.1f}"
    change = sum(d["score"] for d in now) - sum(d["score"] for d in before)
    assert t["expected_change"] == f"{change:+.1f}"
    lo, hi = (int(x) for x in t["interval"].split("–"))
    assert lo <= sum(d["score"] for d in now) <= hi
    assert t["overdue"] == "0" and rows["532328102"]["monitored"] == "0"
    assert t["top_risk_type"] in ("因病", "低收入", "住房安全")  # a risk type's Chinese name
    # an earlier period: its own counts, the case loop's "now" counts not applicable
    old = {r["_code"]: r for r in _rows(clients["county"].get("/cw/regions/532328?period=2025-06").text)}  # fmt: skip
    assert old["532328101"]["expected"] == f"{sum(d['score'] for d in before):.1f}"
    assert old["532328101"]["overdue"] == "—" and old["532328101"]["expected_change"] == "—"


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_the_csv_equals_the_table(clients, lang):
    c = clients["province"]
    for code in ("53", "532328", "532328101"):
        page = c.get(f"/cw/regions/{code}?period=2025-12&lang={lang}")
        export = re.search(r'id="export" href="([^"]+)"', page.text)[1]
        r = c.get(html_lib.unescape(export))
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        assert "attachment" in r.headers["content-disposition"]
        header, rows = _csv_rows(r.content)
        shown = re.findall(r"<th>([^<]*)</th>", page.text.split('id="children"')[1])
        assert header == shown[: len(header)]
        keys = list(_rows(page.text)[0].keys())[:-2]
        assert [[row[k] for k in keys] for row in _rows(page.text)] == rows, code
    # the key's own areas (several): the same table as the page
    two = clients["two"]
    page = two.get("/cw/regions")
    assert page.status_code == 200
    assert sorted(r["_code"] for r in _rows(page.text)) == ["51", "532328"]
    _, rows = _csv_rows(two.get("/cw/regions.csv").content)
    assert sorted(r[0] for r in rows) == ["51", "532328"]


def test_the_monthly_brief_of_a_county(clients):
    c = clients["county"]
    page = c.get("/cw/regions/532328")
    brief_url = html_lib.unescape(re.search(r'id="brief-link" href="([^"]+)"', page.text)[1])
    r = c.get(brief_url)
    assert r.status_code == 200, r.text[-2000:]
    text = r.text
    assert "元谋县" in text and "2025-12 月度简报" in text
    assert 'id="print-button"' in text and "/cw/static/print.js" in text
    figures = text[text.find('id="brief-figures"') : text.find('id="brief-changes"')]
    assert "监测农户" in figures and "预计" in figures
    changes = text[text.find('id="brief-changes"') : text.find('id="brief-top"')]
    assert "上期 2025-06" in changes and "+" in changes
    top = text[text.find('id="brief-top"') : text.find('id="brief-rising"')]
    assert "因病" in top
    rising = text[text.find('id="brief-rising"') : text.find('id="brief-bars"')]
    assert "532328101" in rising  # the township whose expected count rose
    assert HID not in text
    css = c.get("/cw/static/region.css")
    assert css.status_code == 200 and "@media print" in css.text
    en = c.get("/cw/regions/532328/brief?lang=en").text
    assert "monthly brief, 2025-12" in en and "Top risk types" in en
    # briefs are for counties and above; a township has none
    assert c.get("/cw/regions/532328101/brief").status_code == 404
    # a period without a previous one says so
    first = c.get("/cw/regions/532328/brief?period=2025-06&lang=zh").text
    assert "没有上期数据" in first


def test_refusals_are_pages_never_errors(clients, service, keys):
    cw = clients["cw"]
    for url in ("/cw/regions", "/cw/regions/532328", "/cw/regions/532328.csv",
                "/cw/regions/532328/brief"):  # fmt: skip
        r = cw.get(url, follow_redirects=False)
        assert r.status_code == 403, url
        assert "区域页面仅供" in r.text
    anonymous = TestClient(web.app)
    r = anonymous.get("/cw/regions/53", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/cw/login")
    province = clients["province"]
    for bad in ("12ab", "5", "530000", "5323", "1234567"):
        assert province.get(f"/cw/regions/{bad}").status_code == 404, bad
    # a region key logs in to the regional pages whatever next it was given
    _, where = _login(keys["county"], "/cw/worklist")
    assert where == "/cw/regions"
    # and the caseworker pages do not open for it (the login form again, no error)
    r = clients["county"].get("/cw/worklist", follow_redirects=False)
    assert r.status_code == 303 and "/cw/login" in r.headers["location"]
    # an admin sees the provinces
    admin = clients["admin"].get("/cw/regions")
    assert admin.status_code == 200
    assert sorted(r["_code"] for r in _rows(admin.text)) == ["51", "53"]
    # the views are in the access log, with the region key's scope
    log = service.ledger.access_log(200)
    assert any(e["action"] == "denied_region" and e["actor"] == "rp-yuanmou" for e in log)
    assert any(e["action"] == "view_region" and e["scope"] == "area:53" for e in log)


def test_region_keys_in_the_keys_file_and_cli(tmp_path):
    def entry(**kw):
        return {"id": "r1", "hash": hash_token("t"), "role": "region", **kw}

    store = KeyStore.from_entries([entry(areas=["53", "5323", "532328"])])
    p = store.entries[0].principal()
    assert p.can_read_area("532328101201") and p.can_read_area("53")
    assert not p.can_read("532328", "532328101201")  # counts only: no household
    assert p.scope_filter() == ([], [])
    only = KeyStore.from_entries([entry(areas=["532328"])]).entries[0].principal()
    assert not only.can_read_area("532300") and not only.can_read_area("530326")
    assert area_prefix("532300") == "5323" and area_prefix("530000") == "53"
    for bad, word in (
        ({}, "scoped by areas"),
        ({"areas": ["530000"]}, "not a 2-digit province"),
        ({"areas": ["532300"]}, "a prefecture 5323, not 532300"),
        ({"areas": ["533"]}, "not a 2-digit province"),
        ({"areas": ["99"]}, "does not start with a province"),
        ({"areas": ["53"], "counties": ["532328"]}, "scoped by areas"),
    ):
        with pytest.raises(KeyConfigError, match=word):
            KeyStore.from_entries([entry(**bad)])
    with pytest.raises(KeyConfigError, match="areas apply to region keys only"):
        KeyStore.from_entries([{"id": "c", "hash": hash_token("c"), "role": "county",
                                "counties": ["532328"], "areas": ["53"]}])  # fmt: skip
    path = tmp_path / "keys.yaml"
    runner = CliRunner()
    res = runner.invoke(cli_app, ["keys", "add", "--id", "yn", "--role", "region", "--area", "53",
                                  "--file", str(path)])  # fmt: skip
    assert res.exit_code == 0, res.output
    listed = runner.invoke(cli_app, ["keys", "list", "--file", str(path)])
    assert listed.exit_code == 0 and "region" in listed.output and "53" in listed.output
    assert KeyStore.load(path, env=False).entries[0].areas == ("53",)


def test_an_empty_ledger_and_an_unavailable_one_are_pages(clients, monkeypatch):
    import pandas as pd

    from riskml.regions.table import COLUMNS
    from riskml.service.pages import region_pages
    from riskml.store.ledger import LedgerError

    c = clients["county"]
    monkeypatch.setattr(region_pages.TABLES, "get", lambda: pd.DataFrame(columns=list(COLUMNS)))
    for url in ("/cw/regions/532328", "/cw/regions/532328/brief", "/cw/regions/532328101201"):
        r = c.get(url)
        assert r.status_code == 200 and 'id="no-data"' in r.text, url
    assert _csv_rows(c.get("/cw/regions/532328.csv").content)[1] == []

    def down():
        raise LedgerError("the ledger is down")

    monkeypatch.setattr(region_pages.TABLES, "get", down)
    r = c.get("/cw/regions/532328")
    assert r.status_code == 503 and "暂时无法使用" in r.text


def test_the_table_is_computed_once_within_its_time(service, clients, monkeypatch):
    from riskml.regions import view
    from riskml.service.pages.region_pages import TableCache

    calls = []
    real = view.ledger_table
    monkeypatch.setattr(view, "ledger_table", lambda *a, **k: calls.append(1) or real(*a, **k))
    cache = TableCache(ttl_s=60)
    first = cache.get()
    assert cache.get() is first and len(calls) == 1
    cache.clear()
    assert cache.get().equals(first) and len(calls) == 2
    assert TableCache(ttl_s=0).get().equals(first)  # no time: computed again
