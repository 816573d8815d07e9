"""Deciding records: ``decide`` in blocks of ``DECIDE_ROWS``, as output rows and ledger entries."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
import pyarrow as pa

from riskml.model.risk_model import RiskModel
from riskml.policy.rules import RuleSet
from riskml.scoring.batch.output import OUTPUT_SCHEMA, decisions_table, ledger_entries
from riskml.scoring.decide import ExplainMode, ModelInfo, decide

DECIDE_ROWS = 10_000  # records per decide() call inside a chunk (bounds the result dicts)


@dataclass
class Scorer:
    """Everything needed to decide records: model, rules, identity, explanation mode."""

    model: RiskModel
    ruleset: RuleSet
    info: ModelInfo
    explain: ExplainMode = "flagged"
    with_ledger: bool = False

    def score(
        self, records: pd.DataFrame, previous: pd.DataFrame | list[pd.DataFrame] | None
    ) -> tuple[pa.Table, list[dict[str, Any]] | None]:
        """Output rows (``OUTPUT_SCHEMA``) and, with the ledger on, its entries.

        ``records`` are canonical (``schema.coerce_frame``); ``previous`` is
        their previous period or their lags (a list of frames), aligned with
        them (missing where unknown), or None.
        """
        tables: list[pa.Table] = []
        entries: list[dict[str, Any]] | None = [] if self.with_ledger else None
        records = records.reset_index(drop=True)
        lags = previous if isinstance(previous, list) else [previous]
        lags = [p.reset_index(drop=True) if p is not None else None for p in lags]
        for start in range(0, len(records), DECIDE_ROWS):
            rec = records.iloc[start : start + DECIDE_ROWS]
            block = [p.iloc[start : start + DECIDE_ROWS] if p is not None else None for p in lags]
            prev = block if isinstance(previous, list) else block[0]
            results = decide(
                rec,
                prev,
                self.model,
                self.ruleset,
                self.info,
                explain=self.explain,
                with_contributions=self.with_ledger,
            )
            tables.append(decisions_table(results, rec))
            if entries is not None:
                entries.extend(ledger_entries(results, rec))
        if not tables:
            return OUTPUT_SCHEMA.empty_table(), entries
        return pa.concat_tables(tables), entries
