"""Start and stop a real `bentoml serve` of riskml.service.bento on a free loopback port."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
BENTOML = str(Path(sys.executable).parent / "bentoml")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    url: str
    proc: subprocess.Popen
    log_path: Path

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        token: str | None = None,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        status, answer, _ = self.exchange(method, path, body, token, raw, headers)
        return status, answer

    def exchange(
        self,
        method: str,
        path: str,
        body: Any = None,
        token: str | None = None,
        raw: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any, dict[str, str]]:
        """``request`` with request headers, answering (status, body, response headers)."""
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        if token:
            req.add_header("Authorization", f"Bearer {token}")
        for name, value in (headers or {}).items():
            req.add_header(name, value)
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                text = resp.read().decode()
                got = {k.lower(): v for k, v in resp.headers.items()}
                return resp.status, json.loads(text) if text.strip() else None, got
        except urllib.error.HTTPError as err:
            text = err.read().decode()
            got = {k.lower(): v for k, v in err.headers.items()}
            try:
                return err.code, json.loads(text), got
            except json.JSONDecodeError:
                return err.code, text, got

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


def start_server(env_overrides: dict[str, str], log_path: Path, timeout: float = 120.0) -> Server:
    """Start the service and wait until /healthz answers (ready or not: the caller checks /readyz)."""
    port = free_port()
    env = dict(os.environ)
    env.update(env_overrides)
    env.update(
        {
            "RISKML_PORT": str(port),
            "BENTOML_DO_NOT_TRACK": "true",
            "MLFLOW_DISABLE_TELEMETRY": "true",
        }
    )
    log_path.parent.mkdir(parents=True, exist_ok=True)
    fh = open(log_path, "w")  # noqa: SIM115 - lives as long as the server
    proc = subprocess.Popen(
        [
            BENTOML,
            "serve",
            "riskml.service.bento:HouseholdRisk",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],  # fmt: skip
        cwd=ROOT,
        env=env,
        stdout=fh,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    server = Server(f"http://127.0.0.1:{port}", proc, log_path)
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"bentoml serve exited with {proc.returncode}:\n{server.log()[-4000:]}"
            )
        try:
            status, _ = server.request("GET", "/healthz")
            if status == 200:
                return server
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        time.sleep(0.3)
    server.stop()
    raise RuntimeError(
        f"bentoml serve did not answer within {timeout:.0f} s:\n{server.log()[-4000:]}"
    )
