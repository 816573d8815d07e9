"""``docs/contract.md``: the household record contract, rendered from the schema module.

``riskml schema`` prints it; a test checks that the file in the repository is
exactly this output, so the document cannot drift from what validation,
training and the API enforce (``riskml.data.schema.FIELDS`` is their one source).
"""

from __future__ import annotations

from riskml.data.label import INCOME_FIELDS
from riskml.data.schema import FIELDS, LABEL
from riskml.data.side_inputs import SIDE_FIELDS

KIND_NAMES = {"str": "string", "int": "int", "float": "float", "bool": "bool"}


def field_table() -> list[str]:
    """The record's fields as a markdown table: name, type, nullable, rule, unit, meaning."""
    rows = [
        "| field | type | nullable | rule | unit | meaning |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for f in FIELDS:
        rule = f.rule_text().replace("|", "\\|")
        rows.append(
            f"| {f.name} | {KIND_NAMES[f.kind]} | {'yes' if f.nullable else 'no'} | {rule} "
            f"| {f.unit or ''} | {f.description} |"
        )
    return rows


def side_table() -> list[str]:
    """The side inputs (``riskml.data.side_inputs``) as a markdown table."""
    rows = ["| side input | type | rule | unit | meaning |", "| --- | --- | --- | --- | --- |"]
    for f in SIDE_FIELDS:
        rows.append(
            f"| {f.name} | {KIND_NAMES[f.kind]} | {f.rule_text()} | {f.unit or ''} "
            f"| {f.description} |"
        )
    return rows


def contract_markdown() -> str:
    """The whole contract document (docs/contract.md)."""
    income = " + ".join(INCOME_FIELDS)
    lines = [
        "# Contract: the household record",
        "",
        "Generated from `riskml.data.schema.FIELDS` by `riskml schema`; do not edit by hand",
        "(a test checks this file against the command's output). Monitoring systems, data",
        "scientists and other tools integrate against these names; fields may be added, never",
        "renamed or dropped. The scoring API that carries these records is in [api.md](api.md).",
        "",
        "## Household record: one row per household per monitoring period",
        "Money is yuan over the 12 months ending with `period`, for the whole household.",
        "Every field must be present in an API record; a nullable field may be null (missing),",
        "and missing is carried as missing, never replaced by zero.",
        "",
        *field_table(),
        "",
        "Also checked: digits are ASCII `0-9`; `village_code` starts with `county_code`; the first",
        "two digits of `county_code` are one of the 31 provincial codes; a (`household_id`,",
        "`period`) appears at most once in a file.",
        "",
        "## Derived, never sent by clients",
        f"- net income = {income}; per-capita net income = net income / household_size.",
        "- province = the first two digits of county_code; the monitoring line and the rural",
        "  dibao line come from the reference tables for that province and the year of `period`.",
        "- the previous period = the household's latest earlier record at most 12 months before",
        "  (the same rule in training, batch, Spark and the online service).",
        "",
        "## Side inputs: joined by riskml, never part of an API record",
        "A model trained with a feature option (`features:` in the training config) reads a",
        "side input as well, joined onto the records by `household_id` from another register.",
        "The API record never carries one (the service looks it up); a batch file for such a",
        "model does (`riskml assets income RECORDS --out FILE`); missing stays missing.",
        "",
        *side_table(),
        "",
        "## The label (training data only)",
        f"`{LABEL}` is 1 when, in the same household's record 12 months later, per-capita net",
        "income minus per-capita (medical_expense + education_expense) is below that later",
        "record's monitoring line; 0 when it is not; missing when there is no record 12 months",
        "later or that record lacks a value the label needs (such rows are not trained on).",
    ]
    return "\n".join(lines) + "\n"
