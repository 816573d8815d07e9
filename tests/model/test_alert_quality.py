"""The alert-quality report on a simulated year with confirmations (riskml.alerts.year, .quality).

The medical insurance and emergency management departments push a year of alerts through the
real intake into each ordering's ledger; caseworkers visit the leads; the figures are checked
for consistency and against the case events the run leaves behind.
"""

from __future__ import annotations

import json

import pytest

from riskml.alerts.quality import ALL, AlertQuality
from riskml.alerts.year import AlertSettings, run_year_with_alerts
from riskml.cases.procedure import load as load_procedure
from riskml.cases.store import CaseStore
from riskml.cases.year import ORDERINGS, YearSettings
from riskml.cases.year_world import build_world
from riskml.store.ledger import Ledger

HOUSEHOLDS = 800
CAPACITY = 12

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def scenario(small_config, lines, tmp_path_factory):
    world = build_world(HOUSEHOLDS, seed=7, year=2024, lines=lines, train_config=small_config)
    where = tmp_path_factory.mktemp("alert-year")
    proc = load_procedure(capacity={"weekly_visits": CAPACITY})
    report = run_year_with_alerts(YearSettings(households=HOUSEHOLDS), world=world,
                                  procedure=proc, lines=lines, ledger_dir=where)  # fmt: skip
    return world, report, where


def _quality(report, ordering) -> AlertQuality:
    return AlertQuality.from_dict(report["orderings"][ordering]["hook"]["alert_quality"])


def _events(where, ordering):
    ledger = Ledger(f"sqlite:///{where / f'cases-{ordering}.db'}")
    try:
        return [e for batch in CaseStore(ledger).iter_events() for e in batch]
    finally:
        ledger.close()


@pytest.mark.parametrize("ordering", ORDERINGS)
def test_the_departments_pushed_and_their_leads_were_judged(scenario, ordering):
    _, report, _ = scenario
    o = report["orderings"][ordering]
    pushed, q = o["hook"]["department_alerts"], _quality(report, ordering)
    assert pushed["medical_pushes"] == 12 and pushed["medical_alerts"] > 100
    assert pushed["emergency_alerts"] > 0 and o["hook"]["disaster_counties"] > 0
    assert q.counts["alerts"] == pushed["medical_alerts"] + pushed["emergency_alerts"]
    assert q.counts["matched"] == q.counts["alerts"]  # every household is known to the ledger
    medical = q.by_trigger[
        (q.by_trigger["department"] == "medical") & (q.by_trigger["trigger"] == ALL)
    ]
    assert int(medical["confirmed"].iloc[0]) > 0 and int(medical["dropped"].iloc[0]) > 0
    assert o["rebuild_mismatches"] == 0
    assert o["proposed"] + o["dropped"] == o["first_visits"]
    assert o["visits"] == o["first_visits"] + o["follow_ups"]


@pytest.mark.parametrize("ordering", ORDERINGS)
def test_figures_are_consistent(scenario, ordering):
    _, report, _ = scenario
    q = _quality(report, ordering)
    for r in q.by_trigger.to_dict("records"):
        new = r["leads"] - r["on_visited_case"]
        assert r["confirmed"] + r["dropped"] <= r["visited"] <= new <= r["leads"] <= r["alerts"]
        assert r["matched"] <= r["alerts"]
        if r["visited"]:
            assert 0 <= r["ci_low"] <= r["share"] <= r["ci_high"] <= 1
            assert r["share"] == pytest.approx(
                r["confirmed"] / r["visited"], abs=1e-4
            )  # as_dict rounds
    for r in q.by_source.to_dict("records"):
        assert r["confirmed"] <= r["visited"] <= r["leads"] - r["on_visited_case"]
        assert r["cases_found_first"] <= r["cases_involved"]
    bs = q.by_source.set_index("source")
    assert {"warning", "department_alert"} <= set(bs.index)
    assert bs["cases_found_first"].sum() == q.counts["confirmed_cases"] > 0
    assert bs["share_found_first"].sum() == pytest.approx(1.0)
    assert bs.loc["department_alert", "cases_found_first"] > 0
    assert (bs["median_days_to_confirmation"].dropna() > 0).all()


@pytest.mark.parametrize("ordering", ORDERINGS)
def test_threshold_what_if_is_monotone(scenario, ordering):
    _, report, _ = scenario
    w = _quality(report, ordering).what_if
    assert {"medical_inpatient_formerly_poor", "medical_inpatient", "medical_outpatient_month",
            "emergency_loss"} <= set(w["trigger"])  # fmt: skip
    for name, d in w.groupby("trigger"):
        d = d.sort_values("threshold")
        assert set(d["op"]) <= {"ge", "gt"}, name
        for col in ("fire", "confirmed_any_source"):
            assert d[col].is_monotonic_decreasing, (name, col)
        assert d["confirmed_cases_missed"].is_monotonic_increasing, name
        assert (d["confirmed_any_source"] <= d["fire"]).all()
        assert (d["fire"] <= d["alerts_judged"]).all()
        now = d[d["factor"] == 1.0].iloc[0]
        assert now["fire"] == now["stored_fired"]  # judged again as intake judged it
        assert now["added"] == now["removed"] == now["confirmed_cases_missed"] == 0
        above, below = d[d["threshold"] > now["threshold"]], d[d["threshold"] < now["threshold"]]
        assert (above["added"] == 0).all() and (below["removed"] == 0).all()
        assert (d["fire"] == now["fire"] + d["added"] - d["removed"]).all()


@pytest.mark.parametrize("ordering", ORDERINGS)
def test_alert_leads_went_through_the_machine(scenario, ordering):
    _, report, where = scenario
    q = _quality(report, ordering)
    rows = _events(where, ordering)
    leads = [
        e for e in rows if e["action"] == "lead" and e["payload"]["source"] == "department_alert"
    ]
    assert len(leads) == q.counts["alert_leads"]
    assert {e["actor"] for e in leads} == {"system:alerts"}
    by_case: dict[str, list[dict]] = {}
    for e in rows:
        by_case.setdefault(e["case_id"], []).append(e)
    first_by_alert = 0
    for events in by_case.values():
        actions = [e["action"] for e in events]
        if "decide" not in actions or events[0]["payload"].get("source") != "department_alert":
            continue
        first_by_alert += 1
        path = [a for a in actions[: actions.index("decide") + 1] if a != "lead"]
        assert path == ["visit", "cross_check", "notice", "township_review", "decide"]
        visit = events[actions.index("visit")]
        assert visit["actor"].startswith("caseworker:") and visit["payload"]["outcome"] == "propose"
        assert visit["created_at"] > events[0]["created_at"]  # visited after the push
    assert first_by_alert == int(
        q.by_source.set_index("source").loc["department_alert", "cases_found_first"]
    )


def test_no_household_id_in_the_report(scenario):
    world, report, _ = scenario
    text = json.dumps(report)
    assert not any(str(h) in text for h in world.households)
    assert report["settings"]["alerts"]["departments"] == ["medical", "emergency"]


def test_the_commands_on_the_simulated_ledger(scenario, tmp_path):
    from typer.testing import CliRunner

    from riskml.cli.app import app

    _, _, where = scenario
    url = f"sqlite:///{where / 'cases-riskml.db'}"
    html, js = tmp_path / "q.html", tmp_path / "q.json"
    result = CliRunner().invoke(app, ["alert-quality", "--ledger", url, "--report", str(html),
                                      "--json", str(js)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "By department and threshold" in result.output and "Threshold what-if" in result.output
    assert html.read_text().count("data:image/png;base64,") == 3
    assert json.loads(js.read_text())["counts"]["alerts"] > 0


def test_settings_refuse_nonsense():
    with pytest.raises(ValueError, match="departments"):
        AlertSettings(departments=("weather",))
    with pytest.raises(ValueError, match="disaster_share"):
        AlertSettings(disaster_share=0)


def test_the_monitor_section(scenario, tmp_path, capsys):
    from riskml.cli.monitor import alert_quality_section

    _, _, where = scenario
    html = tmp_path / "section.html"
    alert_quality_section(f"sqlite:///{where / 'cases-rules_only.db'}", html)
    out = capsys.readouterr().out
    assert "By department and threshold" in out and "By source" in out
    assert "Threshold what-if" not in out  # the monitor shows the tables, the report the what-if
    assert html.read_text().count("data:image/png;base64,") == 3
    alert_quality_section(f"sqlite:///{tmp_path / 'none.db'}", None)
    assert "no department alerts" in capsys.readouterr().out
