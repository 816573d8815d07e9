"""Household decisions added up by area and period: counts, flags, expected households at risk.

Three steps, each vectorised, the first the only one that reads households:

1. ``prepare``: decisions (batch output or ledger rows; optionally an ``at_risk`` outcome)
   become one row per household and period with the village as an integer code, the risk,
   the flags and the risk types (checked: a bad row is named with its field);
2. ``village_partials``: per period and village, sums that add up (households, scored,
   flagged by rules and by the model, Σp, Σp(1−p), flagged households by risk type, and the
   same sums over households with an outcome), plus the exact distribution of the count
   for villages whose variance is small (``riskml.regions.interval``). Spark runs this very
   function on partitions holding whole villages (``riskml.regions.spark_job``);
3. ``rollup``: township, county, prefecture and province sums from the villages' (a code's
   prefix), distributions by convolution where still small; ``finish`` (``riskml.regions
   .table``) turns the sums into the published table.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from riskml.data.periods import PERIOD_RE, month_text
from riskml.policy.risk_types import RISK_TYPES
from riskml.regions.interval import exact_distributions, needs_exact, truncation
from riskml.regions.reference import DIGITS, LEVELS

REQUIRED = ("period", "county_code", "village_code", "score", "flagged", "flagged_by")
RISK_TYPE_COLUMNS = tuple(f"flagged_{code}" for code in RISK_TYPES)
SUMS = (
    "households", "scored", "flagged", "flagged_rules", "flagged_model", "expected",
    "variance", "with_outcome", "realised", "expected_outcome", "variance_outcome",
    *RISK_TYPE_COLUMNS,
)  # fmt: skip
INTEGER_SUMS = tuple(c for c in SUMS if c not in ("expected", "variance", "expected_outcome", "variance_outcome"))  # fmt: skip
DISTS = ("dist", "dist_outcome")  # exact distributions of the count (all; with an outcome)
KEY = ("period", "code")


class RegionInputError(ValueError):
    """Decisions that cannot be aggregated; ``problems``: (row, field, problem), row 0-based."""

    def __init__(self, problems: list[dict[str, Any]], total: int):
        self.problems = problems
        self.total = total
        shown = "; ".join(f"row {p['row']}, field {p['field']!r}: {p['problem']}" for p in problems)
        super().__init__(f"{total} bad decision row(s): {shown}")


def _column(table: pa.Table, name: str) -> pa.ChunkedArray:
    return table.column(name)


def _check(table: pa.Table) -> None:
    """Every row usable: YYYY-MM period, 12-digit village within its 6-digit county, score in
    [0, 1] or missing. Raises naming up to 5 rows and their fields."""
    missing = [c for c in REQUIRED if c not in table.column_names]
    if missing:
        raise RegionInputError([{"row": None, "field": c, "problem": "missing column"} for c in missing], 0)  # fmt: skip
    period = pc.cast(_column(table, "period"), pa.string())
    village = pc.cast(_column(table, "village_code"), pa.string())
    county = pc.cast(_column(table, "county_code"), pa.string())
    score = pc.cast(_column(table, "score"), pa.float64())
    checks = {
        "period": pc.invert(
            pc.fill_null(pc.match_substring_regex(period, f"^{PERIOD_RE.pattern}$"), False)
        ),  # fmt: skip
        "village_code": pc.invert(
            pc.fill_null(
                pc.and_(
                    pc.match_substring_regex(village, "^[0-9]{12}$"),
                    pc.equal(pc.utf8_slice_codeunits(village, 0, 6), county),
                ),
                False,
            )
        ),
        "score": pc.fill_null(pc.or_(pc.less(score, 0.0), pc.greater(score, 1.0)), False),
        "flagged": pc.is_null(_column(table, "flagged")),
    }
    problems: list[dict[str, Any]] = []
    total = 0
    what = {
        "period": "must be YYYY-MM",
        "village_code": "must be 12 digits starting with county_code (6 digits)",
        "score": "must be between 0 and 1 (or missing)",
        "flagged": "missing",
    }
    bad_any = None
    for name, bad in checks.items():
        arr = bad.to_numpy(zero_copy_only=False) if isinstance(bad, pa.ChunkedArray) else np.asarray(bad)  # fmt: skip
        bad_any = arr if bad_any is None else bad_any | arr
        for row in np.flatnonzero(arr)[:5]:
            problems.append({"row": int(row), "field": name, "problem": what[name]})
    if bad_any is not None and bad_any.any():
        total = int(bad_any.sum())
        problems.sort(key=lambda p: p["row"])
        raise RegionInputError(problems[:5], total)


def _risk_type_masks(table: pa.Table, flagged: np.ndarray) -> dict[str, np.ndarray]:
    n = table.num_rows
    out = {col: np.zeros(n, dtype=bool) for col in RISK_TYPE_COLUMNS}
    if "risk_types" not in table.column_names:
        return out
    lists = _column(table, "risk_types").combine_chunks()
    if not pa.types.is_list(lists.type) and not pa.types.is_large_list(lists.type):
        raise RegionInputError([{"row": None, "field": "risk_types", "problem": "must be a list of risk types"}], 0)  # fmt: skip
    flat = pc.list_flatten(lists)
    parents = pc.list_parent_indices(lists).to_numpy()
    flat_np = np.asarray(flat.to_numpy(zero_copy_only=False), dtype=object)
    known = set(RISK_TYPES)
    for code in RISK_TYPES:
        hit = parents[flat_np == code] if code != "other" else parents[~np.isin(flat_np, list(known - {"other"}))]  # fmt: skip
        out[f"flagged_{code}"][hit] = True
    for col in RISK_TYPE_COLUMNS:
        out[col] &= flagged
    return out


def prepare(decisions: pd.DataFrame | pa.Table) -> pd.DataFrame:
    """One row per decision: ``month`` (the period as a month count), ``village`` (int64), ``p`` (risk, NaN when not
    scored), ``flagged``, ``rules``, ``model``, ``at_risk`` (NaN without an outcome) and the
    ``flagged_<risk type>`` flags. Raises ``RegionInputError`` naming bad rows."""
    table = decisions if isinstance(decisions, pa.Table) else pa.Table.from_pandas(decisions, preserve_index=False)  # fmt: skip
    _check(table)
    text = pc.cast(_column(table, "period"), pa.string())
    year = pc.cast(pc.utf8_slice_codeunits(text, 0, 4), pa.int64()).to_numpy()
    month = pc.cast(pc.utf8_slice_codeunits(text, 5, 7), pa.int64()).to_numpy()
    village = pc.cast(pc.cast(_column(table, "village_code"), pa.string()), pa.int64()).to_numpy()
    score = pc.cast(_column(table, "score"), pa.float64()).to_numpy(zero_copy_only=False)
    flagged = pc.cast(_column(table, "flagged"), pa.bool_()).to_numpy(zero_copy_only=False)
    by = pc.fill_null(pc.cast(_column(table, "flagged_by"), pa.string()), "")
    rules = pc.match_substring(by, "rules").to_numpy(zero_copy_only=False)
    model = pc.match_substring(by, "model").to_numpy(zero_copy_only=False)
    if "at_risk" in table.column_names:
        at_risk = pc.cast(_column(table, "at_risk"), pa.float64()).to_numpy(zero_copy_only=False)
    else:
        at_risk = np.full(table.num_rows, np.nan)
    frame = pd.DataFrame(
        {
            "month": year * 12 + month - 1,  # the period as a month count
            "village": village,
            "p": np.asarray(score, dtype=float),
            "flagged": np.asarray(flagged, dtype=bool),
            "rules": np.asarray(rules, dtype=bool) & flagged,
            "model": np.asarray(model, dtype=bool) & flagged,
            "at_risk": np.asarray(at_risk, dtype=float),
            **_risk_type_masks(table, np.asarray(flagged, dtype=bool)),
        }
    )
    return frame


def _sums(group: np.ndarray, n_groups: int, h: pd.DataFrame) -> dict[str, np.ndarray]:
    p = h["p"].to_numpy()
    scored = ~np.isnan(p)
    p0 = np.where(scored, p, 0.0)
    at = h["at_risk"].to_numpy()
    has = ~np.isnan(at) & scored
    q = p0 * (1.0 - p0)

    def count(mask: np.ndarray) -> np.ndarray:
        return np.bincount(group, weights=mask.astype(float), minlength=n_groups).round().astype(np.int64)  # fmt: skip

    def total(values: np.ndarray) -> np.ndarray:
        return np.bincount(group, weights=values, minlength=n_groups)

    out = {
        "households": np.bincount(group, minlength=n_groups).astype(np.int64),
        "scored": count(scored),
        "flagged": count(h["flagged"].to_numpy()),
        "flagged_rules": count(h["rules"].to_numpy()),
        "flagged_model": count(h["model"].to_numpy()),
        "expected": total(p0),
        "variance": total(q),
        "with_outcome": count(has),
        "realised": count(has & (at == 1.0)),
        "expected_outcome": total(np.where(has, p0, 0.0)),
        "variance_outcome": total(np.where(has, q, 0.0)),
    }
    for col in RISK_TYPE_COLUMNS:
        out[col] = count(h[col].to_numpy())
    return out


def _distributions(
    group: np.ndarray, p: np.ndarray, n: np.ndarray, mean: np.ndarray, var: np.ndarray
) -> list[np.ndarray | None]:
    """Exact distributions of the groups with a small variance (None for the others)."""
    exact = np.flatnonzero(needs_exact(var))
    out: list[np.ndarray | None] = [None] * len(n)
    if len(exact) == 0:
        return out
    index = np.full(len(n), -1, dtype=np.int64)
    index[exact] = np.arange(len(exact))
    sel = index[group] >= 0
    dists = exact_distributions(index[group[sel]], p[sel], truncation(mean[exact], var[exact], n[exact]))  # fmt: skip
    for i, d in zip(exact, dists, strict=True):
        out[i] = d
    return out


def village_partials(h: pd.DataFrame) -> pd.DataFrame:
    """Per period and village: the ``SUMS`` and the exact distributions ``DISTS`` (None where
    the normal approximation applies). ``h``: ``prepare``'s rows (all of each village's)."""
    key = h["month"].to_numpy(dtype=np.int64) * 10**12 + h["village"].to_numpy(dtype=np.int64)
    group, uniques = pd.factorize(key)
    n_groups = len(uniques)
    months = uniques // 10**12
    sums = _sums(group, n_groups, h)
    p = h["p"].to_numpy()
    scored = ~np.isnan(p)
    has = scored & ~np.isnan(h["at_risk"].to_numpy())
    dist = _distributions(group[scored], p[scored], sums["scored"], sums["expected"], sums["variance"])  # fmt: skip
    dist_o = _distributions(group[has], p[has], sums["with_outcome"], sums["expected_outcome"], sums["variance_outcome"])  # fmt: skip
    out = pd.DataFrame(
        {
            "period": np.array([month_text(int(m)) for m in np.unique(months)], dtype=object)[
                np.searchsorted(np.unique(months), months)
            ],
            "code": (uniques % 10**12).astype(np.int64),
            **sums,
        }
    )
    out["dist"] = pd.Series(dist, dtype=object)
    out["dist_outcome"] = pd.Series(dist_o, dtype=object)
    return out


def _convolved(children: pd.DataFrame, parents: pd.DataFrame, dist: str, n: str, mean: str, var: str) -> list[Any]:  # fmt: skip
    """Parents' exact distributions (None where normal) from their children's."""
    from riskml.regions.interval import convolve

    out: list[Any] = [None] * len(parents)
    exact = np.flatnonzero(needs_exact(parents[var].to_numpy()))
    if len(exact) == 0:
        return out
    k = truncation(parents[mean].to_numpy(), parents[var].to_numpy(), parents[n].to_numpy())
    pos = {key: i for i, key in enumerate(zip(parents["period"], parents["code"], strict=True))}
    wanted = set(exact.tolist())
    members: dict[int, list[np.ndarray]] = {i: [] for i in exact.tolist()}
    for period, code, d in zip(children["period"], children["parent"], children[dist], strict=True):
        i = pos[(period, code)]
        if i in wanted:
            if d is None:
                raise ValueError("a child of a small area has no exact distribution")
            members[i].append(np.asarray(d, dtype=float))
    for i, ds in members.items():
        out[i] = convolve(ds, int(k[i]))
    return out


def rollup(villages: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Every level's sums and distributions from the villages' (``village_partials`` output,
    possibly concatenated from several partitions: each (period, village) once; any further
    numeric column is summed too, as the case counts of ``riskml.regions.casework``)."""
    levels: dict[str, pd.DataFrame] = {"village": villages.reset_index(drop=True)}
    child = levels["village"]
    child_digits = DIGITS["village"]
    for level in reversed(LEVELS[:-1]):  # township, county, prefecture, province
        digits = DIGITS[level]
        child = child.assign(parent=child["code"].to_numpy() // 10 ** (child_digits - digits))
        sums = [c for c in child.columns if c not in ("period", "code", "parent", *DISTS)]
        parents = child.groupby(["period", "parent"], sort=True, as_index=False)[sums].sum()
        parents = parents.rename(columns={"parent": "code"})
        parents["dist"] = pd.Series(
            _convolved(child, parents, "dist", "scored", "expected", "variance"), dtype=object
        )
        parents["dist_outcome"] = pd.Series(
            _convolved(
                child,
                parents,
                "dist_outcome",
                "with_outcome",
                "expected_outcome",
                "variance_outcome",
            ),  # fmt: skip
            dtype=object,
        )
        levels[level] = parents
        child, child_digits = parents, digits
    return levels


def aggregate_households(h: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """``rollup(village_partials(h))``: the local engine."""
    return rollup(village_partials(h))
