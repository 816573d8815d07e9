"""Age tables the yearly step reads: death hazards, illness and disability onset, migration
starts, the wage profile and routine medical costs (index = age + 1; index 0: empty slot)."""

from __future__ import annotations

import numpy as np

from .constants import F32

_AGES = np.arange(-1, 129, dtype=np.float64)  # table index = age + 1 (index 0: empty slot)
_T_DEATH = np.where(_AGES >= 0, np.exp(-10.9 + 0.103 * _AGES), 0)
_T_DEATH[_AGES >= 104] = 50.0  # nobody passes 104
# death hazard by (chronic illness, age): index chronic * N_AGES + age + 1
N_AGES = len(_AGES)
T_DEATH2 = np.concatenate([_T_DEATH, 1.8 * _T_DEATH]).astype(F32)
T_CHRONIC = np.minimum(0.010 * np.exp(0.045 * (_AGES - 50)), 0.25).astype(F32)
# disability onset when a member's health draw exceeds 1 - p (disjoint from illness draws)
T_DISABLE_ABOVE = np.where(
    _AGES >= 0, 1 - np.minimum(0.0015 * np.exp(0.035 * (_AGES - 40)), 0.05), 2
).astype(F32)
T_MIG_START = np.where(_AGES <= 35, 0.16, 0.06).astype(F32)
T_WAGE_AGE = np.exp(-0.0004 * (_AGES - 36) ** 2).astype(F32)
T_MEDICAL = np.where(_AGES >= 0, 120 + 9 * _AGES, 0).astype(F32)
