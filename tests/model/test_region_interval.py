"""Model test: the regional 90% interval covers the realised count at about its nominal rate.

Outcomes are drawn from the calibrated risks (each household falls below the line with its
p, independently) many times, as if the same year were lived again; each area's realised
count is compared with its interval. Exact intervals (small areas) cover at least 90% by
construction (a count is discrete: a little more); normal ones about 90%.
"""

from __future__ import annotations

import numpy as np
import pytest

from riskml.model.expected import poisson_binomial
from riskml.regions.interval import NORMAL_MIN_VARIANCE, exact_bounds, normal_bounds
from riskml.regions.reference import DIGITS
from riskml.regions.run import regional_table
from riskml.regions.synthetic import synthetic_decisions

DRAWS = 400


@pytest.fixture(scope="module")
def world():
    decisions = synthetic_decisions(40_000, ("2025-06",), village_size=120, seed=7).to_pandas()
    return decisions, regional_table(decisions)


@pytest.mark.parametrize("level", ["village", "township", "county", "prefecture", "province"])
def test_interval_covers_realised_counts_at_the_nominal_rate(world, level):
    decisions, table = world
    rows = table[table["level"] == level].reset_index(drop=True)
    code = decisions["village_code"].str.slice(0, DIGITS[level])
    if level == "prefecture":
        code = code + "00"
    group = code.map({c: i for i, c in enumerate(rows["code"])}).to_numpy()
    p = decisions["score"].to_numpy()
    rng = np.random.default_rng(11)
    inside = np.zeros(len(rows))
    for _ in range(DRAWS):
        realised = np.bincount(group, weights=rng.random(len(p)) < p, minlength=len(rows))
        inside += (realised >= rows["expected_low"]) & (realised <= rows["expected_high"])
    coverage = inside / DRAWS
    pooled = float(coverage.mean())
    print(f"{level}: {len(rows)} areas, {rows['interval'].iloc[0]} interval, pooled coverage "
          f"{pooled:.3f}, per-area {coverage.min():.3f}-{coverage.max():.3f}")  # fmt: skip
    assert 0.885 <= pooled <= 0.96
    assert coverage.min() >= 0.83  # 400 draws: a binomial sd of 0.015 per area


def test_normal_endpoints_are_within_one_household_of_exact_where_used():
    """The justification of NORMAL_MIN_VARIANCE: at V just above it, normal ≈ exact."""
    rng = np.random.default_rng(5)
    worst = 0
    for _ in range(100):
        mean_risk = rng.uniform(0.01, 0.3)
        n = int(NORMAL_MIN_VARIANCE / (mean_risk * (1 - mean_risk))) + 1
        a = rng.uniform(0.3, 2.0)
        p = rng.beta(a, a * (1 - mean_risk) / mean_risk, n)
        var = float((p * (1 - p)).sum())
        if var < NORMAL_MIN_VARIANCE:
            continue
        lo, hi = exact_bounds(poisson_binomial(p), 0.90)
        nlo, nhi = normal_bounds(np.array([p.sum()]), np.array([var]), np.array([n]), 0.90)
        worst = max(worst, abs(int(nlo[0]) - lo), abs(int(nhi[0]) - hi))
    assert worst <= 1
