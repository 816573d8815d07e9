"""Decisions: the rules and the calibrated score side by side, with reasons and measures.

One function, ``decide``, serves the online service and batch scoring alike:
records in, one decision per record out (the contract's result fields). The
rules are never replaced by the model: a household is flagged when any rule
fires *or* the score reaches the model's operating threshold, and the answer
says which.

Speed (batch scoring decides millions of records with this same function):
the per-record work is only what must be per record (rendering the fired rules
and the reasons); everything else is computed for the whole frame at once. The
model's margins and exact TreeSHAP contributions come from ``RiskModel``,
which evaluates the booster with the compiled ``riskml.model.tree_engine``
(margins equal to LightGBM's bit for bit, contributions to rounding, about
15–20× faster for explanations; checked against LightGBM when built).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from riskml.data.columns import Columns, as_columns
from riskml.data.history import HISTORY_LAGS, lag_prefix
from riskml.data.reference import MissingReferenceError
from riskml.data.schema import FIELD_NAMES
from riskml.model.features import feature_matrix
from riskml.model.reasons import risk_types_from_contributions, top_reasons
from riskml.model.risk_model import RiskModel
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

    ``previous`` is each record's history (aligned row by row, missing where
    unknown): its previous period (one frame or Columns), or its lags 1-3 as a
    list (``history.earlier_from_panel`` in batch, ``earlier_from_ledger``
    online), or a frame with the deeper lags as ``prev2_``/``prev3_`` columns
    (``history.history_frame``). The rules read lag 1; the features every lag.
    """
    n = len(records)
    if n == 0:
        return []
    frame = records if isinstance(records, pd.DataFrame) else None
    cols = as_columns(records)
    if isinstance(previous, list | tuple):
        previous = [as_columns(p) for p in previous]
        prev = previous[0] if previous else None
    else:
        prev = as_columns(previous)
        deeper = tuple(lag_prefix(k) for k in range(2, HISTORY_LAGS + 1))
        if isinstance(previous, pd.DataFrame) and not any(
            str(c).startswith(deeper) for c in previous.columns
        ):
            previous = prev  # lag 1 only: converted once
    names = list(model.feature_names)
    used = model.lines.resolve(cols.province(), cols.month())
    if not used.covered.all():
        raise MissingReferenceError(
            model.lines.missing_message(model.lines.uncovered_pairs(cols.province(), cols.month()))
        )
    line_years = used.line_year.tolist()
    X_arr = feature_matrix(cols, previous, model.lines, names)
    score = model.calibrate(model.margin(X_arr))
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
    contrib = model.explain(X_arr[explain_rows]) if len(explain_rows) else None
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
            "line_year": line_years[i],
            "line_basis": used.basis[i],
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
