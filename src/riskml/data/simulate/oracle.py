"""The oracle: P(at risk next year | full state now), by re-simulating next year many times."""

from __future__ import annotations

from dataclasses import fields

import numpy as np

from .constants import ORACLE_BATCH_ROWS, SLOTS
from .state import State
from .step import step
from .world import World


def _at_risk(record: dict[str, np.ndarray], line: np.ndarray) -> np.ndarray:
    """The label's rule on a simulated record: spend-adjusted per-capita income < line."""
    net = (
        record["income_wage"]
        + record["income_business"]
        + record["income_property"]
        + record["income_transfer"]
    )
    rigid = record["medical_expense"] + record["education_expense"]
    return (net - rigid) / np.maximum(record["household_size"], 1) < line


def oracle(s: State, w: World, year: int, draws: int, rng: np.random.Generator) -> np.ndarray:
    """P(at risk in ``year`` | state now), by re-simulating ``year`` ``draws`` times per household.

    Households are re-simulated in batches of about ``ORACLE_BATCH_ROWS`` rows
    (households × draws) so the working arrays stay in cache.
    """
    n = s.alive.shape[0]
    yi = year - w.first_year
    batch = max(1, ORACLE_BATCH_ROWS // draws)
    out = np.empty(n)
    # Batches of households with similar highest occupied member slot, simulated over
    # that many slots plus one free slot (room for this year's birth or marriage):
    # the same model at about half the cost of all SLOTS.
    occ = s.age >= 0
    last = np.where(occ.any(axis=1), SLOTS - 1 - np.argmax(occ[:, ::-1], axis=1), 0)
    order = np.argsort(last, kind="stable")
    for a in range(0, n, batch):
        idx = order[a : a + batch]
        width = min(SLOTS, int(last[idx].max()) + 2)
        part = State(
            **{
                f.name: (v[idx, :width] if v.ndim == 2 else v[idx])
                for f in fields(s)
                for v in (getattr(s, f.name),)
            }
        )
        m = idx.size
        rep = part.repeat(draws)
        draw = np.tile(np.arange(draws), m)
        sev_draws = w.random_severity(rng, (draws, len(w.codes)))
        sev = np.maximum(sev_draws[draw, rep.county], w.sched[yi, rep.county])
        nxt, rec = step(rep, w, year, sev, rng)
        risk = _at_risk(rec, w.mon[yi, rep.county]) & nxt.alive
        k = risk.reshape(m, draws).sum(axis=1)
        alive = nxt.alive.reshape(m, draws).sum(axis=1)
        out[idx] = np.where(alive > 0, k / np.maximum(alive, 1), 0.0)
    return out
