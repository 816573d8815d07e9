"""The caseworker login's limits: a small plain form read with a deadline, few logins at once,
failed logins limited per client address and per key id (429 with Retry-After), and every
refused login in the access log without the key. Through FastAPI's TestClient, then once
against a real `bentoml serve`."""

from __future__ import annotations

import asyncio
import logging
import os
import time
import urllib.error
import urllib.request
from itertools import count

import pytest
from fastapi.testclient import TestClient
from starlette.requests import Request

from riskml.service import api as web
from riskml.service import state
from riskml.service.access import add_key, new_token
from riskml.service.core import ScoringService, Settings
from riskml.service.pages import session as sessions
from riskml.service.pages.session import (
    FAILED,
    FAILED_LOGINS,
    FAILED_WINDOW_S,
    LOGIN_MAX_BYTES,
    LOGINS,
    SESSION_COOKIE,
    FailureLimiter,
    LoginFormError,
    read_login_form,
)
from tests.code.service_harness import start_server
from tests.conftest import ARTIFACTS

COUNTY = "532328"
_addresses = count(1)


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    path = tmp_path_factory.mktemp("login-keys") / "api_keys.yaml"
    return {
        "path": path,
        "scorer": add_key(path, "county-platform", "scorer"),
        "cw": add_key(path, "cw-1", "caseworker", counties=[COUNTY]),
    }


@pytest.fixture(scope="module")
def service(registered, keys, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("login-service")
    svc = ScoringService(
        Settings(
            tracking_uri=os.environ["MLFLOW_TRACKING_URI"],
            cache_dir=tmp / "model-cache",
            ledger_url=f"sqlite:///{tmp / 'ledger.db'}",
            keys_file=str(keys["path"]),
        )
    )
    previous = state.bound()
    web.bind(svc)
    yield svc
    state.bind(previous)


@pytest.fixture(autouse=True)
def _no_failed_logins_yet():
    FAILED.clear()
    yield
    FAILED.clear()


def _new_address() -> str:
    return f"10.9.0.{next(_addresses)}"


def _from_new_address(address: str | None = None) -> TestClient:
    """A client at an address no other test used (the limits count per address)."""
    return TestClient(web.app, client=(address or _new_address(), 50000))


def _login(client: TestClient, **kwargs):
    return client.post("/cw/login", follow_redirects=False, **kwargs)


# --------------------------------------------------------------------------- the form
def test_an_oversized_login_is_refused_unread(service, keys):
    client = _from_new_address()
    t0 = time.perf_counter()
    r = _login(client, data={"key": keys["cw"], "next": "/cw/" + "a" * LOGIN_MAX_BYTES})
    assert r.status_code == 413 and time.perf_counter() - t0 < 2
    assert SESSION_COOKIE not in client.cookies
    # a chunked body (no declared length) is cut off at the limit too
    chunks = (b"key=" + keys["cw"].encode(), b"&next=" + b"a" * 1024 * 64)
    r = _login(client, content=iter(chunks),
               headers={"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert r.status_code == 413 and r.request.headers.get("transfer-encoding") == "chunked"


def test_a_login_with_many_fields_is_refused(service, keys):
    client = _from_new_address()
    fields = {"key": keys["cw"], **{f"f{i}": "x" for i in range(40)}}
    r = _login(client, data=fields)
    assert r.status_code == 400 and SESSION_COOKIE not in client.cookies
    assert "cache-control" in r.headers and r.headers["cache-control"] == "no-store"


def test_a_multipart_login_with_a_file_is_refused(service, keys):
    client = _from_new_address()
    r = _login(
        client, data={"next": "/cw/worklist"}, files={"key": ("key.txt", keys["cw"].encode())}
    )
    assert r.status_code == 415 and SESSION_COOKIE not in client.cookies
    r = _login(client, content=b'{"key": "x"}', headers={"Content-Type": "application/json"})
    assert r.status_code == 415


def test_the_plain_form_still_logs_in(service, keys):
    client = _from_new_address()
    r = _login(client, data={"key": keys["cw"], "next": "/cw/worklist"})
    assert r.status_code == 303 and r.headers["location"] == "/cw/worklist"
    assert client.get("/cw/worklist").status_code == 200


def _request(chunks: list[bytes], delay: float, headers: dict[str, str]) -> Request:
    pending = list(chunks)

    async def receive():
        await asyncio.sleep(delay)
        body = pending.pop(0) if pending else b""
        return {"type": "http.request", "body": body, "more_body": bool(pending)}

    raw = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    return Request({"type": "http", "method": "POST", "path": "/cw/login", "headers": raw}, receive)


def test_a_slow_login_body_is_cut_off_at_the_deadline(monkeypatch):
    monkeypatch.setattr(sessions, "LOGIN_BODY_TIMEOUT_S", 0.3)
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    slow = _request([b"key=rk_", b"abc", b"&next=/cw/"], delay=0.2, headers=form)
    t0 = time.perf_counter()
    with pytest.raises(LoginFormError) as info:
        asyncio.run(read_login_form(slow))
    assert info.value.status == 408 and time.perf_counter() - t0 < 1.0
    quick = _request([b"key=rk_", b"abc", b"&next=/cw/&key=second"], delay=0.0, headers=form)
    assert asyncio.run(read_login_form(quick)) == {"key": "rk_abc", "next": "/cw/"}
    declared = _request([b""], 0.0, {**form, "Content-Length": str(LOGIN_MAX_BYTES + 1)})
    with pytest.raises(LoginFormError) as info:
        asyncio.run(read_login_form(declared))
    assert info.value.status == 413


def test_logins_in_flight_are_capped(service, keys, monkeypatch):
    monkeypatch.setattr(LOGINS, "count", LOGINS.limit)  # as if that many were reading their form
    r = _login(_from_new_address(), data={"key": keys["cw"]})
    assert r.status_code == 429 and r.headers["retry-after"] == "1"
    monkeypatch.setattr(LOGINS, "count", 0)
    assert _login(_from_new_address(), data={"key": keys["cw"]}).status_code == 303
    assert LOGINS.count == 0  # every login that entered has left


# --------------------------------------------------------------------------- failed logins
def test_six_wrong_logins_answer_429_with_retry_after(service, keys):
    client = _from_new_address()
    for _ in range(FAILED_LOGINS):
        assert _login(client, data={"key": new_token()}).status_code == 401
    r = _login(client, data={"key": new_token()})
    assert r.status_code == 429
    wait = int(r.headers["retry-after"])
    assert 0 < wait <= FAILED_WINDOW_S
    assert r.headers["cache-control"] == "no-store"
    # while limited the address cannot try any key, even a right one (no guessing through)
    assert _login(client, data={"key": keys["cw"]}).status_code == 429
    assert SESSION_COOKIE not in client.cookies
    # another address is not limited
    assert _login(_from_new_address(), data={"key": keys["cw"]}).status_code == 303


def test_malformed_logins_count_as_failed(service, keys):
    client = _from_new_address()
    for _ in range(FAILED_LOGINS):
        r = _login(client, content=b"x", headers={"Content-Type": "text/plain"})
        assert r.status_code == 415
    assert _login(client, data={"key": keys["cw"]}).status_code == 429


def test_failed_logins_are_limited_per_key_id_across_addresses(service, keys):
    # a key that may not log in (a scorer's), tried from ever new addresses
    for _ in range(FAILED_LOGINS):
        assert _login(_from_new_address(), data={"key": keys["scorer"]}).status_code == 403
    r = _login(_from_new_address(), data={"key": keys["scorer"]})
    assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
    assert _login(_from_new_address(), data={"key": keys["cw"]}).status_code == 303


def test_failure_limiter_counts_a_sliding_window():
    limiter = FailureLimiter(limit=3, window_s=60)
    for t in (0.0, 10.0, 20.0):
        assert limiter.retry_after("a", now=t) == 0
        limiter.fail("a", now=t)
    assert limiter.retry_after("a", now=20.0) == 40  # the oldest of the 3 leaves the window at 60
    assert limiter.retry_after("b", now=20.0) == 0
    assert limiter.retry_after("a", now=60.5) == 0
    limiter.fail("a", now=61.0)
    assert limiter.retry_after("a", now=61.0) == 9  # 10, 20, 61: free again at 70


def test_refused_logins_are_in_the_access_log_without_the_key(service, keys, caplog):
    wrong = new_token()
    address = _new_address()
    client = _from_new_address(address)
    with caplog.at_level(logging.WARNING, logger="riskml.access"):
        _login(client, data={"key": wrong})
        _login(client, data={"key": keys["scorer"]})
        _login(client, data={"key": "x" * (LOGIN_MAX_BYTES + 10)})
    lines = [r.getMessage() for r in caplog.records if r.name == "riskml.access"]
    assert len(lines) == 3 and all(line.startswith("login refused: ") for line in lines)
    assert all(f"client {address}" in line for line in lines)
    assert "unknown key" in lines[0] and "key id county-platform" in lines[1]
    assert f"body over {LOGIN_MAX_BYTES} bytes" in lines[2]
    for secret in (wrong, keys["scorer"], keys["cw"], "x" * 40):
        assert secret not in caplog.text


# --------------------------------------------------------------------------- a real server
def _post(url: str, body: bytes, ctype: str = "application/x-www-form-urlencoded"):
    req = urllib.request.Request(url, data=body, method="POST")
    req.add_header("Content-Type", ctype)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.headers
    except urllib.error.HTTPError as err:
        return err.code, err.headers  # case-insensitive look-ups


@pytest.mark.slow
def test_login_limits_on_a_live_server(session_dir, keys, registered):
    env = {
        "RISKML_API_KEYS_FILE": str(keys["path"]),
        "RISKML_LEDGER_URL": f"sqlite:///{session_dir / 'login-limits-ledger.db'}",
        "RISKML_MODEL_CACHE": str(session_dir / "model-cache"),
    }
    srv = start_server(env, ARTIFACTS / "service-login.log")
    try:
        url = srv.url + "/cw/login"
        assert _post(url, b"key=" + b"a" * LOGIN_MAX_BYTES)[0] == 413
        assert _post(url, b"--b\r\n\r\n", "multipart/form-data; boundary=b")[0] == 415
        wrong = new_token()
        statuses = [_post(url, f"key={wrong}".encode())[0] for _ in range(FAILED_LOGINS - 2)]
        assert statuses == [401] * (FAILED_LOGINS - 2)  # 2 failed above, these make 5
        status, headers = _post(url, f"key={keys['cw']}".encode())
        assert status == 429 and 0 < int(headers.get("Retry-After")) <= FAILED_WINDOW_S
        status, _ = srv.request("POST", "/score", {"households": []}, keys["scorer"])
        assert status == 422  # the API answers as before
        log = srv.log()
        assert log.count("login refused: ") >= FAILED_LOGINS + 1
        assert wrong not in log and keys["cw"] not in log and keys["scorer"] not in log
    finally:
        srv.stop()
