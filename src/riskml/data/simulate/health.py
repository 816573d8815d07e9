"""Health this year: chronic illness (onset and recovery), disability, catastrophic illness."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .ages import T_CHRONIC, T_DISABLE_ABOVE
from .constants import F32
from .demography import Members
from .state import State, count
from .year import Year


@dataclass(frozen=True)
class Illness:
    """The year's illness by household (R,), and the seriously ill member (R, S)."""

    n_old: np.ndarray  # members 65 and over
    n_chronic: np.ndarray
    cat: np.ndarray  # catastrophic illness in the household
    patient: np.ndarray  # (R, S) the member who has it


def health(s: State, y: Year, m: Members, rng: np.random.Generator) -> tuple[Members, Illness]:
    """Members with this year's chronic illness and disability, and the year's illness."""
    R, S = y.rows, y.slots
    uh = y.uh
    frailty = s.frailty
    occ, age, ai, alive, chronic = m.occ, m.age, m.ai, m.alive, m.chronic

    u = rng.random((R, S), dtype=F32)
    p_on = np.take(T_CHRONIC, ai) * np.exp(0.45 * frailty)[:, None]
    chronic = occ & np.where(chronic, u >= 0.08, u < p_on)
    disabled = m.disabled | (u > np.take(T_DISABLE_ABOVE, ai))
    n_old = count(occ & (age >= 65))
    n_chronic = count(chronic)
    p_cat = 0.012 * np.exp(0.35 * frailty) * (1 + 0.2 * n_old + 0.35 * n_chronic)
    cat = alive & (uh[:, 2] < p_cat)
    patient = np.zeros((R, S), bool)
    if cat.any():
        rows = np.nonzero(cat)[0]
        pick = rng.random((len(rows), S), dtype=F32) + 0.3 * (age[rows] >= 50) + 0.3 * chronic[rows]
        j = np.argmax(np.where(occ[rows], pick, -1), axis=1)
        patient[rows, j] = True
        chronic[rows, j] |= rng.random(rows.size, dtype=F32) < 0.5
        n_chronic = count(chronic)
    return replace(m, chronic=chronic, disabled=disabled), Illness(
        n_old=n_old, n_chronic=n_chronic, cat=cat, patient=patient
    )
