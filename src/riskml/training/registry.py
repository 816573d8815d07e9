"""MLflow: log a training run, register the model, move champion/challenger aliases.

The registered model is a custom pyfunc (``RiskPyfunc``) wrapping a saved
``RiskModel`` folder; it takes contract records (optionally with their
previous period as ``prev_<field>`` columns) and returns the calibrated
probability, its log-odds and, when asked (``params={"explain": True}``), the
per-feature TreeSHAP contributions in the same log-odds units.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from riskml import config
from riskml.data import schema
from riskml.data.side_inputs import SIDE_FIELDS
from riskml.model.features import lag_columns, side_inputs_of
from riskml.model.risk_model import RiskModel

CHAMPION = "champion"
CHALLENGER = "challenger"

# Explicit requirements: inferring them costs seconds per log and drags test packages in.
_REQUIREMENT_PACKAGES = (
    "mlflow",
    "lightgbm",
    "numpy",
    "pandas",
    "scikit-learn",
    "pyarrow",
    "pyyaml",
    "pydantic",
)


def import_mlflow():
    import mlflow

    mlflow.set_tracking_uri(config.tracking_uri())
    return mlflow


def pip_requirements() -> list[str]:
    from importlib.metadata import version

    return [f"{p}=={version(p)}" for p in _REQUIREMENT_PACKAGES]


# --------------------------------------------------------------------------- pyfunc
def _input_frame(model_input: pd.DataFrame) -> pd.DataFrame:
    """Records in the dtypes the feature pipeline expects, whatever MLflow's enforcement produced."""
    df = model_input.copy()
    for f in (*schema.FIELDS, *SIDE_FIELDS):
        if f.name not in df.columns:
            continue
        if f.kind == "str":
            df[f.name] = df[f.name].astype(str)
        elif f.kind == "bool":
            df[f.name] = (
                df[f.name]
                .map(lambda v: None if v is None or v is pd.NA or v != v else bool(v))
                .astype("boolean")
            )
        else:
            df[f.name] = pd.to_numeric(df[f.name], errors="coerce").astype("float64")
    return df


try:
    import mlflow.pyfunc as _pyfunc

    _PythonModel = _pyfunc.PythonModel
except Exception:  # pragma: no cover - mlflow is a hard dependency
    _PythonModel = object


class RiskPyfunc(_PythonModel):
    """MLflow pyfunc around a saved RiskModel folder (artifact ``risk_model``)."""

    def load_context(self, context) -> None:
        self.model = RiskModel.load(context.artifacts["risk_model"])

    def predict(
        self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        explain = bool((params or {}).get("explain", False))
        return self.model.score_frame(_input_frame(model_input), explain=explain).reset_index(
            drop=True
        )


def _signature(model: RiskModel, example: pd.DataFrame):
    from mlflow.models import infer_signature
    from mlflow.types.schema import ColSpec, ParamSchema, ParamSpec, Schema

    cols = []
    for f in schema.FIELDS:
        typ = {"str": "string", "bool": "boolean"}.get(f.kind, "double")
        cols.append(ColSpec(typ, f.name, required=True))
    for c, kind in lag_columns():  # the history: prev_*, prev2_*, prev3_* with their periods
        cols.append(ColSpec("string" if kind == "str" else "double", c, required=False))
    for c in side_inputs_of(model.feature_names):  # a feature option's side input
        cols.append(ColSpec("double", c, required=False))
    out = model.score_frame(_input_frame(example), explain=True)
    output_schema = infer_signature(example.iloc[:0], out).outputs
    params = ParamSchema([ParamSpec("explain", "boolean", False)])
    from mlflow.models import ModelSignature

    return ModelSignature(inputs=Schema(cols), outputs=output_schema, params=params)


def example_input(records: pd.DataFrame, n: int = 3) -> pd.DataFrame:
    """A few complete records in the pyfunc's input types (JSON-friendly)."""
    ex = records[list(schema.FIELD_NAMES)].dropna().head(n).copy()
    for f in schema.FIELDS:
        if f.kind == "str":
            ex[f.name] = ex[f.name].astype(str)
        elif f.kind == "bool":
            ex[f.name] = ex[f.name].astype(bool)
        else:
            ex[f.name] = ex[f.name].astype("float64")
    return ex.reset_index(drop=True)


# Made-up households for the registered model's input example: never real records (the
# example is stored with the model and shown by MLflow to anyone who can read the registry).
_EXAMPLE_HOUSEHOLDS: tuple[dict[str, Any], ...] = (
    {  # a working family of four
        "household_size": 4, "labor_count": 2, "elderly_count": 1, "children_count": 1,
        "students_compulsory": 1, "head_age": 42, "head_education_years": 9,
        "medical_insured": True, "housing_safe": True, "water_safe": True,
        "income_wage": 30000.0, "income_business": 5000.0, "income_transfer": 1200.0,
        "migrant_workers": 1, "months_employed": 20.0, "medical_expense": 800.0,
        "education_expense": 1500.0,
    },
    {  # an elderly couple, one of them chronically ill
        "household_size": 2, "labor_count": 0, "elderly_count": 2, "chronic_ill_count": 1,
        "head_age": 71, "head_education_years": 3, "formerly_poor": True,
        "medical_insured": True, "housing_safe": True, "water_safe": True,
        "income_business": 3000.0, "income_transfer": 6000.0, "medical_expense": 9000.0,
    },
    {  # five members, one disabled, a loss and a loan
        "household_size": 5, "labor_count": 2, "children_count": 2, "students_compulsory": 1,
        "students_noncompulsory": 1, "disabled_count": 1, "head_age": 50, "head_female": True,
        "head_education_years": 6, "dibao": True, "medical_insured": True, "water_safe": True,
        "income_wage": 12000.0, "income_business": -2000.0, "income_transfer": 4800.0,
        "months_employed": 14.0, "medical_expense": 2500.0, "education_expense": 4000.0,
        "disaster_loss": 4000.0, "debt": 20000.0,
    },
)  # fmt: skip


def _default_value(f: schema.Field) -> Any:
    """A field's value where a made-up household does not give one: its least value, or false."""
    if f.kind == "bool":
        return False
    low = 0 if f.minimum is None else max(f.minimum, 0)
    return int(low) if f.kind == "int" else float(low)


def example_records(period: str, county_code: str, n: int = 3) -> list[dict[str, Any]]:
    """``n`` made-up household records (ids ``example-1``, ...), valid against the schema."""
    records = []
    for i in range(n):
        made_up = _EXAMPLE_HOUSEHOLDS[i % len(_EXAMPLE_HOUSEHOLDS)]
        rec: dict[str, Any] = {}
        for f in schema.FIELDS:
            rec[f.name] = made_up.get(f.name, _default_value(f))
        rec.update(
            household_id=f"example-{i + 1}",
            period=period,
            county_code=county_code,
            village_code=f"{county_code}{i + 1:03d}001",
        )
        records.append(rec)
    problems = schema.record_problems(records)
    if problems:
        raise ValueError(f"the made-up example records are not valid: {problems[0]}")
    return records


def synthetic_example(model: RiskModel, period: str, n: int = 3) -> pd.DataFrame:
    """The registered model's input example: made-up records of ``period`` in a province
    the model has reference lines for, in the pyfunc's input types."""
    year = int(period[:4])
    provinces = sorted({p for p, y in model.lines.pairs() if y == year}) or sorted(
        {p for p, _ in model.lines.pairs()}
    )
    county = f"{provinces[0]}0101"
    return example_input(pd.DataFrame(example_records(period, county, n)), n=n)


# --------------------------------------------------------------------------- logging a run
@dataclass
class Registered:
    run_id: str
    model_uri: str
    version: str | None
    aliases: list[str]


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=config.PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=5,
        )
        return out.stdout.strip() or "unknown"
    except Exception:
        return "unknown"


def ensure_experiment(name: str = config.EXPERIMENT_NAME) -> str:
    """The experiment's id, made when missing with its artifacts under $RISKML_ARTIFACT_ROOT
    (default: the state folder's ``mlartifacts``). On a tracking server (``http(s)://``)
    without $RISKML_ARTIFACT_ROOT, where the server keeps them (``mlflow-artifacts:/``, its
    ``--artifacts-destination``): a path of the client's would be readable by no one else."""
    mlflow = import_mlflow()
    exp = mlflow.get_experiment_by_name(name)
    if exp is None:
        server = config.tracking_uri().startswith(("http://", "https://"))
        if server and not os.environ.get("RISKML_ARTIFACT_ROOT"):
            return mlflow.create_experiment(name)
        location = config.artifact_root()
        if "://" not in location:
            Path(location).mkdir(parents=True, exist_ok=True)
            location = Path(location).resolve().as_uri()
        return mlflow.create_experiment(name, artifact_location=location)
    return exp.experiment_id


def _finite(metrics: dict[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if v is not None and np.isfinite(v)}


def log_training_run(
    result, cfg, data_path: str | Path | None = None, register: bool = True
) -> Registered:
    """Log params, metrics, tables, plots, SHAP, model card and the model; register as challenger."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from riskml.model import metrics as ev
    from riskml.model.explain import global_importance, shap_plots
    from riskml.model.model_card import model_card

    mlflow = import_mlflow()
    exp_id = ensure_experiment()
    model: RiskModel = result.model
    if getattr(result, "tuning", None) is not None:  # log the parameters trained with
        cfg = cfg.with_params(result.tuning.best_params)
    with mlflow.start_run(experiment_id=exp_id, run_name=f"train-{cfg.name}") as run:
        flat_params = {f"lgbm_{k}": v for k, v in cfg.params.items()}
        flat_params.update(
            {
                "num_boost_round": cfg.num_boost_round,
                "early_stopping_rounds": cfg.early_stopping_rounds,
                "flag_capacity": cfg.flag_capacity,
                "red_capacity": cfg.red_capacity,
                "seed_bagging": cfg.seed_bagging,
                "evaluation_folds": cfg.folds,
                "tuned": result.tuning is not None,
                "train_periods": ",".join(result.splits.train_periods),
                "valid_period": result.splits.valid_period,
                "test_period": result.splits.test_period,
                "best_iteration": model.metadata.get("best_iteration"),
                "platt_a": round(model.platt_a, 6),
                "platt_b": round(model.platt_b, 6),
                "threshold_flag": round(model.thresholds.flag, 6),
                "threshold_red": round(model.thresholds.red, 6),
            }
        )
        mlflow.log_params(flat_params)
        mlflow.log_metrics(_finite(result.evaluation.metrics))
        mlflow.log_metrics(_finite({f"rows_{k}": v for k, v in result.row_counts.items()}))
        mlflow.log_metrics(_finite({f"time_{k}": v for k, v in result.timings.items()}))
        tags = {
            "riskml.config": cfg.name,
            "riskml.git_commit": git_commit(),
            "riskml.test_period": result.splits.test_period,
        }
        if data_path is not None:
            from riskml.training.train import file_hash

            tags["riskml.data_sha256"] = file_hash(data_path)
            tags["riskml.data_file"] = Path(data_path).name
        mlflow.set_tags(tags)
        mlflow.log_dict(cfg.raw, "config/training.yaml")
        log_folds(mlflow, exp_id, result, cfg)
        log_trials(mlflow, exp_id, result)
        for name, table in result.evaluation.tables.items():
            mlflow.log_text(table.to_csv(index=False), f"evaluation/{name}.csv")
        fig = ev.reliability_plot(result.evaluation.tables["reliability"])
        mlflow.log_figure(fig, "plots/reliability.png")
        plt.close(fig)
        fig = ev.capacity_plot(result.evaluation.tables["capacity_curve"], cfg.report_capacities)
        mlflow.log_figure(fig, "plots/capacity_curve.png")
        plt.close(fig)

        # SHAP on a sample of the test period (plots and global importance)
        test = result.test_frame
        sample = test.sample(min(len(test), 2000), random_state=0)
        X_sample = model.features(sample[list(schema.FIELD_NAMES)], None)
        importance = global_importance(model, X_sample)
        mlflow.log_text(importance.to_csv(index=False), "shap/global_importance.csv")
        for name, fig in shap_plots(model, X_sample).items():
            mlflow.log_figure(fig, f"shap/{name}.png")
            plt.close(fig)

        card = model_card(result, cfg, importance)
        mlflow.log_text(card, "model_card.md")

        with tempfile.TemporaryDirectory() as tmp:
            folder = model.save(Path(tmp) / "risk_model")
            example = synthetic_example(model, result.splits.test_period)  # no real record
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=RiskPyfunc(),
                artifacts={"risk_model": str(folder)},
                code_paths=[str(config.PACKAGE_DIR)],
                signature=_signature(model, example),
                input_example=example,
                pip_requirements=pip_requirements(),
                registered_model_name=cfg.model_name if register else None,
                metadata={"riskml_thresholds": model.thresholds.__dict__, "riskml": model.metadata},
            )
        version = (
            str(info.registered_model_version)
            if register and info.registered_model_version
            else None
        )
        aliases: list[str] = []
        if version is not None:
            aliases = _alias_new_version(cfg.model_name, version)
        return Registered(run.info.run_id, info.model_uri, version, aliases)


FOLDS_ARTIFACT = "evaluation/folds.csv"
TRIALS_ARTIFACT = "tuning/trials.csv"


def log_folds(mlflow, exp_id: str, result, cfg) -> None:
    """The rolling folds: one child run each (periods, every fold metric), the fold table and its
    summary (``folds_<mean|std|min|max>_<metric>``), the long fold table (scorer × subset ×
    metric by fold) and the gains over the baselines on the training run."""
    from riskml.training.folds import gain_table, scorer_table, summarise, summary_metrics

    if not result.folds:
        return
    table = result.fold_table()
    mlflow.log_text(table.to_csv(index=False), FOLDS_ARTIFACT)
    mlflow.log_text(summarise(table).to_csv(), "evaluation/folds_summary.csv")
    caps = cfg.report_capacities
    mlflow.log_text(scorer_table(table, caps).to_csv(index=False), "evaluation/fold_table.csv")
    mlflow.log_text(gain_table(table, caps).to_csv(index=False), "evaluation/fold_gains.csv")
    mlflow.log_metrics(_finite(summary_metrics(table)))
    mlflow.log_metric("folds_count", len(result.folds))
    for f in result.folds:
        with mlflow.start_run(experiment_id=exp_id, run_name=f.fold.name, nested=True):
            mlflow.set_tags({"riskml.kind": "fold", "riskml.test_period": f.fold.test_period})
            mlflow.log_params(
                {
                    "train_periods": ",".join(f.fold.train_periods),
                    "valid_period": f.fold.valid_period,
                    "test_period": f.fold.test_period,
                    "best_iteration": f.best_iteration,
                }
            )
            mlflow.log_metrics(_finite(f.metrics))
            mlflow.log_text(f.gains.to_csv(index=False), "evaluation/gains.csv")


def log_trials(mlflow, exp_id: str, result) -> None:
    """The tuning trials, when the run was tuned: one child run each (parameters, objective per
    fold and its mean), the trial table and the chosen parameters on the training run."""
    tuning = result.tuning
    if tuning is None:
        return
    mlflow.log_text(tuning.table().to_csv(index=False), TRIALS_ARTIFACT)
    mlflow.log_dict(tuning.best_params, "tuning/best_params.yaml")
    mlflow.log_metrics(
        _finite(
            {
                "tuning_trials": len(tuning.trials),
                "tuning_best_value": tuning.best_value,
                "tuning_seconds": tuning.seconds,
            }
        )  # fmt: skip
    )
    for t in tuning.trials:
        with mlflow.start_run(experiment_id=exp_id, run_name=f"trial-{t.number}", nested=True):
            mlflow.set_tags({"riskml.kind": "trial", "riskml.objective": tuning.objective})
            mlflow.log_params({f"lgbm_{k}": v for k, v in t.params.items()})
            mlflow.log_metrics(_finite({"objective": t.value, "seconds": t.seconds,
                                        **{f"objective_{p}": v for p, v in t.per_fold.items()}}))  # fmt: skip


def fold_table_of(run_id: str) -> pd.DataFrame | None:
    """The fold table a training run logged, None for a run without one (trained before folds)."""
    import io

    mlflow = import_mlflow()
    try:
        text = mlflow.artifacts.load_text(f"runs:/{run_id}/{FOLDS_ARTIFACT}")
    except Exception:
        return None
    return pd.read_csv(io.StringIO(text), dtype={"test_period": str, "valid_period": str})


def _alias_new_version(name: str, version: str) -> list[str]:
    """New versions become challenger; the first one also becomes champion."""
    client = client_()
    client.set_registered_model_alias(name, CHALLENGER, version)
    aliases = [CHALLENGER]
    try:
        client.get_model_version_by_alias(name, CHAMPION)
    except Exception:
        client.set_registered_model_alias(name, CHAMPION, version)
        client.set_model_version_tag(
            name, version, "riskml.promotion", "first model: champion by default"
        )
        aliases.append(CHAMPION)
    return aliases


def client_():
    from mlflow import MlflowClient

    import_mlflow()
    return MlflowClient(tracking_uri=config.tracking_uri())


# --------------------------------------------------------------------------- loading
def model_uri(name: str = config.REGISTERED_MODEL_NAME, alias: str = CHAMPION) -> str:
    return f"models:/{name}@{alias}"


def load_risk_model(uri: str) -> RiskModel:
    """The RiskModel inside a logged pyfunc (``models:/name@alias``, ``runs:/...`` or a local path)."""
    mlflow = import_mlflow()
    pyfunc = mlflow.pyfunc.load_model(uri)
    return pyfunc.unwrap_python_model().model


def resolve_alias(name: str, alias: str) -> dict[str, Any]:
    """Version, run id and tags of the version behind an alias."""
    mv = client_().get_model_version_by_alias(name, alias)
    return {
        "name": name,
        "alias": alias,
        "version": str(mv.version),
        "run_id": mv.run_id,
        "source": mv.source,
    }


def download_model(name: str, version: str, dest: str | Path) -> Path:
    """Copy one registered model version into ``dest`` (for a serving cache)."""
    mlflow = import_mlflow()
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    local = mlflow.artifacts.download_artifacts(
        artifact_uri=f"models:/{name}/{version}", dst_path=str(dest)
    )
    return Path(local)


def set_champion(name: str, version: str, note: str) -> None:
    """Point the champion alias at ``version`` and record why on the version."""
    client = client_()
    client.set_registered_model_alias(name, CHAMPION, version)
    client.set_model_version_tag(name, version, "riskml.promotion", note)
