"""The few statements whose spelling differs between SQLite and PostgreSQL, written once here."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection


def insert_ignore(conn: Connection, table: Table | Any, *keys: str) -> Any:
    """``INSERT … ON CONFLICT (keys) DO NOTHING`` in the connection's dialect."""
    module: Any = postgresql if conn.dialect.name == "postgresql" else sqlite
    return module.insert(table).on_conflict_do_nothing(index_elements=list(keys))


def rowcount(result: Any) -> int:
    """Rows an UPDATE/DELETE/INSERT touched (0 when the driver cannot tell)."""
    return int(getattr(result, "rowcount", 0) or 0)
