"""Loading the served model: settings from the environment, the registry alias, the local cache.

``fetch_model`` loads the model behind a registry alias and keeps a local copy,
so the service can start (and say so) when the registry is unreachable.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from riskml import config
from riskml.model.risk_model import RiskModel

log = logging.getLogger("riskml.serving")


@dataclass
class Settings:
    model_name: str = config.REGISTERED_MODEL_NAME
    alias: str = "champion"
    tracking_uri: str = ""
    cache_dir: Path = config.STATE_DIR / "model-cache"
    ledger_url: str = ""
    keys_file: str | None = None
    rules_file: str | None = None

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            model_name=os.environ.get("RISKML_MODEL_NAME", config.REGISTERED_MODEL_NAME),
            alias=os.environ.get("RISKML_MODEL_ALIAS", "champion"),
            tracking_uri=config.tracking_uri(),
            cache_dir=Path(os.environ.get("RISKML_MODEL_CACHE", config.STATE_DIR / "model-cache")),
            ledger_url=config.ledger_url(),
            keys_file=os.environ.get("RISKML_API_KEYS_FILE"),
            rules_file=os.environ.get("RISKML_RULES_FILE"),
        )


@dataclass
class LoadedModel:
    model: RiskModel
    info: dict[
        str, Any
    ]  # name, version, alias, run_id, source ("registry" or "cache"), metrics, ...


# --------------------------------------------------------------------------- model loading
def _sqlite_path(uri: str) -> Path | None:
    if uri.startswith("sqlite:///"):
        return Path(uri[len("sqlite:///") :])
    return None


def _registry_reachable(uri: str) -> bool:
    """A SQLite registry whose file is gone is unreachable (MLflow would silently create an empty one)."""
    path = _sqlite_path(uri)
    return path is None or path.exists()


def fetch_model(settings: Settings) -> LoadedModel:
    """The model behind the alias, from the registry (refreshing the cache) or, failing that, the cache."""
    cache = Path(settings.cache_dir) / settings.model_name / settings.alias
    reason = None
    if _registry_reachable(settings.tracking_uri):
        try:
            return _from_registry(settings, cache)
        except Exception as exc:  # registry down, alias missing, download failed
            reason = (
                f"registry unavailable ({type(exc).__name__}: {config.redact_urls(str(exc))[:200]})"
            )
    else:
        reason = f"registry unavailable (no tracking store at {config.redact_url(settings.tracking_uri)})"
    if (cache / "info.json").exists():
        info = json.loads((cache / "info.json").read_text())
        info["source"] = "cache"
        info["cache_reason"] = reason
        model = RiskModel.load(cache / "model" / "artifacts" / "risk_model")
        log.warning("serving the cached copy of %s v%s: %s", info["name"], info["version"], reason)
        return LoadedModel(model, info)
    raise RuntimeError(f"no model: {reason}; and no cached copy in {cache}")


def _from_registry(settings: Settings, cache: Path) -> LoadedModel:
    os.environ["MLFLOW_TRACKING_URI"] = settings.tracking_uri
    from riskml.training import registry

    alias_info = registry.resolve_alias(settings.model_name, settings.alias)
    info_file = cache / "info.json"
    cached = json.loads(info_file.read_text()) if info_file.exists() else {}
    if cached.get("version") != alias_info["version"] or not (cache / "model").exists():
        tmp = cache.parent / f".{settings.alias}.{uuid.uuid4().hex}"
        registry.download_model(settings.model_name, alias_info["version"], tmp / "model")
        run = registry.client_().get_run(alias_info["run_id"]) if alias_info.get("run_id") else None
        metrics = dict(run.data.metrics) if run else {}
        headline = {
            k: v
            for k, v in metrics.items()
            if k.startswith(("test_", "model_recall", "oracle_roc", "rules_"))
        }
        info = {
            **alias_info,
            "metrics": headline,
            "downloaded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        (tmp / "info.json").write_text(json.dumps(info, indent=2))
        if cache.exists():
            shutil.rmtree(cache)
        tmp.rename(cache)  # the cache switches whole or not at all
    info = json.loads(info_file.read_text())
    info["source"] = "registry"
    model = RiskModel.load(cache / "model" / "artifacts" / "risk_model")
    return LoadedModel(model, info)
