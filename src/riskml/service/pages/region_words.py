"""The regional pages' words in Chinese and English (as ``words`` and ``case_words``).

``region_words(lang)`` is the pages' vocabulary with these added; ``level_word`` names an
area level; ``COLUMNS`` are the child-area table's columns, in the order the page and its CSV
show them (the CSV's header is the page's, in the page's language).
"""

from __future__ import annotations

from riskml.service.pages.words import LANGS, words

LEVEL_WORDS: dict[str, tuple[str, str]] = {
    "province": ("省", "Province"),
    "prefecture": ("市（州）", "Prefecture"),
    "county": ("县（市、区）", "County"),
    "township": ("乡镇", "Township"),
    "village": ("村", "Village"),
}

# the child table's columns: key -> (Chinese, English)
COLUMNS: dict[str, tuple[str, str]] = {
    "code": ("区划代码", "Code"),
    "name": ("名称", "Name"),
    "key": ("重点帮扶", "Key county"),
    "households": ("监测农户", "Households"),
    "flagged": ("预警户", "Flagged"),
    "flagged_rules": ("规则预警", "By rules"),
    "flagged_model": ("模型预警", "By model"),
    "expected": ("预计返贫致贫户", "Expected at risk"),
    "interval": ("90%区间", "90% interval"),
    "expected_change": ("较上期", "Change"),
    "monitored": ("监测对象", "Monitored"),
    "confirmed": ("本期认定", "Confirmed"),
    "overdue": ("逾期事项", "Overdue"),
    "eliminated": ("本期消除风险", "Eliminated"),
    "top_risk_type": ("主要风险类型", "Top risk type"),
}

REGION_WORDS: dict[str, tuple[str, str]] = {
    "app": ("防返贫监测 · 区域监测", "Poverty-risk monitoring · regions"),
    "regions": ("区域监测", "Regions"),
    "regions_intro": (
        "各下级地区的预警户、预计明年返贫致贫户数（90%区间）和监测帮扶进展。只显示户数，不显示农户信息。",
        "Per area below: flagged households, the expected number falling below the line next year "
        "(90% interval) and the case loop's progress. Counts only, no household data.",
    ),
    "your_areas": ("您的地区", "Your areas"),
    "period": ("期次", "Period"),
    "choose_period": ("查看", "Show"),
    "children_of": ("下辖{level}", "{level}s within"),
    "no_children": ("本期没有下级地区的数据。", "No area below has data in this period."),
    "no_data": ("本期没有该地区的数据。", "No data for this area in this period."),
    "export": ("导出 CSV", "Export CSV"),
    "brief": ("月度简报", "Monthly brief"),
    "print": ("打印", "Print"),
    "national_key": ("国家重点帮扶县", "national key county"),
    "provincial_key": ("省级重点帮扶县", "provincial key county"),
    "key_counties": ("国家重点帮扶县 {n} 个", "{n} national key counties"),
    "provincial_key_counties": ("省级重点帮扶县 {n} 个", "{n} provincial key counties"),
    "trend": ("预计户数走势", "Expected over periods"),
    "risk_mix": ("风险类型", "Risk types"),
    "risk_mix_note": (
        "深色：预警户；浅色：已认定的监测对象（按风险类型，一户可有多种）。",
        "Dark: flagged households; light: monitored households (by risk type; a household may have several).",
    ),
    "bar_flagged": ("预警", "flagged"),
    "bar_monitored": ("监测", "monitored"),
    "figures": ("主要指标", "Figures"),
    "scored": ("已评分", "Scored"),
    "open_cases": ("在办个案", "Open cases"),
    "days_to_confirm": ("平均认定天数", "Days to confirmation"),
    "supported_by": ("东西部协作支援省份", "Supported by (East-West)"),
    "expected_text": (
        "预计 {e} 户（90%区间 {lo}–{hi} 户）",
        "{e} households expected (90% interval {lo}–{hi})",
    ),
    "interval_note": (
        "预计户数是各户校准风险之和；区间假定各户相互独立，遇同一灾害等共同冲击时实际区间更宽。",
        "The expected number is the sum of calibrated risks; the interval assumes households are "
        "independent (a shared shock such as a disaster makes it wider).",
    ),
    "changes": ("较上期变化", "Changes since the previous period"),
    "previous_period": ("上期", "Previous period"),
    "no_previous": ("没有上期数据，无法比较。", "No previous period to compare with."),
    "top_risk_types": ("主要风险类型", "Top risk types"),
    "none": ("无", "none"),
    "type_changes": ("风险类型变化（预警户）", "Risk types that changed (flagged)"),
    "rising": ("预计户数上升最多的下级地区", "Areas below where the expected number rose most"),
    "no_rising": ("下级地区预计户数均未上升。", "The expected number rose in no area below."),
    "brief_of": ("{name} {period} 月度简报", "{name} monthly brief, {period}"),
    "printed_at": ("打印时间", "Printed"),
    "brief_counts_only": ("本简报只含户数统计，不含农户信息。", "Counts only; no household data."),
    "up": ("增加", "up"),
    "down": ("减少", "down"),
    "unchanged": ("持平", "unchanged"),
    "forbidden_region": (
        "您的密钥无权查看该地区。区域页面只显示密钥所属地区及其下级地区。",
        "Your key may not see this area. The regional pages show the key's own area and the areas within it.",
    ),
    "forbidden_role": (
        "区域页面仅供县、市（州）、省级区域密钥使用。个案工作密钥请使用走访名单。",
        "The regional pages are for county, prefecture and province keys. Caseworker keys use the worklist.",
    ),
    "not_found": ("没有这个地区", "No such area"),
    "not_found_msg": ("地区代码无效。", "The area code is not valid."),
    "brief_level": (
        "月度简报按县及以上地区提供。",
        "Briefs are for counties and the areas above them.",
    ),
    "back_regions": ("返回区域监测", "Back to regions"),
    "scope_areas": ("地区", "Areas"),
}


def region_words(lang: str) -> dict[str, str]:
    """The pages' words and the regional pages' words for a language."""
    i = LANGS.index(lang)
    return {**words(lang), **{k: v[i] for k, v in REGION_WORDS.items()}}


def level_word(level: str | None, lang: str) -> str:
    pair = LEVEL_WORDS.get(level or "")
    return pair[LANGS.index(lang)] if pair else ""


def column_words(lang: str) -> dict[str, str]:
    i = LANGS.index(lang)
    return {k: v[i] for k, v in COLUMNS.items()}
