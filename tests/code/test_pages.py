"""Caseworker pages (riskml.pages) through FastAPI's TestClient: login, sessions (bound to the key's
hash, ended on logout, failing closed with the keys), scope, worklist, CSV, household, logs."""

from __future__ import annotations

import csv
import io
import os
import re
import time

import pandas as pd
import pytest
import yaml
from fastapi.testclient import TestClient

from riskml.data import schema
from riskml.model.features import ALL_FEATURE_NAMES, FEATURE_NAMES
from riskml.model.reasons import FEATURE_LABELS
from riskml.service import api as web
from riskml.service import pages, state
from riskml.service.access import KeyStore, Principal, add_key, hash_token, new_token
from riskml.service.core import ScoringService, Settings
from riskml.service.live_keys import LiveKeys
from riskml.service.pages.session import FAILED, SESSION_MARK, EndedSessions
from riskml.store.ledger import LedgerError

COUNTY = "532328"  # Yuanmou
VILLAGE = "532328101201"
OTHER_COUNTY = "530326"  # Huize
RED_IN_VILLAGE = "cw_red_1"
RED_OUT_OF_SCOPE = "cw_red_out"


def _json_record(row) -> dict:
    rec = {}
    for f in schema.FIELDS:
        v = row[f.name]
        if pd.isna(v):
            rec[f.name] = None
        elif f.kind == "int":
            rec[f.name] = int(v)
        elif f.kind == "float":
            rec[f.name] = float(v)
        elif f.kind == "bool":
            rec[f.name] = bool(v)
        else:
            rec[f.name] = str(v)
    return rec


def _red(base: dict, household_id: str, county: str, village: str) -> list[dict]:
    """Three periods of one household, the last with a red rule (large medical costs)."""
    out = []
    for period, medical, wage in (("2023-06", 1000.0, 30000.0), ("2024-06", 8000.0, 20000.0),
                                  ("2025-06", 60000.0, 2000.0)):  # fmt: skip
        out.append(
            dict(
                base,
                household_id=household_id,
                county_code=county,
                village_code=village,
                period=period,
                medical_expense=medical,
                income_wage=wage,
            )  # fmt: skip
        )
    return out


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    path = tmp_path_factory.mktemp("page-keys") / "api_keys.yaml"
    return {
        "path": path,
        "scorer": add_key(path, "county-platform", "scorer"),
        "admin": add_key(path, "ops", "admin"),
        "county": add_key(path, "cw-county", "caseworker", counties=[COUNTY]),
        "village": add_key(path, "cw-village", "caseworker", villages=[VILLAGE]),
    }


@pytest.fixture(scope="module")
def service(registered, trained, sample_panel, keys, tmp_path_factory):
    """A ScoringService on a temp ledger, filled with 7 periods of two counties and two red households."""
    tmp = tmp_path_factory.mktemp("page-service")
    svc = ScoringService(
        Settings(
            tracking_uri=os.environ["MLFLOW_TRACKING_URI"],
            cache_dir=tmp / "model-cache",
            ledger_url=f"sqlite:///{tmp / 'ledger.db'}",
            keys_file=str(keys["path"]),
        )
    )
    assert svc.loaded is not None
    auth = f"Bearer {keys['scorer']}"
    panel = sample_panel[sample_panel["county_code"].isin([COUNTY, OTHER_COUNTY])]
    for _, frame in panel.sort_values(["period", "household_id"]).groupby("period", sort=True):
        reply = svc.score({"households": [_json_record(r) for _, r in frame.iterrows()]}, auth)
        assert reply.status == 200, reply.body
    top = _json_record(trained.test_frame.sort_values("score", ascending=False).iloc[0])
    for hid, county, village in ((RED_IN_VILLAGE, COUNTY, VILLAGE),
                                 (RED_OUT_OF_SCOPE, OTHER_COUNTY, "530326101201")):  # fmt: skip
        for rec in _red(top, hid, county, village):
            reply = svc.score({"households": [rec]}, auth)
            assert reply.status == 200, reply.body
    previous = state.bound()
    web.bind(svc)
    yield svc
    state.bind(previous)


@pytest.fixture(autouse=True)
def _no_failed_logins_yet():
    """Each test starts with no failed logins counted (they would limit this client's address)."""
    FAILED.clear()
    yield
    FAILED.clear()


def _client(service, token: str | None = None) -> TestClient:
    client = TestClient(web.app)
    if token is not None:
        r = client.post("/cw/login", data={"key": token}, follow_redirects=False)
        assert r.status_code == 303, r.text
    return client


@pytest.fixture(scope="module")
def village_client(service, keys):
    return _client(service, keys["village"])


@pytest.fixture(scope="module")
def county_client(service, keys):
    return _client(service, keys["county"])


@pytest.fixture(scope="module")
def admin_client(service, keys):
    return _client(service, keys["admin"])


def _row_ids(html: str) -> list[str]:
    return re.findall(r'href="/cw/households/([^"/?]+)"', html)


def _row_levels(html: str) -> list[str]:
    return re.findall(r'<tr class="row lv-border-\w+" data-level="(\w+)"', html)


def _latest(service, **scope) -> list[dict]:
    rows = service.ledger.latest_by_household(
        scope.get("counties"), scope.get("villages"), flagged_only=True
    )
    return rows


# --------------------------------------------------------------------------- units
def test_every_feature_has_a_short_label():
    assert set(FEATURE_LABELS) == set(ALL_FEATURE_NAMES)
    for name, (zh, en) in FEATURE_LABELS.items():
        assert zh and en and len(zh) <= 10, name


def test_principal_by_id_finds_configured_keys_only():
    store = KeyStore.from_entries(
        [
            {
                "id": "cw-a",
                "hash": hash_token("rk_a" * 8),
                "role": "caseworker",
                "villages": [VILLAGE],
            },
            {"id": "ops", "hash": hash_token("rk_b" * 8), "role": "admin"},
        ]  # fmt: skip
    )
    assert store.principal_by_id("cw-a") == Principal(
        "cw-a", "caseworker", frozenset(), frozenset({VILLAGE})
    )
    assert store.principal_by_id("ops").role == "admin"
    assert store.principal_by_id("nobody") is None
    assert store.principal_by_id("") is None and store.principal_by_id(None) is None


def test_session_cookie_is_signed_and_expires():
    key_hash = hash_token("rk_" + "v" * 43)
    value = pages.sign_session("cw-village", key_hash)
    session = pages.read_session(value)
    assert session.key_id == "cw-village" and len(session.session_id) >= 22
    assert "cw-village" not in value  # the id is encoded; the key and its hash never appear
    assert key_hash[7:] not in value and key_hash[7:27] not in value
    id_part, mark, sid, issued, mac = value.split(".")
    forged = f"{pages.b64(b'ops')}.{mark}.{sid}.{issued}.{mac}"
    assert pages.read_session(forged) is None
    assert pages.read_session(value[:-2] + "AA") is None
    old = pages.sign_session(
        "cw-village", key_hash, issued=int(time.time()) - pages.SESSION_TTL_S - 5
    )
    assert pages.read_session(old) is None
    assert pages.read_session("garbage") is None and pages.read_session(None) is None
    # each login is its own session
    assert pages.read_session(pages.sign_session("cw-village", key_hash)).session_id != sid


def test_waterfall_runs_from_the_base_rate_to_the_score():
    values = {f: 0.0 for f in FEATURE_NAMES}
    values.update({"pc_income_to_line": 1.5, "medical_to_income": 0.8, "labor_count": -0.4,
                   "head_age": 0.05, "dibao": -0.02})  # fmt: skip
    wf = pages.waterfall({"base": -2.0, "values": values}, "zh", k=3)
    kinds = [r["kind"] for r in wf["rows"]]
    assert kinds == ["base", "up", "up", "down", "up", "final"]  # 3 largest, then "others"
    assert wf["rows"][1]["label"] == "人均收入/监测线"
    assert wf["rows"][4]["label"] == f"其他 {len(FEATURE_NAMES) - 3} 项"
    end = 1 / (1 + pow(2.718281828459045, -(-2.0 + 1.5 + 0.8 - 0.4 + 0.05 - 0.02)))
    assert wf["end_p"] == f"{end * 100:.0f}%" and wf["base_p"] == "12%"
    assert wf["up"] == ["人均收入/监测线", "医疗支出占收入"] and wf["down"] == ["劳动力人数"]
    # each bar starts where the previous one ended
    bars = [r for r in wf["rows"] if r["kind"] in ("up", "down")]
    for a, b in zip(bars, bars[1:], strict=False):
        assert a["to_x"] == b["from_x"]
    assert pages.waterfall(None, "zh") is None


def test_score_chart_has_one_point_per_period():
    chart = pages.score_chart(
        [{"period": "2023-06", "score": 0.1, "level": "green"},
         {"period": "2024-06", "score": 0.5, "level": "yellow"},
         {"period": "2025-06", "score": 0.9, "level": "red"}],
        (0.3, 0.6),
    )  # fmt: skip
    assert [d["level"] for d in chart["dots"]] == ["green", "yellow", "red"]
    assert chart["dots"][0]["cy"] > chart["dots"][2]["cy"]  # higher score, higher on the chart
    assert [b["level"] for b in chart["bands"]] == ["red", "yellow", "green"]


# --------------------------------------------------------------------------- login
def test_login_page_is_chinese_by_default_and_not_cached(service):
    r = TestClient(web.app).get("/cw/login")
    assert r.status_code == 200
    assert '<html lang="zh-CN">' in r.text and "工作密钥" in r.text
    assert r.headers["cache-control"] == "no-store"
    assert 'name="viewport"' in r.text


def test_caseworker_login_sets_a_signed_httponly_strict_cookie_with_the_key_id(service, keys):
    client = TestClient(web.app)
    r = client.post("/cw/login", data={"key": keys["village"]}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/cw/worklist"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{pages.SESSION_COOKIE}=")
    low = cookie.lower()
    assert "httponly" in low and "samesite=strict" in low and "path=/cw" in low
    assert keys["village"] not in cookie and hash_token(keys["village"])[7:] not in cookie
    value = client.cookies.get(pages.SESSION_COOKIE)
    assert pages.read_session(value).key_id == "cw-village"
    assert r.headers["cache-control"] == "no-store"


def test_admin_may_log_in(service, keys):
    r = TestClient(web.app).post("/cw/login", data={"key": keys["admin"]}, follow_redirects=False)
    assert r.status_code == 303


def test_scorer_key_is_refused_with_a_clear_message(service, keys):
    client = TestClient(web.app)
    r = client.post("/cw/login", data={"key": keys["scorer"]}, follow_redirects=False)
    assert r.status_code == 403
    assert "评分系统密钥不能登录走访工作台" in r.text
    assert pages.SESSION_COOKIE not in client.cookies
    r = client.post("/cw/login?lang=en", data={"key": keys["scorer"]}, follow_redirects=False)
    assert r.status_code == 403 and "scoring-system key cannot open" in r.text


@pytest.mark.parametrize("key", ["rk_wrong", "", "Bearer"])
def test_wrong_key_is_refused(service, key):
    client = TestClient(web.app)
    r = client.post("/cw/login", data={"key": key}, follow_redirects=False)
    assert r.status_code in (401, 422)
    assert pages.SESSION_COOKIE not in client.cookies


def test_login_accepts_a_bearer_prefix_and_only_local_next_urls(service, keys):
    client = TestClient(web.app)
    r = client.post(
        "/cw/login", data={"key": f"Bearer {keys['county']}", "next": "/cw/worklist?x=1"},
        follow_redirects=False,
    )  # fmt: skip
    assert r.status_code == 303 and r.headers["location"] == "/cw/worklist"
    for bad in ("https://evil.example/", "//evil.example/cw/", "/admin/reload"):
        r = client.post("/cw/login", data={"key": keys["county"], "next": bad},
                        follow_redirects=False)  # fmt: skip
        assert r.headers["location"] == "/cw/worklist", bad
    r = client.post("/cw/login", data={"key": keys["county"], "next": f"/cw/households/{RED_IN_VILLAGE}"},
                    follow_redirects=False)  # fmt: skip
    assert r.headers["location"] == f"/cw/households/{RED_IN_VILLAGE}"


def test_pages_without_a_session_redirect_to_login(service):
    client = TestClient(web.app)
    for path in ("/cw/worklist", "/cw/worklist.csv", f"/cw/households/{RED_IN_VILLAGE}"):
        r = client.get(path, follow_redirects=False)
        assert r.status_code == 303, path
        assert r.headers["location"].startswith("/cw/login?next=")
        assert r.headers["cache-control"] == "no-store"


def test_forged_expired_revoked_and_other_key_sessions_are_refused(service, keys):
    county = hash_token(keys["county"])
    cases = {
        "forged": pages.sign_session("ops", hash_token(keys["admin"]))[:-3] + "abc",
        "expired": pages.sign_session("cw-county", county, issued=int(time.time()) - 13 * 3600),
        "revoked": pages.sign_session("a-key-no-longer-configured", hash_token(new_token())),
        "scorer": pages.sign_session("county-platform", hash_token(keys["scorer"])),
        # the id of a configured key with another key's hash (an earlier key of that id)
        "other key": pages.sign_session("cw-county", hash_token(new_token())),
        "old format": "Y3ctY291bnR5.1700000000.abc",
    }
    for name, value in cases.items():
        client = TestClient(web.app)
        client.cookies.set(pages.SESSION_COOKIE, value, path="/cw")
        r = client.get("/cw/worklist", follow_redirects=False)
        assert r.status_code == 303, name
    client = TestClient(web.app)  # and the same cookie with the key's own hash holds
    client.cookies.set(pages.SESSION_COOKIE, pages.sign_session("cw-county", county), path="/cw")
    assert client.get("/cw/worklist", follow_redirects=False).status_code == 200


def test_logout_ends_the_session(service, keys):
    client = _client(service, keys["county"])
    assert client.get("/cw/worklist").status_code == 200
    r = client.post("/cw/logout", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/cw/login"
    assert client.get("/cw/worklist", follow_redirects=False).status_code == 303


def _with_cookie(value: str) -> TestClient:
    client = TestClient(web.app)
    client.cookies.set(pages.SESSION_COOKIE, value, path="/cw")
    return client


def test_logout_ends_the_session_on_the_server(service, keys):
    client = _client(service, keys["county"])
    value = client.cookies.get(pages.SESSION_COOKIE)
    other = _client(service, keys["county"])  # another session of the same key
    assert _with_cookie(value).get("/cw/worklist").status_code == 200
    assert client.post("/cw/logout", follow_redirects=False).status_code == 303
    replayed = _with_cookie(value).get("/cw/worklist", follow_redirects=False)
    assert replayed.status_code == 303 and replayed.headers["location"].startswith("/cw/login")
    assert other.get("/cw/worklist").status_code == 200  # only that session ended
    # recorded in the ledger: a worker that did not see the logout (or a restart) refuses it too
    session = pages.read_session(value)
    (row,) = service.ledger.access_log(5, household_id=SESSION_MARK + session.session_id)
    assert (row["action"], row["actor"], row["role"]) == ("logout", "cw-county", "caseworker")
    assert EndedSessions().is_ended(service.ledger, session)
    assert not EndedSessions().is_ended(
        service.ledger, pages.read_session(other.cookies.get(pages.SESSION_COOKIE))
    )


def test_a_logout_the_ledger_cannot_record_still_ends_the_session_here(service, keys, monkeypatch):
    client = _client(service, keys["village"])
    value = client.cookies.get(pages.SESSION_COOKIE)

    def broken(*args, **kwargs):
        raise LedgerError("database is locked")

    monkeypatch.setattr(service.ledger, "log_access", broken)
    r = client.post("/cw/logout", follow_redirects=False)
    assert r.status_code == 503  # says it could not be recorded ...
    assert f'{pages.SESSION_COOKIE}=""' in r.headers["set-cookie"]  # ... deletes the cookie ...
    monkeypatch.undo()
    assert _page(_with_cookie(value)) == 303  # ... and this process refuses the session


def test_ended_sessions_fail_closed_when_the_ledger_cannot_be_read():
    class Unreadable:
        def access_log(self, *args, **kwargs):
            raise LedgerError("ledger read failed")

    session = pages.read_session(pages.sign_session("cw-village", hash_token(new_token())))
    assert EndedSessions().is_ended(Unreadable(), session)


# --------------------------------------------------------------------------- keys that change
def _recheck() -> None:
    """Past the service's next look at its keys file (every LiveKeys.RECHECK_S seconds)."""
    time.sleep(LiveKeys.RECHECK_S + 0.3)


@pytest.fixture(scope="module")
def model_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("own-model-cache")


@pytest.fixture
def own(registered, model_cache, tmp_path):
    """A service of its own (keys file, empty ledger), bound for one test that changes its keys."""
    path = tmp_path / "api_keys.yaml"
    tokens = {
        "admin": add_key(path, "ops", "admin"),
        "cw": add_key(path, "cw-1", "caseworker", counties=[COUNTY]),
        "leaver": add_key(path, "cw-leaver", "caseworker", counties=[COUNTY]),
    }
    svc = ScoringService(
        Settings(
            tracking_uri=os.environ["MLFLOW_TRACKING_URI"],
            cache_dir=model_cache,
            ledger_url=f"sqlite:///{tmp_path / 'ledger.db'}",
            keys_file=str(path),
        )
    )
    assert svc.readiness().status == 200
    previous = state.bound()
    web.bind(svc)
    yield svc, path, tokens
    state.bind(previous)


def _api(token: str) -> int:
    """A keyed API call's status: 404 (no such household) with a valid key, 401 without."""
    return (
        TestClient(web.app)
        .get("/households/nobody/decisions", headers={"Authorization": f"Bearer {token}"})
        .status_code
    )


def _page(client: TestClient) -> int:
    return client.get("/cw/worklist", follow_redirects=False).status_code


def test_a_deleted_keys_file_refuses_every_key_until_it_is_back(own):
    svc, path, tokens = own
    caseworker = _client(svc, tokens["cw"])
    assert _api(tokens["admin"]) == 404 and _page(caseworker) == 200
    saved = path.read_bytes()
    path.unlink()
    _recheck()
    assert _api(tokens["admin"]) == 401  # the last good keys are not kept
    assert _page(caseworker) == 303  # nor their sessions
    r = TestClient(web.app).post("/cw/login", data={"key": tokens["cw"]}, follow_redirects=False)
    assert r.status_code == 401
    ready = svc.readiness()
    assert ready.status == 503 and not ready.body["ready"]
    assert "keys file invalid: api_keys.yaml is missing" in ready.body["reason"]
    path.write_bytes(saved)
    _recheck()
    assert _api(tokens["admin"]) == 404 and _page(caseworker) == 200
    assert svc.readiness().status == 200


def test_a_revoking_edit_with_a_yaml_error_refuses_the_revoked_key(own):
    svc, path, tokens = own
    leaver = _client(svc, tokens["leaver"])
    assert _api(tokens["leaver"]) == 404 and _page(leaver) == 200
    doc = yaml.safe_load(path.read_text())
    doc["keys"] = [e for e in doc["keys"] if e["id"] != "cw-leaver"]
    path.write_text(yaml.safe_dump(doc) + "  - id: [unclosed\n")  # the revoking edit, broken
    _recheck()
    assert _api(tokens["leaver"]) == 401 and _page(leaver) == 303
    assert _api(tokens["admin"]) == 401  # every key, until the file is fixed
    reason = svc.readiness().body["reason"]
    assert "keys file invalid: api_keys.yaml: not valid YAML at line" in reason
    assert "sha256" not in reason and "cw-1" not in reason and "ops" not in reason
    path.write_text(yaml.safe_dump(doc))
    _recheck()
    assert _api(tokens["admin"]) == 404 and _api(tokens["cw"]) == 404
    assert _api(tokens["leaver"]) == 401 and _page(leaver) == 303


def test_a_reissued_key_ends_the_sessions_of_the_old_one(own):
    svc, path, tokens = own
    old = _client(svc, tokens["cw"])
    assert _page(old) == 200
    fresh = new_token()  # re-issued: the same id, a new token and hash
    doc = yaml.safe_load(path.read_text())
    for entry in doc["keys"]:
        if entry["id"] == "cw-1":
            entry["hash"] = hash_token(fresh)
    path.write_text(yaml.safe_dump(doc))
    _recheck()
    assert _api(tokens["cw"]) == 401
    assert _page(old) == 303  # the old key's session ended with it
    assert _page(_client(svc, fresh)) == 200


# --------------------------------------------------------------------------- worklist
def test_village_key_sees_only_its_village(service, village_client):
    r = village_client.get("/cw/worklist")
    assert r.status_code == 200
    ids = _row_ids(r.text)
    assert RED_IN_VILLAGE in ids
    expected = {d["household_id"] for d in _latest(service, villages=[VILLAGE])}
    assert set(ids) == expected
    others = {d["household_id"] for d in _latest(service, counties=[COUNTY])} - expected
    assert others and not others & set(ids)
    assert RED_OUT_OF_SCOPE not in r.text


def test_county_key_sees_its_county_and_nothing_else(service, county_client):
    r = county_client.get("/cw/worklist")
    ids = set(_row_ids(r.text))
    expected = {d["household_id"] for d in _latest(service, counties=[COUNTY])}
    assert ids == expected and len(ids) > 5
    outside = {d["household_id"] for d in _latest(service, counties=[OTHER_COUNTY])}
    assert outside and not outside & ids


def test_admin_sees_both_counties(service, admin_client):
    ids = set(_row_ids(admin_client.get("/cw/worklist").text))
    assert RED_IN_VILLAGE in ids and RED_OUT_OF_SCOPE in ids


def test_worklist_is_sorted_by_level_then_score_and_shows_rhythm(service, county_client):
    html = county_client.get("/cw/worklist").text
    levels = _row_levels(html)
    order = {"red": 0, "yellow": 1, "green": 2}
    assert levels == sorted(levels, key=order.get) and "red" in levels
    scores = {d["household_id"]: d["score"] for d in _latest(service, counties=[COUNTY])}
    ids = _row_ids(html)
    for level in set(levels):
        same = [scores[i] for i, lv in zip(ids, levels, strict=True) if lv == level]
        assert same == sorted(same, reverse=True)
    assert "每周走访" in html and "红色" in html
    assert "2025-06" in html and "2024-06" in html  # last and previous decisions
    assert "规则：" in html or "模型评分" in html


def test_worklist_filters(service, county_client):
    red = county_client.get("/cw/worklist?level=red").text
    assert set(_row_levels(red)) == {"red"}
    yellow = county_client.get("/cw/worklist?level=yellow").text
    assert set(_row_levels(yellow)) <= {"yellow"}
    village = county_client.get(f"/cw/worklist?village={VILLAGE}").text
    assert set(_row_ids(village)) == {
        d["household_id"] for d in _latest(service, villages=[VILLAGE])
    }
    illness = county_client.get("/cw/worklist?risk_type=illness").text
    expected = {
        d["household_id"]
        for d in _latest(service, counties=[COUNTY])
        if "illness" in d["result"]["risk_types"]
    }
    assert set(_row_ids(illness)) == expected and RED_IN_VILLAGE in expected
    # a village outside the key's scope gives nothing, not that village's households
    assert _row_ids(county_client.get("/cw/worklist?village=530326101201").text) == []
    # nonsense filters are ignored
    assert _row_ids(county_client.get("/cw/worklist?level=purple&risk_type=x").text) == _row_ids(
        county_client.get("/cw/worklist").text
    )
    everyone = county_client.get("/cw/worklist?show=all").text
    assert len(_row_ids(everyone)) >= len(_row_ids(county_client.get("/cw/worklist").text))


def test_csv_export_has_a_bom_chinese_header_and_the_worklist_rows(service, keys, county_client):
    r = county_client.get("/cw/worklist.csv?level=red")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    assert r.headers["cache-control"] == "no-store"
    assert re.match(r'attachment; filename="worklist-\d{8}\.csv"', r.headers["content-disposition"])
    assert r.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert rows[0][:4] == ["户编号", "县", "村", "风险等级"]
    ids = [row[0] for row in rows[1:]]
    assert ids == _row_ids(county_client.get("/cw/worklist?level=red").text)
    assert all(row[3] == "红色" and row[12] == "每周走访" for row in rows[1:])
    english = _client(service, keys["county"])
    en = english.get("/cw/worklist.csv?lang=en").content.decode("utf-8-sig")
    assert en.splitlines()[0].startswith("Household id,County,Village,Level")


def test_worklist_links_carry_nothing_but_household_ids(service, county_client):
    html = county_client.get("/cw/worklist").text
    for href in re.findall(r'href="([^"]+)"', html):
        assert re.fullmatch(
            r"/cw/(static/style\.css|cases|worklist(\.csv)?(\?[a-z_=&0-9]*)?|households/[A-Za-z0-9_-]+)"
            r"|/cw/worklist\?lang=(en|zh)",
            href,
        ), href


# --------------------------------------------------------------------------- household
def test_household_page_shows_the_stored_decision(service, village_client):
    r = village_client.get(f"/cw/households/{RED_IN_VILLAGE}")
    assert r.status_code == 200
    html = r.text
    latest = service.ledger.household_history(RED_IN_VILLAGE)[-1]
    result = latest["result"]
    assert latest["risk_level"] == "red" and "红色" in html and "每周走访" in html
    for reason in result["reasons"]:
        assert reason["text_zh"] in html
    for rule in result["rules"]:
        assert rule["message_zh"] in html
    assert "医疗支出大" in html and "20,000 元" in html  # rule label and threshold
    for m in result["measures"]:
        assert m["measures_zh"][0] in html
    assert latest["decision_id"] in html and f"v{latest['model_version']}" in html
    assert html.count("<svg") == 2
    assert html.count('class="pt ') == 3  # one point per stored period
    assert "wf-bar wf-up" in html and "平均风险" in html and "本户风险" in html
    assert "推高风险" in html and "降低风险" in html
    assert (result["monitoring_type"] or "未纳入监测") in html
    assert r.headers["cache-control"] == "no-store"


def test_household_page_in_english(service, keys):
    client = _client(service, keys["village"])
    html = client.get(f"/cw/households/{RED_IN_VILLAGE}?lang=en").text
    result = service.ledger.household_history(RED_IN_VILLAGE)[-1]["result"]
    assert '<html lang="en">' in html and "Main reasons" in html
    assert result["reasons"][0]["text_en"] in html and result["rules"][0]["message_en"] in html
    if result["monitoring_type"]:
        assert pages.MONITORING_TYPE_EN[result["monitoring_type"]] in html
    assert "weekly visit" in html and "Recommended support" in html


def test_out_of_scope_and_unknown_households_answer_403(service, village_client, county_client):
    outside = [
        d["household_id"]
        for d in _latest(service, counties=[COUNTY])
        if d["village_code"] != VILLAGE
    ]
    for client, hid in ((village_client, outside[0]), (county_client, RED_OUT_OF_SCOPE),
                        (county_client, "no_such_household"),
                        (village_client, RED_OUT_OF_SCOPE)):  # fmt: skip
        for path in (f"/cw/households/{hid}", f"/cw/households/{hid}/sheet"):
            r = client.get(path)
            assert r.status_code == 403, path
            assert "不在您的密钥权限范围内" in r.text
            assert r.headers["cache-control"] == "no-store"
    assert county_client.get(f"/cw/households/{outside[0]}").status_code == 200


def test_visit_sheet_is_printable(service, village_client):
    r = village_client.get(f"/cw/households/{RED_IN_VILLAGE}/sheet")
    assert r.status_code == 200
    html = r.text
    assert "入户走访单" in html and "户主签字" in html and "/cw/static/print.js" in html
    result = service.ledger.household_history(RED_IN_VILLAGE)[-1]["result"]
    assert result["reasons"][0]["text_zh"] in html
    css = village_client.get("/cw/static/style.css")
    assert css.status_code == 200 and "@media print" in css.text and "@page" in css.text
    assert village_client.get("/cw/static/../pages.py").status_code == 404


def test_every_page_view_is_in_the_access_log(service, keys):
    client = _client(service, keys["village"])
    before = service.ledger.access_log(1)[0]["id"]
    client.get("/cw/worklist")
    client.get("/cw/worklist.csv")
    client.get(f"/cw/households/{RED_IN_VILLAGE}")
    client.get(f"/cw/households/{RED_IN_VILLAGE}/sheet")
    client.get(f"/cw/households/{RED_OUT_OF_SCOPE}")
    rows = [r for r in reversed(service.ledger.access_log(20)) if r["id"] > before]
    assert [(r["action"], r["household_id"]) for r in rows] == [
        ("view_worklist", None),
        ("export_worklist", None),
        ("view_household", RED_IN_VILLAGE),
        ("view_visit_sheet", RED_IN_VILLAGE),
        ("denied_household", RED_OUT_OF_SCOPE),
    ]
    assert {r["actor"] for r in rows} == {"cw-village"}
    assert {r["role"] for r in rows} == {"caseworker"}
    assert {r["scope"] for r in rows} == {f"village:{VILLAGE}"}


def test_language_switch_sticks_in_a_cookie(service, keys):
    client = _client(service, keys["county"])
    zh = client.get("/cw/worklist").text
    assert "走访名单" in zh and 'href="/cw/worklist?lang=en"' in zh
    r = client.get("/cw/worklist?lang=en")
    assert "Worklist" in r.text and "weekly visit" in r.text
    assert f"{pages.LANG_COOKIE}=en" in r.headers["set-cookie"]
    assert "Worklist" in client.get("/cw/worklist").text
    assert "走访名单" in client.get("/cw/worklist?lang=zh").text
