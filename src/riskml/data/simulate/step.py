"""The yearly step: move every household one year on, and take the year's record.

``step`` runs the year's sub-steps in a fixed order, which is the order of the
random draws: the year's household draws (``year.begin_year``), demography and
schooling, health, the safety-net statuses, work, farming and business, transfers,
spending, and debt. Used both for the real panel and (on households × draws) for
the oracle.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .demography import Members, demography, schooling
from .health import Illness, health
from .income import Earnings, Work, earnings, work
from .safety_net import Statuses, statuses, transfers
from .spending import Money, Spending, in_whole_yuan, spending, year_end_debt
from .state import State, count
from .world import World
from .year import Year, begin_year


def step(
    s: State, w: World, year: int, sev: np.ndarray, rng: np.random.Generator
) -> tuple[State, dict[str, np.ndarray]]:
    """Move every household one year on; return the new state and the year's record.

    ``sev`` is the disaster severity each row's county suffers this year.
    Used both for the real panel and (on households × draws) for the oracle.
    """
    y = begin_year(s, w, year, sev, rng)
    m = demography(s, y, rng)
    m = replace(m, school=schooling(s, y, m, rng))
    m, ill = health(s, y, m, rng)
    st = statuses(s, y, m, ill)
    wk = work(s, w, y, m, ill, st, rng)
    e = earnings(s, w, y, m, st, wk, rng)
    tr = transfers(s, w, y, m, st, e.damage, rng)
    sp = spending(s, w, y, m, ill, st, e, rng)
    money = in_whole_yuan(wk, e, tr, sp)
    debt, assessed_pc = year_end_debt(s, y, m, money, tr, rng)
    new = _next_state(s, y, m, st, wk, e, sp, debt, assessed_pc)
    return new, _record(s, m, ill, st, wk, sp, money, debt)


def _next_state(
    s: State,
    y: Year,
    m: Members,
    st: Statuses,
    wk: Work,
    e: Earnings,
    sp: Spending,
    debt: np.ndarray,
    assessed_pc: np.ndarray,
) -> State:
    """The households' state at the end of the year."""
    c = y.c
    ability, frailty, fpoor, minority = s.ability, s.frailty, s.fpoor, s.minority
    alive, head_female, head_edu = m.alive, m.head_female, m.head_edu
    age, kin, chronic, disabled, school = m.age, m.kin, m.chronic, m.disabled, m.school
    wage_mult = m.wage_mult
    dibao, tekun, insured, dropout = st.dibao, st.tekun, st.insured, st.dropout
    migrant, pwjob = wk.migrant, wk.pwjob
    farm_z, business, prop = e.farm_z, e.business, e.prop
    housing_safe, water_safe = sp.housing_safe, sp.water_safe

    new = State(
        county=c,
        village=s.village,
        alive=alive,
        minority=minority,
        fpoor=fpoor,
        relocated=s.relocated,
        head_female=head_female,
        head_edu=head_edu,
        ability=ability,
        frailty=frailty,
        farm_z=farm_z,
        land=s.land,
        business=business,
        prop=prop,
        pwjob=pwjob,
        dibao=dibao,
        tekun=tekun,
        insured=insured,
        housing_safe=housing_safe,
        water_safe=water_safe,
        dropout=dropout,
        debt=debt,
        assessed_pc=assessed_pc,
        age=age,
        kin=kin,
        chronic=chronic,
        disabled=disabled,
        migrant=migrant,
        school=school,
        wage_mult=wage_mult,
    )
    return new


def _record(
    s: State,
    m: Members,
    ill: Illness,
    st: Statuses,
    wk: Work,
    sp: Spending,
    money: Money,
    debt: np.ndarray,
) -> dict[str, np.ndarray]:
    """The year's record: every simulated contract field, by name."""
    fpoor, minority = s.fpoor, s.minority
    occ, age, size, head_age = m.occ, m.age, m.size, m.head_age
    head_female, head_edu = m.head_female, m.head_edu
    n_old, n_chronic = ill.n_old, ill.n_chronic
    n_labour, n_disabled = st.n_labour, st.n_disabled
    dibao, tekun, insured, dropout = st.dibao, st.tekun, st.insured, st.dropout
    n_mig, months = wk.n_mig, wk.months
    n_comp, n_hs, n_col = sp.n_comp, sp.n_hs, sp.n_col
    housing_safe, water_safe = sp.housing_safe, sp.water_safe
    wage, income_business = money.wage, money.income_business
    income_property, income_transfer = money.income_property, money.income_transfer
    med, edu, loss = money.med, money.edu, money.loss

    record = {
        "household_size": size,
        "labor_count": n_labour,
        "elderly_count": n_old,
        "children_count": count(occ & (age < 16)),
        "students_compulsory": n_comp,
        "students_noncompulsory": n_hs + n_col,
        "disabled_count": n_disabled,
        "chronic_ill_count": n_chronic,
        "head_age": head_age.astype(np.int64),
        "head_female": head_female,
        "head_education_years": head_edu,
        "ethnic_minority": minority,
        "formerly_poor": fpoor,
        "dibao": dibao,
        "tekun": tekun,
        "relocated": s.relocated,
        "income_wage": wage,
        "income_business": income_business,
        "income_property": income_property,
        "income_transfer": income_transfer,
        "migrant_workers": n_mig,
        "months_employed": np.round(months, 1),
        "medical_expense": med,
        "education_expense": edu,
        "disaster_loss": loss,
        "debt": debt,
        "medical_insured": insured,
        "housing_safe": housing_safe,
        "water_safe": water_safe,
        "dropout": dropout,
    }
    return record
