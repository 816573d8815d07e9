"""The ASGI middlewares around the app: probes, the API-key guard, the redacted access log.

Also the log filter that keeps request bodies (household records) out of every
log handler. They read the bound service from ``riskml.service.state``.
"""

from __future__ import annotations

import json
import logging
import re
import time

from riskml.service import state

access_log = logging.getLogger("riskml.access")


class ProbeMiddleware:
    """Answers ``GET /healthz`` and ``GET /readyz`` with riskml's own JSON (BentoML's say only 200/503).

    ``/readyz`` is 200 only when a model is loaded and the ledger is writable, and says
    when the model came from the local cache because the registry was unreachable.
    """

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if (
            scope["type"] == "http"
            and scope["method"] == "GET"
            and scope["path"] in ("/healthz", "/readyz")
        ):
            service = state.bound()
            if scope["path"] == "/healthz":
                status, answer = 200, {"alive": True}
            elif service is None:
                status, answer = 503, {"ready": False, "reason": "starting"}
            else:
                reply = service.readiness()
                status, answer = reply.status, reply.body
            await _send_json(send, status, answer)
            return
        await self.app(scope, receive, send)


# answer without a key: the probes, and the caseworker pages (their own login and sessions)
OPEN_PATHS = ("/healthz", "/readyz", "/livez")


class KeyRequiredMiddleware:
    """Every other path needs a valid API key: /model, /metrics, BentoML's index and docs.

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
    headers = [(b"content-type", b"application/json"), (b"cache-control", b"no-store"), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": json.dumps(answer).encode()})


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
            access_log.info(
                "%s %s %s %.1fms", scope["method"], redact_path(scope["path"]), status["code"],
                (time.perf_counter() - t0) * 1000,
            )  # fmt: skip


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
