"""Global explanations for a run: mean |SHAP| per feature and shap's beeswarm and bar plots.

Run-time only (``import shap`` takes seconds): never on the request path.
Values are in calibrated log-odds, the same units as per-household reasons.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from riskml.model.risk_model import RiskModel


def global_importance(model: RiskModel, X: pd.DataFrame) -> pd.DataFrame:
    """Mean |contribution| per feature over ``X``, most important first, with its risk type."""
    from riskml.model.reasons import FEATURE_RISK_TYPE

    ex = model.explain(X)
    mean_abs = np.abs(ex.contributions).mean(axis=0)
    mean = ex.contributions.mean(axis=0)
    table = pd.DataFrame(
        {
            "feature": list(ex.feature_names),
            "risk_type": [FEATURE_RISK_TYPE.get(f, "other") for f in ex.feature_names],
            "mean_abs_shap": mean_abs,
            "mean_shap": mean,
        }
    )
    return table.sort_values("mean_abs_shap", ascending=False).reset_index(drop=True)


def shap_explanation(model: RiskModel, X: pd.DataFrame):
    """A ``shap.Explanation`` from shap's TreeExplainer, scaled to calibrated log-odds."""
    import warnings

    import shap

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        explainer = shap.TreeExplainer(model.booster)
        raw = explainer(X)
    return shap.Explanation(
        values=raw.values * model.platt_a,
        base_values=raw.base_values * model.platt_a + model.platt_b,
        data=raw.data,
        feature_names=list(X.columns),
    )


def shap_plots(model: RiskModel, X: pd.DataFrame, max_display: int = 15) -> dict[str, object]:
    """Beeswarm and bar plots (matplotlib figures) for a sample of households."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import shap

    ex = shap_explanation(model, X)
    figs: dict[str, object] = {}
    plt.figure()
    shap.plots.beeswarm(ex, max_display=max_display, show=False)
    figs["beeswarm"] = plt.gcf()
    plt.figure()
    shap.plots.bar(ex, max_display=max_display, show=False)
    figs["bar"] = plt.gcf()
    for fig in figs.values():
        fig.set_size_inches(8, 6)
        fig.tight_layout()
    return figs
