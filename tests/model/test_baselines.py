"""Model tests: the model against the baselines on the sample panel's rolling folds
(naive income-to-line score, rules alone, logistic regression), overall and on the fall-in subset."""

from __future__ import annotations

import numpy as np
import pytest

from riskml.model import metrics as ev
from riskml.training import baselines


@pytest.fixture(scope="module")
def prepared(sample_panel, small_config, lines):
    from riskml.training.train import prepare

    return prepare(sample_panel, small_config, lines)


def test_the_model_beats_the_naive_score_overall_and_on_the_fall_in_subset(trained):
    table = trained.fold_table()
    assert len(table) == 3
    assert (table["gain_vs_naive_all_roc_auc"] > 0).all()
    assert table["gain_vs_naive_all_roc_auc"].mean() > 0.02
    assert table["gain_vs_naive_fallin_roc_auc"].mean() > 0  # the promotion gate's rule
    assert (table["gain_vs_rules_all_roc_auc"] > 0).all()
    # the oracle stays above the model
    assert (table["oracle_all_roc_auc"] > table["model_all_roc_auc"]).all()


def test_the_logistic_baseline_is_fitted_on_the_folds_train_rows_only(trained, prepared):
    for f in trained.folds:
        m = f.fold.masks(prepared.period, prepared.labelled)
        assert f.metrics["logistic_train_rows"] == m["train"].sum()
        X_test, y_test = prepared.X[m["test"]], prepared.labels[m["test"]].astype(int)
        refit = baselines.LogisticBaseline.fit(prepared.X[m["train"]], prepared.labels[m["train"]])
        assert ev.auc(y_test, refit.score(X_test)) == pytest.approx(
            f.metrics["logistic_all_roc_auc"], abs=1e-12
        )
        # fitted with the test rows too it would differ: the check above has teeth
        both = m["train"] | m["test"]
        leaky = baselines.LogisticBaseline.fit(prepared.X[both], prepared.labels[both])
        assert ev.auc(y_test, leaky.score(X_test)) != f.metrics["logistic_all_roc_auc"]


def test_the_fall_in_subset_is_not_below_the_line_at_scoring_time(trained, prepared):
    f = trained.folds[-1]
    X_test = prepared.X[f.fold.masks(prepared.period, prepared.labelled)["test"]]
    fallin = baselines.fall_in_mask(X_test)
    assert f.metrics["rows_fallin"] == (X_test["pc_income_to_line"] >= 1).sum() == fallin.sum()
    assert 0 < fallin.sum() < len(X_test)


def test_bootstrap_intervals_contain_the_point_estimate(trained):
    gains = trained.evaluation.tables["gains"]
    assert set(gains["baseline"]) == {"naive", "logistic", "rules"}
    assert set(gains["subset"]) == {"all", "fallin"}
    assert ((gains["lo"] <= gains["gain"]) & (gains["gain"] <= gains["hi"])).all()
    assert (gains["hi"] - gains["lo"] > 0).all()


def test_weighted_metrics_equal_the_plain_ones_on_a_resample(trained):
    t = trained.test_frame
    y, s = t["at_risk_next"].to_numpy(), t["score"].to_numpy()
    ones = np.ones((1, len(y)), dtype=np.int32)
    assert ev.weighted_auc(y, s, ones)[0] == pytest.approx(ev.auc(y, s), abs=1e-12)
    for cap in (0.05, 0.10):
        assert ev.weighted_recall_at_capacity(y, s, ones, cap)[0] == pytest.approx(
            ev.at_capacity(y, s, cap)["recall"], abs=1e-12
        )
    counts = ev.bootstrap_counts(len(y), 4, seed=1)
    assert (counts.sum(axis=1) == len(y)).all()
    idx = np.repeat(np.arange(len(y)), counts[2])
    assert ev.weighted_auc(y, s, counts)[2] == pytest.approx(ev.auc(y[idx], s[idx]), abs=1e-12)
