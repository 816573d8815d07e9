"""The public notice (公示) of a proposed monitoring object, redacted by construction.

The notice is built only from fields that may be shown: the village, the household's
pseudonymous number, its size, the proposed household type and the risk types, with the
health-related ones (illness, disability) shown as "other difficulties" (no health details).
No name, ID, phone, bank account or amount ever enters it, so there is nothing to strip.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from riskml.policy.risk_types import RISK_TYPES

HEALTH = ("illness", "disability")
TYPE_ZH = {
    "unstable_alleviated": "脱贫不稳定户",
    "marginal": "边缘易致贫户",
    "sudden_hardship": "突发严重困难户",
}
TYPE_EN = {
    "unstable_alleviated": "unstable alleviated",
    "marginal": "marginal",
    "sudden_hardship": "sudden severe hardship",
}


def shown_risk_types(codes: list[str]) -> list[str]:
    out = ["other" if c in HEALTH else c for c in codes]
    return list(dict.fromkeys(out))


def notice(
    case: dict[str, Any],
    household_size: int | None,
    start: date,
    days: int,
    household_type: str | None = None,
) -> dict[str, str]:
    """The notice text in Chinese and English, and its dates."""
    end = start + timedelta(days=days)
    codes = shown_risk_types(case.get("risk_types") or case.get("proposed_risk_types") or ["other"])
    kind = household_type or case.get("household_type")
    zh_types = "、".join(RISK_TYPES[c].zh for c in codes)
    en_types = ", ".join(RISK_TYPES[c].en for c in codes)
    size_zh = f"{household_size}人户" if household_size else "一户"
    size_en = f"a household of {household_size}" if household_size else "a household"
    type_zh = f"，拟认定类型：{TYPE_ZH[kind]}" if kind in TYPE_ZH else ""
    type_en = f", proposed type: {TYPE_EN[kind]}" if kind in TYPE_EN else ""
    ref = case["case_id"][:8]
    return {
        "zh": (
            f"防止返贫监测对象公示：经农户申请或排查、入户核实和村级评议，本村{size_zh}（公示编号{ref}）"
            f"拟纳入防止返贫监测对象{type_zh}，风险类型：{zh_types}。公示期{start.isoformat()}至{end.isoformat()}，"
            "如有异议，请向村民委员会或乡镇人民政府反映。"
        ),
        "en": (
            f"Public notice: after a request or screening, a home visit and the village review, {size_en} "
            f"of this village (notice number {ref}) is proposed as a monitored household{type_en}; "
            f"risk types: {en_types}. Notice period {start.isoformat()} to {end.isoformat()}; objections "
            "go to the village committee or the township government."
        ),
        "village_code": case["village_code"],
        "start": start.isoformat(),
        "end": end.isoformat(),
    }
