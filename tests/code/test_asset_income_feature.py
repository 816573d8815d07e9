"""Assistance-asset income as a household feature option (issue 18 item 6).

The side input ``asset_income_expected`` (``riskml.data.side_inputs``) comes from the asset
register as of each record's month; ``features.asset_income`` adds two features that read
it; a model trained with them is served the same way by the batch engine, the pyfunc input
and the online path (the service looks the register up itself), and refuses inputs that
lack it rather than scoring them without it.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from riskml.assets import households as hh
from riskml.assets.register import AssetStore
from riskml.data import schema
from riskml.data.side_inputs import ASSET_INCOME, side_problems
from riskml.model.features import (
    ASSET_FEATURES,
    FEATURE_NAMES,
    build_features,
    feature_names_for,
)
from riskml.scoring.batch import BatchError, score_file
from riskml.scoring.decide import ModelInfo
from riskml.scoring.online import decide_records
from riskml.service.side_inputs import AssetIncomeLookup, SideInputs
from riskml.store.ledger import Ledger
from riskml.training.train import TrainConfig, TrainingDataError, train
from tests.code.test_asset_households import ASSETS, EVENTS, _states

INFO = ModelInfo("test", "1")


# --------------------------------------------------------------------------- features
def test_the_two_features_read_the_side_input_and_stay_missing_without_it(sample_panel, lines):
    rec = schema.coerce_frame(sample_panel[list(schema.FIELD_NAMES)].head(50))
    net = sum(rec[c].astype(float) for c in ("income_wage", "income_business",
                                             "income_property", "income_transfer"))  # fmt: skip
    asset = np.linspace(0, 5000, len(rec))
    names = feature_names_for(["asset_income"])
    X = build_features(rec.assign(**{ASSET_INCOME: asset}), None, lines, names)
    plain = build_features(rec, None, lines, names)
    pos = net.to_numpy() > 0
    expected_share = np.minimum(asset[pos] / net.to_numpy()[pos], 10.0)
    np.testing.assert_allclose(X["asset_income_share"].to_numpy()[pos], expected_share)
    line = X["monitoring_line"].to_numpy()
    size = rec["household_size"].astype(float).to_numpy()
    np.testing.assert_allclose(X["asset_pc_to_line"], asset / size / line)
    assert plain[list(ASSET_FEATURES)].isna().all().all()  # missing stays missing
    # every other feature is the same with or without the side input
    pd.testing.assert_frame_equal(X[list(FEATURE_NAMES)], plain[list(FEATURE_NAMES)])


def test_feature_options_are_off_by_default_and_checked():
    assert feature_names_for() == FEATURE_NAMES
    assert not set(ASSET_FEATURES) & set(FEATURE_NAMES)
    assert feature_names_for(["asset_income"]) == FEATURE_NAMES + ASSET_FEATURES
    assert TrainConfig.from_yaml("training/default.yaml").feature_names == FEATURE_NAMES
    assert TrainConfig.from_dict({"features": {"asset_income": True}}).feature_names[-2:] == (
        ASSET_FEATURES
    )
    with pytest.raises(ValueError, match="unknown feature option"):
        TrainConfig.from_dict({"features": {"asset_incme": True}})
    with pytest.raises(ValueError, match="true or false"):
        TrainConfig.from_dict({"features": {"asset_income": "yes"}})


def test_side_input_problems_name_row_and_field():
    df = pd.DataFrame({"household_id": ["h1", "h2", "h3", "h4"],
                       ASSET_INCOME: ["12.5", "abc", "-1", None]})  # fmt: skip
    found = {(p.row, p.field, p.rule) for p in side_problems(df)}
    assert (1, ASSET_INCOME, schema.NUMBER_RULE) in found
    assert (2, ASSET_INCOME, "must be ≥ 0") in found
    assert {p.row for p in side_problems(df)} == {1, 2}  # a number and a missing value pass


# --------------------------------------------------------------------------- the register
def test_asset_income_is_the_register_as_of_each_records_month():
    regs = [dict(e) for e in _register_events()]
    records = pd.DataFrame({
        "household_id": ["hh-1", "hh-1", "hh-1", "hh-2", "hh-9"],
        "period": ["2023-12", "2024-03", "2024-06", "2024-06", "2024-06"],
    })  # fmt: skip
    got = hh.asset_income_column(regs + EVENTS, records)
    # before registration: nothing; 2024-03: A-1 25,000 + A-2 3,000 + A-3 (not yet idle)
    # 0.2 x 20,000; 2024-06: A-3 idle since May; hh-9 is no asset's beneficiary
    np.testing.assert_allclose(got, [0.0, 32000.0, 28000.0, 20000.0, 0.0])
    today = hh.income_by_household(_states(), dt.date(2024, 6, 30))
    assert today["hh-1"] == pytest.approx(28000.0)


def _register_events():
    from riskml.assets.register import canonical_record
    from tests.code.asset_samples import event

    return [
        event("register", "2024-01-01", r["asset_id"], record=canonical_record(r)) for r in ASSETS
    ]


def test_the_service_looks_the_current_register_up(tmp_path):
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        lookup = AssetIncomeLookup(ledger, ttl_s=3600)
        assert lookup(["hh-1"]).tolist() == [0.0]  # an empty register: no asset income
        store = AssetStore(ledger)
        store.register(ASSETS, actor="test", date="2024-01-01")
        store.append(EVENTS, actor="test")
        assert lookup(["hh-1"]).tolist() == [0.0]  # cached within its TTL
        fresh = AssetIncomeLookup(ledger, ttl_s=0)
        today = dt.datetime.now(dt.UTC).date()
        expected = hh.income_by_household(store.states(), today)
        got = fresh(["hh-1", "hh-2", "nobody"])
        np.testing.assert_allclose(got, [expected["hh-1"], expected["hh-2"], 0.0])
        assert SideInputs(ledger).for_model(FEATURE_NAMES) == {}
        assert list(SideInputs(ledger).for_model(feature_names_for(["asset_income"]))) == [
            ASSET_INCOME
        ]
    finally:
        ledger.close()


# --------------------------------------------------------------------------- trained and served
@pytest.fixture(scope="module")
def asset_model(sample_panel, small_config, lines):
    """A model trained with features.asset_income on the sample panel with a made-up asset
    income that is informative (lower for households at risk next year), so it is used."""
    ids = sample_panel["household_id"].drop_duplicates().sort_values().iloc[:3000]
    panel = sample_panel[sample_panel["household_id"].isin(ids)].copy()
    rng = np.random.default_rng(3)
    at_risk = panel["at_risk_next"].astype("float64").fillna(0.5).to_numpy()
    beneficiary = rng.random(len(panel)) < 0.5
    panel[ASSET_INCOME] = np.where(
        beneficiary, rng.gamma(2.0, 2000.0, len(panel)) * (1.5 - at_risk), 0.0
    )
    cfg = TrainConfig.from_dict({**small_config.raw, "features": {"asset_income": True},
                                 "evaluation": {"folds": 1, "bootstrap_resamples": 20}})  # fmt: skip
    cfg.num_boost_round, cfg.min_positives = 120, 5
    cfg.params = {**small_config.params}
    with pytest.raises(TrainingDataError, match="asset_income_expected"):
        train(panel.drop(columns=[ASSET_INCOME]), cfg, lines)
    return train(panel, cfg, lines).model, panel


def test_the_option_reaches_the_model_and_every_path_serves_it_alike(asset_model, tmp_path):
    model, panel = asset_model
    assert model.feature_names[-2:] == ASSET_FEATURES
    gain = dict(zip(model.feature_names, model.booster.feature_importance("gain"), strict=True))
    assert gain["asset_income_share"] + gain["asset_pc_to_line"] > 0

    latest = panel[panel["period"] == panel["period"].max()].reset_index(drop=True)
    with_side = tmp_path / "latest.parquet"
    latest.to_parquet(with_side, index=False)
    without = tmp_path / "without.parquet"
    latest.drop(columns=[ASSET_INCOME]).to_parquet(without, index=False)
    with pytest.raises(BatchError, match="riskml assets income"):
        score_file(without, tmp_path / "no.parquet", model=model, info=INFO, workers=0)

    out = tmp_path / "scores.parquet"
    score_file(with_side, out, model=model, info=INFO, workers=0)
    batch = pd.read_parquet(out).set_index("household_id")["score"]
    recs = schema.coerce_frame(latest[[*schema.FIELD_NAMES, ASSET_INCOME]])
    frame = pd.Series(model.score_frame(recs)["score"].to_numpy(), index=latest["household_id"])
    np.testing.assert_allclose(batch.loc[frame.index].to_numpy(), frame.to_numpy(), atol=1e-12)

    # online: the JSON records with the side input looked up (no history in an empty ledger)
    table = dict(zip(latest["household_id"], latest[ASSET_INCOME], strict=True))
    dicts = _json_records(latest.head(40))
    ledger = Ledger(f"sqlite:///{tmp_path / 'empty.db'}")
    try:
        side = {ASSET_INCOME: lambda ids: np.array([table[h] for h in ids])}
        results, _ = decide_records(dicts, ledger, model, _ruleset(), INFO, "none", side=side)
        blind, _ = decide_records(dicts, ledger, model, _ruleset(), INFO, "none")
    finally:
        ledger.close()
    online = np.array([r["score"] for r in results])
    np.testing.assert_allclose(online, frame.iloc[:40].to_numpy(), atol=1e-12)
    # without the look-up the asset features are missing, and the scores move
    assert not np.allclose(online, [r["score"] for r in blind])


def _json_records(df: pd.DataFrame) -> list[dict]:
    out = []
    for row in df[list(schema.FIELD_NAMES)].to_dict("records"):
        rec = {}
        for f in schema.FIELDS:
            v = row[f.name]
            if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)):
                rec[f.name] = None
            elif f.kind == "int":
                rec[f.name] = int(v)
            elif f.kind == "bool":
                rec[f.name] = bool(v)
            elif f.kind == "float":
                rec[f.name] = float(v)
            else:
                rec[f.name] = str(v)
        out.append(rec)
    return out


def _ruleset():
    from riskml.policy.rules import RuleSet

    return RuleSet.load()


def test_the_income_command_adds_the_column_as_of_each_month(tmp_path):
    import typer
    from typer.testing import CliRunner

    from riskml.cli.assets_links import add_commands
    from tests.code.test_asset_households import _ledger_with_register

    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    _ledger_with_register(url).close()
    app = typer.Typer()
    add_commands(app)
    records = pd.DataFrame({"household_id": ["hh-1", "hh-1", "hh-3"],
                            "period": ["2023-12", "2024-03", "2024-06"], "x": [1, 2, 3]})  # fmt: skip
    src, out = tmp_path / "records.csv", tmp_path / "with.parquet"
    records.to_csv(src, index=False)
    run = CliRunner().invoke(app, ["income", str(src), "--ledger", url, "--out", str(out)])
    assert run.exit_code == 0, run.output
    got = pd.read_parquet(out)
    assert list(got.columns) == ["household_id", "period", "x", ASSET_INCOME]
    np.testing.assert_allclose(got[ASSET_INCOME], [0.0, 32000.0, 0.0])
    records.assign(period=["2024-3", "2024-03", "2024-06"]).to_csv(src, index=False)
    run = CliRunner().invoke(app, ["income", str(src), "--ledger", url, "--out", str(out)])
    assert run.exit_code == 1 and "row 0, field 'period'" in run.output
    assert "hh-" not in run.output


def test_train_joins_the_ledgers_register_onto_the_panel(tmp_path):
    from riskml.cli.model import _with_asset_income
    from tests.code.test_asset_households import _ledger_with_register

    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    _ledger_with_register(url).close()
    panel = pd.DataFrame({"household_id": ["hh-2", "hh-1"], "period": ["2024-06", "2024-03"]})
    got = _with_asset_income(panel, url)
    np.testing.assert_allclose(got[ASSET_INCOME], [20000.0, 32000.0])
