"""Code tests: the real `riskml` command in a subprocess (validate round trip, schema, promote)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
RISKML = [str(Path(sys.executable).parent / "riskml")]


def run(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([*RISKML, *args], capture_output=True, text=True, timeout=timeout)


def test_simulate_then_validate_round_trips_cleanly(tmp_path):
    out = tmp_path / "panel.parquet"
    r = run(
        "simulate",
        "--households",
        "300",
        "--years",
        "3",
        "--seed",
        "5",
        "--out",
        str(out),
        "--quiet",
    )
    assert r.returncode == 0, r.stderr
    r = run("validate", str(out))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "all valid" in r.stdout


def test_validate_reports_each_broken_row_and_field(tmp_path, sample_panel):
    df = sample_panel.head(50).copy()
    df["head_age"] = df["head_age"].astype("float64")
    df.loc[df.index[3], "head_age"] = 12
    df.loc[df.index[7], "labor_count"] = 99
    df["village_code"] = df["village_code"].astype(object)
    df.loc[df.index[9], "village_code"] = "999999000000"
    bad = tmp_path / "bad.csv"
    df.to_csv(bad, index=False)
    rejects = tmp_path / "rejects.csv"
    r = run("validate", str(bad), "--rejects", str(rejects))
    assert r.returncode == 1
    assert "row 3" in r.stdout and "'head_age'" in r.stdout
    assert "row 7" in r.stdout and "'labor_count'" in r.stdout
    assert "row 9" in r.stdout and "'village_code'" in r.stdout
    rej = pd.read_csv(rejects, dtype=str)
    assert rej["row"].astype(int).tolist() == [3, 7, 9]
    assert "head_age" in rej.iloc[0]["reasons"]


def test_validate_names_a_missing_column(tmp_path, sample_panel):
    path = tmp_path / "nodebt.parquet"
    sample_panel.head(5).drop(columns=["debt"]).to_parquet(path)
    r = run("validate", str(path))
    assert r.returncode == 1 and "debt" in (r.stdout + r.stderr)


def test_schema_prints_the_contract():
    r = run("schema")
    assert r.returncode == 0 and "| household_id | string | no |" in r.stdout
    assert r.stdout == (ROOT / "docs" / "contract.md").read_text(encoding="utf-8")


def test_a_bad_csv_cell_rejects_its_row_only(tmp_path, sample_panel):
    """The issue's case: 20 records, one `abc` in income_wage: 1 invalid record, not 20."""
    path = tmp_path / "twenty.csv"
    sample_panel.head(20).to_csv(path, index=False)
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    cells = lines[8].split(",")
    cells[header.index("income_wage")] = "abc"
    lines[8] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    rejects = tmp_path / "rejects.parquet"
    r = run("validate", str(path), "--rejects", str(rejects))
    assert r.returncode == 1, r.stdout + r.stderr
    assert "20 records, 1 invalid, 1 problem(s)" in r.stdout
    assert "row 7" in r.stdout and "must be a number (got 'abc')" in r.stdout
    rej = pd.read_parquet(rejects)
    assert rej["row"].tolist() == [7] and rej["income_wage"].tolist() == ["abc"]


def _file_errors(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """Each kind of unusable input file, with words its one-line error must hold."""
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    not_parquet = tmp_path / "broken.parquet"
    not_parquet.write_text("this is not parquet\n")
    text = tmp_path / "records.txt"
    text.write_text("household_id\n")
    return {
        "missing file": (tmp_path / "nowhere.parquet", "no such file"),
        "unknown suffix": (text, "unknown file type '.txt'"),
        "unreadable parquet": (not_parquet, "not a readable Parquet file"),
        "empty csv": (empty, "empty CSV file"),
    }


COMMANDS = {
    "validate": lambda f, tmp: ["validate", str(f)],
    "score": lambda f, tmp: ["score", str(f), "--out", str(tmp / "out.parquet"), "--quiet"],
    "train": lambda f, tmp: ["train", "--data", str(f), "--config", str(CONFIG)],
    "evaluate": lambda f, tmp: ["evaluate", "--data", str(f), "--config", str(CONFIG)],
    "promote": lambda f, tmp: ["promote", "--data", str(f), "--config", str(CONFIG)],
}
CONFIG = ROOT / "training" / "default.yaml"


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_file_errors_are_one_line_and_exit_2(tmp_path, command):
    from typer.testing import CliRunner

    from riskml.cli import app

    for kind, (path, words) in _file_errors(tmp_path).items():
        res = CliRunner().invoke(app, COMMANDS[command](path, tmp_path))
        assert isinstance(res.exception, SystemExit), f"{command}, {kind}: {res.exception!r}"
        assert res.exit_code == 2, f"{command}, {kind}: {res.output}"
        err = res.stderr.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: "), f"{command}, {kind}: {err}"
        assert words in err[0] and "Traceback" not in res.output, f"{command}, {kind}: {err}"
    assert not (tmp_path / "out.parquet").exists()


def test_a_file_error_from_the_real_command_has_no_traceback(tmp_path):
    for kind, (path, words) in _file_errors(tmp_path).items():
        r = run("validate", str(path))
        assert r.returncode == 2, kind
        assert r.stderr.strip().splitlines() == [r.stderr.strip()], kind
        assert words in r.stderr and "Traceback" not in r.stderr, (kind, r.stderr)


def test_other_file_options_fail_in_one_line(tmp_path):
    from typer.testing import CliRunner

    from riskml.cli import app

    nowhere = str(tmp_path / "nowhere")
    cases = [
        ["train", "--data", str(ROOT / "data" / "sample" / "panel.parquet"), "--config", nowhere + ".yaml"],
        ["simulate", "-y", "1", "-s", "1", "-o", str(tmp_path / "p.parquet"), "--lines", nowhere + ".csv"],
        ["rules", "check", nowhere + ".yaml"],
        ["rules", "explain", "-p", "53", "-d", "2024-06", "--file", nowhere + ".yaml"],
        ["validate", str(ROOT / "data" / "sample" / "panel.parquet"), "--rejects", nowhere + ".txt"],
    ]  # fmt: skip
    for args in cases:
        res = CliRunner().invoke(app, args)
        assert isinstance(res.exception, SystemExit), f"{args}: {res.exception!r}"
        assert res.exit_code == 2, f"{args}: {res.output}"
        err = res.stderr.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: "), f"{args}: {err}"


def test_invalid_records_stop_training_in_one_line_and_exit_1(tmp_path, sample_panel):
    path = tmp_path / "bad.parquet"
    df = sample_panel.head(200).copy()
    df["head_age"] = df["head_age"].astype("float64")
    df.loc[df.index[4], "head_age"] = 3
    df.to_parquet(path, index=False)
    r = run("train", "--data", str(path), "--config", str(CONFIG), "--no-register")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    first = r.stderr.strip().splitlines()[0]
    assert first.startswith("error: cannot train: 1 problem(s)") and "riskml validate" in first
