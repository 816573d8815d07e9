"""``POST /assets/score``: assistance assets scored beside ``/score`` on the same service.

An ``assets`` key (scoped by counties) or an admin sends 1 to 1,000 asset-year observations
(riskml.assets.observation: the register's scalar fields as of the end of ``year`` and that
year's figures, and optionally its ``distributions``, as the register's distribution events
carry them). The request is checked as strictly as ``/score``: every field's type, choice,
range, pattern and date, unknown fields, a village outside its county, an asset and year twice,
each distribution's date, year and items (``distributions[0].items[1].use``; a household id is
never quoted);
a refusal is a 422 naming the index and field (at most ``MAX_PROBLEMS`` listed, all counted),
a 403 naming the index of each observation outside the key's counties, 415 for a body that is
not JSON, 400 for one that is not UTF-8 text (413 over the body limit, by the service's
middleware). Each answered observation is scored by the champion ``asset-risk`` model (loaded
when the service starts, ``riskml.service.model_cache.fetch_asset_model``: from the registry,
or its cached copy when the registry is down, ``AssetDesk.readiness`` saying which), its asset rules are
evaluated (riskml.assets.rules, as of the first day after ``year``), its top reasons given in
Chinese and English (TreeSHAP) with a recommended action (riskml.assets.actions), and stored
insert-only in the ledger's ``asset_scores`` in the same request. Nothing of a refused request
is stored. Without an asset model the route answers 503 saying so; ``/score`` and the
service's readiness do not depend on it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import re
import threading
import uuid
from typing import Any

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from riskml.service import state

log = logging.getLogger("riskml.assets")
router = APIRouter()

MAX_ASSETS = 1000
MAX_PROBLEMS = 100
WARN_AT = 0.5  # a warning: more likely than not idle or below the return floor next year
REASONS_K = 3
ROLES = ("assets", "admin")
NO_STORE = {"Cache-Control": "no-store"}
_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_COUNTY = re.compile(r"^[0-9]{6}$")
_VILLAGE = re.compile(r"^[0-9]{12}$")
_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_PATTERNS = {"asset_id": _ID, "project_id": _ID, "county_code": _COUNTY, "village_code": _VILLAGE}
MAX_TEXT = 200


class Answer:
    """An HTTP-agnostic answer (status, JSON body, headers), as ``riskml.service.core.Reply``."""

    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None):
        self.status, self.body, self.headers = status, body, headers or {}


def _problem(index: int | None, field: str, problem: str) -> dict[str, Any]:
    # the service's one problem format (ValidationFailure): an asset names no household
    return {"index": index, "household_id": None, "field": field, "problem": problem}


def _refused(error: str, problems: list[dict[str, Any]], status: int = 422) -> Answer:
    return Answer(status, {"error": error, "problems": problems[:MAX_PROBLEMS],
                           "problems_total": len(problems)})  # fmt: skip


# --------------------------------------------------------------------------- validation
def _finite_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def value_problem(f: Any, v: Any) -> str | None:
    """What is wrong with one field's value (``f`` a riskml.assets.observation.Field), or None."""
    if v is None:
        return "required field is missing" if f.required else None
    if f.kind in ("str", "choice", "date") and not isinstance(v, str):
        return "must be a string"
    if f.kind == "str":
        pattern = _PATTERNS.get(f.name)
        if pattern is not None and not pattern.match(v):
            return f"must match {pattern.pattern}"
        return f"at most {MAX_TEXT} characters" if len(v) > MAX_TEXT else None
    if f.kind == "choice":
        return None if v in f.choices else f"must be one of {', '.join(f.choices)}"
    if f.kind == "date":
        try:
            ok = bool(_DATE.match(v)) and dt.date.fromisoformat(v) is not None
        except ValueError:
            ok = False
        return None if ok else "must be a date (YYYY-MM-DD)"
    if f.kind == "int" and not (isinstance(v, int) and not isinstance(v, bool)):
        return "must be an integer"
    if not _finite_number(v):
        return "must be a finite number"
    if (f.minimum is not None and v < f.minimum) or (f.maximum is not None and v > f.maximum):
        return f"must be in [{f.minimum:g}, {f.maximum:g}]" if f.maximum is not None else (
            f"must be at least {f.minimum:g}")  # fmt: skip
    return None


def envelope_problems(body: Any) -> list[dict[str, Any]]:
    """The request's envelope: an object with an ``assets`` list of 1 to MAX_ASSETS."""
    if not isinstance(body, dict):
        return [_problem(None, "(body)", "must be a JSON object with an 'assets' list")]
    out = [_problem(None, str(k)[:64], "unknown field; the request has 'assets'")
           for k in sorted(map(str, set(body) - {"assets"}))]  # fmt: skip
    assets = body.get("assets")
    if assets is None:
        out.append(_problem(None, "assets", "required field is missing"))
    elif not isinstance(assets, list):
        out.append(_problem(None, "assets", "must be a list of asset-year observations"))
    elif not 1 <= len(assets) <= MAX_ASSETS:
        out.append(_problem(None, "assets", f"must hold 1 to {MAX_ASSETS:,} observations, got {len(assets):,}"))  # fmt: skip
    return out


def record_problems(records: list[Any]) -> list[dict[str, Any]]:
    """Every problem of the observations, each naming the index and the field."""
    from riskml.assets import observation as ob

    names = {*ob.FIELD_NAMES, ob.DISTRIBUTIONS}
    out: list[dict[str, Any]] = []
    seen: dict[tuple[Any, Any], int] = {}
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            out.append(_problem(i, "(record)", "must be a JSON object (an asset-year observation)"))
            continue
        for k in sorted(map(str, set(rec) - names)):
            out.append(_problem(i, k[:64], "unknown field"))
        bad = set()
        for f in ob.OBSERVATION_FIELDS:
            why = value_problem(f, rec.get(f.name))
            if why is not None:
                out.append(_problem(i, f.name, why))
                bad.add(f.name)
        year = rec.get("year") if "year" not in bad else None
        incomes = {} if year is None else {
            year - k: rec[name] for k, name in enumerate(("income", "income_lag1", "income_lag2"))
            if name not in bad and rec.get(name) is not None}  # fmt: skip
        for where, why in ob.distribution_problems(rec.get(ob.DISTRIBUTIONS), year, incomes):
            out.append(_problem(i, where, why))  # a path and a rule: never a household id
        county, village = rec.get("county_code"), rec.get("village_code")
        if not bad & {"county_code", "village_code"} and village and not village.startswith(county):
            out.append(_problem(i, "village_code", "must start with county_code"))
        if not bad & {"asset_id", "year"}:
            key = (rec["asset_id"], rec["year"])
            if key in seen:
                out.append(_problem(i, "asset_id", f"asset and year already at index {seen[key]}"))
            seen.setdefault(key, i)
    return out


# --------------------------------------------------------------------------- scoring
def register_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The register-like state of each observation, for the asset rules: its fields, its
    incomes by year, its distributions (riskml.assets.observation.distribution_states) and,
    when idle, since when (its months idle back from the year's end)."""
    from riskml.assets.observation import DISTRIBUTIONS, distribution_states

    out = []
    for rec in records:
        year = int(rec["year"])
        incomes = {str(year - k): rec.get(name) for k, name in
                   enumerate(("income", "income_lag1", "income_lag2"))}  # fmt: skip
        row = dict(rec, incomes={y: v for y, v in incomes.items() if v is not None})
        row[DISTRIBUTIONS] = distribution_states(rec.get(DISTRIBUTIONS), year)
        months = rec.get("months_idle")
        if rec["status"] == "idle" and months:
            months += 12 if rec.get("months_idle_lag1") == 12 and months == 12 else 0
            since = dt.date(year + 1, 1, 1)
            total = since.year * 12 + since.month - 1 - int(months)
            row["idle_since"] = dt.date(total // 12, total % 12 + 1, 1).isoformat()
        out.append(row)
    return out


def fired_rules(records: list[dict[str, Any]], rules: Any) -> list[list[dict[str, Any]]]:
    """The asset rules fired for each observation, as of the first day after its year."""
    from riskml.assets.register import register_frame
    from riskml.assets.rules import evaluate, fired_by_asset

    rows = register_rows(records)
    out: list[list[dict[str, Any]]] = [[] for _ in records]
    for year in sorted({r["year"] for r in records}):
        idx = [i for i, r in enumerate(records) if r["year"] == year]
        fired = fired_by_asset(
            evaluate(register_frame([rows[i] for i in idx]), rules, f"{year + 1}-01-01")
        )
        for i in idx:
            out[i] = [{k: r[k] for k in ("rule", "value", "threshold", "reason_zh", "reason_en")}
                      for r in fired.get(records[i]["asset_id"], [])]  # fmt: skip
    return out


def score_records(loaded: Any, rules: Any, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Score, rules, reasons and action of each (valid) observation; nothing stored."""
    import pandas as pd

    from riskml.assets import observation as ob
    from riskml.assets.actions import recommend
    from riskml.assets.model_registry import input_frame
    from riskml.assets.reasons import reasons_for

    model = loaded.model
    frame = input_frame(pd.DataFrame(records, columns=list(ob.FIELD_NAMES)))
    X = model.features(frame)
    score = model.predict_proba(X)
    reasons = reasons_for(frame, X, model.explain(X).contributions, k=REASONS_K,
                          feature_names=model.feature_names)  # fmt: skip
    fired = fired_rules(records, rules)
    out = []
    for i, rec in enumerate(records):
        warned = bool(score[i] >= WARN_AT)
        action = recommend(rec["status"], rec["category"], [r["rule"] for r in fired[i]],
                           [r["feature"] for r in reasons[i]], warned)  # fmt: skip
        out.append({
            "asset_id": rec["asset_id"], "year": rec["year"], "county_code": rec["county_code"],
            "score": round(float(score[i]), 6), "warning": warned, "rules": fired[i],
            "reasons": reasons[i], "action": action.as_dict(),
            "model_name": str(loaded.info.get("name")), "model_version": str(loaded.info.get("version")),
            "rules_version": rules.version,
        })  # fmt: skip
    return out


# --------------------------------------------------------------------------- the desk
class AssetDesk:
    """The asset endpoint on the bound scoring service: its model, rules and ledger writes."""

    def __init__(self, service: Any, model_name: str | None = None):
        from riskml.assets.rules import load as load_rules
        from riskml.service.model_cache import fetch_asset_model

        self.service = service
        self.rules: Any = None
        self.loaded: Any = None
        self.load_error: str | None = None
        household = getattr(service, "loaded", None)
        try:
            self.rules = load_rules()
            down = None
            if household is not None and household.info.get("source") == "cache":
                # the registry did not answer the household model: not asked again (no 2nd
                # wait), the asset model's cached copy is served
                down = str(household.info.get("cache_reason") or "registry unavailable")
            self.loaded = fetch_asset_model(service.settings, model_name, unavailable=down)
        except Exception as exc:  # no asset model registered, registry down, bad rules: 503
            self.loaded = None
            self.load_error = str(exc)
            log.warning("asset model not loaded: %s", self.load_error)

    def readiness(self) -> dict[str, Any]:
        """The asset model for ``/readyz``: name, version, alias, source (registry or cache), and
        a warning when serving the cached copy or why there is none (never household data)."""
        loaded = self.loaded
        if loaded is None:
            return {"model": None, "reason": f"no asset model loaded: {self.load_error}"}
        out: dict[str, Any] = {
            "model": {k: loaded.info.get(k) for k in ("name", "version", "alias", "source")}
        }
        if loaded.info.get("source") == "cache":
            out["warning"] = f"serving the last good cached copy: {loaded.info.get('cache_reason')}"
        return out

    def score(self, authorization: str | None, body: Any) -> Answer:
        principal = self.service.authenticate(authorization)
        if principal is None:
            return Answer(401, {"error": "missing or invalid API key"}, {"WWW-Authenticate": "Bearer"})  # fmt: skip
        if principal.role not in ROLES:
            return Answer(403, {"error": f"role {principal.role} may not score assets"})
        loaded = self.loaded
        if loaded is None:
            return Answer(503, {"error": "not ready for assets: no asset-risk model is loaded "
                                f"({self.load_error}); POST /score is not affected"})  # fmt: skip
        problems = envelope_problems(body)
        if problems:
            return _refused("invalid request", problems)
        records = body["assets"]
        problems = record_problems(records)
        if problems:
            return _refused(f"{len(problems)} problem(s) in the observations; nothing was scored", problems)  # fmt: skip
        outside = [_problem(i, "county_code", f"county {r['county_code']} is outside this key's counties")
                   for i, r in enumerate(records) if not principal.can_read_assets(r["county_code"])]  # fmt: skip
        if outside:
            return _refused(f"{len(outside)} observation(s) outside this key's counties; nothing was scored", outside, 403)  # fmt: skip
        results = score_records(loaded, self.rules, records)
        request_id = uuid.uuid4().hex
        try:
            self._store(results, records, f"{principal.role}:{principal.id}", request_id)
        except Exception as exc:  # the ledger could not be written: nothing answered
            log.error("asset scores not stored for request %s: %s", request_id, type(exc).__name__)
            return Answer(503, {"error": "the ledger could not be written; nothing was answered"})
        return Answer(200, {"results": results, "request_id": request_id})

    def _store(self, results: list[dict[str, Any]], records: list[dict[str, Any]], caller: str,
               request_id: str) -> None:  # fmt: skip
        from riskml.store.entries import now_iso
        from riskml.store.tables import asset_scores

        created = now_iso()
        rows = []
        for res, rec in zip(results, records, strict=True):
            res["score_id"] = uuid.uuid4().hex
            rows.append({
                "score_id": res["score_id"], "request_id": request_id, "asset_id": res["asset_id"],
                "year": int(res["year"]), "county_code": res["county_code"], "created_at": created,
                "caller": caller, "model_name": res["model_name"],
                "model_version": res["model_version"], "rules_version": res["rules_version"],
                "score": res["score"], "flagged": res["warning"], "action": res["action"]["action"],
                "observation": rec, "result": res,
            })  # fmt: skip
        with self.service.ledger.writer.begin() as conn:
            conn.execute(asset_scores.insert(), rows)


_desk: AssetDesk | None = None
_lock = threading.Lock()


def start(service: Any, model_name: str | None = None) -> AssetDesk:
    """Make the asset desk of the service (loads the asset model); called when the service binds."""
    global _desk
    with _lock:
        _desk = AssetDesk(service, model_name)
        return _desk


def current_desk(service: Any) -> AssetDesk | None:
    """The asset desk of ``service`` if it has been started (readiness reports it), else None."""
    found = _desk
    return found if found is not None and found.service is service else None


def desk() -> AssetDesk:
    """The asset desk of the bound service (made on first use when the service did not start it)."""
    service = state.current()
    found = _desk
    return found if found is not None and found.service is service else start(service)


# --------------------------------------------------------------------------- the route
def _json_int(text: str) -> int | float:
    if len(text) > 4000:  # too long for Python's int parser; out of every range anyway
        return float("-inf") if text.startswith("-") else float("inf")
    return int(text)


def _respond(answer: Answer) -> JSONResponse:
    return JSONResponse(
        answer.body, status_code=answer.status, headers={**NO_STORE, **answer.headers}
    )


def _is_json(content_type: str | None) -> bool:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media in ("", "application/json") or (media.startswith("application/") and media.endswith("+json"))  # fmt: skip


@router.post("/assets/score")
async def score_assets(request: Request, authorization: str | None = Header(default=None)) -> JSONResponse:  # fmt: skip
    """Score 1 to 1,000 asset-year observations: score, rules, reasons, recommended action."""
    if not _is_json(request.headers.get("content-type")):
        return _respond(Answer(415, {"error": "the body must be JSON, sent as Content-Type: application/json"}))  # fmt: skip
    raw = await request.body()  # the body limit middleware bounds it
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return _respond(Answer(400, {"error": "the body is not UTF-8 text"}))
    try:
        body: Any = json.loads(text, parse_int=_json_int) if text.strip() else None
    except (ValueError, RecursionError):
        body = None  # refused as "(body) must be a JSON object"
    return _respond(await run_in_threadpool(desk().score, authorization, body))


__all__ = ["MAX_ASSETS", "AssetDesk", "current_desk", "desk", "envelope_problems", "record_problems", "router",
           "score_records", "start"]  # fmt: skip
