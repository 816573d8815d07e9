"""Household state: the ``State`` of R households (observable and latent), and their start.

``init_state`` draws the households as they were before the burn-in years;
``count``, ``normal_where`` and ``edu_for`` are the per-household helpers the
yearly step shares with it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from .constants import F32, KIN_HEAD, KIN_OTHER, KIN_PARENT, KIN_SPOUSE, SLOTS
from .world import World


@dataclass
class State:
    """Full state of R households (rows): observable and latent."""

    # household level, shape (R,)
    county: np.ndarray
    village: np.ndarray
    alive: np.ndarray
    minority: np.ndarray
    fpoor: np.ndarray
    relocated: np.ndarray
    head_female: np.ndarray
    head_edu: np.ndarray
    ability: np.ndarray  # latent
    frailty: np.ndarray  # latent
    farm_z: np.ndarray  # latent farm productivity (AR(1))
    land: np.ndarray  # latent, mu
    business: np.ndarray
    prop: np.ndarray
    pwjob: np.ndarray
    dibao: np.ndarray
    tekun: np.ndarray
    insured: np.ndarray
    housing_safe: np.ndarray
    water_safe: np.ndarray
    dropout: np.ndarray
    debt: np.ndarray
    assessed_pc: np.ndarray  # last year's per-capita income as a means test sees it
    # members, shape (R, SLOTS); age -1 = empty slot
    age: np.ndarray
    kin: np.ndarray
    chronic: np.ndarray
    disabled: np.ndarray
    migrant: np.ndarray
    school: np.ndarray
    wage_mult: np.ndarray  # latent member wage multiplier (skill), fixed for life

    def repeat(self, k: int) -> State:
        """Each household k times in a row (rows h*k … h*k+k-1 are household h)."""
        return State(**{f.name: np.repeat(getattr(self, f.name), k, axis=0) for f in fields(self)})


ONES = np.ones(SLOTS, F32)


def count(mask: np.ndarray) -> np.ndarray:
    """Members per household satisfying ``mask`` (float32; a BLAS product, ~5× count_nonzero)."""
    return mask.astype(F32) @ ONES[: mask.shape[1]]


def normal_where(rng: np.random.Generator, mask: np.ndarray) -> np.ndarray:
    """Standard normal draws for the rows in ``mask`` only (0 elsewhere)."""
    out = np.zeros(mask.shape[0], F32)
    idx = np.nonzero(mask)[0]
    if idx.size:
        out[idx] = rng.standard_normal(idx.size, dtype=F32)
    return out


def edu_for(age: np.ndarray, z: np.ndarray, fpoor, minority, cl, ability) -> np.ndarray:
    e = (
        8.6
        - 0.09 * (age.astype(F32) - 45)
        + 2.2 * z
        - 1.5 * fpoor
        - 0.8 * minority
        + 2.0 * (cl - 0.7)
        + 0.6 * ability
    )
    return np.clip(np.round(e), 0, 16).astype(F32)


def init_state(n: int, w: World, rng: np.random.Generator) -> State:
    """Households as they were before the burn-in years."""
    C = len(w.codes)
    c = rng.choice(C, size=n, p=w.weight).astype(np.int16)
    cl = w.level[c]
    uh = rng.random((n, 24), dtype=F32)
    zh = rng.standard_normal((n, 8), dtype=F32)
    fpoor = uh[:, 0] < w.fp_share[c]
    minority = uh[:, 1] < w.minority[c]
    rel_p = np.where(
        fpoor,
        np.minimum(1.0, 0.9 * w.reloc_share[c] / np.maximum(w.fp_share[c], 0.01)),
        0.01 * (w.reloc_share[c] > 0),
    )
    relocated = uh[:, 2] < rel_p
    ability = (0.6 * zh[:, 0] - 1.2 * fpoor).astype(F32)
    frailty = (0.7 * zh[:, 1] + 0.6 * fpoor).astype(F32)

    K = 13  # candidate members before compaction to SLOTS
    age = np.full((n, K), -1, np.int16)
    kin = np.full((n, K), KIN_OTHER, np.int8)
    head_age = (24 + 62 * rng.beta(2.1, 2.6, n)).astype(np.int16)
    age[:, 0] = head_age
    kin[:, 0] = KIN_HEAD
    spouse = uh[:, 3] < np.where(head_age < 65, 0.90, 0.65)
    sp_age = np.clip(head_age + np.round(rng.normal(-1.5, 3.0, n)), 18, 100)
    age[:, 1] = np.where(spouse, sp_age, -1)
    kin[:, 1] = KIN_SPOUSE
    # the head's parents
    par1 = (head_age <= 58) & (uh[:, 4] < 0.28)
    par2 = par1 & (uh[:, 5] < 0.40)
    p_age = head_age + 26 + (uh[:, 6] * 7).astype(np.int16)
    age[:, 2] = np.where(par1, p_age, -1)
    age[:, 3] = np.where(par2, p_age + (uh[:, 7] * 5).astype(np.int16) - 2, -1)
    kin[:, 2:4] = KIN_PARENT
    # children
    cum = np.where(
        minority[:, None],
        np.cumsum([0.06, 0.24, 0.40, 0.20, 0.10]),
        np.cumsum([0.10, 0.38, 0.40, 0.10, 0.02]),
    )
    nk = (uh[:, 8, None] > cum).sum(axis=1)
    child_age = head_age - 22 - (uh[:, 9] * 7).astype(np.int16)
    for j in range(4):
        if j:
            child_age = child_age - 1 - (uh[:, 9 + j] * 4).astype(np.int16)
        stay = np.where(child_age < 18, True, uh[:, 13 + j] < np.where(child_age <= 24, 0.7, 0.4))
        age[:, 4 + j] = np.where((j < nk) & (child_age >= 0) & stay, child_age, -1)
    # three generations: an adult child, their spouse and grandchildren
    three = (head_age >= 50) & (uh[:, 17] < 0.36)
    ac_age = head_age - 24 - (uh[:, 18] * 7).astype(np.int16)
    age[:, 8] = np.where(three, ac_age, -1)
    age[:, 9] = np.where(
        three & (uh[:, 19] < 0.75), ac_age + (uh[:, 20] * 5).astype(np.int16) - 2, -1
    )
    ng = (uh[:, 21, None] > np.cumsum([0.10, 0.35, 0.40])).sum(axis=1)
    g_age = ac_age - 23 - (uh[:, 22] * 6).astype(np.int16)
    for j in range(3):
        if j:
            g_age = g_age - 1 - (uh[:, 23] * 3).astype(np.int16)
        age[:, 10 + j] = np.where(three & (j < ng) & (g_age >= 0), g_age, -1)
    age = np.minimum(age, 100)
    order = np.argsort(age < 0, axis=1, kind="stable")[:, :SLOTS]
    age = np.take_along_axis(age, order, axis=1)
    kin = np.take_along_axis(kin, order, axis=1)
    occ = age >= 0
    af = age.astype(F32)

    um = rng.random((n, SLOTS, 4), dtype=F32)
    p_chr = (
        np.where(af < 15, 0.01, 0.02 + 0.40 / (1 + np.exp(-(af - 62) / 7)))
        * np.exp(0.4 * frailty)[:, None]
    )
    chronic = occ & (um[..., 0] < np.minimum(p_chr, 0.9))
    p_dis = (0.008 + 0.07 / (1 + np.exp(-(af - 65) / 8))) * np.where(fpoor, 2.0, 1.0)[:, None]
    disabled = occ & (um[..., 1] < p_dis)
    school = occ & (
        ((age >= 16) & (age <= 18) & (um[..., 2] < 0.6))
        | ((age >= 19) & (age <= 22) & (um[..., 2] < 0.3))
    )
    labour = occ & (age >= 16) & (age <= 57) & ~school & ~disabled
    p_mig = np.where(age <= 40, 0.55, 0.33) * np.where(chronic, 0.3, 1.0) * w.mig_factor[c][:, None]
    migrant = labour & (um[..., 3] < p_mig)

    ua = rng.random((n, 9), dtype=F32)
    vi = w.village_start[c] + (ua[:, 0] * w.village_count[c]).astype(np.int64)
    vi = np.where(relocated, w.resettlement[c], vi)
    dl0 = w.dib[0, c]
    dibao = ua[:, 1] < np.where(fpoor, 0.22, 0.03)
    return State(
        county=c,
        village=vi,
        alive=np.ones(n, bool),
        minority=minority,
        fpoor=fpoor,
        relocated=relocated,
        head_female=ua[:, 2] < np.where(spouse, 0.05, 0.35),
        head_edu=edu_for(head_age, zh[:, 2], fpoor, minority, cl, ability),
        ability=ability,
        frailty=frailty,
        farm_z=(0.3 * zh[:, 3]).astype(F32),
        land=(
            4.5
            * np.exp(0.35 * zh[:, 4])
            * w.land_factor[c]
            * np.where(relocated, 0.25, np.where(fpoor, 0.8, 1.0))
        ).astype(F32),
        business=ua[:, 3] < 0.05 + 0.10 * (cl - 0.55) + 0.02 * ability,
        prop=ua[:, 4] < 0.10 + 0.12 * (cl - 0.55),
        pwjob=np.zeros(n, bool),
        dibao=dibao,
        tekun=np.zeros(n, bool),
        insured=ua[:, 5] < np.where(fpoor, 0.995, 0.965),
        housing_safe=relocated | (ua[:, 6] < 0.985),
        water_safe=ua[:, 7] < np.where(w.bad_water[vi], 0.5, 0.99),
        dropout=np.zeros(n, bool),
        debt=np.where(ua[:, 8] < 0.45, 6000 * cl * np.exp(zh[:, 5]), 0).astype(F32),
        assessed_pc=(dl0 * np.exp(0.5 * zh[:, 6]) * np.where(dibao, 0.7, 2.2)).astype(F32),
        age=age,
        kin=kin,
        chronic=chronic,
        disabled=disabled,
        migrant=migrant,
        school=school,
        wage_mult=np.exp(0.2 * rng.standard_normal((n, SLOTS), dtype=F32)),
    )
