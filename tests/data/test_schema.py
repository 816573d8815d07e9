"""Data tests: the record schema matches the contract, and both validators find every kind of problem."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd
import pytest

from riskml.data import schema

CONTRACT = Path(__file__).resolve().parents[2] / "docs" / "contract.md"


def good_record(**over):
    rec = dict(
        household_id="hh_0001", period="2024-06", county_code="532328", village_code="532328101201",
        household_size=4, labor_count=2, elderly_count=1, children_count=1, students_compulsory=1,
        students_noncompulsory=0, disabled_count=0, chronic_ill_count=1, head_age=52, head_female=False,
        head_education_years=6, ethnic_minority=True, formerly_poor=True, dibao=False, tekun=False,
        relocated=False, income_wage=21000.0, income_business=-800.0, income_property=0.0,
        income_transfer=3200.0, migrant_workers=1, months_employed=10.0, medical_expense=5200.0,
        education_expense=900.0, disaster_loss=0.0, debt=12000.0, medical_insured=True, housing_safe=True,
        water_safe=True, dropout=False,
    )  # fmt: skip
    rec.update(over)
    return rec


def test_docs_contract_is_the_schema_modules_output():
    from riskml.data.contract_doc import contract_markdown

    assert CONTRACT.read_text(encoding="utf-8") == contract_markdown(), (
        "docs/contract.md is stale: regenerate it with `riskml schema > docs/contract.md`"
    )


def test_fields_match_the_contract_table():
    text = CONTRACT.read_text(encoding="utf-8")
    table = re.findall(r"^\| (\w+) \| (string|int|float|bool) \|", text, flags=re.M)
    contract = {name: kind for name, kind in table}
    kinds = {"string": "str", "int": "int", "float": "float", "bool": "bool"}
    assert [n for n, _ in table] == list(schema.FIELD_NAMES)
    for f in schema.FIELDS:
        assert kinds[contract[f.name]] == f.kind, f.name


def test_only_identifiers_and_size_are_required():
    required = {f.name for f in schema.FIELDS if not f.nullable}
    assert required == {"household_id", "period", "county_code", "village_code", "household_size"}


def test_good_record_passes_both_validators():
    models, problems = schema.validate_records([good_record()])
    assert problems == [] and len(models) == 1
    assert schema.validate_frame(pd.DataFrame([good_record()])) == []


BAD_CASES = [
    ("household_id", "Zhang San 110101199001011234", "must match"),
    ("household_id", "", "must match"),
    ("period", "2024-13", "must match"),
    ("period", "2024/06", "must match"),
    ("county_code", "53232", "must match"),
    ("county_code", "992328", "province", {"village_code": "992328101201"}),
    ("village_code", "532329101201", "start with county_code"),
    (
        "household_size",
        0,
        "≥ 1",
        {
            k: 0
            for k in (
                "labor_count",
                "elderly_count",
                "children_count",
                "disabled_count",
                "chronic_ill_count",
                "migrant_workers",
                "months_employed",
            )
        },
    ),
    ("household_size", 21, "≤ 20"),
    ("labor_count", 5, "household_size"),
    ("elderly_count", -1, "≥ 0"),
    ("head_age", 15, "≥ 16"),
    ("head_education_years", 23, "≤ 22"),
    ("income_wage", -1.0, "≥ 0"),
    ("months_employed", 48.5, "12 × household_size"),
    ("medical_expense", -5.0, "≥ 0"),
    ("labor_count", 1.5, "whole number"),
]


def _case(case):
    field, value, words, *extra = case
    return field, value, words, (extra[0] if extra else {})


@pytest.mark.parametrize("case", BAD_CASES)
def test_frame_validator_names_row_and_field(case):
    field, value, words, extra = _case(case)
    df = pd.DataFrame(
        [good_record(), good_record(**{"household_id": "hh_0002", **extra, field: value})]
    )
    problems = schema.validate_frame(df)
    assert problems, f"{field}={value!r} was accepted"
    assert {(p.row, p.field) for p in problems} == {(1, field)}
    assert any(words in p.rule for p in problems), [p.rule for p in problems]


@pytest.mark.parametrize("case", BAD_CASES)
def test_api_validator_names_index_and_field(case):
    field, value, _words, extra = _case(case)
    _, problems = schema.validate_records([good_record(), good_record(**{**extra, field: value})])
    assert {(p.row, p.field) for p in problems} == {(1, field)}


@pytest.mark.parametrize(
    ("field", "value"),
    [("income_wage", "21000"), ("household_size", "4"), ("income_wage", math.nan), ("income_wage", math.inf),
     ("head_female", "false"), ("head_female", 0), ("labor_count", True), ("household_id", 12345)],
)  # fmt: skip
def test_api_validator_is_strict(field, value):
    _, problems = schema.validate_records([good_record(**{field: value})])
    assert [(p.row, p.field) for p in problems] == [(0, field)]


def test_api_validator_refuses_unknown_and_missing_fields():
    rec = good_record(name="Zhang San")
    del rec["debt"]
    _, problems = schema.validate_records([rec])
    assert {(p.field, p.rule) for p in problems} >= {("name", "Extra inputs are not permitted")}
    assert ("debt", "required field is missing") in {(p.field, p.rule) for p in problems}


def test_missing_numeric_values_stay_missing():
    rec = good_record(income_business=None, debt=None, head_female=None)
    models, problems = schema.validate_records([rec])
    assert problems == []
    df = schema.records_to_frame(models)
    assert (
        pd.isna(df.loc[0, "income_business"])
        and pd.isna(df.loc[0, "debt"])
        and pd.isna(df.loc[0, "head_female"])
    )
    assert schema.validate_frame(pd.DataFrame([rec])) == []


def test_required_fields_may_not_be_null():
    _, problems = schema.validate_records([good_record(household_size=None)])
    assert [p.field for p in problems] == ["household_size"]
    problems = schema.validate_frame(pd.DataFrame([good_record(household_size=None)]))
    assert [(p.field, p.rule) for p in problems] == [
        ("household_size", "required, may not be missing")
    ]


def test_numeric_string_in_a_frame_is_a_type_problem():
    df = pd.DataFrame([good_record(), good_record(household_id="b", income_wage="abc")])
    problems = schema.validate_frame(df)
    assert [(p.row, p.field, p.rule) for p in problems] == [(1, "income_wage", "must be a number")]


def test_duplicate_household_period_is_reported():
    df = pd.DataFrame([good_record(), good_record(income_wage=1.0)])
    problems = schema.validate_frame(df)
    assert [(p.row, p.field) for p in problems] == [(1, "period")]


def test_missing_column_is_reported_once():
    df = pd.DataFrame([good_record()]).drop(columns=["debt"])
    problems = schema.validate_frame(df)
    assert [(p.row, p.field) for p in problems] == [(-1, "debt")]


def test_split_valid_keeps_every_row():
    rows = [good_record(household_id=f"h{i}") for i in range(10)]
    rows[3]["labor_count"] = 9
    rows[7]["period"] = "2024-00"
    df = pd.DataFrame(rows)
    valid, rejects, problems = schema.split_valid(df)
    assert len(valid) + len(rejects) == len(df)
    assert rejects["row"].tolist() == [3, 7]
    assert "labor_count" in rejects.iloc[0]["reasons"] and "period" in rejects.iloc[1]["reasons"]
    assert str(valid["household_size"].dtype) == "Int64" and str(valid["dibao"].dtype) == "boolean"


def test_problems_never_echo_an_invalid_household_id():
    _, problems = schema.validate_records(
        [good_record(household_id="Li Si 110101199001011234", head_age=5)]
    )
    assert all(p.household_id is None for p in problems)


def test_contract_lists_every_field():
    from riskml.data.contract_doc import contract_markdown

    md = contract_markdown()
    for f in schema.FIELDS:
        assert f"| {f.name} |" in md


def test_pydantic_json_schema_has_every_field():
    js = schema.HouseholdRecord.model_json_schema()
    assert set(js["properties"]) == set(schema.FIELD_NAMES)
    assert set(js["required"]) == set(schema.FIELD_NAMES)


def test_json_records_round_trip_through_the_strict_validator():
    rows = [
        good_record(),
        good_record(household_id="h2", debt=None, head_female=None, labor_count=None),
    ]
    frame = schema.records_to_frame(rows)
    back = schema.to_json_records(frame)
    assert back == rows
    assert schema.validate_records(back)[1] == []
