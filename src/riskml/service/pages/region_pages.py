"""The regional pages (``/cw/regions``) for county, prefecture and province officials.

Served beside the caseworker pages (``ROUTES``, registered on the ``/cw`` router), with their
sessions, rendering, headers, language switch and access log. A ``region`` key (scoped by
areas: provinces, prefectures, counties; ``riskml.service.access``) logs in like a
caseworker's; an ``admin`` key sees every area. Every request checks the session's key again
and the area against its scope on the server: an area outside the scope, or a key of another
role, is answered 403 with a page saying why, before anything about the area is read.

- ``GET /cw/regions``: the key's area (one area: redirected to it; several: a table of them;
  admin: the provinces).
- ``GET /cw/regions/{code}``: an area's figures in a period (``?period=YYYY-MM``, default the
  latest), a bar chart of its risk types, and a table of the areas one level below (township
  and village included) with sparklines of the expected count over the periods, the risk-type
  mix and key counties marked; each row drills down. Counts only, never a household.
- ``GET /cw/regions/{code}.csv`` (and ``/cw/regions.csv``): that table as CSV, the same cells
  as on the page (UTF-8 with a BOM, for Excel).
- ``GET /cw/regions/{code}/brief``: the printable monthly brief of a county (or a prefecture or
  province): the figures, the top risk types, what changed against the previous period.

The table comes from the ledger's latest decisions and the case store's current cases
(``riskml.regions.view.ledger_table``), computed at most every ``CACHE_S`` seconds per process.
"""

from __future__ import annotations

import csv
import hmac
import io
import re
import threading
import time
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from urllib.parse import urlencode

import pandas as pd
from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from riskml.regions import view as rv
from riskml.regions.reference import RegionReference
from riskml.service import state
from riskml.service.access import Principal
from riskml.service.pages import routes
from riskml.service.pages.formatting import CHINA_TZ
from riskml.service.pages.region_charts import mix_strip, risk_bars, sparkline
from riskml.service.pages.region_words import column_words, level_word, region_words
from riskml.service.pages.session import ENDED, key_mark, session_of
from riskml.service.pages.words import risk_type_name
from riskml.store.ledger import LedgerError

REGION_ROLES = ("region", "admin")
CACHE_S = 30.0
BRIEF_LEVELS = ("province", "prefecture", "county")
_SIGNED = re.compile(r"[+-][0-9]+(?:\.[0-9]+)?")


# --------------------------------------------------------------------------- data
@lru_cache(maxsize=1)
def reference() -> RegionReference:
    return RegionReference.load()


class TableCache:
    """The regional table of the bound service, recomputed when older than ``ttl_s``."""

    def __init__(self, ttl_s: float = CACHE_S):
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._entry: tuple[int, float, pd.DataFrame] | None = None

    def get(self) -> pd.DataFrame:
        service = state.current()
        with self._lock:
            e = self._entry
            if e is not None and e[0] == id(service) and time.monotonic() - e[1] < self.ttl_s:
                return e[2]
            desk = state.desk()
            now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            table = rv.ledger_table(
                service.ledger, desk.store.current_cases(), desk.procedure, reference(), now
            )
            self._entry = (id(service), time.monotonic(), table)
            return table

    def clear(self) -> None:
        with self._lock:
            self._entry = None


TABLES = TableCache()


# --------------------------------------------------------------------------- who asks
def page_principal(request: Request) -> Principal | None:
    """The session's key when still in force with the same hash and the session not ended
    (as ``session.session_principal``, for any role: the caller checks the role)."""
    session = session_of(request)
    if session is None:
        return None
    service = state.current()
    store = service.current_keys()
    entry = store.entry_by_id(session.key_id) if store is not None else None
    if entry is None or not hmac.compare_digest(key_mark(entry.hash), session.key_mark):
        return None
    if ENDED.is_ended(service.ledger, session):
        return None
    return entry.principal()


def _scope_text(principal: Principal, lang: str) -> str:
    t = region_words(lang)
    if principal.role == "admin":
        return t["scope_all"]
    names = [_area_name(rv.url_code(a), lang) for a in sorted(principal.areas)]
    return f"{t['scope_areas']} " + ("、" if lang == "zh" else ", ").join(names)


def _area_name(code: str, lang: str) -> str:
    level = rv.area_level(code)
    zh, en = reference().name(level, code) if level else ("", "")
    name = zh if lang == "zh" else en
    return f"{name} ({code})" if name else f"{level_word(level, lang)} {code}"


# --------------------------------------------------------------------------- answers
def _render(request: Request, template: str, ctx: dict[str, Any], principal: Principal | None,
            status: int = 200) -> Response:  # fmt: skip
    lang = routes.request_lang(request)
    ctx = {"t": region_words(lang), **ctx}
    if principal is not None and principal.role == "region":  # the pages' text for the others
        ctx["scope"] = _scope_text(principal, lang)
    return routes.render(request, template, ctx, status=status, principal=principal)


def _error(request: Request, status: int, title: str, message: str,
           principal: Principal | None) -> Response:  # fmt: skip
    ctx = {"title": title, "message": message, "status": status}
    return _render(request, "region_error.html", ctx, principal, status)


def _redirect(url: str) -> Response:
    response = RedirectResponse(url, status_code=303)
    response.headers.update(routes.HEADERS)
    return response


def _log(principal: Principal, action: str) -> None:
    state.current().ledger.log_access(
        principal.id, principal.role, action, scope=principal.describe_scope()
    )


def _guard(request: Request, code: str | None) -> tuple[Principal | None, Response | None]:
    """(principal, None) when the session's key may read the area (None: the key's own areas),
    else (principal or None, the answer: a login redirect, 404 or 403)."""
    principal = page_principal(request)
    if principal is None:
        return None, _redirect("/cw/login?" + urlencode({"next": request.url.path}))
    t = region_words(routes.request_lang(request))
    if principal.role not in REGION_ROLES:
        return principal, _denied(request, principal, t["forbidden_role"])
    if code is not None and rv.area_level(code) is None:
        return principal, _error(request, 404, t["not_found"], t["not_found_msg"], principal)
    if code is not None and not principal.can_read_area(code):
        return principal, _denied(request, principal, t["forbidden_region"])
    return principal, None


def _denied(request: Request, principal: Principal, message: str) -> Response:
    t = region_words(routes.request_lang(request))
    try:
        _log(principal, "denied_region")
    except LedgerError:
        return _unavailable(request, principal)
    return _error(request, 403, t["forbidden"], message, principal)


def _unavailable(request: Request, principal: Principal | None) -> Response:
    t = region_words(routes.request_lang(request))
    return _error(request, 503, t["unavailable"], t["unavailable_msg"], principal)


# --------------------------------------------------------------------------- cells
def _int(value: Any) -> str:
    return "—" if value is None else f"{int(value)}"


def _signed(value: Any, decimals: int = 1) -> str:
    if value is None:
        return "—"
    v = round(float(value), decimals)
    if v == 0:
        return f"{0:.{decimals}f}"
    return f"{v:+.{decimals}f}"


def _key_text(row: dict[str, Any], lang: str) -> str:
    t = region_words(lang)
    if row["level"] == "county":
        marks = [t["national_key"]] if row.get("key_national") else []
        marks += [t["provincial_key"]] if row.get("key_provincial") else []
        return "、".join(marks) if lang == "zh" else ", ".join(marks)
    if row["level"] in ("province", "prefecture"):
        parts = [t["key_counties"].format(n=row["key_counties"])] if row.get("key_counties") else []
        if row.get("provincial_key_counties"):
            parts.append(t["provincial_key_counties"].format(n=row["provincial_key_counties"]))
        return "；".join(parts) if lang == "zh" else "; ".join(parts)
    return ""


def _name(row: dict[str, Any], lang: str) -> str:
    name = row["name_zh"] if lang == "zh" else row["name_en"]
    return name or f"{level_word(row['level'], lang)} {row['code']}"


def cells(row: dict[str, Any], lang: str) -> list[dict[str, str]]:
    """The child table's cells of one area (``region_words.COLUMNS``): what the page shows
    and the CSV holds."""
    top = rv.top_risk_types(row, 1)
    values = {
        "code": row["code"],
        "name": _name(row, lang),
        "key": _key_text(row, lang),
        "households": _int(row["households"]),
        "flagged": _int(row["flagged"]),
        "flagged_rules": _int(row["flagged_rules"]),
        "flagged_model": _int(row["flagged_model"]),
        "expected": f"{float(row['expected']):.1f}",
        "interval": f"{row['expected_low']}–{row['expected_high']}",
        "expected_change": _signed(row.get("expected_change")),
        "monitored": _int(row["monitored"]),
        "confirmed": _int(row["confirmed"]),
        "overdue": _int(row.get("overdue")),
        "eliminated": _int(row["eliminated"]),
        "top_risk_type": risk_type_name(top[0]["risk_type"], lang) if top else "—",
    }
    labels = column_words(lang)
    return [{"key": k, "label": labels[k], "text": values[k]} for k in labels]


def _period(request: Request, table: pd.DataFrame) -> str | None:
    every = rv.periods(table)
    asked = request.query_params.get("period")
    return asked if asked in every else (every[-1] if every else None)


def _rows(principal: Principal, table: pd.DataFrame, code: str | None, period: str) -> list[dict]:
    """The table's rows: the areas below ``code``; ``code`` None: the key's own areas (admin:
    the provinces)."""
    if code is not None:
        return rv.child_rows(table, code, period)
    if principal.role == "admin":
        return rv.child_rows(table, None, period)
    out = []
    for area in sorted(principal.areas):
        row = rv.area_row(table, rv.url_code(area), period)
        if row is not None:
            parent = rv.child_rows(table, row["parent_code"] or None, period)
            out.extend(r for r in parent if r["code"] == row["code"])  # with its key counts
    return out


def _table_view(rows: list[dict], table: pd.DataFrame, lang: str, period: str) -> dict[str, Any]:
    level = rows[0]["level"] if rows else None
    series = rv.trends(table, [r["code"] for r in rows], level) if level else {}
    out = []
    for r in rows:
        mix = rv.risk_mix(r)
        out.append(
            {
                "code": r["code"],
                "level": r["level"],
                "cells": cells(r, lang),
                "href": f"/cw/regions/{r['code']}?" + urlencode({"period": period}),
                "key_national": bool(r.get("key_national")) and r["level"] == "county",
                "key_provincial": bool(r.get("key_provincial")) and r["level"] == "county",
                "spark": sparkline(series.get(r["code"], [])),
                "strip": mix_strip(mix, lang),
            }
        )
    return {"rows": out, "headers": list(column_words(lang).values())}


def _figures(row: dict[str, Any], lang: str) -> list[tuple[str, str]]:
    t = region_words(lang)
    c = column_words(lang)
    expected = t["expected_text"].format(
        e=f"{float(row['expected']):.1f}", lo=row["expected_low"], hi=row["expected_high"]
    )
    days = row.get("days_to_confirm")
    out = [
        (c["households"], _int(row["households"])),
        (t["scored"], _int(row["scored"])),
        (
            c["flagged"],
            f"{_int(row['flagged'])} ({c['flagged_rules']} {_int(row['flagged_rules'])} · {c['flagged_model']} {_int(row['flagged_model'])})",
        ),
        (c["expected"], expected),
        (c["expected_change"], _signed(row.get("expected_change"))),
        (c["monitored"], _int(row["monitored"])),
        (c["confirmed"], _int(row["confirmed"])),
        (c["eliminated"], _int(row["eliminated"])),
        (t["open_cases"], _int(row.get("open_cases"))),
        (c["overdue"], _int(row.get("overdue"))),
        (t["days_to_confirm"], "—" if days is None else f"{float(days):.1f}"),
    ]
    if row.get("supported_by"):
        supporters = [_area_name(p, lang) for p in str(row["supported_by"]).split()]
        out.append((t["supported_by"], "、".join(supporters)))
    return out


def _crumbs(principal: Principal, code: str, lang: str, period: str) -> list[dict[str, str]]:
    """The areas above ``code``: a link where the key may read them, else the name only."""
    q = urlencode({"period": period})
    return [
        {
            "href": f"/cw/regions/{c}?{q}" if principal.can_read_area(c) else "",
            "name": _area_name(c, lang),
        }
        for _, c in rv.ancestors(code)
    ]


# --------------------------------------------------------------------------- pages
def regions_csv(request: Request) -> Response:
    return _csv(request, None)


def regions_home(request: Request) -> Response:
    principal, answer = _guard(request, None)
    if answer is not None:
        return answer
    assert principal is not None
    if principal.role == "region" and len(principal.areas) == 1:
        (area,) = principal.areas
        return _redirect(f"/cw/regions/{rv.url_code(area)}")
    return _area_page(request, principal, None)


def region_csv(request: Request, code: str) -> Response:
    return _csv(request, code)


def region_brief(request: Request, code: str) -> Response:
    principal, answer = _guard(request, code)
    if answer is not None:
        return answer
    assert principal is not None
    lang = routes.request_lang(request)
    t = region_words(lang)
    if rv.area_level(code) not in BRIEF_LEVELS:
        return _error(request, 404, t["brief"], t["brief_level"], principal)
    try:
        table = TABLES.get()
        _log(principal, "view_region_brief")
    except LedgerError:
        return _unavailable(request, principal)
    period = _period(request, table)
    b = rv.brief(table, code, period) if period else None
    ctx: dict[str, Any] = {
        "code": code,
        "area_name": _area_name(code, lang),
        "period": period,
        "brief": b,
        "printed_at": datetime.now(CHINA_TZ).strftime("%Y-%m-%d %H:%M"),
        "back": f"/cw/regions/{code}?" + urlencode({"period": period or ""}),
    }
    if b is not None:
        c = column_words(lang)
        prev = b["previous"]
        ctx["figures"] = _figures(b["row"], lang)
        ctx["title"] = t["brief_of"].format(name=_area_name(code, lang), period=period)
        ctx["changes"] = [
            {"name": c[k] if k in c else t[k], "now": fmt(b["row"]), "before": fmt(prev) if prev else "—",
             "change": _signed(b["row"].get(f"{k}_change"), 1 if k == "expected" else 0)}
            for k, fmt in (
                ("households", lambda r: _int(r["households"])),
                ("flagged", lambda r: _int(r["flagged"])),
                ("expected", lambda r: f"{float(r['expected']):.1f}"),
                ("monitored", lambda r: _int(r["monitored"])),
                ("confirmed", lambda r: _int(r["confirmed"])),
                ("eliminated", lambda r: _int(r["eliminated"])),
            )
        ]  # fmt: skip
        ctx["top"] = [
            {"name": risk_type_name(m["risk_type"], lang), "flagged": m["flagged"],
             "monitored": m["monitored"]} for m in b["top_risk_types"]
        ]  # fmt: skip
        ctx["type_changes"] = [
            {"name": risk_type_name(m["risk_type"], lang), "change": _signed(m["change"], 0)}
            for m in b["risk_type_changes"]
        ]
        ctx["rising"] = [
            {"name": _name(r, lang), "code": r["code"], "expected": f"{float(r['expected']):.1f}",
             "change": _signed(r["expected_change"])} for r in b["rising"]
        ]  # fmt: skip
        ctx["risk_chart"] = risk_bars(rv.risk_mix(b["row"]), lang, t)
    else:
        ctx["title"] = t["brief"]
    return _render(request, "region_brief.html", ctx, principal)


def region_page(request: Request, code: str) -> Response:
    principal, answer = _guard(request, code)
    if answer is not None:
        return answer
    assert principal is not None
    return _area_page(request, principal, code)


def _area_page(request: Request, principal: Principal, code: str | None) -> Response:
    lang = routes.request_lang(request)
    t = region_words(lang)
    try:
        table = TABLES.get()
        _log(principal, "view_region")
    except LedgerError:
        return _unavailable(request, principal)
    period = _period(request, table)
    level = rv.area_level(code) if code else None
    row = rv.area_row(table, code, period) if code and period else None
    rows = _rows(principal, table, code, period) if period else []
    child = rv.CHILD.get(level or "") if code else None
    if child:
        child_title = t["children_of"].format(level=level_word(child, lang))
    else:
        child_title = t["your_areas"] if code is None else ""
    brief_url = ""
    if level in BRIEF_LEVELS:
        brief_url = f"/cw/regions/{code}/brief?" + urlencode({"period": period or ""})
    ctx: dict[str, Any] = {
        "code": code,
        "level": level,
        "level_name": level_word(level, lang),
        "area_name": _area_name(code, lang) if code else t["your_areas"],
        "period": period,
        "periods": list(reversed(rv.periods(table))),
        "row": row,
        "figures": _figures(row, lang) if row else [],
        "risk_chart": risk_bars(rv.risk_mix(row), lang, t) if row else None,
        "crumbs": _crumbs(principal, code, lang, period or "") if code else [],
        "child_title": child_title,
        "has_children": code is None or child is not None,
        "table": _table_view(rows, table, lang, period or ""),
        "csv_url": (f"/cw/regions/{code}.csv" if code else "/cw/regions.csv")
        + ("?" + urlencode({"period": period}) if period else ""),
        "brief_url": brief_url,
        "key_national": bool(row and row.get("key_national")) and level == "county",
        "key_provincial": bool(row and row.get("key_provincial")) and level == "county",
    }
    return _render(request, "region_area.html", ctx, principal)


def _csv_cell(value: str) -> str:
    # a cell Excel would read as a formula is quoted (as the worklist's CSV); a signed number
    # such as a change (+1.5) is no formula and stays as the page shows it
    if _SIGNED.fullmatch(value):
        return value
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def _csv(request: Request, code: str | None) -> Response:
    principal, answer = _guard(request, code)
    if answer is not None:
        return answer
    assert principal is not None
    lang = routes.request_lang(request)
    try:
        table = TABLES.get()
        _log(principal, "export_region")
    except LedgerError:
        return _unavailable(request, principal)
    period = _period(request, table)
    rows = _rows(principal, table, code, period) if period else []
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(list(column_words(lang).values()))
    for r in rows:
        writer.writerow(_csv_cell(c["text"]) for c in cells(r, lang))
    body = ("\ufeff" + buf.getvalue()).encode("utf-8")
    name = f"regions-{code or 'areas'}-{period or 'none'}.csv"
    headers = {**routes.HEADERS, "Content-Disposition": f'attachment; filename="{name}"'}
    return Response(body, media_type="text/csv; charset=utf-8", headers=headers)


# (path under /cw, page): registered on the /cw router in this order (a CSV before the page
# whose {code} would also match "530102.csv")
ROUTES = (
    ("/regions.csv", regions_csv),
    ("/regions", regions_home),
    ("/regions/{code}.csv", region_csv),
    ("/regions/{code}/brief", region_brief),
    ("/regions/{code}", region_page),
)

__all__ = ["REGION_ROLES", "ROUTES", "TABLES", "cells", "page_principal"]
