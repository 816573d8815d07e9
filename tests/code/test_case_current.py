"""The current-case rows (``riskml.cases.current``): written with every event, the newest kept
under concurrency, equal to the replayed events, checked and repaired by rebuild, filled for
a database that predates them."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import text

from riskml.cases import current
from riskml.cases.machine import Refusal
from riskml.cases.store import CaseStore
from riskml.store.ledger import Ledger
from tests.code.test_case_machine import BODIES, COUNTY, CW, PROC, TOWN, VILLAGE, _walk, day

OTHER = "532328102201"


@pytest.fixture
def store(ledger_url):  # SQLite and PostgreSQL
    ledger = Ledger(ledger_url)
    yield CaseStore(ledger, PROC)
    ledger.close()


def _households(store: CaseStore) -> None:
    for hid, upto in (("hh_a", "lead"), ("hh_b", "visit"), ("hh_c", "plan"), ("hh_d", "rollback")):
        _walk(store, hid, upto)


def test_the_summary_of_every_current_case_is_its_state_cut_to_what_worklists_read(store):
    _households(store)
    states = {s["household_id"]: s for s in store.current_cases()}
    summaries = {s["household_id"]: s for s in store.current_cases(summary=True)}
    assert set(states) == set(summaries) == {"hh_a", "hh_b", "hh_c", "hh_d"}
    for hid, s in summaries.items():
        assert s == current.summary(states[hid]) and set(s) == set(current.SUMMARY)
    assert summaries["hh_c"]["plan"] is True and summaries["hh_b"]["plan"] is False
    assert [s["status"] for s in store.current_cases(statuses=["visited"], summary=True)] == [
        "visited"
    ]
    # scopes: county, township, village, and an empty one
    assert len(store.current_cases([VILLAGE[:6]], summary=True)) == 4
    assert len(store.current_cases(township_codes=[VILLAGE[:9]], summary=True)) == 4
    assert len(store.current_cases(village_codes=[VILLAGE], summary=True)) == 4
    assert store.current_cases([], [], [], summary=True) == []
    assert store.current_cases(township_codes=[OTHER[:9]]) == []


def test_rebuild_finds_no_difference_then_finds_and_repairs_a_tampered_row(store):
    _households(store)
    r = store.rebuild()
    assert (r.current_mismatched, r.current_repaired, r.mismatched) == (0, 0, [])
    with store.ledger.writer.begin() as conn:  # the rows are derived: an operator could edit them
        conn.execute(
            text("UPDATE case_current SET status = 'eliminated' WHERE household_id = 'hh_a'")
        )
        conn.execute(text("DELETE FROM case_current WHERE household_id = 'hh_b'"))
    r = store.rebuild()
    assert r.current_mismatched == 2 and r.current_repaired == 0
    fixed = store.rebuild(repair=True)
    assert fixed.current_mismatched == 2 and fixed.current_repaired == 2
    assert store.rebuild().current_mismatched == 0
    assert {s["household_id"]: s["status"] for s in store.current_cases(summary=True)}["hh_a"] == (
        "lead"
    )


def test_a_database_with_events_but_no_current_rows_gets_them_when_opened(ledger_url):
    url = ledger_url
    ledger = Ledger(url)
    store = CaseStore(ledger, PROC)
    _households(store)
    before = store.current_cases(summary=True)
    with ledger.writer.begin() as conn:  # as a ledger made before the table existed
        conn.execute(text("DELETE FROM case_current"))
    assert store.current_cases(summary=True) == []
    again = CaseStore(ledger, PROC)
    key = lambda s: s["household_id"]  # noqa: E731
    assert sorted(again.current_cases(summary=True), key=key) == sorted(before, key=key)
    ledger.close()


def test_concurrent_actions_leave_the_newest_event_in_the_current_row(store):
    for n in range(4):
        store.act(CW, f"hh_r{n}", "lead", {"source": "warning"}, where=(VILLAGE[:6], VILLAGE))
    errors: list = []

    def act(n: int, k: int) -> None:
        try:
            store.act(TOWN, f"hh_r{n}", "assign", {"caseworker": f"grid-{k}"})
        except Refusal as exc:  # a second assign of an assigned case may be refused: fine
            errors.append(exc)

    threads = [threading.Thread(target=act, args=(n, k)) for n in range(4) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rows = {s["household_id"]: s for s in store.current_cases(summary=True)}
    for n in range(4):
        latest = store.latest(f"hh_r{n}")
        assert rows[f"hh_r{n}"] == current.summary(latest["state"])
    assert store.rebuild().current_mismatched == 0


def test_a_moved_household_moves_its_current_row(store):
    store.act(CW, "hh_m", "lead", {"source": "warning"}, where=(VILLAGE[:6], VILLAGE), at=day(1))
    store.ledger.record_move("hh_m", (VILLAGE[:6], OTHER), "moved", "admin:ops")
    store.act(COUNTY, "hh_m", "assign", BODIES["assign"], at=day(2))
    assert store.current_cases(township_codes=[VILLAGE[:9]], summary=True) == []
    moved = store.current_cases(township_codes=[OTHER[:9]], summary=True)
    assert [(c["household_id"], c["village_code"]) for c in moved] == [("hh_m", OTHER)]


def test_a_worklist_from_summaries_is_the_worklist_from_whole_states(store):
    from riskml.cases import worklist
    from riskml.cases.machine import clock

    _households(store)
    decisions = [
        {"household_id": f"hh_{x}", "village_code": VILLAGE, "score": 0.1 + 0.2 * i,
         "risk_level": "red", "flagged": True, "flagged_by": "model", "decision_id": f"d{i}"}
        for i, x in enumerate("abcdz")
    ]  # fmt: skip
    for n in (1, 20, 40, 80, 200):  # deadlines ahead, due soon and overdue
        now = day(n)
        whole = worklist.build("county", store.current_cases(), decisions, PROC, now)
        slim = worklist.build("county", store.current_cases(summary=True), decisions, PROC, now)
        assert slim.as_dict(limit_beyond=100) == whole.as_dict(limit_beyond=100)
        clocks = {s["household_id"]: clock(s, PROC, now) for s in store.current_cases()}
        for item in slim.fits + slim.beyond_items + slim.steps:
            if item.case_id is not None:
                assert item.clock == clocks[item.household_id]


def test_the_rebuild_command_reports_a_tampered_row_and_repairs_it(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    ledger = Ledger(url)
    _households(CaseStore(ledger, PROC))
    with ledger.writer.begin() as conn:
        conn.execute(text("UPDATE case_current SET village_code = '532328109999'"))
    ledger.close()

    def rebuild(*extra: str) -> subprocess.CompletedProcess:
        riskml = str(Path(sys.executable).parent / "riskml")
        cmd = [riskml, "cases", "rebuild", "--ledger", url, *extra]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120)

    found = rebuild()
    assert found.returncode == 1 and "4 current-case row(s) differ, 0 rewritten" in found.stdout
    fixed = rebuild("--repair")
    assert fixed.returncode == 0 and "4 current-case row(s) differ, 4 rewritten" in fixed.stdout
    clean = rebuild()
    assert clean.returncode == 0 and "0 current-case row(s) differ" in clean.stdout
