"""The recommended action for an assistance asset: a pure function of the rules fired and the top reasons.

``recommend(status, category, rules, reasons)`` maps what the rules (riskml.assets.rules) fired
and the features behind the model's top reasons (riskml.assets.reasons) to one of ``ACTIONS``:

- ``dispose`` (处置): idle past the rules' limit while also earning below the floor, or idle and
  its reasons are damage or age: reviving it is unlikely to pay (disposal needs approval);
- ``re_contract`` (重新签订经营合同): an operating contract expired without renewal, or the
  contract's end or run is among the reasons;
- ``assign_caretaker`` (明确管护责任人和经费): a public-welfare asset without a caretaker or a
  maintenance fund, or their absence among the reasons;
- ``revive`` (盘活): idle, low-return, or warned by the model for idle or return reasons;
- ``keep`` (继续运营管护): nothing to act on.

The first that applies wins, in the order above; a disposed asset is ``keep`` (nothing left to
do). Each answer says why, in Chinese and English.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

ACTIONS: dict[str, tuple[str, str]] = {
    "dispose": ("处置（报批后拍卖、转让、转换用途或核销）", "dispose (with approval: auction, transfer, conversion or write-off)"),
    "re_contract": ("重新签订经营合同", "re-contract the operation"),
    "assign_caretaker": ("明确管护责任人和管护经费", "assign a caretaker and a maintenance fund"),
    "revive": ("盘活（自营、出租、入股、合并或提升改造）", "revive (own operation, lease, investment, merger or upgrade)"),
    "keep": ("继续运营管护", "keep operating and maintaining it"),
}  # fmt: skip
CONTRACT_REASONS = frozenset({"contract_years_left", "contract_years_run", "contracted"})
CARE_REASONS = frozenset({"has_caretaker", "fund_share", "maintenance_share"})
WORN_REASONS = frozenset({"damage_share", "age", "book_share", "inspection_code"})
IDLE_REASONS = frozenset({
    "months_idle", "months_idle_lag1", "status_code", "return_rate", "return_rate_lag1",
    "return_rate_lag2", "return_mean3", "return_change",
})  # fmt: skip


@dataclass(frozen=True)
class Action:
    action: str
    why_zh: str
    why_en: str

    @property
    def text_zh(self) -> str:
        return ACTIONS[self.action][0]

    @property
    def text_en(self) -> str:
        return ACTIONS[self.action][1]

    def as_dict(self) -> dict[str, str]:
        return {"action": self.action, "text_zh": self.text_zh, "text_en": self.text_en,
                "why_zh": self.why_zh, "why_en": self.why_en}  # fmt: skip


def recommend(
    status: str, category: str, rules: Sequence[str], reasons: Sequence[str], warned: bool = False
) -> Action:
    """The action for an asset of this status and category, given the ids of the rules fired,
    the features of its top reasons (most important first) and whether the model warns of it."""
    fired, why = set(rules), set(reasons)
    if status == "disposed":
        return Action("keep", "资产已处置", "the asset is disposed")
    idle = status == "idle" or "idle_too_long" in fired
    if idle and ("idle_too_long" in fired and "low_return" in fired or why & WORN_REASONS):
        return Action("dispose", "长期闲置且收益低或已损毁老化", "idle for long with low returns, or damaged or worn")  # fmt: skip
    if "contract_expired" in fired or (warned and why & CONTRACT_REASONS):
        return Action("re_contract", "经营合同到期未续签或临近到期", "the operating contract expired without renewal or ends soon")  # fmt: skip
    if "public_welfare_unmanaged" in fired or (
        warned and category == "public_welfare" and why & CARE_REASONS
    ):
        return Action("assign_caretaker", "公益性资产缺少管护责任人或管护经费", "a public-welfare asset without a caretaker or maintenance fund")  # fmt: skip
    if idle or status == "low_efficiency" or "low_return" in fired or warned:
        return Action("revive", "闲置、低效或收益低于底线", "idle, low efficiency or returns below the floor")  # fmt: skip
    return Action("keep", "未触发规则，模型未预警", "no rule fired and the model does not warn")


__all__ = ["ACTIONS", "Action", "recommend"]
