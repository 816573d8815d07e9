"""Compiled (numba) kernels of the tree engine: margins, exact TreeSHAP, path tables.

Module-level functions, so that numba caches their machine code on disk. Used
only by ``riskml.model.tree_engine``.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

try:
    import numba as _numba
    from numba import prange as _prange
except ImportError:  # pragma: no cover - numba is a dependency
    _numba = None
    _prange = range

NUMBA = _numba is not None
_ZERO_THRESHOLD = float(np.float32(1e-35))  # LightGBM's kZeroThreshold (a float)
_BLOCK_ROWS = 128  # records that go through one tree together

_LAUNCH_LOCK = threading.Lock()
_SERIALISE: list[bool] = []  # [True] when numba's threading layer is not thread-safe


def launch(kernel: Any, *args: Any) -> None:
    """Run a parallel kernel; one at a time if numba's threading layer is "workqueue".

    The service may decide in several threads at once: the OpenMP and TBB
    layers allow that, numba's fallback "workqueue" layer does not.
    """
    if _SERIALISE and not _SERIALISE[0]:
        kernel(*args)
        return
    with _LAUNCH_LOCK:
        kernel(*args)
        if not _SERIALISE:
            _SERIALISE.append(_numba is not None and _numba.threading_layer() == "workqueue")


def _njit(**options: Any) -> Any:
    """numba.njit caching machine code on disk (without the disk cache where it cannot write)."""

    def decorate(fn: Any) -> Any:
        if _numba is None:  # pragma: no cover
            return fn
        try:
            return _numba.njit(cache=True, nogil=True, **options)(fn)
        except RuntimeError:  # pragma: no cover - no writable cache location
            return _numba.njit(nogil=True, **options)(fn)

    return decorate


@_njit(inline="always")
def _block_columns(X, lo, m):  # noqa: ANN001, ANN202
    """Rows lo..lo+m of X by column, as LightGBM's predictor sees them: NaN flags and values.

    The values have NaN as 0 and |x| <= kZeroThreshold as 0 (the predictor drops
    such entries from dense rows).
    """
    n_feat = X.shape[1]
    xz = np.empty((n_feat, m))
    isnan = np.empty((n_feat, m), dtype=np.bool_)
    for r in range(m):
        for f in range(n_feat):
            x = X[lo + r, f]
            nan = np.isnan(x)
            isnan[f, r] = nan
            xz[f, r] = 0.0 if (nan | (np.abs(x) <= _ZERO_THRESHOLD)) else x
    return xz, isnan


@_njit(inline="always")
def _decide_splits(xz, isnan, feat, thr, mtype, defleft, is_leaf, s, size, goes):  # noqa: ANN001, ANN202
    """LightGBM's Tree::NumericalDecision for every split of one tree and every record of a block.

    Missing type NaN sends NaN the default way; missing type Zero sends 0 (and
    NaN, which is 0) the default way; otherwise NaN is 0 and compared.
    """
    m = xz.shape[1]
    for k in range(size):
        g = s + k
        if is_leaf[g]:
            continue
        f = feat[g]
        th = thr[g]
        dl = defleft[g]
        mt = mtype[g]
        if mt == 2:
            for r in range(m):
                goes[k, r] = dl if isnan[f, r] else xz[f, r] <= th
        elif mt == 1:
            for r in range(m):
                goes[k, r] = dl if xz[f, r] == 0.0 else xz[f, r] <= th
        else:
            for r in range(m):
                goes[k, r] = xz[f, r] <= th


@_njit(parallel=True)
def margin_kernel(  # noqa: ANN001, ANN202
    X, starts, sizes, depth, feat, thr, mtype, defleft, left, right, value, is_leaf, out
):
    n = X.shape[0]
    max_nodes = 1
    for t in range(sizes.shape[0]):
        max_nodes = max(max_nodes, sizes[t])
    n_blocks = (n + _BLOCK_ROWS - 1) // _BLOCK_ROWS
    for b in _prange(n_blocks):
        lo = b * _BLOCK_ROWS
        m = min(n, lo + _BLOCK_ROWS) - lo
        xz, isnan = _block_columns(X, lo, m)
        acc = np.zeros(m)
        cur = np.zeros(m, dtype=np.int64)
        goes = np.zeros((max_nodes, m), dtype=np.bool_)
        for t in range(starts.shape[0]):  # trees in LightGBM's order: the same sum to the bit
            s = starts[t]
            # every split's decision for every record, then each record's walk to its leaf
            _decide_splits(xz, isnan, feat, thr, mtype, defleft, is_leaf, s, sizes[t], goes)
            cur[:] = 0
            for _ in range(depth[t]):
                for r in range(m):
                    k = cur[r]
                    cur[r] = left[s + k] if goes[k, r] else right[s + k]
            for r in range(m):
                acc[r] += value[s + cur[r]]
        for r in range(m):
            out[lo + r] = acc[r]


@_njit(parallel=True)
def contrib_kernel(  # noqa: ANN001, ANN202
    X,
    starts,
    sizes,
    depth,
    feat,
    thr,
    mtype,
    defleft,
    left,
    right,
    value,
    parent,
    is_left,
    is_leaf,
    slot,
    leaf_d,
    leaf_start,
    leaf_feats,
    leaf_toff,
    table,
    out,
):
    n = X.shape[0]
    n_feat = X.shape[1]
    max_nodes = 1
    for t in range(sizes.shape[0]):
        max_nodes = max(max_nodes, sizes[t])
    n_blocks = (n + _BLOCK_ROWS - 1) // _BLOCK_ROWS
    for b in _prange(n_blocks):
        lo = b * _BLOCK_ROWS
        m = min(n, lo + _BLOCK_ROWS) - lo
        xz, isnan = _block_columns(X, lo, m)
        phi = np.zeros((n_feat, m))
        goes = np.zeros((max_nodes, m), dtype=np.bool_)
        masks = np.empty((max_nodes, m), dtype=np.int64)
        rows = np.empty(m, dtype=np.int64)
        for t in range(starts.shape[0]):
            s = starts[t]
            size = sizes[t]
            if size == 1:
                continue
            _decide_splits(xz, isnan, feat, thr, mtype, defleft, is_leaf, s, size, goes)
            masks[0, :] = -1
            for k in range(1, size):  # preorder: a node's parent comes before it
                g = s + k
                p = parent[g]
                clear = ~(1 << slot[s + p])
                side = is_left[g]
                for r in range(m):
                    masks[k, r] = masks[p, r] if goes[p, r] == side else masks[p, r] & clear
                if is_leaf[g]:
                    d = leaf_d[g]
                    low = (1 << d) - 1
                    toff = leaf_toff[g]
                    fs = leaf_start[g]
                    for r in range(m):
                        rows[r] = toff + (masks[k, r] & low) * d
                    for j in range(d):
                        f = leaf_feats[fs + j]
                        for r in range(m):
                            phi[f, r] += table[rows[r] + j]
        for r in range(m):
            for f in range(n_feat):
                out[lo + r, f] = phi[f, r]


@_njit()
def tables_kernel(value, is_leaf, leaf_d, leaf_start, leaf_z, leaf_toff, weights, table):  # noqa: ANN001, ANN202
    """For every leaf and pattern of satisfied path conditions: each path feature's TreeSHAP share.

    φ_k = v · (o_k − z_k) · Σ_{S ⊆ P∖{k}} w(|S|, d) · Π_{j ∉ S, j ≠ k} z_j, with the
    sum over subsets taken through the elementary symmetric polynomials of z over P∖{k}.
    """
    e = np.zeros(weights.shape[0] + 1)
    for g in range(value.shape[0]):
        d = leaf_d[g]
        if not is_leaf[g] or d == 0:
            continue
        v = value[g]
        z = leaf_z[leaf_start[g] : leaf_start[g] + d]
        for pattern in range(1 << d):
            for k in range(d):
                e[:] = 0.0
                e[0] = 1.0
                q = 0
                rest = 1.0
                for j in range(d):
                    if j == k:
                        continue
                    if (pattern >> j) & 1:
                        q += 1
                        for i in range(q, 0, -1):
                            e[i] += e[i - 1] * z[j]
                    else:
                        rest *= z[j]
                acc = 0.0
                for i in range(q + 1):
                    acc += weights[d, i] * e[q - i]
                o = float((pattern >> k) & 1)
                table[leaf_toff[g] + pattern * d + k] = v * (o - z[k]) * acc * rest
