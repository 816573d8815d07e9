"""Each household's latest decision (``riskml.store.latest``): kept by the database on every
insert, whatever the order the decisions arrive in and whoever writes them; filled when a
ledger made before it opens; scoped like the worklists."""

from __future__ import annotations

import random
import threading

from sqlalchemy import text

from riskml.store import latest
from riskml.store.ledger import Ledger

VILLAGES = ("532328101201", "532328101202", "532328102201", "532301001001")


def _entry(h: str, period: str, score: float, village: str, flagged: bool = False) -> dict:
    return {
        "household_id": h, "period": period, "county_code": village[:6], "village_code": village,
        "model_name": "m", "model_version": "1", "rules_version": "r", "score": score,
        "risk_level": "red" if score > 0.5 else "green", "flagged": flagged,
        "flagged_by": "model" if flagged else None, "record": {"household_id": h}, "result": {},
    }  # fmt: skip


def _expected(ledger: Ledger) -> dict[str, tuple]:
    """Each household's latest decision by the ledger's one order, from every decision."""
    rows = ledger.latest_by_household(with_json=False)
    return {r["household_id"]: (r["decision_id"], r["period"], r["score"]) for r in rows}


def _kept(ledger: Ledger, **scope) -> dict[str, tuple]:
    rows = latest.latest_scores(ledger.engine, columns=latest.COLUMNS, **scope)
    return {r["household_id"]: (r["decision_id"], r["period"], r["score"]) for r in rows}


def test_the_latest_decision_is_kept_whatever_order_decisions_arrive_in(ledger_url):
    ledger = Ledger(ledger_url)
    rng = random.Random(4)
    pushes = [
        [
            _entry(
                f"h{i}",
                f"2026-{rng.randint(1, 9):02d}",
                rng.random(),
                rng.choice(VILLAGES),
                rng.random() < 0.3,
            )
            for i in rng.sample(range(40), 15)
        ]  # fmt: skip
        for _ in range(12)
    ]
    for n, push in enumerate(pushes):  # periods out of order, repeats, several per call
        ledger.record(push, caller="t", request_id=f"r{n}")
    assert _kept(ledger) == _expected(ledger) and len(_kept(ledger)) > 30
    assert latest.check(ledger.engine) == 0
    ledger.close()


def test_concurrent_writers_leave_the_latest(ledger_url):
    ledger = Ledger(ledger_url)

    def push(k: int) -> None:
        for m in range(1, 7):
            ledger.record([_entry("h", f"2026-{m:02d}", k / 10, VILLAGES[0])], caller="t",
                          request_id=f"{k}-{m}")  # fmt: skip

    threads = [threading.Thread(target=push, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert _kept(ledger) == _expected(ledger) and _kept(ledger)["h"][1] == "2026-06"
    ledger.close()


def test_scopes_county_township_village_and_empty(ledger_url):
    ledger = Ledger(ledger_url)
    ledger.record([_entry(f"h{i}", "2026-03", 0.1 * i, v) for i, v in enumerate(VILLAGES)],
                  caller="t", request_id="r")  # fmt: skip
    assert set(_kept(ledger, county_codes=["532328"])) == {"h0", "h1", "h2"}
    assert set(_kept(ledger, township_codes=["532328101"])) == {"h0", "h1"}
    assert set(_kept(ledger, village_codes=[VILLAGES[2]], county_codes=["532301"])) == {"h2", "h3"}
    assert _kept(ledger, county_codes=[], village_codes=[], township_codes=[]) == {}
    ledger.close()


def test_a_ledger_with_decisions_but_no_latest_rows_gets_them_when_opened(ledger_url):
    url = ledger_url
    ledger = Ledger(url)
    ledger.record([_entry("a", "2026-01", 0.2, VILLAGES[0]), _entry("a", "2026-02", 0.7, VILLAGES[0]),
                   _entry("b", "2026-01", 0.4, VILLAGES[1])], caller="t", request_id="r")  # fmt: skip
    want = _expected(ledger)
    with ledger.writer.begin() as conn:  # as a ledger made before the table existed
        conn.execute(text("DELETE FROM latest_decisions"))
    assert latest.check(ledger.engine) == 2
    ledger.close()
    again = Ledger(url)
    assert _kept(again) == want and latest.check(again.engine) == 0
    again.close()
