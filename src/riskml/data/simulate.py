"""A household panel simulator for rural China, with the true risk it implies.

``simulate_panel`` returns one record per household per year (period
``YYYY-06``; money is the 12 months ending then) carrying every contract field
in canonical dtypes, the training label ``at_risk_next`` (computed by
``riskml.label.label_panel``, the same function training uses) and
``oracle_p``, the probability of ``at_risk_next = 1`` given everything the
simulator knows about the household at that period, latent traits included.

How the world works (one call of ``_step`` moves every household one year):

* **Places.** Counties come from ``data/reference/counties.csv`` (real GB/T
  2260 codes in Yunnan, Guizhou, Gansu, Henan, Sichuan, Guangxi, Xinjiang,
  Fujian and Zhejiang). Its ``income_level``, ``minority_share``,
  ``formerly_poor_share``, ``relocated_share``, ``disaster_rate`` and
  ``weight`` columns are rough simulation parameters, not official statistics.
  Village codes are the county code + a 3-digit township + a 3-digit village
  committee; relocated households live in the county town's resettlement
  community (``…101001``).
* **People.** Households have up to ten members, each with an age, a relation
  to the head, chronic illness, certified disability, schooling and a
  migrant-work status. Every year members age, may die (a Gompertz hazard
  raised by frailty and illness), young adults leave (marriage, own household),
  spouses marry in and babies are born; when the head dies the spouse or the
  oldest member takes over, and a household whose last member dies leaves the
  panel. Children are in compulsory school at 6–15; at 16 and 19 they go on to
  high school / college with a probability that rises with the head's education
  and falls for formerly poor households. Formerly poor households (建档立卡)
  have lower ability, frailer health, more disability and less land on
  average, and get more support.
* **Income.** Wages: members working outside the county (months, and a monthly
  wage by age, the head's education, household ability and a member skill) and
  seasonal local work; public-welfare jobs for some formerly poor households.
  Operating income: farming (land plus labour at home, full time, part time
  beside local work or elderly helpers, times a persistent productivity state,
  minus costs, so a disaster or a bad season can make it negative), an
  occasional non-farm business that can fail, minus interest on debt. Property:
  rent and collective dividends. Transfers: pensions from 60, money from
  relatives (most of all for elderly households), farm, ecological and
  disability subsidies, support for formerly poor households, disaster relief,
  and dibao (the gap between the local dibao line and the household's assessed
  income, at least 35% and at most 85% of the line, per member) or tekun
  support (1.3 × the dibao line per member). Dibao and tekun status follow a
  means test on last year's income.
* **Spending.** Out-of-pocket medical costs rise with age and chronic illness
  (2.6 × without insurance, halved by medical assistance for dibao, tekun and
  formerly poor households) plus occasional catastrophic illness, which also
  costs work months; schooling costs are small in compulsory school and large
  in high school and college (reduced by student aid). Debt grows when income
  cannot carry spending and losses, and is repaid from surpluses.
* **Shocks.** County-year disasters (random, at each county's rate, plus any
  scheduled in the scenario) cut farm output, cause losses and damage houses
  and water supply. An employment shock year (2020 by default: lockdowns in the
  12 months to June 2020) cuts migrant wages and months and sends some
  migrants home.
* **Latent state** that records do not show: household ability (wages, farm
  yield, schooling, migration), health frailty (illness, catastrophic illness,
  death), the farm productivity state, land, member skills, exact ages and
  relations.

Risk therefore comes from: low and volatile income relative to the line (low
ability, little labour, elderly households, no migrant worker, farming only),
rigid spending (chronic illness, no insurance, children entering high school or
college), disasters, the employment shock, and lines that rise faster than some
incomes. With the default lines and scenario the yearly base rate of
``at_risk_next`` is about 7–10% (about 1.5 × higher for formerly poor
households); ``oracle_p`` reaches a ROC AUC of about 0.84 against about 0.73 for
per-capita income relative to the line, and a gradient-boosted model on the
record and the previous year's record comes within about 0.02 of the oracle.

The oracle re-simulates the next year from the current state ``oracle_draws``
times with the same ``_step`` that produced the real next year (households ×
draws at once), integrating over every random event of that year, including
which counties a random disaster hits. It knows the scenario's scheduled events
(part of the world) but not next year's random draws. It is the probability
that the next record is at risk given that the household still exists (about
0.3% of households a year dissolve). For the last year it uses the next year's
lines, extrapolated at the table's last growth rate if the table ends.

Values missing at random (``MISSING_RATES``) are set after simulation, so a
label is missing where the next record lacks one of its inputs; ``oracle_p``
is computed from the true values.

Randomness: the same ``seed`` gives the same panel. Households are simulated in
fixed chunks of ``CHUNK_HOUSEHOLDS``, each with its own random streams derived
from the seed, so results do not depend on the number of worker threads, and
the real panel does not depend on ``oracle_draws``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd

from riskml import config
from riskml.data import schema
from riskml.data.label import label_panel
from riskml.data.reference import ReferenceLines, default_lines

# --------------------------------------------------------------------------- constants
SLOTS = 10  # member slots per household (largest household size)
BURN_IN_STEPS = 3  # unrecorded years simulated before the first record
CHUNK_HOUSEHOLDS = 2000  # households per chunk (fixed: part of the random streams)
DEFAULT_ORACLE_DRAWS = 64
ORACLE_BATCH_ROWS = 16384  # households × draws re-simulated at once by the oracle
PRICE_BASE_YEAR = 2019  # money parameters below are in yuan of this year
PERIOD_MONTH = 6  # records are taken in June: "YYYY-06"

KIN_HEAD, KIN_SPOUSE, KIN_PARENT, KIN_OTHER = 0, 1, 2, 3

# Share of each non-identifier numeric field set missing at random (the contract
# allows any numeric field to be missing; downstream code must carry NA).
MISSING_RATES: dict[str, float] = {
    "income_business": 0.010,
    "income_property": 0.010,
    "debt": 0.020,
    "months_employed": 0.010,
    "disaster_loss": 0.005,
    "head_education_years": 0.005,
    "medical_expense": 0.003,
}

F32 = np.float32


# --------------------------------------------------------------------------- scenario
@dataclass(frozen=True)
class DisasterEvent:
    """A scheduled disaster: every county whose code starts with ``region`` is hit in ``year``.

    ``region`` is a GB/T 2260 prefix: "53" (a province), "5323" (a prefecture)
    or "532328" (a county). ``severity`` (0–1) is the share of farm output and
    assets lost by the most exposed household; each household's exposure is
    drawn between 0 and 1.
    """

    region: str
    year: int
    severity: float = 0.5

    def __post_init__(self) -> None:
        if not (self.region.isdigit() and 2 <= len(self.region) <= 6):
            raise ValueError(f"DisasterEvent.region must be 2–6 digits, got {self.region!r}")
        if not 0 < self.severity <= 1:
            raise ValueError(f"DisasterEvent.severity must be in (0, 1], got {self.severity}")


@dataclass(frozen=True)
class EmploymentShock:
    """A year in which migrant work collapses for households whose county starts with ``region``.

    ``wage_drop``: fractional fall in migrant monthly wages; ``months_lost``:
    average months of work lost per migrant worker; ``return_share``: extra
    share of migrant workers who come home (and fewer leave). ``region`` ""
    means everywhere.
    """

    year: int
    wage_drop: float = 0.08
    months_lost: float = 1.5
    return_share: float = 0.10
    region: str = ""

    def __post_init__(self) -> None:
        if not 0 <= self.wage_drop < 1:
            raise ValueError(f"EmploymentShock.wage_drop must be in [0, 1), got {self.wage_drop}")
        if not 0 <= self.months_lost <= 6:
            raise ValueError(
                f"EmploymentShock.months_lost must be in [0, 6], got {self.months_lost}"
            )
        if not 0 <= self.return_share <= 0.8:
            raise ValueError(
                f"EmploymentShock.return_share must be in [0, 0.8], got {self.return_share}"
            )
        if self.region and not (self.region.isdigit() and len(self.region) <= 6):
            raise ValueError(f"EmploymentShock.region must be '' or digits, got {self.region!r}")


@dataclass(frozen=True)
class LineChange:
    """Multiply a province's lines from ``year`` on (that year and every later one).

    ``region``: a 2-digit province code, or "" for every province. The changed
    lines drive dibao payments and the label of the simulated panel.
    """

    region: str
    year: int
    monitoring_factor: float = 1.0
    dibao_factor: float = 1.0

    def __post_init__(self) -> None:
        if self.region and not (self.region.isdigit() and len(self.region) == 2):
            raise ValueError(
                f"LineChange.region must be '' or a 2-digit province code, got {self.region!r}"
            )
        if self.monitoring_factor <= 0 or self.dibao_factor <= 0:
            raise ValueError("LineChange factors must be positive")


@dataclass(frozen=True)
class Scenario:
    """The world's shocks and trends. ``Scenario()`` is the baseline world.

    Fields:
        name: a label for reports.
        disaster_rate: multiplier on every county's yearly probability of a
            disaster (``disaster_rate`` column of counties.csv); 0 switches
            random disasters off.
        disasters: scheduled disasters (a new disaster region in a given year).
        employment_shocks: years in which migrant work collapses; the baseline
            has one in 2020.
        line_changes: changes to the monitoring and dibao lines (policy drift).
        wage_growth: nominal yearly growth of wages and business income.
        medical_cost_factor: multiplier on out-of-pocket medical costs.
    """

    name: str = "baseline"
    disaster_rate: float = 1.0
    disasters: tuple[DisasterEvent, ...] = ()
    employment_shocks: tuple[EmploymentShock, ...] = (EmploymentShock(year=2020),)
    line_changes: tuple[LineChange, ...] = ()
    wage_growth: float = 0.085
    medical_cost_factor: float = 1.0

    def __post_init__(self) -> None:
        if self.disaster_rate < 0:
            raise ValueError("Scenario.disaster_rate must be ≥ 0")
        if not -0.2 < self.wage_growth < 0.3:
            raise ValueError("Scenario.wage_growth must be in (-0.2, 0.3)")
        if self.medical_cost_factor <= 0:
            raise ValueError("Scenario.medical_cost_factor must be positive")

    def adjust_lines(self, lines: ReferenceLines) -> ReferenceLines:
        """The reference lines with this scenario's ``line_changes`` applied."""
        if not self.line_changes:
            return lines
        t = lines.table.copy()
        for ch in self.line_changes:
            sel = t["year"] >= ch.year
            if ch.region:
                sel &= t["province_code"] == ch.region
            mon = sel & (t["line"] == "monitoring")
            dib = sel & (t["line"] == "dibao")
            t.loc[mon, "yuan_per_person_year"] = (
                t.loc[mon, "yuan_per_person_year"] * ch.monitoring_factor
            ).round()
            t.loc[dib, "yuan_per_person_year"] = (
                t.loc[dib, "yuan_per_person_year"] * ch.dibao_factor
            ).round()
            t.loc[mon | dib, "basis"] = "estimate"
        return ReferenceLines(t, source=f"{lines.source} (scenario {self.name!r})")


# --------------------------------------------------------------------------- counties
def load_counties(path: str | Path | None = None) -> pd.DataFrame:
    """The simulated counties and their parameters (``data/reference/counties.csv``)."""
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
    bad = ~df["county_code"].str.fullmatch(r"\d{6}") | (
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


# --------------------------------------------------------------------------- the world
@dataclass
class _World:
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


def _build_world(
    counties: pd.DataFrame,
    lines: ReferenceLines,
    scenario: Scenario,
    start_year: int,
    years: int,
    seed: int,
) -> _World:
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
    w = _World(
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


# --------------------------------------------------------------------------- household state
@dataclass
class _State:
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

    def repeat(self, k: int) -> _State:
        """Each household k times in a row (rows h*k … h*k+k-1 are household h)."""
        return _State(**{f.name: np.repeat(getattr(self, f.name), k, axis=0) for f in fields(self)})


_ONES = np.ones(SLOTS, F32)


def _count(mask: np.ndarray) -> np.ndarray:
    """Members per household satisfying ``mask`` (float32; a BLAS product, ~5× count_nonzero)."""
    return mask.astype(F32) @ _ONES[: mask.shape[1]]


def _normal_where(rng: np.random.Generator, mask: np.ndarray) -> np.ndarray:
    """Standard normal draws for the rows in ``mask`` only (0 elsewhere)."""
    out = np.zeros(mask.shape[0], F32)
    idx = np.nonzero(mask)[0]
    if idx.size:
        out[idx] = rng.standard_normal(idx.size, dtype=F32)
    return out


def _edu_for(age: np.ndarray, z: np.ndarray, fpoor, minority, cl, ability) -> np.ndarray:
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


def _init_state(n: int, w: _World, rng: np.random.Generator) -> _State:
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
    return _State(
        county=c,
        village=vi,
        alive=np.ones(n, bool),
        minority=minority,
        fpoor=fpoor,
        relocated=relocated,
        head_female=ua[:, 2] < np.where(spouse, 0.05, 0.35),
        head_edu=_edu_for(head_age, zh[:, 2], fpoor, minority, cl, ability),
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


# --------------------------------------------------------------------------- one year
_AGES = np.arange(-1, 129, dtype=np.float64)  # table index = age + 1 (index 0: empty slot)
_T_DEATH = np.where(_AGES >= 0, np.exp(-10.9 + 0.103 * _AGES), 0)
_T_DEATH[_AGES >= 104] = 50.0  # nobody passes 104
# death hazard by (chronic illness, age): index chronic * _N_AGES + age + 1
_N_AGES = len(_AGES)
_T_DEATH2 = np.concatenate([_T_DEATH, 1.8 * _T_DEATH]).astype(F32)
_T_CHRONIC = np.minimum(0.010 * np.exp(0.045 * (_AGES - 50)), 0.25).astype(F32)
# disability onset when a member's health draw exceeds 1 - p (disjoint from illness draws)
_T_DISABLE_ABOVE = np.where(
    _AGES >= 0, 1 - np.minimum(0.0015 * np.exp(0.035 * (_AGES - 40)), 0.05), 2
).astype(F32)
_T_MIG_START = np.where(_AGES <= 35, 0.16, 0.06).astype(F32)
_T_WAGE_AGE = np.exp(-0.0004 * (_AGES - 36) ** 2).astype(F32)
_T_MEDICAL = np.where(_AGES >= 0, 120 + 9 * _AGES, 0).astype(F32)


def _step(
    s: _State, w: _World, year: int, sev: np.ndarray, rng: np.random.Generator
) -> tuple[_State, dict[str, np.ndarray]]:
    """Move every household one year on; return the new state and the year's record.

    ``sev`` is the disaster severity each row's county suffers this year.
    Used both for the real panel and (on households × draws) for the oracle.
    """
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
    ability, frailty, fpoor, minority = s.ability, s.frailty, s.fpoor, s.minority

    # ---- demography: ageing, deaths, young adults leaving
    occ = s.age >= 0
    age = s.age + occ
    kin = s.kin.copy()
    chronic, disabled, school = s.chronic.copy(), s.disabled.copy(), s.school.copy()
    migrant_prev, wage_mult = s.migrant.copy(), s.wage_mult
    u = rng.random((R, S), dtype=F32)
    frail = np.exp(0.25 * frailty) * (1 + 0.3 * (_count(disabled) > 0))
    hz = np.take(_T_DEATH2, age + 1 + chronic.astype(np.int16) * np.int16(_N_AGES))
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
    n_young = _count(occ & (age >= 20) & (age <= 40))
    n_kids = _count(occ & (age < 16))
    p_birth = np.where(
        n_young >= 2,
        np.select([n_kids == 0, n_kids == 1, n_kids == 2], [0.12, 0.08, 0.025], 0.005),
        0.0,
    ) * np.where(minority, 1.4, 1.0)
    p_join = np.where(_count(occ & (kin == KIN_OTHER) & (age >= 23) & (age <= 32)) > 0, 0.05, 0.0)
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
        head_edu[rows] = _edu_for(
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
    size = _count(occ)
    head_age = age[:, 0]
    ai = age + 1  # index into the age tables

    # ---- schooling (decided at 16 and 19; a few leave each year)
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

    # ---- health
    u = rng.random((R, S), dtype=F32)
    p_on = np.take(_T_CHRONIC, ai) * np.exp(0.45 * frailty)[:, None]
    chronic = occ & np.where(chronic, u >= 0.08, u < p_on)
    disabled |= u > np.take(_T_DISABLE_ABOVE, ai)
    n_old = _count(occ & (age >= 65))
    n_chronic = _count(chronic)
    p_cat = 0.012 * np.exp(0.35 * frailty) * (1 + 0.2 * n_old + 0.35 * n_chronic)
    cat = alive & (uh[:, 2] < p_cat)
    patient = np.zeros((R, S), bool)
    if cat.any():
        rows = np.nonzero(cat)[0]
        pick = rng.random((len(rows), S), dtype=F32) + 0.3 * (age[rows] >= 50) + 0.3 * chronic[rows]
        j = np.argmax(np.where(occ[rows], pick, -1), axis=1)
        patient[rows, j] = True
        chronic[rows, j] |= rng.random(rows.size, dtype=F32) < 0.5
        n_chronic = _count(chronic)

    # ---- statuses decided at the start of the year (means test on last year's income)
    labour = occ & (age >= 16) & (age <= 64) & ~school & ~disabled
    n_labour = _count(labour)
    n_disabled = _count(disabled)
    vulnerable = (n_labour == 0) | (n_chronic > 0) | (n_disabled > 0)
    assessed = s.assessed_pc
    # formerly poor households are screened against a higher bar and leave gradually
    bar = dl * np.where(fpoor, F32(1.3), F32(1.0))
    p_in = np.where(assessed < bar, np.where(vulnerable, 0.40, 0.12), 0.002)
    p_out = 0.05 + 0.25 * (assessed > 1.5 * bar) + 0.10 * (assessed > bar)
    dibao = alive & np.where(s.dibao, uh[:, 3] >= p_out, uh[:, 3] < p_in)
    frail_only = _count(occ & (age < 60) & ~disabled) == 0
    tk_elig = alive & (n_labour == 0) & (size <= 2) & frail_only & (assessed < 1.2 * dl)
    tekun = tk_elig & (s.tekun | (uh[:, 4] < 0.06))
    dibao &= ~tekun
    aided = fpoor | dibao | tekun
    insured = np.where(s.insured, uh[:, 5] >= np.where(aided, 0.002, 0.008), uh[:, 5] < 0.5)
    has_teen = _count(occ & (age >= 12) & (age <= 15)) > 0
    p_drop = (
        0.004 * (1 + fpoor) * (1 + 0.6 * minority) * (1 + (head_edu < 6)) * (1 + 2 * (sev > 0.3))
    )
    dropout = has_teen & np.where(s.dropout, uh[:, 6] < 0.55, uh[:, 6] < p_drop)

    # ---- work: migrant (outside the county), local, public-welfare jobs
    u = rng.random((R, S), dtype=F32)
    cand = labour & (age <= 57)
    young_kids = _count(occ & (age < 6)) > 0
    p_stay = (0.90 - s_ret)[:, None]
    start_hh = (
        np.exp(0.3 * ability + 0.08 * (head_edu - 8))
        * (1.5 - 0.6 * cl)
        * w.mig_factor[c]
        * (1 - 2 * s_ret)
    )
    p_start = np.take(_T_MIG_START, ai) * start_hh[:, None]
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
        np.where(migrant, migrant_wage[:, None] * np.take(_T_WAGE_AGE, ai), local_wage[:, None])
        * wage_mult
    )
    n_mig = _count(migrant)
    pw_elig = fpoor & (n_mig == 0) & (n_labour + _count(occ & (age >= 65) & (age < 70)) > 0)
    pwjob = pw_elig & np.where(s.pwjob, uh[:, 7] >= 0.25, uh[:, 7] < 0.06)
    wage = np.einsum("ij,ij->i", months_each, monthly) + pwjob * 4800 * price_idx
    months = np.minimum(months_each @ _ONES[:S] + 10 * pwjob, 12 * size)

    # ---- farming and business
    helper = occ & (age >= 65) & (age <= 79) & ~disabled & ~chronic
    at_home = labour & ~migrant
    # farm labour: full time at home, part time beside local work, elderly helpers
    n_local = _count(local)
    farm_lab = (
        (n_labour - n_mig - n_local)
        + 0.4 * n_local
        - 0.4 * _count(at_home & chronic)
        + 0.5 * _count(helper)
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
        b_scale * np.exp(0.45 * _normal_where(rng, business) - 0.1),
    )
    income_business = farm_net + business * b_net - 0.04 * s.debt
    prop = np.where(uh[:, 11] < 0.03, ~s.prop, s.prop)
    income_property = (
        prop * 2500 * wage_idx * cl * np.exp(0.8 * _normal_where(rng, prop) - 0.32)
        + fpoor * 300 * price_idx
    )

    # ---- transfers
    n60 = _count(occ & (age >= 60))
    pension = n60 * 1260 * w.pension_level[c] * w.pension_index[yi]
    elderly_only = (n_labour == 0) & (n60 > 0)
    gets = uh[:, 12] < np.where(elderly_only, 0.9, 0.4)  # money from relatives
    private = (
        gets
        * np.where(elderly_only, 5000 * n60, 2000)
        * wage_idx
        * np.sqrt(cl)
        * np.exp(0.6 * _normal_where(rng, gets) - 0.18)
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

    # ---- rigid spending and losses
    routine = np.take(_T_MEDICAL, ai) @ _ONES[:S]
    chronic_cost = n_chronic * 3000 * np.exp(0.25 * frailty)
    med = (
        routine * np.exp(0.5 * zh[:, 2] - 0.125)
        + chronic_cost * np.exp(0.6 * _normal_where(rng, n_chronic > 0) - 0.18)
        + cat * 22000 * np.exp(0.6 * _normal_where(rng, cat) - 0.18)
    )
    med *= (
        price_idx * w.medical_cost_factor * np.where(insured, 1.0, 2.6) * np.where(aided, 0.5, 1.0)
    )
    n_comp = _count(occ & (age >= 6) & (age <= 15)) - dropout
    n_hs = _count(school & (age <= 18))
    n_col = _count(school & (age >= 19))
    edu = (
        n_comp * 700 * np.sqrt(cl) + np.where(aided, 0.55, 1.0) * (n_hs * 4000 + n_col * 12000)
    ) * (price_idx * np.exp(0.25 * _normal_where(rng, (n_comp + n_hs + n_col) > 0) - 0.03))
    accident = uh[:, 13] < 0.015
    loss = damage * (0.9 * gross_exp + 18000 * cl * price_idx) + accident * 2500 * np.exp(
        0.8 * _normal_where(rng, accident)
    )
    housing_safe = np.where(
        s.housing_safe,
        uh[:, 14] >= 0.4 * damage + 0.002 + 0.004 * (head_age >= 70),
        uh[:, 14] < np.where(aided, 0.8, 0.5),
    )
    water_safe = np.where(
        s.water_safe, uh[:, 15] >= 0.002 + 0.3 * damage * (sev > 0.3), uh[:, 15] < 0.35
    )

    # money is recorded in whole yuan
    wage = np.round(wage)
    income_business = np.round(income_business)
    income_property = np.round(income_property)
    income_transfer = np.round(income_transfer)
    med = np.round(med)
    edu = np.round(edu)
    loss = np.round(loss)
    net = wage + income_business + income_property + income_transfer

    # ---- debt: borrow when income cannot carry spending, repay from surpluses
    consumption = 0.72 * np.maximum(net, 0) + 1100 * price_idx * size
    need = med + edu + 0.5 * loss + consumption - net
    borrow = np.where(need > 0, need * (0.3 + 0.5 * uh[:, 16]), 0)
    base = 0.93 * s.debt
    repay = np.where(need < 0, np.minimum(base, -need * 0.6), 0)
    takes_loan = uh[:, 17] < 0.02
    planned = takes_loan * 30000 * cl * np.exp(0.5 * _normal_where(rng, takes_loan))
    debt = np.round(np.maximum(base + borrow - repay + planned, 0), -2).astype(F32)
    assessed_pc = ((net - dibao_amt - tekun_amt - 0.5 * med) / np.maximum(size, 1)).astype(F32)

    new = _State(
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
    record = {
        "household_size": size,
        "labor_count": n_labour,
        "elderly_count": n_old,
        "children_count": _count(occ & (age < 16)),
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
    return new, record


# --------------------------------------------------------------------------- the oracle
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


def _oracle(s: _State, w: _World, year: int, draws: int, rng: np.random.Generator) -> np.ndarray:
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
        part = _State(
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
        nxt, rec = _step(rep, w, year, sev, rng)
        risk = _at_risk(rec, w.mon[yi, rep.county]) & nxt.alive
        k = risk.reshape(m, draws).sum(axis=1)
        alive = nxt.alive.reshape(m, draws).sum(axis=1)
        out[idx] = np.where(alive > 0, k / np.maximum(alive, 1), 0.0)
    return out


# --------------------------------------------------------------------------- a chunk of households
def _stream(seed: int, kind: int, chunk: int) -> np.random.Generator:
    return np.random.Generator(
        np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(kind, chunk)))
    )


def _simulate_chunk(
    chunk: int,
    n: int,
    w: _World,
    seed: int,
    start_year: int,
    years: int,
    draws: int,
) -> dict[str, np.ndarray]:
    """Simulate ``n`` households; columns in household-major order, dead households dropped."""
    rng = _stream(seed, 1, chunk)
    orng = _stream(seed, 2, chunk)
    s = _init_state(n, w, rng)
    for year in range(w.first_year + 1, start_year):
        s, _ = _step(s, w, year, w.sev[year - w.first_year, s.county], rng)
    recs: list[dict[str, np.ndarray]] = []
    for k in range(years):
        year = start_year + k
        s, rec = _step(s, w, year, w.sev[year - w.first_year, s.county], rng)
        rec["_alive"] = s.alive.copy()
        rec["_year"] = np.full(n, year)
        rec["_village"] = s.village
        rec["_county"] = s.county
        rec["oracle_p"] = _oracle(s, w, year + 1, draws, orng) if draws > 0 else np.full(n, np.nan)
        recs.append(rec)
    out = {key: np.stack([r[key] for r in recs], axis=1).reshape(-1) for key in recs[0]}
    out["_household"] = np.repeat(np.arange(n), years)
    keep = out.pop("_alive")
    out = {k: v[keep] for k, v in out.items()}
    # values missing at random in some numeric fields
    mrng = _stream(seed, 3, chunk)
    m = len(out["_year"])
    for name, rate in MISSING_RATES.items():
        col = out[name].astype(np.float64)
        col[mrng.random(m) < rate] = np.nan
        out[name] = col
    return out


# --------------------------------------------------------------------------- public API
def simulate_panel(
    households: int,
    years: int,
    seed: int,
    start_year: int = 2019,
    oracle_draws: int = DEFAULT_ORACLE_DRAWS,
    lines: ReferenceLines | None = None,
    scenario: Scenario | None = None,
    progress: Callable[[int, int], None] | None = None,
    *,
    counties: pd.DataFrame | None = None,
    workers: int | None = None,
) -> pd.DataFrame:
    """A simulated household panel: every contract field, ``at_risk_next`` and ``oracle_p``.

    One record per living household per year, period ``f"{year}-06"`` for
    ``start_year`` … ``start_year + years - 1``, sorted by household and period.
    Households whose last member dies leave the panel (their last label is
    missing). ``at_risk_next`` comes from ``riskml.label.label_panel`` with the
    (scenario-adjusted) ``lines``: NaN on the last year and where the next
    record lacks an input of the label. ``oracle_p`` is the probability of
    ``at_risk_next = 1`` given the full simulated state (``oracle_draws``
    re-simulations of the next year; 0 draws leaves it NaN).

    ``lines`` defaults to ``default_lines()``; every recorded year must be in
    it. ``progress(done, total)`` is called with households simulated so far.
    ``workers`` threads simulate chunks in parallel (default: up to 2); the
    result depends only on the arguments, never on ``workers``.
    """
    if households < 1:
        raise ValueError("households must be at least 1")
    if years < 1:
        raise ValueError("years must be at least 1")
    if oracle_draws < 0:
        raise ValueError("oracle_draws must be ≥ 0")
    if seed < 0:
        raise ValueError("seed must be ≥ 0")
    scenario = scenario or Scenario()
    lines = scenario.adjust_lines(lines if lines is not None else default_lines())
    counties = counties if counties is not None else load_counties()
    w = _build_world(counties, lines, scenario, start_year, years, seed)

    sizes = [min(CHUNK_HOUSEHOLDS, households - a) for a in range(0, households, CHUNK_HOUSEHOLDS)]
    workers = workers or min(2, os.cpu_count() or 1)

    def run(ci: int) -> dict[str, np.ndarray]:
        return _simulate_chunk(ci, sizes[ci], w, seed, start_year, years, oracle_draws)

    parts: list[dict[str, np.ndarray]] = []
    done = 0
    if workers > 1 and len(sizes) > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for ci, part in enumerate(pool.map(run, range(len(sizes)))):
                parts.append(part)
                done += sizes[ci]
                if progress:
                    progress(done, households)
    else:
        for ci in range(len(sizes)):
            parts.append(run(ci))
            done += sizes[ci]
            if progress:
                progress(done, households)

    offsets = np.cumsum([0] + sizes[:-1])
    cols = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    hh = np.concatenate([p["_household"] + off for p, off in zip(parts, offsets, strict=True)])
    width = max(7, len(str(households)))
    ids = np.array([f"H{i:0{width}d}" for i in range(households)], dtype=object)
    periods = {y: f"{y:04d}-{PERIOD_MONTH:02d}" for y in range(start_year, start_year + years)}
    data: dict[str, object] = {
        "household_id": ids[hh],
        "period": pd.Series(cols["_year"]).map(periods).to_numpy(dtype=object),
        "county_code": w.codes[cols["_county"]],
        "village_code": w.village_codes[cols["_village"]],
    }
    for f in schema.FIELDS:
        if f.name not in data:
            values = cols[f.name]
            if f.kind == "float" or (f.kind == "int" and np.isnan(values).any()):
                values = values.astype(np.float64)
            elif f.kind == "int":
                values = np.rint(values).astype(np.int64)
            data[f.name] = values
    df = schema.coerce_frame(pd.DataFrame(data))
    df[schema.LABEL] = label_panel(df, lines)
    df["oracle_p"] = cols["oracle_p"].astype(np.float64)
    return df
