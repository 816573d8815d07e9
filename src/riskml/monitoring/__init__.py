"""Model monitoring: drift of a decision-ledger window against the champion's training reference,
flag rates against the previous window, realised performance once outcomes arrive, and alerts.

Modules: ``job`` (``monitor`` as a sequence of named checks, ``run``: the
``riskml monitor`` job), ``config`` (``MonitorConfig``, the thresholds of
``training/monitoring.yaml``), ``windows`` (``Window`` and the decisions in it),
``drift`` (PSI per feature, missing rates, local lines), ``rates`` (flag rates
with z-tests), ``outcomes`` (outcome files, the join to decisions, realised
metrics), ``result`` (``Alert``, ``MonitorResult``), ``report`` (figures, HTML,
MLflow). The training reference and its bins are ``riskml.model.profile``; the
insert-only outcomes table is ``riskml.store.outcomes``. Both are re-exported
here.
"""

from riskml.model.profile import (
    CHANGE_FEATURES,
    N_BINS,
    PREVIOUS_FLAG,
    PROFILE_FORMAT,
    SCORE_EDGES,
    bin_index,
    bin_proportions,
    quantile_edges,
    reference_profile,
    score_histogram,
)
from riskml.monitoring.config import DEFAULT_CONFIG, HORIZON_MONTHS, MonitorConfig
from riskml.monitoring.drift import feature_drift, missing_rates, psi
from riskml.monitoring.job import model_reference, monitor, run
from riskml.monitoring.outcomes import (
    due_date,
    join_outcomes,
    load_outcomes,
    outcomes_from_frame,
    realised_metrics,
)
from riskml.monitoring.rates import flag_rates, rate_table
from riskml.monitoring.report import MONITORING_EXPERIMENT, figures, log_to_mlflow, render_report
from riskml.monitoring.result import LEVELS, Alert, MonitorResult
from riskml.monitoring.windows import Window, completed_decisions, previous_for
from riskml.store.outcomes import OutcomeError, OutcomeStore

__all__ = [
    "CHANGE_FEATURES",
    "DEFAULT_CONFIG",
    "HORIZON_MONTHS",
    "LEVELS",
    "MONITORING_EXPERIMENT",
    "N_BINS",
    "PREVIOUS_FLAG",
    "PROFILE_FORMAT",
    "SCORE_EDGES",
    "Alert",
    "MonitorConfig",
    "MonitorResult",
    "OutcomeError",
    "OutcomeStore",
    "Window",
    "bin_index",
    "bin_proportions",
    "completed_decisions",
    "due_date",
    "feature_drift",
    "figures",
    "flag_rates",
    "join_outcomes",
    "load_outcomes",
    "log_to_mlflow",
    "missing_rates",
    "model_reference",
    "monitor",
    "outcomes_from_frame",
    "previous_for",
    "psi",
    "quantile_edges",
    "rate_table",
    "realised_metrics",
    "reference_profile",
    "render_report",
    "run",
    "score_histogram",
]
