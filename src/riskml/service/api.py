"""HTTP routes beside ``POST /score``: probes, model info, decision reads, admin reload.

A FastAPI app mounted on the BentoML service (``riskml.service.bento``); every
route is a thin translation to ``riskml.service.core.ScoringService``. The service
instance is registered with ``bind`` when the BentoML worker starts.
"""

from __future__ import annotations

import json
import logging
import re
import time
from typing import TYPE_CHECKING

from fastapi import FastAPI, Header
from fastapi.responses import JSONResponse

if TYPE_CHECKING:  # the heavy modules load in the worker, with the service
    from riskml.service.core import Reply, ScoringService

_service: ScoringService | None = None
access_log = logging.getLogger("riskml.access")

NO_STORE = {"Cache-Control": "no-store"}


def bind(service: ScoringService) -> None:
    """Register the worker's service and mount the caseworker pages beside the API."""
    global _service
    _service = service
    mount_pages()


def mount_pages() -> None:
    """Include the caseworker pages' routes (once).

    Done when the service binds, not at import: BentoML's supervisor imports
    this module only to read the service's configuration, and the pages pull
    in the ledger and the model's vocabulary (about 200 MB it never uses).
    """
    global _pages_mounted
    from riskml.service import pages

    if not _pages_mounted:
        app.include_router(pages.router)
        _pages_mounted = True


def current() -> ScoringService:
    if _service is None:
        raise RuntimeError("the scoring service has not started")
    return _service


def respond(reply: Reply) -> JSONResponse:
    return JSONResponse(reply.body, status_code=reply.status, headers={**NO_STORE, **reply.headers})


app = FastAPI(title="riskml", docs_url=None, redoc_url=None, openapi_url=None)
_pages_mounted = False


@app.get("/model")
def model_info() -> JSONResponse:
    return respond(current().model_info())


@app.get("/decisions/{decision_id}")
def get_decision(
    decision_id: str, authorization: str | None = Header(default=None)
) -> JSONResponse:
    return respond(current().decision(decision_id, authorization))


@app.get("/households/{household_id}/decisions")
def household_decisions(
    household_id: str, authorization: str | None = Header(default=None)
) -> JSONResponse:
    return respond(current().household_decisions(household_id, authorization))


@app.post("/admin/reload")
def admin_reload(authorization: str | None = Header(default=None)) -> JSONResponse:
    return respond(current().reload(authorization))


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
            if scope["path"] == "/healthz":
                status, answer = 200, {"alive": True}
            elif _service is None:
                status, answer = 503, {"ready": False, "reason": "starting"}
            else:
                reply = _service.readiness()
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
        if _service is None:
            await _send_json(send, 503, {"error": "the service is starting"})
        elif _service.authenticate(_header(scope, b"authorization")) is not None:
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
