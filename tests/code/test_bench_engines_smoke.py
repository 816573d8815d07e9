"""Smoke test of bench/bench_engines.py: every engine on a tiny model, with the exactness checks."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.mark.skipif(shutil.which("gcc") is None, reason="tl2cgen builds its library with gcc")
def test_engine_comparison_on_a_tiny_model(tmp_path):
    lgb = pytest.importorskip("lightgbm")
    pytest.importorskip("tl2cgen")
    sys.path.insert(0, str(BENCH))
    try:
        import bench_engines
    finally:
        sys.path.remove(str(BENCH))

    rng = np.random.default_rng(3)
    X = rng.normal(size=(3000, 6))
    X[rng.random(X.shape) < 0.15] = np.nan
    X[rng.random(X.shape) < 0.05] = 0.0
    y = np.nan_to_num(X[:, 0]) - np.nan_to_num(X[:, 1]) + rng.normal(size=len(X)) > 0
    booster = lgb.train(
        {"objective": "binary", "num_leaves": 8, "verbose": -1, "seed": 0},
        lgb.Dataset(X, y.astype(int)),
        num_boost_round=20,
    )
    rows = bench_engines.compare(booster, X, work=tmp_path, single=20, repeats=1)
    by = {r["engine"]: r for r in rows}

    engine_m, engine_c = by["riskml TreeEngine margin"], by["riskml TreeEngine contrib"]
    assert engine_m["max_abs_diff_margin"] == 0.0  # bit for bit
    assert engine_c["max_abs_diff_contrib"] <= bench_engines.EXACT
    assert engine_m["exact"] and engine_c["exact"]
    for name in ("treelite GTIL", "tl2cgen (gcc .so)"):
        r = by[name]
        assert not r["gives_contributions"] and r["max_abs_diff_contrib"] is None
        assert np.isfinite(r["max_abs_diff_margin"])
        assert r["exact"] == (r["max_abs_diff_margin"] <= bench_engines.EXACT)
        assert r["rows_per_s"] > 0
    assert "skipped" in by["lleaves"]  # no lleaves interpreter given

    # the check flags a wrong engine: a shifted margin is not exact
    shifted = bench_engines._summary("x", 0, [1.0], [1.0], 1, bench_engines._maxdiff([1.0], [1.1]))
    assert not shifted["exact"]
