"""Taking in a department's alerts: validated, merged onto the latest record, re-scored, stored, led.

``take`` is the one path of ``POST /alerts`` and ``riskml alerts import``:

1. every alert is checked against its department's contract (``alert_problems``); any problem
   refuses the whole request (422 naming the index and field) and nothing is stored;
2. alerts stored before (the same department and alert_id) are not taken again (a re-push);
3. the alerts of one household and month (several departments) are merged, in a fixed order,
   onto the household's latest record at or before that month (``merge``), and the merged
   record is scored through the caller's decision path (``decide``: the service's or the batch
   engine's), so the decision is the same as ``/score`` would give it;
4. the decisions and the alerts (with the decision id, the triggers that fired and the fields
   each set) are stored in one transaction; an alert about a household riskml has not seen is
   kept as unmatched, listed for its county, never dropped;
5. a household whose alerts fired a department trigger, or whose merged record is flagged,
   gets one lead of the case loop for the month (source ``department_alert``), however many
   departments and pushes: the lead's idempotency key is the household and month.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import false, select, tuple_
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from riskml.alerts.contract import alert_id_of, alert_problems
from riskml.alerts.merge import group_alerts, merge
from riskml.alerts.triggers import TriggerSet
from riskml.cases.machine import Actor, Refusal
from riskml.cases.store import CaseStore
from riskml.data.periods import month_text, parse_period
from riskml.data.schema import pseudonymous_id
from riskml.store.entries import describe, now_iso, rows_from_entries
from riskml.store.ledger import Ledger, LedgerError
from riskml.store.tables import alerts as alerts_table
from riskml.store.tables import decisions as decisions_table

log = logging.getLogger("riskml.alerts")

MAX_ALERTS = 10_000
LEAD_ACTOR = Actor("alerts", "system")
# decide(records) -> (refusal problems or None, results, ledger entries), as the caller scores
Decide = Callable[[list[dict[str, Any]]], tuple[list[dict[str, Any]] | None, list, list]]


class AlertsRefused(Exception):
    """A request refused as a whole: ``status`` (409, 422) and problems naming index and field."""

    def __init__(self, status: int, message: str, problems: list[dict[str, Any]], total: int = 0):
        super().__init__(message)
        self.status = status
        self.message = message
        self.problems = problems
        self.total = total or len(problems)


@dataclass
class Taken:
    """What a request did: counts, and one line per re-scored household and month."""

    batch_id: str
    received: int
    stored: int
    already_stored: int
    matched: int
    unmatched: int
    rescored: list[dict[str, Any]] = field(default_factory=list)
    leads: int = 0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _problem(index: int | None, hid: Any, field_: str, problem: str) -> dict[str, Any]:
    return {"index": index, "household_id": pseudonymous_id(hid) if isinstance(hid, str) else None,
            "field": field_, "problem": problem}  # fmt: skip


def stored_ids(ledger: Ledger, keys: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
    """The (department, alert_id) of these that are stored already."""
    found: set[tuple[str, str]] = set()
    a = alerts_table.c
    keys = list(dict.fromkeys(keys))
    with ledger.engine.connect() as conn:
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            stmt = select(a.department, a.alert_id).where(
                tuple_(a.department, a.alert_id).in_(chunk)
            )
            found.update((d, i) for d, i in conn.execute(stmt))
    return found


def take(
    alerts: list[Any],
    *,
    ledger: Ledger,
    decide: Decide,
    triggers: TriggerSet,
    caller: str,
    cases: CaseStore | None = None,
    department: str | None = None,
    allowed: Callable[[str, str], bool] | None = None,
) -> Taken:
    """Take in a request's (or a file's) alerts; AlertsRefused when it is refused as a whole.

    ``allowed(department, county_code)``: the caller's scope (a 403-worthy alert is refused
    here as a 403 naming it). ``cases``: where leads go (None: no leads, e.g. a dry run).
    """
    if not isinstance(alerts, list) or not 1 <= len(alerts) <= MAX_ALERTS:
        raise AlertsRefused(422, "invalid request", [_problem(None, None, "alerts", f"must be a list of 1 to {MAX_ALERTS:,} alerts")])  # fmt: skip
    problems = alert_problems(alerts, department)
    if problems.total:
        raise AlertsRefused(
            422,
            f"{problems.total} problem(s) in {problems.invalid_records} alert(s); nothing was stored",
            [_problem(p.row, p.household_id, p.field, p.rule) for p in problems],
            problems.total,
        )
    alerts = [dict(a, department=a.get("department") or department) for a in alerts]
    if allowed is not None:
        outside = [
            _problem(
                i,
                a["household_id"],
                "county_code",
                f"{a['department']} alerts of county {a['county_code']} are outside this key's scope",
            )  # fmt: skip
            for i, a in enumerate(alerts)
            if not allowed(a["department"], a["county_code"])
        ]
        if outside:
            raise AlertsRefused(403, f"{len(outside)} alert(s) outside this key's scope; nothing was stored", outside)  # fmt: skip
    ids = [(a["department"], alert_id_of(a)) for a in alerts]
    already = stored_ids(ledger, ids)
    index = {id(a): i for i, a in enumerate(alerts)}
    fresh = [a for a, key in zip(alerts, ids, strict=True) if key not in already]
    batch_id = uuid.uuid4().hex
    taken = Taken(batch_id, len(alerts), 0, len(alerts) - len(fresh), 0, 0)
    if not fresh:
        return taken
    groups = group_alerts(fresh)
    asof = ledger.previous_records(
        [(h, month_text(parse_period(p) + 1)) for h, p in groups]
    )  # the latest record at or before the alerts' month
    registered = ledger.locations(sorted({h for h, _ in groups}))
    moved = [
        _problem(
            index[id(a)],
            h,
            "county_code",
            "the household is registered in another county (moving it is an admin's act)",
        )  # fmt: skip
        for (h, _), group in groups.items()
        for a in group
        if h in registered and a["county_code"] != registered[h][0]
    ]
    if moved:
        raise AlertsRefused(409, f"{len(moved)} alert(s) of households registered elsewhere; nothing was stored", moved)  # fmt: skip
    merged_keys, merged_records, merged_info = [], [], []
    fired_by_alert: dict[int, list[dict[str, Any]]] = {}
    for (h, period), group in groups.items():
        before = asof.get((h, month_text(parse_period(period) + 1)))
        for a in group:
            fired_by_alert[id(a)] = triggers.fired(a, before, a["county_code"], period)
        m = merge(before, group)
        if m is None:
            continue
        merged_keys.append((h, period))
        merged_records.append(m.record)
        merged_info.append(m)
    decided: dict[tuple[str, str], tuple[dict, dict]] = {}
    entries: list[dict[str, Any]] = []
    if merged_records:
        refused, results, entries = decide(merged_records)
        if refused:
            raise AlertsRefused(
                422,
                "a merged record is not valid; nothing was stored",
                [
                    _problem(
                        index[id(groups[merged_keys[p["index"]]][0])]
                        if p.get("index") is not None
                        else None,
                        p.get("household_id"),
                        f"record.{p['field']}",
                        p["problem"],
                    )  # fmt: skip
                    for p in refused
                ],
            )
        for key, res, m in zip(merged_keys, results, merged_info, strict=True):
            decided[key] = (res, m.provenance)
    received_at = now_iso()
    rows = []
    for (h, period), group in groups.items():
        res, provenance = decided.get((h, period), (None, {}))
        for a in group:
            aid = alert_id_of(a)
            mine = {f: p for f, p in provenance.items() if p.get("alert_id") == aid}
            fields = {k: v for k, v in a.items() if k not in ("alert_id", "department")}
            rows.append({
                "department": a["department"], "alert_id": aid, "received_at": received_at,
                "caller": caller, "batch_id": batch_id, "household_id": h,
                "county_code": a["county_code"], "period": period, "fields": fields,
                "matched": res is not None, "decision_id": res["decision_id"] if res else None,
                "triggers": [t["id"] for t in fired_by_alert[id(a)]] or None,
                "provenance": mine or None,
            })  # fmt: skip
    try:
        with ledger.writer.begin() as conn:
            if entries:
                conn.execute(
                    decisions_table.insert(),
                    rows_from_entries(entries, caller=caller, request_id=batch_id, created_at=received_at),
                )  # fmt: skip
            conn.execute(alerts_table.insert(), rows)
    except IntegrityError as exc:  # a concurrent push stored some of these first: retry them
        raise LedgerError(
            f"nothing stored: alerts stored concurrently ({describe(exc)}); retry"
        ) from exc
    except SQLAlchemyError as exc:
        raise LedgerError(f"nothing stored: writing the alerts failed: {describe(exc)}") from exc
    taken.stored = len(rows)
    taken.matched = sum(r["matched"] for r in rows)
    taken.unmatched = len(rows) - taken.matched
    for (h, period), group in groups.items():
        res = decided.get((h, period), (None, {}))[0]
        if res is None:
            continue
        fired = [t for a in group for t in fired_by_alert[id(a)]]
        line = {"household_id": h, "period": period, "decision_id": res["decision_id"],
                "flagged": res["flagged"], "risk_level": res["risk_level"],
                "triggers": [t["id"] for t in fired], "lead": False}  # fmt: skip
        if cases is not None and (fired or res["flagged"]):
            line["lead"] = _lead(cases, h, period, group, fired, res)
            taken.leads += line["lead"]
        taken.rescored.append(line)
    return taken


def _lead(cases: CaseStore, h: str, period: str, group: list, fired: list, res: dict) -> bool:
    types = list(dict.fromkeys([t["risk_type"] for t in fired] + list(res.get("risk_types") or [])))
    body: dict[str, Any] = {"source": "department_alert", "reference": alert_id_of(group[0])[:64]}
    if types:
        body["risk_types"] = types[: cases.procedure.max_risk_types]
    if any(t["risk_type"] in ("disaster", "accident") and t["level"] == "red" for t in fired):
        body["fast_track"] = True
    try:
        cases.act(LEAD_ACTOR, h, "lead", body, idempotency_key=f"alerts:{h}:{period}"[:255])
    except (Refusal, LedgerError) as exc:
        log.warning("alert lead not stored: %s", type(exc).__name__)
        return False
    return True


def unmatched(
    ledger: Ledger, county_codes: Sequence[str] | None = None, limit: int = 1000
) -> list[dict[str, Any]]:
    """Unmatched alerts (households riskml has not seen), newest first, of these counties (None: all)."""
    a = alerts_table.c
    stmt = select(a.department, a.alert_id, a.received_at, a.household_id, a.county_code, a.period,
                  a.fields, a.triggers).where(a.matched.is_(False))  # fmt: skip
    if county_codes is not None:
        stmt = stmt.where(a.county_code.in_(sorted(county_codes)) if county_codes else false())
    stmt = stmt.order_by(a.received_at.desc(), a.department, a.alert_id).limit(limit)
    with ledger.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(stmt)]


__all__ = ["AlertsRefused", "MAX_ALERTS", "Taken", "stored_ids", "take", "unmatched"]
