"""Code of the asset-risk model: per-county capacity, reasons, save/load, the CLI, MLflow and the gate."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from riskml.assets.features import FEATURE_NAMES, build_features
from riskml.assets.model import AssetRiskModel, top_share_by_group
from riskml.assets.reasons import FEATURE_LABELS, REASONS, context, sentence


@pytest.fixture(scope="module")
def panel():
    from riskml.assets.simulate import SimConfig, simulate

    return simulate(SimConfig(assets=1500, seed=5)).panel


@pytest.fixture(scope="module")
def tiny_cfg():
    from riskml.assets.train import AssetTrainConfig

    cfg = AssetTrainConfig.from_yaml()
    cfg.params = {
        **cfg.params, "num_leaves": 7, "learning_rate": 0.2, "min_data_in_leaf": 40,
        "monotone_constraints_method": "basic", "num_threads": 1,
    }  # fmt: skip
    cfg.num_boost_round = 30
    cfg.early_stopping_rounds = 10
    return cfg


@pytest.fixture(scope="module")
def tiny(panel, tiny_cfg):
    from riskml.assets.train import train

    return train(panel, tiny_cfg)


def test_top_share_by_group_takes_each_groups_own_top():
    score = np.array([0.9, 0.1, 0.5, 0.3, 0.8, 0.2, 0.7])
    group = np.array(["a", "a", "a", "b", "b", "b", "b"])
    mask = top_share_by_group(score, group, 0.34)  # ceil(0.34 × 3) = 2, ceil(0.34 × 4) = 2
    assert mask.tolist() == [True, False, True, True, True, False, True][:3] + [
        False,
        True,
        False,
        True,
    ]
    assert top_share_by_group(score, group, 1.0).all()
    with pytest.raises(ValueError, match="share"):
        top_share_by_group(score, group, 0.0)


def test_features_ignore_ids_and_keep_missing_missing(panel):
    X = build_features(panel.head(500))
    assert list(X.columns) == list(FEATURE_NAMES)
    assert not {"asset_id", "village_code", "county_code"} & set(X.columns)
    welfare = (panel.head(500)["category"] == "public_welfare").to_numpy()
    assert X.loc[welfare, "return_rate"].isna().all()
    with pytest.raises(ValueError, match="lack field"):
        build_features(panel.head(5).drop(columns=["months_idle"]))


def test_every_feature_has_a_reason_in_both_languages(panel):
    assert set(REASONS) == set(FEATURE_NAMES) == set(FEATURE_LABELS)
    rows = panel.sample(200, random_state=0)
    X = build_features(rows)
    for rec, (_, feats) in zip(rows.to_dict("records"), X.iterrows(), strict=True):
        ctx = context(rec, feats.to_dict())
        for name in FEATURE_NAMES:
            for lang in ("zh", "en"):
                text = sentence(name, ctx, lang)
                assert text and "{" not in text, (name, lang, text)
                assert not re.search(r"\bnan\b", text.lower()), (name, lang, text)


def test_expired_contracts_and_missing_returns_have_their_own_sentences():
    ctx = context({"operating_mode": "leased"}, {"contract_years_left": -2.0})
    assert "未续签" in sentence("contract_years_left", ctx, "zh")
    assert "without renewal" in sentence("contract_years_left", ctx, "en")
    ctx = context({"category": "public_welfare"}, {"return_mean3": float("nan")})
    assert sentence("return_mean3", ctx, "zh") == "近三年无收益记录"
    assert sentence("return_mean3", ctx, "en") == "no income recorded in three years"


def test_save_and_load_give_the_same_scores(tiny, tmp_path):
    folder = tiny.model.save(tmp_path / "m")
    loaded = AssetRiskModel.load(folder)
    obs = tiny.test_frame.head(200)
    np.testing.assert_array_equal(loaded.score(obs), tiny.model.score(obs))
    assert loaded.return_floor == tiny.model.return_floor == pytest.approx(0.03)
    out = loaded.score_frame(obs, explain=True)
    contrib = out.filter(like="contrib_").drop(columns="contrib_base")
    np.testing.assert_allclose(out["contrib_base"] + contrib.sum(axis=1), out["logit"], atol=1e-9)
    # each county inspects its top 10%
    flagged = out.groupby(obs["county_code"].to_numpy())["flagged"].agg(["sum", "size"])
    assert (flagged["sum"] == np.ceil(0.1 * flagged["size"] - 1e-9)).all()


def test_config_refuses_unknown_sections_and_bad_capacity():
    from riskml.assets.train import AssetTrainConfig

    with pytest.raises(ValueError, match="unknown section"):
        AssetTrainConfig.from_dict({"modle": {}})
    with pytest.raises(ValueError, match="inspect"):
        AssetTrainConfig.from_dict({"capacity": {"inspect": 1.5}})
    cfg = AssetTrainConfig.from_dict({"label": {"return_floor": 0.05}})
    assert cfg.floor() == 0.05
    assert AssetTrainConfig.from_dict({}).floor() == pytest.approx(0.03)  # the rules file's


def test_training_refuses_a_panel_without_enough_years(panel, tiny_cfg):
    from riskml.assets.train import AssetTrainingError, train

    two_years = panel[panel["year"] >= panel["year"].max() - 2]
    with pytest.raises(AssetTrainingError, match="labelled years"):
        train(two_years, tiny_cfg)


def test_rules_baseline_counts_the_rules_fired(panel):
    from riskml.assets.baseline import rules_fired, rules_score

    year = panel[panel["year"] == 2024].reset_index(drop=True)
    fired = rules_fired(year)
    assert set(fired["rule"]) >= {"idle_too_long", "low_return", "public_welfare_unmanaged"}
    score = rules_score(year)
    idle_long = (year["status"] == "idle") & (year["months_idle"] >= 7)
    assert (score[idle_long.to_numpy()] >= 1).all()
    welfare_no_fund = (
        (year["category"] == "public_welfare")
        & (year["maintenance_fund"] <= 0)
        & (year["status"] != "disposed")
    )
    assert (score[welfare_no_fund.to_numpy()] >= 1).all()


def _app() -> typer.Typer:
    from riskml.cli.assets_model import add_commands

    app = typer.Typer()
    add_commands(app)
    return app


def test_cli_simulate_and_train(tmp_path):
    runner = CliRunner()
    cfg_file = tmp_path / "train.yaml"
    cfg_file.write_text(
        "model:\n  num_boost_round: 20\n  params: {num_leaves: 7, num_threads: 1, "
        "monotone_constraints_method: basic}\nsimulate: {assets: 1200, seed: 2}\n"
    )
    out = tmp_path / "panel.parquet"
    res = runner.invoke(
        _app(),
        [
            "simulate",
            "--out",
            str(out),
            "--config",
            str(cfg_file),
            "--register",
            str(tmp_path / "reg.jsonl"),
        ],
    )
    assert res.exit_code == 0, res.output
    panel = pd.read_parquet(out)
    assert panel["asset_id"].nunique() == 1200
    assert len((tmp_path / "reg.jsonl").read_text().splitlines()) == 1200
    metrics = tmp_path / "m.json"
    res = runner.invoke(
        _app(),
        ["train", "--data", str(out), "--config", str(cfg_file), "--no-register", "--metrics", str(metrics),
         "--out", str(tmp_path / "model")],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "model_recall_at_10_county" in res.output
    assert json.loads(metrics.read_text())["test_roc_auc"] > 0.7
    assert (tmp_path / "model" / "model.json").exists()
    res = runner.invoke(
        _app(), ["train", "--data", str(tmp_path / "missing.parquet"), "--no-register"]
    )
    assert res.exit_code == 2


@pytest.mark.slow  # MLflow's first store and model logging: about 25 s on a loaded machine
def test_registered_with_aliases_card_and_signature_and_the_gate(tiny, tiny_cfg, panel):
    import mlflow

    from riskml.assets import model_registry as mr
    from riskml.training import registry

    cfg = tiny_cfg
    first = mr.log_training_run(tiny, cfg)
    assert set(first.aliases) == {"champion", "challenger"}
    client = registry.client_()
    run = client.get_run(first.run_id)
    for k in (
        "test_roc_auc",
        "oracle_gap_roc_auc",
        "model_recall_at_10_county",
        "rules_recall_at_10_county",
    ):
        assert k in run.data.metrics
    arts = {a.path for a in client.list_artifacts(first.run_id)}
    assert {"model_card.md", "plots", "shap", "evaluation"} <= arts
    card = mlflow.artifacts.load_text(f"runs:/{first.run_id}/model_card.md")
    assert "rules alone" in card and "oracle" in card
    loaded = mr.load_asset_model(registry.model_uri(cfg.model_name, "champion"))
    obs = tiny.test_frame.head(100)
    np.testing.assert_array_equal(loaded.score(obs), tiny.model.score(obs))
    info = mlflow.models.get_model_info(registry.model_uri(cfg.model_name, "champion"))
    assert "months_idle" in info.signature.inputs.input_names()
    # a second version is challenger; the gate promotes it when not worse (the same model)
    second = mr.log_training_run(tiny, cfg)
    assert second.aliases == ["challenger"]
    promoted, cmp, _ = mr.promote(panel, cfg)
    assert promoted and cmp is not None and cmp.passed
    assert registry.resolve_alias(cfg.model_name, "champion")["version"] == second.version
