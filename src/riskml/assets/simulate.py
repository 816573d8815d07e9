"""The simulated asset panel: asset-year observations with the label and its oracle.

``simulate(SimConfig(...))`` builds a world of assets (riskml.assets.world), runs it year by
year from ``first_year`` to ``last_year`` and returns one row per active asset and year in the
observation schema (riskml.assets.observation), with ``adverse_next`` (idle or below the return
floor the next year; null in the last year and for disposed assets) and ``oracle_p`` (the true
probability of it, from the latent state). Deterministic given the seed; vectorised over assets
(1,000,000 asset-years in 5-7 s on the shared benchmark machine, bench/bench_assets.py). Ids,
codes and choice fields are categoricals, the other texts Python strings.

``register_records(sim)`` gives the register as it stands at the end of the last year: the
asset records with their funding sources and beneficiary households, in the record contract's
field names.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np
import pandas as pd

from riskml.assets import world as wd
from riskml.assets.observation import FIELD_NAMES, INSPECTION_RESULTS, LABEL, ORACLE

DEFAULT_FLOOR = 0.03


@dataclass(frozen=True)
class SimConfig:
    """What to simulate. ``return_floor``: the floor of the label (see riskml.assets.train)."""

    assets: int = 20_000
    first_year: int = 2014
    last_year: int = 2025
    seed: int = 7
    return_floor: float = DEFAULT_FLOOR
    dynamics: wd.Dynamics = field(default_factory=wd.Dynamics)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> SimConfig:
        raw = dict(raw or {})
        dyn_raw = raw.pop("dynamics", {}) or {}
        known = {f.name for f in fields(cls)} - {"dynamics"}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ValueError(f"simulation config: unknown key(s) {unknown}; known: {sorted(known)}")
        dyn_known = {f.name for f in fields(wd.Dynamics)}
        bad = sorted(set(dyn_raw) - dyn_known)
        if bad:
            raise ValueError(f"simulation config: unknown dynamics key(s) {bad}")
        dyn = replace(wd.Dynamics(), **dyn_raw)
        cfg = cls(**raw, dynamics=dyn)
        if cfg.assets < 1 or cfg.last_year < cfg.first_year + 3:
            raise ValueError("simulation config: need assets >= 1 and last_year >= first_year + 3")
        return cfg


@dataclass
class Simulation:
    panel: pd.DataFrame
    world: wd.World
    config: SimConfig


def _date_table(first: int, last: int, day: int) -> np.ndarray:
    """ISO dates ``YYYY-MM-day`` indexed by (year - first) * 12 + month - 1."""
    return np.array(
        [f"{y}-{m:02d}-{day:02d}" for y in range(first, last + 1) for m in range(1, 13)], object
    )


class _Strings:
    """The per-asset strings of a world (ids, names) and the date tables, built once."""

    def __init__(self, w: wd.World, cfg: SimConfig):
        n = w.n
        self.first = cfg.first_year - 1
        span = cfg.last_year + 12
        self.dates = _date_table(self.first, span, 15)
        self.starts = np.array([f"{y}-01-01" for y in range(self.first, span + 1)], object)
        self.ends = np.array([f"{y}-12-31" for y in range(self.first, span + 1)], object)
        k = np.arange(n)
        self.asset_id = np.array([f"AS{i:07d}" for i in k], object)
        self.project_ids = np.array([f"PJ{j:07d}" for j in range((n + 2) // 3)], object)
        self.county = w.county_codes[w.county]
        self.village = w.village_codes[w.village]
        collective = np.array([f"{v}-collective" for v in self.village], object)
        household = np.array([f"HH{i:08d}" for i in k], object)
        dept = np.array([f"{c}-dept" for c in self.county], object)
        self.owner = np.where(
            w.owner_type == 0, household, np.where(w.owner_type == 1, collective, dept)
        )
        self.operator_base = np.array([f"OP{i:07d}-" for i in k], object)
        self.suffix = np.array([str(i) for i in range(64)], object)
        self.caretaker = np.array([f"CT{i:07d}" for i in k], object)

    def date(self, year: np.ndarray, month: np.ndarray) -> np.ndarray:
        return self.dates[(year - self.first) * 12 + month - 1]


def _rows(
    w: wd.World, idx: np.ndarray, year: int, fig: dict, lags: dict, s: _Strings
) -> dict[str, np.ndarray]:
    """The observation of year ``year`` for the assets ``idx`` (state at the year's end)."""
    age = year - w.build_year[idx]
    life = np.array([wd.SUBTYPE[k].life for k in wd.SUBTYPE])[w.subtype[idx]]
    value = w.value[idx]
    contracted = w.contracted[idx]
    mode = w.mode[idx]  # the contract's mode, also after it expired
    rights = w.rights[idx]
    st = wd.STATUSES.index
    status = np.where(
        fig["disposed"][idx],
        st("disposed"),
        np.where(
            fig["idle"][idx],
            st("idle"),
            np.where(fig["low"][idx], st("low_efficiency"), st("operating")),
        ),
    )
    operator = np.where(
        contracted,
        s.operator_base[idx] + s.suffix[np.minimum(w.operator_no[idx], 63)],
        s.owner[idx],
    )
    out = {
        "asset_id": idx,
        "project_id": idx // 3,
        "build_year": w.build_year[idx].astype(np.int64),
        "category": w.category[idx],
        "subtype": w.subtype[idx],
        "form": w.form[idx],
        "original_value": value,
        "book_value": np.round(value * np.clip(1.0 - age / life, 0.0, 1.0), -1),
        "county_code": w.county[idx],
        "village_code": w.village[idx],
        "owner_type": w.owner_type[idx],
        "owner": s.owner[idx],
        "rights_status": rights,
        "accepted_date": s.date(w.build_year[idx], w.accepted_month[idx]),
        "rights_date": np.where(
            rights > 0, s.date(np.maximum(w.rights_year[idx], s.first), w.rights_month[idx]), None
        ),
        "operator": operator,
        "operating_mode": mode,
        "contract_start": np.where(contracted, s.starts[w.contract_start[idx] - s.first], None),
        "contract_end": np.where(
            contracted, s.ends[np.maximum(w.contract_end[idx], s.first) - s.first], None
        ),
        "guaranteed_return_rate": w.guaranteed[idx],
        "caretaker": np.where(w.caretaker[idx], s.caretaker[idx], None),
        "maintenance_fund": w.fund[idx],
        "status": status,
        "year": np.full(len(idx), year, np.int64),
        "income": fig["income"][idx],
        "return_rate": np.round(fig["return_rate"][idx], 6),
        "months_idle": fig["months_idle"][idx].astype(np.int64),
        "maintenance_spent": fig["maintenance_spent"][idx],
        "inspection_result": fig["inspection"][idx],
        "damage": fig["damage"][idx],
    }
    for name, arr in lags.items():
        out[name] = arr[idx]
    return out


def simulate(cfg: SimConfig | None = None) -> Simulation:
    """The asset panel of ``cfg`` (see the module's docstring)."""
    from riskml.data.simulate.world import load_counties

    cfg = cfg or SimConfig()
    dyn = cfg.dynamics
    rng = np.random.default_rng(cfg.seed)
    w = wd.build_world(cfg.assets, cfg.first_year, cfg.last_year, load_counties(), rng, dyn)
    s = _Strings(w, cfg)
    n = w.n
    market = dyn.market_sigma * rng.standard_normal(len(wd.SUBTYPES))
    nan = np.full(n, np.nan)
    lags = {
        "income_lag1": nan.copy(),
        "income_lag2": nan.copy(),
        "return_rate_lag1": nan.copy(),
        "return_rate_lag2": nan.copy(),
        "months_idle_lag1": nan.copy(),
    }
    parts: list[dict[str, np.ndarray]] = []
    prev_idx: np.ndarray | None = None
    for year in range(cfg.first_year + 1, cfg.last_year + 1):
        active = (w.build_year < year) & ~w.disposed
        b = wd.branches(w, year, market, dyn, cfg.return_floor)
        risk = wd.next_year_risk(w, year, market, dyn, cfg.return_floor, b)
        new_market = wd.next_market(market, dyn, rng)
        fig = wd.step(w, year, market, new_market, dyn, cfg.return_floor, rng, active, b)
        if prev_idx is not None:
            alive = parts[-1]["status"] != wd.STATUSES.index("disposed")
            parts[-1][ORACLE] = np.where(alive, risk[prev_idx], np.nan)
            parts[-1][LABEL] = np.where(alive, fig["adverse"][prev_idx].astype(float), np.nan)
        idx = np.flatnonzero(active)
        parts.append(_rows(w, idx, year, fig, lags, s))
        # this year's figures are next year's lags
        lags["income_lag2"] = np.where(active, lags["income_lag1"], lags["income_lag2"])
        lags["return_rate_lag2"] = np.where(
            active, lags["return_rate_lag1"], lags["return_rate_lag2"]
        )
        lags["income_lag1"] = np.where(active, fig["income"], lags["income_lag1"])
        lags["return_rate_lag1"] = np.where(
            active, np.round(fig["return_rate"], 6), lags["return_rate_lag1"]
        )
        lags["months_idle_lag1"] = np.where(active, fig["months_idle"], lags["months_idle_lag1"])
        market = new_market
        prev_idx = idx
    last = parts[-1]
    alive = last["status"] != wd.STATUSES.index("disposed")
    risk = wd.next_year_risk(w, cfg.last_year + 1, market, dyn, cfg.return_floor)
    last[ORACLE] = np.where(alive, risk[prev_idx], np.nan)
    last[LABEL] = np.full(len(prev_idx), np.nan)
    columns = (*FIELD_NAMES, LABEL, ORACLE)
    data: dict[str, Any] = {c: np.concatenate([p[c] for p in parts]) for c in columns}
    # codes → categoricals (cheap for a million rows); the other texts stay Python strings
    categories = {
        "asset_id": s.asset_id, "project_id": s.project_ids, "category": wd.CATEGORIES,
        "subtype": wd.SUBTYPES, "form": wd.FORMS, "county_code": w.county_codes,
        "village_code": w.village_codes, "owner_type": wd.OWNER_TYPES, "rights_status": wd.RIGHTS,
        "operating_mode": wd.MODES, "status": wd.STATUSES, "inspection_result": INSPECTION_RESULTS,
    }  # fmt: skip
    for name, cats in categories.items():
        data[name] = pd.Categorical.from_codes(data[name].astype(np.int64), categories=list(cats))
    for name in (
        "owner",
        "accepted_date",
        "rights_date",
        "operator",
        "contract_start",
        "contract_end",
        "caretaker",
    ):
        data[name] = pd.Series(data[name], dtype=object)
    panel = pd.DataFrame(data)
    panel["months_idle_lag1"] = panel["months_idle_lag1"].astype("Int64")
    return Simulation(panel=panel, world=w, config=cfg)


def simulate_panel(assets: int = 20_000, seed: int = 7, **kw: Any) -> pd.DataFrame:
    """The panel alone (``simulate(SimConfig(assets=..., seed=..., **kw)).panel``)."""
    return simulate(SimConfig(assets=assets, seed=seed, **kw)).panel


# --------------------------------------------------------------------------- the register
def register_records(sim: Simulation) -> list[dict[str, Any]]:
    """The register at the end of the last year: one record per asset, with funding sources
    (up to three, summing to the original value) and beneficiary households (shares summing to 1).
    """
    panel = sim.panel
    last = panel.sort_values(["asset_id", "year"]).drop_duplicates("asset_id", keep="last")
    record_cols = [c for c in FIELD_NAMES if c not in _YEAR_ONLY]
    rng = np.random.default_rng(sim.config.seed + 1)
    w = sim.world
    by_id = {f"AS{i:07d}": i for i in range(w.n)}
    out = []
    for rec in last[record_cols].to_dict("records"):
        i = by_id[rec["asset_id"]]
        value = float(rec["original_value"])
        k = int(rng.integers(1, 4))
        sources = rng.choice(len(wd.FUNDING_SOURCES), size=k, replace=False)
        shares = rng.dirichlet(np.ones(k))
        amounts = np.round(shares * value, 2)
        amounts[-1] = round(value - amounts[:-1].sum(), 2)
        rec["funding"] = [
            {"source": wd.FUNDING_SOURCES[j], "amount": float(a)}
            for j, a in zip(sources, amounts, strict=True)
        ]
        m = int(w.beneficiaries[i])
        if rec["owner_type"] == "household":
            rec["beneficiaries"] = [{"household_id": rec["owner"], "share": 1.0}]
        else:
            share = np.round(np.full(m, 1.0 / m), 6)
            share[-1] = round(1.0 - share[:-1].sum(), 6)
            rec["beneficiaries"] = [
                {"household_id": f"HB{i:07d}{j:03d}", "share": float(x)}
                for j, x in enumerate(share)
            ]
        out.append({k2: (None if _is_missing(v) else v) for k2, v in rec.items()})
    return out


_YEAR_ONLY = {
    "year", "income", "return_rate", "months_idle", "maintenance_spent", "inspection_result",
    "damage", "income_lag1", "income_lag2", "return_rate_lag1", "return_rate_lag2",
    "months_idle_lag1",
}  # fmt: skip


def _is_missing(v: Any) -> bool:
    if isinstance(v, list):
        return False
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False
