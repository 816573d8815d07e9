"""Benchmark: peak memory of batch scoring a 10,000,000-row Parquet file (target < 2 GB).

The input is simulated (riskml.simulate, no oracle) in pieces of ``--piece-households``
households, each piece written to the file as it is made, so generating it is bounded in
memory too; it is kept under .riskml/bench/ and reused. ``riskml score`` then runs on it in a
subprocess (default workers, explaining the flagged, like the CLI) while this process samples
the resident memory of the whole process tree (the scoring process and its workers) from
/proc every 0.2 s. Figures: peak RSS of the tree (the target), peak RSS of the largest single
process (getrusage), rows/s.

    .venv/bin/python bench/bench_memory.py [--rows 10000000] [--workers N] [--explain flagged]

With ``--rows`` smaller the file and the run are smaller; the output says what was run.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

from _common import ROOT, rss_tree_kb, write
from bench_score import BENCH_DIR, MODEL_DIR, bench_model

HOUSEHOLDS_PER_ROW = 1 / 6.9  # the simulator gives about 6.9 records per household over 7 years


def big_input(rows: int, piece_households: int, seed: int = 101) -> Path:
    """A simulated panel of exactly ``rows`` records, written piece by piece (reused if present)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from riskml.data.simulate import simulate_panel

    path = BENCH_DIR / f"panel-{rows}.parquet"
    if path.exists() and pq.ParquetFile(path).metadata.num_rows == rows:
        return path
    tmp = path.with_suffix(".tmp")
    writer = None
    written, piece = 0, 0
    t0 = time.perf_counter()
    try:
        while written < rows:
            households = min(piece_households, int((rows - written) * HOUSEHOLDS_PER_ROW) + 50)
            panel = simulate_panel(households, 7, seed + piece, oracle_draws=0)
            panel = panel.drop(columns=["oracle_p"])
            panel["household_id"] = f"P{piece:03d}" + panel["household_id"].astype(str)
            panel = panel.iloc[: rows - written]
            table = pa.Table.from_pandas(panel, preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(tmp, table.schema)
            writer.write_table(table, row_group_size=100_000)
            written += len(panel)
            piece += 1
            print(
                f"  generated {written:,} / {rows:,} rows ({time.perf_counter() - t0:.0f} s)",
                flush=True,
            )
    finally:
        if writer is not None:
            writer.close()
    tmp.replace(path)
    return path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--workers", type=int, default=None, help="default: one per CPU")
    ap.add_argument("--explain", default="flagged")
    ap.add_argument("--piece-households", type=int, default=100_000)
    args = ap.parse_args()

    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    bench_model()  # the model folder the CLI loads (trained once by bench_score)
    t = time.perf_counter()
    src = big_input(args.rows, args.piece_households)
    gen_seconds = time.perf_counter() - t
    out = BENCH_DIR / "memory-out.parquet"
    cmd = [
        sys.executable, "-c", "from riskml.cli import app; import riskml.cli.score; app()",
        "score", str(src), "--out", str(out), "--model", str(MODEL_DIR),
        "--explain", args.explain, "--quiet",
        "--summary-json", str(BENCH_DIR / "memory-summary.json"),
    ]  # fmt: skip
    if args.workers is not None:
        cmd += ["--workers", str(args.workers)]
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    peak_kb = 0
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    done = threading.Event()

    def sample() -> None:
        nonlocal peak_kb
        while not done.is_set():
            peak_kb = max(peak_kb, rss_tree_kb(proc.pid))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    stdout, _ = proc.communicate()
    done.set()
    sampler.join()
    seconds = time.perf_counter() - t
    if proc.returncode != 0:
        print(stdout)
        raise SystemExit(f"riskml score failed with exit code {proc.returncode}")
    import json

    summary = json.loads((BENCH_DIR / "memory-summary.json").read_text())
    max_single_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    peak_mb = peak_kb / 1024
    rows = summary["rows_read"]
    print(
        f"memory: scoring {rows:,} rows ({args.explain}, {summary['workers']} workers): "
        f"peak RSS {peak_mb:,.0f} MB for all processes (target < 2048 MB), largest single "
        f"process {max_single_kb / 1024:,.0f} MB; {rows / seconds:,.0f} rows/s, {seconds:.0f} s"
    )
    figures = {
        "rows": rows,
        "rows_requested": args.rows,
        "explain": args.explain,
        "workers": summary["workers"],
        "peak_rss_tree_mb": peak_mb,
        "peak_rss_single_process_mb": max_single_kb / 1024,
        "seconds": seconds,
        "rows_per_s": rows / seconds,
        "valid": summary["valid"],
        "rejected": summary["rejected"],
        "flagged": summary["flagged"],
        "input_generation_seconds": gen_seconds,
        "target_mb": 2048,
        "meets_target": bool(peak_mb < 2048),
        "scoring_timings": summary["timings"],
    }
    print(f"wrote {write('memory', figures)}")


if __name__ == "__main__":
    main()
