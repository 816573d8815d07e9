"""The asset-risk model card: a markdown page logged with every training run."""

from __future__ import annotations

import pandas as pd


def _f(v: float | None) -> str:
    return "n/a" if v is None or v != v else f"{v:.3f}"


def model_card(result, cfg, importance: pd.DataFrame) -> str:
    """The card of an ``AssetTrainResult`` trained with ``cfg`` (an ``AssetTrainConfig``)."""
    m = result.evaluation.metrics
    rc, s = result.row_counts, result.splits
    floor = result.model.return_floor
    cap = round(cfg.inspect * 100)
    lines = [
        f"# Model card: {cfg.model_name} ({cfg.name})",
        "",
        "## What it predicts",
        "The calibrated probability that an assistance asset (帮扶资产) is idle, or that its return",
        f"rate (income / original value) is below {floor:.1%}, in the year after its year-end record.",
        "Public-welfare assets earn no return: for them the label is idle only. It orders a county's",
        "inspections beside the asset rules (riskml/assets/rules.yaml); it never replaces them.",
        "",
        "## Data",
        f"- assets: {rc['assets']:,}; asset-years: {rc['rows']:,}; labelled: {rc['labelled_rows']:,}",
        f"- train years: {', '.join(map(str, s.train_years))} ({rc['train_rows']:,} rows, {rc['train_positives']:,} positive)",
        f"- validation year (early stopping, Platt calibration): {s.valid_year} ({rc['valid_rows']:,} rows)",
        f"- test year (every figure below): {s.test_year} ({rc['test_rows']:,} rows, {rc['test_positives']:,} positive)",
        "",
        "## Test-year results",
        "| metric | model | rules alone | oracle |",
        "| --- | --- | --- | --- |",
        f"| ROC AUC | {_f(m.get('test_roc_auc'))} | {_f(m.get('rules_roc_auc'))} | {_f(m.get('oracle_roc_auc'))} |",
        f"| log loss | {_f(m.get('test_log_loss'))} | | {_f(m.get('oracle_log_loss'))} |",
        f"| Brier | {_f(m.get('test_brier'))} | | |",
        f"| calibration error (ECE) | {_f(m.get('test_ece'))} | | |",
    ]
    for c in sorted(set(cfg.report_capacities) | {cfg.inspect}):
        t = f"at_{round(c * 100)}_county"
        lines.append(
            f"| recall, each county inspecting its top {round(c * 100)}% | {_f(m.get(f'model_recall_{t}'))} "
            f"| {_f(m.get(f'rules_recall_{t}'))} | {_f(m.get(f'oracle_recall_{t}'))} |"
        )
        lines.append(
            f"| precision, top {round(c * 100)}% per county | {_f(m.get(f'model_precision_{t}'))} "
            f"| {_f(m.get(f'rules_precision_{t}'))} | {_f(m.get(f'oracle_precision_{t}'))} |"
        )
    lines += [
        "",
        f"At the inspection capacity ({cap}% of each county's assets) the model finds "
        f"{_f(m.get(f'gain_recall_at_{cap}_county'))} more of the assets that go idle or low than the "
        f"rules alone; its AUC is {_f(m.get('oracle_gap_roc_auc'))} below the oracle's. The rules as they "
        f"stand fire on {_f(m.get('rules_only_selected_share'))} of assets (recall "
        f"{_f(m.get('rules_only_recall'))}, precision {_f(m.get('rules_only_precision'))}).",
        "",
        "## Most important features (mean |SHAP|, calibrated log-odds)",
        "",
    ]
    for _, r in importance.head(10).iterrows():
        lines.append(f"- {r['feature']}: {r['mean_abs_shap']:.3f}")
    lines += [
        "",
        "## Limits",
        "- Trained on the panel named in the run's tags; on the simulated asset panel the figures say",
        "  nothing about any real county, and the oracle exists only there.",
        "- The rules baseline counts the rules fired; a county with its own order of inspection",
        "  (value first, say) should compare against that order.",
        "- Explanations are associations in the model, not causes; the inspection decides.",
    ]
    return "\n".join(lines) + "\n"
