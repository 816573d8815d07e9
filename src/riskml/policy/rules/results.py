"""RuleResults: the rules evaluated over a batch, as arrays, with per-row details on demand."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from riskml.policy.risk_types import RISK_TYPE_CODES
from riskml.policy.rules.context import Context
from riskml.policy.rules.format import render_message
from riskml.policy.rules.model import Rule
from riskml.policy.rules.values import base_inputs

__all__ = ["RuleResults"]


class RuleResults:
    """Rules evaluated over a batch of records: arrays for all rows, details per row on demand.

    Arrays are rows × rules in the order of ``rule_ids``: ``fired_matrix``,
    ``evaluated_matrix`` (outcome decided), ``active_matrix`` (rule in force
    for the row's province and date), ``values``/``thresholds`` (the rule's
    measured condition; NaN when missing; +inf for a share with income ≤ 0),
    ``contributions`` (severity per rule). ``flagged`` and ``severity`` are per row.
    """

    def __init__(
        self,
        index: pd.Index,
        rules: tuple[Rule, ...],
        version: str,
        fired: np.ndarray,
        evaluated: np.ndarray,
        active: np.ndarray,
        values: np.ndarray,
        thresholds: np.ndarray,
        contributions: np.ndarray,
        risk_type_idx: list[int | np.ndarray],
        factors: list[np.ndarray | float],
        ctx: Context,
    ):
        self.index = index
        self.rules = rules
        self.rule_ids: tuple[str, ...] = tuple(r.id for r in rules)
        self.ruleset_version = version
        self.fired_matrix = fired
        self.evaluated_matrix = evaluated
        self.active_matrix = active
        self.values = values
        self.thresholds = thresholds
        self.contributions = contributions
        self.flagged: np.ndarray = fired.any(axis=1) if fired.size else np.zeros(len(index), bool)
        self.severity: np.ndarray = (
            contributions.sum(axis=1) if contributions.size else np.zeros(len(index))
        )
        self._rt = risk_type_idx
        self._factors = factors
        self._ctx = ctx

    def __len__(self) -> int:
        return len(self.index)

    # ------------------------------------------------------------ per row
    def _risk_type(self, i: int, j: int) -> str:
        rt = self._rt[j]
        return RISK_TYPE_CODES[int(rt if isinstance(rt, int) else rt[i])]

    def _order(self, i: int) -> list[int]:
        idx = np.flatnonzero(self.fired_matrix[i])
        return sorted(
            idx.tolist(),
            key=lambda j: (self.rules[j].level != "red", -self.contributions[i, j], j),
        )

    def for_row(self, i: int) -> list[dict[str, Any]]:
        """Fired rules of row ``i`` (position), red first then by severity.

        Each: id, risk_type, level, message_zh, message_en, value, threshold.
        ``value`` is None when a share is undefined (income ≤ 0, shown so in the
        messages); for flag conditions value is 1.0/0.0 and threshold the flag
        value that fires.
        """
        out = []
        for j in self._order(i):
            r = self.rules[j]
            v = float(self.values[i, j])
            t = float(self.thresholds[i, j])
            fac = self._factors[j]
            f = float(fac if isinstance(fac, float) else fac[i])
            out.append(
                {
                    "id": r.id,
                    "risk_type": self._risk_type(i, j),
                    "level": r.level,
                    "message_zh": self._render(r.message_zh, "zh", r, i, v, t, f),
                    "message_en": self._render(r.message_en, "en", r, i, v, t, f),
                    "value": v if math.isfinite(v) else None,
                    "threshold": t if math.isfinite(t) else None,
                }
            )
        return out

    def _render(self, tmpl: str, lang: str, r: Rule, i: int, v: float, t: float, f: float) -> str:
        def field_value(name: str) -> tuple[float, bool]:
            arr, known = self._ctx.get(name)
            return float(arr[i]), bool(known[i])

        return render_message(tmpl, lang, r.condition.kind, v, t, f, field_value)

    def not_evaluated(self, i: int) -> list[str]:
        """Ids of rules in force for row ``i`` whose outcome is unknown for missing inputs."""
        mask = self.active_matrix[i] & ~self.evaluated_matrix[i]
        return [self.rule_ids[j] for j in np.flatnonzero(mask)]

    def missing_inputs(self, i: int) -> dict[str, list[str]]:
        """For each not-evaluated rule of row ``i``, the inputs that are missing."""
        out: dict[str, list[str]] = {}
        for rid in self.not_evaluated(i):
            r = self.rules[self.rule_ids.index(rid)]
            missing: list[str] = []
            for name in dict.fromkeys(c for leaf in r.leaves() for c in leaf.inputs()):
                if self._ctx.get(name)[1][i]:
                    continue
                base = [b for b in base_inputs(name) if not self._ctx.get(b)[1][i]]
                # a derived value can be unknown with all inputs present (income_drop
                # when the previous net income is ≤ 0): name the value itself then
                missing.extend(base or [name])
            out[rid] = list(dict.fromkeys(missing))
        return out

    def risk_types(self, i: int) -> list[str]:
        """Risk types of the fired rules, red first then by severity, without repeats."""
        return list(dict.fromkeys(self._risk_type(i, j) for j in self._order(i)))

    # ------------------------------------------------------------ frames
    def fired_frame(self) -> pd.DataFrame:
        """Rows × rules booleans, indexed like the input."""
        return pd.DataFrame(self.fired_matrix, index=self.index, columns=list(self.rule_ids))

    def summary(self) -> pd.DataFrame:
        """Per rule: records in force, evaluated, not evaluated, fired, and the fired share."""
        active = self.active_matrix.sum(axis=0)
        evald = (self.active_matrix & self.evaluated_matrix).sum(axis=0)
        fired = self.fired_matrix.sum(axis=0)
        return pd.DataFrame(
            {
                "rule": list(self.rule_ids),
                "level": [r.level for r in self.rules],
                "in_force": active,
                "evaluated": evald,
                "not_evaluated": active - evald,
                "fired": fired,
                "fired_share": np.divide(fired, evald, out=np.zeros(len(fired)), where=evald > 0),
            }
        )
