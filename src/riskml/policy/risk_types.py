"""Policy risk types (致贫/返贫风险类型) and the support measures that answer them.

One vocabulary for the rules file, the model's explanations grouped by type,
the API's ``risk_types`` and ``measures``, and the caseworker pages.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RiskType:
    code: str
    zh: str
    en: str
    # recommended support (分层分类帮扶), Chinese and English
    measures_zh: tuple[str, ...]
    measures_en: tuple[str, ...]


RISK_TYPES: dict[str, RiskType] = {
    rt.code: rt
    for rt in (
        RiskType(
            "illness",
            "因病",
            "illness",
            ("医疗救助", "落实基本医保、大病保险和医疗救助三重保障", "家庭医生签约服务"),
            (
                "medical assistance",
                "basic medical insurance, critical-illness insurance and medical aid",
                "family-doctor contract services",
            ),
        ),
        RiskType(
            "disability",
            "因残",
            "disability",
            ("残疾人两项补贴", "康复服务", "辅助性就业"),
            ("the two disability allowances", "rehabilitation services", "supported employment"),
        ),
        RiskType(
            "schooling",
            "因学",
            "schooling",
            ("学生资助（助学金、生源地助学贷款）", "控辍保学劝返"),
            ("student aid (grants, student loans)", "bring out-of-school children back to school"),
        ),
        RiskType(
            "disaster",
            "因自然灾害",
            "natural disaster",
            ("受灾群众生活救助", "农业保险理赔", "灾后住房恢复重建"),
            (
                "disaster relief",
                "agricultural insurance claims",
                "post-disaster housing reconstruction",
            ),
        ),
        RiskType(
            "accident",
            "因意外事故",
            "accident",
            ("临时救助", "意外伤害保险理赔"),
            ("temporary assistance", "accident insurance claims"),
        ),
        RiskType(
            "business_failure",
            "因产业项目失败",
            "failed business",
            ("产业帮扶和技术指导", "小额信贷展期或续贷"),
            ("business support and technical guidance", "extension of micro-credit"),
        ),
        RiskType(
            "unstable_employment",
            "因务工就业不稳",
            "unstable employment",
            ("职业技能培训", "公益性岗位", "就业帮扶车间和岗位对接"),
            ("vocational training", "public-welfare jobs", "job matching and local workshops"),
        ),
        RiskType(
            "lack_of_labour",
            "缺劳动力",
            "lack of labour",
            ("纳入低保或特困供养兜底保障", "养老服务"),
            ("safety net: dibao or extreme-poverty support (tekun)", "elderly care services"),
        ),
        RiskType(
            "housing",
            "住房安全",
            "unsafe housing",
            ("农村危房改造",),
            ("rural dilapidated-house renovation",),
        ),
        RiskType(
            "drinking_water",
            "饮水安全",
            "unsafe drinking water",
            ("农村供水工程维修和改造",),
            ("rural water-supply works",),
        ),
        RiskType(
            "low_income",
            "收入低",
            "low income",
            ("产业和就业帮扶增收", "按规定纳入低保"),
            ("income support through jobs and local industry", "dibao where eligible"),
        ),
        RiskType(
            "other",
            "其他",
            "other",
            ("入户核实后制定帮扶措施",),
            ("support planned after the home visit",),
        ),
    )
}

RISK_TYPE_CODES: tuple[str, ...] = tuple(RISK_TYPES)


def measures_for(codes: list[str]) -> list[dict[str, object]]:
    """Recommended support for each risk type, in the given order."""
    out = []
    for code in codes:
        rt = RISK_TYPES[code]
        out.append(
            {
                "risk_type": code,
                "risk_type_zh": rt.zh,
                "risk_type_en": rt.en,
                "measures_zh": list(rt.measures_zh),
                "measures_en": list(rt.measures_en),
            }
        )
    return out
