"""Fault tests: a batch run that crashes and is run again, `kill -9` of a batch run and of the server.

Every decision answered (by the service with 200, or written by a finished batch
run) is in the ledger exactly once after the crash and the restart or rerun.
The figures of the kill tests go to tests/artifacts/faults-*.json.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import text

from riskml.data import schema
from riskml.policy.rules import RuleSet
from riskml.scoring import batch
from riskml.scoring.decide import ModelInfo
from riskml.store.ledger import Ledger, LedgerError
from tests.code.service_harness import start_server
from tests.conftest import ARTIFACTS, ROOT

INFO = ModelInfo("household-risk", "test")


def _duplicates(db: Path) -> int:
    """(household_id, period) pairs stored more than once."""
    con = sqlite3.connect(db)
    try:
        return con.execute(
            "SELECT COUNT(*) FROM (SELECT 1 FROM decisions GROUP BY household_id, period "
            "HAVING COUNT(*) > 1)"
        ).fetchone()[0]
    finally:
        con.close()


def _figures(name: str, figures: dict) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / f"faults-{name}.json").write_text(json.dumps(figures, indent=2) + "\n")
    print(f"\n{name}: {figures}")


# --------------------------------------------------------------------------- batch, in process
@pytest.fixture(scope="module")
def panel(sample_panel):
    keep = sample_panel["household_id"].drop_duplicates().iloc[:600]
    return sample_panel[sample_panel["household_id"].isin(keep)].reset_index(drop=True)


def test_a_batch_run_that_crashed_resumes_and_stores_each_record_once(
    tmp_path, trained, panel, monkeypatch
):
    src = tmp_path / "in.parquet"
    panel.to_parquet(src, index=False)
    db = tmp_path / "ledger.db"
    url = f"sqlite:///{db}"
    ruleset = RuleSet.load()
    kw = dict(model=trained.model, info=INFO, ruleset=ruleset, ledger_url=url, chunk_rows=500)

    # the third ledger transaction fails: two chunks are stored, no output
    real = Ledger.record_run
    calls = {"n": 0}

    def crashing(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise LedgerError("the disk went away")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Ledger, "record_run", crashing)
    out = tmp_path / "out.parquet"
    with pytest.raises(batch.BatchError, match="run it again to resume"):
        batch.score_file(src, out, **kw)
    assert not out.exists()
    with Ledger(url) as ledger:
        before = ledger.decisions_frame(expand_records=False)
    assert len(before) == 1000
    monkeypatch.setattr(Ledger, "record_run", real)

    # the rerun: the same run, the rest stored, every record once
    s = batch.score_file(src, out, **kw)
    result = pd.read_parquet(out)
    assert s.ledger_rows == s.valid == len(result)
    assert s.timings["ledger_already_stored"] == 1000
    with Ledger(url) as ledger:
        frame = ledger.decisions_frame(expand_records=False)
    assert len(frame) == s.valid and _duplicates(db) == 0
    assert set(frame["decision_id"]) == set(result["decision_id"])
    assert set(before["decision_id"]) <= set(result["decision_id"])  # the stored ids kept
    # the output is what a run without a crash (and without a ledger) writes, decision ids aside
    plain = tmp_path / "plain.parquet"
    batch.score_file(src, plain, model=trained.model, info=INFO, ruleset=ruleset, chunk_rows=500)
    compared = [c for c in batch.OUTPUT_COLUMNS if c != "decision_id"]
    pd.testing.assert_frame_equal(result[compared], pd.read_parquet(plain)[compared])

    # once more: nothing stored, the same output to the decision id
    again = tmp_path / "again.parquet"
    s3 = batch.score_file(src, again, **kw)
    assert s3.timings["ledger_already_stored"] == s.valid
    pd.testing.assert_frame_equal(pd.read_parquet(again), result)
    # a new run of the same file is asked for by its own run id
    batch.score_file(src, tmp_path / "new.parquet", run_id="another-run", **kw)
    with Ledger(url) as ledger:
        assert ledger.count() == 2 * s.valid
        assert ledger.run_count("another-run") == s.valid


# --------------------------------------------------------------------------- batch, kill -9
def _big_input(sample_panel: pd.DataFrame, copies: int) -> pd.DataFrame:
    """The sample panel ``copies`` times, each copy under other household ids."""
    parts = []
    for c in range(copies):
        part = sample_panel.copy()
        part["household_id"] = part["household_id"].astype(str) + f"-c{c}"
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def _score_cmd(src: Path, out: Path, url: str, summary: Path) -> list[str]:
    return [
        sys.executable, "-c", "from riskml.cli import app; import riskml.cli.score; app()",
        "score", str(src), "--out", str(out), "--model", "models:/household-risk@champion",
        "--ledger", url, "--workers", "0", "--chunk-rows", "1000", "--quiet",
        "--summary-json", str(summary),
    ]  # fmt: skip


def _count(db: Path, table: str) -> int:
    if not db.exists():
        return 0
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return con.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    except sqlite3.OperationalError:  # not created yet
        return 0
    finally:
        con.close()


@pytest.mark.slow
def test_kill_9_of_a_batch_run_then_a_rerun_stores_each_record_once(
    tmp_path, registered, sample_panel
):
    df = _big_input(sample_panel, 4)
    src = tmp_path / "in.parquet"
    df.to_parquet(src, index=False)
    db = tmp_path / "ledger.db"
    url = f"sqlite:///{db}"
    out = tmp_path / "decisions.parquet"
    summary = tmp_path / "summary.json"
    cmd = _score_cmd(src, out, url, summary)

    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=dict(os.environ), stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    deadline = time.time() + 240
    stored_at_kill = 0
    try:
        while time.time() < deadline and proc.poll() is None:
            stored_at_kill = _count(db, "batch_decisions")
            if stored_at_kill >= len(df) // 2:  # half the ledger transactions committed
                break
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-3000:]
    proc.stderr.close()
    stored_after_kill = _count(db, "batch_decisions")
    assert 0 < stored_after_kill < len(df), "the run was not stopped half way"
    assert not out.exists()
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    with Ledger(url) as ledger:
        before = set(ledger.decisions_frame(expand_records=False)["decision_id"])

    rerun = subprocess.run(
        cmd, cwd=ROOT, env=dict(os.environ), capture_output=True, text=True, timeout=600
    )
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    facts = json.loads(summary.read_text())
    result = pd.read_parquet(out)
    with Ledger(url) as ledger:
        frame = ledger.decisions_frame(expand_records=False)
    duplicates = _duplicates(db)
    _figures(
        "batch",
        {
            "records": len(df),
            "valid": facts["valid"],
            "chunk_rows": 1000,
            "ledger_rows_when_killed": stored_after_kill,
            "rerun_already_stored": int(facts["timings"]["ledger_already_stored"]),
            "rerun_stored": facts["valid"] - int(facts["timings"]["ledger_already_stored"]),
            "ledger_rows_after_rerun": len(frame),
            "duplicates": duplicates,
            "temporary_files_left_by_the_kill": len(leftovers),
        },
    )
    assert facts["valid"] == len(result) == len(df)
    assert len(frame) == len(result) and duplicates == 0
    assert set(frame["decision_id"]) == set(result["decision_id"])
    assert before <= set(result["decision_id"])
    assert facts["timings"]["ledger_already_stored"] == stored_after_kill
    assert _count(db, "batch_decisions") == len(result)


# --------------------------------------------------------------------------- server, kill -9
@pytest.fixture(scope="module")
def records(trained):
    frame = trained.test_frame.sort_values("score", ascending=False)
    return schema.to_json_records(frame.head(50))


@pytest.fixture(scope="module")
def fault_env(session_dir, registered, records):
    from riskml.service.access import KeyConfigError, add_key

    keys = session_dir / "faults-keys.yaml"
    if keys.exists():
        keys.unlink()
    counties = sorted({r["county_code"] for r in records})
    try:  # scorer keys that carry the counties they may write, where they do
        token = add_key(keys, "fault-scorer", "scorer", counties=counties)
    except KeyConfigError:
        token = add_key(keys, "fault-scorer", "scorer")
    env = {
        "RISKML_API_KEYS_FILE": str(keys),
        "RISKML_LEDGER_URL": f"sqlite:///{session_dir / 'faults-ledger.db'}",
        "RISKML_MODEL_CACHE": str(session_dir / "faults-model-cache"),
        "RISKML_OPERATED_LINES_FILE": str(session_dir / "faults-lines.csv"),
    }
    return env, token


def _ready(srv, timeout: float = 90) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if srv.request("GET", "/readyz")[0] == 200:
            return
        time.sleep(0.3)
    raise AssertionError(f"not ready:\n{srv.log()[-3000:]}")


def _kill_9(pid: int) -> int:
    """SIGKILL a server and every process under it (BentoML's workers run in sessions of
    their own: killing the process group would leave them serving); how many were killed."""
    import psutil

    arbiter = psutil.Process(pid)
    family = [arbiter, *arbiter.children(recursive=True)]
    for p in family:  # the arbiter first: nothing is left to start a worker again
        with contextlib.suppress(psutil.NoSuchProcess):
            p.send_signal(signal.SIGKILL)
    _, alive = psutil.wait_procs(family, timeout=30)
    assert not alive, f"still running after SIGKILL: {alive}"
    return len(family)


@pytest.mark.slow
def test_kill_9_of_the_server_under_eight_clients_loses_and_doubles_nothing(
    fault_env, records, ledger_url
):
    env, token = fault_env
    env = {**env, "RISKML_LEDGER_URL": ledger_url}  # a SQLite file, then PostgreSQL
    srv = start_server(env, ARTIFACTS / "service-faults.log")
    answered: list[dict] = []  # one per decision answered with 200
    statuses: dict[str, int] = {}
    lock = threading.Lock()
    killed = threading.Event()

    def client(t: int) -> None:
        i = 0
        while not killed.is_set():
            batch_ = [
                {**records[(t * 7 + i + k) % len(records)], "household_id": f"kill-{t}-{i}-{k}"}
                for k in range(2)
            ]
            i += 1
            try:
                status, body = srv.request("POST", "/score", {"households": batch_}, token)
            except (OSError, http.client.HTTPException, ValueError) as exc:
                # the server went away: refused, reset, closed mid-answer
                with lock:
                    statuses[type(exc).__name__] = statuses.get(type(exc).__name__, 0) + 1
                continue
            with lock:
                statuses[str(status)] = statuses.get(str(status), 0) + 1
                if status == 200:
                    for sent, res in zip(batch_, body["results"], strict=True):
                        if res["household_id"] != sent["household_id"]:
                            statuses["answer for another household"] = 1
                        answered.append(res)

    try:
        _ready(srv)
        threads = [threading.Thread(target=client, args=(t,), daemon=True) for t in range(8)]
        for th in threads:
            th.start()
        deadline = time.time() + 60
        while time.time() < deadline and len(answered) < 600:  # some 300 requests answered
            time.sleep(0.05)
        killed.set()  # no new requests: those in flight are cut off by the kill
        answered_at_kill = len(answered)
        processes = _kill_9(srv.proc.pid)  # the whole server, mid-request
        srv.proc.wait(timeout=30)
        for th in threads:
            th.join(timeout=90)
        assert not any(th.is_alive() for th in threads)
    finally:
        srv.stop()
    assert len(answered) >= 100, (statuses, srv.log()[-3000:])
    assert processes >= 2, "the server's worker was not among the processes killed"
    assert sum(n for k, n in statuses.items() if k != "200"), "no request was cut off"
    assert "answer for another household" not in statuses

    again = start_server(env, ARTIFACTS / "service-faults-restart.log")
    try:
        _ready(again)
        status, body = again.request("POST", "/score", {"households": records[:1]}, token)
        assert status == 200, body
    finally:
        again.stop()

    if ledger_url.startswith("sqlite:///"):
        con = sqlite3.connect(Path(ledger_url.removeprefix("sqlite:///")))
        try:
            assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        finally:
            con.close()
    with Ledger(ledger_url) as ledger, ledger.engine.connect() as conn:
        rows = conn.execute(
            text("SELECT decision_id, household_id FROM decisions WHERE household_id LIKE 'kill-%'")
        ).all()
    stored_ids = [d for d, _ in rows]
    per_household: dict[str, int] = {}
    for _, h in rows:
        per_household[h] = per_household.get(h, 0) + 1
    answered_ids = [r["decision_id"] for r in answered]
    found = set(answered_ids) & set(stored_ids)
    twice = sum(1 for n in per_household.values() if n > 1)
    dialect = ledger_url.split(":", 1)[0].split("+")[0]
    _figures(
        "server" if dialect == "sqlite" else f"server-{dialect}",
        {
            "ledger": dialect,
            "clients": 8,
            "server_processes_killed": processes,
            "decisions_answered_when_killed": answered_at_kill,
            "statuses": statuses,
            "requests_answered_200": statuses.get("200", 0),
            "decisions_answered": len(answered_ids),
            "decisions_found_after_restart": len(found),
            "decisions_stored_not_answered": len(set(stored_ids) - set(answered_ids)),
            "households_stored_twice": twice,
            "decision_ids_stored_twice": len(stored_ids) - len(set(stored_ids)),
        },
    )
    assert len(answered_ids) == len(set(answered_ids))
    assert found == set(answered_ids), "an answered decision is missing from the ledger"
    assert twice == 0 and len(stored_ids) == len(set(stored_ids))
    # what was stored but never answered is a request killed between commit and reply
    assert len(set(stored_ids) - set(answered_ids)) <= 8 * 2
