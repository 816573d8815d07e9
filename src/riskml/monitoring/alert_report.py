"""The alert-quality report: plain-text tables, matplotlib figures and a self-contained HTML page.

The figures are ``riskml.alerts.quality``'s (``AlertQuality``); the page is rendered with
Jinja2 from ``templates/alert_quality.html``, plots embedded as PNG, like the monitoring
report (``riskml.monitoring.report``). Household ids appear nowhere.
"""

from __future__ import annotations

import base64
import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from riskml.alerts.quality import ALL, AlertQuality
from riskml.monitoring.report import pyplot

__all__ = ["figures", "format_quality", "render_html", "write_report"]


# --------------------------------------------------------------------------- as text
def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and v != v)


def _pct(row: dict[str, Any], key: str = "share") -> str:
    v, lo, hi = row[key], row["ci_low"], row["ci_high"]
    return "" if _missing(v) else f"{v:.0%} [{lo:.0%}–{hi:.0%}]"


def _num(v: Any) -> str:
    if _missing(v):
        return ""
    return f"{v:,.0f}" if float(v) == int(float(v)) else f"{v:,.1f}"


def _table(head: list[str], rows: list[list[str]], left: int = 2) -> list[str]:
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(head)]
    fmt = [f"{{:<{w}}}" if i < left else f"{{:>{w}}}" for i, w in enumerate(widths)]
    out = ["  ".join(f.format(h) for f, h in zip(fmt, head, strict=True)).rstrip()]
    out += ["  ".join(f.format(c) for f, c in zip(fmt, r, strict=True)).rstrip() for r in rows]
    return out


def format_quality(q: AlertQuality, what_if: bool = True) -> str:
    """The figures as plain-text tables (shares with their 95% Wilson interval)."""
    c = q.counts
    lines = [
        f"Alert quality: {c['alerts']:,} alerts ({c['matched']:,} matched) of "
        f"{c['first_period'] or '-'} to {c['last_period'] or '-'}, {c['alert_leads']:,} alert "
        f"leads; {c['confirmed_cases']:,} confirmed cases of {c['cases']:,}",
        "",
        "By department and threshold (share confirmed: confirmed / visited, 95% interval)",
    ]
    lines += _table(
        ["department", "trigger", "threshold", "alerts", "matched", "leads", "on visited case",
         "visited", "confirmed", "share confirmed"],
        [[r["department"], r["trigger"], _num(r["threshold"]), _num(r["alerts"]),
          _num(r["matched"]), _num(r["leads"]), _num(r["on_visited_case"]), _num(r["visited"]),
          _num(r["confirmed"]), _pct(r)]
         for r in q.by_trigger.to_dict("records")],
    )  # fmt: skip
    lines += ["", "By source (channel); found first: confirmed cases whose first lead it was"]
    lines += _table(
        ["source", "leads", "visited", "confirmed", "share confirmed", "found first",
         "share found first", "median days"],
        [[r["source"], _num(r["leads"]), _num(r["visited"]), _num(r["confirmed"]), _pct(r),
          _num(r["cases_found_first"]),
          "" if _missing(r["share_found_first"]) else f"{r['share_found_first']:.0%}",
          _num(r["median_days_to_confirmation"])]
         for r in q.by_source.to_dict("records")],
        left=1,
    )  # fmt: skip
    if what_if and not q.what_if.empty:
        lines += [
            "",
            f"Threshold what-if on the matched alerts (confirmed: by any source, within "
            f"{q.window_days} days of the alert's month; cases missed: found first by this "
            "trigger's leads alone)",
        ]
        lines += _table(
            ["trigger", "factor", "threshold", "fire", "added", "removed", "confirmed",
             "share confirmed", "cases missed"],
            [[r["trigger"], "" if _missing(r["factor"]) else f"{r['factor']:g}×", _num(r["threshold"]), _num(r["fire"]), _num(r["added"]),
              _num(r["removed"]), _num(r["confirmed_any_source"]), _pct(r),
              _num(r["confirmed_cases_missed"])]
             for r in q.what_if.astype(object).where(q.what_if.notna(), None).to_dict("records")],
        )  # fmt: skip
    return "\n".join(lines)


# --------------------------------------------------------------------------- figures
def _errors(df: pd.DataFrame) -> np.ndarray:
    share = df["share"].to_numpy(float)
    low, high = share - df["ci_low"].to_numpy(float), df["ci_high"].to_numpy(float) - share
    return np.clip(np.vstack([low, high]), 0, None)


def figures(q: AlertQuality) -> dict[str, Any]:
    """The report's figures: share confirmed by department and threshold, by source, the what-if."""
    plt = pyplot()
    figs: dict[str, Any] = {}
    bt = q.by_trigger[(q.by_trigger["visited"] > 0) & (q.by_trigger["trigger"] != ALL)]
    if not bt.empty:
        labels = [f"{r.department}: {r.trigger}" + ("" if pd.isna(r.threshold) else f" ({r.threshold:g})")
                  for r in bt.itertuples()]  # fmt: skip
        fig, ax = plt.subplots(figsize=(8, 1.2 + 0.4 * len(bt)))
        y = np.arange(len(bt))
        ax.barh(y, bt["share"], xerr=_errors(bt), color="#4c72b0", capsize=3)
        for i, r in enumerate(bt.itertuples()):
            ax.text(1.01, i, f"{r.confirmed}/{r.visited}", va="center", fontsize=8,
                    transform=ax.get_yaxis_transform())  # fmt: skip
        ax.set_yticks(y, labels, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        ax.set_xlabel("share of visited alert leads confirmed (95% Wilson interval)")
        ax.set_title("Alerts confirmed after the visit, by department and threshold")
        fig.tight_layout()
        figs["by_trigger"] = fig
    bs = q.by_source
    if not bs.empty:
        fig, axes = plt.subplots(1, 2, figsize=(10, 1.5 + 0.45 * len(bs)))
        y = np.arange(len(bs))
        axes[0].barh(y, bs["share_found_first"].fillna(0), color="#55a868")
        axes[0].set_yticks(y, bs["source"])
        axes[0].set_xlim(0, 1)
        axes[0].set_xlabel("share of confirmed cases found first")
        ok = bs["visited"] > 0
        axes[1].barh(y[ok], bs["share"][ok], xerr=_errors(bs[ok]), color="#4c72b0", capsize=3)
        axes[1].set_yticks(y, bs["source"])
        axes[1].set_xlim(0, 1)
        axes[1].set_xlabel("share of visited leads confirmed (95%)")
        for ax in axes:
            ax.invert_yaxis()
        fig.suptitle("By source (channel)")
        fig.tight_layout()
        figs["by_source"] = fig
    wi = q.what_if
    if not wi.empty:
        names = list(dict.fromkeys(wi["trigger"]))
        fig, axes = plt.subplots(len(names), 1, figsize=(8, 2.6 * len(names)), squeeze=False)
        for ax, name in zip(axes[:, 0], names, strict=True):
            d = wi[wi["trigger"] == name].sort_values("threshold")
            ax.plot(d["threshold"], d["fire"], "o-", label="alerts that fire")
            ax.plot(d["threshold"], d["confirmed_any_source"], "s-", label="of them confirmed")
            ax.plot(
                d["threshold"], d["confirmed_cases_missed"], "^--", label="confirmed cases missed"
            )
            now = d[(d["factor"] == 1.0)]
            for th in now["threshold"]:
                ax.axvline(th, color="grey", ls=":", lw=1)
            ax.set_title(f"{name} ({d['field'].iloc[0]} {d['op'].iloc[0]} threshold)", fontsize=9)
            ax.set_ylabel("count")
            ax.legend(fontsize=7)
        axes[-1, 0].set_xlabel("threshold (dotted: in force)")
        fig.tight_layout()
        figs["what_if"] = fig
    return figs


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def render_html(q: AlertQuality, title: str = "", figs: dict[str, Any] | None = None) -> str:
    """The report as one self-contained HTML page (plots embedded as PNG)."""
    import jinja2

    figs = figs if figs is not None else figures(q)
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(Path(__file__).parent / "templates")),
        autoescape=jinja2.select_autoescape(["html"]),
    )

    def table(df: pd.DataFrame) -> str:
        if df.empty:
            return "<p><em>none</em></p>"
        return df.to_html(index=False, float_format=lambda v: f"{v:.3f}", na_rep="",
                          classes="t", border=0)  # fmt: skip

    try:
        return env.get_template("alert_quality.html").render(
            title=title, q=q, counts=q.counts, figs={k: _png(v) for k, v in figs.items()},
            by_trigger=table(q.by_trigger), by_source=table(q.by_source),
            what_if=table(q.what_if), generated=datetime.now(UTC).isoformat(timespec="seconds"),
        )  # fmt: skip
    finally:
        plt = pyplot()
        for fig in figs.values():
            plt.close(fig)


def write_report(q: AlertQuality, path: str | Path, title: str = "") -> Path:
    """Write the HTML report to ``path`` (folders made); the path."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(render_html(q, title), encoding="utf-8")
    return p
