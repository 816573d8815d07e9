"""Batch scoring on one machine: a Parquet or CSV file in, decisions out, in bounded memory.

``score_file`` reads the input in chunks (``chunk_rows``), never the whole
file at once, and decides every valid record with ``decisions.decide``, the
function the online service uses, so batch and online cannot diverge: the
same rules (same rules file and version), calibrated score, decision, risk
types, reasons and measures. Output is Parquet, written chunk by chunk, one
row per valid record with flat columns (``OUTPUT_SCHEMA``); the nested parts
(``rules``, ``reasons``, ``measures``) are JSON text, ``risk_types`` a list.

Nothing is dropped silently: every row is either scored or written to the
rejects file (the input's columns plus ``row``, its 0-based position in the
whole input, and ``reasons``); the summary counts both.

Passes over the input (each reads one chunk at a time):

1. keys: ``household_id`` and ``period`` only, for duplicates across the
   whole file (a later record of the same household and period is rejected,
   wherever it is: the result does not depend on the chunk size) and for the
   previous-period links;
2. validation: every record against the schema (``schema.validate_frame``),
   rejects written as they are found;
3. (only when some household's records are not in chronological order in the
   file) the previous records that come *after* the record that needs them;
4. scoring.

Previous period: the household's latest earlier *valid* record within 12
months (``history.previous_from_panel`` on the valid records; the service
gets the same record from the ledger, where only valid records are). The
links are computed from the keys after validation; the numeric fields of a
previous record are kept from the moment its chunk is read until the chunk
of the record that needs it: for a file sorted by household that is about
one chunk's worth; for a file written period after period, one period's
records at most. Memory: about 13 bytes per input row for the whole run
(validity, links, store index: 10M rows ~130 MB) and ~25 more while the keys
are read, plus 240 bytes per previous record waiting for its successor (at
most one per household: 1.5M households ~360 MB in the worst order), plus
the chunks in flight (``chunk_rows``; ``DECIDE_ROWS`` records per
``decide`` call). A single-period file has no previous periods: lag features
are missing, as for a household the service has never seen.

Worker processes (``workers``) validate and decide chunks in parallel; the
main process reads, keeps the previous-period records, writes the output in
input order and records decisions in the ledger (one transaction per block
of at most ``LEDGER_ROWS`` decisions). Results do not depend on ``workers``
or ``chunk_rows``. Decision ids are random (uuid4, like the service's): each
run makes new decisions, and the ledger keeps them all.
"""

from __future__ import annotations

import contextlib
import csv
import getpass
import json
import os
import shutil
import tempfile
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from riskml.data import schema
from riskml.data.history import MAX_GAP_MONTHS
from riskml.data.periods import period_or
from riskml.model.risk_model import RiskModel
from riskml.policy.rules import RuleSet
from riskml.scoring.decide import ExplainMode, ModelInfo, decide

DEFAULT_CHUNK_ROWS = 50_000
DECIDE_ROWS = 10_000  # records per decide() call inside a chunk (bounds the result dicts)
LEDGER_ROWS = 25_000  # decisions per ledger transaction
AUTO_WORKERS_ROWS = 50_000  # workers=None: worker processes from this many input rows
EXPLAIN_MODES = ("flagged", "all", "none")
NUMERIC_FIELDS: tuple[str, ...] = tuple(f.name for f in schema.FIELDS if f.kind != "str")
# schema.validate_frame's rule for a repeated (household_id, period); a test checks it is the same
DUPLICATE_RULE = "duplicate record: this household already has a record for this period"

OUTPUT_SCHEMA = pa.schema(
    [
        ("household_id", pa.string()),
        ("period", pa.string()),
        ("county_code", pa.string()),
        ("village_code", pa.string()),
        ("score", pa.float64()),
        ("risk_level", pa.string()),
        ("flagged", pa.bool_()),
        ("flagged_by", pa.string()),  # "rules", "model", "rules+model"; null when not flagged
        ("rules", pa.string()),  # JSON list of the fired rules
        ("risk_types", pa.list_(pa.string())),
        ("reasons", pa.string()),  # JSON list
        ("measures", pa.string()),  # JSON list
        ("monitoring_type", pa.string()),
        ("model_name", pa.string()),
        ("model_version", pa.string()),
        ("rules_version", pa.string()),
        ("decision_id", pa.string()),
    ]
)
OUTPUT_COLUMNS: tuple[str, ...] = tuple(OUTPUT_SCHEMA.names)

ProgressFn = Callable[[str, int, int], None]  # (stage, rows done, rows in total)


class BatchError(RuntimeError):
    """A batch run that cannot go on (unreadable input, missing columns, ledger failure)."""


@dataclass
class BatchSummary:
    """What a run did: counts, time, where things went."""

    rows_read: int = 0
    valid: int = 0
    rejected: int = 0
    flagged: int = 0
    red: int = 0
    seconds: float = 0.0
    rows_per_s: float = 0.0
    output: str = ""
    rejects: str = ""
    ledger_rows: int = 0
    engine: str = "local"
    workers: int = 0
    chunk_rows: int = DEFAULT_CHUNK_ROWS
    explain: str = "flagged"
    model_name: str = ""
    model_version: str = ""
    rules_version: str = ""
    with_previous: int = 0  # scored records that had a previous period in the input
    timings: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------- model and rules
def load_model(uri: str) -> tuple[RiskModel, ModelInfo]:
    """The RiskModel behind a model URI and its (name, version) for the decisions.

    ``models:/name@alias`` is resolved to its version first (so a run uses one
    version even if the alias moves meanwhile); ``models:/name/version``,
    ``runs:/...`` and MLflow model folders load through MLflow; a folder
    written by ``RiskModel.save`` loads directly (name = folder, version "local").
    """
    name, version = resolve_model_uri(uri)
    if _is_model_folder(uri):
        return RiskModel.load(uri), ModelInfo(name, version)
    from riskml.training import registry

    target = f"models:/{name}/{version}" if uri.startswith("models:/") else uri
    return registry.load_risk_model(target), ModelInfo(name, version)


def _is_model_folder(uri: str) -> bool:
    folder = Path(uri)
    return (folder / "model.json").exists() and (folder / "booster.txt").exists()


def resolve_model_uri(uri: str) -> tuple[str, str]:
    """(name, version) of a model URI, an alias resolved to its version.

    ``models:/name@alias`` and ``models:/name/version`` give the registered
    name and version; ``runs:/<id>/...`` gives (uri, run id); a RiskModel
    folder (folder name, "local"); anything else (uri, "unregistered").
    """
    if uri.startswith("models:/"):
        from riskml.training import registry

        ref = uri[len("models:/") :]
        if "@" in ref:
            name, alias = ref.split("@", 1)
            return name, str(registry.resolve_alias(name, alias)["version"])
        name, _, version = ref.partition("/")
        return name, version or "latest"
    if uri.startswith("runs:/"):
        return uri, uri[len("runs:/") :].split("/", 1)[0]
    if _is_model_folder(uri):
        return Path(uri).resolve().name, "local"
    return uri, "unregistered"


def default_caller() -> str:
    """``batch:<user>`` (the operating-system user), or ``batch:cli``."""
    try:
        user = getpass.getuser()
    except Exception:
        user = ""
    user = "".join(ch for ch in user if ch.isalnum() or ch in "-_.") or "cli"
    return f"batch:{user}"


# --------------------------------------------------------------------------- reading
def input_format(path: str | Path) -> str:
    suffix = Path(path).suffix.lower()
    if suffix in (".parquet", ".pq"):
        return "parquet"
    if suffix == ".csv":
        return "csv"
    raise BatchError(f"{path}: unknown file type {suffix!r}; use .parquet or .csv")


def _csv_columns(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8") as fh:
        header = next(csv.reader(fh), None)
    if not header:
        raise BatchError(f"{path}: empty CSV file (no header line)")
    return header


def input_columns(path: str | Path) -> list[str]:
    p = Path(path)
    if input_format(p) == "parquet":
        return list(pq.ParquetFile(p).schema_arrow.names)
    return _csv_columns(p)


def iter_batches(
    path: str | Path, columns: list[str] | None, chunk_rows: int
) -> Iterator[pa.RecordBatch]:
    """The input in batches of exactly ``chunk_rows`` rows (the last one shorter).

    CSV is read as text (every column a string, empty cells missing) and typed
    per chunk by ``typed_frame``, the same way whatever the chunk size.
    """
    p = Path(path)
    if input_format(p) == "parquet":
        source: Iterator[pa.RecordBatch] = pq.ParquetFile(p).iter_batches(
            batch_size=chunk_rows, columns=columns
        )
    else:
        names = _csv_columns(p)
        reader = pacsv.open_csv(
            p,
            read_options=pacsv.ReadOptions(block_size=1 << 22),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.string()),
                strings_can_be_null=True,
                include_columns=columns or [],
            ),
        )
        source = iter(reader)
    pending: list[pa.RecordBatch] = []
    size = 0
    for batch in source:
        if batch.num_rows == 0:
            continue
        if not pending and batch.num_rows == chunk_rows:
            yield batch
            continue
        pending.append(batch)
        size += batch.num_rows
        if size < chunk_rows:
            continue
        table = pa.Table.from_batches(pending)
        start = 0
        while size - start >= chunk_rows:
            yield _one_batch(table.slice(start, chunk_rows))
            start += chunk_rows
        rest = table.slice(start)
        pending, size = rest.to_batches(), rest.num_rows
    if size:
        yield _one_batch(pa.Table.from_batches(pending))


def _one_batch(table: pa.Table) -> pa.RecordBatch:
    return table.combine_chunks().to_batches()[0]


def _true_false(s: pd.Series) -> pd.Series:
    """Text booleans as read_csv reads them (true/false in any case), numbers as numbers."""
    low = s.str.lower()
    out = pd.Series(np.full(len(s), None, dtype=object), index=s.index)
    out[low == "true"] = True
    out[low == "false"] = False
    rest = s.notna() & low.ne("true") & low.ne("false")
    if rest.any():
        out[rest] = _numbers(s[rest]).to_numpy(dtype=object)
    return out


def _numbers(s: pd.Series) -> pd.Series:
    """Text to numbers; a cell that is not a number stays text (the validator names it)."""
    values = pd.to_numeric(s, errors="coerce")
    bad = s.notna() & values.isna()
    if not bad.any():
        return values.astype("float64")
    out = values.astype(object)
    out[bad] = s[bad]
    return out


def typed_frame(batch: pa.RecordBatch | pa.Table, from_csv: bool) -> pd.DataFrame:
    """A chunk as pandas: Parquet as stored; CSV text converted field by field like read_csv."""
    df = batch.to_pandas()
    if not from_csv:
        return df
    for f in schema.FIELDS:
        if f.name not in df.columns or f.kind == "str":
            continue
        s = df[f.name].astype(object).where(df[f.name].notna(), None)
        df[f.name] = _true_false(s.astype("string")) if f.kind == "bool" else _numbers(s)
    return df


# --------------------------------------------------------------------------- pass 1: keys
@dataclass
class Keys:
    """Household codes, months and global duplicates of every input row (by position)."""

    n: int
    household: np.ndarray  # int32 code per row; -1 where missing
    month: np.ndarray  # int32 year*12 + month - 1; -1 where period is missing or malformed
    duplicate: np.ndarray  # bool: a later record of a (household_id, period) seen before


def scan_keys(path: str | Path, chunk_rows: int) -> Keys:
    """Read ``household_id`` and ``period`` chunk by chunk: codes, months, global duplicates.

    Each chunk is dictionary-encoded as it is read and the dictionaries are
    unified at the end, so only the distinct ids are kept as text (4 bytes
    a row for the codes).
    """
    hids: list[pa.DictionaryArray] = []
    periods: list[pa.DictionaryArray] = []
    for batch in iter_batches(path, ["household_id", "period"], chunk_rows):
        hids.append(pc.dictionary_encode(_as_string(batch.column(0))))
        periods.append(pc.dictionary_encode(_as_string(batch.column(1))))
    n = sum(len(a) for a in hids)
    if n == 0:
        empty = np.zeros(0, dtype=np.int32)
        return Keys(0, empty, empty, np.zeros(0, dtype=bool))
    hid_codes, _ = _unified_codes(hids, with_dictionary=False)
    del hids
    period_codes, uniques = _unified_codes(periods)
    del periods
    month_of = np.array([period_or(p, -1) for p in uniques] + [-1], dtype=np.int32)
    month = month_of[period_codes]  # -1 (missing) indexes the trailing -1
    duplicate = _later_repeats(hid_codes, period_codes)
    _release_arrow_memory()
    return Keys(n, hid_codes, month, duplicate)


def _later_repeats(hid_codes: np.ndarray, period_codes: np.ndarray) -> np.ndarray:
    """True for a row whose (household, period) appeared in an earlier row (both present)."""
    n = len(hid_codes)
    bits = max(1, int(period_codes.max(initial=0) + 1).bit_length())
    key = hid_codes.astype(np.int64)
    key <<= bits
    key |= period_codes.astype(np.int64) + 1
    incomplete = np.flatnonzero((hid_codes < 0) | (period_codes < 0))
    key[incomplete] = -1 - np.arange(len(incomplete))  # never equal to another key
    del incomplete
    order = np.argsort(key, kind="stable")  # equal keys keep their row order
    key = key[order]
    same = np.flatnonzero(key[1:] == key[:-1])
    del key
    duplicate = np.zeros(n, dtype=bool)
    duplicate[order[same + 1]] = True
    return duplicate


def _unified_codes(
    chunks: list[pa.DictionaryArray], with_dictionary: bool = True
) -> tuple[np.ndarray, list[Any]]:
    """One code per row (int32, -1 for missing) over chunks' dictionaries, and the dictionary."""
    unified = pa.chunked_array(chunks).unify_dictionaries()
    codes = np.empty(sum(len(c) for c in chunks), dtype=np.int32)
    at = 0
    for chunk in unified.chunks:
        m = len(chunk)
        codes[at : at + m] = chunk.indices.fill_null(-1).to_numpy(zero_copy_only=False)
        at += m
    dictionary = (
        unified.chunks[0].dictionary.to_pylist() if with_dictionary and unified.num_chunks else []
    )
    return codes, dictionary


def _release_arrow_memory() -> None:
    """Give freed memory back to the system after a chunk: Arrow's pool and the C heap.

    Without it the allocators keep what a chunk used (Arrow's mimalloc, and
    glibc's heap, whose mmap threshold grows after large frees), and the
    resident memory of a long run creeps up chunk by chunk.
    """
    with contextlib.suppress(Exception):
        pa.default_memory_pool().release_unused()
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


_LIBC: list[Any] = []


def _libc() -> Any:
    """glibc, with large allocations pinned to mmap (so that freeing them returns memory)."""
    if not _LIBC:
        libc = None
        with contextlib.suppress(Exception):
            import ctypes

            libc = ctypes.CDLL("libc.so.6")
            libc.mallopt(-3, 256 * 1024)  # M_MMAP_THRESHOLD: fixed, not raised by large frees
        _LIBC.append(libc)
    return _LIBC[0]


def _as_string(a: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(a, pa.ChunkedArray):
        a = a.combine_chunks()
    if pa.types.is_string(a.type):
        return a
    if pa.types.is_large_string(a.type) or pa.types.is_dictionary(a.type):
        return a.cast(pa.string())
    # not text (e.g. numbers): the validator rejects these rows; keep them apart
    return pa.array([None if v is None else f"\x00{v}" for v in a.to_pylist()], type=pa.string())


# --------------------------------------------------------------------------- pass 2: validation
def validate_chunk(
    df: pd.DataFrame, duplicate: np.ndarray
) -> tuple[np.ndarray, list[int], list[str]]:
    """Valid mask, rejected positions and their reasons for one chunk.

    ``duplicate`` marks rows that repeat a (household_id, period) seen earlier
    anywhere in the input: ``schema.validate_frame`` sees only this chunk, so
    repeats across chunks are added here with the same rule, in the order the
    validator reports problems. Reasons are worded as ``schema.split_valid``'s.
    """
    problems = schema.validate_frame(df)
    missing = [p for p in problems if p.row < 0]
    if missing:
        raise BatchError("; ".join(f"{p.field}: {p.rule}" for p in missing))
    n = len(df)
    within = (
        df.duplicated(subset=list(schema.KEY), keep="first")
        & df["household_id"].notna()
        & df["period"].notna()
    ).to_numpy()
    extra = np.flatnonzero(np.asarray(duplicate, dtype=bool) & ~within)
    if len(extra):
        hid = df["household_id"].to_numpy(dtype=object)
        period = df["period"].to_numpy(dtype=object)
        for i in extra:
            h = schema.pseudonymous_id(hid[i])
            problems.append(schema.Problem(int(i), h, "period", period[i], DUPLICATE_RULE))
        order = {name: k for k, name in enumerate(schema.FIELD_NAMES)}
        problems.sort(key=lambda p: (p.row, order.get(p.field, 99)))
    reasons: dict[int, list[str]] = {}
    for p in problems:
        reasons.setdefault(p.row, []).append(p.reason)
    valid = np.ones(n, dtype=bool)
    bad = sorted(reasons)
    valid[bad] = False
    return valid, bad, ["; ".join(reasons[i]) for i in bad]


# --------------------------------------------------------------------------- previous periods
@dataclass
class Links:
    """For each valid row: the position of its previous record (-1: none) and of its successor."""

    previous: np.ndarray  # position or -1 (int32 below 2**31 rows)
    successor: np.ndarray  # position or -1
    forward: np.ndarray  # positions of previous records that come after their successor


def link_previous(keys: Keys, valid: np.ndarray, max_gap: int = MAX_GAP_MONTHS) -> Links:
    """``history.previous_from_panel`` on the valid rows, as positions in the input.

    One stable sort of a composite key (household code, month) over the valid
    rows; about 20 bytes a row while it runs.
    """
    n = keys.n
    index = np.int32 if n < 2**31 - 1 else np.int64
    previous = np.full(n, -1, dtype=index)
    successor = np.full(n, -1, dtype=index)
    rows = np.flatnonzero(valid).astype(index)
    forward = np.zeros(0, dtype=np.int64)
    if len(rows) > 1:
        month = keys.month[rows].astype(np.int64)
        low = int(month.min())
        bits = max(1, int(month.max() - low).bit_length())
        key = keys.household[rows].astype(np.int64)
        key <<= bits
        key |= month - low
        del month
        order = np.argsort(key, kind="stable").astype(index)
        key = key[order]  # sorted: households together, months rising
        gap = np.diff(key)  # the month gap where two neighbours are the same household
        key >>= bits
        same = key[1:] == key[:-1]
        del key
        has = np.flatnonzero(same & (gap > 0) & (gap <= max_gap))
        del same, gap
        consumer = rows[order[has + 1]]
        producer = rows[order[has]]
        del order, has
        previous[consumer] = producer
        successor[producer] = consumer
        forward = np.sort(producer[producer > consumer]).astype(np.int64)
    return Links(previous, successor, forward)


class PreviousStore:
    """Numeric fields of previous records waiting for their successor, keyed by the successor.

    A growable float64 table with a free list: memory is what is waiting,
    not the file.
    """

    def __init__(self, n: int, width: int):
        self.slot = np.full(n, -1, dtype=np.int32 if n < 2**31 - 1 else np.int64)
        self.values = np.zeros((0, width))
        self.free: list[np.ndarray] = []
        self.width = width
        self.peak = 0
        self.in_use = 0

    def put(self, successors: np.ndarray, values: np.ndarray) -> None:
        k = len(successors)
        if k == 0:
            return
        slots = self._take(k)
        self.values[slots] = values
        self.slot[successors] = slots
        self.in_use += k
        self.peak = max(self.peak, self.in_use)

    def pop(self, positions: np.ndarray) -> np.ndarray:
        """Values for ``positions`` (NaN rows where nothing waits) and free their slots."""
        out = np.full((len(positions), self.width), np.nan)
        if len(positions) == 0:
            return out
        slots = self.slot[positions]
        have = slots >= 0
        if have.any():
            out[have] = self.values[slots[have]]
            self.free.append(slots[have])
            self.slot[positions[have]] = -1
            self.in_use -= int(have.sum())
        return out

    def _take(self, k: int) -> np.ndarray:
        got: list[np.ndarray] = []
        need = k
        while need and self.free:
            f = self.free.pop()
            got.append(f[:need])
            if len(f) > need:
                self.free.append(f[need:])
            need -= min(need, len(f))
        if need:
            start = len(self.values)
            grow = max(need, start)  # double
            self.values = np.vstack([self.values, np.zeros((grow, self.width))])
            got.append(np.arange(start, start + need))
            if grow > need:
                self.free.append(np.arange(start + need, start + grow))
        return np.concatenate(got)


def numeric_matrix(records: pd.DataFrame) -> np.ndarray:
    """The numeric fields of canonical records as float64 (booleans 0/1, NaN for missing)."""
    cols = [
        records[name].astype("float64").to_numpy(dtype=np.float64, na_value=np.nan)
        if isinstance(records[name].dtype, pd.BooleanDtype)
        else pd.to_numeric(records[name], errors="coerce").to_numpy(
            dtype=np.float64, na_value=np.nan
        )
        for name in NUMERIC_FIELDS
    ]
    return np.column_stack(cols) if cols else np.zeros((len(records), 0))


def numeric_values(batch: pa.RecordBatch | pa.Table, from_csv: bool) -> np.ndarray:
    """``numeric_matrix`` of a chunk of valid records, straight from Arrow for Parquet input."""
    if from_csv:
        frame = typed_frame(batch, True)[list(schema.FIELD_NAMES)]
        return numeric_matrix(schema.coerce_frame(frame))
    cols = [
        np.asarray(pc.cast(batch.column(name), pa.float64()).to_numpy(zero_copy_only=False))
        for name in NUMERIC_FIELDS
    ]
    return np.column_stack(cols) if cols else np.zeros((batch.num_rows, 0))


def previous_frame(values: np.ndarray) -> pd.DataFrame:
    """Previous-period values (rows aligned with the records) as the frame ``decide`` takes."""
    return pd.DataFrame(values, columns=list(NUMERIC_FIELDS))


# --------------------------------------------------------------------------- deciding
@dataclass
class Scorer:
    """Everything needed to decide records: model, rules, identity, explanation mode."""

    model: RiskModel
    ruleset: RuleSet
    info: ModelInfo
    explain: ExplainMode = "flagged"
    with_ledger: bool = False

    def score(
        self, records: pd.DataFrame, previous: pd.DataFrame | None
    ) -> tuple[pa.Table, list[dict[str, Any]] | None]:
        """Output rows (``OUTPUT_SCHEMA``) and, with the ledger on, its entries.

        ``records`` are canonical (``schema.coerce_frame``); ``previous`` is
        aligned with them (missing where unknown) or None.
        """
        tables: list[pa.Table] = []
        entries: list[dict[str, Any]] | None = [] if self.with_ledger else None
        records = records.reset_index(drop=True)
        if previous is not None:
            previous = previous.reset_index(drop=True)
        for start in range(0, len(records), DECIDE_ROWS):
            rec = records.iloc[start : start + DECIDE_ROWS]
            prev = previous.iloc[start : start + DECIDE_ROWS] if previous is not None else None
            results = decide(
                rec,
                prev,
                self.model,
                self.ruleset,
                self.info,
                explain=self.explain,
                with_contributions=self.with_ledger,
            )
            tables.append(decisions_table(results, rec))
            if entries is not None:
                entries.extend(ledger_entries(results, rec))
        if not tables:
            return OUTPUT_SCHEMA.empty_table(), entries
        return pa.concat_tables(tables), entries


_ENCODE = json.JSONEncoder(ensure_ascii=False).encode


def _json_list(value: list[Any]) -> str:
    return _ENCODE(value) if value else "[]"


def decisions_table(results: list[dict[str, Any]], records: pd.DataFrame) -> pa.Table:
    """decide()'s result dicts as flat output rows (``OUTPUT_SCHEMA``), in the same order."""
    cols: dict[str, list[Any]] = {name: [] for name in OUTPUT_COLUMNS}
    for r in results:
        cols["household_id"].append(r["household_id"])
        cols["period"].append(r["period"])
        cols["score"].append(r["score"])
        cols["risk_level"].append(r["risk_level"])
        cols["flagged"].append(r["flagged"])
        cols["flagged_by"].append("+".join(r["flagged_by"]) or None)
        cols["rules"].append(_json_list(r["rules"]))
        cols["risk_types"].append(r["risk_types"])
        cols["reasons"].append(_json_list(r["reasons"]))
        cols["measures"].append(_json_list(r["measures"]))
        cols["monitoring_type"].append(r["monitoring_type"])
        cols["model_name"].append(r["model_name"])
        cols["model_version"].append(r["model_version"])
        cols["rules_version"].append(r["rules_version"])
        cols["decision_id"].append(r["decision_id"])
    cols["county_code"] = records["county_code"].astype(str).tolist()
    cols["village_code"] = records["village_code"].astype(str).tolist()
    return pa.Table.from_pydict(cols, schema=OUTPUT_SCHEMA)


def ledger_entries(results: list[dict[str, Any]], records: pd.DataFrame) -> list[dict[str, Any]]:
    """Ledger entries for decisions, built as the service builds them (``serving.py``)."""
    from riskml.scoring.decide import ledger_entry, records_as_dicts

    recs = records_as_dicts(records.reset_index(drop=True), np.arange(len(records)))
    return [ledger_entry(rec, res) for rec, res in zip(recs, results, strict=True)]


# --------------------------------------------------------------------------- worker processes
_STATE: dict[str, Any] = {}


def _init_worker(
    model_dir: str,
    rules_text: str,
    rules_source: str,
    info: tuple[str, str],
    explain: str,
    with_ledger: bool,
    numba_threads: int,
) -> None:
    _libc()
    if numba_threads:
        with contextlib.suppress(Exception):
            import numba

            numba.set_num_threads(numba_threads)
    model = RiskModel.load(model_dir)
    from riskml.scoring.decide import TreeEngine

    TreeEngine.for_booster(model.booster)  # compile and check once, before the first chunk
    _STATE["scorer"] = Scorer(
        model,
        RuleSet.from_text(rules_text, source=rules_source),
        ModelInfo(*info),
        explain,  # type: ignore[arg-type]
        with_ledger,
    )


def _validate_task(
    batch: pa.RecordBatch, duplicate: np.ndarray, from_csv: bool
) -> tuple[np.ndarray, pa.Table | None]:
    """Valid mask and the rejected rows (input columns + ``row`` local + ``reasons``)."""
    df = typed_frame(batch, from_csv)
    valid, bad, reasons = validate_chunk(df, duplicate)
    del df
    if not bad:
        _release_arrow_memory()
        return valid, None
    rej = pa.Table.from_batches([batch]).take(pa.array(bad, type=pa.int64()))
    rej = rej.add_column(0, "row", pa.array(bad, type=pa.int64()))
    rej = rej.append_column("reasons", pa.array(reasons, type=pa.string()))
    _release_arrow_memory()
    return valid, rej


def _score_task(
    batch: pa.RecordBatch, previous: np.ndarray | None, from_csv: bool
) -> tuple[pa.Table, list[dict[str, Any]] | None, int]:
    scorer: Scorer = _STATE["scorer"]
    records = schema.coerce_frame(typed_frame(batch, from_csv)[list(schema.FIELD_NAMES)])
    prev = previous_frame(previous) if previous is not None else None
    table, entries = scorer.score(records, prev)
    red = int(pc.sum(pc.equal(table["risk_level"], "red")).as_py() or 0)
    _release_arrow_memory()
    return table, entries, red


class _Runner:
    """Runs tasks in worker processes (in input order, a few chunks ahead) or in this process."""

    def __init__(self, workers: int, initargs: tuple[Any, ...], scorer: Scorer):
        self.workers = workers
        self.pool: ProcessPoolExecutor | None = None
        if workers > 0:
            import multiprocessing as mp

            self.pool = ProcessPoolExecutor(
                max_workers=workers,
                mp_context=mp.get_context("spawn"),
                initializer=_init_worker,
                initargs=initargs,
            )
        else:
            _STATE["scorer"] = scorer  # in this process: the model as it is, no copy

    def map(self, fn: Callable[..., Any], args: Iterator[tuple[Any, ...]]) -> Iterator[Any]:
        """fn(*a) for each a, results in order; at most workers + 1 tasks in flight."""
        if self.pool is None:
            for a in args:
                yield fn(*a)
            return
        pending: deque[Future[Any]] = deque()
        try:
            for a in args:
                pending.append(self.pool.submit(fn, *a))
                if len(pending) > self.workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        except BrokenProcessPool as exc:
            raise BatchError(
                "the worker processes stopped or could not start (a script that scores with "
                "workers must call it under `if __name__ == '__main__':`; workers=0 runs in "
                f"this process): {exc}"
            ) from exc

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)


# --------------------------------------------------------------------------- the run
def _writer_for(path: Path, schema_: pa.Schema, csv_format: bool) -> Any:
    if csv_format:
        return pacsv.CSVWriter(path, schema_)
    return pq.ParquetWriter(path, schema_)


def _tmp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")


def default_rejects_path(out: str | Path) -> Path:
    p = Path(out)
    return p.with_name(p.stem + ".rejects.parquet")


def score_file(
    input_path: str | Path,
    out: str | Path,
    *,
    model: RiskModel,
    info: ModelInfo,
    ruleset: RuleSet | None = None,
    explain: ExplainMode = "flagged",
    rejects: str | Path | None = None,
    ledger_url: str | None = None,
    caller: str | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    workers: int | None = 0,
    progress: ProgressFn | None = None,
) -> BatchSummary:
    """Score a Parquet or CSV file of household records into a Parquet file of decisions.

    See the module docstring. ``rejects`` (Parquet, or CSV by suffix) defaults
    to ``<out>.rejects.parquet`` beside the output and is always written (empty
    when every row is valid). ``ledger_url`` records every decision in the
    decision ledger with ``caller`` (default ``batch:<user>``). ``workers``: 0
    decides in this process; N > 0 in N worker processes (started with spawn: a
    script calling this must do so under ``if __name__ == "__main__":``); None
    picks ``default_workers()`` for inputs of ``AUTO_WORKERS_ROWS`` rows or more
    and 0 below (starting workers costs seconds).
    """
    t_start = time.perf_counter()
    _libc()
    if explain not in EXPLAIN_MODES:
        raise ValueError(f"explain must be one of {EXPLAIN_MODES}, got {explain!r}")
    if chunk_rows < 1:
        raise ValueError("chunk_rows must be at least 1")
    src = Path(input_path)
    if not src.exists():
        raise BatchError(f"no such file: {src}")
    from_csv = input_format(src) == "csv"
    out_path = Path(out)
    rejects_path = Path(rejects) if rejects is not None else default_rejects_path(out_path)
    ruleset = ruleset if ruleset is not None else RuleSet.load()
    columns = input_columns(src)
    lacking = [name for name in schema.FIELD_NAMES if name not in columns]
    if lacking:
        raise BatchError(f"{src}: column(s) missing from the file: {', '.join(lacking)}")
    summary = BatchSummary(
        output=str(out_path),
        rejects=str(rejects_path),
        workers=workers or 0,
        chunk_rows=chunk_rows,
        explain=explain,
        model_name=info.name,
        model_version=info.version,
        rules_version=ruleset.version,
    )
    report = progress or (lambda stage, done, total: None)
    ledger = None
    if ledger_url:
        from riskml.store.ledger import Ledger

        ledger = Ledger(ledger_url)
    caller = caller or default_caller()
    run_id = uuid.uuid4().hex[:12]

    tmpdir = Path(tempfile.mkdtemp(prefix="riskml-batch-"))
    out_path.parent.mkdir(parents=True, exist_ok=True)
    rejects_path.parent.mkdir(parents=True, exist_ok=True)
    out_tmp, rejects_tmp = _tmp_path(out_path), _tmp_path(rejects_path)
    runner = None
    try:
        initargs = (
            str(tmpdir / "model"),
            _ruleset_text(ruleset),
            ruleset.source,
            (info.name, info.version),
            explain,
            ledger is not None,
            0,
        )
        # pass 1: keys
        t = time.perf_counter()
        report("keys", 0, 0)
        keys = scan_keys(src, chunk_rows)
        n = keys.n
        summary.rows_read = n
        summary.timings["keys"] = time.perf_counter() - t
        report("keys", n, n)
        if workers is None:
            workers = default_workers() if n >= AUTO_WORKERS_ROWS else 0
        summary.workers = workers
        if workers > 0:
            model.save(tmpdir / "model")
            initargs = (*initargs[:-1], 1 if workers > 1 else 0)
        scorer = Scorer(model, ruleset, info, explain, ledger is not None)
        runner = _Runner(workers, initargs, scorer)

        # pass 2: validation, rejects written as found
        t = time.perf_counter()
        valid = np.zeros(n, dtype=bool)
        rej_schema = _rejects_schema(src, columns)
        rej_writer = _writer_for(rejects_tmp, rej_schema, rejects_path.suffix.lower() == ".csv")
        done = 0

        def validate_args(duplicate: np.ndarray) -> Iterator[tuple[Any, ...]]:
            offset = 0
            for batch in iter_batches(src, columns, chunk_rows):
                m = batch.num_rows
                yield batch, duplicate[offset : offset + m], from_csv
                offset += m

        report("validate", 0, n)
        offset = 0
        for mask, rej in runner.map(_validate_task, validate_args(keys.duplicate)):
            m = len(mask)
            valid[offset : offset + m] = mask
            if rej is not None:
                rej = rej.set_column(0, "row", pc.add(rej["row"], pa.scalar(offset, pa.int64())))
                rej_writer.write_table(rej.replace_schema_metadata(None).cast(rej_schema))
            offset += m
            done += m
            report("validate", done, n)
        rej_writer.close()
        _release_arrow_memory()
        summary.valid = int(valid.sum())
        summary.rejected = n - summary.valid
        summary.timings["validate"] = time.perf_counter() - t

        # previous-period links among the valid rows
        t = time.perf_counter()
        links = link_previous(keys, valid)
        del keys
        store = PreviousStore(n, len(NUMERIC_FIELDS))
        summary.with_previous = int((links.previous >= 0).sum())
        if len(links.forward):
            _collect_forward(src, columns, chunk_rows, from_csv, valid, links, store)
        summary.timings["links"] = time.perf_counter() - t

        # pass 3: scoring, in input order
        t = time.perf_counter()
        writer = pq.ParquetWriter(out_tmp, OUTPUT_SCHEMA)
        contract = list(schema.FIELD_NAMES)

        def score_args() -> Iterator[tuple[Any, ...]]:
            offset = 0
            for batch in iter_batches(src, contract, chunk_rows):
                m = batch.num_rows
                ok = valid[offset : offset + m]
                pos = offset + np.flatnonzero(ok)
                offset += m
                if len(pos) == 0:
                    yield None
                    continue
                sub = batch.filter(pa.array(ok)) if not ok.all() else batch
                # this chunk's records that are someone's previous period wait in the store
                succ = links.successor[pos]
                wait = (succ >= 0) & (succ > pos)
                if wait.any():
                    store.put(succ[wait], numeric_values(sub, from_csv)[wait])
                need = links.previous[pos] >= 0
                prev = store.pop(pos[need]) if need.any() else None
                if prev is not None:
                    full = np.full((len(pos), len(NUMERIC_FIELDS)), np.nan)
                    full[need] = prev
                    prev = full
                yield sub, prev, from_csv

        def run_scores() -> Iterator[Any]:
            # chunks without valid rows yield None: keep them out of the workers
            args = score_args()
            buffered = (a for a in args if a is not None)
            yield from runner.map(_score_task, buffered)

        report("score", 0, summary.valid)
        done_rows = 0
        transactions = 0
        for table, entries, red in run_scores():
            writer.write_table(table)
            summary.flagged += int(pc.sum(table["flagged"]).as_py() or 0)
            summary.red += red
            if ledger is not None and entries:
                for start in range(0, len(entries), LEDGER_ROWS):
                    block = entries[start : start + LEDGER_ROWS]
                    try:
                        ledger.record(
                            block, caller=caller, request_id=f"batch-{run_id}-{transactions:06d}"
                        )
                    except Exception as exc:
                        raise BatchError(
                            f"ledger write failed after {summary.ledger_rows:,} decisions were "
                            f"recorded (run {run_id}): {exc}"
                        ) from exc
                    summary.ledger_rows += len(block)
                    transactions += 1
            done_rows += table.num_rows
            del table, entries
            _release_arrow_memory()
            report("score", done_rows, summary.valid)
        writer.close()
        summary.timings["score"] = time.perf_counter() - t
        summary.timings["peak_previous_waiting"] = float(store.peak)
        out_tmp.replace(out_path)
        rejects_tmp.replace(rejects_path)
    finally:
        if runner is not None:
            runner.close()
        for p in (out_tmp, rejects_tmp):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
        shutil.rmtree(tmpdir, ignore_errors=True)
        if ledger is not None:
            ledger.close()
    summary.seconds = time.perf_counter() - t_start
    summary.rows_per_s = summary.rows_read / summary.seconds if summary.seconds > 0 else 0.0
    return summary


def _collect_forward(
    src: Path,
    columns: list[str],
    chunk_rows: int,
    from_csv: bool,
    valid: np.ndarray,
    links: Links,
    store: PreviousStore,
) -> None:
    """Put previous records that come after their successor in the file into the store."""
    forward = links.forward
    offset = 0
    for batch in iter_batches(src, list(schema.FIELD_NAMES), chunk_rows):
        m = batch.num_rows
        lo, hi = np.searchsorted(forward, [offset, offset + m])
        if hi > lo:
            pos = forward[lo:hi]
            local = pos - offset
            sub = pa.Table.from_batches([batch]).take(pa.array(local, type=pa.int64()))
            store.put(links.successor[pos], numeric_values(sub, from_csv))
        offset += m


def _rejects_schema(src: Path, columns: list[str]) -> pa.Schema:
    if input_format(src) == "parquet":
        base = pq.ParquetFile(src).schema_arrow
        fields = [base.field(name).remove_metadata() for name in columns]
    else:
        fields = [pa.field(name, pa.string()) for name in columns]
    fields = [f for f in fields if f.name not in ("row", "reasons")]
    return pa.schema([pa.field("row", pa.int64()), *fields, pa.field("reasons", pa.string())])


def _ruleset_text(ruleset: RuleSet) -> str:
    """The rules file's text (the version hashes it: the same text gives the same version)."""
    path = Path(ruleset.source)
    if path.exists():
        text = path.read_text(encoding="utf-8")
        if RuleSet.from_text(text, ruleset.source).version == ruleset.version:
            return text
    raise BatchError(
        f"cannot read the rules file {ruleset.source!r} back with version {ruleset.version}"
    )


def summary_lines(s: BatchSummary) -> list[str]:
    """The run summary for people."""
    return [
        f"rows read {s.rows_read:,}: valid {s.valid:,}, rejected {s.rejected:,}"
        + (f" (reasons in {s.rejects})" if s.rejected else ""),
        f"flagged {s.flagged:,}, red {s.red:,}; {s.with_previous:,} with a previous period",
        f"{s.seconds:.1f} s, {s.rows_per_s:,.0f} rows/s ({s.engine} engine, "
        f"{s.workers} worker(s), explain {s.explain})",
        f"model {s.model_name} v{s.model_version}, rules {s.rules_version} -> {s.output}"
        + (f"; {s.ledger_rows:,} decisions in the ledger" if s.ledger_rows else ""),
    ]


def default_workers() -> int:
    """Worker processes by default: one per CPU (at most 8); none (in-process) on one CPU."""
    cpus = os.cpu_count() or 1
    return 0 if cpus < 2 else min(cpus, 8)
