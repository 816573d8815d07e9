"""Fixtures of the code tests: a throwaway PostgreSQL server (``tests.code.postgres``), one per
session, whichever modules use it."""

from tests.code.postgres import ledger_url, pg_empty_url, pg_server, pg_url  # noqa: F401 (fixtures)
