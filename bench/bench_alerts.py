"""Benchmark: a monthly push of 1,000,000 medical alerts, merged and re-scored in bulk (issue 16).

The panel is made by the `riskml simulate` CLI (1,000,000 households, 2024-06 and 2025-06, no
oracle), its latest wave (2025-06) written as the province's latest records. The push: medical
alerts of 2026-03, one per sampled household of the wave (some households get a second, as
inpatient and outpatient), 2% for households the wave does not have. The model is trained
once with training/default.yaml on a 20,000-household, 7-year panel (also from the CLI).
Everything is cached under .riskml/bench/.

Figures (printed, and written to bench/results/alerts.json): wall and CPU seconds of
``riskml.alerts.bulk.import_push`` (CPU of this process and its worker processes) with
each step's wall time, the counts, the load average before and after; and, on a sample, the
row-wise pieces it replaces (``alert_problems``, ``alerts_frame``, ``TriggerSet.fired``), scaled.

    .venv/bin/python bench/bench_alerts.py [--alerts 1000000] [--workers N] [--quick]
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

BENCH = ROOT / ".riskml" / "bench"
RISKML = [str(Path(sys.executable).with_name("riskml"))]


def _simulate(households: int, years: int, seed: int, start: int, out: Path) -> Path:
    if not out.exists():
        subprocess.run(
            [*RISKML, "simulate", "-n", str(households), "-y", str(years), "-s", str(seed),
             "--start-year", str(start), "--oracle-draws", "0", "-q", "--out", str(out)],
            check=True,
        )  # fmt: skip
    return out


def latest_wave(households: int) -> Path:
    """The latest wave of a simulated panel: the records a province holds."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    out = BENCH / f"alerts-latest-{households}.parquet"
    if out.exists():
        return out
    panel = _simulate(households, 2, 7, 2024, BENCH / f"alerts-panel-{households}.parquet")
    table = pq.read_table(panel)
    pq.write_table(table.filter(pc.equal(table["period"], "2025-06")), out)
    return out


def bench_model():
    from riskml.model.risk_model import RiskModel

    folder = BENCH / "alerts-model"
    if (folder / "model.json").exists():
        return RiskModel.load(folder)
    import pandas as pd

    from riskml.data import schema
    from riskml.training.train import TrainConfig, train

    panel = pd.read_parquet(_simulate(20_000, 7, 11, 2019, BENCH / "alerts-train-20k.parquet"))
    valid, _, _ = schema.split_valid(panel)
    result = train(valid, TrainConfig.from_yaml(ROOT / "training" / "default.yaml"))
    result.model.save(folder)
    return result.model


def push(latest: Path, alerts: int, seed: int = 5) -> Path:
    """``alerts`` medical alerts of 2026-03 onto the households of ``latest`` (2% unknown)."""
    import numpy as np
    import pandas as pd
    import pyarrow.parquet as pq

    out = BENCH / f"alerts-push-{alerts}-{latest.stem}.parquet"
    if out.exists():
        return out
    rng = np.random.default_rng(seed)
    wave = pq.read_table(latest, columns=["household_id", "county_code"]).to_pandas()
    unknown = alerts // 50
    known = alerts - unknown
    pick = rng.integers(0, len(wave), known)
    hid = np.r_[wave["household_id"].to_numpy(dtype=object)[pick],
                [f"X{k:07d}" for k in range(unknown)]]  # fmt: skip
    county = np.r_[wave["county_code"].to_numpy(dtype=object)[pick],
                   wave["county_code"].to_numpy(dtype=object)[rng.integers(0, len(wave), unknown)]]  # fmt: skip
    inpatient = rng.random(alerts) < 0.3
    total = np.round(rng.lognormal(8.5, 1.2, alerts), 2)
    month = np.round(total * rng.uniform(0.02, 0.5, alerts), 2)
    insured = rng.random(alerts) < 0.97
    frame = pd.DataFrame(
        {
            "alert_id": [f"yb-2026-03-{k:08d}" for k in range(alerts)],
            "household_id": hid,
            "county_code": county,
            "period": "2026-03",
            "out_of_pocket": total,
            "care": np.where(inpatient, "inpatient", "outpatient"),
            "month_out_of_pocket": np.where(rng.random(alerts) < 0.9, month, np.nan),
            "insured": pd.array(np.where(rng.random(alerts) < 0.05, None, insured), "boolean"),
        }
    )
    frame.to_parquet(out, index=False)
    return out


def _cpu() -> float:
    me, kids = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def row_wise_sample(alerts_path: Path, latest: Path, rows: int) -> dict[str, float]:
    """Seconds of the row-wise validator, typing and triggers on ``rows`` alerts, per alert."""
    import pandas as pd

    from riskml.alerts.contract import alert_problems, alerts_frame, frame_rows
    from riskml.alerts.triggers import TriggerSet

    raw = pd.read_parquet(alerts_path).iloc[:rows]
    dicts = [{k: v for k, v in r.items() if v is not None} for r in frame_rows(raw)]
    out = {}
    t = time.perf_counter()
    alert_problems(dicts, "medical")
    out["alert_problems"] = (time.perf_counter() - t) / rows
    t = time.perf_counter()
    alerts_frame(dicts, "medical")
    out["alerts_frame"] = (time.perf_counter() - t) / rows
    ts = TriggerSet.load()
    before = {"formerly_poor": True}
    t = time.perf_counter()
    for a in dicts:
        ts.fired(dict(a, department="medical"), before, a["county_code"], a["period"])
    out["triggers_fired"] = (time.perf_counter() - t) / rows
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--alerts", type=int, default=1_000_000)
    ap.add_argument("--households", type=int, default=1_000_000)
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--explain", default="flagged")
    ap.add_argument("--quick", action="store_true", help="50,000 alerts onto 50,000 households")
    args = ap.parse_args()
    if args.quick:
        args.alerts, args.households = 50_000, 50_000
    BENCH.mkdir(parents=True, exist_ok=True)
    from riskml.alerts.bulk import import_push
    from riskml.scoring.decide import ModelInfo

    latest = latest_wave(args.households)
    alerts_path = push(latest, args.alerts)
    model = bench_model()
    out = BENCH / f"alerts-out-{args.alerts}"
    load_before = os.getloadavg()
    cpu, t = _cpu(), time.perf_counter()
    summary = import_push(
        alerts_path, "medical", latest, out, model=model, info=ModelInfo("bench", "1"),
        explain=args.explain, workers=args.workers,
    )  # fmt: skip
    wall, cpu = time.perf_counter() - t, _cpu() - cpu
    load_after = os.getloadavg()
    for line in summary.lines():
        print(line)
    print(f"wall {wall:.1f} s, CPU {cpu:.1f} s (this process and its workers), "
          f"{summary.workers} worker(s); load average before {load_before[0]:.2f}, "
          f"after {load_after[0]:.2f} (1 min)")  # fmt: skip
    print("steps (wall s): " + ", ".join(f"{k} {v:.1f}" for k, v in summary.timings.items()))
    sample = row_wise_sample(alerts_path, latest, min(20_000, args.alerts))
    print("row-wise, scaled to the push (s): " + ", ".join(
        f"{k} {v * args.alerts:.1f}" for k, v in sample.items()))  # fmt: skip
    path = write(
        "alerts" if not args.quick else "alerts-quick",
        {
            "alerts": args.alerts,
            "households_in_records": summary.records_read,
            "wall_s": wall,
            "cpu_s": cpu,
            "workers": summary.workers,
            "load_average_before": load_before,
            "load_average_after": load_after,
            "steps_s": summary.timings,
            "summary": {k: v for k, v in summary.__dict__.items() if k != "timings"},
            "row_wise_s_per_alert": sample,
        },
    )
    print(f"written {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
