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
   lag links;
2. validation: every record against the schema (``schema.validate_frame``),
   rejects written as they are found;
3. (only when some household's records are not in chronological order in the
   file) the earlier records that come *after* a record that needs them;
4. scoring.

History: each valid record's lags 1-3, the household's chain of earlier
*valid* records (``history.earlier_from_panel`` on the valid records: lag 1
the latest earlier record within 12 months, each further lag the previous
period of the one before, none more than 36 months back; the service gets the
same records from the ledger, where only valid records are). The links are
computed from the keys after validation; the numeric fields (and month) of a
record are kept from the moment its chunk is read until the chunk of the last
record that uses it as a lag: for a file sorted by household that is about
one chunk's worth; for a file written period after period, three periods'
records at most. Memory: about 21 bytes per input row for the whole run
(validity, three lag links, last user, store index: 10M rows ~210 MB) and
~25 more while the keys are read, plus 330 bytes per record waiting for its
users (at most three per household: 1.5M households ~1.5 GB in the worst
order, a file written period after period), plus the chunks in flight
(``chunk_rows``; ``DECIDE_ROWS`` records per ``decide`` call). A single-period
file has no earlier records: lag features are missing, as for a household the
service has never seen.

Worker processes (``workers``) validate and decide chunks in parallel; the
main process reads, keeps the awaited earlier records, writes the output in
input order and records decisions in the ledger (one transaction per block
of at most ``LEDGER_ROWS`` decisions). Results do not depend on ``workers``
or ``chunk_rows``. Decision ids are random (uuid4, like the service's). A run
recorded in the ledger has a run id (``score_file(run_id=...)``, by default from
the input's bytes, the model, the rules version and the explain mode): a rerun
of the same run stores each (household_id, period) once and resumes after a
crash, its output giving the stored decisions.

Modules: ``inputs`` (formats, columns, Arrow batches, typed frames), ``keys``
(pass 1), ``validate`` (pass 2), ``links`` (lags and the store of
awaited records), ``scorer`` (``decide`` in blocks), ``output`` (output and
rejects schemas, decision rows, ledger entries, writers), ``workers`` (worker
processes), ``run`` (``score_file``, step by step), ``summary``, ``model_uri``
(loading the model), ``memory`` and ``errors``.
"""

from riskml.scoring.batch.errors import BatchError
from riskml.scoring.batch.inputs import (
    DEFAULT_CHUNK_ROWS,
    NUMERIC_FIELDS,
    input_columns,
    input_format,
    iter_batches,
    numeric_matrix,
    numeric_values,
    typed_frame,
)
from riskml.scoring.batch.keys import Keys, scan_keys
from riskml.scoring.batch.links import Links, PreviousStore, link_previous, previous_frame
from riskml.scoring.batch.model_uri import load_model, resolve_model_uri
from riskml.scoring.batch.output import (
    OUTPUT_COLUMNS,
    OUTPUT_SCHEMA,
    decisions_table,
    default_rejects_path,
    ledger_entries,
)
from riskml.scoring.batch.run import (
    AUTO_WORKERS_ROWS,
    EXPLAIN_MODES,
    LEDGER_ROWS,
    ProgressFn,
    default_caller,
    default_workers,
    score_file,
)
from riskml.scoring.batch.scorer import DECIDE_ROWS, Scorer
from riskml.scoring.batch.summary import BatchSummary, summary_lines
from riskml.scoring.batch.validate import DUPLICATE_RULE, validate_chunk

__all__ = [
    "AUTO_WORKERS_ROWS",
    "DECIDE_ROWS",
    "DEFAULT_CHUNK_ROWS",
    "DUPLICATE_RULE",
    "EXPLAIN_MODES",
    "LEDGER_ROWS",
    "NUMERIC_FIELDS",
    "OUTPUT_COLUMNS",
    "OUTPUT_SCHEMA",
    "BatchError",
    "BatchSummary",
    "Keys",
    "Links",
    "PreviousStore",
    "ProgressFn",
    "Scorer",
    "decisions_table",
    "default_caller",
    "default_rejects_path",
    "default_workers",
    "input_columns",
    "input_format",
    "iter_batches",
    "ledger_entries",
    "link_previous",
    "load_model",
    "numeric_matrix",
    "numeric_values",
    "previous_frame",
    "resolve_model_uri",
    "scan_keys",
    "score_file",
    "summary_lines",
    "typed_frame",
    "validate_chunk",
]
