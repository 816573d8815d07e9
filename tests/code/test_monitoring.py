"""Monitoring: PSI and calibration by hand, alerts, outcome joins, the drift scenario, retrain end to end."""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from riskml import monitoring as mon
from riskml.data import schema
from riskml.scoring.decide import ledger_entry

ROOT = Path(__file__).resolve().parents[2]
HOUSEHOLDS = 3000  # per drift sample: PSI noise ~0.005 overall, far below the 0.1 warning


# --------------------------------------------------------------------------- helpers
def _ledger_entries(records: pd.DataFrame, results: list[dict]) -> list[dict]:
    """Ledger entries exactly as the service builds them (riskml.serving.Service.score)."""
    sub = records[list(schema.FIELD_NAMES)]
    dicts = sub.astype(object).where(sub.notna(), None).to_dict("records")
    for d in dicts:
        for k, v in d.items():
            if isinstance(v, np.generic):
                d[k] = v.item()
    return [ledger_entry(rec, res) for rec, res in zip(dicts, results, strict=True)]


def _score_into_ledger(
    ledger, panel: pd.DataFrame, model, version: str = "1"
) -> list[pd.Timestamp]:
    """Score each period of a panel in turn (previous record from the ledger, as the service does).

    Returns the time before each period's write and the time after the last one.
    """
    from riskml.policy.rules import RuleSet
    from riskml.scoring.decide import ModelInfo, decide

    ruleset = RuleSet.load()
    info = ModelInfo("household-risk", version)
    stamps = []
    for period in sorted(panel["period"].unique()):
        rec = panel[panel["period"] == period].reset_index(drop=True)[list(schema.FIELD_NAMES)]
        previous = mon.previous_for(ledger, rec)
        results = decide(rec, previous, model, ruleset, info, explain="none")
        stamps.append(pd.Timestamp.now(tz="UTC"))
        for start in range(0, len(rec), 1000):  # the service answers at most 1,000 per request
            part = slice(start, start + 1000)
            ledger.record(
                _ledger_entries(rec.iloc[part], results[part]),
                caller="scorer:test",
                request_id=f"req-{period}-{start}",
            )
    stamps.append(pd.Timestamp.now(tz="UTC"))
    return stamps


def _entry(hid: str, period: str, county: str = "532328", score: float = 0.1, flagged=False,
           level="green", rules=(), flagged_by="") -> dict:  # fmt: skip
    return {
        "household_id": hid,
        "period": period,
        "county_code": county,
        "village_code": county + "101201",
        "model_name": "household-risk",
        "model_version": "1",
        "rules_version": "test",
        "score": score,
        "risk_level": level,
        "flagged": flagged,
        "flagged_by": flagged_by,
        "record": {"household_id": hid, "period": period, "county_code": county},
        "result": {"rules": [{"id": r} for r in rules]},
    }


# --------------------------------------------------------------------------- PSI and bins
def test_psi_matches_hand_computed_values():
    # (0.25 - 0.5) ln(0.25/0.5) + (0.75 - 0.5) ln(0.75/0.5) = 0.25 ln 2 + 0.25 ln 1.5
    assert mon.psi([0.5, 0.5], [0.25, 0.75]) == pytest.approx(
        0.25 * math.log(2) + 0.25 * math.log(1.5)
    )
    assert mon.psi([0.5, 0.5], [0.25, 0.75]) == pytest.approx(0.274653, abs=1e-6)
    # an empty bin is floored at eps = 1e-4: (0.4-0.5) ln(0.4/0.5) + (0.1-1e-4) ln(0.1/1e-4)
    expected = -0.1 * math.log(0.8) + (0.1 - 1e-4) * math.log(0.1 / 1e-4)
    assert mon.psi([0.5, 0.5, 0.0], [0.5, 0.4, 0.1]) == pytest.approx(expected)
    assert mon.psi([0.5, 0.5, 0.0], [0.5, 0.4, 0.1]) == pytest.approx(0.712399, abs=1e-6)
    assert mon.psi([0.2, 0.3, 0.5], [0.2, 0.3, 0.5]) == 0.0
    # symmetric in its arguments
    assert mon.psi([0.1, 0.9], [0.3, 0.7]) == pytest.approx(mon.psi([0.3, 0.7], [0.1, 0.9]))
    with pytest.raises(ValueError):
        mon.psi([0.5, 0.5], [1.0])


def test_bins_are_training_quantiles_with_missing_as_its_own_bin():
    x = np.array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, np.nan, np.nan], dtype=float)
    edges = mon.quantile_edges(x, bins=2)
    assert edges == [5.0]  # bins: <= 5, > 5, missing
    np.testing.assert_allclose(mon.bin_proportions(x, edges), [5 / 12, 5 / 12, 2 / 12])
    # a 0/1 flag gets two bins (ties collapse), plus the empty "above" bin and missing
    flag = np.array([0] * 8 + [1] * 2, dtype=float)
    assert mon.quantile_edges(flag) == [0.0, 1.0]
    np.testing.assert_allclose(mon.bin_proportions(flag, [0.0, 1.0]), [0.8, 0.2, 0.0, 0.0])
    # values beyond the training range fall in the outer bins
    np.testing.assert_allclose(mon.bin_proportions([-100.0, 100.0], [5.0]), [0.5, 0.5, 0.0])
    # fixed score bins: right-closed, 0 in the first
    hist = mon.score_histogram([0.0, 0.01, 0.015, 0.99, 1.0])
    assert hist[0] == pytest.approx(0.4) and hist[2 - 1] == pytest.approx(0.2)
    assert hist[-1] == pytest.approx(0.4) and hist.sum() == pytest.approx(1.0)


def test_reference_profile_is_json_and_profiles_change_features_on_rows_with_a_previous():
    records = pd.DataFrame(
        {
            "county_code": ["532328"] * 4 + ["410101"] * 4,
            "period": ["2022-06"] * 8,
            "debt": [1.0, None, 3.0, 4.0, 5.0, 6.0, None, 8.0],
        }
    )
    features = pd.DataFrame(
        {
            "head_age": [30, 40, 50, 60, 30, 40, 50, 60],
            "has_previous": [1, 1, 0, 0, 1, 1, 1, 1],
            "income_change": [0.1, 0.2, np.nan, np.nan, 0.3, 0.4, 0.5, np.nan],
        },
        dtype=float,
    )
    scores = np.array([0.01, 0.02, 0.05, 0.2, 0.3, 0.5, 0.6, 0.9])
    prof = mon.reference_profile(
        features,
        scores,
        records,
        thresholds={"flag": 0.5, "red": 0.8, "flag_capacity": 0.1, "red_capacity": 0.03},
    )
    json.dumps(prof, allow_nan=False)  # plain JSON, no NaN
    assert "has_previous" not in prof["features"]
    assert prof["previous_coverage"] == pytest.approx(0.75)
    ic = prof["features"]["income_change"]
    assert (
        ic["n"] == 6 and ic["rows"] == "with_previous"
    )  # the two rows without a previous are left out
    assert ic["missing_rate"] == pytest.approx(1 / 6)
    assert sum(ic["proportions"]) == pytest.approx(1.0)
    assert prof["provinces"]["53"]["n"] == 4 and prof["provinces"]["41"]["n"] == 4
    assert prof["missing"]["debt"] == pytest.approx(2 / 8)
    assert prof["score"]["flag_rate"] == pytest.approx(3 / 8)  # 0.5, 0.6, 0.9
    assert prof["score"]["red_rate"] == pytest.approx(1 / 8)
    assert prof["periods"] == ["2022-06"]


def test_trained_model_carries_its_profile_and_saves_it(trained, tmp_path):
    from riskml.model.risk_model import RiskModel

    prof = trained.model.profile
    assert prof is not None and prof["periods"] == trained.splits.train_periods
    assert prof["rows"] == trained.row_counts["train_rows"]
    assert set(prof["features"]) == set(trained.model.feature_names) - {"has_previous", "h_n_lags"}
    folder = trained.model.save(tmp_path / "m")
    assert (folder / "profile.json").exists()
    assert RiskModel.load(folder).profile == json.loads(json.dumps(prof))
    # a model folder without profile.json (trained before monitoring) still loads
    (folder / "profile.json").unlink()
    assert RiskModel.load(folder).profile is None


# --------------------------------------------------------------------------- calibration by hand
def test_ece_and_reliability_table_match_hand_computed_values():
    from riskml.model.metrics import expected_calibration_error, reliability_table

    y = np.array([0, 0, 0, 1, 0, 1, 1, 1])
    p = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8])
    table = reliability_table(y, p, bins=2)
    # bin 0: mean score 0.25, observed 1/4; bin 1: mean score 0.65, observed 3/4
    np.testing.assert_allclose(table["mean_score"], [0.25, 0.65])
    np.testing.assert_allclose(table["observed_rate"], [0.25, 0.75])
    # ECE = 0.5 × |0.25 − 0.25| + 0.5 × |0.65 − 0.75| = 0.05
    assert expected_calibration_error(y, p, bins=2) == pytest.approx(0.05)


def test_realised_metrics_by_hand_pending_never_counts_as_negative():
    # 12 decisions of one period: 10 with an outcome (9 matched, 1 late), 1 pending, 1 overdue
    score = np.array([0.95, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05, 0.01])
    status = ["matched", "pending", "late", "matched", "matched", "matched", "matched", "matched",
              "matched", "matched", "overdue", "matched"]  # fmt: skip
    at_risk = [1, np.nan, 0, 1, 0, 1, 0, 0, 0, 0, np.nan, 1]
    joined = pd.DataFrame(
        {
            "household_id": [f"H{i}" for i in range(12)],
            "period": "2024-06",
            "county_code": ["532328"] * 6 + ["410101"] * 6,
            "score": score,
            "status": status,
            "at_risk": at_risk,
        }
    )
    by_period, by_county, rel = mon.realised_metrics(joined, capacity=0.25)
    r = by_period.iloc[0]
    assert (r["decisions"], r["matched"], r["late"], r["pending"], r["overdue"]) == (12, 9, 1, 1, 1)
    assert r["with_outcome"] == 10 and r["positives"] == 4
    # capacity 25% of all 12 scored households = top 3 by score: H0 (1), H1 (pending), H2 (0)
    # recall = 1 of 4 positives with an outcome; precision = 1 of the 2 selected with an outcome
    assert r["recall_at_capacity"] == pytest.approx(0.25)
    assert r["precision_at_capacity"] == pytest.approx(0.5)
    # per county, each its own top ceil(0.25 × 6) = 2: county 53 selects H0, H1; county 41 H6, H7
    # selected with an outcome: H0 (1), H6 (0), H7 (0) -> recall 1/4, precision 1/3
    assert r["recall_at_capacity_per_county"] == pytest.approx(0.25)
    assert r["precision_at_capacity_per_county"] == pytest.approx(1 / 3)
    # AUC over the 10 with an outcome, by hand: pairs (positive, negative) ordered correctly
    known = ~np.isnan(np.array(at_risk, dtype=float))
    yk, pk = np.array(at_risk, dtype=float)[known], score[known]
    pos, neg = pk[yk == 1], pk[yk == 0]
    auc = np.mean([1.0 if a > b else 0.5 if a == b else 0.0 for a in pos for b in neg])
    assert r["roc_auc"] == pytest.approx(auc)
    # ECE with 10 bins over 10 outcomes = one per bin = mean |score − outcome|
    assert r["ece"] == pytest.approx(np.mean(np.abs(pk - yk)))
    assert len(rel["2024-06"]) == 10
    assert set(by_county["county_code"]) == {"532328", "410101"}
    assert by_county.set_index("county_code").loc["410101", "with_outcome"] == 5


# --------------------------------------------------------------------------- flag rates
def test_flag_rates_alert_on_a_real_change_and_stay_quiet_on_noise():
    cfg = mon.MonitorConfig()
    rng = np.random.default_rng(0)

    def frame(n, p_flag, p_rule):
        flagged = rng.random(n) < p_flag
        rule = flagged & (rng.random(n) < p_rule)
        return pd.DataFrame(
            {
                "flagged": flagged,
                "flagged_by": np.where(flagged, "rules", ""),
                "risk_level": np.where(flagged, "yellow", "green"),
                "county_code": "532328",
                "result": [{"rules": [{"id": "disaster_loss"}] if r else []} for r in rule],
            }
        )

    before = frame(3000, 0.20, 0.1)
    quiet = mon.flag_rates(frame(3000, 0.20, 0.1), before, cfg)
    assert (quiet["level"] == "ok").all(), quiet
    loud = mon.flag_rates(frame(3000, 0.40, 0.5), before, cfg).set_index(["kind", "key"])
    assert loud.loc[("overall", "flagged"), "level"] == "alert"
    assert loud.loc[("rule", "disaster_loss"), "level"] == "alert"
    assert loud.loc[("overall", "flagged"), "change"] == pytest.approx(
        loud.loc[("overall", "flagged"), "rate"] - loud.loc[("overall", "flagged"), "rate_previous"]
    )
    # a large change in a small county is not judged (fewer rows than county_min_rows)
    small = mon.flag_rates(frame(50, 0.9, 0.0), frame(50, 0.1, 0.0), cfg).set_index(["kind", "key"])
    assert small.loc[("county", "532328"), "level"] == "ok"
    assert small.loc[("overall", "flagged"), "level"] == "alert"


# --------------------------------------------------------------------------- outcomes
def test_outcome_join_matched_late_pending_overdue_and_unmatched(tmp_path):
    from riskml.store.ledger import Ledger

    led = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    led.record(
        [_entry(h, "2024-06", score=s) for h, s in (("A", 0.9), ("B", 0.5), ("C", 0.2), ("D", 0.1))]
        + [_entry("A", "2025-06", score=0.3)],
        caller="scorer:test",
        request_id="r1",
    )
    store = mon.OutcomeStore(led)
    # outcomes observed 2025-06 belong to the decisions of 2024-06; due 2025-07-01 + 60 days
    assert mon.due_date("2024-06") == pd.Timestamp("2025-08-30", tz="UTC")
    on_time = pd.DataFrame({"household_id": ["A", "Z"], "period": "2025-06", "at_risk": [1, 0]})
    counts = store.add(mon.outcomes_from_frame(on_time), source="a.csv", loaded_at="2025-07-15")
    assert counts == {"stored": 2, "already_stored": 0, "rows": 2}
    late = pd.DataFrame({"household_id": ["B"], "period": ["2025-06"], "at_risk": [0]})
    store.add(mon.outcomes_from_frame(late), source="b.csv", loaded_at="2025-10-01")

    decided = mon.completed_decisions(led.decisions_frame(expand_records=False))
    outcomes = store.frame()
    assert set(outcomes["decision_period"]) == {"2024-06"}
    before_due = mon.join_outcomes(decided, outcomes, as_of="2025-08-01").set_index(
        ["household_id", "period"]
    )
    assert before_due.loc[("A", "2024-06"), "status"] == "matched"
    assert before_due.loc[("B", "2024-06"), "status"] == "late"
    assert before_due.loc[("C", "2024-06"), "status"] == "pending"  # not due yet: never a negative
    assert math.isnan(before_due.loc[("C", "2024-06"), "at_risk"])
    assert before_due.loc[("A", "2025-06"), "status"] == "pending"
    after_due = mon.join_outcomes(decided, outcomes, as_of="2025-09-30").set_index(
        ["household_id", "period"]
    )
    assert after_due.loc[("C", "2024-06"), "status"] == "overdue"
    assert after_due.loc[("A", "2025-06"), "status"] == "pending"
    # Z has an outcome but no decision 12 months earlier: it joins nothing
    assert "Z" not in set(after_due.index.get_level_values(0))

    # loading the same outcome again is skipped; a different value is refused, nothing stored
    again = store.add(mon.outcomes_from_frame(on_time), source="a.csv")
    assert again["stored"] == 0 and again["already_stored"] == 2
    changed = pd.DataFrame({"household_id": ["A", "D"], "period": "2025-06", "at_risk": [0, 1]})
    with pytest.raises(mon.OutcomeError, match="differ from stored"):
        store.add(mon.outcomes_from_frame(changed))
    assert len(store.frame()) == 3  # D was not stored either
    clash = pd.DataFrame({"household_id": ["D", "D"], "period": "2025-06", "at_risk": [0, 1]})
    with pytest.raises(mon.OutcomeError, match="different outcomes in the file"):
        store.add(mon.outcomes_from_frame(clash))
    # insert-only
    led.close()
    con = sqlite3.connect(tmp_path / "ledger.db")
    with pytest.raises(sqlite3.DatabaseError, match="insert-only"):
        con.execute("UPDATE outcomes SET at_risk = 0")
    with pytest.raises(sqlite3.DatabaseError, match="insert-only"):
        con.execute("DELETE FROM outcomes")
    con.close()


def test_load_outcomes_from_labels_or_from_the_later_records(sample_panel, lines, tmp_path):
    # full later records: the label is measured on the record and joins the decision 12 months earlier
    later = sample_panel[sample_panel["period"] == "2025-06"].head(400)
    path = tmp_path / "later.parquet"
    later.to_parquet(path)
    got = mon.load_outcomes(path, lines)
    assert set(got["period"]) == {"2025-06"} and set(got["decision_period"]) == {"2024-06"}
    earlier = sample_panel[sample_panel["period"] == "2024-06"].set_index("household_id")[
        "at_risk_next"
    ]
    expected = earlier.reindex(got["household_id"]).to_numpy()
    np.testing.assert_array_equal(got["at_risk"].to_numpy(), expected)  # same label as training
    # at_risk_next (the contract's label of the record at period) joins the decision *at* period
    labelled = pd.DataFrame(
        {"household_id": ["A", "B"], "period": "2024-06", "at_risk_next": [1, None]}
    )
    got = mon.outcomes_from_frame(labelled)
    assert got.to_dict("records") == [
        {"household_id": "A", "period": "2025-06", "decision_period": "2024-06", "at_risk": 1}
    ]
    with pytest.raises(ValueError, match="0 or 1"):
        mon.outcomes_from_frame(
            pd.DataFrame({"household_id": ["A"], "period": ["2025-06"], "at_risk": [2]})
        )
    with pytest.raises(ValueError, match="need at_risk"):
        mon.outcomes_from_frame(pd.DataFrame({"household_id": ["A"], "period": ["2025-06"]}))


# --------------------------------------------------------------------------- the drift scenario
def _shift_scenario():
    from riskml.data.simulate import DisasterEvent, EmploymentShock, Scenario

    return Scenario(
        name="disaster-and-job-shock-2025",
        # a new large disaster region (Yunnan and Guizhou) and a migrant-work collapse in 2025
        disasters=(DisasterEvent("53", 2025, 0.8), DisasterEvent("52", 2025, 0.7)),
        employment_shocks=(
            EmploymentShock(2020),
            EmploymentShock(2025, wage_drop=0.3, months_lost=3.0, return_share=0.3),
        ),
    )


@pytest.fixture(scope="module")
def drift_ledgers(trained, tmp_path_factory):
    """Two ledgers of the same size and seed: 2023 (warm-up), 2024 (previous window), 2025 (window).

    The shifted one differs only by the 2025 shocks of the scenario.
    """
    from riskml.data.simulate import simulate_panel
    from riskml.store.ledger import Ledger

    folder = tmp_path_factory.mktemp("drift")
    out = {}
    for name, scenario in (("unshifted", None), ("shifted", _shift_scenario())):
        panel = simulate_panel(
            HOUSEHOLDS, 3, seed=11, start_year=2023, oracle_draws=0, scenario=scenario
        )
        url = f"sqlite:///{folder / name}.db"
        with Ledger(url) as led:
            stamps = _score_into_ledger(led, panel, trained.model)
        out[name] = {"url": url, "panel": panel, "stamps": stamps}
    # the same households and records up to 2024: only the 2025 shocks differ
    cols = list(schema.FIELD_NAMES)
    before = [out[k]["panel"].query("period < '2025-06'")[cols].reset_index(drop=True) for k in out]
    pd.testing.assert_frame_equal(before[0], before[1])
    return out


def _window(stamps):
    # window: the 2025 decisions; previous window: the 2024 ones
    return {"since": stamps[2], "until": stamps[3], "previous_since": stamps[1]}


def test_drift_scenario_alerts_on_shifted_data_and_stays_quiet_on_unshifted(
    drift_ledgers, trained, tmp_path
):
    results = {}
    for name, d in drift_ledgers.items():
        result, run_id = mon.run(
            d["url"],
            model=trained.model,
            model_info={"name": "household-risk", "version": "1", "uri": "fixture"},
            **_window(d["stamps"]),
            report=tmp_path / f"{name}.html",
            log_mlflow=False,
        )
        results[name] = result
        assert run_id is None
        assert result.counts["decisions"] == len(d["panel"].query("period == '2025-06'"))
        assert result.counts["decisions_previous"] == len(d["panel"].query("period == '2024-06'"))
        # features rebuilt from the ledger (previous record looked up as the service does) give
        # exactly the served scores
        assert result.counts["rescored_max_abs_diff"] < 1e-9
        assert result.counts["previous_coverage"] > 0.99
        assert (tmp_path / f"{name}.html").read_text().startswith("<!doctype html>")
    quiet, loud = results["unshifted"], results["shifted"]

    assert quiet.exit_code == 0, [a.message for a in quiet.alerted]
    assert quiet.alerted == []
    overall = quiet.feature_drift.query("scope == 'all' and judged")
    assert overall["psi"].max() < 0.25 and quiet.score["psi"] < 0.05
    assert quiet.flag_rates.query("kind != 'county'")["level"].eq("ok").all()

    assert loud.exit_code == 2
    alerted = {(a.check, a.subject) for a in loud.alerted}
    assert ("feature_psi", "loss_to_income [overall]") in alerted
    assert ("feature_psi", "loss_pc_to_line [province 53]") in alerted
    assert ("flag_rate_rule", "disaster_loss") in alerted
    assert ("flag_rate_overall", "flagged") in alerted
    assert loud.score["psi"] > 3 * quiet.score["psi"]
    top = loud.top_drift(3)
    assert "loss_to_income" in set(top["feature"]) or "loss_pc_to_line" in set(top["feature"])
    # monitoring_line moves by policy every year: shown, never alerting
    line = quiet.feature_drift.query("feature == 'monitoring_line' and scope == 'all'").iloc[0]
    assert line["excluded"] and line["level"] == "ok"


def test_monitor_cli_report_mlflow_run_and_exit_codes(drift_ledgers, registered, tmp_path):
    from typer.testing import CliRunner

    import riskml.cli.monitor  # noqa: F401  (registers the commands)
    from riskml.cli.app import app
    from riskml.training import registry

    runner = CliRunner()
    codes = {}
    for name, d in drift_ledgers.items():
        w = _window(d["stamps"])
        args = ["monitor", "--ledger", d["url"], "--since", w["since"].isoformat(),
                "--until", w["until"].isoformat(), "--previous-since", w["previous_since"].isoformat(),
                "--report", str(tmp_path / f"{name}.html"), "--json", str(tmp_path / f"{name}.json")]  # fmt: skip
        res = runner.invoke(app, args)
        codes[name] = res.exit_code
        assert res.exit_code in (0, 2), res.output
        summary = json.loads((tmp_path / f"{name}.json").read_text())
        assert summary["model"]["version"] == registered.version
        html = (tmp_path / f"{name}.html").read_text()
        assert html.count("data:image/png;base64,") >= 3  # drift, score histogram, flag rates
        run = registry.client_().get_run(summary["mlflow_run_id"])
        assert run.data.tags["riskml.model_version"] == registered.version
        assert run.data.tags["riskml.window_since"] == pd.Timestamp(w["since"]).isoformat()
        assert "score_psi" in run.data.metrics and "psi_loss_to_income" in run.data.metrics
        arts = {a.path for a in registry.client_().list_artifacts(run.info.run_id)}
        assert {"monitoring_report.html", "plots", "alerts.json"} <= arts
        plots = {a.path for a in registry.client_().list_artifacts(run.info.run_id, "plots")}
        assert {
            "plots/feature_drift.png",
            "plots/score_histogram.png",
            "plots/flag_rates_over_time.png",
        } <= plots
    assert codes == {"unshifted": 0, "shifted": 2}
    exp = registry.client_().get_experiment_by_name(mon.MONITORING_EXPERIMENT)
    assert exp is not None
    # an unknown model is an error (1), never an alert (2)
    res = runner.invoke(app, ["monitor", "--ledger", drift_ledgers["shifted"]["url"], "--model",
                              "models:/no-such-model@champion", "--no-mlflow"])  # fmt: skip
    assert res.exit_code == 1


def test_missing_values_and_realised_floors_alert(drift_ledgers, trained, tmp_path):
    """A small ledger: outcomes joined and judged; a field going missing alerts; floors alert."""
    from typer.testing import CliRunner

    import riskml.cli.monitor  # noqa: F401
    from riskml.cli.app import app
    from riskml.store.ledger import Ledger

    panel = drift_ledgers["unshifted"]["panel"]
    keep = panel["household_id"].isin(panel["household_id"].unique()[:1200])
    panel = panel[keep].copy()
    last = (panel["period"] == "2025-06").to_numpy(dtype=bool)
    # a data feed breaks in 2025: income_property stops arriving for a third of households
    broken = last & (np.cumsum(last) % 3 == 0)
    panel.loc[broken, "income_property"] = np.nan
    url = f"sqlite:///{tmp_path / 'small.db'}"
    with Ledger(url) as led:
        stamps = _score_into_ledger(led, panel, trained.model)
    # outcomes: the 2024 and 2025 records are the later records of the 2023 and 2024 decisions
    later = drift_ledgers["unshifted"]["panel"]
    later = later[
        later["household_id"].isin(panel["household_id"]) & (later["period"] >= "2024-06")
    ]
    later_file = tmp_path / "later.parquet"
    later.drop(columns=["at_risk_next", "oracle_p"]).to_parquet(later_file)
    runner = CliRunner()
    res = runner.invoke(app, ["outcomes", str(later_file), "--ledger", url])
    assert res.exit_code == 0, res.output
    assert "stored" in res.output
    res = runner.invoke(app, ["outcomes", str(later_file), "--ledger", url])
    assert res.exit_code == 0 and "already stored" in res.output

    cfg_path = tmp_path / "monitoring.yaml"
    raw = yaml.safe_load((ROOT / "training" / "monitoring.yaml").read_text())
    raw["outcomes"]["min_matched"] = 300
    raw["outcomes"]["min_positives"] = 10
    cfg_path.write_text(yaml.safe_dump(raw))
    result, _ = mon.run(url, model=trained.model, model_info={"name": "household-risk", "version": "1"},
                        **_window(stamps), config_path=cfg_path, log_mlflow=False,
                        as_of=pd.Timestamp("2026-01-01", tz="UTC"))  # fmt: skip
    alerted = {(a.check, a.subject) for a in result.alerted}
    assert ("missing_rate", "income_property") in alerted
    miss = result.missing.set_index("field").loc["income_property"]
    expected = panel.loc[last, "income_property"].isna().mean()  # the broken third + the usual 1%
    assert miss["window"] == pytest.approx(expected, abs=1e-12) and expected > 1 / 3
    # outcomes: the 2023 and 2024 decisions are matched (loaded now, long after due: late), 2025 pending
    bp = result.outcomes["by_period"].set_index("period")
    assert bp.loc["2025-06", "pending"] == bp.loc["2025-06", "decisions"]
    assert bp.loc["2024-06", "with_outcome"] > 0.95 * bp.loc["2024-06", "decisions"]
    assert result.outcomes["latest_period"] == "2024-06"
    latest = result.outcomes["latest"]
    assert 0.7 < latest["roc_auc"] < 1.0  # honest, held-out: the model never saw these households
    assert not any(a.check.startswith("realised_") for a in result.alerted)
    # the same outcomes judged against impossible floors alert
    raw["outcomes"]["auc_floor"] = 0.99
    raw["outcomes"]["recall_floor"] = 0.99
    cfg_path.write_text(yaml.safe_dump(raw))
    strict, _ = mon.run(url, model=trained.model, **_window(stamps), config_path=cfg_path,
                        log_mlflow=False, as_of=pd.Timestamp("2026-01-01", tz="UTC"))  # fmt: skip
    checks = {a.check for a in strict.alerted}
    assert {"realised_roc_auc", "realised_recall_at_capacity"} <= checks
    assert strict.exit_code == 2


# --------------------------------------------------------------------------- retrain end to end
def test_retrain_registers_a_challenger_and_the_gate_decides(trained, small_config, tmp_path):
    from typer.testing import CliRunner

    import riskml.cli.monitor  # noqa: F401
    from riskml.cli.app import app
    from riskml.training import registry

    name = "household-risk-retrain-test"  # its own registered model: the session's champion is untouched
    raw = yaml.safe_load((ROOT / "training" / "default.yaml").read_text())
    raw["registry"] = {"model_name": name}
    raw["data"]["min_positives"] = small_config.min_positives
    raw["model"]["num_boost_round"] = small_config.num_boost_round
    raw["model"]["params"].update(min_data_in_leaf=40, learning_rate=0.08)
    cfg_file = tmp_path / "train.yaml"
    cfg_file.write_text(yaml.safe_dump(raw))
    # version 1 (champion by default): the session's trained model under this name
    cfg = type(small_config).from_yaml(cfg_file)
    first = registry.log_training_run(
        trained, cfg, data_path=ROOT / "data" / "sample" / "panel.parquet"
    )
    assert first.version == "1" and "champion" in first.aliases

    runner = CliRunner()
    data = str(ROOT / "data" / "sample" / "panel.parquet")
    res = runner.invoke(app, ["retrain", "--config", str(cfg_file), "--data", data,
                              "--summary", str(tmp_path / "s1.json")])  # fmt: skip
    assert res.exit_code == 0, res.output
    s1 = json.loads((tmp_path / "s1.json").read_text())
    # the same config on the same data retrains the same model: not worse, so promoted
    assert s1["challenger_version"] == "2" and s1["outcome"] == "promoted", s1
    assert [r["metric"] for r in s1["comparison"]] == [
        "model_recall_at_10",
        "test_roc_auc",
        "test_ece",
        "gain_vs_naive_fallin_roc_auc",  # the challenger must beat the naive score on fall-in
    ]
    assert registry.resolve_alias(name, "champion")["version"] == "2"

    # a deliberately weak challenger: the gate keeps the champion, and the job still exits 0
    raw["model"]["num_boost_round"] = 3
    raw["model"]["params"].update(max_depth=1, num_leaves=2, learning_rate=0.01)
    raw["model"]["params"].pop("monotone", None)
    cfg_file.write_text(yaml.safe_dump(raw))
    res = runner.invoke(app, ["retrain", "--config", str(cfg_file), "--data", data,
                              "--summary", str(tmp_path / "s2.json")])  # fmt: skip
    assert res.exit_code == 0, res.output
    s2 = json.loads((tmp_path / "s2.json").read_text())
    assert s2["outcome"] == "kept" and s2["gate"] == "failed" and s2["challenger_version"] == "3"
    assert "not promoted" in s2["message"]
    assert registry.resolve_alias(name, "champion")["version"] == "2"
    assert registry.resolve_alias(name, "challenger")["version"] == "3"
    tag = registry.client_().get_model_version(name, "3").tags["riskml.gate"]
    assert tag.startswith("failed")
    # --force without --reason is refused
    res = runner.invoke(app, ["retrain", "--config", str(cfg_file), "--data", data, "--force"])
    assert res.exit_code == 1
