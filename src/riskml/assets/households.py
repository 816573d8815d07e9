"""Assistance assets linked to their beneficiary households: expected returns, and idle leads.

Each asset of the register names its beneficiary households with shares
(``beneficiaries``: [{household_id, share}]). From that:

* ``asset_links`` — one row per (asset, beneficiary household): the asset's expected
  distributable income this year (``income_expected``: last year's income, or the guaranteed
  return rate × original value under an operating contract in force; 0 for an idle,
  suspended, disposed or unfinished asset) and the income at stake when it stops earning
  (``income_at_stake``: its latest year's income before the check, else its guaranteed return);
* ``expected_returns`` — one row per beneficiary household: ``asset_income_expected`` (Σ share ×
  income_expected), ``asset_income_share`` (of the household's yearly net income, the four
  income fields of its latest record at or before the date, ``riskml.data.label.net_income_of``;
  missing when the household has no record or its net income is not positive),
  ``assets_count`` and ``idle_assets_count`` (idle or suspended). A household feature input;
* ``idle_triggers`` and ``plan_leads`` / ``raise_leads`` — an asset that is idle, low,
  suspended or disposed (by its events) or idle past the rules' ``idle_too_long`` raises one
  lead of the case loop (source ``asset_idle``, ``riskml.cases.store.CaseStore.act`` as the
  department alerts do) for each beneficiary household whose share of net income from it is
  material (``links.yaml``: ``material_share``, default 10%). One lead per household and month
  of the trigger (the idempotency key), so re-running never leads twice; households without an
  income record or unknown to the ledger are listed (``Led.unknown``), never dropped.

Errors name the file, the row and the field, never a household.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from riskml import config
from riskml.assets.events import replay
from riskml.assets.register import register_frame
from riskml.assets.rules import AssetRules, add_months, evaluate
from riskml.cases.fields import SOURCES
from riskml.cases.machine import Actor, Refusal
from riskml.cases.store import CaseStore
from riskml.data.label import INCOME_FIELDS, net_income_of
from riskml.data.periods import month_index
from riskml.policy.risk_types import RISK_TYPE_CODES
from riskml.store.ledger import LedgerError

log = logging.getLogger("riskml.assets")

ENV_FILE = "RISKML_ASSET_LINKS_FILE"
LEAD_ACTOR = Actor("assets", "system")
NOT_EARNING = ("building", "idle", "suspended", "disposed")
IDLE = ("idle", "suspended")
STATUS_TRIGGERS = ("idle", "low_efficiency", "suspended", "disposed")
TRIGGERS = (*STATUS_TRIGGERS, "idle_too_long")
RETURN_COLUMNS = (
    "household_id", "asset_income_expected", "asset_income_share", "assets_count",
    "idle_assets_count",
)  # fmt: skip
LINK_COLUMNS = (
    "asset_id", "household_id", "share", "status", "income_expected", "income_at_stake", "basis",
)  # fmt: skip
RECORD_COLUMNS = ("household_id", "period", *INCOME_FIELDS)
_PERIOD = r"[0-9]{4}-(0[1-9]|1[0-2])"


class LinksError(ValueError):
    """A links file or a records table that cannot be used: names the file, row and field."""


# --------------------------------------------------------------------------- the links file
@dataclass(frozen=True)
class LinkConfig:
    version: str
    source: str
    material_share: float
    triggers: tuple[str, ...]
    risk_types: tuple[str, ...]


def parse_links(text: str, source: str = "<asset links>") -> LinkConfig:
    """A links file's text, strictly checked (LinksError names the file and the key)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise LinksError(f"{source}: not YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict) or set(data) != {"version", "lead"}:
        raise LinksError(f"{source}: the file must have exactly the keys version and lead")
    lead = data["lead"]
    keys = {"source", "material_share", "triggers", "risk_types"}
    if not isinstance(lead, dict) or set(lead) != keys:
        raise LinksError(f"{source}: key 'lead' must have exactly: {', '.join(sorted(keys))}")
    if lead["source"] not in SOURCES:
        raise LinksError(f"{source}: key 'lead.source' must be one of {', '.join(SOURCES)}")
    share = lead["material_share"]
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 1:
        raise LinksError(f"{source}: key 'lead.material_share' must be a share in [0, 1]")
    triggers = lead["triggers"]
    if not isinstance(triggers, list) or not triggers or any(t not in TRIGGERS for t in triggers):
        raise LinksError(f"{source}: key 'lead.triggers' must list some of {', '.join(TRIGGERS)}")
    types = lead["risk_types"]
    if not isinstance(types, list) or any(t not in RISK_TYPE_CODES for t in types):
        raise LinksError(f"{source}: key 'lead.risk_types' must list risk type codes")
    return LinkConfig(
        str(data["version"]), lead["source"], float(share), tuple(triggers), tuple(types)
    )


def load_links(path: str | Path | None = None) -> LinkConfig:
    """The links file: ``path``, else ``$RISKML_ASSET_LINKS_FILE``, else the shipped one."""
    p = Path(path or os.environ.get(ENV_FILE) or config.package_file("assets/links.yaml"))
    if not p.exists():
        raise LinksError(f"{p}: file not found")
    return parse_links(p.read_text(encoding="utf-8"), str(p))


# --------------------------------------------------------------------------- the register
def states_as_of(events: Iterable[Mapping[str, Any]], as_of: dt.date) -> dict[str, dict]:
    """Every asset's state from its events dated at or before ``as_of`` (the register then)."""
    day = as_of.isoformat()
    return replay([dict(e) for e in events if str(e["date"])[:10] <= day])


def _in_force(s: Mapping[str, Any], day: str) -> bool:
    start, end = s.get("contract_start"), s.get("contract_end")
    return (start is None or start <= day) and (end is None or day <= end)


def asset_income(s: Mapping[str, Any], as_of: dt.date) -> tuple[float, float, str]:
    """(income expected this year, income at stake, the basis) of one asset's state."""
    incomes = {int(y): float(v) for y, v in (s.get("incomes") or {}).items()}
    rate = s.get("guaranteed_return_rate")
    guaranteed = float(rate) * float(s.get("original_value") or 0.0) if rate else 0.0
    last = as_of.year - 1
    if last in incomes:
        expected, basis = incomes[last], "last_year_income"
    elif guaranteed and _in_force(s, as_of.isoformat()):
        expected, basis = guaranteed, "guaranteed_return"
    else:
        expected, basis = 0.0, "none"
    earlier = [y for y in incomes if y < as_of.year]
    at_stake = incomes[max(earlier)] if earlier else guaranteed
    if s.get("status") in NOT_EARNING:
        expected, basis = 0.0, "not_earning"
    return expected, at_stake, basis


def asset_links(states: Mapping[str, Mapping[str, Any]], as_of: dt.date) -> pd.DataFrame:
    """One row per (asset, beneficiary household), ``LINK_COLUMNS``."""
    rows = []
    for aid in sorted(states):
        s = states[aid]
        expected, at_stake, basis = asset_income(s, as_of)
        for b in s.get("beneficiaries") or []:
            rows.append((aid, b["household_id"], float(b["share"]), s.get("status"), expected,
                         at_stake, basis))  # fmt: skip
    return pd.DataFrame(rows, columns=list(LINK_COLUMNS))


# --------------------------------------------------------------------------- the households
def net_incomes(records: pd.DataFrame, as_of: dt.date, source: str = "records") -> pd.Series:
    """Each household's yearly net income in its latest record at or before ``as_of``'s month
    (missing when a component is missing or not a number), by household_id."""
    absent = [c for c in RECORD_COLUMNS if c not in records.columns]
    if absent:
        raise LinksError(f"{source}: column(s) missing: {', '.join(absent)}")
    periods = records["period"].astype(str)
    bad = np.flatnonzero(~periods.str.fullmatch(_PERIOD).to_numpy())
    if len(bad):
        raise LinksError(f"{source}: row {int(bad[0])}, field 'period': must be written YYYY-MM")
    df = pd.DataFrame({"household_id": records["household_id"].astype(str).to_numpy(),
                       "m": month_index(periods).to_numpy()})  # fmt: skip
    df["net"] = net_income_of(
        lambda c: pd.to_numeric(records[c], errors="coerce").astype("float64").to_numpy()
    )
    df = df[df["m"] <= as_of.year * 12 + as_of.month - 1]
    # the latest record itself (groupby.last would take the last non-missing value)
    latest = df.sort_values(["household_id", "m"], kind="stable").drop_duplicates(
        "household_id", keep="last"
    )
    return latest.set_index("household_id")["net"].astype("float64")


def expected_returns(
    states: Mapping[str, Mapping[str, Any]], records: pd.DataFrame, as_of: dt.date
) -> pd.DataFrame:
    """One row per beneficiary household of the register, ``RETURN_COLUMNS``, by household_id.

    A household with no record at or before ``as_of`` (or a net income that is missing or not
    positive) keeps its row with ``asset_income_share`` missing: it is listed, never dropped.
    """
    links = asset_links(states, as_of)
    if links.empty:
        return pd.DataFrame(
            {c: pd.Series(dtype="float64" if "income" in c else "int64") for c in RETURN_COLUMNS}
        ).astype({"household_id": object})
    links["expected"] = links["share"] * links["income_expected"]
    links["idle"] = links["status"].isin(IDLE)
    g = links.groupby("household_id", sort=True)
    out = pd.DataFrame({
        "asset_income_expected": g["expected"].sum(),
        "assets_count": g["asset_id"].nunique().astype("int64"),
        "idle_assets_count": g["idle"].sum().astype("int64"),
    })  # fmt: skip
    net = net_incomes(records, as_of).reindex(out.index)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(net.to_numpy() > 0, out["asset_income_expected"] / net, np.nan)
    out["asset_income_share"] = share.astype("float64")
    out = out.reset_index()
    return out[list(RETURN_COLUMNS)]


def income_by_household(states: Mapping[str, Mapping[str, Any]], as_of: dt.date) -> pd.Series:
    """Σ share × expected income (``asset_income``) per beneficiary household, by household_id."""
    links = asset_links(states, as_of)
    if links.empty:
        return pd.Series(dtype="float64")
    expected = links["share"] * links["income_expected"]
    return expected.groupby(links["household_id"]).sum().astype("float64")


def _month_end(period: str) -> dt.date:
    y, m = int(period[:4]), int(period[5:7])
    return dt.date(y + m // 12, m % 12 + 1, 1) - dt.timedelta(days=1)


def asset_income_column(events: Iterable[Mapping[str, Any]], records: pd.DataFrame) -> np.ndarray:
    """The side input ``asset_income_expected`` of each record (``riskml.data.side_inputs``).

    The register as its events had made it at the end of the record's month
    (``states_as_of``), so a record of 2022 never sees an asset registered in 2024:
    Σ share × expected income of the assets the household is a beneficiary of then,
    0 when it is no asset's beneficiary. One replay per distinct period.
    """
    events = list(events)
    periods = records["period"].astype(str).to_numpy()
    hids = records["household_id"].astype(str).to_numpy()
    out = np.zeros(len(records), dtype=np.float64)
    bad = [i for i, p in enumerate(periods) if not re.fullmatch(_PERIOD, p)]
    if bad:
        raise LinksError(f"records: row {bad[0]}, field 'period': must be written YYYY-MM")
    for period in sorted(set(periods.tolist())):
        day = _month_end(period)
        income = income_by_household(states_as_of(events, day), day)
        if income.empty:
            continue
        rows = periods == period
        out[rows] = income.reindex(hids[rows]).fillna(0.0).to_numpy(dtype=np.float64)
    return out


# --------------------------------------------------------------------------- idle leads
@dataclass(frozen=True)
class Trigger:
    """An asset that stopped earning: what (a status or idle_too_long) and since when."""

    asset_id: str
    kind: str
    since: str  # YYYY-MM-DD


def _since(s: Mapping[str, Any]) -> str | None:
    status = s.get("status")
    if status == "idle":
        return s.get("idle_since")
    if status == "low_efficiency":
        return s.get("low_since")
    return (s.get("disposal") or {}).get("date") or s.get("last_event_date")


def idle_triggers(
    states: Mapping[str, Mapping[str, Any]],
    as_of: dt.date,
    links: LinkConfig,
    rules: AssetRules | None = None,
) -> list[Trigger]:
    """The assets that stopped earning at or before ``as_of``, by the links file's triggers
    (``idle_too_long`` needs the asset ``rules``; its date is when the idle time ran out)."""
    day = as_of.isoformat()
    out = []
    for aid in sorted(states):
        s = states[aid]
        since = _since(s)
        if s.get("status") in links.triggers and since and since <= day:
            out.append(Trigger(aid, s["status"], since))
    if "idle_too_long" in links.triggers and rules is not None:
        idle = {a: s for a, s in states.items() if s.get("status") == "idle"}
        fired = evaluate(register_frame(idle), rules, as_of) if idle else None
        for r in [] if fired is None else fired.to_dict("records"):
            if r["rule"] != "idle_too_long":
                continue
            since = pd.Series([pd.Timestamp(idle[r["asset_id"]]["idle_since"])])
            ran_out = add_months(since, np.array([float(r["threshold"])]))[0]
            out.append(Trigger(r["asset_id"], "idle_too_long", ran_out.date().isoformat()))
    return out


@dataclass(frozen=True)
class Dependence:
    """A household's income from an asset that stopped earning."""

    asset_id: str
    kind: str
    since: str
    income: float  # share × income at stake, yuan a year
    share_of_net: float | None  # of the household's net income; None: not positive


@dataclass
class LeadPlan:
    """Household-months to lead, below the threshold, and without an income record."""

    material: dict[tuple[str, str], list[Dependence]] = field(default_factory=dict)
    below_threshold: list[tuple[str, str]] = field(default_factory=list)
    no_income: list[tuple[str, str]] = field(default_factory=list)


def plan_leads(
    states: Mapping[str, Mapping[str, Any]],
    records: pd.DataFrame,
    as_of: dt.date,
    links: LinkConfig,
    rules: AssetRules | None = None,
) -> LeadPlan:
    """Which beneficiary households of the triggered assets depend on them materially, by
    (household, month of the trigger)."""
    net = net_incomes(records, as_of).to_dict()
    groups: dict[tuple[str, str], list[Dependence]] = {}
    for t in idle_triggers(states, as_of, links, rules):
        _, at_stake, _ = asset_income(states[t.asset_id], as_of)
        for b in states[t.asset_id].get("beneficiaries") or []:
            h = b["household_id"]
            income = float(b["share"]) * at_stake
            n = float(net.get(h, math.nan))
            share = income / n if n > 0 else None
            groups.setdefault((h, t.since[:7]), []).append(
                Dependence(t.asset_id, t.kind, t.since, income, share)
            )
    plan = LeadPlan()
    for key in sorted(groups):
        if math.isnan(float(net.get(key[0], math.nan))):
            plan.no_income.append(key)
        elif any(_material(d, links) for d in groups[key]):
            plan.material[key] = groups[key]
        else:
            plan.below_threshold.append(key)
    return plan


def _material(d: Dependence, links: LinkConfig) -> bool:
    if d.share_of_net is None:  # no positive net income: any lost asset income matters
        return d.income > 0
    return d.income > 0 and d.share_of_net >= links.material_share


@dataclass
class Led:
    """What ``raise_leads`` did, by household-month: leads opened (a new case), merged into an
    open case, already made (a re-run), refused by the case loop, below the threshold; and the
    households listed as unknown (no income record, or not in the ledger)."""

    opened: int = 0
    merged: int = 0
    already: int = 0
    refused: int = 0
    below_threshold: int = 0
    unknown: list[dict[str, str]] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {"opened": self.opened, "merged": self.merged, "already": self.already,
                "refused": self.refused, "below_threshold": self.below_threshold,
                "unknown": len(self.unknown)}  # fmt: skip


def _note(deps: list[Dependence]) -> str:
    parts = []
    for d in sorted(deps, key=lambda d: -d.income):
        pct = "" if d.share_of_net is None else f", {d.share_of_net:.0%} of net income"
        parts.append(
            f"asset {d.asset_id} {d.kind} since {d.since} ({d.income:,.0f} yuan/year{pct})"
        )
    return ("Assistance asset income lost: " + "; ".join(parts))[:500]


def raise_leads(cases: CaseStore, plan: LeadPlan, links: LinkConfig) -> Led:
    """One lead per material household-month through the case store (idempotent: the key is
    the household and month, so a re-run replays the lead made before)."""
    led = Led(below_threshold=len(plan.below_threshold))
    led.unknown = [{"household_id": h, "month": m, "reason": "no income record"}
                   for h, m in plan.no_income]  # fmt: skip
    known = cases.ledger.locations(sorted({h for h, _ in plan.material}))
    for (h, month), deps in plan.material.items():
        if h not in known:
            led.unknown.append({"household_id": h, "month": month, "reason": "not in the ledger"})
            continue
        top = max(deps, key=lambda d: d.income)
        body: dict[str, Any] = {"source": links.source, "reference": top.asset_id[:64],
                                "note": _note(deps)}  # fmt: skip
        if links.risk_types:
            body["risk_types"] = list(links.risk_types)[: cases.procedure.max_risk_types]
        try:
            acted = cases.act(LEAD_ACTOR, h, "lead", body,
                              idempotency_key=f"assets:{h}:{month}"[:255])  # fmt: skip
        except (Refusal, LedgerError) as exc:
            log.warning("asset lead not stored: %s", type(exc).__name__)
            led.refused += 1
            continue
        if acted.replayed:
            led.already += 1
        elif acted.event["payload"].get("merged"):
            led.merged += 1
        else:
            led.opened += 1
    return led


__all__ = [
    "ENV_FILE", "LEAD_ACTOR", "LINK_COLUMNS", "RETURN_COLUMNS", "TRIGGERS", "Dependence",
    "LeadPlan", "Led", "LinkConfig", "LinksError", "Trigger", "asset_income", "asset_links",
    "expected_returns", "idle_triggers", "load_links", "net_incomes", "parse_links",
    "plan_leads", "raise_leads", "states_as_of",
]  # fmt: skip
