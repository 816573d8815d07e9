"""``docs/assets.md``: the asset record, its events, the transition table and the shipped rules.

``riskml assets contract`` prints it; a test checks that the file in the repository is
exactly this output (``riskml.assets.contract.FIELDS`` and ``riskml.assets.events`` are the
one source), as for the household record's docs/contract.md.
"""

from __future__ import annotations

from riskml import config
from riskml.assets.contract import FIELDS, STATUSES
from riskml.assets.events import DISPOSAL_METHODS, PAYLOADS, REVIVAL_METHODS, TRANSITIONS
from riskml.assets.rules import load as load_rules
from riskml.data.periods import month_text


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def field_table() -> list[str]:
    rows = [
        "| field | type | required | rule | 含义 | meaning |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for f in FIELDS:
        rows.append(
            f"| {f.name} | {f.kind} | {'yes' if f.required else 'no'} | {_cell(f.rule_text())} "
            f"| {_cell(f.zh)} | {_cell(f.en)} |"
        )
    return rows


def event_table() -> list[str]:
    rows = ["| event | 事件 | allowed in status | status after | payload (* required) |",
            "| --- | --- | --- | --- | --- |"]  # fmt: skip
    for name, (zh, before, after) in TRANSITIONS.items():
        allowed = ", ".join(s or "(new asset)" for s in before)
        if name == "register":
            then = "the record's status"
        elif name == "disposal":
            then = "disposed (suspension: suspended)"
        else:
            then = after or "unchanged"
        payload = ", ".join(n + ("*" if req else "") for n, req in PAYLOADS[name]) or "none"
        rows.append(f"| {name} | {zh} | {allowed} | {then} | {payload} |")
    return rows


def rules_table() -> list[str]:
    """The shipped rules file's rules: id, parameters, months in force, overrides, source."""
    rules = load_rules(config.package_file("assets/rules.yaml"))  # the shipped file, always
    rows = [
        f"Version {rules.version}. Distribution order: "
        + ", ".join(f"{k} ({v})" for k, v in rules.order.items())
        + ". Banned uses: "
        + ", ".join(f"{k} ({v})" for k, v in rules.banned.items())
        + ".",
        "",
        "| rule | parameters | in force | overrides | source |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in rules.rules:
        params = ", ".join(f"{k} = {v:g}" for k, v in r.params.items())
        when = f"from {month_text(r.start)}" + (f" to {month_text(r.end)}" if r.end else "")
        over = "; ".join(
            f"{'/'.join(o.areas)}: " + ", ".join(f"{k} = {v:g}" for k, v in o.params.items())
            for o in r.overrides
        )
        rows.append(f"| {r.id} | {params} | {when} | {over or 'none'} | {_cell(r.source)} |")
    return rows


def assets_markdown() -> str:
    """The whole document (docs/assets.md)."""
    statuses = ", ".join(f"{k} ({v})" for k, v in STATUSES.items())
    revival = ", ".join(f"{k} ({v})" for k, v in REVIVAL_METHODS.items())
    disposal = ", ".join(f"{k} ({v})" for k, v in DISPOSAL_METHODS.items())
    lines = [
        "# Contract: the assistance-asset record (帮扶资产台账)",
        "",
        "Generated from `riskml.assets.contract.FIELDS` and `riskml.assets.events` by",
        "`riskml assets contract`; do not edit by hand (a test checks this file against the",
        "command's output). Fields may be added, never renamed or dropped.",
        "",
        "## The record: one row per asset",
        "Money is yuan; dates are `YYYY-MM-DD`; ids are pseudonymous (never a name or an",
        "ID-card number). Files: CSV (a list field is JSON text in its cell), JSON lines",
        "(`.jsonl`, lists as lists) or Parquet. A problem names the row (0-based), the asset,",
        "the field (a list item as `funding[1].amount`) and the rule; the values of owner,",
        "operator, caretaker and beneficiaries are never quoted.",
        "",
        *field_table(),
        "",
        "Also checked: the funding amounts sum to at most original_value (plus 1 yuan or 0.1%",
        "for rounding); book_value ≤ original_value; accepted_date not before build_year;",
        "rights_date not before accepted_date, and given unless rights_status is unconfirmed;",
        "contract_end after contract_start (which it needs); village_code starts with",
        "county_code, whose first two digits are a province; a household owner is a",
        "pseudonymous household_id; a household (到户类) asset has owner_type household;",
        "beneficiaries appear once each with shares summing to at most 1; an asset_id once",
        "per file.",
        "",
        "## Lifecycle events (insert-only)",
        "Every step of an asset's life is one event {asset_id, event, date, payload}, stored",
        "insert-only in the ledger's `asset_events` table; the current register is the events",
        "replayed. An event not allowed in the asset's status is refused, naming the asset and",
        "the event; a batch of events is stored whole or not at all. Event dates never go back.",
        f"Statuses: {statuses}.",
        "",
        *event_table(),
        "",
        f"Revival methods: {revival}.",
        "",
        f"Disposal methods: {disposal}; a disposal names who approved it",
        "(approved_by) and the approval's reference (approval_ref). A distribution",
        "lists items {use, amount, household_id?} and may not pay out more than the year's",
        "recorded income; its order and banned uses are rules (`riskml/assets/rules.yaml`).",
        "",
        "## Rules (riskml/assets/rules.yaml)",
        "`riskml assets check` runs them over the current register as of a date; overrides set",
        "a parameter for the counties whose codes start with the given prefix (the longest wins).",
        "",
        *rules_table(),
    ]
    return "\n".join(lines) + "\n"
