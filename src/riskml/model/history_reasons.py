"""The reason sentences of the history features (``h_*``, ``riskml.model.features``).

(risk type, Chinese, English) per feature, with the feature's value as a placeholder;
``riskml.model.reasons`` makes them ``Reason`` entries beside the others.
"""

from __future__ import annotations

HISTORY_REASON_TEXTS: dict[str, tuple[str, str, str]] = {
    "h_n_lags": (
        "other",
        "已知往期监测记录 {h_n_lags} 期",
        "{h_n_lags} earlier record(s) known",
    ),
    "h_pc_income_to_line_l1": (
        "low_income",
        "上期人均纯收入为当前监测线的 {h_pc_income_to_line_l1}",
        "per-capita income last period was {h_pc_income_to_line_l1} of today's line",
    ),
    "h_pc_income_to_line_l2": (
        "low_income",
        "前两期人均纯收入为当前监测线的 {h_pc_income_to_line_l2}",
        "per-capita income two periods back was {h_pc_income_to_line_l2} of today's line",
    ),
    "h_pc_income_to_line_l3": (
        "low_income",
        "前三期人均纯收入为当前监测线的 {h_pc_income_to_line_l3}",
        "per-capita income three periods back was {h_pc_income_to_line_l3} of today's line",
    ),
    "h_pc_income_to_line_mean": (
        "low_income",
        "往期人均纯收入平均为当前监测线的 {h_pc_income_to_line_mean}",
        "earlier per-capita income averaged {h_pc_income_to_line_mean} of today's line",
    ),
    "h_pc_income_to_line_min": (
        "low_income",
        "往期人均纯收入最低为当前监测线的 {h_pc_income_to_line_min}",
        "earlier per-capita income was as low as {h_pc_income_to_line_min} of today's line",
    ),
    "h_pc_income_trend": (
        "low_income",
        "人均纯收入每年变化监测线的 {h_pc_income_trend}",
        "per-capita income changes by {h_pc_income_trend} of the line a year",
    ),
    "h_pc_income_volatility": (
        "unstable_employment",
        "人均纯收入波动（标准差）为监测线的 {h_pc_income_volatility}",
        "per-capita income varies by {h_pc_income_volatility} of the line (standard deviation)",
    ),
    "h_lags_below_line": (
        "low_income",
        "往期有 {h_lags_below_line} 期人均纯收入低于监测线",
        "{h_lags_below_line} earlier period(s) below the monitoring line",
    ),
    "h_lags_below_1_5_dibao": (
        "low_income",
        "往期有 {h_lags_below_1_5_dibao} 期人均纯收入低于低保线的 1.5 倍",
        "{h_lags_below_1_5_dibao} earlier period(s) below 1.5 times the dibao line",
    ),
    "h_medical_to_income_l1": (
        "illness",
        "上期医疗自付支出占家庭纯收入的 {h_medical_to_income_l1}",
        "medical spending last period was {h_medical_to_income_l1} of net income",
    ),
    "h_medical_to_income_l2": (
        "illness",
        "前两期医疗自付支出占家庭纯收入的 {h_medical_to_income_l2}",
        "medical spending two periods back was {h_medical_to_income_l2} of net income",
    ),
    "h_education_to_income_l1": (
        "schooling",
        "上期教育支出占家庭纯收入的 {h_education_to_income_l1}",
        "schooling costs last period were {h_education_to_income_l1} of net income",
    ),
    "h_education_to_income_l2": (
        "schooling",
        "前两期教育支出占家庭纯收入的 {h_education_to_income_l2}",
        "schooling costs two periods back were {h_education_to_income_l2} of net income",
    ),
    "h_employment_intensity_l1": (
        "unstable_employment",
        "上期务工时间占全年的 {h_employment_intensity_l1}",
        "time in work last period: {h_employment_intensity_l1} of the year",
    ),
    "h_employment_intensity_l2": (
        "unstable_employment",
        "前两期务工时间占全年的 {h_employment_intensity_l2}",
        "time in work two periods back: {h_employment_intensity_l2} of the year",
    ),
    "h_migrant_share_l1": (
        "unstable_employment",
        "上期外出务工劳动力占 {h_migrant_share_l1}",
        "migrant workers last period: {h_migrant_share_l1} of the workers",
    ),
    "h_migrant_share_l2": (
        "unstable_employment",
        "前两期外出务工劳动力占 {h_migrant_share_l2}",
        "migrant workers two periods back: {h_migrant_share_l2} of the workers",
    ),
    "h_months_since_disaster": (
        "disaster",
        "距最近一次灾害损失 {h_months_since_disaster} 个月",
        "{h_months_since_disaster} months since the last disaster loss",
    ),
    "h_months_since_medical_shock": (
        "illness",
        "距最近一次大额医疗支出 {h_months_since_medical_shock} 个月",
        "{h_months_since_medical_shock} months since the last large medical spending",
    ),
    "h_months_since_income_drop": (
        "low_income",
        "距最近一次收入大幅下降 {h_months_since_income_drop} 个月",
        "{h_months_since_income_drop} months since income last fell sharply",
    ),
    "h_d_household_size_l2": (
        "other",
        "家庭人口比前两期变化 {h_d_household_size_l2} 人",
        "household size changed by {h_d_household_size_l2} over two periods",
    ),
    "h_d_household_size_l3": (
        "other",
        "家庭人口比前三期变化 {h_d_household_size_l3} 人",
        "household size changed by {h_d_household_size_l3} over three periods",
    ),
    "h_d_labor_count_l2": (
        "lack_of_labour",
        "劳动力比前两期变化 {h_d_labor_count_l2} 人",
        "workers changed by {h_d_labor_count_l2} over two periods",
    ),
    "h_d_labor_count_l3": (
        "lack_of_labour",
        "劳动力比前三期变化 {h_d_labor_count_l3} 人",
        "workers changed by {h_d_labor_count_l3} over three periods",
    ),
}
