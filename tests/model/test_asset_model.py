"""Behaviour of the asset-risk model trained on the simulated asset panel (held-out last year).

A world of 5,000 assets (about 27,000 labelled asset-years), small trees: the figures are
those of the issue's targets, measured on the test year only, which no step of training saw.
"""

from __future__ import annotations

import numpy as np
import pytest

from riskml.assets.observation import LABEL


@pytest.fixture(scope="module")
def panel():
    from riskml.assets.simulate import SimConfig, simulate

    return simulate(SimConfig(assets=5000, seed=7)).panel


@pytest.fixture(scope="module")
def small_cfg():
    from riskml.assets.train import AssetTrainConfig

    cfg = AssetTrainConfig.from_yaml()
    cfg.params = {
        **cfg.params, "num_leaves": 15, "learning_rate": 0.1, "min_data_in_leaf": 50,
        "monotone_constraints_method": "basic", "num_threads": 1,
    }  # fmt: skip
    cfg.num_boost_round = 150
    cfg.early_stopping_rounds = 20
    return cfg


@pytest.fixture(scope="module")
def trained(panel, small_cfg):
    from riskml.assets.train import train

    return train(panel, small_cfg)


def test_split_is_temporal(trained, panel):
    s = trained.splits
    assert s.test_year == int(panel.loc[panel[LABEL].notna(), "year"].max())
    assert s.valid_year == s.test_year - 1
    assert max(s.train_years) == s.test_year - 2


def test_beats_the_rules_alone_at_county_capacity(trained):
    m = trained.evaluation.metrics
    assert m["model_recall_at_10_county"] > m["rules_recall_at_10_county"] + 0.03
    assert m["model_precision_at_10_county"] > m["rules_precision_at_10_county"] + 0.1
    assert m["test_roc_auc"] > m["rules_roc_auc"] + 0.1


def test_within_003_auc_of_the_oracle(trained):
    m = trained.evaluation.metrics
    assert m["oracle_gap_roc_auc"] < 0.03
    assert m["oracle_recall_at_10_county"] - m["model_recall_at_10_county"] < 0.03


def test_calibrated_on_the_held_out_year(trained):
    m = trained.evaluation.metrics
    assert m["test_ece"] < 0.04
    t = trained.test_frame
    assert abs(t["score"].mean() - t[LABEL].mean()) < 0.03
    # against the oracle: scores close to the true probabilities
    assert np.mean(np.abs(t["score"] - t["oracle_p"])) < 0.08


def test_more_idle_months_raise_the_risk(trained):
    t = trained.test_frame
    base = t[t["months_idle"] <= 3].head(400).copy()
    more = base.assign(months_idle=base["months_idle"] + 6)
    s0, s1 = trained.model.score(base), trained.model.score(more)
    assert (s1 >= s0 - 1e-12).all()
    assert (s1 - s0).mean() > 0.01


def test_lower_return_raises_the_risk(trained):
    t = trained.test_frame
    base = t[t["category"] == "operating"].head(400).copy()
    s0 = trained.model.score(base)
    this_year = base.assign(return_rate=base["return_rate"] * 0.3)
    s1 = trained.model.score(this_year)
    assert (s1 >= s0 - 1e-12).all()
    assert (s1 - s0).mean() > 0.02
    every_year = base.assign(**{
        c: base[c] - 0.02 for c in ("return_rate", "return_rate_lag1", "return_rate_lag2")
    })  # fmt: skip
    s2 = trained.model.score(every_year)
    assert (s2 >= s0 - 1e-12).all()
    assert (s2 - s0).mean() > 0.02


def test_invariant_to_asset_id_village_and_names(trained):
    t = trained.test_frame.head(500).copy()
    rng = np.random.default_rng(0)
    shuffled = t.assign(
        asset_id=rng.permutation(t["asset_id"].to_numpy()),
        village_code=rng.permutation(t["village_code"].to_numpy()),
        project_id="P-other",
        owner=t["owner"].where(t["owner"].isna(), "someone else"),
        operator=t["operator"].where(t["operator"].isna(), "another operator"),
    )
    np.testing.assert_array_equal(trained.model.score(t), trained.model.score(shuffled))


def test_explanations_add_up_to_the_calibrated_log_odds(trained):
    m = trained.model
    X = m.features(trained.test_frame.head(300))
    ex = m.explain(X)
    logit = m.platt_a * m.margin(X) + m.platt_b
    np.testing.assert_allclose(ex.base + ex.contributions.sum(axis=1), logit, atol=1e-9)
    np.testing.assert_allclose(ex.contributions, m.explain_lightgbm(X).contributions, atol=1e-9)


def test_reasons_of_idle_assets_speak_of_idleness(trained):
    from riskml.assets.reasons import reasons_for

    m = trained.model
    t = trained.test_frame
    idle = t[(t["status"] == "idle") & (t["score"] > 0.8)].head(50)
    X = m.features(idle)
    reasons = reasons_for(idle, X, m.explain(X).contributions)
    named = {r["feature"] for rs in reasons for r in rs}
    assert named & {"status_code", "months_idle", "months_idle_lag1"}
    first = reasons[0][0]
    assert first["contribution"] > 0 and first["text_zh"] and first["text_en"]
