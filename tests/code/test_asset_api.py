"""``POST /assets/score`` on a real ScoringService with a tiny asset-risk model registered in the
session's MLflow store: the answer's contract, each malformed class refused naming index and
field, oversize (413), wrong media type (415), not UTF-8 (400), a key outside the county (403
naming the index), no asset model (503, the household side unaffected); the ledger's
``asset_scores`` holds exactly the answered rows."""

from __future__ import annotations

import copy
import json
import math
import os

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from riskml.service import api as web
from riskml.service import assets_api, state
from riskml.service.access import add_key
from riskml.service.core import ScoringService, Settings
from riskml.service.middleware import BodyLimitMiddleware
from riskml.store.tables import asset_scores

MODEL = "asset-risk-api-test"  # its own registered model: the asset model tests keep theirs
COUNTY, OTHER = "532328", "411523"


def observations(panel, county: str | None = None, n: int = 5) -> list[dict]:
    """``n`` observations of the panel's last year (of one county) as JSON records."""
    from riskml.assets import observation as ob

    last = panel[panel["year"] == panel["year"].max()]
    if county is not None:
        last = last[last["county_code"] == county]
    out = []
    for rec in last.head(n)[list(ob.FIELD_NAMES)].astype(object).to_dict("records"):
        row = {}
        for f in ob.OBSERVATION_FIELDS:
            v = rec[f.name]
            if v is None or v is pd.NA or (isinstance(v, float) and math.isnan(v)):
                continue
            row[f.name] = int(v) if f.kind == "int" else float(v) if f.kind == "float" else str(v)
        out.append(row)
    return out


@pytest.fixture(scope="module")
def asset_panel():
    from riskml.assets.simulate import SimConfig, simulate

    return simulate(SimConfig(assets=1500, seed=5)).panel


@pytest.fixture(scope="module")
def asset_model(asset_panel):
    """A tiny asset-risk model trained and registered (champion) as MODEL."""
    from riskml.assets import model_registry as mr
    from riskml.assets.train import AssetTrainConfig, train

    cfg = AssetTrainConfig.from_yaml()
    cfg.params = {**cfg.params, "num_leaves": 7, "learning_rate": 0.2, "min_data_in_leaf": 40,
                  "monotone_constraints_method": "basic", "num_threads": 1}  # fmt: skip
    cfg.num_boost_round, cfg.early_stopping_rounds = 30, 10
    cfg.model_name, cfg.experiment = MODEL, MODEL
    result = train(asset_panel, cfg)
    mr.log_training_run(result, cfg)
    return result


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    path = tmp_path_factory.mktemp("asset-keys") / "api_keys.yaml"
    return {
        "path": path,
        "assets": add_key(path, "assets-yuanmou", "assets", counties=[COUNTY]),
        "assets_other": add_key(path, "assets-other", "assets", counties=[OTHER]),
        "admin": add_key(path, "ops", "admin"),
        "scorer": add_key(path, "platform", "scorer"),
    }


@pytest.fixture(scope="module")
def service(registered, asset_model, keys, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("asset-service")
    svc = ScoringService(
        Settings(
            tracking_uri=os.environ["MLFLOW_TRACKING_URI"],
            cache_dir=tmp / "model-cache",
            ledger_url=f"sqlite:///{tmp / 'ledger.db'}",
            keys_file=str(keys["path"]),
        )
    )
    previous = state.bound()
    web.bind(svc)
    assets_api.start(svc, MODEL)
    yield svc
    state.bind(previous)
    svc.close()


@pytest.fixture(scope="module")
def client(service):
    return TestClient(BodyLimitMiddleware(web.app, limit=200_000))


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _stored(service) -> int:
    with service.ledger.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(asset_scores)).scalar_one()


def test_valid_observations_are_scored_explained_given_an_action_and_stored(
    client, keys, service, asset_panel
):
    obs = observations(asset_panel, COUNTY, 6)
    before = _stored(service)
    r = client.post("/assets/score", json={"assets": obs}, headers=_auth(keys["assets"]))
    assert r.status_code == 200, r.text
    out = r.json()
    assert [x["asset_id"] for x in out["results"]] == [o["asset_id"] for o in obs]
    for res in out["results"]:
        assert 0 <= res["score"] <= 1 and res["warning"] == (res["score"] >= 0.5)
        assert res["model_name"] == MODEL and res["rules_version"]
        assert res["action"]["action"] in ("revive", "re_contract", "assign_caretaker", "dispose", "keep")  # fmt: skip
        assert res["action"]["text_zh"] and res["action"]["text_en"]
        for reason in res["reasons"]:
            assert reason["text_zh"] and reason["text_en"] and reason["contribution"] > 0
    assert any(res["reasons"] for res in out["results"])
    assert _stored(service) == before + len(obs)
    with service.ledger.engine.connect() as conn:
        rows = conn.execute(
            select(asset_scores).where(asset_scores.c.request_id == out["request_id"])
        ).all()
    assert sorted(r.score_id for r in rows) == sorted(x["score_id"] for x in out["results"])
    assert {r.caller for r in rows} == {"assets:assets-yuanmou"}


def test_an_idle_public_welfare_asset_without_caretaker_fires_its_rules(client, keys, asset_panel):
    base = observations(asset_panel, COUNTY, 1)[0]
    welfare = dict(base, asset_id="AW1", category="public_welfare", subtype="road",
                   status="operating", maintenance_fund=0.0)  # fmt: skip
    welfare.pop("caretaker", None)
    r = client.post("/assets/score", json={"assets": [welfare]}, headers=_auth(keys["admin"]))
    assert r.status_code == 200, r.text
    res = r.json()["results"][0]
    assert "public_welfare_unmanaged" in {x["rule"] for x in res["rules"]}
    assert res["action"]["action"] == "assign_caretaker"


MALFORMED = [
    ("asset_id", None, "asset_id"),  # a required field missing
    ("original_value", "lots", "original_value"),  # a number as text
    ("original_value", -1.0, "original_value"),  # below its minimum
    ("months_idle", 13, "months_idle"),  # above its maximum
    ("months_idle", 2.5, "months_idle"),  # an integer field with a fraction
    ("year", True, "year"),  # a boolean for an integer
    ("status", "abandoned", "status"),  # not one of the choices
    ("contract_end", "2030-02-30", "contract_end"),  # not a date
    ("county_code", "5323", "county_code"),  # not a county code
    ("village_code", "411523101201", "village_code"),  # a village of another county
    ("colour", "red", "colour"),  # an unknown field
]


@pytest.mark.parametrize(("field", "value", "named"), MALFORMED)
def test_each_malformed_class_is_refused_naming_index_and_field(
    client, keys, service, asset_panel, field, value, named
):
    obs = observations(asset_panel, COUNTY, 3)
    bad = copy.deepcopy(obs)
    if value is None:
        bad[2].pop(field)
    else:
        bad[2][field] = value
    before = _stored(service)
    r = client.post("/assets/score", json={"assets": bad}, headers=_auth(keys["assets"]))
    assert r.status_code == 422, r.text
    problems = r.json()["problems"]
    assert {(p["index"], p["field"]) for p in problems} == {(2, named)}
    assert _stored(service) == before


def test_nan_a_duplicate_and_bad_envelopes_are_refused(client, keys, service, asset_panel):
    obs = observations(asset_panel, COUNTY, 2)
    before = _stored(service)
    nan = json.dumps(dict(obs[0], income=1.0)).replace('"income": 1.0', '"income": NaN')
    text = f'{{"assets": [{nan}]}}'
    r = client.post("/assets/score", content=text, headers={**_auth(keys["assets"]), "Content-Type": "application/json"})  # fmt: skip
    assert r.status_code == 422 and r.json()["problems"][0]["field"] == "income"
    r = client.post("/assets/score", json={"assets": [obs[0], obs[0]]}, headers=_auth(keys["assets"]))  # fmt: skip
    assert r.status_code == 422 and r.json()["problems"][0] == {
        "index": 1, "household_id": None, "field": "asset_id", "problem": "asset and year already at index 0"}  # fmt: skip
    for body, named in (({"assets": []}, "assets"), ({}, "assets"), ([1], "(body)"),
                        ({"assets": obs, "explain": "all"}, "explain"),
                        ({"assets": [7]}, "(record)"), ({"assets": [{}] * 1001}, "assets")):  # fmt: skip
        r = client.post("/assets/score", json=body, headers=_auth(keys["assets"]))
        assert r.status_code == 422, (body, r.text)
        assert r.json()["problems"][0]["field"] == named
    r = client.post("/assets/score", content=b"assets=1", headers={**_auth(keys["assets"]), "Content-Type": "application/json"})  # fmt: skip
    assert r.status_code == 422 and r.json()["problems"][0]["field"] == "(body)"
    assert _stored(service) == before


def test_oversize_wrong_media_type_and_not_utf8_are_refused(client, keys, service, asset_panel):
    before = _stored(service)
    big = observations(asset_panel, None, 1) * 1000  # about 1 MB: over the test's 200 kB limit
    r = client.post("/assets/score", json={"assets": big}, headers=_auth(keys["admin"]))
    assert r.status_code == 413 and "limit" in r.json()["error"]
    r = client.post("/assets/score", content=b"assets=1",
                    headers={**_auth(keys["admin"]), "Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert r.status_code == 415
    r = client.post("/assets/score", content=b'{"assets": ["\xff"]}',
                    headers={**_auth(keys["admin"]), "Content-Type": "application/json"})  # fmt: skip
    assert r.status_code == 400
    assert _stored(service) == before


def test_keys_outside_the_county_or_of_another_role_are_refused(client, keys, service, asset_panel):
    obs = observations(asset_panel, COUNTY, 2) + observations(asset_panel, OTHER, 1)
    before = _stored(service)
    r = client.post("/assets/score", json={"assets": obs}, headers=_auth(keys["assets"]))
    assert r.status_code == 403
    assert [(p["index"], p["field"]) for p in r.json()["problems"]] == [(2, "county_code")]
    r = client.post("/assets/score", json={"assets": obs[:2]}, headers=_auth(keys["assets_other"]))
    assert r.status_code == 403 and [p["index"] for p in r.json()["problems"]] == [0, 1]
    r = client.post("/assets/score", json={"assets": obs[:1]}, headers=_auth(keys["scorer"]))
    assert r.status_code == 403 and "may not score assets" in r.json()["error"]
    r = client.post("/assets/score", json={"assets": obs[:1]})
    assert r.status_code == 401
    assert _stored(service) == before


def test_without_an_asset_model_the_route_answers_503_and_score_is_unaffected(
    client, keys, service, asset_panel
):
    ready = service.readiness().status
    try:
        assets_api.start(service, "no-such-asset-model")
        before = _stored(service)
        r = client.post("/assets/score", json={"assets": observations(asset_panel, COUNTY, 1)},
                        headers=_auth(keys["assets"]))  # fmt: skip
        assert r.status_code == 503 and "no asset-risk model" in r.json()["error"]
        assert _stored(service) == before
        assert service.readiness().status == ready == 200
    finally:
        assets_api.start(service, MODEL)


# --------------------------------------------------------------------------- distributions
# An observation's optional ``distributions`` (what the register's distribution events carry)
# reach the asset rules: the distribution order and the banned uses fire through the API.
SECRET_HOUSEHOLD = "hh-privacy-probe-0417"  # a well-formed household id: never in an answer


def _with_distributions(base: dict, asset_id: str, *distributions: dict) -> dict:
    return dict(base, asset_id=asset_id, income=50_000.0, distributions=list(distributions))


def _dist(date: str, *uses: str, amount: float = 100.0) -> dict:
    return {"date": date, "items": [{"use": u, "amount": amount, "household_id": SECRET_HOUSEHOLD}
                                    for u in uses]}  # fmt: skip


def _fired(client, token: str, obs: list[dict]) -> list[dict[str, dict]]:
    r = client.post("/assets/score", json={"assets": obs}, headers=_auth(token))
    assert r.status_code == 200, r.text
    assert SECRET_HOUSEHOLD not in r.text
    return [{x["rule"]: x for x in res["rules"]} for res in r.json()["results"]]


def test_the_distribution_order_fires_within_its_look_back_and_not_outside(
    client, keys, service, asset_panel
):
    from riskml.assets.rules import load

    rules = load()
    first, last = list(rules.order)[0], list(rules.order)[-1]
    look = int(rules.get("distribution_order").params["lookback_months"])
    assert look == 12  # the dates below are 12 months before the rules' day, Jan 1 after year
    base = observations(asset_panel, COUNTY, 1)[0]
    y = base["year"]
    obs = [
        _with_distributions(base, "D-in-order", _dist(f"{y}-06-30", first, last)),
        _with_distributions(base, "D-reversed", _dist(f"{y}-06-30", last, first)),
        _with_distributions(base, "D-unknown-use", _dist(f"{y}-06-30", first, "tea_party")),
        _with_distributions(base, "D-just-inside", _dist(f"{y}-01-02", last, first)),  # below 12
        _with_distributions(base, "D-at-limit", _dist(f"{y}-01-01", last, first)),  # at 12
        _with_distributions(base, "D-older", _dist(f"{y - 1}-07-01", last, first)),  # above 12
        # two distributions each in order: the second restarting the order breaks nothing
        _with_distributions(
            base, "D-two", _dist(f"{y}-03-01", first, last), _dist(f"{y}-09-01", first, last)
        ),  # fmt: skip
    ]
    before = _stored(service)
    fired = _fired(client, keys["assets"], obs)
    assert _stored(service) == before + len(obs)
    order = [("distribution_order" in f) for f in fired]
    assert order == [False, True, True, True, False, False, False]
    assert not any("distribution_banned" in f for f in fired)
    reversed_ = fired[1]["distribution_order"]
    # the use paid before one ranked above it is named
    assert reversed_["value"] == last and reversed_["threshold"] == f"{look}"
    assert f"{y}-06-30" in reversed_["reason_zh"] and f"{y}-06-30" in reversed_["reason_en"]
    assert rules.order[last] in reversed_["reason_zh"] and last in reversed_["reason_en"]
    assert "tea_party is not in the order" in fired[2]["distribution_order"]["reason_en"]


def test_a_banned_use_fires_and_an_allowed_one_does_not(client, keys, asset_panel):
    from riskml.assets.rules import load

    rules = load()
    base = observations(asset_panel, COUNTY, 1)[0]
    y = base["year"]
    allowed = list(rules.order)
    obs = [_with_distributions(base, f"B-{use}", _dist(f"{y}-05-01", allowed[0], use))
           for use in rules.banned]  # fmt: skip
    obs.append(_with_distributions(base, "B-allowed", _dist(f"{y}-05-01", *allowed)))
    obs.append(_with_distributions(base, "B-older", _dist(f"{y - 1}-05-01", *rules.banned)))
    obs.append(dict(base, asset_id="B-none"))  # no distributions at all
    fired = _fired(client, keys["admin"], obs)
    for use, f in zip(rules.banned, fired, strict=False):
        banned = f["distribution_banned"]
        assert banned["value"] == use, banned
        assert rules.banned[use] in banned["reason_zh"] and use in banned["reason_en"]
        assert "distribution_order" not in f  # a banned use is not also "not in the order"
    assert [("distribution_banned" in f) for f in fired[-3:]] == [False, False, False]
    assert not any("distribution_order" in f for f in fired[-3:])


def _bad_dist(y: int) -> list[tuple[object, str]]:
    ok = {"use": "awards", "amount": 10.0, "household_id": SECRET_HOUSEHOLD}
    one = lambda **kw: [{"date": f"{y}-05-01", "items": [{**ok, **kw}]}]  # noqa: E731
    return [
        ("all of them", "distributions"),  # not a list
        ([7], "distributions[0]"),  # not an object
        ([{"items": [ok]}], "distributions[0].date"),  # no date
        ([{"date": f"{y}-02-30", "items": [ok]}], "distributions[0].date"),  # not a real date
        ([{"date": f"{y + 1}-01-01", "items": [ok]}], "distributions[0].date"),  # after the year
        ([{"date": f"{y}-05-01", "year": y + 1, "items": [ok]}], "distributions[0].year"),
        ([{"date": f"{y}-05-01", "year": "2020", "items": [ok]}], "distributions[0].year"),
        ([{"date": f"{y}-05-01"}], "distributions[0].items"),  # no items
        ([{"date": f"{y}-05-01", "items": []}], "distributions[0].items"),  # empty
        ([{"date": f"{y}-05-01", "items": [ok], "payee": "x"}], "distributions[0].payee"),
        (one(use="Awards"), "distributions[0].items[0].use"),  # not a lower-case id
        (one(use=None), "distributions[0].items[0].use"),  # missing
        (one(amount=-1.0), "distributions[0].items[0].amount"),  # below 0
        (one(amount="10"), "distributions[0].items[0].amount"),  # a number as text
        (one(amount=True), "distributions[0].items[0].amount"),  # a boolean
        (one(amount=1e12), "distributions[0].items[0].amount"),  # over the money maximum
        (one(household_id="hh privacy/probe"), "distributions[0].items[0].household_id"),
        (one(household_id=417), "distributions[0].items[0].household_id"),
        (
            [{"date": f"{y}-05-01", "items": [{**ok, SECRET_HOUSEHOLD: 1}]}],
            "distributions[0].items[0]",
        ),  # fmt: skip
        (one(amount=60_000.0), "distributions[0].items"),  # more than the year's income
    ]


@pytest.mark.parametrize("case", range(20))
def test_malformed_distributions_are_refused_naming_index_and_field_and_no_household(
    client, keys, service, asset_panel, case
):
    obs = [dict(o, income=50_000.0) for o in observations(asset_panel, COUNTY, 4)]
    cases = _bad_dist(obs[3]["year"])
    assert len(cases) == 20
    value, named = cases[case]
    obs[3]["distributions"] = value
    obs[1]["distributions"] = [_dist(f"{obs[1]['year']}-05-01", "awards")]  # a good one beside
    before = _stored(service)
    r = client.post("/assets/score", json={"assets": obs}, headers=_auth(keys["assets"]))
    assert r.status_code == 422, r.text
    assert {(p["index"], p["field"]) for p in r.json()["problems"]} == {(3, named)}
    assert SECRET_HOUSEHOLD not in r.text and "privacy/probe" not in r.text
    assert _stored(service) == before
