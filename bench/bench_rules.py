"""Benchmark: the policy rules over 1,000,000 synthetic canonical records.

Times ``rules.evaluate`` (with a previous period, so the income-drop rule
works) plus ``rules_baseline``; then, separately, rendering the fired rules
(``for_row``) of every flagged record. Prints one line per timing and writes
bench/results/rules.json.

    .venv/bin/python bench/bench_rules.py [--records 1000000] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from riskml.data.reference import ReferenceLines
from riskml.data.regions import PROVINCES
from riskml.policy import rules

ROOT = Path(__file__).resolve().parent
YEARS = range(2020, 2027)


def synthetic_lines(seed: int = 0) -> ReferenceLines:
    """Monitoring and dibao lines for every province and year (made-up but plausible)."""
    rng = np.random.default_rng(seed)
    rows = []
    for code, (_, en) in PROVINCES.items():
        mon = rng.uniform(6000, 9000)
        dib = rng.uniform(5000, 8000)
        for k, year in enumerate(YEARS):
            for line, v in (("monitoring", mon * 1.04**k), ("dibao", dib * 1.04**k)):
                rows.append(
                    {
                        "province_code": code,
                        "province": en,
                        "year": year,
                        "line": line,
                        "yuan_per_person_year": round(v),
                        "basis": "estimate",
                        "source": "bench",
                    }
                )
    return ReferenceLines(pd.DataFrame(rows), source="<bench>")


def _int(rng: np.random.Generator, values: np.ndarray, missing: float) -> pd.arrays.IntegerArray:
    mask = rng.random(len(values)) < missing
    return pd.arrays.IntegerArray(values.astype(np.int64), mask)


def _bool(
    rng: np.random.Generator, p_true: float, n: int, missing: float
) -> pd.arrays.BooleanArray:
    return pd.arrays.BooleanArray(rng.random(n) < p_true, rng.random(n) < missing)


def _money(rng: np.random.Generator, values: np.ndarray, missing: float) -> np.ndarray:
    out = np.round(values, 0)
    out[rng.random(len(out)) < missing] = np.nan
    return out


def synthetic_records(n: int, seed: int = 0) -> pd.DataFrame:
    """n canonical household records (schema.coerce_frame dtypes), built with numpy."""
    rng = np.random.default_rng(seed)
    provinces = np.array(sorted(PROVINCES))
    counties = np.array([f"{p}{c:04d}" for p in provinces for c in range(1, 21)])
    county = counties[rng.integers(0, len(counties), n)]
    periods = np.array([f"{y}-06" for y in (2023, 2024, 2025)])
    size = rng.integers(1, 8, n)
    labor = np.minimum(rng.binomial(size, 0.55), size)
    elderly = np.minimum(rng.binomial(size, 0.2), size - labor)
    children = size - labor - elderly
    frame = {
        "household_id": pd.array(np.char.add("h", np.arange(n).astype(str)), dtype="string"),
        "period": pd.array(periods[rng.integers(0, 3, n)], dtype="string"),
        "county_code": pd.array(county, dtype="string"),
        "village_code": pd.array(np.char.add(county, "001001"), dtype="string"),
        "household_size": pd.arrays.IntegerArray(size, np.zeros(n, bool)),
        "labor_count": _int(rng, labor, 0.01),
        "elderly_count": _int(rng, elderly, 0.01),
        "children_count": _int(rng, children, 0.01),
        "students_compulsory": _int(rng, rng.binomial(children, 0.6), 0.01),
        "students_noncompulsory": _int(rng, rng.binomial(children, 0.1), 0.01),
        "disabled_count": _int(rng, rng.binomial(size, 0.05), 0.01),
        "chronic_ill_count": _int(rng, rng.binomial(size, 0.1), 0.01),
        "head_age": _int(rng, rng.integers(25, 85, n), 0.01),
        "head_female": _bool(rng, 0.2, n, 0.01),
        "head_education_years": _int(rng, rng.integers(0, 13, n), 0.01),
        "ethnic_minority": _bool(rng, 0.15, n, 0.01),
        "formerly_poor": _bool(rng, 0.4, n, 0.01),
        "dibao": _bool(rng, 0.08, n, 0.01),
        "tekun": _bool(rng, 0.01, n, 0.01),
        "relocated": _bool(rng, 0.05, n, 0.01),
        "income_wage": _money(rng, rng.gamma(2.0, 10000, n) * labor, 0.02),
        "income_business": _money(rng, rng.normal(8000, 8000, n), 0.02),
        "income_property": _money(rng, rng.exponential(300, n), 0.02),
        "income_transfer": _money(rng, rng.exponential(3000, n), 0.02),
        "migrant_workers": _int(rng, rng.binomial(labor, 0.3), 0.01),
        "months_employed": _money(rng, labor * rng.uniform(0, 12, n), 0.01),
        "medical_expense": _money(rng, rng.exponential(3000, n), 0.02),
        "education_expense": _money(rng, rng.exponential(1500, n), 0.02),
        "disaster_loss": _money(rng, rng.exponential(500, n) * (rng.random(n) < 0.1), 0.02),
        "debt": _money(rng, rng.exponential(10000, n), 0.02),
        "medical_insured": _bool(rng, 0.98, n, 0.01),
        "housing_safe": _bool(rng, 0.98, n, 0.01),
        "water_safe": _bool(rng, 0.98, n, 0.01),
        "dropout": _bool(rng, 0.005, n, 0.01),
    }
    return pd.DataFrame(frame)


def synthetic_previous(df: pd.DataFrame, seed: int = 1, known: float = 0.8) -> pd.DataFrame:
    """Previous-period income fields aligned with df: known for a share of rows, NA elsewhere."""
    rng = np.random.default_rng(seed)
    n = len(df)
    have = rng.random(n) < known
    out = {"household_size": pd.arrays.IntegerArray(df["household_size"].to_numpy(np.int64), ~have)}
    for col in ("income_wage", "income_business", "income_property", "income_transfer"):
        v = df[col].to_numpy(np.float64) * rng.lognormal(0.1, 0.35, n)
        out[col] = np.where(have, np.round(v), np.nan)
    return pd.DataFrame(out, index=df.index)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "rules.json")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    df = synthetic_records(args.records, args.seed)
    prev = synthetic_previous(df, args.seed + 1)
    lines = synthetic_lines(args.seed)
    ruleset = rules.RuleSet.load()
    build_s = time.perf_counter() - t0
    print(f"built {len(df):,} synthetic records in {build_s:.2f} s", file=sys.stderr)

    rules.evaluate(df.iloc[:1000], ruleset, lines, prev.iloc[:1000])  # warm up imports/caches
    t0 = time.perf_counter()
    results = rules.evaluate(df, ruleset, lines, previous=prev)
    flagged, severity = rules.rules_baseline(results)
    eval_s = time.perf_counter() - t0
    n = len(df)
    print(f"rules: {n:,} records in {eval_s:.2f} s ({n / eval_s:,.0f} records/s)")

    rows = np.flatnonzero(flagged)
    t0 = time.perf_counter()
    fired_total = 0
    for i in rows:
        fired_total += len(results.for_row(int(i)))
    render_s = time.perf_counter() - t0
    rate = len(rows) / render_s if render_s > 0 else float("inf")
    print(
        f"rules for_row: {len(rows):,} flagged records ({fired_total:,} fired rules) rendered "
        f"in {render_s:.2f} s ({rate:,.0f} records/s)"
    )

    summary = results.summary()
    result = {
        "benchmark": "rules",
        "records": n,
        "rules": len(ruleset.rules),
        "ruleset_version": ruleset.version,
        "evaluate_and_baseline_seconds": round(eval_s, 3),
        "records_per_second": round(n / eval_s),
        "flagged": int(flagged.sum()),
        "flagged_share": round(float(flagged.mean()), 4),
        "mean_severity_flagged": round(float(severity[flagged].mean()), 3) if rows.size else 0.0,
        "render_records": int(len(rows)),
        "render_fired_rules": int(fired_total),
        "render_seconds": round(render_s, 3),
        "render_records_per_second": round(rate),
        "per_rule": summary.to_dict(orient="records"),
        "target_seconds": 5.0,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "pandas": pd.__version__,
            "numpy": np.__version__,
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=_jsonable), encoding="utf-8")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


def _jsonable(v: object) -> object:
    if isinstance(v, np.generic):
        return v.item()
    raise TypeError(type(v))


if __name__ == "__main__":
    raise SystemExit(main())
