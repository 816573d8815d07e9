"""The safety net: statuses decided at the start of the year, and the year's transfers.

``statuses`` applies the means test on last year's income (dibao, tekun) and
decides medical insurance and school dropout; ``transfers`` adds up pensions,
money from relatives, subsidies, support for formerly poor households, dibao and
tekun payments and disaster relief.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .constants import F32
from .demography import Members
from .health import Illness
from .state import State, count, normal_where
from .world import World
from .year import Year


@dataclass(frozen=True)
class Statuses:
    """Who can work, and the statuses decided at the start of the year (R,)."""

    labour: np.ndarray  # (R, S) members able to work
    n_labour: np.ndarray
    n_disabled: np.ndarray
    dibao: np.ndarray
    tekun: np.ndarray
    aided: np.ndarray  # formerly poor, dibao or tekun: medical assistance, student aid
    insured: np.ndarray
    dropout: np.ndarray


def statuses(s: State, y: Year, m: Members, ill: Illness) -> Statuses:
    """Labour, dibao and tekun (means test on last year's income), insurance and dropout."""
    dl, uh, sev = y.dl, y.uh, y.sev
    fpoor, minority = s.fpoor, s.minority
    occ, age, school, disabled = m.occ, m.age, m.school, m.disabled
    alive, size, head_edu = m.alive, m.size, m.head_edu
    n_chronic = ill.n_chronic

    # ---- statuses decided at the start of the year (means test on last year's income)
    labour = occ & (age >= 16) & (age <= 64) & ~school & ~disabled
    n_labour = count(labour)
    n_disabled = count(disabled)
    vulnerable = (n_labour == 0) | (n_chronic > 0) | (n_disabled > 0)
    assessed = s.assessed_pc
    # formerly poor households are screened against a higher bar and leave gradually
    bar = dl * np.where(fpoor, F32(1.3), F32(1.0))
    p_in = np.where(assessed < bar, np.where(vulnerable, 0.40, 0.12), 0.002)
    p_out = 0.05 + 0.25 * (assessed > 1.5 * bar) + 0.10 * (assessed > bar)
    dibao = alive & np.where(s.dibao, uh[:, 3] >= p_out, uh[:, 3] < p_in)
    frail_only = count(occ & (age < 60) & ~disabled) == 0
    tk_elig = alive & (n_labour == 0) & (size <= 2) & frail_only & (assessed < 1.2 * dl)
    tekun = tk_elig & (s.tekun | (uh[:, 4] < 0.06))
    dibao &= ~tekun
    aided = fpoor | dibao | tekun
    insured = np.where(s.insured, uh[:, 5] >= np.where(aided, 0.002, 0.008), uh[:, 5] < 0.5)
    has_teen = count(occ & (age >= 12) & (age <= 15)) > 0
    p_drop = (
        0.004 * (1 + fpoor) * (1 + 0.6 * minority) * (1 + (head_edu < 6)) * (1 + 2 * (sev > 0.3))
    )
    dropout = has_teen & np.where(s.dropout, uh[:, 6] < 0.55, uh[:, 6] < p_drop)
    return Statuses(
        labour=labour,
        n_labour=n_labour,
        n_disabled=n_disabled,
        dibao=dibao,
        tekun=tekun,
        aided=aided,
        insured=insured,
        dropout=dropout,
    )


@dataclass(frozen=True)
class Transfers:
    """The year's transfer income and the dibao and tekun payments in it (R,)."""

    income_transfer: np.ndarray
    dibao_amt: np.ndarray
    tekun_amt: np.ndarray


def transfers(
    s: State,
    w: World,
    y: Year,
    m: Members,
    st: Statuses,
    damage: np.ndarray,
    rng: np.random.Generator,
) -> Transfers:
    """Pensions, private and public transfers; ``damage`` is each household's disaster damage."""
    c, yi, cl, dl = y.c, y.yi, y.cl, y.dl
    wage_idx, price_idx, uh = y.wage_idx, y.price_idx, y.uh
    fpoor = s.fpoor
    assessed = s.assessed_pc
    occ, age, size = m.occ, m.age, m.size
    n_labour, n_disabled, dibao, tekun = st.n_labour, st.n_disabled, st.dibao, st.tekun

    # ---- transfers
    n60 = count(occ & (age >= 60))
    pension = n60 * 1260 * w.pension_level[c] * w.pension_index[yi]
    elderly_only = (n_labour == 0) & (n60 > 0)
    gets = uh[:, 12] < np.where(elderly_only, 0.9, 0.4)  # money from relatives
    private = (
        gets
        * np.where(elderly_only, 5000 * n60, 2000)
        * wage_idx
        * np.sqrt(cl)
        * np.exp(0.6 * normal_where(rng, gets) - 0.18)
    )
    dib_pc = np.clip(dl - assessed, 0.35 * dl, 0.85 * dl)
    dibao_amt = dibao * dib_pc * size
    tekun_amt = tekun * 1.3 * dl * size
    relief = (damage > 0.15) * 1500 * damage * size * price_idx
    # ecological compensation and other per-person subsidies in poorer counties
    eco = np.where(cl < 0.9, F32(300), F32(0)) * size * price_idx
    income_transfer = (
        pension
        + private
        + s.land * 90
        + n_disabled * 1300 * price_idx
        + fpoor * w.fp_support[yi]
        + dibao_amt
        + tekun_amt
        + relief
        + eco
    )
    return Transfers(income_transfer=income_transfer, dibao_amt=dibao_amt, tekun_amt=tekun_amt)
