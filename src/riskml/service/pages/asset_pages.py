"""The county pages of the assistance assets (``/cw/assets``), Chinese first.

For an ``assets`` key (its counties) and an admin (every county), after the caseworker pages'
login; every request checks the session's key again (``region_pages.page_principal``) and each
asset's county against the key's on the server (403 with a page saying why, before anything of
the asset is shown).

- ``GET /cw/assets``: the register of the key's counties (the current state rebuilt from the
  insert-only events, riskml.assets.register) with filters (``status``, ``category``,
  ``subtype``, ``village``) and the county summary: original value by category and by status,
  the last year's return rate, the idle share, and the benefit per beneficiary household.
- ``GET /cw/assets.csv``: the filtered register as CSV (UTF-8 with a BOM, for Excel).
- ``GET /cw/assets/{asset_id}``: an asset's event history, its returns chart (income / original
  value by year, inline SVG), its distributions to households (counts and shares; household ids
  are pseudonymous and shown to keys scoped to that county only: an admin sees counts), and the
  latest score's reasons and recommended action (``asset_scores``, POST /assets/score).

Each view is written to the ledger's access log.
"""

from __future__ import annotations

import csv
import io
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import select

from riskml.service import state
from riskml.service.access import Principal
from riskml.service.pages import routes
from riskml.service.pages.region_pages import page_principal
from riskml.store.ledger import LedgerError

ASSET_ROLES = ("assets", "admin")
FILTERS = ("status", "category", "subtype", "village")
router = APIRouter(prefix="/cw/assets")

WORDS: dict[str, dict[str, str]] = {
    "zh": {
        "app": "帮扶资产", "register": "资产台账", "summary": "县级汇总", "filter": "筛选", "all": "全部",
        "status": "状态", "category": "类别", "subtype": "类型", "village": "行政村",
        "asset": "资产", "value": "原值（元）", "book": "账面价值（元）", "rate": "上年收益率",
        "count": "数量", "share": "占比", "idle_share": "闲置资产占比", "csv": "导出 CSV",
        "benefit": "户均收益分配（元）", "households": "受益户数", "history": "事件记录",
        "date": "日期", "event": "事件", "actor": "操作人", "returns": "收益率（收益/原值）",
        "distribution": "收益分配", "to_households": "分配到户", "latest": "最新评分",
        "score": "风险评分", "action": "建议措施", "reasons": "原因", "rules": "触发规则",
        "none": "无", "forbidden": "无权查看", "forbidden_role": "此密钥不能查看帮扶资产页面。",
        "forbidden_asset": "此资产不在您的县范围内。", "not_found": "未找到",
        "not_found_msg": "没有此资产。", "unavailable": "暂不可用", "unavailable_msg": "台账暂时无法读取。",
        "lang_switch": "English", "logout": "退出", "by_category": "按类别", "by_status": "按状态",
        "no_score": "尚未评分", "year": "年份", "household": "农户", "amount": "金额（元）",
        "filter_go": "应用",
    },
    "en": {
        "app": "Assistance assets", "register": "Asset register", "summary": "County summary",
        "filter": "Filter", "all": "all", "status": "Status", "category": "Category",
        "subtype": "Subtype", "village": "Village", "asset": "Asset", "value": "Original value (yuan)",
        "book": "Book value (yuan)", "rate": "Last year's return rate", "count": "Count",
        "share": "Share", "idle_share": "Idle share", "csv": "Export CSV",
        "benefit": "Distributed per beneficiary household (yuan)", "households": "Beneficiary households",
        "history": "Events", "date": "Date", "event": "Event", "actor": "By",
        "returns": "Return rate (income / original value)", "distribution": "Distributions",
        "to_households": "To households", "latest": "Latest score", "score": "Risk score",
        "action": "Recommended action", "reasons": "Reasons", "rules": "Rules fired", "none": "none",
        "forbidden": "Not allowed", "forbidden_role": "This key may not read the asset pages.",
        "forbidden_asset": "This asset is outside your counties.", "not_found": "Not found",
        "not_found_msg": "No such asset.", "unavailable": "Unavailable",
        "unavailable_msg": "The register cannot be read now.", "lang_switch": "中文",
        "logout": "Log out", "by_category": "By category", "by_status": "By status",
        "no_score": "not scored yet", "year": "Year", "household": "Household",
        "amount": "Amount (yuan)", "filter_go": "Apply",
    },
}  # fmt: skip


# --------------------------------------------------------------------------- pure views
def _rate(state_: dict[str, Any], year: int | None = None) -> float | None:
    incomes = state_.get("incomes") or {}
    value = state_.get("original_value") or 0
    if not incomes or not value:
        return None
    y = str(year) if year is not None else max(incomes)
    return float(incomes[y]) / float(value) if y in incomes else None


def register_rows(states: list[dict[str, Any]], filters: dict[str, str]) -> list[dict[str, Any]]:
    """The register's rows (one per asset, by id) passing the filters (``village``: a code)."""
    out = []
    for s in sorted(states, key=lambda s: s["asset_id"]):
        if any(
            filters.get(k) and s.get(k) != filters[k] for k in ("status", "category", "subtype")
        ):
            continue
        if filters.get("village") and s.get("village_code") != filters["village"]:
            continue
        rate = _rate(s)
        out.append({
            "asset_id": s["asset_id"], "category": s.get("category"), "subtype": s.get("subtype"),
            "status": s.get("status"), "village_code": s.get("village_code"),
            "county_code": s.get("county_code"), "original_value": s.get("original_value"),
            "book_value": s.get("book_value"), "return_rate": None if rate is None else round(rate, 4),
        })  # fmt: skip
    return out


def county_summary(states: list[dict[str, Any]]) -> dict[str, Any]:
    """Value by category and by status, the return rate of the latest year with incomes,
    the idle share, and the amount distributed per beneficiary household."""
    total = sum(float(s.get("original_value") or 0) for s in states) or 0.0

    def by(key: str) -> list[dict[str, Any]]:
        groups: dict[str, list[float]] = {}
        for s in states:
            groups.setdefault(str(s.get(key)), []).append(float(s.get("original_value") or 0))
        return [{"name": k, "count": len(v), "value": sum(v),
                 "share": sum(v) / total if total else 0.0} for k, v in sorted(groups.items())]  # fmt: skip

    years = [int(y) for s in states for y in (s.get("incomes") or {})]
    year = max(years) if years else None
    earning = [s for s in states if year is not None and str(year) in (s.get("incomes") or {})]
    income = sum(float(s["incomes"][str(year)]) for s in earning)
    value = sum(float(s.get("original_value") or 0) for s in earning)
    households: set[str] = set()
    paid = 0.0
    for s in states:
        households |= {b["household_id"] for b in s.get("beneficiaries") or []}
        for d in s.get("distributions") or []:
            paid += sum(float(i["amount"]) for i in d["items"])
    idle = sum(1 for s in states if s.get("status") == "idle")
    return {
        "assets": len(states), "value": total, "by_category": by("category"), "by_status": by("status"),
        "year": year, "return_rate": income / value if value else None,
        "idle_share": idle / len(states) if states else None, "households": len(households),
        "benefit_per_household": paid / len(households) if households else None,
    }  # fmt: skip


def returns_chart(state_: dict[str, Any], width: int = 320, height: int = 120) -> dict[str, Any] | None:  # fmt: skip
    """Bars of the return rate by year (None without an income); the floor line at 3%."""
    value = float(state_.get("original_value") or 0)
    incomes = {int(y): float(v) for y, v in (state_.get("incomes") or {}).items()}
    if not incomes or value <= 0:
        return None
    years = sorted(incomes)
    rates = [incomes[y] / value for y in years]
    top = max(max(rates), 0.06)
    pad, base = 4, height - 16
    step = (width - 2 * pad) / len(years)
    bars = []
    for i, (y, r) in enumerate(zip(years, rates, strict=True)):
        h = max(0.0, r) / top * (base - pad)
        bars.append({"x": f"{pad + i * step + 2:.1f}", "y": f"{base - h:.1f}", "w": f"{max(step - 4, 1):.1f}",
                     "h": f"{h:.1f}", "year": y, "label": f"{r:.1%}", "tx": f"{pad + i * step + step / 2:.1f}"})  # fmt: skip
    floor_y = base - 0.03 / top * (base - pad)
    return {
        "width": width,
        "height": height,
        "bars": bars,
        "floor_y": f"{floor_y:.1f}",
        "base": base,
    }


def distribution_view(state_: dict[str, Any], show_households: bool) -> list[dict[str, Any]]:
    """Each distribution: year, date, total, the uses' shares, and the households' count and shares
    (their pseudonymous ids only when ``show_households``)."""
    out = []
    for d in state_.get("distributions") or []:
        total = sum(float(i["amount"]) for i in d["items"]) or 0.0
        to_hh = [i for i in d["items"] if i.get("household_id")]
        hh_total = sum(float(i["amount"]) for i in to_hh)
        out.append({
            "year": d["year"], "date": d.get("date"), "total": total,
            "uses": [{"use": i["use"], "amount": float(i["amount"]),
                      "share": float(i["amount"]) / total if total else 0.0} for i in d["items"]],
            "households": len({i["household_id"] for i in to_hh}),
            "household_share": hh_total / total if total else 0.0,
            "to": [{"household_id": i["household_id"], "amount": float(i["amount"])} for i in to_hh]
            if show_households else [],
        })  # fmt: skip
    return out


def csv_text(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    cols = ["asset_id", "county_code", "village_code", "category", "subtype", "status",
            "original_value", "book_value", "return_rate"]  # fmt: skip
    w = csv.DictWriter(buf, cols, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return "\ufeff" + buf.getvalue()


# --------------------------------------------------------------------------- requests
def _counties(principal: Principal) -> list[str] | None:
    return None if principal.role == "admin" else sorted(principal.counties)


def names(lang: str) -> dict[str, dict[str, str]]:
    """The category, subtype and status codes as the pages show them (Chinese, or the code)."""
    from riskml.assets.contract import CATEGORIES, STATUSES, SUBTYPES

    out = {"category": CATEGORIES, "subtype": SUBTYPES, "status": STATUSES, "village": {}}
    if lang == "zh":
        return {k: dict(v) for k, v in out.items()}
    return {k: {c: c.replace("_", " ") for c in v} for k, v in out.items()}


def _render(request: Request, template: str, ctx: dict[str, Any], principal: Principal | None,
            status: int = 200) -> Response:  # fmt: skip
    lang = routes.request_lang(request)
    ctx = {"w": WORDS[lang], "names": names(lang), **ctx}
    return routes.render(request, template, ctx, status=status, principal=principal)


def _error(request: Request, principal: Principal | None, status: int, title: str, msg: str) -> Response:  # fmt: skip
    w = WORDS[routes.request_lang(request)]
    return _render(request, "asset_error.html", {"title": w[title], "message": w[msg], "status": status},
                   principal, status)  # fmt: skip


def _guard(request: Request) -> tuple[Principal | None, Response | None]:
    principal = page_principal(request)
    if principal is None:
        response = RedirectResponse(
            "/cw/login?" + urlencode({"next": request.url.path}), status_code=303
        )
        response.headers.update(routes.HEADERS)
        return None, response
    if principal.role not in ASSET_ROLES:
        return principal, _error(request, principal, 403, "forbidden", "forbidden_role")
    return principal, None


def _store() -> Any:
    from riskml.assets.register import AssetStore

    return AssetStore(state.current().ledger)


def _states(principal: Principal) -> list[dict[str, Any]]:
    counties = _counties(principal)
    states = _store().states()
    return [s for s in states.values() if counties is None or s.get("county_code") in counties]


def _filters(request: Request) -> dict[str, str]:
    return {k: str(request.query_params.get(k, ""))[:64] for k in FILTERS if request.query_params.get(k)}  # fmt: skip


def _log(principal: Principal, action: str) -> None:
    state.current().ledger.log_access(principal.id, principal.role, action, scope=principal.describe_scope())  # fmt: skip


@router.get("")
def asset_register(request: Request) -> Response:
    principal, denied = _guard(request)
    if denied:
        return denied
    try:
        states = _states(principal)
        _log(principal, "asset_register")
    except LedgerError:
        return _error(request, principal, 503, "unavailable", "unavailable_msg")
    filters = _filters(request)
    choices = {k: sorted({str(s.get(k)) for s in states if s.get(k)}) for k in ("status", "category", "subtype")}  # fmt: skip
    choices["village"] = sorted({s["village_code"] for s in states if s.get("village_code")})
    ctx = {"rows": register_rows(states, filters), "summary": county_summary(states),
           "filters": filters, "choices": choices,
           "csv_url": "/cw/assets.csv" + ("?" + urlencode(filters) if filters else "")}  # fmt: skip
    return _render(request, "asset_register.html", ctx, principal)


@router.get(".csv")
def asset_register_csv(request: Request) -> Response:
    principal, denied = _guard(request)
    if denied:
        return denied
    try:
        rows = register_rows(_states(principal), _filters(request))
        _log(principal, "asset_export")
    except LedgerError:
        return _error(request, principal, 503, "unavailable", "unavailable_msg")
    headers = {**routes.HEADERS, "Content-Disposition": 'attachment; filename="assets.csv"'}
    return Response(csv_text(rows), media_type="text/csv; charset=utf-8", headers=headers)


def latest_score(asset_id: str) -> dict[str, Any] | None:
    """The latest stored answer of POST /assets/score for the asset, or None."""
    from riskml.store.tables import asset_scores

    s = asset_scores.c
    stmt = select(s.result).where(s.asset_id == asset_id).order_by(s.created_at.desc(), s.year.desc()).limit(1)  # fmt: skip
    with state.current().ledger.engine.connect() as conn:
        row = conn.execute(stmt).first()
    if row is None:
        return None
    result = row[0]
    return __import__("json").loads(result) if isinstance(result, str) else result


@router.get("/{asset_id}")
def asset_page(asset_id: str, request: Request) -> Response:
    principal, denied = _guard(request)
    if denied:
        return denied
    try:
        store = _store()
        found = store.state(asset_id[:64])
        if found is None:
            return _error(request, principal, 404, "not_found", "not_found_msg")
        if not principal.can_read_assets(str(found.get("county_code"))):
            _log(principal, "denied_asset")
            return _error(request, principal, 403, "forbidden", "forbidden_asset")
        events = store.events(asset_id)
        score = latest_score(asset_id)
        _log(principal, "asset_page")
    except LedgerError:
        return _error(request, principal, 503, "unavailable", "unavailable_msg")
    show = principal.role == "assets"  # a key scoped to the asset's county (checked above)
    ctx = {"asset": found, "events": events, "chart": returns_chart(found), "score": score,
           "distributions": distribution_view(found, show), "rate": _rate(found)}  # fmt: skip
    return _render(request, "asset_page.html", ctx, principal)


__all__ = ["ASSET_ROLES", "county_summary", "csv_text", "distribution_view", "register_rows",
           "returns_chart", "router"]  # fmt: skip
