"""Data tests: the record schema matches the contract, and both validators find every kind of problem."""

from __future__ import annotations

import math
import re
import time
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
    # the record's table (the side inputs' table below it is not the record)
    text = CONTRACT.read_text(encoding="utf-8").split("## Side inputs")[0]
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
                "students_compulsory",
                "students_noncompulsory",
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
    ("students_compulsory", 5, "household_size"),
    ("income_wage", 2e10, "≤ 1e+10"),
    ("income_business", -2e10, "≥ -1e+10"),
    ("debt", 1e300, "≤ 1e+10"),
    ("income_wage", 10**400, "finite"),
    ("household_size", 10**400, "finite"),
    ("period", "20２４-06", "must match"),
    ("village_code", "5323281012０1", "must match"),
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
    _, problems = schema.validate_records(
        [good_record(), good_record(**{"household_id": "hh_0002", **extra, field: value})]
    )
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
    assert {(p.field, p.rule) for p in problems} >= {("name", schema.UNKNOWN_RULE)}
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


# --------------------------------------------------------------------------- one validator
def test_json_duplicate_names_the_first_record_and_the_frame_words_it_the_same():
    rows = [good_record(household_id=f"h{i}") for i in range(5)]
    rows.append(good_record(household_id="h3", income_wage=1.0))
    rows.append(good_record(household_id="h3", income_wage=2.0))
    got = [(p.row, p.field, p.rule) for p in schema.record_problems(rows)]
    assert got == [(5, "period", schema.duplicate_rule(3)), (6, "period", schema.duplicate_rule(3))]
    assert schema.duplicate_rule(3) == "duplicate record: same household_id and period as record 3"
    assert [(p.row, p.field, p.rule) for p in schema.validate_frame(pd.DataFrame(rows))] == got


def test_frame_duplicates_can_come_from_the_caller():
    rows = [good_record(household_id=f"h{i}") for i in range(3)]
    earlier = [-1, 7, -1]  # row 1 repeats input row 7 of a longer file (another chunk)
    problems = schema.validate_frame(pd.DataFrame(rows), earlier=earlier)
    assert [(p.row, p.rule) for p in problems] == [(1, schema.duplicate_rule(7))]


def test_problems_are_capped_but_counted():
    rec = good_record()
    rec.update({f"k{i}": i for i in range(1_000_000)})
    records = [rec, good_record(household_id="h2", head_age=5)]
    t0 = time.perf_counter()
    problems = schema.record_problems(records, limit=100)
    seconds = time.perf_counter() - t0
    assert seconds < 0.5, f"{seconds:.2f} s for a record with a million unknown keys"
    assert len(problems) == 100 and problems.total == 1_000_001 and problems.invalid_records == 2
    assert [p.field for p in problems[:3]] == ["k0", "k1", "k2"]
    assert {p.rule for p in problems} == {schema.UNKNOWN_RULE}
    # without a limit: every problem, in the same order
    small = [good_record(household_id="h1", x=1, y=2), good_record(household_id="h2", head_age=5)]
    full = schema.record_problems(small)
    assert full.total == len(full) == 3
    capped = schema.record_problems(small, limit=2)
    assert list(capped) == list(full)[:2] and capped.total == 3


@pytest.mark.parametrize(
    "value", [10**400, -(10**400), 1e300, 2**70, math.inf, -math.inf, 1e10 + 1]
)
def test_numbers_out_of_range_are_problems_never_exceptions(value):
    from riskml.data.columns import Columns

    fields = [f.name for f in schema.FIELDS if f.kind in ("int", "float")]
    for name in fields:
        rec = good_record(**{name: value})
        problems = schema.record_problems([rec])
        assert name in {p.field for p in problems}, name
        frame_problems = schema.validate_frame(pd.DataFrame([rec]))
        assert {(p.field, p.rule) for p in frame_problems} == {(p.field, p.rule) for p in problems}
    # the largest accepted values go on to the arrays without overflow
    edge = good_record(income_wage=1e10, income_business=-1e10, debt=10**10)
    assert schema.record_problems([edge]) == []
    cols = Columns.from_records([edge], validated=True)
    assert cols["debt"][0] == 1e10 and cols["income_business"][0] == -1e10


def test_whole_floats_are_whole_numbers_on_both_paths():
    rec = good_record(household_size=4.0, labor_count=2.0)
    assert schema.record_problems([rec]) == []
    assert schema.validate_frame(pd.DataFrame([rec])) == []


def test_flags_are_true_or_false_in_json_and_in_frames():
    for value in (0, 1, 1.0, "true"):
        rec = good_record(head_female=value)
        want = [("head_female", schema.BOOL_RULE)]
        assert [(p.field, p.rule) for p in schema.record_problems([rec])] == want, value
        frame = schema.validate_frame(pd.DataFrame([good_record(), {**rec, "household_id": "b"}]))
        assert [(p.field, p.rule) for p in frame] == want, value


def test_household_record_model_is_the_same_validator():
    from pydantic import ValidationError

    for rec in (good_record(), good_record(household_size=4.0), good_record(labor_count=9)):
        problems = schema.record_problems([rec])
        try:
            schema.HouseholdRecord.model_validate(rec)
        except ValidationError as exc:
            got = {(e["loc"][0], e["msg"]) for e in exc.errors()}
            assert got == {(p.field, p.rule) for p in problems}
        else:
            assert problems == []


def test_a_record_that_is_not_an_object():
    problems = schema.record_problems([good_record(), ["not", "a", "record"], None])
    assert [(p.row, p.field, p.rule) for p in problems] == [
        (1, "(record)", schema.OBJECT_RULE),
        (2, "(record)", schema.OBJECT_RULE),
    ]


def test_validators_are_importable_from_both_modules():
    from riskml.data import validation
    from riskml.data.schema import record_problems, validate_frame

    assert record_problems is validation.record_problems
    assert validate_frame is validation.validate_frame
    with pytest.raises(AttributeError):
        _ = schema.no_such_name
