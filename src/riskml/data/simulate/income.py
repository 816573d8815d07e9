"""Earned income this year: work and wages, farming, a non-farm business and property.

``work`` decides who works as a migrant (outside the county), locally or in a
public-welfare job, for how many months and at what wage; ``earnings`` gives
operating income (farming plus an occasional business, minus interest on debt)
and property income.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .ages import T_MIG_START, T_WAGE_AGE
from .constants import F32, KIN_SPOUSE
from .demography import Members
from .health import Illness
from .safety_net import Statuses
from .state import ONES, State, count, normal_where
from .world import World
from .year import Year


@dataclass(frozen=True)
class Work:
    """Who works where this year (R, S), and the household's wages and months (R,)."""

    migrant: np.ndarray
    local: np.ndarray
    n_mig: np.ndarray
    pwjob: np.ndarray  # (R,) a public-welfare job
    wage: np.ndarray
    months: np.ndarray


def work(
    s: State,
    w: World,
    y: Year,
    m: Members,
    ill: Illness,
    st: Statuses,
    rng: np.random.Generator,
) -> Work:
    """Migrant, local and public-welfare work: months worked and the wage income they bring."""
    R, S = y.rows, y.slots
    c, cl, wage_idx, price_idx = y.c, y.cl, y.wage_idx, y.price_idx
    s_wage, s_months, s_ret, uh, zh = y.s_wage, y.s_months, y.s_ret, y.uh, y.zh
    ability, fpoor = s.ability, s.fpoor
    occ, age, ai, kin, chronic = m.occ, m.age, m.ai, m.kin, m.chronic
    migrant_prev, wage_mult, head_edu, size = m.migrant_prev, m.wage_mult, m.head_edu, m.size
    cat, patient = ill.cat, ill.patient
    labour, n_labour = st.labour, st.n_labour

    # ---- work: migrant (outside the county), local, public-welfare jobs
    u = rng.random((R, S), dtype=F32)
    cand = labour & (age <= 57)
    young_kids = count(occ & (age < 6)) > 0
    p_stay = (0.90 - s_ret)[:, None]
    start_hh = (
        np.exp(0.3 * ability + 0.08 * (head_edu - 8))
        * (1.5 - 0.6 * cl)
        * w.mig_factor[c]
        * (1 - 2 * s_ret)
    )
    p_start = np.take(T_MIG_START, ai) * start_hh[:, None]
    p_start[(kin <= KIN_SPOUSE) & young_kids[:, None]] *= 0.5  # parents of small children
    p_mig = np.where(migrant_prev, p_stay, p_start)
    p_mig[chronic] *= 0.3  # an ill worker rarely starts, and often stops, migrant work
    p_mig[~cand] = 0
    np.minimum(p_mig, 0.95, out=p_mig)
    migrant = cand & (u < p_mig)
    ur = u / np.maximum(p_mig, 1e-6)  # uniform again, given migrant
    v = (u - p_mig) / (1 - p_mig)  # uniform again, given not
    p_loc = np.clip(0.76 + 0.3 * (cl - 0.6) + 0.1 * ability, 0.3, 0.95)[:, None] * np.where(
        age >= 55, F32(0.8), F32(1)
    )
    local = labour & ~migrant & (v < p_loc)
    # months of paid work: migrants lose months in a shock year; local work is seasonal
    months_each = np.where(
        migrant,
        np.clip(12 - 5 * ur * ur - 2 * s_months[:, None] * (1 - ur), 0.5, 12),
        np.where(local, 5 + 7 * v / p_loc, F32(0)),
    )
    months_each[chronic] *= 0.65
    if cat.any():  # caring for a seriously ill member, or being one
        months_each[cat] *= 0.85
        months_each[patient] *= 0.35
    hh_wage = np.exp(0.1 * zh[:, 3]) * wage_idx
    migrant_wage = 3100 * hh_wage * np.exp(0.04 * (head_edu - 8) + 0.18 * ability) * (1 - s_wage)
    local_wage = 2700 * hh_wage * cl**0.4 * np.exp(0.08 * ability)
    monthly = (
        np.where(migrant, migrant_wage[:, None] * np.take(T_WAGE_AGE, ai), local_wage[:, None])
        * wage_mult
    )
    n_mig = count(migrant)
    pw_elig = fpoor & (n_mig == 0) & (n_labour + count(occ & (age >= 65) & (age < 70)) > 0)
    pwjob = pw_elig & np.where(s.pwjob, uh[:, 7] >= 0.25, uh[:, 7] < 0.06)
    wage = np.einsum("ij,ij->i", months_each, monthly) + pwjob * 4800 * price_idx
    months = np.minimum(months_each @ ONES[:S] + 10 * pwjob, 12 * size)
    return Work(migrant=migrant, local=local, n_mig=n_mig, pwjob=pwjob, wage=wage, months=months)


@dataclass(frozen=True)
class Earnings:
    """Farm output, disaster damage, business and property this year (R,)."""

    farm_z: np.ndarray  # the farm productivity state, carried to next year
    gross_exp: np.ndarray  # expected gross farm output
    damage: np.ndarray  # share of farm output and assets the disaster destroys
    business: np.ndarray
    income_business: np.ndarray
    prop: np.ndarray
    income_property: np.ndarray


def earnings(
    s: State,
    w: World,
    y: Year,
    m: Members,
    st: Statuses,
    wk: Work,
    rng: np.random.Generator,
) -> Earnings:
    """Operating income (farming, business, minus interest on debt) and property income."""
    R = y.rows
    yi, cl, wage_idx, price_idx = y.yi, y.cl, y.wage_idx, y.price_idx
    s_wage, sev, uh, zh = y.s_wage, y.sev, y.uh, y.zh
    ability, fpoor = s.ability, s.fpoor
    occ, age, disabled, chronic, alive = m.occ, m.age, m.disabled, m.chronic, m.alive
    labour, n_labour = st.labour, st.n_labour
    migrant, local, n_mig = wk.migrant, wk.local, wk.n_mig

    # ---- farming and business
    helper = occ & (age >= 65) & (age <= 79) & ~disabled & ~chronic
    at_home = labour & ~migrant
    # farm labour: full time at home, part time beside local work, elderly helpers
    n_local = count(local)
    farm_lab = (
        (n_labour - n_mig - n_local)
        + 0.4 * n_local
        - 0.4 * count(at_home & chronic)
        + 0.5 * count(helper)
        + 0.1 * n_mig
    )
    farm_z = (0.6 * s.farm_z + 0.24 * zh[:, 0]).astype(F32)
    gross_exp = (
        (s.land * 1800 + np.minimum(farm_lab, 3) * 11000)
        * w.farm_index[yi]
        * np.sqrt(cl)
        * np.exp(0.15 * ability + farm_z)
    )
    damage = sev * uh[:, 8]
    gross = gross_exp * np.exp(0.3 * zh[:, 1] - 0.045) * (1 - 0.85 * damage)
    farm_net = gross - 0.5 * gross_exp
    business = alive & np.where(
        s.business, uh[:, 9] >= 0.10, uh[:, 9] < 0.012 * np.exp(0.3 * ability) * cl
    )
    fail = uh[:, 10] < 0.07 + 0.5 * s_wage
    b_scale = 22000 * wage_idx * cl * np.exp(0.3 * ability)
    b_net = np.where(
        fail,
        -b_scale * (0.3 + 0.7 * rng.random(R, dtype=F32)),
        b_scale * np.exp(0.45 * normal_where(rng, business) - 0.1),
    )
    income_business = farm_net + business * b_net - 0.04 * s.debt
    prop = np.where(uh[:, 11] < 0.03, ~s.prop, s.prop)
    income_property = (
        prop * 2500 * wage_idx * cl * np.exp(0.8 * normal_where(rng, prop) - 0.32)
        + fpoor * 300 * price_idx
    )
    return Earnings(
        farm_z=farm_z,
        gross_exp=gross_exp,
        damage=damage,
        business=business,
        income_business=income_business,
        prop=prop,
        income_property=income_property,
    )
