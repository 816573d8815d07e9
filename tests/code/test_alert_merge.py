"""Code tests: department alerts merged onto the household's latest record (riskml.alerts.merge)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from riskml.alerts.contract import alert_id_of, alert_problems, alerts_frame, example_alert
from riskml.alerts.merge import (
    NO_RECORD_YET,
    PROVENANCE_COLUMNS,
    UNKNOWN_HOUSEHOLD,
    group_alerts,
    lowered_note,
    merge,
    merge_frame,
)
from riskml.data.schema import FIELD_NAMES, coerce_frame, records_to_frame, to_json_records
from riskml.data.validation import record_problems, validate_frame
from riskml.policy.rules import evaluate_record

HH = "H0000001"
BASE = {
    "household_id": HH, "period": "2025-02", "county_code": "530102",
    "village_code": "530102001001", "household_size": 4, "labor_count": 2, "elderly_count": 1,
    "children_count": 1, "students_compulsory": 1, "students_noncompulsory": 0,
    "disabled_count": 0, "chronic_ill_count": 0, "head_age": 45, "head_female": False,
    "head_education_years": 6, "ethnic_minority": False, "formerly_poor": True, "dibao": False,
    "tekun": False, "relocated": False, "income_wage": 44000.0, "income_business": 6000.0,
    "income_property": 0.0, "income_transfer": 2000.0, "migrant_workers": 1,
    "months_employed": 18.0, "medical_expense": 1000.0, "education_expense": 800.0,
    "disaster_loss": 0.0, "debt": 0.0, "medical_insured": True, "housing_safe": True,
    "water_safe": True, "dropout": False,
}  # fmt: skip


def _alert(department: str, **fields):
    return example_alert(
        department, household_id=HH, county_code="530102", month="2025-03", **fields
    )


def _fired(record, previous=None) -> set[str]:
    return {r["id"] for r in evaluate_record(record, previous=previous)}


def test_the_known_record_is_valid_and_quiet():
    assert not record_problems([BASE])
    assert _fired(BASE) == set()


# --------------------------------------------------------------------------- each department
@pytest.mark.parametrize(
    "department, fields, changes, rules",
    [
        (
            "medical",
            {"out_of_pocket": 30000.0, "care": "inpatient", "insured": False},
            {"medical_expense": 30000.0, "medical_insured": False},
            {"medical_amount", "medical_share", "medical_uninsured"},
        ),
        ("health", {"serious_illness": True}, {"chronic_ill_count": 1}, set()),
        (
            "education",
            {"dropout": True, "schooling_cost": 20000.0},
            {"dropout": True, "education_expense": 20000.0},
            {"dropout", "schooling_share"},
        ),
        (
            "emergency",
            {"loss": 20000.0, "house_damaged": True},
            {"disaster_loss": 20000.0, "housing_safe": False},
            {"disaster_loss", "housing_unsafe"},
        ),
        (
            "emergency",
            {"loss": 9000.0, "house_damaged": False},
            {"disaster_loss": 9000.0},
            set(),  # 9,000 of 52,000 net income: below the 30% loss share
        ),
        ("civil_affairs", {"dibao": True, "tekun": None}, {"dibao": True}, set()),
        ("public_security", {"main_earner": "injured"}, {"labor_count": 1}, set()),
        (
            "public_security",
            {"main_earner": "dead"},
            {"labor_count": 1, "household_size": 3},
            set(),
        ),
        ("housing", {"house_unsafe": True}, {"housing_safe": False}, {"housing_unsafe"}),
        ("housing", {"house_unsafe": False}, {}, set()),  # a false never marks a house unsafe
        ("water", {"water_unsafe": True}, {"water_safe": False}, {"water_unsafe"}),
        ("human_resources", {"months_without_contributions": 4}, {}, set()),  # alert-only
        ("disability", {"severe_disability": True}, {"disabled_count": 1}, set()),
    ],
)
def test_each_department_merged_onto_a_known_record(department, fields, changes, rules):
    alert = _alert(department, **fields)
    assert not alert_problems([alert])
    merged = merge(BASE, [alert])
    expected = {**BASE, **changes, "period": "2025-03"}
    assert merged.record == expected
    assert not record_problems([merged.record])
    assert set(merged.provenance) >= set(changes)
    for name in changes:
        assert merged.provenance[name] == {
            "department": department,
            "alert_id": alert_id_of(alert),
            "period": "2025-03",
            "changed": True,
        }
    assert merged.alert_ids == (alert_id_of(alert),)
    # scored through the same rules: the department's risk now shows
    assert _fired(merged.record) == rules
    # the batch merge agrees
    frame, prov, unmatched = merge_frame(records_to_frame([BASE]), alerts_frame([alert]))
    assert to_json_records(frame) == [expected] and unmatched.empty
    assert set(prov["field"].astype(str)) == set(merged.provenance)


def test_the_income_drop_rule_sees_the_history_of_a_merged_record():
    # alerts carry no income: the drop is judged against the previous record, as for any record
    merged = merge(BASE, [_alert("public_security", main_earner="dead")])
    assert "income_drop" not in _fired(merged.record, previous=BASE)
    richer = {**BASE, "period": "2024-08", "income_wage": 100000.0}
    assert "income_drop" in _fired(merged.record, previous=richer)


def test_an_unknown_household_is_none_and_listed_as_unmatched():
    stranger = example_alert("medical", household_id="H9999999")
    assert merge(None, [stranger]) is None
    known = _alert("medical")
    frame, prov, unmatched = merge_frame(records_to_frame([BASE]), alerts_frame([known, stranger]))
    assert list(frame["household_id"]) == [HH]
    assert list(unmatched["household_id"]) == ["H9999999"]
    assert list(unmatched["reason"]) == [UNKNOWN_HOUSEHOLD]
    assert unmatched["alert_id"].iloc[0] == alert_id_of(stranger)
    assert set(prov["household_id"]) == {HH}


def test_two_departments_in_one_month_make_one_record_with_both_provenances():
    med = _alert("medical", out_of_pocket=26000.0, alert_id="med-7")
    quake = _alert("emergency", loss=20000.0, house_damaged=True, alert_id="em-3")
    groups = group_alerts([med, quake, example_alert("water", household_id=HH, month="2025-04")])
    assert list(groups) == [(HH, "2025-03"), (HH, "2025-04")]
    assert [a["department"] for a in groups[(HH, "2025-03")]] == ["emergency", "medical"]
    merged = merge(BASE, groups[(HH, "2025-03")])
    assert merged.alert_ids == ("em-3", "med-7")
    assert merged.provenance["medical_expense"]["alert_id"] == "med-7"
    assert merged.provenance["disaster_loss"]["department"] == "emergency"
    assert merged.provenance["housing_safe"]["alert_id"] == "em-3"
    assert {"medical_amount", "disaster_loss", "housing_unsafe"} <= _fired(merged.record)
    frame, prov, _ = merge_frame(records_to_frame([BASE]), alerts_frame([med, quake]))
    assert len(frame) == 1 and frame["alert_ids"].iloc[0] == "em-3;med-7"
    assert frame["alert_count"].iloc[0] == 2
    assert dict(zip(prov["field"].astype(str), prov["alert_id"], strict=True)) == {
        f: p["alert_id"] for f, p in merged.provenance.items()
    }


def test_a_death_keeps_the_record_rules_and_says_so():
    small = {**BASE, "household_size": 2, "labor_count": 1, "elderly_count": 1, "children_count": 0,
             "students_compulsory": 0, "chronic_ill_count": 2, "disabled_count": 2,
             "migrant_workers": 0, "months_employed": 20.0}  # fmt: skip
    assert not record_problems([small])
    dead = _alert("public_security", main_earner="dead")
    merged = merge(small, [dead])
    r = merged.record
    assert (r["household_size"], r["labor_count"]) == (1, 0)
    assert (r["chronic_ill_count"], r["disabled_count"], r["months_employed"]) == (1, 1, 12.0)
    assert r["elderly_count"] == 1
    assert not record_problems([r])
    assert merged.provenance["chronic_ill_count"]["note"] == lowered_note("chronic_ill_count")
    assert (
        merged.provenance["months_employed"]["note"]
        == "lowered to 12 × household_size to keep the record rules"
    )
    assert merged.provenance["months_employed"]["alert_id"] == alert_id_of(dead)
    frame, prov, _ = merge_frame(records_to_frame([small]), alerts_frame([dead]))
    assert to_json_records(frame) == [r]
    notes = dict(zip(prov["field"].astype(str), prov["note"].astype(object), strict=True))
    assert notes["months_employed"] == merged.provenance["months_employed"]["note"]
    assert pd.isna(notes["labor_count"])
    assert not validate_frame(frame)


def test_one_main_earner_is_lowered_once_a_month_and_missing_stays_missing():
    hurt = _alert("public_security", main_earner="injured", alert_id="ps-1")
    dead = _alert("public_security", main_earner="dead", alert_id="ps-2")
    r = merge(BASE, [hurt, dead]).record
    assert (r["labor_count"], r["household_size"]) == (1, 3)
    unknown = {**BASE, "labor_count": None}
    r = merge(unknown, [dead]).record
    assert r["labor_count"] is None and r["household_size"] == 3
    frame, _, _ = merge_frame(records_to_frame([unknown]), alerts_frame([dead]))
    assert pd.isna(frame["labor_count"].iloc[0]) and frame["household_size"].iloc[0] == 3


def test_fixed_order_the_last_alert_wins_and_the_as_of_record():
    first = _alert("medical", out_of_pocket=9000.0, alert_id="m-10")
    second = _alert("medical", out_of_pocket=7000.0, alert_id="m-2")  # "m-10" < "m-2"
    m = merge(BASE, [second, first])
    assert m.record["medical_expense"] == 7000.0 and m.alert_ids == ("m-10", "m-2")
    newer = {**BASE, "period": "2025-05", "medical_expense": 50.0}
    with pytest.raises(ValueError, match="as of their month"):
        merge(newer, [first])
    early = example_alert("medical", household_id=HH, month="2025-01")
    frame, prov, unmatched = merge_frame(
        records_to_frame([newer, BASE]), alerts_frame([first, early])
    )
    assert to_json_records(frame) == [{**BASE, "period": "2025-03", "medical_expense": 9000.0}]
    assert set(prov["alert_period"]) == {"2025-03"}
    assert list(unmatched["reason"]) == [NO_RECORD_YET]
    unchanged = merge(BASE, [_alert("medical", out_of_pocket=1000.0, insured=True)])
    assert unchanged.provenance["medical_expense"]["changed"] is False


def test_merge_refuses_mixed_groups():
    with pytest.raises(ValueError, match="one household and one month"):
        merge(BASE, [_alert("water"), example_alert("water", household_id=HH, month="2025-04")])
    with pytest.raises(ValueError, match="another household"):
        merge(BASE, [example_alert("water", household_id="H2")])
    with pytest.raises(ValueError, match="no alerts"):
        merge(BASE, [])


def test_merge_frame_with_nothing_matched():
    frame, prov, unmatched = merge_frame(
        records_to_frame([BASE]), alerts_frame([example_alert("medical", household_id="H404")])
    )
    assert frame.empty and prov.empty and len(unmatched) == 1
    assert list(prov.columns) == list(PROVENANCE_COLUMNS)


# --------------------------------------------------------------------------- batch = one by one
def _random_alerts(rng, ids, county):
    choices = {
        "medical": lambda: {"out_of_pocket": float(rng.integers(0, 40000)),
                            "care": str(rng.choice(["inpatient", "outpatient"])),
                            "month_out_of_pocket": None,
                            "insured": [None, True, False][rng.integers(3)]},
        "health": lambda: {"serious_illness": bool(rng.integers(2))},
        "education": lambda: {"dropout": bool(rng.integers(2)), "schooling_cost": [None, 500.0, 12000.0][rng.integers(3)]},
        "emergency": lambda: {"loss": float(rng.integers(0, 9000)), "house_damaged": [None, True, False][rng.integers(3)]},
        "civil_affairs": lambda: {"dibao": bool(rng.integers(2)), "tekun": [None, True, False][rng.integers(3)]},
        "public_security": lambda: {"main_earner": str(rng.choice(["injured", "dead"]))},
        "housing": lambda: {"house_unsafe": bool(rng.integers(2))},
        "water": lambda: {"water_unsafe": bool(rng.integers(2))},
        "human_resources": lambda: {"months_without_contributions": int(rng.integers(0, 10))},
        "disability": lambda: {"severe_disability": bool(rng.integers(2))},
    }  # fmt: skip
    out = []
    for k, hid in enumerate(ids):
        for _ in range(int(rng.integers(1, 4))):
            code = str(rng.choice(list(choices)))
            month = str(rng.choice(["2019-01", "2021-07", "2025-03", "2025-04"]))
            a = example_alert(
                code, household_id=hid, county_code=county[k], month=month, **choices[code]()
            )
            a["alert_id"] = f"a{len(out)}"
            out.append(a)
    return out


def test_merge_frame_agrees_with_merge_record_for_record(sample_panel):
    rng = np.random.default_rng(16)
    panel = coerce_frame(sample_panel)
    latest = panel.sort_values("period").drop_duplicates("household_id", keep="last")
    chosen = latest.sample(150, random_state=3)
    ids = list(chosen["household_id"]) + ["H_nobody_1", "H_nobody_2"]
    county = list(chosen["county_code"]) + ["530102", "530102"]
    alerts = _random_alerts(rng, ids, county)
    assert not alert_problems(alerts, limit=None)
    frame, prov, unmatched = merge_frame(panel, alerts_frame(alerts))  # several records a household
    history: dict[str, list[dict]] = {}
    for r in to_json_records(panel.sort_values("period")):
        history.setdefault(r["household_id"], []).append(r)

    def as_of(hid, month):
        before = [r for r in history.get(hid, []) if r["period"] <= month]
        return before[-1] if before else None

    groups = group_alerts(alerts)
    expected = {k: merge(as_of(*k), v) for k, v in groups.items()}
    matched = {k: m for k, m in expected.items() if m is not None}
    assert len(frame) == len(matched) > 100
    assert len(unmatched) == sum(len(v) for k, v in groups.items() if expected[k] is None)
    assert set(unmatched["reason"]) == {UNKNOWN_HOUSEHOLD, NO_RECORD_YET}
    assert set(unmatched.loc[unmatched["reason"] == UNKNOWN_HOUSEHOLD, "household_id"]) == {
        "H_nobody_1",
        "H_nobody_2",
    }
    records = to_json_records(frame)
    prov_rows = prov.astype({"field": str, "department": str, "alert_period": str}).to_dict(
        "records"
    )
    for rec, ids_text in zip(records, frame["alert_ids"], strict=True):
        alert_month = rec["period"]
        m = matched[(rec["household_id"], alert_month)]
        assert rec == m.record
        assert ids_text == ";".join(m.alert_ids)
        got = {
            p["field"]: {
                "department": p["department"],
                "alert_id": p["alert_id"],
                "period": p["alert_period"],
                "changed": bool(p["changed"]),
                **({"note": p["note"]} if isinstance(p["note"], str) else {}),
            }
            for p in prov_rows
            if p["household_id"] == rec["household_id"] and p["alert_period"] == alert_month
        }
        assert got == m.provenance
    assert not validate_frame(frame[list(FIELD_NAMES)])
