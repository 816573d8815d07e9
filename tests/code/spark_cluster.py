"""A Spark standalone cluster for the tests: one master and one worker on loopback.

Started from the launch scripts that ship with pyspark (``bin/spark-class`` running
the standalone ``Master`` and ``Worker`` classes) of a given Python environment, on
free loopback ports, the worker's Python workers pinned to that environment's
interpreter; stopped by their process groups' pids. ``SparkCluster.url`` is the
master URL to pass as ``--master``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spark_home(python: Path) -> Path:
    """The pyspark package folder of the environment of ``python`` (its SPARK_HOME)."""
    out = subprocess.run(
        [str(python), "-c", "import pyspark, os; print(os.path.dirname(pyspark.__file__))"],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return Path(out.stdout.strip())


@dataclass
class SparkCluster:
    python: Path  # the interpreter of the environment whose pyspark runs master and worker
    folder: Path  # logs and the worker's work folder
    cores: int = 2
    memory: str = "2g"
    port: int = field(default_factory=free_port)
    ui_port: int = field(default_factory=free_port)
    processes: list[subprocess.Popen] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"spark://127.0.0.1:{self.port}"

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """``base`` (default: this process's environment) with the cluster's Spark settings."""
        home = spark_home(self.python)
        base = os.environ if base is None else base
        env = {k: v for k, v in base.items() if not k.startswith(("SPARK_", "PYSPARK_"))}
        env.update(
            SPARK_HOME=str(home),
            SPARK_LOCAL_IP="127.0.0.1",
            SPARK_LOG_DIR=str(self.folder / "logs"),
            PYSPARK_PYTHON=str(self.python),
            PATH=f"{self.python.parent}:{env.get('PATH', '')}",
        )
        return env

    def _start(self, name: str, *args: str) -> None:
        env = self.env()
        log = open(self.folder / f"{name}.log", "w")  # noqa: SIM115 - the process keeps it
        proc = subprocess.Popen(
            [str(Path(env["SPARK_HOME"]) / "bin" / "spark-class"), *args],
            env=env, cwd=self.folder, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        self.processes.append(proc)

    def state(self) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.ui_port}/json/", timeout=2) as r:
            return json.loads(r.read())

    def log_tail(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text()[-2000:]}" for p in sorted(self.folder.glob("*.log"))
        )

    def start(self, timeout: float = 120.0) -> SparkCluster:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._start(
            "master", "org.apache.spark.deploy.master.Master",
            "--host", "127.0.0.1", "--port", str(self.port), "--webui-port", str(self.ui_port),
        )  # fmt: skip
        self._wait(lambda s: s.get("status") == "ALIVE", timeout, "the master")
        self._start(
            "worker", "org.apache.spark.deploy.worker.Worker", self.url,
            "--host", "127.0.0.1", "--cores", str(self.cores), "--memory", self.memory,
            "--webui-port", str(free_port()), "--work-dir", str(self.folder / "work"),
        )  # fmt: skip
        self._wait(
            lambda s: any(w.get("state") == "ALIVE" for w in s.get("workers", [])),
            timeout,
            "a worker registered with the master",
        )
        return self

    def _wait(self, ready, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while True:
            for p in self.processes:
                if p.poll() is not None:
                    raise RuntimeError(
                        f"a Spark process exited ({p.returncode}):\n{self.log_tail()}"
                    )
            try:
                if ready(self.state()):
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not come up in {timeout:.0f} s:\n{self.log_tail()}")
            time.sleep(0.5)

    def stop(self) -> None:
        for p in reversed(self.processes):  # the worker first, then the master
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait()
        self.processes.clear()
