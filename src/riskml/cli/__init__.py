"""The ``riskml`` command line: one sub-module per group of commands."""

from __future__ import annotations

import riskml.config  # noqa: F401  (telemetry off before anything else is imported)
from riskml.cli.app import app

__all__ = ["app"]
