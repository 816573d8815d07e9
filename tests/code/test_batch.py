"""Code tests of batch scoring (riskml.batch, riskml score) and of the decisions it shares online."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from typing import Any

import numpy as np
import pandas as pd
import pytest

from riskml.data import schema
from riskml.data.history import earlier_from_panel, previous_from_panel
from riskml.model.tree_engine import TreeEngine
from riskml.policy.rules import RuleSet
from riskml.scoring import batch
from riskml.scoring.decide import (
    SUDDEN_RISK_TYPES,
    ModelInfo,
    decide,
    monitoring_type,
)
from tests.conftest import ROOT

COMPARED = [c for c in batch.OUTPUT_COLUMNS if c != "decision_id"]  # decision ids are random
INFO = ModelInfo("household-risk", "test")


@pytest.fixture(scope="module")
def model(trained):
    return trained.model


@pytest.fixture(scope="module")
def ruleset():
    return RuleSet.load()


@pytest.fixture(scope="module")
def panel(sample_panel):
    """About 600 households of the sample panel (every period): ~4,000 records."""
    keep = sample_panel["household_id"].drop_duplicates().iloc[:600]
    return sample_panel[sample_panel["household_id"].isin(keep)].reset_index(drop=True)


def _reference(panel: pd.DataFrame, model, ruleset) -> pd.DataFrame:
    """What decide() gives on the whole (valid) frame, with earlier_from_panel, as output rows."""
    valid, _, _ = schema.split_valid(panel)
    records = valid[list(schema.FIELD_NAMES)].reset_index(drop=True)
    results = decide(records, earlier_from_panel(records), model, ruleset, INFO)
    return batch.decisions_table(results, records).to_pandas()


def _score(tmp_path, src, model, ruleset, name: str = "out", **kw: Any):
    out = tmp_path / f"{name}.parquet"
    rejects = tmp_path / f"{name}.rejects.parquet"
    kw.setdefault("workers", 0)
    s = batch.score_file(src, out, model=model, info=INFO, ruleset=ruleset, rejects=rejects, **kw)
    return s, pd.read_parquet(out), pd.read_parquet(rejects)


def _same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    a = a[COMPARED].reset_index(drop=True)
    b = b[COMPARED].reset_index(drop=True)
    assert len(a) == len(b)
    for col in COMPARED:
        left, right = _plain(a[col]), _plain(b[col])
        assert left == right, f"column {col} differs"


def _plain(s: pd.Series) -> list[Any]:
    return [v.tolist() if isinstance(v, np.ndarray) else v for v in s.tolist()]


def _bad_panel(panel: pd.DataFrame) -> tuple[pd.DataFrame, dict[int, str]]:
    """The panel with invalid rows put in (position -> field named in the reasons)."""
    df = panel.copy()
    df["household_size"] = df["household_size"].astype("Int64")
    bad: dict[int, str] = {}
    df.loc[5, "income_wage"] = -100.0
    bad[5] = "income_wage"
    df.loc[17, "head_age"] = 5
    bad[17] = "head_age"
    df.loc[40, "village_code"] = "110101001001"
    bad[40] = "village_code"
    df.loc[41, "household_size"] = pd.NA
    bad[41] = "household_size"
    df.loc[90, "period"] = "2021-6"
    bad[90] = "period"
    # a repeat of an earlier (household_id, period), far from it (another chunk)
    dup = df.iloc[[3]].copy()
    df = pd.concat([df, dup], ignore_index=True)
    bad[len(df) - 1] = "period"
    return df, bad


# --------------------------------------------------------------------------- decide, fast path
def _reference_decide(records, previous, model, ruleset, info, explain="flagged",
                      reasons_k=5, with_contributions=True):  # fmt: skip
    """decide() as it was before the batch work (LightGBM predict/pred_contrib, row by row)."""
    from riskml.model.features import build_features
    from riskml.model.reasons import risk_types_from_contributions, top_reasons
    from riskml.policy import rules as policy_rules
    from riskml.policy.risk_types import measures_for
    from riskml.scoring.decide import records_as_dicts

    n = len(records)
    records = records.reset_index(drop=True)
    if previous is not None:
        previous = previous.reset_index(drop=True)
    fields = list(schema.FIELD_NAMES)
    X = build_features(records[fields], previous, model.lines)[list(model.feature_names)]
    score = model.predict_proba(X)
    level = model.risk_level(score)
    rr = policy_rules.evaluate(records[fields], ruleset, model.lines, previous=previous)
    by_rules = np.asarray(rr.flagged, dtype=bool)
    by_model = score >= model.thresholds.flag
    flagged = by_rules | by_model
    below_line = X["pc_income_to_line"].to_numpy() < 1.0
    if explain == "all":
        explain_rows = np.arange(n)
    elif explain == "flagged":
        explain_rows = np.flatnonzero(flagged)
    else:
        explain_rows = np.zeros(0, dtype=int)
    contrib = model.explain(X.iloc[explain_rows]) if len(explain_rows) else None
    contrib_of = {int(r): j for j, r in enumerate(explain_rows)}
    need = np.union1d(explain_rows, np.flatnonzero(flagged)).astype(int)
    record_dicts = dict(zip(need.tolist(), records_as_dicts(records, need), strict=True))
    feature_rows = X.iloc[explain_rows].to_dict("records") if len(explain_rows) else []
    out = []
    for i in range(n):
        fired = rr.for_row(i) if by_rules[i] else []
        red_rule = any(r["level"] == "red" for r in fired)
        lvl = "red" if red_rule else str(level[i])
        if flagged[i] and lvl == "green":
            lvl = "yellow"
        res: dict[str, Any] = {
            "household_id": str(records["household_id"].iloc[i]),
            "period": str(records["period"].iloc[i]),
            "score": float(score[i]),
            "risk_level": lvl,
            "flagged": bool(flagged[i]),
            "flagged_by": [k for k, hit in (("rules", by_rules[i]), ("model", by_model[i])) if hit],
            "rules": fired,
            "risk_types": rr.risk_types(i) if by_rules[i] else [],
            "reasons": [],
            "measures": [],
            "monitoring_type": None,
            "model_name": info.name,
            "model_version": info.version,
            "rules_version": ruleset.version,
        }
        used = model.lines.lookup(
            str(records["county_code"].iloc[i])[:2], int(str(records["period"].iloc[i])[:4])
        )
        res["line_year"], res["line_basis"] = used.line_year, used.basis  # row by row
        j = contrib_of.get(i)
        if j is not None:
            c = contrib.contributions[j]
            res["reasons"] = top_reasons(
                record_dicts[i], feature_rows[j], c, contrib.feature_names, k=reasons_k
            )
            for rt, _ in risk_types_from_contributions(c, contrib.feature_names):
                if rt not in res["risk_types"] and (flagged[i] or explain == "all"):
                    res["risk_types"].append(rt)
            if with_contributions:
                res["contributions"] = {
                    "base": round(contrib.base, 6),
                    "values": {
                        f: round(float(v), 6) for f, v in zip(contrib.feature_names, c, strict=True)
                    },
                }
        if flagged[i]:
            res["measures"] = measures_for(res["risk_types"])
            sudden = red_rule and any(
                r["risk_type"] in SUDDEN_RISK_TYPES or r["id"] == "income_drop" for r in fired
            )
            res["monitoring_type"] = monitoring_type(
                record_dicts[i].get("formerly_poor"), bool(below_line[i]), True, sudden
            )
        out.append(res)
    return out


@pytest.mark.parametrize("explain", ["flagged", "all", "none"])
def test_decide_gives_the_same_dicts_as_before_the_batch_work(model, ruleset, panel, explain):
    records = schema.coerce_frame(panel[list(schema.FIELD_NAMES)]).iloc[:1500]
    previous = previous_from_panel(schema.coerce_frame(panel[list(schema.FIELD_NAMES)])).iloc[:1500]
    new = decide(records, previous, model, ruleset, INFO, explain=explain)
    old = _reference_decide(records, previous, model, ruleset, INFO, explain=explain)
    assert len({r["decision_id"] for r in new}) == len(new)
    assert all(len(r.pop("decision_id")) == 32 for r in new)
    # same values and the same Python types (4 vs 4.0 serialise differently)
    assert json.dumps(new, ensure_ascii=False) == json.dumps(old, ensure_ascii=False)
    assert sum(r["flagged"] for r in new) > 50


def test_tree_engine_equals_lightgbm(model, panel):
    booster = model.booster
    engine = TreeEngine.for_booster(booster)
    assert engine is not None, "the compiled engine should accept the project's models"
    X = model.features(schema.coerce_frame(panel[list(schema.FIELD_NAMES)]))
    X = X.to_numpy(np.float64)
    assert np.isnan(X).any()  # missing values go down LightGBM's default ways
    assert np.array_equal(engine.margin(X), booster.predict(X, raw_score=True))
    assert np.allclose(engine.contrib(X), booster.predict(X, pred_contrib=True), atol=1e-10)
    assert TreeEngine.for_booster(booster) is engine  # built once per model


def test_decide_falls_back_to_lightgbm(model, ruleset, panel, monkeypatch):
    records = schema.coerce_frame(panel[list(schema.FIELD_NAMES)]).iloc[:300]
    fast = decide(records, None, model, ruleset, INFO)
    monkeypatch.setattr(TreeEngine, "for_booster", classmethod(lambda cls, b: None))
    slow = decide(records, None, model, ruleset, INFO)
    for r in fast + slow:
        r.pop("decision_id")
    assert json.dumps(fast) == json.dumps(slow)


# --------------------------------------------------------------------------- the local engine
def test_local_engine_equals_decide_on_the_whole_frame(tmp_path, model, ruleset, panel):
    src = tmp_path / "panel.parquet"
    panel.to_parquet(src, index=False)
    s, out, rejects = _score(tmp_path, src, model, ruleset, chunk_rows=1000)
    _same(out, _reference(panel, model, ruleset))
    assert s.rows_read == s.valid == len(panel) and s.rejected == 0 and len(rejects) == 0
    assert s.with_previous > 0.7 * len(panel)  # six of seven periods have the year before
    assert out["decision_id"].str.fullmatch(r"[0-9a-f]{32}").all()
    assert out["decision_id"].nunique() == len(out)
    assert s.flagged == int(out["flagged"].sum()) > 0
    assert s.red == int((out["risk_level"] == "red").sum())
    flagged = out[out["flagged"]]
    assert flagged["flagged_by"].isin(["rules", "model", "rules+model"]).all()
    assert out.loc[~out["flagged"], "flagged_by"].isna().all()
    first = json.loads(flagged["reasons"].iloc[0])
    assert first and {"feature", "contribution", "text_zh", "text_en"} <= set(first[0])


def test_chunk_size_does_not_change_the_output(tmp_path, model, ruleset, panel):
    df, _ = _bad_panel(panel)
    src = tmp_path / "bad.parquet"
    df.to_parquet(src, index=False)
    s1, out1, rej1 = _score(tmp_path, src, model, ruleset, "small", chunk_rows=500)
    s2, out2, rej2 = _score(tmp_path, src, model, ruleset, "large", chunk_rows=100_000)
    _same(out1, out2)
    pd.testing.assert_frame_equal(rej1, rej2)
    assert (s1.valid, s1.rejected, s1.flagged) == (s2.valid, s2.rejected, s2.flagged)


def test_row_order_of_the_input_does_not_matter(tmp_path, model, ruleset, panel):
    shuffled = panel.sample(frac=1.0, random_state=3).reset_index(drop=True)
    src = tmp_path / "shuffled.parquet"
    shuffled.to_parquet(src, index=False)
    s, out, _ = _score(tmp_path, src, model, ruleset, chunk_rows=600)
    key = ["household_id", "period"]
    ref = _reference(panel, model, ruleset).sort_values(key).reset_index(drop=True)
    _same(out.sort_values(key), ref)
    assert s.with_previous > 0.7 * len(panel)  # about half come after their successor here


def test_worker_processes_give_the_same_output(tmp_path, model, ruleset, panel):
    src = tmp_path / "panel.parquet"
    panel.iloc[:1500].to_parquet(src, index=False)
    _, inline, _ = _score(tmp_path, src, model, ruleset, "inline", chunk_rows=400)
    s, pooled, _ = _score(tmp_path, src, model, ruleset, "pooled", chunk_rows=400, workers=2)
    assert s.workers == 2
    _same(inline, pooled)


def test_bad_rows_go_to_the_rejects_with_reasons(tmp_path, model, ruleset, panel):
    df, bad = _bad_panel(panel)
    src = tmp_path / "bad.parquet"
    df.to_parquet(src, index=False)
    s, out, rejects = _score(tmp_path, src, model, ruleset, chunk_rows=700)
    assert s.rows_read == len(df)
    assert s.valid + s.rejected == s.rows_read
    assert len(out) == s.valid and len(rejects) == s.rejected == len(bad)
    assert rejects["row"].tolist() == sorted(bad)
    for row, field_name in bad.items():
        reasons = rejects.loc[rejects["row"] == row, "reasons"].iloc[0]
        assert reasons.startswith(f"{field_name}: "), reasons
    dup = rejects.loc[rejects["row"] == len(df) - 1, "reasons"].iloc[0]
    assert batch.DUPLICATE_RULE in dup
    # the rejects carry the input's columns as they were
    assert rejects.loc[rejects["row"] == 5, "income_wage"].iloc[0] == -100.0
    assert set(df.columns) <= set(rejects.columns)
    # the same reasons as validating the whole file at once
    _, whole, _ = schema.split_valid(df)
    assert rejects["reasons"].tolist() == whole["reasons"].tolist()
    # and the valid rows scored as decide() would on the valid frame
    _same(out, _reference(df, model, ruleset))


def test_duplicate_rule_is_the_schemas():
    rec = {f.name: None for f in schema.FIELDS}
    rec.update(household_id="H1", period="2024-06", county_code="530101",
               village_code="530101101201", household_size=1)  # fmt: skip
    problems = schema.validate_frame(pd.DataFrame([rec, rec]))
    assert [p.rule for p in problems if p.row == 1] == [schema.duplicate_rule(0)]
    assert schema.duplicate_rule(0).startswith(batch.DUPLICATE_RULE)


def test_csv_input_scores_like_parquet(tmp_path, model, ruleset, panel):
    df = panel.iloc[:800].copy()
    src_pq = tmp_path / "in.parquet"
    df.to_parquet(src_pq, index=False)
    src_csv = tmp_path / "in.csv"
    df.to_csv(src_csv, index=False)
    _, out_pq, _ = _score(tmp_path, src_pq, model, ruleset, "pq", chunk_rows=300)
    _, out_csv, _ = _score(tmp_path, src_csv, model, ruleset, "csv", chunk_rows=300)
    _same(out_pq, out_csv)
    # a cell that is not a number is a reject, not a crash
    text = src_csv.read_text().splitlines()
    header = text[0].split(",")
    cells = text[10].split(",")
    cells[header.index("debt")] = "abc"
    text[10] = ",".join(cells)
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("\n".join(text) + "\n")
    s, out, rejects = _score(tmp_path, bad_csv, model, ruleset, "badcsv", chunk_rows=300)
    assert s.rejected == 1 and rejects["row"].tolist() == [9]
    assert "debt: must be a number (got 'abc')" in rejects["reasons"].iloc[0]
    assert rejects["debt"].iloc[0] == "abc"  # CSV rejects keep the text as it was


def test_rejects_can_be_csv(tmp_path, model, ruleset, panel):
    df, bad = _bad_panel(panel.iloc[:300])
    src = tmp_path / "in.parquet"
    df.to_parquet(src, index=False)
    out = tmp_path / "out.parquet"
    s = batch.score_file(src, out, model=model, info=INFO, ruleset=ruleset,
                         rejects=tmp_path / "rejects.csv", workers=0)  # fmt: skip
    rejects = pd.read_csv(tmp_path / "rejects.csv")
    assert len(rejects) == s.rejected == len(bad)
    assert list(rejects.columns[:1]) == ["row"] and rejects.columns[-1] == "reasons"


def test_previous_period_in_an_earlier_chunk_fires_the_income_drop_rule(
    tmp_path, model, ruleset, panel
):
    base = panel.iloc[:40].copy()
    hh = "X_DROP_1"
    before = base.iloc[[0]].copy()
    before["household_id"], before["period"] = hh, "2023-06"
    before[["income_wage", "income_business", "income_property", "income_transfer"]] = [
        60000.0, 10000.0, 0.0, 2000.0,
    ]  # fmt: skip
    after = before.copy()
    after["period"] = "2024-06"
    after[["income_wage", "income_business"]] = [15000.0, 2000.0]  # net income falls by ~74%
    for order, name in (([before, base, after], "forward"), ([after, base, before], "backward")):
        df = pd.concat(order, ignore_index=True)
        src = tmp_path / f"{name}.parquet"
        df.to_parquet(src, index=False)
        s, out, _ = _score(tmp_path, src, model, ruleset, name, chunk_rows=7)
        row = out[(out["household_id"] == hh) & (out["period"] == "2024-06")].iloc[0]
        fired = [r["id"] for r in json.loads(row["rules"])]
        assert "income_drop" in fired, (name, fired)
        assert row["flagged"]
        first = out[(out["household_id"] == hh) & (out["period"] == "2023-06")].iloc[0]
        assert "income_drop" not in [r["id"] for r in json.loads(first["rules"])]
        _same(out, _reference(df, model, ruleset))


def test_ledger_gets_exactly_one_row_per_valid_record(tmp_path, model, ruleset, panel):
    from riskml.store.ledger import Ledger

    df, bad = _bad_panel(panel.iloc[:500])
    src = tmp_path / "in.parquet"
    df.to_parquet(src, index=False)
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    s, out, _ = _score(tmp_path, src, model, ruleset, ledger_url=url, caller="batch:test",
                       chunk_rows=200)  # fmt: skip
    assert s.ledger_rows == s.valid == len(df) - len(bad)
    with Ledger(url) as ledger:
        assert ledger.count() == s.valid
        frame = ledger.decisions_frame(expand_records=False)
        assert sorted(frame["decision_id"]) == sorted(out["decision_id"])
        assert set(frame["caller"]) == {"batch:test"}
        one = ledger.get(out["decision_id"].iloc[0])
        assert one["record"]["household_id"] == out["household_id"].iloc[0]
        assert one["result"]["risk_level"] == out["risk_level"].iloc[0]
        flagged_id = out.loc[out["flagged"], "decision_id"].iloc[0]
        assert ledger.get(flagged_id)["contributions"] is not None


def test_missing_columns_stop_the_run(tmp_path, model, ruleset, panel):
    src = tmp_path / "in.parquet"
    panel.drop(columns=["debt"]).iloc[:10].to_parquet(src, index=False)
    with pytest.raises(batch.BatchError, match="debt"):
        batch.score_file(src, tmp_path / "o.parquet", model=model, info=INFO, ruleset=ruleset)
    assert not (tmp_path / "o.parquet").exists()


def test_cli_scores_a_file(tmp_path, registered, panel):
    src = tmp_path / "in.parquet"
    df, bad = _bad_panel(panel.iloc[:600])
    df.to_parquet(src, index=False)
    out = tmp_path / "decisions.parquet"
    summary = tmp_path / "summary.json"
    cmd = [
        sys.executable, "-c", "from riskml.cli import app; import riskml.cli.score; app()",
        "score", str(src), "--out", str(out), "--model", "models:/household-risk@champion",
        "--workers", "0", "--chunk-rows", "250", "--summary-json", str(summary), "--quiet",
    ]  # fmt: skip
    proc = subprocess.run(
        cmd, capture_output=True, text=True, env=dict(os.environ), timeout=240, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"rows read {len(df):,}" in proc.stdout
    assert f"rejected {len(bad)}" in proc.stdout
    result = pd.read_parquet(out)
    assert len(result) == len(df) - len(bad)
    assert set(result["model_name"]) == {"household-risk"}
    assert set(result["model_version"]) == {str(registered.version)}
    facts = json.loads(summary.read_text())
    assert facts["valid"] == len(result) and facts["rejected"] == len(bad)
    assert (tmp_path / "decisions.rejects.parquet").exists()
    # a bad option is refused before anything runs
    bad_cmd = cmd[:4] + [str(src), "--out", str(tmp_path / "x.parquet"), "--explain", "some"]
    proc = subprocess.run(bad_cmd, capture_output=True, text=True, env=dict(os.environ), cwd=ROOT)
    assert proc.returncode == 2 and not (tmp_path / "x.parquet").exists()


def test_new_decision_ids_are_uuid4_hex():
    from riskml.scoring.decide import new_decision_ids

    ids = new_decision_ids(1000)
    assert len(set(ids)) == 1000
    for d in ids[:50]:
        assert uuid.UUID(hex=d).version == 4 and uuid.UUID(hex=d).hex == d


def test_the_store_keeps_a_record_until_its_last_user_and_then_frees_it():
    from riskml.scoring.batch.links import PreviousStore

    store = PreviousStore(10, width=2)
    store.put(np.array([1, 4]), np.array([[1.0, 2.0], [3.0, 4.0]]))
    store.put(np.array([1]), np.array([[9.0, 9.0]]))  # kept already: left as it is
    got = store.get(np.array([4, -1, 1, 2]))
    np.testing.assert_array_equal(got[[0, 2]], [[3.0, 4.0], [1.0, 2.0]])
    assert np.isnan(got[[1, 3]]).all()  # no lag, nothing kept
    assert store.in_use == 2
    store.release(np.array([1, 1]))  # one record used as lag 1 and lag 2: freed once
    assert store.in_use == 1 and np.isnan(store.get(np.array([1]))).all()
    store.put(np.array([7]), np.array([[5.0, 6.0]]))  # the freed slot is taken again
    assert len(store.values) == 2 and store.peak == 2
