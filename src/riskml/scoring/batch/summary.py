"""What a run did (``BatchSummary``) and its summary for people (``summary_lines``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from riskml.scoring.batch.inputs import DEFAULT_CHUNK_ROWS


@dataclass
class BatchSummary:
    """What a run did: counts, time, where things went."""

    rows_read: int = 0
    valid: int = 0
    rejected: int = 0
    flagged: int = 0
    red: int = 0
    seconds: float = 0.0
    rows_per_s: float = 0.0
    output: str = ""
    rejects: str = ""
    ledger_rows: int = 0
    engine: str = "local"
    workers: int = 0
    chunk_rows: int = DEFAULT_CHUNK_ROWS
    explain: str = "flagged"
    model_name: str = ""
    model_version: str = ""
    rules_version: str = ""
    with_previous: int = 0  # scored records that had a previous period in the input
    timings: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def summary_lines(s: BatchSummary) -> list[str]:
    """The run summary for people."""
    return [
        f"rows read {s.rows_read:,}: valid {s.valid:,}, rejected {s.rejected:,}"
        + (f" (reasons in {s.rejects})" if s.rejected else ""),
        f"flagged {s.flagged:,}, red {s.red:,}; {s.with_previous:,} with a previous period",
        f"{s.seconds:.1f} s, {s.rows_per_s:,.0f} rows/s ({s.engine} engine, "
        f"{s.workers} worker(s), explain {s.explain})",
        f"model {s.model_name} v{s.model_version}, rules {s.rules_version} -> {s.output}"
        + (f"; {s.ledger_rows:,} decisions in the ledger" if s.ledger_rows else ""),
    ]
