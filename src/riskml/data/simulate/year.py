"""The year one step simulates, as each row's household sees it, and the household-year draws.

``begin_year`` looks up the row's county's lines, prices and shocks for the year
and makes the draws every sub-step of the year shares (``uh``, ``zh``); it is the
first thing the yearly step does with the random stream.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .constants import F32
from .state import State
from .world import World


@dataclass(frozen=True)
class Year:
    """One year for R households (rows) with S member slots."""

    rows: int  # R
    slots: int  # S: member slots (the oracle may pass fewer than SLOTS)
    yi: int  # index of the year in the world's year tables
    c: np.ndarray  # (R,) county
    cl: np.ndarray  # (R,) county income level
    dl: np.ndarray  # (R,) dibao line
    wage_idx: np.floating
    price_idx: np.floating
    s_wage: np.ndarray  # (R,) employment shock: wage drop
    s_months: np.ndarray  # (R,) employment shock: months lost
    s_ret: np.ndarray  # (R,) employment shock: extra share of migrants coming home
    sev: np.ndarray  # (R,) disaster severity the row's county suffers this year
    uh: np.ndarray  # (R, 18) household-year uniforms
    zh: np.ndarray  # (R, 4) household-year normals


def begin_year(s: State, w: World, year: int, sev: np.ndarray, rng: np.random.Generator) -> Year:
    """The year's context for every row of ``s``; draws ``uh`` then ``zh`` from ``rng``."""
    R, S = s.age.shape  # S: member slots (the oracle may pass fewer than SLOTS)
    yi = year - w.first_year
    c = s.county
    cl = w.level[c]
    dl = w.dib[yi, c]
    wage_idx = w.wage_index[yi]
    price_idx = w.price_index[yi]
    s_wage, s_months, s_ret = w.shock_wage[yi, c], w.shock_months[yi, c], w.shock_return[yi, c]
    # household-year uniforms: 0 birth, 1 marriage in, 2 catastrophic illness, 3 dibao,
    # 4 tekun, 5 insurance, 6 dropout, 7 public-welfare job, 8 disaster exposure,
    # 9 business, 10 business failure, 11 property, 12 private transfers, 13 accident,
    # 14 housing, 15 water, 16 borrowing, 17 planned loan
    uh = rng.random((R, 18), dtype=F32)
    # household-year normals: 0 farm state, 1 farm season, 2 routine medical, 3 wages
    # (other draws are made only for the rows that need them)
    zh = rng.standard_normal((R, 4), dtype=F32)
    return Year(
        rows=R,
        slots=S,
        yi=yi,
        c=c,
        cl=cl,
        dl=dl,
        wage_idx=wage_idx,
        price_idx=price_idx,
        s_wage=s_wage,
        s_months=s_months,
        s_ret=s_ret,
        sev=sev,
        uh=uh,
        zh=zh,
    )
