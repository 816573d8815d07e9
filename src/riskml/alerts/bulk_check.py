"""Alert files validated and typed column by column: the path of a monthly push (a million alerts).

``frame_problems`` gives the same problems as ``riskml.alerts.contract.alert_problems``
on the file's rows (same rows, fields, values and rules, in the same order, the same
``total`` and ``invalid_records``), but judges whole columns at once: a cell goes
through the row-wise rule function (``field_rules``, ``pattern_rules``, ``date_rules``)
only when a vectorised test says it may break a rule, so the rule words cannot differ.
``frame_alerts`` types valid alerts as ``alerts_frame`` does, with the derived alert
ids built from each row's canonical JSON as ``alert_id_of`` builds them.
``read_alert_frame`` is ``read_alert_file`` on these two.
tests/code/test_alert_bulk.py checks all three against the row-wise functions.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from riskml.alerts.contract import (
    ALERT_ID_RULE,
    COMMON_FIELDS,
    DEPARTMENT_RULE,
    EVENT_OF_PERIOD_RULE,
    MONTH_TOTAL_RULE,
    PERIOD_OF_EVENT_RULE,
    AlertFile,
    column_problems,
    date_rules,
    duplicate_alert_rule,
    field_rules,
    one_of_rule,
    pattern_rules,
    plain_cell,
    read_raw,
    request_department_rule,
)
from riskml.alerts.fields import ALERT_ID_PATTERN, DEPARTMENTS, EVENT_DATE_PATTERN, AlertField
from riskml.data import io
from riskml.data.regions import PROVINCES
from riskml.data.schema import (
    FIELD_BY_NAME,
    MISSING_RULE,
    STRING_RULE,
    Problem,
    Problems,
    pseudonymous_id,
)

__all__ = ["frame_alerts", "frame_problems", "read_alert_frame"]

_FIELD_PATTERNS = {
    n: FIELD_BY_NAME[n].pattern or "" for n in ("household_id", "county_code", "period")
}
_HID_PATTERN = FIELD_BY_NAME["household_id"].pattern or ""
# insertion order of the row-wise validator within one alert (ties of the field order keep it)
_SEQ = {"department": 0, "household_id": 1, "county_code": 2, "alert_id": 3, "dated": 4, "stray": 5}
_SEQ_FIELD, _SEQ_ONE_OF, _SEQ_TOTAL, _SEQ_DUPLICATE = 10, 60, 61, 62


# --------------------------------------------------------------------------- columns
def _missing(s: pd.Series) -> np.ndarray:
    """Cells the row-wise reading makes None (None, NaN, NA, NaT)."""
    return np.asarray(s.isna().to_numpy(), dtype=bool)


def _as_text(s: pd.Series) -> pa.Array | None:
    """The column as Arrow text when every present cell is a Python str (else None)."""
    if isinstance(s.dtype, pd.StringDtype):
        return pa.array(s.array, type=pa.string()) if len(s) else pa.array([], pa.string())
    if s.dtype != object or pd.api.types.infer_dtype(s, skipna=True) not in ("string", "empty"):
        return None
    return pa.array(s.to_numpy(dtype=object), type=pa.string(), from_pandas=True)


def _as_numbers(s: pd.Series) -> np.ndarray | None:
    """The column as float64 when it is a numeric (not boolean) column, else None."""
    dt = s.dtype
    if pd.api.types.is_bool_dtype(dt) or not pd.api.types.is_numeric_dtype(dt):
        return None
    return s.to_numpy(dtype="float64", na_value=np.nan)


def _is_flags(s: pd.Series) -> bool:
    if pd.api.types.is_bool_dtype(s.dtype):
        return True
    return s.dtype == object and pd.api.types.infer_dtype(s, skipna=True) in ("boolean", "empty")


def _not_matching(text: pa.Array, pattern: str) -> np.ndarray:
    hit = pc.match_substring_regex(text, pattern)
    return ~np.asarray(pc.fill_null(hit, True).to_numpy(zero_copy_only=False), dtype=bool)


class _Found:
    """Problems as arrays: row, field rank, insertion order, field, rule, with the cell's value."""

    def __init__(self, raw: pd.DataFrame, rank: dict[str, int]):
        self.raw, self.rank = raw, rank
        self.parts: list[tuple[np.ndarray, int, int, str, list[str], bool]] = []

    def add(self, rows: np.ndarray, name: str, seq: int, rules: Any, with_value: bool = True):
        rows = np.asarray(rows, dtype=np.int64)
        if not len(rows):
            return
        rules = [rules] * len(rows) if isinstance(rules, str) else list(rules)
        self.parts.append(
            (rows, self.rank.get(name, len(self.rank)), seq * 100, name, rules, with_value)
        )

    def cells(self, rows: np.ndarray, name: str, seq: int, rule_of) -> None:
        """Cells judged by the row-wise rule function ``rule_of(value) -> [rules]``, in rule order."""
        col = self.raw[name]
        out_rows, out_rules, subs = [], [], []
        for r in np.asarray(rows, dtype=np.int64).tolist():
            for j, rule in enumerate(rule_of(plain_cell(col.iat[r]))):
                out_rows.append(r)
                out_rules.append(rule)
                subs.append(j)
        if out_rows:  # several rules of one cell keep their order: seq + j / 100
            for j in sorted(set(subs)):
                keep = [k for k, s in enumerate(subs) if s == j]
                self.parts.append(
                    (
                        np.array([out_rows[k] for k in keep], np.int64),
                        self.rank.get(name, len(self.rank)),
                        seq * 100 + j,
                        name,
                        [out_rules[k] for k in keep],
                        True,
                    )
                )

    def rows_with_problems(self, n: int) -> np.ndarray:
        bad = np.zeros(n, dtype=bool)
        for rows, *_ in self.parts:
            bad[rows] = True
        return bad

    def problems(self, limit: int | None) -> Problems:
        if not self.parts:
            return Problems([], total=0, invalid_records=0)
        rows = np.concatenate([p[0] for p in self.parts])
        ranks = np.concatenate([np.full(len(p[0]), p[1]) for p in self.parts])
        seqs = np.concatenate([np.full(len(p[0]), p[2]) for p in self.parts])
        part = np.concatenate([np.full(len(p[0]), k) for k, p in enumerate(self.parts)])
        within = np.concatenate([np.arange(len(p[0])) for p in self.parts])
        order = np.lexsort((seqs, ranks, rows))
        total, invalid = len(order), len(np.unique(rows))
        shown = order if limit is None else order[: max(int(limit), 0)]
        hid = self.raw["household_id"] if "household_id" in self.raw.columns else None
        out = []
        for k in shown.tolist():
            r, (_, _, _, name, rules, with_value) = int(rows[k]), self.parts[int(part[k])]
            value = plain_cell(self.raw[name].iat[r]) if with_value else None
            h = plain_cell(hid.iat[r]) if hid is not None else None
            out.append(Problem(r, pseudonymous_id(h), name, value, rules[int(within[k])]))
        return Problems(out, total=total, invalid_records=invalid)


def _check_pattern(found: _Found, rows: np.ndarray, name: str, seq: int, pattern: str, rule_of):
    """A text column against its pattern: a cell off the pattern (or not text) judged row-wise."""
    s = found.raw[name].iloc[rows] if len(rows) != len(found.raw) else found.raw[name]
    present = ~_missing(s)
    found.add(rows[~present], name, seq, MISSING_RULE, with_value=False)
    text = _as_text(s)
    if text is None:
        found.cells(rows[present], name, seq, rule_of)
        return
    odd = _not_matching(text, pattern)
    if name == "county_code":  # well formed, yet not a province
        prov = pc.utf8_slice_codeunits(text, 0, 2)
        odd |= ~np.asarray(
            pc.fill_null(pc.is_in(prov, value_set=pa.array(sorted(PROVINCES))), True).to_numpy(
                zero_copy_only=False
            ),
            dtype=bool,
        )
    found.cells(rows[present & odd], name, seq, rule_of)
    return text


def _check_field(found: _Found, rows: np.ndarray, f: AlertField, seq: int) -> None:
    """One department field of the rows whose department is known."""
    if f.name not in found.raw.columns:
        return
    s = found.raw[f.name].iloc[rows]
    present = ~_missing(s)
    if f.required:
        found.add(rows[~present], f.name, seq, MISSING_RULE, with_value=False)
    rows, s = rows[present], s[present]

    def rule_of(v):
        return field_rules(f, v)

    if f.kind == "bool":
        if not _is_flags(s):
            found.cells(rows, f.name, seq, rule_of)
        return
    if f.kind == "choice":
        text = _as_text(s)
        if text is None:
            found.cells(rows, f.name, seq, rule_of)
            return
        hit = np.asarray(
            pc.is_in(text, value_set=pa.array(list(f.choices))).to_numpy(zero_copy_only=False), bool
        )
        found.cells(rows[~hit], f.name, seq, rule_of)
        return
    x = _as_numbers(s)
    if x is None:
        found.cells(rows, f.name, seq, rule_of)
        return
    with np.errstate(invalid="ignore"):
        odd = ~np.isfinite(x)
        if f.minimum is not None:
            odd |= x < f.minimum
        if f.maximum is not None:
            odd |= x > f.maximum
        if f.kind == "int":
            odd |= np.isfinite(x) & (x != np.floor(x))
    found.cells(rows[odd], f.name, seq, rule_of)


def _numbers_of(raw: pd.DataFrame, name: str, rows: np.ndarray) -> np.ndarray:
    """``number_value`` of each cell (NaN where None), as the medical total check reads them."""
    from riskml.data.validation import number_value

    if name not in raw.columns:
        return np.full(len(rows), np.nan)
    s = raw[name].iloc[rows]
    x = _as_numbers(s)
    if x is not None:
        return x
    values = [number_value(plain_cell(v)) for v in s.tolist()]
    return np.array([np.nan if v is None else v for v in values], dtype="float64")


# --------------------------------------------------------------------------- the problems
def frame_problems(raw: pd.DataFrame, department: str, limit: int | None = 100) -> Problems:
    """``alert_problems(frame_rows(raw), department, limit)``, judged column by column.

    ``raw``: a file's frame as ``read_raw`` gives it, whose columns pass ``column_problems``.
    """
    if column_problems(list(raw.columns), department):
        raise ValueError("the columns have problems: check them with column_problems first")
    d = DEPARTMENTS[department]
    raw = raw.reset_index(drop=True)
    n = len(raw)
    rank = {name: k for k, name in enumerate(COMMON_FIELDS)}
    rank.update({f.name: len(COMMON_FIELDS) + k for k, f in enumerate(d.fields)})
    found = _Found(raw, rank)
    everyone = np.arange(n, dtype=np.int64)
    # ---- the department: a row with another (or a wrong one) is judged on common fields only
    dept_ok = np.ones(n, dtype=bool)
    if "department" in raw.columns:
        s = raw["department"]
        present = ~_missing(s)
        text = _as_text(s)
        same = (
            np.asarray(
                pc.fill_null(pc.equal(text, department), False).to_numpy(zero_copy_only=False), bool
            )
            if text is not None
            else np.array([v == department for v in s.tolist()], dtype=bool)
        )
        odd = everyone[present & ~same]

        def dept_rule(v):
            if not isinstance(v, str) or v not in DEPARTMENTS:
                return [DEPARTMENT_RULE]
            return [] if v == department else [request_department_rule(department)]

        found.cells(odd, "department", _SEQ["department"], dept_rule)
        dept_ok[odd] = False
    # ---- common fields
    for name in ("household_id", "county_code"):
        _check_pattern(
            found, everyone, name, _SEQ[name], _FIELD_PATTERNS[name],
            lambda v, name=name: pattern_rules(name, v),
        )  # fmt: skip
    if "alert_id" in raw.columns:
        s = raw["alert_id"]
        present = ~_missing(s)
        text = _as_text(s)

        def id_rule(v):
            import re

            if not isinstance(v, str):
                return [STRING_RULE]
            return [] if re.fullmatch(ALERT_ID_PATTERN, v) else [ALERT_ID_RULE]

        odd = present if text is None else present & _not_matching(text, ALERT_ID_PATTERN)
        found.cells(everyone[odd], "alert_id", _SEQ["alert_id"], id_rule)
    known = everyone[dept_ok]
    dated, other = ("event_date", "period") if d.event else ("period", "event_date")
    if d.event:
        text = _check_pattern(
            found, known, "event_date", _SEQ["dated"], EVENT_DATE_PATTERN, date_rules
        )
        if text is not None:  # well-formed: is it a real day?
            s = raw["event_date"].iloc[known]
            ok = ~_missing(s)
            ok[ok] &= ~_not_matching(text.filter(pa.array(ok)), EVENT_DATE_PATTERN)
            day = pd.to_datetime(s[ok], format="%Y-%m-%d", errors="coerce")
            found.cells(known[ok][day.isna().to_numpy()], "event_date", _SEQ["dated"], date_rules)
    else:
        _check_pattern(
            found, known, "period", _SEQ["dated"], _FIELD_PATTERNS["period"],
            lambda v: pattern_rules("period", v),
        )  # fmt: skip
    if other in raw.columns:
        stray = known[~_missing(raw[other].iloc[known])]
        found.add(
            stray, other, _SEQ["stray"], PERIOD_OF_EVENT_RULE if d.event else EVENT_OF_PERIOD_RULE
        )
    # ---- department fields
    for k, f in enumerate(d.fields):
        _check_field(found, known, f, _SEQ_FIELD + k)
    if d.one_of:
        none = np.ones(len(known), dtype=bool)
        for name in d.one_of:
            if name in raw.columns:
                none &= _missing(raw[name].iloc[known])
        found.add(known[none], d.one_of[0], _SEQ_ONE_OF, one_of_rule(d.one_of), with_value=False)
    if d.code == "medical":
        total = _numbers_of(raw, "out_of_pocket", known)
        month = _numbers_of(raw, "month_out_of_pocket", known)
        with np.errstate(invalid="ignore"):
            over = ~np.isnan(total) & ~np.isnan(month) & (month > total)
        found.add(known[over], "month_out_of_pocket", _SEQ_TOTAL, MONTH_TOTAL_RULE)
    # ---- a repeated (department, alert_id) among the otherwise sound alerts
    sound = known[~found.rows_with_problems(n)[known]]
    earlier, derived = _first_of_each(raw, sound, department)
    later = earlier != sound
    dup_rows, dup_first, dup_derived = sound[later], earlier[later], derived[later]
    for is_derived in (False, True):
        pick = dup_derived == is_derived
        found.add(
            dup_rows[pick], "alert_id", _SEQ_DUPLICATE,
            [duplicate_alert_rule(int(e), is_derived) for e in dup_first[pick].tolist()],
            with_value=not is_derived,
        )  # fmt: skip
    return found.problems(limit)


def _first_of_each(raw: pd.DataFrame, rows: np.ndarray, department: str):
    """For each sound row: the first sound row with its key, and whether the key is derived."""
    if "alert_id" in raw.columns:
        derived = _missing(raw["alert_id"].iloc[rows])
    else:
        derived = np.ones(len(rows), dtype=bool)
    key = np.empty(len(rows), dtype=object)
    if (~derived).any():
        key[~derived] = ["i" + v for v in raw["alert_id"].iloc[rows[~derived]].tolist()]
    if derived.any():
        key[derived] = ["c" + v for v in content_json(raw.iloc[rows[derived]], department).tolist()]
    codes, _ = pd.factorize(key)  # numbered in order of first appearance
    if not len(codes):
        return np.zeros(0, np.int64), derived
    _, at = np.unique(codes, return_index=True)  # at[k]: where code k first appears
    return rows[at][codes], derived


# --------------------------------------------------------------------------- ids and frames
def _json_values(s: pd.Series, f: AlertField | None) -> pa.Array:
    """Each present cell of a sound column as its JSON text (null where missing)."""
    missing = _missing(s)
    kind = "text" if f is None else f.kind
    if kind in ("text", "choice"):  # patterns and choices need no escaping
        text = pa.array(s.to_numpy(dtype=object), type=pa.string(), from_pandas=True)
        return pc.binary_join_element_wise('"', text, '"', "")
    if kind == "bool":
        flags = s.to_numpy(dtype=object, na_value=False)
        out = np.where(flags.astype(bool), "true", "false").astype(object)
        out[missing] = None
        return pa.array(out, type=pa.string())
    x = s.to_numpy(dtype="float64", na_value=np.nan)
    whole = np.isfinite(x) & (x == np.floor(x))
    out = np.empty(len(x), dtype=object)
    out[whole] = (
        pa.array(x[whole].astype(np.int64)).cast(pa.string()).to_numpy(zero_copy_only=False)
    )
    rest = ~whole & ~missing
    out[rest] = [repr(v) for v in x[rest].tolist()]
    out[missing] = None
    return pa.array(out, type=pa.string())


def content_json(sound: pd.DataFrame, department: str) -> pa.Array:
    """Each sound alert's content as ``alert_id_of`` writes it (keys sorted, nulls left out)."""
    from riskml.alerts.fields import ALL_FIELDS

    names = sorted({*(c for c in map(str, sound.columns) if c != "alert_id"), "department"})
    pieces = []
    for name in names:
        if name == "department":
            values = pa.array(np.full(len(sound), f'"{department}"', dtype=object), pa.string())
        else:
            values = _json_values(sound[name], ALL_FIELDS.get(name))
        piece = pc.binary_join_element_wise(f',"{name}":', values, "")
        pieces.append(pc.fill_null(piece, ""))
    body = pc.binary_join_element_wise(*pieces, "") if pieces else pa.array([""] * len(sound))
    return pc.binary_join_element_wise("{", pc.utf8_slice_codeunits(body, 1), "}", "")


def frame_alerts(raw: pd.DataFrame, department: str) -> pd.DataFrame:
    """Valid alerts of one department (a file's frame) typed as ``alerts_frame`` types them."""
    d = DEPARTMENTS[department]
    raw = raw.reset_index(drop=True)
    n = len(raw)
    given = raw["alert_id"] if "alert_id" in raw.columns else pd.Series([None] * n, dtype=object)
    derived = _missing(given)
    ids = given.to_numpy(dtype=object).copy()
    if derived.any():
        text = content_json(raw.loc[derived], department).to_pylist()
        ids[derived] = [
            f"{department}:{hashlib.sha256(t.encode('utf-8')).hexdigest()[:20]}" for t in text
        ]
    columns: dict[str, Any] = {"alert_id": pd.array(ids, dtype="string")}
    for name in COMMON_FIELDS[1:]:
        if name == "department":
            columns[name] = pd.array(np.full(n, department, dtype=object), dtype="string")
        elif name in raw.columns:
            columns[name] = pd.array(raw[name].to_numpy(dtype=object), dtype="string")
        else:
            columns[name] = pd.array([None] * n, dtype="string")
    if d.event:
        columns["period"] = pd.Series(columns["event_date"]).str.slice(0, 7).array
    for f in d.fields:
        s = raw[f.name] if f.name in raw.columns else pd.Series([None] * n, dtype=object)
        if f.kind == "money":
            columns[f.name] = s.to_numpy(dtype="float64", na_value=np.nan)
        elif f.kind == "int":
            columns[f.name] = pd.array(
                s.to_numpy(dtype="float64", na_value=np.nan), dtype="Float64"
            ).astype("Int64")
        elif f.kind == "bool":
            columns[f.name] = pd.array(s.to_numpy(dtype=object), dtype="boolean")
        else:
            columns[f.name] = pd.array(s.to_numpy(dtype=object), dtype="string")
    return pd.DataFrame(columns)


def read_alert_frame(path: str | Path, department: str, limit: int | None = 100) -> AlertFile:
    """``read_alert_file``, validated and typed column by column (the same problems and frame)."""
    if department not in DEPARTMENTS:
        raise KeyError(department)
    raw = read_raw(io.existing(path))
    cols = column_problems(list(raw.columns), department)
    if cols:
        return AlertFile(raw.iloc[:0], cols, len(raw))
    problems = frame_problems(raw, department, limit=limit)
    if problems.total:
        return AlertFile(raw.iloc[:0], problems, len(raw))
    return AlertFile(frame_alerts(raw, department), problems, len(raw))
