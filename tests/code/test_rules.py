"""Policy rules: the rules file, each default rule at its threshold, missing inputs,
overrides, effective dates, batch = single, the baseline, and the CLI."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from riskml import config
from riskml.data.reference import COLUMNS, ReferenceLines
from riskml.data.schema import records_to_frame, validate_frame
from riskml.policy import rules
from riskml.policy.rules import RuleSet, RulesFileError, evaluate, evaluate_record

MONITORING = 6000.0
DIBAO = 5000.0
PROVINCES = ("53", "61", "11")
YEARS = range(2020, 2027)


@pytest.fixture(scope="module")
def lines() -> ReferenceLines:
    rows = []
    for p in PROVINCES:
        for y in YEARS:
            # Yunnan (53) gets the round numbers the tests compute with
            bump = 0 if p == "53" else 1000 + 100 * (y - 2020)
            rows.append((p, "x", y, "monitoring", MONITORING + bump, "estimate", "test"))
            rows.append((p, "x", y, "dibao", DIBAO + bump, "estimate", "test"))
    return ReferenceLines(pd.DataFrame(rows, columns=list(COLUMNS)), source="<test>")


@pytest.fixture(scope="module")
def ruleset() -> RuleSet:
    return RuleSet.load()


def base_record(**changes) -> dict:
    """A household no default rule flags: two working adults, 20,000 yuan each."""
    rec = {
        "household_id": "h0001",
        "period": "2025-06",
        "county_code": "530102",
        "village_code": "530102001001",
        "household_size": 2,
        "labor_count": 2,
        "elderly_count": 0,
        "children_count": 0,
        "students_compulsory": 0,
        "students_noncompulsory": 0,
        "disabled_count": 0,
        "chronic_ill_count": 0,
        "head_age": 45,
        "head_female": False,
        "head_education_years": 9,
        "ethnic_minority": False,
        "formerly_poor": True,
        "dibao": False,
        "tekun": False,
        "relocated": False,
        "income_wage": 40000.0,
        "income_business": 0.0,
        "income_property": 0.0,
        "income_transfer": 0.0,
        "migrant_workers": 0,
        "months_employed": 20.0,
        "medical_expense": 0.0,
        "education_expense": 0.0,
        "disaster_loss": 0.0,
        "debt": 0.0,
        "medical_insured": True,
        "housing_safe": True,
        "water_safe": True,
        "dropout": False,
    }
    rec.update(changes)
    return rec


def fired_ids(rec: dict, ruleset: RuleSet, lines: ReferenceLines, previous=None) -> set[str]:
    return {d["id"] for d in evaluate_record(rec, ruleset, lines, previous)}


def one(rec: dict, ruleset: RuleSet, lines: ReferenceLines, previous=None) -> rules.RuleResults:
    df = records_to_frame([rec])
    prev = rules.previous_frame([previous], df.index) if previous is not None else None
    return evaluate(df, ruleset, lines, prev)


# --------------------------------------------------------------------------- the file
def test_default_file_loads_with_versioned_hash(ruleset):
    assert config.POLICY_RULES.exists()
    assert set(ruleset.rule_ids) >= {
        "low_income",
        "dibao_edge",
        "income_drop",
        "medical_amount",
        "medical_share",
        "schooling_share",
        "disaster_loss",
        "housing_unsafe",
        "water_unsafe",
        "dropout",
        "medical_uninsured",
        "lack_of_labour",
    }
    file_version, digest = ruleset.version.split("+")
    assert file_version == ruleset.file_version and len(digest) == 8
    red = {r.id for r in ruleset.rules if r.level == "red"}
    assert red == {"medical_amount", "disaster_loss", "income_drop"}
    # the documented defaults
    assert ruleset.get("medical_amount").condition.threshold == 20000
    assert ruleset.get("medical_share").condition.threshold == 0.5
    assert ruleset.get("dibao_edge").condition.factor == 1.5
    assert ruleset.get("income_drop").condition.threshold == 0.3


def test_version_hash_follows_content():
    text = config.POLICY_RULES.read_text(encoding="utf-8")
    a = RuleSet.from_text(text)
    b = RuleSet.from_text(text + "\n# a comment\n")
    assert a.file_version == b.file_version
    assert a.version != b.version
    assert RuleSet.from_text(text).version == a.version


def test_clean_record_fires_nothing(ruleset, lines):
    rec = base_record()
    assert validate_frame(pd.DataFrame([rec])) == []
    res = one(rec, ruleset, lines)
    assert res.for_row(0) == []
    assert not res.flagged[0] and res.severity[0] == 0
    assert res.not_evaluated(0) == ["income_drop"]  # no previous period given


# --------------------------------------------------------------------------- thresholds
def _income(pc: float) -> dict:
    return {"income_wage": 2 * pc}  # household_size 2, other incomes 0


BOUNDARIES = [
    # rule, record at a value, threshold, step, fires below / at / above
    ("low_income", lambda v: base_record(**_income(v)), MONITORING, 1.0, (True, False, False)),
    ("dibao_edge", lambda v: base_record(**_income(v)), 1.5 * DIBAO, 1.0, (True, False, False)),
    (
        "medical_amount",
        lambda v: base_record(medical_expense=v, income_wage=1e6),
        20000.0,
        1.0,
        (False, False, True),
    ),
    (
        "medical_share",
        lambda v: base_record(medical_expense=v, income_wage=10000.0),
        5000.0,
        1.0,
        (False, False, True),
    ),
    (
        "schooling_share",
        lambda v: base_record(education_expense=v, income_wage=10000.0),
        3000.0,
        1.0,
        (False, False, True),
    ),
    (
        "disaster_loss",
        lambda v: base_record(disaster_loss=v, income_wage=10000.0),
        3000.0,
        1.0,
        (False, False, True),
    ),
]


@pytest.mark.parametrize(
    "rule_id,make,threshold,step,expect", BOUNDARIES, ids=[b[0] for b in BOUNDARIES]
)
def test_default_rule_at_below_above_threshold(
    rule_id, make, threshold, step, expect, ruleset, lines
):
    got = tuple(
        rule_id in fired_ids(make(v), ruleset, lines)
        for v in (threshold - step, threshold, threshold + step)
    )
    assert got == expect


def test_income_drop_at_below_above_30_percent(ruleset, lines):
    prev = base_record(period="2024-06", income_wage=10000.0)
    for now, fires in ((7001.0, False), (7000.0, False), (6999.0, True)):
        rec = base_record(income_wage=now)
        assert ("income_drop" in fired_ids(rec, ruleset, lines, prev)) is fires, now


def test_lack_of_labour_and_safety_net(ruleset, lines):
    assert "lack_of_labour" in fired_ids(base_record(labor_count=0), ruleset, lines)
    assert "lack_of_labour" not in fired_ids(base_record(labor_count=1), ruleset, lines)
    for net in ({"dibao": True}, {"tekun": True}):
        assert "lack_of_labour" not in fired_ids(base_record(labor_count=0, **net), ruleset, lines)


def test_dibao_edge_only_for_households_without_dibao_or_tekun(ruleset, lines):
    low = _income(7000.0)
    assert "dibao_edge" in fired_ids(base_record(**low), ruleset, lines)
    assert "dibao_edge" not in fired_ids(base_record(dibao=True, **low), ruleset, lines)
    assert "dibao_edge" not in fired_ids(base_record(tekun=True, **low), ruleset, lines)


@pytest.mark.parametrize(
    "rule_id,field,firing,safe",
    [
        ("housing_unsafe", "housing_safe", False, True),
        ("water_unsafe", "water_safe", False, True),
        ("dropout", "dropout", True, False),
        ("medical_uninsured", "medical_insured", False, True),
    ],
)
def test_three_guarantees_and_water(rule_id, field, firing, safe, ruleset, lines):
    assert rule_id in fired_ids(base_record(**{field: firing}), ruleset, lines)
    assert rule_id not in fired_ids(base_record(**{field: safe}), ruleset, lines)
    res = one(base_record(**{field: None}), ruleset, lines)
    assert rule_id not in {d["id"] for d in res.for_row(0)}
    assert rule_id in res.not_evaluated(0)


# --------------------------------------------------------------------------- messages
def test_messages_show_real_numbers(ruleset, lines):
    out = evaluate_record(base_record(**_income(5230.0)), ruleset, lines)
    low = next(d for d in out if d["id"] == "low_income")
    assert low["message_zh"] == "人均纯收入 5,230 元，低于监测线 6,000 元"
    assert low["message_en"] == (
        "Per-capita net income 5,230 yuan is below the monitoring line of 6,000 yuan"
    )
    assert low["value"] == 5230.0 and low["threshold"] == 6000.0
    assert isinstance(low["value"], float) and isinstance(low["threshold"], float)
    assert set(low) == {
        "id",
        "risk_type",
        "level",
        "message_zh",
        "message_en",
        "value",
        "threshold",
    }
    edge = next(d for d in out if d["id"] == "dibao_edge")
    assert "7,500" in edge["message_zh"] and "1.5" in edge["message_en"]
    assert "5,000" in edge["message_en"]  # the dibao line itself


def test_share_messages_in_percent(ruleset, lines):
    out = evaluate_record(base_record(medical_expense=6200.0, income_wage=10000.0), ruleset, lines)
    d = next(d for d in out if d["id"] == "medical_share")
    assert "62%" in d["message_zh"] and "50%" in d["message_zh"]
    assert "6,200" in d["message_en"]
    assert d["value"] == pytest.approx(0.62) and d["threshold"] == 0.5


def test_value_that_rounds_to_threshold_shows_the_difference(ruleset, lines):
    out = evaluate_record(base_record(**_income(5999.6)), ruleset, lines)
    d = next(d for d in out if d["id"] == "low_income")
    assert "5,999.6" in d["message_en"] and "6,000.0" in d["message_en"]


@pytest.mark.parametrize("net", [0.0, -3000.0])
def test_spending_with_income_at_or_below_zero_is_above_any_share(net, ruleset, lines):
    rec = base_record(income_wage=0.0, income_business=net, medical_expense=100.0)
    d = next(d for d in evaluate_record(rec, ruleset, lines) if d["id"] == "medical_share")
    assert d["value"] is None and d["threshold"] == 0.5
    assert "income ≤ 0" in d["message_en"] and "纯收入≤0" in d["message_zh"]
    # no spending is no share, whatever the income
    rec0 = base_record(income_wage=0.0, income_business=net, medical_expense=0.0)
    assert "medical_share" not in fired_ids(rec0, ruleset, lines)


# --------------------------------------------------------------------------- missing inputs
def test_missing_income_is_not_zero(ruleset, lines):
    # with income_wage read as 0 the household would be far below every line
    rec = base_record(income_wage=None, medical_expense=100.0)
    res = one(rec, ruleset, lines)
    fired = {d["id"] for d in res.for_row(0)}
    assert fired.isdisjoint({"low_income", "dibao_edge", "medical_share"})
    skipped = set(res.not_evaluated(0))
    assert {
        "low_income",
        "dibao_edge",
        "medical_share",
        "schooling_share",
        "disaster_loss",
    } <= skipped
    assert "medical_amount" not in skipped  # does not need income
    assert res.missing_inputs(0)["low_income"] == ["income_wage"]


def test_missing_spending_is_not_evaluated(ruleset, lines):
    res = one(base_record(medical_expense=None), ruleset, lines)
    assert {"medical_amount", "medical_share"} <= set(res.not_evaluated(0))
    assert not res.flagged[0]
    assert res.missing_inputs(0)["medical_amount"] == ["medical_expense"]


def test_known_false_gate_decides_despite_missing_income(ruleset, lines):
    # on dibao: the dibao-edge rule cannot fire, so it is evaluated (as not fired)
    res = one(base_record(income_wage=None, dibao=True), ruleset, lines)
    assert "dibao_edge" not in res.not_evaluated(0)
    assert "low_income" in res.not_evaluated(0)
    res = one(base_record(income_wage=None, dibao=None), ruleset, lines)
    assert "dibao_edge" in res.not_evaluated(0)


def test_income_drop_needs_a_known_positive_previous_income(ruleset, lines):
    rec = base_record(income_wage=1000.0)
    res = one(rec, ruleset, lines, previous=None)
    assert "income_drop" in res.not_evaluated(0)
    assert "prev_income_wage" in res.missing_inputs(0)["income_drop"]
    res = one(rec, ruleset, lines, previous=base_record(income_wage=None))
    assert "income_drop" in res.not_evaluated(0)
    res = one(rec, ruleset, lines, previous=base_record(income_wage=0.0))
    assert "income_drop" in res.not_evaluated(0)
    assert res.missing_inputs(0)["income_drop"] == ["income_drop"]  # prev ≤ 0, nothing missing


def test_income_drop_risk_type_follows_the_largest_fall(ruleset, lines):
    prev = base_record(income_wage=20000.0, income_business=20000.0)
    wage_fell = base_record(income_wage=2000.0, income_business=18000.0)
    business_fell = base_record(income_wage=19000.0, income_business=1000.0)
    for rec, rt in ((wage_fell, "unstable_employment"), (business_fell, "business_failure")):
        d = next(d for d in evaluate_record(rec, ruleset, lines, prev) if d["id"] == "income_drop")
        assert d["risk_type"] == rt and d["level"] == "red"
        assert "40,000" in d["message_en"] and "20,000" in d["message_en"]


# --------------------------------------------------------------------------- custom files
CUSTOM = """
version: "test-1"
rules:
  - id: medical_amount
    risk_type: illness
    level: red
    condition: {value: medical_expense, op: gt, threshold: 20000}
    message_zh: "医疗自付费用 {value} 元，超过 {threshold} 元"
    message_en: "Medical {value} above {threshold}"
    effective: {from: "2021-01"}
    overrides:
      - province: "61"
        threshold: 26000
        effective: {from: "2022-01"}
      - province: ["11"]
        enabled: false
  - id: edge
    risk_type: low_income
    level: yellow
    condition: {value: pc_net_income, op: lt, threshold_ref: dibao_line, factor: 1.5}
    only_if:
      - {value: dibao, op: is_false}
      - {value: labor_count, op: le, threshold: 3, name: few_workers}
    message_zh: "人均 {value} 低于 {threshold}（{factor} 倍）"
    message_en: "pc {value} below {threshold} ({factor} x)"
    effective: {from: "2021-01"}
    overrides:
      - province: "53"
        factor: 2
      - province: "61"
        target: few_workers
        threshold: 0
  - id: temporary
    risk_type: other
    level: yellow
    condition: {value: debt, op: ge, threshold: 50000}
    message_zh: "负债 {value} 元，达到 {threshold} 元"
    message_en: "Debt {value} at least {threshold}"
    effective: {from: "2024-01", to: "2024-12-31"}
"""


@pytest.fixture(scope="module")
def custom() -> RuleSet:
    return RuleSet.from_text(CUSTOM, source="custom.yaml")


def _at(province: str, period: str, **changes) -> dict:
    county = {"53": "530102", "61": "610102", "11": "110101"}[province]
    return base_record(county_code=county, village_code=county + "001001", period=period, **changes)


def test_provincial_override_of_a_fixed_threshold(custom, lines):
    rec = {"medical_expense": 25000.0}
    assert "medical_amount" in fired_ids(_at("53", "2023-06", **rec), custom, lines)
    assert "medical_amount" not in fired_ids(_at("61", "2023-06", **rec), custom, lines)
    assert "medical_amount" in fired_ids(
        _at("61", "2023-06", medical_expense=26001.0), custom, lines
    )
    # before the override takes effect, Shaanxi uses the national threshold
    assert "medical_amount" in fired_ids(_at("61", "2021-06", **rec), custom, lines)
    # switched off in Beijing: neither fired nor "not evaluated"
    res = one(_at("11", "2023-06", medical_expense=None), custom, lines)
    assert "medical_amount" not in res.not_evaluated(0)
    assert "medical_amount" not in fired_ids(_at("11", "2023-06", **rec), custom, lines)

    active = {r.id: r for r in custom.active("61", "2023-06")}
    assert active["medical_amount"].condition.threshold == 26000
    assert active["medical_amount"].applied
    assert custom.active("61", "2021-06")[0].condition.threshold == 20000
    assert "medical_amount" not in {r.id for r in custom.active("11", "2023-06")}


def test_override_of_factor_and_of_a_named_only_if_condition(custom, lines):
    # Yunnan: 2 × dibao (10,000) instead of 1.5 × (7,500)
    assert "edge" in fired_ids(_at("53", "2023-06", **_income(9000.0)), custom, lines)
    d = evaluate_record(_at("53", "2023-06", **_income(9000.0)), custom, lines)
    assert d[0]["threshold"] == 10000.0 and "(2 x)" in d[0]["message_en"]
    # Shaanxi: only households with no worker; dibao line there is 5000+1000+300
    pc = 0.5 * 1.5 * (DIBAO + 1300)
    assert "edge" not in fired_ids(_at("61", "2023-06", **_income(pc)), custom, lines)
    assert "edge" in fired_ids(_at("61", "2023-06", labor_count=0, **_income(pc)), custom, lines)
    few = {r.id: r for r in custom.active("61", "2023-06")}["edge"].only_if
    assert [c.threshold for c in few.leaves() if c.name == "few_workers"] == [0]
    assert {r.id: r for r in custom.active("53", "2023-06")}["edge"].condition.factor == 2


def test_effective_dates(custom, lines):
    debt = {"debt": 60000.0}
    assert "temporary" not in fired_ids(_at("53", "2023-12", **debt), custom, lines)
    assert "temporary" in fired_ids(_at("53", "2024-01", **debt), custom, lines)
    assert "temporary" in fired_ids(_at("53", "2024-12", **debt), custom, lines)
    assert "temporary" not in fired_ids(_at("53", "2025-01", **debt), custom, lines)
    # out of force is neither fired nor "not evaluated"
    res = one(_at("53", "2025-01", debt=None), custom, lines)
    assert "temporary" not in res.not_evaluated(0)
    # `on` fixes the date for every record
    df = records_to_frame([_at("53", "2025-01", **debt)])
    assert evaluate(df, custom, lines, on="2024-06").fired_frame().loc[0, "temporary"]
    assert "temporary" in {r.id for r in custom.active("53", "2024-06-15")}
    assert "temporary" not in {r.id for r in custom.active("53", "2025-01")}


# --------------------------------------------------------------------------- broken files
def _broken(old: str, new: str) -> str:
    assert old in CUSTOM, old
    return CUSTOM.replace(old, new, 1)


BROKEN = [
    # (old, new, rule, key, words in the message)
    (
        "{value: medical_expense, op: gt,",
        "{value: medical_expenses, op: gt,",
        "medical_amount",
        "condition.value",
        "unknown field 'medical_expenses'",
    ),
    (
        "op: gt, threshold: 20000",
        "op: above, threshold: 20000",
        "medical_amount",
        "condition.op",
        "unknown operator 'above'",
    ),
    (
        "op: gt, threshold: 20000}",
        "op: gt}",
        "medical_amount",
        "condition.threshold",
        "missing threshold",
    ),
    (
        'effective: {from: "2024-01"',
        'effective: {from: "2024-13"',
        "temporary",
        "effective.from",
        "bad date",
    ),
    ('to: "2024-12-31"', 'to: "2024-02-30"', "temporary", "effective.to", "bad date"),
    ('to: "2024-12-31"', 'to: "2023-12"', "temporary", "effective.to", "before from"),
    (
        '    effective: {from: "2024-01", to: "2024-12-31"}\n',
        "",
        "temporary",
        "effective",
        "missing",
    ),
    ("risk_type: other", "risk_type: poverty", "temporary", "risk_type", "unknown risk type"),
    ("level: red", "level: orange", "medical_amount", "level", "red or yellow"),
    ("  - id: temporary", "  - id: edge", "edge", "id", "duplicate rule id"),
    (
        "    risk_type: other\n",
        "    risk_type: other\n    threshold: 3\n",
        "temporary",
        "threshold",
        "unknown key",
    ),
    (
        "Debt {value} at least",
        "Debt {amount} at least",
        "temporary",
        "message_en",
        "unknown placeholder",
    ),
    ("Debt {value} at least", "Debt at least", "temporary", "message_en", "{value}"),
    ("Debt {value} at least", "Debt {value:.2f} at least", "temporary", "message_en", "plain"),
    (
        'province: "61"\n        threshold',
        'province: "99"\n        threshold',
        "medical_amount",
        "overrides[0].province",
        "unknown province",
    ),
    ("target: few_workers", "target: many_workers", "edge", "overrides[1].target", "many_workers"),
    (
        "{value: dibao, op: is_false}",
        "{value: dibao, op: lt, threshold: 1}",
        "edge",
        "only_if.all[0].op",
        "true/false",
    ),
    (
        "{value: debt, op: ge, threshold: 50000}",
        "{value: debt, op: is_true}",
        "temporary",
        "condition.op",
        "is a number",
    ),
    (
        "threshold: 20000}",
        "threshold: 20000, factor: 2}",
        "medical_amount",
        "condition.factor",
        "threshold_ref",
    ),
    (
        "threshold_ref: dibao_line, factor: 1.5",
        "threshold_ref: dibao_lines, factor: 1.5",
        "edge",
        "condition.threshold_ref",
        "unknown field",
    ),
    (
        "threshold: 20000}",
        'threshold: "20,000"}',
        "medical_amount",
        "condition.threshold",
        "must be a number",
    ),
]


@pytest.mark.parametrize(
    "old,new,rule_id,key,words", BROKEN, ids=[f"{b[2]}:{b[3]}:{b[4][:20]}" for b in BROKEN]
)
def test_broken_rules_file_names_rule_and_key(old, new, rule_id, key, words):
    with pytest.raises(RulesFileError) as err:
        RuleSet.from_text(_broken(old, new), source="custom.yaml")
    e = err.value
    assert (e.rule_id, e.key) == (rule_id, key), str(e)
    assert words in str(e)
    assert str(e).startswith(f"custom.yaml: rule {rule_id!r}, key {key!r}: ")


def test_share_threshold_written_as_percent_is_refused(ruleset):
    text = config.POLICY_RULES.read_text(encoding="utf-8").replace(
        "{value: medical_share, op: gt, threshold: 0.50}",
        "{value: medical_share, op: gt, threshold: 50}",
    )
    with pytest.raises(RulesFileError, match="medical_share.*fraction"):
        RuleSet.from_text(text)


@pytest.mark.parametrize(
    "text,words",
    [
        ("rules: []\n", "version"),
        ('version: "1"\nrules: []\n', "non-empty"),
        ('version: "1"\nrulez: []\n', "unknown top-level key"),
        ('version: "1"\nrules: [\n', "not valid YAML"),
        (CUSTOM.replace("level: red\n", "level: red\n    level: yellow\n", 1), "duplicate key"),
    ],
)
def test_broken_file_structure(text, words):
    with pytest.raises(RulesFileError, match=words):
        RuleSet.from_text(text)


def test_load_missing_file(tmp_path):
    with pytest.raises(RulesFileError, match="not found"):
        RuleSet.load(tmp_path / "nope.yaml")


# --------------------------------------------------------------------------- batch = single
def random_record(rng: random.Random, i: int) -> dict:
    prov = rng.choice(PROVINCES)
    county = {"53": "530102", "61": "610102", "11": "110101"}[prov]
    size = rng.randint(1, 6)
    labor = rng.randint(0, size)

    def maybe(v):
        return None if rng.random() < 0.08 else v

    def money(scale):
        return maybe(float(round(rng.expovariate(1 / scale))))

    return {
        **base_record(),
        "household_id": f"h{i:05d}",
        "period": f"{rng.choice([2022, 2023, 2024, 2025])}-{rng.randint(1, 12):02d}",
        "county_code": county,
        "village_code": county + "001001",
        "household_size": size,
        "labor_count": maybe(labor),
        "elderly_count": 0,
        "children_count": 0,
        "months_employed": 6.0 * labor,
        "income_wage": money(12000 * max(labor, 1)),
        "income_business": maybe(float(round(rng.gauss(4000, 6000)))),
        "income_property": money(300),
        "income_transfer": money(3000),
        "medical_expense": money(6000),
        "education_expense": money(2000),
        "disaster_loss": money(1500) if rng.random() < 0.3 else 0.0,
        "dibao": maybe(rng.random() < 0.15),
        "tekun": maybe(rng.random() < 0.03),
        "medical_insured": maybe(rng.random() < 0.9),
        "housing_safe": maybe(rng.random() < 0.9),
        "water_safe": maybe(rng.random() < 0.9),
        "dropout": maybe(rng.random() < 0.05),
    }


def test_batch_and_single_are_identical(ruleset, custom, lines):
    rng = random.Random(7)
    recs = [random_record(rng, i) for i in range(400)]
    prevs = [
        None
        if rng.random() < 0.3
        else random_record(rng, i) | {"household_id": recs[i]["household_id"]}
        for i in range(len(recs))
    ]
    assert validate_frame(pd.DataFrame(recs)) == []
    df = records_to_frame(recs)
    prev = rules.previous_frame(prevs, df.index)
    for rs in (ruleset, custom):
        batch = evaluate(df, rs, lines, previous=prev)
        n_fired = 0
        for i, (rec, p) in enumerate(zip(recs, prevs, strict=True)):
            single = evaluate_record(rec, rs, lines, p)
            assert single == batch.for_row(i), i
            n_fired += len(single)
            one_res = one(rec, rs, lines, p)
            assert one_res.not_evaluated(0) == batch.not_evaluated(i)
            assert one_res.risk_types(0) == batch.risk_types(i)
            assert one_res.severity[0] == pytest.approx(batch.severity[i])
        assert n_fired > 50  # the comparison covered many fired rules
        assert batch.flagged.sum() > 50 and (~batch.flagged).sum() > 10


def test_batch_respects_the_frame_index(ruleset, lines):
    recs = [base_record(household_id=f"h{i}", **_income(5000.0 + 2000 * i)) for i in range(3)]
    df = records_to_frame(recs)
    df.index = pd.Index([10, 20, 30])
    res = evaluate(df, ruleset, lines)
    assert list(res.fired_frame().index) == [10, 20, 30]
    assert res.fired_frame()["low_income"].tolist() == [True, False, False]
    with pytest.raises(ValueError, match="aligned"):
        evaluate(df, ruleset, lines, previous=df.reset_index(drop=True))


# --------------------------------------------------------------------------- severity, baseline
def test_severity_ranks_red_first_and_by_distance(ruleset, lines):
    recs = [
        base_record(household_id="a"),
        base_record(household_id="b", **_income(5900.0)),  # just below the line
        base_record(household_id="c", **_income(3000.0)),  # far below
        base_record(household_id="d", medical_expense=21000.0, income_wage=1e6),  # red
    ]
    res = evaluate(records_to_frame(recs), ruleset, lines)
    flagged, severity = rules.rules_baseline(res)
    assert flagged.dtype == np.bool_ and severity.dtype == np.float64
    assert flagged.tolist() == [False, True, True, True]
    assert severity[0] == 0
    assert severity[2] > severity[1] > 0
    assert severity[3] >= 3.0  # a red rule alone counts at least its weight
    assert res.fired_matrix.shape == (4, len(ruleset.rules))
    assert res.rule_ids == ruleset.rule_ids


def test_risk_types_red_first_deduplicated(ruleset, lines):
    rec = base_record(
        medical_expense=25000.0,
        medical_insured=False,
        housing_safe=False,
        **_income(4000.0),
    )
    res = one(rec, ruleset, lines)
    out = res.for_row(0)
    assert out[0]["id"] == "medical_amount" and out[0]["level"] == "red"
    rts = res.risk_types(0)
    assert rts[0] == "illness" and len(rts) == len(set(rts))
    assert {"low_income", "housing"} <= set(rts)


# --------------------------------------------------------------------------- previous period
def test_income_drop_uses_the_panels_previous_period(ruleset, lines):
    from riskml.data.history import previous_from_panel

    panel = records_to_frame(
        [
            base_record(household_id="a", period="2023-06", income_wage=30000.0),
            base_record(household_id="a", period="2024-06", income_wage=10000.0),
            base_record(household_id="b", period="2024-06", income_wage=20000.0),
            base_record(household_id="a", period="2025-06", income_wage=12000.0),
            base_record(household_id="b", period="2025-01", income_wage=5000.0),
        ]
    )
    panel.index = pd.Index([5, 4, 3, 2, 1])
    prev = previous_from_panel(panel)
    assert list(prev.index) == [5, 4, 3, 2, 1]
    assert prev["income_wage"].tolist()[:2] == [pytest.approx(np.nan, nan_ok=True), 30000.0]
    assert prev.loc[2, "income_wage"] == 10000.0 and prev.loc[2, "period"] == "2024-06"
    assert prev[["income_wage", "period"]].loc[[5, 3]].isna().all().all()
    assert prev.loc[1, "period"] == "2024-06"  # b: the latest earlier record within 12 months
    assert prev["household_size"].dtype == panel["household_size"].dtype
    res = evaluate(panel, ruleset, lines, previous=prev)
    drop = res.fired_frame()["income_drop"]
    assert drop.tolist() == [False, True, False, False, True]
    assert res.not_evaluated(0) == ["income_drop"]


# --------------------------------------------------------------------------- CLI
def _cli(*args: str) -> subprocess.CompletedProcess:
    code = "from riskml.cli import app; import riskml.cli.rules; app()"
    return subprocess.run(
        [sys.executable, "-c", code, "rules", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )


def test_cli_check_good_and_broken(tmp_path: Path):
    ok = _cli("check", str(config.POLICY_RULES))
    assert ok.returncode == 0, ok.stderr
    assert "OK" in ok.stdout and "medical_amount" in ok.stdout
    bad = tmp_path / "rules.yaml"
    bad.write_text(_broken("op: gt, threshold: 20000", "op: above, threshold: 20000"), "utf-8")
    res = _cli("check", str(bad))
    assert res.returncode == 1
    assert "rule 'medical_amount', key 'condition.op'" in res.stderr
    assert "unknown operator 'above'" in res.stderr


def test_cli_explain_shows_active_rules_with_overrides(tmp_path: Path):
    f = tmp_path / "rules.yaml"
    f.write_text(CUSTOM, "utf-8")
    res = _cli("explain", "--province", "61", "--date", "2024-06", "--file", str(f))
    assert res.returncode == 0, res.stderr
    assert "26,000" in res.stdout and "province 61" in res.stdout
    assert "temporary" in res.stdout
    res = _cli("explain", "--province", "11", "--date", "2025-06", "--file", str(f))
    assert res.returncode == 0, res.stderr
    assert "medical_amount" not in res.stdout and "temporary" not in res.stdout
    res = _cli("explain", "--province", "53", "--date", "2025-13", "--file", str(f))
    assert res.returncode == 2 and "date" in res.stderr
