"""The production registry path on a real MLflow tracking server (``tests.code.mlflow_server``:
PostgreSQL backend, local artifact root served over HTTP): ``riskml train`` registers over HTTP
from a client folder that stays empty, ``riskml promote`` moves the champion, the service loads
``models:/household-risk@champion`` from the server and scores as the model does locally; with
the server stopped, the service starts from its cached copy, says so, and scores the same."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
import yaml

from riskml.data import schema
from tests.code.mlflow_server import running
from tests.code.service_harness import start_server
from tests.conftest import ARTIFACTS, ROOT, SAMPLE

pytestmark = pytest.mark.slow

RISKML = str(Path(sys.executable).parent / "riskml")
NAME = "household-risk"


@pytest.fixture(scope="module")
def mlflow_server(pg_server):
    with running(pg_server) as server:
        yield server


@pytest.fixture(scope="module")
def work():
    """The module's folder (not pytest's tmp_path: concurrent pytest runs rotate those away)."""
    path = Path(tempfile.mkdtemp(prefix="riskml-mlflow-client-"))
    yield path
    if os.environ.get("RISKML_KEEP_TEST_STATE") != "1":
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def small_yaml(work) -> Path:
    """training/default.yaml with the code tests' small settings (``small_config``)."""
    raw = yaml.safe_load((ROOT / "training" / "default.yaml").read_text())
    raw["name"] = "small"
    raw["model"]["num_boost_round"] = 300
    raw["model"]["params"].update(min_data_in_leaf=40, learning_rate=0.08)
    raw["data"]["min_positives"] = 10
    if "evaluation" in raw:  # one rolling fold (the final split), a few bootstrap draws
        raw["evaluation"].update(folds=1, bootstrap_resamples=20)
    path = work / "small.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture(scope="module")
def client_env(mlflow_server, work) -> dict[str, str]:
    """A client of the server: its tracking URI, its own state folder, no artifact root of its own."""
    env = {k: v for k, v in os.environ.items() if k != "RISKML_ARTIFACT_ROOT"}
    env.update(MLFLOW_TRACKING_URI=mlflow_server.url, RISKML_STATE_DIR=str(work / "client-state"))
    return env


def _riskml(args: list[str], env: dict[str, str], cwd: Path) -> str:
    import subprocess

    proc = subprocess.run(
        [RISKML, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


@pytest.fixture(scope="module")
def client(mlflow_server):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=mlflow_server.url, registry_uri=mlflow_server.url)


@pytest.fixture(scope="module")
def trained_on_server(mlflow_server, client_env, small_yaml, work, client):
    """``riskml train`` run from an empty client folder against the server: version 1."""
    cwd = work / "client-cwd"
    cwd.mkdir()
    out = _riskml(["train", "--data", str(SAMPLE), "--config", str(small_yaml)], client_env, cwd)
    return {"cwd": cwd, "output": out}


def test_riskml_makes_its_experiment_with_the_server_s_artifact_root(
    mlflow_server, client, monkeypatch
):
    import mlflow

    from riskml.training import registry

    before = mlflow.get_tracking_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
    monkeypatch.delenv("RISKML_ARTIFACT_ROOT", raising=False)
    try:
        experiment_id = registry.ensure_experiment("riskml-experiment-location")
    finally:
        mlflow.set_tracking_uri(before)
    location = client.get_experiment(experiment_id).artifact_location
    assert location.startswith("mlflow-artifacts:/"), location


def test_train_registers_over_http_into_postgres_and_the_server_s_artifact_root(
    trained_on_server,
    mlflow_server,
    client,
    pg_server,
    work,
):
    v1 = client.get_model_version_by_alias(NAME, "champion")
    assert v1.version == "1"
    assert {"champion", "challenger"} <= set(v1.aliases)
    run = client.get_run(v1.run_id)
    assert run.info.artifact_uri.startswith("mlflow-artifacts:/")
    assert "test_roc_auc" in run.data.metrics
    # the registry and the runs are rows of the server's PostgreSQL database
    engine = sa.create_engine(pg_server.url(mlflow_server.database))
    with engine.connect() as conn:
        versions = conn.execute(sa.text("SELECT name, version FROM model_versions")).all()
        runs = conn.execute(sa.text("SELECT run_uuid FROM runs")).scalars().all()
    engine.dispose()
    assert versions == [(NAME, 1)] and v1.run_id in runs
    # the artifacts (model, card, SHAP plots) are in the server's local root, under the run
    root = mlflow_server.artifacts
    assert len(list(root.rglob("risk_model/booster.txt"))) == 1
    cards = list(root.rglob("model_card.md"))
    assert len(cards) == 1 and v1.run_id in cards[0].parts
    # and nothing in the client's folder nor its state folder (no mlruns, mlartifacts, mlflow.db)
    assert list(trained_on_server["cwd"].iterdir()) == []
    state = work / "client-state"
    assert not list(state.rglob("mlartifacts")) and not list(state.rglob("mlflow.db"))


def test_promote_moves_the_champion_over_http(trained_on_server, client, client_env, small_yaml):
    # a second version of the same run's model, as challenger: the gate compares the two
    # (loaded over HTTP from the server) on the latest labelled period and passes them
    v1 = client.get_model_version_by_alias(NAME, "champion")
    model_id = v1.source.removeprefix("models:/")  # the logged model (MLflow 3): m-...
    v2 = client.create_model_version(NAME, v1.source, run_id=v1.run_id, model_id=model_id)
    client.set_registered_model_alias(NAME, "challenger", v2.version)
    out = _riskml(
        ["promote", "--data", str(SAMPLE), "--config", str(small_yaml)],
        client_env, trained_on_server["cwd"],
    )  # fmt: skip
    assert "champion" in out
    champion = client.get_model_version_by_alias(NAME, "champion")
    assert champion.version == v2.version == "2"
    assert "passed the gate" in champion.tags["riskml.promotion"]
    assert list(trained_on_server["cwd"].iterdir()) == []


@pytest.fixture(scope="module")
def records() -> list[dict]:
    """Fifty households of the sample panel's latest period (no previous record in the ledger)."""
    panel = pd.read_parquet(SAMPLE)
    latest = panel[panel["period"] == panel["period"].max()]
    return schema.to_json_records(latest[list(schema.FIELD_NAMES)].head(50))


@pytest.fixture(scope="module")
def local_scores(mlflow_server, client, records):
    """The champion's scores computed here, from its folder in the server's artifact root."""
    from riskml.model.risk_model import RiskModel

    champion = client.get_model_version_by_alias(NAME, "champion")
    model_id = champion.source.removeprefix("models:/")
    (folder,) = mlflow_server.artifacts.rglob(f"{model_id}/artifacts/artifacts/risk_model")
    frame = pd.DataFrame(records)
    return dict(
        zip(frame["household_id"], RiskModel.load(folder).score_records(frame), strict=True)
    )


@pytest.fixture(scope="module")
def keys(work) -> dict[str, str]:
    from riskml.service.access import add_key

    path = work / "api_keys.yaml"
    return {
        "path": str(path),
        "scorer": add_key(path, "county-platform", "scorer"),
        "admin": add_key(path, "ops", "admin"),
    }


@pytest.fixture(scope="module")
def service_env(mlflow_server, work, keys) -> dict[str, str]:
    """The service on the server's champion, with its own ledger, cache and state folder."""
    return {
        "MLFLOW_TRACKING_URI": mlflow_server.url,
        "RISKML_MODEL_ALIAS": "champion",
        "RISKML_API_KEYS_FILE": keys["path"],
        "RISKML_LEDGER_URL": f"sqlite:///{work / 'service-ledger.db'}",
        "RISKML_MODEL_CACHE": str(work / "model-cache"),
        "RISKML_OPERATED_LINES_FILE": str(work / "service-lines.csv"),
        "RISKML_STATE_DIR": str(work / "service-state"),
        "RISKML_REGISTRY_TIMEOUT": "2",
    }


def _serve(env: dict[str, str], log: str):
    server = start_server(env, ARTIFACTS / log)
    deadline = time.time() + 60
    while time.time() < deadline and server.request("GET", "/readyz")[0] != 200:
        time.sleep(0.3)
    return server


def _scores(server, keys, records) -> dict[str, float]:
    status, body = server.request("POST", "/score", {"households": records}, keys["scorer"])
    assert status == 200, body
    assert {r["model_version"] for r in body["results"]} == {"2"}
    return {r["household_id"]: r["score"] for r in body["results"]}


def test_the_service_loads_the_champion_over_http_and_scores_as_the_model_does_here(
    trained_on_server, service_env, keys, records, local_scores
):
    server = _serve(service_env, "service-mlflow-server.log")
    try:
        status, body = server.request("GET", "/readyz", token=keys["admin"])
        assert status == 200, body
        assert body["model"] == {"name": NAME, "version": "2", "alias": "champion",
                                 "source": "registry"}  # fmt: skip
        assert "warning" not in body
        served = _scores(server, keys, records)
    finally:
        server.stop()
    assert served.keys() == local_scores.keys()
    for hid, score in served.items():
        assert score == pytest.approx(local_scores[hid], abs=1e-9), hid
    info = Path(service_env["RISKML_MODEL_CACHE"]) / NAME / "champion" / "info.json"
    assert '"version": "2"' in info.read_text()


def test_with_the_server_down_the_service_starts_from_its_cache_and_scores_the_same(
    mlflow_server, service_env, keys, records, local_scores
):
    mlflow_server.stop()
    assert not mlflow_server.healthy()
    t0 = time.monotonic()
    server = _serve(service_env, "service-mlflow-server-down.log")
    try:
        started = time.monotonic() - t0
        status, body = server.request("GET", "/readyz", token=keys["admin"])
        assert status == 200, body
        assert body["model"] == {"name": NAME, "version": "2", "alias": "champion",
                                 "source": "cache"}  # fmt: skip
        assert "registry unavailable" in body["warning"]
        assert f"tracking server {mlflow_server.url} not answering" in body["warning"]
        status, info = server.request("GET", "/model", token=keys["scorer"])
        assert status == 200 and info["source"] == "cache" and info["version"] == "2"
        served = _scores(server, keys, records)
        log = server.log()
    finally:
        server.stop()
    assert served.keys() == local_scores.keys()
    for hid, score in served.items():
        assert score == pytest.approx(local_scores[hid], abs=1e-9), hid
    assert "serving the cached copy of household-risk v2" in log
    # the probe gives up after RISKML_REGISTRY_TIMEOUT (2 s): the start is the service's usual
    # few seconds (more on a loaded machine), not MLflow's ~4 minutes of retries
    assert started < 90, started
