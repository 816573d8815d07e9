"""Reasons for an asset's risk in plain language, Chinese and English, from its TreeSHAP contributions.

Every feature of the asset-risk model (riskml.assets.features) has a sentence that shows the
asset's own figures ("2024 年收益率 1.2%（收益 9,600 元）"); a test checks each one renders.
``top_reasons`` turns one observation's contributions into the few features that pushed its
risk up the most; ``reasons_for`` does it for many rows at once (the flagged of a batch).
"""

from __future__ import annotations

import functools
import math
import string
from typing import Any

import numpy as np
import pandas as pd

from riskml.assets import contract
from riskml.assets.features import FEATURE_NAMES

EN_NAMES = {
    "category": {k: k.replace("_", "-") for k in contract.CATEGORIES},
    "subtype": {k: k.replace("_", " ") for k in contract.SUBTYPES},
}

# feature -> (zh, en); a pair of pairs for a flag: ((zh, en) when true, (zh, en) when false)
REASONS: dict[str, Any] = {
    "age": ("已投入运营 {age} 年", "in operation for {age} years"),
    "subtype_code": ("资产类型：{subtype_zh}", "asset type: {subtype_en}"),
    "category_code": ("资产类别：{category_zh}", "category: {category_en}"),
    "form_code": ("资产形态：{form_zh}", "form: {form}"),
    "owner_type_code": ("所有权人：{owner_type_zh}", "owner: {owner_type}"),
    "log_value": ("资产原值 {original_value} 元", "original value {original_value} yuan"),
    "book_share": (
        "账面价值为原值的 {book_share}",
        "book value is {book_share} of the original value",
    ),
    "rights_code": ("确权状态：{rights_status_zh}", "ownership: {rights_status}"),
    "unconfirmed_years": (
        "验收后 {unconfirmed_years} 年仍未确权",
        "ownership still unconfirmed {unconfirmed_years} years after acceptance",
    ),
    "mode_code": ("经营方式：{operating_mode_zh}", "operating mode: {operating_mode}"),
    "contracted": (
        ("由他人经营（{operating_mode_zh}）", "run by others ({operating_mode})"),
        ("由所有权人自主经营", "run by its owner"),
    ),
    "contract_years_left": ("经营合同{contract_left_zh}", "operating contract {contract_left_en}"),
    "contract_years_run": (
        "现经营合同已执行 {contract_years_run} 年",
        "the current operating contract has run {contract_years_run} years",
    ),
    "guaranteed_return_rate": (
        "合同约定保底收益率 {guaranteed_return_rate}",
        "guaranteed return rate {guaranteed_return_rate} in the contract",
    ),
    "has_caretaker": (
        ("已明确管护责任人", "a caretaker is named"),
        ("未明确管护责任人", "no caretaker is named"),
    ),
    "fund_share": (
        "管护经费每年 {maintenance_fund} 元（原值的 {fund_share}）",
        "maintenance fund {maintenance_fund} yuan a year ({fund_share} of the original value)",
    ),
    "status_code": ("年末状态：{status_zh}", "status at year end: {status}"),
    "return_rate": (
        "{year} 年收益率 {return_rate}（收益 {income} 元）",
        "return rate {return_rate} in {year} (income {income} yuan)",
    ),
    "return_rate_lag1": (
        "上一年收益率 {return_rate_lag1}",
        "return rate {return_rate_lag1} the year before",
    ),
    "return_rate_lag2": (
        "两年前收益率 {return_rate_lag2}",
        "return rate {return_rate_lag2} two years before",
    ),
    "return_mean3": (
        "近三年平均收益率 {return_mean3}",
        "average return rate {return_mean3} over three years",
    ),
    "return_change": (
        "收益率比上年变化 {return_change} 个百分点",
        "return rate changed by {return_change} points on the year before",
    ),
    "months_idle": ("{year} 年闲置 {months_idle} 个月", "idle {months_idle} months in {year}"),
    "months_idle_lag1": (
        "上一年闲置 {months_idle_lag1} 个月",
        "idle {months_idle_lag1} months the year before",
    ),
    "maintenance_share": (
        "当年管护支出 {maintenance_spent} 元（原值的 {maintenance_share}）",
        "maintenance spending {maintenance_spent} yuan in the year ({maintenance_share} of the value)",
    ),
    "inspection_code": ("巡查结果：{inspection_zh}", "inspection: {inspection_en}"),
    "damage_share": (
        "当年灾害损毁 {damage} 元（原值的 {damage_share}）",
        "disaster damage {damage} yuan in the year ({damage_share} of the original value)",
    ),
}

# the sentence when the feature itself is missing (a year not observed, no income recorded)
WHEN_MISSING: dict[str, tuple[str, str]] = {
    "return_rate": ("当年无收益记录", "no income recorded this year"),
    "return_rate_lag1": ("上一年无收益记录", "no income recorded the year before"),
    "return_rate_lag2": ("两年前无收益记录", "no income recorded two years before"),
    "return_mean3": ("近三年无收益记录", "no income recorded in three years"),
    "return_change": ("无法比较上年收益", "no earlier return to compare with"),
    "months_idle_lag1": ("上一年无记录", "no record of the year before"),
    "contract_years_run": ("无经营合同", "no operating contract"),
    "guaranteed_return_rate": ("合同未约定保底收益", "no guaranteed return in a contract"),
    "unconfirmed_years": ("确权情况未知", "ownership status not known"),
}

# short display names (zh, en), for chart labels
FEATURE_LABELS: dict[str, tuple[str, str]] = {
    "age": ("运营年限", "age"), "subtype_code": ("资产类型", "subtype"),
    "category_code": ("资产类别", "category"), "form_code": ("资产形态", "form"),
    "owner_type_code": ("所有权人类型", "owner type"), "log_value": ("原值", "value"),
    "book_share": ("账面价值占比", "book share"), "rights_code": ("确权状态", "rights"),
    "unconfirmed_years": ("未确权年数", "years unconfirmed"), "mode_code": ("经营方式", "mode"),
    "contracted": ("他人经营", "run by others"), "contract_years_left": ("合同剩余年限", "contract left"),
    "contract_years_run": ("合同已执行年限", "contract run"),
    "guaranteed_return_rate": ("保底收益率", "guaranteed return"),
    "has_caretaker": ("管护责任人", "caretaker"), "fund_share": ("管护经费", "maintenance fund"),
    "status_code": ("年末状态", "status"), "return_rate": ("收益率", "return rate"),
    "return_rate_lag1": ("上年收益率", "return last year"),
    "return_rate_lag2": ("前年收益率", "return two years ago"),
    "return_mean3": ("三年平均收益率", "3-year return"), "return_change": ("收益率变化", "return change"),
    "months_idle": ("闲置月数", "months idle"), "months_idle_lag1": ("上年闲置月数", "idle last year"),
    "maintenance_share": ("管护支出", "maintenance spent"), "inspection_code": ("巡查结果", "inspection"),
    "damage_share": ("灾害损毁", "damage"),
}  # fmt: skip

_PCT = {"book_share", "fund_share", "maintenance_share", "damage_share", "return_rate",
        "return_rate_lag1", "return_rate_lag2", "return_mean3", "guaranteed_return_rate"}  # fmt: skip
_PCT_FINE = {"return_rate", "return_rate_lag1", "return_rate_lag2", "return_mean3",
             "guaranteed_return_rate", "maintenance_share", "fund_share"}  # fmt: skip
_MONEY = {"original_value", "income", "maintenance_fund", "maintenance_spent", "damage"}
_YEARS = {"age", "unconfirmed_years", "contract_years_run"}
_INSPECTION_EN = {"good": "good", "fair": "fair", "poor": "poor"}
_INSPECTION_ZH = {"good": "良好", "fair": "一般", "poor": "较差"}


def _missing(v: Any) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v))


def _fmt(key: str, v: Any, lang: str) -> str:
    if _missing(v):
        return "未知" if lang == "zh" else "unknown"
    if key == "return_change":
        return f"{v * 100:+.1f}"
    if key in _PCT:
        return f"{v * 100:.1f}%" if key in _PCT_FINE else f"{v * 100:.0f}%"
    if key in _MONEY:
        return f"{v:,.0f}"
    if key in _YEARS:
        return f"{v:.1f}".rstrip("0").rstrip(".")
    if isinstance(v, float) and v.is_integer():
        return f"{v:.0f}"
    return str(v)


def context(record: dict[str, Any], features: dict[str, float]) -> dict[str, Any]:
    """What a sentence may show: the observation's fields, its features and labels of its codes."""
    ctx: dict[str, Any] = {**record, **features}
    for name, table in (
        ("category", contract.CATEGORIES), ("subtype", contract.SUBTYPES), ("form", contract.FORMS),
        ("owner_type", contract.OWNER_TYPES), ("rights_status", contract.RIGHTS_STATUSES),
        ("operating_mode", contract.OPERATING_MODES), ("status", contract.STATUSES),
    ):  # fmt: skip
        v = record.get(name)
        ctx[f"{name}_zh"] = table.get(v, "未知") if isinstance(v, str) else "未知"
    for name in ("category", "subtype"):
        v = record.get(name)
        ctx[f"{name}_en"] = EN_NAMES[name].get(v, "unknown") if isinstance(v, str) else "unknown"
    insp = record.get("inspection_result")
    ctx["inspection_zh"] = (
        _INSPECTION_ZH.get(insp, "当年未巡查") if isinstance(insp, str) else "当年未巡查"
    )
    ctx["inspection_en"] = (
        _INSPECTION_EN.get(insp, "none this year") if isinstance(insp, str) else "none this year"
    )
    left = features.get("contract_years_left")
    if _missing(left):
        ctx["contract_left_zh"], ctx["contract_left_en"] = "：无", ": none"
    elif left < 0:
        ago = _fmt("age", -left, "en")
        ctx["contract_left_zh"] = f"已到期 {ago} 年，未续签"
        ctx["contract_left_en"] = f"ended {ago} years ago without renewal"
    else:
        n = _fmt("age", left, "en")
        ctx["contract_left_zh"] = f"剩余 {n} 年"
        ctx["contract_left_en"] = f"has {n} years left"
    return ctx


@functools.lru_cache(maxsize=256)
def _placeholders(template: str) -> tuple[str, ...]:
    return tuple(f for _, f, _, _ in string.Formatter().parse(template) if f)


def sentence(feature: str, ctx: dict[str, Any], lang: str) -> str:
    """The sentence for one feature of one observation, in ``lang`` ("zh" or "en")."""
    r = REASONS[feature]
    k = 0 if lang == "zh" else 1
    if isinstance(r[0], tuple):  # a flag
        value = ctx.get(feature)
        if _missing(value):
            return f"{r[0][k]}：情况未知" if lang == "zh" else f"{r[0][k]}: not known"
        template = r[0][k] if value else r[1][k]
    elif feature in WHEN_MISSING and _missing(ctx.get(feature)):
        return WHEN_MISSING[feature][k]
    else:
        template = r[k]
    return template.format(**{p: _fmt(p, ctx.get(p), lang) for p in _placeholders(template)})


def top_reasons(
    record: dict[str, Any],
    features: dict[str, float],
    contributions: np.ndarray,
    feature_names: tuple[str, ...] = FEATURE_NAMES,
    k: int = 3,
) -> list[dict[str, Any]]:
    """The ``k`` features that pushed this asset's risk up the most (positive contributions)."""
    order = np.argsort(-contributions, kind="stable")
    ctx = context(record, features)
    out = []
    for j in order[:k]:
        c = float(contributions[j])
        if c <= 0:
            break
        name = feature_names[j]
        v = features.get(name)
        out.append({
            "feature": name,
            "value": None if _missing(v) else float(v),
            "contribution": round(c, 6),
            "text_zh": sentence(name, ctx, "zh"),
            "text_en": sentence(name, ctx, "en"),
        })  # fmt: skip
    return out


_REASON_FIELDS = (
    "year", "category", "subtype", "form", "owner_type", "rights_status", "operating_mode",
    "status", "original_value", "income", "maintenance_fund", "maintenance_spent", "damage",
    "inspection_result", "return_rate", "return_rate_lag1", "return_rate_lag2", "months_idle",
    "months_idle_lag1", "guaranteed_return_rate",
)  # fmt: skip


def reasons_for(
    obs: pd.DataFrame,
    X: pd.DataFrame,
    contributions: np.ndarray,
    k: int = 3,
    feature_names: tuple[str, ...] = FEATURE_NAMES,
) -> list[list[dict[str, Any]]]:
    """``top_reasons`` for each row of ``obs`` (its features ``X``, contributions row-aligned)."""
    fields = [f for f in _REASON_FIELDS if f in obs.columns]
    records = obs[fields].to_dict("records")
    # only the features a reason may show: the top k of each row
    top = np.argsort(-contributions, axis=1, kind="stable")[:, :k]
    Xv = X.to_numpy(np.float64)
    out = []
    for i, rec in enumerate(records):
        feats = {feature_names[j]: float(Xv[i, j]) for j in top[i]}
        feats.setdefault(
            "contract_years_left", float(Xv[i, feature_names.index("contract_years_left")])
        )
        out.append(top_reasons(rec, feats, contributions[i], feature_names, k))
    return out
