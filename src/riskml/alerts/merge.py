"""Partial updates: department alerts applied onto the household's latest record.

``merge`` applies every alert of one household and month (several
departments) in a fixed order, by department code and then alert_id, each field
by its mapping (``riskml.alerts.fields``: set, not, at_least_one, minus_one,
flag_false), onto the household's latest record at or before the alerts' month
(the as-of record); the merged record's period is the alerts' month.
``minus_one`` applies once per field and month (one main earner), and never to
a missing count (missing is never zero).

The merged record keeps the record rules (``riskml.data.validation.
cross_field_problems``): a count above household_size after a death is lowered
to household_size, and its provenance says so. Provenance maps each record
field a mapping applied to (the value now comes from a department, whether or
not it differs) to ``{department, alert_id, period, changed}`` (``changed``: the
merged value differs from the as-of record's; plus ``note`` for a lowered count);
the last alert in the fixed order wins a field.

``merge_frame`` is the same merge for a batch (a monthly push of a million
medical alerts), vectorised: tests/code/test_alert_merge.py checks that it and
``merge`` give the same records and provenance.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from riskml.alerts.contract import alert_id_of, alert_period
from riskml.alerts.fields import DEPARTMENT_CODES, DEPARTMENTS, FieldMap
from riskml.data.periods import month_index
from riskml.data.schema import FIELD_BY_NAME, FIELD_NAMES, FIELDS
from riskml.data.validation import cross_field_problems

__all__ = [
    "NO_RECORD_YET",
    "UNKNOWN_HOUSEHOLD",
    "Merged",
    "RecordKeys",
    "asof_positions",
    "group_alerts",
    "merge",
    "merge_frame",
    "merge_frame_groups",
    "month_codes",
    "order_key",
    "previous_positions",
]

UNKNOWN_HOUSEHOLD = "unknown household: no record to merge onto"
NO_RECORD_YET = "no record of the household at or before the alerts' month"
PROVENANCE_COLUMNS = (
    "household_id", "period", "field", "department", "alert_id", "alert_period", "changed", "note",
)  # fmt: skip


@dataclass(frozen=True)
class Merged:
    """A merged record, which department set each field it changed, and the alerts applied (in order)."""

    record: dict[str, Any]
    provenance: dict[str, dict[str, Any]]
    alert_ids: tuple[str, ...] = field(default=())


def order_key(alert: dict[str, Any]) -> tuple[str, str]:
    """The fixed order alerts are applied in: department code, then alert_id."""
    return (str(alert["department"]), alert_id_of(alert))


def group_alerts(alerts: Iterable[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Alerts by (household_id, month), each list in the fixed order: one merge, one re-scoring, one lead."""
    out: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for a in alerts:
        out.setdefault((str(a["household_id"]), alert_period(a)), []).append(a)
    return {k: sorted(v, key=order_key) for k, v in out.items()}


def _floor(name: str) -> int:
    lo = FIELD_BY_NAME[name].minimum
    return 0 if lo is None else int(lo)


def _mapped(m: FieldMap, v: Any, current: Any) -> tuple[bool, Any]:
    """(applies, new value) of one mapping for an alert value ``v`` and the record's ``current``."""
    if m.how == "set":
        return True, (bool(v) if FIELD_BY_NAME[m.field].kind == "bool" else float(v))
    if m.how in ("not", "flag_false"):
        return (True, False) if v is True else (False, None)
    if m.how == "at_least_one":
        if v is not True:
            return False, None
        return True, max(0 if current is None else int(current), 1)
    # minus_one
    if (m.when and v not in m.when) or current is None:
        return False, None
    return True, max(int(current) - 1, _floor(m.field))


def _missing(v: Any) -> bool:
    return v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v))


def merge(latest: dict[str, Any] | None, alerts: list[dict[str, Any]]) -> Merged | None:
    """The latest record with the alerts of one household and month applied (see the module docstring).

    None when ``latest`` is None (an unknown household: its alerts are kept as
    unmatched elsewhere). The alerts must have passed ``alert_problems``;
    ValueError when they are about several households or months, another
    household than ``latest``'s, or a month before ``latest``'s period (pass the
    household's latest record at or before the alerts' month).
    """
    if latest is None:
        return None
    if not alerts:
        raise ValueError("no alerts to merge")
    keys = {(str(a["household_id"]), alert_period(a)) for a in alerts}
    if len(keys) != 1:
        raise ValueError("merge takes the alerts of one household and one month: use group_alerts")
    ((hid, month),) = keys
    if hid != latest.get("household_id"):
        raise ValueError("the alerts are about another household than the record")
    if str(latest["period"]) > month:
        raise ValueError("the record is later than the alerts: pass the record as of their month")
    record = dict(latest)
    record["period"] = month
    provenance: dict[str, dict[str, Any]] = {}
    lowered: set[str] = set()
    ordered = sorted(alerts, key=order_key)
    for a in ordered:
        dept, aid = DEPARTMENTS[a["department"]], alert_id_of(a)
        for f in dept.fields:
            v = a.get(f.name)
            if _missing(v):
                continue
            for m in f.maps:
                if m.how == "minus_one" and m.field in lowered:
                    continue
                current = None if _missing(record.get(m.field)) else record.get(m.field)
                applies, new = _mapped(m, v, current)
                if not applies:
                    continue
                if m.how == "minus_one":
                    lowered.add(m.field)
                record[m.field] = new
                provenance[m.field] = {
                    "department": dept.code,
                    "alert_id": aid,
                    "period": month,
                    "changed": _missing(latest.get(m.field)) or latest.get(m.field) != new,
                }
    _keep_rules(record, provenance, ordered[-1], month)
    return Merged(record, provenance, tuple(alert_id_of(a) for a in ordered))


def lowered_note(name: str) -> str:
    """The provenance note of a count lowered to its bound (``months_employed``: 12 × household_size)."""
    f = FIELD_BY_NAME[name]
    factor = "" if f.max_factor == 1 else f"{f.max_factor:g} × "
    return f"lowered to {factor}{f.max_field} to keep the record rules"


def _keep_rules(
    record: dict[str, Any], provenance: dict[str, dict[str, Any]], last: dict, month: str
) -> None:
    """Lower each count a merge left above its bound (household_size after a death), saying so."""
    for name, _rule in cross_field_problems(record):
        f = FIELD_BY_NAME[name]
        if not f.max_field:
            continue  # village inside county, province: not the alerts' doing
        cap = f.max_factor * record[f.max_field]
        cause = provenance.get(f.max_field) or {
            "department": last["department"],
            "alert_id": alert_id_of(last),
            "period": month,
        }
        record[name] = int(cap) if f.kind == "int" else float(cap)
        provenance[name] = {
            **{k: cause[k] for k in ("department", "alert_id", "period")},
            "changed": True,
            "note": lowered_note(f.name),
        }


# --------------------------------------------------------------------------- the batch merge
_MONTH_BITS = 15  # month counts (year × 12 + month − 1) of years before 2730 fit in 15 bits
_FIELD_CODE = {name: k for k, name in enumerate(FIELD_NAMES)}
_BOUNDED = tuple(f for f in FIELDS if f.max_field)
_NOTES = tuple(dict.fromkeys(lowered_note(f.name) for f in _BOUNDED))


def _text(s: pd.Series) -> pa.Array:
    """A text column as an Arrow array (no copy when it is Arrow-backed already)."""
    return pa.array(s if isinstance(s.dtype, pd.StringDtype) else s.astype("string"))


def _runs_last(groups: np.ndarray) -> np.ndarray:
    """For a non-decreasing array of group numbers, True at the last position of each run."""
    if not len(groups):
        return np.zeros(0, dtype=bool)
    return np.r_[groups[1:] != groups[:-1], True]


def _as_float(s: pd.Series) -> np.ndarray:
    return s.to_numpy(dtype="float64", na_value=np.nan)


def _assign(merged: pd.DataFrame, name: str, groups: np.ndarray, values: np.ndarray) -> None:
    """``merged[name][groups] = values``, keeping the column's dtype."""
    col = merged[name]
    if isinstance(col.dtype, pd.api.extensions.ExtensionDtype):
        arr = col.array.copy()
        arr[groups] = values
    else:
        arr = col.to_numpy(copy=True)
        arr[groups] = values
    merged[name] = arr


class _Provenance:
    """Provenance rows as integer codes while merging (group, field, department, alert row)."""

    def __init__(self) -> None:
        self.parts: list[tuple[np.ndarray, ...]] = []

    def add(self, groups, field_name, dept, rows, changed, note: int = -1) -> None:
        k = len(groups)
        dept = np.full(k, dept, np.int16) if np.isscalar(dept) else np.asarray(dept, np.int16)
        self.parts.append(
            (
                np.asarray(groups, np.int64),
                np.full(k, _FIELD_CODE[field_name], np.int16),
                dept,
                np.asarray(rows, np.int64),
                np.asarray(changed, bool),
                np.full(k, note, np.int16),
            )
        )

    def columns(self) -> tuple[np.ndarray, ...]:
        if not self.parts:
            return tuple(
                np.zeros(0, t) for t in (np.int64, np.int16, np.int16, np.int64, bool, np.int16)
            )
        return tuple(np.concatenate(c) for c in zip(*self.parts, strict=True))


def merge_frame(
    latest: pd.DataFrame, alerts: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The batch merge: (merged records, provenance, unmatched alerts), as ``merge`` judges each group.

    ``latest``: household records (contract fields, canonical dtypes), one or
    several per household: each group is merged onto the household's latest
    record at or before the alerts' month.
    ``alerts``: valid alerts as ``riskml.alerts.contract.alerts_frame`` types them
    (a department's columns may be absent when none of its alerts is there).
    Merged: one row per (household_id, month) with alerts, the record's fields
    plus ``alert_ids`` (the ids applied, in the fixed order, joined by ";") and
    ``alert_count``. Provenance: one row per merged record and field a mapping
    applied to (``PROVENANCE_COLUMNS``; field, department, alert_period and note
    are categorical). Unmatched: the alerts whose household has no record
    (``UNKNOWN_HOUSEHOLD``) or none at or before their month (``NO_RECORD_YET``),
    with ``reason``; never dropped.
    """
    return merge_frame_groups(latest, alerts)[:3]


def merge_frame_groups(
    latest: pd.DataFrame, alerts: pd.DataFrame, keys: RecordKeys | None = None
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, np.ndarray]:
    """``merge_frame`` and each alert's merged record (its position in merged; −1: unmatched).

    ``keys``: ``RecordKeys.of(latest)`` when the caller has it already (a push's look-ups).
    """
    base = latest[list(FIELD_NAMES)].reset_index(drop=True)
    keys = keys if keys is not None else RecordKeys.of(base)
    hcode = keys.codes(alerts["household_id"])
    asof = keys.positions(hcode, month_codes(alerts["period"]), strict=False)
    known = asof >= 0
    unmatched = alerts.loc[~known].reset_index(drop=True)
    unmatched["reason"] = np.where(hcode[~known] < 0, UNKNOWN_HOUSEHOLD, NO_RECORD_YET)
    idx = np.flatnonzero(known)
    record_pos = asof[idx]
    pcode, months = pd.factorize(alerts["period"].iloc[idx], sort=True)
    dcode_raw, depts = pd.factorize(alerts["department"].iloc[idx])
    dcode = (
        np.array([DEPARTMENT_CODES.index(d) for d in depts], np.int16)[dcode_raw]
        if len(idx)
        else dcode_raw
    )
    aid_all = _text(alerts["alert_id"])
    key = pa.table({"h": hcode[idx], "p": pcode, "d": dcode, "a": aid_all.take(pa.array(idx))})
    order = pc.sort_indices(key, sort_keys=[(c, "ascending") for c in "hpda"]).to_numpy()
    rows, pos, pcode, dcode = idx[order], hcode[idx][order], pcode[order], dcode[order]
    record_pos = record_pos[order]
    n = len(rows)
    new_group = np.ones(n, dtype=bool)
    new_group[1:] = (pos[1:] != pos[:-1]) | (pcode[1:] != pcode[:-1])
    g = np.cumsum(new_group) - 1
    starts = np.flatnonzero(new_group)
    merged = base.take(record_pos[starts]).reset_index(drop=True)
    merged["period"] = pd.Series(months.take(pcode[starts]), dtype=merged["period"].dtype)
    prov = _Provenance()
    original: dict[str, np.ndarray] = {}  # the as-of record's values of each field touched

    for k, code in enumerate(DEPARTMENT_CODES):
        in_dept = dcode == k
        if not in_dept.any():
            continue
        for f in DEPARTMENTS[code].fields:
            if not f.maps or f.name not in alerts.columns:
                continue
            col = alerts[f.name]
            present = in_dept & col.notna().to_numpy()[rows]
            for m in f.maps:
                applying = _rows_applying(m, col, rows, present)
                if not len(applying):
                    continue
                last = applying[_runs_last(g[applying])]
                groups = g[last]
                if m.field not in original:
                    original[m.field] = _as_float(merged[m.field])
                old_f = _as_float(merged[m.field])[groups]
                if m.how == "set":
                    new_values = col.to_numpy()[rows[last]]
                elif m.how in ("not", "flag_false"):
                    new_values = np.zeros(len(last), dtype=bool)
                elif m.how == "at_least_one":
                    new_values = np.maximum(np.nan_to_num(old_f, nan=0.0), 1.0)
                else:  # minus_one: a missing count stays missing
                    keep = ~np.isnan(old_f)
                    last, groups, old_f = last[keep], groups[keep], old_f[keep]
                    new_values = np.maximum(old_f - 1.0, _floor(m.field))
                _assign(merged, m.field, groups, new_values)
                was, new_f = original[m.field][groups], np.asarray(new_values, dtype="float64")
                changed = ~((was == new_f) | (np.isnan(was) & np.isnan(new_f)))
                prov.add(groups, m.field, k, last, changed)

    _keep_rules_frame(merged, prov)
    provenance = _provenance_frame(prov, merged, aid_all.take(pa.array(rows)), months, pcode)
    sorted_ids = aid_all.take(pa.array(rows))
    if len(starts) == n:
        joined = sorted_ids
    else:  # each group's ids in the fixed order, joined by ";"
        offsets = pa.array(np.r_[starts, n].astype(np.int32))
        ids = pc.cast(sorted_ids, pa.string())
        joined = pc.binary_join(pa.ListArray.from_arrays(offsets, ids), ";")
    merged["alert_ids"] = pd.Series(joined, dtype="string").to_numpy()
    merged["alert_count"] = np.diff(np.r_[starts, n]).astype(np.int64)
    group = np.full(len(alerts), -1, np.int64)
    group[rows] = g
    return merged, provenance, unmatched, group


def month_codes(periods: pd.Series) -> np.ndarray:
    """``month_index`` of a column of valid periods, computed once per distinct period."""
    codes, months = pd.factorize(periods)
    if not len(months):
        return np.zeros(len(codes), np.int64)
    return month_index(pd.Series(months)).to_numpy()[codes]


@dataclass(frozen=True)
class RecordKeys:
    """Records' (household, month) keys, sorted once for the as-of and previous look-ups."""

    households: pa.Array  # each household id once; a household's code is its position here
    sorted_keys: np.ndarray  # (code << _MONTH_BITS) + month, sorted
    order: np.ndarray  # the records' positions in that order

    @classmethod
    def of(cls, records: pd.DataFrame) -> RecordKeys:
        hcode_b, hids = pd.factorize(records["household_id"])
        key_b = (hcode_b.astype(np.int64) << _MONTH_BITS) + month_codes(records["period"])
        order_b = np.argsort(key_b, kind="stable")
        return cls(_text(pd.Series(hids)), key_b[order_b], order_b)

    def codes(self, households: pd.Series) -> np.ndarray:
        """Each household's code (−1: not in the records)."""
        found = pc.index_in(_text(households), value_set=self.households)
        return pc.fill_null(found, -1).to_numpy().astype(np.int64)

    def positions(self, hcode: np.ndarray, months: np.ndarray, strict: bool) -> np.ndarray:
        """Per (household code, month): the position of the household's latest record at or
        before the month (``strict``: before it), −1 for none."""
        key_sorted = self.sorted_keys
        key_a = (hcode << _MONTH_BITS) + months
        at_raw = np.searchsorted(key_sorted, key_a, side="left" if strict else "right") - 1
        at = np.clip(at_raw, 0, None)
        known = (hcode >= 0) & (at_raw >= 0)
        if not len(key_sorted):
            return np.full(len(hcode), -1, np.int64)
        known &= (key_sorted[at] >> _MONTH_BITS) == hcode
        return np.where(known, self.order[at], -1)


def _lookup(
    records: pd.DataFrame, households: pd.Series, periods: pd.Series, strict: bool,
    keys: RecordKeys | None = None,
) -> np.ndarray:  # fmt: skip
    keys = keys if keys is not None else RecordKeys.of(records)
    return keys.positions(keys.codes(households), month_codes(periods), strict)


def asof_positions(
    records: pd.DataFrame, households: pd.Series, periods: pd.Series,
    keys: RecordKeys | None = None,
) -> np.ndarray:  # fmt: skip
    """Positions in ``records`` of each household's latest record at or before the month (−1: none).

    The record ``merge_frame`` merges the alerts of that household and month onto, and the
    record the triggers read (``record_before``). ``keys``: ``RecordKeys.of(records)``, if made.
    """
    return _lookup(records, households, periods, strict=False, keys=keys)


def previous_positions(
    records: pd.DataFrame, households: pd.Series, periods: pd.Series,
    keys: RecordKeys | None = None,
) -> np.ndarray:  # fmt: skip
    """Positions in ``records`` of each household's latest record before the month (−1: none).

    The previous period of a merged record, as the ledger gives it to the service
    (``Ledger.previous_records``: a strictly earlier period); the gap is not checked here.
    """
    return _lookup(records, households, periods, strict=True, keys=keys)


def _rows_applying(
    m: FieldMap, col: pd.Series, rows: np.ndarray, present: np.ndarray
) -> np.ndarray:
    """Positions (in the sorted alerts) whose value makes mapping ``m`` apply."""
    if m.how == "set":
        return np.flatnonzero(present)
    if m.how == "minus_one":
        if not m.when:
            return np.flatnonzero(present)
        hit = col.isin(list(m.when)).to_numpy(dtype=bool, na_value=False)[rows]
        return np.flatnonzero(present & hit)
    flag = col.to_numpy(dtype=bool, na_value=False)[rows]
    return np.flatnonzero(present & flag)


def _keep_rules_frame(merged: pd.DataFrame, prov: _Provenance) -> None:
    """``_keep_rules`` for the batch: lower counts above their bound, blaming household_size's alert."""
    groups, fields, depts, rows, _, _ = prov.columns()
    is_size = fields == _FIELD_CODE["household_size"]
    if not is_size.any():
        return  # household_size unchanged: a valid record stays valid
    cause = np.full(len(merged), -1, np.int64)
    cause[groups[is_size]] = np.flatnonzero(is_size)  # the last alert that set it wins
    size = _as_float(merged["household_size"])
    for f in _BOUNDED:
        values, cap = _as_float(merged[f.name]), f.max_factor * size
        with np.errstate(invalid="ignore"):
            over = np.flatnonzero((values > cap) & (cause >= 0))
        if not len(over):
            continue
        _assign(merged, f.name, over, cap[over].astype(np.int64) if f.kind == "int" else cap[over])
        j = cause[over]
        note = _NOTES.index(lowered_note(f.name))
        prov.add(over, f.name, depts[j], rows[j], np.ones(len(over), bool), note)


def _provenance_frame(
    prov: _Provenance,
    merged: pd.DataFrame,
    sorted_ids: pa.Array,
    months: pd.Index,
    pcode: np.ndarray,
) -> pd.DataFrame:
    """One row per merged record and field: the last alert (in the fixed order) that set it."""
    groups, fields, depts, rows, changed, notes = prov.columns()
    order = np.lexsort((-np.arange(len(groups)), fields, groups))
    groups, fields = groups[order], fields[order]
    first = np.ones(len(groups), dtype=bool)
    first[1:] = (groups[1:] != groups[:-1]) | (fields[1:] != fields[:-1])
    keep = order[first]
    groups, fields, rows = groups[first], fields[first], rows[keep]
    take = pa.array(groups)
    return pd.DataFrame(
        {
            "household_id": pd.Series(_text(merged["household_id"]).take(take), dtype="string"),
            "period": pd.Series(_text(merged["period"]).take(take), dtype="string"),
            "field": pd.Categorical.from_codes(fields, FIELD_NAMES),
            "department": pd.Categorical.from_codes(depts[keep], DEPARTMENT_CODES),
            "alert_id": pd.Series(sorted_ids.take(pa.array(rows)), dtype="string"),
            "alert_period": pd.Categorical.from_codes(pcode[rows], months),
            "changed": changed[keep],
            "note": pd.Categorical.from_codes(notes[keep], _NOTES),
        }
    )
