"""Benchmark the oracle gap on both simulator versions: model, oracle and naive score.

For each simulator version (1 and 2) simulates a panel, trains the default model
(``training/default.yaml``) on it and prints, on the test period, the ROC AUC and
recall at 10% capacity of the model, the oracle (``oracle_p``) and the naive
score (lower per-capita net income relative to the monitoring line ranks higher,
i.e. ``-pc_income_to_line``), overall and on the fall-in subset (records not
below the line at scoring time: ``pc_income_to_line >= 1``). Writes
bench/results/simulators.json.

    .venv/bin/python bench/bench_simulators.py [--households N] [--years Y] [--oracle-draws D]
        [--versions 1 2] [--seed S]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from _common import RESULTS as RESULTS_DIR
from _common import ROOT, machine
from sklearn.metrics import roc_auc_score

from riskml.data.label import net_income
from riskml.data.reference import default_lines
from riskml.data.simulate import simulate_panel
from riskml.training.train import TrainConfig, train

RESULTS = RESULTS_DIR / "simulators.json"


def recall_at(y: np.ndarray, score: np.ndarray, capacity: float) -> float:
    """Share of positives among the top ``capacity`` share of rows by score."""
    k = max(1, int(round(capacity * len(y))))
    top = np.argsort(-score, kind="stable")[:k]
    return float(y[top].sum() / max(y.sum(), 1))


def figures(y: np.ndarray, scores: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """ROC AUC and recall at 10% of each score on one set of rows."""
    return {
        name: {
            "roc_auc": round(float(roc_auc_score(y, s)), 4),
            "recall_at_10": round(recall_at(y, s, 0.10), 4),
        }
        for name, s in scores.items()
    }


def one_version(version: int, args: argparse.Namespace, cfg: TrainConfig) -> dict:
    lines = default_lines()
    t0 = time.perf_counter()
    panel = simulate_panel(
        args.households, args.years, args.seed, oracle_draws=args.oracle_draws, version=version
    )
    sim_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = train(panel, cfg, lines)
    train_s = time.perf_counter() - t0
    test = result.test_frame
    if "oracle_p" not in test.columns:
        test = test.merge(
            panel[["household_id", "period", "oracle_p"]], on=["household_id", "period"], how="left"
        )
    year = test["period"].str.slice(0, 4).astype(int)
    line = lines.for_frame(test["county_code"].str.slice(0, 2), year)["monitoring_line"]
    pc = (net_income(test) / test["household_size"].astype(float) / line.to_numpy()).to_numpy()
    y = test["at_risk_next"].to_numpy(dtype=int)
    ok = ~np.isnan(pc) & ~test["oracle_p"].isna().to_numpy()
    scores = {
        "model": test["score"].to_numpy(dtype=float),
        "oracle": test["oracle_p"].to_numpy(dtype=float),
        "naive": -pc,
    }
    fall = ok & (pc >= 1)
    out = {
        "version": version,
        "rows": len(panel),
        "test_period": result.splits.test_period,
        "test_rows": int(ok.sum()),
        "test_base_rate": round(float(y[ok].mean()), 4),
        "fall_in_rows": int(fall.sum()),
        "fall_in_base_rate": round(float(y[fall].mean()), 4),
        "simulate_s": round(sim_s, 1),
        "train_s": round(train_s, 1),
        "overall": figures(y[ok], {k: v[ok] for k, v in scores.items()}),
        "fall_in": figures(y[fall], {k: v[fall] for k, v in scores.items()}),
    }
    if "detected" in panel.columns:
        out["detected_share"] = round(float(panel["detected"].mean()), 4)
    return out


def show(r: dict) -> None:
    print(
        f"\nsimulator v{r['version']}: {r['rows']:,} rows (simulated in {r['simulate_s']} s, "
        f"trained in {r['train_s']} s); test period {r['test_period']}: {r['test_rows']:,} rows, "
        f"base rate {r['test_base_rate']:.1%}; fall-in {r['fall_in_rows']:,} rows, "
        f"base rate {r['fall_in_base_rate']:.1%}"
    )
    print(f"  {'subset':<9}{'score':<8}{'ROC AUC':>9}{'recall@10%':>12}")
    for subset in ("overall", "fall_in"):
        for name, f in r[subset].items():
            print(f"  {subset:<9}{name:<8}{f['roc_auc']:>9.3f}{f['recall_at_10']:>12.3f}")
        gap = r[subset]["oracle"]["roc_auc"] - r[subset]["model"]["roc_auc"]
        rgap = r[subset]["oracle"]["recall_at_10"] - r[subset]["model"]["recall_at_10"]
        print(f"  {subset:<9}oracle gap: ROC AUC {gap:+.3f}, recall@10% {rgap:+.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--households", type=int, default=30_000)
    ap.add_argument("--years", type=int, default=7)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--oracle-draws", type=int, default=64)
    ap.add_argument("--versions", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--config", type=Path, default=ROOT / "training" / "default.yaml")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    cfg = TrainConfig.from_yaml(args.config)
    results = [one_version(v, args, cfg) for v in args.versions]
    for r in results:
        show(r)
    payload = {
        "households": args.households,
        "years": args.years,
        "seed": args.seed,
        "oracle_draws": args.oracle_draws,
        "naive_score": "-pc_income_to_line (per-capita net income / monitoring line)",
        "fall_in": "pc_income_to_line >= 1 at scoring time",
        "results": results,
        "machine": machine(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
