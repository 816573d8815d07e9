"""Decisions: the rules and the calibrated score side by side, with reasons and measures.

One function, ``decide``, serves the online service and batch scoring alike:
records in, one decision per record out (the contract's result fields). The
rules are never replaced by the model: a household is flagged when any rule
fires *or* the score reaches the model's operating threshold, and the answer
says which.

Speed (batch scoring decides millions of records with this same function):
the per-record work is only what must be per record (rendering the fired rules
and the reasons); everything else is computed for the whole frame at once. The
model's margins and exact TreeSHAP contributions come from ``TreeEngine``, a
compiled (numba) evaluator of the LightGBM booster: the same trees, margins
equal to LightGBM's bit for bit, contributions equal to LightGBM's
``pred_contrib`` (TreeSHAP) to rounding, about 15–20× faster than it for
explanations. It checks itself against LightGBM when it is built for a model
and falls back to LightGBM if anything differs.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import weakref
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from riskml.data.columns import Columns, as_columns
from riskml.data.schema import FIELD_NAMES
from riskml.model.features import feature_matrix
from riskml.model.reasons import risk_types_from_contributions, top_reasons
from riskml.model.risk_model import Explanation, RiskModel
from riskml.policy import rules as policy_rules
from riskml.policy.risk_types import measures_for

log = logging.getLogger("riskml.decisions")

ExplainMode = Literal["flagged", "all", "none"]

MONITORING_TYPES = {
    "unstable_alleviated": "脱贫不稳定户",
    "marginal": "边缘易致贫户",
    "sudden_hardship": "突发严重困难户",
}
# rule risk types that mean sudden severe hardship (large rigid spending or a sharp fall)
SUDDEN_RISK_TYPES = {"illness", "disaster", "accident"}


@dataclass
class ModelInfo:
    name: str
    version: str


# --------------------------------------------------------------------------- records as dicts
def _column_values(s: pd.Series) -> list[Any]:
    """A column as plain Python values (None for missing), as ``records_as_dicts`` gives them.

    Works on the column's array directly: ``astype(object).where(...)`` costs ~0.5 ms a
    column, which dominated a one-record request.
    """
    arr = s.array
    missing = np.asarray(pd.isna(arr), dtype=bool)
    if isinstance(arr, np.ndarray) and arr.dtype.kind == "f":
        values = arr.tolist()
    else:
        values = arr.to_numpy(dtype=object, na_value=None).tolist()
    out = [
        None if m else (v.item() if isinstance(v, np.generic) else v)
        for v, m in zip(values, missing, strict=True)
    ]
    return out


def records_as_dicts(records: pd.DataFrame, rows: np.ndarray) -> list[dict[str, Any]]:
    """The records at positions ``rows`` as dicts of plain Python values (None for missing)."""
    if len(rows) == 0:
        return []
    sub = records.iloc[rows]
    columns = [_column_values(sub[name]) for name in FIELD_NAMES]
    return [dict(zip(FIELD_NAMES, values, strict=True)) for values in zip(*columns, strict=True)]


def ledger_entry(record: dict[str, Any], result: dict[str, Any]) -> dict[str, Any]:
    """The decision ledger's entry for one decision: the record as received and its result.

    One builder for the service, batch scoring and the tests, so every ledger row has
    the same shape whoever wrote it.
    """
    return {
        "decision_id": result["decision_id"],
        "household_id": result["household_id"],
        "period": result["period"],
        "county_code": record["county_code"],
        "village_code": record["village_code"],
        "model_name": result["model_name"],
        "model_version": result["model_version"],
        "rules_version": result["rules_version"],
        "score": result["score"],
        "risk_level": result["risk_level"],
        "flagged": result["flagged"],
        # stored as the batch output writes it: "rules", "model", "rules+model"; null when not flagged
        "flagged_by": "+".join(result["flagged_by"]) or None,
        "record": record,
        "result": {k: v for k, v in result.items() if k != "contributions"},
        "contributions": result.get("contributions"),
    }


def monitoring_type(
    formerly_poor: Any, below_line: bool, flagged: bool, sudden: bool
) -> str | None:
    """The monitored household type (三类户) by the domain's definitions, or None.

    Sudden severe hardship: a red rule of illness, disaster or accident fired or income fell
    sharply (income may be above the line). Otherwise a flagged household that was registered
    poor is unstable alleviated; any other flagged household is marginal.
    """
    if sudden and not below_line:
        return MONITORING_TYPES["sudden_hardship"]
    if not flagged:
        return None
    if formerly_poor is True:
        return MONITORING_TYPES["unstable_alleviated"]
    return MONITORING_TYPES["marginal"]


def new_decision_ids(n: int) -> list[str]:
    """``n`` fresh decision ids, each a random uuid4 as 32 lowercase hex digits (as ``uuid4().hex``)."""
    if n <= 0:
        return []
    raw = np.frombuffer(os.urandom(16 * n), dtype=np.uint8).reshape(n, 16).copy()
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40  # version 4
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80  # RFC 4122 variant
    text = raw.tobytes().hex()
    return [text[i : i + 32] for i in range(0, 32 * n, 32)]


# --------------------------------------------------------------------------- decide
def decide(
    records: pd.DataFrame | Columns,
    previous: pd.DataFrame | Columns | None,
    model: RiskModel,
    ruleset: policy_rules.RuleSet,
    info: ModelInfo,
    explain: ExplainMode = "flagged",
    reasons_k: int = 5,
    with_contributions: bool = True,
) -> list[dict[str, Any]]:
    """A contract result per record (same order).

    ``records`` are canonical (``schema.coerce_frame``), or ``Columns`` (the
    service builds them from the validated JSON records, which the reasons
    then quote as received).

    ``previous`` is each record's previous period (aligned row by row, missing
    where unknown): ``history.previous_from_panel`` in batch, the ledger online.
    """
    n = len(records)
    if n == 0:
        return []
    frame = records if isinstance(records, pd.DataFrame) else None
    cols = as_columns(records)
    prev = as_columns(previous)
    names = list(model.feature_names)
    X_arr = feature_matrix(cols, prev, model.lines, names)
    score = model.calibrate(model_margin(model, X_arr))
    level = model.risk_level(score)
    rr = policy_rules.evaluate(cols, ruleset, model.lines, previous=prev)
    by_rules = np.asarray(rr.flagged, dtype=bool)
    by_model = score >= model.thresholds.flag
    flagged = by_rules | by_model
    below_line = X_arr[:, names.index("pc_income_to_line")] < 1.0
    red_rules = np.array([r.level == "red" for r in rr.rules], dtype=bool)
    if red_rules.any():
        red_rule = (rr.fired_matrix[:, red_rules]).any(axis=1)
    else:
        red_rule = np.zeros(n, dtype=bool)
    final_level = np.where(red_rule, "red", level)
    final_level = np.where(flagged & (final_level == "green"), "yellow", final_level).tolist()

    if explain == "all":
        explain_rows = np.arange(n)
    elif explain == "flagged":
        explain_rows = np.flatnonzero(flagged)
    else:
        explain_rows = np.zeros(0, dtype=int)
    contrib = model_explain(model, X_arr[explain_rows]) if len(explain_rows) else None
    contrib_of = {int(r): j for j, r in enumerate(explain_rows)}

    need_dicts = np.union1d(explain_rows, np.flatnonzero(flagged)).astype(int)
    if cols.records is not None:  # the records as received: quote their values exactly
        record_dicts = {i: cols.records[i] for i in need_dicts.tolist()}
    else:
        record_dicts = dict(
            zip(need_dicts.tolist(), records_as_dicts(frame, need_dicts), strict=True)
        )
    feature_rows = (
        [dict(zip(names, row, strict=True)) for row in X_arr[explain_rows].tolist()]
        if len(explain_rows)
        else []
    )

    hid = [str(h) for h in cols["household_id"].tolist()]
    period = [str(p) for p in cols["period"].tolist()]
    score_list = score.tolist()
    flagged_list = flagged.tolist()
    by_rules_list = by_rules.tolist()
    flagged_by_of = {
        (True, True): ("rules", "model"),
        (True, False): ("rules",),
        (False, True): ("model",),
        (False, False): (),
    }
    flagged_by = [
        flagged_by_of[pair] for pair in zip(by_rules_list, by_model.tolist(), strict=True)
    ]
    ids = new_decision_ids(n)
    rules_version = ruleset.version
    results: list[dict[str, Any]] = []
    for i in range(n):
        fired = rr.for_row(i) if by_rules_list[i] else []
        result: dict[str, Any] = {
            "household_id": hid[i],
            "period": period[i],
            "score": score_list[i],
            "risk_level": final_level[i],
            "flagged": flagged_list[i],
            "flagged_by": list(flagged_by[i]),
            "rules": fired,
            "risk_types": list(dict.fromkeys(r["risk_type"] for r in fired)),
            "reasons": [],
            "measures": [],
            "monitoring_type": None,
            "model_name": info.name,
            "model_version": info.version,
            "rules_version": rules_version,
            "decision_id": ids[i],
        }
        j = contrib_of.get(i)
        if j is not None and contrib is not None:
            c = contrib.contributions[j]
            result["reasons"] = top_reasons(
                record_dicts[i], feature_rows[j], c, contrib.feature_names, k=reasons_k
            )
            if flagged_list[i] or explain == "all":
                for rt, _ in risk_types_from_contributions(c, contrib.feature_names):
                    if rt not in result["risk_types"]:
                        result["risk_types"].append(rt)
            if with_contributions:
                result["contributions"] = {
                    "base": round(contrib.base, 6),
                    "values": {
                        f: round(v, 6)
                        for f, v in zip(contrib.feature_names, c.tolist(), strict=True)
                    },
                }
        if flagged_list[i]:
            result["measures"] = measures_for(result["risk_types"])
            sudden = bool(red_rule[i]) and any(
                r["risk_type"] in SUDDEN_RISK_TYPES or r["id"] == "income_drop" for r in fired
            )
            result["monitoring_type"] = monitoring_type(
                record_dicts[i].get("formerly_poor"), bool(below_line[i]), True, sudden
            )
        results.append(result)
    return results


# --------------------------------------------------------------------------- the model, fast
def model_margin(model: RiskModel, X: np.ndarray) -> np.ndarray:
    """The booster's raw margin for a feature matrix: equal to ``model.margin(X)`` bit for bit."""
    engine = TreeEngine.for_booster(model.booster)
    if engine is None:
        return model.margin(X)
    return engine.margin(X)


def model_explain(model: RiskModel, X: np.ndarray) -> Explanation:
    """``model.explain(X)`` (exact TreeSHAP in calibrated log-odds) through the compiled engine."""
    engine = TreeEngine.for_booster(model.booster)
    if engine is None or len(X) == 0:
        return model.explain(X)
    raw = engine.contrib(X)
    contrib = raw[:, :-1] * model.platt_a
    base = float(raw[0, -1] * model.platt_a + model.platt_b)
    return Explanation(contrib, base, model.feature_names)


# Most unique features on one root-to-leaf path the engine tabulates (2^d patterns per leaf).
MAX_PATH_FEATURES = 10
# Most table entries (float64) per model: beyond this, LightGBM's own TreeSHAP is used.
MAX_TABLE_ENTRIES = 24_000_000
_ZERO_THRESHOLD = float(np.float32(1e-35))  # LightGBM's kZeroThreshold (a float)
_BLOCK_ROWS = 128  # records that go through one tree together


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
        if _numba is None:  # pragma: no cover - numba is a dependency
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
            _launch(_margin_kernel, X, *self._trees, self._paths[2], out)
        return out

    def contrib(self, X: np.ndarray) -> np.ndarray:
        X = self._matrix(X)
        out = np.zeros((len(X), self.num_features + 1))
        if len(X):
            _launch(_contrib_kernel, X, *self._trees, *self._paths, out)
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
        _tables_kernel(
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


_LAUNCH_LOCK = threading.Lock()
_SERIALISE: list[bool] = []  # [True] when numba's threading layer is not thread-safe


def _launch(kernel: Any, *args: Any) -> None:
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


# --------------------------------------------------------------------------- numba kernels
# Module-level functions, so that numba caches their machine code on disk.
try:
    import numba as _numba
    from numba import prange as _prange
except ImportError:  # pragma: no cover - numba is a dependency
    _numba = None
    _prange = range


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
def _margin_kernel(  # noqa: ANN001, ANN202
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
def _contrib_kernel(  # noqa: ANN001, ANN202
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
def _tables_kernel(value, is_leaf, leaf_d, leaf_start, leaf_z, leaf_toff, weights, table):  # noqa: ANN001, ANN202
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
