"""A year of the case loop, simulated: monthly records, caseworker beats, and the scenario itself.

The scenario runs both orderings on 1,000 households of the sample world with a fixed capacity
and checks the figures against the case ledgers the run leaves behind: every confirmed case went
through the state machine step by step, no caseworker made more visits in a week than the
capacity, eliminations only for households with labour.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import date
from types import SimpleNamespace

import numpy as np
import pytest

from riskml.cases.machine import parse_time
from riskml.cases.procedure import load as load_procedure
from riskml.cases.store import CaseStore
from riskml.cases.year import ORDERINGS, YearSettings, beats, run_year, workday_add
from riskml.cases.year_world import FLOAT_FIELDS, build_world, monthly, period_of
from riskml.data import schema
from riskml.store.ledger import Ledger

HOUSEHOLDS = 1000
CAPACITY = 12  # a test override of the procedure's capacity.weekly_visits


# ------------------------------------------------------------------ monthly records
@pytest.fixture(scope="module")
def year_ends(sample_panel):
    a = sample_panel[sample_panel["period"] == "2024-06"].set_index("household_id")
    b = sample_panel[sample_panel["period"] == "2025-06"].set_index("household_id")
    ids = sorted(set(a.index) & set(b.index))[:300]
    return a.loc[ids].reset_index(), b.loc[ids].reset_index()


def test_money_is_interpolated_and_counts_switch_at_the_new_year(year_ends):
    a, b = year_ends
    mid = monthly(a, b, 6, period_of(2024, 6))
    assert set(mid["period"]) == {"2024-12"}
    both = a["income_wage"].notna() & b["income_wage"].notna()
    want = np.rint(0.5 * a["income_wage"][both] + 0.5 * b["income_wage"][both])
    assert np.allclose(mid["income_wage"][both].to_numpy(float), want.to_numpy(float))
    third = monthly(a, b, 4, period_of(2024, 4))
    x, y = a["medical_expense"].astype(float), b["medical_expense"].astype(float)
    ok = x.notna() & y.notna()
    assert np.allclose(
        third["medical_expense"][ok].astype(float), np.rint(x[ok] * 8 / 12 + y[ok] * 4 / 12)
    )
    for m in (1, 11):  # counts and flags stay the June record's until the new year's record
        mo = monthly(a, b, m, period_of(2024, m))
        assert (mo["household_size"].to_numpy() == a["household_size"].to_numpy()).all()
        assert (mo["dibao"].to_numpy() == a["dibao"].to_numpy()).all()
    last = monthly(a, b, 12, period_of(2024, 12))
    assert set(last["period"]) == {"2025-06"}
    assert (last["household_size"].to_numpy() == b["household_size"].to_numpy()).all()


def test_a_value_missing_at_one_end_is_taken_from_the_other(year_ends):
    a, b = year_ends
    a, b = a.copy(), b.copy()
    a.loc[0, "income_business"] = None
    b.loc[1, "income_business"] = None
    mo = monthly(a, b, 3, period_of(2024, 3))
    assert mo.loc[0, "income_business"] == b.loc[0, "income_business"]
    assert mo.loc[1, "income_business"] == a.loc[1, "income_business"]


def test_monthly_records_are_valid_records(year_ends):
    a, b = year_ends
    for m in (0, 5, 12):
        frame = monthly(a, b, m, period_of(2024, m))
        assert schema.validate_frame(frame) == []
        assert set(FLOAT_FIELDS) <= set(frame.columns)


def test_beats_are_whole_villages_covering_every_household_once():
    village = np.array(["v3", "v1", "v2", "v1", "v3", "v2", "v4", "v4", "v1"])
    world = SimpleNamespace(village=village)
    got = beats(world, 3)
    members = np.concatenate(got)
    assert sorted(members.tolist()) == list(range(len(village)))
    for b in got:  # a village is never split between caseworkers
        for v in set(village[b]):
            assert set(np.flatnonzero(village == v)) <= set(b.tolist())
    assert len(beats(world, None)) == 4  # one caseworker per village


def test_workdays_skip_weekends():
    friday = date(2024, 7, 5)
    assert workday_add(friday, 1) == date(2024, 7, 8)
    assert workday_add(date(2024, 7, 6), 0) == date(2024, 7, 8)
    assert workday_add(friday, 5) == date(2024, 7, 12)


def test_settings_refuse_nonsense():
    with pytest.raises(ValueError, match="capacity"):
        YearSettings(capacity=0)
    with pytest.raises(ValueError, match="previous"):
        YearSettings(previous="never")


# ------------------------------------------------------------------ the scenario
@pytest.fixture(scope="module")
def scenario(small_config, lines, tmp_path_factory):
    world = build_world(HOUSEHOLDS, seed=7, year=2024, lines=lines, train_config=small_config)
    where = tmp_path_factory.mktemp("year-ledgers")
    proc = load_procedure(capacity={"weekly_visits": CAPACITY})
    report = run_year(YearSettings(households=HOUSEHOLDS), world=world, procedure=proc,
                      lines=lines, ledger_dir=where)  # fmt: skip
    return world, report, where, proc


def _events(where, ordering):
    ledger = Ledger(f"sqlite:///{where / f'cases-{ordering}.db'}")
    store = CaseStore(ledger)
    rows = [r for batch in store.iter_events() for r in batch]
    return store, ledger, rows


@pytest.mark.slow
def test_the_model_never_sees_the_simulated_year(scenario):
    world, report, _, _ = scenario
    t = report["world"]["training"]
    assert t["records_up_to"] == "2023-06" and t["test_period"] == "2023-06"
    assert max(t["train_periods"]) < t["valid_period"] < "2024-06"
    assert [p.period for p in world.pushes] == [period_of(2024, k) for k in range(12)]


@pytest.mark.slow
def test_figures_are_consistent(scenario):
    world, report, _, proc = scenario
    fell = int((world.fell_month() > 0).sum())
    assert fell > 20  # the world gives something to reach
    for name in ORDERINGS:
        o = report["orderings"][name]
        assert o["fell_below_line"] == fell
        assert o["confirmed_before_fell"] <= o["reached_before_fell"] <= fell
        assert o["visits"] == o["first_visits"] + o["follow_ups"]
        weeks = 53  # 1 July to 30 June starts 53 Mondays at most
        assert o["visits"] <= o["visit_slots"] <= o["caseworkers"] * CAPACITY * weeks
        assert o["capacity_per_week"] == CAPACITY == proc.weekly_visits
        assert o["proposed"] + o["dropped"] == o["first_visits"]
        assert o["eliminated"] <= o["confirmed"] <= o["proposed"]
        assert o["overdue_steps"] == sum(o["overdue_done_late"].values()) + sum(
            o["overdue_open_at_end"].values()
        )
        assert o["rebuild_mismatches"] == 0
        assert o["eliminated_without_labour"] == 0
    text = json.dumps(report)
    assert not any(str(h) in text for h in world.households)  # no household id in the figures


@pytest.mark.slow
def test_riskml_order_reaches_at_least_as_many_before_they_fall(scenario):
    _, report, _, _ = scenario
    o = report["orderings"]
    assert o["riskml"]["reached_before_fell"] >= o["rules_only"]["reached_before_fell"]


@pytest.mark.slow
@pytest.mark.parametrize("ordering", ORDERINGS)
def test_every_confirmed_case_went_through_the_machine(scenario, ordering):
    _, report, where, proc = scenario
    store, ledger, rows = _events(where, ordering)
    try:
        rebuilt = store.rebuild()
        assert rebuilt.mismatched == [] and rebuilt.events == len(rows)
        by_case: dict[str, list[dict]] = {}
        for r in rows:
            by_case.setdefault(r["case_id"], []).append(r)
        confirmed = 0
        for events in by_case.values():
            actions = [e["action"] for e in events]
            if "decide" not in actions:
                continue
            confirmed += 1
            path = actions[: actions.index("decide") + 1]
            assert path == ["lead", "visit", "cross_check", "notice", "township_review", "decide"]
            roles = [e["actor"].split(":")[0] for e in events[: len(path)]]
            assert roles == [
                "caseworker",
                "caseworker",
                "county",
                "caseworker",
                "township",
                "county",
            ]
            assert events[1]["payload"]["outcome"] == "propose" and events[1]["payload"]["consent"]
            assert events[4]["payload"]["decision"] == "approve"
            notice, review = (
                parse_time(events[3]["created_at"]),
                parse_time(events[4]["created_at"]),
            )
            assert (review - notice).days >= proc.days("notice_min")
            assert events[5]["status"] == "monitored"
        assert confirmed == report["orderings"][ordering]["confirmed"]
    finally:
        ledger.close()


@pytest.mark.slow
@pytest.mark.parametrize("ordering", ORDERINGS)
def test_no_caseworker_visits_more_than_the_capacity_in_a_week(scenario, ordering):
    _, report, where, _ = scenario
    _, ledger, rows = _events(where, ordering)
    ledger.close()
    per_week = Counter(
        (r["actor"], parse_time(r["created_at"]).isocalendar()[:2])
        for r in rows
        if r["action"] in ("visit", "follow_up")
    )
    assert max(per_week.values()) <= CAPACITY
    assert sum(per_week.values()) == report["orderings"][ordering]["visits"]


@pytest.mark.slow
@pytest.mark.parametrize("ordering", ORDERINGS)
def test_eliminations_only_for_households_with_labour(scenario, ordering):
    world, report, where, _ = scenario
    _, ledger, rows = _events(where, ordering)
    ledger.close()
    position = {str(h): i for i, h in enumerate(world.households)}
    proposals = {r["case_id"]: r for r in rows if r["action"] == "propose_elimination"}
    eliminated = [
        r
        for r in rows
        if r["action"] == "elimination_decide" and r["payload"]["decision"] == "approve"
    ]
    assert len(eliminated) == report["orderings"][ordering]["eliminated"]
    for r in eliminated:
        criteria = {c["criterion"]: c for c in proposals[r["case_id"]]["payload"]["criteria"]}
        assert all(c["met"] for c in criteria.values())
        h = position[r["household_id"]]
        month = min(
            max(int(r["created_at"][:4]) * 12 + int(r["created_at"][5:7]) - 1 - (2024 * 12 + 5), 0),
            12,
        )
        assert world.record(h, month)["labor_count"] > 0


@pytest.mark.slow
def test_the_command_prints_the_table_and_writes_the_json(tmp_path):
    import typer
    import yaml
    from typer.testing import CliRunner

    from riskml.cli.cases_year import add_commands
    from tests.conftest import ROOT

    raw = yaml.safe_load((ROOT / "training" / "default.yaml").read_text())
    raw["data"]["min_positives"] = 10
    raw["model"]["num_boost_round"] = 200
    (tmp_path / "train.yaml").write_text(yaml.safe_dump(raw))
    app = typer.Typer()
    add_commands(app)
    out = tmp_path / "year.json"
    args = ["cases", "simulate-year", "-n", "400", "--capacity", "5", "--config",
            str(tmp_path / "train.yaml"), "--out", str(out), "-q"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "reached before they fell" in result.output and "riskml order" in result.output
    report = json.loads(out.read_text())
    assert set(report["orderings"]) == set(ORDERINGS)
    assert report["settings"]["capacity"] == 5
    for o in report["orderings"].values():
        assert o["caseworkers"] == 1 and o["visits"] <= o["visit_slots"]
    bad = CliRunner().invoke(app, ["cases", "simulate-year", "--previous", "never", "-q"])
    assert bad.exit_code == 2 and "--previous" in bad.output
