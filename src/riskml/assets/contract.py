"""The assistance-asset record (帮扶资产台账): the single source of truth for its fields.

One row per asset. Everything that needs to know the record (``riskml.assets.validation``,
the file readers of ``riskml.assets.io``, the event payloads of ``riskml.assets.events``,
the document ``docs/assets.md`` made by ``riskml.assets.doc``, the simulator and the model)
reads ``FIELDS`` below: name, type, allowed values with their Chinese labels, whether the
field is required, and its meaning in Chinese and English.

Ids are pseudonymous (``asset_id``, ``project_id``, a beneficiary's ``household_id``, a
caretaker's id): never a name or an ID-card number. Money is yuan. Dates are ``YYYY-MM-DD``.
The vocabulary follows the 2021 national guidance's three categories and the fields seen in
county rules (shared/domain.md, "Assistance assets").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["id", "text", "int", "float", "date", "choice", "funding", "beneficiaries"]

ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
DATE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
COUNTY_PATTERN = r"^[0-9]{6}$"
VILLAGE_PATTERN = r"^[0-9]{12}$"
TEXT_MAX = 200  # characters of a free-text field (an organisation's name)
# No single assistance asset comes near 100 billion yuan: a larger value is an error in the data.
MONEY_MAX = 1e11
# Funding may exceed the original value by rounding only: this many yuan, or this share of it.
FUNDING_TOLERANCE_YUAN = 1.0
FUNDING_TOLERANCE_SHARE = 0.001

CATEGORIES: dict[str, str] = {
    "operating": "经营性",
    "public_welfare": "公益性",
    "household": "到户类",
}
SUBTYPES: dict[str, str] = {
    "industrial_base": "产业基地",
    "processing": "加工厂",
    "solar": "光伏电站",
    "workshop": "帮扶车间",
    "tourism_ecommerce": "乡村旅游或电商",
    "road": "道路",
    "water_supply": "供水工程",
    "power": "电力设施",
    "health": "卫生设施",
    "education_culture": "教育文化设施",
    "livestock": "牲畜",
    "other": "其他",
}
FORMS: dict[str, str] = {
    "fixed": "固定资产",
    "equity_debt": "股权或债权",
    "biological": "生物资产",
}
FUNDING_SOURCES: dict[str, str] = {
    "linkage_fund": "衔接资金",
    "integrated_agri_fund": "整合涉农资金",
    "east_west": "东西部协作",
    "paired_assistance": "对口帮扶",
    "donation": "社会捐赠",
    "other": "其他",
}
OWNER_TYPES: dict[str, str] = {
    "household": "农户",
    "village_collective": "村集体经济组织",
    "state_department": "国家或部门",
}
RIGHTS_STATUSES: dict[str, str] = {
    "unconfirmed": "未确权",
    "confirmed": "已确权",
    "certified": "已颁证",
    "handed_over": "已移交",
}
OPERATING_MODES: dict[str, str] = {
    "own": "自主经营",
    "entrusted": "委托经营",
    "cooperative": "合作经营",
    "leased": "租赁经营",
    "shareholding": "入股经营",
}
STATUSES: dict[str, str] = {
    "building": "在建",
    "operating": "运营",
    "idle": "闲置",
    "low_efficiency": "低效",
    "suspended": "停用",
    "disposed": "已处置",
}


@dataclass(frozen=True)
class AssetField:
    """One field of the asset record."""

    name: str
    kind: Kind
    required: bool
    zh: str
    en: str
    choices: dict[str, str] = field(default_factory=dict)  # value -> Chinese label
    minimum: float | None = None
    maximum: float | None = None
    pattern: str | None = None
    # a value that may name a person or an organisation: never quoted in a problem
    quoted: bool = True

    def rule_text(self) -> str:
        """The field's own rule in words (the document's table)."""
        if self.choices:
            return "one of " + ", ".join(f"{k} ({v})" for k, v in self.choices.items())
        if self.kind == "funding":
            return (
                "list of {source, amount}; source one of "
                + ", ".join(f"{k} ({v})" for k, v in FUNDING_SOURCES.items())
                + "; amount ≥ 0"
            )
        if self.kind == "beneficiaries":
            return "list of {household_id, share}; share in (0, 1], shares sum ≤ 1"
        if self.kind == "date":
            return "a real date YYYY-MM-DD"
        if self.kind == "text":
            return f"text of at most {TEXT_MAX} characters"
        parts = [f"matches {self.pattern}"] if self.pattern else []
        if self.minimum is not None and self.maximum is not None:
            parts.append(f"{self.minimum:g}–{self.maximum:g}")
        elif self.minimum is not None:
            parts.append(f"≥ {self.minimum:g}")
        return "; ".join(parts)


def _choice(name: str, required: bool, zh: str, en: str, choices: dict[str, str]) -> AssetField:
    return AssetField(name, "choice", required, zh, en, choices=choices)


def _money(name: str, required: bool, zh: str, en: str) -> AssetField:
    return AssetField(name, "float", required, zh, en, minimum=0, maximum=MONEY_MAX)


def _date(name: str, zh: str, en: str) -> AssetField:
    return AssetField(name, "date", False, zh, en, pattern=DATE_PATTERN)


FIELDS: tuple[AssetField, ...] = (
    AssetField("asset_id", "id", True, "资产编号（化名编号）",
               "pseudonymous asset id, stable for the asset's life", pattern=ID_PATTERN),
    AssetField("project_id", "id", True, "形成资产的项目编号",
               "id of the project that built the asset (registration precedes every project)",
               pattern=ID_PATTERN),
    AssetField("build_year", "int", True, "建设年度", "year the asset was built",
               minimum=1980, maximum=2100),
    _choice("category", True, "资产类别", "category (2021 national guidance)", CATEGORIES),
    _choice("subtype", True, "资产类型", "kind of asset", SUBTYPES),
    _choice("form", True, "资产形态", "form of the asset", FORMS),
    AssetField("funding", "funding", True, "资金来源及金额",
               "funding sources with amounts (yuan); their sum ≤ original_value"),
    _money("original_value", True, "资产原值（元）", "original value, yuan"),
    _money("book_value", False, "账面价值（元）", "book value, yuan (≤ original_value)"),
    AssetField("county_code", "id", True, "所在县（GB/T 2260）", "county, GB/T 2260",
               pattern=COUNTY_PATTERN),
    AssetField("village_code", "id", True, "所在村（12位，以县代码开头）",
               "village, 12 digits starting with county_code", pattern=VILLAGE_PATTERN),
    _choice("owner_type", True, "产权主体类型", "kind of owner", OWNER_TYPES),
    AssetField("owner", "text", False, "产权主体",
               "owner: an organisation's name, or the pseudonymous household_id when "
               "owner_type is household", quoted=False),
    _choice("rights_status", True, "确权状态", "ownership (rights) status", RIGHTS_STATUSES),
    _date("accepted_date", "竣工验收日期", "date of acceptance (验收)"),
    _date("rights_date", "确权（移交）日期", "date of the latest rights step; required unless "
          "unconfirmed"),
    AssetField("operator", "text", False, "经营主体", "operator (an organisation)",
               quoted=False),
    _choice("operating_mode", False, "经营方式", "operating mode", OPERATING_MODES),
    _date("contract_start", "经营合同起始日期", "operating contract starts"),
    _date("contract_end", "经营合同到期日期", "operating contract ends (after contract_start)"),
    AssetField("guaranteed_return_rate", "float", False, "保底收益率",
               "guaranteed yearly return as a share of original_value (0.05 = 5%)",
               minimum=0, maximum=1),
    AssetField("caretaker", "id", False, "管护责任人（化名编号）",
               "pseudonymous id of the person or unit responsible for upkeep (管护责任人)",
               pattern=ID_PATTERN, quoted=False),
    _money("maintenance_fund", False, "管护经费（元/年）", "maintenance fund, yuan a year"),
    _choice("status", True, "资产状态", "status of the asset", STATUSES),
    AssetField("beneficiaries", "beneficiaries", False, "受益农户及份额",
               "beneficiary households (household_id of the household record) and their "
               "shares of the asset's distributed income", quoted=False),
)  # fmt: skip

FIELD_BY_NAME: dict[str, AssetField] = {f.name: f for f in FIELDS}
FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in FIELDS)
LIST_FIELDS: tuple[str, ...] = tuple(
    f.name for f in FIELDS if f.kind in ("funding", "beneficiaries")
)
KEY = "asset_id"

# --------------------------------------------------------------------------- the rules' words
MISSING_RULE = "required, may not be missing"
COLUMN_ABSENT_RULE = "column is missing from the file"
UNKNOWN_RULE = "unknown field: not in the asset record"
OBJECT_RULE = "must be a JSON object"
STRING_RULE = "must be a string"
NUMBER_RULE = "must be a number"
FINITE_RULE = "must be finite"
WHOLE_RULE = "must be a whole number"
DATE_RULE = "must be a real date YYYY-MM-DD"
LIST_RULE = "must be a list (in a CSV cell: JSON text)"
TEXT_RULE = f"must be text of at most {TEXT_MAX} characters"
SHARE_RULE = "must be a share in (0, 1]"
SHARES_SUM_RULE = "shares must sum to at most 1"
REPEATED_HOUSEHOLD_RULE = "household appears twice among the beneficiaries"
FUNDING_SUM_RULE = "funding amounts must sum to at most original_value"
BOOK_RULE = "must be ≤ original_value"
VILLAGE_RULE = "must start with county_code"
PROVINCE_RULE = "first two digits must be a province code (GB/T 2260)"
ACCEPTED_BEFORE_BUILD_RULE = "must not be before build_year"
RIGHTS_BEFORE_ACCEPTED_RULE = "must not be before accepted_date"
RIGHTS_DATE_RULE = "required when rights_status is not unconfirmed"
CONTRACT_ORDER_RULE = "must be after contract_start"
CONTRACT_START_RULE = "required when contract_end is given"
HOUSEHOLD_OWNER_RULE = "must be a pseudonymous household_id when owner_type is household"
HOUSEHOLD_CATEGORY_RULE = "must be household for a household (到户类) asset"
DUPLICATE_RULE_PREFIX = "duplicate asset_id: same as record "


def choice_rule(f: AssetField) -> str:
    return "must be one of " + ", ".join(f.choices)


def pattern_rule(f: AssetField) -> str:
    return f"must match {f.pattern}"


def min_rule(f: AssetField) -> str:
    return f"must be ≥ {f.minimum:g}"


def max_rule(f: AssetField) -> str:
    return f"must be ≤ {f.maximum:g}"


def duplicate_rule(earlier: int) -> str:
    return f"{DUPLICATE_RULE_PREFIX}{int(earlier)}"


def label(field_name: str, value: Any) -> str | None:
    """The Chinese label of a choice's value (None for another field or an unknown value)."""
    f = FIELD_BY_NAME.get(field_name)
    return f.choices.get(value) if f is not None and isinstance(value, str) else None


__all__ = [
    "CATEGORIES", "FIELDS", "FIELD_BY_NAME", "FIELD_NAMES", "FORMS", "FUNDING_SOURCES", "KEY",
    "LIST_FIELDS", "OPERATING_MODES", "OWNER_TYPES", "RIGHTS_STATUSES", "STATUSES", "SUBTYPES",
    "AssetField", "label",
]  # fmt: skip
