"""Synthetic household decisions with realistic area codes, for tests and the benchmark.

Villages lie in the 45 simulated counties (``counties.csv``): township ``NNN`` (001–…) and
village ``2NN`` (a villagers' committee: third-level code 2xx), about ``village_size``
households each, 15 villages a township. Risks are beta-distributed (mean about
``mean_risk``), flags follow the risk, flagged households get one or two risk types.
Nothing here is a real household.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from riskml.policy.risk_types import RISK_TYPES
from riskml.regions.reference import COUNTIES_FILE

VILLAGES_PER_TOWNSHIP = 15


def village_codes(n_villages: int) -> np.ndarray:
    """``n_villages`` 12-digit village codes (int64) spread over the 45 counties."""
    counties = pd.read_csv(COUNTIES_FILE, dtype=str)["county_code"].astype(np.int64).to_numpy()
    i = np.arange(n_villages)
    county = counties[i % len(counties)]
    j = i // len(counties)  # the village's number within its county
    township = 1 + j // VILLAGES_PER_TOWNSHIP
    village = 201 + j % VILLAGES_PER_TOWNSHIP
    return county * 10**6 + township * 10**3 + village


def synthetic_decisions(
    households: int,
    periods: tuple[str, ...] = ("2025-06", "2025-12"),
    *,
    village_size: int = 300,
    mean_risk: float = 0.035,
    seed: int = 0,
    risk_types: bool = True,
    ids: bool = True,
) -> pa.Table:
    """``households`` × ``len(periods)`` decisions in batch-output columns (a pyarrow table)."""
    rng = np.random.default_rng(seed)
    villages = village_codes(max(1, households // village_size))
    home = villages[rng.integers(0, len(villages), households)]
    hid = pa.array(np.char.add("H", np.arange(households).astype(str))) if ids else None
    tables = []
    for period in periods:
        a = 0.7
        p = rng.beta(a, a * (1 - mean_risk) / mean_risk, households)
        rules = rng.random(households) < np.minimum(1.0, 2.5 * p)
        model = p > 0.15
        flagged = rules | model
        by = np.where(rules & model, "rules+model", np.where(rules, "rules", "model"))
        village_text = pa.array(home.astype(str))
        cols: dict[str, pa.Array] = {
            "period": pa.array(np.full(households, period)),
            "county_code": pc.utf8_slice_codeunits(village_text, 0, 6),
            "village_code": village_text,
            "score": pa.array(p),
            "flagged": pa.array(flagged),
            "flagged_by": pa.array(by, mask=~flagged),
        }
        if ids:
            cols = {"household_id": hid, **cols}
        if risk_types:
            codes = np.array(list(RISK_TYPES), dtype=object)
            count = np.where(flagged, 1 + (rng.random(households) < 0.4), 0)
            offsets = np.concatenate([[0], np.cumsum(count)]).astype(np.int32)
            values = codes[rng.integers(0, len(codes), int(count.sum()))]
            cols["risk_types"] = pa.ListArray.from_arrays(pa.array(offsets), pa.array(values, pa.string()))  # fmt: skip
        tables.append(pa.table(cols))
    return pa.concat_tables(tables)
