"""Paths, default URIs and process-wide settings in one place."""

from __future__ import annotations

import os
import re
from importlib import resources
from pathlib import Path

# Nothing in this project may reach the internet: switch telemetry off before
# mlflow or bentoml are imported anywhere in the process.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

PACKAGE_DIR = Path(__file__).resolve().parent
# The repository root when running from a checkout (src/riskml -> root); elsewhere (an
# installed wheel) the current directory, which is where a run keeps its state.
_CHECKOUT = PACKAGE_DIR.parent.parent
PROJECT_ROOT = Path(
    os.environ.get("RISKML_HOME")
    or (_CHECKOUT if (_CHECKOUT / "pyproject.toml").exists() else Path.cwd())
).resolve()


def package_file(relative: str) -> Path:
    """A data file shipped inside the riskml package (found with importlib.resources)."""
    return Path(str(resources.files("riskml").joinpath(relative)))


# Package data (in the wheel too); each overridable from the environment.
REFERENCE_LINES = Path(os.environ.get("RISKML_LINES_FILE") or package_file("data/tables/lines.csv"))
REFERENCE_COUNTIES = Path(
    os.environ.get("RISKML_COUNTIES_FILE") or package_file("data/tables/counties.csv")
)
POLICY_RULES = Path(
    os.environ.get("RISKML_RULES_FILE") or package_file("policy/rules/default.yaml")
)
# A small simulated panel for demos and fast tests (in the repository, not in the package).
SAMPLE_PANEL = PROJECT_ROOT / "data" / "sample" / "panel.parquet"

# Everything a run writes (tracking store, artifacts, ledger, generated data).
STATE_DIR = Path(os.environ.get("RISKML_STATE_DIR", PROJECT_ROOT / ".riskml")).resolve()

REGISTERED_MODEL_NAME = "household-risk"
EXPERIMENT_NAME = "household-risk"


def tracking_uri() -> str:
    """The MLflow tracking URI: $MLFLOW_TRACKING_URI or SQLite under the state folder.

    Always passed explicitly: MLflow's silent default is a mlflow.db in the
    current directory, which a server started elsewhere would not see.
    """
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{STATE_DIR / 'mlflow.db'}"


def artifact_root() -> str:
    """Where new experiments keep their artifacts (local folder by default)."""
    root = os.environ.get("RISKML_ARTIFACT_ROOT") or str(STATE_DIR / "mlartifacts")
    return root


def ledger_url() -> str:
    """The decision ledger's SQLAlchemy URL: $RISKML_LEDGER_URL or SQLite under the state folder."""
    url = os.environ.get("RISKML_LEDGER_URL")
    if url:
        return url
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{STATE_DIR / 'ledger.db'}"


# --------------------------------------------------------------------------- URLs fit to print
MAX_WORKERS = 16


def service_workers() -> int:
    """The service's worker processes: $RISKML_WORKERS (1 by default).

    More than one needs $RISKML_SESSION_SECRET: a caseworker's session cookie is
    signed by the worker that logged them in and must verify in every other one
    (``riskml serve --workers N`` makes one for the run when none is set).
    """
    text = os.environ.get("RISKML_WORKERS", "").strip() or "1"
    try:
        workers = int(text)
    except ValueError:
        workers = 0
    if not 1 <= workers <= MAX_WORKERS:
        raise ValueError(
            f"RISKML_WORKERS must be a whole number from 1 to {MAX_WORKERS}, not {text!r}"
        )
    if workers > 1 and not os.environ.get("RISKML_SESSION_SECRET"):
        raise ValueError(
            f"RISKML_WORKERS={workers} needs RISKML_SESSION_SECRET (shared by the workers, so "
            "a caseworker's session verifies in each); `riskml serve --workers` sets one"
        )
    return workers


_HIDDEN = "***"
# query parameters that carry a secret (a password, a token, a signed URL's signature)
_SECRET_PARAM = re.compile(r"pass|pwd|secret|token|key|sig|credential|auth", re.IGNORECASE)
# ``scheme://user:password@`` inside a longer text (an error message)
_USERINFO = re.compile(r"(?P<head>\b[A-Za-z][\w+.-]*://[^\s:/@]*):[^\s@]*@")


def redact_url(url: str) -> str:
    """``url`` fit to print or log: a password (``user:password@``, or a query parameter
    named like one: ``password=``, ``token=``, ``sig=``...) shown as ``***``.

    SQLAlchemy URLs (the ledger) and http(s) URIs (a tracking server) alike; a string
    that is not ``scheme://...`` (a path, ``databricks``) comes back as it was, and a URL
    that does not parse comes back with everything before its last ``@`` hidden.
    """
    if "://" not in url:
        return url
    from sqlalchemy.engine import make_url  # light enough, and only where a URL is printed

    scheme = url.split("://", 1)[0]
    try:
        parsed = make_url(url)
    except Exception:  # not a URL SQLAlchemy can read (a port that is not a number...)
        return f"{scheme}://{_HIDDEN}@{url.rsplit('@', 1)[1]}" if "@" in url else url
    secret = {k: _HIDDEN for k in parsed.query if _SECRET_PARAM.search(k)}
    if parsed.password is None and not secret:
        return url
    shown = parsed.update_query_dict(secret).render_as_string(hide_password=True)
    shown = shown.replace("%2A%2A%2A", _HIDDEN)  # the query's *** as the password's
    if parsed.password and str(parsed.password) in shown:  # never: but never print it
        return f"{scheme}://{_HIDDEN}"
    return shown


def redact_urls(text: str) -> str:
    """``text`` (an error message, say) with the password of every ``scheme://user:password@``
    in it shown as ``***``."""
    return _USERINFO.sub(lambda m: f"{m.group('head')}:{_HIDDEN}@", text)
