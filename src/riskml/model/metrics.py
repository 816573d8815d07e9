"""Honest evaluation on a held-out period: discrimination, calibration, capacity, groups.

Everything here is a pure function of labels and scores (plus grouping
columns); the training pipeline calls it on the test period only.

Capacity: caseworkers can visit only the top ``capacity`` share of households.
At that capacity, recall is the share of at-risk households visited;
exclusion error = 1 − recall (at-risk households missed), inclusion error =
1 − precision (visited households that were not at risk).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

GROUP_COLUMNS = ("province", "formerly_poor", "head_female", "ethnic_minority")


def auc(y: np.ndarray, p: np.ndarray) -> float:
    return float(roc_auc_score(y, p)) if 0 < y.sum() < len(y) else float("nan")


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """ECE over equal-count bins: Σ (bin share) × |mean score − observed rate|."""
    table = reliability_table(y, p, bins)
    return float(
        (table["n"] / table["n"].sum() * (table["mean_score"] - table["observed_rate"]).abs()).sum()
    )


def reliability_table(y: np.ndarray, p: np.ndarray, bins: int = 10) -> pd.DataFrame:
    """Mean predicted score and observed rate per equal-count bin of the score."""
    order = np.argsort(p, kind="stable")
    chunks = np.array_split(order, bins)
    rows = [
        {
            "bin": i,
            "n": len(c),
            "mean_score": float(p[c].mean()),
            "observed_rate": float(y[c].mean()),
            "score_min": float(p[c].min()),
            "score_max": float(p[c].max()),
        }
        for i, c in enumerate(chunks)
        if len(c)
    ]
    return pd.DataFrame(rows)


def binary_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    y = np.asarray(y, dtype=int)
    p = np.clip(np.asarray(p, dtype=float), 1e-7, 1 - 1e-7)
    both = 0 < y.sum() < len(y)
    return {
        "n": float(len(y)),
        "base_rate": float(y.mean()) if len(y) else float("nan"),
        "roc_auc": auc(y, p),
        "pr_auc": float(average_precision_score(y, p)) if both else float("nan"),
        "log_loss": float(log_loss(y, p, labels=[0, 1])) if len(y) else float("nan"),
        "brier": float(brier_score_loss(y, p)) if len(y) else float("nan"),
        "ece": expected_calibration_error(y, p) if len(y) >= 10 else float("nan"),
    }


def top_k_mask(score: np.ndarray, capacity: float, rng_seed: int = 0) -> np.ndarray:
    """The top ``ceil(capacity × n)`` rows by score; ties broken at random (seeded), not by order."""
    n = len(score)
    k = min(n, math.ceil(capacity * n))
    if k == 0:
        return np.zeros(n, dtype=bool)
    tiebreak = np.random.default_rng(rng_seed).random(n)
    order = np.lexsort((tiebreak, -np.asarray(score, dtype=float)))
    mask = np.zeros(n, dtype=bool)
    mask[order[:k]] = True
    return mask


def selection_metrics(y: np.ndarray, selected: np.ndarray) -> dict[str, float]:
    y = np.asarray(y, dtype=bool)
    tp = float((y & selected).sum())
    pos = float(y.sum())
    sel = float(selected.sum())
    recall = tp / pos if pos else float("nan")
    precision = tp / sel if sel else float("nan")
    return {
        "selected": sel,
        "selected_share": sel / len(y) if len(y) else float("nan"),
        "recall": recall,
        "precision": precision,
        "exclusion_error": 1 - recall if pos else float("nan"),
        "inclusion_error": 1 - precision if sel else float("nan"),
    }


def at_capacity(
    y: np.ndarray, score: np.ndarray, capacity: float, by: np.ndarray | None = None
) -> dict[str, float]:
    """Selection metrics when the top ``capacity`` share is visited (overall, or within each ``by`` group)."""
    if by is None:
        return selection_metrics(y, top_k_mask(score, capacity))
    selected = np.zeros(len(y), dtype=bool)
    by = np.asarray(by)
    for g in pd.unique(by):
        idx = np.flatnonzero(by == g)
        selected[idx] = top_k_mask(score[idx], capacity)
    return selection_metrics(y, selected)


def per_county_capacity(
    y: np.ndarray, score: np.ndarray, county: np.ndarray, capacity: float
) -> pd.DataFrame:
    """Recall and precision when each county visits its own top ``capacity`` share."""
    rows = []
    for c in sorted(pd.unique(county)):
        idx = np.flatnonzero(county == c)
        m = selection_metrics(y[idx], top_k_mask(score[idx], capacity))
        rows.append({"county_code": c, "n": len(idx), "positives": int(y[idx].sum()), **m})
    return pd.DataFrame(rows)


def capacity_curve(
    y: np.ndarray, scores: dict[str, np.ndarray], capacities: np.ndarray | None = None
) -> pd.DataFrame:
    """Recall at each capacity for several scorers (model, rules, oracle, ...)."""
    caps = np.linspace(0.01, 0.5, 50) if capacities is None else capacities
    rows = []
    for name, s in scores.items():
        for c in caps:
            rows.append(
                {
                    "scorer": name,
                    "capacity": float(c),
                    "recall": at_capacity(y, s, float(c))["recall"],
                }
            )
    return pd.DataFrame(rows)


def group_table(
    y: np.ndarray,
    score: np.ndarray,
    groups: pd.DataFrame,
    capacity: float,
) -> pd.DataFrame:
    """Per group: size, base rate, AUC, and recall/precision when the overall top ``capacity`` is visited."""
    selected = top_k_mask(score, capacity)
    rows = []
    for col in groups.columns:
        values = groups[col].astype("object").where(groups[col].notna(), "missing").to_numpy()
        for g in sorted(pd.unique(values), key=str):
            idx = np.flatnonzero(values == g)
            sel = selection_metrics(y[idx], selected[idx])
            rows.append(
                {
                    "group": col,
                    "value": str(g),
                    "n": len(idx),
                    "base_rate": float(y[idx].mean()),
                    "roc_auc": auc(y[idx], score[idx]),
                    "recall": sel["recall"],
                    "precision": sel["precision"],
                    "flag_rate": sel["selected_share"],
                }
            )
    return pd.DataFrame(rows)


def largest_gaps(
    table: pd.DataFrame, metrics: tuple[str, ...] = ("roc_auc", "recall", "precision")
) -> pd.DataFrame:
    """For each grouping and metric, the gap between the best and worst group (groups of ≥ 30 rows)."""
    rows = []
    for col, t in table[table["n"] >= 30].groupby("group"):
        for m in metrics:
            v = t.dropna(subset=[m])
            if len(v) < 2:
                continue
            hi, lo = v.loc[v[m].idxmax()], v.loc[v[m].idxmin()]
            rows.append(
                {
                    "group": col,
                    "metric": m,
                    "gap": float(hi[m] - lo[m]),
                    "best": f"{hi['value']} ({hi[m]:.3f})",
                    "worst": f"{lo['value']} ({lo[m]:.3f})",
                }
            )
    return (
        pd.DataFrame(rows).sort_values("gap", ascending=False).reset_index(drop=True)
        if rows
        else pd.DataFrame()
    )


@dataclass
class Evaluation:
    """Everything measured on one held-out period."""

    period: str
    metrics: dict[str, float]  # flat, for MLflow
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {"period": self.period, **self.metrics}


def evaluate_scores(
    y: np.ndarray,
    score: np.ndarray,
    *,
    period: str,
    county: np.ndarray,
    groups: pd.DataFrame,
    capacities: tuple[float, ...] = (0.05, 0.10),
    rules_flagged: np.ndarray | None = None,
    rules_severity: np.ndarray | None = None,
    model_flagged: np.ndarray | None = None,
    oracle: np.ndarray | None = None,
) -> Evaluation:
    """All metrics for one held-out period, for the model and the baselines beside it."""
    y = np.asarray(y, dtype=int)
    metrics: dict[str, float] = {f"test_{k}": v for k, v in binary_metrics(y, score).items()}
    tables: dict[str, pd.DataFrame] = {"reliability": reliability_table(y, score)}
    scorers: dict[str, np.ndarray] = {"model": score}
    if rules_severity is not None:
        scorers["rules"] = rules_severity
        metrics["rules_roc_auc"] = auc(y, rules_severity)
    if oracle is not None:
        scorers["oracle"] = oracle
        om = binary_metrics(y, oracle)
        metrics["oracle_roc_auc"] = om["roc_auc"]
        metrics["oracle_pr_auc"] = om["pr_auc"]
        metrics["oracle_log_loss"] = om["log_loss"]
        metrics["oracle_gap_roc_auc"] = om["roc_auc"] - metrics["test_roc_auc"]
    for cap in capacities:
        tag = f"at_{round(cap * 100)}"
        for name, s in scorers.items():
            m = at_capacity(y, s, cap)
            for k in ("recall", "precision", "exclusion_error", "inclusion_error"):
                metrics[f"{name}_{k}_{tag}"] = m[k]
            mc = at_capacity(y, s, cap, by=county)
            metrics[f"{name}_recall_{tag}_per_county"] = mc["recall"]
        if "rules" in scorers:
            metrics[f"gain_recall_{tag}"] = (
                metrics[f"model_recall_{tag}"] - metrics[f"rules_recall_{tag}"]
            )
        tables[f"per_county_{tag}"] = per_county_capacity(y, score, county, cap)
    if rules_flagged is not None:
        for k, v in selection_metrics(y, rules_flagged).items():
            metrics[f"rules_only_{k}"] = v
        if model_flagged is not None:
            for k, v in selection_metrics(y, rules_flagged | model_flagged).items():
                metrics[f"rules_or_model_{k}"] = v
    if model_flagged is not None:
        for k, v in selection_metrics(y, model_flagged).items():
            metrics[f"model_flagged_{k}"] = v
    tables["capacity_curve"] = capacity_curve(y, scorers)
    main_cap = max(capacities)
    gt = group_table(y, score, groups, main_cap)
    tables["groups"] = gt
    gaps = largest_gaps(gt)
    tables["group_gaps"] = gaps
    if len(gaps):
        for _, r in gaps.iterrows():
            metrics[f"gap_{r['metric']}_{r['group']}"] = r["gap"]
    return Evaluation(period=period, metrics=metrics, tables=tables)


# --------------------------------------------------------------------------- bootstrap
def bootstrap_counts(n: int, resamples: int, seed: int = 0) -> np.ndarray:
    """How often each of ``n`` rows is drawn in each of ``resamples`` bootstrap samples (int32)."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(resamples, n)) + (np.arange(resamples)[:, None] * n)
    return np.bincount(idx.ravel(), minlength=resamples * n).reshape(resamples, n).astype(np.int32)


def weighted_auc(y: np.ndarray, score: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """ROC AUC of each row of ``counts`` (rows weighted by how often they are drawn), ties halved."""
    y = np.asarray(y, dtype=bool)
    score = np.asarray(score, dtype=float)
    order = np.argsort(score, kind="stable")
    s = score[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    c = counts[:, order].astype(np.float64)
    pos = np.add.reduceat(c * y[order], starts, axis=1)
    neg = np.add.reduceat(c * ~y[order], starts, axis=1)
    below = np.cumsum(neg, axis=1) - neg
    P, N = pos.sum(axis=1), neg.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (pos * (below + 0.5 * neg)).sum(axis=1) / (P * N)
    return np.where((P > 0) & (N > 0), out, np.nan)


def weighted_recall_at_capacity(
    y: np.ndarray, score: np.ndarray, counts: np.ndarray, capacity: float, rng_seed: int = 0
) -> np.ndarray:
    """Recall when the top ``capacity`` share of each weighted sample is visited.

    The order (score, then the seeded tie-break of ``top_k_mask``) is the same for
    every sample; with all counts 1 it is ``at_capacity(y, score, capacity)["recall"]``.
    """
    y = np.asarray(y, dtype=bool)
    n = len(y)
    tiebreak = np.random.default_rng(rng_seed).random(n)
    order = np.lexsort((tiebreak, -np.asarray(score, dtype=float)))
    c = counts[:, order].astype(np.float64)
    k = np.ceil(capacity * c.sum(axis=1, keepdims=True) - 1e-9)
    cum = np.cumsum(c, axis=1)
    take = np.clip(k - (cum - c), 0.0, c)
    yo = y[order]
    pos = (c * yo).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(pos > 0, (take * yo).sum(axis=1) / pos, np.nan)


def bootstrap_gains(
    y: np.ndarray,
    model: np.ndarray,
    baselines: dict[str, np.ndarray],
    capacities: tuple[float, ...] = (0.05, 0.10),
    resamples: int = 200,
    seed: int = 0,
    level: float = 0.95,
    block: int = 50,
) -> pd.DataFrame:
    """The model's gain over each baseline in ROC AUC and recall at each capacity, with
    percentile bootstrap intervals (rows resampled with replacement, the same samples for
    every scorer). Columns: baseline, metric, model, baseline_value, gain, lo, hi."""
    y = np.asarray(y, dtype=int)
    n = len(y)
    scorers = {"model": np.asarray(model, dtype=float)} | {
        k: np.asarray(v, dtype=float) for k, v in baselines.items()
    }
    metric_names = ["roc_auc"] + [f"recall_at_{round(c * 100)}" for c in capacities]

    def values(counts: np.ndarray) -> dict[tuple[str, str], np.ndarray]:
        out = {}
        for name, s in scorers.items():
            out[(name, "roc_auc")] = weighted_auc(y, s, counts)
            for cap in capacities:
                out[(name, f"recall_at_{round(cap * 100)}")] = weighted_recall_at_capacity(
                    y, s, counts, cap
                )
        return out

    point = values(np.ones((1, n), dtype=np.int32))
    draws: dict[tuple[str, str], list[np.ndarray]] = {key: [] for key in point}
    if n and resamples:
        counts = bootstrap_counts(n, resamples, seed)
        for i in range(0, resamples, block):
            for key, v in values(counts[i : i + block]).items():
                draws[key].append(v)
    alpha = (1 - level) / 2
    rows = []
    for b in baselines:
        for m in metric_names:
            gain = float(point[("model", m)][0] - point[(b, m)][0])
            lo = hi = float("nan")
            if draws[("model", m)]:
                g = np.concatenate(draws[("model", m)]) - np.concatenate(draws[(b, m)])
                g = g[np.isfinite(g)]
                if len(g):
                    lo, hi = (float(q) for q in np.quantile(g, [alpha, 1 - alpha]))
            rows.append(
                {
                    "baseline": b,
                    "metric": m,
                    "model": float(point[("model", m)][0]),
                    "baseline_value": float(point[(b, m)][0]),
                    "gain": gain,
                    "lo": lo,
                    "hi": hi,
                }
            )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- plots
def reliability_plot(table: pd.DataFrame, title: str = "Reliability (test period)"):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    lim = max(table["mean_score"].max(), table["observed_rate"].max()) * 1.05
    ax.plot([0, lim], [0, lim], "--", color="grey", label="perfect")
    ax.plot(table["mean_score"], table["observed_rate"], "o-", label="model")
    ax.set_xlabel("mean predicted probability")
    ax.set_ylabel("observed rate")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    return fig


def capacity_plot(curve: pd.DataFrame, marks: tuple[float, ...] = (0.05, 0.10)):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, t in curve.groupby("scorer"):
        ax.plot(t["capacity"], t["recall"], label=name)
    for m in marks:
        ax.axvline(m, color="grey", lw=0.5, ls=":")
    ax.set_xlabel("share of households visited (capacity)")
    ax.set_ylabel("recall of at-risk households")
    ax.set_title("Recall at caseworker capacity (test period)")
    ax.legend()
    fig.tight_layout()
    return fig
