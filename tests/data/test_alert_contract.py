"""Data tests: the department alert contract (riskml.alerts.contract) is as strict as the record's."""

from __future__ import annotations

import math
import re

import pandas as pd
import pytest

from riskml.alerts.contract import (
    ALERT_ID_PATTERN,
    ALL_FIELDS,
    DEPARTMENT_CODES,
    DEPARTMENTS,
    FIELD_OWNER,
    alert_id_of,
    alert_period,
    alert_problems,
    alerts_frame,
    contract_markdown,
    example_alert,
    read_alert_file,
)
from riskml.data.io import NoSuchTableError
from riskml.data.schema import (
    ABSENT_RULE,
    BOOL_RULE,
    COLUMN_ABSENT_RULE,
    FIELD_BY_NAME,
    FINITE_RULE,
    MISSING_RULE,
    NUMBER_RULE,
    OBJECT_RULE,
    PROVINCE_RULE,
    STRING_RULE,
    WHOLE_RULE,
)


def _pairs(problems) -> list[tuple[int, str, str]]:
    return [(p.row, p.field, p.rule) for p in problems]


# --------------------------------------------------------------------------- vocabulary
def test_every_department_has_a_valid_example_and_mappings_onto_real_fields():
    assert list(DEPARTMENT_CODES) == sorted(DEPARTMENTS)
    assert set(DEPARTMENT_CODES) == {
        "medical", "health", "education", "emergency", "civil_affairs", "public_security",
        "housing", "water", "human_resources", "disability",
    }  # fmt: skip
    alerts = [example_alert(code, household_id=f"H{k}") for k, code in enumerate(DEPARTMENT_CODES)]
    problems = alert_problems(alerts)
    assert not problems, [str(p) for p in problems]
    for f in ALL_FIELDS.values():
        for m in f.maps:
            assert m.field in FIELD_BY_NAME
    assert DEPARTMENTS["emergency"].event and DEPARTMENTS["public_security"].event
    assert not DEPARTMENTS["medical"].event


def test_the_spec_mappings():
    medical = DEPARTMENTS["medical"]
    assert medical.field("out_of_pocket").maps_to == "medical_expense"
    assert medical.field("out_of_pocket").how == "set" and medical.field("out_of_pocket").required
    assert medical.field("month_out_of_pocket").maps_to is None  # alert-only
    assert DEPARTMENTS["emergency"].field("house_damaged").how == "not"
    assert DEPARTMENTS["health"].field("serious_illness").how == "at_least_one"
    earner = DEPARTMENTS["public_security"].field("main_earner")
    assert [(m.field, m.how, m.when) for m in earner.maps] == [
        ("labor_count", "minus_one", ()),
        ("household_size", "minus_one", ("dead",)),
    ]
    assert DEPARTMENTS["housing"].field("house_unsafe").how == "flag_false"
    assert DEPARTMENTS["human_resources"].field("months_without_contributions").maximum == 36


# --------------------------------------------------------------------------- strictness
@pytest.mark.parametrize(
    "change, field, rule",
    [
        ({"out_of_pocket": "5000"}, "out_of_pocket", NUMBER_RULE),
        ({"out_of_pocket": True}, "out_of_pocket", NUMBER_RULE),  # a flag is not a number
        ({"out_of_pocket": math.nan}, "out_of_pocket", FINITE_RULE),
        ({"out_of_pocket": math.inf}, "out_of_pocket", FINITE_RULE),
        ({"out_of_pocket": -1}, "out_of_pocket", "must be ≥ 0"),
        ({"out_of_pocket": 2e10}, "out_of_pocket", "must be ≤ 1e+10"),
        ({"out_of_pocket": None}, "out_of_pocket", MISSING_RULE),
        ({"care": "icu"}, "care", "must be one of inpatient, outpatient"),
        ({"care": 1}, "care", STRING_RULE),
        ({"insured": 1}, "insured", BOOL_RULE),  # 1 is not a flag in JSON
        ({"insured": "true"}, "insured", BOOL_RULE),
        ({"household_id": "张三"}, "household_id", FIELD_BY_NAME["household_id"].pattern_rule()),
        ({"household_id": 7}, "household_id", STRING_RULE),
        ({"county_code": "5301"}, "county_code", FIELD_BY_NAME["county_code"].pattern_rule()),
        ({"county_code": "990102"}, "county_code", PROVINCE_RULE),
        ({"period": "2025-13"}, "period", FIELD_BY_NAME["period"].pattern_rule()),
        ({"period": None}, "period", MISSING_RULE),
        (
            {"event_date": "2025-03-01"},
            "event_date",
            "only for event departments (emergency, public_security): give period",
        ),
        ({"alert_id": "a b"}, "alert_id", f"must match {ALERT_ID_PATTERN}"),
        ({"alert_id": "x" * 65}, "alert_id", f"must match {ALERT_ID_PATTERN}"),
        ({"alert_id": 12}, "alert_id", STRING_RULE),
        ({"department": "police"}, "department", "must be one of " + ", ".join(DEPARTMENT_CODES)),
        ({"dropout": True}, "dropout", "field of department education, not of medical"),
        ({"householdid": "H1"}, "householdid", "unknown field: not in the alert contract"),
        (
            {"month_out_of_pocket": 30000.0},
            "month_out_of_pocket",
            "must be ≤ out_of_pocket (12 months include the month)",
        ),
    ],
)
def test_one_bad_medical_alert_names_index_and_field(change, field, rule):
    good = example_alert("medical", household_id="H0000009")
    bad = {**good, **change}
    problems = alert_problems([good | {"alert_id": "first"}, bad])
    assert (1, field, rule) in _pairs(problems), [str(p) for p in problems]
    assert {p.row for p in problems} == {1}
    hid = bad.get("household_id")
    expected = hid if isinstance(hid, str) and re.fullmatch(r"[A-Za-z0-9_-]{1,64}", hid) else None
    assert all(p.household_id == expected for p in problems)


def test_required_fields_absent_and_the_event_departments():
    medical = {
        "household_id": "H1",
        "department": "medical",
        "county_code": "530102",
        "period": "2025-03",
    }
    assert ("out_of_pocket", ABSENT_RULE) in [(p.field, p.rule) for p in alert_problems([medical])]
    assert ("care", ABSENT_RULE) in [(p.field, p.rule) for p in alert_problems([medical])]
    quake = example_alert("emergency")
    assert not alert_problems([quake])
    assert alert_period(quake) == "2025-03"
    assert _pairs(alert_problems([{**quake, "event_date": "2025-02-30"}])) == [
        (0, "event_date", "must be a real date")
    ]
    assert _pairs(alert_problems([{**quake, "event_date": "2025/02/01"}])) == [
        (0, "event_date", "must be a date written YYYY-MM-DD")
    ]
    no_date = {k: v for k, v in quake.items() if k != "event_date"}
    assert _pairs(alert_problems([no_date | {"period": "2025-03"}])) == [
        (0, "period", "not used by an event department: give event_date"),
        (0, "event_date", ABSENT_RULE),
    ]
    empty = {k: v for k, v in quake.items() if k not in ("loss", "house_damaged")}
    assert _pairs(alert_problems([empty])) == [
        (0, "loss", "at least one of loss, house_damaged is required")
    ]
    age = example_alert("human_resources", months_without_contributions=2.5)
    assert _pairs(alert_problems([age])) == [(0, "months_without_contributions", WHOLE_RULE)]
    assert _pairs(
        alert_problems([example_alert("human_resources", months_without_contributions=37)])
    ) == [(0, "months_without_contributions", "must be ≤ 36")]


def test_not_an_object_and_a_request_department():
    assert _pairs(alert_problems(["x", None])) == [
        (0, "(alert)", OBJECT_RULE),
        (1, "(alert)", OBJECT_RULE),
    ]
    a = example_alert("water")
    without = {k: v for k, v in a.items() if k != "department"}
    assert not alert_problems([without], department="water")
    assert _pairs(alert_problems([without])) == [(0, "department", ABSENT_RULE)]
    assert _pairs(alert_problems([a], department="housing")) == [
        (0, "department", "must be housing (the department of the request)")
    ]
    with pytest.raises(KeyError):
        alert_problems([a], department="police")


def test_duplicates_within_a_request_name_the_first():
    a = example_alert("medical", alert_id="m-1")
    b = example_alert("medical", alert_id="m-1", household_id="H2")
    c = example_alert("health", alert_id="m-1")  # another department may reuse the id
    assert _pairs(alert_problems([a, c, b])) == [
        (2, "alert_id", "duplicate alert: same department and alert_id as alert 0")
    ]
    same = example_alert("housing")
    assert _pairs(alert_problems([same, example_alert("water"), same])) == [
        (
            2,
            "alert_id",
            "duplicate alert: same content as alert 0 (give alert_id to tell them apart)",
        )
    ]


def test_limit_lists_the_first_problems_and_counts_them_all():
    bad = {"x": 1, "y": 2}  # 3 required fields absent + 2 unknown
    problems = alert_problems([bad] * 10, limit=7)
    assert len(problems) == 7
    assert problems.total == 50 and problems.invalid_records == 10


def test_derived_ids_are_stable_across_json_and_files():
    a = example_alert("medical", out_of_pocket=5000)
    b = example_alert("medical", out_of_pocket=5000.0)
    assert alert_id_of(a) == alert_id_of(b)
    assert re.fullmatch(ALERT_ID_PATTERN, alert_id_of(a)) and alert_id_of(a).startswith("medical:")
    assert alert_id_of(a) != alert_id_of(example_alert("medical", out_of_pocket=5001))
    assert alert_id_of({**a, "alert_id": "own"}) == "own"


def test_alerts_frame_types_and_fills_ids_and_months():
    frame = alerts_frame(
        [example_alert("medical"), example_alert("public_security", main_earner="dead")]
    )
    assert list(frame["period"]) == ["2025-03", "2025-03"]
    assert frame["out_of_pocket"].dtype == "float64"
    assert str(frame["insured"].dtype) == "boolean"
    assert frame["alert_id"].str.startswith("medical:").iloc[0]
    assert pd.isna(frame["out_of_pocket"].iloc[1]) and frame["main_earner"].iloc[1] == "dead"


# --------------------------------------------------------------------------- files
def _write_csv(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_a_good_csv_file_is_typed_like_records(tmp_path):
    p = _write_csv(
        tmp_path / "med.csv",
        "household_id,county_code,period,out_of_pocket,care,month_out_of_pocket,insured\n"
        "H1,530102,2025-03,26000,inpatient,,TRUE\n"
        "H2,530102,2025-03,800,outpatient,600,0\n",
    )
    got = read_alert_file(p, "medical")
    assert got.ok and got.rows == 2
    assert list(got.frame["out_of_pocket"]) == [26000.0, 800.0]
    assert list(got.frame["insured"]) == [True, False]
    assert list(got.frame["department"]) == ["medical", "medical"]
    assert pd.isna(got.frame["month_out_of_pocket"].iloc[0])
    # the same alert by API gets the same id
    api = {"household_id": "H1", "county_code": "530102", "period": "2025-03", "department": "medical",
           "out_of_pocket": 26000, "care": "inpatient", "insured": True}  # fmt: skip
    assert got.frame["alert_id"].iloc[0] == alert_id_of(api)


def test_a_malformed_file_is_refused_with_row_and_field(tmp_path):
    p = _write_csv(
        tmp_path / "med.csv",
        "household_id,county_code,period,out_of_pocket,care\n"
        "H1,530102,2025-03,26000,inpatient\n"
        "H2,530102,2025-03,abc,inpatient\n"
        "H3,530102,2025-3,100,icu\n"
        "H4,530102,2025-03,,outpatient\n",
    )
    got = read_alert_file(p, "medical")
    assert not got.ok and got.frame.empty
    assert _pairs(got.problems) == [
        (1, "out_of_pocket", NUMBER_RULE),
        (2, "period", FIELD_BY_NAME["period"].pattern_rule()),
        (2, "care", "must be one of inpatient, outpatient"),
        (3, "out_of_pocket", MISSING_RULE),
    ]
    assert got.problems[0].household_id == "H2" and got.problems[0].value == "abc"
    # Parquet keeps its types: the same rows with a negative cost instead of text
    frame = pd.read_csv(p, dtype=str, keep_default_na=False).replace("", None)
    frame["out_of_pocket"] = [26000.0, -5.0, 100.0, float("nan")]
    frame.to_parquet(tmp_path / "med.parquet")
    assert _pairs(read_alert_file(tmp_path / "med.parquet", "medical").problems) == [
        (1, "out_of_pocket", "must be ≥ 0"),
        *_pairs(got.problems)[1:],
    ]


def test_file_columns_are_checked_first(tmp_path):
    p = _write_csv(
        tmp_path / "a.csv",
        "household_id,period,out_of_pocket,dropout,colour\nH1,2025-03,1,true,red\n",
    )
    got = read_alert_file(p, "medical")
    assert _pairs(got.problems) == [
        (-1, "county_code", COLUMN_ABSENT_RULE),
        (-1, "care", COLUMN_ABSENT_RULE),
        (-1, "dropout", "field of department education, not of medical"),
        (-1, "colour", "unknown column: not in the alert contract"),
    ]
    with pytest.raises(NoSuchTableError):
        read_alert_file(tmp_path / "missing.csv", "medical")
    with pytest.raises(KeyError):
        read_alert_file(p, "police")


def test_an_event_file_and_a_department_column(tmp_path):
    p = _write_csv(
        tmp_path / "ps.csv",
        "alert_id,household_id,department,county_code,event_date,main_earner\n"
        "ps-1,H1,public_security,530102,2025-03-09,dead\n"
        "ps-2,H2,medical,530102,2025-03-09,injured\n",
    )
    got = read_alert_file(p, "public_security")
    assert _pairs(got.problems) == [
        (1, "department", "must be public_security (the department of the request)")
    ]


# --------------------------------------------------------------------------- the document
def test_contract_markdown_documents_every_field_and_mapping():
    text = contract_markdown()
    for code, d in DEPARTMENTS.items():
        assert f"## {code}: {d.zh}" in text
        for f in d.fields:
            assert f"| {f.name} | {f.kind} |" in text
            assert f.mapping_text() in text
    assert "medical_expense (set)" in text and "alert-only" in text
    assert "household_size (minus_one) when dead" in text
    assert set(FIELD_OWNER) == set(ALL_FIELDS)
