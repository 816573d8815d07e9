"""Benchmark: the asset panel simulator, the asset-risk model's figures, and 1,000,000 assets scored.

Figures (printed, and written to bench/results/assets.json):
- simulation: ``--assets`` assets (default 170,000: about 1,000,000 asset-years) from 2014 to
  2025, seconds and asset-years per second (target: well under a minute);
- the model (riskml/assets/train.yaml on its default 20,000-asset panel; trained once and kept
  under .riskml/bench/asset-model/): on the held-out year, AUC of the model, the rules alone and
  the oracle, and recall and precision when each county inspects its top 10%;
- scoring ``--records`` (default 1,000,000) distinct asset-year observations of the simulated
  panel (every asset's year-end record, 2015-2025): features, calibrated scores, each county's
  top 10% of each year flagged, the flagged explained (exact TreeSHAP, three reasons in Chinese
  and English). Target: under 60 s. Also scores only, for comparison.

    .venv/bin/python bench/bench_assets.py [--assets 170000] [--records 1000000] [--threads 1]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time

from _common import ROOT, write

BENCH_DIR = ROOT / ".riskml" / "bench"
MODEL_DIR = BENCH_DIR / "asset-model"


def bench_model(threads: int):
    """The asset-risk model of the default config (trained once; its figures kept beside it)."""
    from riskml import config
    from riskml.assets.model import AssetRiskModel

    cfg_text = config.package_file("assets/train.yaml").read_text(encoding="utf-8")
    stamp = hashlib.sha256(f"{cfg_text}|{threads}".encode()).hexdigest()[:16]
    stamp_file = MODEL_DIR / "config.stamp"
    figures_file = MODEL_DIR / "figures.json"
    if stamp_file.exists() and stamp_file.read_text() == stamp and figures_file.exists():
        return AssetRiskModel.load(MODEL_DIR), json.loads(figures_file.read_text())
    from riskml.assets.simulate import SimConfig, simulate
    from riskml.assets.train import HEADLINE, AssetTrainConfig, train

    cfg = AssetTrainConfig.from_yaml()
    cfg.params = {**cfg.params, "num_threads": threads}
    panel = simulate(SimConfig.from_dict({**cfg.simulate, "return_floor": cfg.floor()})).panel
    t = time.perf_counter()
    result = train(panel, cfg)
    figures = {k: result.evaluation.metrics.get(k) for k in HEADLINE}
    figures.update(
        training_seconds=time.perf_counter() - t,
        trees=result.model.booster.num_trees(),
        test_year=result.splits.test_year,
        test_rows=result.row_counts["test_rows"],
        assets=result.row_counts["assets"],
    )
    result.model.save(MODEL_DIR)
    figures_file.write_text(json.dumps(figures, indent=2, default=float))
    stamp_file.write_text(stamp)
    return result.model, figures


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--assets", type=int, default=170_000)
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--threads", type=int, default=1, help="LightGBM threads for the one training")
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args()

    from riskml.assets.scoring import score_assets
    from riskml.assets.simulate import SimConfig, simulate

    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    panel = simulate(SimConfig(assets=args.assets, seed=args.seed)).panel
    sim_seconds = time.perf_counter() - t
    asset_years = len(panel)
    print(
        f"assets: simulated {args.assets:,} assets, {len(panel):,} asset-years in {sim_seconds:.1f} s "
        f"({len(panel) / sim_seconds:,.0f} asset-years/s)"
    )
    model, fig = bench_model(args.threads)
    cap = "at_10_county"
    print(
        f"assets: model on held-out {fig['test_year']} ({fig['test_rows']:,} assets): AUC model "
        f"{fig['test_roc_auc']:.3f}, rules alone {fig['rules_roc_auc']:.3f}, oracle {fig['oracle_roc_auc']:.3f} "
        f"(gap {fig['oracle_gap_roc_auc']:.3f}); each county inspecting its top 10%: recall model "
        f"{fig[f'model_recall_{cap}']:.3f} vs rules {fig[f'rules_recall_{cap}']:.3f} "
        f"(oracle {fig[f'oracle_recall_{cap}']:.3f}), precision {fig[f'model_precision_{cap}']:.3f} vs "
        f"{fig[f'rules_precision_{cap}']:.3f}; ECE {fig['test_ece']:.3f}"
    )
    if len(panel) < args.records:
        raise SystemExit(
            f"the panel has {len(panel):,} asset-years, fewer than --records {args.records:,}"
        )
    obs = panel.iloc[: args.records].reset_index(drop=True)
    del panel
    score_assets(model, obs.head(2000))  # compile the tree engine (numba) outside the timing
    runs = {}
    for mode in ("none", "flagged"):
        s = score_assets(model, obs, explain=mode)
        runs[mode] = s
        parts = ", ".join(f"{k} {v:.1f}" for k, v in s.timings.items() if k != "total")
        label = "scores only" if mode == "none" else "explaining the flagged"
        print(
            f"assets: {len(obs):,} assets, {label}: {s.timings['total']:.1f} s "
            f"({len(obs) / s.timings['total']:,.0f}/s; {s.flagged:,} flagged; {parts})"
        )
    example = runs["flagged"].frame.dropna(subset=["reasons_zh"]).iloc[0]
    print(f"assets: e.g. {example['reasons_zh']} | {example['reasons_en']}")
    seconds = runs["flagged"].timings["total"]
    print(
        f"assets: target 1,000,000 assets with explanations for the flagged < 60 s: {seconds:.1f} s"
    )
    figures = {
        "sim_assets": args.assets,
        "sim_asset_years": asset_years,
        "sim_seconds": sim_seconds,
        "model": fig,
        "records": len(obs),
        **{f"{mode}_seconds": s.timings["total"] for mode, s in runs.items()},
        "flagged": runs["flagged"].flagged,
        "timings": {mode: s.timings for mode, s in runs.items()},
        "target_seconds": 60,
        "meets_target": bool(seconds < 60),
    }
    print(f"wrote {write('assets', figures)}")


if __name__ == "__main__":
    main()
