"""Code test: the service with two workers on a PostgreSQL ledger (issue 20, items 1 and 4).

One real BentoML service, ``RISKML_WORKERS=2``, its ledger a PostgreSQL database reached
as the service's own role (``riskml db grant``: it may insert and read, never change a
stored decision). Both workers answer; a caseworker's session made by one verifies in
the other (the shared secret); a key added to the keys file works in every worker; and
2,000 requests from 16 threads, valid and malformed mixed, leave in the ledger exactly
the decisions answered: none lost, none stored twice.
"""

from __future__ import annotations

import http.client
import json
import random
import secrets
import threading
import time
from collections import Counter
from urllib.parse import urlencode, urlparse

import pytest
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from riskml.cli import app
from riskml.data import schema
from riskml.service.access import add_key
from tests.code.test_openapi import start_live_service

pytestmark = pytest.mark.slow

REQUESTS = 2000
THREADS = 16
SERVICE_PW = "service-pw"
WORKER_SCRIPT = "_bentoml_impl.worker.service"


@pytest.fixture(scope="module")
def two_workers(session_dir, registered, pg_server):
    database = pg_server.create_database("riskml_migrated")
    owner_url = pg_server.url(database)
    role = f"riskml_service_{secrets.token_hex(4)}"
    pg_server.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{SERVICE_PW}'")
    granted = CliRunner().invoke(app, ["db", "grant", "--role", role, "--ledger", owner_url])
    assert granted.exit_code == 0, granted.output
    srv, keys, env = start_live_service(
        session_dir,
        "workers",
        RISKML_WORKERS="2",
        RISKML_SESSION_SECRET=secrets.token_urlsafe(32),
        RISKML_LEDGER_URL=pg_server.url(database, role=role, password=SERVICE_PW),
    )
    try:
        assert srv.request("GET", "/readyz")[0] == 200, srv.log()[-3000:]
        yield srv, keys, env, owner_url
    finally:
        srv.stop()


def _fresh(srv) -> http.client.HTTPConnection:
    host = urlparse(srv.url)
    return http.client.HTTPConnection(host.hostname, host.port, timeout=120)


def _get(srv, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
    conn = _fresh(srv)  # a new connection each time: the kernel hands it to either worker
    try:
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def _on_both_workers(
    srv, keys, records, path: str, headers: dict[str, str], rounds: int = 25, threads: int = 16
) -> tuple[Counter, Counter]:
    """GET ``path`` on fresh connections while the service is under /score load, until both
    workers have answered ten times (or ``threads`` × ``rounds`` connections): (which worker
    answered each probe, the statuses of ``path``).

    An idle worker takes every new connection the kernel offers; one busy scoring leaves
    them to the other. Each connection first scores a few households, then asks /readyz
    which worker it reached, then asks ``path``.
    """
    seen: Counter = Counter()
    statuses: Counter = Counter()
    lock, enough = threading.Lock(), threading.Event()
    score = {"Authorization": f"Bearer {keys['scorer']}", "Content-Type": "application/json"}
    admin = {"Authorization": f"Bearer {keys['admin']}"}

    def client(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(rounds):
            if enough.is_set():
                return
            conn = _fresh(srv)
            try:
                body = json.dumps({"households": rng.sample(records, rng.randint(1, 5))})
                conn.request("POST", "/score", body=body, headers=score)
                conn.getresponse().read()
                conn.request("GET", "/readyz", headers=admin)
                worker = json.loads(conn.getresponse().read())["worker"]
                conn.request("GET", path, headers=headers)
                resp = conn.getresponse()
                resp.read()
            finally:
                conn.close()
            with lock:
                seen[worker] += 1
                statuses[resp.status] += 1
                if len(seen) == 2 and min(seen.values()) >= 10:
                    enough.set()

    running = [threading.Thread(target=client, args=(i,)) for i in range(threads)]
    for t in running:
        t.start()
    for t in running:
        t.join()
    return seen, statuses


def _worker_processes(srv) -> set[int]:
    """The pids of the service's worker processes (descendants of ``bentoml serve``)."""
    import psutil

    children = psutil.Process(srv.proc.pid).children(recursive=True)
    return {c.pid for c in children if WORKER_SCRIPT in " ".join(c.cmdline())}


def test_two_workers_run_and_both_answer(two_workers, trained):
    srv, keys, _, _ = two_workers
    pids = _worker_processes(srv)
    assert len(pids) == 2, pids
    records = schema.to_json_records(trained.test_frame.head(50))
    admin = {"Authorization": f"Bearer {keys['admin']}"}
    seen, statuses = _on_both_workers(srv, keys, records, "/readyz", admin)
    assert set(seen) == pids, (dict(seen), pids)
    assert set(statuses) == {200}, statuses  # each ready


def test_a_session_made_by_one_worker_verifies_in_the_other(two_workers, trained):
    srv, keys, _, _ = two_workers
    conn = _fresh(srv)
    conn.request(
        "POST", "/cw/login", body=urlencode({"key": keys["caseworker"]}),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )  # fmt: skip
    resp = conn.getresponse()
    resp.read()
    conn.close()
    assert resp.status == 303
    cookie = resp.getheader("Set-Cookie").split(";")[0]
    records = schema.to_json_records(trained.test_frame.head(50))
    seen, statuses = _on_both_workers(srv, keys, records, "/cw/worklist", {"Cookie": cookie})
    assert len(seen) == 2, f"one worker took every connection: {dict(seen)}"
    assert set(statuses) == {200}, statuses  # every worker knew the session


def test_a_key_added_to_the_file_works_in_every_worker(two_workers, trained):
    srv, keys, env, _ = two_workers
    token = add_key(env["RISKML_API_KEYS_FILE"], "workers-late-admin", "admin")
    deadline = time.monotonic() + 30
    while _get(srv, "/model", {"Authorization": f"Bearer {token}"})[0] != 200:
        assert time.monotonic() < deadline, "the new key was never accepted"
        time.sleep(0.5)
    time.sleep(2.5)  # past every worker's recheck of the file (RECHECK_S = 2 s)
    records = schema.to_json_records(trained.test_frame.head(50))
    seen, statuses = _on_both_workers(
        srv, keys, records, "/model", {"Authorization": f"Bearer {token}"}
    )
    assert len(seen) == 2, dict(seen)
    assert set(statuses) == {200}, statuses  # accepted by both workers


def _mix(records: list[dict], rng: random.Random) -> list[tuple[bytes, int]]:
    """(body, expected status): valid requests of 1-5 households, and malformed ones."""
    out = []
    for _ in range(REQUESTS):
        some = [dict(r) for r in rng.sample(records, rng.randint(1, 5))]
        kind = rng.random()
        if kind < 0.15:
            some[0]["head_age"] = -3  # out of range
            out.append((json.dumps({"households": some}).encode(), 422))
        elif kind < 0.2:
            out.append((json.dumps({"households": some}).encode()[:-7], 422))  # truncated
        else:
            out.append((json.dumps({"households": some}).encode(), 200))
    return out


def test_2000_concurrent_requests_leave_exactly_the_answered_decisions(two_workers, trained):
    srv, keys, _, owner_url = two_workers
    engine = create_engine(owner_url)
    with engine.connect() as conn:
        before = set(conn.execute(text("SELECT decision_id FROM decisions")).scalars())
    records = schema.to_json_records(trained.test_frame.head(300))
    mix = _mix(records, random.Random(29))
    answers: list[tuple[int, int, dict | None]] = [None] * len(mix)  # type: ignore[list-item]
    errors: list[str] = []
    next_index = iter(range(len(mix)))
    lock = threading.Lock()

    def client() -> None:
        conn = _fresh(srv)
        headers = {"Authorization": f"Bearer {keys['scorer']}", "Content-Type": "application/json"}
        while True:
            with lock:
                i = next(next_index, None)
            if i is None:
                break
            body, expected = mix[i]
            try:
                conn.request("POST", "/score", body=body, headers=headers)
                resp = conn.getresponse()
                raw = resp.read()
            except (OSError, http.client.HTTPException) as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                conn.close()
                conn = _fresh(srv)
                continue
            try:
                answer = json.loads(raw)
            except ValueError:
                answer = None
            answers[i] = (resp.status, expected, answer)
            if i % 25 == 0:  # which worker is answering, while both are busy
                conn.request("GET", "/readyz", headers=probe)
                probe_resp = conn.getresponse()
                with lock:
                    workers[json.loads(probe_resp.read())["worker"]] += 1
            if rng_close.random() < 0.05:  # some clients reconnect: both workers get work
                conn.close()
                conn = _fresh(srv)
        conn.close()

    rng_close = random.Random(3)
    probe = {"Authorization": f"Bearer {keys['admin']}"}
    workers: Counter = Counter()
    t0 = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    with engine.connect() as conn:
        added = set(conn.execute(text("SELECT decision_id FROM decisions")).scalars()) - before
    engine.dispose()

    assert not errors, errors[:10]
    statuses = Counter(a[0] for a in answers)
    print(f"\n2 workers, PostgreSQL: {len(answers)} requests in {elapsed:.1f} s, {dict(statuses)}, "
          f"probes answered by worker {dict(workers)}")  # fmt: skip
    wrong = [(a[0], a[1], str(a[2])[:200]) for a in answers if a[0] != a[1]]
    assert not wrong, wrong[:10]
    answered = [r["decision_id"] for a in answers if a[0] == 200 for r in a[2]["results"]]
    assert len(answered) == len(set(answered))  # no decision answered twice
    assert set(answered) == added  # every one stored, nothing else
    assert set(workers) == _worker_processes(srv), dict(workers)  # both workers took requests
