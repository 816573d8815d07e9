"""Reference lines as operated data: the carry-forward policy, the operated table, `riskml lines`,
and the same policy in training, batch scoring and the service (in-process)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from riskml.data import operated_lines, schema
from riskml.data.reference import (
    BASES,
    MissingReferenceError,
    ReferenceLines,
    default_lines,
    shipped_lines,
)
from riskml.data.regions import PROVINCES
from riskml.policy.rules import RuleSet
from riskml.scoring import batch
from riskml.scoring.decide import ModelInfo
from riskml.training.train import TrainingDataError, check_lines, provisional_lines


@pytest.fixture()
def operated_file(tmp_path, monkeypatch) -> Path:
    path = tmp_path / "reference-lines.csv"
    monkeypatch.setenv("RISKML_OPERATED_LINES_FILE", str(path))
    return path


def _rows(*specs: tuple[str, int, str, float, str]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"province_code": p, "year": y, "line": line, "yuan_per_person_year": v,
             "basis": b, "source": "a notice"}
            for p, y, line, v, b in specs
        ]
    )  # fmt: skip


# ---------------------------------------------------------------- the carry-forward policy
def test_a_missing_year_takes_the_previous_years_lines_as_provisional():
    lines = shipped_lines()
    got = lines.lookup("53", 2027)
    last = lines.lookup("53", 2026)
    assert (got.monitoring, got.dibao) == (last.monitoring, last.dibao)
    assert (got.line_year, got.basis) == (2026, "provisional")
    with pytest.raises(MissingReferenceError, match=r"province 53 \(Yunnan\) year 2028"):
        lines.lookup("53", 2028)
    with pytest.raises(MissingReferenceError, match="year 2018"):
        lines.lookup("53", 2018)  # nothing is carried backwards


@pytest.mark.parametrize(
    ("months", "covered"),
    [
        (12, {"2026-06": 2026, "2027-01": 2026, "2027-12": 2026, "2028-01": None}),
        (6, {"2027-06": 2026, "2027-07": None}),
        (18, {"2028-06": 2026, "2028-07": None}),
        (0, {"2026-12": 2026, "2027-01": None}),
    ],
)
def test_the_gap_is_counted_in_months_after_the_lines_year(months, covered):
    lines = ReferenceLines(shipped_lines().table, carry_forward_months=months)
    periods = list(covered)
    res = lines.resolve(
        np.full(len(periods), 53), np.array([int(p[:4]) * 12 + int(p[5:]) - 1 for p in periods])
    )
    for i, p in enumerate(periods):
        expected = covered[p]
        assert bool(res.covered[i]) is (expected is not None), p
        if expected is not None:
            assert res.line_year[i] == expected
            assert res.basis[i] == ("provisional" if int(p[:4]) != expected else "estimate")
        else:
            assert np.isnan(res.monitoring[i]) and res.basis[i] is None


def test_the_policy_is_read_from_the_environment(monkeypatch):
    monkeypatch.setenv("RISKML_LINES_CARRY_MONTHS", "0")
    assert ReferenceLines(shipped_lines().table).carry_forward_months == 0
    monkeypatch.setenv("RISKML_LINES_CARRY_MONTHS", "1２")
    with pytest.raises(ValueError, match="RISKML_LINES_CARRY_MONTHS"):
        ReferenceLines(shipped_lines().table)


def test_resolve_agrees_with_lookup_row_by_row():
    lines = shipped_lines()
    rng = np.random.default_rng(3)
    provinces = rng.choice([int(p) for p in PROVINCES] + [99], 400)
    months = rng.integers(2017 * 12, 2029 * 12, 400)
    res = lines.resolve(provinces, months)
    for i in range(400):
        code, year = f"{provinces[i]:02d}", int(months[i]) // 12
        try:
            want = lines.lookup(code, year)  # December: the strictest month; same with gap 12
        except MissingReferenceError:
            assert not res.covered[i]
            continue
        assert res.covered[i]
        assert (res.monitoring[i], res.dibao[i], res.line_year[i], res.basis[i]) == (
            want.monitoring, want.dibao, want.line_year, want.basis,
        )  # fmt: skip


def test_a_models_own_lines_win_for_the_years_it_carries():
    shipped = shipped_lines()
    own = ReferenceLines(shipped.table[shipped.table["year"] <= 2024], source="model")
    operated = ReferenceLines(
        pd.concat(
            [
                shipped.table.assign(
                    yuan_per_person_year=shipped.table["yuan_per_person_year"] + 1
                ),
                _rows(
                    ("53", 2027, "monitoring", 9500, "announced"),
                    ("53", 2027, "dibao", 7400, "announced"),
                ).assign(province="Yunnan"),
            ],
            ignore_index=True,
        ),
        source="operated",
    )
    both = own.extended_by(operated)
    assert both.lookup("53", 2024).monitoring == shipped.lookup("53", 2024).monitoring
    assert both.lookup("53", 2025).monitoring == shipped.lookup("53", 2025).monitoring + 1
    assert both.lookup("53", 2027).basis == "announced"
    assert both.lookup("41", 2027).basis == "provisional"


# ---------------------------------------------------------------- the operated table
def test_entered_lines_are_kept_as_history_and_the_latest_wins(operated_file):
    assert default_lines().lookup("53", 2027).basis == "provisional"
    operated_lines.add_rows(
        _rows(
            ("53", 2027, "monitoring", 9300, "announced"), ("53", 2027, "dibao", 7300, "announced")
        ),
        "tester",
    )
    assert default_lines().lookup("53", 2027).monitoring == 9300  # re-read: the file changed
    operated_lines.add_rows(_rows(("53", 2027, "monitoring", 9400, "published")), "tester")
    got = default_lines().lookup("53", 2027)
    assert (got.monitoring, got.dibao, got.basis) == (9400, 7300, "announced")  # weaker basis
    history = operated_lines.history()
    assert history["yuan_per_person_year"].tolist() == ["9300", "7300", "9400"]
    assert (
        set(history["entered_by"]) == {"tester"} and history["entered_at"].str.endswith("Z").all()
    )
    # a shipped year corrected by an operator
    operated_lines.add_rows(_rows(("41", 2024, "dibao", 7000, "published")), "tester")
    assert default_lines().lookup("41", 2024).dibao == 7000
    assert shipped_lines().lookup("41", 2024).dibao != 7000


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        (("5３", 2027, "monitoring", 9000, "announced"), "field 'province_code': must be two digits"),
        (("99", 2027, "monitoring", 9000, "announced"), "unknown province '99'"),
        (("53", 1999, "monitoring", 9000, "announced"), "field 'year'"),
        (("53", 2027, "poverty", 9000, "announced"), "field 'line'"),
        (("53", 2027, "monitoring", -1, "announced"), "field 'yuan_per_person_year'"),
        (("53", 2027, "monitoring", float("nan"), "announced"), "field 'yuan_per_person_year'"),
        (("53", 2027, "monitoring", 9000, "guess"), "field 'basis'"),
        (("53", 2027, "monitoring", 5000, "announced"), "dibao line (7,158) must be below the monitoring line (5,000)"),
    ],
)  # fmt: skip
def test_bad_entries_are_refused_naming_row_and_field(operated_file, spec, says):
    frame = _rows(("53", 2027, "dibao", 7158, "announced"), spec)  # a good row, then the bad one
    with pytest.raises(operated_lines.LinesError) as err:
        operated_lines.add_rows(frame, "tester")
    assert says in str(err.value) and "row 2" in str(err.value)
    assert not operated_file.exists(), "nothing of a refused entry is stored"


def test_an_empty_source_and_a_duplicate_row_are_refused(operated_file):
    frame = _rows(
        ("53", 2027, "monitoring", 9000, "announced"), ("53", 2027, "monitoring", 9100, "announced")
    )
    frame.loc[0, "source"] = " "
    with pytest.raises(operated_lines.LinesError) as err:
        operated_lines.add_rows(frame, "tester")
    assert "row 1, field 'source'" in str(err.value)
    assert "row 2: the monitoring line for province 53 year 2027 is also in row 1" in str(err.value)


# ---------------------------------------------------------------- riskml lines
def test_the_lines_commands(operated_file, tmp_path):
    from riskml.cli import app

    cli = CliRunner()
    assert cli.invoke(app, ["lines", "check", "--year", "2027"]).exit_code == 0
    bad = cli.invoke(app, ["lines", "check", "--year", "2028"])
    assert bad.exit_code == 1 and "31 province(s) have no line in force" in bad.output
    add = cli.invoke(
        app,
        ["lines", "add", "--province", "53", "--year", "2028", "--monitoring", "9800",
         "--dibao", "7700", "--basis", "announced", "--source", "Yunnan notice", "--by", "op"],
    )  # fmt: skip
    assert add.exit_code == 0, add.output
    listed = cli.invoke(app, ["lines", "list", "--province", "53", "--year", "2028"])
    assert "9,800" in listed.output and "operated" in listed.output
    refused = cli.invoke(
        app, ["lines", "add", "--province", "53", "--year", "2028", "--dibao", "9900",
              "--basis", "announced", "--source", "x"],
    )  # fmt: skip
    assert refused.exit_code == 1 and "must be below the monitoring line" in refused.output
    assert "Traceback" not in refused.output
    file = tmp_path / "new.csv"
    _rows(
        ("41", 2028, "monitoring", 9000, "published"), ("41", 2028, "dibao", 7000, "published")
    ).to_csv(file, index=False)
    imported = cli.invoke(app, ["lines", "import", str(file), "--by", "op"])
    assert imported.exit_code == 0 and "entered 2 line(s)" in imported.output
    history = cli.invoke(app, ["lines", "list", "--history"])
    assert history.output.count("op") >= 4
    missing = cli.invoke(app, ["lines", "import", str(tmp_path / "nope.csv")])
    assert missing.exit_code == 2 and "no such file" in missing.output


# ---------------------------------------------------------------- the same policy everywhere
def _shifted(panel: pd.DataFrame, years: int) -> pd.DataFrame:
    out = panel.copy()
    out["period"] = [f"{int(p[:4]) + years}{p[4:]}" for p in out["period"]]
    return out


def test_training_lists_every_missing_pair_with_its_command(sample_panel):
    early = schema.coerce_frame(_shifted(sample_panel, -1))
    with pytest.raises(TrainingDataError) as err:
        check_lines(early, default_lines())
    msg = str(err.value)
    provinces = sorted({c[:2] for c in sample_panel["county_code"]})
    for p in provinces:
        assert f"riskml lines add --province {p} --year 2018" in msg
    late = schema.coerce_frame(_shifted(sample_panel, 2))  # last wave 2027-06
    check_lines(late, default_lines())
    assert set(provisional_lines(late, default_lines())) == {f"{p}/2027 <- 2026" for p in provinces}


def test_batch_rejects_records_outside_the_policy_and_says_which_line_it_used(
    trained, sample_panel, tmp_path, operated_file
):
    rows = sample_panel[sample_panel["period"] == "2025-06"].head(30).copy()
    rows = pd.concat(
        [rows, rows.head(5).assign(period="2027-01"), rows.head(4).assign(period="2030-06")],
        ignore_index=True,
    )
    src = tmp_path / "in.parquet"
    rows.drop(columns=[c for c in rows.columns if c not in schema.FIELD_NAMES]).to_parquet(src)
    out, rej = tmp_path / "out.parquet", tmp_path / "rej.parquet"
    summary = batch.score_file(
        src, out, model=trained.model, info=ModelInfo("m", "1"), ruleset=RuleSet.load(),
        rejects=rej,
    )  # fmt: skip
    assert (summary.valid, summary.rejected) == (35, 4)
    rejects = pd.read_parquet(rej)
    assert rejects["row"].tolist() == [35, 36, 37, 38]
    assert rejects["reasons"].str.contains("period: no reference line for province").all()
    scored = pd.read_parquet(out)
    got = scored.set_index(["household_id", "period"])[["line_year", "line_basis"]]
    assert (got.xs("2027-01", level="period")["line_basis"] == "provisional").all()
    assert (got.xs("2027-01", level="period")["line_year"] == 2026).all()
    assert set(got.xs("2025-06", level="period")["line_basis"]) <= set(BASES) - {"provisional"}
