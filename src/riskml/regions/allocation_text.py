"""The allocation explained and drawn: the formula with the configured weights, a page, a chart.

``explanation(config, lang)`` returns the formula's steps and the weights and costs in force
as plain data (title, paragraphs, rows), in Chinese or English, for any page (the region role's
pages reuse it); ``explanation_markdown`` and ``page_markdown`` render it, Chinese first;
``chart`` draws allocation against the equal split per county (matplotlib).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from riskml.policy.risk_types import RISK_TYPES
from riskml.regions.allocate import Allocation, AllocationConfig, AllocationError


def explanation(config: AllocationConfig, lang: str = "zh") -> dict[str, Any]:
    """The formula with the configured weights: ``title``, ``steps`` (paragraphs), ``weights``
    and ``costs`` (rows of (name, value, meaning)), for a page or a report. ``lang``: zh or en."""
    if lang not in ("zh", "en"):
        raise AllocationError("lang", "must be zh or en")
    b = config.bound
    inc = dict(config.incentives)
    pen = dict(config.penalties)
    zh = lang == "zh"
    steps_zh = [
        "帮扶需求：需求 = 预计下一年新增致贫返贫户数 E（各户校准风险之和，riskml regions）× 每户帮扶成本 k。",
        "每户帮扶成本 k = m × Σ 风险类型占比 × 该类型帮扶措施成本；占比取自该县监测户的风险类型构成"
        f"（监测户不足 {config.mix_min_households} 户时取预警户，再无则取全部县合计）；"
        + (
            "m 为每户风险类型数（至少 1，每种风险类型至少一项帮扶措施）。"
            if config.count_every_type
            else "每户按一项措施计（m = 1）。"
        ),  # fmt: skip
        f"权重 = 需求 × (1 + {config.key_national:g}·国家乡村振兴重点帮扶县 + {config.key_provincial:g}·省级重点帮扶县) × 绩效系数。",  # fmt: skip
        "绩效系数（正向激励、负向惩戒）= 1 + Σ 激励权重 ×（指标 − 各县平均）− Σ 惩戒权重 ×（指标 − 各县平均），"
        f"限定在 [{1 - b:g}, {1 + b:g}]；没有该项数据的县不加不减。",
        "分配额 = 预算 × 本县权重 ÷ 各县权重之和，按最大余数法取整到元，合计正好等于预算。",
        "对照：按户平均分配 = 预算 × 本县户数 ÷ 总户数。",
        "可覆盖户数 = min(E, 分配额 ÷ k)：资金按本县风险类型构成能帮扶的户数，不超过预计户数。",
    ]
    steps_en = [
        "Need = E, the households expected to fall below the line next year (the sum of calibrated risks, riskml regions), × k, the cost of supporting one household.",  # fmt: skip
        "k = m × Σ over risk types of the type's share × the cost of its measures; the shares are the risk-type mix of the county's monitored households"
        f" (its flagged households when fewer than {config.mix_min_households} are monitored, else all counties pooled); "
        + (
            "m is the risk types per household (at least 1: a measure for each risk type)."
            if config.count_every_type
            else "one measure per household (m = 1)."
        ),  # fmt: skip
        f"Weight = need × (1 + {config.key_national:g} for a national key assistance county + {config.key_provincial:g} for a provincial key county) × the performance factor.",  # fmt: skip
        "Performance factor (incentives and penalties) = 1 + Σ incentive weight × (rate − mean over counties) − Σ penalty weight × (rate − mean), "
        f"kept within [{1 - b:g}, {1 + b:g}]; a county without the data is neutral.",
        "Allocation = budget × the county's weight ÷ the sum of weights, rounded to the yuan by largest remainders so that it adds up to the budget exactly.",  # fmt: skip
        "Comparison: the equal-per-household split = budget × the county's households ÷ all households.",  # fmt: skip
        "Households reached = min(E, allocation ÷ k): the households the money supports at the county's mix, at most those expected.",  # fmt: skip
    ]
    names = {
        "key_national": ("国家乡村振兴重点帮扶县加权", "national key county weight"),
        "key_provincial": ("省级重点帮扶县加权", "provincial key county weight"),
        "confirmed_on_time": (
            f"激励：及时认定（{config.confirm_deadline_days:g} 天内，min(1, 时限 ÷ 平均天数)）",
            f"incentive: confirmed on time (min(1, {config.confirm_deadline_days:g} days ÷ mean days lead to decision))",
        ),  # fmt: skip
        "eliminated": (
            "激励：风险消除率（消除 ÷ (消除 + 仍在监测)）",
            "incentive: risks eliminated ÷ (eliminated + still monitored)",
        ),  # fmt: skip
        "assets_revived": (
            "激励：闲置帮扶资产盘活率",
            "incentive: idle assistance assets revived ÷ (revived + idle)",
        ),  # fmt: skip
        "overdue": (
            "惩戒：逾期环节占比（逾期 ÷ 在办）",
            "penalty: open cases past a step's deadline ÷ open cases",
        ),  # fmt: skip
        "bound": ("绩效系数上下限 ±", "performance factor bound ±"),
        "window_months": ("绩效统计月数", "months of cases counted"),
    }
    values = {"key_national": config.key_national, "key_provincial": config.key_provincial,
              **inc, **pen, "bound": b, "window_months": config.window_months}  # fmt: skip
    weights = [(k, values[k], names[k][0 if zh else 1]) for k in names]
    costs = [(code, config.costs[code], RISK_TYPES[code].zh if zh else RISK_TYPES[code].en) for code in RISK_TYPES]  # fmt: skip
    return {
        "lang": lang,
        "title": "帮扶资金分配公式" if zh else "How the support budget is allocated",
        "steps": steps_zh if zh else steps_en,
        "weights": weights,
        "costs": costs,
        "source": config.source,
    }


def explanation_markdown(config: AllocationConfig) -> str:
    """``explanation`` in Chinese, then English, as Markdown."""
    parts = []
    for lang in ("zh", "en"):
        e = explanation(config, lang)
        zh = lang == "zh"
        parts.append(f"## {e['title']}\n")
        parts.extend(f"{i}. {s}" for i, s in enumerate(e["steps"], start=1))
        head = ("| 设置 | 值 | 含义 |", "| setting | value | meaning |")[0 if zh else 1]
        parts += ["", head, "| --- | ---: | --- |"]
        parts += [f"| `{k}` | {v:g} | {m} |" for k, v, m in e["weights"]]
        head = ("| 风险类型 | 每户成本（元） | |", "| risk type | cost per household (yuan) | |")[0 if zh else 1]  # fmt: skip
        parts += ["", head, "| --- | ---: | --- |"]
        parts += [f"| `{k}` | {v:,.0f} | {m} |" for k, v, m in e["costs"]]
        parts.append("")
    return "\n".join(parts)


def page_markdown(result: Allocation, chart_name: str | None = None, top: int = 20) -> str:
    """A page for the run: the headline figures, the formula (``explanation_markdown``), the top counties."""
    s = result.summary
    gain = s["reached_allocation"] - s["reached_equal_split"]
    lines = [
        f"# 帮扶资金分配 Support allocation ({s['period']})",
        "",
        f"- 预算 budget: {s['budget']:,} 元 yuan; 县 counties: {s['counties']}; 户 households: {s['households']:,}",  # fmt: skip
        f"- 预计致贫返贫户 expected households at risk: {s['expected']:,.1f}; 需求 need: {s['need']:,.0f} 元 yuan",  # fmt: skip
        f"- 可覆盖户数 households reached: 按需分配 allocation {s['reached_allocation']:,.1f}, 按户均分 equal split {s['reached_equal_split']:,.1f} ({gain:+,.1f})",  # fmt: skip
        f"- 覆盖需求最少的县 least-covered county's share of its need: 按需分配 allocation {s['need_covered_min_allocation']:.0%}, 按户均分 equal split {s['need_covered_min_equal_split']:.0%}; "  # fmt: skip
        f"超出需求的资金 money beyond a county's need: {s['beyond_need_allocation']:,.0f} vs {s['beyond_need_equal_split']:,.0f} 元 yuan",  # fmt: skip
        f"- 绩效系数 performance factor: {s['factor_min']:.3f}–{s['factor_max']:.3f}; 绩效统计 cases counted: {s['window']}",  # fmt: skip
        "",
    ]
    if chart_name:
        lines += [f"![allocation vs equal split]({chart_name})", ""]
    lines.append(explanation_markdown(result.config))
    lines += ["## 分配最多的县 Counties with the largest allocations", "",
              "| 县 county | 重点 key | 预计 expected (90%) | 绩效 factor | 分配 allocation | 均分 equal split | 覆盖 reached | 均分覆盖 reached (equal) |",  # fmt: skip
              "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]  # fmt: skip
    for r in result.counties.head(top).itertuples():
        key = "国家 national" if r.key_national else ("省级 provincial" if r.key_provincial else "")
        lines.append(
            f"| {r.county_zh or r.county_code} {r.county_code} | {key} | {r.expected:.1f} ({r.expected_low:.0f}–{r.expected_high:.0f}) "  # fmt: skip
            f"| {r.performance_factor:.3f} | {r.allocation:,} | {r.equal_split:,} | {r.reached_allocation:.1f} | {r.reached_equal_split:.1f} |"  # fmt: skip
        )
    return "\n".join(lines) + "\n"


CJK_FONTS = ("WenQuanYi Micro Hei", "Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "SimHei")  # fmt: skip


def chart(result: Allocation, top: int = 20) -> Any:
    """Horizontal bars, allocation against the equal split (10,000 yuan), the ``top`` counties by
    allocation; Chinese names where a CJK font is installed, else codes and English names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import font_manager

    installed = {f.name for f in font_manager.fontManager.ttflist}
    cjk = [f for f in CJK_FONTS if f in installed]
    rows = result.counties.head(top).iloc[::-1]
    labels = [
        (
            f"{r.county_zh} {r.county_code}"
            if cjk and r.county_zh
            else f"{r.county_en or ''} {r.county_code}".strip()
        )
        + (" ★" if r.key_national else (" ☆" if r.key_provincial else ""))
        for r in rows.itertuples()
    ]
    y = np.arange(len(rows))
    with plt.rc_context({"axes.unicode_minus": False}):
        fig, ax = plt.subplots(figsize=(8, 0.32 * len(rows) + 1.6))
        ax.barh(y + 0.2, rows["allocation"] / 1e4, height=0.4, label="allocation 按需分配")
        ax.barh(y - 0.2, rows["equal_split"] / 1e4, height=0.4, label="equal split 按户均分", color="#bbbbbb")  # fmt: skip
        ax.set_yticks(y, labels, fontsize=8)
        ax.set_xlabel("10,000 yuan (万元)")
        s = result.summary
        ax.set_title(
            f"{s['period']}: households reached {s['reached_allocation']:,.0f} (allocation) vs "
            f"{s['reached_equal_split']:,.0f} (equal split); ★ national, ☆ provincial key county",
            fontsize=9,
        )
        ax.legend(fontsize=8, loc="lower right")
        # fonts are found when drawing: name them on every text (glyph by glyph fallback)
        for text in fig.findobj(matplotlib.text.Text):
            text.set_fontfamily([*cjk, "DejaVu Sans"])
        fig.tight_layout()
    return fig
