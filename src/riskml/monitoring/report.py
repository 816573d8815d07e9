"""The monitoring report: matplotlib figures, the self-contained HTML page, and the MLflow run.

The HTML page is rendered with Jinja2 from ``templates/monitoring.html`` (plots
embedded as PNG). ``log_to_mlflow`` logs one run in the experiment
``MONITORING_EXPERIMENT`` with the metrics, the report, plots, tables and alerts.
"""

from __future__ import annotations

import base64
import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from riskml.data.json_text import dumps
from riskml.model.profile import SCORE_EDGES
from riskml.monitoring.result import MonitorResult

MONITORING_EXPERIMENT = "household-risk-monitoring"


def pyplot():
    """matplotlib.pyplot on the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figures(result: MonitorResult) -> dict[str, Any]:
    """The report's figures (matplotlib): drift per feature, score histograms, flag rates over time, ..."""
    plt = pyplot()
    cfg = result.config
    figs: dict[str, Any] = {}
    fd = result.feature_drift
    if not fd.empty:
        overall = fd[fd["scope"] == "all"].sort_values("psi")
        fig, ax = plt.subplots(figsize=(7, max(4, 0.22 * len(overall))))
        colours = [
            "#bbbbbb" if ex else {"ok": "#4c72b0", "warn": "#dd8452", "alert": "#c44e52"}[lv]
            for lv, ex in zip(overall["level"], overall["excluded"], strict=True)
        ]
        ax.barh(overall["feature"], overall["psi"].clip(upper=2.0), color=colours)
        ax.axvline(cfg.psi_warn, color="#dd8452", ls="--", lw=1, label=f"warn {cfg.psi_warn}")
        ax.axvline(cfg.psi_alert, color="#c44e52", ls="--", lw=1, label=f"alert {cfg.psi_alert}")
        ax.set_xlabel("PSI against training (capped at 2; grey: not alerting)")
        ax.set_title("Feature drift, all households")
        ax.legend(loc="lower right")
        fig.tight_layout()
        figs["feature_drift"] = fig

        prov = fd[
            (fd["scope"] != "all")
            & (fd["n"] >= cfg.province_min_rows)
            & (fd["n_ref"] >= cfg.province_min_rows)
        ]
        if not prov.empty:
            top = overall.sort_values("psi", ascending=False)
            top = top[~top["excluded"]]["feature"].head(12).tolist()
            pivot = prov[prov["feature"].isin(top)].pivot_table(
                index="feature", columns="scope", values="psi"
            )
            pivot = pivot.reindex(top)
            fig, ax = plt.subplots(
                figsize=(max(6.0, 2.5 + 0.8 * pivot.shape[1]), 1.2 + 0.35 * len(top))
            )
            im = ax.imshow(
                pivot.to_numpy().clip(0, 1.0), cmap="Reds", vmin=0, vmax=1.0, aspect="auto"
            )
            rows = prov.groupby("scope")["n"].max()
            ax.set_xticks(
                range(pivot.shape[1]), [f"{c}\nn={rows[c]:,}" for c in pivot.columns], fontsize=8
            )
            ax.set_yticks(range(len(top)), top)
            for (i, j), v in np.ndenumerate(pivot.to_numpy()):
                if np.isfinite(v):
                    colour = "white" if v > 0.6 else "black"
                    ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7, color=colour)
            ax.set_xlabel(f"province (those with {cfg.province_min_rows}+ rows)")
            ax.set_title("PSI by province (top features)")
            fig.colorbar(im, ax=ax, shrink=0.8)
            fig.tight_layout()
            figs["feature_drift_by_province"] = fig

    s = result.score
    if s.get("window") is not None:
        fig, ax = plt.subplots(figsize=(7, 4))
        labels = [f"{a:g}–{b:g}" for a, b in zip(SCORE_EDGES[:-1], SCORE_EDGES[1:], strict=True)]
        x = np.arange(len(labels))
        series = [("training", s["reference"]), ("window", s["window"])]
        if s.get("previous") is not None:
            series.append(("previous window (as served)", s["previous"]))
        w = 0.8 / len(series)
        for i, (name, props) in enumerate(series):
            ax.bar(x + (i - (len(series) - 1) / 2) * w, props, width=w, label=name)
        ax.set_xticks(x, labels, rotation=45, ha="right", fontsize=8)
        ax.set_ylabel("share of households")
        ax.set_title(f"Score distribution (PSI {s['psi']:.3f})")
        ax.legend()
        fig.tight_layout()
        figs["score_histogram"] = fig

    tl = result.timeline
    if not tl.empty:
        fig, ax = plt.subplots(figsize=(7, 3.5))
        for col, label in (
            ("flagged", "flagged"),
            ("model", "by the model"),
            ("rules", "by the rules"),
            ("red", "red"),
        ):
            ax.plot(tl["start"], tl[col], "o-", ms=3, label=label)
        ax.axvline(pd.Timestamp(result.window["since"]), color="grey", ls=":", lw=1)
        import matplotlib.dates as mdates

        locator = mdates.AutoDateLocator()
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
        ax.set_ylabel("share of decisions")
        ax.set_title("Flag rates over time (previous window | window)")
        ax.legend(fontsize=8)
        fig.tight_layout()
        figs["flag_rates_over_time"] = fig

    fr = result.flag_rates
    rules = fr[fr["kind"] == "rule"] if not fr.empty else fr
    if not rules.empty:
        fig, ax = plt.subplots(figsize=(7, max(3, 0.3 * len(rules))))
        y = np.arange(len(rules))
        ax.barh(y - 0.2, rules["rate_previous"], height=0.4, label="previous window")
        ax.barh(y + 0.2, rules["rate"], height=0.4, label="window")
        ax.set_yticks(y, rules["key"])
        ax.set_xlabel("share of decisions where the rule fired")
        ax.set_title("Flag rate by rule")
        ax.legend()
        fig.tight_layout()
        figs["flag_rates_by_rule"] = fig

    bp = result.outcomes.get("by_period")
    if isinstance(bp, pd.DataFrame) and not bp.empty and bp["with_outcome"].sum() > 0:
        fig, ax = plt.subplots(figsize=(7, 3.5))
        for col in ("roc_auc", "recall_at_capacity", "precision_at_capacity"):
            ax.plot(bp["period"], bp[col], "o-", label=col)
        ax.axhline(cfg.auc_floor, color="grey", ls=":", lw=1)
        ax.set_ylim(0, 1)
        ax.set_title("Realised performance by decision period")
        ax.legend(fontsize=8)
        fig.tight_layout()
        figs["realised_performance"] = fig
        rel = result.outcomes.get("reliability", {})
        period = result.outcomes.get("latest_period")
        if period and period in rel:
            from riskml.model.metrics import reliability_plot

            figs["realised_reliability"] = reliability_plot(
                rel[period], title=f"Reliability, decisions of {period}"
            )
    return figs


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def render_report(result: MonitorResult, figs: dict[str, Any] | None = None) -> str:
    """The monitoring report as one self-contained HTML page (plots embedded as PNG)."""
    import jinja2

    figs = figs if figs is not None else figures(result)
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(Path(__file__).parent / "templates")),
        autoescape=jinja2.select_autoescape(["html"]),
    )

    def table(df: pd.DataFrame | None, floats: str = "{:.4f}") -> str:
        if df is None or df.empty:
            return "<p><em>none</em></p>"
        return df.to_html(
            index=False, float_format=lambda v: floats.format(v), na_rep="", classes="t", border=0
        )

    fd = result.feature_drift
    top = result.top_drift(15)
    prov = (
        fd[(fd["scope"] != "all") & (fd["level"] != "ok")].sort_values("psi", ascending=False)
        if not fd.empty
        else fd
    )
    fr = result.flag_rates
    fr_view = fr[(fr["kind"] != "county") | (fr["level"] != "ok")] if not fr.empty else fr
    out = result.outcomes
    return env.get_template("monitoring.html").render(
        r=result,
        figs={k: _png(v) for k, v in figs.items()},
        alerts=[a.as_dict() for a in result.alerted + result.warnings],
        top_drift=table(top),
        province_drift=table(prov),
        missing=table(
            result.missing[result.missing["level"] != "ok"]
            if not result.missing.empty
            else result.missing
        ),
        missing_all=table(result.missing),
        flag_rates=table(fr_view),
        lines=table(result.lines, "{:.2f}"),
        outcomes_by_period=table(out.get("by_period")),
        outcomes_latest_county=table(
            out["by_county"][out["by_county"]["period"] == out.get("latest_period")]
            if out.get("latest_period")
            else None
        ),
        counts=dumps(result.counts, indent=1),
        score={k: v for k, v in result.score.items() if not isinstance(v, list)},
        generated=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def log_to_mlflow(result: MonitorResult, html: str, figs: dict[str, Any] | None = None) -> str:
    """One run in the "household-risk-monitoring" experiment: metrics, report, plots, tables, alerts."""
    from riskml.training import registry

    mlflow = registry.import_mlflow()
    exp_id = registry.ensure_experiment(MONITORING_EXPERIMENT)
    figs = figs if figs is not None else figures(result)
    name = result.model.get("name", "unknown")
    version = str(result.model.get("version", "unknown"))
    run_name = f"monitor-v{version}-{result.window['since'][:10]}-{result.window['until'][:10]}"
    with mlflow.start_run(experiment_id=exp_id, run_name=run_name) as run:
        mlflow.set_tags(
            {
                "riskml.model_name": name,
                "riskml.model_version": version,
                "riskml.model_uri": str(result.model.get("uri", "")),
                "riskml.window_since": result.window["since"],
                "riskml.window_until": result.window["until"],
                "riskml.monitor_status": result.status,
                "riskml.alerts": str(len(result.alerted)),
            }
        )
        mlflow.log_metrics(result.metrics())
        mlflow.log_text(html, "monitoring_report.html")
        for key, fig in figs.items():
            mlflow.log_figure(fig, f"plots/{key}.png")
        mlflow.log_dict([a.as_dict() for a in result.alerts], "alerts.json")
        mlflow.log_dict(result.config.raw or {}, "config/monitoring.yaml")
        for key, df in (
            ("feature_drift", result.feature_drift),
            ("missing", result.missing),
            ("flag_rates", result.flag_rates),
            ("lines", result.lines),
        ):
            if isinstance(df, pd.DataFrame) and not df.empty:
                mlflow.log_text(df.to_csv(index=False), f"tables/{key}.csv")
        for key in ("by_period", "by_county"):
            df = result.outcomes.get(key)
            if isinstance(df, pd.DataFrame) and not df.empty:
                mlflow.log_text(df.to_csv(index=False), f"tables/outcomes_{key}.csv")
        return run.info.run_id


__all__ = ["MONITORING_EXPERIMENT", "figures", "log_to_mlflow", "pyplot", "render_report"]
