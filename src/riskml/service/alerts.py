"""Department alerts over HTTP, free of any web framework: ``POST /alerts`` and the unmatched list.

A ``department`` key (scoped to its departments and counties) or an admin pushes 1 to 10,000
alerts; they are taken in by ``riskml.alerts.intake.take`` through the service's own decision
path (the same validation, lines, model and rules as ``/score``), and leads go to the case loop.
Answers: 200 with what was stored and re-scored; 401; 403 for another role or an alert outside
the key's scope; 409 for a household registered in another county; 422 naming index and field;
nothing of a refused request is stored.
"""

from __future__ import annotations

import logging
from typing import Any

from riskml.alerts.intake import MAX_ALERTS, AlertsRefused, take, unmatched
from riskml.alerts.triggers import TriggerSet
from riskml.store.ledger import LedgerError

log = logging.getLogger("riskml.alerts")


def _reply(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
    from riskml.service.core import Reply

    if body.get("problems") and "problems_total" not in body:
        body = {**body, "problems_total": len(body["problems"])}
    return Reply(status, body, headers or {})


class AlertDesk:
    def __init__(self, service: Any, cases: Any = None):
        self.service = service
        self.cases = cases
        self.triggers = TriggerSet.load()

    def _principal(self, authorization: str | None, roles: tuple[str, ...]) -> tuple[Any, Any]:
        principal = self.service.authenticate(authorization)
        if principal is None:
            return None, _reply(401, {"error": "missing or invalid API key"}, {"WWW-Authenticate": "Bearer"})  # fmt: skip
        if principal.role not in roles:
            return principal, _reply(403, {"error": f"role {principal.role} may not do this"})
        return principal, None

    def push(self, authorization: str | None, body: Any) -> Any:
        principal, denied = self._principal(authorization, ("department", "admin"))
        if denied:
            return denied
        problem = None
        if not isinstance(body, dict):
            problem = ("(body)", 'must be a JSON object: {"alerts": [...], "department": optional}')
        elif set(body) - {"alerts", "department"}:
            extra = sorted(set(body) - {"alerts", "department"})[0]
            problem = (str(extra)[:64], "unknown field (fields: alerts, department)")
        elif not isinstance(body.get("alerts"), list) or not 1 <= len(body["alerts"]) <= MAX_ALERTS:
            problem = ("alerts", f"must be a list of 1 to {MAX_ALERTS:,} alerts")
        elif body.get("department") is not None and not isinstance(body["department"], str):
            problem = ("department", "must be a department code")
        if problem is not None:
            return _reply(422, {"error": "invalid request", "problems": [
                {"index": None, "household_id": None, "field": problem[0], "problem": problem[1]}]})  # fmt: skip
        loaded = self.service.loaded
        if loaded is None:
            return _reply(503, {"error": "not ready: no model loaded"})

        def decide(records: list[dict[str, Any]]) -> tuple[Any, list, list]:
            refused, results, entries = self.service.decide_records(
                records, "flagged", loaded, principal, write_scope=False
            )
            return (refused.body.get("problems") or [{"index": None, "household_id": None, "field": "(record)", "problem": refused.body.get("error", "")}] if refused else None), results, entries  # fmt: skip

        from riskml.alerts.fields import DEPARTMENT_CODES

        department = body.get("department")
        if department is not None and department not in DEPARTMENT_CODES:
            return _reply(422, {"error": "invalid request", "problems": [
                {"index": None, "household_id": None, "field": "department",
                 "problem": "must be one of " + ", ".join(DEPARTMENT_CODES)}]})  # fmt: skip
        try:
            taken = take(
                body["alerts"], ledger=self.service.ledger, decide=decide, triggers=self.triggers,
                caller=f"{principal.role}:{principal.id}", cases=self.cases, department=department,
                allowed=principal.can_push_alerts,
            )  # fmt: skip
        except AlertsRefused as exc:
            return _reply(exc.status, {"error": exc.message, "problems": exc.problems[:100],
                                       "problems_total": exc.total})  # fmt: skip
        except LedgerError as exc:
            log.error("alerts not stored: %s", type(exc).__name__)
            return _reply(503, {"error": "the ledger could not be written; nothing was stored"})
        return _reply(200, taken.as_dict())

    def unmatched(self, authorization: str | None) -> Any:
        principal, denied = self._principal(authorization, ("county", "admin"))
        if denied:
            return denied
        counties = None if principal.role == "admin" else sorted(principal.counties)
        rows = unmatched(self.service.ledger, counties)
        return _reply(200, {"alerts": rows, "count": len(rows)})
