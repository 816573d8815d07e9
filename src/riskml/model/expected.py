"""How many of a group will fall below the line: the sum of calibrated risks, with an interval.

With independent events of probabilities p_i the count is Poisson-binomial; its mean is the
sum of the p_i. ``expected_count`` gives the mean and a central interval: exact (the
distribution by dynamic programming) up to ``EXACT_MAX`` households, a normal approximation
with continuity correction beyond (its error is small there: the variance is large).
Independence is an assumption: a shared shock (a county's disaster) makes the true interval
wider, which the pages say.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

EXACT_MAX = 3_000


@dataclass(frozen=True)
class ExpectedCount:
    households: int
    expected: float
    low: int
    high: int
    level: float


DFT_MAX = 400  # up to here the distribution from its characteristic function (one matrix)


def poisson_binomial(p: np.ndarray) -> np.ndarray:
    """P(count = k) for k = 0..n, exactly (to rounding).

    Up to ``DFT_MAX`` probabilities, by the discrete Fourier transform of the characteristic
    function (Hong 2013, "On computing the distribution function for the Poisson binomial
    distribution"): one vectorised product, where the recursion is a Python loop per
    household (a county's worklist computes some two hundred villages'); beyond, the recursion.
    """
    p = np.asarray(p, dtype=float)
    n = len(p)
    if 0 < n <= DFT_MAX:
        w = np.exp(2j * np.pi * np.arange(n + 1) / (n + 1))
        cf = np.prod(1.0 - p[None, :] + p[None, :] * w[:, None], axis=1)
        dist = np.clip(np.fft.fft(cf).real / (n + 1), 0.0, None)
        return dist / dist.sum()
    dist = np.zeros(len(p) + 1)
    dist[0] = 1.0
    for i, q in enumerate(p, start=1):
        dist[1 : i + 1] = dist[1 : i + 1] * (1 - q) + dist[:i] * q
        dist[0] *= 1 - q
    return dist


def expected_count(p: np.ndarray | list[float], level: float = 0.90) -> ExpectedCount:
    """The expected count and a central ``level`` interval (missing risks are left out)."""
    arr = np.asarray(p, dtype=float)
    arr = np.clip(arr[~np.isnan(arr)], 0.0, 1.0)
    n = len(arr)
    mean = float(arr.sum())
    if n == 0:
        return ExpectedCount(0, 0.0, 0, 0, level)
    tail = (1 - level) / 2
    if n <= EXACT_MAX:
        cdf = np.cumsum(poisson_binomial(arr))
        low = int(np.searchsorted(cdf, tail, side="left"))
        high = int(np.searchsorted(cdf, 1 - tail, side="left"))
        return ExpectedCount(n, mean, low, min(high, n), level)
    sd = float(np.sqrt((arr * (1 - arr)).sum()))
    z = NormalDist().inv_cdf(1 - tail)
    low = max(0, int(np.floor(mean - z * sd + 0.5)))
    high = min(n, int(np.ceil(mean + z * sd - 0.5)))
    return ExpectedCount(n, mean, low, high, level)
