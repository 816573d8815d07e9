"""The asset lifecycle: every event applied, every refused transition (naming asset and event),
payload checks, the register replayed from insert-only events on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy import text

from riskml.assets import events as ev
from riskml.assets.contract import STATUSES
from riskml.assets.register import AssetStore, EventsRefused, canonical_record, register_frame
from riskml.assets.validation import AssetSchemaError
from riskml.store.ledger import Ledger
from tests.code.asset_samples import event, record

APPROVAL = {"approved_by": "county-gov", "approval_ref": "ref-2024-1"}
PAYLOAD = {
    "acceptance": {"book_value": 950000.0},
    "hand_over": {"owner_type": "village_collective", "owner": "coop-1"},
    "rights_confirmed": {"rights_status": "certified"},
    "contract": {"operator": "op-2", "operating_mode": "entrusted", "contract_start": "2024-01-01",
                 "contract_end": "2026-12-31", "guaranteed_return_rate": 0.06},
    "income": {"year": 2023, "amount": 50000},
    "distribution": {"year": 2023, "items": [{"use": "no_labour_low_income", "amount": 100}]},
    "maintenance": {"amount": 300, "caretaker": "ct-1", "maintenance_fund": 2000},
    "inspection": {"finding": "needs_repair"},
    "marked_idle": {}, "marked_low": {},
    "revival": {"method": "lease", "operator": "op-3", "operating_mode": "leased"},
    "disposal": {"method": "auction", **APPROVAL, "proceeds": 1000},
}  # fmt: skip


def _state(status: str, **changes):
    """An asset in ``status`` with income recorded for 2023."""
    s = ev.apply(
        None,
        event("register", "2024-01-01", record=canonical_record(record(status=status, **changes))),
    )
    return (
        ev.apply(s, event("income", "2024-01-02", year=2023, amount=50000))
        if status in ev.LIVE
        else s
    )


def test_the_transition_table_covers_every_event_and_status():
    assert set(ev.TRANSITIONS) == set(ev.PAYLOADS)
    for _, before, after in ev.TRANSITIONS.values():
        assert set(before) <= {None, *STATUSES} and after in (None, *STATUSES)


CASES = [(kind, status) for kind in PAYLOAD for status in STATUSES]


@pytest.mark.parametrize(("kind", "status"), CASES)
def test_each_event_in_each_status_is_applied_or_refused_by_the_table(kind, status):
    state = _state(status)
    e = event(kind, "2024-06-01", **PAYLOAD[kind])
    if status in ev.TRANSITIONS[kind][1]:
        after = ev.step(state, e)
        want = ev.TRANSITIONS[kind][2] or status
        assert after["status"] == want and after["seq"] == state["seq"] + 1
        assert state["status"] == status  # apply never changes its input
    else:
        with pytest.raises(ev.TransitionRefused) as caught:
            ev.check(state, e)
        assert caught.value.asset_id == "A-1" and caught.value.event == kind
        assert f"not allowed in status {status}" in str(caught.value) and "A-1" in str(caught.value)


def test_what_each_event_changes():
    s = _state("building")
    s = ev.step(s, event("acceptance", "2024-02-01", book_value=990000.0))
    assert (s["status"], s["accepted_date"], s["book_value"]) == (
        "operating",
        "2024-02-01",
        990000.0,
    )
    s = ev.step(s, event("rights_confirmed", "2024-03-01", rights_status="confirmed"))
    assert (s["rights_status"], s["rights_date"]) == ("confirmed", "2024-03-01")
    s = ev.step(s, event("hand_over", "2024-03-02", owner_type="household", owner="hh-9"))
    assert (s["rights_status"], s["owner"]) == ("handed_over", "hh-9")
    s = ev.step(s, event("contract", "2024-03-03", **PAYLOAD["contract"]))
    assert (s["operator"], s["contract_end"], s["contracts"]) == ("op-2", "2026-12-31", 1)
    s = ev.step(s, event("income", "2024-04-01", year=2024, amount=100))
    s = ev.step(s, event("income", "2024-05-01", year=2024, amount=50))
    assert s["incomes"] == {"2024": 150.0}
    s = ev.step(s, event("distribution", "2024-05-02", year=2024,
                         items=[{"use": "no_labour_low_income", "amount": 100, "household_id": "hh-1"}]))  # fmt: skip
    assert s["distributions"][0]["total"] == 100.0
    s = ev.step(s, event("maintenance", "2024-05-03", **PAYLOAD["maintenance"]))
    assert (s["caretaker"], s["maintenance_fund"], s["maintenance_count"]) == ("ct-1", 2000, 1)
    s = ev.step(s, event("inspection", "2024-05-04", finding="good"))
    assert s["last_finding"] == "good"
    s = ev.step(s, event("marked_low", "2024-06-01"))
    assert (s["status"], s["low_since"]) == ("low_efficiency", "2024-06-01")
    s = ev.step(s, event("marked_idle", "2024-07-01"))
    assert (s["status"], s["idle_since"], s["low_since"]) == ("idle", "2024-07-01", None)
    s = ev.step(s, event("revival", "2024-08-01", method="upgrade"))
    assert (s["status"], s["idle_since"], s["revivals"]) == (
        "operating",
        None,
        [{"date": "2024-08-01", "method": "upgrade"}],
    )
    s = ev.step(s, event("disposal", "2024-09-01", method="suspension", **APPROVAL))
    assert s["status"] == "suspended"
    s = ev.step(s, event("disposal", "2024-10-01", method="write_off", **APPROVAL))
    assert (s["status"], s["book_value"], s["disposal"]["method"]) == ("disposed", 0.0, "write_off")


@pytest.mark.parametrize(
    ("e", "field"),
    [
        (event("nonsense", "2024-06-01"), "event"),
        (event("income", "2024-13-01", year=2023, amount=1), "date"),
        (event("income", "2023-12-31", year=2023, amount=1), "date"),  # before the latest event
        (event("income", "2024-06-01", year=2023), "amount"),
        (event("income", "2024-06-01", year=2023, amount=-1), "amount"),
        (event("income", "2024-06-01", year=2023, amount=1, colour="red"), "colour"),
        (event("disposal", "2024-06-01", method="auction", approved_by="x"), "approval_ref"),
        (event("disposal", "2024-06-01", method="gift", **APPROVAL), "method"),
        (event("revival", "2024-06-01", method="pray"), "method"),
        (event("contract", "2024-06-01", **{**PAYLOAD["contract"], "contract_end": "2023-01-01"}), "contract_end"),
        (event("distribution", "2024-06-01", year=2023, items=[{"use": "awards", "amount": 60000}]), "items"),
        (event("distribution", "2024-06-01", year=2023, items=[{"use": "awards", "amount": 1, "household_id": "王"}]), "items"),
        (event("rights_confirmed", "2024-06-01", rights_status="unconfirmed"), "rights_status"),
        (event("hand_over", "2024-06-01", owner_type="household", owner="张三"), "owner"),
        (event("inspection", "2024-06-01", asset_id="a b", finding="good"), "asset_id"),
    ],
)  # fmt: skip
def test_a_bad_payload_names_the_asset_event_and_field(e, field):
    state = _state("idle") if e["event"] in ("revival",) else _state("operating")
    with pytest.raises(ev.EventError) as caught:
        ev.check(state, e)
    assert caught.value.field == field
    assert "王" not in str(caught.value) and "张三" not in str(caught.value)


def test_an_event_on_an_unregistered_asset_or_a_second_registration_is_refused():
    with pytest.raises(ev.TransitionRefused, match="not registered"):
        ev.check(None, event("income", "2024-01-01", year=2023, amount=1))
    with pytest.raises(ev.TransitionRefused, match="register"):
        ev.check(_state("operating"), event("register", "2024-06-01", record=record()))


# ------------------------------------------------------------------ the store
def test_the_register_is_replayed_from_insert_only_events(ledger_url):
    ledger = Ledger(ledger_url)
    store = AssetStore(ledger)
    store.register([record(), record(asset_id="A-2", status="building", accepted_date=None)],
                   actor="test", date="2024-01-01")  # fmt: skip
    store.append([event("income", "2024-02-01", year=2023, amount=40000),
                  event("acceptance", "2024-02-01", asset_id="A-2"),
                  event("marked_idle", "2024-03-01")], actor="test")  # fmt: skip
    before = store.count()
    # a batch with one refused event stores nothing, and names the event's position
    with pytest.raises(EventsRefused, match=r"event 1: asset A-1, event 'marked_low'"):
        store.append([event("inspection", "2024-04-01", finding="good", asset_id="A-2"),
                      event("marked_low", "2024-04-01")], actor="test")  # fmt: skip
    # a file of records with one bad record stores nothing
    with pytest.raises(AssetSchemaError):
        store.register([record(asset_id="A-3"), record(asset_id="A-4", category="x")], actor="t")
    with pytest.raises(EventsRefused, match="register"):  # registered already
        store.register([record()], actor="t")
    assert store.count() == before == 5
    states = store.states()
    assert {k: v["status"] for k, v in states.items()} == {"A-1": "idle", "A-2": "operating"}
    assert states["A-1"]["incomes"] == {"2023": 40000.0}
    assert store.rebuild_check().mismatched == []
    frame = register_frame(states)
    assert list(frame["asset_id"]) == ["A-1", "A-2"] and frame.loc[0, "idle_since"] == "2024-03-01"
    for stmt in ("UPDATE asset_events SET status = 'operating'", "DELETE FROM asset_events"):
        with (
            pytest.raises(sa.exc.DatabaseError, match="insert-only"),
            ledger.writer.begin() as conn,
        ):
            conn.execute(text(stmt))
    if ledger.dialect == "postgresql":
        with (
            pytest.raises(sa.exc.DatabaseError, match="insert-only"),
            ledger.writer.begin() as conn,
        ):
            conn.execute(text("TRUNCATE asset_events"))
    assert store.count() == 5
    ledger.close()


def test_a_stored_state_that_differs_from_the_replay_is_named(tmp_path):
    ledger = Ledger(f"sqlite:///{tmp_path / 'l.db'}")
    store = AssetStore(ledger)
    store.register([record()], actor="t", date="2024-01-01")
    with ledger.writer.begin() as conn:  # a forged row (insert is allowed; it names a wrong state)
        conn.execute(sa.text(
            "INSERT INTO asset_events (asset_id, seq, event_id, event, event_date, created_at, actor, "
            "county_code, village_code, status, payload, state) SELECT asset_id, 2, 'forged', "
            "'inspection', '2024-02-01', created_at, actor, county_code, village_code, 'idle', "
            "'{\"finding\": \"good\"}', json_set(state, '$.status', 'idle') FROM asset_events"
        ))  # fmt: skip
    assert store.rebuild_check().mismatched == ["A-1"]
    ledger.close()


def test_concurrent_writers_on_one_asset_each_get_the_next_number(tmp_path):
    import threading

    ledger = Ledger(f"sqlite:///{tmp_path / 'l.db'}")
    store = AssetStore(ledger)
    store.register([record()], actor="t", date="2024-01-01")
    start, errors = threading.Barrier(4), []

    def write(k: int) -> None:
        start.wait()
        try:
            store.append([event("inspection", "2024-02-01", finding="good")], actor=f"w{k}")
        except Exception as exc:  # asserted below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert [e["seq"] for e in store.events("A-1")] == [1, 2, 3, 4, 5]
    assert store.state("A-1")["events"] == 5 and store.rebuild_check().mismatched == []
    ledger.close()
