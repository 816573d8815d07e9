"""Social participation (社会参与): the contract of a risk report by a registered reporter.

Registered social organisations, enterprises and volunteers report a risk they see in a
household: its household id when they know it, else its village and a description, the
risk types, and the day they saw it. ``REPORT_FIELDS`` is the one source of truth of the
report's fields (kinds, limits, rules in words); the validator (``report_problems``), the
file reader (``read_report_file``), the OpenAPI schema (``riskml.service.openapi_reports``)
and the documentation (``report_contract_markdown``, the block in docs/api.md) are all
written from it.

Every problem names the report's index (a file's row, 0-based), the household id when it
is well formed, the field and the rule; never a value of the report (a description is the
reporter's free text and is never logged nor echoed).
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
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from riskml.data import io
from riskml.data.regions import PROVINCES
from riskml.data.schema import (
    ABSENT_RULE,
    COLUMN_ABSENT_RULE,
    FIELD_BY_NAME,
    MISSING_RULE,
    OBJECT_RULE,
    PROVINCE_RULE,
    STRING_RULE,
    VILLAGE_RULE,
    pseudonymous_id,
)
from riskml.policy.risk_types import RISK_TYPE_CODES

__all__ = [
    "CHINA_TIME",
    "MAX_DESCRIPTION",
    "MAX_REPORTS",
    "MAX_RISK_TYPES",
    "ORGANISATION_KINDS",
    "REPORT_FIELDS",
    "REPORT_FIELD_NAMES",
    "REPORT_ID_PATTERN",
    "ReportField",
    "ReportFile",
    "example_report",
    "read_report_file",
    "report_contract_markdown",
    "report_id_of",
    "report_problems",
]

MAX_REPORTS = 1_000
MAX_DESCRIPTION = 500  # the case loop's note: the description goes with the lead
MAX_RISK_TYPES = 5
REPORT_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"
REFERENCE_PATTERN = r"^[A-Za-z0-9_./:-]{1,64}$"
DATE_PATTERN = r"^(19|20)[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"
ORGANISATION_KINDS: dict[str, str] = {
    "social_organisation": "社会组织 (registered social organisation)",
    "enterprise": "企业 (enterprise)",
    "volunteer": "志愿者 (registered volunteer)",
}
# the day a report is seen in: China Standard Time (a report is not from the future)
CHINA_TIME = _dt.timezone(_dt.timedelta(hours=8), "CST")
RISK_TYPES_SEPARATOR = ";"  # a file's risk_types cell: illness;disability

Kind = Literal["id", "code", "choice", "risk_types", "date", "text"]
Need = Literal["yes", "no", "without_household"]


@dataclass(frozen=True)
class ReportField:
    """One field of a report: its kind, whether it is required, its limit and meaning."""

    name: str
    kind: Kind
    need: Need
    description: str
    pattern: str | None = None
    limit: int | None = None

    def need_text(self) -> str:
        return {"yes": "yes", "no": "no", "without_household": "without household_id"}[self.need]

    def rule_text(self) -> str:
        """The field's rule in words, as in the contract's table."""
        if self.kind == "choice":
            return "one of " + ", ".join(ORGANISATION_KINDS)
        if self.kind == "risk_types":
            return f"a list of 1 to {self.limit} distinct risk types: " + ", ".join(RISK_TYPE_CODES)
        if self.kind == "date":
            return "a real date YYYY-MM-DD, not after today (China Standard Time)"
        if self.kind == "text":
            return f"text of 1 to {self.limit} characters, not blank, no control characters but line breaks and tabs"
        return f"matches `{self.pattern}`"


REPORT_FIELDS: tuple[ReportField, ...] = (
    ReportField("report_id", "id", "no",
                "the reporter's id of the report, unique for the reporter; when absent, derived "
                "from the report's content (the same report sent twice gets the same id)",
                REPORT_ID_PATTERN),
    ReportField("organisation_kind", "choice", "yes",
                "who reports: a registered social organisation, an enterprise or a volunteer"),
    ReportField("household_id", "code", "no",
                "the household's pseudonymous id when the reporter knows it (never a name or "
                "ID-card number); a report of a household riskml knows becomes a lead of the case loop",
                FIELD_BY_NAME["household_id"].pattern),
    ReportField("county_code", "code", "yes",
                "county, 6 digits (GB/T 2260): the reporter's key must cover it",
                FIELD_BY_NAME["county_code"].pattern),
    ReportField("village_code", "code", "without_household",
                "village, 12 digits starting with county_code: where the household lives, and "
                "the village whose list shows a report riskml cannot match",
                FIELD_BY_NAME["village_code"].pattern),
    ReportField("risk_types", "risk_types", "yes",
                "the risks seen (riskml's risk types); in a file, codes separated by ';'",
                limit=MAX_RISK_TYPES),
    ReportField("observed_on", "date", "yes", "the day the risk was seen", DATE_PATTERN),
    ReportField("description", "text", "without_household",
                "what was seen, for the caseworker who visits (never logged); it goes with the "
                "lead as its note", limit=MAX_DESCRIPTION),
    ReportField("reference", "id", "no",
                "the reporter's own reference of the report (a case number); contact-free: no "
                "@, no run of 7 or more digits (never a phone number)", REFERENCE_PATTERN),
)  # fmt: skip
REPORT_FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in REPORT_FIELDS)
_BY_NAME = {f.name: f for f in REPORT_FIELDS}
_ORDER = {name: k for k, name in enumerate(REPORT_FIELD_NAMES)}
_PATTERNS = {f.name: re.compile(f.pattern) for f in REPORT_FIELDS if f.pattern}
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_PHONE = re.compile(r"[0-9]{7,}")

# --------------------------------------------------------------------------- the rules' words
UNKNOWN_RULE = "unknown field: not in the report contract"
COLUMN_UNKNOWN_RULE = "unknown column: not in the report contract"
REPORT_OBJECT_FIELD = "(report)"
CHOICE_RULE = "must be one of " + ", ".join(ORGANISATION_KINDS)
WITHOUT_HOUSEHOLD_RULE = "required when household_id is not given"
RISK_LIST_RULE = f"must be a list of 1 to {MAX_RISK_TYPES} risk types"
RISK_CODE_RULE = "unknown risk type (one of " + ", ".join(RISK_TYPE_CODES) + ")"
RISK_TWICE_RULE = "a risk type is listed twice"
DATE_RULE = "must be a date written YYYY-MM-DD"
REAL_DATE_RULE = "must be a real date"
FUTURE_RULE = "must not be after today (China Standard Time)"
TEXT_RULE = f"must be text of 1 to {MAX_DESCRIPTION} characters, not blank"
CONTROL_RULE = "must not hold control characters (line breaks and tabs are fine)"
CONTACT_RULE = "must be contact-free: no @ and no run of 7 or more digits"


def duplicate_report_rule(earlier: int, derived: bool) -> str:
    if derived:
        return (
            f"duplicate report: same content as report {int(earlier)} "
            "(give report_id to tell them apart)"
        )
    return f"duplicate report: same report_id as report {int(earlier)}"


# --------------------------------------------------------------------------- ids
def _canonical(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value


def report_id_of(report: dict[str, Any]) -> str:
    """The report's id: its own ``report_id``, else ``r:`` and 24 hex of the SHA-256 of its
    content (keys sorted, nulls left out), so the same report sent twice gets the same id."""
    own = report.get("report_id")
    if own is not None:
        return str(own)
    content = {k: _canonical(v) for k, v in report.items() if k != "report_id" and v is not None}
    text = json.dumps(content, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return "r:" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


def today_in_china() -> _dt.date:
    return _dt.datetime.now(CHINA_TIME).date()


# --------------------------------------------------------------------------- one value
def _value_rules(f: ReportField, v: Any, today: _dt.date) -> list[str]:
    """The rules a present, non-null value breaks in field ``f``."""
    if f.kind == "risk_types":
        if not isinstance(v, list) or not 1 <= len(v) <= MAX_RISK_TYPES:
            return [RISK_LIST_RULE]
        out = [RISK_CODE_RULE] if any(c not in RISK_TYPE_CODES for c in v) else []
        if len({str(c) for c in v}) != len(v):
            out.append(RISK_TWICE_RULE)
        return out
    if not isinstance(v, str):
        return [STRING_RULE]
    if f.kind == "choice":
        return [] if v in ORGANISATION_KINDS else [CHOICE_RULE]
    if f.kind == "text":
        if not v.strip() or len(v) > MAX_DESCRIPTION:
            return [TEXT_RULE]
        return [CONTROL_RULE] if _CONTROL.search(v) else []
    if f.kind == "date":
        if not _PATTERNS[f.name].fullmatch(v):
            return [DATE_RULE]
        try:
            day = _dt.date.fromisoformat(v)
        except ValueError:
            return [REAL_DATE_RULE]
        return [FUTURE_RULE] if day > today else []
    if not _PATTERNS[f.name].fullmatch(v):
        return [f"must match {f.pattern}"]
    if f.name == "reference" and _PHONE.search(v):
        return [CONTACT_RULE]
    if f.name in ("county_code", "village_code") and v[:2] not in PROVINCES:
        return [PROVINCE_RULE]
    return []


_ABSENT = object()


def report_problems(
    reports: Iterable[Any], today: _dt.date | None = None, limit: int | None = 100
) -> tuple[list[dict[str, Any]], int, int]:
    """Every problem of JSON-like reports, in report and field order: (problems, total, invalid).

    Each problem is ``{"index", "household_id", "field", "problem"}``; with ``limit`` at most
    that many are listed, ``total`` counts them all and ``invalid`` the reports with any. A
    repeated report id (given, or derived from the same content) is a problem of the later
    report, naming the first. ``today``: the day reports may not be after (default: today in
    China Standard Time).
    """
    day = today or today_in_china()
    room = None if limit is None else max(int(limit), 0)
    out: list[dict[str, Any]] = []
    total = invalid = 0
    first_seen: dict[str, int] = {}
    for i, report in enumerate(reports):
        found = _one_report(i, report, day, first_seen)
        if found:
            invalid += 1
            total += len(found)
            out.extend(found if room is None else found[:room])
            if room is not None:
                room -= min(room, len(found))
    return out, total, invalid


def _one_report(
    i: int, report: Any, today: _dt.date, first_seen: dict[str, int]
) -> list[dict[str, Any]]:
    if not isinstance(report, dict):
        return [{"index": i, "household_id": None, "field": REPORT_OBJECT_FIELD, "problem": OBJECT_RULE}]  # fmt: skip
    found: list[tuple[str, str]] = []
    no_household = report.get("household_id") is None
    for f in REPORT_FIELDS:
        v = report.get(f.name, _ABSENT)
        if v is _ABSENT or v is None:
            if f.need == "yes":
                found.append((f.name, ABSENT_RULE if v is _ABSENT else MISSING_RULE))
            elif f.need == "without_household" and no_household:
                found.append((f.name, WITHOUT_HOUSEHOLD_RULE))
            continue
        found.extend((f.name, r) for r in _value_rules(f, v, today))
    county, village = report.get("county_code"), report.get("village_code")
    bad = {name for name, _ in found}
    if (
        isinstance(county, str)
        and isinstance(village, str)
        and not {"county_code", "village_code"} & bad
        and not village.startswith(county)
    ):
        found.append(("village_code", VILLAGE_RULE))
    extra = [(str(k)[:64], UNKNOWN_RULE) for k in report if k not in _ORDER]
    if not found and not extra:
        rid = report_id_of(report)
        earlier = first_seen.setdefault(rid, i)
        if earlier != i:
            found.append(("report_id", duplicate_report_rule(earlier, report.get("report_id") is None)))  # fmt: skip
    found.sort(key=lambda x: _ORDER.get(x[0], len(_ORDER)))
    hid = pseudonymous_id(report.get("household_id"))
    return [
        {"index": i, "household_id": hid, "field": name, "problem": rule}
        for name, rule in found + extra
    ]


def example_report(**fields: Any) -> dict[str, Any]:
    """A valid report (a volunteer's, of a known household; ``fields`` replace or add; None drops)."""
    report: dict[str, Any] = {
        "organisation_kind": "volunteer",
        "household_id": "H0000001",
        "county_code": "530102",
        "village_code": "530102001001",
        "risk_types": ["illness"],
        "observed_on": "2025-03-15",
        "description": "the main earner has been in hospital for two weeks",
    }
    report.update(fields)
    return {k: v for k, v in report.items() if v is not None}


# --------------------------------------------------------------------------- files
@dataclass(frozen=True)
class ReportFile:
    """A report file as read: its reports (JSON-like; empty when refused) and its problems.

    A problem with index −1 is about a whole column; any problem refuses the whole file.
    """

    reports: list[dict[str, Any]]
    problems: list[dict[str, Any]]
    total: int
    rows: int

    @property
    def ok(self) -> bool:
        return not self.total


def _cell(name: str, v: Any) -> Any:
    """A table cell as a JSON-like value (missing as None; a risk_types cell as a list)."""
    if isinstance(v, (list, tuple, np.ndarray)):
        return [_cell("", x) for x in list(v)]
    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and math.isnan(v):
        return None
    if isinstance(v, (_dt.datetime, pd.Timestamp)):
        return v.date().isoformat()
    if isinstance(v, _dt.date):
        return v.isoformat()
    if name == "risk_types" and isinstance(v, str):
        return [part.strip() for part in v.split(RISK_TYPES_SEPARATOR) if part.strip()]
    return v


def _read_json(p: Path) -> list[Any]:
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise io.TableReadError(f"{p}: not a JSON file ({io.short_reason(exc)})") from None
    if isinstance(doc, dict) and set(doc) == {"reports"}:
        doc = doc["reports"]
    if not isinstance(doc, list):
        raise io.TableReadError(f'{p}: a JSON report file is a list of reports or {{"reports": [...]}}')  # fmt: skip
    return doc


def _read_table(p: Path) -> pd.DataFrame:
    if io.table_format(p) == "parquet":
        try:
            return pd.read_parquet(p)
        except (pa.ArrowException, OSError, ValueError) as exc:
            raise io.TableReadError(f"{p}: not a readable Parquet file ({io.short_reason(exc)})") from None  # fmt: skip
    names = io.csv_header(p)
    try:
        table = pacsv.read_csv(
            p, read_options=io.csv_read_options(), convert_options=io.csv_convert_options(names)
        )
    except (pa.ArrowException, OSError) as exc:
        raise io.TableReadError(f"{p}: cannot read the CSV file ({io.short_reason(exc)})") from None  # fmt: skip
    return table.to_pandas()


def column_problems(columns: Sequence[str]) -> list[dict[str, Any]]:
    """A file's columns: every required one present, none unknown (index −1)."""
    have = set(map(str, columns))
    out = [
        {"index": -1, "household_id": None, "field": f.name, "problem": COLUMN_ABSENT_RULE}
        for f in REPORT_FIELDS
        if f.need == "yes" and f.name not in have
    ]
    out += [
        {"index": -1, "household_id": None, "field": str(c)[:64], "problem": COLUMN_UNKNOWN_RULE}
        for c in columns
        if str(c) not in _ORDER
    ]
    return out


def read_report_file(
    path: str | Path, today: _dt.date | None = None, limit: int | None = 100
) -> ReportFile:
    """A CSV, Parquet or JSON file of reports (one a row), validated column by column, then row
    by row. A file that cannot be read raises ``riskml.data.io.TableReadError``."""
    p = io.existing(path)
    if p.suffix.lower() == ".json":
        rows = _read_json(p)
    else:
        raw = _read_table(p)
        cols = column_problems(list(raw.columns))
        if cols:
            return ReportFile([], cols, len(cols), len(raw))
        names = [str(c) for c in raw.columns]
        rows = [
            {n: c for n, v in zip(names, row, strict=True) if (c := _cell(n, v)) is not None}
            for row in raw.astype(object).itertuples(index=False, name=None)
        ]
    problems, total, _ = report_problems(rows, today, limit)
    return ReportFile([] if total else rows, problems, total, len(rows))


# --------------------------------------------------------------------------- documentation
DOC_START = "<!-- report contract: generated by `riskml reports contract`; do not edit -->"
DOC_END = "<!-- end of the report contract -->"


def report_contract_markdown() -> str:
    """The report contract's block of docs/api.md (between ``DOC_START`` and ``DOC_END``)."""
    lines = [
        DOC_START,
        "| field | kind | required | rule | meaning |",
        "| --- | --- | --- | --- | --- |",
    ]
    lines += [
        f"| `{f.name}` | {f.kind} | {f.need_text()} | {f.rule_text()} | {f.description} |"
        for f in REPORT_FIELDS
    ]
    lines += [
        "",
        f"1 to {MAX_REPORTS:,} reports a request. Organisation kinds: "
        + "; ".join(f"`{k}` {v}" for k, v in ORGANISATION_KINDS.items())
        + ". A report is stored once per (reporter, report_id); any problem refuses the whole "
        "request (422 naming index and field) and nothing is stored.",
        DOC_END,
    ]
    return "\n".join(lines) + "\n"
