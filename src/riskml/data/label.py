"""The training label ``at_risk_next`` (contract: "The label").

1 when, in the same household's record 12 months later, per-capita net income
minus per-capita (medical_expense + education_expense) is below that later
record's monitoring line; 0 when it is not; missing when there is no record 12
months later or that record lacks a value the label needs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from riskml.data.periods import month_index, year_of
from riskml.data.reference import ReferenceLines
from riskml.data.schema import LABEL

HORIZON_MONTHS = 12
INCOME_FIELDS = ("income_wage", "income_business", "income_property", "income_transfer")


def net_income_of(get: Callable[[str], Any], prefix: str = "") -> Any:
    """Household net income from its components, ``get(name)`` each (arrays or Series).

    The one definition of net income (labels, features and rules use it): the
    four income fields summed, missing when any component is missing (never
    read as zero). ``prefix="prev_"`` sums the previous period's fields.
    """
    total = get(prefix + INCOME_FIELDS[0])
    for name in INCOME_FIELDS[1:]:
        total = total + get(prefix + name)
    return total


def net_income(df: pd.DataFrame) -> pd.Series:
    """Household net income of each row of a frame (see ``net_income_of``)."""
    return net_income_of(lambda c: df[c].astype("float64"))


def spend_adjusted_pc_income(df: pd.DataFrame) -> pd.Series:
    """Per-capita net income minus per-capita medical and education spending."""
    rigid = df["medical_expense"].astype("float64") + df["education_expense"].astype("float64")
    return (net_income(df) - rigid) / df["household_size"].astype("float64")


def label_panel(panel: pd.DataFrame, lines: ReferenceLines) -> pd.Series:
    """``at_risk_next`` for every row of a panel (float: 1.0, 0.0 or NaN), aligned to its index."""
    later = pd.DataFrame(
        {
            "household_id": panel["household_id"].astype(str).to_numpy(),
            "m": month_index(panel["period"]).to_numpy() - HORIZON_MONTHS,
            "value": spend_adjusted_pc_income(panel).to_numpy(),
            "province": panel["county_code"].astype(str).str.slice(0, 2).to_numpy(),
            "year": year_of(panel["period"]).to_numpy(),
        }
    )
    later["line"] = lines.for_frame(later["province"], later["year"])["monitoring_line"].to_numpy()
    later["y"] = np.where(
        later["value"].isna(), np.nan, (later["value"] < later["line"]).astype(float)
    )
    now = pd.DataFrame(
        {
            "household_id": panel["household_id"].astype(str).to_numpy(),
            "m": month_index(panel["period"]).to_numpy(),
        }
    )
    merged = now.merge(
        later[["household_id", "m", "y"]], on=["household_id", "m"], how="left", validate="m:1"
    )
    return pd.Series(merged["y"].to_numpy(dtype=float), index=panel.index, name=LABEL)


def training_labels(panel: pd.DataFrame, lines: ReferenceLines) -> pd.Series:
    """The label used for training: the panel's own ``at_risk_next`` if it carries one, else derived."""
    if LABEL in panel.columns:
        return pd.to_numeric(panel[LABEL], errors="coerce").astype(float).rename(LABEL)
    return label_panel(panel, lines)
