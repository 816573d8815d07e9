"""Evaluating the rules over a batch of records (vectorised), one record, and the rules baseline.

Conditions combine in three-valued logic; a rule whose outcome stays unknown
does not fire and is listed as not evaluated. Severity is the sum over fired
rules of ``weight × (1 + excess)`` (see :mod:`riskml.policy.rules`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from riskml.data.columns import Columns, as_columns
from riskml.data.reference import ReferenceLines, default_lines
from riskml.data.schema import FIELD_NAMES, records_to_frame
from riskml.policy.risk_types import RISK_TYPE_CODES
from riskml.policy.rules.context import Context
from riskml.policy.rules.model import Condition, Group, Rule
from riskml.policy.rules.results import RuleResults
from riskml.policy.rules.ruleset import RuleSet, default_ruleset
from riskml.policy.rules.values import base_inputs

__all__ = ["evaluate", "evaluate_record", "previous_frame", "rules_baseline"]


def _compare(op: str, v: np.ndarray, t: np.ndarray | float) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        if op == "lt":
            return v < t
        if op == "le":
            return v <= t
        if op == "gt":
            return v > t
        if op == "ge":
            return v >= t
        return v == t


def _threshold_array(
    ctx: Context, cond: Condition, n: int
) -> tuple[np.ndarray | float, np.ndarray | float]:
    """(threshold, factor): scalars for a fixed threshold, arrays for a reference."""
    if cond.threshold_ref is None:
        return float(cond.threshold), np.nan  # type: ignore[arg-type]
    ref = ctx.get(cond.threshold_ref)[0]
    return ref * cond.factor, cond.factor


def _eval_leaf(
    ctx: Context, rule: Rule, cond: Condition, target: str | None, masks: list[np.ndarray | None]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | float, np.ndarray | float]:
    """(true, known, value, threshold, factor) of one condition with the rule's overrides."""
    v, vk = ctx.get(cond.value)
    n = ctx.n
    if cond.is_flag:
        want = 1.0 if cond.op == "is_true" else 0.0
        return (vk & (v == want)), vk, v, want, np.nan
    thr, fac = _threshold_array(ctx, cond, n)
    for ov, mask in zip(rule.overrides, masks, strict=True):
        if ov.target != target or not ov.changes_threshold() or mask is None:
            continue
        t2, f2 = _threshold_array(ctx, ov.merge(cond), n)
        thr = np.where(mask, t2, thr)
        fac = np.where(mask, f2, fac)
    if isinstance(thr, np.ndarray):
        tk = ~np.isnan(thr)
        known = vk & tk
    else:
        known = vk
    true = known & _compare(cond.op, v, thr)
    return true, known, v, thr, fac


def _eval_group(
    ctx: Context, rule: Rule, group: Group, masks: list[np.ndarray | None]
) -> tuple[np.ndarray, np.ndarray]:
    """Three-valued all/any: (true, known)."""
    trues, falses = [], []
    for it in group.items:
        if isinstance(it, Group):
            t, k = _eval_group(ctx, rule, it, masks)
        else:
            t, k = _eval_leaf(ctx, rule, it, it.name, masks)[:2]
        trues.append(t)
        falses.append(k & ~t)
    if group.mode == "all":
        true = np.logical_and.reduce(trues)
        false = np.logical_or.reduce(falses)
    else:
        true = np.logical_or.reduce(trues)
        false = np.logical_and.reduce(falses)
    return true, true | false


def _excess(op: str, v: np.ndarray, t: np.ndarray | float) -> np.ndarray:
    """How far past the threshold, relative to it, in [0, 1]."""
    if op not in ("lt", "le", "gt", "ge"):
        return np.zeros(v.shape)
    diff = (t - v) if op in ("lt", "le") else (v - t)
    scale = np.abs(np.broadcast_to(t, v.shape)).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(scale > 0, diff / np.where(scale > 0, scale, 1.0), np.where(diff > 0, 1, 0))
    out = np.nan_to_num(out, nan=0.0, posinf=1.0, neginf=0.0)
    return np.clip(out, 0.0, 1.0)


_RT_INDEX = {c: i for i, c in enumerate(RISK_TYPE_CODES)}


def evaluate(
    df: pd.DataFrame | Columns,
    ruleset: RuleSet | None = None,
    lines: ReferenceLines | None = None,
    previous: pd.DataFrame | Columns | None = None,
    on: Any = None,
) -> RuleResults:
    """Evaluate every rule over a frame of canonical records (``schema.coerce_frame`` output).

    ``previous`` is the previous-period record of each row (same index as
    ``df``; NA rows where unknown), e.g. from :func:`riskml.history.previous_from_panel`; it
    may hold only some columns (the income fields are what ``income_drop``
    needs). ``on`` (``YYYY-MM`` or a date) fixes the date for effective
    ranges; by default each record's own ``period`` is used. Lines come from
    the province and year of each record's ``period``. Vectorised: no
    per-row Python work. ``df`` and ``previous`` may also be ``Columns``
    (the service's request path).
    """
    ruleset = ruleset if ruleset is not None else default_ruleset()
    lines = lines if lines is not None else default_lines()
    rules = ruleset.rules
    needed = {"county_code", "period"}
    for r in rules:
        for name in r.inputs():
            if name in FIELD_NAMES:
                needed.add(name)
            else:
                needed.update(b for b in base_inputs(name) if b in FIELD_NAMES)
    columns = as_columns(df)
    lacking = sorted(c for c in needed if c not in columns)
    if lacking:
        raise ValueError(f"records lack column(s) the rules need: {', '.join(lacking)}")
    index = df.index if isinstance(df, pd.DataFrame) else pd.RangeIndex(len(columns))
    if previous is not None and (
        len(previous) != len(columns)
        or (isinstance(previous, pd.DataFrame) and not previous.index.equals(index))
    ):
        raise ValueError("previous must be aligned with the records: same length and index")

    ctx = Context(columns, as_columns(previous), lines, on)
    n, nr = len(columns), len(rules)
    fired = np.zeros((n, nr), dtype=bool, order="F")
    evaluated = np.zeros((n, nr), dtype=bool, order="F")
    active = np.zeros((n, nr), dtype=bool, order="F")
    values = np.full((n, nr), np.nan, order="F")
    thresholds = np.full((n, nr), np.nan, order="F")
    contrib = np.zeros((n, nr), order="F")
    rts: list[int | np.ndarray] = []
    factors: list[np.ndarray | float] = []

    for j, r in enumerate(rules):
        in_force = (ctx.month >= r.start) & (
            ctx.month <= r.end if r.end is not None else np.ones(n, dtype=bool)
        )
        on_ = np.full(n, r.enabled) & in_force
        masks: list[np.ndarray | None] = []
        for ov in r.overrides:
            m = np.isin(ctx.province, [int(p) for p in ov.provinces])
            if ov.start is not None:
                m &= ctx.month >= ov.start
            if ov.end is not None:
                m &= ctx.month <= ov.end
            m = m if m.any() else None
            masks.append(m)
            if m is not None and ov.enabled is not None:
                on_ = np.where(m & in_force, ov.enabled, on_)
        c_true, c_known, v, thr, fac = _eval_leaf(ctx, r, r.condition, None, masks)
        if r.only_if is not None:
            w_true, w_known = _eval_group(ctx, r, r.only_if, masks)
            fire = c_true & w_true
            decided = (c_known & w_known) | (c_known & ~c_true) | (w_known & ~w_true)
        else:
            fire, decided = c_true, c_known
        fire &= on_
        fired[:, j] = fire
        evaluated[:, j] = decided
        active[:, j] = on_
        values[:, j] = v
        thresholds[:, j] = thr
        if fire.any():
            contrib[:, j] = np.where(fire, r.weight * (1.0 + _excess(r.condition.op, v, thr)), 0)
        factors.append(float(fac) if np.isscalar(fac) else np.asarray(fac, dtype=np.float64))
        rts.append(_risk_type_index(ctx, r))

    return RuleResults(
        index,
        rules,
        ruleset.version,
        fired,
        evaluated,
        active,
        values,
        thresholds,
        contrib,
        rts,
        factors,
        ctx,
    )


def _risk_type_index(ctx: Context, r: Rule) -> int | np.ndarray:
    """The rule's risk type, or per row the type of the largest driver (biggest fall)."""
    base = _RT_INDEX[r.risk_type]
    if not r.risk_type_by_driver:
        return base
    drops = []
    for f, _ in r.risk_type_by_driver:
        now, prev = ctx.get(f)[0], ctx.get(f"prev_{f}")[0]
        d = prev - now
        drops.append(np.where(np.isnan(d), -np.inf, d))
    stacked = np.vstack(drops)
    best = stacked.argmax(axis=0)
    codes = np.array([_RT_INDEX[rt] for _, rt in r.risk_type_by_driver], dtype=np.int16)
    return np.where(stacked.max(axis=0) > 0, codes[best], base).astype(np.int16)


# --------------------------------------------------------------------------- single record
def previous_frame(
    records: Iterable[Mapping[str, Any] | None], index: pd.Index | None = None
) -> pd.DataFrame:
    """Previous-period records (dicts, None where unknown) as a frame aligned to ``index``.

    For the service: the history it holds for each household. Fields a dict
    leaves out are missing.
    """
    rows = [dict(r) if r is not None else {} for r in records]
    frame = records_to_frame(rows) if rows else records_to_frame([]).iloc[:0]
    if index is not None:
        frame.index = index
    return frame


def evaluate_record(
    record: Mapping[str, Any],
    ruleset: RuleSet | None = None,
    lines: ReferenceLines | None = None,
    previous: Mapping[str, Any] | None = None,
    on: Any = None,
) -> list[dict[str, Any]]:
    """The fired rules of one record (same dicts as ``RuleResults.for_row``).

    Built on :func:`evaluate` over one record's columns, so single and batch agree.
    """
    records = Columns.from_records([dict(record)])
    prev = Columns.from_records([dict(previous)]) if previous is not None else None
    return evaluate(records, ruleset, lines, prev, on).for_row(0)


# --------------------------------------------------------------------------- baseline
def rules_baseline(results: RuleResults) -> tuple[np.ndarray, np.ndarray]:
    """What rules alone achieve: (flagged as bool, severity as float) per record.

    ``severity`` ranks records for a visit capacity (top k); see the
    :mod:`riskml.policy.rules` docstring for its definition. Zero for records no rule flags.
    """
    return results.flagged.copy(), results.severity.astype(np.float64, copy=True)
