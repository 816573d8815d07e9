"""The case pages (``/cw/cases``): the capacity-aware list, the case page and its action forms.

Served by the ``/cw`` router (``routes.router.include_router(router)``), with its sessions,
rendering, headers, language switch and access log. A township or county key logs in like
a caseworker's; every page checks the session's key again and its scope on the server.

- ``GET /cw/cases``: the role's list from ``CaseDesk.worklist_for``: what is due by deadline
  first (overdue and due-soon marked), then new leads by expected benefit, cut at the week's
  capacity ("what fits this week", "N more"); a township sees the leads beyond each village's
  caseworker; the steps that wait for the role; per village the expected number of households
  falling below the line next year with its 90% interval.
- ``GET /cw/cases/{household_id}``: the current case: status, next step and deadline, the
  history of its events, and the forms of the actions this role may take now (the visit and
  follow-up forms pre-filled from the latest record, the plan from the suggested measures,
  the notice text and the elimination criteria from ``CaseDesk.aids``).
- ``POST /cw/cases/{household_id}/{action}``: a form as the action's JSON body
  (``case_forms``), acted by the session's key through the desk (the same checks, events and
  answers as the JSON API); saved: 303 back to the case page; refused: the case page again
  with the status of the refusal and each problem next to its field, Chinese first.

Form posts are plain URL-encoded forms of at most ``FORM_MAX_BYTES``; the session cookie is
SameSite=Strict and a post from another site (``Sec-Fetch-Site``, ``Origin``) is refused (403). Each form carries
a fresh Idempotency-Key and the case's id, so a double tap stores one event and a form from a
page gone stale is refused (409) rather than applied to a newer case.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlparse

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from riskml.alerts.report_intake import unmatched as unmatched_reports
from riskml.cases.fields import COPING, HOUSEHOLD_TYPES, SOURCES, VISIT_OUTCOMES
from riskml.cases.machine import ACTIONS, CLOSED, FROM, IDENTIFYING, clock, next_step
from riskml.data import schema
from riskml.policy.risk_types import RISK_TYPE_CODES
from riskml.service import state
from riskml.service.access import Principal
from riskml.service.cases import actor_of
from riskml.service.pages import case_forms as cf
from riskml.service.pages import case_words as cw
from riskml.service.pages.formatting import CHINA_TZ, china_time, pct
from riskml.service.pages.routes import HEADERS, render, request_lang
from riskml.service.pages.session import session_principal
from riskml.service.pages.words import level_name, risk_type_name
from riskml.store.ledger import LedgerError

router = APIRouter(prefix="/cw", include_in_schema=False)

FORM_MAX_BYTES = 64 * 1024
FORM_MAX_FIELDS = 400
MAX_SHOWN = 200  # list lines shown per section (the JSON /worklist has them all)


# --------------------------------------------------------------------------- helpers
def _redirect(url: str) -> Response:
    response = RedirectResponse(url, status_code=303)
    response.headers.update(HEADERS)
    return response


def _login_redirect(request: Request) -> Response:
    return _redirect("/cw/login?" + urlencode({"next": request.url.path}))


def _error(
    request: Request, status: int, title: str, message: str, principal: Principal
) -> Response:
    ctx = {"title": title, "message": message, "status": status}
    return render(request, "error.html", ctx, status=status, principal=principal)


def _unavailable(request: Request, principal: Principal) -> Response:
    t = cw.case_words(request_lang(request))
    return _error(request, 503, t["unavailable"], t["unavailable_msg"], principal)


def _log(principal: Principal, action: str, household_id: str | None = None) -> None:
    """One line of the ledger's access log (who, what, when, scope), as every /cw view writes."""
    state.current().ledger.log_access(
        principal.id, principal.role, action, household_id=household_id,
        scope=principal.describe_scope(),
    )  # fmt: skip


def _visible(principal: Principal, household_id: str) -> bool:
    """May this key see the household (known to the ledger or the case store, and in scope)?"""
    if schema.pseudonymous_id(household_id) is None:
        return False
    desk = state.desk()
    here = desk.service.ledger.locations([household_id]).get(household_id)
    if here is None:
        latest = desk.store.latest(household_id)
        here = (latest["county_code"], latest["village_code"]) if latest else None
    return here is not None and actor_of(principal).covers(here[1])


def _due(iso: str | None) -> str:
    return china_time(iso) if iso else "—"


def _item_view(item: Any, lang: str, t: dict[str, str]) -> dict[str, Any]:
    return {
        "household_id": item.household_id,
        "village_code": item.village_code,
        "kind": item.kind,
        "kind_name": t.get(f"kind_{item.kind}", item.kind),
        "step": cw.pick(cw.ACTION, item.step, lang),
        "status": cw.pick(cw.STATUS, item.status, lang) if item.status else "",
        "due": _due(item.due_at) if item.due_at else "",
        "clock": item.clock or "",
        "clock_name": t.get(item.clock or "", ""),
        "score": pct(item.score),
        "level": item.risk_level or "",
        "level_name": level_name(item.risk_level, lang) if item.risk_level else "",
    }


def _reports(principal: Principal, lang: str) -> list[dict[str, Any]]:
    """Unmatched social reports in the key's villages, townships and counties, newest first."""
    a = actor_of(principal)
    scope = (None, None, None) if a.role == "admin" else (
        sorted(a.counties), sorted(a.villages), sorted(a.townships))  # fmt: skip
    rows = unmatched_reports(state.current().ledger, *scope, limit=MAX_SHOWN)
    return [
        {"village_code": r["village_code"] or r["county_code"], "observed_on": r["observed_on"],
         "risks": "、".join(risk_type_name(x, lang) for x in r["risk_types"] or []),
         "description": r["description"] or "", "report_id": r["report_id"]}
        for r in rows
    ]  # fmt: skip


def list_view(principal: Principal, lang: str) -> dict[str, Any]:
    desk = state.desk()
    wl = desk.worklist_for(principal)
    t = cw.case_words(lang)
    expected = [
        {
            "village": v,
            "text": t["expected_row"].format(
                v=v, e=f"{e.expected:.1f}", lo=e.low, hi=e.high, n=e.households
            ),
        }
        for v, e in wl.expected.items()
    ]
    return {
        "fits": [_item_view(i, lang, t) for i in wl.fits[:MAX_SHOWN]],
        "beyond": wl.beyond,
        "more": t["more"].format(n=wl.beyond) if wl.beyond else "",
        "beyond_by_village": sorted(wl.beyond_by_village.items()),
        "show_beyond_by_village": principal.role in ("township", "county", "admin"),
        "steps": [_item_view(i, lang, t) for i in wl.steps[:MAX_SHOWN]],
        "counts": t["counts"].format(**wl.counts),
        "fits_note": t["fits_note"].format(
            capacity=wl.capacity, weekly=desk.procedure.weekly_visits
        ),
        "expected": expected,
        "reports": _reports(principal, lang),
    }


def _allowed(principal: Principal, case: dict[str, Any] | None) -> list[str]:
    """The actions this role may take on the case now (a lead: when no case is open)."""
    actor = actor_of(principal)
    out = []
    if (case is None or case["status"] in CLOSED) and actor.may("lead"):
        out.append("lead")
    if case is None:
        return out
    status = case["status"]
    for action in ACTIONS:
        if action == "lead" or not actor.may(action) or status not in FROM[action]:
            continue
        if action in ("plan", "deliver") and status in IDENTIFYING and not case["fast_track"]:
            continue
        out.append(action)
    return out


def case_view(
    principal: Principal,
    household_id: str,
    lang: str,
    *,
    failed: str | None = None,
    problems: list[dict[str, str]] | None = None,
    form: cf.Form | None = None,
) -> dict[str, Any]:
    """What the case page shows (and, after a refusal, the form as posted with its problems)."""
    desk = state.desk()
    t = cw.case_words(lang)
    cases = desk.store.household_cases(household_id)
    case = cases[-1] if cases else None
    records = desk.records(household_id)
    latest = records[-1] if records else None
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    today = datetime.now(CHINA_TZ).date()
    view: dict[str, Any] = {
        "household_id": household_id,
        "case": case,
        "forms": _allowed(principal, case),
        "action_names": {a: cw.pick(cw.ACTION, a, lang) for a in ACTIONS},
        "failed": failed,
        "errors": {},
        "unplaced": [],
        "idem": secrets.token_urlsafe(18),
        "today": today.isoformat(),
        "month": today.strftime("%Y-%m"),
        "risk_types": [(c, risk_type_name(c, lang)) for c in RISK_TYPE_CODES],
        "max_risk_types": desk.procedure.max_risk_types,
        "sources": [(c, cw.pick(cw.SOURCES, c, lang)) for c in SOURCES],
        "household_types": [(c, cw.pick(cw.HOUSEHOLD_TYPES, c, lang)) for c in HOUSEHOLD_TYPES],
        "coping": [(c, t[f"cope_{c}"]) for c in COPING],
        "outcomes": [(c, t[f"out_{c}"]) for c in VISIT_OUTCOMES],
        "kinds": [(c, cw.pick(cw.KINDS, c, lang)) for c in cw.KINDS],
        "record": cf.record_values(latest),
        "posted": {},
        "period": latest["period"] if latest else "",
        "has_model": desk.service.loaded is not None,
    }
    if case is not None:
        step = next_step(case, desk.procedure)
        view.update(
            status_name=cw.pick(cw.STATUS, case["status"], lang),
            step=step
            and {
                "name": cw.pick(cw.ACTION, step.step, lang),
                "due": _due(step.due_at),
                "not_before": _due(step.not_before) if step.not_before else "",
                "clock": clock(case, desk.procedure, now) or "",
            },
            history=[
                {
                    "when": china_time(e["created_at"]),
                    "who": e["actor"],
                    "what": cw.pick(cw.ACTION, e["action"], lang),
                    "after": cw.pick(cw.STATUS, e["status"], lang),
                    "note": (e["payload"] or {}).get("note") or "",
                }
                for e in reversed(desk.store.events(case["case_id"]))
            ],
            assignee=case.get("assignee") or "",
            case_types=[risk_type_name(c, lang) for c in case["risk_types"]],
            proposed=[risk_type_name(c, lang) for c in case["proposed_risk_types"]],
            chosen=case["risk_types"] or case["proposed_risk_types"],
            household_type=cw.pick(cw.HOUSEHOLD_TYPES, case.get("household_type"), lang),
            plan=[
                {
                    "index": i,
                    "risk_type": risk_type_name(m["risk_type"], lang),
                    "measure": m["measure"],
                    "department": m["department"],
                    "start": m["start"],
                    "end": m["end"],
                    "delivered": [
                        d["delivered_on"] for d in case["deliveries"] if d["measure"] == i
                    ],  # fmt: skip
                }
                for i, m in enumerate(case["plan"])
            ],
        )
        aids = desk.aids(case, now)
        view["notice"] = aids["notice"]["zh" if lang == "zh" else "en"]
        start = today.isoformat()
        end = (aids["suggested_plan"] or [{}])[0].get("end", start)
        view["plan_rows"] = cf.plan_rows(case["plan"] or aids["suggested_plan"], start, end)
        view["criteria"] = [
            {
                "name": cw.pick(cw.CRITERIA, c["criterion"], lang),
                "met": c["met"],
                "evidence": c["evidence_zh"] if lang == "zh" else c["evidence"],
                "field": f"criteria.{c['criterion']}",
            }
            for c in aids["elimination"]
        ]
        view["all_met"] = all(c["met"] for c in aids["elimination"])
    if failed is not None and form is not None:
        view["posted"] = dict(form.first)
        view["posted_types"] = form.all("risk_types")
        if failed in ("visit", "follow_up"):
            view["record"] = cf.posted_values(form)
        if failed == "plan":
            view["plan_rows"] = cf.posted_plan(form) or view.get("plan_rows", [])
        named = _names(failed, view)
        for p in problems or []:
            text = cw.problem_text(p["field"], p["problem"], lang)
            key = p["field"] if p["field"] in named else p["field"].split("[")[0]
            if key in named:
                view["errors"].setdefault(key, []).append(text)
            else:
                view["unplaced"].append(text)
    return view


def _names(action: str, view: dict[str, Any]) -> set[str]:
    """The field names a form shows (so a problem is placed beside its field)."""
    names = {"note", "consent", "outcome", "coping_capacity", "risk_types", "decision",
             "household_type", "caseworker", "result", "start", "measure", "delivered_on",
             "amount", "reason", "source", "measures", "record.period"}  # fmt: skip
    names |= {f"record.{f}" for f in cf.RECORD_FIELDS}
    for i in range(len(view.get("plan_rows") or [])):
        names |= {f"measures[{i}].{f}" for f in cf.MEASURE_FIELDS} | {f"measures[{i}]"}
    names |= {c["field"] for c in view.get("criteria") or []}
    return names


# --------------------------------------------------------------------------- pages
@router.get("/cases")
def cases_list(request: Request) -> Response:
    principal = session_principal(request)
    if principal is None:
        return _login_redirect(request)
    try:
        _log(principal, "view_cases")
        view = list_view(principal, request_lang(request))
    except LedgerError:
        return _unavailable(request, principal)
    view["t"] = cw.case_words(request_lang(request))
    return render(request, "case_list.html", view, principal=principal)


def _denied(request: Request, principal: Principal, household_id: str) -> Response:
    t = cw.case_words(request_lang(request))
    try:
        _log(principal, "denied_case", household_id if len(household_id) <= 64 else None)
    except LedgerError:
        return _unavailable(request, principal)
    return _error(request, 403, t["forbidden"], t["forbidden_case"], principal)


def _case_page(request: Request, principal: Principal, household_id: str, status: int = 200,
               done: str | None = None, **kw: Any) -> Response:  # fmt: skip
    lang = request_lang(request)
    view = case_view(principal, household_id, lang, **kw)
    t = cw.case_words(lang)
    view["t"] = t
    view["done"] = t["done"].format(a=cw.pick(cw.ACTION, done, lang)) if done in ACTIONS else ""
    return render(request, "case_page.html", view, status=status, principal=principal)


@router.get("/cases/{household_id}")
def case_page(request: Request, household_id: str) -> Response:
    principal = session_principal(request)
    if principal is None:
        return _login_redirect(request)
    try:
        if not _visible(principal, household_id):
            return _denied(request, principal, household_id)
        _log(principal, "view_case", household_id)
        return _case_page(request, principal, household_id,
                          done=request.query_params.get("done"))  # fmt: skip
    except LedgerError:
        return _unavailable(request, principal)


async def _read_form(request: Request) -> cf.Form | None:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        return None
    declared = request.headers.get("content-length", "").strip()
    if declared.isdigit() and int(declared) > FORM_MAX_BYTES:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > FORM_MAX_BYTES:
            return None
    try:
        pairs = parse_qsl(body.decode("ascii"), keep_blank_values=True,
                          max_num_fields=FORM_MAX_FIELDS, encoding="utf-8", errors="strict")  # fmt: skip
    except (ValueError, UnicodeDecodeError):
        return None
    return cf.Form(pairs)


def _same_site(request: Request) -> bool:
    """Not a post from another site: by ``Sec-Fetch-Site`` where the browser sends it, else by
    ``Origin`` (``null`` under the pages' no-referrer policy: then the SameSite=Strict cookie
    alone, as for login and logout)."""
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return True
    return urlparse(origin).netloc == request.headers.get("host")


@router.post("/cases/{household_id}/{action}")
async def case_action(request: Request, household_id: str, action: str) -> Response:
    principal = session_principal(request)
    if principal is None:
        return _login_redirect(request)
    t = cw.case_words(request_lang(request))
    if not _same_site(request):
        return _error(request, 403, t["forbidden"], t["bad_form"], principal)
    form = await _read_form(request)
    if form is None or action not in ACTIONS:
        return _error(request, 400, t["cases"], t["bad_form"], principal)
    return await run_in_threadpool(_act, request, principal, household_id, action, form)


def _act(request: Request, principal: Principal, household_id: str, action: str,
         form: cf.Form) -> Response:  # fmt: skip
    try:
        if not _visible(principal, household_id):
            return _denied(request, principal, household_id)
        body, problems, rows = cf.body_of(action, form)
        if problems:
            return _case_page(request, principal, household_id, 422, failed=action,
                              problems=problems, form=form)  # fmt: skip
        desk = state.desk()
        idem = form.get("idem")
        # the session's key acts through the desk: the same checks, events and answers as the
        # JSON API's CaseDesk.act (which authenticates a bearer token; a session holds none)
        reply = desk.act_as(principal, household_id, action, body, idem, form.get("case_id"))
    except LedgerError:
        return _unavailable(request, principal)
    if reply.status < 300:
        return _redirect(f"/cw/cases/{household_id}?done={action}")
    if reply.status == 503:
        return _unavailable(request, principal)
    found = reply.body.get("problems") or [
        {"field": "(body)", "problem": reply.body.get("error", "")}
    ]
    placed = [{**p, "field": cf.shown_field(str(p.get("field", "")), rows)} for p in found]
    try:
        return _case_page(request, principal, household_id, reply.status, failed=action,
                          problems=placed, form=form)  # fmt: skip
    except LedgerError:
        return _unavailable(request, principal)


__all__ = ["router"]
