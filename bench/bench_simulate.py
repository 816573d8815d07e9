"""Benchmark the household panel simulator: time, base rate, oracle vs naive AUC.

Simulates 100,000 households × 7 years with the oracle (64 draws) by default,
prints a summary and writes bench/results/simulate.json (simulate_v2.json for
``--version 2``).

    .venv/bin/python bench/bench_simulate.py [--households N] [--years Y] [--oracle-draws D]
        [--version 1|2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from riskml.data.label import net_income
from riskml.data.reference import default_lines
from riskml.data.simulate import simulate_panel

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--households", type=int, default=100_000)
    ap.add_argument("--years", type=int, default=7)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--oracle-draws", type=int, default=64)
    ap.add_argument("--version", type=int, choices=(1, 2), default=1, help="simulator version")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    if args.out is None:
        args.out = RESULTS / ("simulate.json" if args.version == 1 else "simulate_v2.json")

    lines = default_lines()
    t0 = time.perf_counter()
    panel = simulate_panel(
        args.households,
        args.years,
        args.seed,
        oracle_draws=args.oracle_draws,
        version=args.version,
    )
    seconds = time.perf_counter() - t0
    print(
        f"simulate (version {args.version}): {args.households:,} households x {args.years} years "
        f"({len(panel):,} rows, oracle {args.oracle_draws} draws) in {seconds:.1f} s"
    )

    year = panel["period"].str.slice(0, 4).astype(int)
    labelled = panel["at_risk_next"].notna()
    rate = panel[labelled].groupby(year[labelled])["at_risk_next"].mean()
    fp = panel[labelled].groupby(panel.loc[labelled, "formerly_poor"].astype(bool))
    fp_rate = fp["at_risk_next"].mean()
    print(
        "base rate of at_risk_next by year: " + ", ".join(f"{y} {r:.1%}" for y, r in rate.items())
    )
    print(
        f"base rate formerly poor {fp_rate.get(True, np.nan):.1%}, "
        f"others {fp_rate.get(False, np.nan):.1%}"
    )

    latest = int(rate.index.max())
    d = panel[(year == latest) & labelled]
    line = lines.for_frame(d["county_code"].str.slice(0, 2), year[d.index])["monitoring_line"]
    naive = -(net_income(d) / d["household_size"].astype(float)) / line
    ok = naive.notna()
    y = d.loc[ok, "at_risk_next"]
    auc_oracle = roc_auc_score(y, d.loc[ok, "oracle_p"])
    auc_naive = roc_auc_score(y, naive[ok])
    print(
        f"latest labelled year {latest}: oracle AUC {auc_oracle:.3f}, naive AUC {auc_naive:.3f} "
        f"(per-capita net income / monitoring line; {ok.sum():,} households, "
        f"{int(y.sum()):,} at risk)"
    )

    result = {
        "version": args.version,
        "households": args.households,
        "years": args.years,
        "rows": len(panel),
        "seed": args.seed,
        "oracle_draws": args.oracle_draws,
        "seconds": round(seconds, 2),
        "rows_per_second": round(len(panel) / seconds),
        "base_rate_by_year": {str(k): round(float(v), 4) for k, v in rate.items()},
        "base_rate_formerly_poor": round(float(fp_rate.get(True, np.nan)), 4),
        "base_rate_others": round(float(fp_rate.get(False, np.nan)), 4),
        "latest_labelled_year": latest,
        "auc_oracle": round(float(auc_oracle), 4),
        "auc_naive": round(float(auc_naive), 4),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
