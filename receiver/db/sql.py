"""The few statements whose spelling differs between SQLite and PostgreSQL, written once here."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session


def _insert(dialect: str, table: Table | Any) -> Any:
    """The dialect's ``INSERT`` (the one with ``ON CONFLICT``)."""
    if dialect == "postgresql":
        # Here: a PostgreSQL engine has loaded it already; on SQLite it is ~20 modules, 2 MB.
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table)
    return sqlite.insert(table)


def insert_ignore(conn: Connection, table: Table | Any, *keys: str) -> Any:
    """``INSERT … ON CONFLICT (keys) DO NOTHING`` in the connection's dialect."""
    return _insert(conn.dialect.name, table).on_conflict_do_nothing(index_elements=list(keys))


def rowcount(result: Any) -> int:
    """Rows an UPDATE/DELETE/INSERT touched (0 when the driver cannot tell)."""
    return int(getattr(result, "rowcount", 0) or 0)


def dialect_of(conn: Connection | Session) -> str:
    """``"sqlite"`` or ``"postgresql"``: the dialect a connection (or a bound session) speaks."""
    bind = conn.get_bind() if isinstance(conn, Session) else conn
    return str(bind.dialect.name)


@functools.cache
def upsert(
    dialect: str,
    table: Table,
    keys: tuple[str, ...],
    columns: tuple[str, ...],
    where: Callable[[Any, Any], Any] | None = None,
) -> Any:
    """``INSERT … ON CONFLICT (keys) DO UPDATE SET <the other columns> [WHERE …] RETURNING keys``,
    built once per shape; execute it with the row as parameters.

    ``where(table, excluded)`` limits the update (the existing row is ``table``, the proposed
    one ``excluded``): no row back means nothing changed.
    """
    statement = _insert(dialect, table)
    changes = {name: statement.excluded[name] for name in columns if name not in keys}
    condition = None if where is None else where(table, statement.excluded)
    return statement.on_conflict_do_update(
        index_elements=list(keys), set_=changes, where=condition
    ).returning(*(table.c[name] for name in keys))
