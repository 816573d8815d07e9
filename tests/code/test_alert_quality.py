"""Alert quality (riskml.alerts.quality) on hand-made alerts and case events, and its report."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from riskml.alerts import quality
from riskml.alerts.quality import ALL, NONE_FIRED, AlertQuality, case_outcomes, compute, wilson
from riskml.alerts.triggers import TriggerSet
from riskml.monitoring.alert_report import figures, format_quality, render_html

COUNTY = "520526"


@pytest.fixture(scope="module")
def triggers():
    return TriggerSet.load()


def _alert(aid, h, period, fired, dept="medical", **fields):
    return {"department": dept, "alert_id": aid, "household_id": h, "county_code": COUNTY,
            "period": period, "received_at": f"{period}-28T00:00:00+00:00", "matched": True,
            "decision_id": f"d-{aid}", "triggers": fired or None,
            "fields": {"household_id": h, "county_code": COUNTY, **fields}}  # fmt: skip


class Events:
    """Case events of one household after another, numbered as the store numbers them."""

    def __init__(self):
        self.rows: list[dict] = []
        self.seq: dict[str, int] = {}

    def add(self, h, case, at, action, **payload):
        self.seq[h] = self.seq.get(h, 0) + 1
        self.rows.append({"household_id": h, "seq": self.seq[h], "case_id": case,
                          "created_at": at, "action": action, "payload": payload})  # fmt: skip
        return self

    def confirmed(
        self, h, case, lead_at, source, ref=None, visit="2024-08-12", decide="2024-09-01"
    ):
        self.add(h, case, lead_at, "lead", source=source, **({"reference": ref} if ref else {}))
        self.add(h, case, f"{visit}T09:00:00+00:00", "visit", outcome="propose", consent=True)
        self.add(h, case, f"{visit}T16:00:00+00:00", "cross_check", result="consistent")
        return self.add(h, case, f"{decide}T08:00:00+00:00", "decide", decision="confirm")


@pytest.fixture(scope="module")
def world():
    alerts = [
        _alert("m1", "H0000001", "2024-07", ["medical_inpatient_formerly_poor"],
               out_of_pocket=6000.0, care="inpatient"),
        _alert("m2", "H0000002", "2024-07", [], out_of_pocket=3000.0, care="inpatient"),
        _alert("m3", "H0000003", "2024-07", ["medical_outpatient_month"], out_of_pocket=7200.0,
               care="outpatient", month_out_of_pocket=600.0),
        _alert("m4", "H0000004", "2024-10", ["medical_outpatient_month"], out_of_pocket=8400.0,
               care="outpatient", month_out_of_pocket=700.0),
        _alert("e1", "H0000006", "2024-08", ["emergency_loss"], dept="emergency",
               event_date="2024-08-10", loss=3000.0, house_damaged=False),
    ]  # fmt: skip
    ev = Events()
    ev.confirmed("H0000001", "cA", "2024-08-06T07:00:00+00:00", "department_alert", "m1")
    ev.confirmed("H0000002", "cB", "2024-08-20T09:00:00+00:00", "warning", visit="2024-08-20",
                 decide="2024-09-15")  # fmt: skip
    ev.add("H0000003", "cC", "2024-08-06T07:00:00+00:00", "lead", source="department_alert",
           reference="m3")  # fmt: skip
    ev.add("H0000003", "cC", "2024-08-13T09:00:00+00:00", "visit", outcome="drop", consent=True)
    ev.confirmed("H0000004", "cD", "2024-08-02T09:00:00+00:00", "warning", visit="2024-08-02")
    ev.add("H0000004", "cD", "2024-11-05T07:00:00+00:00", "lead", source="department_alert",
           reference="m4", merged=True)  # fmt: skip
    ev.confirmed("H0000005", "cE", "2024-08-01T10:00:00+00:00", "social_report")
    ev.add("H0000007", "cF", "2024-09-01T10:00:00+00:00", "lead", source="hotline")
    before = {("H0000001", "2024-07"): {"formerly_poor": True},
              ("H0000002", "2024-07"): {"formerly_poor": True}}  # fmt: skip
    return alerts, ev.rows, before


@pytest.fixture(scope="module")
def q(world, triggers):
    alerts, events, before = world
    return compute(alerts, events, triggers, records_before=before, factors=(0.5, 1.0, 2.0))


def _row(df, **where):
    sel = df
    for k, v in where.items():
        sel = sel[sel[k].isna()] if v is None else sel[sel[k] == v]
    assert len(sel) == 1, (where, sel)
    return sel.iloc[0]


def test_wilson_interval():
    lo, hi = wilson(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-4) and hi == pytest.approx(0.9433, abs=1e-4)
    assert wilson(0, 10)[0] == 0.0 and wilson(10, 10)[1] == 1.0
    assert all(math.isnan(x) for x in wilson(0, 0))


def test_a_lead_joining_a_visited_case_is_not_a_new_lead(world):
    _, events, _ = world
    cases, leads = case_outcomes(reversed(events))  # any order
    assert cases["cD"].confirmed_at.startswith("2024-09-01")
    late = [x for x in leads if x.case_id == "cD" and x.source == "department_alert"]
    assert len(late) == 1 and not late[0].new and not late[0].visited
    dropped = [x for x in leads if x.case_id == "cC"][0]
    assert dropped.new and dropped.visited and dropped.dropped and not dropped.confirmed


def test_by_department_and_threshold(q):
    bt = q.by_trigger
    r = _row(bt, trigger="medical_inpatient_formerly_poor")
    assert (r.threshold, r.alerts, r.leads, r.visited, r.confirmed, r.share) == (
        5000,
        1,
        1,
        1,
        1,
        1.0,
    )
    r = _row(bt, trigger="medical_outpatient_month")
    assert (r.alerts, r.leads, r.on_visited_case, r.visited, r.dropped, r.confirmed) == (
        2,
        2,
        1,
        1,
        1,
        0,
    )
    assert r.share == 0.0 and 0 < r.ci_high < 1
    r = _row(bt, department="medical", trigger=NONE_FIRED)
    assert (r.alerts, r.leads, r.visited) == (1, 0, 0) and math.isnan(r.share)
    r = _row(bt, department="medical", trigger=ALL)
    assert (r.alerts, r.matched, r.leads, r.visited, r.confirmed) == (4, 4, 3, 2, 1)
    r = _row(bt, department="emergency", trigger="emergency_loss")
    assert (r.threshold, r.alerts, r.leads) == (0, 1, 0)
    assert list(bt["trigger"][bt["department"] == "medical"])[-2:] == [NONE_FIRED, ALL]


def test_by_source_any_source_value(q):
    bs = q.by_source.set_index("source")
    assert list(bs.index) == ["warning", "department_alert", "social_report", "hotline"]
    assert bs.loc["warning", ["leads", "visited", "confirmed", "cases_found_first"]].tolist() == [
        2,
        2,
        2,
        2,
    ]
    d = bs.loc["department_alert"]
    assert (d.leads, d.on_visited_case, d.visited, d.confirmed, d.cases_found_first) == (
        3,
        1,
        2,
        1,
        1,
    )
    assert d.cases_involved == 1  # A; its lead on D came after the confirmation
    assert d.median_days_to_confirmation == pytest.approx(26 + 1 / 24)
    assert bs["share_found_first"].sum() == pytest.approx(1.0)
    assert bs.loc["social_report", "share_found_first"] == 0.25
    h = bs.loc["hotline"]
    assert (h.leads, h.visited, h.cases_found_first) == (1, 0, 0) and math.isnan(h.share)
    assert q.counts["confirmed_cases"] == 4 and q.counts["alert_leads"] == 3


def test_threshold_what_if(q):
    w = q.what_if
    f = w[w["trigger"] == "medical_inpatient_formerly_poor"].set_index("factor")
    assert f["threshold"].tolist() == [2500, 5000, 10000]
    assert f["fire"].tolist() == [2, 1, 0] and f["stored_fired"].tolist() == [1, 1, 1]
    assert f.loc[0.5, "added"] == 1 and f.loc[0.5, "confirmed_any_source"] == 2  # B, by a warning
    assert f.loc[2.0, "removed"] == 1 and f.loc[2.0, "confirmed_cases_missed"] == 1  # A
    assert f.loc[1.0, "confirmed_cases_missed"] == 0
    o = w[w["trigger"] == "medical_outpatient_month"].set_index("factor")
    assert o["fire"].tolist() == [2, 2, 0]
    assert o.loc[2.0, "confirmed_cases_missed"] == 0  # C was dropped, D found by a warning
    e = w[w["trigger"] == "emergency_loss"]
    assert e["threshold"].tolist() == [0, 3000] and e["fire"].tolist() == [1, 0]
    assert e["factor"].isna().tolist() == [False, True]  # a zero threshold: the values' quartiles
    assert set(w["trigger"]) == {"medical_inpatient_formerly_poor", "medical_inpatient",
                                 "medical_outpatient_month", "emergency_loss"}  # fmt: skip


def test_a_flagged_re_scoring_would_have_led_anyway(world, triggers):
    alerts, events, before = world
    q = compute(alerts, events, triggers, records_before=before, flagged={"d-m1"}, factors=(2.0,))
    r = _row(q.what_if, trigger="medical_inpatient_formerly_poor", factor=2.0)
    assert r.removed == 1 and r.confirmed_cases_missed == 0


def test_the_record_before_the_alert_decides_record_conditions(world, triggers):
    alerts, events, _ = world
    q = compute(alerts, events, triggers, factors=(1.0,))  # formerly_poor unknown: not poor
    r = _row(q.what_if, trigger="medical_inpatient_formerly_poor", factor=1.0)
    assert r.stored_fired == 1 and r.fire == 0


def test_no_triggers_no_what_if_and_bad_arguments(world):
    alerts, events, _ = world
    q = compute(alerts, events)
    assert q.what_if.empty and math.isnan(
        _row(q.by_trigger, trigger="medical_inpatient_formerly_poor").threshold
    )
    with pytest.raises(ValueError, match="factors"):
        compute(alerts, events, factors=(0.0,))
    with pytest.raises(ValueError, match="window_days"):
        compute(alerts, events, window_days=-1)
    empty = compute([], [])
    assert empty.by_trigger.empty and empty.by_source.empty and empty.counts["alerts"] == 0
    assert "0 alerts" in format_quality(empty)


def test_round_trip_text_and_html(q):
    back = AlertQuality.from_dict(q.as_dict())
    pd.testing.assert_frame_equal(
        back.by_trigger[["trigger", "alerts", "confirmed"]],
        q.by_trigger[["trigger", "alerts", "confirmed"]],
        check_dtype=False,
    )
    assert back.what_if["share"].dtype == float
    text = format_quality(back)
    assert "medical_inpatient_formerly_poor" in text and "100% [" in text and "2×" in text
    figs = figures(q)
    assert set(figs) == {"by_trigger", "by_source", "what_if"}
    html = render_html(q, "hand-made")
    assert html.count("data:image/png;base64,") == 3 and "hand-made" in html
    assert "H0000001" not in html and "H0000001" not in text


def test_load_reads_a_ledger(tmp_path, triggers):
    from riskml.store.ledger import Ledger

    with Ledger(f"sqlite:///{tmp_path / 'empty.db'}") as led:
        got = quality.load(led, triggers)
    assert got.counts["alerts"] == 0 and got.what_if.empty
