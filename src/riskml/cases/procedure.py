"""The case loop's clocks and limits, from configuration (provinces differ).

The shipped defaults are ``riskml/cases/procedure.yaml`` (with their source);
``$RISKML_CASE_PROCEDURE_FILE``, else ``.riskml/procedure.yaml`` when it exists,
replaces any of its values. A wrong value is a ``ProcedureError`` naming the file
and the key.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from riskml import config

ENV_FILE = "RISKML_CASE_PROCEDURE_FILE"
DEADLINES = (
    "assign", "visit", "cross_check", "notice", "notice_min", "township_review", "decision",
    "plan", "follow_up", "elimination_review", "after_elimination_follow_up",
)  # fmt: skip


class ProcedureError(ValueError):
    """A procedure file that cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class Procedure:
    """Deadlines (calendar days), the due-soon window, capacity and the elimination criteria."""

    deadlines_days: dict[str, int]
    due_soon_days: int = 1
    weekly_visits: int = 20
    months_above_line: int = 6
    months_monitored: int = 6
    measures_delivered: int = 1
    max_risk_types: int = 5
    version: str = ""
    source: str = ""
    files: tuple[str, ...] = field(default=())

    def days(self, step: str) -> int:
        return self.deadlines_days[step]


def _whole(value: Any, where: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ProcedureError(
            f"{where}: must be a whole number from {low} to {high} (got {value!r})"
        )
    return value


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(base[k], v) if isinstance(v, dict) and isinstance(base.get(k), dict) else v
    return out


def _read(path: Path) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ProcedureError(f"{path}: cannot read the procedure file: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ProcedureError(f"{path}: not valid YAML: {exc}") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise ProcedureError(f"{path}: expected a mapping of settings")
    return doc


def parse(doc: dict[str, Any], where: str) -> Procedure:
    """A Procedure from a whole settings mapping (the defaults merged with an override)."""
    known = {"version", "source", "deadlines_days", "due_soon_days", "capacity", "elimination",
             "max_risk_types"}  # fmt: skip
    unknown = sorted(set(doc) - known)
    if unknown:
        raise ProcedureError(f"{where}: unknown key(s) {', '.join(unknown)}")
    days = doc.get("deadlines_days") or {}
    if not isinstance(days, dict):
        raise ProcedureError(f"{where}: deadlines_days: must be a mapping of step -> days")
    extra = sorted(set(days) - set(DEADLINES))
    if extra:
        raise ProcedureError(
            f"{where}: deadlines_days: unknown step(s) {', '.join(map(str, extra))} "
            f"(steps: {', '.join(DEADLINES)})"
        )
    deadlines = {
        s: _whole(days.get(s), f"{where}: deadlines_days.{s}", 0 if s == "notice_min" else 1, 365)
        for s in DEADLINES
    }
    cap = doc.get("capacity") or {}
    elim = doc.get("elimination") or {}
    for name, section in (("capacity", cap), ("elimination", elim)):
        if not isinstance(section, dict):
            raise ProcedureError(f"{where}: {name}: must be a mapping")
    for name, section, keys in (
        ("capacity", cap, {"weekly_visits"}),
        ("elimination", elim, {"months_above_line", "months_monitored", "measures_delivered"}),
    ):
        extra = sorted(set(section) - keys)
        if extra:
            raise ProcedureError(f"{where}: {name}: unknown key(s) {', '.join(map(str, extra))}")
    return Procedure(
        deadlines_days=deadlines,
        due_soon_days=_whole(doc.get("due_soon_days", 1), f"{where}: due_soon_days", 0, 30),
        weekly_visits=_whole(cap.get("weekly_visits"), f"{where}: capacity.weekly_visits", 1, 500),
        months_above_line=_whole(
            elim.get("months_above_line"), f"{where}: elimination.months_above_line", 1, 36
        ),
        months_monitored=_whole(
            elim.get("months_monitored"), f"{where}: elimination.months_monitored", 0, 36
        ),
        measures_delivered=_whole(
            elim.get("measures_delivered"), f"{where}: elimination.measures_delivered", 0, 20
        ),
        max_risk_types=_whole(doc.get("max_risk_types", 5), f"{where}: max_risk_types", 1, 12),
        version=str(doc.get("version") or ""),
        source=str(doc.get("source") or ""),
    )


def shipped_file() -> Path:
    return config.package_file("cases/procedure.yaml")


def override_file() -> Path | None:
    """The operator's procedure file in force, if any."""
    env = os.environ.get(ENV_FILE)
    if env:
        return Path(env).expanduser()
    local = config.STATE_DIR / "procedure.yaml"
    return local if local.exists() else None


def load(path: str | Path | None = None, **overrides: Any) -> Procedure:
    """The shipped procedure, with ``path`` (else the override file) laid over it, then ``overrides``.

    ``overrides`` are top-level settings (e.g. ``capacity={"weekly_visits": 5}``), for tests
    and simulations.
    """
    shipped = shipped_file()
    doc = _read(shipped)
    files = [str(shipped)]
    over = Path(path) if path is not None else override_file()
    where = str(shipped)
    if over is not None:
        if not over.exists():
            raise ProcedureError(f"{over}: the procedure file does not exist")
        doc = _merge(doc, _read(over))
        files.append(str(over))
        where = str(over)
    if overrides:
        doc = _merge(doc, overrides)
        where = f"{where} (with overrides)"
    proc = parse(doc, where)
    return Procedure(**{**proc.__dict__, "files": tuple(files)})
