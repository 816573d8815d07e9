"""Benchmark: batch scoring of 1,000,000 records with the local engine (riskml.batch).

Figures (printed, and written to bench/results/score.json), all in one process run:
- scores only (rules, score and decision; no explanations);
- explaining the flagged (rules, decisions, reasons and measures): the target, under 60 s;
- explaining every record;
- the baseline: shap.TreeExplainer on every record of the same input (timed on
  ``--shap-rows`` records and scaled to all, since TreeSHAP costs the same per record),
  and the ratio "explain-flagged vs shap-all" (target at least 10×).

The input is the cached 100k-household panel (bench/_common.py) plus renamed copies of its
first households up to ``--records`` rows, written once under .riskml/bench/. The model is
trained once on that panel with training/default.yaml and kept under .riskml/bench/.

    .venv/bin/python bench/bench_score.py [--records 1000000] [--workers N] [--shap-rows 20000]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from _common import PANEL_100K, ROOT, panel_100k, write

BENCH_DIR = ROOT / ".riskml" / "bench"
MODEL_DIR = BENCH_DIR / "model-100k"


def bench_model():
    """The RiskModel trained on the 100k panel (trained once, then loaded from .riskml/bench/)."""
    from riskml.model.risk_model import RiskModel

    panel = panel_100k()
    stamp = f"{PANEL_100K.stat().st_size}:{int(PANEL_100K.stat().st_mtime)}"
    stamp_file = MODEL_DIR / "panel.stamp"
    fresh = stamp_file.exists() and stamp_file.read_text() == stamp
    if fresh and (MODEL_DIR / "model.json").exists():
        return RiskModel.load(MODEL_DIR), 0.0
    from riskml.data import schema
    from riskml.training.train import TrainConfig, train

    valid, rejected, _ = schema.split_valid(panel)
    if len(rejected):
        print(f"(training on {len(valid):,} valid records; {len(rejected):,} invalid left out)")
    cfg = TrainConfig.from_yaml(ROOT / "training" / "default.yaml")
    t = time.perf_counter()
    result = train(valid, cfg)
    seconds = time.perf_counter() - t
    result.model.save(MODEL_DIR)
    stamp_file.write_text(stamp)
    return result.model, seconds


def scoring_input(records: int) -> Path:
    """``records`` rows: the 100k panel, then copies of its first households under new ids."""
    path = BENCH_DIR / f"score-{records}.parquet"
    stamp = f"{PANEL_100K.stat().st_size}:{int(PANEL_100K.stat().st_mtime)}"
    stamp_file = path.with_suffix(".stamp")
    if path.exists() and stamp_file.exists() and stamp_file.read_text() == stamp:
        return path
    import pandas as pd

    panel = panel_100k()
    parts, total, copy = [], 0, 0
    while total < records:
        part = panel.iloc[: records - total].copy()
        if copy:
            part["household_id"] = f"C{copy}" + part["household_id"].astype(str)
        parts.append(part)
        total += len(part)
        copy += 1
    pd.concat(parts, ignore_index=True).to_parquet(path, index=False, row_group_size=100_000)
    stamp_file.write_text(stamp)
    return path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--workers", type=int, default=None, help="default: one per CPU")
    ap.add_argument("--shap-rows", type=int, default=20_000, help="0: every record")
    ap.add_argument("--chunk-rows", type=int, default=50_000)
    args = ap.parse_args()

    import numpy as np
    import pandas as pd

    from riskml.data import schema
    from riskml.data.history import earlier_from_panel, history_frame
    from riskml.model.tree_engine import TreeEngine
    from riskml.policy.rules import RuleSet
    from riskml.scoring import batch
    from riskml.scoring.decide import ModelInfo

    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    model, train_seconds = bench_model()
    src = scoring_input(args.records)
    workers = batch.default_workers() if args.workers is None else args.workers
    info = ModelInfo("bench-100k", "local")
    ruleset = RuleSet.load()
    out = BENCH_DIR / "score-out.parquet"
    runs = {}
    for mode in ("none", "flagged", "all"):
        s = batch.score_file(
            src,
            out,
            model=model,
            info=info,
            ruleset=ruleset,
            explain=mode,
            workers=workers,
            chunk_rows=args.chunk_rows,
        )
        runs[mode] = s
        label = {"none": "scores only", "flagged": "explain flagged", "all": "explain all"}[mode]
        print(
            f"score: {s.rows_read:,} records, {label}: {s.seconds:.1f} s "
            f"({s.rows_per_s:,.0f} records/s; {s.flagged:,} flagged, {workers} workers)"
        )

    # the baseline: shap.TreeExplainer on every record of the same input
    import shap

    frame = pd.read_parquet(src, columns=list(schema.FIELD_NAMES))
    valid, _, _ = schema.split_valid(frame)
    records = valid.reset_index(drop=True)
    previous = history_frame(earlier_from_panel(records))  # lags 1-3, as batch scoring
    n_all = len(records)
    k = n_all if args.shap_rows <= 0 else min(args.shap_rows, n_all)
    rows = np.random.default_rng(0).choice(n_all, size=k, replace=False)
    X = model.features(records.iloc[rows], previous.iloc[rows]).to_numpy(np.float64)
    del frame, valid, previous
    explainer = shap.TreeExplainer(model.booster)
    explainer.shap_values(X[:200])  # warm up
    t = time.perf_counter()
    explainer.shap_values(X)
    shap_seconds = time.perf_counter() - t
    shap_all = shap_seconds / k * n_all
    engine = TreeEngine.for_booster(model.booster)
    t = time.perf_counter()
    engine.contrib(X)
    engine_seconds = time.perf_counter() - t
    flagged_s = runs["flagged"].seconds
    ratio = shap_all / flagged_s
    scaled = "" if k == n_all else f" (timed on {k:,} records, scaled to {n_all:,})"
    print(
        f"score: shap.TreeExplainer on every record: {shap_all:.0f} s{scaled}; "
        f"{shap_seconds / k * 1e6:.0f} us/record vs {engine_seconds / k * 1e6:.0f} us/record "
        f"for riskml's compiled TreeSHAP"
    )
    print(
        f"score: explain-flagged vs shap-all: {ratio:.1f}x "
        f"({flagged_s:.1f} s for rules, scores, decisions and reasons of {n_all:,} records; "
        f"target < 60 s and >= 10x)"
    )
    figures = {
        "records": args.records,
        "workers": workers,
        "chunk_rows": args.chunk_rows,
        "cpus": os.cpu_count(),
        "trees": model.booster.num_trees(),
        "model_training_seconds": train_seconds,
        **{
            f"{mode}_{key}": getattr(s, key)
            for mode, s in runs.items()
            for key in ("seconds", "rows_per_s", "flagged", "red", "valid", "rejected")
        },
        "timings": {mode: s.timings for mode, s in runs.items()},
        "shap_rows_timed": k,
        "shap_seconds_timed": shap_seconds,
        "shap_all_seconds": shap_all,
        "shap_all_extrapolated": k != n_all,
        "shap_us_per_record": shap_seconds / k * 1e6,
        "compiled_treeshap_us_per_record": engine_seconds / k * 1e6,
        "ratio_explain_flagged_vs_shap_all": ratio,
        "target_explain_flagged_seconds": 60,
        "target_ratio": 10,
        "meets_targets": bool(flagged_s < 60 and ratio >= 10),
    }
    print(f"wrote {write('score', figures)}")


if __name__ == "__main__":
    main()
