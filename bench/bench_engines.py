"""Benchmark: riskml's compiled tree engine against LightGBM, lleaves and treelite on one model.

The same booster (bench_score's model, trained once on the 100k panel) and the same rows
(``--rows`` records' feature matrix, float64, missing values kept) go through:

- LightGBM: ``predict(raw_score=True)`` and ``predict(pred_contrib=True)`` (the references);
- riskml's ``TreeEngine`` (numba): margins and exact TreeSHAP contributions;
- treelite 4 GTIL (treelite's own evaluator) and tl2cgen (the model compiled to C, built into a
  shared library with gcc): margins (``pred_margin=True``);
- lleaves (the model compiled by LLVM): margins (``raw_score=True``). lleaves 1.3.0 (the newest)
  calls llvmlite's legacy pass manager, which the llvmlite that numba needs no longer has, so it
  runs in a venv of its own (``--lleaves-python``; see ``LLEAVES_VENV`` below), on the same
  model file and the same matrix, written to disk.

For each: the time to prepare (build, compile), batch throughput on all rows, single-row latency
(median and p99 over ``--single`` records, one record per call), and the largest absolute
difference from LightGBM: margins against ``raw_score`` and, where the tool computes them,
contributions against ``pred_contrib`` (lleaves and treelite give predictions only). A tool is
exact when both differences are at most 1e-9. Every timing is the median of ``--repeats`` runs
(the range is kept in the JSON). Results: printed, and bench/results/engines.json.

    .venv/bin/python bench/bench_engines.py [--rows 200000] [--single 1000] [--repeats 3]
        [--lleaves-python /tmp/lleaves-venv/bin/python]

The lleaves venv (throwaway, not part of the project):

    .venv-tools/bin/uv venv /tmp/lleaves-venv --python 3.11
    VIRTUAL_ENV=/tmp/lleaves-venv .venv-tools/bin/uv pip install lleaves==1.3.0 llvmlite==0.44.0 'numpy==2.4.*'
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import ROOT

EXACT = 1e-9
LLEAVES_VENV = Path("/tmp/lleaves-venv/bin/python")


def _timed(fn: Any, repeats: int) -> tuple[list[float], Any]:
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return times, out


def _single(fn: Any, X: Any, n: int) -> list[float]:
    """Seconds per call of ``fn`` on one record at a time (the first 20 calls warm up)."""
    lat = []
    for i in range(min(n, len(X)) + 20):
        row = X[i % len(X) : i % len(X) + 1]
        t = time.perf_counter()
        fn(row)
        if i >= 20:
            lat.append(time.perf_counter() - t)
    return lat


def _pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


def _summary(
    name: str,
    prepare_s: float,
    batch: list[float],
    lat: list[float],
    rows: int,
    margin_diff: float | None,
    contrib_diff: float | None = None,
    gives_contrib: bool = False,
    note: str = "",
) -> dict[str, Any]:
    print(f"  ... {name}: batch {statistics.median(batch):.3f} s", flush=True)
    exact = margin_diff is not None and margin_diff <= EXACT
    if gives_contrib:
        exact = exact and contrib_diff is not None and contrib_diff <= EXACT
    return {
        "engine": name,
        "prepare_s": prepare_s,
        "batch_s": statistics.median(batch),
        "batch_s_range": [min(batch), max(batch)],
        "rows_per_s": rows / statistics.median(batch),
        "single_median_us": statistics.median(lat) * 1e6 if lat else None,
        "single_p99_us": _pct(lat, 0.99) * 1e6 if lat else None,
        "max_abs_diff_margin": margin_diff,
        "max_abs_diff_contrib": contrib_diff,
        "gives_contributions": gives_contrib,
        "exact": None if note == "reference" else bool(exact),
        "note": note,
    }


def _maxdiff(a: Any, b: Any) -> float:
    import numpy as np

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        a = a.reshape(b.shape)
    both_nan = np.isnan(a) & np.isnan(b)
    d = np.abs(a - b)
    d[both_nan] = 0.0
    return float(np.nanmax(d)) if np.isfinite(d).all() else float("inf")


def model_text(booster: Any) -> str:
    """The trees ``booster.predict`` uses by default (the best iteration when there is one)."""
    best = getattr(booster, "best_iteration", 0) or 0
    return booster.model_to_string(num_iteration=best if best > 0 else -1)


def compare(
    booster: Any,
    X: Any,
    *,
    work: Path,
    single: int = 1000,
    repeats: int = 3,
    lleaves_python: Path | None = None,
) -> list[dict[str, Any]]:
    """Every engine on ``booster`` and the rows ``X``; one summary per engine, LightGBM first."""
    import numpy as np

    X = np.ascontiguousarray(X, dtype=np.float64)
    n = len(X)
    work.mkdir(parents=True, exist_ok=True)
    model_file = work / "model.txt"
    model_file.write_text(model_text(booster))
    out: list[dict[str, Any]] = []

    # LightGBM: the references
    booster.predict(X[:100], raw_score=True)
    t_raw, ref = _timed(lambda: booster.predict(X, raw_score=True), repeats)
    lat = _single(lambda r: booster.predict(r, raw_score=True), X, single)
    out.append(_summary("lightgbm raw_score", 0.0, t_raw, lat, n, 0.0, note="reference"))
    t_c, ref_c = _timed(lambda: booster.predict(X, pred_contrib=True), repeats)
    lat = _single(lambda r: booster.predict(r, pred_contrib=True), X, single)
    out.append(
        _summary("lightgbm pred_contrib", 0.0, t_c, lat, n, None, 0.0, True, note="reference")
    )

    # riskml's compiled engine (numba; the JIT machine code is cached on disk after a first run)
    from riskml.model.tree_engine import TreeEngine

    t = time.perf_counter()
    engine = TreeEngine(booster)
    engine.margin(X[:10])
    engine.contrib(X[:10])
    prep = time.perf_counter() - t
    t_m, m = _timed(lambda: engine.margin(X), repeats)
    lat = _single(engine.margin, X, single)
    out.append(_summary("riskml TreeEngine margin", prep, t_m, lat, n, _maxdiff(m, ref)))
    t_cc, c = _timed(lambda: engine.contrib(X), repeats)
    lat = _single(engine.contrib, X, single)
    out.append(
        _summary(
            "riskml TreeEngine contrib",
            prep,
            t_cc,
            lat,
            n,
            _maxdiff(c.sum(axis=1), ref),
            _maxdiff(c, ref_c),
            True,
            note="margin diff: row sums of the contributions",
        )
    )
    del c, ref_c

    out.extend(_treelite(model_file, X, ref, work, single, repeats))
    out.append(_lleaves(model_file, X, ref, work, single, repeats, lleaves_python))
    return out


def _treelite(
    model_file: Path, X: Any, ref: Any, work: Path, single: int, repeats: int
) -> list[dict[str, Any]]:
    import numpy as np
    import tl2cgen
    import treelite

    n, rows = len(X), []
    t = time.perf_counter()
    tm = treelite.frontend.load_lightgbm_model(str(model_file))
    load = time.perf_counter() - t
    t_g, g = _timed(lambda: treelite.gtil.predict(tm, X, pred_margin=True), repeats)
    lat = _single(lambda r: treelite.gtil.predict(tm, r, pred_margin=True), X, single)
    rows.append(
        _summary(
            "treelite GTIL", load, t_g, lat, n, _maxdiff(g.reshape(-1), ref), note="margins only"
        )
    )
    lib = work / "tl2cgen.so"
    t = time.perf_counter()
    tl2cgen.export_lib(
        tm, toolchain="gcc", libpath=str(lib), params={"parallel_comp": os.cpu_count() or 1}
    )
    predictor = tl2cgen.Predictor(str(lib))
    compile_s = load + time.perf_counter() - t

    def tl_predict(A: Any) -> Any:
        return predictor.predict(tl2cgen.DMatrix(A, dtype="float64"), pred_margin=True)

    t_p, p = _timed(lambda: tl_predict(X), repeats)
    lat = _single(tl_predict, X, single)
    rows.append(
        _summary(
            "tl2cgen (gcc .so)",
            compile_s,
            t_p,
            lat,
            n,
            _maxdiff(np.asarray(p).reshape(-1), ref),
            note="margins only; DMatrix built in each call",
        )
    )
    return rows


def _lleaves(
    model_file: Path,
    X: Any,
    ref: Any,
    work: Path,
    single: int,
    repeats: int,
    python: Path | None,
) -> dict[str, Any]:
    """lleaves in its own interpreter (``python``), on the same model file and matrix."""
    import numpy as np

    if python is None or not Path(python).exists():
        return {"engine": "lleaves", "skipped": f"no lleaves interpreter ({python})"}
    np.save(work / "X.npy", X)
    args = [str(python), __file__, "--lleaves-worker", str(work)]
    args += ["--single", str(single), "--repeats", str(repeats)]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        return {"engine": "lleaves", "skipped": proc.stderr.strip().splitlines()[-1:]}
    res = json.loads((work / "lleaves.json").read_text())
    pred = np.load(work / "lleaves-pred.npy")
    row = _summary(
        "lleaves (LLVM)",
        res["compile_s"],
        res["batch"],
        res["single"],
        len(X),
        _maxdiff(pred, ref),
        note=f"margins only; own venv (llvmlite {res['llvmlite']})",
    )
    row["versions"] = {"lleaves": res["lleaves"], "llvmlite": res["llvmlite"]}
    return row


def lleaves_worker(work: Path, single: int, repeats: int) -> None:
    """Run inside the lleaves venv: compile, then time batch and single-row predictions."""
    from importlib.metadata import version

    import lleaves
    import numpy as np

    X = np.load(work / "X.npy")
    cache = work / "lleaves.so"
    cache.unlink(missing_ok=True)  # lleaves loads a cached library instead of compiling
    t = time.perf_counter()
    model = lleaves.Model(model_file=str(work / "model.txt"))
    model.compile(cache=str(cache), raw_score=True)
    compile_s = time.perf_counter() - t
    model.predict(X[:100])
    batch, pred = _timed(lambda: model.predict(X), repeats)
    lat = _single(lambda r: model.predict(r, n_jobs=1), X, single)
    np.save(work / "lleaves-pred.npy", pred)
    (work / "lleaves.json").write_text(
        json.dumps(
            {
                "compile_s": compile_s,
                "batch": batch,
                "single": lat,
                "lleaves": version("lleaves"),
                "llvmlite": version("llvmlite"),
            }
        )
    )


def bench_rows(model: Any, rows: int) -> Any:
    """The feature matrix of the first ``rows`` valid records of the 100k panel (lags as batch)."""
    import numpy as np
    from _common import panel_100k

    from riskml.data import schema
    from riskml.data.history import earlier_from_panel, history_frame

    panel = panel_100k()
    valid, _, _ = schema.split_valid(panel.iloc[:rows])
    records = valid.reset_index(drop=True)
    previous = history_frame(earlier_from_panel(records))
    return model.features(records, previous).to_numpy(np.float64)


def print_table(rows: list[dict[str, Any]]) -> None:
    head = (
        f"{'engine':<28}{'prepare s':>10}{'batch s':>9}{'rows/s':>12}{'1-row med us':>13}"
        f"{'p99 us':>9}{'|d margin|':>11}{'|d contrib|':>12}  exact"
    )
    print(head)
    for r in rows:
        if "skipped" in r:
            print(f"{r['engine']:<28}skipped: {r['skipped']}")
            continue
        contrib = (
            f"{r['max_abs_diff_contrib']:.1e}" if r["max_abs_diff_contrib"] is not None else "n/a"
        )
        margin = f"{r['max_abs_diff_margin']:.1e}" if r["max_abs_diff_margin"] is not None else "-"
        print(
            f"{r['engine']:<28}{r['prepare_s']:>10.2f}{r['batch_s']:>9.3f}{r['rows_per_s']:>12,.0f}"
            f"{r['single_median_us']:>13.1f}{r['single_p99_us']:>9.1f}{margin:>11}{contrib:>12}"
            f"  {'ref' if r['exact'] is None else 'yes' if r['exact'] else 'NO'}"
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--single", type=int, default=1000, help="single-row calls per engine")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--lleaves-python", type=Path, default=LLEAVES_VENV)
    ap.add_argument("--lleaves-worker", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.lleaves_worker:
        lleaves_worker(args.lleaves_worker, args.single, args.repeats)
        return

    from _common import write
    from bench_score import bench_model

    model, _ = bench_model()
    X = bench_rows(model, args.rows)
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="riskml-engines-", dir=ROOT / ".riskml" / "bench") as d:
        rows = compare(
            model.booster,
            X,
            work=Path(d),
            single=args.single,
            repeats=args.repeats,
            lleaves_python=args.lleaves_python,
        )
    load_after = os.getloadavg()
    print(
        f"engines: {len(X):,} rows x {X.shape[1]} features, {model.booster.num_trees()} trees, "
        f"{os.cpu_count()} CPUs; load average {load[0]:.2f} before, {load_after[0]:.2f} after"
    )
    print_table(rows)
    timed = [r for r in rows if "skipped" not in r]
    for kind in ("margin", "contrib"):
        exact = [
            r
            for r in timed
            if r["exact"]
            and not r["engine"].startswith("lightgbm")
            and (kind == "margin") != r["gives_contributions"]
        ]
        if exact:
            best = min(exact, key=lambda r: r["batch_s"])
            print(f"engines: fastest exact {kind}s (batch): {best['engine']}")
    figures = {
        "rows": len(X),
        "features": int(X.shape[1]),
        "trees": model.booster.num_trees(),
        "repeats": args.repeats,
        "single_calls": args.single,
        "load_average_before": load,
        "load_average_after": load_after,
        "exact_tolerance": EXACT,
        "engines": rows,
    }
    print(f"wrote {write('engines', figures)}")


if __name__ == "__main__":
    sys.exit(main())
