"""Reference lines: the monitoring line and the rural dibao line by province and year.

Two tables, one lookup:

- the **shipped** table (``riskml/data/tables/lines.csv``, or ``$RISKML_LINES_FILE``):
  one row per province, year and line, each with its basis and source;
- the **operated** table (``riskml.data.operated_lines``, in the state folder): the
  lines an operator adds with ``riskml lines add|import``, kept as history; for each
  (province, year, line) the latest entered row wins over the shipped one.

A year without a line is a policy, not a crash (``carry_forward_months``): the latest
earlier year's lines are carried forward, marked ``provisional``, for at most that
many months after that year ends (default 12; 0 refuses). Before a province's first
year, or past the gap, a record has no line: ``resolve`` says so row by row and
``line_arrays`` raises ``MissingReferenceError`` naming every missing (province, year)
with the command that adds it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from riskml import config
from riskml.data.regions import PROVINCES

LINE_KINDS = ("monitoring", "dibao")
COLUMNS = ("province_code", "province", "year", "line", "yuan_per_person_year", "basis", "source")
# strongest first: a pair of lines takes the weaker basis of its two rows
BASES = ("published", "announced", "estimate", "provisional")
DEFAULT_CARRY_FORWARD_MONTHS = 12


def carry_forward_policy() -> int:
    """The carry-forward policy in force: ``$RISKML_LINES_CARRY_MONTHS`` or 12 (0: refuse)."""
    raw = os.environ.get("RISKML_LINES_CARRY_MONTHS", "").strip()
    if not raw:
        return DEFAULT_CARRY_FORWARD_MONTHS
    if not raw.isascii() or not raw.isdigit() or int(raw) > 120:
        raise ValueError(
            f"RISKML_LINES_CARRY_MONTHS must be a whole number of months from 0 to 120, got {raw!r}"
        )
    return int(raw)


def add_command(province_code: str, year: int) -> str:
    """The command an operator runs to add the lines of one province and year."""
    return (
        f"riskml lines add --province {province_code} --year {year} "
        "--monitoring YUAN --dibao YUAN --basis announced --source TEXT"
    )


class MissingReferenceError(LookupError):
    """No reference line (nor one carried forward) for a province and year."""

    def __init__(self, message: str, missing: list[tuple[str, int]] | None = None):
        super().__init__(message)
        self.missing = missing or []


@dataclass(frozen=True)
class Lines:
    """The lines in force for one province and year (yuan per person per year).

    ``line_year`` is the year whose lines these are (earlier than ``year`` when
    carried forward); ``basis`` the weaker basis of the two rows, or
    ``provisional`` when carried forward.
    """

    province_code: str
    year: int
    monitoring: float
    dibao: float
    line_year: int | None = None
    basis: str | None = None


@dataclass(frozen=True)
class Resolution:
    """The lines of each record: values, the year they are of, their basis, and coverage."""

    monitoring: np.ndarray  # float64, NaN where not covered
    dibao: np.ndarray
    line_year: np.ndarray  # int64, 0 where not covered
    basis: list[str | None]
    covered: np.ndarray  # bool

    @property
    def uncovered_rows(self) -> np.ndarray:
        return np.flatnonzero(~self.covered)


class ReferenceLines:
    """Lookup of monitoring and dibao lines by province code and year, with the carry-forward policy."""

    def __init__(
        self,
        table: pd.DataFrame,
        source: str = "<frame>",
        carry_forward_months: int | None = None,
    ):
        missing = [c for c in COLUMNS if c not in table.columns]
        if missing:
            raise ValueError(f"reference table {source} lacks column(s): {', '.join(missing)}")
        t = table[list(COLUMNS)].copy()
        t["province_code"] = t["province_code"].astype(str).str.zfill(2)
        t["year"] = t["year"].astype(int)
        bad_line = sorted(set(t["line"]) - set(LINE_KINDS), key=str)
        if bad_line:
            raise ValueError(
                f"reference table {source}: unknown line kind(s) {bad_line}; use {LINE_KINDS}"
            )
        bad_basis = sorted(set(t["basis"]) - set(BASES), key=str)
        if bad_basis:
            raise ValueError(
                f"reference table {source}: basis must be one of {', '.join(BASES)}, got {bad_basis}"
            )
        dup = t.duplicated(["province_code", "year", "line"])
        if dup.any():
            r = t[dup].iloc[0]
            raise ValueError(
                f"reference table {source}: duplicate {r['line']} line for province {r['province_code']} year {r['year']}"
            )
        values = pd.to_numeric(t["yuan_per_person_year"], errors="coerce")
        if values.isna().any() or (values <= 0).any():
            r = t[values.isna() | (values <= 0)].iloc[0]
            raise ValueError(
                f"reference table {source}: {r['line']} line for province {r['province_code']} year {r['year']} "
                f"must be a positive number, got {r['yuan_per_person_year']!r}"
            )
        t["yuan_per_person_year"] = values.astype(float)
        self.table = t.reset_index(drop=True)
        self.source = source
        self.carry_forward_months = (
            carry_forward_policy() if carry_forward_months is None else int(carry_forward_months)
        )
        # plain dicts for the request path: (province, year) -> (monitoring, dibao, basis)
        self._pairs: dict[tuple[str, int], tuple[float, float, str]] = {}
        by_key: dict[tuple[str, int], dict[str, tuple[float, str]]] = {}
        for p, y, line, v, basis in zip(
            t["province_code"],
            t["year"],
            t["line"],
            t["yuan_per_person_year"],
            t["basis"],
            strict=True,
        ):
            by_key.setdefault((p, int(y)), {})[line] = (float(v), str(basis))
        for key, got in by_key.items():
            if len(got) == len(LINE_KINDS):
                weaker = max(BASES.index(got[k][1]) for k in LINE_KINDS)
                self._pairs[key] = (got["monitoring"][0], got["dibao"][0], BASES[weaker])
        self._province_years: dict[str, list[int]] = {}
        for p, y in sorted(self._pairs):
            self._province_years.setdefault(p, []).append(y)
        # (province, year) -> (monitoring, dibao, line_year, basis) or None; filled on demand
        self._resolved: dict[tuple[str, int], tuple[float, float, int, str] | None] = {}

    @classmethod
    def load(cls, path: str | Path | None = None) -> ReferenceLines:
        p = Path(path) if path else config.REFERENCE_LINES
        if not p.exists():
            raise FileNotFoundError(f"reference lines table not found: {p}")
        return cls(pd.read_csv(p, dtype={"province_code": str}), source=str(p))

    @property
    def digest(self) -> str:
        """A hash of the table and the policy: equal for equal lines."""
        import hashlib

        text = self.table.to_csv(index=False) + f"carry={self.carry_forward_months}"
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def years(self) -> list[int]:
        return sorted({y for _, y in self._pairs})

    def pairs(self) -> dict[tuple[str, int], tuple[float, float, str]]:
        """Every complete (province, year) with its (monitoring, dibao, basis)."""
        return dict(self._pairs)

    def extended_by(self, other: ReferenceLines) -> ReferenceLines:
        """These lines, and ``other``'s for every (province, year) these lack.

        How a registered model's own copy (what it was trained with) meets the
        operated table: the model's lines for the years it carries, the operator's
        for the rest. The carry-forward policy is ``other``'s.
        """
        mine = set(zip(self.table["province_code"], self.table["year"], strict=True))
        keep = [
            (p, y) not in mine
            for p, y in zip(other.table["province_code"], other.table["year"], strict=True)
        ]
        table = pd.concat([self.table, other.table[keep]], ignore_index=True)
        return ReferenceLines(
            table,
            source=f"{self.source} + {other.source}",
            carry_forward_months=other.carry_forward_months,
        )

    # ------------------------------------------------------------------ resolution
    def _resolve_pair(self, key: tuple[str, int]) -> tuple[float, float, int, str] | None:
        """The lines in force for (province, year) ignoring the month (carry checked by month later)."""
        if key in self._resolved:
            return self._resolved[key]
        got: tuple[float, float, int, str] | None = None
        exact = self._pairs.get(key)
        if exact is not None:
            got = (exact[0], exact[1], key[1], exact[2])
        elif self.carry_forward_months > 0:
            earlier = [y for y in self._province_years.get(key[0], []) if y < key[1]]
            if earlier:
                y0 = earlier[-1]
                # the first month of ``year`` must be inside the window; later months are checked per record
                if (key[1] - y0 - 1) * 12 + 1 <= self.carry_forward_months:
                    m, d, _ = self._pairs[(key[0], y0)]
                    got = (m, d, y0, "provisional")
        self._resolved[key] = got
        return got

    def resolve(self, provinces: np.ndarray, months: np.ndarray) -> Resolution:
        """The lines of each record from integer province codes and month indexes (year × 12 + month − 1).

        One dictionary look-up per distinct (province, year); a carried-forward
        line covers a record only when its month is within ``carry_forward_months``
        of the end of the line's year.
        """
        n = len(provinces)
        months = np.asarray(months, dtype=np.int64)
        years = months // 12
        key = np.asarray(provinces, dtype=np.int64) * 10000 + years
        if n <= 8:  # a request: no hashing machinery
            codes, uniques = np.arange(n), key.tolist()
        else:
            codes, uniques = pd.factorize(key)
        found = [self._resolve_pair((f"{k // 10000:02d}", int(k % 10000))) for k in uniques]
        basis_codes = (
            np.array([BASES.index(f[3]) if f else -1 for f in found] or [-1], dtype=np.int64)[codes]
            if n
            else np.zeros(0, dtype=np.int64)
        )
        vals = np.array(
            [(f[0], f[1], f[2]) if f else (np.nan, np.nan, 0) for f in found] or [(0, 0, 0)],
            dtype=np.float64,
        ).reshape(-1, 3)[codes]
        line_year = vals[:, 2].astype(np.int64)
        covered = basis_codes >= 0
        carried = covered & (line_year != years)
        if carried.any():
            after = (years - line_year - 1) * 12 + (months % 12) + 1
            covered = covered & ~(carried & (after > self.carry_forward_months))
        mon = np.where(covered, vals[:, 0], np.nan)
        dib = np.where(covered, vals[:, 1], np.nan)
        basis: list[str | None] = [
            BASES[b] if ok else None
            for b, ok in zip(basis_codes.tolist(), covered.tolist(), strict=True)
        ]
        return Resolution(mon, dib, np.where(covered, line_year, 0), basis, covered)

    def line_arrays(
        self, provinces: np.ndarray, years: np.ndarray, months: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(monitoring, dibao) lines per record from integer province codes and years.

        ``months`` (month indexes) decide a carried-forward line by month; without
        them every record is taken at December of its year (the strictest).
        Raises MissingReferenceError naming every (province, year) not covered.
        """
        if len(provinces) == 0:
            return np.zeros(0), np.zeros(0)
        if months is None:
            months = np.asarray(years, dtype=np.int64) * 12 + 11
        res = self.resolve(provinces, months)
        if not res.covered.all():
            missing = self.uncovered_pairs(provinces, months, res)
            raise MissingReferenceError(self.missing_message(missing), missing)
        return res.monitoring, res.dibao

    def uncovered_pairs(
        self, provinces: np.ndarray, months: np.ndarray, res: Resolution | None = None
    ) -> list[tuple[str, int]]:
        """Every (province, year) of the records that has no line in force, sorted."""
        res = res if res is not None else self.resolve(provinces, months)
        rows = res.uncovered_rows
        return sorted(
            {
                (f"{int(p):02d}", int(m) // 12)
                for p, m in zip(np.asarray(provinces)[rows], np.asarray(months)[rows], strict=True)
            }
        )

    def uncovered(self, county_codes: list[str], periods: list[str]) -> dict[int, str]:
        """Position -> the problem, for records (valid county codes and periods) without a line in force."""
        from riskml.data.periods import parse_period

        if not len(county_codes):
            return {}
        provinces = np.array([int(str(c)[:2]) for c in county_codes], dtype=np.int64)
        months = np.array([parse_period(str(p)) for p in periods], dtype=np.int64)
        res = self.resolve(provinces, months)
        return {
            int(i): self.uncovered_rule(f"{int(provinces[i]):02d}", int(months[i]) // 12)
            for i in res.uncovered_rows
        }

    def uncovered_rule(self, province_code: str, year: int) -> str:
        """The problem of a record whose province and year have no line in force."""
        name = PROVINCES.get(province_code, ("unknown", "unknown"))[1]
        covers = (
            f"the lines cover {self.years[0]}–{self.years[-1]}"
            if self.years
            else "there are no lines"
        )
        carry = (
            f"a year's lines are carried forward at most {self.carry_forward_months} months"
            if self.carry_forward_months
            else "lines are not carried forward"
        )
        return (
            f"no reference line for province {province_code} ({name}) year {year}: {covers} and "
            f"{carry}; an operator adds it with `riskml lines add`"
        )

    def lookup(self, province_code: str, year: int) -> Lines:
        """The lines for one province and year (carried forward if the policy allows at December)."""
        code, year = str(province_code).zfill(2), int(year)
        res = (
            self.resolve(np.array([int(code)]), np.array([year * 12 + 11]))
            if code.isascii() and code.isdigit()
            else None
        )
        if res is None or not res.covered[0]:
            raise MissingReferenceError(self.missing_message([(code, year)]), [(code, year)])
        return Lines(
            code, year, float(res.monitoring[0]), float(res.dibao[0]), int(res.line_year[0]),
            res.basis[0],
        )  # fmt: skip

    def for_frame(self, province_codes: pd.Series, years: pd.Series) -> pd.DataFrame:
        """Vectorised lookup: a frame with ``monitoring_line`` and ``dibao_line`` per row.

        Raises MissingReferenceError naming every missing (province, year).
        """
        prov = pd.Series(np.asarray(province_codes, dtype=object)).astype(str).str.zfill(2)
        bad = ~prov.str.fullmatch(r"[0-9]{2}")
        if bad.any():
            missing = sorted(
                {
                    (p, int(y))
                    for p, y in zip(prov[bad], np.asarray(years)[bad.to_numpy()], strict=True)
                }
            )
            raise MissingReferenceError(self.missing_message(missing), missing)
        mon, dib = self.line_arrays(prov.astype(int).to_numpy(), np.asarray(years, dtype=np.int64))
        return pd.DataFrame(
            {"monitoring_line": mon, "dibao_line": dib},
            index=province_codes.index if isinstance(province_codes, pd.Series) else None,
        )

    def missing_message(self, keys: list[tuple[str, int]]) -> str:
        shown = ", ".join(
            f"province {p} ({PROVINCES.get(p, ('unknown', 'unknown'))[1]}) year {y}"
            for p, y in keys[:10]
        )
        more = f" and {len(keys) - 10} more" if len(keys) > 10 else ""
        covers = (
            f"the table covers years {self.years[0]}–{self.years[-1]}"
            if self.years
            else "the table is empty"
        )
        carry = (
            f"a year's lines are carried forward as provisional for at most {self.carry_forward_months} months"
            if self.carry_forward_months
            else "lines are not carried forward (RISKML_LINES_CARRY_MONTHS=0)"
        )
        hint = f"; add a line with: {add_command(*keys[0])}" if keys else ""
        return f"no monitoring/dibao line in {self.source} for {shown}{more}; {covers}, and {carry}{hint}"


def shipped_lines() -> ReferenceLines:
    """The shipped table alone (package data or ``$RISKML_LINES_FILE``)."""
    return ReferenceLines.load()


_DEFAULT: tuple[tuple[object, ...], ReferenceLines] | None = None


def default_lines() -> ReferenceLines:
    """The lines in force: the shipped table under the operated one.

    Loaded once per process and re-read when either file changes (a stat per
    call), so a long-running service sees ``riskml lines add`` without a restart.
    """
    global _DEFAULT
    from riskml.data import operated_lines

    stamp = (
        _stamp(config.REFERENCE_LINES),
        _stamp(operated_lines.operated_file()),
        os.environ.get("RISKML_LINES_CARRY_MONTHS", ""),
    )
    if _DEFAULT is None or _DEFAULT[0] != stamp:
        _DEFAULT = (stamp, operated_lines.effective_lines())
    return _DEFAULT[1]


def _stamp(path: Path) -> tuple[float, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)
