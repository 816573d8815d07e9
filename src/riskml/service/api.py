"""HTTP routes beside ``POST /score``: model info, decision reads, admin reload, metrics.

A FastAPI app mounted on the BentoML service (``riskml.service.bento``); every
route is a thin translation to ``riskml.service.core.ScoringService``. The service
instance is registered with ``bind`` when the BentoML worker starts (it is kept in
``riskml.service.state``, which the caseworker pages read too). The ASGI middlewares
that wrap the app live in ``riskml.service.middleware`` and are re-exported here for
``riskml.service.bento``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Header, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from riskml.service import assets_api, state
from riskml.service.middleware import (
    METRICS,
    METRICS_CONTENT_TYPE,
    AccessLogMiddleware,
    BodyLimitMiddleware,
    JsonBodyMiddleware,
    JsonErrorsMiddleware,
    KeyRequiredMiddleware,
    MetricsMiddleware,
    ProbeMiddleware,
    install_log_redaction,
    metrics_text,
    route_template,
)
from riskml.service.state import current

if TYPE_CHECKING:  # the heavy modules load in the worker, with the service
    from riskml.service.core import Reply, ScoringService

__all__ = [
    "METRICS",
    "NO_STORE",
    "AccessLogMiddleware",
    "BodyLimitMiddleware",
    "JsonBodyMiddleware",
    "JsonErrorsMiddleware",
    "KeyRequiredMiddleware",
    "MetricsMiddleware",
    "ProbeMiddleware",
    "app",
    "bind",
    "current",
    "install_log_redaction",
    "mount_pages",
    "respond",
    "route_template",
]

NO_STORE = {"Cache-Control": "no-store"}


def bind(service: ScoringService) -> None:
    """Register the worker's service and mount the caseworker pages beside the API."""
    global _case_metrics
    state.bind(service)
    assets_api.start(service)  # the asset model loads beside the household model
    mount_pages()
    if not _case_metrics:
        from riskml.service.cases import CaseMetrics

        METRICS.register(CaseMetrics())
        _case_metrics = True


def mount_pages() -> None:
    """Include the caseworker pages' routes (once).

    Done when the service binds, not at import: BentoML's supervisor imports
    this module only to read the service's configuration, and the pages pull
    in the ledger and the model's vocabulary (about 200 MB it never uses).
    """
    global _pages_mounted
    from riskml.service import pages
    from riskml.service.pages import asset_pages

    if not _pages_mounted:
        app.include_router(pages.router)
        app.include_router(pages.case_router)  # the case pages, /cw/cases...
        app.include_router(asset_pages.router)  # the assets' county pages, /cw/assets...
        _pages_mounted = True


def respond(reply: Reply) -> JSONResponse:
    return JSONResponse(reply.body, status_code=reply.status, headers={**NO_STORE, **reply.headers})


app = FastAPI(title="riskml", docs_url=None, redoc_url=None, openapi_url=None)
_pages_mounted = False
_case_metrics = False
app.include_router(assets_api.router)  # POST /assets/score (riskml.service.assets_api)

_HTTP_ERRORS = {404: "no such route", 405: "method not allowed on this route"}


@app.exception_handler(HTTPException)
async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
    """FastAPI's own errors (an unknown path, a wrong method) in the service's format: ``{"error": ...}``."""
    return JSONResponse(
        {"error": _HTTP_ERRORS.get(exc.status_code, str(exc.detail))},
        status_code=exc.status_code,
        headers={**NO_STORE, **(exc.headers or {})},
    )


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


@app.post("/admin/households/{household_id}/move")
async def move_household(
    household_id: str, request: Request, authorization: str | None = Header(default=None)
) -> JSONResponse:
    """An admin moves a household to another county and village; kept in the ledger."""
    body = await _json_body(request)
    reply = await run_in_threadpool(current().move_household, household_id, body, authorization)
    return respond(reply)


async def _json_body(request: Request) -> Any:
    raw = await request.body()  # the body limit middleware bounds it
    try:
        return json.loads(raw) if raw.strip() else None
    except (ValueError, RecursionError):
        return None  # refused as "(body) must be a JSON object"


@app.get("/worklist")
def case_worklist(authorization: str | None = Header(default=None)) -> JSONResponse:
    """The key's capacity-aware worklist (due first, then new leads by expected benefit)."""
    return respond(state.desk().worklist(authorization))


@app.get("/cases/{case_id}")
def get_case(case_id: str, authorization: str | None = Header(default=None)) -> JSONResponse:
    return respond(state.desk().case(authorization, case_id))


@app.get("/households/{household_id}/case")
def household_case(
    household_id: str, authorization: str | None = Header(default=None)
) -> JSONResponse:
    return respond(state.desk().household_case(authorization, household_id))


@app.get("/households/{household_id}/case/aids")
def household_case_aids(
    household_id: str, authorization: str | None = Header(default=None)
) -> JSONResponse:
    """The suggested support plan, the public-notice text and the elimination criteria now."""
    return respond(state.desk().suggestion(authorization, household_id))


@app.post("/households/{household_id}/case/{action}")
async def case_action(
    household_id: str,
    action: str,
    request: Request,
    authorization: str | None = Header(default=None),
    idempotency_key: str | None = Header(default=None),
) -> JSONResponse:
    """One action of the case loop on the household's current case (a lead opens or merges)."""
    body = await _json_body(request)
    case_id = request.query_params.get("case_id")
    reply = await run_in_threadpool(
        state.desk().act, authorization, household_id, action, body, idempotency_key, case_id
    )
    return respond(reply)


@app.post("/alerts")
async def push_alerts(
    request: Request, authorization: str | None = Header(default=None)
) -> JSONResponse:
    """A department's alerts: merged onto the households' latest records, re-scored, led."""
    body = await _json_body(request)
    reply = await run_in_threadpool(state.alert_desk().push, authorization, body)
    return respond(reply)


@app.get("/alerts/unmatched")
def unmatched_alerts(authorization: str | None = Header(default=None)) -> JSONResponse:
    """Alerts about households riskml has not seen, for the county."""
    return respond(state.alert_desk().unmatched(authorization))


@app.post("/reports")
async def push_reports(
    request: Request,
    authorization: str | None = Header(default=None),
    idempotency_key: str | None = Header(default=None),
) -> JSONResponse:
    """A registered reporter's risk reports (社会参与): stored once, matched ones led."""
    body = await _json_body(request)
    reply = await run_in_threadpool(state.report_desk().push, authorization, body, idempotency_key)
    return respond(reply)


@app.get("/reports/unmatched")
def unmatched_reports(
    village_code: str | None = None, authorization: str | None = Header(default=None)
) -> JSONResponse:
    """Reports riskml could not match to a household it knows, for the village."""
    return respond(state.report_desk().unmatched(authorization, village_code))


@app.get("/metrics")
def metrics(authorization: str | None = Header(default=None)) -> Response:
    """riskml's Prometheus metrics, for an ``admin`` or a ``metrics`` key (401 without a valid key,
    403 for another role). Labels are route templates, never paths: no household id."""
    principal = current().authenticate(authorization)
    if principal is None:
        return JSONResponse(
            {"error": "missing or invalid API key"},
            status_code=401,
            headers={**NO_STORE, "WWW-Authenticate": "Bearer"},
        )
    if not principal.can_read_metrics():
        return JSONResponse(
            {"error": f"role {principal.role} may not read metrics"},
            status_code=403,
            headers=NO_STORE,
        )
    return Response(metrics_text(), media_type=METRICS_CONTENT_TYPE, headers=NO_STORE)
