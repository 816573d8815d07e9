"""Taking in social reports (社会参与): validated, stored once, led into the case loop or listed.

``take_reports`` is the one path of ``POST /reports`` and ``riskml reports import``:

1. every report is checked against the contract (``report_problems``); any problem refuses the
   whole request (422 naming index and field) and nothing is stored; a report of a county the
   reporter's key does not cover refuses it too (403 naming the report);
2. a report stored before (the same reporter and report_id) is not stored again; a request
   sent again with the same Idempotency-Key gets the first answer again (another request with
   that key is refused, 422);
3. the request's new reports are stored in one transaction (``social_reports``);
4. a report of a household riskml knows (a decision or a move in the ledger) in the report's
   county is matched: it becomes a lead of the case loop with source ``social_report``, made by
   the system actor ``system:reports``, merged into the household's open case as any lead is
   (the lead's idempotency key is the reporter and report id, so a retry never leads twice);
   any other report is kept as unmatched and listed for its village (``unmatched``).

Nothing of a report (its description least of all) is logged.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import false, or_, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from riskml.alerts.report_contract import MAX_REPORTS, report_id_of, report_problems
from riskml.cases.machine import Actor, Refusal
from riskml.cases.store import CaseStore
from riskml.store.entries import describe, now_iso
from riskml.store.ledger import Ledger, LedgerError
from riskml.store.tables import social_reports

log = logging.getLogger("riskml.reports")

LEAD_ACTOR = Actor("reports", "system")
LEAD_SOURCE = "social_report"
_ATTEMPTS = 3  # a request that met a concurrent writer of the same reports is tried again
_IDS_PER_QUERY = 500
LISTED = (
    "reporter", "report_id", "received_at", "organisation_kind", "household_id", "county_code",
    "village_code", "risk_types", "observed_on", "description", "reference",
)  # fmt: skip


class ReportsRefused(Exception):
    """A request refused as a whole: ``status`` (403, 422) and problems naming index and field."""

    def __init__(self, status: int, message: str, problems: list[dict[str, Any]], total: int = 0):
        super().__init__(message)
        self.status = status
        self.message = message
        self.problems = problems
        self.total = total or len(problems)


@dataclass
class Received:
    """What a request did: counts, one receipt per report, and (not for reporters) the matches."""

    batch_id: str
    received: int
    stored: int
    already_stored: int
    replayed: bool = False
    receipts: list[dict[str, Any]] = field(default_factory=list)
    matched: int = 0
    unmatched: int = 0
    leads: int = 0

    def as_dict(self, matches: bool = True) -> dict[str, Any]:
        """The answer; ``matches`` False (a reporter's answer): without whether riskml knows
        the households (matched, unmatched, leads), so a reporter learns nothing of them."""
        out = dict(self.__dict__)
        if not matches:
            for name in ("matched", "unmatched", "leads"):
                out.pop(name)
        return out


def _problem(index: int | None, field_: str, problem: str) -> dict[str, Any]:
    return {"index": index, "household_id": None, "field": field_, "problem": problem}


def request_digest(reports: Sequence[dict[str, Any]]) -> str:
    """The SHA-256 of a request's reports (canonical JSON): the same request has the same digest."""
    text = json.dumps(list(reports), ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _stored(ledger: Ledger, reporter: str, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The reporter's reports of these ids stored already: id -> their row (the few columns)."""
    r = social_reports.c
    out: dict[str, dict[str, Any]] = {}
    ids = list(dict.fromkeys(ids))
    for start in range(0, len(ids), _IDS_PER_QUERY):
        stmt = select(r.report_id, r.household_id, r.matched, r.batch_id).where(
            r.reporter == reporter, r.report_id.in_(ids[start : start + _IDS_PER_QUERY])
        )
        out.update({row["report_id"]: row for row in _read(ledger, stmt)})
    return out


def _read(ledger: Ledger, stmt: Any) -> list[dict[str, Any]]:
    try:
        with ledger.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(stmt)]
    except SQLAlchemyError as exc:
        raise LedgerError(f"ledger read failed: {describe(exc)}") from exc


def _by_request_key(ledger: Ledger, reporter: str, key: str) -> list[dict[str, Any]]:
    r = social_reports.c
    stmt = select(r.report_id, r.household_id, r.matched, r.batch_id, r.request_digest).where(
        r.reporter == reporter, r.request_key == key
    )
    return _read(ledger, stmt)


def take_reports(
    reports: Any,
    *,
    ledger: Ledger,
    reporter: str,
    caller: str,
    cases: CaseStore | None = None,
    allowed: Callable[[str], bool] | None = None,
    idempotency_key: str | None = None,
    today: _dt.date | None = None,
) -> Received:
    """Take in a request's (or a file's) reports; ReportsRefused when refused as a whole.

    ``reporter``: whose reports they are (the key's id; report ids are the reporter's own).
    ``allowed(county_code)``: the caller's scope. ``cases``: where leads go (None: no leads).
    """
    if not isinstance(reports, list) or not 1 <= len(reports) <= MAX_REPORTS:
        raise ReportsRefused(422, "invalid request", [_problem(None, "reports", f"must be a list of 1 to {MAX_REPORTS:,} reports")])  # fmt: skip
    problems, total, invalid = report_problems(reports, today)
    if total:
        raise ReportsRefused(422, f"{total} problem(s) in {invalid} report(s); nothing was stored", problems, total)  # fmt: skip
    if allowed is not None:
        outside = [
            {**_problem(i, "county_code", f"county {r['county_code']} is outside this key's scope"),
             "household_id": r.get("household_id")}
            for i, r in enumerate(reports) if not allowed(r["county_code"])
        ]  # fmt: skip
        if outside:
            raise ReportsRefused(403, f"{len(outside)} report(s) outside this key's scope; nothing was stored", outside)  # fmt: skip
    ids = [report_id_of(r) for r in reports]
    digest = request_digest(reports) if idempotency_key is not None else None
    for _attempt in range(_ATTEMPTS):
        if idempotency_key is not None:
            earlier = _by_request_key(ledger, reporter, idempotency_key)
            if earlier:
                if earlier[0]["request_digest"] != digest:
                    raise ReportsRefused(422, "idempotency key reused", [_problem(None, "Idempotency-Key", "this key was used for another request; use a new key for a new request")])  # fmt: skip
                return _replay(reports, ids, earlier, ledger, reporter, cases)
        try:
            return _store(reports, ids, ledger, reporter, caller, cases, idempotency_key, digest)
        except IntegrityError:  # a concurrent request stored some of these first: look again
            continue
    raise LedgerError("nothing stored: the reports were stored concurrently; retry")


def _store(
    reports: list[dict[str, Any]],
    ids: list[str],
    ledger: Ledger,
    reporter: str,
    caller: str,
    cases: CaseStore | None,
    key: str | None,
    digest: str | None,
) -> Received:
    already = _stored(ledger, reporter, ids)
    fresh = [(i, r, rid) for i, (r, rid) in enumerate(zip(reports, ids, strict=True)) if rid not in already]  # fmt: skip
    known = ledger.locations(sorted({r["household_id"] for _, r, _ in fresh if r.get("household_id")}))  # fmt: skip
    batch_id, received_at = uuid.uuid4().hex, now_iso()
    rows = []
    for _, r, rid in fresh:
        hid = r.get("household_id")
        rows.append({
            "reporter": reporter, "report_id": rid, "received_at": received_at, "caller": caller,
            "batch_id": batch_id, "organisation_kind": r["organisation_kind"], "household_id": hid,
            "county_code": r["county_code"], "village_code": r.get("village_code"),
            "risk_types": list(r["risk_types"]), "observed_on": r["observed_on"],
            "description": r.get("description"), "reference": r.get("reference"),
            "matched": hid is not None and hid in known and known[hid][0] == r["county_code"],
            "request_key": key, "request_digest": digest,
        })  # fmt: skip
    if rows:
        try:
            with ledger.writer.begin() as conn:
                conn.execute(social_reports.insert(), rows)
        except SQLAlchemyError as exc:
            if isinstance(exc, IntegrityError):
                raise  # stored concurrently: take_reports looks again
            raise LedgerError(f"nothing stored: writing the reports failed: {describe(exc)}") from exc  # fmt: skip
    out = Received(batch_id, len(reports), len(rows), len(reports) - len(rows))
    new_ids = {row["report_id"] for row in rows}
    matched_ids = {row["report_id"] for row in rows if row["matched"]}
    out.matched = len(matched_ids)
    out.unmatched = len(rows) - out.matched
    out.receipts = [
        {"index": i, "report_id": rid, "status": "stored" if rid in new_ids else "already_stored"}
        for i, rid in enumerate(ids)
    ]
    # a lead for every matched report of the request: the new ones, and those stored before
    # (a retry after a lead could not be stored; the lead's key makes it one lead)
    leading = [(r, rid) for r, rid in zip(reports, ids, strict=True) if rid in matched_ids or (already.get(rid) or {}).get("matched")]  # fmt: skip
    out.leads = _leads(cases, reporter, leading)
    return out


def _replay(
    reports: list[dict[str, Any]],
    ids: list[str],
    earlier: list[dict[str, Any]],
    ledger: Ledger,
    reporter: str,
    cases: CaseStore | None,
) -> Received:
    """The answer to a request sent again with its Idempotency-Key: nothing stored now."""
    first = {row["report_id"] for row in earlier}
    stored = _stored(ledger, reporter, ids)
    out = Received(earlier[0]["batch_id"], len(reports), 0, len(reports), replayed=True)
    out.receipts = [
        {"index": i, "report_id": rid, "status": "stored" if rid in first else "already_stored"}
        for i, rid in enumerate(ids)
    ]
    rows = [stored[rid] for rid in dict.fromkeys(ids) if rid in first]
    out.matched = sum(bool(row["matched"]) for row in rows)
    out.unmatched = len(rows) - out.matched
    leading = [(r, rid) for r, rid in zip(reports, ids, strict=True) if (stored.get(rid) or {}).get("matched")]  # fmt: skip
    out.leads = _leads(cases, reporter, leading)
    return out


def _leads(
    cases: CaseStore | None, reporter: str, reports: list[tuple[dict[str, Any], str]]
) -> int:
    """One lead of the case loop per matched report (stored once per reporter and report id);
    the number of leads made now."""
    if cases is None:
        return 0
    made = 0
    for r, rid in reports:
        body: dict[str, Any] = {
            "source": LEAD_SOURCE,
            "reference": rid[:64],
            "risk_types": list(r["risk_types"])[: cases.procedure.max_risk_types],
        }
        if r.get("description"):
            body["note"] = r["description"]
        key = f"reports:{reporter}:{rid}"[:255]
        try:
            acted = cases.act(LEAD_ACTOR, r["household_id"], "lead", body, idempotency_key=key)
        except (Refusal, LedgerError) as exc:
            log.warning("report lead not stored: %s", type(exc).__name__)
            continue
        made += not acted.replayed  # a lead made before for this report is not counted again
    return made


def unmatched(
    ledger: Ledger,
    county_codes: Sequence[str] | None = None,
    village_codes: Sequence[str] | None = None,
    township_codes: Sequence[str] | None = None,
    village_code: str | None = None,
    limit: int = 1000,
) -> list[dict[str, Any]]:
    """Unmatched reports, newest first, in these counties, villages or townships (all None:
    everywhere), of one village when ``village_code`` is given."""
    r = social_reports.c
    stmt = select(*(r[name] for name in LISTED)).where(r.matched.is_(False))
    if county_codes is not None or village_codes is not None or township_codes is not None:
        ors = []
        if county_codes:
            ors.append(r.county_code.in_(sorted(county_codes)))
        if village_codes:
            ors.append(r.village_code.in_(sorted(village_codes)))
        for t in sorted(township_codes or ()):
            ors.append(r.village_code.startswith(t, autoescape=True))
        stmt = stmt.where(or_(*ors) if ors else false())
    if village_code is not None:
        stmt = stmt.where(r.village_code == village_code)
    stmt = stmt.order_by(r.received_at.desc(), r.reporter, r.report_id).limit(limit)
    return _read(ledger, stmt)


__all__ = [
    "LEAD_ACTOR",
    "LEAD_SOURCE",
    "Received",
    "ReportsRefused",
    "request_digest",
    "take_reports",
    "unmatched",
]
