"""Decisions: the rules and the calibrated score side by side, with reasons and measures.

One function, ``decide``, serves the online service and batch scoring alike:
records in, one decision per record out (the contract's result fields). The
rules are never replaced by the model: a household is flagged when any rule
fires *or* the score reaches the model's operating threshold, and the answer
says which.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from riskml import rules as policy_rules
from riskml.features import build_features
from riskml.model import RiskModel
from riskml.reasons import risk_types_from_contributions, top_reasons
from riskml.risk_types import measures_for
from riskml.schema import FIELD_NAMES

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


def _records_as_dicts(records: pd.DataFrame, rows: np.ndarray) -> list[dict[str, Any]]:
    sub = records.iloc[rows][list(FIELD_NAMES)]
    obj = sub.astype(object).where(sub.notna(), None)
    out = obj.to_dict("records")
    for d in out:
        for k, v in d.items():
            if isinstance(v, np.generic):
                d[k] = v.item()
    return out


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


def decide(
    records: pd.DataFrame,
    previous: pd.DataFrame | None,
    model: RiskModel,
    ruleset: policy_rules.RuleSet,
    info: ModelInfo,
    explain: ExplainMode = "flagged",
    reasons_k: int = 5,
    with_contributions: bool = True,
) -> list[dict[str, Any]]:
    """A contract result per record (same order). ``records`` are canonical (``schema.coerce_frame``)."""
    n = len(records)
    if n == 0:
        return []
    records = records.reset_index(drop=True)
    if previous is not None:
        previous = previous.reset_index(drop=True)
    X = build_features(records[list(FIELD_NAMES)], previous, model.lines)[list(model.feature_names)]
    score = model.predict_proba(X)
    level = model.risk_level(score)
    rr = policy_rules.evaluate(records[list(FIELD_NAMES)], ruleset, model.lines, previous=previous)
    by_rules = np.asarray(rr.flagged, dtype=bool)
    by_model = score >= model.thresholds.flag
    flagged = by_rules | by_model
    pc_to_line = X["pc_income_to_line"].to_numpy()
    below_line = pc_to_line < 1.0

    if explain == "all":
        explain_rows = np.arange(n)
    elif explain == "flagged":
        explain_rows = np.flatnonzero(flagged)
    else:
        explain_rows = np.zeros(0, dtype=int)
    contrib = model.explain(X.iloc[explain_rows]) if len(explain_rows) else None
    contrib_of = {int(r): j for j, r in enumerate(explain_rows)}

    need_dicts = np.union1d(explain_rows, np.flatnonzero(flagged)).astype(int)
    record_dicts = dict(
        zip(need_dicts.tolist(), _records_as_dicts(records, need_dicts), strict=True)
    )
    feature_rows = X.iloc[explain_rows].to_dict("records") if len(explain_rows) else []

    hid = records["household_id"].astype(str).to_numpy()
    period = records["period"].astype(str).to_numpy()
    results: list[dict[str, Any]] = []
    for i in range(n):
        fired = rr.for_row(i) if by_rules[i] else []
        red_rule = any(r["level"] == "red" for r in fired)
        lvl = "red" if red_rule else str(level[i])
        if flagged[i] and lvl == "green":
            lvl = "yellow"  # a rule fired: never green
        result: dict[str, Any] = {
            "household_id": hid[i],
            "period": period[i],
            "score": float(score[i]),
            "risk_level": lvl,
            "flagged": bool(flagged[i]),
            "flagged_by": [
                name for name, hit in (("rules", by_rules[i]), ("model", by_model[i])) if hit
            ],
            "rules": fired,
            "risk_types": rr.risk_types(i) if by_rules[i] else [],
            "reasons": [],
            "measures": [],
            "monitoring_type": None,
            "model_name": info.name,
            "model_version": info.version,
            "rules_version": ruleset.version,
            "decision_id": uuid.uuid4().hex,
        }
        j = contrib_of.get(i)
        if j is not None and contrib is not None:
            c = contrib.contributions[j]
            result["reasons"] = top_reasons(
                record_dicts[i], feature_rows[j], c, contrib.feature_names, k=reasons_k
            )
            for rt, _ in risk_types_from_contributions(c, contrib.feature_names):
                if rt not in result["risk_types"] and (flagged[i] or explain == "all"):
                    result["risk_types"].append(rt)
            if with_contributions:
                result["contributions"] = {
                    "base": round(contrib.base, 6),
                    "values": {
                        f: round(float(v), 6) for f, v in zip(contrib.feature_names, c, strict=True)
                    },
                }
        if flagged[i]:
            result["measures"] = measures_for(result["risk_types"])
            sudden = red_rule and any(
                r["risk_type"] in SUDDEN_RISK_TYPES or r["id"] == "income_drop" for r in fired
            )
            result["monitoring_type"] = monitoring_type(
                record_dicts[i].get("formerly_poor"), bool(below_line[i]), True, sudden
            )
        results.append(result)
    return results
