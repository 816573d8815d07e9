"""The values a rule condition may test: record fields, prev_<field>, derived values.

Each value has a kind (money, share, count, number, flag) that decides how it
is compared and formatted; :func:`base_inputs` names the record fields a
derived value is computed from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from riskml.data.label import INCOME_FIELDS
from riskml.data.schema import FIELDS

__all__ = ["VALUES", "Kind", "ValueSpec", "base_inputs"]

Kind = Literal["money", "share", "count", "number", "flag"]


@dataclass(frozen=True)
class ValueSpec:
    """A value a condition may test: a record field or a derived value."""

    name: str
    kind: Kind
    description: str
    derived: bool


def _field_kind(f: Any) -> Kind:
    if f.kind == "bool":
        return "flag"
    if f.kind == "int":
        return "count"
    return "money" if f.unit and "yuan" in f.unit else "number"


_DERIVED: tuple[tuple[str, Kind, str], ...] = (
    ("net_income", "money", "household net income: the four income fields summed"),
    ("pc_net_income", "money", "per-capita net income: net_income / household_size"),
    ("monitoring_line", "money", "monitoring line of the province and year of period"),
    ("dibao_line", "money", "rural dibao line of the province and year of period"),
    ("medical_share", "share", "medical_expense / net_income"),
    ("education_share", "share", "education_expense / net_income"),
    ("loss_share", "share", "disaster_loss / net_income"),
    ("rigid_share", "share", "(medical_expense + education_expense) / net_income"),
    (
        "pc_net_income_after_rigid",
        "money",
        "(net_income − medical_expense − education_expense) / household_size",
    ),
    (
        "prev_net_income",
        "money",
        "net income of the previous period (latest earlier record within 12 months)",
    ),
    ("prev_pc_net_income", "money", "per-capita net income of the previous period"),
    ("income_drop", "share", "(prev_net_income − net_income) / prev_net_income"),
    ("pc_income_drop", "share", "(prev_pc_net_income − pc_net_income) / prev_pc_net_income"),
)

_RECORD_VALUES = [f for f in FIELDS if f.kind != "str"]
VALUES: dict[str, ValueSpec] = {
    **{name: ValueSpec(name, kind, desc, True) for name, kind, desc in _DERIVED},
    **{f.name: ValueSpec(f.name, _field_kind(f), f.description, False) for f in _RECORD_VALUES},
    **{
        f"prev_{f.name}": ValueSpec(
            f"prev_{f.name}", _field_kind(f), f"{f.name} of the previous period", True
        )
        for f in _RECORD_VALUES
    },
}

_DEPS: dict[str, tuple[str, ...]] = {
    "net_income": INCOME_FIELDS,
    "pc_net_income": ("net_income", "household_size"),
    "prev_net_income": tuple(f"prev_{c}" for c in INCOME_FIELDS),
    "prev_pc_net_income": ("prev_net_income", "prev_household_size"),
    "medical_share": ("medical_expense", "net_income"),
    "education_share": ("education_expense", "net_income"),
    "loss_share": ("disaster_loss", "net_income"),
    "rigid_share": ("medical_expense", "education_expense", "net_income"),
    "pc_net_income_after_rigid": (
        "net_income",
        "medical_expense",
        "education_expense",
        "household_size",
    ),
    "income_drop": ("net_income", "prev_net_income"),
    "pc_income_drop": ("pc_net_income", "prev_pc_net_income"),
}


def base_inputs(name: str) -> list[str]:
    """The record fields (or prev_<field>) a value is computed from; itself for a field or line."""
    if name not in _DEPS:
        return [name]
    out: list[str] = []
    for d in _DEPS[name]:
        out.extend(base_inputs(d))
    return list(dict.fromkeys(out))
