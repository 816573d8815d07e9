"""Assistance assets linked to their beneficiary households (issue 18 item 6): the expected
returns on a hand-made register, and an asset gone idle leading only the households that
depend on it materially, once, through the case store, on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from riskml.assets import events as ev
from riskml.assets import households as hh
from riskml.assets.register import AssetStore, canonical_record
from riskml.assets.rules import load as load_rules
from riskml.cases.store import CaseStore
from riskml.cli.assets_links import add_commands
from riskml.store.ledger import Ledger
from tests.code.asset_samples import event, record

AS_OF = dt.date(2024, 6, 30)
VILLAGE = ("530102", "530102001001")
LINKS = hh.load_links()

# A-1 earned 50,000 in 2023 (hh-1 0.5, hh-2 0.4); A-2 earned nothing recorded but guarantees
# 5% of 200,000 under a contract in force (hh-1 0.3); A-3 earned 20,000 in 2023 and went idle
# in May 2024 (hh-1 0.2, hh-3 0.5, hh-4 0.3); hh-4 has no record.
ASSETS = [
    record(asset_id="A-1", guaranteed_return_rate=None, contract_end="2030-12-31"),
    record(asset_id="A-2", original_value=200000, book_value=None, contract_end="2030-12-31",
           funding=[{"source": "linkage_fund", "amount": 200000}],
           beneficiaries=[{"household_id": "hh-1", "share": 0.3}]),
    record(asset_id="A-3", original_value=400000, book_value=None, guaranteed_return_rate=None,
           funding=[{"source": "linkage_fund", "amount": 400000}],
           beneficiaries=[{"household_id": "hh-1", "share": 0.2}, {"household_id": "hh-3", "share": 0.5},
                          {"household_id": "hh-4", "share": 0.3}]),
]  # fmt: skip
EVENTS = [
    event("income", "2024-01-10", "A-1", year=2023, amount=50000),
    event("income", "2024-01-10", "A-3", year=2023, amount=20000),
    event("marked_idle", "2024-05-15", "A-3"),
]


def _records(**net: float) -> pd.DataFrame:
    """One record a household for 2024-03 with net income ``net`` (all of it wages)."""
    return pd.DataFrame([
        {"household_id": h, "period": "2024-03", "income_wage": v, "income_business": 0.0,
         "income_property": 0.0, "income_transfer": 0.0}
        for h, v in net.items()
    ])  # fmt: skip


# hh-1: 25,000 + 10,000·0.3 = 28,000 expected (A-3 idle); A-3 at stake 4,000 = 2% of 200,000.
# hh-2: 20,000 expected; not on A-3. hh-3: A-3 at stake 10,000 = 20% of 50,000: material.
RECORDS = _records(**{"hh-1": 200000.0, "hh-2": 80000.0, "hh-3": 50000.0})


def _states(events=EVENTS):
    regs = [
        event("register", "2024-01-01", r["asset_id"], record=canonical_record(r)) for r in ASSETS
    ]
    ordered = sorted(regs + list(events), key=lambda e: (e["asset_id"], e["date"]))
    return ev.replay([dict(e, seq=None) for e in ordered])


def test_expected_returns_sum_share_times_income_of_each_household():
    table = hh.expected_returns(_states(), RECORDS, AS_OF).set_index("household_id")
    assert list(table.reset_index().columns) == list(hh.RETURN_COLUMNS)
    assert table.loc["hh-1", "asset_income_expected"] == pytest.approx(0.5 * 50000 + 0.3 * 10000)
    assert table.loc["hh-1", "asset_income_share"] == pytest.approx(28000 / 200000)
    assert table.loc["hh-2", "asset_income_expected"] == pytest.approx(20000)
    assert table.loc["hh-2", "asset_income_share"] == pytest.approx(0.25)
    assert table.loc["hh-3", "asset_income_expected"] == 0  # only on the idle asset
    assert table.loc["hh-1", ["assets_count", "idle_assets_count"]].tolist() == [3, 1]
    assert table.loc["hh-2", ["assets_count", "idle_assets_count"]].tolist() == [1, 0]
    # a beneficiary without a record is kept, its share missing
    assert pd.isna(table.loc["hh-4", "asset_income_share"])
    assert table.loc["hh-4", "asset_income_expected"] == 0
    empty = hh.expected_returns({}, RECORDS, AS_OF)
    assert empty.empty and list(empty.columns) == list(hh.RETURN_COLUMNS)


def test_the_basis_of_an_assets_income():
    s = _states()
    assert hh.asset_income(s["A-1"], AS_OF) == (50000.0, 50000.0, "last_year_income")
    assert hh.asset_income(s["A-2"], AS_OF) == (10000.0, 10000.0, "guaranteed_return")
    # an expired contract guarantees nothing expected; a year without income expects nothing
    assert hh.asset_income(s["A-2"], dt.date(2031, 1, 1))[::2] == (0.0, "none")
    assert hh.asset_income(s["A-3"], AS_OF) == (0.0, 20000.0, "not_earning")
    # the register as its events made it before A-3 went idle
    before = hh.states_as_of(
        [dict(e, seq=None) for e in sorted(
            [event("register", "2024-01-01", r["asset_id"], record=canonical_record(r)) for r in ASSETS]
            + EVENTS, key=lambda e: (e["asset_id"], e["date"]))],
        dt.date(2024, 5, 1),
    )  # fmt: skip
    assert before["A-3"]["status"] == "operating"
    assert hh.expected_returns(before, RECORDS, dt.date(2024, 5, 1)).set_index("household_id").loc[
        "hh-3", "asset_income_expected"
    ] == pytest.approx(10000)


def test_the_latest_record_at_or_before_the_date_gives_net_income():
    recs = pd.concat([_records(**{"hh-1": 1000.0}).assign(period="2023-03"),
                      _records(**{"hh-1": 3000.0}).assign(period="2024-03"),
                      _records(**{"hh-1": 9000.0}).assign(period="2025-03")])  # fmt: skip
    assert hh.net_incomes(recs, AS_OF)["hh-1"] == 3000.0
    missing = recs.assign(income_transfer=[0.0, None, 0.0])
    assert pd.isna(hh.net_incomes(missing, AS_OF)["hh-1"])  # a missing part is never zero


def test_records_errors_name_the_row_and_field_never_the_household():
    bad = RECORDS.assign(period=["2024-03", "2024-13", "2024-03"])
    with pytest.raises(hh.LinksError, match=r"row 1, field 'period'") as err:
        hh.net_incomes(bad, AS_OF)
    assert "hh-" not in str(err.value)
    with pytest.raises(hh.LinksError, match="income_wage") as err:
        hh.net_incomes(RECORDS.drop(columns=["income_wage"]), AS_OF)
    assert "hh-" not in str(err.value)


def test_the_links_file_is_checked_strictly():
    assert (LINKS.source, LINKS.material_share) == ("asset_idle", 0.10)
    good = "version: '1'\nlead: {source: asset_idle, material_share: 0.2, triggers: [idle], risk_types: []}\n"
    assert hh.parse_links(good).triggers == ("idle",)
    for bad, key in [
        (good.replace("0.2", "1.5"), "material_share"),
        (good.replace("asset_idle", "gossip"), "lead.source"),
        (good.replace("[idle]", "[sleepy]"), "lead.triggers"),
        (good.replace("risk_types: []", "risk_types: [nope]"), "lead.risk_types"),
        (good + "extra: 1\n", "version and lead"),
    ]:
        with pytest.raises(hh.LinksError, match=key):
            hh.parse_links(bad, "links.yaml")


def test_only_households_that_depend_materially_are_planned():
    plan = hh.plan_leads(_states(), RECORDS, AS_OF, LINKS)
    assert list(plan.material) == [("hh-3", "2024-05")]
    (dep,) = plan.material[("hh-3", "2024-05")]
    assert (dep.asset_id, dep.kind, dep.income, dep.share_of_net) == ("A-3", "idle", 10000.0, 0.2)
    assert plan.below_threshold == [("hh-1", "2024-05")]  # 4,000 of 200,000: 2%
    assert plan.no_income == [("hh-4", "2024-05")]
    # a lower threshold leads hh-1 too; a household with no positive income always
    low = hh.LinkConfig("t", "asset_idle", 0.015, ("idle",), ())
    assert ("hh-1", "2024-05") in hh.plan_leads(_states(), RECORDS, AS_OF, low).material
    broke = RECORDS.assign(income_wage=[200000.0, 80000.0, 0.0])
    assert ("hh-3", "2024-05") in hh.plan_leads(_states(), broke, AS_OF, LINKS).material
    # before the asset went idle nothing is planned
    assert not hh.plan_leads(_states(), RECORDS, dt.date(2024, 5, 1), LINKS).material


def test_idle_too_long_is_a_trigger_of_its_own_month():
    states = _states()
    got = hh.idle_triggers(states, dt.date(2024, 12, 31), LINKS, load_rules())
    assert hh.Trigger("A-3", "idle", "2024-05-15") in got
    assert hh.Trigger("A-3", "idle_too_long", "2024-11-15") in got  # 6 months (rules.yaml)
    assert all(t.kind == "idle" for t in hh.idle_triggers(states, AS_OF, LINKS, load_rules()))


def _ledger_with_register(url: str) -> Ledger:
    ledger = Ledger(url)
    store = AssetStore(ledger)
    store.register(ASSETS, actor="test", date="2024-01-01")
    store.append(EVENTS, actor="test")
    for h in ("hh-1", "hh-2", "hh-4"):  # hh-3 is unknown to the ledger at first
        ledger.record_move(h, VILLAGE, "test", "admin:test")
    return ledger


def test_an_idle_asset_leads_its_material_households_once(ledger_url):
    ledger = _ledger_with_register(ledger_url)
    try:
        states = AssetStore(ledger).states()
        cases = CaseStore(ledger)
        plan = hh.plan_leads(states, RECORDS, AS_OF, LINKS)
        led = hh.raise_leads(cases, plan, LINKS)
        # hh-3 depends on A-3 but the ledger does not know it: listed, not dropped, not led
        assert led.counts() == {"opened": 0, "merged": 0, "already": 0, "refused": 0,
                                "below_threshold": 1, "unknown": 2}  # fmt: skip
        assert {(u["household_id"], u["reason"]) for u in led.unknown} == {
            ("hh-3", "not in the ledger"), ("hh-4", "no income record")}  # fmt: skip
        assert cases.count() == 0
        ledger.record_move("hh-3", VILLAGE, "test", "admin:test")
        led = hh.raise_leads(cases, plan, LINKS)
        assert (led.opened, led.already, len(led.unknown)) == (1, 0, 1)
        case = cases.current("hh-3")
        assert case["status"] == "lead" and [s["source"] for s in case["sources"]] == ["asset_idle"]
        assert case["proposed_risk_types"] == ["low_income"]
        (lead,) = cases.events(case["case_id"])
        assert (
            lead["payload"]["reference"] == "A-3" and "20% of net income" in lead["payload"]["note"]
        )
        for name in ("hh-1", "hh-2", "hh-4"):
            assert cases.current(name) is None
        # re-running (a later run, the same trigger) does not lead twice
        again = hh.raise_leads(
            cases, hh.plan_leads(states, RECORDS, dt.date(2024, 8, 1), LINKS), LINKS
        )
        assert (again.opened, again.merged, again.already) == (0, 0, 1)
        assert cases.count() == 1
    finally:
        ledger.close()


def test_a_lead_merges_into_a_case_opened_from_another_source(ledger_url):
    ledger = _ledger_with_register(ledger_url)
    try:
        ledger.record_move("hh-3", VILLAGE, "test", "admin:test")
        cases = CaseStore(ledger)
        cases.act(hh.LEAD_ACTOR, "hh-3", "lead", {"source": "department_alert"})
        led = hh.raise_leads(
            cases, hh.plan_leads(AssetStore(ledger).states(), RECORDS, AS_OF, LINKS), LINKS
        )
        assert (led.opened, led.merged) == (0, 1)
        case = cases.current("hh-3")
        assert [s["source"] for s in case["sources"]] == ["department_alert", "asset_idle"]
        assert len(cases.household_cases("hh-3")) == 1
    finally:
        ledger.close()


def test_the_commands(tmp_path):
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    _ledger_with_register(url).close()
    app = typer.Typer()
    add_commands(app)
    records = tmp_path / "records.csv"
    RECORDS.to_csv(records, index=False)
    out = tmp_path / "returns.csv"
    run = CliRunner().invoke(app, ["households", "--ledger", url, "--records", str(records),
                                   "--out", str(out), "--as-of", "2024-06-30"])  # fmt: skip
    assert run.exit_code == 0, run.output
    table = pd.read_csv(out).set_index("household_id")
    assert table.loc["hh-2", "asset_income_share"] == pytest.approx(0.25)
    assert "4 beneficiary household(s) of 3 asset(s)" in run.output
    unknown = tmp_path / "unknown.csv"
    args = ["leads", "--ledger", url, "--records", str(records), "--as-of", "2024-06-30",
            "--unknown", str(unknown)]  # fmt: skip
    run = CliRunner().invoke(app, args)
    assert run.exit_code == 0, run.output
    assert "0 opened" in run.output and "1 below the threshold" in run.output
    assert "2 unknown household(s)" in run.output
    assert sorted(pd.read_csv(unknown)["household_id"]) == ["hh-3", "hh-4"]
    bad = tmp_path / "bad.csv"
    RECORDS.assign(period="2024-3").to_csv(bad, index=False)
    run = CliRunner().invoke(app, ["leads", "--ledger", url, "--records", str(bad)])
    assert run.exit_code == 1 and "row 0, field 'period'" in run.output
    assert "hh-" not in run.output
    run = CliRunner().invoke(
        app, ["leads", "--ledger", url, "--records", str(records), "--as-of", "June"]
    )
    assert run.exit_code == 2 and "--as-of" in run.output
