"""The ASGI middlewares around the app: request metrics by route template, probes and the
contract, the API-key guard, the redacted access log, JSON errors for the web stack's own
404/405, the request-body limit and JSON-only bodies for ``POST /score``.

Also riskml's Prometheus metrics (BentoML's own are off: they label series with raw paths,
household ids included) and the log filter that keeps request bodies (household records)
out of every log handler. They read the bound service from ``riskml.service.state``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from functools import cache

import anyio
import prometheus_client as prom

from riskml.service import state

access_log = logging.getLogger("riskml.access")

# the OpenAPI document (riskml.service.openapi), answered without a key
CONTRACT_PATHS = ("/docs.json", "/openapi.json")
DEFAULT_MAX_BODY_BYTES = 10 * 1024 * 1024


class ProbeMiddleware:
    """Answers ``GET /healthz`` and ``GET /readyz`` with riskml's own JSON (BentoML's say only 200/503),
    and ``GET /docs.json`` and ``GET /openapi.json`` with riskml's OpenAPI document (BentoML's
    describes ``/score`` as ``{households: any, explain: any}``).

    ``/readyz`` is 200 only when a model is loaded and the ledger is writable. Without an
    admin key it says only that: ``{"ready": true|false}``; with one, also the model, the
    ledger, when the model came from the local cache and why it is not ready (load errors
    name paths and URIs: not for anyone). It is read in a worker thread, never on the event
    loop, and at most ``PROBE_THREADS`` at once.
    """

    PROBE_THREADS = 4

    def __init__(self, app):
        self.app = app
        self._limiter: anyio.CapacityLimiter | None = None

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] == "GET" and scope["path"] in CONTRACT_PATHS:
            from riskml.service.openapi import openapi_text  # the schema modules: worker only

            await _send(send, 200, openapi_text().encode("utf-8"), cache="no-cache")
            return
        if scope["type"] == "http" and scope["method"] == "GET" and scope["path"] == "/healthz":
            await _send_json(send, 200, {"alive": True})
            return
        if scope["type"] == "http" and scope["method"] == "GET" and scope["path"] == "/readyz":
            if self._limiter is None:  # made in the event loop it serves
                self._limiter = anyio.CapacityLimiter(self.PROBE_THREADS)
            status, answer = await anyio.to_thread.run_sync(
                readiness_answer, _header(scope, b"authorization"), limiter=self._limiter
            )
            await _send_json(send, status, answer)
            return
        await self.app(scope, receive, send)


def readiness_answer(authorization: str | None) -> tuple[int, dict]:
    """``/readyz``: (status, body); the whole body for an admin key, only ``ready`` for anyone else."""
    service = state.bound()
    if service is None:
        return 503, {"ready": False}
    reply = service.readiness()
    principal = service.authenticate(authorization) if authorization else None
    if principal is not None and principal.can_admin():
        return reply.status, reply.body
    return reply.status, {"ready": bool(reply.body.get("ready"))}


# answer without a key: the probes, and the caseworker pages (their own login and sessions)
OPEN_PATHS = ("/healthz", "/readyz", "/livez", *CONTRACT_PATHS)


class KeyRequiredMiddleware:
    """Every other path needs a valid API key: /model, /metrics, BentoML's index and schema.

    The endpoints then check the key's role themselves (``ScoringService``); this
    guard covers what has no check of its own. 401 (with the service's wording)
    without a valid key; 503 while the service is starting.
    """

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if path in OPEN_PATHS or path == "/cw" or path.startswith("/cw/"):
            await self.app(scope, receive, send)
            return
        service = state.bound()
        if service is None:
            await _send_json(send, 503, {"error": "the service is starting"})
        elif service.authenticate(_header(scope, b"authorization")) is not None:
            await self.app(scope, receive, send)
        else:
            await _send_json(
                send,
                401,
                {"error": "missing or invalid API key"},
                [(b"www-authenticate", b"Bearer")],
            )


async def _send_json(send, status: int, answer: dict, extra: list | tuple = ()) -> None:
    """A complete JSON response, never cached, straight to the ASGI ``send``."""
    await _send(send, status, json.dumps(answer).encode(), extra)


async def _send(
    send, status: int, body: bytes, extra: list | tuple = (), cache: str = "no-store"
) -> None:
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", cache.encode()),
        *extra,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


_PLAIN_ERRORS = {404: "no such route", 405: "method not allowed on this route"}


class JsonErrorsMiddleware:
    """The web stack's plain-text 404 and 405 (an unknown path, a wrong method) as the service's
    JSON errors, ``{"error": ...}``, keeping their headers (``Allow``). The caseworker pages
    (``/cw``) keep their own answers.
    """

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] == "/cw" or scope["path"].startswith("/cw/"):
            await self.app(scope, receive, send)
            return
        held: dict = {}

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                headers = dict((k.lower(), v) for k, v in message.get("headers", ()))
                plain = headers.get(b"content-type", b"").startswith(b"text/plain")
                if message["status"] in _PLAIN_ERRORS and plain:
                    held["start"] = message
                    return
            elif held and message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                start = held.pop("start")
                keep = [(k, v) for k, v in start.get("headers", ())
                        if k.lower() not in (b"content-type", b"content-length")]  # fmt: skip
                error = {"error": _PLAIN_ERRORS[start["status"]]}
                await _send(send, start["status"], json.dumps(error).encode(), keep)
                return
            await send(message)

        await self.app(scope, receive, send_wrapper)


def max_body_bytes() -> int:
    """The largest request body the service reads: ``$RISKML_MAX_BODY_BYTES`` or 10 MiB."""
    raw = os.environ.get("RISKML_MAX_BODY_BYTES", "").strip()
    if not raw:
        return DEFAULT_MAX_BODY_BYTES
    if not (raw.isascii() and raw.isdigit()) or int(raw) < 1:
        raise ValueError(
            f"RISKML_MAX_BODY_BYTES must be a positive whole number of bytes, got {raw!r}"
        )
    return int(raw)


class BodyLimitMiddleware:
    """413 (JSON) for a request body over ``max_body_bytes()``; the body is never held whole.

    A declared ``Content-Length`` over the limit is refused before the app sees any of
    it. A body without one (chunked) is read chunk by chunk up to the limit (and handed
    on to the app as it came when it ends below); past the limit it is refused. Before
    answering, what the client still sends of a refused body is read and dropped (up to
    ``DRAIN_FACTOR`` × the limit, see ``_drain``), never kept.
    """

    DRAIN_FACTOR = 4

    def __init__(self, app, limit: int | None = None):
        self.app = app
        self.limit = max_body_bytes() if limit is None else limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None:
            # the server holds the body to its declared length; an invalid one never gets here
            if declared.strip().isdigit() and int(declared) > self.limit:
                await self._refuse(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        if _header(scope, b"transfer-encoding") is None:  # no body at all
            await self.app(scope, receive, send)
            return
        read: list[dict] = []
        size = 0
        while True:
            message = await receive()
            read.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > self.limit:
                read.clear()
                await self._refuse(scope, receive, send, drained=size)
                return
            if not message.get("more_body", False):
                break
        replay = iter(read)

        async def receive_again():
            return next(replay, None) or await receive()

        await self.app(scope, receive_again, send)

    async def _refuse(self, scope, receive, send, drained: int = 0) -> None:
        await _drain(scope, receive, self.DRAIN_FACTOR * self.limit, drained)
        error = f"the request body is over the limit of {self.limit:,} bytes; nothing was stored"
        await _send_json(send, 413, {"error": error})


def is_json_media_type(content_type: str | None) -> bool:
    """``application/json`` (any parameters) or an ``application/*+json``; no Content-Type counts as JSON."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media in ("", "application/json") or (
        media.startswith("application/") and media.endswith("+json")
    )


class JsonBodyMiddleware:
    """415 (JSON) for a body on a JSON route (``POST /score``) sent as anything but JSON.

    BentoML would otherwise pick its parser by the Content-Type: a form it parses as a
    form (500 for a multipart type without a boundary), a pickle it refuses with an
    answer that is a list. What the client sends of the refused body is dropped.
    """

    JSON_ROUTES = (("POST", "/score"),)

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if (
            scope["type"] == "http"
            and (scope["method"], scope["path"]) in self.JSON_ROUTES
            and not is_json_media_type(_header(scope, b"content-type"))
        ):
            await _drain(scope, receive, max_body_bytes())
            error = "the body must be JSON, sent as Content-Type: application/json"
            await _send_json(send, 415, {"error": error})
            return
        await self.app(scope, receive, send)


async def _drain(scope, receive, upto: int, drained: int = 0) -> None:
    """Read and drop what the client still sends of a refused body (up to ``upto`` bytes).

    A client that writes its whole body before reading the answer then gets the answer,
    not a broken connection; one that asked ``Expect: 100-continue`` sends nothing.
    """
    if (_header(scope, b"expect") or "").lower() == "100-continue":
        return
    while drained <= upto:
        message = await receive()
        if message["type"] != "http.request":
            return
        drained += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


def _header(scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


_ID_SEGMENT = re.compile(r"/(households|decisions|household)/[^/?]+")


def redact_path(path: str) -> str:
    """A request path with household and decision ids replaced, fit for logs."""
    return _ID_SEGMENT.sub(lambda m: f"/{m.group(1)}/{{id}}", path)


class AccessLogMiddleware:
    """One log line per request: method, path with ids redacted, status, milliseconds.

    Replaces BentoML's access log, which writes raw paths (household ids) and query strings.
    No header, body, key, record or score is ever logged.
    """

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] in (
            "/healthz",
            "/readyz",
            "/metrics",
            "/livez",
        ):
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = {"code": 0}

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            # refusals of a key (401, 403) at WARNING: they reach the server's log
            level = logging.WARNING if status["code"] in (401, 403) else logging.INFO
            access_log.log(
                level, "%s %s %s %.1fms", scope["method"], redact_path(scope["path"]),
                status["code"], (time.perf_counter() - t0) * 1000,
            )  # fmt: skip


# --------------------------------------------------------------------------- metrics
# riskml's own registry, this process's counts: the service runs one worker (bento.py).
# With several, each worker would answer its own counts; prometheus_client's
# MultiProcessCollector over $PROMETHEUS_MULTIPROC_DIR (which `bentoml serve` sets) would
# then sum them.
prom.disable_created_metrics()  # no *_created series beside each counter and histogram
METRICS = prom.CollectorRegistry()
REQUESTS = prom.Counter(
    "riskml_http_requests",
    "HTTP requests by route template (unmatched: no route), method and status",
    ["route", "method", "status"],
    registry=METRICS,
)
LATENCY = prom.Histogram(
    "riskml_http_request_duration_seconds",
    "Time to answer an HTTP request, by route template, method and status",
    ["route", "method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
    registry=METRICS,
)
UNMATCHED = "unmatched"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})


def metrics_text() -> bytes:
    """The Prometheus text exposition of riskml's metrics."""
    return prom.generate_latest(METRICS)


METRICS_CONTENT_TYPE = prom.CONTENT_TYPE_LATEST


@cache
def _route_patterns() -> tuple[dict[str, str], tuple[tuple[re.Pattern, str], ...]]:
    """The service's routes, from its OpenAPI document (a test holds it equal to the routes
    the app answers): literal paths, and a pattern per path with ``{parameters}``."""
    from riskml.service.openapi import openapi_document  # the schema modules: worker only

    literal, patterns = {}, []
    for template in openapi_document()["paths"]:
        if "{" not in template:
            literal[template] = template
        else:
            parts = re.split(r"\{[^}/]+\}", template)
            patterns.append((re.compile("[^/]+".join(map(re.escape, parts)) + r"\Z"), template))
    return literal, tuple(patterns)


def route_template(path: str) -> str:
    """The route a path is an instance of (``/households/{household_id}/decisions``), or
    ``unmatched``: never the path itself, so a label carries no id and the number of
    series is bounded by the routes."""
    literal, patterns = _route_patterns()
    if path in literal:
        return path
    for pattern, template in patterns:
        if pattern.match(path):
            return template
    return UNMATCHED


class MetricsMiddleware:
    """Counts every request and times it, by route template, method and status.

    Outermost of riskml's middlewares: probes, refused keys (401) and bodies (413, 415)
    count too, and an error the app raises as the 500 the web stack answers. BentoML's own
    429 (the concurrency cap) and 504 (the timeout) are answered outside it: a request the
    cap refuses is not counted, one cut by the timeout counts with status ``none``.
    """

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = {"code": "none"}

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status["code"] = str(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception:  # the web stack answers it 500, outside this middleware
            if status["code"] == "none":
                status["code"] = "500"
            raise
        finally:
            method = scope["method"] if scope["method"] in _METHODS else "other"
            labels = (route_template(scope["path"]), method, status["code"])
            REQUESTS.labels(*labels).inc()
            LATENCY.labels(*labels).observe(time.perf_counter() - t0)


class _NoExceptionDetail(logging.Filter):
    """Drop tracebacks from log records: a validation traceback quotes the request body."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[0] is not None:
            record.msg = (
                f"{record.getMessage()} ({record.exc_info[0].__name__}; details withheld from logs)"
            )
            record.args = ()
            record.exc_info = None
            record.exc_text = None
        return True


def install_log_redaction() -> None:
    """Keep request bodies (household records) out of every log handler of the process."""
    seen: set[int] = set()
    for name in (None, "bentoml", "bentoml.serve", "uvicorn", "uvicorn.error"):
        for handler in logging.getLogger(name).handlers:
            if id(handler) not in seen:
                seen.add(id(handler))
                handler.addFilter(_NoExceptionDetail())
