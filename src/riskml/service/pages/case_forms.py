"""The case pages' forms: a posted form as the JSON body of its case action, and back again.

How a form maps to JSON: a checkbox is a boolean (checked: true; a record flag unchecked:
false), a group of checkboxes (risk types) a list, a number field an int or a float, and an
empty field is omitted (a visit's empty record field keeps the latest record's value). A
value that is not a number is refused here, naming the field, before the case loop sees it.
The support plan's rows are ``measures[i].<field>`` (a row whose measure is empty is left
out; problems the loop names by the compacted index are moved back to the row shown).
"""

from __future__ import annotations

import math
import re
from typing import Any

from riskml.cases.fields import ALLOWED_FIELDS

RECORD_INTS = ("household_size", "labor_count")
RECORD_MONEY = (
    "income_wage",
    "income_business",
    "income_property",
    "income_transfer",
    "medical_expense",
    "education_expense",
)
RECORD_FLAGS = ("medical_insured", "housing_safe", "water_safe", "dropout")
RECORD_FIELDS = (*RECORD_INTS, *RECORD_MONEY, *RECORD_FLAGS)
MEASURE_FIELDS = ("risk_type", "measure", "department", "start", "end", "kind")
MAX_ROWS = 20
PLAN_ROWS_BLANK = 2  # empty rows offered beside the suggested ones
_ROW = re.compile(r"^measures\[([0-9]{1,2})\]\.([a-z_]+)$")
_MONTH = re.compile(r"^[0-9]{4}-[0-9]{2}$")


class Form:
    """A posted form: the first value of each field, and every value of a repeated one."""

    def __init__(self, pairs: list[tuple[str, str]]):
        self.pairs = pairs
        self.first: dict[str, str] = {}
        for k, v in pairs:
            self.first.setdefault(k, v)

    def get(self, name: str) -> str | None:
        v = self.first.get(name)
        return v.strip() if isinstance(v, str) and v.strip() else None

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.pairs if k == name and v.strip()]

    def has(self, name: str) -> bool:
        return name in self.first


def _number(text: str, whole: bool) -> float | int | None:
    try:
        value = float(text.replace(",", "").replace("，", ""))
    except ValueError:
        return None
    if not math.isfinite(value):
        return None
    if whole:
        return int(value) if value.is_integer() else None
    return value


def body_of(action: str, form: Form) -> tuple[dict[str, Any], list[dict[str, str]], list[int]]:
    """(the action's JSON body, problems found reading the form, plan rows kept in order)."""
    body: dict[str, Any] = {}
    problems: list[dict[str, str]] = []
    rows: list[int] = []
    allowed = ALLOWED_FIELDS.get(action, ())
    for name in ("note", "source", "caseworker", "outcome", "coping_capacity", "result",
                 "start", "decision", "household_type", "delivered_on", "reason"):  # fmt: skip
        if name in allowed and form.get(name) is not None:
            body[name] = form.get(name)
    if "consent" in allowed:
        body["consent"] = form.get("consent") is not None
    if "fast_track" in allowed and form.get("fast_track") is not None:
        body["fast_track"] = True
    if "risk_types" in allowed and form.all("risk_types"):
        body["risk_types"] = form.all("risk_types")
    if action == "decide" and body.get("decision") == "reject":
        body.pop("household_type", None)
        body.pop("risk_types", None)
    if action in ("visit", "follow_up"):
        body["record"] = _record(form, problems)
    if action == "deliver":
        for name, whole in (("measure", True), ("amount", False)):
            text = form.get(name)
            if text is None:
                continue
            value = _number(text, whole)
            if value is None:
                problems.append({"field": name, "problem": "must be a number"})
            else:
                body[name] = value
    if action == "plan":
        body["measures"], rows = _measures(form)
    return body, problems, rows


def _record(form: Form, problems: list[dict[str, str]]) -> dict[str, Any]:
    record: dict[str, Any] = {}
    period = form.get("record.period")
    if period is not None:
        if _MONTH.match(period):
            record["period"] = period
        else:
            problems.append({"field": "record.period", "problem": "must be a month YYYY-MM"})
    for name in (*RECORD_INTS, *RECORD_MONEY):
        text = form.get(f"record.{name}")
        if text is None:
            continue
        value = _number(text, name in RECORD_INTS)
        if value is None:
            kind = "a whole number" if name in RECORD_INTS else "a number of yuan"
            problems.append({"field": f"record.{name}", "problem": f"must be {kind}"})
        else:
            record[name] = value
    for name in RECORD_FLAGS:
        if form.has(f"record.{name}.shown"):  # the box was on the form: unchecked is false
            record[name] = form.get(f"record.{name}") is not None
    return record


def _measures(form: Form) -> tuple[list[dict[str, str]], list[int]]:
    cells: dict[int, dict[str, str]] = {}
    for k, v in form.pairs:
        m = _ROW.match(k)
        if m and m.group(2) in MEASURE_FIELDS and int(m.group(1)) < MAX_ROWS + PLAN_ROWS_BLANK:
            cells.setdefault(int(m.group(1)), {}).setdefault(m.group(2), v.strip())
    out, rows = [], []
    for i in sorted(cells):
        row = {k: v for k, v in cells[i].items() if v}
        if not row.get("measure"):
            continue
        out.append(row)
        rows.append(i)
    return out, rows


def shown_field(field: str, rows: list[int]) -> str:
    """The form's name of a field the case loop named (a plan row back at its place on the page)."""
    m = re.match(r"^measures\[([0-9]+)\](.*)$", field)
    if m and int(m.group(1)) < len(rows):
        return f"measures[{rows[int(m.group(1))]}]{m.group(2)}"
    return field


def record_values(record: dict[str, Any] | None) -> dict[str, Any]:
    """The visit form pre-filled from a record (numbers as typed, flags as booleans)."""
    record = record or {}
    out: dict[str, Any] = {}
    for name in RECORD_INTS:
        v = record.get(name)
        out[name] = "" if v is None else str(int(v))
    for name in RECORD_MONEY:
        v = record.get(name)
        out[name] = "" if v is None else f"{float(v):.0f}"
    for name in RECORD_FLAGS:
        out[name] = bool(record.get(name))
    return out


def posted_values(form: Form) -> dict[str, Any]:
    """A refused visit form shown again as it was posted."""
    out: dict[str, Any] = {}
    for name in (*RECORD_INTS, *RECORD_MONEY):
        out[name] = form.first.get(f"record.{name}", "")
    for name in RECORD_FLAGS:
        out[name] = form.get(f"record.{name}") is not None
    return out


def plan_rows(measures: list[dict[str, Any]], start: str, end: str) -> list[dict[str, str]]:
    """The plan form's rows: the measures given, then blank rows to add more."""
    rows = [{k: str(m.get(k) or "") for k in MEASURE_FIELDS} for m in measures[:MAX_ROWS]]
    for _ in range(PLAN_ROWS_BLANK):
        rows.append({"risk_type": "", "measure": "", "department": "", "start": start,
                     "end": end, "kind": ""})  # fmt: skip
    return rows


def posted_plan(form: Form) -> list[dict[str, str]]:
    cells: dict[int, dict[str, str]] = {}
    for k, v in form.pairs:
        m = _ROW.match(k)
        if m and m.group(2) in MEASURE_FIELDS and int(m.group(1)) < MAX_ROWS + PLAN_ROWS_BLANK:
            cells.setdefault(int(m.group(1)), {}).setdefault(m.group(2), v)
    return [{k: cells[i].get(k, "") for k in MEASURE_FIELDS} for i in sorted(cells)]
