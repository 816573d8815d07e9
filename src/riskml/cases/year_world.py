"""The world of a simulated year of the case loop: households, monthly pushes, the model's scores.

``build_world`` simulates households of the sample world (``riskml.data.simulate``; the
sample panel ``data/sample/panel.parquet`` is ``simulate_panel(2000, 7, seed=7)``, so with
the defaults here, 7 years from 2019 and seed 7, the first 2,000 households *are* the sample
panel's households and the rest are more households of the same world), trains a model on
the periods before the simulated year, derives monthly records for the year and scores each
month's push with the real decision path (``riskml.scoring.decide.decide``: the model and the
rules side by side, as ``ScoringService.score`` calls it).

**Monthly records are an approximation.** The simulator is yearly (one record per household
in June, money over the 12 months ending then). Month ``m`` (0–12) after the June record of
year ``t`` gets, for every 12-month trailing float field (incomes, medical and schooling costs,
losses, debt, months employed), ``(12 - m)/12 · rec_t + m/12 · rec_{t+1}`` (a value missing at
one end is taken from the other: missing at random is a recording gap, not a change); counts
and flags (members, labour, dibao, the guarantees, ...) stay those of ``rec_t`` until month 12,
which carries ``rec_{t+1}``'s. Real trailing sums move in steps (a harvest, a hospital bill, a
migrant's return) where this moves in a straight line, so a fall below the line is dated
roughly, and a shock shows up spread over the year. Households that dissolve during the year
(no ``t+1`` record, about 0.3%) are left out.

**No leakage.** The model is trained (``riskml.training.train.train``) on the panel's periods up
to June ``t - 1``: their labels ``at_risk_next`` come from records up to June ``t``, the start
of the simulated year; the ``t`` record's own label (about June ``t + 1``) is never seen. With
the default splits the booster fits ``t-5``…``t-3``, calibrates on ``t-2`` and is evaluated on
``t-1``.

**Pushes.** Push ``k`` (0–11) is month ``k``'s record (period June ``t`` + ``k`` months), sent on
the first day of the next calendar month (push 0, the June record, on 1 July). Its previous
period is, as ``riskml.data.history`` defines it for every path, the household's latest earlier
record, here the previous push (``previous="push"``; the June ``t - 1`` record for push 0), so
the income-drop rule and the change features compare with last month. ``previous="year"``
compares with the (interpolated) record 12 months earlier instead, as the yearly training data
did.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from riskml import config
from riskml.data import schema
from riskml.data.label import INCOME_FIELDS
from riskml.data.reference import ReferenceLines, default_lines
from riskml.model.risk_model import RiskModel
from riskml.policy.rules.ruleset import RuleSet, default_ruleset
from riskml.scoring.decide import MONITORING_TYPES, ModelInfo, decide, records_as_dicts
from riskml.training.train import TrainConfig, train

MONTHS = 12
FLOAT_FIELDS = tuple(f.name for f in schema.FIELDS if f.kind == "float")
OTHER_FIELDS = tuple(
    f.name
    for f in schema.FIELDS
    if f.kind != "float" and f.name not in ("household_id", "period", "county_code", "village_code")
)
TYPE_CODES = {zh: code for code, zh in MONITORING_TYPES.items()}


@dataclass
class Push:
    """One month's push scored: per household (world order) the decision's fields the loop uses."""

    period: str
    score: np.ndarray  # calibrated risk
    flagged: np.ndarray  # by the rules or the model
    by_rules: np.ndarray  # by the hard rules
    rule_red: np.ndarray  # a red rule fired
    risk_types: list[list[str]]
    household_type: list[str | None]  # the decision's monitoring type (code), None if not flagged


@dataclass
class YearWorld:
    """A year of monthly records for ``n`` households and its 12 pushes, scored."""

    year: int
    households: np.ndarray  # household ids
    county: np.ndarray
    village: np.ndarray
    periods: list[str]  # months 0..12 (June t ... June t+1)
    months: list[pd.DataFrame]  # the monthly records, canonical, world order
    pc: np.ndarray  # (13, n) per-capita net income (NaN when an income field is missing)
    pc_after_costs: np.ndarray  # (13, n) after medical and schooling costs
    line: np.ndarray  # (13, n) monitoring line in force
    at_risk_next: np.ndarray  # the June t record's label (next year's truth), 0 where unknown
    pushes: list[Push]
    training: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    # what scored the pushes, for paths that score again (department alerts: riskml.alerts.year)
    model: RiskModel | None = field(default=None, repr=False)
    ruleset: RuleSet | None = field(default=None, repr=False)
    info: ModelInfo | None = field(default=None, repr=False)
    last_year: pd.DataFrame | None = field(default=None, repr=False)  # June t - 1, world order
    _dicts: dict[int, list[dict[str, Any]]] = field(default_factory=dict, repr=False)

    @property
    def n(self) -> int:
        return len(self.households)

    def start_above(self) -> np.ndarray:
        """Above the line at the start of the year (June t)."""
        return np.nan_to_num(self.pc[0], nan=-np.inf) >= self.line[0]

    def fell_month(self) -> np.ndarray:
        """The first month (1-12) per-capita income is below the line, for households above it
        in June t; 0 for the others."""
        below = np.nan_to_num(self.pc[1:], nan=np.inf) < self.line[1:]
        first = np.where(below.any(axis=0), below.argmax(axis=0) + 1, 0)
        return np.where(self.start_above(), first, 0)

    def finds_risk(self, h: int, m: int) -> bool:
        """What a home visit in month ``m`` finds (see ``riskml.cases.year``)."""
        ln = self.line[m, h]
        return bool(
            self.pc[m, h] < ln or self.pc_after_costs[m, h] < ln or self.at_risk_next[h] == 1
        )

    def record(self, h: int, m: int) -> dict[str, Any]:
        """Household ``h``'s month-``m`` record as a dict of plain values (None for missing)."""
        if m not in self._dicts:
            frame = self.months[m]
            self._dicts[m] = records_as_dicts(frame, np.arange(len(frame)))
        return self._dicts[m][h]

    def records_until(self, h: int, m: int) -> list[dict[str, Any]]:
        """Household ``h``'s monthly records from June t to month ``m``, oldest first."""
        return [self.record(h, k) for k in range(m + 1)]


def period_of(year: int, m: int) -> str:
    idx = year * 12 + 5 + m  # June of ``year`` is month 0
    return f"{idx // 12:04d}-{idx % 12 + 1:02d}"


def monthly(a: pd.DataFrame, b: pd.DataFrame, m: int, period: str) -> pd.DataFrame:
    """Month ``m`` between aligned yearly records ``a`` (June t) and ``b`` (June t+1)."""
    w = m / MONTHS
    out = (b if m == MONTHS else a)[list(schema.FIELD_NAMES)].copy()
    out["county_code"], out["village_code"] = (
        a["county_code"].to_numpy(),
        a["village_code"].to_numpy(),
    )
    for f in FLOAT_FIELDS:
        x, y = a[f].to_numpy(np.float64), b[f].to_numpy(np.float64)
        v = np.where(np.isnan(x), y, np.where(np.isnan(y), x, (1 - w) * x + w * y))
        out[f] = np.round(v, 1) if f == "months_employed" else np.rint(v)
    out["period"] = period
    return schema.coerce_frame(out.reset_index(drop=True))


def _per_capita(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    net = sum(df[f].to_numpy(np.float64, na_value=np.nan) for f in INCOME_FIELDS)
    costs = np.nan_to_num(df["medical_expense"].to_numpy(np.float64, na_value=np.nan)) + (
        np.nan_to_num(df["education_expense"].to_numpy(np.float64, na_value=np.nan))
    )
    size = np.maximum(df["household_size"].to_numpy(np.float64, na_value=1.0), 1.0)
    return net / size, (net - costs) / size


def _lines_of(df: pd.DataFrame, lines: ReferenceLines) -> np.ndarray:
    provinces = df["county_code"].astype(str).str.slice(0, 2).astype(np.int64).to_numpy()
    p = df["period"].astype(str)
    months = (
        p.str.slice(0, 4).astype(np.int64) * 12 + p.str.slice(5, 7).astype(np.int64) - 1
    ).to_numpy()
    res = lines.resolve(provinces, months)
    return np.where(res.covered, res.monitoring, np.nan).astype(np.float64)


def default_train_config() -> TrainConfig:
    path = config.PROJECT_ROOT / "training" / "default.yaml"
    return TrainConfig.from_yaml(path) if path.exists() else TrainConfig()


def score_push(
    records: pd.DataFrame,
    previous: pd.DataFrame,
    model: RiskModel,
    ruleset: RuleSet,
    info: ModelInfo,
) -> Push:
    """One push through ``decide`` (explanations for the flagged, as the service gives them)."""
    out = decide(
        records, previous, model, ruleset, info, explain="flagged", with_contributions=False
    )
    return Push(
        period=str(records["period"].iloc[0]),
        score=np.array([r["score"] for r in out], dtype=np.float64),
        flagged=np.array([r["flagged"] for r in out], dtype=bool),
        by_rules=np.array(["rules" in r["flagged_by"] for r in out], dtype=bool),
        rule_red=np.array([any(x["level"] == "red" for x in r["rules"]) for r in out], dtype=bool),
        risk_types=[list(r["risk_types"]) for r in out],
        household_type=[TYPE_CODES.get(r["monitoring_type"]) for r in out],
    )


def build_world(
    households: int = 5000,
    seed: int = 7,
    year: int = 2024,
    *,
    start_year: int = 2019,
    previous: str = "push",
    lines: ReferenceLines | None = None,
    ruleset: RuleSet | None = None,
    train_config: TrainConfig | None = None,
    panel: pd.DataFrame | None = None,
    say: Callable[[str], None] | None = None,
) -> YearWorld:
    """Simulate (or take ``panel``), train before ``year``, build and score the year's pushes."""
    if previous not in ("push", "year"):
        raise ValueError("previous must be 'push' or 'year'")
    if year - start_year < 4:
        raise ValueError("the simulated year needs at least 4 earlier years to train on")
    say = say or (lambda _m: None)
    lines = lines or default_lines()
    ruleset = ruleset or default_ruleset()
    t0 = time.perf_counter()
    seconds: dict[str, float] = {}
    if panel is None:
        from riskml.data.simulate import simulate_panel

        say(f"simulating {households:,} households, {start_year}-{year + 1}, seed {seed}")
        panel = simulate_panel(households, year + 2 - start_year, seed, start_year=start_year,
                               oracle_draws=0, lines=lines)  # fmt: skip
    seconds["simulate_s"] = time.perf_counter() - t0

    t = time.perf_counter()
    history = panel[panel["period"].astype(str) <= f"{year - 1}-06"].reset_index(drop=True)
    cfg = train_config or default_train_config()
    say(f"training on the periods up to {year - 1}-06 ({len(history):,} records)")
    trained = train(history, cfg, lines)
    model = trained.model
    metrics = trained.evaluation.metrics
    training = {
        "records_up_to": f"{year - 1}-06",
        "train_periods": trained.splits.train_periods,
        "valid_period": trained.splits.valid_period,
        "test_period": trained.splits.test_period,
        "labels_seen_up_to": f"{year}-06",
        "test_roc_auc": round(float(metrics.get("test_roc_auc", float("nan"))), 4),
        "flag_threshold": round(float(model.thresholds.flag), 4),
    }
    seconds["train_s"] = time.perf_counter() - t

    t = time.perf_counter()
    by = {p: g.set_index("household_id") for p, g in panel.groupby(panel["period"].astype(str))}
    a_all, b_all = by[f"{year}-06"], by[f"{year + 1}-06"]
    ids = np.array(sorted(set(a_all.index) & set(b_all.index)), dtype=object)
    a = a_all.loc[ids].reset_index()
    b = b_all.loc[ids].reset_index()
    periods = [period_of(year, m) for m in range(MONTHS + 1)]
    months = [monthly(a, b, m, periods[m]) for m in range(MONTHS + 1)]
    before = by.get(f"{year - 1}-06")
    last_year = (
        schema.coerce_frame(before.reindex(ids).reset_index()[list(schema.FIELD_NAMES)])
        if before is not None
        else None
    )
    pcs = [_per_capita(mo) for mo in months]
    info = ModelInfo(cfg.model_name, f"simulated-{year - 1}")
    pushes = []
    year_before: list[pd.DataFrame] = []
    if previous == "year" and before is not None:
        c = before.reindex(ids).reset_index()
        c["household_id"] = ids
        year_before = [monthly(c, a, m, period_of(year - 1, m)) for m in range(MONTHS)]
    for k in range(MONTHS):
        if previous == "push":
            prev = months[k - 1] if k else last_year
        else:
            prev = year_before[k] if year_before else None
        pushes.append(score_push(months[k], prev, model, ruleset, info))
        say(f"push {k + 1}/12 ({periods[k]}): {int(pushes[-1].flagged.sum()):,} flagged")
    seconds["pushes_s"] = time.perf_counter() - t
    label = a["at_risk_next"].to_numpy(np.float64, na_value=np.nan)
    return YearWorld(
        year=year,
        households=ids,
        county=a["county_code"].astype(str).to_numpy(),
        village=a["village_code"].astype(str).to_numpy(),
        periods=periods,
        months=months,
        pc=np.stack([p[0] for p in pcs]),
        pc_after_costs=np.stack([p[1] for p in pcs]),
        line=np.stack([_lines_of(mo, lines) for mo in months]),
        at_risk_next=np.nan_to_num(label, nan=0.0),
        pushes=pushes,
        training=training,
        seconds=seconds,
        model=model,
        ruleset=ruleset,
        info=info,
        last_year=last_year,
    )
