"""The scoring service this worker serves: registered once when the worker starts, read by every route.

Both the API (``riskml.service.api``) and the caseworker pages
(``riskml.service.pages``) read it from here, so neither imports the other for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the heavy modules load in the worker, with the service
    from riskml.service.core import ScoringService

_service: ScoringService | None = None


def bind(service: ScoringService | None) -> None:
    """Register the worker's service (None: no service, as before the worker starts)."""
    global _service
    _service = service


def bound() -> ScoringService | None:
    """The registered service, or None while the service is starting."""
    return _service


def current() -> ScoringService:
    if _service is None:
        raise RuntimeError("the scoring service has not started")
    return _service


_desk = None


def desk():  # -> riskml.service.cases.CaseDesk
    """The case loop's desk on the bound service (made on first use, in the worker)."""
    global _desk
    service = current()
    if _desk is None or _desk.service is not service:
        from riskml.service.cases import CaseDesk

        _desk = CaseDesk(service)
    return _desk


_alert_desk = None


def alert_desk():  # -> riskml.service.alerts.AlertDesk
    """The department alerts' desk on the bound service (its leads go to the case desk's store)."""
    global _alert_desk
    service = current()
    if _alert_desk is None or _alert_desk.service is not service:
        from riskml.service.alerts import AlertDesk

        _alert_desk = AlertDesk(service, desk().store)
    return _alert_desk


_report_desk = None


def report_desk():  # -> riskml.service.reports.ReportDesk
    """The social reports' desk on the bound service (its leads go to the case desk's store)."""
    global _report_desk
    service = current()
    if _report_desk is None or _report_desk.service is not service:
        from riskml.service.reports import ReportDesk

        _report_desk = ReportDesk(service, desk().store)
    return _report_desk
