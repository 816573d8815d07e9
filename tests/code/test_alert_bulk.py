"""Code tests: the bulk path of a monthly push (riskml.alerts.bulk_check, triggers, riskml.alerts.bulk).

The column-by-column validator, typing and triggers give what the row-wise ones give, on files
with errors of every kind; the bulk run merges, re-scores and writes every alert.
"""

from __future__ import annotations

import math
import random

import numpy as np
import pandas as pd
import pytest

from riskml.alerts.bulk_check import frame_alerts, frame_problems, read_alert_frame
from riskml.alerts.contract import (
    alert_problems,
    alerts_frame,
    example_alert,
    frame_rows,
    read_alert_file,
    read_raw,
)
from riskml.alerts.fields import DEPARTMENTS

BAD_VALUES = {
    "money": ["abc", True, -1.0, 2e10, math.inf, -math.inf, math.nan, None, "12", 0.5, -0.0],
    "int": [1.5, -1, 37, "x", False, math.nan, None, 36, 0],
    "bool": ["yes", 1, 0.0, None, math.nan, True, False],
    "choice": ["surgery", 3, None, "Inpatient", True],
}
BAD_COMMON = {
    "household_id": [None, "H1", "H0000001\n", "bad id", 7, "H" + "1" * 70, "H_ok-1"],
    "county_code": [None, "99xxxx", "990101", "5301020", 530102, "110101"],
    "period": [None, "2025-13", "2025-3", 202503, "1899-01", "2025-03"],
    "event_date": [None, "2025-02-30", "2025/02/01", "2025-02-1", 20250201, "2025-02-28"],
    "alert_id": [None, "a b", 5, "x" * 65, "ok:1", "ok:1", "é"],
    "department": [None, "nope", "health", 3],
}


def _alerts(department: str, n: int, seed: int, bad: float = 0.3) -> list[dict]:
    """``n`` alerts of ``department``, about ``bad`` of them with one to three wrong cells,
    some repeated (with and without their alert_id)."""
    rng = random.Random(seed)
    d = DEPARTMENTS[department]
    out = []
    for i in range(n):
        a = example_alert(department, household_id=f"H{i % 50:07d}", month="2025-03")
        for f in d.fields:
            if f.kind == "money":
                a[f.name] = rng.choice([None, 0.0, 1234.5, 26000.0, 5000.0, 1e-05, 9999999.25])
            elif f.kind == "bool":
                a[f.name] = rng.choice([True, False, None])
            elif f.kind == "int":
                a[f.name] = rng.choice([0, 3, 12, None])
        if department == "medical" and a.get("out_of_pocket") is None:
            a["out_of_pocket"] = 100.0
        if rng.random() < 0.3:
            a["alert_id"] = f"id-{rng.randrange(40)}"
        if rng.random() < bad:
            for _ in range(rng.randint(1, 3)):
                name = rng.choice([*BAD_COMMON, *d.field_names])
                if name in BAD_COMMON:
                    a[name] = rng.choice(BAD_COMMON[name])
                else:
                    a[name] = rng.choice(BAD_VALUES[d.field(name).kind])
        out.append({k: v for k, v in a.items()})
        if rng.random() < 0.05:
            out.append(dict(a))  # a repeat: same content, same (or no) alert_id
    return out


def _frame(alerts: list[dict], department: str) -> pd.DataFrame:
    """The alerts as a file's frame: every column of the department, object where mixed."""
    d = DEPARTMENTS[department]
    names = ["alert_id", "household_id", "department", "county_code", "period", "event_date"]
    names += list(d.field_names)
    return pd.DataFrame({n: pd.Series([a.get(n) for a in alerts], dtype=object) for n in names})


def _as_dicts(problems):
    return [p.as_dict() for p in problems], problems.total, problems.invalid_records


@pytest.mark.parametrize("department", sorted(DEPARTMENTS))
@pytest.mark.parametrize("seed", [1, 2])
def test_frame_problems_equal_the_row_wise_ones_on_errors_of_every_kind(department, seed):
    raw = _frame(_alerts(department, 400, seed), department)
    rows = frame_rows(raw)
    for limit in (None, 100, 3):
        want = alert_problems(rows, department, limit=limit)
        got = frame_problems(raw, department, limit=limit)
        assert _as_dicts(got) == _as_dicts(want)
    assert alert_problems(rows, department, limit=None).total > 50  # the file has many errors


@pytest.mark.parametrize("department", ["medical", "emergency", "human_resources"])
def test_typed_columns_and_files_give_the_same_problems(department, tmp_path):
    """Columns typed as a Parquet file stores them, and the CSV a department would send."""
    alerts = _alerts(department, 300, 3, bad=0.0)
    raw = _frame(alerts, department)
    typed = frame_alerts(raw.iloc[:0], department).dtypes  # the dtypes valid alerts take
    clean = raw.copy()
    for name, dtype in typed.items():
        if name in clean.columns and name not in ("event_date", "period", "department"):
            clean[name] = clean[name].astype(dtype)
    for limit in (None, 10):
        assert _as_dicts(frame_problems(clean, department, limit)) == _as_dicts(
            alert_problems(frame_rows(clean), department, limit=limit)
        )
    # a CSV with bad cells: typed by the reader (numbers as numbers, bad cells as text)
    noisy = _frame(_alerts(department, 300, 4), department)
    path = tmp_path / "alerts.csv"
    noisy.drop(columns=["department"]).to_csv(path, index=False)
    want, got = (
        read_alert_file(path, department, limit=None),
        read_alert_frame(path, department, None),
    )
    assert got.rows == want.rows and _as_dicts(got.problems) == _as_dicts(want.problems)
    raw_csv = read_raw(path)
    assert _as_dicts(frame_problems(raw_csv, department, None)) == _as_dicts(
        alert_problems(frame_rows(raw_csv), department, limit=None)
    )


@pytest.mark.parametrize("department", sorted(DEPARTMENTS))
def test_frame_alerts_equal_alerts_frame_with_the_derived_ids(department, tmp_path):
    alerts = _alerts(department, 300, 5, bad=0.0)
    raw = _frame(alerts, department)
    rows = frame_rows(raw)
    problems = alert_problems(rows, department, limit=None)
    bad = {p.row for p in problems}  # the repeats
    keep = [i for i in range(len(rows)) if i not in bad]
    raw = raw.iloc[keep].reset_index(drop=True)
    assert not frame_problems(raw, department, None).total
    pd.testing.assert_frame_equal(
        frame_alerts(raw, department), alerts_frame(frame_rows(raw), department)
    )
    path = tmp_path / "ok.parquet"
    typed = frame_alerts(raw, department)
    typed["alert_id"] = pd.array(raw["alert_id"].to_numpy(dtype=object), dtype="string")
    if DEPARTMENTS[department].event:
        typed = typed.drop(columns=["period"])  # an event department dates by event_date
    typed.to_parquet(path)  # as stored: derived ids only where the department gave none
    want, got = read_alert_file(path, department), read_alert_frame(path, department)
    assert want.ok and got.ok
    pd.testing.assert_frame_equal(got.frame, want.frame)
    derived = raw["alert_id"].isna().to_numpy()
    assert derived.any() and got.frame["alert_id"][derived].str.startswith(f"{department}:").all()


# --------------------------------------------------------------------------- triggers
_OVERRIDES = """
version: "t1"
triggers:
  - id: med_low
    department: medical
    risk_type: illness
    level: yellow
    condition: {field: out_of_pocket, op: ge, threshold: 5000}
    only_if:
      - {record: formerly_poor, op: is_true}
    effective: {from: "2021-01", to: "2026-12"}
    message_zh: "自付 {value} 元，阈值 {threshold} 元"
    message_en: "out of pocket {value} above {threshold}"
    overrides:
      - provinces: ["53", "52"]
        threshold: 3000
        effective: {from: "2025-01"}
      - provinces: ["41"]
        enabled: false
  - id: med_high
    department: medical
    risk_type: illness
    level: red
    condition: {field: out_of_pocket, op: ge, threshold: 20000}
    only_if:
      - {record: formerly_poor, op: is_false, when_unknown: true}
      - {field: care, op: eq, value: inpatient}
    effective: {from: "2021-01"}
    message_zh: "自付 {value} 元，阈值 {threshold} 元"
    message_en: "out of pocket {value} above {threshold}"
"""
COUNTIES = ["530102", "520102", "410102", "110101", "440103"]


def _typed_alerts(department: str, n: int, seed: int) -> pd.DataFrame:
    rng = random.Random(seed)
    alerts = []
    for i in range(n):
        a = example_alert(
            department, household_id=f"H{i:07d}", county_code=rng.choice(COUNTIES),
            month=rng.choice(["2024-12", "2025-03", "2027-02"]),
        )  # fmt: skip
        for f in DEPARTMENTS[department].fields:
            if f.kind == "money":
                a[f.name] = rng.choice([None, 0.0, 499.0, 500.0, 3000.0, 4999.99, 5000.0, 25000.0])
            elif f.kind == "bool":
                a[f.name] = rng.choice([True, False, None])
            elif f.kind == "int":
                a[f.name] = rng.choice([0, 2, 3, 4, None])
            elif f.kind == "choice":
                a[f.name] = rng.choice(f.choices)
        if department == "medical" and a["out_of_pocket"] is None:
            a["out_of_pocket"] = 100.0
        if department == "medical" and (a.get("month_out_of_pocket") or 0) > a["out_of_pocket"]:
            a["month_out_of_pocket"] = a["out_of_pocket"]
        d = DEPARTMENTS[department]
        for f in d.fields:  # a required field, and one of the one_of fields, always given
            if (f.required or f.name in d.one_of[:1]) and a.get(f.name) is None:
                a[f.name] = example_alert(department)[f.name]
        alerts.append({k: v for k, v in a.items() if v is not None})
    assert not alert_problems(alerts, department).total
    return alerts_frame(alerts, department)


@pytest.mark.parametrize("text", [None, _OVERRIDES])
@pytest.mark.parametrize("department", sorted(DEPARTMENTS))
def test_fired_frame_equals_fired_row_by_row(department, text):
    from riskml.alerts.triggers import TriggerSet

    ts = TriggerSet.load() if text is None else TriggerSet.from_text(text)
    frame = _typed_alerts(department, 400, 7)
    rng = np.random.default_rng(3)
    known = rng.random(len(frame)) < 0.8
    flags = pd.array(rng.choice([True, False, None], len(frame)), dtype="boolean")
    before = pd.DataFrame({n: flags for n in ts.record_fields()}) if ts.record_fields() else None
    masked = None
    if before is not None:
        masked = before.copy()
        masked.loc[~known, :] = pd.NA  # an unknown household: no record before the alert
    got = ts.fired_frame(frame, masked)
    for i, a in enumerate(frame_rows(frame)):
        rec = None
        if known[i] and before is not None:
            rec = {n: plain for n, plain in frame_rows(before.iloc[[i]])[0].items()}
        want = [t["id"] for t in ts.fired(a, rec, a["county_code"], a["period"])]
        assert got[i].as_py() == want, (i, a, rec)
    if department == "medical":
        assert sum(len(x) for x in got.to_pylist()) > 20  # some fire, some do not


# --------------------------------------------------------------------------- the bulk run
@pytest.fixture(scope="module")
def push(sample_panel, tmp_path_factory):
    """The sample panel's last two waves as the records, and a medical push of 2026-03."""
    folder = tmp_path_factory.mktemp("push")
    records = sample_panel[sample_panel["period"].isin(["2024-06", "2025-06"])]
    records = records.reset_index(drop=True)
    records.to_parquet(folder / "records.parquet", index=False)
    wave = records[records["period"] == "2025-06"].reset_index(drop=True)
    rng = random.Random(11)
    alerts = []
    for k, i in enumerate(rng.sample(range(len(wave)), 300)):
        r = wave.iloc[i]
        a = example_alert(
            "medical", household_id=r["household_id"], county_code=r["county_code"],
            month="2026-03", out_of_pocket=rng.choice([800.0, 6000.0, 25000.0, 60000.0]),
            care=rng.choice(["inpatient", "outpatient"]), month_out_of_pocket=rng.choice([100.0, 700.0]),
            insured=rng.choice([True, False, None]),
        )  # fmt: skip
        alerts.append({key: v for key, v in a.items() if v is not None})
        if k % 10 == 0:  # a second alert of the same household and month (given an id)
            alerts.append(dict(a, alert_id=f"second-{k}", out_of_pocket=a["out_of_pocket"] + 1))
    for k in range(5):  # households nobody has seen
        alerts.append(example_alert("medical", household_id=f"Z{k:07d}", month="2026-03"))
    frame = _frame(alerts, "medical").drop(columns=["department", "event_date"])
    frame.to_parquet(folder / "alerts.parquet", index=False)
    return folder, records, alerts


@pytest.fixture(scope="module")
def pushed(push, trained, tmp_path_factory):
    from riskml.alerts.bulk import import_push
    from riskml.scoring.decide import ModelInfo

    folder, _, _ = push
    out = tmp_path_factory.mktemp("out")
    summary = import_push(
        folder / "alerts.parquet", "medical", folder / "records.parquet", out,
        model=trained.model, info=ModelInfo("household-risk", "test"), workers=0,
    )  # fmt: skip
    return summary, out


def test_the_bulk_decisions_equal_the_batch_engine_on_the_row_wise_merge(
    push, pushed, trained, tmp_path
):
    """Merged row by row (``merge``), scored by ``score_file`` with the previous wave in its input."""
    from riskml.alerts.merge import group_alerts, merge
    from riskml.scoring.batch import score_file
    from riskml.scoring.decide import ModelInfo

    _, records, alerts = push
    summary, out = pushed
    latest = {r["household_id"]: r for r in frame_rows(records[records["period"] == "2025-06"])}
    merged = [
        merge(latest[h], group).record
        for (h, _), group in group_alerts([dict(a, department="medical") for a in alerts]).items()
        if h in latest
    ]
    both = pd.concat(
        [records[records["period"] == "2025-06"], pd.DataFrame(merged)], ignore_index=True
    )
    both = both[list(records.columns[: len(merged[0])])]
    both.to_parquet(tmp_path / "both.parquet", index=False)
    score_file(tmp_path / "both.parquet", tmp_path / "want.parquet", model=trained.model,
               info=ModelInfo("household-risk", "test"), workers=0)  # fmt: skip
    want = pd.read_parquet(tmp_path / "want.parquet")
    want = want[want["period"] == "2026-03"].drop(columns=["decision_id"])
    got = pd.read_parquet(out / "decisions.parquet")
    assert len(got) == len(merged) == summary.scored == summary.households
    got = got.drop(columns=["decision_id"])
    key = ["household_id", "period"]
    got_sorted = got.sort_values(key).reset_index(drop=True)
    want_sorted = want.sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(got_sorted[want.columns], want_sorted)
    assert got_sorted["flagged"].any() and got_sorted["lead"].sum() == summary.leads
    assert (got_sorted["alert_count"] == 2).sum() == 30  # the two-alert households: one record


def test_every_alert_is_written_with_its_decision_triggers_or_reason(push, pushed):
    from riskml.alerts.merge import UNKNOWN_HOUSEHOLD
    from riskml.alerts.triggers import TriggerSet

    _, records, alerts = push
    summary, out = pushed
    written = pd.read_parquet(out / "alerts.parquet")
    assert len(written) == len(alerts) == summary.alerts
    assert summary.unmatched == 5 and (~written["matched"]).sum() == 5
    unmatched = pd.read_parquet(out / "unmatched.parquet")
    assert (unmatched["reason"] == UNKNOWN_HOUSEHOLD).all() and len(unmatched) == 5
    assert written.loc[written["matched"], "decision_id"].notna().all()
    decisions = pd.read_parquet(out / "decisions.parquet").set_index("decision_id")
    hit = written[written["matched"]]
    assert (
        decisions.loc[hit["decision_id"], "household_id"].to_numpy()
        == hit["household_id"].to_numpy()
    ).all()
    ts = TriggerSet.load()
    latest = {r["household_id"]: r for r in frame_rows(records[records["period"] == "2025-06"])}
    for a, fired in zip(frame_rows(written), written["triggers"], strict=True):
        alert = {k: v for k, v in a.items() if k in DEPARTMENTS["medical"].field_names or k in
                 ("department", "household_id", "county_code", "period")}  # fmt: skip
        want = ts.fired(alert, latest.get(a["household_id"]), a["county_code"], a["period"])
        assert list(fired) == [t["id"] for t in want]
    assert summary.triggered == sum(len(t) > 0 for t in written["triggers"]) > 0
    prov = pd.read_parquet(out / "provenance.parquet")
    assert set(prov["field"].astype(str)) >= {"medical_expense"}


def test_a_file_with_problems_is_refused_and_nothing_written(push, trained, tmp_path):
    from riskml.alerts.bulk import BulkRefused, import_push
    from riskml.scoring.decide import ModelInfo

    folder, _, alerts = push
    bad = _frame(alerts, "medical").drop(columns=["department", "event_date"])
    bad.loc[3, "out_of_pocket"] = -5.0
    bad.loc[7, "care"] = "surgery"
    bad.to_parquet(tmp_path / "bad.parquet", index=False)
    with pytest.raises(BulkRefused) as exc:
        import_push(tmp_path / "bad.parquet", "medical", folder / "records.parquet",
                    tmp_path / "out", model=trained.model, info=ModelInfo("m", "1"), workers=0)  # fmt: skip
    # the month's cost above a negative total is a problem too, as the row-wise validator says
    assert [(p.row, p.field) for p in exc.value.problems] == [
        (3, "out_of_pocket"), (3, "month_out_of_pocket"), (7, "care"),
    ]  # fmt: skip
    assert not (tmp_path / "out").exists()


def test_the_cli_takes_a_push_in_bulk(push, trained, tmp_path):
    from typer.testing import CliRunner

    from riskml.cli.app import app

    folder, _, alerts = push
    trained.model.save(tmp_path / "model")
    args = ["alerts", "import", str(folder / "alerts.parquet"), "--department", "medical",
            "--records", str(folder / "records.parquet"), "--out", str(tmp_path / "o"),
            "--model", str(tmp_path / "model"), "--workers", "0"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert f"{len(alerts):,} alert(s): {len(alerts) - 5:,} matched, 5 unmatched" in result.output
    bad = _frame(alerts, "medical").drop(columns=["department", "event_date"])
    bad.loc[2, "period"] = "2026-13"
    bad.to_csv(tmp_path / "bad.csv", index=False)
    args[2] = str(tmp_path / "bad.csv")
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1 and "row 2: period: must match" in result.output
    result = CliRunner().invoke(app, args[:5] + ["--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "--records and --out go together" in result.output


def test_two_workers_give_the_same_outputs_as_one_process(push, pushed, trained, tmp_path):
    """The worker path (records validated and merged records checked and scored in worker
    processes) writes what the in-process path writes, decision ids apart."""
    from riskml.alerts.bulk import import_push
    from riskml.scoring.decide import ModelInfo

    folder, _, _ = push
    _, out0 = pushed
    out2 = tmp_path / "out2"
    import_push(folder / "alerts.parquet", "medical", folder / "records.parquet", out2,
                model=trained.model, info=ModelInfo("household-risk", "test"), workers=2)  # fmt: skip
    for name in ("decisions.parquet", "alerts.parquet", "unmatched.parquet", "records.parquet",
                 "provenance.parquet", "rejects.parquet"):  # fmt: skip
        a, b = pd.read_parquet(out0 / name), pd.read_parquet(out2 / name)
        drop = [c for c in a.columns if "decision_id" in c or c in ("decided_at", "scored_at")]
        assert len(a) == len(b), name
        pd.testing.assert_frame_equal(a.drop(columns=drop), b.drop(columns=drop), obj=name)
