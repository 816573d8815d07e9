"""API keys: hashing, loading and validation, the auth matrix, scopes, add_key, the CLI, and the
keys in force (LiveKeys: reloaded, failing closed)."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

import riskml.cli.keys  # noqa: F401  (registers the `keys` command group)
from riskml.cli import app
from riskml.service.access import (
    KeyConfigError,
    KeyStore,
    Principal,
    add_key,
    hash_token,
    new_token,
)
from riskml.service.live_keys import LiveKeys
from riskml.store.ledger import Ledger

COUNTY_A = "530102"
COUNTY_B = "530103"
VILLAGE_A1 = "530102001001"
VILLAGE_B1 = "530103001001"
VILLAGE_B2 = "530103002001"

TOKENS = {name: new_token() for name in ("scorer", "admin", "cw_county", "cw_village", "cw_both")}


def _entries() -> list[dict]:
    return [
        {"id": "scoring-app", "hash": hash_token(TOKENS["scorer"]), "role": "scorer"},
        {"id": "ops", "hash": hash_token(TOKENS["admin"]), "role": "admin"},
        {
            "id": "county-a",
            "hash": hash_token(TOKENS["cw_county"]),
            "role": "caseworker",
            "counties": [COUNTY_A],
        },
        {
            "id": "village-b1",
            "hash": hash_token(TOKENS["cw_village"]),
            "role": "caseworker",
            "villages": [VILLAGE_B1],
        },
        {
            "id": "both",
            "hash": hash_token(TOKENS["cw_both"]),
            "role": "caseworker",
            "counties": [COUNTY_A],
            "villages": [VILLAGE_B2],
        },
    ]


@pytest.fixture
def store() -> KeyStore:
    return KeyStore.from_entries(_entries())


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path):
    monkeypatch.delenv("RISKML_API_KEYS", raising=False)
    monkeypatch.delenv("RISKML_API_KEYS_FILE", raising=False)
    monkeypatch.setattr("riskml.config.STATE_DIR", tmp_path / "state")


# --------------------------------------------------------------------------- tokens
def test_tokens_are_random_prefixed_and_hashed():
    a, b = new_token(), new_token()
    assert a != b
    assert a.startswith("rk_") and len(a) == 3 + 43
    h = hash_token(a)
    assert h.startswith("sha256:") and len(h) == 7 + 64
    assert h == hash_token(a) and h != hash_token(b)
    assert a not in h


# --------------------------------------------------------------------------- auth matrix
@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "   ",
        "Bearer",
        "Bearer ",
        "Basic " + TOKENS["admin"],
        TOKENS["admin"],  # no scheme
        "Bearer " + TOKENS["admin"] + " extra",
        "Bearer " + TOKENS["admin"][:-1],  # one character short
        "Bearer " + new_token(),  # well-formed, unknown
        "Bearer " + hash_token(TOKENS["admin"]),  # the stored hash is not a key
    ],
)
def test_authenticate_refuses(store, header):
    assert store.authenticate(header) is None


@pytest.mark.parametrize(
    ("token", "key_id", "role"),
    [
        ("scorer", "scoring-app", "scorer"),
        ("admin", "ops", "admin"),
        ("cw_county", "county-a", "caseworker"),
        ("cw_village", "village-b1", "caseworker"),
    ],
)
def test_authenticate_each_role(store, token, key_id, role):
    p = store.authenticate("Bearer " + TOKENS[token])
    assert isinstance(p, Principal)
    assert (p.id, p.role) == (key_id, role)
    # the scheme is case-insensitive and surrounding blanks are tolerated
    assert store.authenticate("  bearer " + TOKENS[token] + " ") == p


def test_empty_store_authenticates_nobody():
    empty = KeyStore.load()  # no file, no env
    assert len(empty) == 0
    assert empty.authenticate("Bearer " + TOKENS["admin"]) is None


# --------------------------------------------------------------------------- permissions
def test_scorer_may_score_only(store):
    p = store.authenticate("Bearer " + TOKENS["scorer"])
    assert p.can_score() and not p.can_admin()
    assert not p.can_read(COUNTY_A, VILLAGE_A1)
    assert p.scope_filter() == ([], [])


def test_a_scorer_writes_only_its_counties_when_it_has_any():
    scoped = KeyStore.from_entries(
        [{"id": "s", "hash": hash_token("c"), "role": "scorer", "counties": [COUNTY_A]}]
    ).authenticate("Bearer c")
    assert scoped.can_score() and scoped.can_write(COUNTY_A) and not scoped.can_write("650101")
    assert not scoped.can_read(COUNTY_A, VILLAGE_A1), "writing is not reading"
    anywhere = KeyStore.from_entries(
        [{"id": "p", "hash": hash_token("d"), "role": "scorer"}]
    ).authenticate("Bearer d")
    assert anywhere.can_write("650101")
    with pytest.raises(KeyConfigError, match="scoped by counties, not villages"):
        KeyStore.from_entries(
            [{"id": "v", "hash": hash_token("e"), "role": "scorer", "villages": [VILLAGE_A1]}]
        )


def test_a_metrics_key_reads_metrics_only():
    p = KeyStore.from_entries(
        [{"id": "m", "hash": hash_token("m"), "role": "metrics"}]
    ).authenticate("Bearer m")
    assert p.can_read_metrics() and not p.can_score() and not p.can_admin()
    assert not p.can_read(COUNTY_A, VILLAGE_A1) and p.scope_filter() == ([], [])


def test_admin_may_do_everything(store):
    p = store.authenticate("Bearer " + TOKENS["admin"])
    assert p.can_admin() and p.can_score()
    assert p.can_read(COUNTY_A, VILLAGE_A1) and p.can_read("650101", "650101001001")
    assert p.scope_filter() == (None, None)


def test_caseworker_scope_by_county(store):
    p = store.authenticate("Bearer " + TOKENS["cw_county"])
    assert not p.can_score() and not p.can_admin()
    assert p.can_read(COUNTY_A, VILLAGE_A1)
    assert p.can_read(COUNTY_A, "530102999001")  # any village of the county
    assert not p.can_read(COUNTY_B, VILLAGE_B1)
    assert not p.can_read(None, None)
    assert p.scope_filter() == ([COUNTY_A], [])


def test_caseworker_scope_by_village(store):
    p = store.authenticate("Bearer " + TOKENS["cw_village"])
    assert p.can_read(COUNTY_B, VILLAGE_B1)
    assert not p.can_read(COUNTY_B, VILLAGE_B2)  # same county, other village
    assert not p.can_read(COUNTY_A, VILLAGE_A1)
    assert p.scope_filter() == ([], [VILLAGE_B1])


def test_caseworker_scope_by_county_or_village(store):
    p = store.authenticate("Bearer " + TOKENS["cw_both"])
    assert p.can_read(COUNTY_A, VILLAGE_A1)
    assert p.can_read(COUNTY_B, VILLAGE_B2)
    assert not p.can_read(COUNTY_B, VILLAGE_B1)
    assert p.describe_scope() == f"county:{COUNTY_A},village:{VILLAGE_B2}"


def test_scope_filter_drives_the_ledger_worklist(store, tmp_path):
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")

    def entry(hid, county, village):
        return {
            "household_id": hid,
            "period": "2024-06",
            "county_code": county,
            "village_code": village,
            "model_name": "m",
            "model_version": "1",
            "rules_version": "r",
            "score": 0.5,
            "risk_level": "yellow",
            "flagged": True,
            "flagged_by": "model",
            "record": {"household_id": hid},
            "result": {"household_id": hid},
        }

    ledger.record(
        [
            entry("a1", COUNTY_A, VILLAGE_A1),
            entry("b1", COUNTY_B, VILLAGE_B1),
            entry("b2", COUNTY_B, VILLAGE_B2),
        ],
        caller="scoring-app",
        request_id="r",
    )

    def worklist(token):
        p = store.authenticate("Bearer " + TOKENS[token])
        rows = ledger.latest_by_household(*p.scope_filter())
        # the filter and can_read agree row by row
        assert all(p.can_read(r["county_code"], r["village_code"]) for r in rows)
        return sorted(r["household_id"] for r in rows)

    assert worklist("admin") == ["a1", "b1", "b2"]
    assert worklist("cw_county") == ["a1"]
    assert worklist("cw_village") == ["b1"]
    assert worklist("cw_both") == ["a1", "b2"]
    assert worklist("scorer") == []
    ledger.close()


# --------------------------------------------------------------------------- loading
def test_load_yaml_file_by_argument_and_env(tmp_path, monkeypatch):
    path = tmp_path / "keys.yaml"
    path.write_text(yaml.safe_dump({"keys": _entries()[:3]}))
    store = KeyStore.load(path)
    assert [e.id for e in store.entries] == ["scoring-app", "ops", "county-a"]
    assert store.authenticate("Bearer " + TOKENS["cw_county"]).counties == frozenset({COUNTY_A})

    monkeypatch.setenv("RISKML_API_KEYS_FILE", str(path))
    monkeypatch.setenv("RISKML_API_KEYS", json.dumps(_entries()[3:]))
    merged = KeyStore.load()
    assert [e.id for e in merged.entries] == [
        "scoring-app",
        "ops",
        "county-a",
        "village-b1",
        "both",
    ]
    assert merged.entries[-1].source == "$RISKML_API_KEYS"
    assert merged.authenticate("Bearer " + TOKENS["cw_village"]).id == "village-b1"


def test_load_bare_list_and_unquoted_codes(tmp_path):
    path = tmp_path / "keys.yaml"
    path.write_text(
        f"- id: cw\n  hash: {hash_token('t')}\n  role: caseworker\n  counties: [530102]\n"
    )
    (entry,) = KeyStore.load(path).entries
    assert entry.counties == ("530102",)


def test_missing_named_file_is_an_error(tmp_path, monkeypatch):
    with pytest.raises(KeyConfigError, match="cannot read"):
        KeyStore.load(tmp_path / "absent.yaml")
    monkeypatch.setenv("RISKML_API_KEYS_FILE", str(tmp_path / "absent.yaml"))
    with pytest.raises(KeyConfigError, match="cannot read"):
        KeyStore.load()


def test_bad_env_json_is_an_error(monkeypatch):
    monkeypatch.setenv("RISKML_API_KEYS", "[{not json")
    with pytest.raises(KeyConfigError, match=r"\$RISKML_API_KEYS: not valid JSON"):
        KeyStore.load()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"role": "boss"}, r"entry 'k1': role: unknown role 'boss'"),
        ({"role": None}, r"entry 'k1': role: unknown role None"),
        ({"hash": None}, r"entry 'k1': hash: missing"),
        ({"hash": "rk_rawtokenpastedbymistake"}, r"entry 'k1': hash: must be 'sha256:'"),
        ({"hash": "sha256:" + "A" * 64}, r"entry 'k1': hash: must be"),
        ({"counties": ["53010"]}, r"entry 'k1': counties: '53010' is not a 6-digit code"),
        ({"counties": ["990101"]}, r"entry 'k1': counties: 990101 does not start with a province"),
        ({"villages": ["5301020010"]}, r"entry 'k1': villages: '5301020010' is not a 12-digit"),
        ({"villages": "530102001001x"}, r"entry 'k1': villages: .* is not a 12-digit"),
        (
            {"counties": None},
            r"entry 'k1': a caseworker key needs counties, townships and/or villages",
        ),
        ({"colour": "red"}, r"entry 'k1': unknown key\(s\) colour"),
        ({"id": "has space"}, r"entry 'has space': id: required"),
    ],
)
def test_validation_names_entry_and_key(change, message):
    entry = {"id": "k1", "hash": hash_token("t1"), "role": "caseworker", "counties": [COUNTY_A]}
    entry.update(change)
    entry = {k: v for k, v in entry.items() if v is not None or k in ("role",)}
    with pytest.raises(KeyConfigError, match=message):
        KeyStore.from_entries([entry])


def test_validation_reports_every_problem_and_entry_number():
    with pytest.raises(KeyConfigError) as info:
        KeyStore.from_entries(
            [
                {"id": "ok", "hash": hash_token("a"), "role": "scorer"},
                {"hash": hash_token("b"), "role": "nobody"},
                {"id": "s", "hash": hash_token("c"), "role": "admin", "counties": [COUNTY_A]},
                "not a mapping",
            ]
        )
    text = str(info.value)
    assert "entry #2: id: required" in text
    assert "entry #2: role: unknown role 'nobody'" in text
    assert "entry 's': counties/townships/villages do not apply to admin keys" in text
    assert "entry #4: must be a mapping" in text


def test_duplicate_ids_and_hashes_are_refused(monkeypatch, tmp_path):
    with pytest.raises(KeyConfigError, match="entry 'a': id: also used"):
        KeyStore.from_entries(
            [
                {"id": "a", "hash": hash_token("1"), "role": "scorer"},
                {"id": "a", "hash": hash_token("2"), "role": "admin"},
            ]
        )
    with pytest.raises(KeyConfigError, match="entry 'b': hash: same key as entry 'a'"):
        KeyStore.from_entries(
            [
                {"id": "a", "hash": hash_token("1"), "role": "scorer"},
                {"id": "b", "hash": hash_token("1"), "role": "admin"},
            ]
        )
    path = tmp_path / "keys.yaml"
    path.write_text(yaml.safe_dump([_entries()[0]]))
    monkeypatch.setenv("RISKML_API_KEYS", json.dumps([_entries()[0]]))
    with pytest.raises(KeyConfigError, match=r"\$RISKML_API_KEYS: entry 'scoring-app': id"):
        KeyStore.load(path)


# --------------------------------------------------------------------------- add_key
def test_add_key_stores_only_the_hash(tmp_path):
    path = tmp_path / "conf" / "keys.yaml"
    t1 = add_key(path, "scoring-app", "scorer")
    t2 = add_key(path, "cw", "caseworker", counties=[COUNTY_A], villages=[VILLAGE_B1])
    content = path.read_text()
    assert t1 not in content and t2 not in content
    assert hash_token(t1) in content and hash_token(t2) in content
    assert (path.stat().st_mode & 0o777) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["keys.yaml"]  # no temp files left

    store = KeyStore.load(path)
    assert store.authenticate("Bearer " + t1).role == "scorer"
    cw = store.authenticate("Bearer " + t2)
    assert cw.counties == frozenset({COUNTY_A}) and cw.villages == frozenset({VILLAGE_B1})


def test_add_key_refuses_bad_entries_and_leaves_file_unchanged(tmp_path):
    path = tmp_path / "keys.yaml"
    add_key(path, "cw", "caseworker", counties=[COUNTY_A])
    before = path.read_bytes()
    with pytest.raises(KeyConfigError, match="id: also used"):
        add_key(path, "cw", "scorer")
    with pytest.raises(KeyConfigError, match="role: unknown role 'boss'"):
        add_key(path, "x", "boss")
    with pytest.raises(KeyConfigError, match="needs counties, townships and/or villages"):
        add_key(path, "y", "caseworker")
    with pytest.raises(KeyConfigError, match="not a 6-digit code"):
        add_key(path, "z", "caseworker", counties=["12"])
    assert path.read_bytes() == before


def test_add_key_default_file_is_in_state_dir(tmp_path):
    token = add_key(None, "ops", "admin")
    assert (tmp_path / "state" / "api_keys.yaml").exists()
    assert KeyStore.load().authenticate("Bearer " + token).can_admin()


# --------------------------------------------------------------------------- CLI
def test_cli_keys_add_prints_token_once_and_list_hides_hashes(tmp_path):
    runner = CliRunner()
    path = tmp_path / "keys.yaml"
    res = runner.invoke(
        app,
        ["keys", "add", "--id", "cw-1", "--role", "caseworker"]
        + ["--county", COUNTY_A, "--village", VILLAGE_B1, "--village", VILLAGE_B2]
        + ["--file", str(path)],
    )
    assert res.exit_code == 0, res.output
    token = res.stdout.strip()
    assert token.startswith("rk_") and "\n" not in token
    assert token not in path.read_text()
    p = KeyStore.load(path).authenticate(f"Bearer {token}")
    assert p.id == "cw-1" and p.villages == frozenset({VILLAGE_B1, VILLAGE_B2})

    res = runner.invoke(app, ["keys", "list", "--file", str(path)])
    assert res.exit_code == 0, res.output
    assert "cw-1" in res.stdout and "caseworker" in res.stdout and COUNTY_A in res.stdout
    assert hash_token(token) not in res.stdout
    assert hash_token(token)[:15] in res.stdout
    assert token not in res.stdout


def test_cli_keys_add_rejects_bad_role(tmp_path):
    path = tmp_path / "keys.yaml"
    res = CliRunner().invoke(
        app, ["keys", "add", "--id", "x", "--role", "boss", "--file", str(path)]
    )
    assert res.exit_code == 1
    assert "unknown role 'boss'" in res.output
    assert not path.exists()


# --------------------------------------------------------------------------- keys in force
class _Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def tick(self) -> None:
        self.now += LiveKeys.RECHECK_S


def _write(path, entries) -> None:
    path.write_text(yaml.safe_dump({"keys": entries}))


def _bearer(name: str) -> str:
    return "Bearer " + TOKENS[name]


def test_live_keys_apply_a_valid_change_at_the_next_check(tmp_path):
    path = tmp_path / "keys.yaml"
    _write(path, _entries())
    clock = _Clock()
    live = LiveKeys(path, clock=clock)
    assert live.authenticate(_bearer("cw_county")).id == "county-a" and live.error is None
    _write(path, [e for e in _entries() if e["id"] != "county-a"])  # revoke county-a
    assert live.authenticate(_bearer("cw_county")) is not None  # until the next check, at most 2 s
    clock.tick()
    assert live.authenticate(_bearer("cw_county")) is None
    assert live.authenticate(_bearer("admin")).id == "ops" and live.error is None


def test_live_keys_fail_closed_while_the_file_is_deleted(tmp_path):
    path = tmp_path / "keys.yaml"
    _write(path, _entries())
    clock = _Clock()
    live = LiveKeys(path, clock=clock)
    saved = path.read_bytes()
    path.unlink()
    clock.tick()
    assert live.current() is None
    assert all(live.authenticate(_bearer(name)) is None for name in TOKENS)
    assert live.error == "keys.yaml is missing (deleted, renamed or never created)"
    path.write_bytes(saved)
    clock.tick()
    assert live.error is None and live.authenticate(_bearer("admin")).id == "ops"


def test_live_keys_fail_closed_when_a_revoking_edit_has_a_yaml_error(tmp_path):
    path = tmp_path / "keys.yaml"
    _write(path, _entries())
    clock = _Clock()
    live = LiveKeys(path, clock=clock)
    kept = [e for e in _entries() if e["id"] != "ops"]  # revoke the admin key ...
    path.write_text(yaml.safe_dump({"keys": kept}) + "  - id: [unclosed\n")  # ... and break it
    clock.tick()
    assert live.authenticate(_bearer("admin")) is None  # the revoked key is refused
    assert live.authenticate(_bearer("scorer")) is None  # and so is every other, until fixed
    error = live.error
    assert error.startswith("keys.yaml: not valid YAML at line ")
    assert "sha256" not in error and "scoring-app" not in error and str(tmp_path) not in error
    _write(path, kept)
    clock.tick()
    assert live.authenticate(_bearer("admin")) is None
    assert live.authenticate(_bearer("scorer")).id == "scoring-app" and live.error is None


def test_live_keys_fail_closed_on_invalid_entries_naming_the_file_not_the_content(tmp_path):
    path = tmp_path / "keys.yaml"
    _write(path, _entries())
    clock = _Clock()
    live = LiveKeys(path, clock=clock)
    bad = _entries()
    bad[1] = {**bad[1], "role": "boss"}
    bad[2] = {**bad[2], "counties": ["rk_pasted_by_mistake"]}
    _write(path, bad)
    clock.tick()
    assert live.current() is None and live.authenticate(_bearer("scorer")) is None
    assert live.error == "keys.yaml: 2 problems in the key entries"
    with pytest.raises(KeyConfigError) as info:  # the operator's command names every problem
        KeyStore.load(path)
    assert "role: unknown role 'boss'" in str(info.value)
    assert info.value.summary == live.error


def test_live_keys_re_read_the_env_var(tmp_path, monkeypatch):
    first, second = _entries()[0], _entries()[1]
    monkeypatch.setenv("RISKML_API_KEYS", json.dumps([first]))
    clock = _Clock()
    live = LiveKeys(clock=clock)  # the default file is absent: keys from the env var only
    assert live.authenticate(_bearer("scorer")).id == "scoring-app"
    monkeypatch.setenv("RISKML_API_KEYS", json.dumps([second]))
    clock.tick()
    assert live.authenticate(_bearer("scorer")) is None
    assert live.authenticate(_bearer("admin")).id == "ops"
    monkeypatch.setenv("RISKML_API_KEYS", "[{not json")
    clock.tick()
    assert live.current() is None and live.authenticate(_bearer("admin")) is None
    assert live.error.startswith("$RISKML_API_KEYS: not valid JSON at line 1")
    monkeypatch.delenv("RISKML_API_KEYS")
    clock.tick()
    assert live.error is None and len(live.current()) == 0  # no keys configured: nobody


def test_live_keys_default_file_once_seen_is_required(tmp_path):
    clock = _Clock()
    live = LiveKeys(clock=clock)  # no file, no env: no keys, and that is no fault
    assert live.error is None and len(live.current()) == 0
    token = add_key(None, "ops", "admin")  # the default file in the state folder
    clock.tick()
    assert live.authenticate(f"Bearer {token}").id == "ops"
    (tmp_path / "state" / "api_keys.yaml").unlink()
    clock.tick()
    assert live.authenticate(f"Bearer {token}") is None
    assert live.error == "api_keys.yaml is missing (deleted, renamed or never created)"


def test_live_keys_refuse_to_start_on_bad_keys_unless_told(tmp_path):
    with pytest.raises(KeyConfigError, match="cannot read"):
        LiveKeys(tmp_path / "absent.yaml")
    live = LiveKeys(tmp_path / "absent.yaml", strict=False)
    assert live.current() is None and live.error.startswith("absent.yaml is missing")


def test_live_keys_fail_closed_on_an_unreadable_file(tmp_path):
    path = tmp_path / "keys.yaml"
    _write(path, _entries())
    clock = _Clock()
    live = LiveKeys(path, clock=clock)
    saved = path.read_bytes()
    path.unlink()
    path.mkdir()  # unreadable as a file (a permission test would not hold when run as root)
    clock.tick()
    assert live.current() is None
    assert live.error == "keys.yaml: cannot be read (Is a directory)"
    path.rmdir()
    path.write_bytes(saved)
    clock.tick()
    assert live.authenticate(_bearer("admin")).id == "ops"


def test_live_keys_fail_closed_on_any_failure_to_load(tmp_path, monkeypatch):
    path = tmp_path / "keys.yaml"
    _write(path, _entries())
    clock = _Clock()
    live = LiveKeys(path, clock=clock)

    def deeply_nested(text):
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(yaml, "safe_load", deeply_nested)
    _write(path, _entries()[:2])
    clock.tick()
    assert live.current() is None and live.authenticate(_bearer("admin")) is None
    assert live.error == "keys.yaml: could not be loaded (RecursionError)"
