"""Code tests: the real `riskml` command in a subprocess (validate round trip, schema, promote)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd

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
