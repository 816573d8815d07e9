"""The panel: chunks of households on their own random streams, and ``simulate_panel``."""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd

from riskml.data import schema
from riskml.data.label import label_panel
from riskml.data.reference import ReferenceLines, default_lines

from .constants import CHUNK_HOUSEHOLDS, DEFAULT_ORACLE_DRAWS, MISSING_RATES, PERIOD_MONTH
from .latent import V2Params
from .oracle import oracle
from .scenario import Scenario
from .state import init_state
from .step import step
from .v2 import simulate_chunk_v2
from .world import World, build_world, load_counties

VERSIONS = (1, 2)  # simulator versions; 1 is the default, kept for comparisons


def _stream(seed: int, kind: int, chunk: int) -> np.random.Generator:
    return np.random.Generator(
        np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(kind, chunk)))
    )


def _simulate_chunk(
    chunk: int,
    n: int,
    w: World,
    seed: int,
    start_year: int,
    years: int,
    draws: int,
) -> dict[str, np.ndarray]:
    """Simulate ``n`` households; columns in household-major order, dead households dropped."""
    rng = _stream(seed, 1, chunk)
    orng = _stream(seed, 2, chunk)
    s = init_state(n, w, rng)
    for year in range(w.first_year + 1, start_year):
        s, _ = step(s, w, year, w.sev[year - w.first_year, s.county], rng)
    recs: list[dict[str, np.ndarray]] = []
    for k in range(years):
        year = start_year + k
        s, rec = step(s, w, year, w.sev[year - w.first_year, s.county], rng)
        rec["_alive"] = s.alive.copy()
        rec["_year"] = np.full(n, year)
        rec["_village"] = s.village
        rec["_county"] = s.county
        rec["oracle_p"] = oracle(s, w, year + 1, draws, orng) if draws > 0 else np.full(n, np.nan)
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
    version: int = 1,
    v2_params: V2Params | None = None,
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

    ``version`` 2 simulates the harder world of ``riskml.data.simulate.v2``
    (parameters ``v2_params``, default ``V2Params()``): the panel then has a
    ``detected`` column (detected by the simulated monitoring system on that
    record, supported the next year; not a model feature) and
    ``attrs["simulator_version"] = 2``. Version 1's output is unchanged.
    """
    if version not in VERSIONS:
        raise ValueError(f"version must be one of {VERSIONS}, got {version}")
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
    w = build_world(counties, lines, scenario, start_year, years, seed)

    sizes = [min(CHUNK_HOUSEHOLDS, households - a) for a in range(0, households, CHUNK_HOUSEHOLDS)]
    workers = workers or min(2, os.cpu_count() or 1)

    params = v2_params or V2Params()

    def run(ci: int) -> dict[str, np.ndarray]:
        if version == 2:
            return simulate_chunk_v2(
                ci, sizes[ci], w, seed, start_year, years, oracle_draws, params
            )
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
    if version == 2:
        df["detected"] = pd.array(cols["detected"].astype(bool), dtype="boolean")
        df.attrs["simulator_version"] = version
    return df
