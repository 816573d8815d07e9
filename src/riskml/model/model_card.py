"""The model card: a markdown page logged with every training run."""

from __future__ import annotations

import pandas as pd


def _fmt(v: float) -> str:
    return "n/a" if v is None or v != v else f"{v:.3f}"


def model_card(result, cfg, importance: pd.DataFrame) -> str:
    m = result.evaluation.metrics
    rc = result.row_counts
    s = result.splits
    caps = [round(c * 100) for c in cfg.report_capacities]
    lines = [
        f"# Model card: {cfg.model_name} ({cfg.name})",
        "",
        "## What it predicts",
        "The calibrated probability that a rural household is below the monitoring line 12 months",
        "from its record (`at_risk_next`: per-capita net income minus per-capita medical and schooling",
        "spending below the later record's monitoring line). It ranks households for caseworker visits",
        "beside the hard policy rules; it never replaces them.",
        "",
    ]
    label = result.model.metadata.get("label", "income")
    if label != "income":
        lines += [
            f"**Label: {label}.** "
            + result.model.metadata.get(
                "label_note",
                "Confirmed identification from the case loop: only visited "
                "households can be confirmed (riskml.cases.outcomes.SELECTION_BIAS).",
            ),
            "",
        ]
    lines += [
        "## Data",
        f"- households: {rc['households']:,}; rows: {rc['rows']:,}; labelled rows: {rc['labelled_rows']:,}",
        f"- train periods: {', '.join(s.train_periods)} ({rc['train_rows']:,} rows, {rc['train_positives']:,} positive)",
        f"- validation period (early stopping, Platt calibration, thresholds): {s.valid_period} ({rc['valid_rows']:,} rows)",
        f"- test period (every figure below): {s.test_period} ({rc['test_rows']:,} rows, {rc['test_positives']:,} positive)",
        "",
        "## Test-period results",
        "| metric | model | rules only | oracle |",
        "| --- | --- | --- | --- |",
        f"| ROC AUC | {_fmt(m.get('test_roc_auc'))} | {_fmt(m.get('rules_roc_auc'))} | {_fmt(m.get('oracle_roc_auc'))} |",
        f"| PR AUC | {_fmt(m.get('test_pr_auc'))} | | {_fmt(m.get('oracle_pr_auc'))} |",
        f"| log loss | {_fmt(m.get('test_log_loss'))} | | {_fmt(m.get('oracle_log_loss'))} |",
        f"| Brier | {_fmt(m.get('test_brier'))} | | |",
        f"| calibration error (ECE) | {_fmt(m.get('test_ece'))} | | |",
    ]
    for c in caps:
        lines.append(
            f"| recall at {c}% capacity | {_fmt(m.get(f'model_recall_at_{c}'))} | "
            f"{_fmt(m.get(f'rules_recall_at_{c}'))} | {_fmt(m.get(f'oracle_recall_at_{c}'))} |"
        )
        lines.append(
            f"| precision at {c}% capacity | {_fmt(m.get(f'model_precision_at_{c}'))} | "
            f"{_fmt(m.get(f'rules_precision_at_{c}'))} | {_fmt(m.get(f'oracle_precision_at_{c}'))} |"
        )
    lines += [
        "",
        f"Rules as they stand flag {_fmt(m.get('rules_only_selected_share'))} of households with recall "
        f"{_fmt(m.get('rules_only_recall'))} and precision {_fmt(m.get('rules_only_precision'))}.",
        "",
        "## Groups (largest gaps on the test period)",
    ]
    gaps = result.evaluation.tables.get("group_gaps")
    if gaps is not None and len(gaps):
        lines += ["| group | metric | gap | best | worst |", "| --- | --- | --- | --- | --- |"]
        for _, r in gaps.head(8).iterrows():
            lines.append(
                f"| {r['group']} | {r['metric']} | {r['gap']:.3f} | {r['best']} | {r['worst']} |"
            )
    lines += ["", "## Most important features (mean |SHAP|, calibrated log-odds)", ""]
    for _, r in importance.head(10).iterrows():
        lines.append(f"- {r['feature']} ({r['risk_type']}): {r['mean_abs_shap']:.3f}")
    lines += [
        "",
        "## Limits",
        "- Trained on the panel named in the run's tags; on simulated data the figures say nothing about",
        "  any real county. Real accuracy for future return to poverty is much lower (AUC about 0.7 in",
        "  published work); figures far above that on real data suggest leakage.",
        "- Accuracy decays 1.5–1.9 AUC points a year without refitting; monitor drift and retrain yearly.",
        "- The operating threshold was chosen on the validation period for the configured capacity;",
        "  a county whose capacity differs should rank by score rather than use the flag.",
        "- Explanations are associations in the model, not causes; a caseworker's visit decides.",
    ]
    return "\n".join(lines) + "\n"
