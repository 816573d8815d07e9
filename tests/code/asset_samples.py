"""Sample asset records and events for the asset tests (pseudonymous ids only)."""

from __future__ import annotations

import copy
from typing import Any

RECORD: dict[str, Any] = {
    "asset_id": "A-1", "project_id": "P-1", "build_year": 2019, "category": "operating",
    "subtype": "solar", "form": "fixed",
    "funding": [{"source": "linkage_fund", "amount": 800000}, {"source": "east_west", "amount": 200000}],
    "original_value": 1000000, "book_value": 900000, "county_code": "530102",
    "village_code": "530102001001", "owner_type": "village_collective", "owner": "coop-530102001",
    "rights_status": "unconfirmed", "accepted_date": "2020-03-01", "rights_date": None,
    "operator": "operator-co", "operating_mode": "leased", "contract_start": "2020-04-01",
    "contract_end": "2025-03-31", "guaranteed_return_rate": 0.05, "caretaker": None,
    "maintenance_fund": None, "status": "operating",
    "beneficiaries": [{"household_id": "hh-1", "share": 0.5}, {"household_id": "hh-2", "share": 0.4}],
}  # fmt: skip


def record(**changes: Any) -> dict[str, Any]:
    """A valid record with some fields changed."""
    out = copy.deepcopy(RECORD)
    out.update(changes)
    return out


def event(kind: str, date: str, asset_id: str = "A-1", **payload: Any) -> dict[str, Any]:
    return {"asset_id": asset_id, "event": kind, "date": date, "payload": payload}
