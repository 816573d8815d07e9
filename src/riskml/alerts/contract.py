"""The department alert records (部门筛查预警): ids, the validator, files and their documentation.

The vocabulary (departments, their fields and the mapping of each onto the
household record) is ``riskml.alerts.fields``; its names are re-exported here.

``alert_problems`` validates JSON-like alerts (``POST /alerts``) as strictly as
``riskml.data.validation.record_problems`` validates records, in the same rule
words where they fit: every problem names the alert's index (``row``), the
household id when it is well formed, the field and the rule. ``read_alert_file``
reads a CSV or Parquet file typed the way ``riskml.data.io`` types records
(text kept as text; a cell that is not a number stays text, so the validator
names it) and checks whole columns first (a missing required column, an unknown
column, a column of another department) and then every row. ``alerts_frame``
turns valid alerts into the typed frame the batch merge reads.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from riskml.alerts.fields import (
    ALERT_ID_PATTERN,
    ALL_FIELDS,
    COMMON_FIELDS,
    DEPARTMENT_CODES,
    DEPARTMENTS,
    EVENT_DATE_PATTERN,
    FIELD_OWNER,
    AlertField,
    Department,
    FieldMap,
    contract_markdown,
    department,
)
from riskml.data import io
from riskml.data.regions import PROVINCES
from riskml.data.schema import (
    ABSENT_RULE,
    BOOL_RULE,
    COLUMN_ABSENT_RULE,
    FIELD_BY_NAME,
    FINITE_RULE,
    MISSING_RULE,
    NUMBER_RULE,
    OBJECT_RULE,
    PROVINCE_RULE,
    STRING_RULE,
    WHOLE_RULE,
    Problem,
    Problems,
    pseudonymous_id,
)
from riskml.data.validation import is_flag, number_value

__all__ = [
    "ALERT_ID_PATTERN",
    "ALL_FIELDS",
    "COMMON_FIELDS",
    "DEPARTMENTS",
    "DEPARTMENT_CODES",
    "FIELD_OWNER",
    "AlertField",
    "AlertFile",
    "Department",
    "FieldMap",
    "alert_id_of",
    "alert_period",
    "alert_problems",
    "alerts_frame",
    "contract_markdown",
    "department",
    "example_alert",
    "read_alert_file",
]

# --------------------------------------------------------------------------- the rules' words
ALERT_UNKNOWN_RULE = "unknown field: not in the alert contract"
COLUMN_UNKNOWN_RULE = "unknown column: not in the alert contract"
ALERT_OBJECT_FIELD = "(alert)"
ALERT_ID_RULE = f"must match {ALERT_ID_PATTERN}"
DEPARTMENT_RULE = "must be one of " + ", ".join(DEPARTMENT_CODES)
EVENT_DATE_RULE = "must be a date written YYYY-MM-DD"
REAL_DATE_RULE = "must be a real date"
PERIOD_OF_EVENT_RULE = "not used by an event department: give event_date"
EVENT_OF_PERIOD_RULE = "only for event departments (emergency, public_security): give period"
MONTH_TOTAL_RULE = "must be ≤ out_of_pocket (12 months include the month)"


def other_department_rule(owner: str, dept: str) -> str:
    """The rule a field of another department breaks."""
    return f"field of department {owner}, not of {dept}"


def request_department_rule(dept: str) -> str:
    """The rule an alert breaks whose department is not the request's (or the file's)."""
    return f"must be {dept} (the department of the request)"


def one_of_rule(names: Sequence[str]) -> str:
    return f"at least one of {', '.join(names)} is required"


def choice_rule(choices: Sequence[str]) -> str:
    return f"must be one of {', '.join(choices)}"


def duplicate_alert_rule(earlier: int, derived: bool) -> str:
    """A repeated (department, alert_id) within one request, naming the first alert (0-based)."""
    if derived:
        return (
            f"duplicate alert: same content as alert {int(earlier)} "
            "(give alert_id to tell them apart)"
        )
    return f"duplicate alert: same department and alert_id as alert {int(earlier)}"


_ID_RE = re.compile(ALERT_ID_PATTERN)
_DATE_RE = re.compile(EVENT_DATE_PATTERN)
_PATTERNS = {
    name: re.compile(FIELD_BY_NAME[name].pattern or "")
    for name in ("household_id", "county_code", "period")
}
_COMMON_ORDER = {name: k for k, name in enumerate(COMMON_FIELDS)}


# --------------------------------------------------------------------------- ids and months
def _canonical(value: Any) -> Any:
    """A value as the derived id hashes it: a whole float as an int (5000.0 and 5000 agree)."""
    if type(value) is float:
        return int(value) if value.is_integer() else value
    if isinstance(value, np.generic):
        return _canonical(value.item())
    return value


def _content(alert: dict[str, Any]) -> dict[str, Any]:
    """The alert's values that identify it: every key but alert_id, nulls left out, whole floats as ints."""
    return {
        k: _canonical(v)
        for k, v in alert.items()
        if k != "alert_id" and v is not None and not (isinstance(v, float) and math.isnan(v))
    }


def alert_id_of(alert: dict[str, Any]) -> str:
    """The alert's id: its own ``alert_id``, else one derived from its content.

    The derived id is ``<department>:<first 20 hex of the SHA-256 of the alert's
    JSON>`` (keys sorted, nulls left out, whole numbers as integers), so the same
    alert pushed twice, by file or by API, gets the same id.
    """
    own = alert.get("alert_id")
    if own is not None:
        return str(own)
    text = json.dumps(
        _content(alert), ensure_ascii=False, allow_nan=False, separators=(",", ":"), sort_keys=True
    )
    return f"{alert['department']}:{hashlib.sha256(text.encode('utf-8')).hexdigest()[:20]}"


def alert_period(alert: dict[str, Any]) -> str:
    """The alert's month (YYYY-MM): ``period``, or the month of ``event_date`` for event departments."""
    if DEPARTMENTS[alert["department"]].event:
        return str(alert["event_date"])[:7]
    return str(alert["period"])


_EXAMPLE_VALUES: dict[str, Any] = {
    "dibao": True,
    "tekun": False,
    "severe_disability": True,
    "dropout": True,
    "schooling_cost": 12000.0,
    "loss": 8000.0,
    "house_damaged": True,
    "serious_illness": True,
    "house_unsafe": True,
    "months_without_contributions": 4,
    "out_of_pocket": 26000.0,
    "care": "inpatient",
    "month_out_of_pocket": 3000.0,
    "insured": True,
    "main_earner": "injured",
    "water_unsafe": True,
}


def example_alert(
    department: str,
    household_id: str = "H0000001",
    county_code: str = "530102",
    month: str = "2025-03",
    **fields: Any,
) -> dict[str, Any]:
    """A valid alert of ``department`` (every field it owns, with plausible values; ``fields`` replace them).

    For docs, tests and demos; an event department's alert is dated the 15th of ``month``.
    """
    d = DEPARTMENTS[department]
    alert: dict[str, Any] = {
        "household_id": household_id,
        "department": department,
        "county_code": county_code,
    }
    alert["event_date" if d.event else "period"] = f"{month}-15" if d.event else month
    alert.update({name: _EXAMPLE_VALUES[name] for name in d.field_names})
    alert.update(fields)
    return {k: v for k, v in alert.items() if v is not None}


# --------------------------------------------------------------------------- one value
def field_rules(f: AlertField, v: Any) -> list[str]:
    """The rules a present, non-null value breaks in department field ``f``."""
    if f.kind == "bool":
        return [] if is_flag(v) else [BOOL_RULE]
    if f.kind == "choice":
        if not isinstance(v, str):
            return [STRING_RULE]
        return [] if v in f.choices else [choice_rule(f.choices)]
    x = number_value(v)
    if x is None:
        return [NUMBER_RULE]
    if not math.isfinite(x):
        return [FINITE_RULE]
    out = []
    if f.kind == "int" and not x.is_integer():
        out.append(WHOLE_RULE)
    if f.minimum is not None and x < f.minimum:
        out.append(f"must be ≥ {f.minimum:g}")
    if f.maximum is not None and x > f.maximum:
        out.append(f"must be ≤ {f.maximum:g}")
    return out


def pattern_rules(name: str, v: Any) -> list[str]:
    if not isinstance(v, str):
        return [STRING_RULE]
    if not _PATTERNS[name].fullmatch(v):
        return [FIELD_BY_NAME[name].pattern_rule()]
    if name == "county_code" and v[:2] not in PROVINCES:
        return [PROVINCE_RULE]
    return []


def date_rules(v: Any) -> list[str]:
    if not isinstance(v, str):
        return [STRING_RULE]
    if not _DATE_RE.fullmatch(v):
        return [EVENT_DATE_RULE]
    try:
        _dt.date.fromisoformat(v)
    except ValueError:
        return [REAL_DATE_RULE]
    return []


_ABSENT = object()


# --------------------------------------------------------------------------- alerts
def alert_problems(
    alerts: Iterable[Any], department: str | None = None, limit: int | None = 100
) -> Problems:
    """Every problem of JSON-like alerts, in alert and field order (``row`` is the alert's index).

    ``department``: the request's (or file's) department; an alert without one
    takes it, an alert with another is refused. Without it every alert names its
    own. With ``limit``, at most that many problems are listed; ``.total`` counts
    them all and ``.invalid_records`` counts the alerts with any. A repeated
    (department, alert_id) is a problem of the later alert, naming the first;
    alerts without an id are compared by the id derived from their content.
    """
    if department is not None and department not in DEPARTMENTS:
        raise KeyError(
            f"unknown department {department!r}; use one of {', '.join(DEPARTMENT_CODES)}"
        )
    room = None if limit is None else max(int(limit), 0)
    out: list[Problem] = []
    total = invalid = 0
    first_seen: dict[tuple[Any, ...], int] = {}
    for i, alert in enumerate(alerts):
        found = _one_alert(i, alert, department, first_seen)
        if found:
            invalid += 1
            total += len(found)
            out.extend(found if room is None else found[:room])
            if room is not None:
                room -= min(room, len(found))
    return Problems(out, total=total, invalid_records=invalid)


def _one_alert(
    i: int, alert: Any, request_dept: str | None, first_seen: dict[tuple[Any, ...], int]
) -> list[Problem]:
    if not isinstance(alert, dict):
        return [Problem(i, None, ALERT_OBJECT_FIELD, None, OBJECT_RULE)]
    found: list[tuple[str, Any, str]] = []
    # ---- the department decides which fields belong
    dept_value = alert.get("department", _ABSENT)
    dept: Department | None = None
    if dept_value is _ABSENT or dept_value is None:
        if request_dept is None:
            found.append(
                ("department", None, ABSENT_RULE if dept_value is _ABSENT else MISSING_RULE)
            )
        else:
            dept = DEPARTMENTS[request_dept]
    elif not isinstance(dept_value, str) or dept_value not in DEPARTMENTS:
        found.append(("department", dept_value, DEPARTMENT_RULE))
    elif request_dept is not None and dept_value != request_dept:
        found.append(("department", dept_value, request_department_rule(request_dept)))
    else:
        dept = DEPARTMENTS[dept_value]
    # ---- common fields
    for name in ("household_id", "county_code"):
        v = alert.get(name, _ABSENT)
        if v is _ABSENT or v is None:
            found.append((name, None, ABSENT_RULE if v is _ABSENT else MISSING_RULE))
        else:
            found.extend((name, v, r) for r in pattern_rules(name, v))
    alert_id = alert.get("alert_id")
    if alert_id is not None and not (isinstance(alert_id, str) and _ID_RE.fullmatch(alert_id)):
        found.append(
            ("alert_id", alert_id, STRING_RULE if not isinstance(alert_id, str) else ALERT_ID_RULE)
        )
        alert_id = _ABSENT
    period, event_date = alert.get("period", _ABSENT), alert.get("event_date", _ABSENT)
    if dept is not None:
        dated, other = ("event_date", "period") if dept.event else ("period", "event_date")
        given = event_date if dept.event else period
        if given is _ABSENT or given is None:
            found.append((dated, None, ABSENT_RULE if given is _ABSENT else MISSING_RULE))
        elif dept.event:
            found.extend(("event_date", given, r) for r in date_rules(given))
        else:
            found.extend(("period", given, r) for r in pattern_rules("period", given))
        stray = period if dept.event else event_date
        if stray is not _ABSENT and stray is not None:
            found.append(
                (other, stray, PERIOD_OF_EVENT_RULE if dept.event else EVENT_OF_PERIOD_RULE)
            )
    # ---- department fields, then every other key
    order = {name: k for k, name in enumerate(COMMON_FIELDS)}
    if dept is not None:
        for k, f in enumerate(dept.fields):
            order[f.name] = len(COMMON_FIELDS) + k
            v = alert.get(f.name, _ABSENT)
            if v is _ABSENT or v is None:
                if f.required:
                    found.append((f.name, None, ABSENT_RULE if v is _ABSENT else MISSING_RULE))
                continue
            found.extend((f.name, v, r) for r in field_rules(f, v))
        if dept.one_of and all(alert.get(n) is None for n in dept.one_of):
            found.append((dept.one_of[0], None, one_of_rule(dept.one_of)))
        total_cost, month_cost = (
            number_value(alert.get("out_of_pocket")),
            number_value(alert.get("month_out_of_pocket")),
        )
        both = total_cost is not None and month_cost is not None
        if dept.code == "medical" and both and month_cost > total_cost:  # type: ignore[operator]
            found.append(
                ("month_out_of_pocket", alert.get("month_out_of_pocket"), MONTH_TOTAL_RULE)
            )
    extra: list[tuple[str, Any, str]] = []
    for key in alert:
        if key in _COMMON_ORDER or (dept is not None and key in order):
            continue
        owner = FIELD_OWNER.get(key) if isinstance(key, str) else None
        if owner is None:
            extra.append((str(key), None, ALERT_UNKNOWN_RULE))
        elif dept is not None:
            extra.append((key, alert[key], other_department_rule(owner, dept.code)))
    # ---- a repeated (department, alert_id), when the alert is otherwise sound
    if dept is not None and not found and not extra:
        derived = alert_id is None
        if derived:  # the content itself: the same alerts as the same derived id, without hashing
            content = _content(alert)
            content.pop("department", None)
            key: tuple[Any, ...] = (dept.code, "", *sorted(content.items()))
        else:
            key = (dept.code, alert_id)
        earlier = first_seen.setdefault(key, i)
        if earlier != i:
            found.append(("alert_id", alert_id, duplicate_alert_rule(earlier, derived)))
    found.sort(key=lambda x: order.get(x[0], len(order)))
    hid = pseudonymous_id(alert.get("household_id"))
    return [Problem(i, hid, name, v, rule) for name, v, rule in found + extra]


# --------------------------------------------------------------------------- frames
_FRAME_DTYPES = {"money": "float64", "int": "Int64", "bool": "boolean", "choice": "string"}


def _field_names(departments: Iterable[str]) -> list[str]:
    names: list[str] = []
    for code in sorted(set(departments)):
        names.extend(DEPARTMENTS[code].field_names)
    return names


def alerts_frame(
    alerts: Sequence[dict[str, Any]] | pd.DataFrame, department: str | None = None
) -> pd.DataFrame:
    """Valid alerts (dicts, or a frame of them) as the typed frame the batch merge reads.

    Columns: ``alert_id`` (derived where absent), ``household_id``, ``department``
    (``department`` fills it where absent), ``county_code``, ``period`` (the month
    of ``event_date`` for event departments), ``event_date``, then the fields of
    the departments present: money float64, counts Int64, flags boolean, choices
    and text string; missing stays missing. The alerts must have passed
    ``alert_problems``.
    """
    rows = frame_rows(alerts) if isinstance(alerts, pd.DataFrame) else [dict(a) for a in alerts]
    for r in rows:
        if r.get("department") is None:
            r["department"] = department
        r["alert_id"] = alert_id_of(r)
        r["period"] = alert_period(r)
    columns: dict[str, Any] = {}
    for name in COMMON_FIELDS:
        columns[name] = pd.array([r.get(name) for r in rows], dtype="string")
    for name in _field_names(r["department"] for r in rows):
        f = ALL_FIELDS[name]
        values = [r.get(name) for r in rows]
        if f.kind == "money":
            columns[name] = np.array(
                [np.nan if v is None else float(v) for v in values], dtype="float64"
            )
        else:
            columns[name] = pd.array(
                [None if v is None else (int(v) if f.kind == "int" else v) for v in values],
                dtype=_FRAME_DTYPES[f.kind],
            )
    return pd.DataFrame(columns)


def plain_cell(v: Any) -> Any:
    """A table cell as a JSON-like value: missing (None, NaN, NA) as None, numpy scalars unwrapped."""
    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def frame_rows(df: pd.DataFrame) -> list[dict[str, Any]]:
    """A frame's rows as dicts of JSON-like values (an empty cell is null, as in a table)."""
    names = [str(c) for c in df.columns]
    return [
        {n: plain_cell(v) for n, v in zip(names, row, strict=True)}
        for row in df.astype(object).itertuples(index=False, name=None)
    ]


# --------------------------------------------------------------------------- files
@dataclass(frozen=True)
class AlertFile:
    """An alert file as read: the typed frame of its alerts (empty when refused) and its problems.

    ``problems`` with ``row`` −1 are about whole columns; any problem refuses the
    whole file (nothing is imported from a file with problems).
    """

    frame: pd.DataFrame
    problems: Problems
    rows: int

    @property
    def ok(self) -> bool:
        return not self.problems.total

    @property
    def alerts(self) -> list[dict[str, Any]]:
        """The alerts as JSON-like dicts (an empty cell is left out: a field not given)."""
        return [{k: v for k, v in row.items() if v is not None} for row in frame_rows(self.frame)]


def _type_csv_columns(df: pd.DataFrame) -> pd.DataFrame:
    """CSV text with the alert's number and flag columns typed as ``riskml.data.io`` types records."""
    for name in df.columns:
        f = ALL_FIELDS.get(str(name))
        if f is None or f.kind == "choice":
            continue
        df[name] = io.csv_flags(df[name]) if f.kind == "bool" else io.csv_numbers(df[name])
    return df


def read_raw(path: Path) -> pd.DataFrame:
    if io.table_format(path) == "parquet":
        try:
            return pd.read_parquet(path)
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise io.TableReadError(
                f"{path}: not a readable Parquet file ({io.short_reason(exc)})"
            ) from None
    names = io.csv_header(path)
    try:
        table = pacsv.read_csv(
            path, read_options=io.csv_read_options(), convert_options=io.csv_convert_options(names)
        )
    except (pa.ArrowException, OSError) as exc:
        raise io.TableReadError(
            f"{path}: cannot read the CSV file ({io.short_reason(exc)})"
        ) from None
    return _type_csv_columns(table.to_pandas())


def column_problems(columns: Sequence[str], department: str) -> Problems:
    """Problems of a file's columns for ``department``: missing required, unknown, another department's."""
    dept = DEPARTMENTS[department]
    have = set(map(str, columns))
    out: list[Problem] = []
    required = ["household_id", "county_code", "event_date" if dept.event else "period"]
    required += [f.name for f in dept.fields if f.required]
    for name in required:
        if name not in have:
            out.append(Problem(-1, None, name, None, COLUMN_ABSENT_RULE))
    for name in map(str, columns):
        if name in COMMON_FIELDS or name in dept.field_names:
            continue
        owner = FIELD_OWNER.get(name)
        rule = COLUMN_UNKNOWN_RULE if owner is None else other_department_rule(owner, department)
        out.append(Problem(-1, None, name, None, rule))
    return Problems(out)


def read_alert_file(path: str | Path, department: str, limit: int | None = 100) -> AlertFile:
    """A CSV or Parquet alert file of one department, validated column by column and row by row.

    Every problem names the row (0-based, the header not counted; −1 for a whole
    column) and the field. A file that cannot be read raises
    ``riskml.data.io.TableReadError`` (``NoSuchTableError`` when missing).
    """
    if department not in DEPARTMENTS:
        raise KeyError(
            f"unknown department {department!r}; use one of {', '.join(DEPARTMENT_CODES)}"
        )
    p = io.existing(path)
    raw = read_raw(p)
    cols = column_problems(list(raw.columns), department)
    if cols:
        return AlertFile(raw.iloc[:0], cols, len(raw))
    rows = frame_rows(raw)
    problems = alert_problems(rows, department, limit=limit)
    if problems.total:
        return AlertFile(raw.iloc[:0], problems, len(raw))
    return AlertFile(alerts_frame(rows, department), problems, len(raw))
