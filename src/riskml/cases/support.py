"""Support measures suggested for a confirmed case: at least one per risk type, fitted to the household.

Each risk type's recommended measures (``riskml.policy.risk_types``) with the department that
delivers them and a kind: ``jobs`` (training, jobs, business support), ``safety_net`` (dibao,
tekun, assistance) or ``service``. Where no one in the household can work, jobs measures give
way to the safety net; a household already on dibao (or tekun) is not told to enrol in it.
The caseworker edits the suggestion before it is saved as the plan.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from riskml.policy.risk_types import RISK_TYPES

DEPARTMENTS = {
    "illness": ("医保局", "medical insurance bureau"),
    "disability": ("残联", "disability federation"),
    "schooling": ("教育局", "education bureau"),
    "disaster": ("应急管理局", "emergency management bureau"),
    "accident": ("民政局", "civil affairs bureau"),
    "business_failure": ("农业农村局", "agriculture and rural affairs bureau"),
    "unstable_employment": ("人社局", "human resources and social security bureau"),
    "lack_of_labour": ("民政局", "civil affairs bureau"),
    "housing": ("住建局", "housing and construction bureau"),
    "drinking_water": ("水利局", "water resources bureau"),
    "low_income": ("乡村振兴局", "rural revitalisation bureau"),
    "other": ("乡镇人民政府", "township government"),
}
_JOBS = (
    "职业技能培训",
    "公益性岗位",
    "就业帮扶车间和岗位对接",
    "产业帮扶和技术指导",
    "产业和就业帮扶增收",
)
_DIBAO = ("按规定纳入低保", "纳入低保或特困供养兜底保障")
SAFETY_NET = ("纳入低保或特困供养兜底保障", "临时救助")


def kind_of(measure_zh: str) -> str:
    if measure_zh in _JOBS:
        return "jobs"
    if measure_zh in SAFETY_NET or measure_zh in _DIBAO or "救助" in measure_zh:
        return "safety_net"
    return "service"


def suggest(
    risk_types: list[str], record: dict[str, Any] | None, start: date, months: int = 12
) -> list[dict[str, Any]]:
    """Suggested measures for the case's risk types, given the household's latest record."""
    record = record or {}
    labour = record.get("labor_count")
    no_labour = labour is not None and int(labour) == 0
    on_net = bool(record.get("dibao")) or bool(record.get("tekun"))
    end = start + timedelta(days=round(months * 30.4375))
    out: list[dict[str, Any]] = []
    for code in risk_types:
        rt = RISK_TYPES[code]
        dept = DEPARTMENTS[code][0]
        chosen = []
        for m in rt.measures_zh:
            kind = kind_of(m)
            if kind == "jobs" and no_labour:
                continue
            if m in _DIBAO and on_net:
                continue
            chosen.append((m, kind))
        if not chosen:  # jobs only, and no one can work: the safety net answers
            m = "临时救助" if on_net else "纳入低保或特困供养兜底保障"
            chosen = [(m, "safety_net")]
            dept = "民政局"
        for m, kind in chosen[:2]:
            out.append({"risk_type": code, "measure": m, "department": dept, "kind": kind,
                        "start": start.isoformat(), "end": end.isoformat()})  # fmt: skip
    return out
