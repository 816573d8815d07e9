"""Simulator version 2: the detection process that decides who is supported next year.

Inside the simulated world a monitoring system screens every year's (reported)
records with a simple rule score, made noisy by what cadres do and do not know,
and detects the highest-scoring ``capacity`` share of the households of each
chunk (about a township). Detected households are supported the next year
(see ``v2.step_v2``), so the label depends on the system itself.

The rule score mirrors the mechanism's main warning rules on the record: how far
spend-adjusted per-capita income is below 1.5 × the monitoring line, plus
chronic illness, disability, no labour and a large loss. (The policy rules
package sits above the data layer and cannot be called from here.)
"""

from __future__ import annotations

import numpy as np

from .constants import F32
from .latent import V2Params


def rule_score(rec: dict[str, np.ndarray], line: np.ndarray) -> np.ndarray:
    """A record's warning score (higher: more at risk), from its reported fields."""
    net = (
        rec["income_wage"]
        + rec["income_business"]
        + rec["income_property"]
        + rec["income_transfer"]
    )
    size = np.maximum(rec["household_size"], 1)
    adj = (net - rec["medical_expense"] - rec["education_expense"]) / size / line
    return (
        np.maximum(0, 1.5 - adj)
        + 0.25 * (rec["chronic_ill_count"] > 0)
        + 0.25 * (rec["disabled_count"] > 0)
        + 0.2 * (rec["labor_count"] == 0)
        + 0.3 * (rec["disaster_loss"] > 0.2 * np.maximum(net, 1))
    ).astype(F32)


def detect(
    rec: dict[str, np.ndarray],
    line: np.ndarray,
    alive: np.ndarray,
    p: V2Params,
    rng: np.random.Generator,
) -> np.ndarray:
    """Detected households (bool, R): the top ``capacity`` share of living ones by noisy score.

    Draws one normal per row. Only households with a positive noisy score can be
    detected, so a capacity larger than the need is not filled.
    """
    R = alive.shape[0]
    noisy = rule_score(rec, line) + p.detection_noise * rng.standard_normal(R, dtype=F32)
    noisy = np.where(alive, noisy, -np.inf)
    k = min(int(p.capacity * int(alive.sum())), R)
    out = np.zeros(R, bool)
    if k <= 0:
        return out
    top = np.argpartition(-noisy, k - 1)[:k]
    out[top] = noisy[top] > 0
    return out
