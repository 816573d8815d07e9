"""The Typer application; command modules register themselves on import.

Exit codes shared by the commands: 0 done; 1 the input was read but is not
acceptable (invalid records, a refused file); 2 a usage or file error (a
missing or unreadable file, an unknown file type), reported in one line on
stderr, never as a traceback (``fail``, ``file_errors``, ``read_input``).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import typer

if TYPE_CHECKING:
    import pandas as pd

USAGE_ERROR = 2
INVALID = 1

app = typer.Typer(
    name="riskml",
    help="Household poverty-risk models beside the policy rules: simulate, validate, train, score, serve.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def fail(message: str, code: int = USAGE_ERROR) -> NoReturn:
    """``error: message`` on stderr (one line) and exit with ``code``."""
    typer.echo(f"error: {' '.join(str(message).split())}", err=True)
    raise typer.Exit(code)


@contextmanager
def file_errors(what: str = "", code: int = USAGE_ERROR) -> Iterator[None]:
    """A file that cannot be found, read or written becomes ``fail`` (``what``: what was being done)."""
    from riskml.data.io import TableReadError

    try:
        yield
    except (TableReadError, OSError) as exc:
        text = str(exc)
        if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
            text = f"{exc.strerror}: {exc.filename}"
        fail(f"{what}: {text}" if what else text, code)


def check_input(path: Path) -> None:
    """The input file exists and has a known type (cheap: before slower set-up), else ``fail``."""
    from riskml.data.io import existing, table_format

    with file_errors():
        table_format(existing(path))


def read_input(path: Path) -> pd.DataFrame:
    """``riskml.data.io.read_table`` for a command's input file, file errors as ``fail``."""
    from riskml.data.io import read_table

    with file_errors():
        return read_table(path)


# Each module adds its commands to `app` (or a sub-app) when imported.
for _module in (
    "data", "simulate", "rules", "keys", "model", "score", "monitor", "serve", "lines", "cases",
    "alerts", "reports", "assets",
):  # fmt: skip
    importlib.import_module(f"riskml.cli.{_module}")
importlib.import_module("riskml.cli.cases_year").add_commands(app)  # riskml cases simulate-year
# riskml assets simulate | train | promote, and households | leads
for _module in ("assets_model", "assets_links"):
    importlib.import_module(f"riskml.cli.{_module}").add_commands(
        importlib.import_module("riskml.cli.assets").assets_app
    )
importlib.import_module("riskml.cli.db")  # riskml db upgrade | current | grant
importlib.import_module("riskml.cli.regions")  # riskml regions
