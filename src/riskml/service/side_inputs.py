"""The side inputs a served model's features read, looked up for each request's households.

A model trained with the feature option ``asset_income`` reads ``asset_income_expected``
(``riskml.data.side_inputs``). Online it comes from the asset register on the service's own
ledger database (``asset_events``): the current register, Σ share × each asset's expected
distributable income (``riskml.assets.households.income_by_household`` as of today), 0 for a
household that is no asset's beneficiary. The table is rebuilt at most every ``TTL_S`` seconds
(an asset event is a rare, slow thing), by one request at a time; a register that cannot be
read gives missing values (NaN, as a record without the input would) and a warning that names
no household.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from riskml.data.side_inputs import ASSET_INCOME
from riskml.model.features import side_inputs_of
from riskml.store.ledger import LedgerError

log = logging.getLogger("riskml.service")

TTL_S = 60.0


class AssetIncomeLookup:
    """``asset_income_expected`` by household id from the ledger's asset register."""

    def __init__(
        self, ledger: Any, ttl_s: float = TTL_S, clock: Callable[[], float] = time.monotonic
    ):
        self.ledger = ledger
        self.ttl_s = ttl_s
        self.clock = clock
        self._lock = threading.Lock()
        self._table: dict[str, float] | None = None
        self._built = -float("inf")

    def table(self) -> dict[str, float] | None:
        with self._lock:
            if self.clock() - self._built >= self.ttl_s:
                self._table, self._built = self._read(), self.clock()
            return self._table

    def _read(self) -> dict[str, float] | None:
        from riskml.assets.households import income_by_household
        from riskml.assets.register import AssetStore

        try:
            states = AssetStore(self.ledger).states()
        except LedgerError as exc:
            log.warning("asset register unreadable, asset income missing: %s", exc)
            return None
        return income_by_household(states, dt.datetime.now(dt.UTC).date()).to_dict()

    def __call__(self, household_ids: Sequence[str]) -> np.ndarray:
        table = self.table()
        if table is None:
            return np.full(len(household_ids), np.nan)
        return np.array([table.get(h, 0.0) for h in household_ids], dtype=np.float64)


class SideInputs:
    """The look-ups of a service: one per side input, made when a model first needs it."""

    def __init__(self, ledger: Any):
        self.ledger = ledger
        self._made: dict[str, Callable[[list[str]], np.ndarray]] = {}

    def for_model(
        self, feature_names: Sequence[str]
    ) -> dict[str, Callable[[list[str]], np.ndarray]]:
        wanted = side_inputs_of(feature_names)
        for name in wanted:
            if name not in self._made and name == ASSET_INCOME:
                self._made[name] = AssetIncomeLookup(self.ledger)
        return {name: self._made[name] for name in wanted}
