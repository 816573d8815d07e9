"""A throwaway PostgreSQL server for the tests: Debian's binaries (``make postgres`` installs
them), a cluster initialised in a temporary folder, listening on a free loopback port only,
stopped by its pid at the end of the session.

``initdb`` and ``postgres`` refuse to run as root: under root (CI) the cluster belongs to the
``postgres`` system user the Debian package creates and the server runs as that user
(``subprocess`` ``user=``, so the pid is the server's own). Password authentication on TCP
(scram-sha-256), as in production. ``fsync = off``: the server is never killed by a test (the
crash tests kill the service or the batch run), so durability across a power cut is not
what is tested here, and creating a database per test is ~10x faster.

Fixtures (``tests/code/conftest.py`` imports them): ``pg_server`` (session), ``pg_url`` (a new
database per test at the newest revision, owned by the superuser), ``pg_empty_url`` (a new
empty one) and ``ledger_url`` (parametrised: a SQLite file and a PostgreSQL database).
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

SUPERUSER = "riskml_admin"
START_TIMEOUT_S = 30


def bindir() -> Path | None:
    """The newest installed PostgreSQL server's binaries (Debian's layout), if any."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    return Path(found[-1]).parent if found else None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PgServer:
    """A running cluster: where it listens and how the superuser logs in."""

    root: Path
    port: int
    password: str
    process: subprocess.Popen
    user: str | None  # the system user the server runs as (None: the current one)

    def url(
        self, database: str = "postgres", role: str = SUPERUSER, password: str | None = None
    ) -> str:
        pw = self.password if password is None else password
        return f"postgresql+psycopg://{role}:{pw}@127.0.0.1:{self.port}/{database}"

    def execute(self, sql: str, database: str = "postgres") -> None:
        """Run statements as the superuser (autocommit: CREATE DATABASE cannot be in a transaction)."""
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", port=self.port, user=SUPERUSER, password=self.password,
            dbname=database, autocommit=True,
        ) as conn:  # fmt: skip
            conn.execute(sql)

    def create_database(self, template: str | None = None) -> str:
        """A new database (a copy of ``template``, or empty), by name."""
        name = "t_" + secrets.token_hex(6)
        self.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        return name

    def stop(self) -> None:
        """Fast shutdown (SIGINT) of the postmaster by its pid; SIGKILL if it does not stop."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


def start(root: Path) -> PgServer:
    """initdb a cluster under ``root`` and start its server on a free loopback port."""
    bins = bindir()
    if bins is None:
        raise FileNotFoundError("no PostgreSQL server binaries (/usr/lib/postgresql/*/bin)")
    user = "postgres" if os.geteuid() == 0 else None
    data, sockets = root / "data", root / "sockets"
    sockets.mkdir(parents=True)
    password = secrets.token_urlsafe(16)
    pwfile = root / "pw"
    pwfile.write_text(password + "\n")
    if user is not None:
        info = pwd.getpwnam(user)
        for path in (root, sockets, pwfile):
            os.chown(path, info.pw_uid, info.pw_gid)
    env = {"PATH": os.environ.get("PATH", ""), "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8"}
    subprocess.run(
        [str(bins / "initdb"), "-D", str(data), "-U", SUPERUSER, f"--pwfile={pwfile}",
         "--auth-host=scram-sha-256", "--auth-local=peer", "-E", "UTF8", "--no-sync",
         "--no-instructions"],
        user=user, cwd=root, env=env, check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    pwfile.unlink()
    port = free_port()
    log = open(root / "server.log", "ab")  # noqa: SIM115 (kept open while the server runs)
    process = subprocess.Popen(
        [str(bins / "postgres"), "-D", str(data), "-p", str(port), "-k", str(sockets),
         "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "full_page_writes=off",
         "-c", "max_connections=200", "-c", "shared_buffers=64MB"],
        user=user, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    log.close()
    server = PgServer(root=root, port=port, password=password, process=process, user=user)
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            server.execute("SELECT 1")
            return server
        except Exception:
            if process.poll() is not None or time.monotonic() > deadline:
                server.stop()
                tail = (root / "server.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"PostgreSQL did not start:\n{tail}") from None
            time.sleep(0.1)


TEMPLATE = "riskml_migrated"


@pytest.fixture(scope="session")
def pg_server():
    """The session's server, with a database ``TEMPLATE`` migrated to the newest revision
    (``riskml.store.engine.create_schema``, as a ledger opening it does)."""
    if bindir() is None:
        pytest.skip("PostgreSQL server binaries not installed (`make postgres`)")
    root = Path(tempfile.mkdtemp(prefix="riskml-pg-"))
    server = start(root)
    try:
        from riskml.store.ledger import Ledger

        server.execute(f'CREATE DATABASE "{TEMPLATE}"')
        Ledger(server.url(TEMPLATE)).close()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pg_url(pg_server):
    """A new database for one test, at the newest revision (a copy of the migrated template),
    as the superuser's URL."""
    return pg_server.url(pg_server.create_database(TEMPLATE))


@pytest.fixture
def pg_empty_url(pg_server):
    """A new empty database (no schema) for one test, as the superuser's URL."""
    return pg_server.url(pg_server.create_database())


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_url(request, tmp_path):
    """A new ledger's URL: a SQLite file, then a PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    return request.getfixturevalue("pg_url")
