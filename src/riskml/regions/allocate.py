"""Support allocation across counties (issue 17 item 4): a budget split by need, key counties and performance.

From the county rows of the regional table (``riskml regions``; one period) and the weights of
``allocation.yaml`` (``AllocationConfig``), per county c:

* the risk-type mix ``s_{c,t}``: the shares of risk-type mentions among its monitored households
  (``monitored_rt_<t>``), else its flagged households (``flagged_<t>``), else the mix pooled
  over the run's counties; ``m_c`` the mentions per household (at least 1: a measure per risk
  type);
* the cost of one household ``k_c = m_c × Σ_t s_{c,t} × cost_t`` and the need ``E_c × k_c``
  (``E_c``: expected households falling below the line);
* the weight ``need_c × (1 + key weights) × f_c``, ``f_c`` the performance factor (cases
  confirmed on time, risks eliminated, idle assets revived; overdue steps), bounded;
* ``allocation_c``: the budget in proportion to the weights, whole yuan summing to the budget
  (largest remainders), against the equal-per-household split, and the households each
  reaches: ``min(E_c, allocation_c / k_c)``.

Pure functions; ``riskml.regions.allocation_text`` explains the formula with the configured
weights (Chinese and English, for pages) and draws the chart. Nothing here reads households:
the table holds counts only.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from riskml.config import package_file
from riskml.data.periods import month_text, parse_period
from riskml.data.regions import PROVINCES
from riskml.policy.risk_types import RISK_TYPES

CONFIG_FILE = package_file("regions/allocation.yaml")
MIX_SOURCES = {"monitored": ("monitored", "monitored_rt_"), "flagged": ("flagged", "flagged_")}
INCENTIVES = ("confirmed_on_time", "eliminated", "assets_revived")
PENALTIES = ("overdue",)
INDICATORS = (*INCENTIVES, *PENALTIES)
REQUIRED = ("level", "code", "period", "households", "expected", "expected_low", "expected_high")
ASSET_COLUMNS = ("county_code", "assets_revived", "assets_idle")
# the keys of the configuration file, nested; a leaf is None
SCHEMA: dict[str, Any] = {
    "version": None,
    "costs": {code: None for code in RISK_TYPES},
    "mix": {"sources": None, "min_households": None, "count_every_type": None},
    "weights": {"key_national": None, "key_provincial": None},
    "performance": {
        "bound": None,
        "window_months": None,
        "confirm_deadline_days": None,
        "incentives": {k: None for k in INCENTIVES},
        "penalties": {k: None for k in PENALTIES},
    },
}


class AllocationError(ValueError):
    """An input or setting the allocation cannot use; names the field (and row, 0-based, if any)."""

    def __init__(self, field: str, problem: str, row: int | None = None, source: str = ""):
        self.field, self.problem, self.row, self.source = field, problem, row, source
        where = f"row {row}, field {field!r}" if row is not None else f"field {field!r}"
        super().__init__(f"{source + ': ' if source else ''}{where}: {problem}")


@dataclass(frozen=True)
class AllocationConfig:
    costs: dict[str, float]
    mix_sources: tuple[str, ...] = ("monitored", "flagged")
    mix_min_households: int = 10
    count_every_type: bool = True
    key_national: float = 0.20
    key_provincial: float = 0.10
    bound: float = 0.20
    window_months: int = 12
    confirm_deadline_days: float = 15.0
    incentives: tuple[tuple[str, float], ...] = ()
    penalties: tuple[tuple[str, float], ...] = ()
    source: str = "<config>"

    def with_costs(self, costs: dict[str, float]) -> AllocationConfig:
        """The same settings with other costs (checked: every risk type, each > 0)."""
        return replace(self, costs=check_costs(costs, "costs"))


# --------------------------------------------------------------------------- configuration
def _unknown(data: Any, schema: dict[str, Any], prefix: str, source: str) -> None:
    if not isinstance(data, dict):
        raise AllocationError(prefix or "<file>", "must be a mapping", source=source)
    for key, value in data.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if key not in schema:
            known = ", ".join(schema)
            raise AllocationError(name, f"unknown key (known: {known})", source=source)
        if isinstance(schema[key], dict) and key != "costs":
            _unknown(value, schema[key], name, source)


def _number(value: Any, name: str, source: str, *, low: float = 0.0, high: float = math.inf) -> float:  # fmt: skip
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise AllocationError(name, f"must be a number, got {value!r}", source=source)
    if not low <= float(value) <= high:
        span = f"between {low:g} and {high:g}" if math.isfinite(high) else f"at least {low:g}"
        raise AllocationError(name, f"must be {span}, got {value!r}", source=source)
    return float(value)


def check_costs(costs: Any, prefix: str = "costs", source: str = "") -> dict[str, float]:
    """Yuan per household for every risk type: all present, none unknown, each > 0."""
    if not isinstance(costs, dict):
        raise AllocationError(prefix, "must map each risk type to a cost in yuan", source=source)
    for key in costs:
        if key not in RISK_TYPES:
            raise AllocationError(f"{prefix}.{key}", f"unknown risk type (known: {', '.join(RISK_TYPES)})", source=source)  # fmt: skip
    missing = [code for code in RISK_TYPES if code not in costs]
    if missing:
        raise AllocationError(f"{prefix}.{missing[0]}", f"missing cost for measure type(s) {', '.join(missing)}", source=source)  # fmt: skip
    out = {}
    for code in RISK_TYPES:
        out[code] = _number(costs[code], f"{prefix}.{code}", source)
        if out[code] <= 0:
            raise AllocationError(f"{prefix}.{code}", "must be more than 0 yuan", source=source)
    return out


def parse_config(data: Any, source: str = "<config>") -> AllocationConfig:
    """An ``AllocationConfig`` from the file's mapping; every key checked (``SCHEMA``)."""
    _unknown(data, SCHEMA, "", source)
    for key in ("costs", "mix", "weights", "performance"):
        if key not in data:
            raise AllocationError(key, "missing", source=source)
    mix, weights, perf = data["mix"], data["weights"], data["performance"]
    sources = mix.get("sources", ["monitored", "flagged"])
    if not isinstance(sources, list) or not sources or any(s not in MIX_SOURCES for s in sources):
        raise AllocationError("mix.sources", f"must be a list of {', '.join(MIX_SOURCES)}", source=source)  # fmt: skip
    min_h = mix.get("min_households", 10)
    if isinstance(min_h, bool) or not isinstance(min_h, int) or min_h < 1:
        raise AllocationError("mix.min_households", "must be a whole number ≥ 1", source=source)
    every = mix.get("count_every_type", True)
    if not isinstance(every, bool):
        raise AllocationError("mix.count_every_type", "must be true or false", source=source)
    window = perf.get("window_months", 12)
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise AllocationError("performance.window_months", "must be a whole number ≥ 1", source=source)  # fmt: skip

    def weights_of(group: str, names: tuple[str, ...]) -> tuple[tuple[str, float], ...]:
        given = perf.get(group) or {}
        return tuple((k, _number(given.get(k, 0.0), f"performance.{group}.{k}", source)) for k in names)  # fmt: skip

    return AllocationConfig(
        costs=check_costs(data["costs"], "costs", source),
        mix_sources=tuple(sources),
        mix_min_households=min_h,
        count_every_type=every,
        key_national=_number(weights.get("key_national", 0.0), "weights.key_national", source),
        key_provincial=_number(
            weights.get("key_provincial", 0.0), "weights.key_provincial", source
        ),  # fmt: skip
        bound=_number(perf.get("bound", 0.2), "performance.bound", source, high=0.99),
        window_months=window,
        confirm_deadline_days=_number(
            perf.get("confirm_deadline_days", 15),
            "performance.confirm_deadline_days",
            source,
            low=1.0,
        ),  # fmt: skip
        incentives=weights_of("incentives", INCENTIVES),
        penalties=weights_of("penalties", PENALTIES),
        source=source,
    )


def load_config(path: str | Path | None = None) -> AllocationConfig:
    """The shipped ``allocation.yaml`` or an operator's file (strict YAML, every key checked)."""
    p = Path(path or CONFIG_FILE)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise AllocationError("<file>", f"not valid YAML: {exc}", source=p.name) from None
    return parse_config(data, p.name)


def load_costs(path: str | Path) -> dict[str, float]:
    """Costs per measure (risk) type from a CSV (``risk_type,cost_yuan``) or a YAML mapping."""
    p = Path(path)
    if p.suffix in (".yaml", ".yml"):
        try:
            data = yaml.safe_load(p.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise AllocationError("<file>", f"not valid YAML: {exc}", source=p.name) from None
        if isinstance(data, dict) and set(data) == {"costs"}:
            data = data["costs"]
        return check_costs(data, "costs", p.name)
    with open(p, encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        for col in ("risk_type", "cost_yuan"):
            if col not in (reader.fieldnames or []):
                raise AllocationError(col, "missing column", source=p.name)
        costs: dict[str, Any] = {}
        for i, r in enumerate(reader):
            code = (r["risk_type"] or "").strip()
            if code in costs:
                raise AllocationError("risk_type", f"{code!r} listed twice", row=i, source=p.name)
            try:
                costs[code] = float((r["cost_yuan"] or "").strip())
            except ValueError:
                raise AllocationError("cost_yuan", f"not a number: {r['cost_yuan']!r}", row=i, source=p.name) from None  # fmt: skip
    return check_costs(costs, "costs", p.name)


def load_assets(path: str | Path) -> pd.DataFrame:
    """Idle assistance assets per county (``county_code,assets_revived,assets_idle``), checked."""
    p = Path(path)
    frame = pd.read_csv(p, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    for col in ASSET_COLUMNS:
        if col not in frame.columns:
            raise AllocationError(col, "missing column", source=p.name)
    seen: set[str] = set()
    out = []
    for i, r in frame.iterrows():
        code = r["county_code"].strip()
        if not (len(code) == 6 and code.isascii() and code.isdigit()):
            raise AllocationError("county_code", "must be 6 digits", row=int(i), source=p.name)  # type: ignore[arg-type]
        if code in seen:
            raise AllocationError("county_code", "listed twice", row=int(i), source=p.name)  # type: ignore[arg-type]
        seen.add(code)
        values = []
        for col in ASSET_COLUMNS[1:]:
            text = r[col].strip() or "0"
            if not (text.isascii() and text.isdigit()):
                raise AllocationError(col, f"must be a whole number ≥ 0, got {r[col]!r}", row=int(i), source=p.name)  # type: ignore[arg-type]  # fmt: skip
            values.append(int(text))
        out.append((code, *values))
    return pd.DataFrame(out, columns=list(ASSET_COLUMNS))


# --------------------------------------------------------------------------- the county rows
def _flag(values: pd.Series) -> np.ndarray:
    return values.astype(str).str.strip().str.lower().isin(("true", "1", "1.0")).to_numpy()


def _numbers(rows: pd.DataFrame, col: str, *, required: bool = True) -> np.ndarray:
    if col not in rows:
        if required:
            raise AllocationError(col, "missing column in the regional table")
        return np.full(len(rows), np.nan)
    values = pd.to_numeric(rows[col], errors="coerce").to_numpy(dtype=float)
    empty = rows[col].isna().to_numpy() | (rows[col].astype(object).map(lambda v: str(v).strip()) == "").to_numpy()  # fmt: skip
    bad = (np.isnan(values) & ~empty) | (values < 0)
    if required:
        bad |= np.isnan(values)
    if bad.any():
        row = int(rows.index[np.flatnonzero(bad)[0]])
        raise AllocationError(col, f"must be a number ≥ 0, got {rows[col].iloc[np.flatnonzero(bad)[0]]!r}", row=row)  # fmt: skip
    return values


def county_rows(
    table: pd.DataFrame,
    period: str | None = None,
    window_months: int = 12,
    province: str | None = None,
) -> pd.DataFrame:
    """One row per county of ``period`` (default: the table's latest): the figures the allocation
    reads, with the case counts summed over the ``window_months`` ending with the period."""
    for col in REQUIRED:
        if col not in table.columns:
            raise AllocationError(col, "missing column in the regional table (riskml regions output)")  # fmt: skip
    counties = table[table["level"].astype(str) == "county"].copy()
    if counties.empty:
        raise AllocationError("level", "the table has no county rows")
    counties["code"] = counties["code"].astype(str).str.zfill(6)
    if province is not None:
        counties = counties[counties["code"].str.slice(0, 2) == str(province)]
        if counties.empty:
            raise AllocationError("province", f"no county of province {province!r} in the table")
    periods = sorted(counties["period"].astype(str).unique())
    try:
        months = {p: parse_period(p) for p in periods}
    except ValueError as exc:
        raise AllocationError("period", str(exc)) from None
    period = period or periods[-1]
    if period not in months:
        raise AllocationError("period", f"{period!r} not in the table (periods: {', '.join(periods)})")  # fmt: skip
    now = counties[counties["period"].astype(str) == period]
    if now["code"].duplicated().any():
        row = int(now.index[now["code"].duplicated()][0])
        raise AllocationError("code", "county listed twice in the period", row=row)
    start = months[period] - window_months + 1
    in_window = counties["period"].astype(str).map(months).between(start, months[period])
    out = pd.DataFrame(
        {
            "county_code": now["code"].to_numpy(),
            "county_zh": now["name_zh"].fillna("").to_numpy() if "name_zh" in now else "",
            "county_en": now["name_en"].fillna("").to_numpy() if "name_en" in now else "",
            "province_code": now["code"].str.slice(0, 2).to_numpy(),
            "period": period,
            "key_national": _flag(now["key_national"]) if "key_national" in now else False,
            "key_provincial": _flag(now["key_provincial"]) if "key_provincial" in now else False,
            "households": _numbers(now, "households").astype(np.int64),
            "expected": _numbers(now, "expected"),
            "expected_low": _numbers(now, "expected_low"),
            "expected_high": _numbers(now, "expected_high"),
        }
    )
    out["province_zh"] = [PROVINCES.get(p, ("", ""))[0] for p in out["province_code"]]
    for source, (total, prefix) in MIX_SOURCES.items():
        out[f"{source}_n"] = np.nan_to_num(_numbers(now, total, required=False))
        for code in RISK_TYPES:
            out[f"{prefix}{code}"] = np.nan_to_num(_numbers(now, f"{prefix}{code}", required=False))  # fmt: skip
    for col in ("open_cases", "overdue"):
        out[col] = _numbers(now, col, required=False)
    w = counties[in_window]
    confirmed = _numbers(w, "confirmed", required=False)
    days = _numbers(w, "days_to_confirm", required=False)
    sums = (
        pd.DataFrame(
            {
                "code": w["code"].to_numpy(),
                "confirmed": np.nan_to_num(confirmed),
                "confirm_days": np.nan_to_num(days * confirmed),
                "eliminated": np.nan_to_num(_numbers(w, "eliminated", required=False)),
            }
        )
        .groupby("code")
        .sum()
    )
    sums = sums.reindex(out["county_code"]).fillna(0.0)
    out["confirmed"] = sums["confirmed"].to_numpy()
    out["confirm_days"] = sums["confirm_days"].to_numpy()
    out["eliminated"] = sums["eliminated"].to_numpy()
    out["window"] = f"{month_text(start)}..{period}"
    return out.reset_index(drop=True)


# --------------------------------------------------------------------------- the steps
def risk_mix(counties: pd.DataFrame, config: AllocationConfig) -> pd.DataFrame:
    """Per county: ``mix_source``, ``share_<t>`` (summing to 1), ``measures_per_household``
    (``m_c``) and ``cost_per_household`` (``k_c``, yuan)."""
    n = len(counties)
    counts = np.zeros((n, len(RISK_TYPES)))
    total = np.zeros(n)
    source = np.full(n, "", dtype=object)
    for name in config.mix_sources:
        prefix = MIX_SOURCES[name][1]
        c = counties[[f"{prefix}{t}" for t in RISK_TYPES]].to_numpy(dtype=float)
        h = counties[f"{name}_n"].to_numpy(dtype=float)
        use = (source == "") & (h >= config.mix_min_households) & (c.sum(axis=1) > 0)
        counts[use], total[use], source[use] = c[use], h[use], name
    rest = source == ""
    if rest.any():
        pooled_c, pooled_h, label = np.ones(len(RISK_TYPES)), float(len(RISK_TYPES)), "uniform"
        for name in config.mix_sources:
            prefix = MIX_SOURCES[name][1]
            c = counties[[f"{prefix}{t}" for t in RISK_TYPES]].to_numpy(dtype=float).sum(axis=0)
            if c.sum() > 0:
                pooled_c, pooled_h, label = c, float(counties[f"{name}_n"].sum()), f"pooled_{name}"  # fmt: skip
                break
        counts[rest], total[rest], source[rest] = pooled_c, max(pooled_h, 1.0), label
    shares = counts / counts.sum(axis=1, keepdims=True)
    mentions = counts.sum(axis=1) / np.maximum(total, 1.0)
    m = np.maximum(1.0, mentions) if config.count_every_type else np.ones(n)
    cost = np.array([config.costs[t] for t in RISK_TYPES])
    out = pd.DataFrame({f"share_{t}": shares[:, i] for i, t in enumerate(RISK_TYPES)})
    out.insert(0, "mix_source", source)
    out["measures_per_household"] = m
    out["cost_per_household"] = m * (shares @ cost)
    return out


def indicators(counties: pd.DataFrame, config: AllocationConfig, assets: pd.DataFrame | None = None) -> pd.DataFrame:  # fmt: skip
    """The performance rates per county (``INDICATORS``; NaN where a county has no such case)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        confirmed = counties["confirmed"].to_numpy(dtype=float)
        mean_days = np.where(confirmed > 0, counties["confirm_days"].to_numpy(dtype=float) / confirmed, np.nan)  # fmt: skip
        on_time = np.where(confirmed > 0, np.minimum(1.0, config.confirm_deadline_days / np.maximum(mean_days, 1e-9)), np.nan)  # fmt: skip
        elim = counties["eliminated"].to_numpy(dtype=float)
        ever = elim + counties["monitored_n"].to_numpy(dtype=float)
        eliminated = np.where(ever > 0, elim / ever, np.nan)
        open_cases = counties["open_cases"].to_numpy(dtype=float)
        overdue = np.where(open_cases > 0, counties["overdue"].to_numpy(dtype=float) / open_cases, np.nan)  # fmt: skip
        revived = np.full(len(counties), np.nan)
        if assets is not None and len(assets):
            a = assets.set_index("county_code").reindex(counties["county_code"]).fillna(0)
            r, i = a["assets_revived"].to_numpy(dtype=float), a["assets_idle"].to_numpy(dtype=float)  # fmt: skip
            revived = np.where(r + i > 0, r / (r + i), np.nan)
    return pd.DataFrame(
        {
            "mean_days_to_confirm": mean_days,
            "confirmed_on_time": on_time,
            "eliminated_rate": eliminated,
            "assets_revived_rate": revived,
            "overdue_rate": overdue,
        }
    )


RATE_COLUMN = {"confirmed_on_time": "confirmed_on_time", "eliminated": "eliminated_rate",
               "assets_revived": "assets_revived_rate", "overdue": "overdue_rate"}  # fmt: skip


def performance_factor(rates: pd.DataFrame, config: AllocationConfig) -> np.ndarray:
    """``clip(1 + Σ incentives w·(r − mean r) − Σ penalties w·(r − mean r), 1 − bound, 1 + bound)``;
    the means over the counties with the indicator, a county without it neutral."""
    score = np.ones(len(rates))
    for sign, weights in ((1.0, config.incentives), (-1.0, config.penalties)):
        for name, w in weights:
            r = rates[RATE_COLUMN[name]].to_numpy(dtype=float)
            if w == 0 or np.isnan(r).all():
                continue
            score += sign * w * np.nan_to_num(r - np.nanmean(r))
    return np.clip(score, 1.0 - config.bound, 1.0 + config.bound)


def largest_remainder(weights: np.ndarray, total: int) -> np.ndarray:
    """Whole shares of ``total`` in proportion to ``weights``, summing to ``total`` exactly: the
    floors, then one more to the largest remainders (ties: the earlier row)."""
    w = np.asarray(weights, dtype=float)
    if total == 0:
        return np.zeros(len(w), dtype=np.int64)
    exact = total * w / w.sum()
    base = np.floor(exact).astype(np.int64)
    short = int(total - base.sum())
    order = np.lexsort((np.arange(len(w)), -(exact - base)))
    base[order[:short]] += 1
    return base


def _budget(budget: Any) -> int:
    if isinstance(budget, bool) or not isinstance(budget, int | float | np.integer | np.floating):
        raise AllocationError("budget", f"must be a number of yuan, got {budget!r}")
    if not math.isfinite(float(budget)) or budget < 0:
        raise AllocationError("budget", f"must be 0 or more yuan, got {budget!r}")
    if not float(budget).is_integer():
        raise AllocationError("budget", f"must be whole yuan, got {budget!r}")
    return int(budget)


@dataclass(frozen=True)
class Allocation:
    counties: pd.DataFrame  # ``OUTPUT_COLUMNS`` and the shares
    summary: dict[str, Any]
    config: AllocationConfig


OUTPUT_COLUMNS = (
    "county_code", "county_zh", "county_en", "province_code", "province_zh", "period",
    "key_national", "key_provincial", "households", "expected", "expected_low", "expected_high",
    "mix_source", "measures_per_household", "cost_per_household", "need", "key_factor",
    "mean_days_to_confirm", "confirmed_on_time", "eliminated_rate", "assets_revived_rate",
    "overdue_rate", "performance_factor", "weight", "allocation", "equal_split",
    "reached_allocation", "reached_equal_split",
)  # fmt: skip


def allocate_counties(
    counties: pd.DataFrame,
    budget: Any,
    config: AllocationConfig,
    assets: pd.DataFrame | None = None,  # fmt: skip
) -> Allocation:
    """The allocation for ``county_rows`` output (see the module's docstring)."""
    total = _budget(budget)
    if counties.empty:
        raise AllocationError("county_code", "no county to allocate to")
    mix = risk_mix(counties, config)
    rates = indicators(counties, config, assets)
    out = pd.concat([counties.reset_index(drop=True), mix, rates], axis=1)
    out["need"] = out["expected"] * out["cost_per_household"]
    out["key_factor"] = (
        1.0
        + config.key_national * out["key_national"].astype(float)
        + config.key_provincial * out["key_provincial"].astype(float)
    )
    out["performance_factor"] = performance_factor(rates, config)
    out["weight"] = out["need"] * out["key_factor"] * out["performance_factor"]
    if out["weight"].sum() <= 0:
        raise AllocationError("expected", "no county has expected households at risk: nothing to weigh")  # fmt: skip
    if out["households"].sum() <= 0:
        raise AllocationError("households", "no county has households: no equal split")
    out["allocation"] = largest_remainder(out["weight"].to_numpy(), total)
    out["equal_split"] = largest_remainder(out["households"].to_numpy(dtype=float), total)
    for col, money in (("reached_allocation", "allocation"), ("reached_equal_split", "equal_split")):  # fmt: skip
        out[col] = np.minimum(out["expected"], out[money] / out["cost_per_household"])
    out = out.sort_values(["allocation", "county_code"], ascending=[False, True]).reset_index(drop=True)  # fmt: skip
    shares = [f"share_{t}" for t in RISK_TYPES]
    frame = out[[*OUTPUT_COLUMNS, *shares]]
    expected = float(out["expected"].sum())
    summary = {
        "budget": total,
        "period": str(out["period"].iloc[0]),
        "window": str(out["window"].iloc[0]),
        "counties": len(out),
        "households": int(out["households"].sum()),
        "expected": expected,
        "need": float(out["need"].sum()),
        "reached_allocation": float(out["reached_allocation"].sum()),
        "reached_equal_split": float(out["reached_equal_split"].sum()),
        "key_national_counties": int(out["key_national"].sum()),
        "key_provincial_counties": int(out["key_provincial"].sum()),
        # each split's fairness: the least-covered county's share of its need, money beyond need
        **{
            f"{what}_{col}": value
            for col in ("allocation", "equal_split")
            for what, value in (
                (
                    "need_covered_min",
                    float(np.min(np.minimum(1.0, out[col] / out["need"].where(out["need"] > 0)))),
                ),  # fmt: skip
                ("beyond_need", float(np.maximum(0.0, out[col] - out["need"]).sum())),
            )
        },
        "factor_min": float(out["performance_factor"].min()),
        "factor_max": float(out["performance_factor"].max()),
    }
    return Allocation(frame, summary, config)


def allocate(
    table: pd.DataFrame,
    budget: Any,
    config: AllocationConfig | None = None,
    *,
    assets: pd.DataFrame | None = None,
    period: str | None = None,
    province: str | None = None,
) -> Allocation:
    """The allocation for a regional table (``riskml regions`` output, any levels and periods)."""
    config = config or load_config()
    _budget(budget)
    counties = county_rows(table, period, config.window_months, province)
    return allocate_counties(counties, budget, config, assets)
