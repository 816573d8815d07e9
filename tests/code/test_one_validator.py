"""One validator: the same bad records get the same problems on every path (issue 13, part 3).

A table of bad-record classes is put into one list of records beside 20 good
ones. The JSON answer (``record_problems``, what ``POST /score`` refuses) is the
reference; every other path must give, row for row, the same (field, rule)
set: ``validate_frame`` on a DataFrame of the records, the records written to
CSV and Parquet and read back by ``read_table``, ``riskml validate`` (its
rejects file) and ``riskml score`` (its rejects file) on both files, and the
422 of ``ScoringService.score`` (what ``POST /score`` runs, in this process).

Where a table cannot say what JSON says, the class states what the table
answers instead and why (``table`` / ``csv``): the expectation is still derived
from the JSON answer, never written out by hand.
"""

from __future__ import annotations

import json
import math
import os
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from riskml.cli import app
from riskml.data import schema
from riskml.data.io import read_table
from riskml.scoring import batch
from tests.data.test_schema import good_record

Answer = set[tuple[str, str]]  # (field, rule) of one record
N_GOOD = 20


def same(answer: Answer) -> Answer:
    return answer


def nothing(answer: Answer) -> Answer:
    return set()


def absent_is_null(answer: Answer) -> Answer:
    """A table has no absent key: the cell is empty, i.e. null (refused only if required)."""
    required = {f.name for f in schema.FIELDS if not f.nullable}
    return {
        (field, schema.MISSING_RULE if rule == schema.ABSENT_RULE else rule)
        for field, rule in answer
        if rule != schema.ABSENT_RULE or field in required
    }


@dataclass(frozen=True)
class Case:
    name: str
    change: Callable[[dict], None]  # makes a good record bad, in place
    # a Parquet column has one type: a record with a value of another cannot be written
    parquet: bool = True
    table: Callable[[Answer], Answer] = same  # what a DataFrame or Parquet file answers
    csv: Callable[[Answer], Answer] | None = None  # what a CSV answers (default: as ``table``)
    why: str = ""


def _set(**values):
    return lambda rec: rec.update(values)


def _drop(name):
    return lambda rec: rec.pop(name)


NO_TYPES = "a CSV cell is text: the reader makes numbers and flags of it"
CASES = [
    Case("text in a number", _set(income_wage="abc"), parquet=False),
    Case("number in a text field", _set(household_id=12345), parquet=False, csv=nothing, why=NO_TYPES),
    Case("string digits in a number", _set(household_size="4"), parquet=False, csv=nothing, why=NO_TYPES),
    Case("string digits in money", _set(debt="12"), parquet=False, csv=nothing, why=NO_TYPES),
    Case("full-width digits in period", _set(period="20２４-06")),
    Case("full-width digits in county_code", _set(county_code="５32328")),
    Case("full-width digits in village_code", _set(village_code="5323281012０1")),
    Case("flag in a number", _set(income_wage=True), parquet=False),
    Case("number in a flag", _set(head_female=0), parquet=False, csv=nothing, why="CSV 0/1 are flags"),
    Case("text in a flag", _set(head_female="yes"), parquet=False),
    Case("NaN in a number", _set(income_wage=math.nan), table=nothing,
         why="a table writes missing as NaN; JSON NaN is not a number"),
    Case("NaN in household_size", _set(household_size=math.nan), table=lambda a: {
        ("household_size", schema.MISSING_RULE)}, why="NaN is missing in a table"),
    Case("infinity", _set(income_wage=math.inf)),
    Case("minus infinity", _set(income_business=-math.inf)),
    Case("negative money", _set(income_wage=-1.0)),
    Case("negative count", _set(labor_count=-1)),
    Case("money too large", _set(debt=2e10)),
    Case("household too large", _set(household_size=21)),
    Case("1e300", _set(income_transfer=1e300)),
    Case("10**400 in money", _set(income_wage=10**400), parquet=False),
    Case("10**400 in household_size", _set(household_size=10**400), parquet=False),
    Case("fraction in an int", _set(labor_count=1.5)),
    Case("count above household_size", _set(labor_count=5)),
    Case("months above 12 × household_size", _set(months_employed=49.0)),
    Case("missing key, nullable", _drop("debt"), table=absent_is_null,
         why="a table has no absent key: an empty cell is a null"),
    Case("missing key, required", _drop("county_code"), table=absent_is_null,
         why="a table has no absent key: an empty cell is a null"),
    Case("null in a required field", _set(household_size=None)),
    Case("null period", _set(period=None)),
    Case("unknown key", _set(nickname="Xiao Li"), table=nothing,
         why="a file may carry other columns (label, scores)"),
    Case("village outside county", _set(village_code="532329101201")),
    Case("unknown province", _set(county_code="992328", village_code="992328101201")),
    Case("duplicate key", _set(household_id="h03", income_wage=1.0)),
    Case("period month 13", _set(period="2024-13")),
    Case("several at once", _set(head_age=5, labor_count=9, debt=-3.0, period="2024-6")),
]  # fmt: skip


def bad_records(parquet_only: bool = False) -> tuple[list[dict], dict[int, Case]]:
    """20 good records, then one bad record per case; and the case at each bad record's index.

    The records are what a JSON body holds (through ``json.dumps`` and
    ``json.loads``): the live ``POST /score`` comparison can use them as they are.
    """
    records = [good_record(household_id=f"h{i:02d}") for i in range(N_GOOD)]
    at: dict[int, Case] = {}
    for k, case in enumerate(CASES):
        if parquet_only and not case.parquet:
            continue
        rec = good_record(household_id=f"b{k:02d}")
        case.change(rec)
        at[len(records)] = case
        records.append(rec)
    return json.loads(json.dumps(records)), at


def by_row(problems) -> dict[int, Answer]:
    out: dict[int, Answer] = defaultdict(set)
    for p in problems:
        out[p.row].add((p.field, p.rule))
    return dict(out)


def expected(records: list[dict], at: dict[int, Case], path: str) -> dict[int, Answer]:
    """What ``path`` (json, table or csv) must answer: the JSON answer, through each case's rule."""
    answer = by_row(schema.record_problems(records))
    assert set(answer) == set(at), "every bad record, and only those, is refused as JSON"
    out = {}
    for row, case in at.items():
        change = case.table if path == "table" else (case.csv or case.table)
        got = answer[row] if path == "json" else change(answer[row])
        if got:
            out[row] = got
    return out


def from_rejects(rejects: pd.DataFrame) -> dict[int, Answer]:
    """(field, rule) per row from a rejects file's ``reasons`` ("field: rule (got value); ...")."""
    out: dict[int, Answer] = {}
    for row, reasons in zip(rejects["row"], rejects["reasons"], strict=True):
        answer = set()
        for part in str(reasons).split("; "):
            field, rest = part.split(": ", 1)
            answer.add((field, rest.rsplit(" (got ", 1)[0]))
        out[int(row)] = answer
    return out


def write(records: list[dict], path: Path) -> Path:
    frame = pd.DataFrame(records)
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    return path


# --------------------------------------------------------------------------- the table itself
def test_every_class_is_refused_as_json_and_the_good_records_are_not():
    records, at = bad_records()
    answer = by_row(schema.record_problems(records))
    assert sorted(answer) == sorted(at)
    for row, case in at.items():
        assert answer[row], case.name
    # the cases that differ say why
    for case in CASES:
        if case.table is not same or case.csv is not None:
            assert case.why, case.name


def test_a_dataframe_of_the_records_gives_the_same_problems():
    records, at = bad_records()
    assert by_row(schema.validate_frame(pd.DataFrame(records))) == expected(records, at, "table")


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_files_read_back_give_the_same_problems(tmp_path, suffix):
    records, at = bad_records(parquet_only=suffix == ".parquet")
    path = write(records, tmp_path / f"records{suffix}")
    want = expected(records, at, "csv" if suffix == ".csv" else "table")
    assert by_row(schema.validate_frame(read_table(path))) == want


def test_parquet_cannot_hold_the_classes_marked_so(tmp_path):
    """The classes left out of the Parquet file cannot be written to one as they are.

    pyarrow refuses most (one type per column); a flag in a number column it
    writes as 1.0, which is another record.
    """
    good = [good_record(household_id=f"h{i:02d}") for i in range(3)]
    for k, case in enumerate(CASES):
        if case.parquet:
            continue
        rec, before = good_record(household_id=f"b{k:02d}"), good_record(household_id=f"b{k:02d}")
        case.change(rec)
        changed = [name for name, v in rec.items() if _plain(before.get(name)) != _plain(v)]
        assert changed, case.name
        path = tmp_path / f"case{k}.parquet"
        try:
            write([*good, rec], path)
        except (ArithmeticError, ValueError, TypeError):  # pyarrow's errors are among these
            continue
        back = pd.read_parquet(path).iloc[-1]
        as_read = [_plain(back[name]) for name in changed]
        assert as_read != [(type(rec[name]), rec[name]) for name in changed], case.name


def _plain(v):
    v = v.item() if hasattr(v, "item") else v
    return (type(v), v)


# --------------------------------------------------------------------------- the commands
@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_riskml_validate_gives_the_same_problems(tmp_path, suffix):
    records, at = bad_records(parquet_only=suffix == ".parquet")
    path = write(records, tmp_path / f"records{suffix}")
    rejects = tmp_path / "rejects.csv"
    res = CliRunner().invoke(app, ["validate", str(path), "--rejects", str(rejects)])
    assert res.exit_code == 1, res.output
    want = expected(records, at, "csv" if suffix == ".csv" else "table")
    assert f"{len(records):,} records, {len(want):,} invalid" in res.output
    assert from_rejects(pd.read_csv(rejects, dtype=str, keep_default_na=False)) == want


def _score(tmp_path: Path, path: Path, *extra: str) -> dict[int, Answer]:
    out = tmp_path / "decisions.parquet"
    rejects = tmp_path / "rejects.parquet"
    args = ["score", str(path), "--out", str(out), "--rejects", str(rejects), "--workers", "0"]
    res = CliRunner().invoke(app, [*args, "--quiet", *extra])
    assert res.exit_code == 0, res.output + repr(res.exception)
    return from_rejects(pd.read_parquet(rejects))


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_riskml_score_rejects_the_same_problems(tmp_path, registered, suffix):
    records, at = bad_records(parquet_only=suffix == ".parquet")
    path = write(records, tmp_path / f"records{suffix}")
    want = expected(records, at, "csv" if suffix == ".csv" else "table")
    assert _score(tmp_path, path) == want


@pytest.mark.xfail(
    batch.DUPLICATE_RULE != schema.DUPLICATE_RULE_PREFIX,
    strict=True,
    reason="the batch engine words a repeat from another chunk with its own rule until it passes "
    "validate_frame(df, earlier=...) the first row of each key (scoring/batch/keys.py, validate.py)",
)
def test_riskml_score_names_a_repeat_from_another_chunk(tmp_path, registered):
    records, at = bad_records(parquet_only=True)
    path = write(records, tmp_path / "records.parquet")
    assert _score(tmp_path, path, "--chunk-rows", "7") == expected(records, at, "table")


# --------------------------------------------------------------------------- the service
def test_post_score_refuses_the_same_problems(tmp_path, registered):
    """``ScoringService.score`` (what ``POST /score`` calls), in this process: the same 422."""
    from riskml.service.access import add_key
    from riskml.service.core import ScoringService, Settings

    keys = tmp_path / "keys.yaml"
    token = add_key(keys, "validator-test", "scorer")
    svc = ScoringService(
        Settings(
            tracking_uri=os.environ["MLFLOW_TRACKING_URI"],
            cache_dir=tmp_path / "model-cache",
            ledger_url=f"sqlite:///{tmp_path / 'ledger.db'}",
            keys_file=str(keys),
        )
    )
    records, at = bad_records()
    reply = svc.score({"households": records}, f"Bearer {token}")
    assert reply.status == 422, reply.body
    got: dict[int, Answer] = defaultdict(set)
    for p in reply.body["problems"]:
        got[p["index"]].add((p["field"], p["problem"]))
    want = expected(records, at, "json")
    assert len(reply.body["problems"]) == sum(len(a) for a in want.values()) <= 100
    assert dict(got) == want
    assert svc.ledger.count() == 0  # nothing of a refused request is stored
