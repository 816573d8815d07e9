"""Ledger rows from decision entries: every key checked, naming the entry and key; time stamps.

Also the ledger's error (``LedgerError``) and the digest of a scoring request's body
(``request_digest``), which an idempotency key is stored with.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import uuid
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import pandas as pd

from riskml.data.json_text import encode
from riskml.store.tables import JSON_COLUMNS

STATUSES = ("completed", "failed")
RISK_LEVELS = ("red", "yellow", "green")
DECISION_ID = re.compile(r"^[0-9a-f]{32}$")


# A caller that looks like a raw API token (access.new_token) is refused.
_RAW_TOKEN = re.compile(r"^rk_[A-Za-z0-9_-]{20,}$")


class LedgerError(RuntimeError):
    """The ledger could not store or read decisions (nothing of a failed write is kept)."""


def describe(exc: BaseException) -> str:
    """An error's class and message, without SQL parameters (hide_parameters is on)."""
    orig = getattr(exc, "orig", None)
    return f"{type(orig or exc).__name__}: {orig or exc}".splitlines()[0]


def request_digest(body: Any) -> str:
    """sha256 (hex) of a request body parsed from JSON, in a canonical form (keys sorted).

    Equal for the same JSON sent again, whatever its spacing or key order; the
    number 1 and the number 1.0 differ (as the records they make would).
    """
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def new_decision_id() -> str:
    """A new random decision id (uuid4, 32 hex digits)."""
    return uuid.uuid4().hex


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def iso_utc(ts: str | datetime | date | pd.Timestamp) -> str:
    """A bound of a created_at window in the stored format (UTC, microseconds).

    Accepts ISO strings ("2025-03-01", "2025-03-01T08:00:00+08:00", "...Z") and
    datetimes; a bound without a time zone is taken as UTC.
    """
    if isinstance(ts, str):
        try:
            dt = datetime.fromisoformat(ts)
        except ValueError as exc:
            raise ValueError(f"not an ISO date or timestamp: {ts!r}") from exc
    elif isinstance(ts, datetime):  # includes pd.Timestamp
        dt = ts
    elif isinstance(ts, date):
        dt = datetime(ts.year, ts.month, ts.day)
    else:
        raise TypeError(f"expected an ISO string or a datetime, got {type(ts).__name__}")
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).isoformat(timespec="microseconds")


_REQUIRED = ("household_id", "period", "county_code", "village_code", "record")
_REQUIRED_COMPLETED = (
    "model_name",
    "model_version",
    "rules_version",
    "score",
    "risk_level",
    "flagged",
    "flagged_by",
    "result",
)
_OPTIONAL = ("decision_id", "contributions", "status", "errors")
_ALLOWED = frozenset(_REQUIRED + _REQUIRED_COMPLETED + _OPTIONAL)


def row_from_entry(
    i: int, entry: dict[str, Any], *, caller: str, request_id: str, created_at: str
) -> dict[str, Any]:
    """The row to insert for one entry, or ValueError naming the entry and key."""

    def bad(key: str, what: str) -> ValueError:
        return ValueError(f"entry {i}: {key}: {what}")

    if not isinstance(entry, dict):
        raise ValueError(f"entry {i}: must be a dict, got {type(entry).__name__}")
    unknown = sorted(set(entry) - _ALLOWED)
    if unknown:
        raise bad(", ".join(unknown), "unknown key(s)")
    status = entry.get("status", "completed")
    if status not in STATUSES:
        raise bad("status", f"must be one of {', '.join(STATUSES)}, got {status!r}")
    required = _REQUIRED + (_REQUIRED_COMPLETED if status == "completed" else ())
    missing = [k for k in required if k not in entry]
    if missing:
        raise bad(", ".join(missing), f"missing (required for a {status} decision)")
    for key in ("household_id", "period", "county_code", "village_code"):
        if not isinstance(entry[key], str) or not entry[key]:
            raise bad(key, "must be a non-empty string")
    if not isinstance(entry["record"], dict):
        raise bad("record", "must be the record as received (a dict)")

    result = entry.get("result")
    if result is not None and not isinstance(result, dict):
        raise bad("result", "must be the result dict")
    decision_id = entry.get("decision_id")
    result_id = result.get("decision_id") if result else None
    if decision_id is None:
        decision_id = result_id or new_decision_id()
    elif result_id is not None and result_id != decision_id:
        raise bad("decision_id", "differs from result['decision_id']")
    if not isinstance(decision_id, str) or not DECISION_ID.match(decision_id):
        raise bad("decision_id", "must be 32 lowercase hex digits (uuid4().hex)")

    score = entry.get("score")
    if score is not None:
        if isinstance(score, (bool, np.bool_)) or not isinstance(score, (int, float, np.number)):
            raise bad("score", f"must be a number or None, got {type(score).__name__}")
        score = float(score)
        if not math.isfinite(score):
            score = None
    flagged = entry.get("flagged", False)
    if not isinstance(flagged, (bool, np.bool_)):
        raise bad("flagged", f"must be a bool, got {type(flagged).__name__}")
    flagged_by = entry.get("flagged_by")
    if isinstance(flagged_by, (list, tuple)):
        flagged_by = "+".join(str(x) for x in flagged_by) or None
    if flagged_by is not None and not isinstance(flagged_by, str):
        raise bad("flagged_by", "must be a string, a list of strings or None")
    risk_level = entry.get("risk_level")
    if status == "completed" and risk_level not in RISK_LEVELS:
        raise bad("risk_level", f"must be one of {', '.join(RISK_LEVELS)}, got {risk_level!r}")
    errors = entry.get("errors")
    if status == "failed" and not errors:
        raise bad("errors", "a failed decision must say what went wrong")

    row: dict[str, Any] = {
        "decision_id": decision_id,
        "request_id": request_id,
        "created_at": created_at,
        "caller": caller,
        "household_id": entry["household_id"],
        "period": entry["period"],
        "county_code": entry["county_code"],
        "village_code": entry["village_code"],
        "score": score,
        "risk_level": risk_level,
        "flagged": bool(flagged),
        "flagged_by": flagged_by,
        "status": status,
    }
    for key in ("model_name", "model_version", "rules_version"):
        v = entry.get(key)
        if v is not None and not isinstance(v, str):
            v = str(v)
        row[key] = v
    for key in JSON_COLUMNS:
        try:
            row[key] = encode(entry.get(key))
        except TypeError as exc:
            raise bad(key, str(exc)) from None
    return row


def rows_from_entries(
    entries: list[dict[str, Any]], *, caller: str, request_id: str, created_at: str
) -> list[dict[str, Any]]:
    """The rows of one call, every entry and the caller checked; LedgerError naming the problem."""
    if not isinstance(caller, str) or not caller.strip():
        raise LedgerError("caller must be a key id or role")
    if _RAW_TOKEN.match(caller):
        raise LedgerError("caller looks like a raw API key; pass the key's id instead")
    if not isinstance(request_id, str) or not request_id:
        raise LedgerError("request_id must be a non-empty string")
    try:
        rows = [
            row_from_entry(i, e, caller=caller, request_id=request_id, created_at=created_at)
            for i, e in enumerate(entries)
        ]
    except ValueError as exc:
        raise LedgerError(f"nothing stored: {exc}") from None
    ids = [r["decision_id"] for r in rows]
    if len(set(ids)) != len(ids):
        raise LedgerError("nothing stored: the same decision_id appears twice in one call")
    return rows
