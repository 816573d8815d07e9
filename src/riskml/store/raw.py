"""Reading many small rows fast: a compiled statement on the driver's own cursor.

SQLAlchemy's result rows cost some microseconds each in type processing; a county's worklist
reads some twenty thousand. ``tuples`` runs a Core ``select`` on the connection's DBAPI
cursor and returns plain tuples (booleans as the driver gives them: SQLite's 0 and 1, so
callers convert the columns they need with ``bool``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection


def tuples(conn: Connection, stmt: Any) -> list[tuple]:
    """The rows of ``stmt`` as plain tuples, in the driver's types."""
    compiled = stmt.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    params: Any = compiled.params
    if compiled.positiontup is not None:
        params = tuple(params[name] for name in compiled.positiontup)
    cursor = conn.connection.cursor()
    try:
        cursor.execute(str(compiled), params)
        return cursor.fetchall()
    finally:
        cursor.close()


__all__ = ["tuples"]
