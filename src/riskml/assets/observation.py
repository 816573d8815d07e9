"""The asset-year observation: what the asset-risk model scores, one row per asset and year.

A row is the asset's register record as of the end of ``year`` (the scalar fields of the
asset record contract: ids, category, subtype, values, owner, rights, operator, contract,
caretaker, fund, status) beside that year's figures (income, return rate = income / original
value, months idle, maintenance spent, inspection result, damage) and the income, return rate
and months idle of the two years before (``*_lag1``, ``*_lag2``). Missing stays missing: a
year not observed (the asset's first years), an asset not inspected, an income a public-welfare
asset does not have are nulls, never zeros.

The list fields of the record (funding sources, beneficiary households) are not part of the
observation: the model does not use them and they stay in the register.

An observation sent to ``POST /assets/score`` may carry ``distributions``: the income
distributions of the asset up to the end of ``year``, each what a ``distribution`` event of the
register carries (riskml.assets.events: its ``date``, the ``year`` whose income it pays, default
the observation's, and its ``items`` {use, amount, household_id?} in the order paid). The
model does not use them; the asset rules do (the distribution order and the banned uses).
``distribution_problems`` checks them with the event's own field definitions, each problem
naming the item's path (``distributions[0].items[1].use``) and never a household id;
``distribution_states`` turns them into the register's form for the rules.

The simulated panel (riskml.assets.simulate) adds the label ``adverse_next`` (idle, or the
return rate below the floor, the next year; null where the next year is not observed) and the
oracle ``oracle_p`` (its true probability).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from riskml.assets import contract as c
from riskml.assets import events as ev
from riskml.assets.validation import parse_date, value_rules
from riskml.assets.world import CATEGORIES, FORMS, MODES, OWNER_TYPES, RIGHTS, STATUSES, SUBTYPES
from riskml.data.schema import pseudonymous_id

INSPECTION_RESULTS = ("good", "fair", "poor")
LABEL = "adverse_next"
ORACLE = "oracle_p"


@dataclass(frozen=True)
class Field:
    name: str
    kind: str  # str | int | float | date | choice
    required: bool = False
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    doc: str = ""


F = Field
RECORD_FIELDS: tuple[Field, ...] = (
    F("asset_id", "str", True, doc="the asset's register id"),
    F("project_id", "str", doc="the project that built it"),
    F("build_year", "int", True, minimum=1980, maximum=2100),
    F("category", "choice", True, CATEGORIES),
    F("subtype", "choice", True, SUBTYPES),
    F("form", "choice", True, FORMS),
    F("original_value", "float", True, minimum=0, doc="yuan"),
    F("book_value", "float", minimum=0, doc="yuan, after depreciation"),
    F("county_code", "str", True),
    F("village_code", "str"),
    F("owner_type", "choice", True, OWNER_TYPES),
    F("owner", "str"),
    F("rights_status", "choice", True, RIGHTS),
    F("accepted_date", "date"),
    F("rights_date", "date"),
    F("operator", "str"),
    F("operating_mode", "choice", True, MODES),
    F("contract_start", "date"),
    F("contract_end", "date"),
    F("guaranteed_return_rate", "float", minimum=0, maximum=1),
    F("caretaker", "str"),
    F("maintenance_fund", "float", minimum=0, doc="yuan a year"),
    F("status", "choice", True, STATUSES),
)
YEAR_FIELDS: tuple[Field, ...] = (
    F("year", "int", True, minimum=1980, maximum=2100, doc="the year the figures are of"),
    F("income", "float", doc="yuan earned in the year (null: not an income-generating asset)"),
    F("return_rate", "float", minimum=-1, maximum=10, doc="income / original value"),
    F("months_idle", "int", minimum=0, maximum=12),
    F("maintenance_spent", "float", minimum=0, doc="yuan"),
    F("inspection_result", "choice", choices=INSPECTION_RESULTS, doc="null: not inspected"),
    F("damage", "float", minimum=0, doc="yuan of disaster damage"),
    F("income_lag1", "float"),
    F("income_lag2", "float"),
    F("return_rate_lag1", "float", minimum=-1, maximum=10),
    F("return_rate_lag2", "float", minimum=-1, maximum=10),
    F("months_idle_lag1", "int", minimum=0, maximum=12),
)
OBSERVATION_FIELDS = RECORD_FIELDS + YEAR_FIELDS
FIELD_NAMES = tuple(f.name for f in OBSERVATION_FIELDS)
SIMULATION_FIELDS = (LABEL, ORACLE)


def dates(col: pd.Series) -> pd.Series:
    """A date column as datetimes (ISO strings or datetimes in; unreadable → NaT)."""
    if pd.api.types.is_datetime64_any_dtype(col):
        return col
    codes, uniques = pd.factorize(col, use_na_sentinel=True)
    parsed = pd.to_datetime(pd.Series(uniques, dtype=object), errors="coerce", format="ISO8601")
    values = parsed.to_numpy()
    out = np.full(len(col), np.datetime64("NaT"), dtype="datetime64[ns]")
    ok = codes >= 0
    out[ok] = values[codes[ok]]
    return pd.Series(out, index=col.index)


def problems(frame: pd.DataFrame, limit: int = 20) -> list[str]:
    """What is wrong with an observation frame, each naming the row (index) and the field."""
    out: list[str] = []
    missing = [f.name for f in OBSERVATION_FIELDS if f.required and f.name not in frame.columns]
    if missing:
        return [f"missing column(s): {', '.join(missing)}"]
    for f in OBSERVATION_FIELDS:
        if f.name not in frame.columns:
            continue
        col = frame[f.name]
        null = col.isna().to_numpy()
        bad = np.zeros(len(col), bool)
        what = ""
        if f.required:
            bad |= null
            what = "is required"
        if f.kind == "choice":
            wrong = ~null & ~col.isin(f.choices).to_numpy()
            if wrong.any():
                bad |= wrong
                what = f"must be one of {', '.join(f.choices)}"
        elif f.kind in ("int", "float"):
            num = pd.to_numeric(col, errors="coerce").to_numpy(dtype=float)
            wrong = ~null & np.isnan(num)
            if f.minimum is not None:
                wrong |= ~np.isnan(num) & (num < f.minimum)
            if f.maximum is not None:
                wrong |= ~np.isnan(num) & (num > f.maximum)
            if wrong.any():
                bad |= wrong
                what = f"must be a number in [{f.minimum}, {f.maximum}]"
        elif f.kind == "date":
            wrong = ~null & dates(col).isna().to_numpy()
            if wrong.any():
                bad |= wrong
                what = "must be a date (YYYY-MM-DD)"
        for i in np.flatnonzero(bad)[: max(0, limit - len(out))]:
            out.append(f"row {frame.index[i]}: field {f.name} {what}")
        if len(out) >= limit:
            break
    return out


# --------------------------------------------------------------------------- distributions
DISTRIBUTIONS = "distributions"
MAX_DISTRIBUTIONS = 24  # an observation's distributions (twice a month for a year)
MAX_ITEMS = 1000  # one distribution's items (a village's households, each paid)
DISTRIBUTION_KEYS = (
    "date",
    *(name for name, _ in ev.PAYLOADS["distribution"]),
)  # date, year, items
ITEM_KEYS = ("use", "amount", "household_id")  # a distribution event's item (events._items_rule)
# The distribution event's own definitions (one source: riskml.assets.events)
YEAR_FIELD, AMOUNT_FIELD, USE_ID = ev.YEAR_FIELD, ev.AMOUNT_FIELD, ev.USE_ID
USE_RULE = "must be a lower-case id (a use of the rules file's distribution order or banned list)"
HOUSEHOLD_RULE = f"must be a pseudonymous household_id (matching {c.ID_PATTERN})"


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _checked(field: c.AssetField, v: Any, integer: bool = False) -> str | None:
    """A JSON value in one of the event's fields: a number (never text or a boolean) by its rules."""
    if not _is_number(v) or (integer and not isinstance(v, int)):
        return "must be an integer" if integer else "must be a finite number"
    rules = value_rules(field, v)
    return rules[0] if rules else None


def _item_problems(where: str, item: Any) -> list[tuple[str, str]]:
    if not isinstance(item, dict):
        return [(where, "must be an object {use, amount, household_id?}")]
    out = []
    unknown = set(map(str, item)) - set(ITEM_KEYS)
    if unknown:  # the keys are not quoted: a household id sent as a key stays unsaid
        out.append(
            (where, f"{len(unknown)} unknown field(s); an item has {', '.join(ITEM_KEYS)} only")
        )
    use = item.get("use")
    if use is None:
        out.append((f"{where}.use", c.MISSING_RULE))
    elif not isinstance(use, str) or not USE_ID.fullmatch(use):
        out.append((f"{where}.use", USE_RULE))
    amount = item.get("amount")
    why = c.MISSING_RULE if amount is None else _checked(AMOUNT_FIELD, amount)
    if why is not None:
        out.append((f"{where}.amount", why))
    hid = item.get("household_id")
    if hid is not None and pseudonymous_id(hid) is None:
        out.append((f"{where}.household_id", HOUSEHOLD_RULE))
    return out


def distribution_problems(
    value: Any, year: int | None, incomes: dict[int, float] | None = None
) -> list[tuple[str, str]]:
    """(field path, problem) for each thing wrong with an observation's ``distributions``
    (``year`` the observation's, None when it is itself wrong; ``incomes`` the incomes the
    observation gives by year: a year's distributions may not pay out more, as for the event)."""
    if value is None:
        return []
    if not isinstance(value, list):
        return [(DISTRIBUTIONS, "must be a list of distributions {date, year?, items}")]
    if len(value) > MAX_DISTRIBUTIONS:
        return [(DISTRIBUTIONS, f"at most {MAX_DISTRIBUTIONS} distributions, got {len(value):,}")]
    out: list[tuple[str, str]] = []
    paid: dict[int, list[tuple[int, float]]] = {}
    for k, d in enumerate(value):
        where = f"{DISTRIBUTIONS}[{k}]"
        if not isinstance(d, dict):
            out.append((where, "must be an object {date, year?, items}"))
            continue
        for name in sorted(map(str, set(d) - set(DISTRIBUTION_KEYS))):
            out.append((f"{where}.{name[:64]}", "unknown field; a distribution has "
                        + ", ".join(DISTRIBUTION_KEYS)))  # fmt: skip
        when = d.get("date")
        day = parse_date(when) if isinstance(when, str) else None
        if when is None:
            out.append((f"{where}.date", c.MISSING_RULE))
        elif day is None:
            out.append((f"{where}.date", c.DATE_RULE))
        elif year is not None and day.year > year:
            out.append((f"{where}.date", "must not be after the observation's year"))
        paid_year = d.get("year", year)
        if d.get("year") is not None:
            why = _checked(YEAR_FIELD, d["year"], integer=True)
            if why is None and year is not None and d["year"] > year:
                why = "must not be after the observation's year"
            if why is not None:
                out.append((f"{where}.year", why))
                paid_year = None
        items = d.get("items")
        if items is None:
            out.append((f"{where}.items", c.MISSING_RULE))
        elif not isinstance(items, list) or not items:
            out.append(
                (f"{where}.items", "must be a non-empty list of {use, amount, household_id?}")
            )
        elif len(items) > MAX_ITEMS:
            out.append((f"{where}.items", f"at most {MAX_ITEMS:,} items, got {len(items):,}"))
        else:
            found = [
                p
                for j, item in enumerate(items)
                for p in _item_problems(f"{where}.items[{j}]", item)
            ]
            out += found
            if not found and paid_year is not None:
                paid.setdefault(int(paid_year), []).append(
                    (k, sum(float(i["amount"]) for i in items))
                )
    for y, amounts in paid.items():
        income = (incomes or {}).get(y)
        if income is None:
            continue  # the observation does not give that year's income: nothing to hold it to
        total = 0.0
        for k, amount in amounts:
            total += amount
            if total > income + c.FUNDING_TOLERANCE_YUAN:
                out.append(
                    (f"{DISTRIBUTIONS}[{k}].items", f"distributes more than the income of {y}")
                )
                break
    return out


def distribution_states(value: list[dict[str, Any]] | None, year: int) -> list[dict[str, Any]]:
    """Checked distributions in the register's form (``events.apply``): year, date, items, total."""
    return [
        {"year": int(d.get("year") or year), "date": d["date"],
         "items": [dict(i) for i in d["items"]],
         "total": sum(float(i["amount"]) for i in d["items"])}
        for d in value or []
    ]  # fmt: skip
