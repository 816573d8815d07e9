"""Code tests against a real `bentoml serve` on loopback: contract, validation, auth, ledger, cache, reload."""

from __future__ import annotations

import copy
import json
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from riskml.data import schema
from tests.code.service_harness import start_server
from tests.conftest import ARTIFACTS

pytestmark = pytest.mark.slow

RESULT_FIELDS = {
    "household_id", "period", "score", "risk_level", "flagged", "flagged_by", "rules", "risk_types",
    "reasons", "measures", "monitoring_type", "model_name", "model_version", "decision_id",
    "line_year", "line_basis",
}  # fmt: skip


@pytest.fixture(scope="module")
def records(trained):
    frame = trained.test_frame.sort_values("score", ascending=False)
    return schema.to_json_records(frame.head(400))


@pytest.fixture(scope="module")
def keys(session_dir):
    from riskml.service.access import add_key

    path = session_dir / "api_keys.yaml"
    if path.exists():
        path.unlink()
    return {
        "path": path,
        "scorer": add_key(path, "county-platform", "scorer"),
        "admin": add_key(path, "ops", "admin"),
        "caseworker_county": add_key(path, "cw-county", "caseworker", counties=["532328"]),
        "caseworker_village": add_key(path, "cw-village", "caseworker", villages=["532328101201"]),
        "scorer_532328": add_key(path, "yuanmou-platform", "scorer", counties=["532328"]),
    }


@pytest.fixture(scope="module")
def server_env(session_dir, keys, registered):
    return {
        "RISKML_API_KEYS_FILE": str(keys["path"]),
        "RISKML_LEDGER_URL": f"sqlite:///{session_dir / 'service-ledger.db'}",
        "RISKML_MODEL_CACHE": str(session_dir / "model-cache"),
        "RISKML_OPERATED_LINES_FILE": str(session_dir / "service-lines.csv"),
    }


@pytest.fixture(scope="module")
def server(server_env):
    srv = start_server(server_env, ARTIFACTS / "service.log")
    deadline = time.time() + 60
    while time.time() < deadline and srv.request("GET", "/readyz")[0] != 200:
        time.sleep(0.3)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def ledger(server_env):
    from riskml.store.ledger import Ledger

    return Ledger(server_env["RISKML_LEDGER_URL"])


def test_ready_with_the_champion_from_the_registry(server, keys):
    assert server.request("GET", "/readyz") == (200, {"ready": True})  # no key: only that
    status, body = server.request("GET", "/readyz", token=keys["admin"])
    assert status == 200, body
    assert body["model"]["source"] == "registry" and body["model"]["alias"] == "champion"
    status, info = server.request("GET", "/model", token=keys["scorer"])
    assert status == 200 and info["version"] == "1" and 0 < info["thresholds"]["flag"] < 1
    assert info["trained"]["test_period"]


def test_score_answers_the_contract(server, records, keys, ledger):
    before = ledger.count()
    status, body = server.request("POST", "/score", {"households": records[:20]}, keys["scorer"])
    assert status == 200, body
    results = body["results"]
    assert [r["household_id"] for r in results] == [r["household_id"] for r in records[:20]]
    for r in results:
        assert set(r) >= RESULT_FIELDS, RESULT_FIELDS - set(r)
        assert 0 <= r["score"] <= 1 and r["risk_level"] in ("red", "yellow", "green")
        assert set(r["flagged_by"]) <= {"rules", "model"} and r["flagged"] == bool(r["flagged_by"])
        for rule in r["rules"]:
            assert {"id", "risk_type", "message_zh", "message_en", "value", "threshold"} <= set(
                rule
            )
        if r["flagged"]:
            assert r["reasons"] and r["measures"] and r["risk_types"]
            for reason in r["reasons"]:
                assert {"feature", "value", "contribution", "text_zh", "text_en"} <= set(reason)
        assert r["monitoring_type"] in (None, "脱贫不稳定户", "边缘易致贫户", "突发严重困难户")
        assert r["model_name"] == "household-risk" and r["model_version"] == "1"
    assert any(r["flagged"] for r in results)
    assert ledger.count() == before + 20
    stored = ledger.get(results[0]["decision_id"])
    assert stored["record"] == records[0] and stored["score"] == pytest.approx(results[0]["score"])
    for r in results:  # the ledger writes flagged_by as the batch output does
        assert ledger.get(r["decision_id"])["flagged_by"] == ("+".join(r["flagged_by"]) or None)


def test_explain_all_explains_green_households_too(server, records, keys):
    status, body = server.request(
        "POST", "/score", {"households": records[-5:], "explain": "all"}, keys["scorer"]
    )
    assert status == 200
    assert all(r["reasons"] or r["score"] < 0.01 for r in body["results"])


def _bad(records, mutate):
    recs = copy.deepcopy(records[:3])
    mutate(recs)
    return recs


MALFORMED = {
    "missing field": (lambda r: r[1].pop("income_wage"), 1, "income_wage"),
    "wrong type": (lambda r: r[2].__setitem__("head_female", "yes"), 2, "head_female"),
    "numeric string": (lambda r: r[0].__setitem__("income_wage", "12000"), 0, "income_wage"),
    "out of range": (lambda r: r[1].__setitem__("head_age", 140), 1, "head_age"),
    "more workers than members": (lambda r: r[2].__setitem__("labor_count", 25), 2, "labor_count"),
    "unknown field": (lambda r: r[0].__setitem__("name", "Zhang San"), 0, "name"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_records_are_refused_by_index_and_field(server, records, keys, ledger, case):
    mutate, index, field = MALFORMED[case]
    before = ledger.count()
    status, body = server.request(
        "POST", "/score", {"households": _bad(records, mutate)}, keys["scorer"]
    )
    assert 400 <= status < 500, body
    assert {"index": index, "field": field} in [
        {"index": p["index"], "field": p["field"]} for p in body["problems"]
    ]
    assert ledger.count() == before


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_refused(server, records, keys, ledger, value):
    import json

    before = ledger.count()
    rec = dict(records[0], income_wage=12345.5)
    body = json.dumps({"households": [rec]}).replace(
        '"income_wage": 12345.5', f'"income_wage": {value}'
    )
    assert value in body
    status, answer = server.request("POST", "/score", raw=body.encode(), token=keys["scorer"])
    assert 400 <= status < 500, answer
    assert "income_wage" in str(answer)
    assert ledger.count() == before


@pytest.mark.parametrize(
    ("payload", "field"),
    [({"households": []}, "households"), ({"households": "abc"}, "households"), ({}, "households"),
     ({"households": [1]}, "(record)"), ({"households": [], "explain": "everything"}, "explain")],
)  # fmt: skip
def test_bad_envelopes_are_refused(server, keys, ledger, payload, field):
    before = ledger.count()
    status, body = server.request("POST", "/score", payload, keys["scorer"])
    assert 400 <= status < 500, body
    assert field in str(body)
    assert ledger.count() == before


def test_over_1000_records_are_refused(server, records, keys, ledger):
    before = ledger.count()
    status, body = server.request(
        "POST", "/score", {"households": (records * 3)[:1001]}, keys["scorer"]
    )
    assert status == 422 and body["problems"][0]["field"] == "households"
    assert ledger.count() == before


def test_a_non_json_body_is_refused(server, keys, ledger):
    before = ledger.count()
    status, _ = server.request("POST", "/score", raw=b"households=1", token=keys["scorer"])
    assert 400 <= status < 500
    assert ledger.count() == before


def test_auth_matrix(server, records, keys):
    one = {"households": records[:1]}
    assert server.request("POST", "/score", one)[0] == 401
    assert server.request("POST", "/score", one, "rk_wrong")[0] == 401
    assert server.request("POST", "/score", one, keys["caseworker_county"])[0] == 403
    status, body = server.request("POST", "/score", one, keys["scorer"])
    assert status == 200
    decision_id = body["results"][0]["decision_id"]
    hid = body["results"][0]["household_id"]
    village = records[0]["village_code"]
    county = records[0]["county_code"]
    # reading decisions: never anonymous, never a scorer; caseworkers only in scope; admin always
    assert server.request("GET", f"/decisions/{decision_id}")[0] == 401
    assert server.request("GET", f"/decisions/{decision_id}", token=keys["scorer"])[0] == 403
    assert server.request("GET", f"/decisions/{decision_id}", token=keys["admin"])[0] == 200
    in_county = county == "532328"
    assert server.request("GET", f"/decisions/{decision_id}", token=keys["caseworker_county"])[
        0
    ] == (200 if in_county else 404)
    in_village = village == "532328101201"
    assert server.request("GET", f"/households/{hid}/decisions", token=keys["caseworker_village"])[
        0
    ] == (200 if in_village else 404)
    assert server.request("POST", "/admin/reload", token=keys["scorer"])[0] == 403
    assert server.request("GET", "/healthz")[0] == 200


def test_caseworker_in_scope_reads_history(server, records, keys):
    rec = dict(
        records[0], county_code="532328", village_code="532328101201", household_id="scope_test_1"
    )
    status, body = server.request("POST", "/score", {"households": [rec]}, keys["scorer"])
    assert status == 200
    did = body["results"][0]["decision_id"]
    assert server.request("GET", f"/decisions/{did}", token=keys["caseworker_county"])[0] == 200
    status, hist = server.request(
        "GET", "/households/scope_test_1/decisions", token=keys["caseworker_village"]
    )
    assert status == 200 and hist["decisions"][-1]["decision_id"] == did
    other = dict(
        rec, county_code="530102", village_code="530102001001", household_id="scope_test_2"
    )
    status, body = server.request("POST", "/score", {"households": [other]}, keys["scorer"])
    assert status == 200
    assert (
        server.request("GET", "/households/scope_test_2/decisions", token=keys["caseworker_county"])
        == server.request(
            "GET", "/households/no_such_household/decisions", token=keys["caseworker_county"]
        )
        == (404, {"error": "no such household or decision in your key's scope"})
    ), "out of scope and unknown get one answer"


def test_previous_period_comes_from_the_ledger(server, records, keys):
    base = dict(records[0], household_id="history_1", period="2023-06", income_wage=60000.0)
    later = dict(base, period="2024-06", income_wage=1000.0)
    assert server.request("POST", "/score", {"households": [base]}, keys["scorer"])[0] == 200
    status, body = server.request(
        "POST", "/score", {"households": [later], "explain": "all"}, keys["scorer"]
    )
    assert status == 200
    fired = {r["id"] for r in body["results"][0]["rules"]}
    assert "income_drop" in fired


def test_ledger_holds_one_row_per_result_under_concurrency(server, records, keys, ledger):
    before = ledger.count()
    n_requests = 2000

    def call(i):
        return server.request(
            "POST", "/score", {"households": [records[i % len(records)]]}, keys["scorer"]
        )[0]

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(call, range(n_requests)))
    assert statuses.count(200) == n_requests
    assert ledger.count() == before + n_requests


def _get_text(server, path: str, token: str | None = None) -> tuple[int, str]:
    import urllib.error
    import urllib.request

    req = urllib.request.Request(server.url + path)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


def test_metrics_count_flags_by_rule_and_level(server, keys):
    assert _get_text(server, "/metrics", keys["scorer"])[0] == 403
    status, text = _get_text(server, "/metrics", keys["admin"])
    assert status == 200
    assert "riskml_flags_total" in text and 'kind="level"' in text


@pytest.mark.parametrize("path", ["/model", "/metrics", "/schema.json", "/", "/no-such-path"])
def test_only_the_probes_and_the_pages_answer_without_a_key(server, path):
    status, text = _get_text(server, path)
    assert status == 401 and json.loads(text) == {"error": "missing or invalid API key"}
    assert _get_text(server, path, "rk_wrong")[0] == 401
    for open_path in ("/healthz", "/readyz", "/livez", "/cw/login", "/docs.json", "/openapi.json"):
        assert _get_text(server, open_path)[0] == 200, open_path


def test_reload_switches_version_without_a_failed_request(
    server, records, keys, trained, small_config, registered
):
    from riskml.training import registry

    registry.log_training_run(trained, small_config)  # version 2: challenger
    registry.set_champion(small_config.model_name, "2", "test: reload")
    try:
        _reload_under_traffic(server, records, keys)
    finally:  # later tests of the session expect the first version as champion
        registry.set_champion(small_config.model_name, registered.version, "test: restore")


def _reload_under_traffic(server, records, keys) -> None:
    stop = threading.Event()
    statuses: list[int] = []

    def hammer():
        while not stop.is_set():
            statuses.append(
                server.request("POST", "/score", {"households": records[:5]}, keys["scorer"])[0]
            )

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    status, body = server.request("POST", "/admin/reload", token=keys["admin"])
    time.sleep(0.5)
    stop.set()
    for t in threads:
        t.join()
    assert status == 200 and body["version"] == "2", body
    assert statuses and all(s == 200 for s in statuses)
    status, body = server.request("POST", "/score", {"households": records[:1]}, keys["scorer"])
    assert body["results"][0]["model_version"] == "2"


def test_starts_from_the_cached_model_when_the_registry_is_gone(
    server_env, session_dir, records, keys
):
    # a copy of the cache, and a tracking URI pointing at a store that does not exist
    cache = session_dir / "model-cache-copy"
    shutil.copytree(server_env["RISKML_MODEL_CACHE"], cache, dirs_exist_ok=True)
    env = dict(
        server_env,
        RISKML_MODEL_CACHE=str(cache),
        MLFLOW_TRACKING_URI=f"sqlite:///{session_dir / 'gone.db'}",
    )
    srv = start_server(env, ARTIFACTS / "service-cached.log")
    try:
        status, body = srv.request("GET", "/readyz", token=keys["admin"])
        assert status == 200, body
        assert body["model"]["source"] == "cache" and "registry" in body["warning"]
        assert srv.request("POST", "/score", {"households": records[:2]}, keys["scorer"])[0] == 200
    finally:
        srv.stop()
    assert not (session_dir / "gone.db").exists()


def test_no_model_at_all_means_not_ready(server_env, session_dir, keys):
    env = dict(
        server_env,
        RISKML_MODEL_CACHE=str(session_dir / "empty-cache"),
        MLFLOW_TRACKING_URI=f"sqlite:///{session_dir / 'gone.db'}",
    )
    srv = start_server(env, ARTIFACTS / "service-nomodel.log")
    try:
        assert srv.request("GET", "/readyz") == (503, {"ready": False})  # no key: no paths
        status, body = srv.request("GET", "/readyz", token=keys["admin"])
        assert status == 503 and body["model"] is None and "no model" in body["reason"]
    finally:
        srv.stop()


def test_logs_hold_no_keys_records_or_scores(server, keys, records):
    log = server.log()
    for token in (keys["scorer"], keys["admin"]):
        assert token not in log
    for rec in records[:50]:
        assert rec["household_id"] not in log
    assert "households=1" not in log  # the non-JSON body of an earlier test


# ---------------------------------------------------------------- reference lines in force
def _at(records, period: str, n: int = 3):
    return [
        {**r, "household_id": f"{r['household_id']}-{period}", "period": period}
        for r in records[:n]
    ]


def test_a_year_without_a_line_uses_the_last_one_as_provisional(server, records, keys):
    status, body = server.request(
        "POST", "/score", {"households": _at(records, "2027-01")}, keys["scorer"]
    )
    assert status == 200, body
    assert {(r["line_year"], r["line_basis"]) for r in body["results"]} == {(2026, "provisional")}
    status, info = server.request("GET", "/model", token=keys["scorer"])
    lines = info["reference_lines"]
    assert lines["carry_forward_months"] == 12 and 2026 in lines["model_years"]
    assert "model's own copy" in lines["rule"]


@pytest.mark.parametrize("period", ["2012-06", "2018-12", "2029-01", "2030-06"])
def test_periods_outside_the_policy_are_refused_naming_the_record(
    server, records, keys, ledger, period
):
    before = ledger.count()
    batch = [records[0], *_at(records, period, 2)]
    status, body = server.request("POST", "/score", {"households": batch}, keys["scorer"])
    assert status == 422, body
    assert [(p["index"], p["field"]) for p in body["problems"]] == [(1, "period"), (2, "period")]
    assert body["problems"][0]["household_id"] == batch[1]["household_id"]
    assert f"year {period[:4]}" in body["problems"][0]["problem"]
    assert body["problems_total"] == 2
    assert ledger.count() == before, "nothing of a refused request is stored"


def test_an_entered_line_is_used_without_a_restart(server, records, keys, server_env):
    import pandas as pd

    from riskml.data import operated_lines

    county = records[0]["county_code"]
    path = Path(server_env["RISKML_OPERATED_LINES_FILE"])
    rows = pd.DataFrame(
        [
            {"province_code": county[:2], "year": 2028, "line": line, "yuan_per_person_year": v,
             "basis": "announced", "source": "test notice"}
            for line, v in (("monitoring", 9900.0), ("dibao", 7800.0))
        ]
    )  # fmt: skip
    operated_lines.add_rows(rows, "tester", path=path)
    status, body = server.request(
        "POST", "/score", {"households": _at(records, "2028-03", 1)}, keys["scorer"]
    )
    assert status == 200, body
    assert (body["results"][0]["line_year"], body["results"][0]["line_basis"]) == (
        2028,
        "announced",
    )


# ---------------------------------------------------------------- idempotent retries
def test_a_retry_with_the_same_idempotency_key_stores_nothing_twice(server, records, keys, ledger):
    before = ledger.count()
    body = {"households": records[30:34]}
    key = {"Idempotency-Key": "push-2025-06-batch-7"}
    s1, first, h1 = server.exchange("POST", "/score", body, keys["scorer"], headers=key)
    s2, again, h2 = server.exchange("POST", "/score", body, keys["scorer"], headers=key)
    assert (s1, s2) == (200, 200), (first, again)
    assert [r["decision_id"] for r in again["results"]] == [
        r["decision_id"] for r in first["results"]
    ]
    assert again["request_id"] == first["request_id"] and again["results"] == first["results"]
    assert "idempotent-replayed" not in h1 and h2.get("idempotent-replayed") == "true"
    assert ledger.count() == before + 4
    s3, other = server.request(
        "POST", "/score", {"households": records[34:35]}, keys["scorer"], headers=key
    )
    assert s3 == 422 and other["problems"][0]["field"] == "Idempotency-Key", other
    s4, bad = server.request(
        "POST", "/score", body, keys["scorer"], headers={"Idempotency-Key": "two words"}
    )
    assert s4 == 422 and bad["problems"][0]["field"] == "Idempotency-Key"
    assert ledger.count() == before + 4, "nothing of a refused request is stored"


# ---------------------------------------------------------------- where a household may be written
def test_a_scoped_scorer_writes_only_its_counties(server, records, keys, ledger):
    inside = dict(
        records[0], household_id="ws_in", county_code="532328", village_code="532328101201"
    )
    outside = dict(
        records[0], household_id="ws_out", county_code="530102", village_code="530102001001"
    )
    assert (
        server.request("POST", "/score", {"households": [inside]}, keys["scorer_532328"])[0] == 200
    )
    before = ledger.count()
    status, body = server.request(
        "POST", "/score", {"households": [inside, outside]}, keys["scorer_532328"]
    )
    assert status == 403, body
    assert [(p["index"], p["field"]) for p in body["problems"]] == [(1, "county_code")]
    assert "530102" in body["problems"][0]["problem"]
    assert ledger.count() == before, "nothing of a refused request is stored"


def test_moving_a_household_is_an_admins_act(server, records, keys, ledger):
    home = dict(
        records[1],
        household_id="mover_1",
        county_code="532328",
        village_code="532328101201",
        period="2024-06",
    )
    away = dict(home, county_code="530102", village_code="530102001001", period="2025-06")
    assert server.request("POST", "/score", {"households": [home]}, keys["scorer"])[0] == 200
    before = ledger.count()
    status, body = server.request("POST", "/score", {"households": [away]}, keys["scorer"])
    assert status == 409, body
    problem = body["problems"][0]
    assert problem["field"] == "county_code" and "another county" in problem["problem"]
    assert "532328" not in problem["problem"], "the answer names no place"
    assert ledger.count() == before
    path = "/households/mover_1/decisions"
    assert server.request("GET", path, token=keys["caseworker_county"])[0] == 200
    move = {
        "county_code": "530102",
        "village_code": "530102001001",
        "reason": "relocated (易地搬迁)",
    }
    assert server.request("POST", "/admin/households/mover_1/move", move, keys["scorer"])[0] == 403
    status, moved = server.request("POST", "/admin/households/mover_1/move", move, keys["admin"])
    assert status == 200, moved
    assert (moved["from_county"], moved["to_county"]) == ("532328", "530102")
    assert server.request("GET", path, token=keys["caseworker_county"])[0] == 404, (
        "the history moved with it"
    )
    assert server.request("POST", "/score", {"households": [away]}, keys["scorer"])[0] == 200
    bad = {"county_code": "530102", "village_code": "532328101201", "reason": ""}
    status, refused = server.request("POST", "/admin/households/mover_1/move", bad, keys["admin"])
    assert status == 422 and {p["field"] for p in refused["problems"]} == {"village_code", "reason"}
    assert server.request("POST", "/admin/households/nobody/move", move, keys["admin"])[0] == 404
