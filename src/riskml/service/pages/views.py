"""What the pages show, prepared from the ledger: worklist rows, the household view, its facts."""

from __future__ import annotations

import math
from typing import Any

from riskml.service import state
from riskml.service.access import Principal
from riskml.service.pages.charts import score_chart, waterfall
from riskml.service.pages.formatting import china_time, fact_value, pct, rule_value
from riskml.service.pages.words import (
    FACTS,
    LEVELS,
    county_name,
    level_name,
    monitoring_type_name,
    rhythm,
    risk_type_name,
    rule_label,
    words,
)

_INCOME_FIELDS = ("income_wage", "income_business", "income_property", "income_transfer")


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def scope_text(principal: Principal, lang: str) -> str:
    w = words(lang)
    if principal.role == "admin":
        return w["scope_all"]
    parts = [f"{w['county']} {county_name(c, lang)}" for c in sorted(principal.counties)]
    parts += [f"{w['village']} {v}" for v in sorted(principal.villages)]
    return "；".join(parts) if lang == "zh" else "; ".join(parts)


def worklist_rows(principal: Principal, filters: dict[str, str | None]) -> tuple[list, list[str]]:
    """In-scope latest decisions (filtered, sorted red → yellow → green, then by score) and the villages."""
    counties, villages = principal.scope_filter()
    rows = state.current().ledger.latest_by_household(
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


def row_view(r: dict[str, Any], lang: str) -> dict[str, Any]:
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


def _line_note(result: dict[str, Any], lang: str) -> str:
    """The year and basis of the line a decision used, as the page words them ("" when unknown)."""
    year, basis = result.get("line_year"), result.get("line_basis")
    if not year or not basis:
        return ""
    w = words(lang)
    return w["line_note"].format(year=year, basis=w.get(f"basis_{basis}", basis))


def _facts(
    record: dict[str, Any], lang: str, result: dict[str, Any] | None = None
) -> list[dict[str, str]]:
    extra: dict[str, Any] = {}
    incomes = [record.get(f) for f in _INCOME_FIELDS]
    if all(_finite(v) for v in incomes):
        extra["net_income"] = sum(incomes)  # type: ignore[arg-type]
        size = record.get("household_size")
        if _finite(size) and size:
            extra["pc_net_income"] = extra["net_income"] / size
    try:
        from riskml.data.regions import province_of

        lines = state.current().scoring_model().lines
        year = (result or {}).get("line_year") or int(str(record["period"])[:4])
        extra["monitoring_line"] = lines.lookup(
            province_of(str(record["county_code"])), year
        ).monitoring
    except Exception:  # no model loaded or no line for that year: shown as unknown
        extra["monitoring_line"] = None
    out = []
    for field, zh, en, kind in FACTS:
        value = extra[field] if field in extra else record.get(field)
        shown = fact_value(value, kind, lang)
        if field == "monitoring_line" and value is not None:
            shown += _line_note(result or {}, lang)
        out.append({"label": zh if lang == "zh" else en, "value": shown})
    return out


def household_view(principal: Principal, household_id: str, lang: str) -> dict[str, Any] | None:
    """What the household page and the visit sheet show, or None when not readable by this caller."""
    if len(household_id) > 64:
        return None
    history = state.current().ledger.household_history(household_id)
    if not history:
        return None
    last = history[-1]
    here = state.current().ledger.locations([household_id]).get(household_id)
    if not principal.can_read(*(here or (last["county_code"], last["village_code"]))):
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
    loaded = state.current().loaded
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
        "latest": row_view(
            {
                **latest,
                "previous_period": None,
                "previous_created_at": None,
                "previous_risk_level": None,
            },
            lang,
        ),  # fmt: skip
        "decided_at": china_time(latest["created_at"]),
        "facts": _facts(latest.get("record") or {}, lang, latest.get("result") or {}),
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
