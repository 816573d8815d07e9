"""The asset rules: the shipped file parses (versions, sources, overrides), each rule at, below
and above its threshold, overrides by county prefix, and strict parsing naming rule and key."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from riskml.assets import events as ev
from riskml.assets import rules as R
from riskml.assets.register import canonical_record, register_frame
from tests.code.asset_samples import event, record

RULES = R.load()


def _frame(*states):
    return register_frame(list(states))


def _asset(asset_id="A-1", **changes):
    return ev.apply(None, event("register", "2020-01-01", asset_id=asset_id,
                                record=canonical_record(record(asset_id=asset_id, **changes))))  # fmt: skip


def _fired(frame, as_of, rule):
    out = R.evaluate(frame, RULES, as_of)
    return sorted(out.loc[out["rule"] == rule, "asset_id"])


def test_the_shipped_file_has_every_rule_a_version_and_sources():
    assert RULES.version and {r.id for r in RULES.rules} == set(R.RULE_IDS)
    assert all(r.source and r.message_zh and r.message_en for r in RULES.rules)
    assert all(o.source for r in RULES.rules for o in r.overrides)
    assert RULES.get("low_return").params == {"floor": 0.03}
    assert "committee_costs" in RULES.banned and next(iter(RULES.order)) == "no_labour_low_income"


def test_add_months_keeps_the_day_or_takes_the_month_s_last():
    got = R.add_months(
        pd.to_datetime(pd.Series(["2024-01-31", "2023-06-15", None])), np.array([1, 12, 3])
    )
    assert [None if pd.isna(d) else d.date().isoformat() for d in got] == [
        "2024-02-29",
        "2024-06-15",
        None,
    ]


@pytest.mark.parametrize(
    ("as_of", "fired"), [("2021-02-28", False), ("2021-03-01", False), ("2021-03-02", True)]
)
def test_ownership_unconfirmed_past_the_deadline(as_of, fired):
    frame = _frame(_asset(accepted_date="2020-03-01"),
                   _asset("A-2", accepted_date="2020-03-01", rights_status="confirmed", rights_date="2020-04-01"),
                   _asset("A-3", accepted_date=None))  # fmt: skip
    assert _fired(frame, as_of, "ownership_unconfirmed") == (["A-1"] if fired else [])


def _with_income(amount, asset_id="A-1", year=2023, **changes):
    s = _asset(asset_id, **changes)
    return ev.apply(s, event("income", "2024-01-10", asset_id=asset_id, year=year, amount=amount))


@pytest.mark.parametrize(("income", "fired"), [(29999.0, True), (30000.0, False), (30001.0, False)])
def test_low_return_below_the_floor(income, fired):
    frame = _frame(_with_income(income))  # original value 1,000,000: the floor is 30,000 yuan
    assert _fired(frame, "2024-06-01", "low_return") == (["A-1"] if fired else [])
    if fired:
        reason = R.evaluate(frame, RULES, "2024-06-01").query("rule == 'low_return'").iloc[0]
        assert reason["reason_en"] == "Return rate 2.99% in 2023 is below the floor of 3.00%"
        assert "最低收益率" in reason["reason_zh"]


def test_low_return_only_for_operating_assets_in_use_a_whole_year():
    frame = _frame(
        _asset("A-1"),  # no income recorded for 2023: rate 0
        _asset("A-2", category="public_welfare"),
        _asset("A-3", accepted_date="2023-02-01", build_year=2023),  # accepted during 2023
        _asset("A-4", status="building", accepted_date=None),
    )
    assert _fired(frame, "2024-06-01", "low_return") == ["A-1"]


@pytest.mark.parametrize(
    ("county", "village", "income", "fired"),
    [("511525", "511525001001", 49999.0, True), ("511525", "511525001001", 50000.0, False),
     ("511602", "511602001001", 14999.0, True), ("511602", "511602001001", 15000.0, False)],
)  # fmt: skip
def test_a_local_floor_applies_by_county_prefix(county, village, income, fired):
    frame = _frame(_with_income(income, county_code=county, village_code=village))
    assert _fired(frame, "2024-06-01", "low_return") == (["A-1"] if fired else [])


@pytest.mark.parametrize(
    ("as_of", "fired"), [("2024-09-30", False), ("2024-10-01", False), ("2024-10-02", True)]
)
def test_idle_for_longer_than_the_configured_time(as_of, fired):
    s = ev.apply(_asset(), event("marked_idle", "2024-04-01"))
    assert _fired(_frame(s, _asset("A-2")), as_of, "idle_too_long") == (["A-1"] if fired else [])


@pytest.mark.parametrize(
    ("caretaker", "fund", "fired"),
    [("ct-1", 0.0, True), ("ct-1", None, True), (None, 500.0, True), ("ct-1", 0.01, False),
     ("ct-1", 500.0, False)],
)  # fmt: skip
def test_a_public_welfare_asset_without_caretaker_or_fund(caretaker, fund, fired):
    s = _asset(
        category="public_welfare", subtype="road", caretaker=caretaker, maintenance_fund=fund
    )
    other = _asset("A-2", caretaker=None)  # operating: not this rule's
    frame = _frame(s, other)
    assert _fired(frame, "2024-06-01", "public_welfare_unmanaged") == (["A-1"] if fired else [])
    if caretaker is None:
        row = (
            R.evaluate(frame, RULES, "2024-06-01")
            .query("rule == 'public_welfare_unmanaged'")
            .iloc[0]
        )
        assert "未明确管护责任人" in row["reason_zh"] and "no named caretaker" in row["reason_en"]


def _distributed(items, date="2024-03-01"):
    s = _with_income(100000)
    return ev.apply(s, event("distribution", date, year=2023, items=items))


ITEMS_IN_ORDER = [{"use": "no_labour_low_income", "amount": 100}, {"use": "public_welfare_jobs", "amount": 100},
                  {"use": "collective", "amount": 100}]  # fmt: skip


@pytest.mark.parametrize(
    ("items", "order", "banned"),
    [(ITEMS_IN_ORDER, False, False),
     (list(reversed(ITEMS_IN_ORDER)), True, False),
     ([*ITEMS_IN_ORDER, {"use": "fireworks", "amount": 1}], True, False),
     ([*ITEMS_IN_ORDER, {"use": "vehicles", "amount": 1}], False, True)],
)  # fmt: skip
def test_a_distribution_that_breaks_the_order_or_pays_a_banned_use(items, order, banned):
    frame = _frame(_distributed(items))
    assert _fired(frame, "2024-06-01", "distribution_order") == (["A-1"] if order else [])
    assert _fired(frame, "2024-06-01", "distribution_banned") == (["A-1"] if banned else [])
    if banned:
        row = R.evaluate(frame, RULES, "2024-06-01").query("rule == 'distribution_banned'").iloc[0]
        assert "购置车辆" in row["reason_zh"] and "vehicles" in row["reason_en"]


@pytest.mark.parametrize(
    ("as_of", "fired"), [("2025-02-28", True), ("2025-03-01", False), ("2025-03-02", False)]
)
def test_a_distribution_counts_within_the_look_back(as_of, fired):
    frame = _frame(_distributed([{"use": "debt", "amount": 5}], date="2024-03-01"))
    assert _fired(frame, as_of, "distribution_banned") == (["A-1"] if fired else [])


@pytest.mark.parametrize(
    ("as_of", "fired"), [("2025-03-30", False), ("2025-03-31", False), ("2025-04-01", True)]
)
def test_an_operating_contract_expired_without_renewal(as_of, fired):
    renewed = ev.apply(_asset("A-2"), event("contract", "2025-03-01", asset_id="A-2", operator="op",
                                            operating_mode="leased", contract_start="2025-04-01",
                                            contract_end="2030-03-31"))  # fmt: skip
    own = _asset("A-3", operating_mode="own")
    frame = _frame(_asset(), renewed, own)
    assert _fired(frame, as_of, "contract_expired") == (["A-1"] if fired else [])


def test_a_rule_out_of_force_does_not_fire_and_overrides_win_by_prefix_length():
    text = R.config.package_file("assets/rules.yaml").read_text(encoding="utf-8")
    rules = R.parse_text(text.replace('params: {floor: 0.03}\n    effective: {from: "2021-01"}',
                                       'params: {floor: 0.03}\n    effective: {from: "2030-01"}'))  # fmt: skip
    frame = _frame(_asset())
    assert R.evaluate(frame, rules, "2024-06-01").query("rule == 'low_return'").empty
    rule = R.AssetRule("low_return", {"floor": 0.03}, 0, None, "s", "z", "e", (
        R.Override(("5301",), {"floor": 0.2}, 0, None, "s"),
        R.Override(("530102",), {"floor": 0.1}, 0, None, "s"),
        R.Override(("53",), {"floor": 0.3}, 0, None, "s"),
    ))  # fmt: skip
    got = R.thresholds(rule, pd.Series(["530102", "530103", "520101"]), 24000)["floor"]
    assert got.tolist() == [0.1, 0.2, 0.03]


@pytest.mark.parametrize(
    ("change", "rule", "key"),
    [
        (("params: {floor: 0.03}", "params: {floor: 3}"), "low_return", "params.floor"),
        (("params: {months: 6}", "params: {monthz: 6}"), "idle_too_long", "monthz"),
        (("id: contract_expired", "id: contract_gone"), "contract_gone", "id"),
        (('areas: ["511525"]', 'areas: ["5115x"]'), "low_return", "overrides.areas"),
        (('params: {grace_days: 0}\n    effective: {from: "2021-01"}',
          'params: {grace_days: 0}\n    effective: {from: "2021-13"}'), "contract_expired", "effective"),
    ],
)  # fmt: skip
def test_a_bad_rules_file_names_the_rule_and_the_key(change, rule, key):
    text = R.config.package_file("assets/rules.yaml").read_text(encoding="utf-8")
    assert change[0] in text
    with pytest.raises(R.AssetRulesError) as caught:
        R.parse_text(text.replace(change[0], change[1], 1))
    assert f"rule {rule!r}" in str(caught.value) and key in str(caught.value)
