"""An asset's life as events: the vocabulary, the transition table, payload checks and ``apply``.

Pure functions over plain dicts. ``check`` raises ``TransitionRefused`` (the event is not
allowed in the asset's status: it names the asset, the event and the status) or
``EventError`` (a payload field is wrong: it names the asset, the event and the field);
``apply`` folds an accepted event into the asset's state; ``replay`` is ``apply`` over an
asset's events in order, so the register is always a function of the events
(``riskml.assets.register`` stores them insert-only).

The lifecycle (shared/domain.md, "Assistance assets"): register (the asset record enters the
one register, 统一台账) → acceptance (验收) → hand_over (移交) and rights_confirmed (确权,
颁证) → contract (an operating contract) → income (a year's income) → distribution (to whom,
how much; the order and banned uses are rules, ``riskml.assets.rules``) → maintenance and
inspection → marked_idle or marked_low → revival (盘活) → disposal with approval (处置).
"""

from __future__ import annotations

import copy
import datetime as dt
import re
from typing import Any

from riskml.assets import contract as c
from riskml.assets.validation import missing, one_record, parse_date, value_rules
from riskml.data.schema import pseudonymous_id

LIVE = ("operating", "idle", "low_efficiency", "suspended")  # accepted, not disposed
NOT_DISPOSED = ("building", *LIVE)
REVIVAL_METHODS: dict[str, str] = {
    "own_operation": "自主经营", "lease": "出租", "investment": "入股投资", "merger": "合并整合",
    "upgrade": "改造提升",
}  # fmt: skip
DISPOSAL_METHODS: dict[str, str] = {
    "auction": "拍卖", "transfer": "转让", "conversion": "转为他用", "suspension": "停用",
    "write_off": "核销报废",
}  # fmt: skip
FINDINGS: dict[str, str] = {
    "good": "良好", "needs_repair": "需维修", "damaged": "损坏", "unused": "未使用", "missing": "灭失",
}  # fmt: skip

# event -> (Chinese name, statuses it is allowed in, status after: None keeps the status)
TRANSITIONS: dict[str, tuple[str, tuple[str | None, ...], str | None]] = {
    "register": ("登记入账", (None,), None),  # the status is the record's
    "acceptance": ("竣工验收", ("building",), "operating"),
    "hand_over": ("资产移交", NOT_DISPOSED, None),
    "rights_confirmed": ("确权登记", NOT_DISPOSED, None),
    "contract": ("签订经营合同", ("building", "operating", "idle", "low_efficiency"), None),
    "income": ("年度收益", LIVE, None),
    "distribution": ("收益分配", LIVE, None),
    "maintenance": ("管护维修", LIVE, None),
    "inspection": ("巡查检查", NOT_DISPOSED, None),
    "marked_idle": ("认定闲置", ("operating", "low_efficiency"), "idle"),
    "marked_low": ("认定低效", ("operating",), "low_efficiency"),
    "revival": ("盘活", ("idle", "low_efficiency", "suspended"), "operating"),
    "disposal": ("处置", LIVE, "disposed"),  # a suspension keeps the asset: suspended
}
EVENT_TYPES: tuple[str, ...] = tuple(TRANSITIONS)
USE_ID = _METHOD_ID = re.compile(r"^[a-z][a-z0-9_]{0,39}$")  # USE_ID: public


class EventError(ValueError):
    """An event that cannot be applied: names the asset, the event and the field."""

    def __init__(self, asset_id: str | None, event: str, field: str, rule: str):
        self.asset_id, self.event, self.field, self.rule = asset_id, event, field, rule
        super().__init__(
            f"asset {asset_id or '(unnamed)'}, event {event!r}, field {field!r}: {rule}"
        )


class TransitionRefused(EventError):
    """An event not allowed in the asset's current status."""

    def __init__(self, asset_id: str | None, event: str, status: str | None):
        self.status = status
        allowed = ", ".join(s or "(new asset)" for s in TRANSITIONS[event][1])
        now = status or "(not registered)"
        super().__init__(
            asset_id, event, "status",
            f"not allowed in status {now} (allowed in: {allowed})",
        )  # fmt: skip


# ------------------------------------------------------------------------- payloads
# event -> (field, kind, required); a kind that is a contract field's name is checked by it
YEAR_FIELD = _YEAR = c.AssetField("year", "int", True, "", "", minimum=1980, maximum=2100)
AMOUNT_FIELD = _AMOUNT = c.AssetField(
    "amount", "float", True, "", "", minimum=0, maximum=c.MONEY_MAX
)
_REF = c.AssetField("approval_ref", "id", True, "", "", pattern=c.ID_PATTERN)
PAYLOADS: dict[str, tuple[tuple[str, bool], ...]] = {
    "register": (("record", True),),
    "acceptance": (("book_value", False),),
    "hand_over": (("owner_type", True), ("owner", False)),
    "rights_confirmed": (("rights_status", True),),
    "contract": (("operator", True), ("operating_mode", True), ("contract_start", True),
                 ("contract_end", True), ("guaranteed_return_rate", False)),
    "income": (("year", True), ("amount", True)),
    "distribution": (("year", True), ("items", True)),
    "maintenance": (("amount", False), ("caretaker", False), ("maintenance_fund", False)),
    "inspection": (("finding", True),),
    "marked_idle": (),
    "marked_low": (),
    "revival": (("method", True), ("operator", False), ("operating_mode", False)),
    "disposal": (("method", True), ("approved_by", True), ("approval_ref", True),
                 ("proceeds", False)),
}  # fmt: skip


def _payload_rules(event: str, name: str, v: Any) -> list[str]:
    if name in c.FIELD_BY_NAME:
        return value_rules(c.FIELD_BY_NAME[name], v)
    if name == "year":
        return value_rules(_YEAR, v)
    if name in ("amount", "proceeds"):
        return value_rules(_AMOUNT, v)
    if name in ("approved_by", "approval_ref"):
        return value_rules(_REF, v)
    if name == "method":
        methods = REVIVAL_METHODS if event == "revival" else DISPOSAL_METHODS
        return [] if v in methods else ["must be one of " + ", ".join(methods)]
    if name == "finding":
        return [] if v in FINDINGS else ["must be one of " + ", ".join(FINDINGS)]
    if name == "items":
        return _items_rule(v)
    return []


def _items_rule(v: Any) -> list[str]:
    """A distribution's items: a non-empty list of {use, amount, household_id?}."""
    if not isinstance(v, list) or not v:
        return ["must be a non-empty list of {use, amount, household_id?}"]
    for k, item in enumerate(v):
        if not isinstance(item, dict) or set(item) - {"use", "amount", "household_id"}:
            return [f"item {k} must be an object with use, amount and household_id only"]
        if not isinstance(item.get("use"), str) or not _METHOD_ID.fullmatch(item["use"]):
            return [f"item {k}: use must be a lower-case id (the rules file's uses)"]
        if value_rules(_AMOUNT, item.get("amount")) or missing(item.get("amount")):
            return [f"item {k}: amount must be a number ≥ 0"]
        hid = item.get("household_id")
        if hid is not None and pseudonymous_id(hid) is None:
            return [f"item {k}: household_id must be a pseudonymous household_id"]
    return []


def check(state: dict[str, Any] | None, event: dict[str, Any]) -> None:
    """Raise unless ``event`` ({asset_id, event, date, payload}) may be applied to ``state``
    (None: an asset not registered yet)."""
    aid = event.get("asset_id") if isinstance(event.get("asset_id"), str) else None
    kind = event.get("event")
    if kind not in TRANSITIONS:
        raise EventError(aid, str(kind), "event", "must be one of " + ", ".join(EVENT_TYPES))
    if pseudonymous_id(aid) is None:
        raise EventError(None, kind, "asset_id", f"must match {c.ID_PATTERN}")
    when = parse_date(event.get("date"))
    if when is None:
        raise EventError(aid, kind, "date", c.DATE_RULE)
    status = None if state is None else state["status"]
    if status not in TRANSITIONS[kind][1]:
        raise TransitionRefused(aid, kind, status)
    if (
        state is not None
        and state.get("last_event_date")
        and when.isoformat() < state["last_event_date"]
    ):
        raise EventError(aid, kind, "date", "must not be before the asset's latest event")
    payload = event.get("payload") or {}
    if not isinstance(payload, dict):
        raise EventError(aid, kind, "payload", "must be a JSON object")
    allowed = dict(PAYLOADS[kind])
    for name in payload:
        if name not in allowed:
            raise EventError(aid, kind, str(name), "unknown field for this event")
    for name, required in allowed.items():
        v = payload.get(name)
        if missing(v):
            if required:
                raise EventError(aid, kind, name, c.MISSING_RULE)
            continue
        if kind != "register":
            rules = _payload_rules(kind, name, v)
            if rules:
                raise EventError(aid, kind, name, rules[0])
    _check_more(state, kind, payload, aid, when)


def _check_more(
    state: dict[str, Any] | None, kind: str, payload: dict[str, Any], aid: str, when: dt.date
) -> None:
    """The checks between an event's fields and the asset."""
    if kind == "register":
        rec = payload["record"]
        problems = one_record(0, rec)
        if problems:
            p = problems[0]
            raise EventError(aid, kind, f"record.{p.field}", p.rule)
        if rec.get("asset_id") != aid:
            raise EventError(aid, kind, "record.asset_id", "must be the event's asset_id")
        if rec.get("status") == "disposed":
            raise EventError(aid, kind, "record.status", "a disposed asset is not registered")
    elif kind == "rights_confirmed" and payload["rights_status"] not in ("confirmed", "certified"):
        raise EventError(aid, kind, "rights_status", "must be confirmed or certified")
    elif kind == "contract":
        if payload["contract_end"] <= payload["contract_start"]:
            raise EventError(aid, kind, "contract_end", c.CONTRACT_ORDER_RULE)
    elif kind == "hand_over" and payload["owner_type"] == "household":
        if pseudonymous_id(payload.get("owner")) is None:
            raise EventError(aid, kind, "owner", c.HOUSEHOLD_OWNER_RULE)
    elif kind == "acceptance" and state is not None:
        book = payload.get("book_value")
        if book is not None and book > state["original_value"]:
            raise EventError(aid, kind, "book_value", c.BOOK_RULE)
    elif kind == "distribution" and state is not None:
        year = int(payload["year"])
        income = float(state["incomes"].get(str(year), 0.0))
        paid = sum(float(d["total"]) for d in state["distributions"] if d["year"] == year)
        total = sum(float(i["amount"]) for i in payload["items"])
        if paid + total > income + c.FUNDING_TOLERANCE_YUAN:
            raise EventError(aid, kind, "items", f"distributes more than the income of {year}")


# ------------------------------------------------------------------------- state
def new_state(record: dict[str, Any]) -> dict[str, Any]:
    """An asset's state from its register record: the record and what the events add."""
    return {
        **{k: record.get(k) for k in c.FIELD_NAMES}, "seq": 0, "events": 0,
        "registered_date": None, "last_event_date": None, "incomes": {}, "distributions": [],
        "maintenance_count": 0, "maintenance_spent": 0.0, "last_maintenance_date": None,
        "last_inspection_date": None, "last_finding": None, "idle_since": None,
        "low_since": None, "revivals": [], "contracts": 0, "disposal": None,
    }  # fmt: skip


def apply(state: dict[str, Any] | None, event: dict[str, Any]) -> dict[str, Any]:
    """The asset's state after an accepted event (a new dict; ``state`` is not changed)."""
    kind, p, when = event["event"], event.get("payload") or {}, str(event["date"])[:10]
    if kind == "register":
        s = new_state(p["record"])
        s["registered_date"] = when
        if s["status"] == "idle":
            s["idle_since"] = when
        elif s["status"] == "low_efficiency":
            s["low_since"] = when
    else:
        s = copy.deepcopy(state) if state is not None else None
        assert s is not None  # check() refuses an event on an asset not registered
    s["seq"] = int(event.get("seq") or s["seq"] + 1)
    s["events"] += 1
    s["last_event_date"] = when
    after = TRANSITIONS[kind][2]
    if kind == "acceptance":
        s["accepted_date"] = when
        if p.get("book_value") is not None:
            s["book_value"] = p["book_value"]
    elif kind == "hand_over":
        s.update(owner_type=p["owner_type"], owner=p.get("owner") or s["owner"],
                 rights_status="handed_over", rights_date=when)  # fmt: skip
    elif kind == "rights_confirmed":
        if s["rights_status"] != "handed_over":
            s["rights_status"] = p["rights_status"]
        s["rights_date"] = when
    elif kind in ("contract", "revival"):
        for k in ("operator", "operating_mode", "contract_start", "contract_end",
                  "guaranteed_return_rate"):  # fmt: skip
            if p.get(k) is not None:
                s[k] = p[k]
        if kind == "contract":
            s["contracts"] += 1
        else:
            s["revivals"].append({"date": when, "method": p["method"]})
    elif kind == "income":
        year = str(int(p["year"]))
        s["incomes"][year] = float(s["incomes"].get(year, 0.0)) + float(p["amount"])
    elif kind == "distribution":
        total = sum(float(i["amount"]) for i in p["items"])
        s["distributions"].append({"year": int(p["year"]), "date": when, "items": p["items"],
                                   "total": total})  # fmt: skip
    elif kind == "maintenance":
        s["maintenance_count"] += 1
        s["maintenance_spent"] += float(p.get("amount") or 0.0)
        s["last_maintenance_date"] = when
        for k in ("caretaker", "maintenance_fund"):
            if p.get(k) is not None:
                s[k] = p[k]
    elif kind == "inspection":
        s["last_inspection_date"], s["last_finding"] = when, p["finding"]
    elif kind == "disposal":
        s["disposal"] = {"date": when, "method": p["method"], "approved_by": p["approved_by"],
                         "approval_ref": p["approval_ref"], "proceeds": p.get("proceeds")}  # fmt: skip
        if p["method"] == "suspension":
            after = "suspended"
        elif p["method"] == "write_off":
            s["book_value"] = 0.0
    if after is not None and after != s["status"]:
        s["status"] = after
        s["idle_since"] = when if after == "idle" else None
        s["low_since"] = when if after == "low_efficiency" else None
    return s


def step(state: dict[str, Any] | None, event: dict[str, Any]) -> dict[str, Any]:
    """``check`` then ``apply``."""
    check(state, event)
    return apply(state, event)


def replay(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every asset's state from its events (in the order given: each asset's by seq)."""
    states: dict[str, dict[str, Any]] = {}
    for e in events:
        states[e["asset_id"]] = apply(states.get(e["asset_id"]), e)
    return states


__all__ = [
    "DISPOSAL_METHODS", "EVENT_TYPES", "FINDINGS", "LIVE", "NOT_DISPOSED", "PAYLOADS",
    "REVIVAL_METHODS", "TRANSITIONS", "EventError", "TransitionRefused", "apply", "check",
    "new_state", "replay", "step",
]  # fmt: skip
