"""Caseworker pages: login, the village worklist and the household explanation, served under ``/cw``.

Village cadres, work-team members and township staff use these pages to decide
whom to visit this week and what help to bring. Chinese is the default
(``?lang=en`` or the language cookie switches to English); pages are plain
HTML with one stylesheet, readable on a phone, and charts are inline SVG drawn
here on the server (no JavaScript libraries, nothing from a CDN).

Security and privacy:

- Login takes a caseworker (or admin) API key once; the session is a signed,
  HttpOnly, SameSite=Strict cookie holding the key's *id* and when it was
  issued, never the key. Every request looks the id up in the service's
  KeyStore again and checks scope on the server (``Principal.can_read`` and
  ``scope_filter``), so a key removed from the store ends its sessions.
- URLs carry nothing about a household but its pseudonymous id; every answer
  is ``Cache-Control: no-store``; every worklist view, export and household
  view is written to the ledger's access log (who, what, when, scope).

The pages show what the ledger stored with each decision (score, level, fired
rules with their messages, reason sentences, measures, contributions), so a
page shows the decision as it was made, whatever model is serving now.
Templates live in ``serving/pages/templates``; they only present what the
view functions here prepare.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import hmac
import io
import logging
import math
import os
import re
import secrets
import time
from datetime import UTC, datetime, timedelta, timezone
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from riskml import config
from riskml.model.reasons import FEATURE_LABELS
from riskml.policy.risk_types import RISK_TYPE_CODES, RISK_TYPES
from riskml.service.access import KeyStore, Principal
from riskml.store.ledger import LedgerError

if TYPE_CHECKING:
    from riskml.service.core import ScoringService

log = logging.getLogger("riskml.pages")

PAGES_DIR = config.PROJECT_ROOT / "serving" / "pages"
TEMPLATES_DIR = PAGES_DIR / "templates"
STATIC_DIR = PAGES_DIR / "static"
STATIC_FILES = {"style.css": "text/css; charset=utf-8", "print.js": "text/javascript"}

SESSION_COOKIE = "riskml_cw"
LANG_COOKIE = "riskml_lang"
SESSION_TTL_S = 12 * 3600
LANGS = ("zh", "en")
LEVELS = ("red", "yellow", "green")
LOGIN_ROLES = ("caseworker", "admin")
MAX_ROWS = 500  # rows shown on the worklist page (the CSV has all)
CHINA_TZ = timezone(timedelta(hours=8))  # no daylight saving

# A per-process secret unless one is configured (sessions then end when the service restarts).
_SECRET = os.environ.get("RISKML_SESSION_SECRET", "").encode("utf-8") or secrets.token_bytes(32)

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

# --------------------------------------------------------------------------- words
# UI strings: key -> (Chinese, English). Reason sentences come from the ledger
# (written by riskml.reasons), risk types and measures from riskml.risk_types.
T: dict[str, tuple[str, str]] = {
    "app": ("防返贫监测 · 走访工作台", "Poverty-risk monitoring · visit worklist"),
    "app_short": ("走访工作台", "Visit worklist"),
    "login": ("登录", "Log in"),
    "key": ("工作密钥", "Caseworker key"),
    "login_help": (
        "请输入分配给您的个案工作密钥。密钥只用于本次登录，浏览器中只保存登录凭证，不保存密钥。",
        "Enter the caseworker key you were given. The key is used only to log in; "
        "the browser keeps a session, never the key.",
    ),
    "login_wrong": ("密钥无效，请检查后重试。", "This key is not valid. Check it and try again."),
    "login_scorer": (
        "评分系统密钥不能登录走访工作台，请使用个案工作人员密钥。",
        "A scoring-system key cannot open the caseworker pages. Use a caseworker key.",
    ),
    "logout": ("退出", "Log out"),
    "logged_in_as": ("当前用户", "Signed in as"),
    "scope": ("权限范围", "Scope"),
    "scope_all": ("全部地区（管理员）", "all areas (admin)"),
    "county": ("县", "County"),
    "village": ("村", "Village"),
    "worklist": ("走访名单", "Worklist"),
    "worklist_intro": (
        "按风险等级和评分排序：红色户每周走访，黄色户每月走访，绿色户每季度走访。",
        "Sorted by level and score: visit red households weekly, yellow monthly, green quarterly.",
    ),
    "all_villages": ("全部村", "All villages"),
    "level": ("风险等级", "Level"),
    "all_levels": ("全部等级", "All levels"),
    "risk_type": ("风险类型", "Risk type"),
    "all_risk_types": ("全部类型", "All types"),
    "show": ("显示", "Show"),
    "show_flagged": ("仅预警户", "Flagged only"),
    "show_all": ("全部农户", "All households"),
    "apply": ("筛选", "Filter"),
    "reset": ("清除筛选", "Clear"),
    "export": ("导出 CSV", "Export CSV"),
    "household": ("农户", "Household"),
    "household_id": ("户编号", "Household id"),
    "score": ("风险评分", "Risk score"),
    "flagged_by": ("预警来源", "Flagged by"),
    "by_model": ("模型评分", "model score"),
    "by_rules": ("规则", "rule"),
    "last_decision": ("最近研判", "Last decision"),
    "previous_decision": ("上次研判", "Previous decision"),
    "none_before": ("无", "none"),
    "rhythm": ("走访频次", "Follow-up"),
    "open": ("查看", "Open"),
    "summary": (
        "共 {n} 户：红色 {red} 户，黄色 {yellow} 户，绿色 {green} 户",
        "{n} households: {red} red, {yellow} yellow, {green} green",
    ),
    "no_rows": ("没有符合条件的农户。", "No household matches."),
    "truncated": (
        "仅显示前 {n} 户。请用筛选缩小范围，或导出 CSV 查看全部。",
        "Showing the first {n}. Filter, or export the CSV for all of them.",
    ),
    "period": ("监测期", "Period"),
    "decided_at": ("研判时间", "Decided at"),
    "back": ("返回名单", "Back to worklist"),
    "facts": ("基本情况", "Key facts"),
    "score_over_time": ("风险评分变化", "Risk score over time"),
    "score_chart_note": (
        "每个点是一个监测期的研判结果，颜色为当时的风险等级；背景色为当前模型的等级区间。",
        "Each point is one period's decision, coloured by its level; "
        "the background shows the current model's level bands.",
    ),
    "rules_fired": ("触发的预警规则", "Warning rules that fired"),
    "rule": ("规则", "Rule"),
    "measured": ("实测值", "Measured"),
    "threshold": ("预警阈值", "Threshold"),
    "no_rules": ("本期未触发预警规则。", "No warning rule fired this period."),
    "reasons": ("主要原因", "Main reasons"),
    "no_reasons": (
        "本次研判没有需要说明的原因（未预警）。",
        "This decision has no reasons to show (not flagged).",
    ),
    "contributions": ("哪些因素推高或降低了风险", "What pushed the risk up or down"),
    "contrib_note": (
        "从全体农户的平均风险出发：红色条表示推高风险的因素，绿色条表示降低风险的因素，"
        "逐项相加得到本户的风险评分。",
        "Starting from the average household's risk, red bars push this household's risk up "
        "and green bars pull it down; together they give this household's score.",
    ),
    "base": ("平均风险", "Average risk"),
    "final": ("本户风险", "This household"),
    "others": ("其他 {n} 项", "{n} other factors"),
    "up": ("推高风险", "pushes risk up"),
    "down": ("降低风险", "pulls risk down"),
    "up_most": ("推高风险最多的因素", "Pushed the risk up most"),
    "down_most": ("降低风险最多的因素", "Pulled the risk down most"),
    "no_contrib": (
        "本次研判没有保存各因素的影响（未预警的农户通常不计算）。",
        "No factor breakdown was stored with this decision (usually not computed for "
        "households that were not flagged).",
    ),
    "measures": ("建议帮扶措施", "Recommended support"),
    "no_measures": ("暂无（未预警）。", "None (not flagged)."),
    "monitoring_type": ("监测对象类型", "Monitored household type"),
    "not_monitored": ("未纳入监测", "not a monitored household"),
    "model_version": ("模型版本", "Model version"),
    "rules_version": ("规则版本", "Rules version"),
    "decisions": ("研判记录", "Decisions"),
    "decision_id": ("研判编号", "Decision id"),
    "print_sheet": ("打印走访单", "Print visit sheet"),
    "print": ("打印", "Print"),
    "sheet": ("入户走访单", "Home-visit sheet"),
    "printed_at": ("打印时间", "Printed"),
    "visit_record": ("走访记录（手填）", "Visit record (fill in by hand)"),
    "visit_date": ("走访日期", "Visit date"),
    "visitor": ("走访人", "Visited by"),
    "findings": ("核实情况", "What was found"),
    "actions": ("拟采取帮扶措施", "Support to arrange"),
    "signature": ("户主签字", "Head of household's signature"),
    "forbidden": ("无权查看", "Not allowed"),
    "forbidden_household": (
        "此户不在您的密钥权限范围内，或没有研判记录。",
        "This household is outside your key's scope, or has no decision.",
    ),
    "not_found": ("没有这个页面", "Page not found"),
    "unavailable": ("暂时无法使用", "Unavailable"),
    "unavailable_msg": (
        "访问记录无法写入，为保护农户信息，页面暂不显示。请稍后再试或联系管理员。",
        "The access log could not be written, so the page is withheld to protect households' "
        "data. Try again later or contact the administrator.",
    ),
    "yes": ("是", "yes"),
    "no": ("否", "no"),
    "unknown": ("未知", "unknown"),
    "persons": ("人", ""),
    "yuan": ("元", "yuan"),
    "lang_switch": ("English", "中文"),
    "csv_file": ("走访名单", "worklist"),
}
LEVEL_NAMES = {"red": ("红色", "red"), "yellow": ("黄色", "yellow"), "green": ("绿色", "green")}
RHYTHM = {
    "red": ("每周走访", "weekly visit"),
    "yellow": ("每月走访", "monthly visit"),
    "green": ("每季度走访", "quarterly visit"),
}
# short names of the policy rules (data/policy/rules.yaml); an unknown id shows as itself
RULE_LABELS: dict[str, tuple[str, str]] = {
    "low_income": ("收入低于监测线", "income below the line"),
    "dibao_edge": ("低保边缘", "dibao edge"),
    "income_drop": ("收入骤降", "sharp income fall"),
    "medical_amount": ("医疗支出大", "large medical costs"),
    "medical_share": ("医疗支出占比高", "medical costs vs income"),
    "schooling_share": ("教育支出占比高", "schooling costs vs income"),
    "disaster_loss": ("灾害意外损失", "disaster or accident losses"),
    "housing_unsafe": ("住房不安全", "unsafe housing"),
    "water_unsafe": ("饮水不安全", "unsafe water"),
    "dropout": ("义务教育辍学", "school dropout"),
    "medical_uninsured": ("未全员参保", "not all insured"),
    "lack_of_labour": ("缺劳动力", "lack of labour"),
}
# facts of the record shown on the household page and the visit sheet: field, zh, en, kind
FACTS: tuple[tuple[str, str, str, str], ...] = (
    ("household_size", "家庭人口", "Household members", "persons"),
    ("labor_count", "劳动力", "Able to work", "persons"),
    ("elderly_count", "65 岁及以上老人", "Aged 65+", "persons"),
    ("children_count", "16 岁以下儿童", "Children under 16", "persons"),
    ("students_compulsory", "义务教育学生", "Pupils (compulsory)", "persons"),
    ("students_noncompulsory", "高中及以上在读", "Upper-school students", "persons"),
    ("disabled_count", "持证残疾人", "Members with a disability", "persons"),
    ("chronic_ill_count", "重病或慢性病", "Serious or chronic illness", "persons"),
    ("head_age", "户主年龄", "Head's age", "number"),
    ("formerly_poor", "原建档立卡户", "Formerly registered poor", "flag"),
    ("dibao", "享受低保", "Receives dibao", "flag"),
    ("tekun", "特困供养", "Tekun support", "flag"),
    ("net_income", "家庭纯收入", "Net income", "yuan"),
    ("pc_net_income", "人均纯收入", "Per-capita net income", "yuan"),
    ("monitoring_line", "当地监测线", "Local monitoring line", "yuan"),
    ("medical_expense", "医疗自付支出", "Out-of-pocket medical", "yuan"),
    ("education_expense", "教育支出", "Schooling costs", "yuan"),
    ("disaster_loss", "灾害意外损失", "Disaster or accident losses", "yuan"),
    ("debt", "家庭负债", "Debt", "yuan"),
    ("medical_insured", "全员参加医保", "Everyone medically insured", "flag"),
    ("housing_safe", "住房安全", "Safe housing", "flag"),
    ("water_safe", "饮水安全", "Safe drinking water", "flag"),
    ("dropout", "有辍学儿童", "Child out of school", "flag"),
)
_INCOME_FIELDS = ("income_wage", "income_business", "income_property", "income_transfer")


# the monitored household types (三类户) as stored in decisions (riskml.decisions.MONITORING_TYPES)
MONITORING_TYPE_EN = {
    "脱贫不稳定户": "unstable alleviated household",
    "边缘易致贫户": "marginal household at risk",
    "突发严重困难户": "sudden severe hardship",
}


def monitoring_type_name(value: str | None, lang: str) -> str | None:
    if not value or lang == "zh" or value not in MONITORING_TYPE_EN:
        return value
    return f"{MONITORING_TYPE_EN[value]} ({value})"


def words(lang: str) -> dict[str, str]:
    i = LANGS.index(lang)
    return {k: v[i] for k, v in T.items()}


def _pick(pair: tuple[str, str], lang: str) -> str:
    return pair[LANGS.index(lang)]


def level_name(level: str | None, lang: str) -> str:
    return _pick(LEVEL_NAMES[level], lang) if level in LEVEL_NAMES else "—"


def rhythm(level: str | None, lang: str) -> str:
    return _pick(RHYTHM[level], lang) if level in RHYTHM else "—"


def risk_type_name(code: str, lang: str) -> str:
    rt = RISK_TYPES.get(code)
    return (rt.zh if lang == "zh" else rt.en) if rt else code


def rule_label(rule_id: str, lang: str) -> str:
    return _pick(RULE_LABELS[rule_id], lang) if rule_id in RULE_LABELS else rule_id


def feature_label(feature: str, lang: str) -> str:
    return _pick(FEATURE_LABELS[feature], lang) if feature in FEATURE_LABELS else feature


@lru_cache(maxsize=1)
def county_names() -> dict[str, tuple[str, str]]:
    """County code -> (Chinese name, English name) from the reference table (empty if missing)."""
    try:
        with open(config.REFERENCE_COUNTIES, encoding="utf-8", newline="") as fh:
            return {r["county_code"]: (r["name_zh"], r["name_en"]) for r in csv.DictReader(fh)}
    except (OSError, KeyError):
        return {}


def county_name(code: str | None, lang: str) -> str:
    if not code:
        return "—"
    names = county_names().get(code)
    return f"{_pick(names, lang)} {code}" if names else code


# --------------------------------------------------------------------------- formatting
def china_time(iso: str | None, with_time: bool = True) -> str:
    """A stored UTC timestamp as China time (``2026-11-03 14:05``), or "—"."""
    if not iso:
        return "—"
    try:
        dt = datetime.fromisoformat(str(iso))
    except ValueError:
        return str(iso)[:16]
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    local = dt.astimezone(CHINA_TZ)
    return local.strftime("%Y-%m-%d %H:%M" if with_time else "%Y-%m-%d")


def pct(p: float | None, decimals: int = 0) -> str:
    if p is None or not math.isfinite(p):
        return "—"
    return f"{p * 100:.{decimals}f}%"


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def fact_value(value: Any, kind: str, lang: str) -> str:
    w = words(lang)
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return w["unknown"]
    if kind == "flag":
        return w["yes"] if value else w["no"]
    if kind == "yuan":
        return f"{value:,.0f} {w['yuan']}"
    if kind == "persons":
        return f"{value:.0f} {w['persons']}".strip()
    return f"{value:.0f}" if isinstance(value, (int, float)) else str(value)


def rule_value(value: Any, rule_id: str, lang: str) -> str:
    """A rule's measured value or threshold as caseworkers read it (percent, yuan, yes/no)."""
    if value is None:
        return "—"
    kind = _rule_kind(rule_id)
    if kind == "flag":
        return words(lang)["yes" if value >= 0.5 else "no"]
    if kind == "share":
        return f"{value * 100:.0f}%"
    if kind == "money":
        return f"{value:,.0f} {words(lang)['yuan']}"
    if float(value).is_integer():
        return f"{value:,.0f}"
    return f"{value:,.2f}"


def _rule_kind(rule_id: str) -> str | None:
    from riskml.policy.rules import VALUES

    try:
        rule = _service().ruleset.get(rule_id)
    except (KeyError, RuntimeError):
        return None
    spec = VALUES.get(rule.condition.value)
    return spec.kind if spec else None


# --------------------------------------------------------------------------- session
def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(payload: str) -> str:
    return _b64(hmac.new(_SECRET, payload.encode("utf-8"), hashlib.sha256).digest())


def sign_session(key_id: str, issued: int | None = None) -> str:
    """The cookie value for a session of this key id: ``<id b64>.<issued>.<hmac>`` (no key inside)."""
    payload = f"{_b64(key_id.encode('utf-8'))}.{int(time.time() if issued is None else issued)}"
    return f"{payload}.{_mac(payload)}"


def read_session(value: str | None, now: float | None = None) -> str | None:
    """The key id of a valid, unexpired session cookie, or None."""
    if not value or len(value) > 512:
        return None
    parts = value.split(".")
    if len(parts) != 3:
        return None
    id_part, issued, mac = parts
    if not hmac.compare_digest(mac, _mac(f"{id_part}.{issued}")):
        return None
    try:
        age = (time.time() if now is None else now) - int(issued)
        key_id = _unb64(id_part).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None
    if not 0 <= age <= SESSION_TTL_S:
        return None
    return key_id


def _service() -> ScoringService:
    from riskml.service import api as web  # imported here: riskml.web includes this router

    return web.current()


def _keys() -> KeyStore:
    """The service's key store, re-read by the service when its keys file changed."""
    return _service().current_keys()


def session_principal(request: Request) -> Principal | None:
    """The caller of this request: its session's key, looked up again in the KeyStore."""
    key_id = read_session(request.cookies.get(SESSION_COOKIE))
    if key_id is None:
        return None
    principal = _keys().principal_by_id(key_id)
    if principal is None or principal.role not in LOGIN_ROLES:
        return None
    return principal


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


def scope_text(principal: Principal, lang: str) -> str:
    w = words(lang)
    if principal.role == "admin":
        return w["scope_all"]
    parts = [f"{w['county']} {county_name(c, lang)}" for c in sorted(principal.counties)]
    parts += [f"{w['village']} {v}" for v in sorted(principal.villages)]
    return "；".join(parts) if lang == "zh" else "; ".join(parts)


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
    _service().ledger.log_access(
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


@router.post("/login")
def login(request: Request, key: str = Form(""), next: str = Form("")) -> Response:
    token = key.strip()
    if token.lower().startswith("bearer "):
        token = token[7:].strip()
    principal = _service().authenticate(f"Bearer {token}") if token else None
    if principal is None:
        ctx = {"error": words(request_lang(request))["login_wrong"], "next": _safe_next(next)}
        return render(request, "login.html", ctx, status=401)
    if principal.role not in LOGIN_ROLES:
        ctx = {"error": words(request_lang(request))["login_scorer"], "next": _safe_next(next)}
        return render(request, "login.html", ctx, status=403)
    try:
        _log(principal, "login")
    except LedgerError:
        return _unavailable(request, None)
    response = _redirect(request, _safe_next(next))
    response.set_cookie(
        SESSION_COOKIE, sign_session(principal.id), max_age=SESSION_TTL_S, path="/cw",
        httponly=True, samesite="strict", secure=_secure(request),
    )  # fmt: skip
    return response


@router.post("/logout")
def logout(request: Request) -> Response:
    response = _redirect(request, "/cw/login")
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
        "village": village if village and re.fullmatch(r"\d{12}", village) else None,
        "level": level if level in LEVELS else None,
        "risk_type": risk_type if risk_type in RISK_TYPE_CODES else None,
        "show": "all" if q.get("show") == "all" else "flagged",
    }


def worklist_rows(principal: Principal, filters: dict[str, str | None]) -> tuple[list, list[str]]:
    """In-scope latest decisions (filtered, sorted red → yellow → green, then by score) and the villages."""
    counties, villages = principal.scope_filter()
    rows = _service().ledger.latest_by_household(
        counties, villages, flagged_only=filters["show"] != "all"
    )
    rows = [r for r in rows if r.get("status") == "completed" and r.get("risk_level") in LEVELS]
    all_villages = sorted({r["village_code"] for r in rows})
    out = []
    for r in rows:
        result = r.get("result") or {}
        if filters["village"] and r["village_code"] != filters["village"]:
            continue
        if filters["level"] and r["risk_level"] != filters["level"]:
            continue
        if filters["risk_type"] and filters["risk_type"] not in (result.get("risk_types") or []):
            continue
        out.append(r)
    out.sort(key=lambda r: (LEVELS.index(r["risk_level"]), -(r["score"] or 0.0), r["household_id"]))
    return out, all_villages


def _row_view(r: dict[str, Any], lang: str) -> dict[str, Any]:
    result = r.get("result") or {}
    by = [b for b in (r.get("flagged_by") or "").replace("+", ",").split(",") if b]
    sources = []
    if "rules" in by:
        labels = [rule_label(x["id"], lang) for x in result.get("rules") or []]
        sources.append(f"{words(lang)['by_rules']}：{'、'.join(labels)}" if lang == "zh"
                       else f"{words(lang)['by_rules']}: {', '.join(labels)}")  # fmt: skip
    if "model" in by:
        sources.append(words(lang)["by_model"])
    return {
        "household_id": r["household_id"],
        "village_code": r["village_code"],
        "county_code": r["county_code"],
        "county": county_name(r["county_code"], lang),
        "level": r["risk_level"],
        "level_name": level_name(r["risk_level"], lang),
        "score": r["score"],
        "score_text": pct(r["score"]),
        "risk_types": [risk_type_name(c, lang) for c in result.get("risk_types") or []],
        "sources": sources,
        "period": r["period"],
        "decided_at": china_time(r["created_at"], with_time=False),
        "prev_period": r.get("previous_period"),
        "prev_decided_at": china_time(r.get("previous_created_at"), with_time=False),
        "prev_level": r.get("previous_risk_level"),
        "prev_level_name": level_name(r.get("previous_risk_level"), lang),
        "rhythm": rhythm(r["risk_level"], lang),
        "monitoring_type": monitoring_type_name(result.get("monitoring_type"), lang),
        "decision_id": r["decision_id"],
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
            "rows": [_row_view(r, lang) for r in rows[:MAX_ROWS]],
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
        v = _row_view(r, lang)
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


# --------------------------------------------------------------------------- charts
def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x >= 0 else math.exp(x) / (1.0 + math.exp(x))


def score_chart(
    points: list[dict[str, Any]], thresholds: tuple[float, float] | None
) -> dict[str, Any]:
    """Geometry of the score-over-time line chart (viewBox 360 × 200): one point per period."""
    width, height = 360, 200
    left, right, top, bottom = 40, 14, 14, 34
    pw, ph = width - left - right, height - top - bottom
    n = len(points)

    def x(i: int) -> float:
        return left + (pw * i / (n - 1) if n > 1 else pw / 2)

    def y(s: float) -> float:
        return top + ph * (1 - min(max(s, 0.0), 1.0))

    bands = []
    if thresholds:
        flag, red = thresholds
        for lo, hi, level in ((red, 1.0, "red"), (flag, red, "yellow"), (0.0, flag, "green")):
            if hi > lo:
                bands.append({"x": left, "y": y(hi), "w": pw, "h": y(lo) - y(hi), "level": level})
    grid = [{"y": y(g), "label": pct(g)} for g in (0.0, 0.25, 0.5, 0.75, 1.0)]
    step = max(1, math.ceil(n / 6))  # at most about 6 period labels
    dots = []
    for i, p in enumerate(points):
        dots.append(
            {
                "cx": round(x(i), 1),
                "cy": round(y(p["score"]), 1),
                "level": p["level"],
                "label": pct(p["score"]),
                "period": p["period"],
                "show_period": i % step == 0 or i == n - 1,
                "anchor": "end" if n > 1 and i == n - 1 else "middle",
                "label_y": round(y(p["score"]) - 8 if p["score"] < 0.85 else y(p["score"]) + 16, 1),
            }
        )
    return {
        "width": width,
        "height": height,
        "left": left,
        "right": width - right,
        "bottom": top + ph,
        "bands": bands,
        "grid": grid,
        "line": " ".join(f"{d['cx']},{d['cy']}" for d in dots),
        "dots": dots,
    }


def waterfall(contributions: dict[str, Any] | None, lang: str, k: int = 8) -> dict[str, Any] | None:
    """Geometry of the contribution waterfall (viewBox 360 wide), from the base rate to this household.

    Bars are in calibrated log-odds (they add up exactly); the axis and the
    labels at both ends are probabilities. The ``k`` largest contributions get
    a bar each, the rest one bar together.
    """
    if not contributions or not contributions.get("values"):
        return None
    base = float(contributions["base"])
    values = {f: float(v) for f, v in contributions["values"].items() if v is not None}
    ranked = sorted(values.items(), key=lambda kv: (-abs(kv[1]), kv[0]))
    top = [(f, v) for f, v in ranked[:k] if v != 0.0]
    rest = ranked[len(top) :]
    steps = [(feature_label(f, lang), v, f) for f, v in top]
    rest_sum = sum(v for _, v in rest)
    if rest and abs(rest_sum) > 1e-9:
        steps.append((words(lang)["others"].format(n=len(rest)), rest_sum, None))
    end = base + sum(values.values())

    width, row_h, top_pad = 360, 26, 6
    label_w, x0, x1 = 138, 146, 346
    path = [base]
    for _, v, _ in steps:
        path.append(path[-1] + v)
    lo, hi = min(path), max(path)
    span = max(hi - lo, 1.0)
    lo, hi = lo - 0.08 * span, hi + 0.08 * span

    def x(logit: float) -> float:
        return round(x0 + (x1 - x0) * (logit - lo) / (hi - lo), 1)

    rows = []
    y = top_pad
    rows.append({"kind": "base", "y": y, "label": words(lang)["base"], "x": x(base),
                 "value": pct(_sigmoid(base))})  # fmt: skip
    y += row_h
    start = base
    for label, v, feature in steps:
        a, b = x(start), x(start + v)
        rows.append(
            {
                "kind": "up" if v > 0 else "down",
                "y": y,
                "label": label,
                "x": min(a, b),
                "w": max(abs(b - a), 1.5),
                "from_x": a,
                "to_x": b,
                "title": f"{label}: {words(lang)['up' if v > 0 else 'down']}",
                "feature": feature,
            }
        )
        start += v
        y += row_h
    rows.append({"kind": "final", "y": y, "label": words(lang)["final"], "x": x(end),
                 "value": pct(_sigmoid(end))})  # fmt: skip
    height = y + row_h + 22
    ticks, last_x = [], -100.0
    for p in (0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99):
        lp = _logit(p)
        if lo <= lp <= hi and x(lp) - last_x >= 34:
            ticks.append({"x": x(lp), "label": pct(p, 1 if p < 0.01 else 0)})
            last_x = x(lp)
    up = [label_ for label_, v, f in steps if v > 0 and f][:3]
    down = [label_ for label_, v, f in steps if v < 0 and f][:3]
    return {
        "width": width,
        "height": height,
        "label_x": label_w,
        "x0": x0,
        "x1": x1,
        "row_h": row_h,
        "bar_h": row_h - 10,
        "rows": rows,
        "axis_y": y + row_h - 4,
        "ticks": ticks,
        "base_p": pct(_sigmoid(base)),
        "end_p": pct(_sigmoid(end)),
        "up": up,
        "down": down,
    }


# --------------------------------------------------------------------------- household
def _facts(record: dict[str, Any], lang: str) -> list[dict[str, str]]:
    extra: dict[str, Any] = {}
    incomes = [record.get(f) for f in _INCOME_FIELDS]
    if all(_finite(v) for v in incomes):
        extra["net_income"] = sum(incomes)  # type: ignore[arg-type]
        size = record.get("household_size")
        if _finite(size) and size:
            extra["pc_net_income"] = extra["net_income"] / size
    try:
        from riskml.data.regions import province_of

        model = _service().loaded.model  # type: ignore[union-attr]
        extra["monitoring_line"] = model.lines.lookup(
            province_of(str(record["county_code"])), int(str(record["period"])[:4])
        ).monitoring
    except Exception:  # no model loaded or no line for that year: shown as unknown
        extra["monitoring_line"] = None
    out = []
    for field, zh, en, kind in FACTS:
        value = extra[field] if field in extra else record.get(field)
        out.append({"label": zh if lang == "zh" else en, "value": fact_value(value, kind, lang)})
    return out


def _household_view(principal: Principal, household_id: str, lang: str) -> dict[str, Any] | None:
    """What the household page and the visit sheet show, or None when not readable by this caller."""
    if len(household_id) > 64:
        return None
    history = _service().ledger.household_history(household_id)
    if not history:
        return None
    last = history[-1]
    if not principal.can_read(last["county_code"], last["village_code"]):
        return None
    done = [d for d in history if d["status"] == "completed" and d["risk_level"] in LEVELS]
    if not done:
        return None
    latest = done[-1]
    result = latest.get("result") or {}
    per_period: dict[str, dict[str, Any]] = {}
    for d in done:
        per_period[d["period"]] = d  # the latest decision of each period wins
    points = [
        {"period": p, "score": d["score"] or 0.0, "level": d["risk_level"]}
        for p, d in sorted(per_period.items())
    ]
    loaded = _service().loaded
    thresholds = (
        (loaded.model.thresholds.flag, loaded.model.thresholds.red) if loaded is not None else None
    )
    text_key = "text_zh" if lang == "zh" else "text_en"
    msg_key = "message_zh" if lang == "zh" else "message_en"
    measures = []
    for m in result.get("measures") or []:
        measures.append(
            {
                "risk_type": m.get("risk_type_zh" if lang == "zh" else "risk_type_en"),
                "actions": m.get("measures_zh" if lang == "zh" else "measures_en") or [],
            }
        )
    return {
        "household_id": household_id,
        "latest": _row_view(
            {
                **latest,
                "previous_period": None,
                "previous_created_at": None,
                "previous_risk_level": None,
            },
            lang,
        ),  # fmt: skip
        "decided_at": china_time(latest["created_at"]),
        "facts": _facts(latest.get("record") or {}, lang),
        "chart": score_chart(points, thresholds),
        "rules": [
            {
                "label": rule_label(r["id"], lang),
                "level": r.get("level"),
                "level_name": level_name(r.get("level"), lang),
                "message": r.get(msg_key) or "",
                "value": rule_value(r.get("value"), r["id"], lang),
                "threshold": rule_value(r.get("threshold"), r["id"], lang),
            }
            for r in result.get("rules") or []
        ],
        "reasons": [
            {
                "text": r.get(text_key) or "",
                "risk_type": risk_type_name(r.get("risk_type", ""), lang),
            }
            for r in result.get("reasons") or []
        ],
        "waterfall": waterfall(latest.get("contributions"), lang),
        "measures": measures,
        "monitoring_type": monitoring_type_name(result.get("monitoring_type"), lang),
        "model": f"{latest.get('model_name') or ''} v{latest.get('model_version') or '?'}",
        "rules_version": latest.get("rules_version") or "—",
        "decisions": [
            {
                "period": d["period"],
                "decided_at": china_time(d["created_at"]),
                "level": d["risk_level"],
                "level_name": level_name(d["risk_level"], lang),
                "score": pct(d["score"]),
                "model_version": d.get("model_version") or "—",
                "decision_id": d["decision_id"],
            }
            for d in reversed(done)
        ],
    }


def _household_page(request: Request, household_id: str, template: str, action: str) -> Response:
    principal = session_principal(request)
    if principal is None:
        return _login_redirect(request)
    lang = request_lang(request)
    view = _household_view(principal, household_id, lang)
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
