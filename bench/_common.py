"""Shared bits of the benchmarks: where results go, the machine they ran on, the 100k panel."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PANEL_100K = ROOT / ".riskml" / "bench" / "panel-100k.parquet"

sys.path.insert(0, str(ROOT))  # so benchmarks can use tests/service_harness.py


def machine() -> dict:
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def write(name: str, figures: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(
        json.dumps({"benchmark": name, "machine": machine(), **figures}, indent=2, default=float)
    )
    return path


def panel_100k(households: int = 100_000, years: int = 7, seed: int = 7):
    """The 100k-household panel, simulated once and kept under .riskml/bench/."""
    import pandas as pd

    if PANEL_100K.exists():
        return pd.read_parquet(PANEL_100K)
    from riskml.data.io import write_table
    from riskml.data.simulate import simulate_panel

    panel = simulate_panel(households=households, years=years, seed=seed)
    write_table(panel, PANEL_100K)
    return panel


def rss_tree_kb(pid: int) -> int:
    """Resident memory of a process and all its descendants (from /proc), in kB."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        stack.extend(children.get(p, []))
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total
