"""The simulated world of assistance assets: what each asset is, its latent state, and the yearly step.

An asset (帮扶资产) is built in a year, accepted at its end and operates from the next
year on. What the register shows (subtype, value, owner, rights status, operator, contract,
caretaker, maintenance fund) is drawn here once, with latent quantities the register never
shows: the operator's (or household's, or caretaker's) quality ``q``, the physical condition
``cond`` in (0, 1], and each subtype's market level (an AR(1) per subtype and year).

One year, from the state at the end of year ``t`` (``step``):

- county floods (a regional disaster year, ``disaster_rate`` of riskml/data/tables/counties.csv)
  damage an asset with a subtype's vulnerability and cut its condition;
- condition decays with age, faster without a caretaker or a maintenance fund; a caretaker
  with a fund repairs part of the wear;
- an operating contract ending at ``t`` is renewed (more often by good operators) or the
  operator leaves;
- the asset stands idle with a probability rising with age, poor condition, no operator,
  an unconfirmed ownership, a weak operator, a weak market and last year's idleness;
- an income-generating asset that works earns a log-normal return rate (subtype base, quality,
  market, condition); a guaranteed return (保底收益) is paid by a good operator more often.

The oracle (``next_year_risk``) is P(idle, or return rate below the floor, next year | the
state now), exact: it sums over the four branches (flood damage or not × contract renewed or
not) the idle probability plus the chance of a low return (a normal tail, the market shock
and the asset's noise together). ``step`` draws from those same branches, so the oracle is
the probability the label is drawn with.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.special import expit, ndtr

from riskml.assets import contract

# --------------------------------------------------------------------------- vocabularies
# the record contract's (riskml.assets.contract), in its order: codes index these tuples
SUBTYPES = tuple(contract.SUBTYPES)
CATEGORIES = tuple(contract.CATEGORIES)
FORMS = tuple(contract.FORMS)
OWNER_TYPES = tuple(contract.OWNER_TYPES)
RIGHTS = tuple(contract.RIGHTS_STATUSES)
MODES = tuple(contract.OPERATING_MODES)
STATUSES = tuple(contract.STATUSES)
FUNDING_SOURCES = tuple(contract.FUNDING_SOURCES)


@dataclass(frozen=True)
class Subtype:
    """Fixed parameters of a subtype."""

    category: str
    share: float  # of all assets
    value_median: float  # original value, yuan
    value_sigma: float  # log-normal spread
    base_return: float  # median return rate of a sound asset (income-generating only)
    decay: float  # yearly loss of condition (log) of a new asset
    life: int  # depreciation years
    vulnerability: float  # P(damaged | county flood)
    damage: float  # share of condition lost when damaged


SUBTYPE = {
    "industrial_base": Subtype("operating", 0.09, 2.0e6, 0.6, 0.050, 0.030, 20, 0.30, 0.30),
    "processing": Subtype("operating", 0.08, 1.5e6, 0.6, 0.050, 0.035, 15, 0.25, 0.30),
    "solar": Subtype("operating", 0.10, 1.2e6, 0.5, 0.070, 0.025, 20, 0.15, 0.25),
    "workshop": Subtype("operating", 0.10, 0.8e6, 0.6, 0.045, 0.030, 20, 0.25, 0.30),
    "tourism_ecommerce": Subtype("operating", 0.06, 0.6e6, 0.7, 0.050, 0.040, 10, 0.20, 0.25),
    "road": Subtype("public_welfare", 0.12, 2.5e6, 0.7, 0.0, 0.040, 20, 0.45, 0.35),
    "water_supply": Subtype("public_welfare", 0.10, 0.9e6, 0.6, 0.0, 0.045, 15, 0.40, 0.35),
    "power": Subtype("public_welfare", 0.05, 1.0e6, 0.6, 0.0, 0.030, 20, 0.30, 0.30),
    "health": Subtype("public_welfare", 0.04, 0.5e6, 0.5, 0.0, 0.030, 20, 0.15, 0.25),
    "education_culture": Subtype("public_welfare", 0.05, 0.6e6, 0.5, 0.0, 0.030, 20, 0.15, 0.25),
    "livestock": Subtype("household", 0.14, 2.0e4, 0.5, 0.080, 0.080, 5, 0.30, 0.40),
    "other": Subtype("household", 0.07, 3.0e4, 0.6, 0.050, 0.050, 8, 0.25, 0.30),
}  # fmt: skip


@dataclass(frozen=True)
class Dynamics:
    """Coefficients of the yearly step (and so of the oracle)."""

    idle_base: float = -3.6
    idle_was_idle: float = 2.6  # idle assets tend to stay idle
    idle_no_operator: float = 2.8  # contract over, nobody runs it
    idle_quality: float = -0.4  # per unit of the latent quality
    idle_condition: float = 4.0  # per unit of lost condition
    idle_age: float = 0.05  # per year of age
    idle_unconfirmed: float = 0.5  # disputed or unclear ownership
    idle_market: float = -0.8  # per unit of the expected market level
    idle_revived: float = -1.0  # a new operator this year
    idle_lame_duck: float = 1.5  # an operator in the last contract year who will not renew
    return_quality: float = 0.35  # log return per unit of quality
    return_condition: float = 0.8  # log return per unit of log condition
    return_noise: float = 0.15  # the asset's own log-normal noise
    return_no_operator: float = -0.5  # run by the village after the operator left
    return_lame_duck: float = -0.4
    paid_lame_duck: float = -1.5
    market_rho: float = 0.6
    market_sigma: float = 0.12
    renew_base: float = 0.6
    renew_quality: float = 1.2
    paid_base: float = 1.2  # a guaranteed return is paid (logit)
    paid_quality: float = 1.0
    decay_age: float = 0.04  # decay grows by this share per year of age
    decay_no_caretaker: float = 0.10
    decay_no_fund: float = 0.06
    repair: float = 0.35  # share of the wear a caretaker with a fund repairs
    flood_scale: float = 1.0  # multiplies each county's disaster rate
    revive: float = 0.35  # an asset without operator finds one at a year end
    dispose_after: int = 3  # idle years before disposal is considered
    dispose: float = 0.3
    confirm: tuple[float, float] = (0.15, 0.6)  # range of the counties' yearly confirmation rate
    caretaker_lost: float = 0.07
    caretaker_found: float = 0.25
    inspection_rate: float = 0.7
    inspection_noise: float = 0.12


@dataclass
class World:
    """Static assets (one entry per asset) and their dynamic state at the end of the latest year."""

    county_codes: np.ndarray  # per county (str)
    county_flood: np.ndarray  # per county: P(flood year)
    county_confirm: np.ndarray  # per county: P(rights confirmed in a year)
    village_codes: np.ndarray  # per village (str)
    # static, per asset
    county: np.ndarray
    village: np.ndarray
    subtype: np.ndarray
    category: np.ndarray
    form: np.ndarray
    build_year: np.ndarray
    value: np.ndarray
    owner_type: np.ndarray
    mode: np.ndarray  # operating mode while an operator runs it
    guaranteed: np.ndarray  # guaranteed return rate (nan: none)
    fund: np.ndarray  # maintenance fund, yuan a year (0: none)
    accepted_month: np.ndarray
    beneficiaries: np.ndarray  # number of beneficiary households
    # dynamic
    q: np.ndarray = field(default_factory=lambda: np.zeros(0))
    cond: np.ndarray = field(default_factory=lambda: np.zeros(0))
    idle: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    idle_years: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int16))
    has_operator: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    contract_start: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    contract_end: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    operator_no: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    caretaker: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    rights: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int8))
    rights_year: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    rights_month: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int8))
    disposed: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    revived: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    last_return: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def n(self) -> int:
        return len(self.subtype)

    @property
    def income_generating(self) -> np.ndarray:
        return self.category != CATEGORIES.index("public_welfare")

    @property
    def contracted(self) -> np.ndarray:
        """Run by an operator under a contract (not the owner itself)."""
        return self.mode != MODES.index("own")


def _villages(county_code: str, k: int) -> list[str]:
    """``k`` village codes of a county: 3-digit township, 3-digit village committee."""
    return [f"{county_code}{101 + v // 6:03d}{201 + v % 6:03d}" for v in range(k)]


def build_world(
    assets: int,
    first_year: int,
    last_year: int,
    counties,  # a county table (riskml.data.simulate.world.load_counties)
    rng: np.random.Generator,
    dyn: Dynamics,
) -> World:
    """``assets`` assets built in ``first_year`` .. ``last_year - 2``, spread over the counties."""
    n = int(assets)
    codes = counties["county_code"].to_numpy(dtype=object)
    nc = len(codes)
    weight = counties["weight"].to_numpy(float)
    county = rng.choice(nc, size=n, p=weight / weight.sum())
    per_county = 12
    village_codes = np.array([v for c in codes for v in _villages(str(c), per_county)], object)
    village = county * per_county + rng.integers(0, per_county, size=n)
    names = list(SUBTYPE)
    shares = np.array([SUBTYPE[s].share for s in names])
    subtype = rng.choice(len(names), size=n, p=shares / shares.sum())
    cat_of = np.array([CATEGORIES.index(SUBTYPE[s].category) for s in names])
    category = cat_of[subtype]
    median = np.array([SUBTYPE[s].value_median for s in names])[subtype]
    sigma = np.array([SUBTYPE[s].value_sigma for s in names])[subtype]
    value = np.round(median * np.exp(sigma * rng.standard_normal(n)), -2)
    build_year = rng.integers(first_year, last_year - 1, size=n)

    operating = category == CATEGORIES.index("operating")
    welfare = category == CATEGORIES.index("public_welfare")
    household = category == CATEGORIES.index("household")
    form = np.where(household & (subtype == names.index("livestock")), 2, 0)
    equity = operating & (rng.random(n) < 0.15)
    form = np.where(equity, 1, form)
    owner_type = np.where(household, 0, np.where(welfare & (rng.random(n) < 0.25), 2, 1)).astype(
        np.int8
    )
    # operating assets: own 20%, entrusted 25%, cooperative 20%, leased 20%; equity: shareholding
    mode_draw = rng.choice(4, size=n, p=[0.2, 0.25, 0.2, 0.35])
    mode = np.where(operating, np.where(mode_draw == 3, 3, mode_draw), 0)
    mode = np.where(equity, 4, mode)
    mode = np.where(welfare & (rng.random(n) < 0.2), 1, mode)  # entrusted water works, power
    guarantee_levels = np.array([0.03, 0.04, 0.05, 0.06, 0.08])
    guaranteed = np.where(
        operating & np.isin(mode, [1, 3, 4]),
        guarantee_levels[rng.integers(0, len(guarantee_levels), size=n)],
        np.nan,
    )
    has_fund = np.where(welfare, rng.random(n) < 0.65, rng.random(n) < 0.8)
    fund = np.where(has_fund, np.round(value * rng.uniform(0.005, 0.02, size=n), -1), 0.0)
    beneficiaries = np.where(household, 1, rng.integers(5, 120, size=n))

    w = World(
        county_codes=codes,
        county_flood=counties["disaster_rate"].to_numpy(float) * dyn.flood_scale,
        county_confirm=rng.uniform(*dyn.confirm, size=nc),
        village_codes=village_codes,
        county=county,
        village=village,
        subtype=subtype,
        category=category,
        form=form,
        build_year=build_year,
        value=value,
        owner_type=owner_type,
        mode=mode,
        guaranteed=guaranteed,
        fund=fund,
        accepted_month=rng.integers(1, 13, size=n),
        beneficiaries=beneficiaries,
    )
    w.q = rng.standard_normal(n)
    w.cond = np.ones(n)
    w.idle = np.zeros(n, bool)
    w.idle_years = np.zeros(n, np.int16)
    w.has_operator = np.ones(n, bool)
    length = rng.choice([3, 5, 10], size=n)
    w.contract_start = (build_year + 1).astype(np.int32)
    w.contract_end = np.where(w.contracted, build_year + length, -1).astype(np.int32)
    w.operator_no = np.ones(n, np.int32)
    w.caretaker = np.where(welfare, rng.random(n) < 0.75, True)
    # household assets are handed over at acceptance; the others start unconfirmed
    w.rights = np.where(household, 3, 0).astype(np.int8)
    w.rights_year = np.where(household, build_year, -1).astype(np.int32)
    w.rights_month = w.accepted_month.astype(np.int8)
    w.disposed = np.zeros(n, bool)
    w.revived = np.zeros(n, bool)
    w.last_return = np.full(n, np.nan)
    return w


# --------------------------------------------------------------------------- one year
def _branches(w: World, year: int, market: np.ndarray, dyn: Dynamics, floor: float) -> dict:
    """Per asset, the probabilities of next year's branches and outcomes, from the state now.

    ``year`` is the coming year; ``market`` the subtypes' market levels of the year now.
    Arrays of shape (n, 2, 2): [damaged][operator will not renew]. A contract ending at the end
    of the coming year is renewed or not; an operator who will not renew winds down in it (a
    "lame duck": more idle, lower returns, the guarantee paid less often) and leaves at its end.
    """
    s = w.subtype
    prm = [SUBTYPE[k] for k in SUBTYPE]
    vul = np.array([p.vulnerability for p in prm])[s]
    dmg = np.array([p.damage for p in prm])[s]
    decay0 = np.array([p.decay for p in prm])[s]
    base = np.array([p.base_return if p.base_return > 0 else 1.0 for p in prm])[s]
    age = (year - w.build_year).astype(float)

    p_damage = np.clip(w.county_flood[w.county] * vul, 0.0, 1.0)
    expiring = w.contracted & w.has_operator & (w.contract_end == year)
    p_leave = np.where(expiring, 1.0 - expit(dyn.renew_base + dyn.renew_quality * w.q), 0.0)

    decay = (
        decay0 * (1.0 + dyn.decay_age * age)
        + dyn.decay_no_caretaker * ~w.caretaker
        + dyn.decay_no_fund * (w.fund <= 0)
    )
    worn = w.cond * np.exp(-decay)
    fixing = w.caretaker & (w.fund > 0)
    worn = np.where(fixing, worn + dyn.repair * (w.cond - worn), worn)
    cond = np.stack([worn, worn * (1.0 - dmg)], axis=1)  # (n, 2) by damage
    cond = np.clip(cond, 0.05, 1.0)

    income = w.income_generating
    exp_market = dyn.market_rho * market[s]
    no_op = w.contracted & ~w.has_operator
    leaving = np.stack([np.zeros(len(s), bool), expiring], axis=1)  # (n, 2) by not renewing
    h = (
        dyn.idle_base
        + dyn.idle_was_idle * w.idle
        + dyn.idle_quality * w.q
        + dyn.idle_age * age
        + dyn.idle_unconfirmed * (w.rights == 0)
        + dyn.idle_market * exp_market * income
        + dyn.idle_revived * w.revived
        + dyn.idle_no_operator * no_op
    )
    logit = (
        h[:, None, None]
        + dyn.idle_condition * (1.0 - cond)[:, :, None]
        + dyn.idle_lame_duck * leaving[:, None, :]
    )
    p_idle = expit(logit)

    mu = (np.log(base) + dyn.return_quality * w.q + exp_market)[
        :, None, None
    ] + dyn.return_condition * np.log(cond)[:, :, None]
    mu = (
        mu
        + (dyn.return_no_operator * no_op)[:, None, None]
        + (dyn.return_lame_duck * leaving[:, None, :])
    )
    sd = np.sqrt(dyn.return_noise**2 + dyn.market_sigma**2)
    p_market_low = ndtr((np.log(floor) - mu) / sd)
    covered = (w.guaranteed >= floor) & w.contracted
    paid_logit = (dyn.paid_base + dyn.paid_quality * w.q)[:, None] + dyn.paid_lame_duck * leaving
    p_paid = np.where((covered & ~no_op)[:, None], expit(paid_logit), 0.0)
    p_paid = np.broadcast_to(p_paid[:, None, :], p_idle.shape)
    p_low = np.where(income[:, None, None], p_market_low * (1.0 - p_paid), 0.0)

    pd_ = np.stack([1.0 - p_damage, p_damage], axis=1)[:, :, None]
    pl_ = np.stack([1.0 - p_leave, p_leave], axis=1)[:, None, :]
    return {
        "weight": pd_ * pl_,
        "p_damage": p_damage,
        "p_leave": p_leave,
        "expiring": expiring,
        "cond": cond,
        "p_idle": p_idle,
        "mu": mu,
        "p_paid": p_paid,
        "p_low": p_low,
        "age": age,
        "damage_share": dmg,
    }


def branches(w: World, year: int, market: np.ndarray, dyn: Dynamics, floor: float) -> dict:
    """The branches of ``year`` from the state now (shared by ``next_year_risk`` and ``step``)."""
    return _branches(w, year, market, dyn, floor)


def next_year_risk(
    w: World, year: int, market: np.ndarray, dyn: Dynamics, floor: float, b: dict | None = None
) -> np.ndarray:
    """The oracle: P(idle or return rate below ``floor`` in ``year`` | the state at the end of
    ``year - 1``). ``b``: the year's ``branches`` when already computed."""
    b = _branches(w, year, market, dyn, floor) if b is None else b
    adverse = b["p_idle"] + (1.0 - b["p_idle"]) * b["p_low"]
    return (b["weight"] * adverse).sum(axis=(1, 2))


def next_market(market: np.ndarray, dyn: Dynamics, rng: np.random.Generator) -> np.ndarray:
    """Next year's market level of each subtype (an AR(1) around zero)."""
    return dyn.market_rho * market + dyn.market_sigma * rng.standard_normal(market.shape)


def step(
    w: World,
    year: int,
    market: np.ndarray,
    new_market: np.ndarray,
    dyn: Dynamics,
    floor: float,
    rng: np.random.Generator,
    active: np.ndarray,
    b: dict | None = None,
) -> dict[str, np.ndarray]:
    """Simulate ``year`` for the ``active`` assets (updating ``w`` in place); the year's figures.

    ``market``: last year's market levels; ``new_market``: this year's (drawn by
    ``next_market``, shared by every asset of a subtype). Every draw is made for every asset
    whether it is active or not, so a run is the same whatever the active set. ``b``: the
    year's ``branches`` when already computed (from the same state).
    """
    n = w.n
    b = _branches(w, year, market, dyn, floor) if b is None else b
    flood_county = rng.random(len(w.county_codes)) < w.county_flood
    damaged = flood_county[w.county] & (
        rng.random(n) < np.array([SUBTYPE[k].vulnerability for k in SUBTYPE])[w.subtype]
    )
    left = b["expiring"] & (rng.random(n) < b["p_leave"])
    di, li = damaged.astype(int), left.astype(int)
    rows = np.arange(n)
    cond_before = w.cond
    cond = b["cond"][rows, di]
    idle = rng.random(n) < b["p_idle"][rows, di, li]

    # the return: the market's shock is the subtype's, the noise the asset's own
    shock = new_market[w.subtype] - dyn.market_rho * market[w.subtype]
    eps = dyn.return_noise * rng.standard_normal(n)
    log_r = b["mu"][rows, di, li] + shock + eps
    r = np.exp(log_r)
    paid = rng.random(n) < b["p_paid"][rows, di, li]
    r = np.where(paid, np.maximum(r, np.nan_to_num(w.guaranteed)), r)
    income_gen = w.income_generating
    r = np.where(income_gen, np.where(idle, 0.0, r), np.nan)
    low = income_gen & ~idle & (r < floor)

    # the year's other figures
    was_idle = w.idle.copy()
    months_idle = np.where(
        idle,
        np.where(was_idle, 12, rng.integers(6, 13, size=n)),
        np.minimum(rng.poisson(6.0 * (1.0 - cond)), 5),
    )
    need = (1.0 - cond) * w.value * 0.03
    fixing = w.caretaker & (w.fund > 0)
    maintenance = np.where(
        fixing, np.round(np.minimum(w.fund, need) * rng.uniform(0.8, 1.2, size=n), -1), 0.0
    )
    damage = np.where(damaged, np.round(w.value * cond_before * b["damage_share"], -2), 0.0)
    inspected = rng.random(n) < dyn.inspection_rate
    seen = cond + dyn.inspection_noise * rng.standard_normal(n)
    inspection = np.where(seen >= 0.75, 0, np.where(seen >= 0.5, 1, 2))
    inspection = np.where(inspected, inspection, -1)

    # the state at the end of the year (assets not active this year keep theirs)
    new: dict[str, np.ndarray] = {"cond": cond, "idle": idle, "last_return": r}
    new["idle_years"] = np.where(idle, w.idle_years + 1, 0).astype(np.int16)
    renewed = b["expiring"] & ~left
    length = rng.choice([3, 5, 10], size=n)
    contract_end = np.where(renewed, w.contract_end + length, w.contract_end)
    # year-end events: the operator who did not renew leaves; an asset that stood without
    # operator this year may find a new one; rights, caretakers, disposal
    revive = w.contracted & ~w.has_operator & (rng.random(n) < dyn.revive)
    has_operator = np.where(left, False, w.has_operator)
    new["q"] = np.where(revive, rng.standard_normal(n), w.q)
    new["has_operator"] = has_operator | revive
    new["contract_start"] = np.where(revive, year + 1, w.contract_start).astype(np.int32)
    new["contract_end"] = np.where(revive, year + length, contract_end).astype(np.int32)
    new["operator_no"] = np.where(revive, w.operator_no + 1, w.operator_no).astype(np.int32)
    new["revived"] = revive
    up = rng.random(n)
    step_p = np.where(w.rights == 0, w.county_confirm[w.county], 0.4)
    move = (w.rights < 3) & (up < step_p)
    new["rights"] = np.where(move, w.rights + 1, w.rights).astype(np.int8)
    new["rights_year"] = np.where(move, year, w.rights_year).astype(np.int32)
    new["rights_month"] = np.where(move, rng.integers(1, 13, size=n), w.rights_month).astype(
        np.int8
    )
    welfare = ~income_gen
    flip = rng.random(n)
    new["caretaker"] = np.where(
        welfare,
        np.where(w.caretaker, flip >= dyn.caretaker_lost, flip < dyn.caretaker_found),
        w.caretaker,
    )
    disposed = active & (new["idle_years"] >= dyn.dispose_after) & (rng.random(n) < dyn.dispose)
    new["disposed"] = w.disposed | disposed
    for name, value in new.items():
        setattr(w, name, np.where(active, value, getattr(w, name)))
    return {
        "idle": idle,
        "low": low,
        "adverse": idle | low,
        "return_rate": r,
        "income": np.where(income_gen, np.round(r * w.value, 0), np.nan),
        "months_idle": months_idle.astype(np.int16),
        "maintenance_spent": maintenance,
        "damage": damage,
        "inspection": inspection.astype(np.int8),
        "disposed": disposed,
    }
