"""Social reports over HTTP, free of any web framework: ``POST /reports`` and the unmatched list.

A ``reporter`` key (a registered social organisation, enterprise or volunteer, scoped to its
counties) or an admin sends 1 to 1,000 reports; ``riskml.alerts.report_intake.take_reports``
stores them and leads the matched ones into the case loop. A reporter's answer is its reports'
receipts and counts, never whether riskml knows a household. Answers: 200; 401; 403 for another
role or a report outside the key's scope; 422 naming index and field (and a reused
Idempotency-Key); 503 when the ledger cannot be written; nothing of a refused request is stored.

``GET /reports/unmatched`` lists the reports riskml could not match, for the caseworker,
township and county keys of their villages (``?village_code=``: one village) and for admins.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from riskml.alerts.report_contract import MAX_REPORTS
from riskml.alerts.report_intake import ReportsRefused, take_reports, unmatched
from riskml.store.ledger import LedgerError
from riskml.store.once import IDEMPOTENCY_KEY, IDEMPOTENCY_KEY_RULE

log = logging.getLogger("riskml.reports")

REPORTING_ROLES = ("reporter", "admin")
LISTING_ROLES = ("caseworker", "township", "county", "admin")
_VILLAGE = re.compile(r"^[0-9]{12}$")


def _reply(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
    from riskml.service.core import Reply

    if body.get("problems") and "problems_total" not in body:
        body = {**body, "problems_total": len(body["problems"])}
    return Reply(status, body, headers or {})


def _invalid(field_: str, problem: str) -> Any:
    return _reply(422, {"error": "invalid request", "problems": [
        {"index": None, "household_id": None, "field": field_, "problem": problem}]})  # fmt: skip


class ReportDesk:
    def __init__(self, service: Any, cases: Any = None):
        self.service = service
        self.cases = cases

    def _principal(self, authorization: str | None, roles: tuple[str, ...]) -> tuple[Any, Any]:
        principal = self.service.authenticate(authorization)
        if principal is None:
            return None, _reply(401, {"error": "missing or invalid API key"}, {"WWW-Authenticate": "Bearer"})  # fmt: skip
        if principal.role not in roles:
            return principal, _reply(403, {"error": f"role {principal.role} may not do this"})
        return principal, None

    def push(self, authorization: str | None, body: Any, idempotency_key: str | None = None) -> Any:
        principal, denied = self._principal(authorization, REPORTING_ROLES)
        if denied:
            return denied
        if idempotency_key is not None and not IDEMPOTENCY_KEY.match(idempotency_key):
            return _invalid("Idempotency-Key", IDEMPOTENCY_KEY_RULE)
        if not isinstance(body, dict):
            return _invalid("(body)", 'must be a JSON object: {"reports": [...]}')
        if set(body) - {"reports"}:
            return _invalid(str(sorted(map(str, set(body) - {"reports"}))[0])[:64], "unknown field (fields: reports)")  # fmt: skip
        if not isinstance(body.get("reports"), list) or not 1 <= len(body["reports"]) <= MAX_REPORTS:  # fmt: skip
            return _invalid("reports", f"must be a list of 1 to {MAX_REPORTS:,} reports")
        try:
            received = take_reports(
                body["reports"], ledger=self.service.ledger, reporter=principal.id,
                caller=f"{principal.role}:{principal.id}", cases=self.cases,
                allowed=principal.can_report, idempotency_key=idempotency_key,
            )  # fmt: skip
        except ReportsRefused as exc:
            return _reply(exc.status, {"error": exc.message, "problems": exc.problems[:100],
                                       "problems_total": exc.total})  # fmt: skip
        except LedgerError as exc:
            log.error("reports not stored: %s", type(exc).__name__)
            return _reply(503, {"error": "the ledger could not be written; nothing was stored"})
        return _reply(200, received.as_dict(matches=principal.role != "reporter"))

    def unmatched(self, authorization: str | None, village_code: str | None = None) -> Any:
        principal, denied = self._principal(authorization, LISTING_ROLES)
        if denied:
            return denied
        if village_code is not None:
            if not _VILLAGE.match(village_code):
                return _invalid("village_code", "must be a 12-digit village code")
            if not principal.can_read(village_code[:6], village_code):
                return _reply(403, {"error": "the village is outside this key's scope"})
        try:
            if principal.role == "admin":
                rows = unmatched(self.service.ledger, village_code=village_code)
            else:
                rows = unmatched(
                    self.service.ledger, sorted(principal.counties), sorted(principal.villages),
                    sorted(principal.townships), village_code=village_code,
                )  # fmt: skip
            self.service.ledger.log_access(principal.id, principal.role, "read_unmatched_reports")
        except LedgerError as exc:
            log.error("unmatched reports not read: %s", type(exc).__name__)
            return _reply(503, {"error": "the ledger could not be read"})
        return _reply(200, {"reports": rows, "count": len(rows)})
