"""Loading the served model: settings from the environment, the registry alias, the local cache.

``fetch_model`` loads the model behind a registry alias and keeps a local copy,
so the service can start (and say so) when the registry is unreachable.

A tracking server (``http(s)://``) is asked ``/health`` first, with a short timeout
(``$RISKML_REGISTRY_TIMEOUT``, seconds, default 5): MLflow's own client retries a refused
connection with backoff for about four minutes, which would hold the service's start that
long before it fell back to the cache.

The cache (``$RISKML_MODEL_CACHE``, default ``model-cache`` in the state folder) holds, per
model and alias, the last version loaded from the registry and its ``info.json``; it is
read and switched under a file lock, so that several workers starting together download
once and never read a copy another is replacing.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
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


PROBE_TIMEOUT_S = 5.0


def probe_timeout() -> float:
    """Seconds to wait for a tracking server's ``/health`` ($RISKML_REGISTRY_TIMEOUT, default 5)."""
    raw = os.environ.get("RISKML_REGISTRY_TIMEOUT", "")
    try:
        value = float(raw) if raw else PROBE_TIMEOUT_S
    except ValueError:
        raise ValueError(f"RISKML_REGISTRY_TIMEOUT: not a number of seconds: {raw!r}") from None
    if not value > 0:
        raise ValueError(f"RISKML_REGISTRY_TIMEOUT: must be more than 0 seconds, not {raw!r}")
    return value


def health_url(uri: str) -> str:
    """A tracking server's ``/health`` (under its path prefix), without any user:password@."""
    parts = urllib.parse.urlsplit(uri)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urllib.parse.urlunsplit(
        (parts.scheme, netloc, parts.path.rstrip("/") + "/health", "", "")
    )


def registry_unreachable(uri: str, timeout: float | None = None) -> str | None:
    """Why the registry at ``uri`` cannot be used now, or None when it may be.

    A SQLite store whose file is gone (MLflow would silently create an empty one); a
    tracking server that does not answer ``/health`` within ``timeout`` (refused, timed out,
    unknown host). A server that answers, even with an error status, is left to MLflow.
    """
    path = _sqlite_path(uri)
    if path is not None:
        return None if path.exists() else f"no tracking store at {config.redact_url(uri)}"
    if not uri.startswith(("http://", "https://")):
        return None
    where = config.redact_url(uri)
    wait = timeout or probe_timeout()
    try:
        with urllib.request.urlopen(health_url(uri), timeout=wait):
            return None
    except urllib.error.HTTPError:  # it answered: MLflow says what is wrong, if anything
        return None
    except urllib.error.URLError as exc:
        cause = exc.reason if isinstance(exc.reason, BaseException) else exc
        return f"tracking server {where} not answering ({type(cause).__name__}: {cause})"
    except (OSError, ValueError) as exc:  # a timeout while reading, a malformed URL
        return f"tracking server {where} not answering ({type(exc).__name__}: {exc})"


def fetch_model(settings: Settings) -> LoadedModel:
    """The model behind the alias, from the registry (refreshing the cache) or, failing that, the cache."""
    from riskml.service.model_cache import locked  # one lock for both models' caches

    cache = Path(settings.cache_dir) / settings.model_name / settings.alias
    unreachable = registry_unreachable(settings.tracking_uri)
    with locked(cache):
        if unreachable is None:
            try:
                return _from_registry(settings, cache)
            except Exception as exc:  # registry down, alias missing, download failed
                why = config.redact_urls(str(exc))[:200]
                reason = f"registry unavailable ({type(exc).__name__}: {why})"
        else:
            reason = f"registry unavailable ({unreachable})"
        if (cache / "info.json").exists():
            info = json.loads((cache / "info.json").read_text())
            info["source"] = "cache"
            info["cache_reason"] = reason
            model = RiskModel.load(cache / "model" / "artifacts" / "risk_model")
            log.warning(
                "serving the cached copy of %s v%s: %s", info["name"], info["version"], reason
            )
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


# --------------------------------------------------------------------------- the asset model
ASSET_MODEL_ENV = "RISKML_ASSET_MODEL_NAME"


@dataclass
class LoadedAssetModel:
    model: Any  # riskml.assets.model.AssetRiskModel
    info: dict[str, Any]  # name, version, alias, run_id, loaded_at


def fetch_asset_model(settings: Settings, name: str | None = None) -> LoadedAssetModel:
    """The asset-risk model (``$RISKML_ASSET_MODEL_NAME``, default ``asset-risk``) behind the
    service's alias, from the registry or its cached copy (riskml.service.model_cache)."""
    from riskml.service import model_cache

    return model_cache.fetch_asset_model(settings, name)
