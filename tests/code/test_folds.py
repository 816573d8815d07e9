"""Code tests: rolling-origin folds (no leakage), their child runs in MLflow, the promotion gate
reading them, Optuna tuning writing a config that loads, and seed bagging."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest

from riskml.training.errors import TrainingDataError
from riskml.training.folds import Fold, check_no_leakage, rolling_folds, summarise

PERIODS = [f"{y}-06" for y in range(2015, 2025)]


def test_rolling_folds_train_before_validation_before_test():
    final = Fold(tuple(PERIODS[:-2]), PERIODS[-2], PERIODS[-1])
    folds = rolling_folds(PERIODS, 3, final)
    assert [f.test_period for f in folds] == ["2022-06", "2023-06", "2024-06"]
    assert folds[-1] == final
    for f in folds:
        check_no_leakage(f)
        i = PERIODS.index(f.test_period)
        assert f.valid_period == PERIODS[i - 1]
        assert f.train_periods == tuple(PERIODS[: i - 1])
    # row masks: every training row is of a period before the test period's previous one
    period = np.array(PERIODS * 3)
    labelled = np.ones(len(period), dtype=bool)
    labelled[::7] = False
    for f in folds:
        m = f.masks(period, labelled)
        assert (period[m["train"]] < f.valid_period).all()
        assert (period[m["validation"]] == f.valid_period).all()
        assert set(period[m["test"]]) == {f.test_period}
        assert not (m["train"] & m["test"]).any() and labelled[m["train"]].all()


def test_folds_stop_at_a_pinned_test_period_and_at_the_panel_start():
    final = Fold(("2015-06", "2016-06"), "2017-06", "2018-06")
    folds = rolling_folds(PERIODS, 5, final)  # later periods take no part
    assert [f.test_period for f in folds] == ["2017-06", "2018-06"]
    assert folds[0].train_periods == ("2015-06",)
    with pytest.raises(TrainingDataError, match="min_folds is 3 but the panel allows 2"):
        rolling_folds(PERIODS, 5, final, min_folds=3)


def test_a_fold_without_positives_is_left_out_and_an_earlier_one_taken():
    from riskml.training.train import Prepared, Splits, TrainConfig, fold_plan

    periods = np.repeat(PERIODS[:6], 20)  # 2015-06 ... 2020-06
    labels = np.tile(np.r_[np.ones(5), np.zeros(15)], 6)
    labels[periods == "2018-06"] = 0.0  # no positive in 2018: it can neither test nor validate
    data = Prepared(pd.DataFrame({"period": periods}), pd.DataFrame(), labels, pd.DataFrame(), [])
    cfg = TrainConfig.from_dict({"evaluation": {"folds": 2}, "data": {"min_positives": 1}})
    said: list[str] = []
    splits = Splits(PERIODS[:4], "2019-06", "2020-06")
    folds = fold_plan(data, splits, cfg, progress=said.append)
    assert [f.test_period for f in folds] == ["2017-06", "2020-06"]
    assert len(said) == 2 and all("too few positives" in m for m in said)
    cfg = TrainConfig.from_dict({"evaluation": {"folds": 3, "min_folds": 3},
                                 "data": {"min_positives": 1}})  # fmt: skip
    with pytest.raises(TrainingDataError, match="min_folds is 3 but only 2"):
        fold_plan(data, splits, cfg)


def test_fold_summary_is_mean_std_min_max():
    t = pd.DataFrame({"test_period": ["a", "b", "c"], "auc": [0.7, 0.8, 0.9]})
    s = summarise(t)
    assert s.loc["auc", "mean"] == pytest.approx(0.8)
    assert s.loc["auc", "std"] == pytest.approx(0.1)
    assert (s.loc["auc", "min"], s.loc["auc", "max"]) == (0.7, 0.9)


# --------------------------------------------------------------------------- trained on a tiny panel
@pytest.fixture(scope="module")
def tiny_panel(sample_panel):
    households = sorted(sample_panel["household_id"].unique())[:700]
    return sample_panel[sample_panel["household_id"].isin(households)].reset_index(drop=True)


@pytest.fixture(scope="module")
def tiny_cfg():
    from riskml.training.train import TrainConfig
    from tests.conftest import ROOT

    cfg = TrainConfig.from_yaml(ROOT / "training" / "default.yaml")
    cfg.num_boost_round, cfg.early_stopping_rounds, cfg.min_positives = 40, 10, 5
    cfg.params = {**cfg.params, "min_data_in_leaf": 20, "learning_rate": 0.1}
    cfg.params.pop("monotone", None)
    cfg.bootstrap_resamples = 50
    cfg.tuning = {**cfg.tuning, "trials": 2}
    cfg.model_name = "riskml-folds-test"  # its own registered model: the session's is untouched
    return cfg


@pytest.fixture(scope="module")
def tuned(tiny_panel, tiny_cfg, lines):
    from riskml.training.train import train

    return train(tiny_panel, tiny_cfg, lines, tune=True)


@pytest.fixture(scope="module")
def logged(tuned, tiny_cfg):
    from riskml.training import registry

    return registry.log_training_run(tuned, tiny_cfg)


def test_every_fold_model_was_fitted_on_earlier_periods_only(tuned):
    assert [f.fold.test_period for f in tuned.folds] == ["2022-06", "2023-06", "2024-06"]
    last = tuned.folds[-1].fold
    assert (last.train_periods, last.valid_period, last.test_period) == (
        tuple(tuned.splits.train_periods), tuned.splits.valid_period, tuned.splits.test_period,
    )  # fmt: skip
    # the final fold is the registered model's split: the same test metrics
    assert tuned.folds[-1].metrics["test_roc_auc"] == pytest.approx(
        tuned.evaluation.metrics["test_roc_auc"], abs=1e-12
    )
    table = tuned.fold_table()
    for r in table.itertuples(index=False):
        assert max(r.train_periods.split(",")) < r.valid_period < r.test_period
    assert {"model_fallin_roc_auc", "naive_all_recall_at_10", "gain_vs_logistic_fallin_roc_auc_hi",
            "rules_all_roc_auc", "oracle_all_roc_auc"} <= set(table.columns)  # fmt: skip


def test_folds_and_trials_are_child_runs_of_the_training_run(logged, tuned):
    from riskml.training import registry

    client = registry.client_()
    run = client.get_run(logged.run_id)
    children = client.search_runs(
        [run.info.experiment_id], f"tags.mlflow.parentRunId = '{logged.run_id}'"
    )
    kinds = sorted(c.data.tags["riskml.kind"] for c in children)
    assert kinds == ["fold"] * 3 + ["trial"] * 2
    folds = {
        c.data.tags["riskml.test_period"]: c
        for c in children
        if c.data.tags["riskml.kind"] == "fold"
    }
    assert folds["2023-06"].data.params["valid_period"] == "2022-06"
    mean = np.mean([c.data.metrics["test_roc_auc"] for c in folds.values()])
    assert run.data.metrics["folds_mean_test_roc_auc"] == pytest.approx(mean, abs=1e-9)
    assert "folds_std_gain_vs_naive_fallin_roc_auc" in run.data.metrics
    arts = {a.path for a in client.list_artifacts(logged.run_id, "evaluation")}
    assert {"evaluation/folds.csv", "evaluation/fold_table.csv", "evaluation/gains.csv"} <= arts
    assert run.data.params["lgbm_learning_rate"] == str(tuned.tuning.best_params["learning_rate"])
    table = registry.fold_table_of(logged.run_id)
    assert table["test_period"].tolist() == ["2022-06", "2023-06", "2024-06"]


def test_the_gate_compares_champion_and_challenger_on_common_folds(
    logged, tiny_panel, tiny_cfg, lines
):
    from riskml.training import registry
    from riskml.training.promotion import promote_challenger
    from riskml.training.train import train

    assert "champion" in logged.aliases
    weak_cfg = copy.deepcopy(tiny_cfg)
    weak_cfg.params = {**tiny_cfg.params, "max_depth": 1, "num_leaves": 2, "learning_rate": 0.01}
    weak_cfg.num_boost_round = 2
    weak = train(tiny_panel, weak_cfg, lines)
    registry.log_training_run(weak, weak_cfg)
    promoted, cmp, message = promote_challenger(tiny_cfg.model_name, tiny_panel, tiny_cfg)
    assert not promoted
    assert "3 common fold(s) (2022-06, 2023-06, 2024-06)" in message
    rows = {r["metric"]: r for r in cmp.rows}
    chall = weak.fold_table()["test_roc_auc"].mean()
    assert rows["test_roc_auc"]["challenger"] == pytest.approx(chall, abs=1e-9)
    assert not rows["test_roc_auc"]["ok"]
    assert "gain_vs_naive_fallin_roc_auc" in rows
    assert registry.resolve_alias(tiny_cfg.model_name, "champion")["version"] == logged.version


def test_a_model_not_beating_the_naive_score_on_the_fall_in_subset_fails():
    from riskml.training.promotion import compare_folds, naive_row

    folds = pd.DataFrame({"test_period": ["a", "b", "c"], "gain_vs_naive_fallin_roc_auc":
                          [0.01, -0.02, -0.005], "test_roc_auc": [0.8, 0.8, 0.8],
                          "model_recall_at_10": [0.3] * 3, "test_ece": [0.01] * 3})  # fmt: skip
    row = naive_row(folds, {})
    assert not row["ok"] and row["challenger"] == pytest.approx(-0.005)
    assert naive_row(folds.assign(gain_vs_naive_fallin_roc_auc=0.01), {})["ok"]
    # the same folds only: the champion's extra older fold is not compared
    champ = pd.concat([folds.assign(test_period=["z", "a", "b"]).head(1), folds.head(2)])
    cmp, common = compare_folds(champ.assign(test_roc_auc=0.5), folds, {})
    assert common == ["a", "b"]


def test_tuning_tries_the_budget_and_writes_a_config_that_loads(tuned, tiny_cfg, tmp_path):
    from riskml.training.train import TrainConfig
    from riskml.training.tuning import start_point, write_config

    tr = tuned.tuning
    assert len(tr.trials) == 2 and tr.objective == "roc_auc"
    assert tr.trials[0].params == start_point(tiny_cfg.params)  # the config's own point first
    # the latest period is held out of tuning: its folds end one period earlier
    assert tr.folds == ["2021-06", "2022-06", "2023-06"]
    assert tr.best_value == max(t.value for t in tr.trials)
    path = write_config(tmp_path / "training" / "tuned.yaml", tiny_cfg, tr)
    again = TrainConfig.from_yaml(path)
    assert again.params == tr.best_params
    assert tuned.model.metadata["best_iteration"] >= 1
    assert path.read_text().startswith("# Tuned by `riskml train --tune`")


def test_seed_bagging_averages_the_boosters_margins_in_one_booster():
    from riskml.model.risk_model import fit_booster
    from riskml.model.tree_engine import TreeEngine
    from riskml.training.bagging import fit_bagged

    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.random((2000, 4)), columns=list("abcd"))
    X.iloc[::9, 2] = np.nan
    y = (X["a"] + rng.random(2000) > 1.2).to_numpy(int)
    p = {"num_leaves": 8, "feature_fraction": 0.7, "bagging_fraction": 0.8, "bagging_freq": 1,
         "seed": 3, "num_threads": 1}  # fmt: skip
    fit = (X[:1400], y[:1400], X[1400:], y[1400:])
    merged = fit_bagged(*fit, p, 60, 10, bags=3)
    single = [fit_booster(*fit, {**p, "seed": 3 + i}, 60, 10) for i in range(3)]
    arr = X.to_numpy()
    mean = np.mean(
        [b.predict(arr, raw_score=True, num_iteration=b.best_iteration) for b in single], 0
    )
    np.testing.assert_allclose(merged.predict(arr, raw_score=True), mean, atol=1e-12)
    assert merged.num_trees() == sum(b.best_iteration for b in single)
    engine = TreeEngine.for_booster(merged)  # the compiled engine takes the merged model
    assert engine is not None
    np.testing.assert_allclose(engine.margin(arr), mean, atol=1e-12)
