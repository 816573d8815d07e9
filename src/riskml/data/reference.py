"""Reference lines: the monitoring line and the rural dibao line by province and year.

The table (``riskml/data/tables/lines.csv`` by default, or any file a user points
to) is long: one row per province, year and line, each with its basis
(``published`` with its source, or ``estimate`` with the method).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from riskml import config
from riskml.data.regions import PROVINCES

LINE_KINDS = ("monitoring", "dibao")
COLUMNS = ("province_code", "province", "year", "line", "yuan_per_person_year", "basis", "source")


class MissingReferenceError(LookupError):
    """No reference line for a province and year."""


@dataclass(frozen=True)
class Lines:
    """The lines in force for one province and year (yuan per person per year)."""

    province_code: str
    year: int
    monitoring: float
    dibao: float


class ReferenceLines:
    """Lookup of monitoring and dibao lines by province code and year."""

    def __init__(self, table: pd.DataFrame, source: str = "<frame>"):
        missing = [c for c in COLUMNS if c not in table.columns]
        if missing:
            raise ValueError(f"reference table {source} lacks column(s): {', '.join(missing)}")
        t = table.copy()
        t["province_code"] = t["province_code"].astype(str).str.zfill(2)
        t["year"] = t["year"].astype(int)
        bad_line = sorted(set(t["line"]) - set(LINE_KINDS), key=str)
        if bad_line:
            raise ValueError(
                f"reference table {source}: unknown line kind(s) {bad_line}; use {LINE_KINDS}"
            )
        bad_basis = sorted(set(t["basis"]) - {"published", "estimate"}, key=str)
        if bad_basis:
            raise ValueError(
                f"reference table {source}: basis must be 'published' or 'estimate', got {bad_basis}"
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
        self.table = t
        self.source = source
        wide = t.pivot(
            index=["province_code", "year"], columns="line", values="yuan_per_person_year"
        )
        self._wide = wide.reindex(columns=list(LINE_KINDS))
        # plain dict for the request path: (province, year) -> (monitoring, dibao)
        self._pairs = {
            (p, int(y)): (float(r["monitoring"]), float(r["dibao"]))
            for (p, y), r in self._wide.iterrows()
            if not r.isna().any()
        }

    @classmethod
    def load(cls, path: str | Path | None = None) -> ReferenceLines:
        p = Path(path) if path else config.REFERENCE_LINES
        if not p.exists():
            raise FileNotFoundError(f"reference lines table not found: {p}")
        return cls(pd.read_csv(p, dtype={"province_code": str}), source=str(p))

    @property
    def years(self) -> list[int]:
        return sorted(self.table["year"].unique().tolist())

    def lookup(self, province_code: str, year: int) -> Lines:
        key = (str(province_code).zfill(2), int(year))
        if key not in self._wide.index or self._wide.loc[key].isna().any():
            raise MissingReferenceError(self._missing_message([key]))
        row = self._wide.loc[key]
        return Lines(key[0], key[1], float(row["monitoring"]), float(row["dibao"]))

    def for_frame(self, province_codes: pd.Series, years: pd.Series) -> pd.DataFrame:
        """Vectorised lookup: a frame with ``monitoring_line`` and ``dibao_line`` per row.

        Raises MissingReferenceError naming every missing (province, year).
        """
        prov = pd.Series(np.asarray(province_codes, dtype=object)).astype(str).str.zfill(2)
        yrs = np.asarray(years, dtype=np.int64)
        keys = pd.Series(prov.to_numpy(dtype=object) + ":" + yrs.astype(str))
        codes, uniques = pd.factorize(keys)
        found = [self._pairs.get((k[:-5], int(k[-4:]))) for k in uniques]
        missing = sorted(
            {(k[:-5], int(k[-4:])) for k, f in zip(uniques, found, strict=True) if f is None}
        )
        if missing:
            raise MissingReferenceError(self._missing_message(missing))
        values = np.array(found, dtype=np.float64).reshape(-1, 2)[codes]
        return pd.DataFrame(
            {"monitoring_line": values[:, 0], "dibao_line": values[:, 1]},
            index=province_codes.index if isinstance(province_codes, pd.Series) else None,
        )

    def line_arrays(
        self, provinces: np.ndarray, years: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """(monitoring, dibao) lines per record from integer province codes and years.

        One dictionary look-up per distinct (province, year); raises
        MissingReferenceError naming every missing pair.
        """
        n = len(provinces)
        if n == 0:
            return np.zeros(0), np.zeros(0)
        key = np.asarray(provinces, dtype=np.int64) * 10000 + np.asarray(years, dtype=np.int64)
        if n <= 8:  # a request: no hashing machinery
            codes, uniques = np.arange(n), key.tolist()
        else:
            codes, uniques = pd.factorize(key)
        pairs = [(f"{k // 10000:02d}", int(k % 10000)) for k in uniques]
        found = [self._pairs.get(pair) for pair in pairs]
        missing = sorted({pair for pair, f in zip(pairs, found, strict=True) if f is None})
        if missing:
            raise MissingReferenceError(self._missing_message(missing))
        values = np.array(found, dtype=np.float64).reshape(-1, 2)[codes]
        return values[:, 0].copy(), values[:, 1].copy()

    def _missing_message(self, keys: list[tuple[str, int]]) -> str:
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
        return f"no monitoring/dibao line in {self.source} for {shown}{more}; {covers}"


_DEFAULT: ReferenceLines | None = None


def default_lines() -> ReferenceLines:
    """The project's reference table, loaded once per process."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = ReferenceLines.load()
    return _DEFAULT
