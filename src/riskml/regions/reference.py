"""Regional reference data: names of areas, key assistance counties, East-West pairing.

Codes follow GB/T 2260 and the statistical village codes: a village (grid) has 12 digits,
its township the first 9, its county the first 6, its prefecture the first 4 (+ ``00``) and
its province the first 2. Names come from the shipped tables in ``riskml/data/tables``
(``counties.csv``, ``prefectures.csv``, the 31 provinces of ``riskml.data.regions``); an area
without a name keeps its code. Townships and villages have no shipped names.

Key counties and the pairing are lists an operator may replace: ``load_key_counties`` and
``load_pairing`` read a CSV and refuse it whole (``ReferenceFileError``), naming every bad row
and field, when a row is not acceptable.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from riskml.config import package_file
from riskml.data.regions import PROVINCES

LEVELS = ("province", "prefecture", "county", "township", "village")
# digits of a village code that name the area of each level
DIGITS = {"province": 2, "prefecture": 4, "county": 6, "township": 9, "village": 12}
PARENT = {"village": "township", "township": "county", "county": "prefecture",
          "prefecture": "province", "province": None}  # fmt: skip

TABLES = "data/tables"
COUNTIES_FILE = package_file(f"{TABLES}/counties.csv")
PREFECTURES_FILE = package_file(f"{TABLES}/prefectures.csv")
NATIONAL_KEY_FILE = package_file(f"{TABLES}/national_key_counties.csv")
PROVINCIAL_KEY_FILE = package_file(f"{TABLES}/provincial_key_counties.csv")
PAIRING_FILE = package_file(f"{TABLES}/east_west_pairs.csv")

KEY_COLUMNS = ("county_code", "name_zh", "province_code", "designation")
PAIR_COLUMNS = ("supporting_province", "supported_province")


def area_code(village_code: str, level: str) -> str:
    """The code of the area of ``level`` a 12-digit village code lies in: provinces keep 2
    digits (as ``province_code`` everywhere in riskml), prefectures 6 as in GB/T 2260
    (``5323`` -> ``532300``)."""
    digits = village_code[: DIGITS[level]]
    return digits + "00" if level == "prefecture" else digits


class ReferenceFileError(ValueError):
    """A reference file that cannot be used; ``problems``: (row, field, problem), row 1-based."""

    def __init__(self, path: str | Path, problems: list[dict[str, Any]]):
        self.path = str(path)
        self.problems = problems
        shown = "; ".join(
            f"row {p['row']} (line {p['row'] + 1}), field {p['field']!r}: {p['problem']}"
            if p["row"]
            else f"field {p['field']!r}: {p['problem']}"
            for p in problems[:5]
        )
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        super().__init__(f"{Path(path).name}: {len(problems)} problem(s): {shown}{more}")


def _read_rows(path: str | Path, required: tuple[str, ...]) -> list[dict[str, str]]:
    with open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise ReferenceFileError(
                path, [{"row": 0, "field": c, "problem": "missing column"} for c in missing]
            )
        return [{k: (v or "").strip() for k, v in r.items() if k is not None} for r in reader]


def _digits(value: str, n: int) -> bool:
    return len(value) == n and value.isascii() and value.isdigit()


@dataclass(frozen=True)
class KeyCounty:
    county_code: str
    name_zh: str
    province_code: str
    designation: str
    source: str = ""


def load_key_counties(path: str | Path) -> dict[str, KeyCounty]:
    """Key counties from a CSV (``county_code, name_zh, province_code, designation[, source]``).

    Refused whole when a county code is not 6 digits, names no known province, disagrees with
    ``province_code``, appears twice, or a name or designation is empty.
    """
    rows = _read_rows(path, KEY_COLUMNS)
    problems: list[dict[str, Any]] = []
    out: dict[str, KeyCounty] = {}
    for i, r in enumerate(rows, start=1):
        code, prov = r["county_code"], r["province_code"]
        if not _digits(code, 6):
            problems.append({"row": i, "field": "county_code", "problem": "must be 6 digits"})
        elif code[:2] not in PROVINCES:
            problems.append(
                {"row": i, "field": "county_code", "problem": f"no province {code[:2]!r}"}
            )
        elif code in out:
            problems.append({"row": i, "field": "county_code", "problem": "listed twice"})
        if prov != code[:2]:
            problems.append(
                {
                    "row": i,
                    "field": "province_code",
                    "problem": "must be the county code's first 2 digits",
                }
            )
        for name in ("name_zh", "designation"):
            if not r[name]:
                problems.append({"row": i, "field": name, "problem": "empty"})
        if not any(p["row"] == i for p in problems):
            out[code] = KeyCounty(code, r["name_zh"], prov, r["designation"], r.get("source", ""))
    if problems:
        raise ReferenceFileError(path, problems)
    return out


def load_pairing(path: str | Path) -> list[tuple[str, str]]:
    """East-West pairs (``supporting_province, supported_province``, 2-digit codes).

    Refused whole when a code is not a known province, a province supports itself or a pair
    appears twice.
    """
    rows = _read_rows(path, PAIR_COLUMNS)
    problems: list[dict[str, Any]] = []
    pairs: list[tuple[str, str]] = []
    for i, r in enumerate(rows, start=1):
        bad = False
        for name in PAIR_COLUMNS:
            if r[name] not in PROVINCES:
                problems.append({"row": i, "field": name, "problem": f"no province {r[name]!r}"})
                bad = True
        pair = (r["supporting_province"], r["supported_province"])
        if not bad and pair[0] == pair[1]:
            problems.append(
                {
                    "row": i,
                    "field": "supported_province",
                    "problem": "a province cannot support itself",
                }
            )
        elif not bad and pair in pairs:
            problems.append(
                {"row": i, "field": "supported_province", "problem": "pair listed twice"}
            )
        elif not bad:
            pairs.append(pair)
    if problems:
        raise ReferenceFileError(path, problems)
    return pairs


def _names(path: Path, code_col: str) -> dict[str, tuple[str, str]]:
    with open(path, encoding="utf-8", newline="") as fh:
        return {r[code_col]: (r["name_zh"], r["name_en"]) for r in csv.DictReader(fh)}


@dataclass
class RegionReference:
    """Names of areas and the key-county and pairing lists the aggregation marks."""

    counties: dict[str, tuple[str, str]] = field(default_factory=dict)
    prefectures: dict[str, tuple[str, str]] = field(default_factory=dict)
    national_key: dict[str, KeyCounty] = field(default_factory=dict)
    provincial_key: dict[str, KeyCounty] = field(default_factory=dict)
    pairing: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def load(
        cls,
        national_key: str | Path | None = None,
        provincial_key: str | Path | None = None,
        pairing: str | Path | None = None,
    ) -> RegionReference:
        """The shipped tables; each list replaceable by an operator's file."""
        return cls(
            counties=_names(COUNTIES_FILE, "county_code"),
            prefectures=_names(PREFECTURES_FILE, "prefecture_code"),
            national_key=load_key_counties(national_key or NATIONAL_KEY_FILE),
            provincial_key=load_key_counties(provincial_key or PROVINCIAL_KEY_FILE),
            pairing=load_pairing(pairing or PAIRING_FILE),
        )

    def name(self, level: str, code: str) -> tuple[str, str]:
        """(Chinese, English) name of an area; ("", "") when the tables do not name it."""
        if level == "province":
            return PROVINCES.get(code[:2], ("", ""))
        if level == "prefecture":
            return self.prefectures.get(code, ("", ""))
        if level == "county":
            return self.counties.get(code, ("", ""))
        return ("", "")

    def supported_by(self, province_code: str) -> list[str]:
        """The provinces that support ``province_code`` in East-West cooperation."""
        return sorted(a for a, b in self.pairing if b == province_code[:2])
