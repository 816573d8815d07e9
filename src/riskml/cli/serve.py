"""`riskml serve`: the BentoML scoring service on loopback."""

from __future__ import annotations

import os
import secrets
import shutil
import sys

import typer

from riskml import config
from riskml.cli.app import app


def banner(model_name: str, alias: str, host: str, port: int, ledger: str, tracking: str) -> str:
    """The line ``riskml serve`` prints: what it serves, where; the URLs without their passwords."""
    return (
        f"serving {model_name}@{alias} on http://{host}:{port} "
        f"(ledger {config.redact_url(ledger)}, registry {config.redact_url(tracking)})"
    )


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="address to bind (loopback by default)"),
    port: int = typer.Option(3000, help="port"),
    alias: str = typer.Option("champion", help="registry alias of the model to serve"),
    model_name: str = typer.Option(config.REGISTERED_MODEL_NAME, help="registered model name"),
    keys_file: str | None = typer.Option(
        None, help="API keys file (YAML); default $RISKML_API_KEYS_FILE"
    ),
    workers: int = typer.Option(
        1, min=1, max=config.MAX_WORKERS, help="worker processes (share keys, ledger, sessions)"
    ),
) -> None:
    """Serve POST /score and the decision, model and admin endpoints with BentoML."""
    env = dict(os.environ)
    env["RISKML_WORKERS"] = str(workers)
    if workers > 1 and not env.get("RISKML_SESSION_SECRET"):
        # one secret for this run's workers: sessions verify in each, and end at a restart
        env["RISKML_SESSION_SECRET"] = secrets.token_urlsafe(32)
    env.update(
        {
            "RISKML_MODEL_ALIAS": alias,
            "RISKML_MODEL_NAME": model_name,
            "RISKML_PORT": str(port),
            "MLFLOW_TRACKING_URI": config.tracking_uri(),
            "RISKML_LEDGER_URL": config.ledger_url(),
            "BENTOML_DO_NOT_TRACK": "true",
            "MLFLOW_DISABLE_TELEMETRY": "true",
        }
    )
    if keys_file:
        env["RISKML_API_KEYS_FILE"] = keys_file
    bentoml = shutil.which("bentoml", path=os.path.dirname(sys.executable)) or "bentoml"
    cmd = [
        bentoml, "serve", "riskml.service.bento:HouseholdRisk",
        "--host", host, "--port", str(port),
    ]  # fmt: skip
    typer.echo(
        banner(model_name, alias, host, port, env["RISKML_LEDGER_URL"], env["MLFLOW_TRACKING_URI"])
    )
    os.execvpe(cmd[0], cmd, env)
