"""Benchmark: the live scoring service on loopback against `mlflow models serve` of the same model.

Figures (printed, and written to bench/results/serve.json):
- one household per request, explained: median and p99 latency (targets 8 ms / 25 ms);
- 100 households per request, explaining the flagged: households/s (target ≥ 3,000);
- single-record throughput of riskml (explained) over `mlflow models serve` of the same
  registered model (no explanations), measured in the same run: ratio (target ≥ 2);
- serving memory: RSS of every process of the riskml server (target < 800 MB);
- the same single and 100-record requests in process (``ScoringService`` without HTTP), to
  show how much of the latency is riskml's own;
- concurrent clients (``--clients``, 8 and 32 by default) beside the sequential client: each
  client a thread with its own keep-alive connection, sending one household (explained) or 100
  households (explaining the flagged) per request as fast as answers come back; throughput and
  the p50 / p99 latency of each level, with the CPU the client process and the server processes
  used over the run (the machine's cores are shared by both: a client near one core of CPU is
  itself a bottleneck, and the figures say so).

    .venv/bin/python bench/bench_serve.py [--households 20000] [--requests 1000]
        [--clients 8,32] [--concurrent-requests 2000] [--no-mlflow]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
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


def _cpu_tree_s(pid: int) -> float:
    """User + system CPU seconds of a process and its descendants (from /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            stats[int(d.name)] = fields
            children.setdefault(int(fields[1]), []).append(int(d.name))
    total, stack = 0, [pid]
    while stack:
        p = stack.pop()
        stack.extend(children.get(p, []))
        if p in stats:  # utime, stime: fields 14 and 15 of stat (11 and 12 after the name)
            total += int(stats[p][11]) + int(stats[p][12])
    return total / tick


def _concurrent(
    url: str, bodies: list[bytes], clients: int, headers: dict[str, str], server_pid: int
) -> dict[str, float]:
    """``clients`` threads, each on its own keep-alive connection, sending ``bodies`` in turn."""
    host, port = url.split("//", 1)[1].split("/", 1)[0].split(":")
    path = "/" + url.split("//", 1)[1].split("/", 1)[1]
    head = {"Content-Type": "application/json", **headers}
    lat: list[list[float]] = [[] for _ in range(clients)]
    errors: list[str] = []
    start = threading.Barrier(clients + 1)

    def client(k: int) -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        mine = bodies[k::clients]
        for b in mine[:3]:  # warm the connection
            conn.request("POST", path, body=b, headers=head)
            conn.getresponse().read()
        start.wait()
        for b in mine:
            t = time.perf_counter()
            conn.request("POST", path, body=b, headers=head)
            resp = conn.getresponse()
            resp.read()
            lat[k].append(time.perf_counter() - t)
            if resp.status != 200:
                errors.append(str(resp.status))
        conn.close()

    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(clients)]
    for th in threads:
        th.start()
    start.wait()
    cpu0, srv0, t0 = time.process_time(), _cpu_tree_s(server_pid), time.perf_counter()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t0
    cpu, srv = time.process_time() - cpu0, _cpu_tree_s(server_pid) - srv0
    if errors:
        raise RuntimeError(f"{len(errors)} requests failed under {clients} clients: {errors[:5]}")
    flat = [x for xs in lat for x in xs]
    return {
        "clients": clients,
        "requests": len(flat),
        "requests_per_s": len(flat) / wall,
        "p50_ms": statistics.median(flat) * 1000,
        "p99_ms": _pct(flat, 0.99) * 1000,
        "client_cpu_cores": cpu / wall,
        "server_cpu_cores": srv / wall,
        "seconds": wall,
    }


def _mlflow_serve(env: dict[str, str], tmp: Path, records: list[dict]) -> tuple[list[float], float]:
    """`mlflow models serve` of household-risk@champion: single-record latencies and req/s."""
    from tests.code.service_harness import free_port

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
        ml_bodies = [json.dumps({"dataframe_records": [r]}).encode() for r in records]
        for b in ml_bodies[:50]:
            _post(base + "/invocations", b, {})
        t0 = time.perf_counter()
        ml_lat = [_post(base + "/invocations", b, {}) for b in ml_bodies]
        mlflow_rps = len(ml_bodies) / (time.perf_counter() - t0)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)

    return ml_lat, mlflow_rps


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--households", type=int, default=20_000, help="panel size for the served model"
    )
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--clients", default="8,32", help="concurrent client levels ('' for none)")
    ap.add_argument(
        "--concurrent-requests",
        type=int,
        default=2000,
        help="single-household requests per level (a fifth as many 100-household requests)",
    )
    ap.add_argument("--no-mlflow", action="store_true", help="skip the mlflow models serve peer")
    args = ap.parse_args()
    levels = [int(x) for x in args.clients.split(",") if x.strip()]

    tmp = Path(tempfile.mkdtemp(prefix="riskml-bench-serve-"))
    env = {
        "MLFLOW_TRACKING_URI": f"sqlite:///{tmp}/mlflow.db",
        "RISKML_ARTIFACT_ROOT": str(tmp / "mlartifacts"),
        "RISKML_LEDGER_URL": f"sqlite:///{tmp}/ledger.db",
        "RISKML_MODEL_CACHE": str(tmp / "cache"),
        "RISKML_STATE_DIR": str(tmp / "state"),
    }
    os.environ.update(env)
    from riskml.data import schema
    from riskml.data.simulate import simulate_panel
    from riskml.service.access import add_key
    from riskml.training import registry
    from riskml.training.train import TrainConfig, train
    from tests.code.service_harness import start_server

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
        print(
            f"serve: single household explained: median {statistics.median(lat) * 1000:.2f} ms, "
            f"p99 {_pct(lat, 0.99) * 1000:.2f} ms ({riskml_rps:.0f} req/s); "
            f"100 per request: {batch_hps:,.0f} households/s; memory {rss:.0f} MB",
            flush=True,
        )
        concurrent = []
        n1, n100 = args.concurrent_requests, max(1, args.concurrent_requests // 5)
        one = [
            json.dumps({"households": [records[i % len(records)]], "explain": "all"}).encode()
            for i in range(n1)
        ]
        hundred = [
            json.dumps(
                {"households": [records[(i * 100 + j) % len(records)] for j in range(100)]}
            ).encode()
            for i in range(n100)
        ]
        for clients in levels:
            for per, bodies in ((1, one), (100, hundred)):
                r = _concurrent(url, bodies, clients, auth, srv.proc.pid)
                r["households_per_request"] = per
                r["households_per_s"] = r["requests_per_s"] * per
                concurrent.append(r)
                print(
                    f"serve: {clients} clients, {per} per request: "
                    f"{r['households_per_s']:,.0f} households/s ({r['requests_per_s']:,.0f} req/s), "
                    f"p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms; CPU cores: client "
                    f"{r['client_cpu_cores']:.2f}, server {r['server_cpu_cores']:.2f}; "
                    f"load {os.getloadavg()[0]:.2f}",
                    flush=True,
                )
    finally:
        srv.stop()

    # the baseline: MLflow's own server of the same registered model, scores only
    ml_lat, mlflow_rps = [], None
    if not args.no_mlflow:
        ml_lat, mlflow_rps = _mlflow_serve(env, tmp, records[: args.requests])
    figures = {
        "single_explained_median_ms": statistics.median(lat) * 1000,
        "single_explained_p99_ms": _pct(lat, 0.99) * 1000,
        "single_requests_per_s": riskml_rps,
        "batch100_households_per_s": batch_hps,
        "mlflow_serve_single_median_ms": statistics.median(ml_lat) * 1000 if ml_lat else None,
        "mlflow_serve_single_requests_per_s": mlflow_rps,
        "ratio_single_throughput_vs_mlflow_serve": riskml_rps / mlflow_rps if mlflow_rps else None,
        "serving_rss_mb": rss,
        "in_process_single_explained_median_ms": statistics.median(inproc) * 1000,
        "in_process_batch100_households_per_s": inproc_batch_hps,
        "requests": len(singles),
        "concurrent": concurrent,
        "load_average_end": os.getloadavg(),
    }
    print(
        f"serve: single household explained: median {figures['single_explained_median_ms']:.2f} ms, "
        f"p99 {figures['single_explained_p99_ms']:.2f} ms ({riskml_rps:.0f} req/s)"
    )
    print(f"serve: 100 per request, explaining the flagged: {batch_hps:,.0f} households/s")
    if mlflow_rps:
        print(
            f"serve: mlflow models serve (scores only) median "
            f"{figures['mlflow_serve_single_median_ms']:.2f} ms, {mlflow_rps:.0f} req/s; "
            f"riskml/mlflow single-record throughput ratio "
            f"{figures['ratio_single_throughput_vs_mlflow_serve']:.2f}x"
        )
    print(f"serve: memory of all server processes {rss:.0f} MB")
    print(
        f"serve: in process (no HTTP): single explained median "
        f"{figures['in_process_single_explained_median_ms']:.2f} ms, 100 per request "
        f"{inproc_batch_hps:,.0f} households/s"
    )
    for r in concurrent:
        print(
            f"serve: concurrent {r['clients']:>2} clients x {r['households_per_request']:>3}/request: "
            f"{r['households_per_s']:>8,.0f} households/s, p50 {r['p50_ms']:6.1f} ms, "
            f"p99 {r['p99_ms']:6.1f} ms (client CPU {r['client_cpu_cores']:.2f} cores, "
            f"server {r['server_cpu_cores']:.2f})"
        )
    print(f"wrote {write('serve', figures)}")


if __name__ == "__main__":
    main()
