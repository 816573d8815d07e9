"""The ledger database's schema by Alembic migrations (``versions/``), run through Alembic's API.

Every ``Ledger`` brings its database to the newest revision when it opens
(``riskml.store.engine.create_schema``): nothing to do when ``alembic_version`` is already at
the head, so a service whose database role may not change the schema opens it (on
PostgreSQL the schema belongs to the owner role, who runs ``riskml db upgrade``). A database
made before the migrations (no ``alembic_version`` table) is brought up by the first
revision, which creates only what is missing.

``grant_statements``: what the service's PostgreSQL role may do: read and insert into the
insert-only tables (never update, delete, truncate or drop them; the triggers refuse the
first three to any role, the owner included), and write the two derived tables
(``case_current``, ``latest_decisions``: projections that are rebuilt from the record).
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from riskml.store.tables import INSERT_ONLY

DIRECTORY = Path(__file__).resolve().parent
VERSION_TABLE = "alembic_version"
# the derived tables (kept by the service, rebuilt from the insert-only record)
DERIVED = ("case_current", "latest_decisions")
INSERT_ONLY_TABLES = (*INSERT_ONLY, "outcomes")
SEQUENCES = ("access_log_id_seq", "outcomes_id_seq")
ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def _config(conn: Connection | None = None) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(DIRECTORY))
    if conn is not None:
        cfg.attributes["connection"] = conn
    return cfg


@lru_cache(maxsize=1)
def head() -> str:
    """The newest revision of the code."""
    from alembic.script import ScriptDirectory

    found = ScriptDirectory.from_config(_config()).get_current_head()
    if found is None:
        raise RuntimeError("no migrations found")
    return found


def current(conn: Connection) -> str | None:
    """The database's revision (None: never migrated, or empty)."""
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(conn).get_current_revision()


def upgrade(conn: Connection, target: str = "head") -> tuple[str | None, str]:
    """Bring the database on ``conn`` to ``target`` in the connection's transaction:
    (revision before, revision after)."""
    before = current(conn)
    wanted = head() if target == "head" else target
    if before != wanted:
        from alembic import command

        command.upgrade(_config(conn), target)
    return before, wanted


def grant_statements(role: str) -> list[str]:
    """The PostgreSQL statements that give ``role`` what the service needs, and no more
    (run as the owner of the tables; exact: every earlier grant on them is revoked first)."""
    if not ROLE_NAME.match(role):
        raise ValueError(
            "role must be a lower-case PostgreSQL name: letters, digits and _ (at most 63)"
        )
    every = ", ".join((*INSERT_ONLY_TABLES, *DERIVED, VERSION_TABLE))
    return [
        f"GRANT USAGE ON SCHEMA public TO {role}",
        f"REVOKE ALL ON {every} FROM {role}",
        f"GRANT SELECT, INSERT ON {', '.join(INSERT_ONLY_TABLES)} TO {role}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON {', '.join(DERIVED)} TO {role}",
        f"GRANT SELECT ON {VERSION_TABLE} TO {role}",
        # the id sequences of access_log and outcomes (an insert takes the next value)
        f"GRANT USAGE ON SEQUENCE {', '.join(SEQUENCES)} TO {role}",
    ]


__all__ = [
    "DERIVED", "DIRECTORY", "INSERT_ONLY_TABLES", "VERSION_TABLE", "current", "grant_statements",
    "head", "upgrade",
]  # fmt: skip
