"""The interval of a group's count of households falling below the line, for many groups at once.

A group's count is Poisson-binomial (independent events with the calibrated risks p_i):
mean Σp, variance V = Σp(1−p). Two ways to its central ``level`` interval:

* **normal** (with continuity correction, as ``riskml.model.expected``) where V ≥
  ``NORMAL_MIN_VARIANCE`` (25, a standard deviation of 5 households). It needs only the
  group's sums, so it adds up through every level and on Spark. Over 200 random groups
  at V = 20, 25 and 30 (risks drawn from beta distributions with means 0.01–0.3) its
  endpoints differed from the exact ones by at most one household and its coverage was
  0.902–0.93 (exact: 0.901–0.93); the error shrinks with V (Berry–Esseen: ≤ 0.56/√V in the
  distribution function);
* **exact** below that: the distribution by dynamic programming, for all small groups
  at once (``exact_distributions``: groups of similar size in one matrix, one step per
  household rank). The distribution is cut at K = mean + 8·sd + 8 (Bernstein's bound puts
  less than 1e−9 beyond it). A parent area whose V is small has children whose V is
  smaller: its distribution is the convolution of theirs (``convolve``), so households are
  read once, at the village.

Both intervals take the smallest k with P(X ≤ k) ≥ (1 − level)/2 as the low end and the
smallest k with P(X ≤ k) ≥ (1 + level)/2 as the high end (as ``expected_count``): for
small counts the exact interval covers more than ``level`` (a count is discrete).
Independence is an assumption: a shared shock (a county's disaster) makes the true
interval wider.
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np

NORMAL_MIN_VARIANCE = 25.0
TAIL_SD = 8.0
BLOCK_CELLS = 2_000_000  # matrix cells per block of groups in the dynamic programme


def truncation(mean: np.ndarray, var: np.ndarray, n: np.ndarray) -> np.ndarray:
    """The largest count kept in a group's exact distribution (≤ n)."""
    k = np.ceil(np.asarray(mean) + TAIL_SD * np.sqrt(np.asarray(var)) + TAIL_SD)
    return np.minimum(np.asarray(n), k).astype(np.int64)


def needs_exact(var: np.ndarray) -> np.ndarray:
    return np.asarray(var) < NORMAL_MIN_VARIANCE


def exact_distributions(group: np.ndarray, p: np.ndarray, kmax: np.ndarray) -> list[np.ndarray]:
    """P(count = k), k = 0..kmax[g], of every group g = 0..len(kmax)−1 whose members are
    the households with ``group == g`` and risks ``p`` (any order)."""
    n_groups = len(kmax)
    group = np.asarray(group, dtype=np.int64)
    p = np.clip(np.asarray(p, dtype=float), 0.0, 1.0)
    counts = np.bincount(group, minlength=n_groups)
    size = np.maximum(counts, 1)
    bucket = np.left_shift(1, np.ceil(np.log2(size)).astype(np.int64))  # next power of 2
    by_bucket = np.lexsort((np.asarray(kmax), bucket))  # similar sizes side by side
    new_id = np.empty(n_groups, dtype=np.int64)
    new_id[by_bucket] = np.arange(n_groups)
    hh_group = new_id[group]
    order = np.argsort(hh_group, kind="stable")
    hh_group, hp = hh_group[order], p[order]
    sorted_counts = counts[by_bucket]
    starts = np.concatenate([[0], np.cumsum(sorted_counts)])
    rank = np.arange(len(hp)) - starts[hh_group]
    kmax_sorted = np.asarray(kmax, dtype=np.int64)[by_bucket]
    out: list[np.ndarray] = [np.ones(1)] * n_groups
    first = 0
    while first < n_groups:
        width = int(bucket[by_bucket[first]])
        last = first
        cells = 0
        while last < n_groups and int(bucket[by_bucket[last]]) == width:
            row_cells = width + int(kmax_sorted[last]) + 1
            if last > first and cells + row_cells > BLOCK_CELLS:
                break
            cells += row_cells
            last += 1
        lo, hi = starts[first], starts[last]
        rows = hh_group[lo:hi] - first
        steps = int(sorted_counts[first:last].max(initial=0))
        k_top = int(kmax_sorted[first:last].max(initial=0))
        # household rank by group, and count by group: each step reads and writes whole rows
        P = np.zeros((max(steps, 1), last - first))
        P[rank[lo:hi], rows] = hp[lo:hi]
        dist = np.zeros((k_top + 1, last - first))
        dist[0] = 1.0
        moved = np.empty_like(dist)
        for j in range(steps):
            q = P[j]
            top = min(j + 1, k_top)  # after j+1 households the count is at most j+1
            # d_k <- d_k (1 - q) + d_(k-1) q, i.e. d_k += q (d_(k-1) - d_k) from old values
            m = moved[:top]
            np.subtract(dist[:top], dist[1 : top + 1], out=m)
            m *= q
            dist[1 : top + 1] += m
            dist[0] *= 1.0 - q
        for i in range(last - first):
            out[int(by_bucket[first + i])] = dist[: int(kmax_sorted[first + i]) + 1, i].copy()
        first = last
    return out


def convolve(dists: list[np.ndarray], k: int) -> np.ndarray:
    """The distribution of a sum of independent counts, cut at ``k``."""
    out = np.ones(1)
    for d in dists:
        out = np.convolve(out, d)[: k + 1]
    return out


def exact_bounds(dist: np.ndarray, level: float) -> tuple[int, int]:
    tail = (1 - level) / 2
    cdf = np.cumsum(dist)
    low = int(np.searchsorted(cdf, tail, side="left"))
    high = int(np.searchsorted(cdf, 1 - tail, side="left"))
    return min(low, len(dist) - 1), min(high, len(dist) - 1)


def normal_bounds(
    mean: np.ndarray, var: np.ndarray, n: np.ndarray, level: float
) -> tuple[np.ndarray, np.ndarray]:
    z = NormalDist().inv_cdf(1 - (1 - level) / 2)
    sd = np.sqrt(np.asarray(var, dtype=float))
    mean = np.asarray(mean, dtype=float)
    low = np.maximum(0, np.floor(mean - z * sd + 0.5))
    high = np.minimum(np.asarray(n), np.ceil(mean + z * sd - 0.5))
    return low.astype(np.int64), high.astype(np.int64)


def intervals(
    n: np.ndarray,
    mean: np.ndarray,
    var: np.ndarray,
    dists: list[np.ndarray | None],
    level: float = 0.90,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(low, high, method) per group: normal where V ≥ NORMAL_MIN_VARIANCE, else exact from
    ``dists`` (which must hold those groups' distributions)."""
    low, high = normal_bounds(mean, var, n, level)
    exact = needs_exact(var)
    for i in np.flatnonzero(exact):
        d = dists[i]
        if d is None:
            raise ValueError("a group with a small variance has no exact distribution")
        low[i], high[i] = exact_bounds(d, level)
    method = np.where(exact, "exact", "normal")
    return low, high, method
