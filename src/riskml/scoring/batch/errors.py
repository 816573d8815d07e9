"""The error of a batch run that cannot go on."""

from __future__ import annotations


class BatchError(RuntimeError):
    """A batch run that cannot go on (unreadable input, missing columns, ledger failure)."""
