"""Validation of asset records, read from ``riskml.assets.contract.FIELDS``.

``record_problems`` checks JSON-like records (dicts; list fields as lists of objects);
``validate_frame`` checks a table as ``riskml.assets.io`` reads it (list fields already
parsed from their JSON text) by its records, after checking that every column is there. Each
problem names the record (0-based row), the asset (when its id is well formed), the field
(a list item as ``funding[1].amount``) and the rule broken. A value that may name a person
or an organisation (owner, operator, caretaker, a beneficiary's household id) is never
quoted: the problem says ``(value withheld)``.

Rules between fields: funding sums to at most the original value (plus a rounding
tolerance), book value ≤ original value, accepted on or after the build year, rights date
not before acceptance (and given once rights are not unconfirmed), contract end after its
start, village inside county, a known province, a household owner named by a pseudonymous
household id, a household (到户类) asset owned by a household, beneficiaries' shares in
(0, 1] summing to at most 1, and each asset_id once.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from riskml.assets import contract as c
from riskml.assets.contract import FIELDS, AssetField
from riskml.data.json_text import plain
from riskml.data.regions import PROVINCES
from riskml.data.schema import pseudonymous_id
from riskml.data.validation import number_value

_PATTERNS = {f.name: re.compile(f.pattern) for f in FIELDS if f.pattern}
_ORDER = {name: k for k, name in enumerate(c.FIELD_NAMES)}
_ID = re.compile(c.ID_PATTERN)
_DATE = re.compile(c.DATE_PATTERN)
WITHHELD = "(value withheld)"
_SHOWN_TEXT = 80


@dataclass(frozen=True)
class AssetProblem:
    """One thing wrong with one field of one asset record."""

    row: int  # position of the record in the input (0-based; -1: the file)
    asset_id: str | None
    field: str
    value: Any
    rule: str
    quoted: bool = True

    def shown(self) -> Any:
        if not self.quoted:
            return WITHHELD
        v = self.value
        if isinstance(v, float) and math.isnan(v):
            return "NaN"
        if isinstance(v, str) and len(v) > _SHOWN_TEXT:
            return v[:_SHOWN_TEXT] + "…"
        if isinstance(v, (list, dict)):
            return f"a {type(v).__name__}"
        return v

    def as_dict(self) -> dict[str, Any]:
        return {"row": self.row, "asset_id": self.asset_id, "field": self.field,
                "value": plain(self.shown()), "rule": self.rule}  # fmt: skip

    def __str__(self) -> str:
        aid = f" (asset_id {self.asset_id})" if self.asset_id else ""
        return f"row {self.row}{aid}, field {self.field!r}: {self.rule} (got {self.shown()!r})"


class AssetSchemaError(ValueError):
    """Asset records that do not satisfy the contract; carries every problem found."""

    def __init__(self, problems: list[AssetProblem], limit: int = 20):
        self.problems = problems
        shown = "\n".join(f"  - {p}" for p in problems[:limit])
        more = f"\n  ... and {len(problems) - limit} more" if len(problems) > limit else ""
        super().__init__(f"{len(problems)} problem(s) in the asset records:\n{shown}{more}")


# --------------------------------------------------------------------------- one value
def missing(v: Any) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v))


def parse_date(v: Any) -> dt.date | None:
    """A ``YYYY-MM-DD`` text (or a date) as a date; None when it is not a real date."""
    if isinstance(v, dt.datetime):
        return v.date()
    if isinstance(v, dt.date):
        return v
    if not isinstance(v, str) or not _DATE.fullmatch(v):
        return None
    try:
        return dt.date.fromisoformat(v)
    except ValueError:
        return None


def _number_rules(f: AssetField, v: Any) -> list[str]:
    x = number_value(v)
    if x is None:
        return [c.NUMBER_RULE]
    if not math.isfinite(x):
        return [c.FINITE_RULE]
    out = []
    if f.kind == "int" and not x.is_integer():
        out.append(c.WHOLE_RULE)
    if f.minimum is not None and x < f.minimum:
        out.append(c.min_rule(f))
    if f.maximum is not None and x > f.maximum:
        out.append(c.max_rule(f))
    return out


def value_rules(f: AssetField, v: Any) -> list[str]:
    """The rules a present value breaks in its own field (list fields: its shape only)."""
    if f.kind == "date":
        return [] if parse_date(v) is not None else [c.DATE_RULE]
    if f.kind in ("id", "choice", "text") and not isinstance(v, str):
        return [c.STRING_RULE]
    if f.kind == "id":
        rx = _PATTERNS.get(f.name) or re.compile(f.pattern or c.ID_PATTERN)
        return [] if rx.fullmatch(v) else [c.pattern_rule(f)]
    if f.kind == "choice":
        return [] if v in f.choices else [c.choice_rule(f)]
    if f.kind == "text":
        return [] if 0 < len(v.strip()) <= c.TEXT_MAX else [c.TEXT_RULE]
    if f.kind in ("int", "float"):
        return _number_rules(f, v)
    return [] if isinstance(v, list) else [c.LIST_RULE]


# --------------------------------------------------------------------------- records
_AMOUNT = AssetField(
    "amount", "float", True, "金额（元）", "amount, yuan", minimum=0, maximum=c.MONEY_MAX
)


def _funding_problems(items: list[Any]) -> tuple[list[tuple[str, Any, str]], float]:
    found: list[tuple[str, Any, str]] = []
    total = 0.0
    for k, item in enumerate(items):
        where = f"funding[{k}]"
        if not isinstance(item, dict):
            found.append((where, None, c.OBJECT_RULE))
            continue
        src = item.get("source")
        if src not in c.FUNDING_SOURCES:
            found.append((f"{where}.source", src, "must be one of " + ", ".join(c.FUNDING_SOURCES)))
        amount = item.get("amount")
        rules = [c.MISSING_RULE] if missing(amount) else _number_rules(_AMOUNT, amount)
        found.extend((f"{where}.amount", amount, r) for r in rules)
        if not rules:
            total += float(amount)
        unknown = set(item) - {"source", "amount"}
        found.extend((f"{where}.{k2}", None, c.UNKNOWN_RULE) for k2 in sorted(map(str, unknown)))
    return found, total


def _beneficiary_problems(items: list[Any]) -> list[tuple[str, Any, str, bool]]:
    found: list[tuple[str, Any, str, bool]] = []
    seen: set[str] = set()
    total = 0.0
    for k, item in enumerate(items):
        where = f"beneficiaries[{k}]"
        if not isinstance(item, dict):
            found.append((where, None, c.OBJECT_RULE, True))
            continue
        hid = item.get("household_id")
        if pseudonymous_id(hid) is None:
            found.append((f"{where}.household_id", hid, "must be a pseudonymous household_id",
                          False))  # fmt: skip
        elif hid in seen:
            found.append((f"{where}.household_id", hid, c.REPEATED_HOUSEHOLD_RULE, False))
        else:
            seen.add(hid)
        share = number_value(item.get("share"))
        if share is None or not math.isfinite(share) or not 0 < share <= 1:
            found.append((f"{where}.share", item.get("share"), c.SHARE_RULE, True))
        else:
            total += share
        unknown = set(item) - {"household_id", "share"}
        found.extend(
            (f"{where}.{k2}", None, c.UNKNOWN_RULE, True) for k2 in sorted(map(str, unknown))
        )
    if total > 1 + 1e-9:
        found.append(("beneficiaries", round(total, 6), c.SHARES_SUM_RULE, True))
    return found


def _cross_field(
    rec: dict[str, Any], good: set[str], funding_total: float | None
) -> list[tuple[str, Any, str]]:
    """The rules between fields, judged only on fields whose own value is fine (``good``)."""
    out: list[tuple[str, Any, str]] = []
    get = rec.get
    original = float(get("original_value")) if "original_value" in good else None
    if funding_total is not None and original is not None:
        allowed = original + max(c.FUNDING_TOLERANCE_YUAN, c.FUNDING_TOLERANCE_SHARE * original)
        if funding_total > allowed:
            out.append(("funding", round(funding_total, 2), c.FUNDING_SUM_RULE))
    if original is not None and "book_value" in good and float(get("book_value")) > original:
        out.append(("book_value", get("book_value"), c.BOOK_RULE))
    county, village = get("county_code"), get("village_code")
    if "county_code" in good:
        if county[:2] not in PROVINCES:
            out.append(("county_code", county, c.PROVINCE_RULE))
        if "village_code" in good and not village.startswith(county):
            out.append(("village_code", village, c.VILLAGE_RULE))
    accepted = parse_date(get("accepted_date")) if "accepted_date" in good else None
    if accepted is not None and "build_year" in good and accepted.year < int(get("build_year")):
        out.append(("accepted_date", get("accepted_date"), c.ACCEPTED_BEFORE_BUILD_RULE))
    rights = parse_date(get("rights_date")) if "rights_date" in good else None
    if rights is not None and accepted is not None and rights < accepted:
        out.append(("rights_date", get("rights_date"), c.RIGHTS_BEFORE_ACCEPTED_RULE))
    status = get("rights_status") if "rights_status" in good else None
    if status not in (None, "unconfirmed") and missing(get("rights_date")):
        out.append(("rights_date", None, c.RIGHTS_DATE_RULE))
    start = parse_date(get("contract_start")) if "contract_start" in good else None
    end = parse_date(get("contract_end")) if "contract_end" in good else None
    if end is not None and start is not None and end <= start:
        out.append(("contract_end", get("contract_end"), c.CONTRACT_ORDER_RULE))
    if end is not None and missing(get("contract_start")):
        out.append(("contract_start", None, c.CONTRACT_START_RULE))
    owner_type = get("owner_type") if "owner_type" in good else None
    if (
        owner_type == "household"
        and not missing(get("owner"))
        and pseudonymous_id(get("owner")) is None
    ):
        out.append(("owner", get("owner"), c.HOUSEHOLD_OWNER_RULE))
    if get("category") == "household" and owner_type not in (None, "household"):
        out.append(("owner_type", owner_type, c.HOUSEHOLD_CATEGORY_RULE))
    return out


_QUOTED = {f.name: f.quoted for f in FIELDS}
_NAMES = frozenset(c.FIELD_NAMES)


def _fine(f: AssetField) -> Any:
    """A quick test that a present value breaks none of its field's own rules (False: look
    closer with ``value_rules``; it only has to be right when it says True)."""
    if f.kind in ("id", "choice", "text"):
        if f.kind == "choice":
            return lambda v: type(v) is str and v in f.choices
        if f.kind == "text":
            return lambda v: type(v) is str and 0 < len(v.strip()) <= c.TEXT_MAX
        rx = _PATTERNS[f.name]
        return lambda v: type(v) is str and rx.fullmatch(v) is not None
    if f.kind in ("int", "float"):
        lo = -math.inf if f.minimum is None else f.minimum
        hi = math.inf if f.maximum is None else f.maximum
        kinds = (int,) if f.kind == "int" else (int, float)
        return lambda v: type(v) in kinds and lo <= v <= hi
    return lambda v: False  # dates and lists: judged in full


_CHECKS = tuple((f, _fine(f)) for f in FIELDS)


def one_record(i: int, rec: Any, *, check_unknown: bool = True) -> list[AssetProblem]:
    """The problems of one asset record (``i``: its position), in field order."""
    if not isinstance(rec, dict):
        return [AssetProblem(i, None, "(record)", None, c.OBJECT_RULE)]
    found: list[tuple[str, Any, str, bool]] = []
    good: set[str] = set()
    funding_total: float | None = None
    for f, fine in _CHECKS:
        v = rec.get(f.name)
        if v is None or missing(v):
            if f.required:
                found.append((f.name, None, c.MISSING_RULE, True))
            continue
        if not fine(v):
            rules = value_rules(f, v)
            if rules:
                found.extend((f.name, v, r, f.quoted) for r in rules)
                continue
        good.add(f.name)
        if f.kind == "funding":
            items, funding_total = _funding_problems(v)
            if items:
                found.extend((*p, True) for p in items)
                funding_total = None
        elif f.kind == "beneficiaries":
            found.extend(_beneficiary_problems(v))
    cross = _cross_field(rec, good, funding_total)
    if cross:
        found.extend((n, v, r, _QUOTED[n]) for n, v, r in cross)
    if check_unknown and not rec.keys() <= _NAMES:
        found.extend((str(k), None, c.UNKNOWN_RULE, True) for k in rec if k not in _NAMES)
    if not found:
        return []
    found.sort(key=lambda p: _ORDER.get(p[0].split("[")[0].split(".")[0], 99))
    aid = rec.get("asset_id")
    safe = aid if isinstance(aid, str) and _ID.fullmatch(aid) else None
    return [AssetProblem(i, safe, n, v, r, q) for n, v, r, q in found]


def record_problems(records: Sequence[Any], *, check_unknown: bool = True) -> list[AssetProblem]:
    """The problems of asset records, in record then field order; a repeated asset_id is a
    problem of the later record, naming the first."""
    out: list[AssetProblem] = []
    first: dict[str, int] = {}
    for i, rec in enumerate(records):
        problems = one_record(i, rec, check_unknown=check_unknown)
        aid = rec.get("asset_id") if isinstance(rec, dict) else None
        if isinstance(aid, str):
            earlier = first.setdefault(aid, i)
            if earlier != i:
                safe = aid if _ID.fullmatch(aid) else None
                problems.insert(
                    0, AssetProblem(i, safe, "asset_id", aid, c.duplicate_rule(earlier))
                )
        out.extend(problems)
    return out


def frame_records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """A frame's contract columns as records: missing cells as None, numpy scalars unwrapped."""
    cols = [n for n in c.FIELD_NAMES if n in df.columns]
    out = []
    for row in df[cols].astype(object).itertuples(index=False, name=None):
        rec = {}
        for name, v in zip(cols, row, strict=True):
            if isinstance(v, np.ndarray):
                v = v.tolist()
            elif isinstance(v, np.generic):
                v = v.item()
            rec[name] = None if not isinstance(v, list) and missing(v) else v
        out.append(rec)
    return out


def validate_frame(df: pd.DataFrame) -> list[AssetProblem]:
    """Every problem of a table of asset records (a missing column is a problem of the file,
    row -1). Extra columns are allowed."""
    absent = [f.name for f in FIELDS if f.name not in df.columns]
    if absent:
        return [AssetProblem(-1, None, n, None, c.COLUMN_ABSENT_RULE) for n in absent]
    return record_problems(frame_records(df), check_unknown=False)


def require_valid(records: Sequence[Any]) -> list[dict[str, Any]]:
    """The records, or AssetSchemaError listing every problem."""
    problems = record_problems(records)
    if problems:
        raise AssetSchemaError(problems)
    return list(records)


__all__ = [
    "WITHHELD", "AssetProblem", "AssetSchemaError", "frame_records", "missing", "one_record",
    "parse_date", "record_problems", "require_valid", "validate_frame", "value_rules",
]  # fmt: skip
