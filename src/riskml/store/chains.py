"""A household's chain of earlier decisions in the ledger: what the online history is read from.

``earlier_records`` gives, per (household_id, period), the record of the latest
decision of the latest strictly earlier period, then the same for the period
before that one, and so on (at most ``lags``). No gap is checked here: the rule
(``riskml.data.history``) is applied by ``history.earlier_from_ledger``. Two
queries per ``REQUEST_KEYS`` keys: the households' earlier decisions (keys
only), then the chosen records.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from riskml.store.entries import LedgerError, describe
from riskml.store.tables import HISTORY_KEYS, RECORDS_BY_ID

REQUEST_KEYS = 1_000  # keys per pair of queries


def earlier_records(
    engine: Any, keys: Iterable[tuple[str, str]], lags: int = 3
) -> dict[tuple[str, str], list[dict]]:
    """Per key, the records of its chain of earlier decisions (latest first); keys without
    an earlier decision are absent. ``engine``: the ledger's SQLAlchemy engine."""
    unique = list(dict.fromkeys((str(h), str(p)) for h, p in keys))
    out: dict[tuple[str, str], list[dict]] = {}
    for start in range(0, len(unique), REQUEST_KEYS):
        out.update(_chains(engine, unique[start : start + REQUEST_KEYS], lags))
    return out


def _chains(
    engine: Any, keys: list[tuple[str, str]], lags: int
) -> dict[tuple[str, str], list[dict]]:
    if not keys or lags < 1:
        return {}
    households = sorted({h for h, _ in keys})
    try:
        with engine.connect() as conn:
            candidates = conn.execute(
                HISTORY_KEYS, {"ids": households, "before": max(p for _, p in keys)}
            ).all()
            # per household and period, its latest decision (tuples in DECISION_ORDER)
            latest: dict[str, dict[str, tuple[str, str, str]]] = {}
            for decision_id, household_id, period, created_at in candidates:
                periods = latest.setdefault(household_id, {})
                cand = (period, created_at, decision_id)
                if period not in periods or cand > periods[period]:
                    periods[period] = cand
            ordered = {h: sorted(ps.values(), reverse=True) for h, ps in latest.items()}
            chosen: dict[tuple[str, str], list[str]] = {}
            for h, p in keys:
                chain = [c[2] for c in ordered.get(h, ()) if c[0] < p][:lags]
                if chain:
                    chosen[(h, p)] = chain
            if not chosen:
                return {}
            ids = sorted({i for chain in chosen.values() for i in chain})
            records = dict(conn.execute(RECORDS_BY_ID, {"ids": ids}).all())
    except SQLAlchemyError as exc:
        raise LedgerError(f"ledger read failed: {describe(exc)}") from exc
    return {key: [records[i] for i in chain] for key, chain in chosen.items()}
