"""The Typer application; command modules register themselves on import."""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="riskml",
    help="Household poverty-risk models beside the policy rules: simulate, validate, train, score, serve.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Each module adds its commands to `app` (or a sub-app) when imported.
for _module in ("data", "simulate", "rules", "keys", "model", "score", "monitor", "serve"):
    importlib.import_module(f"riskml.cli.{_module}")
