"""The ``/cw`` routes: login and logout, the worklist and its CSV, the household page and visit sheet.

Rendering (Jinja2 templates of this package), the security headers every answer
carries, and the access-log entry each view writes to the ledger.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import re
from datetime import datetime
from functools import lru_cache
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.concurrency import run_in_threadpool

from riskml.policy.risk_types import RISK_TYPE_CODES
from riskml.service import state
from riskml.service.access import Principal
from riskml.service.pages.formatting import CHINA_TZ
from riskml.service.pages.region_pages import REGION_ROLES
from riskml.service.pages.region_pages import ROUTES as REGION_ROUTES
from riskml.service.pages.session import (
    ENDED,
    FAILED,
    LOGIN_ROLES,
    LOGINS,
    SESSION_COOKIE,
    SESSION_TTL_S,
    LoginFormError,
    client_address,
    read_login_form,
    session_of,
    session_principal,
    sign_session,
)
from riskml.service.pages.views import household_view, row_view, scope_text, worklist_rows
from riskml.service.pages.words import LANGS, LEVELS, level_name, rhythm, risk_type_name, words
from riskml.store.ledger import LedgerError

log = logging.getLogger("riskml.pages")
access_log = logging.getLogger(
    "riskml.access"
)  # the service's access log (riskml.service.middleware)


def pages_dir() -> Traversable:
    """The folder of templates/ and static/: this package's, or ``RISKML_PAGES_DIR`` when set."""
    override = os.environ.get("RISKML_PAGES_DIR")
    return Path(override) if override else resources.files("riskml.service.pages")


PAGES_DIR = pages_dir()
TEMPLATES_DIR = PAGES_DIR / "templates"
STATIC_DIR = PAGES_DIR / "static"
STATIC_FILES = {
    "style.css": "text/css; charset=utf-8",
    "print.js": "text/javascript",
    "region.css": "text/css; charset=utf-8",  # the regional pages (region_pages)
}

LANG_COOKIE = "riskml_lang"
MAX_ROWS = 500  # rows shown on the worklist page (the CSV has all)

HEADERS = {
    "Cache-Control": "no-store",
    "Pragma": "no-cache",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
}

router = APIRouter(prefix="/cw", include_in_schema=False)


# --------------------------------------------------------------------------- rendering
@lru_cache(maxsize=1)
def _env() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES_DIR)),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env


def request_lang(request: Request) -> str:
    q = request.query_params.get("lang")
    if q in LANGS:
        return q
    c = request.cookies.get(LANG_COOKIE)
    return c if c in LANGS else "zh"


def _with_query(request: Request, **changes: str | None) -> str:
    params = dict(request.query_params)
    for k, v in changes.items():
        if v is None:
            params.pop(k, None)
        else:
            params[k] = v
    return request.url.path + (f"?{urlencode(params)}" if params else "")


def _secure(request: Request) -> bool:
    return request.url.scheme == "https" or os.environ.get("RISKML_COOKIE_SECURE") == "1"


def _finish(response: Response, request: Request) -> Response:
    response.headers.update(HEADERS)
    q = request.query_params.get("lang")
    if q in LANGS and request.cookies.get(LANG_COOKIE) != q:
        response.set_cookie(
            LANG_COOKIE, q, max_age=365 * 86400, path="/cw", httponly=True,
            samesite="strict", secure=_secure(request),
        )  # fmt: skip
    return response


def render(
    request: Request,
    template: str,
    context: dict[str, Any],
    *,
    status: int = 200,
    principal: Principal | None = None,
) -> Response:
    lang = request_lang(request)
    ctx = {
        "lang": lang,
        "html_lang": "zh-CN" if lang == "zh" else "en",
        "t": words(lang),
        "principal": principal,
        "scope": scope_text(principal, lang) if principal else "",
        "lang_url": _with_query(request, lang="en" if lang == "zh" else "zh"),
        "page": template.removesuffix(".html"),
        **context,
    }
    html = _env().get_template(template).render(**ctx)
    return _finish(HTMLResponse(html, status_code=status), request)


def _redirect(request: Request, url: str) -> Response:
    return _finish(RedirectResponse(url, status_code=303), request)


def _error(
    request: Request, status: int, title: str, message: str, principal: Principal | None = None
) -> Response:
    return render(
        request, "error.html", {"title": title, "message": message, "status": status},
        status=status, principal=principal,
    )  # fmt: skip


def _login_redirect(request: Request) -> Response:
    target = request.url.path
    return _redirect(request, "/cw/login?" + urlencode({"next": target}))


_NEXT = re.compile(r"^/cw/[A-Za-z0-9_./-]*$")


def _safe_next(value: str | None) -> str:
    if value and _NEXT.match(value) and "//" not in value and "/cw/login" not in value:
        return value
    return "/cw/worklist"


def _log(principal: Principal, action: str, household_id: str | None = None) -> None:
    state.current().ledger.log_access(
        principal.id, principal.role, action, household_id=household_id,
        scope=principal.describe_scope(),
    )  # fmt: skip


# --------------------------------------------------------------------------- login
@router.get("")
@router.get("/")
def home(request: Request) -> Response:
    return _redirect(request, "/cw/worklist")


@router.get("/login")
def login_form(request: Request, next: str | None = None) -> Response:
    if session_principal(request) is not None:
        return _redirect(request, _safe_next(next))
    return render(request, "login.html", {"error": None, "next": _safe_next(next)})


# the login's own answers (the rest of the vocabulary is in words.py)
_LOGIN_WORDS = {
    "limited": ("登录失败次数过多，请 {s} 秒后再试。", "Too many failed logins. Try again in {s} s."),
    "busy": ("登录人数过多，请稍后再试。", "Too many logins at once. Try again in a moment."),
    "bad_form": ("登录请求无效，请从登录页重新登录。", "The login request is not valid. Log in from the login page."),
}  # fmt: skip


def _login_word(request: Request, name: str, **values: object) -> str:
    zh, en = _LOGIN_WORDS[name]
    return (zh if request_lang(request) == "zh" else en).format(**values)


def _login_failed(address: str, reason: str, key_id: str | None = None) -> None:
    """One access-log line per refused login: why, from where, which key id if known (never the key)."""
    access_log.warning(
        "login refused: %s (client %s%s)", reason, address, f", key id {key_id}" if key_id else ""
    )


def _too_many(request: Request, wait: int, word: str = "limited") -> Response:
    w = words(request_lang(request))
    response = _error(request, 429, w["login"], _login_word(request, word, s=wait))
    response.headers["Retry-After"] = str(wait)
    return response


@router.post("/login")
async def login(request: Request) -> Response:
    """Log in with a key, within the login's limits (``riskml.service.pages.session``)."""
    address = client_address(request)
    wait = FAILED.retry_after(f"addr:{address}")
    if wait:
        _login_failed(address, f"too many failed logins from this address, {wait} s to wait")
        return _too_many(request, wait)
    if not LOGINS.enter():
        _login_failed(address, "too many logins in flight")
        return _too_many(request, 1, "busy")
    try:
        form = await read_login_form(request)
    except LoginFormError as exc:
        FAILED.fail(f"addr:{address}")
        _login_failed(address, exc.reason)
        w = words(request_lang(request))
        return _error(request, exc.status, w["login"], _login_word(request, "bad_form"))
    finally:
        LOGINS.leave()
    return await run_in_threadpool(_login, request, form, address)


def _login(request: Request, form: dict[str, str], address: str) -> Response:
    next_url = _safe_next(form.get("next"))
    token = form.get("key", "").strip()
    if token.lower().startswith("bearer "):
        token = token[7:].strip()
    store = state.current().current_keys()  # None or empty while the keys fail: nobody logs in
    entry = store.entry_for(f"Bearer {token}") if token and store is not None else None
    if entry is None:
        FAILED.fail(f"addr:{address}")
        _login_failed(address, "unknown key" if token else "no key")
        ctx = {"error": words(request_lang(request))["login_wrong"], "next": next_url}
        return render(request, "login.html", ctx, status=401)
    principal = entry.principal()
    wait = FAILED.retry_after(f"key:{principal.id}")
    if wait:
        _login_failed(address, f"too many failed logins of this key id, {wait} s to wait", entry.id)
        return _too_many(request, wait)
    if principal.role not in (*LOGIN_ROLES, *REGION_ROLES, "assets"):
        FAILED.fail(f"addr:{address}")
        FAILED.fail(f"key:{principal.id}")
        _login_failed(address, f"role {principal.role} may not log in", principal.id)
        ctx = {"error": words(request_lang(request))["login_scorer"], "next": next_url}
        return render(request, "login.html", ctx, status=403)
    try:
        _log(principal, "login")
    except LedgerError:
        return _unavailable(request, None)
    if principal.role == "region" and not next_url.startswith("/cw/regions"):
        next_url = "/cw/regions"  # a region key reads the regional pages only
    if principal.role == "assets" and not next_url.startswith("/cw/assets"):
        next_url = "/cw/assets"  # an assets key reads the assets' pages only
    response = _redirect(request, next_url)
    response.set_cookie(
        SESSION_COOKIE, sign_session(entry.id, entry.hash), max_age=SESSION_TTL_S, path="/cw",
        httponly=True, samesite="strict", secure=_secure(request),
    )  # fmt: skip
    return response


@router.post("/logout")
def logout(request: Request) -> Response:
    """End the session on the server (a replayed cookie is refused) and delete the cookie."""
    session = session_of(request)
    response = _redirect(request, "/cw/login")
    if session is not None:
        service = state.current()
        store = service.current_keys()
        entry = store.entry_by_id(session.key_id) if store is not None else None
        try:
            ENDED.end(service.ledger, session, entry.principal() if entry is not None else None)
        except LedgerError:
            log.error("logout not recorded in the ledger: the session ends in this process only")
            response = _unavailable(request, None)
    response.delete_cookie(SESSION_COOKIE, path="/cw", httponly=True, samesite="strict")
    return response


@router.get("/static/{name}")
def static(name: str) -> Response:
    if name not in STATIC_FILES:
        return Response("not found", status_code=404, media_type="text/plain")
    body = (STATIC_DIR / name).read_bytes()
    return Response(
        body,
        media_type=STATIC_FILES[name],
        headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )


def _unavailable(request: Request, principal: Principal | None) -> Response:
    w = words(request_lang(request))
    return _error(request, 503, w["unavailable"], w["unavailable_msg"], principal)


# --------------------------------------------------------------------------- worklist
def _clean_filters(request: Request) -> dict[str, str | None]:
    q = request.query_params
    village = q.get("village") or None
    level = q.get("level") or None
    risk_type = q.get("risk_type") or None
    return {
        "village": village if village and re.fullmatch(r"[0-9]{12}", village) else None,
        "level": level if level in LEVELS else None,
        "risk_type": risk_type if risk_type in RISK_TYPE_CODES else None,
        "show": "all" if q.get("show") == "all" else "flagged",
    }


@router.get("/worklist")
def worklist(request: Request) -> Response:
    principal = session_principal(request)
    if principal is None:
        return _login_redirect(request)
    lang = request_lang(request)
    filters = _clean_filters(request)
    rows, villages = worklist_rows(principal, filters)
    try:
        _log(principal, "view_worklist")
    except LedgerError:
        return _unavailable(request, principal)
    counts = {lv: sum(1 for r in rows if r["risk_level"] == lv) for lv in LEVELS}
    w = words(lang)
    summary = w["summary"].format(n=len(rows), **counts)
    export_params = {k: v for k, v in filters.items() if v and not (k == "show" and v == "flagged")}
    return render(
        request,
        "worklist.html",
        {
            "rows": [row_view(r, lang) for r in rows[:MAX_ROWS]],
            "truncated": w["truncated"].format(n=MAX_ROWS) if len(rows) > MAX_ROWS else "",
            "summary": summary,
            "counts": counts,
            "filters": filters,
            "villages": villages,
            "levels": [(lv, level_name(lv, lang)) for lv in LEVELS],
            "legend": [(lv, level_name(lv, lang), rhythm(lv, lang)) for lv in LEVELS],
            "risk_types": [(c, risk_type_name(c, lang)) for c in RISK_TYPE_CODES],
            "export_url": "/cw/worklist.csv"
            + (f"?{urlencode(export_params)}" if export_params else ""),
        },
        principal=principal,
    )


def _csv_cell(value: Any) -> str:
    text = "" if value is None else str(value)
    # a cell Excel would read as a formula is quoted
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


@router.get("/worklist.csv")
def worklist_csv(request: Request) -> Response:
    principal = session_principal(request)
    if principal is None:
        return _login_redirect(request)
    lang = request_lang(request)
    filters = _clean_filters(request)
    rows, _ = worklist_rows(principal, filters)
    try:
        _log(principal, "export_worklist")
    except LedgerError:
        return _unavailable(request, principal)
    w = words(lang)
    header = [
        w["household_id"], w["county"], w["village"], w["level"], w["score"], w["risk_type"],
        w["flagged_by"], w["period"], w["last_decision"], w["previous_decision"] + " " + w["period"],
        w["previous_decision"], w["previous_decision"] + " " + w["level"], w["rhythm"],
        w["monitoring_type"], w["decision_id"],
    ]  # fmt: skip
    sep = "、" if lang == "zh" else "; "
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(header)
    for r in rows:
        v = row_view(r, lang)
        writer.writerow(
            _csv_cell(x)
            for x in (
                v["household_id"],
                v["county_code"],
                v["village_code"],
                v["level_name"],
                f"{v['score']:.4f}" if v["score"] is not None else "",
                sep.join(v["risk_types"]),
                sep.join(v["sources"]),
                v["period"],
                v["decided_at"],
                v["prev_period"] or "",
                v["prev_decided_at"] if v["prev_period"] else "",
                v["prev_level_name"] if v["prev_level"] else "",
                v["rhythm"],
                v["monitoring_type"] or "",
                v["decision_id"],
            )  # fmt: skip
        )
    body = ("\ufeff" + buf.getvalue()).encode("utf-8")  # BOM: Excel then reads UTF-8 Chinese
    stamp = datetime.now(CHINA_TZ).strftime("%Y%m%d")
    filename = f"worklist-{stamp}.csv"
    response = Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
    return _finish(response, request)


def _household_page(request: Request, household_id: str, template: str, action: str) -> Response:
    principal = session_principal(request)
    if principal is None:
        return _login_redirect(request)
    lang = request_lang(request)
    view = household_view(principal, household_id, lang)
    w = words(lang)
    try:
        _log(principal, action if view is not None else "denied_household", household_id)
    except LedgerError:
        return _unavailable(request, principal)
    if view is None:
        # the same answer whether the household is out of scope or unknown (no existence oracle)
        return _error(request, 403, w["forbidden"], w["forbidden_household"], principal)
    view["printed_at"] = datetime.now(CHINA_TZ).strftime("%Y-%m-%d %H:%M")
    return render(request, template, view, principal=principal)


@router.get("/households/{household_id}")
def household(request: Request, household_id: str) -> Response:
    return _household_page(request, household_id, "household.html", "view_household")


@router.get("/households/{household_id}/sheet")
def household_sheet(request: Request, household_id: str) -> Response:
    return _household_page(request, household_id, "sheet.html", "view_visit_sheet")


for _path, _page in REGION_ROUTES:  # the regional pages, /cw/regions... (region_pages)
    router.add_api_route(_path, _page, methods=["GET"])
