"""Run every benchmark (bench/bench_*.py) in turn, each in its own process; `make bench`.

Their output is shown as it comes (each prints its figure lines and writes
bench/results/<name>.json). A short table of the figure lines and the exit
status of each follows; the exit code is non-zero if any benchmark failed.

    .venv/bin/python bench/run_all.py [--only score memory] [--skip serve]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
# cheap first; each one's figures stand alone
ORDER = ("simulate", "rules", "train", "score", "memory", "serve")


def benchmarks() -> list[Path]:
    found = {p.stem.removeprefix("bench_"): p for p in HERE.glob("bench_*.py")}
    names = [n for n in ORDER if n in found] + sorted(set(found) - set(ORDER))
    return [found[n] for n in names]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", nargs="*", default=None, help="run only these (e.g. score memory)")
    ap.add_argument("--skip", nargs="*", default=[], help="leave these out")
    args = ap.parse_args()
    env = {
        **os.environ,
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "BENTOML_DO_NOT_TRACK": "true",
        "DO_NOT_TRACK": "true",
        "PYTHONUNBUFFERED": "1",
    }
    results: list[tuple[str, int, float, list[str]]] = []
    for path in benchmarks():
        name = path.stem.removeprefix("bench_")
        if (args.only is not None and name not in args.only) or name in args.skip:
            continue
        print(f"=== {name} ({path.name})", flush=True)
        t = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, str(path)],
            cwd=HERE.parent,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        lines: list[str] = []
        assert proc.stdout is not None
        for line in proc.stdout:
            print(line, end="", flush=True)
            if line.startswith(f"{name}:"):
                lines.append(line.rstrip())
        code = proc.wait()
        results.append((name, code, time.perf_counter() - t, lines))
    print("\n=== summary")
    failed = 0
    for name, code, seconds, lines in results:
        status = "ok" if code == 0 else f"FAILED (exit {code})"
        failed += code != 0
        print(f"{name}: {status} in {seconds:.0f} s")
        for line in lines:
            print(f"    {line}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
