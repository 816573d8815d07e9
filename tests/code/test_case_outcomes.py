"""Outcomes from the case loop (issue 15 item 7): case decisions as monitoring outcomes and labels.

Real cases are driven through the state machine on a temporary SQLite ledger; the outcome rows
go through the real outcomes store, loader and join.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from riskml.cases.machine import Actor
from riskml.cases.outcomes import (
    CONFIRMED_LABEL,
    SELECTION_BIAS,
    confirmed_labels,
    outcomes_from_cases,
    with_confirmed_labels,
)
from riskml.cases.store import CaseStore
from riskml.monitoring.outcomes import join_outcomes, outcomes_from_frame
from riskml.store.ledger import Ledger
from riskml.store.outcomes import OutcomeError, OutcomeStore

COUNTY, TOWNSHIP, VILLAGE = "532328", "532328101", "532328101201"
CW = Actor("cw1", "caseworker", villages=frozenset({VILLAGE}))
TW = Actor("tw1", "township", townships=frozenset({TOWNSHIP}))
CO = Actor("co1", "county", counties=frozenset({COUNTY}))
VISIT = {
    "consent": True,
    "outcome": "propose",
    "coping_capacity": "weak",
    "risk_types": ["illness"],
}
CONFIRM = {"decision": "confirm", "household_type": "marginal", "risk_types": ["illness"]}
MEASURE = {
    "risk_type": "illness",
    "measure": "医疗救助",
    "department": "医保局",
    "start": "2026-01-12",
    "end": "2026-12-31",
}
CRITERIA = [{"criterion": "labour", "met": True, "evidence": "two adults work"}]


def _at(day: str, plus_days: int = 0) -> str:
    t = datetime.fromisoformat(day).replace(tzinfo=UTC) + timedelta(days=plus_days)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Loop:
    """One household's case driven through the machine, each step at a given day."""

    def __init__(self, store: CaseStore, household: str):
        self.s, self.h = store, household

    def act(self, actor: Actor, action: str, payload: dict, at: str, **kw) -> dict:
        return self.s.act(actor, self.h, action, payload, at=at, **kw).state

    def lead(self, day: str) -> dict:
        return self.act(CW, "lead", {"source": "warning"}, _at(day), where=(COUNTY, VILLAGE))

    def to_township(self, day: str) -> None:
        """lead, assign, visit, cross-check, notice (day .. day + 4)."""
        self.lead(day)
        self.act(TW, "assign", {"caseworker": "cw1"}, _at(day, 1))
        self.act(CW, "visit", VISIT, _at(day, 2))
        self.act(CO, "cross_check", {"result": "consistent"}, _at(day, 3))
        self.act(CW, "notice", {}, _at(day, 4))

    def identify(self, day: str, decision: str = "confirm") -> dict:
        """The whole identification path; the county decides on day + 11."""
        self.to_township(day)
        self.act(TW, "township_review", {"decision": "approve"}, _at(day, 10))
        body = CONFIRM if decision == "confirm" else {"decision": "reject", "note": "income ok"}
        return self.act(CO, "decide", body, _at(day, 11))

    def support(self, day: str) -> None:
        self.act(CW, "plan", {"measures": [MEASURE]}, _at(day))
        self.act(CW, "deliver", {"measure": 0, "delivered_on": day}, _at(day, 1))

    def eliminate(self, day: str, township: str = "approve", county: str = "approve") -> dict:
        self.act(CW, "propose_elimination", {}, _at(day), facts={"criteria": CRITERIA})
        state = self.act(TW, "elimination_review", {"decision": township}, _at(day, 3))
        if township == "approve":
            state = self.act(CO, "elimination_decide", {"decision": county}, _at(day, 6))
        return state


@pytest.fixture()
def world(tmp_path):
    """A ledger with one household for every kind of decision (and one with none)."""
    led = Ledger(f"sqlite:///{tmp_path}/ledger.db")
    store = CaseStore(led)
    # hh_confirmed: confirmed 2026-01-12, eliminated 2026-08-07, rolled back 2026-11-05
    c = Loop(store, "hh_confirmed")
    assert c.identify("2026-01-01")["status"] == "monitored"
    c.support("2026-01-13")
    for month in ("02", "04", "06"):
        c.act(CW, "follow_up", {"consent": True}, _at(f"2026-{month}-10"))
    assert c.eliminate("2026-08-01")["status"] == "eliminated"
    c.act(CW, "follow_up", {"consent": True}, _at("2026-10-01"))
    assert c.act(CO, "rollback", {"reason": "lost the job"}, _at("2026-11-05"))["status"] == (
        "monitored"
    )
    # hh_county_no: rejected by the county 2026-02-12
    assert Loop(store, "hh_county_no").identify("2026-02-01", "reject")["status"] == "rejected"
    # hh_township_no: rejected by the township 2026-02-15
    t = Loop(store, "hh_township_no")
    t.to_township("2026-02-05")
    assert t.act(TW, "township_review", {"decision": "reject"}, _at("2026-02-15"))["status"] == (
        "rejected"
    )
    # hh_dropped: dropped at the visit 2026-03-04
    d = Loop(store, "hh_dropped")
    d.lead("2026-03-02")
    drop = {"consent": True, "outcome": "drop", "coping_capacity": "strong"}
    assert d.act(CW, "visit", drop, _at("2026-03-04"))["status"] == "dropped"
    # hh_same_month: dropped 2026-04-02, a new lead the same month, confirmed 2026-04-28
    s = Loop(store, "hh_same_month")
    s.lead("2026-04-01")
    s.act(CW, "visit", drop, _at("2026-04-02"))
    assert s.identify("2026-04-17")["status"] == "monitored"
    # hh_kept: confirmed 2026-01-22, elimination refused by the township 2026-09-04
    k = Loop(store, "hh_kept")
    k.identify("2026-01-11")
    k.support("2026-01-23")
    assert k.eliminate("2026-09-01", township="reject")["status"] == "monitored"
    # hh_lead: a lead nobody has visited yet (no outcome)
    Loop(store, "hh_lead").lead("2026-05-01")
    yield led, store
    led.close()


def _rows(frame: pd.DataFrame) -> dict[tuple[str, str], tuple[int, str]]:
    return {
        (r.household_id, r.period): (int(r.at_risk), r.outcome)
        for r in frame.itertuples(index=False)
    }


def test_every_decision_becomes_an_outcome_in_its_month(world):
    _, store = world
    out = outcomes_from_cases(store, as_of="2027-01-15")
    assert _rows(out) == {
        ("hh_confirmed", "2026-01"): (1, "confirmed"),
        ("hh_confirmed", "2026-08"): (0, "eliminated"),
        ("hh_confirmed", "2026-11"): (1, "rollback"),
        ("hh_county_no", "2026-02"): (0, "rejected_county"),
        ("hh_township_no", "2026-02"): (0, "rejected_township"),
        ("hh_dropped", "2026-03"): (0, "dropped"),
        # two decisions in one month: the last (the month-end state) is the outcome
        ("hh_same_month", "2026-04"): (1, "confirmed"),
        ("hh_kept", "2026-01"): (1, "confirmed"),
        ("hh_kept", "2026-09"): (1, "elimination_refused"),
    }
    assert set(out["source"]) == {"cases"}
    assert (out["decision_period"] == out["period"].map(lambda p: f"{int(p[:4]) - 1}{p[4:]}")).all()
    # every row names the event it came from
    rollback = out[out["outcome"] == "rollback"].iloc[0]
    events = store.events(rollback["case_id"])
    assert [e["action"] for e in events if e["event_id"] == rollback["event_id"]] == ["rollback"]
    assert out["event_id"].is_unique


def test_only_complete_months_count(world):
    _, store = world
    # as of 2026-08-20 the August elimination's month is not over yet, and November is ahead
    out = outcomes_from_cases(store, as_of="2026-08-20")
    assert ("hh_confirmed", "2026-08") not in _rows(out)
    assert ("hh_confirmed", "2026-07") not in _rows(out)
    assert len(out) == 6
    assert outcomes_from_cases(store, as_of="2026-01-31").empty


def test_the_outcomes_store_and_loader_accept_them(world):
    led, store = world
    out = outcomes_from_cases(store, as_of="2027-01-15")
    # the loader's layout household_id, period, at_risk gives the same outcomes
    loaded = outcomes_from_frame(out[["household_id", "period", "at_risk"]])
    pd.testing.assert_frame_equal(
        loaded, out[["household_id", "period", "decision_period", "at_risk"]]
    )
    table = OutcomeStore(led)
    assert table.add(out, source="cases") == {"stored": 9, "already_stored": 0, "rows": 9}
    # a monthly rerun stores only what is new
    assert table.add(outcomes_from_cases(store, as_of="2027-02-15"), source="cases") == {
        "stored": 0,
        "already_stored": 9,
        "rows": 9,
    }
    stored = table.frame()
    assert set(stored["source"]) == {"cases"}
    assert set(zip(stored["household_id"], stored["period"], stored["at_risk"], strict=True)) == {
        (h, p, v) for (h, p), (v, _) in _rows(out).items()
    }
    # an income outcome that disagrees with a case decision is refused, nothing stored
    clash = pd.DataFrame(
        {"household_id": ["hh_dropped"], "period": ["2026-03"], "decision_period": ["2025-03"]}
    ).assign(at_risk=1)
    with pytest.raises(OutcomeError, match="differ from stored"):
        table.add(clash, source="file.csv")


def test_case_outcomes_grade_the_decision_twelve_months_earlier(world):
    led, store = world
    OutcomeStore(led).add(outcomes_from_cases(store, as_of="2027-01-15"), source="cases")
    decisions = pd.DataFrame(
        {
            "household_id": ["hh_confirmed", "hh_dropped", "hh_confirmed", "hh_lead"],
            "period": ["2025-01", "2025-03", "2026-01", "2025-05"],
            "county_code": COUNTY,
            "score": [0.8, 0.3, 0.7, 0.5],
            "flagged": [True, False, True, False],
            "created_at": "2025-01-05T00:00:00Z",
        }
    )
    j = join_outcomes(decisions, OutcomeStore(led).frame(), as_of="2027-01-15")
    got = {
        (r.household_id, r.period): (r.status, r.at_risk, r.outcome_period)
        for r in j.itertuples(index=False)
    }
    assert got[("hh_confirmed", "2025-01")][1:] == (1, "2026-01")
    assert got[("hh_dropped", "2025-03")][1:] == (0, "2026-03")
    assert got[("hh_confirmed", "2025-01")][0] in ("matched", "late")
    # the decision of 2026-01 waits for an outcome of 2027-01; the lead has none
    assert got[("hh_confirmed", "2026-01")][0] == "pending"
    assert got[("hh_lead", "2025-05")][0] == "overdue"


def test_an_empty_case_store_gives_an_empty_frame_the_store_takes(tmp_path):
    with Ledger(f"sqlite:///{tmp_path}/empty.db") as led:
        out = outcomes_from_cases(CaseStore(led))
        assert out.empty and "household_id" in out.columns and "at_risk" in out.columns
        assert OutcomeStore(led).add(out, source="cases")["stored"] == 0


def _panel(rows: list[tuple[str, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["household_id", "period"], index=range(100, 100 + len(rows)))


PANEL = [
    ("hh_confirmed", "2025-01"),  # confirmed 2026-01, the 12th month after: 1
    ("hh_confirmed", "2024-12"),  # 2026-01 is the 13th month: not in the window
    ("hh_confirmed", "2026-01"),  # already monitored at the end of the month: unlabelled
    ("hh_confirmed", "2026-09"),  # eliminated then; rolled back 2026-11: 1
    ("hh_county_no", "2025-06"),  # visited, rejected: 0
    ("hh_dropped", "2025-06"),  # visited, dropped: 0
    ("hh_lead", "2025-06"),  # a lead nobody visited: 0 or unlabelled
    ("hh_never", "2025-06"),  # no case at all: 0 or unlabelled
    ("hh_never", "2027-01"),  # window ends 2028-01, not complete as of 2028-01-10
]


def test_confirmed_labels_count_confirmations_and_rollbacks_in_the_next_12_months(world):
    _, store = world
    panel = _panel(PANEL)
    y = confirmed_labels(store, panel, as_of="2028-01-10")
    assert y.name == CONFIRMED_LABEL and list(y.index) == list(panel.index)
    np.testing.assert_array_equal(y.to_numpy(), [1.0, 0.0, np.nan, 1.0, 0.0, 0.0, 0.0, 0.0, np.nan])


def test_unvisited_households_are_unlabelled_when_configured(world):
    _, store = world
    y = confirmed_labels(store, _panel(PANEL), as_of="2028-01-10", unvisited="unlabelled")
    # hh_confirmed 2024-12: nobody came in 2025, its window: unlabelled like the unvisited
    np.testing.assert_array_equal(
        y.to_numpy(), [1.0, np.nan, np.nan, 1.0, 0.0, 0.0, np.nan, np.nan, np.nan]
    )
    # the selection: only households the loop reached carry a label at all
    reached = {"hh_confirmed", "hh_county_no", "hh_dropped"}
    labelled = _panel(PANEL)[y.notna().to_numpy()]
    assert set(labelled["household_id"]) <= reached
    with pytest.raises(ValueError, match="unvisited"):
        confirmed_labels(store, _panel(PANEL), unvisited="never")


def test_incomplete_windows_are_unlabelled(world):
    _, store = world
    # as of 2026-01-20 the 2025-01 record's window (to 2026-01) is not over: unlabelled
    y = confirmed_labels(store, _panel(PANEL[:1]), as_of="2026-01-20")
    assert y.isna().all()
    y = confirmed_labels(store, _panel(PANEL[:1]), as_of="2026-02-01")
    assert y.tolist() == [1.0]


def test_with_confirmed_labels_adds_the_column(world):
    _, store = world
    panel = _panel(PANEL).assign(at_risk_next=0.0)
    out = with_confirmed_labels(panel, store, as_of="2028-01-10")
    assert CONFIRMED_LABEL not in panel.columns
    assert out[CONFIRMED_LABEL].sum() == 2 and (out["at_risk_next"] == 0).all()


def test_the_selection_bias_is_stated():
    text = SELECTION_BIAS.lower()
    assert "only visited households can be confirmed" in text
    assert "not the income label" in text and "worklist" in text


# ----------------------------------------------------------------------------- the commands
def test_riskml_outcomes_from_cases_stores_them(world, tmp_path):
    from typer.testing import CliRunner

    from riskml.cli.app import app

    led, _ = world
    url = str(led.engine.url)
    runner = CliRunner()
    res = runner.invoke(app, ["outcomes", "--from-cases", "--ledger", url, "--as-of", "2027-01-15"])
    assert res.exit_code == 0, res.output
    assert "9 outcome(s) read from cases: 9 stored, 0 already stored" in res.output
    assert "confirmed 3" in res.output and "rollback 1" in res.output
    res = runner.invoke(app, ["outcomes", "--from-cases", "--ledger", url, "--as-of", "2027-02-15"])
    assert res.exit_code == 0 and "0 stored, 9 already stored" in res.output
    assert set(OutcomeStore(led).frame()["source"]) == {"cases"}
    # a file or --from-cases, never both, never neither
    for args in (["outcomes", "--ledger", url], ["outcomes", "x.csv", "--from-cases"]):
        res = runner.invoke(app, args)
        assert res.exit_code == 1 and "one of them" in res.output


ADMIN = Actor("admin1", "admin")


def _confirm(store: CaseStore, h: str, where: tuple[str, str], day: str) -> None:
    """Lead to county confirmation for one household, starting on ``day``."""
    steps = [
        ("lead", {"source": "warning"}, 0),
        ("visit", VISIT, 1),
        ("cross_check", {"result": "consistent"}, 2),
        ("notice", {}, 3),
        ("township_review", {"decision": "approve"}, 9),
        ("decide", CONFIRM, 10),
    ]
    for action, body, plus in steps:
        kw = {"where": where} if action == "lead" else {}
        store.act(ADMIN, h, action, body, at=_at(day, plus), **kw)


def test_training_on_confirmed_identification_states_the_selection_bias(
    tmp_path, sample_panel, small_config, lines
):
    """data.label confirmed: the panel's confirmed_next from the case store is the label."""
    import copy

    from riskml.model.model_card import model_card
    from riskml.training.train import TrainingDataError, train

    store = CaseStore(Ledger(f"sqlite:///{tmp_path}/cases.db"))
    # the loop reached 20 households at risk in each of 2020-06 … 2023-06, confirming them
    # in the December after the record
    panel = sample_panel
    chosen: set[str] = set()
    for period in ("2020-06", "2021-06", "2022-06", "2023-06"):
        g = panel[(panel["period"] == period) & (panel["at_risk_next"] == 1)]
        g = g[~g["household_id"].isin(chosen)].head(20)
        for r in g.itertuples(index=False):
            _confirm(store, r.household_id, (r.county_code, r.village_code), f"{period[:4]}-12-01")
        chosen |= set(g["household_id"])
    cfg = copy.deepcopy(small_config)
    cfg.label, cfg.test_period, cfg.valid_period = "confirmed", "2023-06", "2022-06"
    with pytest.raises(TrainingDataError, match="confirmed_next"):
        train(panel, cfg, lines)
    labelled = with_confirmed_labels(panel, store, as_of="2026-12-01")
    y = labelled[CONFIRMED_LABEL]
    assert int(y.sum()) == 80
    # a household stays unlabelled while it is monitored (every record after its confirmation)
    later = labelled[labelled["household_id"].isin(chosen) & (labelled["period"] == "2025-06")]
    assert later[CONFIRMED_LABEL].isna().all()
    result = train(labelled, cfg, lines)
    assert result.model.metadata["label"] == "confirmed"
    assert result.row_counts["test_positives"] == 20
    assert result.row_counts["labelled_rows"] == int(y.notna().sum())
    result.model.metadata["label_note"] = SELECTION_BIAS  # what `riskml train` sets
    importance = pd.DataFrame(columns=["feature", "risk_type", "mean_abs_shap"])
    card = model_card(result, cfg, importance)
    assert "Label: confirmed" in card and "Only visited households can be confirmed" in card
