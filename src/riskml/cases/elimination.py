"""Risk elimination (风险消除): each criterion, met or not, with the evidence shown for it.

From the case and the household's records (its decision history, oldest first):

- ``labour``: someone in the household can work (a household with no one able to work is
  never marked eliminated: it stays under the safety net);
- ``income_above_line``: per-capita income at or above the monitoring line in every record
  for at least ``months_above_line`` months up to the latest record;
- ``rigid_costs``: after out-of-pocket medical and schooling costs, per-capita income is still
  at or above the line;
- ``guarantees``: basic medical cover, safe housing, safe water, no child out of school;
- ``monitored``: confirmed at least ``months_monitored`` months ago;
- ``measures``: at least ``measures_delivered`` measure(s) delivered.

Words for caseworkers are in Chinese and English (``evidence`` and ``evidence_zh``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from riskml.cases.machine import months_between
from riskml.cases.procedure import Procedure
from riskml.data.periods import parse_period
from riskml.data.reference import ReferenceLines

INCOME_FIELDS = ("income_wage", "income_business", "income_property", "income_transfer")
CRITERIA = ("labour", "income_above_line", "rigid_costs", "guarantees", "monitored", "measures")


def per_capita(record: dict[str, Any], minus_costs: bool = False) -> float | None:
    """Per-capita net income of a record (None when an income field is missing)."""
    parts = [record.get(f) for f in INCOME_FIELDS]
    if any(v is None for v in parts):
        return None
    total = float(sum(parts))
    if minus_costs:
        total -= float(record.get("medical_expense") or 0) + float(
            record.get("education_expense") or 0
        )
    return total / max(int(record["household_size"]), 1)


def lines_for(records: list[dict[str, Any]], lines: ReferenceLines) -> list[float | None]:
    """The monitoring line in force for each record (None where none is)."""
    if not records:
        return []
    provinces = np.array([int(r["county_code"][:2]) for r in records])
    months = np.array([parse_period(r["period"]) for r in records])
    res = lines.resolve(provinces, months)
    return [float(m) if ok else None for m, ok in zip(res.monitoring, res.covered, strict=True)]


def _c(name: str, met: bool, en: str, zh: str) -> dict[str, Any]:
    return {"criterion": name, "met": bool(met), "evidence": en, "evidence_zh": zh}


def criteria(
    case: dict[str, Any],
    records: list[dict[str, Any]],
    lines: ReferenceLines,
    procedure: Procedure,
    now: str,
) -> list[dict[str, Any]]:
    """Every elimination criterion for ``case`` with its evidence (``records`` oldest first)."""
    if not records:
        none = ("no record of the household yet", "尚无该户的监测记录")
        return [_c(name, False, *none) for name in CRITERIA]
    latest = records[-1]
    out = []
    labour = latest.get("labor_count")
    out.append(
        _c(
            "labour",
            bool(labour),
            f"{labour} member(s) able to work"
            if labour
            else "no member able to work: a household without labour stays under the safety net and is not eliminated",
            f"有劳动能力成员{labour}人"
            if labour
            else "无劳动能力家庭：纳入兜底保障，不标注风险消除",
        )  # fmt: skip
    )
    line = lines_for(records, lines)
    run_start = None
    for rec, ln in zip(reversed(records), reversed(line), strict=True):
        pc = per_capita(rec)
        if pc is None or ln is None or pc < ln:
            break
        run_start = rec["period"]
    need = procedure.months_above_line
    months = parse_period(latest["period"]) - parse_period(run_start) + 1 if run_start else 0
    pc_latest, ln_latest = per_capita(latest), line[-1]
    shown = f"{pc_latest:,.0f}" if pc_latest is not None else "unknown"
    line_shown = f"{ln_latest:,.0f}" if ln_latest is not None else "unknown"
    out.append(
        _c(
            "income_above_line",
            months >= need,
            f"per-capita income above the line for {months} month(s) since {run_start or '-'} (needs {need}); latest {shown} against {line_shown} yuan",
            f"人均纯收入连续{months}个月高于监测线（需{need}个月）；最近{shown}元，监测线{line_shown}元",
        )  # fmt: skip
    )
    after = per_capita(latest, minus_costs=True)
    ok = after is not None and ln_latest is not None and after >= ln_latest
    after_shown = f"{after:,.0f}" if after is not None else "unknown"
    out.append(
        _c(
            "rigid_costs",
            ok,
            f"per-capita income after medical and schooling costs {after_shown} against the line {line_shown}",
            f"扣除医疗、教育支出后人均{after_shown}元，监测线{line_shown}元",
        )  # fmt: skip
    )
    gaps_en, gaps_zh = [], []
    for key, good, en, zh in (
        (
            "medical_insured",
            True,
            "not every member has basic medical insurance",
            "未全员参加基本医保",
        ),
        ("housing_safe", True, "the house is not safe", "住房不安全"),
        ("water_safe", True, "drinking water is not safe", "饮水不安全"),
        ("dropout", False, "a compulsory-age child is out of school", "有义务教育阶段辍学"),
    ):
        value = latest.get(key)
        if value is None:
            gaps_en.append(f"{key} unknown")
            gaps_zh.append(f"{key}未知")
        elif bool(value) != good:
            gaps_en.append(en)
            gaps_zh.append(zh)
    out.append(
        _c(
            "guarantees",
            not gaps_en,
            "; ".join(gaps_en) or "medical cover, housing, water and schooling secure",
            "；".join(gaps_zh) or "三保障和饮水安全有保障",
        )  # fmt: skip
    )
    since = case.get("decided_at")
    monitored = months_between(since, now) if since else 0.0
    need_m = procedure.months_monitored
    out.append(
        _c(
            "monitored",
            monitored >= need_m,
            f"monitored {monitored:.1f} month(s) since {since[:10] if since else '-'} (needs {need_m})",
            f"纳入监测{monitored:.1f}个月（需{need_m}个月）",
        )  # fmt: skip
    )
    delivered = len(case.get("deliveries") or [])
    need_d = procedure.measures_delivered
    out.append(
        _c(
            "measures",
            delivered >= need_d,
            f"{delivered} measure(s) delivered (needs {need_d})",
            f"已落实帮扶措施{delivered}项（需{need_d}项）",
        )  # fmt: skip
    )
    return out
