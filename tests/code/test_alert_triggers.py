"""Code tests: department thresholds as versioned rules (riskml.alerts.triggers and triggers.yaml)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from riskml.alerts.contract import DEPARTMENT_CODES, example_alert
from riskml.alerts.triggers import ENV_FILE, TriggerSet, TriggersFileError


@pytest.fixture(scope="module")
def shipped() -> TriggerSet:
    return TriggerSet.load()


def _ids(fired) -> list[str]:
    return [f["id"] for f in fired]


def test_the_shipped_file_loads_with_a_content_hash(shipped):
    assert re.fullmatch(r"2025\.1\+[0-9a-f]{8}", shipped.version)
    assert {t.department for t in shipped.triggers} == set(DEPARTMENT_CODES)
    assert all(t.source for t in shipped.triggers)
    other = TriggerSet.from_text(
        Path(shipped.source).read_text(encoding="utf-8") + "\n# a comment\n"
    )
    assert other.file_version == shipped.file_version and other.version != shipped.version


# --------------------------------------------------------------------------- the medical thresholds
@pytest.mark.parametrize(
    "amount, formerly_poor, expected",
    [
        (4999, True, []),
        (5000, True, ["medical_inpatient_formerly_poor"]),
        (19999, False, []),
        (20000, False, ["medical_inpatient"]),
        (20000, None, ["medical_inpatient"]),  # not known to be formerly poor: the general amount
        (6000, None, []),
    ],
)
def test_inpatient_thresholds_by_formerly_poor(shipped, amount, formerly_poor, expected):
    alert = example_alert("medical", out_of_pocket=amount, month_out_of_pocket=0)
    record = None if formerly_poor is None else {"formerly_poor": formerly_poor}
    assert _ids(shipped.fired(alert, record, "53", "2025-03")) == expected


def test_the_unknown_household_and_a_record_without_the_flag(shipped):
    alert = example_alert("medical", out_of_pocket=30000, month_out_of_pocket=0)
    assert _ids(shipped.fired(alert, {}, "53", "2025-03")) == ["medical_inpatient"]
    assert _ids(shipped.fired(alert, {"formerly_poor": None}, "53", "2025-03")) == [
        "medical_inpatient"
    ]


def test_outpatient_monthly_threshold_and_the_message(shipped):
    alert = example_alert("medical", care="outpatient", out_of_pocket=3000, month_out_of_pocket=500)
    (fired,) = shipped.fired(alert, {"formerly_poor": True}, "41", "2025-03")
    assert fired["id"] == "medical_outpatient_month" and fired["level"] == "yellow"
    assert fired["risk_type"] == "illness" and fired["value"] == 500 and fired["threshold"] == 500
    assert fired["message_zh"] == "本月门诊自付费用 500 元，达到预警金额 500 元"
    assert "500 yuan" in fired["message_en"]
    below = example_alert("medical", care="outpatient", out_of_pocket=3000, month_out_of_pocket=499)
    assert shipped.fired(below, None, "41", "2025-03") == []
    no_month = example_alert(
        "medical", care="outpatient", out_of_pocket=3000, month_out_of_pocket=None
    )
    assert shipped.fired(no_month, None, "41", "2025-03") == []  # missing is not zero


def test_inpatient_message_formats_money(shipped):
    alert = example_alert("medical", out_of_pocket=26500.0, month_out_of_pocket=0)
    (fired,) = shipped.fired(alert, {"formerly_poor": False}, "53", "2025-03")
    assert fired["message_zh"] == "住院自付费用 26,500 元，达到预警金额 20,000 元"
    assert fired["level"] == "red"


# --------------------------------------------------------------------------- every department
@pytest.mark.parametrize(
    "department, fields, before, expected",
    [
        ("health", {"serious_illness": True}, None, ["health_serious_illness"]),
        ("health", {"serious_illness": False}, None, []),
        ("education", {"dropout": True, "schooling_cost": 10000}, None, ["education_dropout"]),
        (
            "education",
            {"dropout": None, "schooling_cost": 10001},
            None,
            ["education_schooling_cost"],
        ),
        ("emergency", {"loss": 0, "house_damaged": False}, None, []),
        ("emergency", {"loss": 1, "house_damaged": None}, None, ["emergency_loss"]),
        ("emergency", {"loss": None, "house_damaged": True}, None, ["emergency_house_damaged"]),
        (
            "civil_affairs",
            {"dibao": True, "tekun": None},
            {"dibao": False},
            ["civil_affairs_new_dibao"],
        ),
        ("civil_affairs", {"dibao": True, "tekun": None}, {"dibao": True}, []),  # not new
        ("civil_affairs", {"dibao": True, "tekun": None}, None, ["civil_affairs_new_dibao"]),
        (
            "civil_affairs",
            {"dibao": None, "tekun": True},
            {"tekun": False},
            ["civil_affairs_new_tekun"],
        ),
        ("public_security", {"main_earner": "injured"}, None, ["public_security_injured"]),
        ("public_security", {"main_earner": "dead"}, None, ["public_security_dead"]),
        ("housing", {"house_unsafe": True}, None, ["housing_house_unsafe"]),
        ("water", {"water_unsafe": True}, None, ["water_unsafe"]),
        ("water", {"water_unsafe": False}, None, []),
        ("human_resources", {"months_without_contributions": 2}, None, []),
        (
            "human_resources",
            {"months_without_contributions": 3},
            None,
            ["human_resources_no_contributions"],
        ),
        ("disability", {"severe_disability": True}, None, ["disability_severe"]),
    ],
)
def test_each_department_trigger(shipped, department, fields, before, expected):
    alert = example_alert(department, **fields)
    fired = shipped.fired(alert, before, "530102", "2025-03")
    assert _ids(fired) == expected
    for f in fired:
        assert f["department"] == department and f["message_zh"] and f["message_en"]
        assert "{" not in f["message_zh"] + f["message_en"]


def test_red_first(shipped):
    t = TriggerSet.from_text(_FILE.replace("level: red", "level: yellow", 1) + _SECOND)
    fired = t.fired(example_alert("medical", out_of_pocket=30000), None, "53", "2025-03")
    assert [f["level"] for f in fired] == ["red", "yellow"]


# --------------------------------------------------------------------------- overrides and dates
_FILE = """
version: "t1"
triggers:
  - id: med
    department: medical
    risk_type: illness
    level: red
    condition: {field: out_of_pocket, op: ge, threshold: 5000}
    effective: {from: "2021-01", to: "2026-12"}
    message_zh: "自付 {value} 元，阈值 {threshold} 元"
    message_en: "out of pocket {value} above {threshold}"
    overrides:
      - provinces: ["53", "52"]
        threshold: 3000
        effective: {from: "2025-01"}
        source: "a county rule"
      - provinces: ["41"]
        enabled: false
"""
_SECOND = """
  - id: med_high
    department: medical
    risk_type: illness
    level: red
    condition: {field: out_of_pocket, op: ge, threshold: 20000}
    effective: {from: "2021-01"}
    message_zh: "自付 {value} 元，阈值 {threshold} 元"
    message_en: "out of pocket {value} above {threshold}"
"""


@pytest.mark.parametrize(
    "amount, province, period, fires, threshold",
    [
        (3500, "53", "2025-03", True, 3000.0),  # the provincial threshold
        (3500, "530102", "2025-03", True, 3000.0),  # a county code is accepted
        (3500, "53", "2024-12", False, None),  # before the override takes effect
        (5000, "53", "2024-12", True, 5000.0),
        (3500, "11", "2025-03", False, None),  # another province: national default
        (5000, "11", "2025-03", True, 5000.0),
        (9000, "41", "2025-03", False, None),  # switched off there
        (9000, "11", "2027-01", False, None),  # after effective.to
        (9000, "11", "2020-12", False, None),  # before effective.from
    ],
)
def test_overrides_by_province_and_effective_dates(amount, province, period, fires, threshold):
    t = TriggerSet.from_text(_FILE)
    fired = t.fired(example_alert("medical", out_of_pocket=amount), None, province, period)
    assert bool(fired) is fires
    if fires:
        assert fired[0]["threshold"] == threshold
        assert bool(fired[0]["overrides"]) is (threshold == 3000.0)


def test_active_lists_what_is_in_force():
    t = TriggerSet.from_text(_FILE)
    (med,) = t.active("medical", "53", "2025-06")
    assert med.condition.threshold == 3000 and med.applied and not med.overrides
    assert t.active("medical", "41", "2025-06") == []
    assert t.active("health", "53", "2025-06") == []


def test_the_environment_names_another_file(tmp_path, monkeypatch):
    p = tmp_path / "triggers.yaml"
    p.write_text(_FILE, encoding="utf-8")
    monkeypatch.setenv(ENV_FILE, str(p))
    assert TriggerSet.load().file_version == "t1"
    monkeypatch.setenv(ENV_FILE, str(tmp_path / "none.yaml"))
    with pytest.raises(TriggersFileError, match="file not found"):
        TriggerSet.load()


# --------------------------------------------------------------------------- strict parsing
@pytest.mark.parametrize(
    "old, new, match",
    [
        (
            "    level: red\n",
            "    level: red\n    colour: blue\n",
            r"trigger 'med', key 'colour': unknown key",
        ),
        (
            "threshold: 5000}",
            'threshold: "5000"}',
            r"key 'condition.threshold': must be a finite number",
        ),
        (
            "threshold: 5000}",
            "threshold: true}",
            r"key 'condition.threshold': must be a finite number",
        ),
        (
            '{from: "2021-01", to: "2026-12"}',
            "{from: 2021-01-01}",
            r"key 'effective.from': write the date in quotes",
        ),
        (
            '{from: "2021-01", to: "2026-12"}',
            '{from: "2021-13"}',
            r"key 'effective.from': bad date",
        ),
        (
            '{from: "2021-01", to: "2026-12"}',
            '{from: "2021-05", to: "2021-01"}',
            r"key 'effective.to': is before from",
        ),
        ("department: medical", "department: police", r"key 'department': unknown department"),
        (
            "field: out_of_pocket",
            "field: dropout",
            r"key 'condition.field': unknown field 'dropout' of medical",
        ),
        ("op: ge", "op: is_true", r"key 'condition.op': out_of_pocket is a number"),
        ("op: ge", "op: above", r"key 'condition.op': unknown operator"),
        ("risk_type: illness", "risk_type: sickness", r"key 'risk_type': unknown risk type"),
        ("level: red", "level: orange", r"key 'level': must be red or yellow"),
        (
            '"自付 {value} 元，阈值 {threshold} 元"',
            '"自付 {value} 元"',
            r"key 'message_zh': must show",
        ),
        (
            '"out of pocket {value} above {threshold}"',
            '"{value} {household}"',
            r"unknown placeholder \{household\}",
        ),
        ('["53", "52"]', "[53]", r"key 'overrides\[0\].provinces': unknown province code 53"),
        ('["53", "52"]', '["5"]', r"unknown province code '5'"),
        ("        enabled: false\n", "", r"key 'overrides\[1\]': changes nothing"),
        (
            '        source: "a county rule"\n',
            "        source: x\n        source: y\n",
            r"not valid YAML: .*duplicate key",
        ),
        ('version: "t1"', "version: 1", r"key 'version': must be a version string"),
        ("triggers:", "rules:", r"key 'rules': unknown top-level key"),
    ],
)
def test_strict_parsing_names_trigger_and_key(old, new, match):
    assert old in _FILE
    with pytest.raises(TriggersFileError, match=match):
        TriggerSet.from_text(_FILE.replace(old, new, 1))


def test_conditions_on_choices_flags_and_the_record():
    text = """
version: "t2"
triggers:
  - id: dead
    department: public_security
    risk_type: lack_of_labour
    level: red
    condition: {field: main_earner, op: eq, value: dead}
    only_if:
      - {record: tekun, op: is_false}
    effective: {from: "2021-01"}
    message_zh: "主要劳动力{value}"
    message_en: "main earner {value}"
"""
    t = TriggerSet.from_text(text)
    alert = example_alert("public_security", main_earner="dead")
    (fired,) = t.fired(alert, {"tekun": False}, "53", "2025-03")
    assert fired["message_zh"] == "主要劳动力死亡" and fired["message_en"] == "main earner dead"
    assert t.fired(alert, None, "53", "2025-03") == []  # record unknown: no when_unknown
    for old, new, match in [
        ("value: dead}", "value: gone}", r"condition.value': must be one of injured, dead"),
        (
            "{record: tekun, op: is_false}",
            "{record: labor_count, op: is_false}",
            r"only_if\[0\].record",
        ),
        ("{record: tekun, op: is_false}", "{record: tekun, op: gt}", r"only_if\[0\].op"),
        (
            "{record: tekun, op: is_false}",
            "{record: tekun, op: is_false, when_unknown: 1}",
            r"when_unknown",
        ),
        (
            "condition: {field: main_earner, op: eq, value: dead}",
            "condition: {record: tekun, op: is_true}",
            r"key 'condition.record': unknown key",
        ),  # fmt: skip
    ]:
        with pytest.raises(TriggersFileError, match=match):
            TriggerSet.from_text(text.replace(old, new))
