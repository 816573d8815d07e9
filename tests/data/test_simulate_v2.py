"""Simulator version 2: determinism, schema, persistence, measurement error, support, v1 unchanged."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from riskml.data import schema
from riskml.data.label import label_panel, net_income
from riskml.data.reference import default_lines
from riskml.data.simulate import V2Params, simulate_panel
from riskml.data.simulate.detection import rule_score
from riskml.data.simulate.latent import Latent
from riskml.data.simulate.reporting import report_incomes
from riskml.model.features import FEATURE_NAMES

HOUSEHOLDS, YEARS, SEED, DRAWS = 3000, 5, 42, 8
# sha256 of pd.util.hash_pandas_object(simulate_panel(400, 3, 11, oracle_draws=4)),
# computed before version 2 was added: version 1's output must not change
V1_HASH = "53c69e4cff45839d155205980e12b5c541ab1017bc5a06038d9591877c8bfcf2"
NO_SUPPORT = V2Params(support_pc_line=0.0, medical_cover=0.0, loss_cover=0.0)


@pytest.fixture(scope="module")
def panel() -> pd.DataFrame:
    return simulate_panel(HOUSEHOLDS, YEARS, SEED, oracle_draws=DRAWS, version=2)


def _line(df: pd.DataFrame) -> np.ndarray:
    year = df["period"].str.slice(0, 4).astype(int)
    return (
        default_lines()
        .for_frame(df["county_code"].str.slice(0, 2), year)["monitoring_line"]
        .to_numpy()
    )


def test_version_1_output_is_unchanged():
    p = simulate_panel(400, 3, 11, oracle_draws=4)
    digest = hashlib.sha256(pd.util.hash_pandas_object(p, index=True).values.tobytes())
    assert digest.hexdigest() == V1_HASH
    assert "detected" not in p.columns
    assert "simulator_version" not in p.attrs


def test_unknown_version_is_refused():
    with pytest.raises(ValueError, match="version"):
        simulate_panel(10, 2, 1, oracle_draws=0, version=3)


def test_same_seed_gives_the_same_panel_and_threads_do_not_matter():
    a = simulate_panel(2500, 3, 7, oracle_draws=2, version=2, workers=1)
    b = simulate_panel(2500, 3, 7, oracle_draws=2, version=2, workers=2)
    pd.testing.assert_frame_equal(a, b)
    c = simulate_panel(2500, 3, 8, oracle_draws=2, version=2)
    assert not a["income_wage"].equals(c["income_wage"])
    no_oracle = simulate_panel(2500, 3, 7, oracle_draws=0, version=2)
    pd.testing.assert_frame_equal(a.drop(columns="oracle_p"), no_oracle.drop(columns="oracle_p"))


def test_panel_is_valid_and_marks_its_version(panel):
    assert schema.validate_frame(panel) == []
    schema.require_valid(panel)  # raises on any invalid record
    assert panel.attrs["simulator_version"] == 2
    assert str(panel["detected"].dtype) == "boolean"
    assert "detected" not in FEATURE_NAMES  # the system's decision is not a model feature
    assert panel["oracle_p"].between(0, 1).all()
    assert not panel.duplicated(["household_id", "period"]).any()


def test_label_is_the_contract_label_on_the_reported_records(panel):
    again = label_panel(panel, default_lines())
    pd.testing.assert_series_equal(panel["at_risk_next"], again, check_names=False)
    rate = panel["at_risk_next"].mean()
    assert 0.06 < rate < 0.18


def test_income_persists_from_year_to_year(panel):
    ni = net_income(panel)
    log_income = np.log(ni.where(ni > 0))
    following = log_income.groupby(panel["household_id"]).shift(-1)
    ok = log_income.notna() & following.notna()
    corr = np.corrcoef(log_income[ok], following[ok])[0, 1]
    assert 0.4 < corr < 0.9


def test_reported_income_carries_measurement_error():
    n = 20_000
    rng = np.random.default_rng(0)
    true = {
        name: np.full(n, 20_000.0, np.float32)
        for name in ("income_wage", "income_business", "income_property", "income_transfer")
    }
    lat = Latent(
        resilience=np.zeros(n, np.float32),
        deviation=np.zeros(n, np.float32),
        underreport=np.arange(n) % 2 == 0,
        heaping=np.arange(n) % 4 < 2,
        supported=np.zeros(n, bool),
    )
    p = V2Params()
    rep = report_incomes(true, lat, p, rng)
    honest = ~lat.underreport & ~lat.heaping
    log_ratio = np.log(rep["income_wage"][honest] / 20_000)
    assert abs(log_ratio.std() - p.report_sd_wage) < 0.01
    assert abs(np.exp(log_ratio).mean() - 1) < 0.01  # unbiased for honest reporters
    under = lat.underreport & ~lat.heaping
    ratio = rep["income_wage"][under].mean() / rep["income_wage"][honest].mean()
    assert abs(ratio - p.underreport_factor) < 0.02
    assert (rep["income_wage"][lat.heaping] % p.heaping_unit == 0).all()
    assert (rep["income_wage"][honest] % p.heaping_unit != 0).mean() > 0.9
    # transfers are known to the administration: a small error only
    assert np.log(rep["income_transfer"][honest] / 20_000).std() < 0.07


def test_panel_incomes_are_heaped_unlike_version_1(panel):
    v1 = simulate_panel(HOUSEHOLDS, 2, SEED, oracle_draws=0)
    heaped = lambda df: ((df["income_wage"] % 500 == 0) & (df["income_wage"] != 0)).mean()  # noqa: E731
    assert heaped(panel) > 0.2
    assert heaped(v1) < 0.01


def _support_gap(df: pd.DataFrame) -> float:
    """Fall rate of detected minus undetected households with a similar rule score (weighted)."""
    needed = (
        *("income_wage", "income_business", "income_property", "income_transfer"),
        *("medical_expense", "education_expense", "disaster_loss", "household_size"),
        *("chronic_ill_count", "disabled_count", "labor_count"),
    )
    rec = {c: df[c].astype(float).to_numpy() for c in needed}
    d = pd.DataFrame(
        {
            "s": rule_score(rec, _line(df)),
            "det": df["detected"].astype(bool),
            "y": df["at_risk_next"],
        }
    ).dropna()
    d = d[d["s"] > 0.3]
    d["bin"] = pd.qcut(d["s"], 10, duplicates="drop")
    g = d.groupby(["bin", "det"], observed=True)["y"].agg(["mean", "size"]).unstack("det").dropna()
    w = np.minimum(g[("size", True)], g[("size", False)])
    return float(((g[("mean", True)] - g[("mean", False)]) * w).sum() / w.sum())


def test_support_after_detection_lowers_next_year_risk(panel):
    assert 0.05 < panel["detected"].mean() < 0.09  # capacity 8% of living households
    with_support = _support_gap(panel)
    without = _support_gap(
        simulate_panel(HOUSEHOLDS, YEARS, SEED, oracle_draws=0, version=2, v2_params=NO_SUPPORT)
    )
    assert with_support < -0.05
    assert with_support < without - 0.1


def test_oracle_is_calibrated_and_beats_the_naive_score(panel):
    d = panel[panel["at_risk_next"].notna()]
    assert abs(d["oracle_p"].mean() - d["at_risk_next"].mean()) < 0.015
    pc = net_income(d) / d["household_size"].astype(float) / _line(d)
    ok = pc.notna()
    y = d.loc[ok, "at_risk_next"]
    assert roc_auc_score(y, d.loc[ok, "oracle_p"]) > roc_auc_score(y, -pc[ok]) + 0.03


def test_cli_simulates_version_2(tmp_path: Path):
    out = tmp_path / "v2.csv"
    riskml = [str(Path(sys.executable).parent / "riskml")]
    r = subprocess.run(
        [
            *riskml,
            "simulate",
            "-n",
            "200",
            "-y",
            "2",
            "-s",
            "3",
            "-o",
            str(out),
            "--version",
            "2",
            "--oracle-draws",
            "2",
            "-q",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert "simulator version 2" in r.stdout
    assert "detected" in pd.read_csv(out, nrows=1).columns
