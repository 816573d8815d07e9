"""The asset-risk model's service load with the household model's local cache.

``fetch_asset_model`` loads the asset model (``$RISKML_ASSET_MODEL_NAME``, default
``asset-risk``) behind the service's alias from the registry and keeps a copy of that version
in the same cache folder as the household model (``Settings.cache_dir``, per model and alias),
switched whole under a file lock (``locked``: the lock ``riskml.service.loading`` takes, to be
imported by it); when the registry cannot be used
(``loading.registry_unreachable``: a missing SQLite store, a tracking server not answering its
``/health``) or fails, it serves the cached copy with ``source: cache`` and a warning naming
the server (its URL redacted) and the reason, never household data. No copy: RuntimeError.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from riskml import config
from riskml.service import loading
from riskml.service.loading import LoadedAssetModel, Settings

log = logging.getLogger("riskml.assets")
DEFAULT_NAME = "asset-risk"
MODEL_DIR = Path("model") / "artifacts" / "asset_model"  # AssetPyfunc's artifact in the copy


@contextmanager
def locked(cache: Path) -> Iterator[None]:
    """The cache of one model and alias, held by this process (other workers wait): the lock
    file ``.{alias}.lock`` beside it, the same as ``riskml.service.loading``'s."""
    cache.parent.mkdir(parents=True, exist_ok=True)
    with open(cache.parent / f".{cache.name}.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def asset_model_name(name: str | None = None) -> str:
    return name or os.environ.get(loading.ASSET_MODEL_ENV) or DEFAULT_NAME


def _load(cache: Path):
    from riskml.assets.model import AssetRiskModel

    return AssetRiskModel.load(cache / MODEL_DIR)


def _from_registry(settings: Settings, name: str, cache: Path) -> LoadedAssetModel:
    os.environ["MLFLOW_TRACKING_URI"] = settings.tracking_uri
    from riskml.training import registry

    alias_info = registry.resolve_alias(name, settings.alias)
    info_file = cache / "info.json"
    cached = json.loads(info_file.read_text()) if info_file.exists() else {}
    if cached.get("version") != alias_info["version"] or not (cache / MODEL_DIR).exists():
        tmp = cache.parent / f".{settings.alias}.{uuid.uuid4().hex}"
        registry.download_model(name, alias_info["version"], tmp / "model")
        info = {**alias_info, "name": name,
                "downloaded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}  # fmt: skip
        (tmp / "info.json").write_text(json.dumps(info, indent=2))
        if cache.exists():
            shutil.rmtree(cache)
        tmp.rename(cache)  # the cache switches whole or not at all
    info = json.loads(info_file.read_text())
    info["source"] = "registry"
    return LoadedAssetModel(_load(cache), info)


def fetch_asset_model(
    settings: Settings, name: str | None = None, unavailable: str | None = None
) -> LoadedAssetModel:
    """The asset model behind the alias, from the registry (refreshing the cache) or, failing
    that, the cache. ``unavailable``: the registry is already known down (the household model's
    load said why): not asked again, the cache is used at once."""
    name = asset_model_name(name)
    cache = Path(settings.cache_dir) / name / settings.alias
    where = config.redact_url(settings.tracking_uri)
    unreachable = unavailable or loading.registry_unreachable(settings.tracking_uri)
    with locked(cache):
        if unreachable is None:
            try:
                loaded = _from_registry(settings, name, cache)
                loaded.info["loaded_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                return loaded
            except Exception as exc:  # not registered, no alias, download failed
                why = config.redact_urls(str(exc))[:200]
                reason = f"registry {where} unavailable ({type(exc).__name__}: {why})"
        else:
            said = config.redact_urls(unreachable)
            reason = (
                said
                if said.startswith("registry unavailable")
                else f"registry unavailable ({said})"
            )
        if (cache / "info.json").exists():
            info = json.loads((cache / "info.json").read_text())
            info.update(source="cache", cache_reason=reason,
                        loaded_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))  # fmt: skip
            model = _load(cache)
            log.warning("serving the cached copy of %s v%s: %s", name, info.get("version"), reason)
            return LoadedAssetModel(model, info)
    raise RuntimeError(f"no asset model {name}@{settings.alias}: {reason}; and no cached copy")


__all__ = ["DEFAULT_NAME", "asset_model_name", "fetch_asset_model", "locked"]
