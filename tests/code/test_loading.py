"""The served model's loading (``riskml.service.loading``): whether the registry can be used now,
asked quickly of a tracking server (``/health``) before MLflow's minutes of retries."""

from __future__ import annotations

import http.server
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from riskml.service import loading


@contextmanager
def http_server(status: int | None):
    """A loopback HTTP server answering every GET with ``status`` (None: accepts, never answers)."""
    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            seen.append(self.path)
            if status is None:
                time.sleep(5)
                return
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"OK")

        def log_message(self, *args):  # quiet
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens on it once the socket is closed


def test_health_url_keeps_the_prefix_and_drops_the_password():
    assert loading.health_url("http://127.0.0.1:5000") == "http://127.0.0.1:5000/health"
    assert loading.health_url("https://u:pw@mlflow.internal/mlflow/") == (
        "https://mlflow.internal/mlflow/health"
    )
    assert loading.health_url("http://[::1]:5000/") == "http://[::1]:5000/health"


def test_a_sqlite_store_is_there_or_not(tmp_path: Path):
    db = tmp_path / "mlflow.db"
    assert loading.registry_unreachable(f"sqlite:///{db}") == f"no tracking store at sqlite:///{db}"
    db.touch()
    assert loading.registry_unreachable(f"sqlite:///{db}") is None
    assert loading.registry_unreachable("databricks") is None  # not asked: left to MLflow


@pytest.mark.parametrize("status", [200, 401, 503])
def test_a_server_that_answers_is_used_whatever_it_says(status):
    with http_server(status) as (url, seen):
        assert loading.registry_unreachable(url + "/", timeout=2) is None
    assert seen == ["/health"]


def test_a_refused_connection_is_unreachable_at_once():
    url = f"http://riskml:secret-pw@127.0.0.1:{closed_port()}"
    t0 = time.monotonic()
    reason = loading.registry_unreachable(url, timeout=2)
    assert time.monotonic() - t0 < 1.5
    assert reason is not None and "not answering" in reason and "ConnectionRefusedError" in reason
    assert "secret-pw" not in reason and "riskml:***@127.0.0.1" in reason


def test_a_server_that_does_not_answer_is_given_up_after_the_timeout(monkeypatch):
    monkeypatch.setenv("RISKML_REGISTRY_TIMEOUT", "0.5")
    with http_server(None) as (url, _):
        t0 = time.monotonic()
        reason = loading.registry_unreachable(url)
        waited = time.monotonic() - t0
    assert reason is not None and "not answering" in reason and "timed out" in reason
    assert 0.4 < waited < 3


@pytest.mark.parametrize("raw", ["soon", "0", "-1"])
def test_a_bad_timeout_is_named(monkeypatch, raw):
    monkeypatch.setenv("RISKML_REGISTRY_TIMEOUT", raw)
    with pytest.raises(ValueError, match="RISKML_REGISTRY_TIMEOUT"):
        loading.probe_timeout()


def test_no_server_and_no_cache_is_a_quick_clear_error(tmp_path: Path):
    settings = loading.Settings(
        tracking_uri=f"http://127.0.0.1:{closed_port()}", cache_dir=tmp_path / "cache"
    )
    t0 = time.monotonic()
    with pytest.raises(
        RuntimeError, match="registry unavailable .tracking server .* not answering"
    ):
        loading.fetch_model(settings)
    assert time.monotonic() - t0 < 5  # not MLflow's ~4 minutes of retries
