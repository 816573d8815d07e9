"""Reasons in plain language: each model feature → a policy risk type → a sentence in Chinese and English.

The one place where feature names become words, shared by the API, batch
scoring and the caseworker pages. Sentences carry the household's real
numbers ("医疗自付支出 32,000 元，占家庭纯收入的 85%"). Every model feature
has an entry (a test checks it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from riskml.model.features import FEATURE_NAMES
from riskml.model.history_reasons import HISTORY_REASON_TEXTS


@dataclass(frozen=True)
class Reason:
    risk_type: str
    zh: str
    en: str
    # for flags: the sentence when the flag is false (zh, en)
    zh_false: str | None = None
    en_false: str | None = None


R = Reason
REASONS: dict[str, Reason] = {
    "household_size": R(
        "other", "家庭人口 {household_size} 人", "{household_size} household members"
    ),
    "labor_count": R(
        "lack_of_labour", "有劳动能力成员 {labor_count} 人", "{labor_count} members able to work"
    ),
    "elderly_count": R(
        "lack_of_labour", "65 岁及以上老人 {elderly_count} 人", "{elderly_count} members aged 65+"
    ),
    "children_count": R(
        "lack_of_labour", "16 岁以下儿童 {children_count} 人", "{children_count} children under 16"
    ),
    "students_compulsory": R(
        "schooling",
        "义务教育阶段学生 {students_compulsory} 人",
        "{students_compulsory} pupils in compulsory school",
    ),
    "students_noncompulsory": R(
        "schooling",
        "高中、职校或大学在读 {students_noncompulsory} 人",
        "{students_noncompulsory} in high school, vocational school or college",
    ),
    "disabled_count": R(
        "disability", "持证残疾人 {disabled_count} 人", "{disabled_count} members with a disability"
    ),
    "chronic_ill_count": R(
        "illness",
        "患重病或慢性病成员 {chronic_ill_count} 人",
        "{chronic_ill_count} members with serious or chronic illness",
    ),
    "head_age": R("lack_of_labour", "户主 {head_age} 岁", "household head aged {head_age}"),
    "head_female": R(
        "other",
        "户主为女性",
        "the household head is a woman",
        "户主为男性",
        "the household head is a man",
    ),
    "head_education_years": R(
        "unstable_employment",
        "户主受教育 {head_education_years} 年",
        "household head has {head_education_years} years of schooling",
    ),
    "ethnic_minority": R(
        "other", "少数民族家庭", "ethnic-minority household", "汉族家庭", "Han household"
    ),
    "formerly_poor": R(
        "low_income",
        "原建档立卡脱贫户",
        "formerly registered poor household",
        "非原建档立卡户",
        "not a formerly registered poor household",
    ),
    "dibao": R(
        "low_income",
        "享受农村低保",
        "receives rural dibao",
        "未享受农村低保",
        "does not receive dibao",
    ),
    "tekun": R(
        "lack_of_labour",
        "享受特困供养",
        "receives tekun support",
        "未享受特困供养",
        "does not receive tekun support",
    ),
    "relocated": R(
        "other", "易地扶贫搬迁户", "relocated under poverty relocation", "非搬迁户", "not relocated"
    ),
    "migrant_workers": R(
        "unstable_employment",
        "外出务工 {migrant_workers} 人",
        "{migrant_workers} members working outside the county",
    ),
    "medical_insured": R(
        "illness",
        "全部成员参加基本医保",
        "every member has basic medical insurance",
        "有成员未参加基本医保",
        "some members lack basic medical insurance",
    ),
    "housing_safe": R(
        "housing", "住房安全", "the house is safe", "住房不安全", "the house is unsafe"
    ),
    "water_safe": R(
        "drinking_water",
        "饮水安全",
        "drinking water is safe",
        "饮水不安全",
        "drinking water is unsafe",
    ),
    "dropout": R(
        "schooling",
        "有义务教育阶段辍学儿童",
        "a compulsory-age child is out of school",
        "无辍学",
        "no child out of school",
    ),
    "pc_income_to_line": R(
        "low_income",
        "人均纯收入 {pc_net_income} 元，为监测线 {monitoring_line} 元的 {pc_income_to_line}",
        "per-capita net income {pc_net_income} yuan, {pc_income_to_line} of the {monitoring_line}-yuan monitoring line",
    ),
    "pc_income_to_dibao": R(
        "low_income",
        "人均纯收入为农村低保标准 {dibao_line} 元的 {pc_income_to_dibao}",
        "per-capita net income is {pc_income_to_dibao} of the {dibao_line}-yuan rural dibao line",
    ),
    "adj_pc_income_to_line": R(
        "low_income",
        "扣除医疗和教育支出后人均收入 {adj_pc_income} 元，为监测线的 {adj_pc_income_to_line}",
        "after medical and schooling costs, {adj_pc_income} yuan per person, {adj_pc_income_to_line} of the line",
    ),
    "wage_pc_to_line": R(
        "unstable_employment", "工资性收入 {income_wage} 元", "wage income {income_wage} yuan"
    ),
    "business_pc_to_line": R(
        "business_failure",
        "生产经营净收入 {income_business} 元",
        "net farming and business income {income_business} yuan",
    ),
    "transfer_pc_to_line": R(
        "low_income", "转移性收入 {income_transfer} 元", "transfer income {income_transfer} yuan"
    ),
    "property_pc_to_line": R(
        "low_income", "财产性收入 {income_property} 元", "property income {income_property} yuan"
    ),
    "wage_share": R(
        "unstable_employment",
        "工资性收入占总收入的 {wage_share}",
        "wages are {wage_share} of gross income",
    ),
    "transfer_share": R(
        "low_income",
        "转移性收入占总收入的 {transfer_share}",
        "transfers are {transfer_share} of gross income",
    ),
    "medical_to_income": R(
        "illness",
        "医疗自付支出 {medical_expense} 元，占家庭纯收入的 {medical_to_income}",
        "out-of-pocket medical spending {medical_expense} yuan, {medical_to_income} of household net income",
    ),
    "education_to_income": R(
        "schooling",
        "教育支出 {education_expense} 元，占家庭纯收入的 {education_to_income}",
        "schooling costs {education_expense} yuan, {education_to_income} of household net income",
    ),
    "loss_to_income": R(
        "disaster",
        "灾害或意外损失 {disaster_loss} 元，占家庭纯收入的 {loss_to_income}",
        "disaster or accident losses {disaster_loss} yuan, {loss_to_income} of household net income",
    ),
    "medical_pc_to_line": R(
        "illness",
        "人均医疗自付支出 {medical_pc} 元",
        "out-of-pocket medical spending {medical_pc} yuan per person",
    ),
    "education_pc_to_line": R(
        "schooling",
        "人均教育支出 {education_pc} 元",
        "schooling costs {education_pc} yuan per person",
    ),
    "loss_pc_to_line": R(
        "disaster", "人均灾害损失 {loss_pc} 元", "disaster losses {loss_pc} yuan per person"
    ),
    "debt_pc_to_line": R("business_failure", "家庭负债 {debt} 元", "household debt {debt} yuan"),
    "dependency_ratio": R(
        "lack_of_labour",
        "老人和儿童占家庭人口的 {dependency_ratio}",
        "the old and the young are {dependency_ratio} of members",
    ),
    "labor_share": R(
        "lack_of_labour", "劳动力占家庭人口的 {labor_share}", "{labor_share} of members can work"
    ),
    "employment_intensity": R(
        "unstable_employment",
        "劳动力务工时间为全年的 {employment_intensity}（共 {months_employed} 人月）",
        "workers were employed {employment_intensity} of the year ({months_employed} person-months)",
    ),
    "migrant_share": R(
        "unstable_employment",
        "外出务工人数占劳动力的 {migrant_share}",
        "{migrant_share} of workers work outside the county",
    ),
    "uninsured_ill": R(
        "illness",
        "有重病或慢性病成员且未全员参保",
        "a member is seriously or chronically ill and not everyone is insured",
        "无未参保的患病成员",
        "no ill member lacks insurance",
    ),
    "guarantee_gaps": R(
        "other",
        "住房、饮水、教育、医保保障缺口 {guarantee_gaps} 项",
        "{guarantee_gaps} gap(s) in housing, water, schooling and medical cover",
    ),
    "monitoring_line": R(
        "low_income",
        "当地监测线 {monitoring_line} 元",
        "local monitoring line {monitoring_line} yuan",
    ),
    "has_previous": R(
        "other",
        "有上期监测记录",
        "a previous record is known",
        "无上期监测记录",
        "no previous record is known",
    ),
    "income_change": R(
        "low_income",
        "家庭纯收入比上期变化 {income_change}",
        "household net income changed {income_change} since the last period",
    ),
    "d_pc_income_to_line": R(
        "low_income",
        "人均纯收入比上期变化 {d_pc_income} 元",
        "per-capita net income changed by {d_pc_income} yuan since the last period",
    ),
    "d_medical_pc_to_line": R(
        "illness",
        "人均医疗支出比上期变化 {d_medical_pc} 元",
        "medical spending per person changed by {d_medical_pc} yuan since the last period",
    ),
    "d_employment_intensity": R(
        "unstable_employment",
        "务工时间比上期变化 {d_employment_intensity}",
        "time in work changed by {d_employment_intensity} of the year since the last period",
    ),
    "d_household_size": R(
        "other",
        "家庭人口比上期变化 {d_household_size} 人",
        "household size changed by {d_household_size} since the last period",
    ),
    "d_labor_count": R(
        "lack_of_labour",
        "劳动力比上期变化 {d_labor_count} 人",
        "workers changed by {d_labor_count} since the last period",
    ),
    **{name: R(*texts) for name, texts in HISTORY_REASON_TEXTS.items()},
    "asset_income_share": R(
        "low_income",
        "帮扶资产预期收益占家庭纯收入的 {asset_income_share}",
        "expected income from assistance assets is {asset_income_share} of net income",
    ),
    "asset_pc_to_line": R(
        "low_income",
        "人均帮扶资产预期收益为监测线的 {asset_pc_to_line}",
        "expected asset income per person is {asset_pc_to_line} of the line",
    ),
}

FEATURE_RISK_TYPE: dict[str, str] = {name: r.risk_type for name, r in REASONS.items()}

_MONEY_KEYS = {
    "income_wage", "income_business", "income_property", "income_transfer", "medical_expense",
    "education_expense", "disaster_loss", "debt", "pc_net_income", "monitoring_line", "dibao_line",
    "adj_pc_income", "medical_pc", "education_pc", "loss_pc", "d_pc_income", "d_medical_pc",
}  # fmt: skip
_PCT_KEYS = {
    "pc_income_to_line", "pc_income_to_dibao", "adj_pc_income_to_line", "wage_share", "transfer_share",
    "medical_to_income", "education_to_income", "loss_to_income", "dependency_ratio", "labor_share",
    "employment_intensity", "migrant_share",
    "h_pc_income_to_line_l1", "h_pc_income_to_line_l2", "h_pc_income_to_line_l3",
    "h_pc_income_to_line_mean", "h_pc_income_to_line_min", "h_pc_income_volatility",
    "h_medical_to_income_l1", "h_medical_to_income_l2", "h_education_to_income_l1",
    "h_education_to_income_l2", "h_employment_intensity_l1", "h_employment_intensity_l2",
    "h_migrant_share_l1", "h_migrant_share_l2", "asset_income_share", "asset_pc_to_line",
}  # fmt: skip
_SIGNED_PCT_KEYS = {"income_change", "d_employment_intensity", "h_pc_income_trend"}
_SIGNED_INT_KEYS = {
    "d_household_size", "d_labor_count", "h_d_household_size_l2", "h_d_household_size_l3",
    "h_d_labor_count_l2", "h_d_labor_count_l3",
}  # fmt: skip


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or v is np.nan


def _fmt(key: str, v: Any, lang: str) -> str:
    if _missing(v):
        return "未知" if lang == "zh" else "unknown"
    if key in _MONEY_KEYS:
        return f"{v:+,.0f}" if key.startswith("d_") else f"{v:,.0f}"
    if key in _PCT_KEYS:
        return f"{v * 100:.0f}%"
    if key in _SIGNED_PCT_KEYS:
        return f"{v * 100:+.0f}%"
    if key in _SIGNED_INT_KEYS:
        return f"{v:+.0f}"
    if isinstance(v, float) and v.is_integer():
        return f"{v:.0f}"
    if isinstance(v, float):
        return f"{v:.1f}"
    return str(v)


def reason_context(record: dict[str, Any], features: dict[str, float]) -> dict[str, Any]:
    """Raw values a sentence may show: record fields, features, and yuan figures behind the ratios."""
    ctx: dict[str, Any] = {**record, **features}
    line = features.get("monitoring_line", float("nan"))
    size = record.get("household_size") or float("nan")
    ratio = features.get("pc_income_to_line", float("nan"))
    ctx["pc_net_income"] = ratio * line
    if features.get("pc_income_to_dibao") and ratio == ratio and features["pc_income_to_dibao"]:
        ctx["dibao_line"] = ratio * line / features["pc_income_to_dibao"]
    else:
        ctx["dibao_line"] = float("nan")
    ctx["adj_pc_income"] = features.get("adj_pc_income_to_line", float("nan")) * line
    for key, field in (
        ("medical_pc", "medical_expense"),
        ("education_pc", "education_expense"),
        ("loss_pc", "disaster_loss"),
    ):
        v = record.get(field)
        ctx[key] = float("nan") if _missing(v) else v / size
    ctx["d_pc_income"] = features.get("d_pc_income_to_line", float("nan")) * line
    ctx["d_medical_pc"] = features.get("d_medical_pc_to_line", float("nan")) * line
    return ctx


def sentence(feature: str, ctx: dict[str, Any], lang: str) -> str:
    """The plain sentence for one feature of one household, in ``lang`` ("zh" or "en")."""
    r = REASONS[feature]
    value = ctx.get(feature)
    template = r.zh if lang == "zh" else r.en
    if r.zh_false is not None and not _missing(value) and not value:
        template = r.zh_false if lang == "zh" else r.en_false  # type: ignore[assignment]
    if r.zh_false is not None and _missing(value):
        return f"{r.zh}：情况未知" if lang == "zh" else f"{r.en}: not known"
    keys = {k: _fmt(k, ctx.get(k), lang) for k in _placeholders(template)}
    return template.format(**keys)


def _placeholders(template: str) -> list[str]:
    import string

    return [f for _, f, _, _ in string.Formatter().parse(template) if f]


def top_reasons(
    record: dict[str, Any],
    features: dict[str, float],
    contributions: np.ndarray,
    feature_names: tuple[str, ...] = FEATURE_NAMES,
    k: int = 5,
) -> list[dict[str, Any]]:
    """The ``k`` features that pushed this household's risk up the most, as API reasons."""
    order = np.argsort(-contributions, kind="stable")
    ctx = reason_context(record, features)
    out = []
    for j in order[:k]:
        c = float(contributions[j])
        if c <= 0:
            break
        name = feature_names[j]
        v = features.get(name)
        out.append(
            {
                "feature": name,
                "value": None if _missing(v) else float(v),
                "contribution": round(c, 6),
                "risk_type": FEATURE_RISK_TYPE[name],
                "text_zh": sentence(name, ctx, "zh"),
                "text_en": sentence(name, ctx, "en"),
            }
        )
    return out


# A model-derived risk type is named only when its features together push the log-odds up by
# at least this much, and at most this many are named: a caseworker gets the causes that
# matter, not every type with a sliver of positive contribution.
MIN_TYPE_CONTRIBUTION = 0.10
MAX_MODEL_TYPES = 3


def risk_types_from_contributions(
    contributions: np.ndarray,
    feature_names: tuple[str, ...] = FEATURE_NAMES,
    min_total: float = MIN_TYPE_CONTRIBUTION,
    max_types: int = MAX_MODEL_TYPES,
) -> list[tuple[str, float]]:
    """Contributions summed per policy risk type: the largest positive ones, most important first."""
    totals: dict[str, float] = {}
    for name, c in zip(feature_names, contributions, strict=True):
        rt = FEATURE_RISK_TYPE[name]
        totals[rt] = totals.get(rt, 0.0) + float(c)
    ranked = sorted(((rt, v) for rt, v in totals.items() if v >= min_total), key=lambda t: -t[1])
    return ranked[:max_types]


# Short display names (zh, en) of each feature, for chart labels (the caseworker pages' waterfall).
FEATURE_LABELS: dict[str, tuple[str, str]] = {
    "household_size": ("家庭人口", "household size"),
    "labor_count": ("劳动力人数", "workers"),
    "elderly_count": ("老人人数", "elderly members"),
    "children_count": ("儿童人数", "children"),
    "students_compulsory": ("义务教育学生", "pupils"),
    "students_noncompulsory": ("高中及以上在读", "upper-school students"),
    "disabled_count": ("残疾人数", "disabled members"),
    "chronic_ill_count": ("重病慢病人数", "chronically ill"),
    "head_age": ("户主年龄", "head's age"),
    "head_female": ("女性户主", "female head"),
    "head_education_years": ("户主受教育年限", "head's schooling"),
    "ethnic_minority": ("少数民族", "ethnic minority"),
    "formerly_poor": ("原建档立卡户", "formerly poor"),
    "dibao": ("低保", "dibao"),
    "tekun": ("特困供养", "tekun support"),
    "relocated": ("易地搬迁", "relocated"),
    "migrant_workers": ("外出务工人数", "migrant workers"),
    "medical_insured": ("医保参保", "medical insurance"),
    "housing_safe": ("住房安全", "safe housing"),
    "water_safe": ("饮水安全", "safe water"),
    "dropout": ("辍学", "school dropout"),
    "pc_income_to_line": ("人均收入/监测线", "income vs line"),
    "pc_income_to_dibao": ("人均收入/低保线", "income vs dibao"),
    "adj_pc_income_to_line": ("扣除刚性支出后收入", "income after rigid costs"),
    "wage_pc_to_line": ("工资性收入", "wage income"),
    "business_pc_to_line": ("经营性收入", "business income"),
    "transfer_pc_to_line": ("转移性收入", "transfer income"),
    "property_pc_to_line": ("财产性收入", "property income"),
    "wage_share": ("工资收入占比", "wage share"),
    "transfer_share": ("转移收入占比", "transfer share"),
    "medical_to_income": ("医疗支出占收入", "medical vs income"),
    "education_to_income": ("教育支出占收入", "schooling vs income"),
    "loss_to_income": ("灾害损失占收入", "losses vs income"),
    "medical_pc_to_line": ("人均医疗支出", "medical per person"),
    "education_pc_to_line": ("人均教育支出", "schooling per person"),
    "loss_pc_to_line": ("人均灾害损失", "losses per person"),
    "debt_pc_to_line": ("家庭负债", "debt"),
    "dependency_ratio": ("老幼占比", "dependency ratio"),
    "labor_share": ("劳动力占比", "worker share"),
    "employment_intensity": ("务工时间", "time in work"),
    "migrant_share": ("外出务工占比", "migrant share"),
    "uninsured_ill": ("患病未参保", "ill and uninsured"),
    "guarantee_gaps": ("保障缺口", "guarantee gaps"),
    "monitoring_line": ("当地监测线", "local line"),
    "has_previous": ("有上期记录", "previous record"),
    "income_change": ("收入变化", "income change"),
    "d_pc_income_to_line": ("人均收入变化", "change in income"),
    "d_medical_pc_to_line": ("医疗支出变化", "change in medical"),
    "d_employment_intensity": ("务工时间变化", "change in work"),
    "d_household_size": ("人口变化", "change in size"),
    "d_labor_count": ("劳动力变化", "change in workers"),
    "h_n_lags": ("往期记录数", "earlier records"),
    "h_pc_income_to_line_l1": ("上期收入/监测线", "income vs line, last period"),
    "h_pc_income_to_line_l2": ("前两期收入/监测线", "income vs line, 2 periods back"),
    "h_pc_income_to_line_l3": ("前三期收入/监测线", "income vs line, 3 periods back"),
    "h_pc_income_to_line_mean": ("往期平均收入", "earlier income, mean"),
    "h_pc_income_to_line_min": ("往期最低收入", "earlier income, lowest"),
    "h_pc_income_trend": ("收入趋势", "income trend"),
    "h_pc_income_volatility": ("收入波动", "income volatility"),
    "h_lags_below_line": ("往期低于监测线", "periods below the line"),
    "h_lags_below_1_5_dibao": ("往期低于1.5倍低保", "periods below 1.5x dibao"),
    "h_medical_to_income_l1": ("上期医疗支出占收入", "medical vs income, last period"),
    "h_medical_to_income_l2": ("前两期医疗支出占收入", "medical vs income, 2 periods back"),
    "h_education_to_income_l1": ("上期教育支出占收入", "schooling vs income, last period"),
    "h_education_to_income_l2": ("前两期教育支出占收入", "schooling vs income, 2 periods back"),
    "h_employment_intensity_l1": ("上期务工时间", "time in work, last period"),
    "h_employment_intensity_l2": ("前两期务工时间", "time in work, 2 periods back"),
    "h_migrant_share_l1": ("上期外出务工占比", "migrant share, last period"),
    "h_migrant_share_l2": ("前两期外出务工占比", "migrant share, 2 periods back"),
    "h_months_since_disaster": ("距上次灾害损失", "since the last disaster"),
    "h_months_since_medical_shock": ("距上次大额医疗支出", "since the last medical shock"),
    "h_months_since_income_drop": ("距上次收入下降", "since the last income drop"),
    "h_d_household_size_l2": ("两期人口变化", "change in size, 2 periods"),
    "h_d_household_size_l3": ("三期人口变化", "change in size, 3 periods"),
    "h_d_labor_count_l2": ("两期劳动力变化", "change in workers, 2 periods"),
    "h_d_labor_count_l3": ("三期劳动力变化", "change in workers, 3 periods"),
    "asset_income_share": ("资产收益占收入", "asset income share"),
    "asset_pc_to_line": ("人均资产收益", "asset income per person"),
}
