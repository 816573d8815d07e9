"""The asset record contract: its fields, validation naming row and field (cross-field rules
too), the three file formats, no personal values in problems, and docs/assets.md current."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from riskml.assets import contract as c
from riskml.assets.doc import assets_markdown
from riskml.assets.io import read_records, write_table
from riskml.assets.validation import WITHHELD, record_problems, validate_frame
from tests.code.asset_samples import record

ROOT = Path(__file__).resolve().parents[2]


def _found(*records):
    return [(p.row, p.field, p.rule) for p in record_problems(list(records))]


def test_the_contract_has_the_agreed_fields_and_chinese_labels():
    assert c.FIELD_NAMES == (
        "asset_id", "project_id", "build_year", "category", "subtype", "form", "funding",
        "original_value", "book_value", "county_code", "village_code", "owner_type", "owner",
        "rights_status", "accepted_date", "rights_date", "operator", "operating_mode",
        "contract_start", "contract_end", "guaranteed_return_rate", "caretaker",
        "maintenance_fund", "status", "beneficiaries",
    )  # fmt: skip
    assert c.label("category", "public_welfare") == "公益性"
    assert c.label("funding", "x") is None
    assert set(c.FUNDING_SOURCES) == {"linkage_fund", "integrated_agri_fund", "east_west",
                                      "paired_assistance", "donation", "other"}  # fmt: skip
    assert all(f.zh and f.en for f in c.FIELDS)


def test_a_valid_record_has_no_problems():
    assert record_problems([record()]) == []


@pytest.mark.parametrize(
    ("changes", "field", "rule"),
    [
        ({"asset_id": None}, "asset_id", c.MISSING_RULE),
        ({"asset_id": "a b"}, "asset_id", f"must match {c.ID_PATTERN}"),
        ({"build_year": 2019.5}, "build_year", c.WHOLE_RULE),
        ({"build_year": "2019"}, "build_year", c.NUMBER_RULE),
        ({"category": "private"}, "category", "must be one of operating, public_welfare, household"),
        ({"original_value": -1}, "original_value", "must be ≥ 0"),
        ({"original_value": float("inf")}, "original_value", c.FINITE_RULE),
        ({"accepted_date": "2020-02-30"}, "accepted_date", c.DATE_RULE),
        ({"guaranteed_return_rate": 1.5}, "guaranteed_return_rate", "must be ≤ 1"),
        ({"funding": "linkage_fund"}, "funding", c.LIST_RULE),
        ({"funding": [{"source": "linkage_fund", "amount": -5}]}, "funding[0].amount", "must be ≥ 0"),
        ({"funding": [{"source": "lottery", "amount": 5}]}, "funding[0].source",
         "must be one of " + ", ".join(c.FUNDING_SOURCES)),
        ({"funding": [{"source": "other", "amount": 1001001}]}, "funding", c.FUNDING_SUM_RULE),
        ({"book_value": 1000001}, "book_value", c.BOOK_RULE),
        ({"village_code": "530103001001"}, "village_code", c.VILLAGE_RULE),
        ({"county_code": "990102", "village_code": "990102001001"}, "county_code", c.PROVINCE_RULE),
        ({"accepted_date": "2018-12-31"}, "accepted_date", c.ACCEPTED_BEFORE_BUILD_RULE),
        ({"rights_status": "confirmed", "rights_date": "2020-01-01"}, "rights_date",
         c.RIGHTS_BEFORE_ACCEPTED_RULE),
        ({"rights_status": "certified"}, "rights_date", c.RIGHTS_DATE_RULE),
        ({"contract_end": "2020-04-01"}, "contract_end", c.CONTRACT_ORDER_RULE),
        ({"contract_start": None}, "contract_start", c.CONTRACT_START_RULE),
        ({"owner_type": "household", "owner": "张三 家"}, "owner", c.HOUSEHOLD_OWNER_RULE),
        ({"category": "household"}, "owner_type", c.HOUSEHOLD_CATEGORY_RULE),
        ({"beneficiaries": [{"household_id": "hh-1", "share": 0}]}, "beneficiaries[0].share", c.SHARE_RULE),
        ({"beneficiaries": [{"household_id": "hh-1", "share": 1.2}]}, "beneficiaries[0].share", c.SHARE_RULE),
        ({"beneficiaries": [{"household_id": "hh-1", "share": 0.6}, {"household_id": "hh-2", "share": 0.5}]},
         "beneficiaries", c.SHARES_SUM_RULE),
        ({"beneficiaries": [{"household_id": "hh-1", "share": 0.2}, {"household_id": "hh-1", "share": 0.2}]},
         "beneficiaries[1].household_id", c.REPEATED_HOUSEHOLD_RULE),
        ({"colour": "red"}, "colour", c.UNKNOWN_RULE),
    ],
)  # fmt: skip
def test_each_rule_names_the_row_and_the_field(changes, field, rule):
    assert _found(record(), record(asset_id="A-2", **changes) if "asset_id" not in changes
                  else record(**changes)) == [(1, field, rule)]  # fmt: skip


def test_the_rules_at_their_limits_pass():
    ok = record(
        funding=[{"source": "other", "amount": 1001000}],  # within the 0.1% rounding tolerance
        book_value=1000000, original_value=1000000, accepted_date="2019-01-01",
        guaranteed_return_rate=1.0,
        beneficiaries=[{"household_id": "hh-1", "share": 0.6}, {"household_id": "hh-2", "share": 0.4}],
    )  # fmt: skip
    assert record_problems([ok]) == []


def test_a_repeated_asset_id_names_the_first_record():
    assert _found(record(), record()) == [(1, "asset_id", c.duplicate_rule(0))]


def test_problems_never_quote_owners_operators_caretakers_or_household_ids():
    bad = record(owner_type="household", owner="张三 家", operator="x" * 300, caretaker="李四",
                 beneficiaries=[{"household_id": "王五", "share": 0.5}])  # fmt: skip
    problems = record_problems([bad])
    assert {p.field for p in problems} >= {
        "owner",
        "operator",
        "caretaker",
        "beneficiaries[0].household_id",
    }
    text = " ".join(str(p) for p in problems) + json.dumps(
        [p.as_dict() for p in problems], ensure_ascii=False
    )
    for secret in ("张三", "李四", "王五", "xxxxx"):
        assert secret not in text
    assert WITHHELD in text


def _frame(records):
    df = pd.DataFrame(records)
    return df


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet", "native.parquet"])
def test_the_three_file_formats_read_the_same_records(tmp_path, suffix):
    good, bad = record(), record(asset_id="A-2", original_value=-1.0, beneficiaries=None)
    path = tmp_path / f"assets{suffix}"
    if suffix == "native.parquet":  # list columns as Parquet lists of structs
        _frame([good, bad]).to_parquet(path)
    elif suffix == ".jsonl":
        path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in (good, bad)) + "\n")
    else:
        write_table(_frame([good, bad]), path)
    records, file_problems = read_records(path)
    assert file_problems == []
    assert [(p.row, p.field, p.rule) for p in record_problems(records)] == [
        (1, "original_value", "must be ≥ 0")
    ]
    assert records[0]["funding"] == good["funding"] and records[0]["build_year"] == 2019


def test_a_table_without_a_contract_column_is_refused_as_a_whole(tmp_path):
    path = tmp_path / "a.csv"
    write_table(_frame([record()]).drop(columns=["status"]), path)
    _, problems = read_records(path)
    assert [(p.row, p.field) for p in problems] == [(-1, "status")]
    assert [
        (p.row, p.field) for p in validate_frame(_frame([record()]).drop(columns=["form"]))
    ] == [(-1, "form")]


def test_a_csv_cell_that_is_not_json_or_not_a_number_is_named(tmp_path):
    path = tmp_path / "a.csv"
    df = _frame([record()])
    df["funding"] = "not json"
    df["book_value"] = "lots"
    write_table(df, path)
    records, _ = read_records(path)
    assert _found(*records) == [(0, "funding", c.LIST_RULE), (0, "book_value", c.NUMBER_RULE)]


def test_docs_assets_md_is_the_contract_s_output():
    assert (ROOT / "docs" / "assets.md").read_text(encoding="utf-8") == assets_markdown()
