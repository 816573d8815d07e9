"""The simulated world's shocks and trends: scheduled disasters, employment shocks, line changes."""

from __future__ import annotations

from dataclasses import dataclass

from riskml.data.reference import ReferenceLines


@dataclass(frozen=True)
class DisasterEvent:
    """A scheduled disaster: every county whose code starts with ``region`` is hit in ``year``.

    ``region`` is a GB/T 2260 prefix: "53" (a province), "5323" (a prefecture)
    or "532328" (a county). ``severity`` (0–1) is the share of farm output and
    assets lost by the most exposed household; each household's exposure is
    drawn between 0 and 1.
    """

    region: str
    year: int
    severity: float = 0.5

    def __post_init__(self) -> None:
        if not (self.region.isdigit() and 2 <= len(self.region) <= 6):
            raise ValueError(f"DisasterEvent.region must be 2–6 digits, got {self.region!r}")
        if not 0 < self.severity <= 1:
            raise ValueError(f"DisasterEvent.severity must be in (0, 1], got {self.severity}")


@dataclass(frozen=True)
class EmploymentShock:
    """A year in which migrant work collapses for households whose county starts with ``region``.

    ``wage_drop``: fractional fall in migrant monthly wages; ``months_lost``:
    average months of work lost per migrant worker; ``return_share``: extra
    share of migrant workers who come home (and fewer leave). ``region`` ""
    means everywhere.
    """

    year: int
    wage_drop: float = 0.08
    months_lost: float = 1.5
    return_share: float = 0.10
    region: str = ""

    def __post_init__(self) -> None:
        if not 0 <= self.wage_drop < 1:
            raise ValueError(f"EmploymentShock.wage_drop must be in [0, 1), got {self.wage_drop}")
        if not 0 <= self.months_lost <= 6:
            raise ValueError(
                f"EmploymentShock.months_lost must be in [0, 6], got {self.months_lost}"
            )
        if not 0 <= self.return_share <= 0.8:
            raise ValueError(
                f"EmploymentShock.return_share must be in [0, 0.8], got {self.return_share}"
            )
        if self.region and not (self.region.isdigit() and len(self.region) <= 6):
            raise ValueError(f"EmploymentShock.region must be '' or digits, got {self.region!r}")


@dataclass(frozen=True)
class LineChange:
    """Multiply a province's lines from ``year`` on (that year and every later one).

    ``region``: a 2-digit province code, or "" for every province. The changed
    lines drive dibao payments and the label of the simulated panel.
    """

    region: str
    year: int
    monitoring_factor: float = 1.0
    dibao_factor: float = 1.0

    def __post_init__(self) -> None:
        if self.region and not (self.region.isdigit() and len(self.region) == 2):
            raise ValueError(
                f"LineChange.region must be '' or a 2-digit province code, got {self.region!r}"
            )
        if self.monitoring_factor <= 0 or self.dibao_factor <= 0:
            raise ValueError("LineChange factors must be positive")


@dataclass(frozen=True)
class Scenario:
    """The world's shocks and trends. ``Scenario()`` is the baseline world.

    Fields:
        name: a label for reports.
        disaster_rate: multiplier on every county's yearly probability of a
            disaster (``disaster_rate`` column of counties.csv); 0 switches
            random disasters off.
        disasters: scheduled disasters (a new disaster region in a given year).
        employment_shocks: years in which migrant work collapses; the baseline
            has one in 2020.
        line_changes: changes to the monitoring and dibao lines (policy drift).
        wage_growth: nominal yearly growth of wages and business income.
        medical_cost_factor: multiplier on out-of-pocket medical costs.
    """

    name: str = "baseline"
    disaster_rate: float = 1.0
    disasters: tuple[DisasterEvent, ...] = ()
    employment_shocks: tuple[EmploymentShock, ...] = (EmploymentShock(year=2020),)
    line_changes: tuple[LineChange, ...] = ()
    wage_growth: float = 0.085
    medical_cost_factor: float = 1.0

    def __post_init__(self) -> None:
        if self.disaster_rate < 0:
            raise ValueError("Scenario.disaster_rate must be ≥ 0")
        if not -0.2 < self.wage_growth < 0.3:
            raise ValueError("Scenario.wage_growth must be in (-0.2, 0.3)")
        if self.medical_cost_factor <= 0:
            raise ValueError("Scenario.medical_cost_factor must be positive")

    def adjust_lines(self, lines: ReferenceLines) -> ReferenceLines:
        """The reference lines with this scenario's ``line_changes`` applied."""
        if not self.line_changes:
            return lines
        t = lines.table.copy()
        for ch in self.line_changes:
            sel = t["year"] >= ch.year
            if ch.region:
                sel &= t["province_code"] == ch.region
            mon = sel & (t["line"] == "monitoring")
            dib = sel & (t["line"] == "dibao")
            t.loc[mon, "yuan_per_person_year"] = (
                t.loc[mon, "yuan_per_person_year"] * ch.monitoring_factor
            ).round()
            t.loc[dib, "yuan_per_person_year"] = (
                t.loc[dib, "yuan_per_person_year"] * ch.dibao_factor
            ).round()
            t.loc[mon | dib, "basis"] = "estimate"
        return ReferenceLines(t, source=f"{lines.source} (scenario {self.name!r})")
