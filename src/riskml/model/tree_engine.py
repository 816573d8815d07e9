"""The compiled evaluator of a LightGBM booster: margins and exact TreeSHAP, checked against LightGBM.

``RiskModel`` scores and explains through it (``riskml.model.risk_model``);
LightGBM itself is the check (``TreeEngine.for_booster`` compares both on probe
records when it builds an engine) and the fallback.
"""

from __future__ import annotations

import logging
import math
import threading
import weakref
from typing import Any

import numpy as np

from riskml.model.tree_kernels import NUMBA, contrib_kernel, launch, margin_kernel, tables_kernel

log = logging.getLogger("riskml.model")

MAX_PATH_FEATURES = 10
# Most table entries (float64) per model: beyond this, LightGBM's own TreeSHAP is used.
MAX_TABLE_ENTRIES = 24_000_000


class TreeEngine:
    """A LightGBM binary booster compiled for fast margins and exact TreeSHAP.

    Margins: the trees summed in LightGBM's order, with LightGBM's split rule
    (missing values, default directions, zero as missing), so they equal
    ``booster.predict(raw_score=True)`` bit for bit.

    Contributions: exact TreeSHAP (what LightGBM's ``pred_contrib`` computes)
    by path patterns (Fast TreeSHAP v2, Yang 2021). A leaf's share of a
    feature's SHAP value depends on the record only through which of the leaf's
    path conditions the record satisfies, so every (leaf, pattern) is tabulated
    once per model and a record costs one pass over each tree with a table
    look-up per leaf: O(trees × leaves × depth) instead of TreeSHAP's
    O(trees × leaves × depth²). Memory: 2^d × d float64 per leaf with d unique
    path features (about 15 MB for 300 trees of depth 6). The output has
    LightGBM's layout: one column per feature, then the expected value.

    Both kernels take records in blocks, tree by tree, without branches in the
    inner loops: a tree's nodes and tables stay in the CPU cache and the
    records of a block go through it side by side.

    ``for_booster`` builds (and caches) the engine, checks it against LightGBM
    on probe records built from the split thresholds (margins bit for bit,
    contributions to 1e-9), and returns None (LightGBM is used) when numba is
    missing, the model has what the engine does not handle (categorical or
    linear trees, several classes, very deep trees) or the check fails.
    """

    _cache: weakref.WeakKeyDictionary[Any, TreeEngine | None] = weakref.WeakKeyDictionary()
    _lock = threading.Lock()

    def __init__(self, booster: Any):
        if not NUMBA:  # pragma: no cover - numba is a dependency
            raise _Unsupported("numba is not installed")
        trees, self.num_features = _parse_model_text(_model_text(booster))
        self._build(trees)

    # ------------------------------------------------------------------ public
    @classmethod
    def for_booster(cls, booster: Any) -> TreeEngine | None:
        try:
            return cls._cache[booster]
        except (KeyError, TypeError):
            pass
        with cls._lock:
            if booster in cls._cache:
                return cls._cache[booster]
            engine: TreeEngine | None
            try:
                engine = cls(booster)
                problem = engine._self_check(booster)
            except _Unsupported as exc:
                engine, problem = None, str(exc)
            if problem is not None:
                log.warning("compiled tree engine not used (LightGBM instead): %s", problem)
                engine = None
            cls._cache[booster] = engine
            return engine

    def margin(self, X: np.ndarray) -> np.ndarray:
        X = self._matrix(X)
        out = np.zeros(len(X))
        if len(X):
            launch(margin_kernel, X, *self._trees, self._paths[2], out)
        return out

    def contrib(self, X: np.ndarray) -> np.ndarray:
        X = self._matrix(X)
        out = np.zeros((len(X), self.num_features + 1))
        if len(X):
            launch(contrib_kernel, X, *self._trees, *self._paths, out)
            out[:, -1] = self.bias
        return out

    # ------------------------------------------------------------------ building
    def _matrix(self, X: np.ndarray) -> np.ndarray:
        # one machine-code specialisation: C-ordered, writeable float64
        if not (X.dtype == np.float64 and X.flags.c_contiguous and X.flags.writeable):
            X = np.array(X, dtype=np.float64, order="C")
        if X.ndim != 2 or X.shape[1] != self.num_features:
            raise ValueError(f"expected a matrix of {self.num_features} features, got {X.shape}")
        return X

    def _build(self, trees: list[dict[str, Any]]) -> None:
        """Every tree's nodes in preorder (root first, left before right), in flat arrays.

        Per node: split (feature, threshold, missing type, default left), the
        children (preorder index within the tree; a leaf is its own children,
        so a fixed number of steps reaches the leaf from the root), the value
        (leaves), the parent and side (for path patterns) and the slot of the
        split's feature among the unique features of the path to the node.
        """
        cols: dict[str, list[Any]] = {
            k: []
            for k in (
                "feat", "thr", "mtype", "defleft", "left", "right", "value",
                "parent", "is_left", "is_leaf", "slot", "leaf_d", "leaf_start", "leaf_toff",
            )
        }  # fmt: skip
        off, depth, leaf_feats, leaf_z = [], [], [], []
        table_size = 0
        bias = 0.0
        for t in trees:
            n_leaves = t["num_leaves"]
            values = t["leaf_value"]
            off.append(len(cols["feat"]))
            if n_leaves == 1:
                bias += values[0]  # LightGBM's ExpectedValue of a one-leaf tree
                self._append_node(cols, value=values[0], is_leaf=True)
                depth.append(0)
                continue
            counts = t["leaf_count"]
            icounts = t["internal_count"]
            total = float(icounts[0])
            expected = 0.0
            for i in range(n_leaves):  # LightGBM's Tree::ExpectedValue, in its order
                expected += (counts[i] / total) * values[i]
            bias += expected
            # preorder: (lightgbm child code, parent preorder index, is left, path feats, path z, level)
            stack: list[tuple[int, int, bool, list[int], list[float], int]] = [
                (0, -1, False, [], [], 0)
            ]
            order: list[int] = []  # preorder index -> position in cols (relative to off)
            tree_depth = 0
            while stack:
                code, parent, is_left, path_feats, path_z, level = stack.pop()
                me = len(order)
                order.append(me)
                tree_depth = max(tree_depth, level)
                if code < 0:  # a leaf
                    leaf = ~code
                    d = len(path_feats)
                    self._append_node(
                        cols,
                        value=values[leaf],
                        parent=parent,
                        is_left=is_left,
                        is_leaf=True,
                        leaf_d=d,
                        leaf_start=len(leaf_feats),
                        leaf_toff=table_size,
                    )
                    leaf_feats.extend(path_feats)
                    leaf_z.extend(path_z)
                    table_size += (1 << d) * d
                    continue
                dt = t["decision_type"][code]
                if dt & 1:
                    raise _Unsupported("categorical splits")
                f = t["split_feature"][code]
                s = path_feats.index(f) if f in path_feats else len(path_feats)
                if s >= MAX_PATH_FEATURES:
                    raise _Unsupported(f"paths with more than {MAX_PATH_FEATURES} features")
                self._append_node(
                    cols,
                    feat=f,
                    thr=t["threshold"][code],
                    mtype=(dt >> 2) & 3,
                    defleft=bool(dt & 2),
                    parent=parent,
                    is_left=is_left,
                    slot=s,
                )
                children = []
                for child in (t["left_child"][code], t["right_child"][code]):
                    cover = icounts[child] if child >= 0 else counts[~child]
                    frac = float(cover) / float(icounts[code])
                    feats2, z2 = list(path_feats), list(path_z)
                    if s == len(feats2):
                        feats2.append(f)
                        z2.append(frac)
                    else:
                        z2[s] *= frac
                    children.append((child, me, feats2, z2))
                # right pushed first so the left subtree comes next in preorder
                (lc, _, lf, lz), (rc, _, rf, rz) = children
                stack.append((rc, me, False, rf, rz, level + 1))
                stack.append((lc, me, True, lf, lz, level + 1))
            depth.append(tree_depth)
            if table_size > MAX_TABLE_ENTRIES:
                raise _Unsupported(f"TreeSHAP tables would exceed {MAX_TABLE_ENTRIES:,} values")
        # children as preorder indices within the tree (from the parent links)
        n = len(cols["feat"])
        left = np.arange(n, dtype=np.int64)
        right = np.arange(n, dtype=np.int64)
        starts = np.asarray(off, dtype=np.int64)
        tree_of = np.repeat(np.arange(len(off)), np.diff(np.r_[starts, n]))
        parent = np.asarray(cols["parent"], dtype=np.int64)
        is_left = np.asarray(cols["is_left"], dtype=np.bool_)
        local = np.arange(n) - starts[tree_of]
        has_parent = parent >= 0
        glob_parent = starts[tree_of] + parent
        left[glob_parent[has_parent & is_left]] = local[has_parent & is_left]
        right[glob_parent[has_parent & ~is_left]] = local[has_parent & ~is_left]
        leaf = np.asarray(cols["is_leaf"], dtype=np.bool_)
        left[leaf] = local[leaf]
        right[leaf] = local[leaf]
        self.bias = bias
        self._trees = (
            starts,
            np.diff(np.r_[starts, n]).astype(np.int64),
            np.asarray(depth, dtype=np.int64),
            np.asarray(cols["feat"], dtype=np.int64),
            np.asarray(cols["thr"], dtype=np.float64),
            np.asarray(cols["mtype"], dtype=np.int64),
            np.asarray(cols["defleft"], dtype=np.bool_),
            left,
            right,
            np.asarray(cols["value"], dtype=np.float64),
        )
        leaf_d = np.asarray(cols["leaf_d"], dtype=np.int64)
        leaf_start = np.asarray(cols["leaf_start"], dtype=np.int64)
        leaf_toff = np.asarray(cols["leaf_toff"], dtype=np.int64)
        weights = np.zeros((MAX_PATH_FEATURES + 1, MAX_PATH_FEATURES + 1))
        for d in range(1, MAX_PATH_FEATURES + 1):
            for s in range(d):
                weights[d, s] = math.factorial(s) * math.factorial(d - s - 1) / math.factorial(d)
        table = np.zeros(table_size)
        tables_kernel(
            np.asarray(cols["value"], dtype=np.float64),
            leaf,
            leaf_d,
            leaf_start,
            np.asarray(leaf_z, dtype=np.float64),
            leaf_toff,
            weights,
            table,
        )
        self._paths = (
            parent,
            is_left,
            leaf,
            np.asarray(cols["slot"], dtype=np.int64),
            leaf_d,
            leaf_start,
            np.asarray(leaf_feats, dtype=np.int64),
            leaf_toff,
            table,
        )

    @staticmethod
    def _append_node(
        cols: dict[str, list[Any]],
        *,
        feat: int = 0,
        thr: float = 0.0,
        mtype: int = 0,
        defleft: bool = False,
        value: float = 0.0,
        parent: int = -1,
        is_left: bool = False,
        is_leaf: bool = False,
        slot: int = 0,
        leaf_d: int = 0,
        leaf_start: int = 0,
        leaf_toff: int = 0,
    ) -> None:
        for key, v in (
            ("feat", feat), ("thr", thr), ("mtype", mtype), ("defleft", defleft),
            ("left", 0), ("right", 0), ("value", value), ("parent", parent),
            ("is_left", is_left), ("is_leaf", is_leaf), ("slot", slot), ("leaf_d", leaf_d),
            ("leaf_start", leaf_start), ("leaf_toff", leaf_toff),
        ):  # fmt: skip
            cols[key].append(v)

    def _self_check(self, booster: Any) -> str | None:
        X = _probe_matrix(self._trees[3], self._trees[4], self.num_features)
        lgb_margin = booster.predict(X, raw_score=True)
        if not np.array_equal(self.margin(X), lgb_margin):
            return "margins differ from LightGBM's"
        lgb_contrib = booster.predict(X, pred_contrib=True)
        if not np.allclose(self.contrib(X), lgb_contrib, rtol=1e-9, atol=1e-9):
            return "contributions differ from LightGBM's pred_contrib"
        return None


class _Unsupported(Exception):
    pass


def _model_text(booster: Any) -> str:
    """The trees ``booster.predict`` uses by default (best iteration when there is one)."""
    best = getattr(booster, "best_iteration", 0) or 0
    return booster.model_to_string(num_iteration=best if best > 0 else -1)


def _parse_model_text(text: str) -> tuple[list[dict[str, Any]], int]:
    header, _, rest = text.partition("\nTree=")
    head: dict[str, str] = dict(line.split("=", 1) for line in header.splitlines() if "=" in line)
    if head.get("num_class", "1") != "1" or head.get("num_tree_per_iteration", "1") != "1":
        raise _Unsupported("more than one class")
    if "average_output" in header.split():
        raise _Unsupported("averaged output (random forest)")
    num_features = int(head["max_feature_idx"]) + 1
    body = rest.split("end of trees", 1)[0]
    trees = []
    for block in ("Tree=" + body).split("\nTree=") if rest else []:
        kv: dict[str, str] = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        if kv.get("is_linear", "0") != "0":
            raise _Unsupported("linear trees")
        if int(kv.get("num_cat", "0")) > 0:
            raise _Unsupported("categorical splits")
        n_leaves = int(kv["num_leaves"])
        tree: dict[str, Any] = {
            "num_leaves": n_leaves,
            "leaf_value": [float(v) for v in kv["leaf_value"].split()],
        }
        if n_leaves > 1:
            for key, conv in (
                ("split_feature", int),
                ("threshold", float),
                ("decision_type", int),
                ("left_child", int),
                ("right_child", int),
                ("leaf_count", int),
                ("internal_count", int),
            ):
                tree[key] = [conv(v) for v in kv[key].split()]
            if min(tree["leaf_count"]) <= 0 or min(tree["internal_count"]) <= 0:
                raise _Unsupported("trees without data counts")
        trees.append(tree)
    return trees, num_features


def _probe_matrix(feat: np.ndarray, thr: np.ndarray, num_features: int) -> np.ndarray:
    """Records that exercise the splits: values at, just around and far from thresholds, 0, NaN."""
    rng = np.random.default_rng(0)
    n = 192
    X = rng.normal(0.0, 3.0, size=(n, num_features))
    for f in range(num_features):
        t = thr[feat == f]
        if len(t) == 0:
            continue
        pick = rng.choice(t, size=n)
        kind = rng.integers(0, 6, size=n)
        with np.errstate(invalid="ignore", over="ignore"):
            far = pick + rng.normal(0.0, 1.0, size=n) * (np.abs(pick) + 1e-3)
        X[:, f] = np.select(
            [kind == 0, kind == 1, kind == 2, kind == 3, kind == 4],
            [pick, np.nextafter(pick, np.inf), np.nextafter(pick, -np.inf), 0.0, np.nan],
            far,
        )
    return X
