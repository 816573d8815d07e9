"""Side inputs: numbers a scoring input may carry beside the household record.

A side input is not a field of the household record (outside systems never send
it; the contract is unchanged): riskml derives it from another register and
joins it onto the records by ``household_id`` where a model was trained to use
it (a feature option of the training config). Missing stays missing (NaN).

* ``asset_income_expected``: the household's expected yearly income from
  assistance assets (帮扶资产收益), Σ share × each asset's expected distributable
  income, from the asset register as of the record's period
  (``riskml.assets.households.expected_returns``; 0 for a household that is no
  asset's beneficiary). The features ``asset_income_share`` and
  ``asset_pc_to_line`` read it (``riskml.model.features.ASSET_FEATURES``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from riskml.data.schema import (
    FINITE_RULE,
    MONEY_MAX,
    NUMBER_RULE,
    Field,
    Problem,
    pseudonymous_id,
)

ASSET_INCOME = "asset_income_expected"

SIDE_FIELDS: tuple[Field, ...] = (
    Field(
        ASSET_INCOME,
        "float",
        "expected yearly income from assistance assets (Σ share × the asset's expected "
        "distributable income, from the asset register)",
        unit="yuan a year, whole household",
        minimum=0,
        maximum=MONEY_MAX,
    ),
)
SIDE_NAMES: tuple[str, ...] = tuple(f.name for f in SIDE_FIELDS)


def side_problems(df: pd.DataFrame) -> list[Problem]:
    """Problems of the side inputs a frame carries (a number, finite, within its bounds;
    missing is allowed), each naming the row and the field, as ``validate_frame`` does."""
    problems: list[Problem] = []
    ids = df["household_id"].to_numpy(dtype=object) if "household_id" in df.columns else None
    for f in SIDE_FIELDS:
        if f.name not in df.columns:
            continue
        raw = df[f.name]
        values = pd.to_numeric(raw, errors="coerce").astype("float64").to_numpy()
        given = raw.notna().to_numpy()
        checks = (
            (given & np.isnan(values), NUMBER_RULE),
            (np.isinf(values), FINITE_RULE),
            (values < f.minimum, f.min_rule()),
            (values > f.maximum, f.max_rule()),
        )
        for bad, rule in checks:
            for i in np.flatnonzero(bad):
                hid = pseudonymous_id(ids[i]) if ids is not None else None
                problems.append(Problem(int(i), hid, f.name, raw.iloc[i], rule))
    return problems
