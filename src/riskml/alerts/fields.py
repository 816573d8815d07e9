"""The department alert vocabulary: departments, their fields, and how each maps onto the record.

Each department that pushes screening data owns a few fields (``DEPARTMENTS``).
Every alert also carries the common fields (``COMMON_FIELDS``): its id, the
pseudonymous household id, the department, the county (scope, and the list of
unmatched alerts) and its month: ``period`` (YYYY-MM), or for event departments
(emergency management, public security) ``event_date`` (YYYY-MM-DD), whose month
is the period.

Each department field says how it maps onto the household record
(``riskml.data.schema``): ``set`` the record field to the alert's value; ``not``
(the record field is the negation of the alert's flag, applied only when the flag
is true: a false never marks a house safe); ``at_least_one`` (a true flag raises
a count to at least 1); ``minus_one`` (lower a count by one, never below its
floor); ``flag_false`` (a true flag sets the record flag to false). A field with
no mapping is alert-only: it is kept with the alert and read by the triggers.

This module holds the vocabulary and its documentation (``contract_markdown``,
docs/alerts.md); ``riskml.alerts.contract`` holds the ids, the validator and file
reading, and re-exports these names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from riskml.data.schema import FIELD_BY_NAME, MONEY_MAX
from riskml.policy.risk_types import RISK_TYPES

__all__ = [
    "ALERT_ID_PATTERN",
    "ALL_FIELDS",
    "COMMON_DESCRIPTIONS",
    "COMMON_FIELDS",
    "DEPARTMENTS",
    "DEPARTMENT_CODES",
    "EVENT_DATE_PATTERN",
    "FIELD_OWNER",
    "HOWS",
    "AlertField",
    "Department",
    "FieldMap",
    "contract_markdown",
    "department",
]

AlertKind = Literal["money", "bool", "int", "choice"]
How = Literal["set", "not", "at_least_one", "minus_one", "flag_false"]
HOWS: dict[str, str] = {
    "set": "the record field takes the alert's value",
    "not": "the record field becomes the negation of the flag, only when the flag is true",
    "at_least_one": "a true flag raises the count to at least 1",
    "minus_one": "the count is lowered by one (floor 0; household_size floor 1), once per month",
    "flag_false": "a true flag sets the record flag to false",
}
ALERT_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"
EVENT_DATE_PATTERN = r"^(19|20)[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"
COMMON_FIELDS: tuple[str, ...] = (
    "alert_id",
    "household_id",
    "department",
    "county_code",
    "period",
    "event_date",
)
COMMON_DESCRIPTIONS = {
    "alert_id": "optional; ≤ 64 characters of A-Z a-z 0-9 _ . : -, unique within the department; "
    "when absent, derived from the alert's content (the same alert gets the same id)",
    "household_id": "the record's pseudonymous household id ("
    + FIELD_BY_NAME["household_id"].pattern
    + "); never a name or ID-card number",
    "department": "the department code (table below)",
    "county_code": "county, 6 digits (GB/T 2260); required: scope of the alert, and the county "
    "whose list shows it when the household is unknown",
    "period": "month of the data (YYYY-MM); required for non-event departments",
    "event_date": "day of the event (YYYY-MM-DD); required for event departments, whose period "
    "is this date's month",
}


@dataclass(frozen=True)
class FieldMap:
    """How one alert field changes one household-record field (``when``: for a choice, its values)."""

    field: str
    how: How
    when: tuple[str, ...] = ()


@dataclass(frozen=True)
class AlertField:
    """One field a department owns: its type, range, and its mapping onto the household record."""

    name: str
    kind: AlertKind
    description: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    required: bool = False
    maps: tuple[FieldMap, ...] = ()

    @property
    def maps_to(self) -> str | None:
        """The household-record field this field changes (None: alert-only)."""
        return self.maps[0].field if self.maps else None

    @property
    def how(self) -> How | None:
        """How it changes ``maps_to`` (None: alert-only)."""
        return self.maps[0].how if self.maps else None

    def rule_text(self) -> str:
        """The field's type and range in words, as in the contract's table."""
        if self.kind == "choice":
            return "one of " + ", ".join(self.choices)
        if self.kind == "bool":
            return "true or false"
        lo = "" if self.minimum is None else f"{self.minimum:g}"
        hi = "" if self.maximum is None else f"{self.maximum:g}"
        whole = "whole number " if self.kind == "int" else ""
        return f"{whole}{lo}–{hi}"

    def mapping_text(self) -> str:
        """The mapping in words (``alert-only`` when none)."""
        if not self.maps:
            return "alert-only"
        parts = []
        for m in self.maps:
            when = f" when {' or '.join(m.when)}" if m.when else ""
            parts.append(f"{m.field} ({m.how}){when}")
        return "; ".join(parts)


@dataclass(frozen=True)
class Department:
    """A department that pushes alerts: its code, names, fields and how its alerts are dated."""

    code: str
    zh: str
    en: str
    fields: tuple[AlertField, ...]
    event: bool = False  # dated by event_date instead of period
    risk_types: tuple[str, ...] = ()
    # at least one of these must be given (when no single field is required)
    one_of: tuple[str, ...] = ()
    schedule: str = ""

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    def field(self, name: str) -> AlertField:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)


def _money(name: str, description: str, maps_to: str | None = None, required: bool = False):
    maps = (FieldMap(maps_to, "set"),) if maps_to else ()
    return AlertField(
        name, "money", description, minimum=0, maximum=MONEY_MAX, required=required, maps=maps
    )


def _flag(name: str, description: str, maps: tuple[FieldMap, ...] = (), required: bool = False):
    return AlertField(name, "bool", description, required=required, maps=maps)


DEPARTMENTS: dict[str, Department] = {
    d.code: d
    for d in (
        Department(
            "civil_affairs",
            "民政局",
            "civil affairs bureau",
            (
                _flag(
                    "dibao",
                    "receives rural dibao (new recipients pushed)",
                    (FieldMap("dibao", "set"),),
                ),
                _flag(
                    "tekun",
                    "receives tekun support (new recipients pushed)",
                    (FieldMap("tekun", "set"),),
                ),
            ),
            risk_types=("low_income", "lack_of_labour"),
            one_of=("dibao", "tekun"),
            schedule="new dibao and tekun recipients",
        ),
        Department(
            "disability",
            "残联",
            "disabled persons' federation",
            (
                _flag(
                    "severe_disability",
                    "a member newly certified with a severe disability",
                    (FieldMap("disabled_count", "at_least_one"),),
                    required=True,
                ),
            ),
            risk_types=("disability",),
            schedule="new severe disabilities",
        ),
        Department(
            "education",
            "教育局",
            "education bureau",
            (
                _flag(
                    "dropout",
                    "a compulsory-age child is suspected out of school",
                    (FieldMap("dropout", "set"),),
                ),
                _money(
                    "schooling_cost",
                    "high-school or vocational schooling costs, yuan, 12 months",
                    "education_expense",
                ),
            ),
            risk_types=("schooling",),
            one_of=("dropout", "schooling_cost"),
            schedule="suspected dropouts; schooling costs over 10,000 by end April",
        ),
        Department(
            "emergency",
            "应急管理局",
            "emergency management bureau",
            (
                _money("loss", "the household's losses from the disaster, yuan", "disaster_loss"),
                _flag(
                    "house_damaged",
                    "the house was damaged",
                    (FieldMap("housing_safe", "not"),),
                ),
            ),
            event=True,
            risk_types=("disaster",),
            one_of=("loss", "house_damaged"),
            schedule="affected households after each disaster",
        ),
        Department(
            "health",
            "卫健委",
            "health commission",
            (
                _flag(
                    "serious_illness",
                    "a member newly diagnosed with a serious illness",
                    (FieldMap("chronic_ill_count", "at_least_one"),),
                    required=True,
                ),
            ),
            risk_types=("illness",),
            schedule="new serious illness",
        ),
        Department(
            "housing",
            "住建局",
            "housing and urban-rural development bureau",
            (
                _flag(
                    "house_unsafe",
                    "the house was assessed unsafe",
                    (FieldMap("housing_safe", "flag_false"),),
                    required=True,
                ),
            ),
            risk_types=("housing",),
            schedule="unsafe houses",
        ),
        Department(
            "human_resources",
            "人社局",
            "human resources and social security bureau",
            (
                AlertField(
                    "months_without_contributions",
                    "int",
                    "consecutive months without social-insurance contributions (job loss)",
                    minimum=0,
                    maximum=36,
                    required=True,
                ),
            ),
            risk_types=("unstable_employment",),
            schedule="job loss: three months without contributions",
        ),
        Department(
            "medical",
            "医保局",
            "medical insurance bureau",
            (
                _money(
                    "out_of_pocket",
                    "out-of-pocket cost after all insurance layers (合规自付), yuan, 12 months",
                    "medical_expense",
                    required=True,
                ),
                AlertField(
                    "care",
                    "choice",
                    "inpatient or outpatient care",
                    choices=("inpatient", "outpatient"),
                    required=True,
                ),
                _money("month_out_of_pocket", "out-of-pocket cost in the alert's month, yuan"),
                _flag(
                    "insured",
                    "every member in basic medical insurance",
                    (FieldMap("medical_insured", "set"),),
                ),
            ),
            risk_types=("illness",),
            schedule="monthly, by the 5th",
        ),
        Department(
            "public_security",
            "公安局",
            "public security bureau",
            (
                AlertField(
                    "main_earner",
                    "choice",
                    "the household's main earner was injured or died",
                    choices=("injured", "dead"),
                    required=True,
                    maps=(
                        FieldMap("labor_count", "minus_one"),
                        FieldMap("household_size", "minus_one", ("dead",)),
                    ),
                ),
            ),
            event=True,
            risk_types=("accident", "lack_of_labour"),
            schedule="injury or death of the main earner",
        ),
        Department(
            "water",
            "水利局",
            "water resources bureau",
            (
                _flag(
                    "water_unsafe",
                    "drinking water cut or unsafe",
                    (FieldMap("water_safe", "flag_false"),),
                    required=True,
                ),
            ),
            risk_types=("drinking_water",),
            schedule="water problems",
        ),
    )
}
DEPARTMENT_CODES: tuple[str, ...] = tuple(sorted(DEPARTMENTS))
# every department field, by name (names are unique across departments)
ALL_FIELDS: dict[str, AlertField] = {f.name: f for d in DEPARTMENTS.values() for f in d.fields}
FIELD_OWNER: dict[str, str] = {f.name: d.code for d in DEPARTMENTS.values() for f in d.fields}


def _check_vocabulary() -> None:
    """Import-time checks: unique field names, mappings onto real record fields, known risk types."""
    names = [f.name for d in DEPARTMENTS.values() for f in d.fields]
    assert len(names) == len(set(names)), "alert field names must be unique"
    assert not set(names) & set(COMMON_FIELDS)
    for d in DEPARTMENTS.values():
        assert all(rt in RISK_TYPES for rt in d.risk_types), d.code
        assert all(n in d.field_names for n in d.one_of), d.code
        for f in d.fields:
            for m in f.maps:
                assert m.field in FIELD_BY_NAME, (d.code, f.name, m.field)
                assert all(w in f.choices for w in m.when), (d.code, f.name)


_check_vocabulary()


def department(code: str) -> Department:
    """The department of ``code``; KeyError naming the known codes."""
    try:
        return DEPARTMENTS[code]
    except KeyError:
        raise KeyError(
            f"unknown department {code!r}; use one of {', '.join(DEPARTMENT_CODES)}"
        ) from None


# --------------------------------------------------------------------------- documentation
def contract_markdown() -> str:
    """docs/alerts.md: the common fields, every department's fields and how each maps onto the record."""
    lines = [
        "# Contract: department alerts (部门筛查预警)",
        "",
        "Generated from `riskml.alerts.fields`; do not edit by hand. A department pushes",
        "alerts by file (`riskml alerts import FILE --department CODE`) or by API",
        "(`POST /alerts`). An alert is validated as strictly as a household record: unknown",
        "fields, wrong types, NaN, a flag where a number belongs, values out of range, a",
        "department's missing required field, a field of another department and a repeated",
        "(department, alert_id) are each a problem naming the alert's index (row) and field.",
        "A file's columns are checked first (a missing required column, an unknown column, a",
        "column of another department), then every row; a file with any problem is refused whole.",
        "",
        "## Common fields",
        "| field | rule |",
        "| --- | --- |",
    ]
    lines += [f"| {n} | {COMMON_DESCRIPTIONS[n]} |" for n in COMMON_FIELDS]
    lines += [
        "",
        "## How a field maps onto the household record",
        "| how | meaning |",
        "| --- | --- |",
    ]
    lines += [f"| {h} | {text} |" for h, text in HOWS.items()]
    lines += [
        "",
        "Alerts of one household in one month (several departments) are merged in one step,",
        "in the order of the department code and then alert_id, onto the household's latest",
        "record at or before their month; the merged record's period is the alerts' month. It",
        "keeps the record rules: a count above household_size after a death is lowered to",
        "household_size, and the provenance says so. An alert whose household has no record",
        "(or none at or before its month) is kept as unmatched and listed for its county.",
        "",
    ]
    for code in DEPARTMENT_CODES:
        d = DEPARTMENTS[code]
        dated = "event_date (event department)" if d.event else "period"
        lines += [
            f"## {code}: {d.zh} ({d.en})",
            f"Dated by {dated}. Pushes: {d.schedule}. Risk types: {', '.join(d.risk_types)}.",
        ]
        if d.one_of:
            lines.append(f"At least one of {', '.join(d.one_of)} must be given.")
        lines += [
            "",
            "| field | type | required | rule | maps onto the record | meaning |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for f in d.fields:
            lines.append(
                f"| {f.name} | {f.kind} | {'yes' if f.required else 'no'} | {f.rule_text()} "
                f"| {f.mapping_text()} | {f.description} |"
            )
        lines.append("")
    return "\n".join(lines)
