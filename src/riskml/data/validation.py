"""Validation of household records: one set of rules, read from ``schema.FIELDS``, in two forms.

``validate_frame`` checks a frame (a file as ``riskml.data.io.read_table`` reads
it, a chunk of a batch run); ``record_problems`` checks JSON-like records (the
API's ``POST /score``). Each rule is decided by the same predicates below
(``number_value``, ``is_flag``, ``key_part``) and worded by the schema's rule
texts, so the same bad record gets the same (field, rule) problems on every
path; tests/code/test_one_validator.py runs a table of bad records through
both, through CSV and Parquet files and through ``riskml validate`` and
``riskml score`` and compares them row for row.

Where a table cannot say what JSON says, the answers differ by design:
a table has no absent key (a missing column is a file-level problem, an
empty cell is a null) and no NaN apart from missing (NaN is how a table
writes "missing"; in JSON, NaN is not a number and is refused). A CSV has no
types at all: ``io.read_table`` turns its text into numbers and flags first.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel

from riskml.data.regions import PROVINCES
from riskml.data.schema import (
    ABSENT_RULE,
    BOOL_RULE,
    COLUMN_ABSENT_RULE,
    FIELD_BY_NAME,
    FIELD_NAMES,
    FIELDS,
    FINITE_RULE,
    MISSING_RULE,
    NUMBER_RULE,
    OBJECT_RULE,
    PROVINCE_RULE,
    STRING_RULE,
    UNKNOWN_RULE,
    VILLAGE_RULE,
    WHOLE_RULE,
    Field,
    HouseholdRecord,
    Problem,
    Problems,
    SchemaError,
    coerce_frame,
    duplicate_rule,
    pseudonymous_id,
)

_ORDER = {name: k for k, name in enumerate(FIELD_NAMES)}
_PATTERNS = {f.name: re.compile(f.pattern) for f in FIELDS if f.pattern}
_ONE_KIND = frozenset({"string", "empty", "boolean", "floating", "integer"})


# --------------------------------------------------------------------------- the predicates
def number_value(v: Any) -> float | None:
    """``v`` as a float when it is a number (never a flag or text); None otherwise.

    An integer too large for a float64 (JSON allows 10**400) is ±inf, so it
    breaks "must be finite" instead of raising OverflowError.
    """
    if isinstance(v, (bool, np.bool_)):
        return None
    if isinstance(v, float):
        return v
    if isinstance(v, (int, np.integer)):
        try:
            return float(v)
        except OverflowError:
            return math.inf if v > 0 else -math.inf
    if isinstance(v, np.floating):
        return float(v)
    return None


def is_flag(v: Any) -> bool:
    """True and false are flags; 0 and 1 are numbers (a CSV's text 0/1 is read as a flag)."""
    return isinstance(v, (bool, np.bool_))


def key_part(v: Any) -> str | None:
    """One half of the (household_id, period) key: text as it is, None when missing.

    A value that is not text (a number where an id belongs) keeps its own key,
    never equal to a text's.
    """
    if v is None or v is pd.NA or (isinstance(v, float) and v != v):
        return None
    if isinstance(v, str):
        return v
    return f"\x00{v}"


def _number_rules(f: Field, x: float, size: float | None) -> list[str]:
    """The rules a number breaks in field ``f`` (``size``: the record's household_size as a number)."""
    if not math.isfinite(x):
        return [FINITE_RULE]
    out = []
    if f.kind == "int" and not x.is_integer():
        out.append(WHOLE_RULE)
    if f.minimum is not None and x < f.minimum:
        out.append(f.min_rule())
    if f.maximum is not None and x > f.maximum:
        out.append(f.max_rule())
    if f.max_field and size is not None and x > f.max_factor * size:
        out.append(f.max_field_rule())
    return out


# --------------------------------------------------------------------------- JSON records
def record_problems(records: Sequence[Any], limit: int | None = None) -> Problems:
    """The problems of JSON-like records (the API's validation), in record and field order.

    With ``limit``, at most that many are listed; ``.total`` counts them all and
    ``.invalid_records`` counts the records with any (a record with a million
    unknown keys costs what its first ``limit`` do). A repeated (household_id,
    period) is a problem of the later record, naming the first one. Records
    without problems go on as they are (``Columns.from_records(...,
    validated=True)`` checks nothing again: every number is finite and in range).
    """
    room = None if limit is None else max(int(limit), 0)
    out: list[Problem] = []
    total = invalid = 0
    first_seen: dict[tuple[str, str], int] = {}
    for i, rec in enumerate(records):
        found, count = _one_record(i, rec, first_seen, room)
        if count:
            invalid += 1
            total += count
            out.extend(found if room is None else found[:room])
            if room is not None:
                room -= min(room, len(found))
    return Problems(out, total=total, invalid_records=invalid)


def _one_record(
    i: int, rec: Any, first_seen: dict[tuple[str, str], int], room: int | None
) -> tuple[list[Problem], int]:
    """One record's problems (unknown keys only as many as ``room``) and how many there are."""
    if not isinstance(rec, dict):
        return [Problem(i, None, "(record)", None, OBJECT_RULE)], 1
    raw_size = rec.get("household_size")
    size = number_value(raw_size)
    if size is not None and math.isnan(size):
        size = None
    found: list[tuple[str, Any, str]] = []
    known = 0
    for f, fine in _CHECKS:
        v = rec.get(f.name, _ABSENT)
        if v is _ABSENT:
            found.append((f.name, None, ABSENT_RULE))
            continue
        known += 1
        if v is None:
            if not f.nullable:
                found.append((f.name, v, MISSING_RULE))
        elif not fine(v, size):
            found.extend((f.name, v, rule) for rule in _value_rules(f, v, size))
    # the rules between fields, on the field the frame validator names
    hid_value, period, county = rec.get("household_id"), rec.get("period"), rec.get("county_code")
    village = rec.get("village_code")
    if isinstance(county, str):
        if county[:2] not in PROVINCES:
            found.append(("county_code", county, PROVINCE_RULE))
        if isinstance(village, str) and not village.startswith(county):
            found.append(("village_code", village, VILLAGE_RULE))
    h, p = key_part(hid_value), key_part(period)
    if h is not None and p is not None:
        earlier = first_seen.setdefault((h, p), i)
        if earlier != i:
            found.append(("period", period, duplicate_rule(earlier)))
    unknown = len(rec) - known
    if not found and not unknown:
        return [], 0
    found.sort(key=lambda x: _ORDER[x[0]])
    hid = pseudonymous_id(hid_value)
    problems = [Problem(i, hid, name, v, rule) for name, v, rule in found]
    if unknown:
        want = unknown if room is None else max(room - len(problems), 0)
        for k in rec:
            if want <= 0:
                break
            if k not in FIELD_BY_NAME:
                problems.append(Problem(i, hid, str(k), None, UNKNOWN_RULE))
                want -= 1
    return problems, len(found) + unknown


def _fine(f: Field) -> Callable[[Any, float | None], bool]:
    """A quick test that a (non-null) value breaks none of its field's own rules.

    False means "look closer" (``_value_rules`` finds the rules, if any): it
    only has to be right when it says True.
    """
    if f.kind == "str":
        rx = _PATTERNS[f.name]
        return lambda v, size: type(v) is str and rx.fullmatch(v) is not None
    if f.kind == "bool":
        return lambda v, size: type(v) is bool
    lo = -math.inf if f.minimum is None else f.minimum
    hi = math.inf if f.maximum is None else f.maximum
    kinds = (int,) if f.kind == "int" else (int, float)
    if f.max_field:
        factor = f.max_factor
        return lambda v, size: (
            type(v) in kinds and size is not None and lo <= v <= hi and v <= factor * size
        )
    return lambda v, size: type(v) in kinds and lo <= v <= hi


_ABSENT = object()
_CHECKS = tuple((f, _fine(f)) for f in FIELDS)


def _value_rules(f: Field, v: Any, size: float | None) -> list[str]:
    """The rules one JSON value breaks in its own field (null is missing; NaN is not a number)."""
    if v is None:
        return [] if f.nullable else [MISSING_RULE]
    if f.kind == "str":
        if not isinstance(v, str):
            return [STRING_RULE]
        return [] if _PATTERNS[f.name].fullmatch(v) else [f.pattern_rule()]
    if f.kind == "bool":
        return [] if is_flag(v) else [BOOL_RULE]
    x = number_value(v)
    if x is None:
        return [NUMBER_RULE]
    return _number_rules(f, x, size)


def validate_records(records: list[Any]) -> tuple[list[BaseModel], list[Problem]]:
    """``record_problems`` with the valid records as HouseholdRecord models (nothing judged twice)."""
    problems = record_problems(records)
    bad = {p.row for p in problems}
    models = [
        HouseholdRecord.model_construct(**rec) for i, rec in enumerate(records) if i not in bad
    ]
    return models, list(problems)


def cross_field_problems(record: dict[str, Any]) -> list[tuple[str, str]]:
    """(field, rule) for each rule between fields that a record breaks (as both validators judge)."""
    out: list[tuple[str, str]] = []
    size = number_value(record.get("household_size"))
    size = None if size is None or math.isnan(size) else size
    for f in FIELDS:
        x = number_value(record.get(f.name))
        ok = f.max_field and x is not None and math.isfinite(x) and size is not None
        if ok and x > f.max_factor * size:
            out.append((f.name, f.max_field_rule()))
    county, village = record.get("county_code"), record.get("village_code")
    if isinstance(county, str) and isinstance(village, str) and not village.startswith(county):
        out.append(("village_code", VILLAGE_RULE))
    if isinstance(county, str) and county[:2] not in PROVINCES:
        out.append(("county_code", PROVINCE_RULE))
    return out


# --------------------------------------------------------------------------- frames
def _per_value(values: np.ndarray, fn: Callable[[Any], bool]) -> np.ndarray:
    """``fn`` of every value, computed once per distinct value when the values are of one kind.

    Values of mixed kinds are judged one by one: hashing takes 0 == False and
    1 == 1.0 == True for the same value, which a type check must not.
    """
    if pd.api.types.infer_dtype(values, skipna=True) not in _ONE_KIND:
        return np.fromiter((fn(v) for v in values), dtype=bool, count=len(values))
    codes, uniques = pd.factorize(values, use_na_sentinel=False)
    per = np.fromiter((fn(u) for u in uniques), dtype=bool, count=len(uniques))
    return per[codes]


def _matcher(rx: re.Pattern[str]) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, str) and rx.fullmatch(v) is not None


def _is_text(s: pd.Series, missing: np.ndarray) -> np.ndarray:
    if isinstance(s.dtype, pd.StringDtype):
        return ~missing
    if s.dtype == object:
        return _per_value(s.to_numpy(), lambda v: isinstance(v, str))
    return np.zeros(len(s), dtype=bool)


def _flags(s: pd.Series) -> np.ndarray:
    if pd.api.types.is_bool_dtype(s.dtype):
        return np.ones(len(s), dtype=bool)
    if s.dtype == object:
        return _per_value(s.to_numpy(), is_flag)
    return np.zeros(len(s), dtype=bool)


def _numbers(s: pd.Series, missing: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Values as float64 (NaN where missing or not a number) and a mask of present non-numbers."""
    n = len(s)
    if pd.api.types.is_bool_dtype(s.dtype) or isinstance(s.dtype, pd.StringDtype):
        return np.full(n, np.nan), ~missing
    if pd.api.types.is_numeric_dtype(s.dtype):
        return s.to_numpy(dtype="float64", na_value=np.nan), np.zeros(n, dtype=bool)
    got = [number_value(v) for v in s.to_numpy(dtype=object)]
    values = np.array([np.nan if x is None else x for x in got], dtype="float64")
    not_number = np.fromiter((x is None for x in got), dtype=bool, count=n) & ~missing
    return values, not_number


def _key_parts(values: np.ndarray) -> np.ndarray:
    """``key_part`` of every value (text as it is, missing as None; quick when all are text)."""
    if pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty"):
        return np.where(pd.isna(values), None, values)
    return np.array([key_part(v) for v in values], dtype=object)


def _per_pair(a: np.ndarray, b: np.ndarray, fn: Callable[[Any, Any], bool]) -> np.ndarray:
    """``fn(a[i], b[i])`` for every row, once per distinct pair when both columns are text."""
    n = len(a)
    kinds = ("string", "empty")
    if not (
        pd.api.types.infer_dtype(a, skipna=True) in kinds
        and pd.api.types.infer_dtype(b, skipna=True) in kinds
    ):
        return np.fromiter((fn(x, y) for x, y in zip(a, b, strict=True)), dtype=bool, count=n)
    ca, ua = pd.factorize(a, use_na_sentinel=False)
    cb, ub = pd.factorize(b, use_na_sentinel=False)
    codes, pairs = pd.factorize(ca.astype(np.int64) * len(ub) + cb)
    per = np.fromiter(
        (fn(ua[k // len(ub)], ub[k % len(ub)]) for k in pairs), dtype=bool, count=len(pairs)
    )
    return per[codes]


def _outside(county: Any, village: Any) -> bool:
    return isinstance(county, str) and isinstance(village, str) and not village.startswith(county)


def _earlier_rows(hid: np.ndarray, period: np.ndarray) -> np.ndarray:
    """For each row, the first earlier row with the same (household_id, period); -1 for none."""
    n = len(hid)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    h, _ = pd.factorize(_key_parts(hid))
    p, p_uniques = pd.factorize(_key_parts(period))
    key = h.astype(np.int64) * (len(p_uniques) + 1) + p.astype(np.int64)
    incomplete = np.flatnonzero((h < 0) | (p < 0))
    key[incomplete] = -1 - incomplete  # never equal to another row's key
    codes, _ = pd.factorize(key)  # codes in order of first appearance
    _, first = np.unique(codes, return_index=True)
    earlier = first[codes].astype(np.int64)
    earlier[earlier == np.arange(n)] = -1
    return earlier


def validate_frame(df: pd.DataFrame, *, earlier: np.ndarray | None = None) -> list[Problem]:
    """Every problem in a frame of household records, in row order (then field order).

    Checks presence of every contract field, nullability, types, patterns,
    ranges (fixed and relative to household_size), village inside county,
    known province, and that (household_id, period) is unique: a repeat is a
    problem of the later row, naming the first. ``earlier`` (the batch engine,
    which reads a file in chunks) gives, per row, the input position of the
    first record with the same key (or -1), instead of finding repeats within
    the frame. Extra columns are allowed (the label, evaluation columns).
    """
    problems: list[Problem] = []
    missing_cols = [f.name for f in FIELDS if f.name not in df.columns]
    for name in missing_cols:
        problems.append(Problem(-1, None, name, None, COLUMN_ABSENT_RULE))
    if missing_cols:
        return problems
    hid = df["household_id"].to_numpy(dtype=object)
    safe_hid: dict[int, str | None] = {}

    def add(mask: np.ndarray, field: str, rule: str | Callable[[int], str]) -> None:
        rows = np.flatnonzero(mask)
        if not len(rows):
            return
        values = df[field].to_numpy(dtype=object)
        for i in rows.tolist():
            if i not in safe_hid:
                safe_hid[i] = pseudonymous_id(hid[i])
            text = rule if isinstance(rule, str) else rule(i)
            problems.append(Problem(i, safe_hid[i], field, values[i], text))

    size, _ = _numbers(df["household_size"], df["household_size"].isna().to_numpy())
    for f in FIELDS:
        s = df[f.name]
        missing = s.isna().to_numpy()
        if not f.nullable:
            add(missing, f.name, MISSING_RULE)
        if f.kind == "str":
            text = _is_text(s, missing)
            add(~missing & ~text, f.name, STRING_RULE)
            ok = _per_value(s.to_numpy(dtype=object), _matcher(_PATTERNS[f.name]))
            add(text & ~ok, f.name, f.pattern_rule())
            continue
        if f.kind == "bool":
            add(~missing & ~_flags(s), f.name, BOOL_RULE)
            continue
        values, not_number = _numbers(s, missing)
        add(not_number, f.name, NUMBER_RULE)
        add(np.isinf(values), f.name, FINITE_RULE)
        fin = np.isfinite(values)
        if f.kind == "int":
            add(fin & (values != np.round(values)), f.name, WHOLE_RULE)
        if f.minimum is not None:
            add(fin & (values < f.minimum), f.name, f.min_rule())
        if f.maximum is not None:
            add(fin & (values > f.maximum), f.name, f.max_rule())
        if f.max_field:
            with np.errstate(invalid="ignore"):
                over = fin & ~np.isnan(size) & (values > f.max_factor * size)
            add(over, f.name, f.max_field_rule())

    county = df["county_code"].to_numpy(dtype=object)
    village = df["village_code"].to_numpy(dtype=object)
    add(_per_pair(county, village, _outside), "village_code", VILLAGE_RULE)
    add(
        _per_value(county, lambda c: isinstance(c, str) and c[:2] not in PROVINCES),
        "county_code",
        PROVINCE_RULE,
    )
    first = (
        _earlier_rows(hid, df["period"].to_numpy(dtype=object))
        if earlier is None
        else np.asarray(earlier, dtype=np.int64)
    )
    add(first >= 0, "period", lambda i: duplicate_rule(first[i]))

    problems.sort(key=lambda p: (p.row, _ORDER.get(p.field, 99)))
    return problems


def split_valid(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, list[Problem]]:
    """Split records into (valid rows, rejected rows with reasons, problems).

    Nothing is dropped: every input row is in exactly one of the two frames.
    The rejects frame carries the original columns plus ``row`` (position in
    the input) and ``reasons`` (every problem of that row, joined by "; ").
    """
    problems = validate_frame(df)
    if any(p.row < 0 for p in problems):
        raise SchemaError([p for p in problems if p.row < 0])
    bad_rows = sorted({p.row for p in problems})
    reasons: dict[int, list[str]] = {}
    for p in problems:
        reasons.setdefault(p.row, []).append(p.reason)
    mask = np.zeros(len(df), dtype=bool)
    mask[bad_rows] = True
    rejects = df.iloc[mask].copy()
    rejects.insert(0, "row", np.flatnonzero(mask))
    rejects["reasons"] = ["; ".join(reasons[i]) for i in np.flatnonzero(mask)]
    valid = coerce_frame(df.iloc[~mask]) if (~mask).any() else coerce_frame(df.iloc[:0])
    return valid, rejects, problems


def require_valid(df: pd.DataFrame) -> pd.DataFrame:
    """The frame in canonical dtypes, or SchemaError listing every problem."""
    problems = validate_frame(df)
    if problems:
        raise SchemaError(problems)
    return coerce_frame(df)
