"""riskml's own /metrics (route templates, never paths; admin and metrics keys only), the
/readyz answer by caller (only ready/not ready without an admin key, read off the event
loop), and `riskml serve`'s banner without passwords. The metrics against a real
`bentoml serve`; the rest in-process."""

from __future__ import annotations

import re
import secrets
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import anyio
import pytest

from riskml.data import schema
from riskml.service import state
from riskml.service.middleware import UNMATCHED, ProbeMiddleware, route_template
from tests.code.service_harness import start_server
from tests.conftest import ARTIFACTS

COUNTY = "532328"
# one line of the exposition: a sample's name and labels, then its value
REQUESTS = "riskml_http_requests_total"
SAMPLE = re.compile(
    r'^(?P<series>[a-zA-Z_:][\w:]*(?:\{(?:[^"}]|"(?:[^"\\]|\\.)*")*\})?) (?P<value>\S+)'
)


# --------------------------------------------------------------------------- in-process
def test_route_templates_come_from_the_routes_never_from_the_path():
    assert route_template("/households/hh_123/decisions") == "/households/{household_id}/decisions"
    assert route_template("/decisions/" + "ab" * 16) == "/decisions/{decision_id}"
    assert route_template("/cw/households/H0000042") == "/cw/households/{household_id}"
    assert route_template("/cw/households/H0000042/sheet") == (
        "/cw/households/{household_id}/sheet"
    )
    assert route_template("/score") == "/score" and route_template("/metrics") == "/metrics"
    for path in ("/households/hh_1", "/households/a/b/decisions", "/x", "/score/", "/cw/x/y"):
        assert route_template(path) == UNMATCHED, path


class _Principal:
    def __init__(self, role: str):
        self.role = role

    def can_admin(self) -> bool:
        return self.role == "admin"


class _Service:
    """Stands for ScoringService: a slow readiness check (as a blocking one would be)."""

    FULL = {
        "ready": False, "ledger_writable": True, "model": None,
        "reason": "no model loaded: registry unavailable (no tracking store at "
        "sqlite:////srv/riskml/mlflow.db); and no cached copy in /srv/riskml/cache",
    }  # fmt: skip

    def __init__(self, delay: float = 0.0):
        self.delay = delay
        self.threads: list[threading.Thread] = []

    def readiness(self):
        from riskml.service.core import Reply

        self.threads.append(threading.current_thread())
        time.sleep(self.delay)
        return Reply(503, dict(self.FULL))

    def authenticate(self, authorization: str | None):
        roles = {"Bearer admin-key": "admin", "Bearer scorer-key": "scorer"}
        role = roles.get(authorization or "")
        return _Principal(role) if role else None


async def _get(app, path: str, authorization: str | None = None) -> tuple[int, dict]:
    import json

    sent: list[dict] = []
    headers = [(b"authorization", authorization.encode())] if authorization else []
    scope = {"type": "http", "method": "GET", "path": path, "headers": headers}

    async def receive():
        return {"type": "http.request", "body": b""}

    async def send(message):
        sent.append(message)

    await app(scope, receive, send)
    return sent[0]["status"], json.loads(sent[1]["body"])


@pytest.fixture
def bound():
    previous = state.bound()
    service = _Service()
    state.bind(service)  # type: ignore[arg-type]
    yield service
    state.bind(previous)


def test_readyz_tells_only_an_admin_why(bound):
    async def inner(scope, receive, send):
        raise AssertionError("/readyz is answered by the probe middleware")

    probe = ProbeMiddleware(inner)
    for auth in (None, "Bearer scorer-key", "Bearer rk_not_a_key", "Basic eA=="):
        status, body = anyio.run(_get, probe, "/readyz", auth)
        assert (status, body) == (503, {"ready": False}), auth
    status, body = anyio.run(_get, probe, "/readyz", "Bearer admin-key")
    assert status == 503 and body == _Service.FULL
    state.bind(None)  # starting: no service bound yet
    assert anyio.run(_get, probe, "/readyz", None) == (503, {"ready": False})


def test_readyz_is_read_off_the_event_loop(bound):
    """A slow readiness check holds a worker thread, not the loop: other tasks run meanwhile."""
    bound.delay = 0.5
    probe = ProbeMiddleware(None)
    ticks: list[float] = []

    async def main():
        async def ticker():
            while True:
                ticks.append(time.perf_counter())
                await anyio.sleep(0.01)

        async with anyio.create_task_group() as tg:
            tg.start_soon(ticker)
            answer = await _get(probe, "/readyz")
            tg.cancel_scope.cancel()
        return answer, threading.current_thread()

    (status, body), loop_thread = anyio.run(main)
    assert (status, body) == (503, {"ready": False})
    assert bound.threads and all(t is not loop_thread for t in bound.threads)
    assert len(ticks) >= 20  # 0.5 s of readiness, the loop ticking every 10 ms
    assert max(b - a for a, b in zip(ticks, ticks[1:], strict=False)) < 0.25


def test_serve_prints_no_password(monkeypatch):
    """`riskml serve` as typed, stopped at the exec: the banner names both URLs, no password;
    the server itself still gets the URLs whole."""
    from typer.testing import CliRunner

    from riskml.cli import serve as serve_module
    from riskml.cli.app import app

    ledger = "postgresql+psycopg://riskml:Ledger-Pw%40x@db.internal:5432/ledger"
    tracking = "https://ops:Tracking-Pw@mlflow.internal/api?token=Tracking-Token&x=1"
    monkeypatch.setenv("RISKML_LEDGER_URL", ledger)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking)
    execs = []
    monkeypatch.setattr(serve_module.os, "execvpe", lambda *a: execs.append(a))
    result = CliRunner().invoke(app, ["serve", "--port", "3999"])
    assert result.exit_code == 0, result.output
    out = result.output
    for secret in ("Ledger-Pw", "Tracking-Pw", "Tracking-Token"):
        assert secret not in out, out
    assert "riskml:***@db.internal:5432/ledger" in out and "ops:***@mlflow.internal" in out
    ((_, _, env),) = execs
    assert env["RISKML_LEDGER_URL"] == ledger and env["MLFLOW_TRACKING_URI"] == tracking


def test_redact_url_keeps_everything_but_the_secrets():
    from riskml.config import redact_url, redact_urls

    assert (
        redact_url("sqlite:////var/lib/riskml/ledger.db") == "sqlite:////var/lib/riskml/ledger.db"
    )
    assert redact_url("databricks") == "databricks" and redact_url("/a/b") == "/a/b"
    assert redact_url("postgresql://u@h/d") == "postgresql://u@h/d"
    assert redact_url("postgresql://u:p%2Fw@h:5/d") == "postgresql://u:***@h:5/d"
    assert redact_url("http://u:pw@h:5000/x") == "http://u:***@h:5000/x"
    assert redact_url("postgresql://h/d?password=pw&sslmode=require") == (
        "postgresql://h/d?password=***&sslmode=require"
    )
    assert "pw" not in redact_url("http://u:pw@h:notaport/x")  # SQLAlchemy cannot read it
    text = "cannot reach http://alice:hunter2@h:5000/api; postgresql://bob:s3cret@db/x"
    assert (
        redact_urls(text) == "cannot reach http://alice:***@h:5000/api; postgresql://bob:***@db/x"
    )


# --------------------------------------------------------------------------- live
@pytest.fixture(scope="module")
def keys(session_dir):
    from riskml.service.access import add_key

    path = session_dir / "metrics_keys.yaml"
    path.unlink(missing_ok=True)
    return {
        "path": path,
        "scorer": add_key(path, "m-platform", "scorer"),
        "admin": add_key(path, "m-ops", "admin"),
        "caseworker": add_key(path, "m-cw", "caseworker", counties=[COUNTY]),
        "metrics": add_key(path, "m-prometheus", "metrics"),
    }


@pytest.fixture(scope="module")
def server(session_dir, keys, registered):
    env = {
        "RISKML_API_KEYS_FILE": str(keys["path"]),
        "RISKML_LEDGER_URL": f"sqlite:///{session_dir / 'metrics-ledger.db'}",
        "RISKML_MODEL_CACHE": str(session_dir / "metrics-model-cache"),
    }
    srv = start_server(env, ARTIFACTS / "service-metrics.log")
    deadline = time.time() + 60
    while time.time() < deadline and srv.request("GET", "/readyz")[0] != 200:
        time.sleep(0.3)
    yield srv
    srv.stop()


def _get_text(server, path: str, token: str | None = None, cookie: str | None = None):
    req = urllib.request.Request(server.url + path)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    if cookie:
        req.add_header("Cookie", cookie)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read().decode(), resp.headers.get("content-type", "")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(), err.headers.get("content-type", "")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def _login(server, token: str) -> str:
    """The caseworker pages' session cookie for this key."""
    body = urllib.parse.urlencode({"key": token}).encode()
    req = urllib.request.Request(server.url + "/cw/login", data=body, method="POST")
    req.add_header("Content-Type", "application/x-www-form-urlencoded")
    try:
        urllib.request.build_opener(_NoRedirect).open(req, timeout=30)
        raise AssertionError("the login did not redirect")
    except urllib.error.HTTPError as err:
        assert err.code == 303, err.read()[:300]
        return err.headers["set-cookie"].split(";", 1)[0]


def _series(text: str) -> dict[str, float]:
    return {m["series"]: float(m["value"]) for m in map(SAMPLE.match, text.splitlines()) if m}


def _scrape(server, token: str) -> str:
    status, text, ctype = _get_text(server, "/metrics", token)
    assert status == 200, text[:300]
    assert ctype.startswith("text/plain")
    return text


@pytest.fixture(scope="module")
def read_households(server, keys, trained):
    """Households scored, then read by a caseworker through the API and the pages."""
    frame = trained.test_frame
    records = schema.to_json_records(frame[frame["county_code"] == COUNTY].head(12))
    status, body = server.request("POST", "/score", {"households": records}, keys["scorer"])
    assert status == 200, body
    ids = [r["household_id"] for r in body["results"]]
    decisions = [r["decision_id"] for r in body["results"]]
    cw = keys["caseworker"]
    for hid, did in zip(ids, decisions, strict=True):
        assert server.request("GET", f"/households/{hid}/decisions", token=cw)[0] == 200
        assert server.request("GET", f"/decisions/{did}", token=cw)[0] == 200
    cookie = _login(server, cw)
    for hid in ids[:4]:
        assert _get_text(server, f"/cw/households/{hid}", cookie=cookie)[0] == 200
        assert _get_text(server, f"/cw/households/{hid}/sheet", cookie=cookie)[0] == 200
    assert server.request("GET", "/households/hh_nobody_has/decisions", token=cw)[0] == 404
    return ids, decisions


@pytest.mark.slow
def test_metrics_name_routes_never_households(server, keys, read_households):
    ids, decisions = read_households
    text = _scrape(server, keys["admin"])
    for secret in [*ids, *decisions, "hh_nobody_has"]:
        assert secret not in text, secret
    series = _series(text)
    reads = 'riskml_http_requests_total{method="GET",route="/households/{household_id}/decisions"'
    assert series[reads + ',status="200"}'] == len(ids)
    assert series[reads + ',status="404"}'] == 1
    page = 'riskml_http_requests_total{method="GET",route="/cw/households/{household_id}",'
    assert series[page + 'status="200"}'] == 4
    assert any(s.startswith("riskml_http_request_duration_seconds_bucket{") for s in series)
    # the decision counters still export, and BentoML's own per-path metrics are gone
    assert any(s.startswith('riskml_flags_total{kind="level"') for s in series)
    assert sum(v for s, v in series.items() if s.startswith("riskml_scored_total")) >= len(ids)
    assert not [s for s in series if s.startswith("bentoml")]
    for hid in ids:  # nor in the service's log
        assert hid not in server.log()


@pytest.mark.slow
def test_random_paths_add_no_series(server, keys, read_households):
    tokens: list[str] = []

    def token(n: int) -> str:
        tokens.append(secrets.token_hex(n))
        return tokens[-1]

    def random_paths() -> list[str]:
        """50 paths never seen: 40 of no route, 5 under /households/, 5 under /cw/households/."""
        return (
            [f"/{token(6)}/{token(4)}" for _ in range(40)]
            + [f"/households/{token(5)}/decisions" for _ in range(5)]
            + [f"/cw/households/{token(5)}/x" for _ in range(5)]
        )

    before = _series(_scrape(server, keys["admin"]))
    first = random_paths()
    for path in first:
        assert _get_text(server, path)[0] in (401, 303, 404), path
    middle = _series(_scrape(server, keys["admin"]))
    second = random_paths()
    for path in second:
        assert _get_text(server, path)[0] in (401, 303, 404), path
    text = _scrape(server, keys["admin"])
    after = _series(text)
    assert len(tokens) == 180 and not [t for t in tokens if t in text]
    # 100 paths never seen before: the second 50 add no series at all, the first at most
    # the few (route, status) pairs of a refused path
    assert set(after) == set(middle), sorted(set(after) ^ set(middle))
    unmatched = REQUESTS + '{method="GET",route="unmatched",status="401"}'
    assert after[unmatched] - middle[unmatched] == 40  # the 5+5 in /households, /cw: their routes
    # the first 50: one (route, method, status) each for the refused paths, whatever the paths
    added = {s.split("{", 1)[1] for s in set(middle) - set(before) if s.startswith(REQUESTS)}
    assert added <= {
        'method="GET",route="unmatched",status="401"}',
        'method="GET",route="unmatched",status="404"}',
        'method="GET",route="/households/{household_id}/decisions",status="401"}',
    }, added
    per_label_set = 1 + 1 + 1 + 14  # the counter; the histogram's count, sum, 14 buckets
    assert len(middle) - len(before) == per_label_set * len(added)
    print(
        f"\nmetrics series: {len(before)} before the random paths, {len(middle)} after 50, "
        f"{len(after)} after 100"
    )


@pytest.mark.slow
def test_only_admin_and_metrics_keys_read_metrics(server, keys):
    assert _scrape(server, keys["metrics"]).startswith("# HELP")
    for role in ("scorer", "caseworker"):
        status, text, _ = _get_text(server, "/metrics", keys[role])
        assert status == 403 and role in text, (role, text)
    status, text, _ = _get_text(server, "/metrics")
    assert status == 401
    assert _get_text(server, "/metrics", "rk_not_a_key")[0] == 401


@pytest.mark.slow
def test_readyz_says_more_to_an_admin_only(server, keys):
    status, body = server.request("GET", "/readyz")
    assert (status, body) == (200, {"ready": True})
    for role in ("scorer", "caseworker", "metrics"):
        assert server.request("GET", "/readyz", token=keys[role]) == (200, {"ready": True}), role
    status, body = server.request("GET", "/readyz", token=keys["admin"])
    assert status == 200 and body["ready"] is True and body["ledger_writable"] is True
    assert body["model"]["alias"] == "champion"
