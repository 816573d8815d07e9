"""The model of a run: a model URI resolved to its (name, version) and loaded as a RiskModel."""

from __future__ import annotations

from pathlib import Path

from riskml.model.risk_model import RiskModel
from riskml.scoring.decide import ModelInfo


def load_model(uri: str) -> tuple[RiskModel, ModelInfo]:
    """The RiskModel behind a model URI and its (name, version) for the decisions.

    ``models:/name@alias`` is resolved to its version first (so a run uses one
    version even if the alias moves meanwhile); ``models:/name/version``,
    ``runs:/...`` and MLflow model folders load through MLflow; a folder
    written by ``RiskModel.save`` loads directly (name = folder, version "local").
    """
    name, version = resolve_model_uri(uri)
    if _is_model_folder(uri):
        return RiskModel.load(uri), ModelInfo(name, version)
    from riskml.training import registry

    target = f"models:/{name}/{version}" if uri.startswith("models:/") else uri
    return registry.load_risk_model(target), ModelInfo(name, version)


def _is_model_folder(uri: str) -> bool:
    folder = Path(uri)
    return (folder / "model.json").exists() and (folder / "booster.txt").exists()


def resolve_model_uri(uri: str) -> tuple[str, str]:
    """(name, version) of a model URI, an alias resolved to its version.

    ``models:/name@alias`` and ``models:/name/version`` give the registered
    name and version; ``runs:/<id>/...`` gives (uri, run id); a RiskModel
    folder (folder name, "local"); anything else (uri, "unregistered").
    """
    if uri.startswith("models:/"):
        from riskml.training import registry

        ref = uri[len("models:/") :]
        if "@" in ref:
            name, alias = ref.split("@", 1)
            return name, str(registry.resolve_alias(name, alias)["version"])
        name, _, version = ref.partition("/")
        return name, version or "latest"
    if uri.startswith("runs:/"):
        return uri, uri[len("runs:/") :].split("/", 1)[0]
    if _is_model_folder(uri):
        return Path(uri).resolve().name, "local"
    return uri, "unregistered"
