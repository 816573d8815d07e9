"""Rigid spending and losses, the year's money in whole yuan, and the debt it leaves.

``spending`` gives out-of-pocket medical and schooling costs, disaster and
accident losses and the housing and water safety they leave; ``in_whole_yuan``
rounds the year's money as it is recorded; ``year_end_debt`` borrows when income cannot
carry spending and repays from surpluses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .ages import T_MEDICAL
from .constants import F32
from .demography import Members
from .health import Illness
from .income import Earnings, Work
from .safety_net import Statuses, Transfers
from .state import ONES, State, count, normal_where
from .world import World
from .year import Year


@dataclass(frozen=True)
class Spending:
    """The year's rigid spending, losses and students (R,), and what a disaster left standing."""

    med: np.ndarray
    n_comp: np.ndarray  # students in compulsory school
    n_hs: np.ndarray  # in high school
    n_col: np.ndarray  # in college
    edu: np.ndarray
    loss: np.ndarray
    housing_safe: np.ndarray
    water_safe: np.ndarray


def spending(
    s: State,
    w: World,
    y: Year,
    m: Members,
    ill: Illness,
    st: Statuses,
    e: Earnings,
    rng: np.random.Generator,
) -> Spending:
    """Medical and schooling costs, disaster and accident losses, housing and water safety."""
    S = y.slots
    cl, price_idx, sev, uh, zh = y.cl, y.price_idx, y.sev, y.uh, y.zh
    frailty = s.frailty
    occ, age, ai, school, head_age = m.occ, m.age, m.ai, m.school, m.head_age
    n_chronic, cat = ill.n_chronic, ill.cat
    insured, aided, dropout = st.insured, st.aided, st.dropout
    damage, gross_exp = e.damage, e.gross_exp

    # ---- rigid spending and losses
    routine = np.take(T_MEDICAL, ai) @ ONES[:S]
    chronic_cost = n_chronic * 3000 * np.exp(0.25 * frailty)
    med = (
        routine * np.exp(0.5 * zh[:, 2] - 0.125)
        + chronic_cost * np.exp(0.6 * normal_where(rng, n_chronic > 0) - 0.18)
        + cat * 22000 * np.exp(0.6 * normal_where(rng, cat) - 0.18)
    )
    med *= (
        price_idx * w.medical_cost_factor * np.where(insured, 1.0, 2.6) * np.where(aided, 0.5, 1.0)
    )
    n_comp = count(occ & (age >= 6) & (age <= 15)) - dropout
    n_hs = count(school & (age <= 18))
    n_col = count(school & (age >= 19))
    edu = (
        n_comp * 700 * np.sqrt(cl) + np.where(aided, 0.55, 1.0) * (n_hs * 4000 + n_col * 12000)
    ) * (price_idx * np.exp(0.25 * normal_where(rng, (n_comp + n_hs + n_col) > 0) - 0.03))
    accident = uh[:, 13] < 0.015
    loss = damage * (0.9 * gross_exp + 18000 * cl * price_idx) + accident * 2500 * np.exp(
        0.8 * normal_where(rng, accident)
    )
    housing_safe = np.where(
        s.housing_safe,
        uh[:, 14] >= 0.4 * damage + 0.002 + 0.004 * (head_age >= 70),
        uh[:, 14] < np.where(aided, 0.8, 0.5),
    )
    water_safe = np.where(
        s.water_safe, uh[:, 15] >= 0.002 + 0.3 * damage * (sev > 0.3), uh[:, 15] < 0.35
    )
    return Spending(
        med=med,
        n_comp=n_comp,
        n_hs=n_hs,
        n_col=n_col,
        edu=edu,
        loss=loss,
        housing_safe=housing_safe,
        water_safe=water_safe,
    )


@dataclass(frozen=True)
class Money:
    """The year's money as recorded, in whole yuan (R,)."""

    wage: np.ndarray
    income_business: np.ndarray
    income_property: np.ndarray
    income_transfer: np.ndarray
    med: np.ndarray
    edu: np.ndarray
    loss: np.ndarray
    net: np.ndarray  # net income: the four incomes


def in_whole_yuan(wk: Work, e: Earnings, tr: Transfers, sp: Spending) -> Money:
    """Incomes, spending and losses rounded to whole yuan, and their net income."""
    wage, income_business, income_property = wk.wage, e.income_business, e.income_property
    income_transfer, med, edu, loss = tr.income_transfer, sp.med, sp.edu, sp.loss

    wage = np.round(wage)
    income_business = np.round(income_business)
    income_property = np.round(income_property)
    income_transfer = np.round(income_transfer)
    med = np.round(med)
    edu = np.round(edu)
    loss = np.round(loss)
    net = wage + income_business + income_property + income_transfer
    return Money(
        wage=wage,
        income_business=income_business,
        income_property=income_property,
        income_transfer=income_transfer,
        med=med,
        edu=edu,
        loss=loss,
        net=net,
    )


def year_end_debt(
    s: State, y: Year, m: Members, money: Money, tr: Transfers, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Debt at the end of the year, and per-capita income as next year's means test sees it."""
    cl, price_idx, uh = y.cl, y.price_idx, y.uh
    size = m.size
    net, med, edu, loss = money.net, money.med, money.edu, money.loss
    dibao_amt, tekun_amt = tr.dibao_amt, tr.tekun_amt

    # ---- debt: borrow when income cannot carry spending, repay from surpluses
    consumption = 0.72 * np.maximum(net, 0) + 1100 * price_idx * size
    need = med + edu + 0.5 * loss + consumption - net
    borrow = np.where(need > 0, need * (0.3 + 0.5 * uh[:, 16]), 0)
    base = 0.93 * s.debt
    repay = np.where(need < 0, np.minimum(base, -need * 0.6), 0)
    takes_loan = uh[:, 17] < 0.02
    planned = takes_loan * 30000 * cl * np.exp(0.5 * normal_where(rng, takes_loan))
    debt = np.round(np.maximum(base + borrow - repay + planned, 0), -2).astype(F32)
    assessed_pc = ((net - dibao_amt - tekun_amt - 0.5 * med) / np.maximum(size, 1)).astype(F32)
    return debt, assessed_pc
