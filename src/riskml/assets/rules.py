"""The asset rules: the versioned rules file (``rules.yaml``) and its evaluation over a register.

The file has a ``version``, the ``distribution`` vocabulary (the order uses are paid in and
the banned uses, with Chinese labels) and ``rules``: each with ``id`` (one of ``RULE_IDS``),
``params`` (exactly its parameters, ``PARAMS``), ``effective`` ({from, to?} months), a
``source``, ``message_zh`` / ``message_en`` and optional ``overrides`` ({areas: county-code
prefixes, params, effective, source}; a longer prefix wins over a shorter, and of equal ones
the later). ``load`` parses it strictly (``AssetRulesError`` names the rule and the key).

``evaluate(frame, rules, as_of)`` runs every rule in force at ``as_of`` over a register frame
(``riskml.assets.register.register_frame``) with each asset's thresholds (overrides by its
county), column-wise, and returns one row per rule fired: asset, rule, value, threshold,
reasons in Chinese and English.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from riskml import config
from riskml.data.periods import parse_date_month

ENV_FILE = "RISKML_ASSET_RULES_FILE"
PARAMS: dict[str, tuple[str, ...]] = {
    "ownership_unconfirmed": ("deadline_months",),
    "low_return": ("floor",),
    "idle_too_long": ("months",),
    "public_welfare_unmanaged": ("min_maintenance_fund",),
    "distribution_order": ("lookback_months",),
    "distribution_banned": ("lookback_months",),
    "contract_expired": ("grace_days",),
}
RULE_IDS = tuple(PARAMS)
OPERATED_BY_OTHERS = ("entrusted", "cooperative", "leased", "shareholding")
RESULT_COLUMNS = ("asset_id", "rule", "value", "threshold", "reason_zh", "reason_en")


class AssetRulesError(ValueError):
    """A rules file that cannot be used: names the file, the rule and the key."""

    def __init__(self, message: str, source: str = "<asset rules>", rule: str | None = None,
                 key: str | None = None):  # fmt: skip
        where = [f"rule {rule!r}"] if rule else []
        where += [f"key {key!r}"] if key else []
        super().__init__(f"{source}: " + (", ".join(where) + ": " if where else "") + message)


@dataclass(frozen=True)
class Override:
    areas: tuple[str, ...]
    params: dict[str, float]
    start: int
    end: int | None
    source: str


@dataclass(frozen=True)
class AssetRule:
    id: str
    params: dict[str, float]
    start: int
    end: int | None
    source: str
    message_zh: str
    message_en: str
    overrides: tuple[Override, ...] = ()

    def in_force(self, month: int) -> bool:
        return self.start <= month and (self.end is None or month <= self.end)


@dataclass(frozen=True)
class AssetRules:
    version: str
    order: dict[str, str]  # use -> Chinese label, in the order uses are paid
    banned: dict[str, str]
    rules: tuple[AssetRule, ...]
    digest: str
    source: str

    def get(self, rule_id: str) -> AssetRule:
        for r in self.rules:
            if r.id == rule_id:
                return r
        raise KeyError(rule_id)


# --------------------------------------------------------------------------- parsing
def _keys(
    raw: Any, allowed: set[str], required: set[str], src: str, rule: str | None, what: str
) -> dict:
    if not isinstance(raw, dict):
        raise AssetRulesError(f"{what} must be a mapping", src, rule)
    for k in raw:
        if k not in allowed:
            raise AssetRulesError(f"unknown key in {what}", src, rule, str(k))
    for k in sorted(required - set(raw)):
        raise AssetRulesError(f"missing in {what}", src, rule, k)
    return raw


def _effective(raw: Any, src: str, rule: str) -> tuple[int, int | None]:
    raw = _keys(raw, {"from", "to"}, {"from"}, src, rule, "effective")
    try:
        start = parse_date_month(raw["from"])
        end = None if raw.get("to") is None else parse_date_month(raw["to"])
    except ValueError as exc:
        raise AssetRulesError(str(exc), src, rule, "effective") from None
    if end is not None and end < start:
        raise AssetRulesError("'to' is before 'from'", src, rule, "effective")
    return start, end


def _params(raw: Any, rule: str, src: str, partial: bool) -> dict[str, float]:
    names = set(PARAMS[rule])
    raw = _keys(raw, names, set() if partial else names, src, rule, "params")
    out = {}
    for k, v in raw.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v) or v < 0:
            raise AssetRulesError("must be a number ≥ 0", src, rule, f"params.{k}")
        if k == "floor" and v > 1:
            raise AssetRulesError("a floor is a share (0.03 = 3%)", src, rule, "params.floor")
        out[k] = float(v)
    return out


def _uses(raw: Any, src: str, key: str) -> dict[str, str]:
    if not isinstance(raw, list):
        raise AssetRulesError("must be a list of {use, zh}", src, None, key)
    out = {}
    for item in raw:
        item = _keys(item, {"use", "zh"}, {"use", "zh"}, src, None, key)
        out[str(item["use"])] = str(item["zh"])
    return out


def parse_text(text: str, source: str = "<asset rules>") -> AssetRules:
    """An asset rules file's text, strictly checked."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise AssetRulesError(f"not YAML: {str(exc).splitlines()[0]}", source) from None
    data = _keys(data, {"version", "description", "distribution", "rules"},
                 {"version", "distribution", "rules"}, source, None, "the file")  # fmt: skip
    dist = _keys(data["distribution"], {"order", "banned", "source"}, {"order", "banned"},
                 source, None, "distribution")  # fmt: skip
    order, banned = _uses(dist["order"], source, "order"), _uses(dist["banned"], source, "banned")
    if set(order) & set(banned):
        raise AssetRulesError("a use is both in the order and banned", source, None, "distribution")
    rules, seen = [], set()
    for raw in data["rules"] or []:
        rid = raw.get("id") if isinstance(raw, dict) else None
        if rid not in PARAMS:
            raise AssetRulesError(
                "id must be one of " + ", ".join(RULE_IDS), source, str(rid), "id"
            )
        if rid in seen:
            raise AssetRulesError("a rule appears twice", source, rid, "id")
        seen.add(rid)
        raw = _keys(raw, {"id", "params", "effective", "source", "message_zh", "message_en",
                          "overrides"},
                    {"id", "params", "effective", "source", "message_zh", "message_en"},
                    source, rid, "the rule")  # fmt: skip
        overrides = []
        for o in raw.get("overrides") or []:
            o = _keys(o, {"areas", "params", "effective", "source"},
                      {"areas", "params", "effective", "source"}, source, rid, "override")  # fmt: skip
            areas = tuple(str(a) for a in o["areas"] or [])
            if not areas or not all(a.isdigit() and len(a) in (2, 4, 6) for a in areas):
                raise AssetRulesError("areas are county-code prefixes of 2, 4 or 6 digits",
                                      source, rid, "overrides.areas")  # fmt: skip
            overrides.append(Override(areas, _params(o["params"], rid, source, True),
                                      *_effective(o["effective"], source, rid), str(o["source"])))  # fmt: skip
        rules.append(AssetRule(rid, _params(raw["params"], rid, source, False),
                               *_effective(raw["effective"], source, rid), str(raw["source"]),
                               str(raw["message_zh"]), str(raw["message_en"]), tuple(overrides)))  # fmt: skip
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return AssetRules(str(data["version"]), order, banned, tuple(rules), digest, source)


def load(path: str | Path | None = None) -> AssetRules:
    """The rules file: ``path``, else ``$RISKML_ASSET_RULES_FILE``, else the shipped one."""
    p = Path(path or os.environ.get(ENV_FILE) or config.package_file("assets/rules.yaml"))
    if not p.exists():
        raise AssetRulesError("file not found", str(p))
    return parse_text(p.read_text(encoding="utf-8"), str(p))


# --------------------------------------------------------------------------- evaluation
def thresholds(rule: AssetRule, counties: pd.Series, month: int) -> dict[str, np.ndarray]:
    """Each parameter of ``rule`` per asset: the default, then overrides in force by county
    prefix (longer prefixes applied last, so they win)."""
    n = len(counties)
    out = {k: np.full(n, v) for k, v in rule.params.items()}
    codes = counties.astype(str)
    applied = [
        (len(a), k, o, a)
        for k, o in enumerate(rule.overrides)
        if o.start <= month and (o.end is None or month <= o.end)
        for a in o.areas
    ]
    for _, _, o, area in sorted(applied, key=lambda t: (t[0], t[1])):
        mask = codes.str.startswith(area).to_numpy()
        for k, v in o.params.items():
            out[k][mask] = v
    return out


def _dates(s: pd.Series) -> pd.Series:
    return pd.to_datetime(s, errors="coerce", format="%Y-%m-%d")


def add_months(dates: pd.Series, months: np.ndarray) -> pd.Series:
    """``dates`` plus whole ``months`` each (the day kept, or the month's last day)."""
    ok = dates.notna().to_numpy()
    out = pd.Series(pd.NaT, index=dates.index, dtype="datetime64[ns]")
    if not ok.any():
        return out
    d = dates[ok]
    total = d.dt.year.to_numpy() * 12 + d.dt.month.to_numpy() - 1 + months[ok].astype(int)
    first = pd.to_datetime({"year": total // 12, "month": total % 12 + 1, "day": 1})
    day = np.minimum(d.dt.day.to_numpy(), first.dt.days_in_month.to_numpy())
    out[ok] = (first + pd.to_timedelta(day - 1, unit="D")).to_numpy()
    return out


def _pct(x: float) -> str:
    return f"{x * 100:.2f}%"


def _pct_below(x: float) -> str:
    """A rate below a threshold, rounded down (2.9999% is shown 2.99%, never the floor's 3.00%)."""
    return f"{np.floor(x * 10000) / 100:.2f}%"


def _fired(rule: AssetRule, ids: np.ndarray, rows: np.ndarray, values: list[Any],
           limits: list[Any], extra: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:  # fmt: skip
    out = []
    for k, i in enumerate(rows.tolist()):
        names = {"value": values[k], "threshold": limits[k], **(extra[k] if extra else {})}
        out.append({
            "asset_id": ids[i], "rule": rule.id, "value": values[k], "threshold": limits[k],
            "reason_zh": rule.message_zh.format(**names), "reason_en": rule.message_en.format(**names),
        })  # fmt: skip
    return out


def _months_between(earlier: pd.Series, later: pd.Timestamp) -> np.ndarray:
    return ((later - earlier).dt.days.to_numpy() / 30.4375).round(1)


def evaluate(frame: pd.DataFrame, rules: AssetRules, as_of: dt.date | str) -> pd.DataFrame:
    """The rules fired over a register frame at ``as_of``: one row per (asset, rule)."""
    when = pd.Timestamp(as_of)
    month = when.year * 12 + when.month - 1
    ids = frame["asset_id"].to_numpy(dtype=object)
    status, category = (
        frame["status"].to_numpy(dtype=object),
        frame["category"].to_numpy(dtype=object),
    )
    out: list[dict[str, Any]] = []
    for rule in rules.rules:
        if not rule.in_force(month) or frame.empty:
            continue
        t = thresholds(rule, frame["county_code"], month)
        if rule.id == "ownership_unconfirmed":
            accepted = _dates(frame["accepted_date"])
            due = add_months(accepted, t["deadline_months"])
            hit = (frame["rights_status"].to_numpy(dtype=object) == "unconfirmed") & (
                due < when
            ).to_numpy()
            rows = np.flatnonzero(hit)
            elapsed = _months_between(accepted, when)
            out += _fired(rule, ids, rows, [f"{elapsed[i]:g}" for i in rows],
                          [f"{t['deadline_months'][i]:g}" for i in rows])  # fmt: skip
        elif rule.id == "low_return":
            year = when.year - 1
            accepted = _dates(frame["accepted_date"])
            before = (accepted < pd.Timestamp(year, 1, 1)).to_numpy() | (
                accepted.isna().to_numpy()
                & (pd.to_numeric(frame["build_year"], errors="coerce").to_numpy() < year)
            )
            income = np.array([float((inc or {}).get(str(year), 0.0)) for inc in frame["incomes"]])
            original = frame["original_value"].to_numpy(dtype="float64")
            with np.errstate(divide="ignore", invalid="ignore"):
                rate = np.where(original > 0, income / original, np.nan)
            eligible = (
                (category == "operating")
                & np.isin(status, ["operating", "low_efficiency", "idle"])
                & before
            )
            rows = np.flatnonzero(eligible & (rate < t["floor"]))
            out += _fired(rule, ids, rows, [_pct_below(rate[i]) for i in rows],
                          [_pct(t["floor"][i]) for i in rows], [{"year": year} for _ in rows])  # fmt: skip
        elif rule.id == "idle_too_long":
            since = _dates(frame["idle_since"])
            due = add_months(since, t["months"])
            rows = np.flatnonzero((status == "idle") & (due < when).to_numpy())
            elapsed = _months_between(since, when)
            out += _fired(rule, ids, rows, [f"{elapsed[i]:g}" for i in rows],
                          [f"{t['months'][i]:g}" for i in rows])  # fmt: skip
        elif rule.id == "public_welfare_unmanaged":
            fund = frame["maintenance_fund"].to_numpy(dtype="float64")
            no_caretaker = frame["caretaker"].isna().to_numpy()
            no_fund = np.isnan(fund) | (fund <= t["min_maintenance_fund"])
            rows = np.flatnonzero(
                (category == "public_welfare") & (status != "disposed") & (no_caretaker | no_fund)
            )
            extra = []
            for i in rows:
                zh = [
                    w
                    for w, on in (("未明确管护责任人", no_caretaker[i]), ("无管护经费", no_fund[i]))
                    if on
                ]
                en = [w for w, on in (("has no named caretaker", no_caretaker[i]),
                                      ("has no maintenance fund", no_fund[i])) if on]  # fmt: skip
                extra.append({"what_zh": "、".join(zh), "what_en": " and ".join(en)})
            out += _fired(rule, ids, rows, [None if np.isnan(fund[i]) else float(fund[i]) for i in rows],
                          [float(t["min_maintenance_fund"][i]) for i in rows], extra)  # fmt: skip
        elif rule.id in ("distribution_order", "distribution_banned"):
            out += _distributions(rule, rules, frame, ids, t["lookback_months"], when)
        elif rule.id == "contract_expired":
            end = _dates(frame["contract_end"])
            due = end + pd.to_timedelta(t["grace_days"], unit="D")
            operated = np.isin(frame["operating_mode"].to_numpy(dtype=object), OPERATED_BY_OTHERS)
            live = np.isin(status, ["operating", "low_efficiency", "idle"])
            rows = np.flatnonzero(operated & live & (due < when).to_numpy())
            ends = frame["contract_end"].to_numpy(dtype=object)
            out += _fired(rule, ids, rows, [ends[i] for i in rows],
                          [f"{t['grace_days'][i]:g}" for i in rows])  # fmt: skip
    return pd.DataFrame(out, columns=list(RESULT_COLUMNS))


def _distributions(rule: AssetRule, rules: AssetRules, frame: pd.DataFrame, ids: np.ndarray,
                   lookback: np.ndarray, when: pd.Timestamp) -> list[dict[str, Any]]:  # fmt: skip
    """The distributions in the look-back window (after ``when`` − lookback, up to ``when``)
    that break the order or pay a banned use: the first such distribution of each asset."""
    rank = {u: k for k, u in enumerate(rules.order)}
    starts = add_months(pd.Series([when] * len(frame), index=frame.index), -lookback)
    out = []
    for i, dists in enumerate(frame["distributions"]):
        for d in dists or []:
            day = pd.Timestamp(d["date"])
            if not starts.iloc[i] < day <= when:
                continue
            uses = [item["use"] for item in d["items"]]
            if rule.id == "distribution_banned":
                bad = [u for u in dict.fromkeys(uses) if u in rules.banned]
                zh = "、".join(rules.banned[u] for u in bad)
                en = ", ".join(bad)
            else:
                unknown = [
                    u for u in dict.fromkeys(uses) if u not in rank and u not in rules.banned
                ]
                ranks = [rank[u] for u in uses if u in rank]
                late = [uses[k - 1] for k in range(1, len(uses)) if uses[k] in rank
                        and uses[k - 1] in rank and rank[uses[k]] < rank[uses[k - 1]]]  # fmt: skip
                bad = unknown + [u for u in dict.fromkeys(late) if u not in unknown]
                if not bad and ranks == sorted(ranks):
                    continue
                zh = "、".join(("未列入分配顺序的用途 " + u) if u in unknown else
                              (rules.order[u] + " 先于排序在前的用途支付") for u in bad)  # fmt: skip
                en = "; ".join((f"{u} is not in the order") if u in unknown else
                               (f"{u} paid before a use ranked above it") for u in bad)  # fmt: skip
            if not bad:
                continue
            out += _fired(rule, ids, np.array([i]), [", ".join(bad)],
                          [f"{lookback[i]:g}"], [{"date": d["date"], "what_zh": zh, "what_en": en}])  # fmt: skip
            break
    return out


def fired_by_asset(results: pd.DataFrame) -> dict[str, list[dict[str, Any]]]:
    """``evaluate``'s rows grouped by asset."""
    out: dict[str, list[dict[str, Any]]] = {}
    for r in results.to_dict("records"):
        out.setdefault(r["asset_id"], []).append(r)
    return out


__all__ = [
    "ENV_FILE", "PARAMS", "RESULT_COLUMNS", "RULE_IDS", "AssetRule", "AssetRules",
    "AssetRulesError", "Override", "add_months", "evaluate", "fired_by_asset", "load",
    "parse_text", "thresholds",
]  # fmt: skip
