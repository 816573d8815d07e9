"""``riskml assets validate | import | events | register | check | contract`` end to end on a
SQLite ledger: exit codes, nothing stored when refused, the register written and checked."""

from __future__ import annotations

import json

import pandas as pd
from typer.testing import CliRunner

from riskml.assets.doc import assets_markdown
from riskml.assets.register import AssetStore
from riskml.cli import app
from riskml.cli.assets import assets_app
from riskml.store.ledger import Ledger
from tests.code.asset_samples import event, record

runner = CliRunner()


def _jsonl(path, rows):
    path.write_text(
        "\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8"
    )
    return path


def test_the_sub_app_is_registered():
    assert assets_app.registered_commands
    out = runner.invoke(app, ["assets", "contract"])
    assert out.exit_code == 0 and out.output == assets_markdown()


def test_validate_names_row_and_field_and_exits_1(tmp_path):
    good = _jsonl(tmp_path / "good.jsonl", [record(), record(asset_id="A-2")])
    assert runner.invoke(app, ["assets", "validate", str(good)]).exit_code == 0
    bad = _jsonl(tmp_path / "bad.jsonl", [record(), record(asset_id="A-2", owner_type="household",
                                                            owner="张三", book_value=2e6)])  # fmt: skip
    out = runner.invoke(app, ["assets", "validate", str(bad)])
    assert out.exit_code == 1
    assert (
        "row 1 (asset_id A-2), field 'book_value'" in out.output and "field 'owner'" in out.output
    )
    assert "张三" not in out.output
    missing = runner.invoke(app, ["assets", "validate", str(tmp_path / "none.csv")])
    assert missing.exit_code == 2 and "no such file" in missing.output


def test_import_events_register_and_check(tmp_path):
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    bad = _jsonl(tmp_path / "bad.jsonl", [record(), record(asset_id="A-2", status="sold")])
    refused = runner.invoke(app, ["assets", "import", str(bad), "--ledger", url])
    assert refused.exit_code == 1 and "nothing stored" in refused.output
    with Ledger(url) as led:
        assert AssetStore(led).count() == 0

    csv = tmp_path / "assets.csv"
    pd.DataFrame(
        [record(), record(asset_id="A-2", category="public_welfare", subtype="road")]
    ).assign(
        funding=lambda d: d["funding"].map(json.dumps),
        beneficiaries=lambda d: d["beneficiaries"].map(json.dumps),
    ).to_csv(csv, index=False)
    done = runner.invoke(
        app, ["assets", "import", str(csv), "--ledger", url, "--date", "2024-01-01"]
    )
    assert done.exit_code == 0, done.output
    assert "2 asset(s) registered" in done.output

    events = _jsonl(tmp_path / "events.jsonl", [
        event("income", "2024-02-01", year=2023, amount=10000),
        event("distribution", "2024-03-01", year=2023, items=[{"use": "vehicles", "amount": 500}]),
        event("marked_idle", "2024-04-01", asset_id="A-2"),
    ])  # fmt: skip
    stored = runner.invoke(app, ["assets", "events", str(events), "--ledger", url])
    assert stored.exit_code == 0 and "3 event(s) stored" in stored.output
    as_csv = tmp_path / "events.csv"  # a CSV of events: the payload is JSON text in its cell
    pd.DataFrame([event("inspection", "2024-04-02", finding="good")]).assign(
        payload=lambda d: d["payload"].map(json.dumps)
    ).to_csv(as_csv, index=False)
    csv_stored = runner.invoke(app, ["assets", "events", str(as_csv), "--ledger", url])
    assert csv_stored.exit_code == 0 and "1 event(s) stored" in csv_stored.output
    wrong = _jsonl(tmp_path / "wrong.jsonl", [event("inspection", "2024-05-01", finding="good"),
                                              event("revival", "2024-05-01", method="lease")])  # fmt: skip
    refused = runner.invoke(app, ["assets", "events", str(wrong), "--ledger", url])
    assert refused.exit_code == 1
    assert (
        "event 1: asset A-1, event 'revival'" in refused.output
        and "nothing stored" in refused.output
    )

    out = tmp_path / "register.parquet"
    reg = runner.invoke(app, ["assets", "register", "--ledger", url, "--out", str(out)])
    assert reg.exit_code == 0, reg.output
    frame = pd.read_parquet(out)
    assert list(frame["asset_id"]) == ["A-1", "A-2"] and list(frame["status"]) == [
        "operating",
        "idle",
    ]
    assert json.loads(frame.loc[0, "incomes"]) == {"2023": 10000.0}

    fired_out = tmp_path / "fired.csv"
    checked = runner.invoke(app, ["assets", "check", "--ledger", url, "--as-of", "2024-12-01",
                                  "--out", str(fired_out)])  # fmt: skip
    assert checked.exit_code == 0, checked.output
    fired = pd.read_csv(fired_out)
    assert set(zip(fired["asset_id"], fired["rule"], strict=True)) == {
        ("A-1", "ownership_unconfirmed"), ("A-1", "low_return"), ("A-1", "distribution_banned"),
        ("A-2", "ownership_unconfirmed"), ("A-2", "idle_too_long"), ("A-2", "public_welfare_unmanaged"),
    }  # fmt: skip
    assert "2 asset(s)" in checked.output and "购置车辆" in checked.output
    replayed = runner.invoke(app, ["assets", "rebuild", "--ledger", url])
    assert replayed.exit_code == 0 and "2 asset(s), 6 event(s) replayed" in replayed.output


def test_check_refuses_a_bad_rules_file_and_a_bad_date(tmp_path):
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    rules = tmp_path / "rules.yaml"
    rules.write_text("version: 1\n", encoding="utf-8")
    bad = runner.invoke(app, ["assets", "check", "--ledger", url, "--rules", str(rules)])
    assert bad.exit_code == 1 and "distribution" in bad.output
    date = runner.invoke(app, ["assets", "check", "--ledger", url, "--as-of", "2024-02-30"])
    assert date.exit_code == 2 and "--as-of" in date.output
