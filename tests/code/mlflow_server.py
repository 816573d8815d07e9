"""A throwaway MLflow tracking server for the tests: ``mlflow server`` with its backend store in
a database of the PostgreSQL test cluster (``tests.code.postgres``) and its artifacts in a local
folder it serves itself (``--artifacts-destination``: clients read and write them over HTTP,
``mlflow-artifacts:/``), on a free loopback port, one worker; stopped by its process group.

MLflow makes its tables itself on first start (its own Alembic migrations, through the same
``postgresql+psycopg://`` URL as the ledger). The server's security middleware allows
``127.0.0.1`` and ``localhost`` by default, so no ``--allowed-hosts`` is needed on loopback.
MLflow's job runner (huey consumers for its GenAI jobs, seven processes) is switched off:
riskml runs no MLflow jobs.

``running(pg_server)`` (a context manager) and the fixture ``mlflow_server`` (module scope) give
a ``TrackingServer`` whose ``stop()`` a test may call itself (to take the registry away); it is
called again, harmlessly, at the end.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.code.postgres import free_port

MLFLOW = str(Path(sys.executable).parent / "mlflow")
START_TIMEOUT_S = 120  # first start migrates an empty database (~5 s) and imports MLflow's app


@dataclass
class TrackingServer:
    """A running ``mlflow server``: its URL, artifact root, database and process."""

    url: str
    artifacts: Path
    database: str
    process: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def healthy(self, timeout: float = 2.0) -> bool:
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=timeout) as resp:
                return resp.status == 200
        except (urllib.error.URLError, ConnectionError, OSError):
            return False

    def stop(self) -> None:
        """SIGTERM to the server's process group (uvicorn and its worker), SIGKILL if it lingers."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


def start(pg_server, root: Path) -> TrackingServer:
    """A new database on ``pg_server`` and an ``mlflow server`` on it, artifacts under ``root``."""
    database = "mlflow_" + secrets.token_hex(4)
    pg_server.execute(f'CREATE DATABASE "{database}"')
    artifacts = root / "artifacts"
    artifacts.mkdir(parents=True)
    port = free_port()
    log_path = root / "mlflow-server.log"
    env = {
        **os.environ,
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
        # MLflow's job runner (seven huey consumers, for its GenAI jobs): riskml runs none
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }
    env.pop("MLFLOW_TRACKING_URI", None)  # the server's store is the flag below, nothing else
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [MLFLOW, "server", "--backend-store-uri", pg_server.url(database),
             "--artifacts-destination", str(artifacts), "--serve-artifacts",
             "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    server = TrackingServer(f"http://127.0.0.1:{port}", artifacts, database, process, log_path)
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.healthy():
        if process.poll() is not None or time.monotonic() > deadline:
            server.stop()
            raise RuntimeError(f"mlflow server did not start:\n{server.log()[-3000:]}")
        time.sleep(0.3)
    return server


@contextmanager
def running(pg_server) -> Iterator[TrackingServer]:
    """A tracking server on ``pg_server`` for the ``with`` block; stopped and removed after it."""
    root = Path(tempfile.mkdtemp(prefix="riskml-mlflow-"))
    server = start(pg_server, root)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def mlflow_server(pg_server):
    """An MLflow tracking server on PostgreSQL with a local artifact root, for one module."""
    with running(pg_server) as server:
        yield server
