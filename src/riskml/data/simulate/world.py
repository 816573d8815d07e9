"""Everything shared by all households: counties and villages, lines, prices, county-year shocks.

``load_counties`` reads the county table; ``build_world`` turns it, the
(scenario-adjusted) reference lines and the scenario into a ``World``: per-county
parameters, the monitoring and dibao lines by year and county, price and wage
indices, and the realised and scheduled disaster severities and employment shocks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from riskml import config
from riskml.data.reference import ReferenceLines

from .constants import BURN_IN_STEPS, F32, PRICE_BASE_YEAR
from .scenario import Scenario


def load_counties(path: str | Path | None = None) -> pd.DataFrame:
    """The simulated counties and their parameters (``riskml/data/tables/counties.csv``)."""
    p = Path(path) if path else config.REFERENCE_COUNTIES
    if not p.exists():
        raise FileNotFoundError(f"county table not found: {p}")
    df = pd.read_csv(p, dtype={"county_code": str, "province_code": str})
    need = [
        "county_code",
        "province_code",
        "income_level",
        "minority_share",
        "formerly_poor_share",
        "relocated_share",
        "disaster_rate",
        "weight",
    ]
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise ValueError(f"county table {p} lacks column(s): {', '.join(missing)}")
    bad = ~df["county_code"].str.fullmatch(r"[0-9]{6}") | (
        df["county_code"].str.slice(0, 2) != df["province_code"]
    )
    if bad.any():
        raise ValueError(
            f"county table {p}: bad county/province code in row(s) {list(df.index[bad])}"
        )
    return df


def _villages(county_code: str) -> list[str]:
    """Village codes of a county: 3-digit township + 3-digit village committee.

    Townships 101… are towns (镇) and 201… townships (乡); village committees
    are numbered from 201. Deterministic, so codes are stable across runs.
    """
    k = int(county_code)
    n_towns = 3 + k % 3
    per_town = 2 + (k // 7) % 3
    out = []
    for t in range(n_towns):
        town = 101 + t if t < (n_towns + 1) // 2 else 201 + t - (n_towns + 1) // 2
        out += [f"{county_code}{town:03d}{201 + v:03d}" for v in range(per_town)]
    return out


@dataclass
class World:
    """Everything shared by all households: places, lines, prices and county-year shocks."""

    codes: np.ndarray  # (C,) county codes
    level: np.ndarray  # (C,) relative income level
    minority: np.ndarray
    fp_share: np.ndarray
    reloc_share: np.ndarray
    dis_rate: np.ndarray
    weight: np.ndarray
    land_factor: np.ndarray
    pension_level: np.ndarray
    mig_factor: np.ndarray
    village_codes: np.ndarray  # (V,) all village codes
    village_start: np.ndarray  # (C,) first village of each county in village_codes
    village_count: np.ndarray  # (C,) ordinary villages per county
    resettlement: np.ndarray  # (C,) index of the county's resettlement community
    bad_water: np.ndarray  # (V,) village with an unsafe water supply at the start
    first_year: int
    mon: np.ndarray  # (Y, C) monitoring line
    dib: np.ndarray  # (Y, C) dibao line
    sev: np.ndarray  # (Y, C) realised disaster severity
    sched: np.ndarray  # (Y, C) scheduled (scenario) disaster severity
    shock_wage: np.ndarray  # (Y, C)
    shock_months: np.ndarray  # (Y, C)
    shock_return: np.ndarray  # (Y, C)
    wage_index: np.ndarray  # (Y,)
    price_index: np.ndarray  # (Y,)
    farm_index: np.ndarray  # (Y,)
    pension_index: np.ndarray  # (Y,)
    fp_support: np.ndarray  # (Y,) yearly support for formerly poor households
    disaster_rate: float
    medical_cost_factor: float

    def random_severity(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        """Random county disasters for one year: severity 0 (none) or Beta(1.6, 3.4)."""
        p = np.minimum(self.dis_rate * self.disaster_rate, 1.0)
        hit = rng.random(shape, dtype=F32) < p
        return np.where(hit, rng.beta(1.6, 3.4, shape).astype(F32), F32(0))


_PENSION_LEVEL = {"33": 1.6, "35": 1.25, "65": 1.2}  # relative to the national minimum path
_LAND_FACTOR = {"62": 1.6, "65": 1.5, "41": 1.2, "35": 0.6, "33": 0.6}
_MIGRATION_FACTOR = {"65": 0.45}  # fewer migrants leave southern Xinjiang counties


def _line_matrix(
    lines: ReferenceLines, provinces: list[str], years: list[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Monitoring and dibao lines (years × provinces); years outside the table are extrapolated.

    Only the burn-in years before the first record and the year after the last
    record (used by the oracle alone) may lie outside the table.
    """
    t = lines.table
    wide = t.pivot_table(
        index=["province_code", "year"], columns="line", values="yuan_per_person_year"
    )
    mon = np.zeros((len(years), len(provinces)))
    dib = np.zeros((len(years), len(provinces)))
    ys = np.array(years, dtype=float)
    for j, p in enumerate(provinces):
        if p not in wide.index.get_level_values(0):
            lines.lookup(p, years[0])  # raises MissingReferenceError naming the province
        sub = wide.loc[p].dropna()
        have = sub.index.to_numpy(dtype=float)
        for out, kind in ((mon, "monitoring"), (dib, "dibao")):
            logv = np.log(sub[kind].to_numpy(dtype=float))
            # inside the table: the table (geometric interpolation across gaps)
            col = np.interp(ys, have, logv)
            # after it: the last growth rate (kept within 0–8%/yr); before it: −5%/yr
            g = np.clip(logv[-1] - logv[-2], 0.0, np.log(1.08)) if len(logv) > 1 else np.log(1.05)
            col = np.where(ys > have[-1], logv[-1] + g * (ys - have[-1]), col)
            col = np.where(ys < have[0], logv[0] - np.log(1.05) * (have[0] - ys), col)
            out[:, j] = np.exp(col)
    return mon, dib


def build_world(
    counties: pd.DataFrame,
    lines: ReferenceLines,
    scenario: Scenario,
    start_year: int,
    years: int,
    seed: int,
) -> World:
    codes = counties["county_code"].to_numpy(dtype=object)
    prov = counties["province_code"].tolist()
    provinces = sorted(set(prov))
    pidx = np.array([provinces.index(p) for p in prov])
    first_year = start_year - BURN_IN_STEPS - 1
    all_years = list(range(first_year, start_year + years + 1))
    # every recorded year must be in the table (the label needs it): fail early
    lines.for_frame(
        pd.Series([p for p in provinces for _ in range(years)]),
        pd.Series([start_year + k for _ in provinces for k in range(years)]),
    )
    mon_p, dib_p = _line_matrix(lines, provinces, all_years)
    mon, dib = mon_p[:, pidx].astype(F32), dib_p[:, pidx].astype(F32)

    villages: list[str] = []
    vstart, vcount, resettle = [], [], []
    for code in codes:
        vs = _villages(code)
        vstart.append(len(villages))
        vcount.append(len(vs))
        villages += vs
        resettle.append(len(villages))
        villages.append(f"{code}101001")  # resettlement community (居委会) of the county town
    wrng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(0,))))
    bad_water = wrng.random(len(villages)) < 0.05

    Y, C = len(all_years), len(codes)
    w = World(
        codes=codes,
        level=counties["income_level"].to_numpy(F32),
        minority=counties["minority_share"].to_numpy(F32),
        fp_share=counties["formerly_poor_share"].to_numpy(F32),
        reloc_share=counties["relocated_share"].to_numpy(F32),
        dis_rate=counties["disaster_rate"].to_numpy(F32),
        weight=(counties["weight"] / counties["weight"].sum()).to_numpy(float),
        land_factor=np.array([_LAND_FACTOR.get(p, 1.0) for p in prov], F32),
        pension_level=np.array([_PENSION_LEVEL.get(p, 1.0) for p in prov], F32),
        mig_factor=np.array([_MIGRATION_FACTOR.get(p, 1.0) for p in prov], F32),
        village_codes=np.array(villages, dtype=object),
        village_start=np.array(vstart),
        village_count=np.array(vcount),
        resettlement=np.array(resettle),
        bad_water=bad_water,
        first_year=first_year,
        mon=mon,
        dib=dib,
        sev=np.zeros((Y, C), F32),
        sched=np.zeros((Y, C), F32),
        shock_wage=np.zeros((Y, C), F32),
        shock_months=np.zeros((Y, C), F32),
        shock_return=np.zeros((Y, C), F32),
        wage_index=np.array(
            [(1 + scenario.wage_growth) ** (y - PRICE_BASE_YEAR) for y in all_years], F32
        ),
        price_index=np.array([1.025 ** (y - PRICE_BASE_YEAR) for y in all_years], F32),
        farm_index=np.array([1.065 ** (y - PRICE_BASE_YEAR) for y in all_years], F32),
        pension_index=np.array([1.06 ** (y - PRICE_BASE_YEAR) for y in all_years], F32),
        fp_support=np.array([700.0 * 0.85 ** max(0, y - 2020) for y in all_years], F32),
        disaster_rate=scenario.disaster_rate,
        medical_cost_factor=scenario.medical_cost_factor,
    )
    for ev in scenario.disasters:
        if first_year <= ev.year <= all_years[-1]:
            hit = np.array([c.startswith(ev.region) for c in codes])
            i = ev.year - first_year
            w.sched[i, hit] = np.maximum(w.sched[i, hit], ev.severity)
    for sh in scenario.employment_shocks:
        if first_year <= sh.year <= all_years[-1]:
            hit = np.array([c.startswith(sh.region) for c in codes])
            i = sh.year - first_year
            w.shock_wage[i, hit] = sh.wage_drop
            w.shock_months[i, hit] = sh.months_lost
            w.shock_return[i, hit] = sh.return_share
    for i in range(Y):
        w.sev[i] = np.maximum(w.random_severity(wrng, (C,)), w.sched[i])
    return w
