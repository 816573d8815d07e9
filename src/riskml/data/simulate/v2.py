"""Simulator version 2: a harder, more honest world built on version 1's yearly step.

Version 1 (``step``) moves the households one year on; version 2 then changes
that year in four ways that records cannot show directly:

* **Persistent earnings.** Wages and positive operating income are multiplied by
  ``exp(b × resilience + d_t + e_t)``: a household term (``resilience``, an
  unobserved trait), an AR(1) deviation ``d_t = rho × d_{t-1} + innovation``
  that decays slowly (rho 0.7) and a transitory shock ``e_t``, centred to a
  mean multiplier of ``exp(earnings_shift)``. This year's income is a noisy
  signal of next year's.
* **Unobserved heterogeneity.** ``resilience`` (correlated about 0.3 with
  version 1's latent ability) also lowers out-of-pocket medical costs and losses
  (shock exposure). No record field carries it.
* **Support that follows detection.** After each year's record a detection
  process (``detection.detect``: a noisy rule score on the reported record
  before values go missing at random; the top ``capacity`` share of each chunk)
  marks households; a detected household is supported the next year (income
  support per member, cover of medical costs and losses), which lowers its
  risk. The panel's ``detected`` column says who was detected on each record
  (it is not a model feature: the model does not know the system's past
  decisions unless a feature is built for it).
* **Measurement error.** The record's income fields are the true incomes times a
  lognormal error, less for under-reporting households, coarsely rounded by
  heaping households (``reporting.report_incomes``).

The label ``at_risk_next`` is computed from the records by ``label_panel`` as in
version 1, so it is what the mechanism observes: *reported* spend-adjusted
per-capita income below the line in the next record. ``oracle_p`` is the
probability of that label given the full state at scoring time (version 1's
latent state, resilience, the deviation, the reporting types and whether the
household is supported next year), by re-simulating the next year, its
reporting errors included, ``oracle_draws`` times.

The debt and means-test income the next year sees are adjusted by the change in
earnings and costs version 2 makes (approximately: version 1's borrowing and
repayment rules are not rerun). Random streams are separate from version 1's, so
the two versions' panels for one seed are different draws of similar worlds.

With the defaults the base rate of ``at_risk_next`` is about 12–13% (version 1:
about 8–9%), 8% of households are detected each year, and on 30,000 households ×
7 years (bench/bench_simulators.py) the oracle reaches a test-period ROC AUC of
about 0.83 against 0.72 for the naive income-to-line score, and the default model
stays about 0.035 below the oracle (version 1: 0.018).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .constants import F32, MISSING_RATES, ORACLE_BATCH_ROWS, SLOTS
from .detection import detect
from .latent import StateV2, V2Params, init_latent
from .reporting import report_incomes
from .state import init_state
from .step import step
from .world import World

# spawn keys of version 2's random streams (version 1 uses 1, 2 and 3)
_STREAM_MAIN, _STREAM_ORACLE, _STREAM_MISSING = 11, 12, 13


def stream(seed: int, kind: int, chunk: int) -> np.random.Generator:
    """The random stream ``kind`` of chunk ``chunk`` for ``seed``."""
    return np.random.Generator(
        np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(kind, chunk)))
    )


def step_v2(
    s: StateV2, w: World, year: int, sev: np.ndarray, rng: np.random.Generator, p: V2Params
) -> tuple[StateV2, dict[str, np.ndarray]]:
    """Move every household one year on in version 2; the new state and the year's reported record.

    ``s.lat.supported`` (detected on last year's record) applies this year; the
    returned state carries it unchanged (``advance`` sets the next one).
    """
    new, rec = step(s.base, w, year, sev, rng)
    lat = s.lat
    R = lat.resilience.shape[0]
    yi = year - w.first_year
    z = rng.standard_normal((R, 2), dtype=F32)
    deviation = (p.rho * lat.deviation + p.deviation_sd * z[:, 0]).astype(F32)
    mult = np.exp(
        p.resilience_income * lat.resilience
        + deviation
        + p.transitory_sd * z[:, 1]
        + (p.earnings_shift - 0.5 * p.log_var)
    )
    exposure = np.exp(-p.resilience_exposure * lat.resilience - 0.5 * p.resilience_exposure**2)
    sup = lat.supported & new.alive
    size = rec["household_size"]
    line = w.mon[yi, new.county]

    wage = np.round(rec["income_wage"] * mult)
    ib = rec["income_business"]
    business = np.round(np.where(ib > 0, ib * mult, ib))
    support = np.round(sup * (p.support_pc_line * line * size))
    med = np.round(rec["medical_expense"] * exposure * np.where(sup, 1 - p.medical_cover, 1))
    loss = np.round(rec["disaster_loss"] * exposure * np.where(sup, 1 - p.loss_cover, 1))
    d_earn = (wage - rec["income_wage"]) + (business - ib)
    d_med = med - rec["medical_expense"]
    d_loss = loss - rec["disaster_loss"]
    # what version 1's means test and debt rules would have seen with these changes
    # (support, like dibao, is left out of the means test)
    assessed_pc = (new.assessed_pc + (d_earn - 0.5 * d_med) / np.maximum(size, 1)).astype(F32)
    debt = np.round(
        np.maximum(new.debt - 0.3 * (d_earn + support - d_med - 0.5 * d_loss), 0), -2
    ).astype(F32)

    true = dict(rec)
    true.update(
        income_wage=wage,
        income_business=business,
        income_transfer=rec["income_transfer"] + support,
        medical_expense=med,
        disaster_loss=loss,
        debt=debt,
    )
    reported = {**true, **report_incomes(true, lat, p, rng)}
    new_lat = replace(lat, deviation=deviation)
    return StateV2(replace(new, assessed_pc=assessed_pc, debt=debt), new_lat), reported


def advance(
    s: StateV2, w: World, year: int, sev: np.ndarray, rng: np.random.Generator, p: V2Params
) -> tuple[StateV2, dict[str, np.ndarray], np.ndarray]:
    """One real year: ``step_v2``, then detection on its record (who is supported next year)."""
    s, rec = step_v2(s, w, year, sev, rng, p)
    yi = year - w.first_year
    detected = detect(rec, w.mon[yi, s.base.county], s.base.alive, p, rng)
    return StateV2(s.base, replace(s.lat, supported=detected)), rec, detected


def reported_at_risk(rec: dict[str, np.ndarray], line: np.ndarray) -> np.ndarray:
    """The label's rule on a record: spend-adjusted per-capita (reported) income < line."""
    net = (
        rec["income_wage"]
        + rec["income_business"]
        + rec["income_property"]
        + rec["income_transfer"]
    )
    rigid = rec["medical_expense"] + rec["education_expense"]
    return (net - rigid) / np.maximum(rec["household_size"], 1) < line


def oracle_v2(
    s: StateV2, w: World, year: int, draws: int, rng: np.random.Generator, p: V2Params
) -> np.ndarray:
    """P(at risk in ``year`` | full state now), re-simulating ``year`` ``draws`` times per household.

    As version 1's oracle (batches of about ``ORACLE_BATCH_ROWS`` households ×
    draws, grouped by the highest occupied member slot), with ``step_v2``: the
    draws cover next year's events, earnings shocks and reporting errors.
    """
    n = s.base.alive.shape[0]
    yi = year - w.first_year
    batch = max(1, ORACLE_BATCH_ROWS // draws)
    out = np.empty(n)
    occ = s.base.age >= 0
    last = np.where(occ.any(axis=1), SLOTS - 1 - np.argmax(occ[:, ::-1], axis=1), 0)
    order = np.argsort(last, kind="stable")
    for a in range(0, n, batch):
        idx = order[a : a + batch]
        width = min(SLOTS, int(last[idx].max()) + 2)
        m = idx.size
        rep = s.take(idx, width).repeat(draws)
        draw = np.tile(np.arange(draws), m)
        sev_draws = w.random_severity(rng, (draws, len(w.codes)))
        county = rep.base.county
        sev = np.maximum(sev_draws[draw, county], w.sched[yi, county])
        nxt, rec = step_v2(rep, w, year, sev, rng, p)
        risk = reported_at_risk(rec, w.mon[yi, county]) & nxt.base.alive
        k = risk.reshape(m, draws).sum(axis=1)
        alive = nxt.base.alive.reshape(m, draws).sum(axis=1)
        out[idx] = np.where(alive > 0, k / np.maximum(alive, 1), 0.0)
    return out


def simulate_chunk_v2(
    chunk: int,
    n: int,
    w: World,
    seed: int,
    start_year: int,
    years: int,
    draws: int,
    p: V2Params,
) -> dict[str, np.ndarray]:
    """Simulate ``n`` households in version 2; columns as version 1's chunks, plus ``detected``."""
    rng = stream(seed, _STREAM_MAIN, chunk)
    orng = stream(seed, _STREAM_ORACLE, chunk)
    base = init_state(n, w, rng)
    s = StateV2(base, init_latent(base, p, rng))
    for year in range(w.first_year + 1, start_year):  # burn-in: detection and support run too
        s, _, _ = advance(s, w, year, w.sev[year - w.first_year, s.base.county], rng, p)
    recs: list[dict[str, np.ndarray]] = []
    for k in range(years):
        year = start_year + k
        s, rec, detected = advance(s, w, year, w.sev[year - w.first_year, s.base.county], rng, p)
        rec["detected"] = detected
        rec["_alive"] = s.base.alive.copy()
        rec["_year"] = np.full(n, year)
        rec["_village"] = s.base.village
        rec["_county"] = s.base.county
        rec["oracle_p"] = (
            oracle_v2(s, w, year + 1, draws, orng, p) if draws > 0 else np.full(n, np.nan)
        )
        recs.append(rec)
    out = {key: np.stack([r[key] for r in recs], axis=1).reshape(-1) for key in recs[0]}
    out["_household"] = np.repeat(np.arange(n), years)
    keep = out.pop("_alive")
    out = {key: v[keep] for key, v in out.items()}
    mrng = stream(seed, _STREAM_MISSING, chunk)
    m = len(out["_year"])
    for name, rate in MISSING_RATES.items():
        col = out[name].astype(np.float64)
        col[mrng.random(m) < rate] = np.nan
        out[name] = col
    return out
