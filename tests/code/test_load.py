"""Every input answered, under load: 16 client threads send 5,000 requests mixing valid
records with every malformed class to a real service on loopback; no answer is a 5xx,
each class gets its status, and the ledger holds exactly the results of the 200 answers.

Also the request limits themselves, in process: the body limit never holds a body whole
(``BodyLimitMiddleware``), a JSON route refuses other media types, and the web stack's
plain-text 404/405 come out as the service's JSON errors.
"""

from __future__ import annotations

import asyncio
import copy
import http.client
import json
import random
import sqlite3
import threading
import time
from collections import Counter
from urllib.parse import urlparse

import pytest

from riskml.data import schema
from riskml.service.middleware import (
    BodyLimitMiddleware,
    JsonBodyMiddleware,
    JsonErrorsMiddleware,
    max_body_bytes,
)
from tests.code.test_openapi import start_live_service

REQUESTS = 5000
THREADS = 16
LIMIT = 2_000_000  # the load server's body limit: an oversized body is cheap to send
SEED = 13


# --------------------------------------------------------------------------- the requests
def _body(households, **more) -> bytes:
    return json.dumps({"households": households, **more}).encode()


def _replace(records: list[dict], field: str, text: str, index: int = 0) -> bytes:
    """A request whose record ``index`` has ``field`` written as the raw JSON ``text``."""
    marker = "__riskml_raw__"
    recs = copy.deepcopy(records)
    recs[index][field] = marker
    return _body(recs).replace(f'"{marker}"'.encode(), text.encode())


def request_mix(records: list[dict], rng: random.Random) -> list[tuple[str, bytes, str, int]]:
    """(class, body, content type, expected status) for every request of the test."""
    js = "application/json"
    pool = [dict(r) for r in records]

    def some(n: int) -> list[dict]:
        chosen = rng.sample(pool, n)  # distinct records: distinct (household_id, period)
        return copy.deepcopy(chosen)

    def one_changed(**change) -> bytes:
        recs = some(3)
        recs[rng.randrange(3)].update(change)
        return _body(recs)

    def dropped(field: str) -> bytes:
        recs = some(2)
        recs[1].pop(field)
        return _body(recs)

    # class: (weight, make body, content type, expected status)
    classes = {
        "valid, 1 record": (30, lambda: _body(some(1)), js, 200),
        "valid, 5 records, none explained": (12, lambda: _body(some(5), explain="none"), js, 200),
        "valid, 20 records, all explained": (3, lambda: _body(some(20), explain="all"), js, 200),
        "valid, period carried forward (2027-06)": (2, lambda: one_changed(period="2027-06"), js, 200),
        "bad type (number as string)": (4, lambda: one_changed(income_wage="12000"), js, 422),
        "bad type (flag as text)": (3, lambda: one_changed(head_female="yes"), js, 422),
        "bad type (float for a count)": (2, lambda: one_changed(labor_count=1.5), js, 422),
        "NaN as a string": (3, lambda: one_changed(income_wage="NaN"), js, 422),
        "NaN as JSON text": (3, lambda: _replace(some(2), "income_wage", "NaN", 1), js, 422),
        "Infinity as JSON text": (2, lambda: _replace(some(2), "debt", "-Infinity"), js, 422),
        "missing field": (4, lambda: dropped(rng.choice(schema.FIELD_NAMES)), js, 422),
        "unknown record key": (3, lambda: one_changed(name="Zhang San"), js, 422),
        "unknown envelope key": (2, lambda: _body(some(1), records=[]), js, 422),
        "huge int 10**400 (money)": (3, lambda: _replace(some(2), "income_wage", "1" + "0" * 400), js, 422),
        "huge int 10**400 (count)": (3, lambda: _replace(some(1), "students_compulsory", "1" + "0" * 400), js, 422),
        "huge int, 5000 digits": (2, lambda: _replace(some(1), "debt", "9" * 5000), js, 422),
        "huge float 1e400": (2, lambda: _replace(some(1), "medical_expense", "1e400"), js, 422),
        "out of range": (3, lambda: one_changed(head_age=140), js, 422),
        "not JSON": (3, lambda: b"households=1&explain=all", js, 422),
        "truncated JSON": (2, lambda: _body(some(2))[:-7], js, 422),
        "empty body": (2, lambda: b"", js, 422),
        "wrong envelope (a list)": (2, lambda: json.dumps(some(2)).encode(), js, 422),
        "wrong envelope (households not a list)": (2, lambda: _body("abc"), js, 422),
        "wrong envelope (no records)": (2, lambda: _body([]), js, 422),
        "wrong envelope (explain)": (2, lambda: _body(some(1), explain="everything"), js, 422),
        "not a record": (2, lambda: _body([1, "x", None]), js, 422),
        "duplicate household and period": (4, lambda: _body(2 * some(1)), js, 422),
        "period before the table (2010-06)": (3, lambda: one_changed(period="2010-06"), js, 422),
        "period past the gap (2030-06)": (3, lambda: one_changed(period="2030-06"), js, 422),
        "full-width digits in period": (2, lambda: one_changed(period="20２４-06"), js, 422),
        "1,000 problems (capped at 100)": (
            2, lambda: _body([{f"k{i}": i for i in range(1000)}]), js, 422,
        ),
        "not sent as JSON (a form)": (1, lambda: b"households=1", "application/x-www-form-urlencoded", 415),
        "not UTF-8": (1, lambda: b'{"households": "\xff\xfe"}', js, 400),
    }  # fmt: skip
    fixed = [
        ("over 1,000 records", lambda: _body([pool[i % len(pool)] for i in range(1001)]), js, 422),
        ("over the body limit", lambda: _body(some(1))[:-1] + b" " * LIMIT + b"}", js, 413),
    ]
    out = []
    for name, make, ctype, status in fixed:
        out += [(name, make(), ctype, status) for _ in range(6)]
    names = list(classes)
    weights = [classes[n][0] for n in names]
    for name in rng.choices(names, weights, k=REQUESTS - len(out)):
        _, make, ctype, status = classes[name]
        out.append((name, make(), ctype, status))
    rng.shuffle(out)
    return out


# --------------------------------------------------------------------------- the load test
@pytest.fixture(scope="module")
def load_live(session_dir, registered):
    srv, keys, env = start_live_service(
        session_dir, "load", RISKML_MAX_BODY_BYTES=str(LIMIT)
    )  # fmt: skip
    yield srv, keys, env
    srv.stop()


def _decision_ids(ledger_url: str) -> set[str]:
    path = ledger_url.removeprefix("sqlite:///")
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        return {row[0] for row in conn.execute("SELECT decision_id FROM decisions")}


@pytest.mark.slow
def test_5000_mixed_requests_no_5xx_and_the_ledger_holds_exactly_the_answers(load_live, trained):
    srv, keys, env = load_live
    records = schema.to_json_records(trained.test_frame.head(400))
    mix = request_mix(records, random.Random(SEED))
    assert len(mix) == REQUESTS and len({name for name, *_ in mix}) >= 30
    host = urlparse(srv.url)
    answers: list[tuple[str, int, int, dict | None, int]] = [None] * len(mix)  # type: ignore[list-item]
    errors: list[str] = []
    next_index = iter(range(len(mix)))
    lock = threading.Lock()

    def worker() -> None:
        conn = http.client.HTTPConnection(host.hostname, host.port, timeout=120)
        while True:
            with lock:
                i = next(next_index, None)
            if i is None:
                break
            name, body, ctype, expected = mix[i]
            headers = {"Authorization": f"Bearer {keys['scorer']}", "Content-Type": ctype}
            try:
                conn.request("POST", "/score", body=body, headers=headers)
                resp = conn.getresponse()
                raw = resp.read()
            except (OSError, http.client.HTTPException) as exc:
                errors.append(f"{name}: {type(exc).__name__}: {exc}")
                conn.close()
                conn = http.client.HTTPConnection(host.hostname, host.port, timeout=120)
                continue
            try:
                answer = json.loads(raw)
            except ValueError:
                answer = None
            answers[i] = (name, resp.status, expected, answer, _sent(body))
        conn.close()

    before = _decision_ids(env["RISKML_LEDGER_URL"])
    t0 = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    added = _decision_ids(env["RISKML_LEDGER_URL"]) - before

    assert not errors, errors[:10]
    statuses = Counter(a[1] for a in answers)
    by_class = Counter((a[0], a[1]) for a in answers)
    answered = [r for a in answers if a[1] == 200 for r in a[3]["results"]]
    print(
        f"\nload: {len(answers)} requests in {elapsed:.1f} s, statuses {dict(statuses)}, "
        f"{len(answered)} results in 200 answers, {len(added)} ledger rows added"
    )
    for (name, status), n in sorted(by_class.items()):
        print(f"  {status}  {n:5d}  {name}")
    server_errors = [(a[0], a[1], str(a[3])[:300]) for a in answers if a[1] >= 500]
    assert not server_errors, server_errors[:10]
    wrong = [(a[0], a[1], a[2], str(a[3])[:300]) for a in answers if a[1] != a[2]]
    assert not wrong, wrong[:10]
    for name, status, _, answer, sent in answers:
        assert isinstance(answer, dict) and isinstance(answer.get("error", ""), str), name
        if status == 200:
            assert len(answer["results"]) == sent, name
        elif status == 422:
            assert 1 <= len(answer["problems"]) <= 100 and answer["problems_total"] >= 1
            if name.startswith("1,000 problems"):
                assert len(answer["problems"]) == 100 and answer["problems_total"] >= 1000
        else:
            assert answer["error"], name
    # every result answered is in the ledger, and nothing else was written
    assert {r["decision_id"] for r in answered} == added
    assert len(answered) == len(added)


def _sent(body: bytes) -> int:
    try:
        return len(json.loads(body)["households"])
    except (ValueError, KeyError, TypeError):
        return -1


# --------------------------------------------------------------------------- the limits, in process
def _run(app, scope, chunks, more_after: bool = False):
    """Drive an ASGI app with a request of ``chunks``: (messages sent, bytes the app pulled)."""
    sent: list[dict] = []
    pulled = {"bytes": 0, "calls": 0}
    feed = list(chunks)

    async def receive():
        pulled["calls"] += 1
        if feed:
            chunk = feed.pop(0)
            pulled["bytes"] += len(chunk)
            return {"type": "http.request", "body": chunk, "more_body": bool(feed) or more_after}
        if more_after:  # an endless body
            pulled["bytes"] += 65536
            return {"type": "http.request", "body": b"x" * 65536, "more_body": True}
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent, pulled


def _scope(path="/score", headers=(), method="POST"):
    return {"type": "http", "method": method, "path": path, "headers": list(headers)}


class _Recorder:
    """An app that reads the whole body and answers 200 with it."""

    def __init__(self):
        self.body = None

    async def __call__(self, scope, receive, send):
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        self.body = body
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def _status(sent):
    """The status and the body (decoded when it is JSON) of an ASGI answer."""
    headers = dict(sent[0]["headers"])
    body = sent[1]["body"]
    is_json = headers.get(b"content-type", b"").startswith(b"application/json")
    return sent[0]["status"], json.loads(body) if is_json else body


def test_a_declared_length_over_the_limit_is_refused_before_the_app_reads_it():
    app = _Recorder()
    limit = BodyLimitMiddleware(app, limit=1000)
    sent, pulled = _run(limit, _scope(headers=[(b"content-length", b"1001")]), [b"x" * 1001])
    status, body = _status(sent)
    assert status == 413 and "1,000 bytes" in body["error"] and app.body is None
    assert pulled["bytes"] == 1001  # read and dropped, so the client gets the answer
    # with Expect: 100-continue nothing of the body is asked for
    headers = [(b"content-length", b"5000000"), (b"expect", b"100-continue")]
    sent, pulled = _run(limit, _scope(headers=headers), [b"x" * 10])
    assert _status(sent)[0] == 413 and pulled["calls"] == 0
    sent, _ = _run(limit, _scope(headers=[(b"content-length", b"1000")]), [b"y" * 1000])
    assert _status(sent)[0] == 200 and app.body == b"y" * 1000


def test_a_chunked_body_is_never_held_whole():
    app = _Recorder()
    limit = BodyLimitMiddleware(app, limit=100_000)
    chunked = [(b"transfer-encoding", b"chunked")]
    # an endless body: refused after the limit, the rest dropped up to DRAIN_FACTOR x the limit
    sent, pulled = _run(limit, _scope(headers=chunked), [], more_after=True)
    assert _status(sent)[0] == 413 and app.body is None
    assert pulled["bytes"] <= (1 + BodyLimitMiddleware.DRAIN_FACTOR) * 100_000 + 2 * 65536
    # below the limit the app gets the chunks as they came
    chunks = [b"a" * 40_000, b"b" * 40_000, b"c" * 20_000]
    sent, _ = _run(limit, _scope(headers=chunked), chunks)
    assert _status(sent)[0] == 200 and app.body == b"".join(chunks)
    sent, _ = _run(limit, _scope(headers=chunked), [*chunks, b"d"])
    assert _status(sent)[0] == 413


def test_the_limit_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv("RISKML_MAX_BODY_BYTES", raising=False)
    assert max_body_bytes() == 10 * 1024 * 1024
    monkeypatch.setenv("RISKML_MAX_BODY_BYTES", "2048")
    assert max_body_bytes() == 2048 and BodyLimitMiddleware(_Recorder()).limit == 2048
    for bad in ("0", "-5", "10MB", "１０"):
        monkeypatch.setenv("RISKML_MAX_BODY_BYTES", bad)
        with pytest.raises(ValueError, match="RISKML_MAX_BODY_BYTES"):
            max_body_bytes()


@pytest.mark.parametrize(
    ("ctype", "status"),
    [(b"application/json", 200), (b"application/json; charset=utf-8", 200), (None, 200),
     (b"application/merge-patch+json", 200), (b"multipart/form-data", 415),
     (b"application/x-www-form-urlencoded", 415), (b"application/vnd.bentoml+pickle", 415),
     (b"text/plain", 415)],
)  # fmt: skip
def test_score_takes_json_only(ctype, status):
    app = _Recorder()
    headers = [(b"content-length", b"2")] + ([(b"content-type", ctype)] if ctype else [])
    sent, _ = _run(JsonBodyMiddleware(app), _scope(headers=headers), [b"{}"])
    assert sent[0]["status"] == status
    if status == 415:
        assert "application/json" in json.loads(sent[1]["body"])["error"] and app.body is None
    other, _ = _run(JsonBodyMiddleware(_Recorder()), _scope("/admin/reload", headers), [b"{}"])
    assert other[0]["status"] == 200  # only the JSON routes


def test_plain_text_404_and_405_become_json_errors():
    def plain(status, text=b"Not Found", ctype=b"text/plain; charset=utf-8"):
        async def app(scope, receive, send):
            headers = [(b"content-type", ctype), (b"allow", b"POST")]
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": text})

        return app

    sent, _ = _run(JsonErrorsMiddleware(plain(404)), _scope("/nope", method="GET"), [])
    assert _status(sent) == (404, {"error": "no such route"})
    sent, _ = _run(JsonErrorsMiddleware(plain(405)), _scope("/score", method="GET"), [])
    assert _status(sent) == (405, {"error": "method not allowed on this route"})
    assert (b"allow", b"POST") in sent[0]["headers"]
    own = plain(404, b'{"error": "no such decision"}', b"application/json")
    sent, _ = _run(JsonErrorsMiddleware(own), _scope("/decisions/x", method="GET"), [])
    assert _status(sent) == (404, {"error": "no such decision"})
    sent, _ = _run(JsonErrorsMiddleware(plain(404)), _scope("/cw/static/x", method="GET"), [])
    assert sent[1]["body"] == b"Not Found"  # the pages keep their own answers
