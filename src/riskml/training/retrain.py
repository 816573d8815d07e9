"""The retrain workflow (``riskml retrain``): train → log and register the challenger → promotion gate.

One scheduled job: read the labelled panel, train with the config
(``riskml.training.train``), log the run and register the new version as
``challenger`` (``riskml.training.registry``), run the promotion gate
(``riskml.training.promotion.promote_challenger``) and record its decision on
the version as the tag ``riskml.gate`` (``passed``, ``failed``, ``forced`` or
``not compared``, with the gate's message). Each step is timed
(``RetrainStep``); ``Retrained.summary`` is the JSON summary other jobs read
(with the means over the rolling folds the gate compares).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from riskml.data.io import read_table
from riskml.training import registry
from riskml.training.promotion import Comparison, promote_challenger
from riskml.training.train import TrainConfig
from riskml.training.train import train as run_training


@dataclass
class RetrainStep:
    """One step of the job: its name, what it did, and how long it took."""

    name: str
    result: str
    seconds: float


@dataclass
class Retrained:
    """What the retrain job did: the gate's decision, the versions, the new run's test metrics."""

    promoted: bool
    gate: str
    message: str
    champion_version: str | None
    challenger_version: str | None
    run_id: str
    test_period: str
    metrics: dict[str, Any]
    comparison: Comparison | None
    steps: list[RetrainStep]
    fold_means: dict[str, float] = field(default_factory=dict)  # over the rolling folds

    @property
    def outcome(self) -> str:
        """``promoted`` or ``kept`` (the champion): both normal outcomes of the job."""
        return "promoted" if self.promoted else "kept"

    def summary(self, seconds: float) -> dict[str, Any]:
        """The job's summary as JSON-able data (``seconds``: end to end)."""
        return {
            "outcome": self.outcome,
            "gate": self.gate,
            "message": self.message,
            "champion_version": self.champion_version,
            "challenger_version": self.challenger_version,
            "run_id": self.run_id,
            "test_period": self.test_period,
            "metrics": {
                k: self.metrics.get(k) for k in ("test_roc_auc", "model_recall_at_10", "test_ece")
            },
            "folds_mean": self.fold_means,
            "comparison": self.comparison.rows if self.comparison is not None else None,
            "seconds": seconds,
        }


def gate_label(cmp: Comparison | None, force: bool) -> str:
    """The gate's decision for the ``riskml.gate`` tag: forced, passed, failed or not compared."""
    if force and cmp is not None and not cmp.passed:
        return "forced"
    if cmp is not None and cmp.passed:
        return "passed"
    if cmp is not None:
        return "failed"
    return "not compared"


def retrain(
    config_path: str | Path,
    data_path: str | Path,
    *,
    force: bool = False,
    reason: str | None = None,
    steps: list[RetrainStep] | None = None,
) -> Retrained:
    """Train on the panel at ``data_path``, register the challenger, run the promotion gate.

    ``force`` promotes even if the gate fails and needs a ``reason``. The timed
    steps are appended to ``steps`` as they finish (pass a list to see how far
    a failed job got); errors propagate.
    """
    if force and not reason:
        raise ValueError("forcing a promotion needs a reason")
    steps = steps if steps is not None else []
    data_path = Path(data_path)
    cfg = TrainConfig.from_yaml(config_path)
    t = time.perf_counter()
    panel = read_table(data_path)
    steps.append(
        RetrainStep("read", f"{len(panel):,} rows from {data_path.name}", time.perf_counter() - t)
    )
    t = time.perf_counter()
    result = run_training(panel, cfg)
    m = result.evaluation.metrics
    steps.append(
        RetrainStep(
            "train",
            f"test {result.splits.test_period}: AUC {m['test_roc_auc']:.4f}, "
            f"recall@10 {m['model_recall_at_10']:.4f}, ECE {m['test_ece']:.4f}",
            time.perf_counter() - t,
        )
    )
    t = time.perf_counter()
    reg = registry.log_training_run(result, cfg, data_path=data_path, register=True)
    steps.append(
        RetrainStep(
            "register",
            f"version {reg.version} {reg.aliases} (run {reg.run_id})",
            time.perf_counter() - t,
        )
    )
    t = time.perf_counter()
    promoted, cmp, message = promote_challenger(cfg.model_name, panel, cfg, force, reason)
    steps.append(RetrainStep("gate", message, time.perf_counter() - t))
    champion = registry.resolve_alias(cfg.model_name, registry.CHAMPION)["version"]
    gate = gate_label(cmp, force)
    if reg.version is not None:
        registry.client_().set_model_version_tag(
            cfg.model_name, reg.version, "riskml.gate", f"{gate}: {message}"
        )
    return Retrained(
        promoted=promoted,
        gate=gate,
        message=message,
        champion_version=champion,
        challenger_version=reg.version,
        run_id=reg.run_id,
        test_period=result.splits.test_period,
        metrics=m,
        comparison=cmp,
        steps=steps,
        fold_means=fold_means(result),
    )


def fold_means(result) -> dict[str, float]:  # noqa: ANN001  (a TrainResult)
    """The gate's metrics and the fall-in gain over the naive score, mean over the rolling folds."""
    if not result.folds:
        return {}
    table = result.fold_table()
    keys = ("test_roc_auc", "model_recall_at_10", "test_ece", "gain_vs_naive_fallin_roc_auc")
    return {k: float(table[k].mean()) for k in keys if k in table}


__all__ = ["RetrainStep", "Retrained", "fold_means", "gate_label", "retrain"]
