"""Benchmark: the live scoring service on loopback against `mlflow models serve` of the same model.

Figures (printed, and written to bench/results/serve.json):
- one household per request, explained: median and p99 latency (targets 8 ms / 25 ms);
- 100 households per request, explaining the flagged: households/s (target ≥ 3,000);
- single-record throughput of riskml (explained) over `mlflow models serve` of the same
  registered model (no explanations), measured in the same run: ratio (target ≥ 2);
- serving memory: RSS of every process of the riskml server (target < 800 MB);
- the same single and 100-record requests in process (``ScoringService`` without HTTP), to
  show how much of the latency is riskml's own.

    .venv/bin/python bench/bench_serve.py [--households 20000] [--requests 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from _common import ROOT, rss_tree_kb, write


def _post(url: str, body: bytes, headers: dict[str, str]) -> float:
    req = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json", **headers}
    )
    t = time.perf_counter()
    with urllib.request.urlopen(req, timeout=60) as resp:
        resp.read()
        assert resp.status == 200
    return time.perf_counter() - t


def _pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--households", type=int, default=20_000, help="panel size for the served model"
    )
    ap.add_argument("--requests", type=int, default=1000)
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="riskml-bench-serve-"))
    env = {
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp}/mlflow.db",
        "RISKML_ARTIFACT_ROOT": str(tmp / "mlartifacts"),
        "RISKML_LEDGER_URL": f"sqlite:///{tmp}/ledger.db",
        "RISKML_MODEL_CACHE": str(tmp / "cache"),
        "RISKML_STATE_DIR": str(tmp / "state"),
    }
    os.environ.update(env)
    from tests.service_harness import free_port, start_server

    from riskml.data import schema
    from riskml.data.simulate import simulate_panel
    from riskml.service.access import add_key
    from riskml.training import registry
    from riskml.training.train import TrainConfig, train

    panel = simulate_panel(households=args.households, years=7, seed=11)
    cfg = TrainConfig.from_yaml(ROOT / "training" / "default.yaml")
    result = train(panel, cfg)
    registry.log_training_run(result, cfg)
    token = add_key(tmp / "keys.yaml", "bench", "scorer")
    env["RISKML_API_KEYS_FILE"] = str(tmp / "keys.yaml")

    test = result.test_frame[list(schema.FIELD_NAMES)].dropna().reset_index(drop=True)
    records = schema.to_json_records(test)
    auth = {"Authorization": f"Bearer {token}"}

    # the same requests in process (no HTTP): how much of the latency is riskml's own
    from riskml.service.core import ScoringService, Settings

    settings = Settings.from_env()
    settings.ledger_url = f"sqlite:///{tmp}/ledger-inproc.db"  # the server keeps its own
    settings.keys_file = env["RISKML_API_KEYS_FILE"]
    core = ScoringService(settings)
    bearer = f"Bearer {token}"
    inproc = []
    for i, r in enumerate(records[: args.requests + 50]):
        t = time.perf_counter()
        assert core.score({"households": [r], "explain": "all"}, bearer).status == 200
        if i >= 50:  # after the warm-up
            inproc.append(time.perf_counter() - t)
    t0 = time.perf_counter()
    for i in range(0, min(len(records), 10_000), 100):
        core.score({"households": records[i : i + 100]}, bearer)
    inproc_batch_hps = min(len(records), 10_000) / (time.perf_counter() - t0)
    core.ledger.close()
    del core

    srv = start_server(env, tmp / "riskml.log")
    try:
        while srv.request("GET", "/readyz")[0] != 200:
            time.sleep(0.2)
        url = srv.url + "/score"
        singles = [
            json.dumps({"households": [r], "explain": "all"}).encode()
            for r in records[: args.requests]
        ]
        for b in singles[:50]:
            _post(url, b, auth)  # warm-up
        t0 = time.perf_counter()
        lat = [_post(url, b, auth) for b in singles]
        single_wall = time.perf_counter() - t0
        riskml_rps = len(singles) / single_wall
        batches = [
            json.dumps({"households": records[i : i + 100]}).encode()
            for i in range(0, min(len(records), 10_000), 100)
        ]
        t0 = time.perf_counter()
        for b in batches:
            _post(url, b, auth)
        batch_hps = sum(len(json.loads(b)["households"]) for b in batches) / (
            time.perf_counter() - t0
        )
        rss = rss_tree_kb(srv.proc.pid) / 1024
    finally:
        srv.stop()

    print(
        f"serve: single household explained: median {statistics.median(lat) * 1000:.2f} ms, "
        f"p99 {_pct(lat, 0.99) * 1000:.2f} ms ({riskml_rps:.0f} req/s); "
        f"100 per request: {batch_hps:,.0f} households/s; memory {rss:.0f} MB",
        flush=True,
    )
    # the baseline: MLflow's own server of the same registered model, scores only
    port = free_port()
    mlflow_bin = str(Path(sys.executable).parent / "mlflow")
    proc = subprocess.Popen(
        [
            mlflow_bin,
            "models",
            "serve",
            "-m",
            "models:/household-risk@champion",
            "--env-manager",
            "local",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "--workers",
            "1",
        ],  # fmt: skip
        # MLflow execs `uvicorn` by name: the venv's bin must be on PATH
        env={
            **os.environ,
            **env,
            "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
        },
        stdout=open(tmp / "mlflow-serve.log", "w"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                urllib.request.urlopen(base + "/ping", timeout=2)
                break
            except OSError:
                time.sleep(0.3)
        ml_bodies = [
            json.dumps({"dataframe_records": [r]}).encode() for r in records[: args.requests]
        ]
        for b in ml_bodies[:50]:
            _post(base + "/invocations", b, {})
        t0 = time.perf_counter()
        ml_lat = [_post(base + "/invocations", b, {}) for b in ml_bodies]
        mlflow_rps = len(ml_bodies) / (time.perf_counter() - t0)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)

    figures = {
        "single_explained_median_ms": statistics.median(lat) * 1000,
        "single_explained_p99_ms": _pct(lat, 0.99) * 1000,
        "single_requests_per_s": riskml_rps,
        "batch100_households_per_s": batch_hps,
        "mlflow_serve_single_median_ms": statistics.median(ml_lat) * 1000,
        "mlflow_serve_single_requests_per_s": mlflow_rps,
        "ratio_single_throughput_vs_mlflow_serve": riskml_rps / mlflow_rps,
        "serving_rss_mb": rss,
        "in_process_single_explained_median_ms": statistics.median(inproc) * 1000,
        "in_process_batch100_households_per_s": inproc_batch_hps,
        "requests": len(singles),
    }
    print(
        f"serve: single household explained: median {figures['single_explained_median_ms']:.2f} ms, "
        f"p99 {figures['single_explained_p99_ms']:.2f} ms ({riskml_rps:.0f} req/s)"
    )
    print(f"serve: 100 per request, explaining the flagged: {batch_hps:,.0f} households/s")
    print(
        f"serve: mlflow models serve (scores only) median {figures['mlflow_serve_single_median_ms']:.2f} ms, "
        f"{mlflow_rps:.0f} req/s; riskml/mlflow single-record throughput ratio "
        f"{figures['ratio_single_throughput_vs_mlflow_serve']:.2f}x"
    )
    print(f"serve: memory of all server processes {rss:.0f} MB")
    print(
        f"serve: in process (no HTTP): single explained median "
        f"{figures['in_process_single_explained_median_ms']:.2f} ms, 100 per request "
        f"{inproc_batch_hps:,.0f} households/s"
    )
    print(f"wrote {write('serve', figures)}")


if __name__ == "__main__":
    main()
