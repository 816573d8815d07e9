"""The rules alone, on asset-year observations: what the model is measured against.

Each year's observations become the register as it stood at the end of that year (the columns
``riskml.assets.rules.evaluate`` reads: the year's income in ``incomes``, ``idle_since`` from
the months idle, no distributions) and the asset rules in force (riskml/assets/rules.yaml) run
over it as of 1 January of the next year. An asset's rules score is the number of rules fired;
a county that inspects by the rules inspects the assets with the most rules fired first (ties
in random order). ``return_floor`` reads the low-return floor the label is defined with.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from riskml.assets import rules as asset_rules

DEFAULT_FLOOR = 0.03


def return_floor(rules: asset_rules.AssetRules | None = None) -> float:
    """The default floor of the ``low_return`` rule (3% when the rules have none)."""
    try:
        rules = rules or asset_rules.load()
        return float(rules.get("low_return").params["floor"])
    except (KeyError, asset_rules.AssetRulesError):
        return DEFAULT_FLOOR


def _month_dates(index: np.ndarray) -> np.ndarray:
    """Month numbers (year × 12 + month − 1) as ISO dates on the first of the month."""
    years, months = np.divmod(index.astype(np.int64), 12)
    uniq, inverse = np.unique(years * 12 + months, return_inverse=True)
    table = np.array([f"{u // 12:04d}-{u % 12 + 1:02d}-01" for u in uniq], dtype=object)
    return table[inverse]


def register_view(obs: pd.DataFrame) -> pd.DataFrame:
    """Observations of one year as the register frame the asset rules read."""
    years = obs["year"].unique()
    if len(years) != 1:
        raise ValueError(f"register_view takes the observations of one year, got {len(years)}")
    year = int(years[0])
    frame = obs.copy()
    income = pd.to_numeric(frame["income"], errors="coerce").to_numpy(dtype=float)
    key = str(year)
    frame["incomes"] = [{} if np.isnan(v) else {key: float(v)} for v in income]
    months = pd.to_numeric(frame["months_idle"], errors="coerce").fillna(0).to_numpy(int)
    lag = pd.to_numeric(frame["months_idle_lag1"], errors="coerce").fillna(0).to_numpy(int)
    total = months + np.where(months == 12, lag, 0)
    idle = frame["status"].to_numpy(dtype=object) == "idle"
    since = _month_dates((year + 1) * 12 - total)
    frame["idle_since"] = np.where(idle, since, None)
    frame["distributions"] = [[] for _ in range(len(frame))]
    return frame


def rules_fired(obs: pd.DataFrame, rules: asset_rules.AssetRules | None = None) -> pd.DataFrame:
    """Every rule fired on every observation: (row position, rule), year by year."""
    rules = rules or asset_rules.load()
    out = []
    positions = np.arange(len(obs))
    years = obs["year"].to_numpy()
    for year in np.unique(years):
        pos = positions[years == year]
        part = obs.iloc[pos]
        fired = asset_rules.evaluate(register_view(part), rules, f"{int(year) + 1}-01-01")
        if fired.empty:
            continue
        where = pd.Series(pos, index=part["asset_id"].to_numpy())
        out.append(
            pd.DataFrame({"row": where.loc[fired["asset_id"]].to_numpy(), "rule": fired["rule"]})
        )
    if not out:
        return pd.DataFrame({"row": pd.Series(dtype=int), "rule": pd.Series(dtype=str)})
    return pd.concat(out, ignore_index=True)


def rules_score(obs: pd.DataFrame, rules: asset_rules.AssetRules | None = None) -> np.ndarray:
    """Per observation, the number of distinct rules fired (0: none)."""
    fired = rules_fired(obs, rules).drop_duplicates()
    return np.bincount(fired["row"].to_numpy(int), minlength=len(obs)).astype(float)
