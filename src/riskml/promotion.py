"""Champion/challenger: evaluate both on the same latest labelled period, move the alias if not worse."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from riskml import schema
from riskml.evaluate import Evaluation
from riskml.model import RiskModel
from riskml.reference import ReferenceLines, default_lines
from riskml.training import TrainConfig, TrainingDataError, evaluate_test_period, prepare_panel

# (metric, direction, config key of the allowed margin, default margin)
GATES = (
    ("model_recall_at_10", "higher", "max_drop_recall_at_10", 0.01),
    ("test_roc_auc", "higher", "max_drop_roc_auc", 0.005),
    ("test_ece", "lower", "max_rise_ece", 0.01),
)


def evaluate_on_period(
    model: RiskModel,
    panel: pd.DataFrame,
    cfg: TrainConfig,
    lines: ReferenceLines | None = None,
    period: str | None = None,
) -> Evaluation:
    """Evaluate a model on one labelled period of a panel (default: the latest labelled)."""
    lines = lines or default_lines()
    records, previous, labels = prepare_panel(panel, lines)
    labelled = labels.notna().to_numpy()
    periods = sorted(records.loc[labelled, "period"].unique().tolist())
    if not periods:
        raise TrainingDataError("the panel has no labelled rows to evaluate on")
    period = period or periods[-1]
    mask = labelled & (records["period"].to_numpy() == period)
    if not mask.any():
        raise TrainingDataError(f"no labelled rows in period {period}; labelled periods: {periods}")
    rec = records[mask].reset_index(drop=True)
    prev = previous[mask].reset_index(drop=True)
    y = labels[mask].to_numpy().astype(int)
    score = model.score_records(rec[list(schema.FIELD_NAMES)], prev)
    return evaluate_test_period(model, rec, prev, y, score, cfg, lines)


@dataclass
class Comparison:
    rows: list[dict] = field(default_factory=list)
    passed: bool = True

    def table(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows)


def compare(
    champion: dict[str, float], challenger: dict[str, float], margins: dict[str, float]
) -> Comparison:
    """Is the challenger not worse than the champion beyond the allowed margins, on every gate?"""
    cmp = Comparison()
    for metric, direction, key, default in GATES:
        margin = float(margins.get(key, default))
        a, b = champion.get(metric, np.nan), challenger.get(metric, np.nan)
        ok = bool(b >= a - margin) if direction == "higher" else bool(b <= a + margin)
        if np.isnan(a) or np.isnan(b):
            ok = False
        cmp.rows.append(
            {
                "metric": metric,
                "better": direction,
                "champion": a,
                "challenger": b,
                "margin": margin,
                "ok": ok,
            }
        )
        cmp.passed &= ok
    return cmp
