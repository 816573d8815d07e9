"""The reference-lines table (riskml/data/tables/lines.csv) and its loader."""

from __future__ import annotations

import csv
import itertools
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from riskml import config
from riskml.data.reference import (
    COLUMNS,
    LINE_KINDS,
    Lines,
    MissingReferenceError,
    ReferenceLines,
    default_lines,
)
from riskml.data.regions import PROVINCES

YEARS = range(2019, 2027)
RICH_COASTAL = ["11", "12", "31", "32", "33", "35", "44"]  # Beijing ... Guangdong
WESTERN = ["45", "50", "51", "52", "53", "54", "61", "62", "63", "64", "65"]


@pytest.fixture(scope="module")
def raw_rows() -> list[dict[str, str]]:
    """The table as plain strings, read without the loader."""
    with open(config.REFERENCE_LINES, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames or ()) == COLUMNS
        return list(reader)


@pytest.fixture(scope="module")
def raw(raw_rows) -> dict[tuple[str, int, str], dict[str, str]]:
    return {(r["province_code"], int(r["year"]), r["line"]): r for r in raw_rows}


@pytest.fixture(scope="module")
def lines() -> ReferenceLines:
    return ReferenceLines.load()


def value(raw, code: str, year: int, line: str) -> float:
    return float(raw[(code, year, line)]["yuan_per_person_year"])


# ---------------------------------------------------------------- the data


def test_table_is_complete_without_duplicates(raw_rows, raw):
    expected = set(itertools.product(PROVINCES, YEARS, LINE_KINDS))
    assert len(raw_rows) == len(expected) == 31 * 8 * 2
    assert len(raw) == len(raw_rows), "duplicate (province, year, line)"
    assert set(raw) == expected


def test_codes_and_names_match_regions(raw_rows):
    for r in raw_rows:
        assert re.fullmatch(r"\d{2}", r["province_code"]), r
        assert r["province"] == PROVINCES[r["province_code"]][1], r


def test_basis_and_source(raw_rows):
    assert {r["basis"] for r in raw_rows} == {"published", "estimate"}
    for r in raw_rows:
        assert r["source"].strip(), f"empty source: {r}"


def test_values_are_positive_whole_yuan(raw_rows):
    for r in raw_rows:
        assert re.fullmatch(r"[1-9]\d*", r["yuan_per_person_year"]), r


def test_lines_do_not_fall_over_years(raw):
    for code, line in itertools.product(PROVINCES, LINE_KINDS):
        series = [value(raw, code, y, line) for y in YEARS]
        assert series == sorted(series), (code, line, series)


def test_published_figures_from_domain_brief(raw):
    def published(code, year, line, expected):
        row = raw[(code, year, line)]
        assert row["basis"] == "published", row
        assert float(row["yuan_per_person_year"]) == expected, row

    for code in PROVINCES:
        published(code, 2021, "monitoring", 6000)
    published("41", 2024, "monitoring", 8300)  # Henan
    published("53", 2025, "monitoring", 8700)  # Yunnan
    published("51", 2021, "dibao", 415 * 12)  # Sichuan floor
    published("31", 2021, "dibao", 1330 * 12)  # Shanghai


def test_only_province_wide_figures_are_published(raw_rows):
    published = {
        (r["province_code"], int(r["year"]), r["line"])
        for r in raw_rows
        if r["basis"] == "published"
    }
    expected = {(code, 2021, "monitoring") for code in PROVINCES} | {
        ("41", 2024, "monitoring"),
        ("53", 2025, "monitoring"),
        ("51", 2021, "dibao"),
        ("31", 2021, "dibao"),
    }
    # County figures (Yuanmou, Minhou, Dehua, Weifang, Gaobeidian) only anchor estimates.
    assert published == expected


def test_county_anchors_are_named_as_such(raw):
    yunnan_2023 = raw[("53", 2023, "monitoring")]
    assert yunnan_2023["basis"] == "estimate"
    assert "Yuanmou" in yunnan_2023["source"] and "county" in yunnan_2023["source"]
    assert "Minhou" in raw[("35", 2023, "monitoring")]["source"]
    assert "Dehua" in raw[("35", 2024, "dibao")]["source"]


def test_estimates_are_plausible(raw):
    # The national rural dibao averages (4,301 in 2018, ~6,046 in 2021, ~7,127 in 2024)
    # sit near the middle of the provincial lines.
    for year, national in [(2021, 6046), (2024, 7127)]:
        median = np.median([value(raw, c, year, "dibao") for c in PROVINCES])
        assert 0.8 * national <= median <= 1.2 * national, (year, median)
    for year in YEARS:
        coastal_dibao = min(value(raw, c, year, "dibao") for c in RICH_COASTAL)
        western_dibao = max(value(raw, c, year, "dibao") for c in WESTERN)
        assert coastal_dibao > western_dibao, year
        if year >= 2022:  # provinces set their own monitoring lines from 2022
            coastal_m = min(value(raw, c, year, "monitoring") for c in RICH_COASTAL)
            western_m = max(value(raw, c, year, "monitoring") for c in WESTERN)
            assert coastal_m > western_m, year
            for code in PROVINCES:
                assert value(raw, code, year, "monitoring") >= value(raw, code, year, "dibao"), (
                    code,
                    year,
                )
        # western provinces stay near the national monitoring figure
        for code in WESTERN:
            assert value(raw, code, year, "monitoring") <= 1.1 * value(
                raw, "41", year, "monitoring"
            )


# ---------------------------------------------------------------- the loader


def test_load_and_lookup(lines, raw):
    got = lines.lookup("41", 2024)
    basis = raw[("41", 2024, "dibao")]["basis"]  # the weaker of the two rows' bases
    assert got == Lines("41", 2024, 8300.0, value(raw, "41", 2024, "dibao"), 2024, basis)
    assert lines.lookup("53", 2025).monitoring == 8700.0
    assert lines.lookup("31", 2021).dibao == 15960.0
    assert lines.years == list(YEARS)
    for code, year in [("11", 2019), ("65", 2026), ("35", 2023)]:
        got = lines.lookup(code, year)
        assert (got.monitoring, got.dibao) == (
            value(raw, code, year, "monitoring"),
            value(raw, code, year, "dibao"),
        )


def test_lookup_normalises_codes_and_years(lines):
    assert lines.lookup(53, np.int64(2025)) == lines.lookup("53", 2025)


def test_default_lines_is_loaded_once():
    first = default_lines()
    assert first is default_lines()
    assert first.lookup("41", 2024).monitoring == 8300.0


def test_for_frame_equals_row_by_row_lookup(lines):
    rng = np.random.default_rng(0)
    n = 500
    codes = pd.Series(rng.choice(sorted(PROVINCES), n), index=np.arange(n) * 3 + 7)
    years = pd.Series(rng.integers(2019, 2027, n), index=codes.index)
    out = lines.for_frame(codes, years)
    assert list(out.columns) == ["monitoring_line", "dibao_line"]
    assert out.index.equals(codes.index)
    expected = [lines.lookup(c, y) for c, y in zip(codes, years, strict=True)]
    np.testing.assert_array_equal(out["monitoring_line"], [e.monitoring for e in expected])
    np.testing.assert_array_equal(out["dibao_line"], [e.dibao for e in expected])


def test_for_frame_accepts_int_codes_like_lookup(lines):
    out = lines.for_frame(pd.Series([53, 41]), pd.Series([2025, 2024]))
    assert out["monitoring_line"].tolist() == [8700.0, 8300.0]


def test_missing_year_or_province_raises(lines):
    with pytest.raises(MissingReferenceError, match=r"province 53 \(Yunnan\) year 2030"):
        lines.lookup("53", 2030)
    with pytest.raises(MissingReferenceError, match=r"province 99 .*year 2024"):
        lines.lookup("99", 2024)
    with pytest.raises(MissingReferenceError) as err:
        lines.for_frame(pd.Series(["41", "99", "53"]), pd.Series([2024, 2024, 2018]))
    msg = str(err.value)
    assert "province 99" in msg and "year 2024" in msg
    assert "province 53 (Yunnan) year 2018" in msg
    assert "province 41" not in msg
    assert "2019–2026" in msg


def test_missing_message_from_empty_table_names_key():
    empty = ReferenceLines(pd.DataFrame({c: [] for c in COLUMNS}), source="empty.csv")
    with pytest.raises(MissingReferenceError) as err:
        empty.lookup("53", 2024)
    assert "province 53 (Yunnan) year 2024" in str(err.value)
    assert "empty" in str(err.value)


# ---------------------------------------------------------------- a user's own table


def _user_rows() -> list[dict[str, object]]:
    rows = []
    for code, year, m, d in [("53", 2024, 8400, 6000), ("53", 2025, 8700, 6300)]:
        for line, v in [("monitoring", m), ("dibao", d)]:
            rows.append(
                {
                    "province_code": code,
                    "province": "Yunnan",
                    "year": year,
                    "line": line,
                    "yuan_per_person_year": v,
                    "basis": "published",
                    "source": "my county office",
                }
            )
    return rows


def _write(tmp_path: Path, frame: pd.DataFrame) -> Path:
    path = tmp_path / "my_lines.csv"
    frame.to_csv(path, index=False)
    return path


def test_user_table_loads(tmp_path):
    path = _write(tmp_path, pd.DataFrame(_user_rows()))
    mine = ReferenceLines.load(path)
    assert mine.source == str(path)
    assert mine.lookup("53", 2024) == Lines("53", 2024, 8400.0, 6000.0, 2024, "published")
    assert mine.years == [2024, 2025]
    with pytest.raises(MissingReferenceError, match=r"my_lines\.csv.*province 41 .*year 2024"):
        mine.lookup("41", 2024)


def test_missing_file_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        ReferenceLines.load(tmp_path / "nope.csv")


def test_user_table_bad_basis(tmp_path):
    frame = pd.DataFrame(_user_rows())
    frame.loc[1, "basis"] = "guess"
    with pytest.raises(ValueError, match=r"basis must be .*'guess'"):
        ReferenceLines.load(_write(tmp_path, frame))
    frame.loc[2, "basis"] = np.nan  # a blank cell beside a bad value: still a ValueError
    with pytest.raises(ValueError, match="basis"):
        ReferenceLines.load(_write(tmp_path, frame))


def test_user_table_missing_column(tmp_path):
    frame = pd.DataFrame(_user_rows()).drop(columns=["source"])
    with pytest.raises(ValueError, match=r"lacks column\(s\): source"):
        ReferenceLines.load(_write(tmp_path, frame))


@pytest.mark.parametrize("bad", [0, -5, "n/a"])
def test_user_table_bad_value(tmp_path, bad):
    frame = pd.DataFrame(_user_rows()).astype({"yuan_per_person_year": object})
    frame.loc[3, "yuan_per_person_year"] = bad
    with pytest.raises(
        ValueError, match=r"dibao line for province 53 year 2025 must be a positive"
    ):
        ReferenceLines.load(_write(tmp_path, frame))


def test_user_table_bad_line_kind(tmp_path):
    frame = pd.DataFrame(_user_rows())
    frame.loc[0, "line"] = "poverty"
    with pytest.raises(ValueError, match=r"unknown line kind.*poverty"):
        ReferenceLines.load(_write(tmp_path, frame))


def test_user_table_duplicate(tmp_path):
    frame = pd.DataFrame(_user_rows())
    frame = pd.concat([frame, frame.iloc[[0]]], ignore_index=True)
    with pytest.raises(ValueError, match=r"duplicate monitoring line for province 53 year 2024"):
        ReferenceLines.load(_write(tmp_path, frame))
