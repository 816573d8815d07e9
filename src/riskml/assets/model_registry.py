"""MLflow for the asset-risk model: log a training run, register ``asset-risk``, aliases, the gate.

Its own registered model and experiment (``registry.model_name`` / ``registry.experiment`` of
riskml/assets/train.yaml), beside the household model, through riskml.training.registry's
public functions (tracking URI, experiment, requirements, aliases). The registered model is a
pyfunc (``AssetPyfunc``) around a saved ``AssetRiskModel`` folder: asset-year observations in,
``score``, ``logit``, ``flagged`` (each county's top share) out, with the TreeSHAP
contributions when asked (``params={"explain": True}``). New versions become ``challenger``,
the first also ``champion``; ``promote`` moves ``champion`` only through the gate
(riskml.training.promotion.compare on the same latest labelled year).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from riskml import config
from riskml.assets import observation as ob
from riskml.assets.model import AssetRiskModel
from riskml.assets.train import (
    AssetTrainConfig,
    AssetTrainingError,
    AssetTrainResult,
    evaluate_year,
)
from riskml.training import registry
from riskml.training.promotion import Comparison, compare

STRING_KINDS = ("str", "choice", "date")


def input_frame(model_input: pd.DataFrame) -> pd.DataFrame:
    """Observations in the types the features expect, whatever MLflow's enforcement produced."""
    df = model_input.copy()
    for f in ob.OBSERVATION_FIELDS:
        if f.name not in df.columns:
            continue
        if f.kind in STRING_KINDS:
            df[f.name] = df[f.name].astype(object).where(df[f.name].notna(), None)
        else:
            df[f.name] = pd.to_numeric(df[f.name], errors="coerce").astype("float64")
    return df


try:
    import mlflow.pyfunc as _pyfunc

    _PythonModel = _pyfunc.PythonModel
except Exception:  # pragma: no cover - mlflow is a hard dependency
    _PythonModel = object


class AssetPyfunc(_PythonModel):
    """MLflow pyfunc around a saved AssetRiskModel folder (artifact ``asset_model``)."""

    def load_context(self, context) -> None:
        self.model = AssetRiskModel.load(context.artifacts["asset_model"])

    def predict(
        self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        explain = bool((params or {}).get("explain", False))
        out = self.model.score_frame(input_frame(model_input), explain=explain)
        return out.reset_index(drop=True)


def example_observations(n: int = 3) -> pd.DataFrame:
    """``n`` made-up observations (a tiny simulated world, ids ``example-1``...): never real assets."""
    from riskml.assets.simulate import SimConfig, simulate

    panel = simulate(SimConfig(assets=max(40, n * 4), seed=0)).panel
    last = panel[panel["year"] == panel["year"].max()]
    ex = last[last["category"] == "operating"].head(n)
    ex = pd.concat([ex, last.head(n - len(ex))]) if len(ex) < n else ex
    ex = ex[list(ob.FIELD_NAMES)].reset_index(drop=True)
    ex["asset_id"] = [f"example-{i + 1}" for i in range(len(ex))]
    ex["project_id"] = "example-project"
    for col in ("owner", "operator", "caretaker"):
        ex[col] = ex[col].where(ex[col].isna(), f"example-{col}")
    return input_frame(ex)


def signature(model: AssetRiskModel, example: pd.DataFrame):
    from mlflow.models import ModelSignature, infer_signature
    from mlflow.types.schema import ColSpec, ParamSchema, ParamSpec, Schema

    cols = [
        ColSpec("string" if f.kind in STRING_KINDS else "double", f.name, required=f.required)
        for f in ob.OBSERVATION_FIELDS
    ]
    out = model.score_frame(example, explain=True)
    outputs = infer_signature(example.iloc[:0], out).outputs
    params = ParamSchema([ParamSpec("explain", "boolean", False)])
    return ModelSignature(inputs=Schema(cols), outputs=outputs, params=params)


def _finite(metrics: dict[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if v is not None and np.isfinite(v)}


def global_importance(model: AssetRiskModel, X: pd.DataFrame) -> pd.DataFrame:
    ex = model.explain(X)
    return (
        pd.DataFrame(
            {
                "feature": list(ex.feature_names),
                "mean_abs_shap": np.abs(ex.contributions).mean(axis=0),
                "mean_shap": ex.contributions.mean(axis=0),
            }
        )  # fmt: skip
        .sort_values("mean_abs_shap", ascending=False)
        .reset_index(drop=True)
    )


def log_training_run(
    result: AssetTrainResult,
    cfg: AssetTrainConfig,
    data_path: str | Path | None = None,
    register: bool = True,
) -> registry.Registered:
    """Log params, metrics, tables, plots, SHAP importance, the model card and the model; register
    it as ``cfg.model_name`` (challenger; champion too when there is none)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from riskml.assets.card import model_card
    from riskml.model import metrics as ev

    mlflow = registry.import_mlflow()
    exp_id = registry.ensure_experiment(cfg.experiment)
    model = result.model
    with mlflow.start_run(experiment_id=exp_id, run_name=f"train-{cfg.name}") as run:
        params = {f"lgbm_{k}": v for k, v in cfg.params.items()}
        params.update({
            "num_boost_round": cfg.num_boost_round, "early_stopping_rounds": cfg.early_stopping_rounds,
            "inspect_share": cfg.inspect, "return_floor": model.return_floor,
            "train_years": ",".join(map(str, result.splits.train_years)),
            "valid_year": result.splits.valid_year, "test_year": result.splits.test_year,
            "best_iteration": model.metadata.get("best_iteration"),
            "platt_a": round(model.platt_a, 6), "platt_b": round(model.platt_b, 6),
        })  # fmt: skip
        mlflow.log_params(params)
        mlflow.log_metrics(_finite(result.evaluation.metrics))
        mlflow.log_metrics(_finite({f"rows_{k}": v for k, v in result.row_counts.items()}))
        mlflow.log_metrics(_finite({f"time_{k}": v for k, v in result.timings.items()}))
        tags = {
            "riskml.config": cfg.name,
            "riskml.kind": "asset-risk",
            "riskml.git_commit": registry.git_commit(),
            "riskml.test_year": str(result.splits.test_year),
        }
        if data_path is not None:
            from riskml.training.train import file_hash

            tags["riskml.data_sha256"] = file_hash(data_path)
            tags["riskml.data_file"] = Path(data_path).name
        mlflow.set_tags(tags)
        mlflow.log_dict(cfg.raw, "config/train.yaml")
        for name, table in result.evaluation.tables.items():
            mlflow.log_text(table.to_csv(index=False), f"evaluation/{name}.csv")
        fig = ev.reliability_plot(
            result.evaluation.tables["reliability"], "Reliability (test year)"
        )
        mlflow.log_figure(fig, "plots/reliability.png")
        plt.close(fig)
        fig = ev.capacity_plot(result.evaluation.tables["capacity_curve"], (cfg.inspect,))
        mlflow.log_figure(fig, "plots/capacity_curve.png")
        plt.close(fig)
        test = result.test_frame
        sample = test.sample(min(len(test), 2000), random_state=0)
        importance = global_importance(model, model.features(sample))
        mlflow.log_text(importance.to_csv(index=False), "shap/global_importance.csv")
        mlflow.log_text(model_card(result, cfg, importance), "model_card.md")
        with tempfile.TemporaryDirectory() as tmp:
            folder = model.save(Path(tmp) / "asset_model")
            example = example_observations()
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=AssetPyfunc(),
                artifacts={"asset_model": str(folder)},
                code_paths=[str(config.PACKAGE_DIR)],
                signature=signature(model, example),
                input_example=example,
                pip_requirements=registry.pip_requirements(),
                registered_model_name=cfg.model_name if register else None,
                metadata={"riskml": model.metadata, "riskml_kind": "asset-risk"},
            )
        version = (
            str(info.registered_model_version)
            if register and info.registered_model_version
            else None
        )
        aliases = alias_new_version(cfg.model_name, version) if version is not None else []
        return registry.Registered(run.info.run_id, info.model_uri, version, aliases)


def alias_new_version(name: str, version: str) -> list[str]:
    """A new version becomes challenger; the first one also champion."""
    client = registry.client_()
    client.set_registered_model_alias(name, registry.CHALLENGER, version)
    try:
        client.get_model_version_by_alias(name, registry.CHAMPION)
    except Exception:  # no champion yet
        registry.set_champion(name, version, "first model: champion by default")
        return [registry.CHALLENGER, registry.CHAMPION]
    return [registry.CHALLENGER]


def load_asset_model(uri: str) -> AssetRiskModel:
    """The AssetRiskModel inside a logged pyfunc (``models:/asset-risk@champion``, ``runs:/...``)."""
    mlflow = registry.import_mlflow()
    return mlflow.pyfunc.load_model(uri).unwrap_python_model().model


def promote(
    panel: pd.DataFrame, cfg: AssetTrainConfig, force: bool = False, reason: str | None = None
) -> tuple[bool, Comparison | None, str]:
    """The promotion gate: ``champion`` moves to the challenger when it is not worse on the
    latest labelled year of ``panel`` (margins ``cfg.promotion``), or when forced with a reason."""
    if force and not reason:
        raise ValueError("forcing a promotion needs a reason")
    name = cfg.model_name
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
    labelled = panel[panel[ob.LABEL].notna()]
    if labelled.empty:
        raise AssetTrainingError("the panel has no labelled observations to compare on")
    year = int(labelled["year"].max())
    last = labelled[labelled["year"] == year]
    ev_champ, _ = evaluate_year(
        load_asset_model(registry.model_uri(name, registry.CHAMPION)), last, cfg
    )
    ev_chall, _ = evaluate_year(
        load_asset_model(registry.model_uri(name, registry.CHALLENGER)), last, cfg
    )
    cmp = compare(ev_champ.metrics, ev_chall.metrics, cfg.promotion)
    on = f"v{champ['version']} on {year}"
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
        (
            f"not promoted: challenger v{chall['version']} is worse than champion {on} on {failed}; "
            f"champion stays version {champ['version']}"
        ),
    )
