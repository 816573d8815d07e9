"""Benchmark: 10,000,000 household decisions into every regional level (issue 17, item 5).

Synthetic batch outputs (``riskml.regions.synthetic``: the 45 simulated counties, townships of
15 villages of ~300 households, beta-distributed risks, flags and risk types; no household
ids: the aggregation reads none without outcomes) are written once to Parquet under
``.riskml/bench/``. Each run, in a fresh process: read the file, ``prepare``, the villages'
partials (sums and exact distributions), the roll-up to township, county, prefecture and
province and the table, written as Parquet. Printed per run: wall and CPU seconds, peak
memory (max RSS of the run's process), the load average before and after; the target is
< 60 s for 10M. ``--spark ROWS`` then times the Spark job (local mode, the same code path) on
a file of ROWS decisions, session start apart.

    .venv/bin/python bench/bench_regions.py [--rows 10000000] [--runs 3] [--quick] [--spark 1000000]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from _common import ROOT, write

BENCH_DIR = ROOT / ".riskml" / "bench"
PERIODS = ("2025-06", "2025-12")


def data_file(rows: int) -> Path:
    path = BENCH_DIR / f"regions-{rows}.parquet"
    if not path.exists():
        import pyarrow.parquet as pq

        from riskml.regions.synthetic import synthetic_decisions

        BENCH_DIR.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        table = synthetic_decisions(rows // len(PERIODS), PERIODS, ids=False, seed=17)
        pq.write_table(table, path.with_suffix(".tmp"), row_group_size=1_000_000)
        path.with_suffix(".tmp").rename(path)
        print(f"wrote {table.num_rows:,} synthetic decisions to {path} in {time.perf_counter() - t0:.1f} s")  # fmt: skip
    return path


def child(path: str, out: str) -> None:
    """One timed run (in its own process, so that its peak memory is its own)."""
    t0, c0 = time.perf_counter(), time.process_time()
    from riskml.regions.inputs import read_decisions
    from riskml.regions.run import regional_table

    decisions = read_decisions([path])
    t1 = time.perf_counter()
    table = regional_table(decisions)
    t2 = time.perf_counter()
    table.to_parquet(out, index=False)
    t3 = time.perf_counter()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"RESULT {decisions.num_rows} {t3 - t0:.2f} {time.process_time() - c0:.2f} {peak:.0f} "
          f"{t1 - t0:.2f} {t2 - t1:.2f} {t3 - t2:.2f} {len(table)}")  # fmt: skip


def run_local(path: Path, runs: int) -> list[dict]:
    results = []
    for i in range(runs):
        load0 = os.getloadavg()[0]
        out = BENCH_DIR / "regions-table.parquet"
        proc = subprocess.run(
            [sys.executable, __file__, "--child", str(path), str(out)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT"))
        rows, wall, cpu, peak, read, agg, write_s, table_rows = line.split()[1:]
        r = {
            "rows": int(rows), "wall_s": float(wall), "cpu_s": float(cpu), "peak_mb": float(peak),
            "read_s": float(read), "aggregate_s": float(agg), "write_s": float(write_s),
            "table_rows": int(table_rows), "load_before": load0, "load_after": os.getloadavg()[0],
        }  # fmt: skip
        print(f"run {i + 1}: {r['rows']:,} decisions -> {r['table_rows']:,} rows: wall {r['wall_s']:.1f} s "
              f"(read {r['read_s']:.1f}, aggregate {r['aggregate_s']:.1f}, write {r['write_s']:.1f}), "
              f"CPU {r['cpu_s']:.1f} s, peak {r['peak_mb']:.0f} MB, "
              f"load {r['load_before']:.2f} -> {r['load_after']:.2f}")  # fmt: skip
        results.append(r)
    return results


def run_spark(rows: int) -> dict:
    path = data_file(rows)
    from riskml.regions.inputs import read_decisions
    from riskml.regions.run import regional_table, spark_regional_table
    from riskml.scoring.spark import spark_session

    t0 = time.perf_counter()
    spark = spark_session()
    session = time.perf_counter() - t0
    load0 = os.getloadavg()[0]
    t1, c1 = time.perf_counter(), time.process_time()
    on_spark = spark_regional_table(spark, [path])
    job, driver_cpu = time.perf_counter() - t1, time.process_time() - c1
    local = regional_table(read_decisions([path]))
    num = [c for c in local.columns if local[c].dtype.kind in "if"]
    diff = float((on_spark[num].fillna(0) - local[num].fillna(0)).abs().max().max())
    ints_equal = all((on_spark[c] == local[c]).all() for c in num if local[c].dtype.kind == "i")
    spark.stop()
    out = {"rows": rows, "session_s": session, "job_s": job, "driver_cpu_s": driver_cpu,
           "max_abs_diff_vs_local": diff, "integers_equal": ints_equal,
           "load_before": load0, "load_after": os.getloadavg()[0]}  # fmt: skip
    print(f"spark local[*]: {rows:,} decisions: session {session:.1f} s, job {job:.1f} s "
          f"(driver CPU {driver_cpu:.1f} s), integers equal to local: {ints_equal}, "
          f"max |difference| {diff:.2e}, load {load0:.2f} -> {out['load_after']:.2f}")  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="1,000,000 decisions, 2 runs")
    parser.add_argument("--spark", type=int, default=0, help="time the Spark job on ROWS")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    rows, runs = (1_000_000, 2) if args.quick else (args.rows, args.runs)
    local = run_local(data_file(rows), runs)
    walls = [r["wall_s"] for r in local]
    print(f"local: {rows:,} decisions, wall {min(walls):.1f}-{max(walls):.1f} s over {runs} runs "
          f"(target < 60 s), CPU {min(r['cpu_s'] for r in local):.1f}-{max(r['cpu_s'] for r in local):.1f} s, "
          f"peak {max(r['peak_mb'] for r in local):.0f} MB")  # fmt: skip
    figures = {"local": local}
    if args.spark:
        figures["spark"] = run_spark(args.spark)
    name = ("regions-quick" if args.quick else "regions") + ("-spark" if args.spark else "")
    print(f"wrote {write(name, figures)}")


if __name__ == "__main__":
    main()
