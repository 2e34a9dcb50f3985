"""The few statements whose spelling differs between SQLite and PostgreSQL, written once here."""

from __future__ import annotations

from collections.abc import Callable, Sequence
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


def upsert(
    conn: Connection | Any,
    table: Table | Any,
    keys: Sequence[str],
    values: dict[str, Any],
    *,
    where: Callable[[Any, Any], Any] | None = None,
) -> Any:
    """``INSERT … ON CONFLICT (keys) DO UPDATE SET <the other values> [WHERE …]``.

    ``where(table, excluded)`` limits the update (the existing row is ``table``, the proposed
    one ``excluded``); ``RETURNING`` the keys, so no row back means nothing changed.
    """
    dialect = conn.bind.dialect if hasattr(conn, "bind") and conn.bind is not None else conn.dialect
    module: Any = postgresql if dialect.name == "postgresql" else sqlite
    statement = module.insert(table).values(values)
    changes = {name: statement.excluded[name] for name in values if name not in keys}
    condition = None if where is None else where(table, statement.excluded)
    return statement.on_conflict_do_update(
        index_elements=list(keys), set_=changes, where=condition
    ).returning(*(table.c[name] for name in keys))
