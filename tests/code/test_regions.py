"""Code test: the regional aggregation equals sums computed directly; reference loaders; CLI."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from riskml.model.expected import expected_count
from riskml.regions.aggregate import RegionInputError
from riskml.regions.casework import case_sums
from riskml.regions.interval import NORMAL_MIN_VARIANCE, normal_bounds
from riskml.regions.reference import (
    COUNTIES_FILE,
    ReferenceFileError,
    RegionReference,
    load_key_counties,
    load_pairing,
)
from riskml.regions.run import regional_table
from riskml.regions.synthetic import synthetic_decisions

PREFIX = {"village": 12, "township": 9, "county": 6, "prefecture": 4, "province": 2}


@pytest.fixture(scope="module")
def panel() -> pd.DataFrame:
    # small villages (exact intervals) and big ones, so that both methods appear
    small = synthetic_decisions(12_000, ("2025-05", "2025-06"), village_size=40, seed=1)
    return small.to_pandas()


@pytest.fixture(scope="module")
def table(panel) -> pd.DataFrame:
    return regional_table(panel)


def _direct(panel: pd.DataFrame, level: str) -> pd.DataFrame:
    code = panel["village_code"].str.slice(0, PREFIX[level])
    if level == "prefecture":
        code = code + "00"
    by = panel["flagged_by"].fillna("")
    frame = panel.assign(
        code=code,
        rules=by.str.contains("rules"),
        model=by.str.contains("model"),
        ill=panel["risk_types"].map(lambda r: "illness" in list(r)) & panel["flagged"],
    )
    return frame.groupby(["code", "period"]).agg(
        households=("score", "size"),
        flagged=("flagged", "sum"),
        flagged_rules=("rules", "sum"),
        flagged_model=("model", "sum"),
        expected=("score", "sum"),
        flagged_illness=("ill", "sum"),
        p=("score", list),
    )


@pytest.mark.parametrize("level", list(PREFIX))
def test_aggregates_equal_direct_sums(panel, table, level):
    direct = _direct(panel, level)
    got = table[table["level"] == level].set_index(["code", "period"]).sort_index()
    assert list(got.index) == list(direct.index)
    for col in ("households", "flagged", "flagged_rules", "flagged_model", "flagged_illness"):
        assert got[col].tolist() == direct[col].astype(int).tolist(), col
    np.testing.assert_allclose(got["expected"], direct["expected"], rtol=1e-12)
    for (code, period), row in got.iterrows():
        p = np.asarray(direct.loc[(code, period), "p"])
        var = float((p * (1 - p)).sum())
        if var < NORMAL_MIN_VARIANCE:
            ref = expected_count(p, 0.90)  # exact here (n <= 3000)
            assert row["interval"] == "exact"
            assert (row["expected_low"], row["expected_high"]) == (ref.low, ref.high)
        else:
            low, high = normal_bounds(np.array([p.sum()]), np.array([var]), np.array([len(p)]), 0.9)
            assert row["interval"] == "normal"
            assert (row["expected_low"], row["expected_high"]) == (low[0], high[0])
    assert set(got["interval"]) <= {"exact", "normal"}


def test_both_interval_methods_and_names_appear(table):
    assert set(table["interval"]) == {"exact", "normal"}
    county = table[(table["level"] == "county") & (table["code"] == "530326")].iloc[0]
    assert (county["name_zh"], county["parent_code"]) == ("会泽县", "530300")
    assert bool(county["key_national"])
    yunnan = table[(table["level"] == "province") & (table["code"] == "53")].iloc[0]
    assert yunnan["name_zh"] == "云南" and yunnan["supported_by"] == "31"


def test_change_against_the_previous_period(table):
    rows = table[table["level"] == "county"].sort_values(["code", "period"])
    first, second = rows.iloc[0], rows.iloc[1]
    assert first["code"] == second["code"] and first["period"] < second["period"]
    assert np.isnan(first["expected_change"])
    assert second["expected_change"] == pytest.approx(second["expected"] - first["expected"])
    assert second["flagged_change"] == second["flagged"] - first["flagged"]


def test_realised_against_expected_with_outcomes(panel):
    june = panel[panel["period"] == "2025-06"]
    rng = np.random.default_rng(3)
    chosen = june.sample(frac=0.5, random_state=1)
    outcomes = pd.DataFrame(
        {
            "household_id": chosen["household_id"],
            "decision_period": "2025-06",
            "at_risk": (rng.random(len(chosen)) < chosen["score"]).astype(int),
        }
    )
    table = regional_table(panel, outcomes=outcomes)
    c = chosen.assign(county=chosen["county_code"]).merge(outcomes, on="household_id")
    direct = c.groupby("county").agg(n=("at_risk", "size"), r=("at_risk", "sum"), e=("score", "sum"))  # fmt: skip
    got = table[(table["level"] == "county") & (table["period"] == "2025-06")].set_index("code")
    got = got.loc[direct.index]
    assert got["with_outcome"].tolist() == direct["n"].tolist()
    assert got["realised"].tolist() == direct["r"].tolist()
    np.testing.assert_allclose(got["expected_outcome"], direct["e"], rtol=1e-12)
    assert got["realised_in_interval"].notna().all()
    may = table[(table["level"] == "county") & (table["period"] == "2025-05")]
    assert (may["with_outcome"] == 0).all() and may["realised_in_interval"].isna().all()


def _state(village: str, **kw) -> dict:
    base = {
        "case_id": "c", "household_id": "h", "county_code": village[:6], "village_code": village,
        "status": "monitored", "opened_at": "2025-05-02T00:00:00.000000Z", "assigned_at": None,
        "visited_at": None, "checked_at": None, "notice_at": None,
        "decided_at": "2025-05-12T00:00:00.000000Z", "plan": [{"measure": "x"}],
        "last_visit_at": "2025-06-20T00:00:00.000000Z", "proposed_at": None,
        "elimination_township_at": None, "eliminated_at": None,
        "household_type": "marginal", "risk_types": ["illness"],
    }  # fmt: skip
    return {**base, **kw}


def test_case_counts_by_village_and_period(panel):
    from riskml.cases.procedure import load

    v = panel["village_code"].iloc[0]
    states = [
        _state(v),
        _state(v, household_type="sudden_hardship", risk_types=["disaster", "illness"],
               decided_at="2025-06-03T00:00:00.000000Z", opened_at="2025-05-30T00:00:00.000000Z"),
        _state(v, status="eliminated", eliminated_at="2025-06-15T00:00:00.000000Z"),
        _state(v, status="lead", household_type=None, decided_at=None, risk_types=[]),
    ]  # fmt: skip
    proc = load()
    sums = case_sums(states, ["2025-05", "2025-06"], proc, now="2025-06-30T00:00:00.000000Z")
    may = sums[sums["period"] == "2025-05"].iloc[0]
    june = sums[sums["period"] == "2025-06"].iloc[0]
    assert (may["monitored"], may["confirmed"], may["eliminated"]) == (2, 2, 0)
    assert (june["monitored"], june["confirmed"], june["eliminated"]) == (2, 1, 1)
    assert june["monitored_sudden_hardship"] == 1 and june["monitored_rt_illness"] == 2
    assert june["confirm_days"] == pytest.approx(4.0) and may["confirm_days"] == pytest.approx(20.0)
    assert may["open_cases"] == 0 and june["open_cases"] == 3  # only in the latest period
    table = regional_table(panel, states=states, procedure=proc, now="2025-06-30T00:00:00.000000Z")
    county = table[(table["level"] == "county") & (table["code"] == v[:6])].set_index("period")
    assert county.loc["2025-06", "monitored"] == 2 and county.loc["2025-06", "eliminated"] == 1
    assert county.loc["2025-05", "days_to_confirm"] == pytest.approx(10.0)
    assert pd.isna(county.loc["2025-05", "overdue"]) and county.loc["2025-06", "overdue"] >= 0


def test_bad_decision_rows_are_named(panel):
    bad = panel.copy()
    bad.loc[5, "village_code"] = "9" * 12
    bad.loc[9, "score"] = 1.5
    with pytest.raises(RegionInputError) as err:
        regional_table(bad)
    problems = {(p["row"], p["field"]) for p in err.value.problems}
    assert problems == {(5, "village_code"), (9, "score")}
    assert "row 5, field 'village_code'" in str(err.value)
    assert err.value.total == 2


def test_shipped_reference_loads_and_names_simulated_counties():
    ref = RegionReference.load()
    counties = pd.read_csv(COUNTIES_FILE, dtype=str)
    assert set(ref.national_key) <= set(counties["county_code"])
    for code, prefecture in zip(counties["county_code"], counties["prefecture_zh"], strict=True):
        assert ref.name("county", code)[0]
        assert ref.name("prefecture", code[:4] + "00")[0] == prefecture
    assert ("44", "52") in ref.pairing and "11" in ref.supported_by("15")


def test_key_county_loader_names_row_and_field(tmp_path):
    path = tmp_path / "keys.csv"
    path.write_text(
        "county_code,name_zh,province_code,designation\n"
        "530326,会泽县,53,national_2021\n"
        "53032,短,53,x\n"
        "530326,会泽县,53,national_2021\n"
        "520524,织金县,53,\n",
        encoding="utf-8",
    )
    with pytest.raises(ReferenceFileError) as err:
        load_key_counties(path)
    got = {(p["row"], p["field"]) for p in err.value.problems}
    assert got == {(2, "county_code"), (3, "county_code"), (4, "province_code"), (4, "designation")}  # fmt: skip
    assert "row 2 (line 3), field 'county_code'" in str(err.value)
    (tmp_path / "nocol.csv").write_text("county_code,name_zh\n530326,x\n", encoding="utf-8")
    with pytest.raises(ReferenceFileError, match="province_code"):
        load_key_counties(tmp_path / "nocol.csv")


def test_pairing_loader_names_row_and_field(tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_text(
        "supporting_province,supported_province\n31,53\n31,53\n99,52\n44,44\n", encoding="utf-8"
    )
    with pytest.raises(ReferenceFileError) as err:
        load_pairing(path)
    got = {(p["row"], p["field"]) for p in err.value.problems}
    assert got == {(2, "supported_province"), (3, "supporting_province"), (4, "supported_province")}  # fmt: skip


def test_cli_writes_the_table(panel, tmp_path):
    from typer.testing import CliRunner

    from riskml.cli.app import app

    src = tmp_path / "scored.parquet"
    pa.Table.from_pandas(panel, preserve_index=False).to_pandas().to_parquet(src, index=False)
    out = tmp_path / "regions.csv"
    res = CliRunner().invoke(app, ["regions", str(src), "--out", str(out), "--no-cases"])
    assert res.exit_code == 0, res.output
    written = pd.read_csv(out, dtype={"code": str})
    assert set(written["level"]) == set(PREFIX)
    assert "H1" not in res.output and "county" in res.output
    bad = tmp_path / "bad.csv"
    bad.write_text("supporting_province,supported_province\n31,99\n", encoding="utf-8")
    res = CliRunner().invoke(
        app, ["regions", str(src), "--out", str(out), "--no-cases", "--pairing", str(bad)]
    )
    assert res.exit_code == 1 and "row 1 (line 2), field 'supported_province'" in res.output


@pytest.mark.slow
def test_spark_job_equals_the_local_engine(panel, table, tmp_path):
    pytest.importorskip("pyspark")
    from riskml.regions.run import spark_regional_table
    from riskml.scoring.spark import spark_session

    src = tmp_path / "scored.parquet"
    panel.to_parquet(src, index=False, row_group_size=1000)
    on_spark = spark_regional_table(spark_session("local[2]"), [src], partitions=3)
    pd.testing.assert_frame_equal(on_spark, table, check_exact=False, rtol=1e-12)


def test_a_village_with_cases_and_no_decisions_gets_a_row(panel):
    from riskml.cases.procedure import load

    other = "530326099201"  # a village of a simulated county with no decision in the panel
    assert other not in set(panel["village_code"])
    states = [_state(other)]
    now = "2025-06-30T00:00:00.000000Z"
    table = regional_table(panel, states=states, procedure=load(), now=now)
    row = table[(table["code"] == other) & (table["period"] == "2025-06")].iloc[0]
    assert (row["households"], row["monitored"], row["expected_low"], row["expected_high"]) == (0, 1, 0, 0)  # fmt: skip
    township = table[(table["code"] == other[:9]) & (table["period"] == "2025-06")].iloc[0]
    assert township["monitored"] == 1
