"""The recommended action of an asset (riskml.assets.actions.recommend): each action from the
rules fired and the top reasons, in the documented order of precedence."""

from __future__ import annotations

import pytest

from riskml.assets.actions import ACTIONS, recommend


@pytest.mark.parametrize(
    ("status", "category", "rules", "reasons", "warned", "action"),
    [
        ("idle", "operating", ["idle_too_long", "low_return"], [], True, "dispose"),
        ("idle", "operating", [], ["damage_share", "months_idle"], True, "dispose"),
        ("idle", "operating", ["idle_too_long"], ["months_idle"], True, "revive"),
        ("operating", "operating", ["contract_expired"], [], False, "re_contract"),
        ("operating", "operating", [], ["contract_years_left"], True, "re_contract"),
        ("operating", "operating", [], ["contract_years_left"], False, "keep"),
        ("operating", "public_welfare", ["public_welfare_unmanaged"], [], False, "assign_caretaker"),
        ("operating", "public_welfare", [], ["has_caretaker"], True, "assign_caretaker"),
        ("low_efficiency", "operating", [], [], False, "revive"),
        ("operating", "operating", ["low_return"], [], False, "revive"),
        ("operating", "operating", [], ["return_rate"], True, "revive"),
        ("operating", "operating", [], [], False, "keep"),
        ("disposed", "operating", ["low_return"], [], True, "keep"),
    ],
)  # fmt: skip
def test_each_action(status, category, rules, reasons, warned, action):
    got = recommend(status, category, rules, reasons, warned)
    assert got.action == action
    d = got.as_dict()
    assert d["text_zh"] == ACTIONS[action][0] and d["why_zh"] and d["why_en"]
