"""Code test: support allocation (riskml allocate): the formula, rounding, weights, bounds, errors, CLI."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import yaml

from riskml.policy.risk_types import RISK_TYPES
from riskml.regions.allocate import (
    CONFIG_FILE,
    AllocationError,
    allocate,
    largest_remainder,
    load_assets,
    load_config,
    load_costs,
    parse_config,
)
from riskml.regions.allocation_text import explanation, explanation_markdown

CODES = ("530326", "520524", "451229", "621123", "532328")


def _county(code: str, expected: float, households: int = 1000, **kw) -> dict:
    row = {
        "level": "county", "code": code, "name_zh": f"县{code}", "name_en": f"County {code}",
        "period": "2025-06", "households": households, "expected": expected,
        "expected_low": max(0.0, expected - 5), "expected_high": expected + 5,
        "key_national": False, "key_provincial": False, "flagged": 100, "monitored": 0,
        "confirmed": 0, "days_to_confirm": np.nan, "eliminated": 0, "open_cases": 0, "overdue": 0,
    }  # fmt: skip
    for t in RISK_TYPES:
        row[f"flagged_{t}"] = 100 if t == "illness" else 0  # one risk type: k = cost of illness
        row[f"monitored_rt_{t}"] = 0
    row.update(kw)
    return row


def _table(*rows: dict) -> pd.DataFrame:
    return pd.DataFrame(list(rows))


@pytest.fixture(scope="module")
def config():
    return load_config()


@pytest.fixture(scope="module")
def neutral(config):
    """No key-county weights and no performance weights: allocation by need alone."""
    return replace(
        config,
        key_national=0.0,
        key_provincial=0.0,
        incentives=tuple((k, 0.0) for k, _ in config.incentives),
        penalties=tuple((k, 0.0) for k, _ in config.penalties),
    )


def _by_code(result) -> pd.DataFrame:
    return result.counties.set_index("county_code")


def test_shipped_config_loads_with_a_cost_for_every_risk_type(config):
    assert set(config.costs) == set(RISK_TYPES)
    assert config.bound == pytest.approx(0.2) and config.key_national == pytest.approx(0.2)
    assert dict(config.penalties)["overdue"] > 0


def test_allocation_is_the_formula_and_sums_to_the_budget(neutral):
    table = _table(_county(CODES[0], 10.0), _county(CODES[1], 30.0), _county(CODES[2], 60.0))
    cost = neutral.costs["illness"]
    result = allocate(table, 1_000_003, neutral)
    got = _by_code(result)
    assert int(got["allocation"].sum()) == 1_000_003
    assert got["allocation"].dtype.kind == "i"
    np.testing.assert_allclose(got["cost_per_household"], cost)
    np.testing.assert_allclose(got["need"], got["expected"] * cost)
    exact = 1_000_003 * np.array([10, 30, 60]) / 100
    assert np.abs(got.loc[list(CODES[:3]), "allocation"].to_numpy() - exact).max() < 1.0
    assert result.summary["budget"] == 1_000_003 and result.summary["counties"] == 3
    # by need alone every county gets the same share of its need
    short = _by_code(scarce := allocate(table, 100_001, neutral))
    covered = short["allocation"] / short["need"]
    assert (covered.max() - covered.min()) * short["need"].min() <= 1.0  # up to a yuan's rounding
    assert scarce.summary["need_covered_min_allocation"] == pytest.approx(100_001 / short["need"].sum(), rel=1e-4)  # fmt: skip


def test_case_counts_are_summed_over_the_window_only(config):
    old = _county(CODES[0], 20.0, period="2024-01", confirmed=50, days_to_confirm=100.0)
    rows = [
        old,
        _county(CODES[0], 20.0, confirmed=10, days_to_confirm=10.0),
        _county(CODES[0], 20.0, period="2025-01", confirmed=10, days_to_confirm=20.0),
        _county(CODES[1], 20.0, confirmed=5, days_to_confirm=30.0),
    ]
    result = allocate(_table(*rows), 1_000, config)
    got = _by_code(result)
    assert got.loc[CODES[0], "mean_days_to_confirm"] == pytest.approx(15.0)  # 2024-01 left out
    assert got.loc[CODES[0], "confirmed_on_time"] == pytest.approx(1.0)
    assert result.summary["window"] == "2024-07..2025-06" and result.summary["period"] == "2025-06"
    assert len(got) == 2


@pytest.mark.parametrize("budget", [0, 1, 7, 999_999, 12_345_678])
def test_largest_remainder_sums_to_the_yuan(budget):
    rng = np.random.default_rng(budget)
    w = rng.random(37)
    shares = largest_remainder(w, budget)
    assert shares.sum() == budget and (shares >= 0).all()
    assert np.abs(shares - budget * w / w.sum()).max() < 1.0
    # ties go to the earlier row
    assert largest_remainder(np.ones(3), 2).tolist() == [1, 1, 0]


def test_allocation_is_monotone_in_expected_households(config):
    shares = []
    for e in (5.0, 10.0, 20.0, 40.0, 80.0):
        table = _table(_county(CODES[0], e), _county(CODES[1], 30.0), _county(CODES[2], 30.0))
        got = _by_code(allocate(table, 10_000_000, config))
        shares.append(got.loc[CODES[0], "allocation"])
        # the others' allocations equal each other (same need), whatever E of the first
        assert abs(got.loc[CODES[1], "allocation"] - got.loc[CODES[2], "allocation"]) <= 1
    assert all(a < b for a, b in zip(shares, shares[1:], strict=False)), shares


def test_key_county_weight_raises_the_share(config):
    plain = _table(_county(CODES[0], 20.0), _county(CODES[1], 20.0))
    keyed = _table(_county(CODES[0], 20.0, key_national=True), _county(CODES[1], 20.0))
    a = _by_code(allocate(plain, 1_000_000, config))
    b = _by_code(allocate(keyed, 1_000_000, config))
    assert a.loc[CODES[0], "allocation"] == 500_000
    assert b.loc[CODES[0], "allocation"] > 500_000
    ratio = b.loc[CODES[0], "allocation"] / b.loc[CODES[1], "allocation"]
    assert ratio == pytest.approx(1 + config.key_national, rel=1e-5)
    both = _table(
        _county(CODES[0], 20.0, key_national=True, key_provincial=True), _county(CODES[1], 20.0)
    )
    c = _by_code(allocate(both, 1_000_000, config))
    assert c.loc[CODES[0], "key_factor"] == pytest.approx(1 + config.key_national + config.key_provincial)  # fmt: skip
    # the CSV form of the flags ("True"/"False" text) reads the same
    text = keyed.assign(key_national=keyed["key_national"].astype(str))
    assert _by_code(allocate(text, 1_000_000, config)).loc[CODES[0], "allocation"] == b.loc[CODES[0], "allocation"]  # fmt: skip


def test_performance_penalty_lowers_the_share_within_bounds(config):
    rows = [_county(c, 20.0, open_cases=20, overdue=2) for c in CODES]
    base = _by_code(allocate(_table(*rows), 1_000_000, config))
    assert np.allclose(base["performance_factor"], 1.0)  # all the same: neutral
    rows[0] = _county(CODES[0], 20.0, open_cases=20, overdue=10)  # 50% overdue against 10%
    late = _by_code(allocate(_table(*rows), 1_000_000, config))
    f = late.loc[CODES[0], "performance_factor"]
    w = dict(config.penalties)["overdue"]
    mean = (0.5 + 4 * 0.1) / 5
    assert f == pytest.approx(1 - w * (0.5 - mean))
    assert 1 - config.bound <= f < 1
    assert late.loc[CODES[0], "allocation"] < base.loc[CODES[0], "allocation"]
    assert (late.drop(index=CODES[0])["performance_factor"] > 1).all()  # the others gain
    harsh = replace(config, penalties=(("overdue", 5.0),))
    clipped = _by_code(allocate(_table(*rows), 1_000_000, harsh))
    assert clipped.loc[CODES[0], "performance_factor"] == pytest.approx(1 - config.bound)
    assert clipped["performance_factor"].max() <= 1 + config.bound + 1e-12


def test_incentives_confirmed_on_time_eliminated_and_assets(config, tmp_path):
    rows = [
        _county(CODES[0], 20.0, monitored=40, confirmed=10, days_to_confirm=10.0, eliminated=20),
        _county(CODES[1], 20.0, monitored=40, confirmed=10, days_to_confirm=30.0, eliminated=0),
        _county(CODES[2], 20.0),  # no cases: neutral
    ]
    path = tmp_path / "assets.csv"
    path.write_text("county_code,assets_revived,assets_idle\n530326,9,1\n520524,1,9\n")
    got = _by_code(allocate(_table(*rows), 1_000_000, config, assets=load_assets(path)))
    assert got.loc[CODES[0], "confirmed_on_time"] == pytest.approx(1.0)
    assert got.loc[CODES[1], "confirmed_on_time"] == pytest.approx(15 / 30)
    assert got.loc[CODES[0], "eliminated_rate"] == pytest.approx(20 / 60)
    assert got.loc[CODES[0], "assets_revived_rate"] == pytest.approx(0.9)
    assert got.loc[CODES[2], "performance_factor"] == pytest.approx(1.0)
    assert got.loc[CODES[0], "performance_factor"] > 1 > got.loc[CODES[1], "performance_factor"]


def test_equal_split_is_the_households_share_and_reached_at_most_expected(config):
    rows = [_county(c, e, households=h) for c, e, h in zip(CODES, (5, 50, 8, 30, 1), (800, 1200, 3000, 500, 2500), strict=True)]  # fmt: skip
    for budget in (100_000, 5_000_000):  # short of the need, and more than it
        got = _by_code(allocate(_table(*rows), budget, config))
        share = budget * got["households"] / got["households"].sum()
        assert (got["equal_split"] - share).abs().max() < 1.0
        assert int(got["equal_split"].sum()) == budget
        for col, money in (("reached_allocation", "allocation"), ("reached_equal_split", "equal_split")):  # fmt: skip
            assert (got[col] <= got["expected"] + 1e-9).all()
            np.testing.assert_allclose(got[col], np.minimum(got["expected"], got[money] / got["cost_per_household"]))  # fmt: skip
    # with money for every expected household the need-based split reaches more than the equal one
    s = allocate(_table(*rows), 600_000, config).summary
    assert s["reached_allocation"] > s["reached_equal_split"]


def test_risk_type_mix_prefers_monitored_then_flagged_then_pooled(config):
    monitored = {f"monitored_rt_{t}": 0 for t in RISK_TYPES} | {"monitored_rt_housing": 20, "monitored_rt_illness": 20}  # fmt: skip
    few = {k: v // 4 for k, v in monitored.items()}
    nothing = {f"flagged_{t}": 0 for t in RISK_TYPES}
    rows = [
        _county(CODES[0], 10.0, monitored=20, **monitored),  # 2 mentions per household
        _county(CODES[1], 10.0, monitored=5, **few),  # too few monitored: the flagged mix
        _county(CODES[2], 10.0, flagged=0, **nothing),  # no mix of its own: pooled
    ]
    got = _by_code(allocate(_table(*rows), 1_000_000, config))
    c = config.costs
    assert got.loc[CODES[0], "mix_source"] == "monitored"
    assert got.loc[CODES[0], "measures_per_household"] == pytest.approx(2.0)
    assert got.loc[CODES[0], "cost_per_household"] == pytest.approx(c["housing"] + c["illness"])
    assert got.loc[CODES[1], "mix_source"] == "flagged"
    assert got.loc[CODES[1], "cost_per_household"] == pytest.approx(c["illness"])
    assert got.loc[CODES[2], "mix_source"] == "pooled_monitored"
    shares = got[[f"share_{t}" for t in RISK_TYPES]].sum(axis=1)
    np.testing.assert_allclose(shares, 1.0)
    one = replace(config, count_every_type=False)
    assert _by_code(allocate(_table(*rows), 1_000_000, one)).loc[CODES[0], "cost_per_household"] == pytest.approx((c["housing"] + c["illness"]) / 2)  # fmt: skip


def test_bad_inputs_and_settings_name_the_field(config, tmp_path):
    table = _table(_county(CODES[0], 10.0), _county(CODES[1], 20.0))
    for budget, problem in ((-1, "0 or more"), (10.5, "whole yuan"), (float("nan"), "0 or more"), ("x", "number")):  # fmt: skip
        with pytest.raises(AllocationError, match=problem) as err:
            allocate(table, budget, config)
        assert err.value.field == "budget"
    data = yaml.safe_load(CONFIG_FILE.read_text(encoding="utf-8"))
    del data["costs"]["housing"]
    with pytest.raises(AllocationError, match="missing cost for measure type") as err:
        parse_config(data)
    assert err.value.field == "costs.housing"
    data = yaml.safe_load(CONFIG_FILE.read_text(encoding="utf-8"))
    data["performance"]["penalties"]["overdu"] = 0.1
    with pytest.raises(AllocationError, match="unknown key") as err:
        parse_config(data)
    assert err.value.field == "performance.penalties.overdu"
    data = yaml.safe_load(CONFIG_FILE.read_text(encoding="utf-8"))
    data["weights"]["key_national"] = -0.1
    with pytest.raises(AllocationError, match="weights.key_national"):
        parse_config(data)
    data = yaml.safe_load(CONFIG_FILE.read_text(encoding="utf-8"))
    data["costs"]["flood"] = 100
    with pytest.raises(AllocationError, match="costs.flood"):
        parse_config(data)
    costs = tmp_path / "costs.csv"
    costs.write_text("risk_type,cost_yuan\n" + "".join(f"{t},100\n" for t in RISK_TYPES if t != "other"))  # fmt: skip
    with pytest.raises(AllocationError, match="'costs.other'"):
        load_costs(costs)
    costs.write_text("risk_type,cost_yuan\n" + "".join(f"{t},100\n" for t in RISK_TYPES))
    assert load_costs(costs) == dict.fromkeys(RISK_TYPES, 100.0)
    assets = tmp_path / "assets.csv"
    assets.write_text("county_code,assets_revived,assets_idle\n530326,1,2\n52052,1,1\n")
    with pytest.raises(AllocationError, match="row 1, field 'county_code'"):
        load_assets(assets)
    bad = table.copy()
    bad.loc[1, "expected"] = -3
    with pytest.raises(AllocationError, match="row 1, field 'expected'"):
        allocate(bad, 1000, config)
    with pytest.raises(AllocationError, match="'period'"):
        allocate(table, 1000, config, period="2024-01")
    with pytest.raises(AllocationError, match="'expected'"):
        allocate(_table(_county(CODES[0], 0.0)), 1000, config)


def test_explanation_names_the_configured_weights_chinese_first(config):
    tuned = replace(config, key_national=0.35, bound=0.15)
    zh, en = explanation(tuned, "zh"), explanation(tuned, "en")
    assert "0.35" in zh["steps"][2] and "0.35" in en["steps"][2]
    assert "[0.85, 1.15]" in zh["steps"][3] and "[0.85, 1.15]" in en["steps"][3]
    assert zh["weights"][0][:2] == ("key_national", 0.35)
    assert {k for k, _, _ in en["costs"]} == set(RISK_TYPES)
    text = explanation_markdown(tuned)
    assert text.index("帮扶资金分配公式") < text.index("How the support budget is allocated")
    with pytest.raises(AllocationError, match="lang"):
        explanation(tuned, "fr")


def test_cli_allocates_a_small_regions_output(tmp_path):
    from typer.testing import CliRunner

    from riskml.cli.app import app
    from riskml.regions.run import regional_table
    from riskml.regions.synthetic import synthetic_decisions

    table = regional_table(
        synthetic_decisions(3000, ("2025-05", "2025-06"), village_size=60, seed=4)
    )
    src = tmp_path / "regions.csv"
    table.to_csv(src, index=False)
    out = tmp_path / "alloc" / "allocation.csv"
    runner = CliRunner()
    res = runner.invoke(app, ["allocate", str(src), "--budget", "2000000", "--out", str(out), "--top", "8"])  # fmt: skip
    assert res.exit_code == 0, res.output
    written = pd.read_csv(out, dtype={"county_code": str})
    counties = table[(table["level"] == "county") & (table["period"] == "2025-06")]
    assert set(written["county_code"]) == set(counties["code"])
    assert int(written["allocation"].sum()) == 2_000_000 == int(written["equal_split"].sum())
    assert (written["reached_allocation"] <= written["expected"] + 1e-9).all()
    np.testing.assert_allclose(written.set_index("county_code").loc[counties["code"], "expected"], counties["expected"])  # fmt: skip
    assert out.with_suffix(".png").stat().st_size > 1000
    page = out.with_suffix(".md").read_text(encoding="utf-8")
    assert page.index("帮扶资金分配公式") < page.index("How the support budget") and "allocation.png" in page  # fmt: skip
    assert "households reached" in res.output and "equal split" in res.output
    res = runner.invoke(app, ["allocate", str(src), "--budget", "-5", "--out", str(out)])
    assert res.exit_code == 1 and "field 'budget'" in res.output
    costs = tmp_path / "costs.yaml"
    costs.write_text("costs:\n  illness: 100\n", encoding="utf-8")
    res = runner.invoke(app, ["allocate", str(src), "--budget", "5", "--out", str(out), "--costs", str(costs)])  # fmt: skip
    assert res.exit_code == 1 and "costs.disability" in res.output
    res = runner.invoke(app, ["allocate", str(tmp_path / "none.csv"), "--budget", "5", "--out", str(out)])  # fmt: skip
    assert res.exit_code == 2
