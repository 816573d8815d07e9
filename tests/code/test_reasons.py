"""Code tests: plain-language reasons and risk types from contributions."""

from __future__ import annotations

import numpy as np

from riskml.model.features import FEATURE_NAMES
from riskml.model.reasons import (
    REASONS,
    reason_context,
    risk_types_from_contributions,
    sentence,
    top_reasons,
)


def _contrib(**values: float) -> np.ndarray:
    c = np.zeros(len(FEATURE_NAMES))
    for name, v in values.items():
        c[FEATURE_NAMES.index(name)] = v
    return c


def test_risk_types_sum_per_type_and_keep_the_material_ones():
    c = _contrib(medical_to_income=0.5, medical_pc_to_line=0.3, wage_share=0.2, loss_to_income=0.05,
                 pc_income_to_line=0.4, d_pc_income_to_line=-0.6)  # fmt: skip
    types = risk_types_from_contributions(c)
    assert [t for t, _ in types] == ["illness", "unstable_employment"]  # low_income nets to -0.2
    assert types[0][1] == 0.8


def test_at_most_three_model_risk_types():
    c = _contrib(
        medical_to_income=0.5,
        wage_share=0.4,
        loss_to_income=0.3,
        education_to_income=0.2,
        debt_pc_to_line=0.15,
    )
    assert [t for t, _ in risk_types_from_contributions(c)] == [
        "illness",
        "unstable_employment",
        "disaster",
    ]


def test_sentences_carry_the_households_numbers():
    record = {
        "household_size": 4,
        "medical_expense": 32000.0,
        "education_expense": 0.0,
        "disaster_loss": 0.0,
    }
    features = {"medical_to_income": 0.85, "monitoring_line": 8700.0, "pc_income_to_line": 1.1}
    ctx = reason_context(record, features)
    assert sentence("medical_to_income", ctx, "zh") == "医疗自付支出 32,000 元，占家庭纯收入的 85%"
    assert sentence("medical_to_income", ctx, "en") == (
        "out-of-pocket medical spending 32,000 yuan, 85% of household net income"
    )
    assert (
        sentence("pc_income_to_line", ctx, "zh") == "人均纯收入 9,570 元，为监测线 8,700 元的 110%"
    )


def test_flags_have_a_sentence_for_both_values_and_for_unknown():
    assert sentence("housing_safe", {"housing_safe": 0.0}, "zh") == "住房不安全"
    assert sentence("housing_safe", {"housing_safe": 1.0}, "en") == "the house is safe"
    assert "未知" in sentence("housing_safe", {"housing_safe": float("nan")}, "zh")


def test_top_reasons_are_the_largest_upward_contributions():
    c = _contrib(medical_to_income=0.5, wage_share=0.2, pc_income_to_line=-0.9)
    out = top_reasons(
        {"household_size": 2, "medical_expense": 9000.0}, {"medical_to_income": 0.5}, c, k=5
    )
    assert [r["feature"] for r in out] == ["medical_to_income", "wage_share"]
    assert all(r["text_zh"] and r["text_en"] for r in out)


def test_every_reason_renders_in_both_languages_without_placeholders():
    ctx = {name: 0.5 for name in FEATURE_NAMES}
    ctx.update({"household_size": 3, "income_wage": 1000.0, "medical_expense": 10.0})
    full = reason_context(ctx, {name: 0.5 for name in FEATURE_NAMES})
    for name in REASONS:
        for lang in ("zh", "en"):
            text = sentence(name, full, lang)
            assert "{" not in text and text.strip(), (name, lang, text)
