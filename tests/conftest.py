"""Shared fixtures: an isolated state folder and MLflow store per test session, a sample panel, a trained model."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

_SESSION_DIR = Path(tempfile.mkdtemp(prefix="riskml-tests-"))
# Before anything imports riskml.config, mlflow or bentoml: no telemetry, and a
# private tracking store and state folder for this test session.
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ["BENTOML_DO_NOT_TRACK"] = "true"
os.environ["DO_NOT_TRACK"] = "true"
os.environ["RISKML_STATE_DIR"] = str(_SESSION_DIR / "state")
os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{_SESSION_DIR / 'mlflow.db'}"
os.environ["RISKML_ARTIFACT_ROOT"] = str(_SESSION_DIR / "mlartifacts")
os.environ["RISKML_LEDGER_URL"] = f"sqlite:///{_SESSION_DIR / 'ledger.db'}"
os.environ.setdefault("BENTOML_HOME", str(_SESSION_DIR / "bentoml"))
# no Spark class-data archive (~180 MB, written as the first local JVM exits) in test runs
os.environ.setdefault("RISKML_SPARK_CDS", "0")

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "data" / "sample" / "panel.parquet"
ARTIFACTS = ROOT / "tests" / "artifacts"


@pytest.fixture(scope="session")
def session_dir() -> Path:
    return _SESSION_DIR


def pytest_sessionfinish(session, exitstatus):
    """Remove the session's state folder (kept with RISKML_KEEP_TEST_STATE=1, for debugging)."""
    if os.environ.get("RISKML_KEEP_TEST_STATE") == "1":
        print(f"\ntest state kept in {_SESSION_DIR}")
        return
    shutil.rmtree(_SESSION_DIR, ignore_errors=True)


@pytest.fixture(scope="session")
def lines():
    from riskml.data.reference import default_lines

    return default_lines()


@pytest.fixture(scope="session")
def sample_panel():
    import pandas as pd

    return pd.read_parquet(SAMPLE)


@pytest.fixture(scope="session")
def small_config():
    from riskml.training.train import TrainConfig

    cfg = TrainConfig.from_yaml(ROOT / "training" / "default.yaml")
    cfg.num_boost_round = 300
    cfg.params = {**cfg.params, "min_data_in_leaf": 40, "learning_rate": 0.08}
    cfg.min_positives = 10
    return cfg


@pytest.fixture(scope="session")
def trained(sample_panel, small_config, lines):
    """A model trained on the sample panel (held-out latest period), shared by the model tests."""
    from riskml.training.train import train

    return train(sample_panel, small_config, lines)


@pytest.fixture(scope="session")
def registered(trained, small_config):
    """The trained model logged and registered in the session's MLflow store (first version: champion)."""
    from riskml.training import registry

    return registry.log_training_run(trained, small_config, data_path=SAMPLE)
