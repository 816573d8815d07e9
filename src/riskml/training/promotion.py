"""Champion/challenger: evaluate both on the same latest labelled period, move the alias if not worse."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from riskml.data import schema
from riskml.data.reference import ReferenceLines, default_lines
from riskml.model.metrics import Evaluation
from riskml.model.risk_model import RiskModel
from riskml.training.train import (
    TrainConfig,
    TrainingDataError,
    evaluate_test_period,
    prepare_panel,
)

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


def promote_challenger(
    name: str,
    data: pd.DataFrame,
    cfg: TrainConfig,
    force: bool = False,
    reason: str | None = None,
    lines: ReferenceLines | None = None,
) -> tuple[bool, Comparison | None, str]:
    """The promotion gate: move ``champion`` to the challenger if it is not worse (or if forced).

    Both aliases' models are evaluated on the latest labelled period of
    ``data`` and compared with ``compare`` under ``cfg.promotion``. Returns
    (promoted, comparison or None when nothing was compared, message). With no
    champion the challenger becomes champion; when both aliases point at the
    same version nothing happens. ``force`` needs a ``reason``, recorded on the
    version as its promotion note.
    """
    from riskml.training import registry

    if force and not reason:
        raise ValueError("forcing a promotion needs a reason")
    chall = registry.resolve_alias(name, registry.CHALLENGER)
    try:
        champ = registry.resolve_alias(name, registry.CHAMPION)
    except Exception:
        registry.set_champion(name, chall["version"], "no champion: challenger promoted")
        return True, None, f"no champion yet: version {chall['version']} is now champion"
    if champ["version"] == chall["version"]:
        return (
            False,
            None,
            f"challenger and champion are the same version ({chall['version']}): nothing to do",
        )
    lines = lines or default_lines()
    ev_champ = evaluate_on_period(
        registry.load_risk_model(registry.model_uri(name, registry.CHAMPION)), data, cfg, lines
    )
    ev_chall = evaluate_on_period(
        registry.load_risk_model(registry.model_uri(name, registry.CHALLENGER)), data, cfg, lines
    )
    cmp = compare(ev_champ.metrics, ev_chall.metrics, cfg.promotion)
    on = f"v{champ['version']} on {ev_chall.period}"
    if cmp.passed:
        registry.set_champion(name, chall["version"], f"passed the gate against {on}")
        return (
            True,
            cmp,
            f"promoted version {chall['version']} to champion (passed the gate against {on})",
        )
    if force:
        registry.set_champion(name, chall["version"], f"forced: {reason}")
        return True, cmp, f"forced version {chall['version']} to champion: {reason}"
    failed = ", ".join(r["metric"] for r in cmp.rows if not r["ok"])
    return (
        False,
        cmp,
        f"not promoted: challenger v{chall['version']} is worse than champion {on} on {failed}; "
        f"champion stays version {champ['version']}",
    )
