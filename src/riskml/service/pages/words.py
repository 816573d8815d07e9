"""The pages' words in Chinese and English, and the labels of levels, rhythms, rules and facts.

Every user-facing string of the caseworker pages is here as a (Chinese, English)
pair; the small lookup functions pick one for a language and fall back to the
code itself (or "—") when a label is unknown.
"""

from __future__ import annotations

import csv
from functools import lru_cache

from riskml import config
from riskml.model.reasons import FEATURE_LABELS
from riskml.policy.risk_types import RISK_TYPES

LANGS = ("zh", "en")
LEVELS = ("red", "yellow", "green")

# UI strings: key -> (Chinese, English). Reason sentences come from the ledger
# (written by riskml.reasons), risk types and measures from riskml.risk_types.
WORDS: dict[str, tuple[str, str]] = {
    "cases": ("个案工作台", "Cases"),
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
    "line_note": ("（{year}年标准，{basis}）", " ({year} line, {basis})"),
    "basis_published": ("已公布", "published"),
    "basis_announced": ("已宣布", "announced"),
    "basis_estimate": ("估算", "estimate"),
    "basis_provisional": (
        "暂用上年标准，待公布",
        "provisional: last year's line until the new one is entered",
    ),
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
# short names of the policy rules (riskml/policy/rules/default.yaml); an unknown id shows as itself
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
    return {k: v[i] for k, v in WORDS.items()}


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
