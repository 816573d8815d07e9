"""Code tests: decide() on hand-made records with the session's trained model (rules beside the score)."""

from __future__ import annotations

import math

import pytest

from riskml.data import schema
from riskml.policy.rules import default_ruleset
from riskml.scoring.decide import MONITORING_TYPES, ModelInfo, decide
from tests.data.test_schema import good_record

INFO = ModelInfo("household-risk", "test")


def _decide(model, *records, explain="flagged", previous=None):
    frame = schema.records_to_frame(list(records))
    prev = schema.records_to_frame(list(previous)) if previous else None
    return decide(frame, prev, model, default_ruleset(), INFO, explain=explain)


@pytest.fixture(scope="module")
def model(trained):
    return trained.model


def test_a_red_rule_flags_whatever_the_score(model):
    (r,) = _decide(model, good_record(medical_expense=40000.0))
    assert r["flagged"] and "rules" in r["flagged_by"] and r["risk_level"] == "red"
    fired = {x["id"] for x in r["rules"]}
    assert "medical_amount" in fired
    assert r["risk_types"][0] == "illness"
    assert r["measures"], "a flagged household gets the measures of its risk types"
    assert r["monitoring_type"] in MONITORING_TYPES.values()
    assert (r["model_name"], r["model_version"], r["rules_version"]) == (
        "household-risk", "test", default_ruleset().version,
    )  # fmt: skip


def test_flagged_is_rules_or_score_at_the_operating_threshold(model, sample_panel):
    records = schema.to_json_records(sample_panel.head(400))
    results = _decide(model, *records)
    for r in results:
        by_model = r["score"] >= model.thresholds.flag
        assert r["flagged"] == (bool(r["rules"]) or by_model)
        assert ("model" in r["flagged_by"]) == by_model
        assert ("rules" in r["flagged_by"]) == bool(r["rules"])
        assert r["risk_level"] in ("red", "yellow", "green")
        assert (r["risk_level"] == "green") == (not r["flagged"])
        if not r["flagged"]:
            assert r["measures"] == [] and r["monitoring_type"] is None


def test_explain_modes_decide_who_gets_reasons(model, sample_panel):
    records = schema.to_json_records(sample_panel.head(200))
    none = _decide(model, *records, explain="none")
    flagged = _decide(model, *records, explain="flagged")
    every = _decide(model, *records, explain="all")
    assert all(r["reasons"] == [] and "contributions" not in r for r in none)
    assert all(bool(r["reasons"]) == r["flagged"] for r in flagged)
    assert all(r["reasons"] for r in every)
    # explaining changes nothing else
    for a, b in zip(none, every, strict=True):
        assert a["score"] == b["score"] and a["flagged"] == b["flagged"]


def test_contributions_add_up_to_the_calibrated_log_odds(model, sample_panel):
    records = schema.to_json_records(sample_panel.head(50))
    for r in _decide(model, *records, explain="all"):
        c = r["contributions"]
        logit = math.log(r["score"] / (1 - r["score"]))
        assert c["base"] + sum(c["values"].values()) == pytest.approx(logit, abs=1e-4)
        for reason in r["reasons"]:
            assert reason["text_zh"] and reason["text_en"] and reason["feature"] in c["values"]


def test_the_previous_period_feeds_the_income_drop_rule(model):
    now = good_record(income_wage=8000.0)
    before = good_record(period="2023-06", income_wage=60000.0)
    (without,) = _decide(model, now)
    (with_prev,) = _decide(model, now, previous=[before])
    assert "income_drop" not in {x["id"] for x in without["rules"]}
    assert "income_drop" in {x["id"] for x in with_prev["rules"]}
    assert with_prev["risk_level"] == "red"


def test_decision_ids_are_new_uuid4_hex_for_every_decision(model):
    a, b = _decide(model, good_record(), good_record(household_id="hh_0002"))
    (c,) = _decide(model, good_record())
    ids = {a["decision_id"], b["decision_id"], c["decision_id"]}
    assert len(ids) == 3 and all(len(i) == 32 and i[12] == "4" for i in ids)


def _same_decisions(a: list[dict], b: list[dict]) -> None:
    drop = {"decision_id"}
    assert [{k: v for k, v in r.items() if k not in drop} for r in a] == [
        {k: v for k, v in r.items() if k not in drop} for r in b
    ]


def test_online_decisions_take_the_lags_from_the_ledger_as_batch_takes_them_from_the_file(
    model, sample_panel, tmp_path
):
    """The service's path (ledger, one look-up for all keys) and the panel's give the same
    decisions, lags 2 and 3 included."""
    import numpy as np

    from riskml.data.history import earlier_from_panel
    from riskml.scoring.decide import records_as_dicts
    from riskml.scoring.online import decide_records
    from riskml.store.ledger import Ledger
    from tests.code.test_ledger import entry

    keep = sample_panel["household_id"].drop_duplicates().iloc[:40]
    panel = sample_panel[sample_panel["household_id"].isin(keep)]
    valid, _, _ = schema.split_valid(panel)
    records = valid[list(schema.FIELD_NAMES)].reset_index(drop=True)
    last = records["period"].max()
    lags = earlier_from_panel(records)
    offline = decide(records, lags, model, default_ruleset(), INFO, explain="all")
    offline = [r for r, p in zip(offline, records["period"], strict=True) if p == last]
    assert lags[2]["period"][records["period"] == last].notna().any()  # lag 3 is exercised
    as_dicts = records_as_dicts(records, np.arange(len(records)))
    earlier = [r for r in as_dicts if r["period"] != last]
    with Ledger(f"sqlite:///{tmp_path / 'ledger.db'}") as ledger:
        ledger.record(
            [{**entry(r["household_id"], r["period"]), "record": r} for r in earlier],
            caller="test",
            request_id="history",
        )
        online, _ = decide_records(
            [r for r in as_dicts if r["period"] == last],
            ledger,
            model,
            default_ruleset(),
            INFO,
            explain="all",
        )
    _same_decisions(online, offline)
