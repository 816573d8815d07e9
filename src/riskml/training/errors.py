"""The error of the training layer: a panel that cannot be trained or evaluated on."""

from __future__ import annotations


class TrainingDataError(ValueError):
    """The panel cannot be trained on (no labels, too few positives, too few periods)."""
