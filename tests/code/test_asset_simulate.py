"""The simulated asset panel: determinism, the schema and ranges, lags, the oracle, the register."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest

from riskml.assets import observation as ob
from riskml.assets import world as wd
from riskml.assets.simulate import SimConfig, register_records, simulate


@pytest.fixture(scope="module")
def sim():
    return simulate(SimConfig(assets=1500, seed=3))


def test_same_seed_same_panel_other_seed_other_panel(sim):
    again = simulate(SimConfig(assets=1500, seed=3)).panel
    pd.testing.assert_frame_equal(sim.panel, again)
    other = simulate(SimConfig(assets=1500, seed=4)).panel
    assert not other["oracle_p"].equals(sim.panel["oracle_p"])


def test_panel_follows_the_observation_schema(sim):
    p = sim.panel
    assert list(p.columns) == [*ob.FIELD_NAMES, ob.LABEL, ob.ORACLE]
    assert ob.problems(p) == []
    assert not p.duplicated(["asset_id", "year"]).any()
    assert set(p["subtype"]) == set(wd.SUBTYPES)  # every subtype occurs


def test_ranges_and_missing_values(sim):
    p = sim.panel
    assert (p["year"] > p["build_year"]).all()
    assert p["months_idle"].between(0, 12).all()
    assert ((p["oracle_p"] >= 0) & (p["oracle_p"] <= 1) | p["oracle_p"].isna()).all()
    assert set(p[ob.LABEL].dropna().unique()) <= {0.0, 1.0}
    assert p.loc[p["year"] == p["year"].max(), ob.LABEL].isna().all()  # next year not observed
    disposed = p["status"] == "disposed"
    assert disposed.any() and p.loc[disposed, ob.LABEL].isna().all()
    last_year = p.groupby("asset_id")["year"].max()
    gone = p.loc[disposed].set_index("asset_id")["year"]
    assert (gone == last_year.loc[gone.index]).all()  # no year after its disposal
    welfare = p["category"] == "public_welfare"
    assert p.loc[welfare, ["income", "return_rate"]].isna().all().all()  # missing, not zero
    assert p.loc[~welfare, "return_rate"].notna().all()
    assert (p.loc[p["status"] == "idle", "months_idle"] >= 6).all()
    assert (p.loc[p["status"] == "low_efficiency", "return_rate"] < 0.03).all()
    assert (p["book_value"] <= p["original_value"]).all()
    household = p["category"] == "household"
    assert (p.loc[household, "owner_type"] == "household").all()
    assert (p.loc[p["subtype"] == "livestock", "form"] == "biological").all()
    guaranteed = p["guaranteed_return_rate"].notna()
    assert p.loc[guaranteed, "operating_mode"].isin(["entrusted", "leased", "shareholding"]).all()
    assert p["inspection_result"].isna().any() and p["inspection_result"].notna().any()


def test_lags_are_the_earlier_years_and_missing_at_the_start(sim):
    p = sim.panel.sort_values(["asset_id", "year"])
    g = p.groupby("asset_id")
    first = g.cumcount() == 0
    assert p.loc[first, ["income_lag1", "return_rate_lag1", "months_idle_lag1"]].isna().all().all()
    later = ~first & (p["category"] != "public_welfare")
    np.testing.assert_allclose(
        p.loc[later, "return_rate_lag1"], g["return_rate"].shift(1)[later], equal_nan=True
    )
    np.testing.assert_allclose(
        p.loc[later, "income_lag2"], g["income"].shift(2)[later], equal_nan=True
    )


def test_label_rate_matches_the_oracle_on_average(sim):
    p = sim.panel.dropna(subset=[ob.LABEL])
    # shocks are shared (a subtype's market, a county's flood): a loose check here, the exact
    # one below
    assert abs(p[ob.LABEL].mean() - p[ob.ORACLE].mean()) < 0.03


def test_oracle_is_the_probability_the_next_year_is_drawn_with():
    """Re-simulate one next year many times from the same state: the frequency of the label is
    the oracle, asset by asset."""
    from riskml.data.simulate.world import load_counties

    dyn = wd.Dynamics()
    rng = np.random.default_rng(11)
    w = wd.build_world(400, 2014, 2025, load_counties(), rng, dyn)
    market = np.zeros(len(wd.SUBTYPES))
    active = np.ones(w.n, bool)
    w.build_year[:] = 2014
    for year in (2015, 2016, 2017):  # some history: idle, worn, expired, unconfirmed assets
        new = wd.next_market(market, dyn, rng)
        wd.step(w, year, market, new, dyn, 0.03, rng, active)
        market = new
    oracle = wd.next_year_risk(w, 2018, market, dyn, 0.03)
    draws = 400
    hits = np.zeros(w.n)
    for k in range(draws):
        r = np.random.default_rng(1000 + k)
        clone = copy.deepcopy(w)
        fig = wd.step(clone, 2018, market, wd.next_market(market, dyn, r), dyn, 0.03, r, active)
        hits += fig["adverse"]
    freq = hits / draws
    assert abs(freq.mean() - oracle.mean()) < 0.01
    assert np.abs(freq - oracle).max() < 4.5 * np.sqrt(0.25 / draws) + 0.01
    assert np.corrcoef(freq, oracle)[0, 1] > 0.98


def test_register_records_are_valid_asset_records(sim):
    from riskml.assets.validation import record_problems

    records = register_records(sim)
    assert len(records) == sim.panel["asset_id"].nunique()
    assert record_problems(records) == []
    for rec in records[:50]:
        assert sum(f["amount"] for f in rec["funding"]) == pytest.approx(
            rec["original_value"], abs=0.05
        )
        assert sum(b["share"] for b in rec["beneficiaries"]) == pytest.approx(1.0, abs=1e-5)


def test_config_refuses_unknown_keys():
    with pytest.raises(ValueError, match="unknown key"):
        SimConfig.from_dict({"asets": 10})
    with pytest.raises(ValueError, match="unknown dynamics"):
        SimConfig.from_dict({"dynamics": {"idle_bas": 1.0}})
    cfg = SimConfig.from_dict({"assets": 10, "dynamics": {"revive": 0.5}})
    assert cfg.dynamics.revive == 0.5


def test_observation_problems_name_row_and_field(sim):
    p = sim.panel.head(20).astype({"subtype": object})
    p.loc[p.index[3], "subtype"] = "castle"
    p.loc[p.index[5], "months_idle"] = 13
    found = ob.problems(p)
    assert any(s.startswith(f"row {p.index[3]}: field subtype") for s in found)
    assert any(s.startswith(f"row {p.index[5]}: field months_idle") for s in found)
