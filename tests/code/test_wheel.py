"""Code test: the wheel alone runs the main job (simulate, train, score, serve) outside the checkout.

Builds the wheel with uv, installs it with the locked dependencies (`uv export`) into a
fresh virtual environment in a temporary folder, and runs the installed `riskml` from a
working folder that holds nothing of the repository but a training config, so the
package data (reference lines, default rules, page templates) must come from the wheel.
The same environment is the Python of a Spark standalone cluster (a master and a worker
on loopback, `tests/code/spark_cluster.py`): `riskml score --engine spark --master
spark://...` runs there and equals the local engine.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: int = 600) -> str:
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{cmd[:3]} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    uv = shutil.which("uv")
    assert uv, "uv must be on the PATH (`make test` puts the one it installs there)"
    base = tmp_path_factory.mktemp("wheel")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("RISKML_", "MLFLOW_", "VIRTUAL_ENV"))
    }
    env.update(MLFLOW_DISABLE_TELEMETRY="true", BENTOML_DO_NOT_TRACK="true", DO_NOT_TRACK="true")
    _run([uv, "build", "--wheel", "--out-dir", str(base / "dist")], ROOT, env)
    (wheel,) = (base / "dist").glob("riskml-*.whl")
    reqs = base / "requirements.txt"
    _run(
        [uv, "export", "--frozen", "--no-dev", "--no-emit-project", "--no-hashes",
         "--format", "requirements-txt", "-o", str(reqs)],
        ROOT, env,
    )  # fmt: skip
    venv = base / "env"
    _run([uv, "venv", "--python", "3.11", str(venv)], base, env)
    _run([uv, "pip", "install", "--python", str(venv / "bin" / "python"), "-r", str(reqs), str(wheel)], base, env)  # fmt: skip
    work = base / "work"
    work.mkdir()
    shutil.copy(ROOT / "training" / "default.yaml", work / "train.yaml")
    env["PATH"] = f"{venv / 'bin'}:{env['PATH']}"
    env["BENTOML_HOME"] = str(base / "bentoml")
    return venv / "bin" / "riskml", work, env


@pytest.fixture(scope="module")
def trained(installed):
    """The installed riskml has simulated, validated and trained (registered) in its folder."""
    riskml, work, env = installed
    _run([str(riskml), "simulate", "--households", "1500", "--years", "5", "--seed", "3", "--out", "panel.parquet"], work, env)  # fmt: skip
    _run([str(riskml), "validate", "panel.parquet"], work, env)
    _run([str(riskml), "train", "--config", "train.yaml", "--data", "panel.parquet"], work, env)
    return installed


def test_installed_wheel_simulates_trains_scores_and_serves(trained):
    riskml, work, env = trained
    import riskml as checkout

    # nothing of the checkout on the installed interpreter's path
    where = _run([str(riskml.parent / "python"), "-c", "import riskml, riskml.config as c; print(riskml.__file__); print(c.POLICY_RULES)"], work, env)  # fmt: skip
    assert str(ROOT) not in where and "site-packages" in where, where
    assert Path(checkout.__file__).is_relative_to(ROOT)

    out = _run([str(riskml), "score", "panel.parquet", "--out", "decisions.parquet", "--workers", "1"], work, env)  # fmt: skip
    assert (work / "decisions.parquet").exists(), out
    assert (work / ".riskml" / "mlflow.db").exists()  # the state folder is the working folder's

    token = _run([str(riskml), "keys", "add", "--id", "wheel-test", "--role", "scorer"], work, env).strip().splitlines()[-1]  # fmt: skip
    port = _free_port()
    log = open(work / "serve.log", "w")  # noqa: SIM115 - closed below
    server = subprocess.Popen(
        [str(riskml), "serve", "--port", str(port)], cwd=work, env=env, stdout=log,
        stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, (work / "serve.log").read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, (work / "serve.log").read_text()[-3000:]
            time.sleep(1)
        import pandas as pd

        from riskml.data import schema

        records = schema.to_json_records(pd.read_parquet(work / "panel.parquet").head(3))
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/score",
            data=json.dumps({"households": records}).encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=30) as r:
            body = json.loads(r.read())
        assert [x["household_id"] for x in body["results"]] == [x["household_id"] for x in records]
        assert all(0 <= x["score"] <= 1 and x["rules_version"] for x in body["results"])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/cw/login", timeout=10) as r:
            page = r.read().decode()
        assert (
            "<form" in page and "登录" in page
        )  # the login page, rendered from the wheel's templates
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


def test_spark_cluster_on_the_installed_wheel_equals_the_local_engine(trained, tmp_path):
    """A standalone master and worker on loopback; driver and executors run the wheel."""
    import pandas as pd

    from tests.code.spark_cluster import SparkCluster

    riskml, work, env = trained
    python = riskml.parent / "python"
    cluster = SparkCluster(python=python, folder=tmp_path / "cluster").start()
    try:
        run_env = cluster.env(base=env)  # the installed riskml's environment, Spark's settings
        # the last two waves: previous periods within the file, on two executor cores
        panel = pd.read_parquet(work / "panel.parquet")
        last = sorted(panel["period"].unique())[-2:]
        panel[panel["period"].isin(last)].to_parquet(work / "last2.parquet", index=False)
        _run([str(riskml), "score", "last2.parquet", "--out", "local.parquet", "--workers", "1"], work, env)  # fmt: skip
        out = _run([str(riskml), "score", "last2.parquet", "--out", "on_cluster", "--engine", "spark", "--master", cluster.url], work, run_env)  # fmt: skip
        # the application ran on the cluster (not in local mode), and it finished
        apps = cluster.state().get("completedapps", []) + cluster.state().get("activeapps", [])
        assert apps, f"no application reached the master:\n{out}\n{cluster.log_tail()}"
        # the executors imported riskml from the wheel's environment, not from the checkout
        logs = list((tmp_path / "cluster" / "work").glob("app-*/*/stderr"))
        assert logs, f"no executor ran on the worker:\n{cluster.log_tail()}"
        assert not any(str(ROOT / "src") in p.read_text() for p in logs)
        # the regional aggregation on the same cluster equals the local one
        _run([str(riskml), "regions", "local.parquet", "--no-cases", "--out", "regions.local.csv"], work, env)  # fmt: skip
        _run([str(riskml), "regions", "local.parquet", "--no-cases", "--out", "regions.spark.csv", "--engine", "spark", "--master", cluster.url], work, run_env)  # fmt: skip
    finally:
        cluster.stop()
    here = pd.read_csv(work / "regions.local.csv", dtype=str)
    there = pd.read_csv(work / "regions.spark.csv", dtype=str)
    assert len(here) == len(there) > 0 and list(here.columns) == list(there.columns)
    order = ["level", "code", "period"]  # one row each
    here = here.sort_values(order, ignore_index=True)
    there = there.sort_values(order, ignore_index=True)
    for col in here.columns:
        x, y = pd.to_numeric(here[col], errors="coerce"), pd.to_numeric(there[col], errors="coerce")
        if x.notna().any():  # sums may differ in the last bits with the order of addition
            same = ((x - y).abs() <= 1e-9 * (1 + x.abs())) | (x.isna() & y.isna())
            assert same.all(), col
        else:
            assert here[col].fillna("").tolist() == there[col].fillna("").tolist(), col
    key = ["household_id", "period"]
    a = pd.read_parquet(work / "local.parquet").sort_values(key, ignore_index=True)
    b = pd.read_parquet(work / "on_cluster").sort_values(key, ignore_index=True)
    assert len(a) == len(b) > 0
    from riskml.scoring import batch

    for col in (c for c in batch.OUTPUT_COLUMNS if c != "decision_id"):  # ids are random
        assert a[col].astype(str).tolist() == b[col].astype(str).tolist(), f"column {col} differs"
