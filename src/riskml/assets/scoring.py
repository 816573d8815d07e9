"""Scoring a batch of asset observations: scores, each county's inspection list, reasons for the flagged.

``score_assets(model, obs)`` is what a county's yearly run does: every asset scored, each
county's top share (the model's ``inspect_share``; per county and year when the batch holds
several years) flagged, and the flagged explained (exact TreeSHAP, the top reasons in Chinese
and English). ``explain="all"`` explains every asset, ``"none"`` none. ``timings`` says where
the time went (the benchmark prints it).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from riskml.assets.model import AssetRiskModel
from riskml.assets.reasons import reasons_for

EXPLAIN = ("none", "flagged", "all")


@dataclass
class Scored:
    frame: pd.DataFrame  # asset_id, year, county_code, score, flagged, reasons (explained rows)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def flagged(self) -> int:
        return int(self.frame["flagged"].sum())


def score_assets(
    model: AssetRiskModel, obs: pd.DataFrame, explain: str = "flagged", k: int = 3
) -> Scored:
    """Scores, flags and (for the ``explain`` rows) the top ``k`` reasons of each observation."""
    if explain not in EXPLAIN:
        raise ValueError(f"explain must be one of {', '.join(EXPLAIN)}, got {explain!r}")
    t: dict[str, float] = {}
    t0 = time.perf_counter()
    X = model.features(obs)
    t1 = time.perf_counter()
    score = model.predict_proba(X)
    t2 = time.perf_counter()
    county = obs["county_code"].to_numpy(dtype=object)
    years = obs["year"].to_numpy()
    group = (
        county
        if len(np.unique(years)) == 1
        else pd.Series(county).str.cat(pd.Series(years).astype(str), sep="/").to_numpy()
    )
    flagged = model.flag_by_county(score, group)
    t3 = time.perf_counter()
    out = pd.DataFrame(
        {
            "asset_id": obs["asset_id"].to_numpy(),
            "year": years,
            "county_code": county,
            "score": score,
            "flagged": flagged,
            "reasons_zh": None,
            "reasons_en": None,
            "reason_features": None,
        }
    )
    t.update(features=t1 - t0, score=t2 - t1, flag=t3 - t2)
    rows = {
        "none": np.zeros(0, int),
        "flagged": np.flatnonzero(flagged),
        "all": np.arange(len(obs)),
    }[explain]
    if len(rows):
        t4 = time.perf_counter()
        Xe = X.iloc[rows]
        contrib = model.explain(Xe).contributions
        t5 = time.perf_counter()
        reasons = reasons_for(obs.iloc[rows], Xe, contrib, k=k, feature_names=model.feature_names)
        out.loc[rows, "reasons_zh"] = ["；".join(r["text_zh"] for r in rs) for rs in reasons]
        out.loc[rows, "reasons_en"] = ["; ".join(r["text_en"] for r in rs) for rs in reasons]
        out.loc[rows, "reason_features"] = [",".join(r["feature"] for r in rs) for rs in reasons]
        t.update(explain=t5 - t4, reasons=time.perf_counter() - t5)
    t["total"] = time.perf_counter() - t0
    return Scored(out, t)
