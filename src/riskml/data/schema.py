"""The household record: the single source of truth for its fields.

Everything that needs to know the record (the validators, training, the API's
pydantic model, the data dictionary) reads ``FIELDS`` below, which implements
the table in the contract (docs/contract.md) field for field. The rules' words
are here too (``Field.pattern_rule`` and the ``*_RULE`` texts), so the two
validators of ``riskml.data.validation`` (frames and files; JSON records) give
the same problem in the same words.

The validators live in ``riskml.data.validation``; their names are importable
from here as well (``schema.validate_frame``, ``schema.record_problems``, ...).
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
        dash = " to " if self.minimum is not None and self.minimum < 0 else "–"
        if self.max_field:
            factor = "" if self.max_factor == 1 else f"{self.max_factor:g} × "
            parts.append(f"{lo}{dash}{factor}{self.max_field}")
        elif self.maximum is not None:
            parts.append(f"{lo}{dash}{self.maximum:g}")
        elif self.minimum is not None:
            parts.append(f"≥ {lo}")
        if self.kind == "float" and self.minimum is None and self.maximum is None:
            parts.append("any")
        return "; ".join(parts)

    # the words of each rule, as a problem states it (both validators use these)
    def pattern_rule(self) -> str:
        return f"must match {self.pattern}"

    def min_rule(self) -> str:
        return f"must be ≥ {self.minimum:g}"

    def max_rule(self) -> str:
        return f"must be ≤ {self.maximum:g}"

    def max_field_rule(self) -> str:
        factor = "" if self.max_factor == 1 else f"{self.max_factor:g} × "
        return f"must be ≤ {factor}{self.max_field}"


_MONEY = "yuan, 12 months ending with period, whole household"
# No household's yearly income, cost or debt comes near 10 billion yuan: a larger
# number is an error in the data (and keeps every value well inside float64).
MONEY_MAX = 1e10
_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
_PERIOD_PATTERN = r"^(19|20)[0-9]{2}-(0[1-9]|1[0-2])$"


def pseudonymous_id(value: Any) -> str | None:
    """``value`` if it is a well-formed pseudonymous household id (safe to name in a problem), else None."""
    return value if isinstance(value, str) and re.fullmatch(_ID_PATTERN, value) else None


def _count(name: str, description: str) -> Field:
    """Members of the household with some trait: 0 to household_size."""
    return Field(name, "int", description, unit="persons", minimum=0, max_field="household_size")


def _money(name: str, description: str, unit: str = _MONEY, minimum: float = 0) -> Field:
    return Field(name, "float", description, unit=unit, minimum=minimum, maximum=MONEY_MAX)


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
    _count("labor_count", "members aged 16–64 able to work"),
    _count("elderly_count", "members 65 and over"),
    _count("children_count", "members under 16"),
    _count("students_compulsory", "in compulsory schooling"),
    _count("students_noncompulsory", "in high school, vocational school or college"),
    _count("disabled_count", "members with a certified disability"),
    _count("chronic_ill_count", "members with serious or chronic illness"),
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
    _money("income_wage", "wages"),
    _money(
        "income_business",
        "net operating income (farming, business); may be negative",
        minimum=-MONEY_MAX,
    ),
    _money("income_property", "rent, dividends"),
    _money("income_transfer", "pensions, subsidies, dibao and other transfers"),
    _count("migrant_workers", "members working outside the county"),
    Field(
        "months_employed",
        "float",
        "months in paid work, summed over members",
        unit="person-months",
        minimum=0,
        max_field="household_size",
        max_factor=12,
    ),
    _money("medical_expense", "out-of-pocket medical cost after all insurance (合规自付)"),
    _money("education_expense", "schooling costs"),
    _money("disaster_loss", "losses from natural disasters or accidents"),
    _money("debt", "outstanding loans at period", unit="yuan"),
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

# --------------------------------------------------------------------------- the rules' words
# A problem's rule is one of these, or a Field's pattern/min/max/max_field rule.
MISSING_RULE = "required, may not be missing"  # null (or an empty cell) in a required field
ABSENT_RULE = "required field is missing"  # a JSON record without the key
COLUMN_ABSENT_RULE = "column is missing from the file"  # a file without the column
STRING_RULE = "must be a string"
NUMBER_RULE = "must be a number"
FINITE_RULE = "must be finite"
WHOLE_RULE = "must be a whole number"
BOOL_RULE = "must be true or false"
VILLAGE_RULE = "must start with county_code"
PROVINCE_RULE = "first two digits must be a province code (GB/T 2260)"
UNKNOWN_RULE = "unknown field: not in the household record"
OBJECT_RULE = "must be a JSON object"
DUPLICATE_RULE_PREFIX = "duplicate record: same household_id and period as record "


def duplicate_rule(earlier: int) -> str:
    """The rule a repeated (household_id, period) breaks, naming the first record (0-based) with it."""
    return f"{DUPLICATE_RULE_PREFIX}{int(earlier)}"


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


class Problems(list):
    """A list of Problem, perhaps the first ``limit`` of them: ``total`` counts them all.

    ``invalid_records`` is how many records have at least one problem (all of
    them, not only those listed).
    """

    def __init__(
        self,
        problems: list[Problem] | None = None,
        total: int | None = None,
        invalid_records: int | None = None,
    ):
        super().__init__(problems or [])
        self.total = len(self) if total is None else total
        self.invalid_records = (
            len({p.row for p in self}) if invalid_records is None else invalid_records
        )


_SHOWN_TEXT = 200  # characters of a value quoted in a message


def _shown(value: Any) -> Any:
    """A value as a problem's message quotes it (NaN as the word NaN, numpy scalars unwrapped)."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, float) and np.isnan(value):
        return "NaN"
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**30:
        return f"an integer of {len(str(abs(value)))} digits"
    if isinstance(value, str) and len(value) > _SHOWN_TEXT:
        return value[:_SHOWN_TEXT] + "…"
    return value


class SchemaError(ValueError):
    """A frame that does not satisfy the record schema; carries every problem found."""

    def __init__(self, problems: list[Problem], limit: int = 20):
        self.problems = problems
        shown = "\n".join(f"  - {p}" for p in problems[:limit])
        more = f"\n  ... and {len(problems) - limit} more" if len(problems) > limit else ""
        super().__init__(f"{len(problems)} problem(s) in the household records:\n{shown}{more}")


# --------------------------------------------------------------------------- canonical frames
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


class _RecordBase(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)

    @model_validator(mode="wrap")
    @classmethod
    def _one_validator(cls, data: Any, handler: Any) -> Any:
        """Validation is ``record_problems``'s, rule for rule (the fields only describe the schema)."""
        if isinstance(data, cls):
            return data
        from pydantic import ValidationError
        from pydantic_core import InitErrorDetails, PydanticCustomError

        from riskml.data.validation import record_problems

        problems = record_problems([data])
        if problems:
            raise ValidationError.from_exception_data(
                cls.__name__,
                [
                    InitErrorDetails(
                        type=PydanticCustomError("household_record", p.rule),
                        loc=(p.field,),
                        input=p.value,
                    )
                    for p in problems
                ],
            )
        return cls.model_construct(**data)


# Every field is required as a key (a nullable one may be null): a record that
# leaves a field out is refused, so a client's typo cannot pass as "missing".
# The fields give the JSON schema (types, patterns, ranges); the validation
# itself is ``riskml.data.validation.record_problems``.
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


# --------------------------------------------------------------------------- the validators
_VALIDATION_NAMES = frozenset(
    {
        "validate_frame",
        "split_valid",
        "require_valid",
        "record_problems",
        "validate_records",
        "cross_field_problems",
    }
)


def __getattr__(name: str) -> Any:
    """The validators' names, from ``riskml.data.validation`` (imported when first asked for)."""
    if name in _VALIDATION_NAMES:
        from riskml.data import validation

        return getattr(validation, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
