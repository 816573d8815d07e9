"""The asset model's disk cache (``riskml.service.model_cache``): loaded from the session's
file-based MLflow store it is copied to the service's cache; with the store gone the service
starts from that copy (``source: cache``, a warning naming the store, no household data) and
scores; with neither, the asset route says why."""

from __future__ import annotations

import logging
import os

import pytest

from riskml.service import assets_api, model_cache
from riskml.service.core import ScoringService, Settings

MODEL = "asset-risk-cache-test"


@pytest.fixture(scope="module")
def asset_model():
    from riskml.assets import model_registry as mr
    from riskml.assets.simulate import SimConfig, simulate
    from riskml.assets.train import AssetTrainConfig, train

    panel = simulate(SimConfig(assets=800, seed=7)).panel
    cfg = AssetTrainConfig.from_yaml()
    cfg.params = {**cfg.params, "num_leaves": 7, "learning_rate": 0.2, "min_data_in_leaf": 40,
                  "monotone_constraints_method": "basic", "num_threads": 1}  # fmt: skip
    cfg.num_boost_round, cfg.early_stopping_rounds = 20, 10
    cfg.model_name, cfg.experiment = MODEL, MODEL
    mr.log_training_run(train(panel, cfg), cfg)
    return panel


def _settings(tmp, tracking_uri: str) -> Settings:
    return Settings(tracking_uri=tracking_uri, cache_dir=tmp / "model-cache",
                    ledger_url=f"sqlite:///{tmp / 'ledger.db'}")  # fmt: skip


def test_the_service_starts_from_the_cached_asset_model_when_the_registry_is_gone(
    registered, asset_model, tmp_path, caplog
):
    from riskml.assets import observation as ob
    from riskml.assets.model_registry import input_frame

    up = ScoringService(_settings(tmp_path, os.environ["MLFLOW_TRACKING_URI"]))
    try:
        desk = assets_api.AssetDesk(up, MODEL)
        assert desk.loaded is not None and desk.loaded.info["source"] == "registry"
        ready = desk.readiness()
        assert ready["model"]["source"] == "registry" and "warning" not in ready
        version = desk.loaded.info["version"]
    finally:
        up.close()
    assert (tmp_path / "model-cache" / MODEL / "champion" / "info.json").exists()

    gone = tmp_path / "gone.db"
    down = ScoringService(_settings(tmp_path, f"sqlite:///{gone}"))
    try:
        assert down.loaded.info["source"] == "cache"  # the household model, as before
        with caplog.at_level(logging.WARNING, logger="riskml.assets"):
            desk = assets_api.AssetDesk(down, MODEL)
        assert desk.loaded is not None, desk.load_error
        info = desk.loaded.info
        assert info["source"] == "cache" and info["version"] == version
        ready = desk.readiness()
        assert ready["model"] == {"name": MODEL, "version": version, "alias": "champion",
                                  "source": "cache"}  # fmt: skip
        assert str(gone) in ready["warning"]  # names the store that is gone
        warned = [r.getMessage() for r in caplog.records
              if r.name == "riskml.assets" and "cached copy" in r.getMessage()]  # fmt: skip
        assert warned and str(gone) in warned[0] and MODEL in warned[0]
        # the cached model scores (the same AssetRiskModel as the registry's)
        last = asset_model[asset_model["year"] == asset_model["year"].max()].head(20)
        frame = input_frame(last[list(ob.FIELD_NAMES)].reset_index(drop=True))
        score = desk.loaded.model.predict_proba(desk.loaded.model.features(frame))
        assert len(score) == 20 and ((score >= 0) & (score <= 1)).all()
    finally:
        down.close()
    assert not gone.exists()  # MLflow was never asked to make an empty store


def test_the_asset_model_alone_falls_back_to_the_cache_and_without_one_says_why(
    asset_model, tmp_path
):
    ok = _settings(tmp_path, os.environ["MLFLOW_TRACKING_URI"])
    assert model_cache.fetch_asset_model(ok, MODEL).info["source"] == "registry"
    gone = _settings(tmp_path, f"sqlite:///{tmp_path / 'gone.db'}")
    cached = model_cache.fetch_asset_model(gone, MODEL)
    assert cached.info["source"] == "cache" and "no tracking store" in cached.info["cache_reason"]
    empty = Settings(tracking_uri=gone.tracking_uri, cache_dir=tmp_path / "empty-cache")
    with pytest.raises(RuntimeError, match="no asset model .*registry unavailable.*no cached copy"):
        model_cache.fetch_asset_model(empty, MODEL)
    # a registry that answers but has no such model: the cached copy of that name, if any
    with pytest.raises(RuntimeError, match="no asset model no-such-model"):
        model_cache.fetch_asset_model(ok, "no-such-model")
