"""Code tests with a real MLflow (SQLite) store: logging, registry round trip, aliases, promotion gate."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from riskml.data import schema
from riskml.training import registry


def test_first_version_is_champion_and_challenger(registered, small_config):
    assert registered.version == "1"
    assert set(registered.aliases) == {"challenger", "champion"}
    info = registry.resolve_alias(small_config.model_name, "champion")
    assert info["run_id"] == registered.run_id


def test_run_has_metrics_tags_plots_shap_and_model_card(registered):
    client = registry.client_()
    run = client.get_run(registered.run_id)
    for k in ("test_roc_auc", "test_log_loss", "test_brier", "test_ece", "model_recall_at_10",
              "rules_recall_at_10", "gain_recall_at_10", "oracle_gap_roc_auc",
              "gain_vs_naive_fallin_roc_auc", "folds_mean_test_roc_auc",
              "folds_std_model_fallin_recall_at_10"):  # fmt: skip
        assert k in run.data.metrics, k
    assert len(run.data.tags["riskml.data_sha256"]) == 64
    assert run.data.tags["riskml.git_commit"]
    arts = {a.path for a in client.list_artifacts(registered.run_id)}
    assert {"model_card.md", "plots", "shap", "evaluation"} <= arts
    shap_files = {a.path for a in client.list_artifacts(registered.run_id, "shap")}
    assert {"shap/beeswarm.png", "shap/bar.png", "shap/global_importance.csv"} <= shap_files


def test_load_by_alias_gives_identical_predictions(registered, trained, small_config):
    import mlflow

    uri = registry.model_uri(small_config.model_name, "champion")
    rec = trained.test_frame[list(schema.FIELD_NAMES)].head(300).reset_index(drop=True)
    direct = trained.model.score_records(rec)
    loaded = registry.load_risk_model(uri)
    np.testing.assert_allclose(loaded.score_records(rec), direct, rtol=0, atol=1e-12)
    # the generic pyfunc returns probabilities (not class labels), with explanations on request
    pyfunc = mlflow.pyfunc.load_model(uri)
    example = registry.example_input(rec, n=len(rec))
    out = pyfunc.predict(example)
    assert list(out.columns[:2]) == ["score", "logit"]
    full = rec.dropna().reset_index(drop=True)
    np.testing.assert_allclose(
        out["score"].to_numpy(), trained.model.score_records(full), atol=1e-12
    )
    explained = pyfunc.predict(example.head(5), params={"explain": True})
    contrib = explained.filter(like="contrib_").drop(columns="contrib_base")
    np.testing.assert_allclose(
        explained["contrib_base"] + contrib.sum(axis=1), explained["logit"], atol=1e-6
    )


def test_signature_lists_the_contract_fields(registered):
    from mlflow.models import get_model_info

    info = get_model_info(registered.model_uri)
    names = [c.name for c in info.signature.inputs]
    assert names[: len(schema.FIELD_NAMES)] == list(schema.FIELD_NAMES)
    assert "score" in [c.name for c in info.signature.outputs]


def test_the_input_example_is_made_up_and_valid(registered, sample_panel):
    import mlflow
    from mlflow.models import Model

    stored = Model.load(registered.model_uri)
    example = stored.load_input_example(registered.model_uri)
    assert isinstance(example, pd.DataFrame) and len(example) == 3
    assert list(example.columns[: len(schema.FIELD_NAMES)]) == list(schema.FIELD_NAMES)
    # made up: ids that say so, none of the training panel's households, no panel row's values
    ids = example["household_id"].tolist()
    assert ids == ["example-1", "example-2", "example-3"]
    assert not set(ids) & set(sample_panel["household_id"])
    values = [c for c in schema.FIELD_NAMES if c not in ("household_id", "period")]
    panel_rows = {tuple(r[c] for c in values) for r in schema.to_json_records(sample_panel)}
    example_rows = [tuple(r[c] for c in values) for r in schema.to_json_records(example)]
    assert not set(example_rows) & panel_rows
    # nor one real household's amounts (income, medical cost and debt together)
    amounts = ["income_wage", "medical_expense", "debt"]
    assert example[amounts].merge(sample_panel[amounts].astype("float64")).empty
    # valid against the schema and the signature: the served model takes it as it is
    assert not schema.record_problems(schema.to_json_records(example))
    out = mlflow.pyfunc.load_model(registered.model_uri).predict(example)
    assert len(out) == 3 and out["score"].between(0, 1).all()


def test_promotion_gate_refuses_a_worse_challenger(registered, trained, small_config, sample_panel):
    from riskml.training.promotion import compare, evaluate_on_period
    from riskml.training.train import train

    # a deliberately weak challenger: three shallow trees
    weak_cfg = type(small_config).from_dict(small_config.raw)
    weak_cfg.num_boost_round = 3
    weak_cfg.params = {
        **small_config.params,
        "max_depth": 1,
        "num_leaves": 2,
        "learning_rate": 0.01,
    }
    weak_cfg.min_positives = small_config.min_positives
    weak = train(sample_panel, weak_cfg)
    champ = evaluate_on_period(trained.model, sample_panel, small_config)
    chall = evaluate_on_period(weak.model, sample_panel, small_config)
    cmp = compare(champ.metrics, chall.metrics, small_config.promotion)
    assert not cmp.passed
    assert any(not r["ok"] for r in cmp.rows)
    # and the same model against itself passes
    assert compare(champ.metrics, champ.metrics, small_config.promotion).passed


def test_evaluate_on_period_matches_training_evaluation(trained, small_config, sample_panel):
    from riskml.training.promotion import evaluate_on_period

    ev = evaluate_on_period(trained.model, sample_panel, small_config)
    assert ev.period == trained.splits.test_period
    assert ev.metrics["test_roc_auc"] == pytest.approx(
        trained.evaluation.metrics["test_roc_auc"], abs=1e-12
    )


def test_too_few_positives_is_a_clear_error(sample_panel, small_config):
    from riskml.training.train import TrainingDataError, train

    cfg = type(small_config).from_dict(small_config.raw)
    cfg.min_positives = 10**6
    with pytest.raises(TrainingDataError, match="too few positives"):
        train(sample_panel, cfg)


def test_a_panel_without_labels_is_a_clear_error(sample_panel, small_config):
    from riskml.training.train import TrainingDataError, train

    one_year = sample_panel[sample_panel["period"] == sample_panel["period"].max()].drop(
        columns=["at_risk_next"], errors="ignore"
    )
    with pytest.raises(TrainingDataError, match="no labels"):
        train(pd.DataFrame(one_year), small_config)
