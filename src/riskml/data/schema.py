"""The household record: the single source of truth for its fields.

Everything that needs to know the record (the DataFrame validator, training,
the API's pydantic model, the data dictionary) reads ``FIELDS`` below, which
implements the table in the contract (shared/contract.md) field for field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, StringConstraints, create_model, model_validator
from pydantic import Field as PydanticField

from riskml.data.json_text import plain
from riskml.data.regions import PROVINCES

Kind = Literal["str", "int", "float", "bool"]


@dataclass(frozen=True)
class Field:
    """One field of the household record."""

    name: str
    kind: Kind
    description: str
    unit: str | None = None
    nullable: bool = True
    minimum: float | None = None
    maximum: float | None = None
    # upper bound given by another field, times a factor ("0–household_size")
    max_field: str | None = None
    max_factor: float = 1.0
    pattern: str | None = None

    def rule_text(self) -> str:
        """The field's rule in words, as in the contract's table."""
        parts: list[str] = []
        if self.pattern:
            parts.append(f"matches {self.pattern}")
        lo = "" if self.minimum is None else f"{self.minimum:g}"
        if self.max_field:
            factor = "" if self.max_factor == 1 else f"{self.max_factor:g} × "
            parts.append(f"{lo}–{factor}{self.max_field}")
        elif self.maximum is not None:
            parts.append(f"{lo}–{self.maximum:g}")
        elif self.minimum is not None:
            parts.append(f"≥ {lo}")
        if self.kind == "float" and self.minimum is None and self.maximum is None:
            parts.append("any")
        return "; ".join(parts)


_MONEY = "yuan, 12 months ending with period, whole household"
_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
_PERIOD_PATTERN = r"^(19|20)[0-9]{2}-(0[1-9]|1[0-2])$"


def pseudonymous_id(value: Any) -> str | None:
    """``value`` if it is a well-formed pseudonymous household id (safe to name in a problem), else None."""
    return value if isinstance(value, str) and re.fullmatch(_ID_PATTERN, value) else None


FIELDS: tuple[Field, ...] = (
    Field(
        "household_id",
        "str",
        "pseudonymous id, stable across periods; never a name or ID-card number",
        nullable=False,
        pattern=_ID_PATTERN,
    ),
    Field(
        "period",
        "str",
        "month the record was taken (YYYY-MM)",
        nullable=False,
        pattern=_PERIOD_PATTERN,
    ),
    Field(
        "county_code",
        "str",
        "county, GB/T 2260; the first two digits are the province",
        nullable=False,
        pattern=r"^[0-9]{6}$",
    ),
    Field(
        "village_code",
        "str",
        "village (grid), 12 digits starting with county_code",
        nullable=False,
        pattern=r"^[0-9]{12}$",
    ),
    Field(
        "household_size", "int", "members", unit="persons", nullable=False, minimum=1, maximum=20
    ),
    Field(
        "labor_count",
        "int",
        "members aged 16–64 able to work",
        unit="persons",
        minimum=0,
        max_field="household_size",
    ),
    Field(
        "elderly_count",
        "int",
        "members 65 and over",
        unit="persons",
        minimum=0,
        max_field="household_size",
    ),
    Field(
        "children_count",
        "int",
        "members under 16",
        unit="persons",
        minimum=0,
        max_field="household_size",
    ),
    Field("students_compulsory", "int", "in compulsory schooling", unit="persons", minimum=0),
    Field(
        "students_noncompulsory",
        "int",
        "in high school, vocational school or college",
        unit="persons",
        minimum=0,
    ),
    Field(
        "disabled_count",
        "int",
        "members with a certified disability",
        unit="persons",
        minimum=0,
        max_field="household_size",
    ),
    Field(
        "chronic_ill_count",
        "int",
        "members with serious or chronic illness",
        unit="persons",
        minimum=0,
        max_field="household_size",
    ),
    Field("head_age", "int", "age of the household head", unit="years", minimum=16, maximum=110),
    Field("head_female", "bool", "the household head is a woman"),
    Field(
        "head_education_years",
        "int",
        "years of schooling of the head",
        unit="years",
        minimum=0,
        maximum=22,
    ),
    Field("ethnic_minority", "bool", "the household belongs to an ethnic minority"),
    Field("formerly_poor", "bool", "registered poor household 2014–2020 (建档立卡)"),
    Field("dibao", "bool", "receives the rural minimum living guarantee"),
    Field("tekun", "bool", "receives extreme-poverty support (特困)"),
    Field("relocated", "bool", "moved under poverty relocation (易地扶贫搬迁)"),
    Field("income_wage", "float", "wages", unit=_MONEY, minimum=0),
    Field(
        "income_business",
        "float",
        "net operating income (farming, business); may be negative",
        unit=_MONEY,
    ),
    Field("income_property", "float", "rent, dividends", unit=_MONEY, minimum=0),
    Field(
        "income_transfer",
        "float",
        "pensions, subsidies, dibao and other transfers",
        unit=_MONEY,
        minimum=0,
    ),
    Field(
        "migrant_workers",
        "int",
        "members working outside the county",
        unit="persons",
        minimum=0,
        max_field="household_size",
    ),
    Field(
        "months_employed",
        "float",
        "months in paid work, summed over members",
        unit="person-months",
        minimum=0,
        max_field="household_size",
        max_factor=12,
    ),
    Field(
        "medical_expense",
        "float",
        "out-of-pocket medical cost after all insurance (合规自付)",
        unit=_MONEY,
        minimum=0,
    ),
    Field("education_expense", "float", "schooling costs", unit=_MONEY, minimum=0),
    Field(
        "disaster_loss",
        "float",
        "losses from natural disasters or accidents",
        unit=_MONEY,
        minimum=0,
    ),
    Field("debt", "float", "outstanding loans at period", unit="yuan", minimum=0),
    Field("medical_insured", "bool", "every member in basic medical insurance"),
    Field("housing_safe", "bool", "the house is safe"),
    Field("water_safe", "bool", "drinking water is safe and sufficient"),
    Field("dropout", "bool", "a compulsory-age child is out of school"),
)

FIELD_BY_NAME: dict[str, Field] = {f.name: f for f in FIELDS}
FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in FIELDS)
KEY = ("household_id", "period")
LABEL = "at_risk_next"
# Columns a simulated panel carries for evaluation only: never model features.
EVALUATION_ONLY = ("oracle_p",)

_PANDAS_DTYPE = {"str": "string", "int": "Int64", "float": "float64", "bool": "boolean"}


# --------------------------------------------------------------------------- problems
@dataclass(frozen=True)
class Problem:
    """One thing wrong with one field of one record."""

    row: int  # position of the record in the input (0-based)
    household_id: str | None
    field: str
    value: Any
    rule: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "row": self.row,
            "household_id": self.household_id,
            "field": self.field,
            "value": plain(self.value),
            "rule": self.rule,
        }

    @property
    def reason(self) -> str:
        """The problem as a rejects file words it: field, rule and the value found."""
        return f"{self.field}: {self.rule} (got {_shown(self.value)!r})"

    def __str__(self) -> str:
        hid = f" (household_id {self.household_id})" if self.household_id else ""
        return (
            f"row {self.row}{hid}, field {self.field!r}: {self.rule} (got {_shown(self.value)!r})"
        )


def _shown(value: Any) -> Any:
    """A value as a problem's message quotes it (NaN as the word NaN, numpy scalars unwrapped)."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, float) and np.isnan(value):
        return "NaN"
    if isinstance(value, np.generic):
        return value.item()
    return value


class SchemaError(ValueError):
    """A frame that does not satisfy the record schema; carries every problem found."""

    def __init__(self, problems: list[Problem], limit: int = 20):
        self.problems = problems
        shown = "\n".join(f"  - {p}" for p in problems[:limit])
        more = f"\n  ... and {len(problems) - limit} more" if len(problems) > limit else ""
        super().__init__(f"{len(problems)} problem(s) in the household records:\n{shown}{more}")


# --------------------------------------------------------------------------- validation
def _is_missing(s: pd.Series) -> pd.Series:
    return s.isna()


def _as_float(s: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Numeric view of a column and a mask of values that are present but not numbers.

    Booleans and strings are not numbers: a CSV cell "12" read as text is
    converted by pandas on read, but a JSON string "12" is refused.
    """
    if pd.api.types.is_bool_dtype(s.dtype):
        return pd.Series(np.nan, index=s.index), ~s.isna()
    if pd.api.types.is_numeric_dtype(s.dtype):
        return s.astype("float64"), pd.Series(False, index=s.index)
    present = ~s.isna()
    is_number = s.map(
        lambda v: isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
    )
    values = pd.to_numeric(s.where(is_number), errors="coerce").astype("float64")
    return values, present & ~is_number


def _bool_problems(s: pd.Series) -> pd.Series:
    if pd.api.types.is_bool_dtype(s.dtype):
        return pd.Series(False, index=s.index)
    ok = s.map(
        lambda v: (
            v is None
            or v is pd.NA
            or isinstance(v, (bool, np.bool_))
            or (isinstance(v, (int, float, np.integer, np.floating)) and (v in (0, 1) or v != v))
        )
    )
    return ~ok.astype(bool)


def validate_frame(df: pd.DataFrame) -> list[Problem]:
    """Every problem in a frame of household records, in row order.

    Checks presence of every contract field, nullability, types, patterns,
    ranges (fixed and relative to household_size), village inside county,
    known province, and that (household_id, period) is unique. Extra columns
    are allowed (the label, evaluation columns, optional fields).
    """
    problems: list[Problem] = []
    n = len(df)
    missing_cols = [f.name for f in FIELDS if f.name not in df.columns]
    for name in missing_cols:
        problems.append(Problem(-1, None, name, None, "column is missing from the file"))
    if missing_cols:
        return problems
    positions = np.arange(n)
    hid = df["household_id"].astype("object").where(df["household_id"].notna(), None).to_numpy()
    size, _ = _as_float(df["household_size"])

    def add(mask: pd.Series | np.ndarray, field: str, rule: str) -> None:
        mask = np.asarray(mask, dtype=bool)
        if not mask.any():
            return
        values = df[field].to_numpy()
        for i in positions[mask]:
            h = pseudonymous_id(hid[i])
            problems.append(Problem(int(i), h, field, values[i], rule))

    for f in FIELDS:
        s = df[f.name]
        missing = _is_missing(s)
        if not f.nullable:
            add(missing, f.name, "required, may not be missing")
        if f.kind == "str":
            present = ~missing
            is_str = s.map(lambda v: isinstance(v, str))
            add(present & ~is_str, f.name, "must be a string")
            if f.pattern:
                bad = (
                    present
                    & is_str
                    & ~s.astype("object").where(is_str, "").str.fullmatch(f.pattern).fillna(False)
                )
                add(bad, f.name, f"must match {f.pattern}")
            continue
        if f.kind == "bool":
            add(_bool_problems(s), f.name, "must be true or false")
            continue
        values, not_number = _as_float(s)
        add(not_number, f.name, "must be a number")
        add(np.isinf(values), f.name, "must be finite")
        if f.kind == "int":
            frac = values.notna() & np.isfinite(values) & (values != np.round(values))
            add(frac, f.name, "must be a whole number")
        ok = values.notna() & np.isfinite(values)
        if f.minimum is not None:
            add(ok & (values < f.minimum), f.name, f"must be ≥ {f.minimum:g}")
        if f.maximum is not None:
            add(ok & (values > f.maximum), f.name, f"must be ≤ {f.maximum:g}")
        if f.max_field:
            factor = "" if f.max_factor == 1 else f"{f.max_factor:g} × "
            add(
                ok & size.notna() & (values > f.max_factor * size),
                f.name,
                f"must be ≤ {factor}{f.max_field}",
            )

    county = df["county_code"].astype("object")
    village = df["village_code"].astype("object")
    both = county.map(lambda v: isinstance(v, str)) & village.map(lambda v: isinstance(v, str))
    starts = pd.Series(
        [
            isinstance(v, str) and isinstance(c, str) and v.startswith(c)
            for v, c in zip(village, county, strict=True)
        ],
        index=df.index,
    )
    add(both & ~starts, "village_code", "must start with county_code")
    prov_ok = county.map(lambda c: not isinstance(c, str) or c[:2] in PROVINCES)
    add(
        ~prov_ok.astype(bool), "county_code", "first two digits must be a province code (GB/T 2260)"
    )

    dup = (
        df.duplicated(subset=list(KEY), keep="first")
        & df["household_id"].notna()
        & df["period"].notna()
    )
    add(dup, "period", "duplicate record: this household already has a record for this period")

    problems.sort(
        key=lambda p: (p.row, FIELD_NAMES.index(p.field) if p.field in FIELD_NAMES else 99)
    )
    return problems


def coerce_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Contract fields in canonical dtypes (nullable ints and booleans, float money, strings).

    Assumes the frame passed ``validate_frame``. Missing values stay missing.
    Extra columns are kept as they are.
    """
    out = df.copy()
    for f in FIELDS:
        s = out[f.name]
        if f.kind == "bool" and not pd.api.types.is_bool_dtype(s.dtype):
            s = s.map(lambda v: None if v is None or v is pd.NA or v != v else bool(v))
        out[f.name] = s.astype(_PANDAS_DTYPE[f.kind])
    return out


def split_valid(df: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, list[Problem]]:
    """Split records into (valid rows, rejected rows with reasons, problems).

    Nothing is dropped: every input row is in exactly one of the two frames.
    The rejects frame carries the original columns plus ``row`` (position in
    the input) and ``reasons`` (every problem of that row, joined by "; ").
    """
    problems = validate_frame(df)
    if any(p.row < 0 for p in problems):
        raise SchemaError([p for p in problems if p.row < 0])
    bad_rows = sorted({p.row for p in problems})
    reasons: dict[int, list[str]] = {}
    for p in problems:
        reasons.setdefault(p.row, []).append(p.reason)
    mask = np.zeros(len(df), dtype=bool)
    mask[bad_rows] = True
    rejects = df.iloc[mask].copy()
    rejects.insert(0, "row", np.flatnonzero(mask))
    rejects["reasons"] = ["; ".join(reasons[i]) for i in np.flatnonzero(mask)]
    valid = coerce_frame(df.iloc[~mask]) if (~mask).any() else coerce_frame(df.iloc[:0])
    return valid, rejects, problems


def require_valid(df: pd.DataFrame) -> pd.DataFrame:
    """The frame in canonical dtypes, or SchemaError listing every problem."""
    problems = validate_frame(df)
    if problems:
        raise SchemaError(problems)
    return coerce_frame(df)


# --------------------------------------------------------------------------- pydantic model
def _annotation(f: Field) -> Any:
    if f.kind == "str":
        base: Any = Annotated[str, StringConstraints(pattern=f.pattern, strict=True)]
    elif f.kind == "bool":
        base = bool
    else:
        typ = int if f.kind == "int" else float
        constraints: dict[str, Any] = {}
        if f.minimum is not None:
            constraints["ge"] = f.minimum if f.kind == "float" else int(f.minimum)
        if f.maximum is not None:
            constraints["le"] = f.maximum if f.kind == "float" else int(f.maximum)
        base = Annotated[typ, PydanticField(**constraints)]
    return base | None if f.nullable else base


def cross_field_problems(record: dict[str, Any]) -> list[tuple[str, str]]:
    """(field, rule) for each rule between fields that a typed record breaks."""
    out: list[tuple[str, str]] = []
    size = record.get("household_size")
    for f in FIELDS:
        v = record.get(f.name)
        if f.max_field and v is not None and size is not None and v > f.max_factor * size:
            factor = "" if f.max_factor == 1 else f"{f.max_factor:g} × "
            out.append((f.name, f"must be ≤ {factor}{f.max_field}"))
    county, village = record.get("county_code"), record.get("village_code")
    if isinstance(county, str) and isinstance(village, str):
        if not village.startswith(county):
            out.append(("village_code", "must start with county_code"))
        if county[:2] not in PROVINCES:
            out.append(("county_code", "first two digits must be a province code (GB/T 2260)"))
    return out


class _RecordBase(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)

    @model_validator(mode="after")
    def _cross_field(self) -> _RecordBase:
        problems = cross_field_problems(self.__dict__)
        if problems:
            raise ValueError("; ".join(f"{field} {rule}" for field, rule in problems))
        return self


# Every field is required as a key (a nullable one may be null): a record that
# leaves a field out is refused, so a client's typo cannot pass as "missing".
HouseholdRecord: type[BaseModel] = create_model(
    "HouseholdRecord",
    __base__=_RecordBase,
    **{
        f.name: (
            _annotation(f),
            PydanticField(..., description=f.description + (f" [{f.unit}]" if f.unit else "")),
        )
        for f in FIELDS
    },
)


def validate_records(records: list[Any]) -> tuple[list[BaseModel], list[Problem]]:
    """Strictly validate JSON-like records one by one: (valid models, every problem).

    Each problem names the record's index and the field; a problem between
    fields names the field whose value is out of range.
    """
    return _check_records(records, keep=True)


def record_problems(records: list[Any]) -> list[Problem]:
    """Every problem of JSON-like records, as ``validate_records`` finds them (no models kept).

    The request path's one validation: records without problems go on as they
    are (``Columns.from_records(..., validated=True)`` checks nothing again).
    """
    return _check_records(records, keep=False)[1]


def _check_records(records: list[Any], keep: bool) -> tuple[list[BaseModel], list[Problem]]:
    from pydantic import ValidationError

    models: list[BaseModel] = []
    problems: list[Problem] = []
    validate = HouseholdRecord.model_validate
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            problems.append(Problem(i, None, "(record)", None, "must be a JSON object"))
            continue
        try:
            model = validate(rec)
        except ValidationError as exc:
            hid = pseudonymous_id(rec.get("household_id"))
            for err in exc.errors(include_url=False):
                if err["loc"]:
                    field = str(err["loc"][0])
                    value = rec.get(field) if err["type"] != "missing" else None
                    rule = "required field is missing" if err["type"] == "missing" else err["msg"]
                    problems.append(Problem(i, hid, field, value, rule))
                else:
                    for field, rule in cross_field_problems(rec):
                        problems.append(Problem(i, hid, field, rec.get(field), rule))
            continue
        if keep:
            models.append(model)
    return models, problems


def records_to_frame(records: list[dict[str, Any]] | list[BaseModel]) -> pd.DataFrame:
    """Validated records (dicts or HouseholdRecord) as a frame in canonical dtypes.

    Built column by column from Python values (the request path: no per-cell
    pandas conversion). A field a dict leaves out is missing.
    """
    rows = [r.model_dump() if isinstance(r, BaseModel) else r for r in records]
    columns: dict[str, Any] = {}
    for f in FIELDS:
        values = [r.get(f.name) for r in rows]
        if f.kind == "float":
            columns[f.name] = np.array(
                [np.nan if v is None else v for v in values], dtype="float64"
            )
        else:
            columns[f.name] = pd.array(values, dtype=_PANDAS_DTYPE[f.kind])
    return pd.DataFrame(columns)


def to_json_records(df: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as contract records with JSON types (ints as int, flags as bool, missing as None)."""
    cast = {"str": str, "int": int, "float": float, "bool": bool}
    out = []
    cols = [(f.name, cast[f.kind]) for f in FIELDS]
    for row in df[list(FIELD_NAMES)].astype(object).itertuples(index=False, name=None):
        out.append(
            {name: (None if pd.isna(v) else fn(v)) for (name, fn), v in zip(cols, row, strict=True)}
        )
    return out
