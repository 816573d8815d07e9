"""Benchmark: the case store at 1,000,000 events and 100,000 cases (issue 15).

A temporary SQLite ledger gets ``--cases`` cases in ``--counties`` real counties (14 townships
of 14 villages each), ``--events`` events made with ``machine.apply`` (the rows ``act`` writes;
a share also passes ``machine.check``) bulk inserted in time order with each household's
current-case row, and ``--periods`` monthly decisions per household (the ledger's trigger
keeps each household's latest). Timed: a worklist as the API makes it
(``CaseStore.current_cases(summary=True)``, ``latest.latest_scores``, ``worklist.build``, the
JSON reply) for a county (target p95 < 300 ms), a township, a village; ``CaseStore.rebuild()``
(target < 30 s, no mismatch of states or current rows), repeated; the latest-decision rows
checked against a ranking of every decision. CPU time is given beside wall time (the machine
is shared). ``--db PATH`` keeps the database for the next run.

    .venv/bin/python bench/bench_cases.py [--cases 100000 --events 1000000] [--quick] [--db PATH]
"""

from __future__ import annotations

import argparse
import csv
import gc
import json
import os
import random
import shutil
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _common import ROOT, write
from sqlalchemy import event as sa_event

from riskml.cases import current, machine, notice, support, worklist
from riskml.cases.machine import Actor
from riskml.cases.procedure import load as load_procedure
from riskml.cases.store import CaseStore
from riskml.data.json_text import encode
from riskml.store import latest
from riskml.store.entries import rows_from_entries
from riskml.store.latest import latest_scores
from riskml.store.ledger import Ledger
from riskml.store.tables import case_events, decisions

NOW = datetime(2026, 6, 15, 8, 0, tzinfo=UTC)  # the worklists' "now"; every event is before it
NOW_ISO = NOW.isoformat(timespec="microseconds")
TOWNSHIPS, VILLAGES = 14, 14  # per county, per township
# the current case's profile: (name, weight, events it needs); the last six get the extra events
PROFILES = (
    ("lead", 2.0, 1), ("assigned", 1.5, 2), ("visited", 1.5, 3), ("checked", 1.0, 4),
    ("noticed", 2.0, 5), ("township_approved", 1.0, 6), ("dropped", 14.0, 3),
    ("rejected_township", 3.0, 6), ("rejected_county", 3.0, 7), ("monitored", 38.0, 9),
    ("fast_track", 4.0, 9), ("elimination_proposed", 1.5, 10),
    ("elimination_township_approved", 0.5, 11), ("eliminated", 24.0, 12), ("rolled_back", 2.0, 13),
)  # fmt: skip
STEPS_OF = {p: n for p, _, n in PROFILES[:9]}  # identified so far (or closed): steps taken
MONITORED = tuple(p for p, _, _ in PROFILES[9:])
CLOSED = ("dropped", "rejected_township", "rejected_county", "eliminated")
PATH = ("lead", "assign", "visit", "cross_check", "notice", "township_review", "decide")
GAPS = ((0.2, 2), (0.3, 3), (0.5, 4), (0.5, 3), (5.1, 8), (0.5, 4))  # days between PATH steps
RISKS = ("illness", "disability", "schooling", "disaster", "accident", "business_failure",
         "unstable_employment", "low_income", "housing")  # fmt: skip
CRITERIA = ("labour", "income_above_line", "rigid_costs", "guarantees", "monitored", "measures")
COPING = ("none", "weak", "some", "some", "strong")
ROLES = ("county", "township", "caseworker")


def timeline(rng: random.Random, profile: str, lo: float, n_extra: int) -> list[tuple]:
    """(day, action, variant) of one case opened after day ``lo`` (NOW is day 0)."""
    gaps = [rng.uniform(*g) for g in GAPS]
    if profile in STEPS_OF:  # identification, or closed during it
        k = STEPS_OF[profile]
        if profile in CLOSED:
            t0 = rng.uniform(lo + 1, -30) if lo < -31 else lo + 1
        else:  # still being identified: opened in the last weeks
            t0 = max(lo + 1, -sum(gaps[: k - 1]) - rng.uniform(0, 5))
        out = [(t0 + sum(gaps[:i]), PATH[i], None) for i in range(k)]
        if profile in CLOSED:
            out[-1] = (*out[-1][:2], "drop" if profile == "dropped" else "reject")
        return out
    elim = profile in ("eliminated", "rolled_back")
    top = -250 if elim else -200 if profile.startswith("elimination") else -3
    dec = rng.uniform(max(lo + 30, -1100 if elim else -800), top)  # the county's decision
    days = [dec - sum(gaps[i:]) for i in range(7)]
    out = [(d, a, None) for d, a in zip(days, PATH, strict=True)]
    if profile == "fast_track":  # support at once, the steps follow
        out[0], out[2] = (days[0], "lead", "fast_track"), (days[2], "visit", "fast_track")
        plan, dlv = days[2] + 0.1, days[2] + 0.2
    else:
        plan = dec + min(rng.uniform(1, 7), -0.3 * dec)
        dlv = plan + min(rng.uniform(1, 30), -0.5 * plan)
    out += [(plan, "plan", None), (dlv, "deliver", None)]
    start = max(dlv, dec) + 0.01
    windows = [(start, -0.01, "monitored")]
    if profile not in ("monitored", "fast_track"):
        recent = {"elimination_proposed": (-9, -0.5), "elimination_township_approved": (-19, -10)}
        p = rng.uniform(*recent.get(profile, (dec + 183, min(dec + 420, -60))))
        windows, t = [(start, p - 0.01, "monitored")], p
        out.append((p, "propose_elimination", None))
        n_steps = {"elimination_proposed": 0, "elimination_township_approved": 1}.get(profile, 2)
        for step in ("elimination_review", "elimination_decide")[:n_steps]:
            t += rng.uniform(1, 9)
            out.append((t, step, None))
        if profile == "rolled_back":
            r = rng.uniform(t + 30, -1)
            out.append((r, "rollback", None))
            windows += [(t + 0.01, r - 0.01, "eliminated"), (r + 0.01, -0.01, "monitored")]
        elif elim:
            windows.append((t + 0.01, -0.01, "eliminated"))
    total, left = sum(b - a for a, b, _ in windows), n_extra
    for i, (a, b, kind) in enumerate(windows):  # follow-ups, deliveries, merged leads
        k = left if i == len(windows) - 1 else min(left, round(n_extra * (b - a) / total))
        left -= k
        picks = sorted(rng.uniform(a, b) for _ in range(k))
        if picks and b > -1:  # the latest visit is recent: follow-ups come due around now
            picks = sorted([*picks[:-1], max(a, -rng.uniform(0, 40))])
        for d in picks:
            x = rng.random()
            if kind == "monitored" and x > 0.9:
                out.append((d, "lead", "merged"))  # a new warning merged into the open case
            else:
                visit = x < (0.9 if kind == "eliminated" else 0.65)
                out.append((d, "follow_up" if visit else "deliver", None))
    return sorted(out, key=lambda e: e[0])


def payload(rng, state: dict | None, action: str, variant: str | None, hh: dict, day: float):
    """(client payload, facts riskml adds, the actor's role) of one action."""
    on = (NOW + timedelta(days=day)).date()
    if action == "lead":
        if variant == "fast_track":
            p = {"source": "department_alert", "fast_track": True}
            return p | {"risk_types": [rng.choice(("disaster", "accident"))]}, {}, "department"
        src = "warning" if rng.random() < 0.7 else rng.choice(("self_report", "cadre_visit"))
        p = {"source": src, "risk_types": rng.sample(RISKS, rng.choice((1, 1, 2, 3)))}
        facts = {"merged": True} if variant == "merged" else {}
        return p, facts, "system" if src == "warning" else "caseworker"
    if action == "visit":
        outcome = variant or ("propose" if rng.random() < 0.95 else "fast_track")
        p = {"consent": True, "outcome": outcome, "coping_capacity": rng.choice(COPING),
             "risk_types": rng.sample(RISKS, rng.choice((1, 2, 2, 3)))}  # fmt: skip
        return p, {"decision_id": hh["decision_id"], "record_period": f"{on:%Y-%m}"}, "caseworker"
    if action == "notice":
        text = notice.notice(state, hh["size"], on, 5)["zh"]
        return {"start": on.isoformat()}, {"notice_text": text}, "caseworker"
    if variant == "reject":
        p = {"decision": "reject", "note": "核实收入高于监测线，不予纳入"}
        return p, {}, "township" if action == "township_review" else "county"
    if action == "decide":
        kind = rng.choice(("unstable_alleviated", "marginal", "marginal"))
        p = {"decision": "confirm", "risk_types": state["proposed_risk_types"][:5],
             "household_type": "sudden_hardship" if state["fast_track"] else kind}  # fmt: skip
        return p, {}, "county"
    if action == "plan":
        types = state["risk_types"] or state["proposed_risk_types"]
        measures = support.suggest(types, {"labor_count": hh["labour"], "dibao": hh["dibao"]}, on)
        return {"measures": measures}, {}, "caseworker"
    if action == "deliver":
        p = {"measure": rng.randrange(len(state["plan"])), "delivered_on": on.isoformat(),
             "amount": round(rng.uniform(200, 6000))}  # fmt: skip
        return p, {}, "caseworker"
    if action == "propose_elimination":
        inc, months = rng.randint(9000, 16000), rng.randint(6, 14)
        en = f"per-capita {inc} yuan against the line 7,600 for {months} month(s)"
        zh = f"人均纯收入{inc}元，监测线7600元，连续{months}个月"
        crit = [{"criterion": c, "met": True, "evidence": en, "evidence_zh": zh} for c in CRITERIA]
        return {}, {"criteria": crit}, "caseworker"
    simple = {
        "assign": ({"caseworker": hh["cw"]}, "township"),
        "cross_check": ({"result": rng.choice(("consistent",) * 19 + ("inconsistent",))}, "county"),
        "follow_up": ({"consent": True, "coping_capacity": rng.choice(COPING)}, "caseworker"),
        "elimination_decide": ({"decision": "approve"}, "county"),
        "rollback": ({"reason": "因病收入再次低于监测线"}, "county"),
    }
    p, role = simple.get(action, ({"decision": "approve"}, "township"))  # the township reviews
    return p, {}, role


def actor_for(role: str, hh: dict) -> Actor:
    v = hh["village"]
    scope = {"caseworker": ("villages", v), "township": ("townships", v[:9])}
    key, code = scope.get(role, ("counties", v[:6]))
    ident = {"caseworker": hh["cw"], "system": "riskml", "department": "civil-affairs"}
    return Actor(ident.get(role, f"{role}-{code}"), role, **{key: frozenset({code})})


def plan_cases(rng: random.Random, n_cases: int, n_events: int, codes: list[str]) -> list[dict]:
    """Households, their cases' profiles and extra events, so that the totals come out exact."""
    names, weights, need = zip(*PROFILES, strict=True)
    need_of = dict(zip(names, need, strict=True))
    n_hh = round(n_cases / 1.08)  # ~8% of households had a closed case before the current one
    profiles = rng.choices(names, weights, k=n_hh)
    closed = [(p, w) for p, w, _ in PROFILES if p in CLOSED]
    earlier = rng.choices([p for p, _ in closed], [w for _, w in closed], k=n_cases - n_hh)
    hhs = []
    for i in range(n_hh):
        c = codes[i % len(codes)]
        v = f"{c}{rng.randrange(1, TOWNSHIPS + 1):03d}{rng.randrange(1, VILLAGES + 1):03d}"
        cases = [*earlier[i : i + 1], profiles[i]]
        hhs.append({"id": f"hh{c}{i:07d}", "county": c, "village": v, "cw": f"cw-{v}",
                    "size": rng.randint(1, 7), "labour": rng.choice((0, 1, 1, 2, 2, 3)),
                    "dibao": rng.random() < 0.1, "decision_id": rng.randbytes(16).hex(),
                    "cases": cases, "extra": [0] * len(cases)})  # fmt: skip
    budget = n_events - sum(need_of[p] for h in hhs for p in h["cases"])
    if budget < 0:
        raise SystemExit(f"--events must be at least {n_events - budget:,} for {n_cases:,} cases")
    slots = [(h, ci) for h in hhs for ci, p in enumerate(h["cases"]) if p in MONITORED]
    for _ in range(budget):
        h, ci = slots[rng.randrange(len(slots))]
        h["extra"][ci] += 1
    return hhs


def household_rows(rng: random.Random, hh: dict, check: bool, procedure) -> list[dict]:
    """The case_events rows of one household (all its cases), as CaseStore.act writes them."""
    rows, seq, lo = [], 0, -1500.0
    for ci, profile in enumerate(hh["cases"]):
        evs = timeline(rng, profile, lo, hh["extra"][ci])
        if ci < len(hh["cases"]) - 1:  # an earlier, closed case: ended 15 to 23 months ago
            shift = rng.uniform(-700, -450) - evs[-1][0]
            evs = [(d + shift, a, v) for d, a, v in evs]
            lo = evs[-1][0] + 1
        state, case_id = None, rng.randbytes(16).hex()
        for day, action, variant in evs:
            seq += 1
            at = (NOW + timedelta(days=day + seq * 1e-6)).isoformat(timespec="microseconds")
            p, facts, role = payload(rng, state, action, variant, hh, day)
            actor = actor_for(role, hh)
            on = state if action != "lead" or variant == "merged" else None  # a lead: new case
            if check:  # as act() checks it
                machine.check(on, action, p, actor, at, procedure, hh["village"])
            body = {**p, **facts}
            row = {"household_id": hh["id"], "seq": seq, "event_id": rng.randbytes(16).hex(),
                   "case_id": case_id, "created_at": at, "actor": actor.name, "action": action,
                   "county_code": hh["county"], "village_code": hh["village"]}  # fmt: skip
            state = machine.apply(on, {**row, "at": at, "payload": body})
            row |= {"status": state["status"], "payload": encode(body), "state": encode(state)}
            rows.append(row | {"request_key": None})
        hh["last"], hh["seq"] = state, seq
    return rows


def decision_entries(rng: random.Random, hhs: list[dict], periods: int, more: float = 0.3):
    """Monthly decisions of each household (the last in 2026-05): those with a case, and
    ``more`` again without one; lists of entries, one per period, oldest first."""
    others = [h | {"id": h["id"] + "x", "last": None, "decision_id": rng.randbytes(16).hex()}
              for h in hhs[: round(len(hhs) * more)]]  # fmt: skip
    months = [f"{2026 - (k > 4)}-{(5 - k - 1) % 12 + 1:02d}" for k in range(periods)][::-1]
    out: list[list[dict]] = []
    for k, period in enumerate(months):
        rows = []
        for h in hhs + others:
            status = (h["last"] or {}).get("status")
            flagged = rng.random() < (0.6 if status in machine.OPEN else 0.2 if status else 0.12)
            score = min(0.99, rng.betavariate(2, 6) + (0.25 if flagged else 0.0))
            did = h["decision_id"] if k == periods - 1 else None  # the one visits name
            ids = {"household_id": h["id"], "period": period, "county_code": h["county"],
                   "village_code": h["village"], "decision_id": did or rng.randbytes(16).hex()}  # fmt: skip
            record = {"household_size": h["size"], "labor_count": h["labour"], "dibao": h["dibao"],
                      "income_wage": round(rng.uniform(0, 40000))}  # fmt: skip
            level = "red" if score >= 0.5 else "yellow" if score >= 0.3 else "green"
            by = rng.choice(("model", "rules", "model+rules")) if flagged else None
            rows.append(ids | {
                "model_name": "riskml", "model_version": "7", "rules_version": period,
                "score": score, "risk_level": level, "flagged": flagged, "flagged_by": by,
                "record": ids | record, "result": {"decision_id": ids["decision_id"], "score": score},
            })  # fmt: skip
        out.append(rows)
    return out


def generate(url: str, args: argparse.Namespace) -> dict:
    gc.disable()  # a million live rows: the cyclic collector would walk them over and over
    try:
        rng, t0 = random.Random(args.seed), time.perf_counter()
        with (ROOT / "src/riskml/data/tables/counties.csv").open(encoding="utf-8") as f:
            codes = [r["county_code"] for r in csv.DictReader(f)][: args.counties]
        hhs = plan_cases(rng, args.cases, args.events, codes)
        procedure = load_procedure()
        rows = []
        for h in hhs:
            rows += household_rows(rng, h, rng.random() < args.check_share, procedure)
        rows.sort(key=lambda r: r["created_at"])  # as a live store fills: in time order
        monthly = decision_entries(rng, hhs, args.periods)
        t_build = time.perf_counter() - t0
        ledger = Ledger(url)
        with ledger.writer.connect() as conn:
            conn.exec_driver_sql("PRAGMA cache_size = -400000")  # this connection, closed below
            conn.commit()
            for k, entries in enumerate(monthly):  # a monthly push each (the trigger keeps
                back = 14 + 30 * (len(monthly) - 1 - k)  # each household's latest decision)
                for i in range(0, len(entries), 5000):
                    at = (NOW - timedelta(days=back, seconds=-i)).isoformat(timespec="microseconds")
                    kw = {"caller": "push", "request_id": f"{k}-{i}", "created_at": at}
                    batch = rows_from_entries(entries[i : i + 5000], **kw)
                    with conn.begin():
                        conn.execute(decisions.insert(), batch)
            for i in range(0, len(rows), 100_000):
                with conn.begin():
                    conn.execute(case_events.insert(), rows[i : i + 100_000])
            with conn.begin():  # each household's current case, as act() writes it
                current.upsert(conn, [current.row(h["seq"], h["last"]) for h in hhs])
        ledger.close()
        t_insert = time.perf_counter() - t0 - t_build
    finally:
        gc.enable()
    return {
        "cases": sum(len(h["cases"]) for h in hhs), "events": len(rows),
        "households_with_cases": len(hhs), "households_with_decisions": len(monthly[-1]),
        "decisions": sum(map(len, monthly)), "periods": len(monthly),
        "county_codes": codes, "villages": sorted({h["village"] for h in hhs}),
        "current_status": dict(Counter(h["last"]["status"] for h in hhs).most_common()),
        "actions": dict(Counter(r["action"] for r in rows).most_common()),
        "machine_seconds": round(t_build, 1), "insert_seconds": round(t_insert, 1),
    }  # fmt: skip


def worklist_call(store: CaseStore, ledger: Ledger, role: str, scope: str):
    """One worklist as CaseDesk.worklist_for makes it, and its JSON reply:
    ((cases, decisions, build and reply, total, CPU) in s, the worklist)."""
    key = {"county": "county_codes", "township": "township_codes"}.get(role, "village_codes")
    t0, c0 = time.perf_counter(), time.process_time()
    cases = store.current_cases(
        **{key: [scope]}, statuses=list(worklist.LISTED_STATUSES), summary=True
    )
    t1 = time.perf_counter()
    rows = latest_scores(ledger.engine, **{key: [scope]})
    t2 = time.perf_counter()
    kw = {"assignee": f"cw-{scope}"} if role == "caseworker" else {}
    wl = worklist.build(role, cases, rows, store.procedure, NOW_ISO, **kw)
    json.dumps(wl.as_dict(limit_beyond=50), ensure_ascii=False, separators=(",", ":"))  # the reply
    t3 = time.perf_counter()
    return (t1 - t0, t2 - t1, t3 - t2, t3 - t0, time.process_time() - c0), wl


def figures(times: list[tuple]) -> dict:
    parts, n = [sorted(p) for p in zip(*times, strict=True)], len(times)
    ms = lambda i, q: round(parts[i][min(n - 1, int(q * n))] * 1000, 1)  # noqa: E731
    return {"calls": len(times), "p50_ms": ms(3, 0.5), "p95_ms": ms(3, 0.95), "max_ms": ms(3, 1),
            "cpu_p50_ms": ms(4, 0.5), "cpu_p95_ms": ms(4, 0.95), "cases_p50_ms": ms(0, 0.5),
            "decisions_p50_ms": ms(1, 0.5), "build_p50_ms": ms(2, 0.5)}  # fmt: skip


def plans(store: CaseStore, ledger: Ledger, village: str) -> dict:
    """EXPLAIN QUERY PLAN of each query of the three worklists."""
    scopes = dict(zip(ROLES, (village[:6], village[:9], village), strict=True))
    out: dict = {}
    for name in ROLES:
        seen: list = []
        grab = lambda c, cur, q, p, *_, seen=seen: seen.append((q, tuple(p)))  # noqa: E731
        sa_event.listen(ledger.engine, "before_cursor_execute", grab)
        try:
            worklist_call(store, ledger, name, scopes[name])
        finally:
            sa_event.remove(ledger.engine, "before_cursor_execute", grab)
        with ledger.engine.connect() as conn:
            for i, (q, p) in enumerate(x for x in seen if x[0].lstrip().startswith("SELECT")):
                rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + q, p)
                out[f"{name} {i + 1}"] = " | ".join(r[3] for r in rows)
    return out


def measure(store: CaseStore, ledger: Ledger, info: dict, args: argparse.Namespace) -> dict:
    rng, village = random.Random(args.seed), info["villages"][0]
    pools = dict(zip(ROLES, (info["county_codes"], sorted({v[:9] for v in info["villages"]}),
                             info["villages"]), strict=True))  # fmt: skip
    plan = {r: rng.sample(p, min(args.calls, len(p))) for r, p in pools.items()}
    plan = {r: [p[i % len(p)] for i in range(args.calls)] for r, p in plan.items()}
    for r in ROLES:  # warm: the first call reads the pages from disk
        worklist_call(store, ledger, r, plan[r][0])
    wl = {r: figures([worklist_call(store, ledger, r, s)[0] for s in plan[r]]) for r in ROLES}
    out: dict = {"plans": plans(store, ledger, village), "worklist": wl}
    c0, t0 = time.process_time(), time.perf_counter()
    out["latest_decisions_differ"] = latest.check(ledger.engine)
    out["latest_check_seconds"] = round(time.perf_counter() - t0, 1)
    out["rebuild"] = []
    for _ in range(args.rebuilds):
        c0 = time.process_time()
        out["rebuild"].append((store.rebuild(), time.process_time() - c0))
    summaries = [encode(s) for s in store.current_cases(county_codes=[village[:6]], summary=True)]
    out["county_summaries"] = {"cases": len(summaries),
                               "bytes": sum(map(len, summaries)) // max(1, len(summaries))}  # fmt: skip
    return out


def report(info: dict, m: dict, load: list[float]) -> dict:
    wl, cs, runs = m["worklist"], m["county_summaries"], m["rebuild"]
    rb = {"seconds": [round(r.seconds, 1) for r, _ in runs], "cpu": [round(c, 1) for _, c in runs],
          "events": runs[0][0].events, "cases": runs[0][0].cases,
          "mismatched": max(len(r.mismatched) for r, _ in runs),
          "current_mismatched": max(r.current_mismatched for r, _ in runs)}  # fmt: skip
    made = f"{info['database_mb']:,} MB, made in {info['generate_seconds']:.0f} s"
    print(f"cases: {info['cases']:,} cases, {info['events']:,} events, "
          f"{info['decisions']:,} decisions ({info['periods']} period(s)), {made}")  # fmt: skip
    for role, f in wl.items():
        print(f"cases: worklist {role:<10} p50 {f['p50_ms']:7.1f} p95 {f['p95_ms']:7.1f} ms "
              f"(CPU p95 {f['cpu_p95_ms']:.0f}; {f['calls']} calls; cases {f['cases_p50_ms']:.0f} "
              f"+ decisions {f['decisions_p50_ms']:.0f} + build and reply "
              f"{f['build_p50_ms']:.0f} at p50)")  # fmt: skip
    took = f"{min(rb['seconds'])}-{max(rb['seconds'])} s (CPU {min(rb['cpu'])}-{max(rb['cpu'])} s)"
    print(f"cases: rebuild {rb['events']:,} events, {rb['cases']:,} cases in {took}, "
          f"{rb['mismatched']} mismatched, {rb['current_mismatched']} current rows differ")  # fmt: skip
    print(f"cases: latest decisions differ from the ranking for {m['latest_decisions_differ']} "
          f"household(s) (checked in {m['latest_check_seconds']} s)")  # fmt: skip
    print(f"  {cs['cases']:,} county summaries, {cs['bytes']:,} bytes each")
    print("\n".join(f"  plan {q}: {p}" for q, p in m["plans"].items()))
    print(f"  load average {load[0]:.1f} to {load[1]:.1f} on {os.cpu_count()} CPUs")
    met = {"county_p95_under_300ms": wl["county"]["p95_ms"] < 300,
           "rebuild_under_30s": max(rb["seconds"]) < 30 and not rb["mismatched"]
           and not rb["current_mismatched"]}  # fmt: skip
    info = {k: v for k, v in info.items() if k != "villages"} | {"now": NOW_ISO, "load": load}
    return info | m | {"rebuild": rb, "met": met}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for flag, default, what in (
        ("--cases", 100_000, "cases"), ("--events", 1_000_000, "events"),
        ("--counties", 10, "counties"), ("--calls", 30, "worklist calls per role"),
        ("--periods", 6, "monthly decisions per household"),
        ("--rebuilds", 3, "rebuilds"), ("--seed", 15, "random seed"),
    ):  # fmt: skip
        ap.add_argument(flag, type=int, default=default, help=what)
    ap.add_argument("--check-share", type=float, default=0.02, help="share checked, too")
    ap.add_argument("--quick", action="store_true", help="2,000 cases, 20,000 events: a check")
    ap.add_argument("--name", default="cases", help="bench/results/<name>.json")
    ap.add_argument("--db", type=Path, help="keep the database here (made if missing, else reused)")
    args = ap.parse_args(argv)
    if args.quick:
        args.cases, args.events, args.check_share, args.periods = 2_000, 20_000, 1.0, 2
    folder = args.db.parent if args.db else Path(tempfile.mkdtemp(prefix="riskml-bench-cases-"))
    path = args.db or folder / "ledger.db"
    url, made = f"sqlite:///{path}", path.with_suffix(".json")
    try:
        t0, load = time.perf_counter(), [os.getloadavg()[0]]
        if args.db and made.is_file():
            info = json.loads(made.read_text())  # the kept database's description
        else:
            folder.mkdir(parents=True, exist_ok=True)
            info = generate(url, args)
            info["generate_seconds"] = round(time.perf_counter() - t0, 1)
            info["database_mb"] = round(
                sum(p.stat().st_size for p in folder.glob(path.name + "*")) / 2**20
            )
            if args.db:
                made.write_text(json.dumps(info))
        ledger = Ledger(url)  # a fresh engine, as the service opens it
        m = measure(CaseStore(ledger), ledger, info, args)
        ledger.close()
        print(f"wrote {write(args.name, report(info, m, [*load, os.getloadavg()[0]]))}")
        return 0
    finally:
        if not args.db:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
