"""Benchmark: the Spark engine in local mode against the local engine, 200,000 records.

Each repetition runs, one after the other (the order turning round each repetition, so a
drift of the machine's load falls on every engine alike), the whole command as a user would:

- ``riskml score IN --out OUT --model M`` (the local engine, its default workers: one per CPU);
- ``riskml score IN --out OUT --model M --engine spark`` (``local[*]``, the default master);
- with ``--masters``, the same with each of those masters.

Figures per engine (printed, and written to bench/results/spark.json): the whole command's
wall time (Python start, imports, model, Spark's JVM and Python workers, the job, the
writes; **the 1.5x target is judged on this figure**: Spark ``local[*]`` over the local
engine, the median of the ratios within each repetition), the CPU time of the command's
whole process tree (Python, Spark's JVM, its Python workers, read from /proc; the
benchmark is their subreaper, so none leaves the tree, and it waits until none is left),
the load average as the command started, and from the run's summary (``--summary-json``)
the time inside the scoring call and, for Spark, its startup (the session: JVM and
context) and the job after it. The outputs of the last repetition are compared row for row (decision ids
aside). The machine may be shared: read the ratios beside the load average and CPU times.

The input is the first ``--records`` rows of the cached 100k-household panel (its
households with all their periods, so most records have a previous period), written once
under .riskml/bench/ by bench_score.scoring_input; the model is bench_score's (trained
once on that panel, kept under .riskml/bench/).

    .venv/bin/python bench/bench_spark.py [--records 200000] [--repeat 3] [--masters 'local[*]' ...]
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from _common import write
from bench_score import BENCH_DIR, MODEL_DIR, bench_model, scoring_input

TARGET_RATIO = 1.5


def riskml_command() -> list[str]:
    exe = Path(sys.executable).with_name("riskml")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "riskml.cli"]


def become_subreaper() -> bool:
    """Orphaned descendants (Spark's JVM outlives its Python for a moment) come to this
    process, so their CPU time is counted when they are reaped (Linux)."""
    pr_set_child_subreaper = 36
    with contextlib.suppress(Exception):
        return ctypes.CDLL(None, use_errno=True).prctl(pr_set_child_subreaper, 1, 0, 0, 0) == 0
    return False


def reap_all(timeout: float = 120.0) -> int:
    """Wait until no descendant is left; the number that were still running."""
    reaped, deadline = 0, time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return reaped
        if pid:
            reaped += 1
        else:
            time.sleep(0.05)
    raise SystemExit(f"processes of the command still running after {timeout:.0f} s")


class TreeCpu:
    """CPU time (user + system) of this process's descendants, read from /proc every 0.2 s
    (the last reading of each process; the rusage of reaped children misses Spark's Python
    workers, whose daemon is killed before it reaps them). Linux; NaN elsewhere."""

    def __init__(self) -> None:
        self.ticks: dict[int, int] = {}
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TreeCpu:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join()

    def _run(self) -> None:
        while True:
            self._sample()
            if self.done.wait(0.2):
                return

    def _sample(self) -> None:
        parent, ticks = {}, {}
        for name in os.listdir("/proc") if os.path.isdir("/proc") else ():
            if name.isdigit():
                with contextlib.suppress(OSError, IndexError, ValueError):
                    with open(f"/proc/{name}/stat") as f:
                        fields = f.read().rsplit(")", 1)[1].split()
                    parent[int(name)] = int(fields[1])
                    ticks[int(name)] = int(fields[11]) + int(fields[12])
        me = os.getpid()
        for pid in ticks:
            up, hops = parent.get(pid), 0
            while up not in (None, 0, 1, me) and hops < 64:
                up, hops = parent.get(up), hops + 1
            if up == me:
                self.ticks[pid] = max(self.ticks.get(pid, 0), ticks[pid])

    @property
    def seconds(self) -> float:
        if not os.path.isdir("/proc"):
            return float("nan")
        return sum(self.ticks.values()) / os.sysconf("SC_CLK_TCK")


def run_once(label: str, src: Path, master: str | None, work: Path) -> dict:
    """One whole ``riskml score`` command: its wall time, CPU time, and its summary."""
    out = work / (f"{label}.parquet" if master is None else label)
    summary_path = work / f"{label}.summary.json"
    cmd = [*riskml_command(), "score", str(src), "--out", str(out), "--model", str(MODEL_DIR),
           "--quiet", "--summary-json", str(summary_path)]  # fmt: skip
    if master is not None:
        cmd += ["--engine", "spark", "--master", master]
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "PYTHONUNBUFFERED": "1"}
    load = os.getloadavg()[0]
    with TreeCpu() as tree:
        t = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t
        lingering = reap_all()  # Spark's JVM and workers, once the command has returned
    cpu = tree.seconds
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-20:])
        raise SystemExit(f"{label}: riskml score failed (exit {proc.returncode}):\n{tail}")
    summary = json.loads(summary_path.read_text())
    timings = summary.get("timings", {})
    figures = {"wall_seconds": wall, "cpu_seconds": cpu, "load_average": load,
               "lingering": lingering, "scoring_seconds": summary["seconds"], "output": str(out),
               "rows": summary["rows_read"], "valid": summary["valid"],
               "flagged": summary["flagged"]}  # fmt: skip
    if master is None:
        figures["workers"] = summary["workers"]
    else:
        figures["startup_seconds"] = timings.get("session", float("nan"))
        figures["job_seconds"] = timings.get("run", float("nan"))
        figures["stop_seconds"] = timings.get("stop", float("nan"))
        figures["spark_timings"] = timings
    return figures


def same_decisions(local_out: str, spark_out: str) -> bool:
    """The two engines' decisions, sorted by (household_id, period), equal but for decision ids."""
    import numpy as np
    import pandas as pd

    from riskml.scoring import batch

    key = ["household_id", "period"]
    a = pd.read_parquet(local_out).sort_values(key).reset_index(drop=True)
    b = pd.read_parquet(spark_out).sort_values(key).reset_index(drop=True)
    if len(a) != len(b):
        return False

    def plain(s: pd.Series) -> list:
        return [v.tolist() if isinstance(v, np.ndarray) else v for v in s.tolist()]

    return all(plain(a[c]) == plain(b[c]) for c in batch.OUTPUT_COLUMNS if c != "decision_id")


def spread(values: list[float]) -> dict:
    return {"min": min(values), "median": statistics.median(values), "max": max(values),
            "runs": values}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--masters", nargs="+", default=["local[*]"])
    args = ap.parse_args()
    subreaper = become_subreaper()

    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    bench_model()  # trained once and kept
    src = scoring_input(args.records)
    work = BENCH_DIR / "spark-bench"
    work.mkdir(exist_ok=True)
    engines: list[tuple[str, str | None]] = [("local", None)]
    engines += [(f"spark-{m.replace('[', '').replace(']', '').replace('*', 'all')}", m)
                for m in args.masters]  # fmt: skip
    runs: dict[str, list[dict]] = {label: [] for label, _ in engines}
    load_before = os.getloadavg()
    for r in range(args.repeat):
        k = r % len(engines)
        for label, master in engines[k:] + engines[:k]:
            fig = run_once(label, src, master, work)
            runs[label].append(fig)
            extra = (f"; startup {fig['startup_seconds']:.1f} s, job {fig['job_seconds']:.1f} s"
                     if master else f"; {fig['workers']} workers")  # fmt: skip
            print(f"  run {r + 1} {label}: {fig['wall_seconds']:.1f} s wall, "
                  f"{fig['cpu_seconds']:.1f} s CPU, load {fig['load_average']:.1f} "
                  f"(scoring call {fig['scoring_seconds']:.1f} s{extra})", flush=True)  # fmt: skip

    n = runs["local"][-1]["rows"]
    first_spark = engines[1][0]
    equal = same_decisions(runs["local"][-1]["output"], runs[first_spark][-1]["output"])
    figures: dict = {"records": n, "cpus": os.cpu_count(), "repeat": args.repeat,
                     "input": str(src), "target_ratio": TARGET_RATIO,
                     "judged_on": f"wall time of the whole riskml score command, {first_spark} "
                                  "over local, median of the per-repetition ratios",
                     "decisions_equal": equal, "cpu_of_whole_process_tree": subreaper,
                     "load_average_before_after": [load_before, os.getloadavg()]}  # fmt: skip
    local_wall = [f["wall_seconds"] for f in runs["local"]]
    figures["local"] = {
        "wall_seconds": spread(local_wall),
        "cpu_seconds": spread([f["cpu_seconds"] for f in runs["local"]]),
        "load_average": spread([f["load_average"] for f in runs["local"]]),
        "scoring_seconds": spread([f["scoring_seconds"] for f in runs["local"]]),
        "workers": runs["local"][-1]["workers"],
    }
    w, c = spread(local_wall), figures["local"]["cpu_seconds"]
    print(f"spark: local engine, {n:,} records: {w['median']:.1f} s wall "
          f"(range {w['min']:.1f}-{w['max']:.1f}, {args.repeat} runs, "
          f"{runs['local'][-1]['workers']} workers), {c['median']:.1f} s CPU "
          f"(range {c['min']:.1f}-{c['max']:.1f})")  # fmt: skip
    for label, master in engines[1:]:
        rs = runs[label]
        wall = [f["wall_seconds"] for f in rs]
        ratios = [f["wall_seconds"] / lo for f, lo in zip(rs, local_wall, strict=True)]
        cpu_ratios = [f["cpu_seconds"] / lo["cpu_seconds"]
                      for f, lo in zip(rs, runs["local"], strict=True)]  # fmt: skip
        entry = {
            "master": master,
            "wall_seconds": spread(wall),
            "cpu_seconds": spread([f["cpu_seconds"] for f in rs]),
            "load_average": spread([f["load_average"] for f in rs]),
            "ratio_cpu_vs_local": spread(cpu_ratios),
            "startup_seconds": spread([f["startup_seconds"] for f in rs]),
            "job_seconds": spread([f["job_seconds"] for f in rs]),
            "wall_without_startup_seconds": spread(
                [f["wall_seconds"] - f["startup_seconds"] for f in rs]
            ),
            "scoring_seconds": spread([f["scoring_seconds"] for f in rs]),
            "ratio_wall_vs_local": spread(ratios),
            "last_timings": rs[-1]["spark_timings"],
        }
        figures[label] = entry
        w, s, j, q = (entry["wall_seconds"], entry["startup_seconds"], entry["job_seconds"],
                      entry["ratio_wall_vs_local"])  # fmt: skip
        c, qc = entry["cpu_seconds"], entry["ratio_cpu_vs_local"]
        print(f"spark: {master}, {n:,} records: {w['median']:.1f} s wall (range "
              f"{w['min']:.1f}-{w['max']:.1f}; startup {s['median']:.1f} s, job "
              f"{j['median']:.1f} s), {c['median']:.1f} s CPU; {q['median']:.2f}x the local "
              f"engine's wall time (range {q['min']:.2f}-{q['max']:.2f}), {qc['median']:.2f}x "
              f"its CPU time (range {qc['min']:.2f}-{qc['max']:.2f})")  # fmt: skip
    ratio = figures[first_spark]["ratio_wall_vs_local"]["median"]
    figures["ratio"] = ratio
    figures["meets_target"] = bool(ratio <= TARGET_RATIO and equal)
    loads = [f["load_average"] for rs in runs.values() for f in rs]
    print(f"spark: load average (1 min) as the commands started: {min(loads):.1f}-{max(loads):.1f}"
          f" on {os.cpu_count()} CPUs")  # fmt: skip
    print(f"spark: target {first_spark} <= {TARGET_RATIO}x the local engine (whole command, "
          f"wall): {ratio:.2f}x, {'met' if figures['meets_target'] else 'NOT met'}; "
          f"decisions equal: {equal}")  # fmt: skip
    print(f"wrote {write('spark', figures)}")


if __name__ == "__main__":
    main()
