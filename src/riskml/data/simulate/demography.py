"""Demography and schooling: who is in each household this year, and who is in school.

``demography`` ages members, lets some die (a Gompertz hazard raised by frailty
and illness) or leave, brings in babies and spouses, hands the household to a new
head when the head dies, takes in a guardian for children left alone and
dissolves a full household left with a child at its head. ``schooling`` decides
who goes on to high school (at 16) and college (at 19) and who leaves.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .ages import N_AGES, T_DEATH2
from .constants import F32, KIN_HEAD, KIN_OTHER, KIN_PARENT, KIN_SPOUSE
from .state import State, count, edu_for
from .year import Year


@dataclass(frozen=True)
class Members:
    """The households after this year's demography: members (R, S) and heads (R,)."""

    age: np.ndarray  # -1 = empty slot
    kin: np.ndarray
    chronic: np.ndarray
    disabled: np.ndarray
    school: np.ndarray
    migrant_prev: np.ndarray  # last year's migrant workers still in the household
    wage_mult: np.ndarray
    head_female: np.ndarray  # (R,)
    head_edu: np.ndarray  # (R,)
    alive: np.ndarray  # (R,) the household still exists
    occ: np.ndarray  # occupied slots
    size: np.ndarray  # (R,) members
    head_age: np.ndarray  # (R,)
    ai: np.ndarray  # index into the age tables (age + 1)


def demography(s: State, y: Year, rng: np.random.Generator) -> Members:
    """Ageing, deaths, leaving, births, marriages in, succession and guardians for one year."""
    R, S = y.rows, y.slots
    cl, uh = y.cl, y.uh
    ability, frailty, fpoor, minority = s.ability, s.frailty, s.fpoor, s.minority

    # ---- demography: ageing, deaths, young adults leaving
    occ = s.age >= 0
    age = s.age + occ
    kin = s.kin.copy()
    chronic, disabled, school = s.chronic.copy(), s.disabled.copy(), s.school.copy()
    migrant_prev, wage_mult = s.migrant.copy(), s.wage_mult
    u = rng.random((R, S), dtype=F32)
    frail = np.exp(0.25 * frailty) * (1 + 0.3 * (count(disabled) > 0))
    hz = np.take(T_DEATH2, age + 1 + chronic.astype(np.int16) * np.int16(N_AGES))
    hz *= frail[:, None]
    p_leave = np.where(
        (kin == KIN_OTHER) & (age >= 18) & (age <= 32) & ~school,
        F32(0.05),
        np.where(kin == KIN_PARENT, F32(0.01), F32(0)),
    )
    gone = occ & (u < hz + p_leave)
    age[gone] = -1
    occ = age >= 0
    chronic &= occ
    disabled &= occ
    school &= occ
    migrant_prev &= occ

    # births and marriages in
    n_young = count(occ & (age >= 20) & (age <= 40))
    n_kids = count(occ & (age < 16))
    p_birth = np.where(
        n_young >= 2,
        np.select([n_kids == 0, n_kids == 1, n_kids == 2], [0.12, 0.08, 0.025], 0.005),
        0.0,
    ) * np.where(minority, 1.4, 1.0)
    p_join = np.where(count(occ & (kin == KIN_OTHER) & (age >= 23) & (age <= 32)) > 0, 0.05, 0.0)
    born = uh[:, 0] < p_birth
    add = (born | (uh[:, 1] < p_join)) & s.alive & ~occ.all(axis=1)
    if add.any():
        rows = np.nonzero(add)[0]
        slot = np.argmax(~occ[rows], axis=1)
        new_age = np.where(born[rows], 0, 22 + 9 * rng.random(rows.size, dtype=F32))
        age[rows, slot] = new_age.astype(np.int16)
        kin[rows, slot] = KIN_OTHER
        wage_mult = wage_mult.copy()
        wage_mult[rows, slot] = np.exp(0.2 * rng.standard_normal(rows.size, dtype=F32))
        occ = age >= 0

    # succession when the head has died: the spouse, else the oldest member
    head_female, head_edu = s.head_female, s.head_edu
    alive = s.alive & occ.any(axis=1)
    member_arrays = [age, kin, chronic, disabled, school, migrant_prev]
    lost_head = alive & (age[:, 0] < 0)
    if lost_head.any():
        rows = np.nonzero(lost_head)[0]
        score = np.where(occ[rows], age[rows] + 200 * (kin[rows] == KIN_SPOUSE), -1)
        j = np.argmax(score, axis=1)
        was_spouse = kin[rows, j] == KIN_SPOUSE
        head_female, head_edu = head_female.copy(), head_edu.copy()
        wage_mult = wage_mult.copy() if wage_mult is s.wage_mult else wage_mult
        for arr in [*member_arrays, wage_mult]:
            arr[rows, 0] = arr[rows, j]
        age[rows, j] = -1
        for arr in (chronic, disabled, school, migrant_prev):
            arr[rows, j] = False
        kin[rows, 0] = KIN_HEAD
        head_female[rows] = np.where(
            was_spouse, ~head_female[rows], rng.random(rows.size, dtype=F32) < 0.3
        )
        head_edu[rows] = edu_for(
            age[rows, 0],
            rng.standard_normal(rows.size, dtype=F32),
            fpoor[rows],
            minority[rows],
            cl[rows],
            ability[rows],
        )
        occ = age >= 0
    # a household left with children only takes in a guardian (a grandparent)
    orphan = alive & (age[:, 0] >= 0) & (age[:, 0] < 16) & ~occ.all(axis=1)
    if orphan.any():
        rows = np.nonzero(orphan)[0]
        slot = np.argmax(~occ[rows], axis=1)
        wage_mult = wage_mult.copy() if wage_mult is s.wage_mult else wage_mult
        for arr in [*member_arrays, wage_mult]:
            arr[rows, slot] = arr[rows, 0]
        kin[rows, slot] = KIN_OTHER
        age[rows, 0] = (58 + rng.random(rows.size, dtype=F32) * 12).astype(np.int16)
        kin[rows, 0] = KIN_HEAD
        chronic[rows, 0] = disabled[rows, 0] = school[rows, 0] = migrant_prev[rows, 0] = False
        if head_female is s.head_female:
            head_female, head_edu = head_female.copy(), head_edu.copy()
        head_female[rows] = rng.random(rows.size, dtype=F32) < 0.5
        head_edu[rows] = 4
        occ = age >= 0
    # a full household (no free slot) left with a child at its head cannot take in a
    # guardian: it dissolves (the children join relatives), so no record has a head under 16
    child_headed = alive & (age[:, 0] >= 0) & (age[:, 0] < 16)
    if child_headed.any():
        alive = alive & ~child_headed
    size = count(occ)
    head_age = age[:, 0]
    ai = age + 1  # index into the age tables
    return Members(
        age=age,
        kin=kin,
        chronic=chronic,
        disabled=disabled,
        school=school,
        migrant_prev=migrant_prev,
        wage_mult=wage_mult,
        head_female=head_female,
        head_edu=head_edu,
        alive=alive,
        occ=occ,
        size=size,
        head_age=head_age,
        ai=ai,
    )


def schooling(s: State, y: Year, m: Members, rng: np.random.Generator) -> np.ndarray:
    """Members in school this year (R, S): decided at 16 and 19; a few leave each year."""
    R, S = y.rows, y.slots
    cl = y.cl
    ability, fpoor = s.ability, s.fpoor
    occ, age, school, head_edu = m.occ, m.age, m.school, m.head_edu

    p_hs = np.clip(
        0.58 + 0.035 * (head_edu - 8) + 0.08 * ability + 0.15 * (cl - 0.7) - 0.06 * fpoor,
        0.2,
        0.92,
    )
    p_col = np.clip(0.45 + 0.04 * (head_edu - 8) + 0.08 * ability, 0.1, 0.8)
    rr, jj = np.nonzero(occ & (age >= 16) & (age <= 22))
    us = rng.random(rr.size, dtype=F32)
    a = age[rr, jj]
    stays = school[rr, jj]
    school = np.zeros((R, S), bool)
    school[rr, jj] = np.where(
        a == 16,
        us < p_hs[rr],
        np.where(a == 19, stays & (us < p_col[rr]), stays & (us < 0.96)),
    )
    return school
