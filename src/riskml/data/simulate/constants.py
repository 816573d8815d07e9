"""Constants of the household panel simulator: sizes, years, kinship codes, missing rates."""

from __future__ import annotations

import numpy as np

SLOTS = 10  # member slots per household (largest household size)
BURN_IN_STEPS = 3  # unrecorded years simulated before the first record
CHUNK_HOUSEHOLDS = 2000  # households per chunk (fixed: part of the random streams)
DEFAULT_ORACLE_DRAWS = 64
ORACLE_BATCH_ROWS = 16384  # households × draws re-simulated at once by the oracle
PRICE_BASE_YEAR = 2019  # money parameters below are in yuan of this year
PERIOD_MONTH = 6  # records are taken in June: "YYYY-06"

KIN_HEAD, KIN_SPOUSE, KIN_PARENT, KIN_OTHER = 0, 1, 2, 3

# Share of each non-identifier numeric field set missing at random (the contract
# allows any numeric field to be missing; downstream code must carry NA).
MISSING_RATES: dict[str, float] = {
    "income_business": 0.010,
    "income_property": 0.010,
    "debt": 0.020,
    "months_employed": 0.010,
    "disaster_loss": 0.005,
    "head_education_years": 0.005,
    "medical_expense": 0.003,
}

F32 = np.float32
